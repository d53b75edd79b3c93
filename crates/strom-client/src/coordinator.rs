//! Finding the broker that coordinates a consumer group or a transactional id
//! (FindCoordinator), in every version of the request.

use kafka_protocol::messages::FindCoordinatorRequest;
use kafka_protocol::protocol::StrBytes;
use tracing::debug;

use crate::client::{BrokerMetadata, Client};
use crate::error::{Error, Result};

/// What a coordinator is looked up for (FindCoordinator's key type).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum CoordinatorKind {
    /// A consumer group.
    Group,
    /// A transactional id.
    Transaction,
}

impl CoordinatorKind {
    fn key_type(self) -> i8 {
        match self {
            CoordinatorKind::Group => 0,
            CoordinatorKind::Transaction => 1,
        }
    }
}

/// Kafka's coordinator error codes: load in progress, not available, not coordinator.
pub(crate) fn is_coordinator_error(error: &Error) -> bool {
    matches!(error.code(), Some(14..=16))
}

/// The coordinator of `key`, retrying while the cluster has none yet.
pub(crate) async fn find_coordinator(client: &Client, kind: CoordinatorKind, key: &str) -> Result<BrokerMetadata> {
    client
        .retrying(|| async {
            let version = client.version_for::<FindCoordinatorRequest>(None).await?;
            let key = StrBytes::from_string(key.to_string());
            let mut request = FindCoordinatorRequest::default();
            if version >= 1 {
                request.key_type = kind.key_type();
            }
            if version >= 4 {
                request.coordinator_keys = vec![key];
            } else {
                request.key = key;
            }
            let response = client.send_any(&request).await?;
            let (node_id, host, port, code, message) = match response.coordinators.into_iter().next() {
                Some(c) if version >= 4 => (c.node_id.0, c.host, c.port, c.error_code, c.error_message),
                _ => (
                    response.node_id.0,
                    response.host,
                    response.port,
                    response.error_code,
                    response.error_message,
                ),
            };
            Error::check(code, message.as_deref())?;
            let port = u16::try_from(port).map_err(|_| Error::Protocol(format!("coordinator port {port}")))?;
            debug!(?kind, node_id, %host, port, "found coordinator");
            Ok(BrokerMetadata {
                id: node_id,
                host: host.to_string(),
                port,
                rack: None,
            })
        })
        .await
}

/// The coordinator's broker id, refreshing metadata so [`Client::send_to`] knows its address.
pub(crate) async fn coordinator_id(client: &Client, kind: CoordinatorKind, key: &str) -> Result<i32> {
    let coordinator = find_coordinator(client, kind, key).await?;
    if !client.metadata().brokers.contains_key(&coordinator.id) {
        client.refresh_metadata(Some(&[])).await?;
    }
    Ok(coordinator.id)
}

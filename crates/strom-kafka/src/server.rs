//! The Kafka listener: accepts connections up to `max.connections` (a semaphore,
//! checked before a connection gets any buffer) and stops on the shutdown signal.

use std::net::SocketAddr;
use std::sync::Arc;

use strom_broker::txn::TxnCoordinator;
use strom_broker::{Broker, GroupCoordinator};
use tokio::net::TcpListener;
use tokio::sync::{watch, Semaphore};

use crate::connection;

/// Settings of the Kafka front-end.
#[derive(Debug, Clone)]
pub struct ServerConfig {
    /// Address to bind (from `listeners`).
    pub bind: SocketAddr,
    /// Host and port Metadata reports (from `advertised.listeners`).
    pub advertised_host: String,
    pub advertised_port: i32,
    /// `socket.request.max.bytes`: largest request frame accepted.
    pub socket_request_max_bytes: usize,
    /// `max.connections`.
    pub max_connections: usize,
    /// Broker-level settings for DescribeConfigs on the broker resource:
    /// (name, value, set explicitly, description).
    pub broker_configs: Vec<(String, String, bool, String)>,
}

/// Who sent a request: the connection's address and the header's client id.
#[derive(Debug, Clone)]
pub struct Peer {
    pub address: SocketAddr,
    pub client_id: String,
}

/// State every connection shares.
pub struct Context {
    pub broker: Arc<Broker>,
    pub groups: Arc<GroupCoordinator>,
    pub txns: Arc<TxnCoordinator>,
    pub config: ServerConfig,
    pub shutdown: watch::Receiver<bool>,
}

pub struct Server {
    listener: TcpListener,
    context: Arc<Context>,
}

impl Server {
    pub async fn bind(
        config: ServerConfig,
        broker: Arc<Broker>,
        groups: Arc<GroupCoordinator>,
        txns: Arc<TxnCoordinator>,
        shutdown: watch::Receiver<bool>,
    ) -> std::io::Result<Server> {
        let listener = TcpListener::bind(config.bind).await?;
        Ok(Server {
            listener,
            context: Arc::new(Context {
                broker,
                groups,
                txns,
                config,
                shutdown,
            }),
        })
    }

    pub fn local_addr(&self) -> std::io::Result<SocketAddr> {
        self.listener.local_addr()
    }

    /// Accept until shutdown; connections end when the shutdown signal reaches them.
    pub async fn run(self) {
        let limit = Arc::new(Semaphore::new(self.context.config.max_connections));
        let mut shutdown = self.context.shutdown.clone();
        loop {
            let accepted = tokio::select! {
                accepted = self.listener.accept() => accepted,
                _ = shutdown.changed() => break,
            };
            let (stream, peer) = match accepted {
                Ok(pair) => pair,
                Err(e) => {
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                    continue;
                }
            };
            let Ok(permit) = limit.clone().try_acquire_owned() else {
                tracing::warn!(%peer, "max.connections reached; closing new connection");
                drop(stream);
                continue;
            };
            let context = self.context.clone();
            tokio::spawn(async move {
                connection::serve(stream, peer, context).await;
                drop(permit);
            });
        }
        // Every connection holds a permit until it ends: taking them all means no
        // request is still running when the caller goes on to close the logs.
        let all = u32::try_from(self.context.config.max_connections).unwrap_or(u32::MAX);
        let drained = tokio::time::timeout(std::time::Duration::from_secs(10), limit.acquire_many(all)).await;
        if drained.is_err() {
            tracing::warn!("connections still busy after 10 s; closing anyway");
        }
        tracing::info!("kafka listener stopped");
    }
}

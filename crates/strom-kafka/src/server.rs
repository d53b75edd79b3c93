//! The Kafka listener: accepts connections up to `max.connections` and
//! `max.connections.per.ip` (checked before a connection gets any buffer) and stops on
//! the shutdown signal. Large requests draw on one pool of `queued.max.request.bytes`
//! shared by all connections (see `connection.rs`).

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex};

use strom_broker::BrokerApi;
use tokio::net::TcpListener;
use tokio::sync::{watch, Semaphore};

use crate::connection;
use crate::constants::CONNECTIONS_TRACKED_MAX;
use crate::context::{Context, ServerConfig};

pub struct Server {
    listener: TcpListener,
    context: Arc<Context>,
}

impl Server {
    /// Binds the listener; it stops when the broker begins to shut down.
    pub async fn bind(config: ServerConfig, api: Arc<BrokerApi>) -> std::io::Result<Server> {
        let shutdown: watch::Receiver<bool> = api.closing();
        let listener = TcpListener::bind(config.bind).await?;
        if !config.bind.ip().is_loopback() {
            tracing::warn!(
                listener = %config.bind,
                "the Kafka listener accepts connections from other machines and Strom has no authentication yet: \
                 anyone who can reach it can read, write and delete data"
            );
        }
        let pool = config
            .queued_max_request_bytes
            .max(config.socket_request_max_bytes.saturating_add(4))
            .min(Semaphore::MAX_PERMITS);
        Ok(Server {
            listener,
            context: Arc::new(Context {
                api,
                config,
                shutdown,
                request_memory: Arc::new(Semaphore::new(pool)),
            }),
        })
    }

    pub fn local_addr(&self) -> std::io::Result<SocketAddr> {
        self.listener.local_addr()
    }

    /// A connection limit: its dynamic value if one was set, else the static one.
    fn setting(&self, name: &str, configured: usize) -> usize {
        self.context
            .api
            .broker()
            .dynamic_setting(name)
            .and_then(|v| v.trim().parse().ok())
            .unwrap_or(configured)
    }

    /// Accept until shutdown; connections end when the shutdown signal reaches them.
    pub async fn run(self) {
        // One permit per connection, taken at accept and given back when it ends; the
        // limits themselves are checked against the count so that they can change at
        // runtime (dynamic broker configs).
        let limit = Arc::new(Semaphore::new(CONNECTIONS_TRACKED_MAX as usize));
        let per_address = Arc::new(Mutex::new(HashMap::<IpAddr, usize>::new()));
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
            let active = CONNECTIONS_TRACKED_MAX as usize - limit.available_permits();
            let max_connections = self.setting("max.connections", self.context.config.max_connections);
            let permit = match limit.clone().try_acquire_owned() {
                Ok(permit) if active < max_connections => permit,
                _ => {
                    tracing::warn!(%peer, "max.connections reached; closing new connection");
                    drop(stream);
                    continue;
                }
            };
            let per_ip = self.setting("max.connections.per.ip", self.context.config.max_connections_per_ip);
            let Some(slot) = AddressSlot::take(&per_address, peer.ip(), per_ip) else {
                tracing::warn!(%peer, "max.connections.per.ip reached; closing new connection");
                drop(stream);
                continue;
            };
            let context = self.context.clone();
            tokio::spawn(async move {
                connection::serve(stream, peer, context).await;
                drop(slot);
                drop(permit);
            });
        }
        // Every connection holds a permit until it ends: taking them all means no
        // request is still running when the caller goes on to close the logs.
        let drained = tokio::time::timeout(
            std::time::Duration::from_secs(10),
            limit.acquire_many(CONNECTIONS_TRACKED_MAX),
        )
        .await;
        if drained.is_err() {
            tracing::warn!("connections still busy after 10 s; closing anyway");
        }
        tracing::info!("kafka listener stopped");
    }
}

/// One connection's place in the per-address count, given back when dropped.
struct AddressSlot {
    counts: Arc<Mutex<HashMap<IpAddr, usize>>>,
    address: IpAddr,
}

impl AddressSlot {
    fn take(counts: &Arc<Mutex<HashMap<IpAddr, usize>>>, address: IpAddr, max: usize) -> Option<AddressSlot> {
        let mut map = counts.lock().unwrap_or_else(|e| e.into_inner());
        let count = map.entry(address).or_insert(0);
        if *count >= max {
            return None;
        }
        *count += 1;
        Some(AddressSlot {
            counts: counts.clone(),
            address,
        })
    }
}

impl Drop for AddressSlot {
    fn drop(&mut self) {
        let mut map = self.counts.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(count) = map.get_mut(&self.address) {
            *count = count.saturating_sub(1);
            if *count == 0 {
                map.remove(&self.address);
            }
        }
    }
}

//! What every connection and handler shares: the listener's settings, the broker's
//! façade and who sent the request. (Its own file, below the handlers and the
//! connection, so the modules import each other in one direction only.)

use std::net::SocketAddr;
use std::sync::Arc;

use strom_broker::{BrokerApi, Caller};
use tokio::sync::{watch, Semaphore};

/// Settings of the Kafka front-end.
#[derive(Debug, Clone)]
pub struct ServerConfig {
    /// The listener's name (`PLAINTEXT`): which registered listener of each broker
    /// Metadata and FindCoordinator report to clients of this one.
    pub listener_name: String,
    /// Address to bind (from `listeners`).
    pub bind: SocketAddr,
    /// Host and port Metadata reports (from `advertised.listeners`).
    pub advertised_host: String,
    pub advertised_port: i32,
    /// `socket.request.max.bytes`: largest request frame accepted.
    pub socket_request_max_bytes: usize,
    /// `max.connections`.
    pub max_connections: usize,
    /// `max.connections.per.ip`: most connections from one address.
    pub max_connections_per_ip: usize,
    /// `connections.max.idle.ms`: a connection with nothing to do for this long is closed.
    pub connections_max_idle_ms: u64,
    /// `queued.max.request.bytes`: memory all connections together may hold for
    /// requests larger than a connection's read buffer (at least one largest request).
    pub queued_max_request_bytes: usize,
}

/// Who sent a request: the connection's address and caller, and the header's client id.
#[derive(Debug, Clone)]
pub struct Peer {
    pub address: SocketAddr,
    pub client_id: String,
    pub caller: Caller,
}

/// State every connection shares.
pub struct Context {
    /// The broker's façade: what every handler calls.
    pub api: Arc<BrokerApi>,
    pub config: ServerConfig,
    pub shutdown: watch::Receiver<bool>,
    /// Bytes of large requests being read or run (`queued.max.request.bytes`).
    pub request_memory: Arc<Semaphore>,
}

impl Context {
    /// Where clients of this listener reach node `node_id`: this node as this listener
    /// advertises itself, other nodes by their registered listener of the same name.
    /// `None` when the node is not registered or has no such listener.
    pub fn endpoint(&self, node_id: i32, brokers: &[strom_broker::api::BrokerEndpoint]) -> Option<(String, i32)> {
        if node_id == self.api.node_id() {
            return Some((self.config.advertised_host.clone(), self.config.advertised_port));
        }
        brokers
            .iter()
            .find(|b| b.node_id == node_id)?
            .listeners
            .iter()
            .find(|l| l.name == self.config.listener_name)
            .map(|l| (l.host.clone(), i32::from(l.port)))
    }
}

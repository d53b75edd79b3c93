//! Strom's Kafka wire-protocol front-end: framing, the ApiVersions table, one module
//! per API family, and the mapping of broker errors to Kafka error codes. It knows
//! nothing of storage layout: every request becomes calls on `strom_broker::BrokerApi`.
//! It exports its server, its settings, the table of served APIs and the inter-broker
//! client the transaction coordinator sends markers with, nothing else.

mod apis;
mod connection;
mod constants;
mod context;
mod error_code;
mod frame;
#[doc(hidden)]
pub mod fuzzing;
mod inter_broker;
mod outbound;
mod peers;
mod replica_fetch;
mod server;
mod txn_markers;

/// The APIs and versions served (ApiVersions advertises exactly these).
pub use apis::SUPPORTED;
pub use context::ServerConfig;
pub use peers::PeerAddresses;
pub use replica_fetch::ReplicaFetchClient;
pub use server::Server;
pub use txn_markers::TxnMarkerClient;

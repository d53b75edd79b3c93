//! Strom's Kafka wire-protocol front-end: framing, the ApiVersions table, one module
//! per API family, and the mapping of broker errors to Kafka error codes. It knows
//! nothing of storage layout: every request becomes calls on `strom_broker::Broker`.

pub mod apis;
mod connection;
pub mod constants;
pub mod error_code;
pub mod frame;
#[doc(hidden)]
pub mod fuzzing;
pub mod server;

pub use server::{Server, ServerConfig};

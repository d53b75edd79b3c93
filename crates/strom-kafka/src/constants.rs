//! Limits of the Kafka front-end.

/// Initial read buffer per connection, and the size at which buffered responses
/// are written even if more requests are waiting.
pub const READ_BUFFER_BYTES: usize = 64 * 1024;
/// Requests of one connection whose responses may wait for an fsync while the
/// connection goes on reading; beyond this the connection stops reading.
pub const PIPELINED_RESPONSES_MAX: usize = 64;
/// Most connections the listener can count (far above any sensible `max.connections`,
/// which is checked against this count so that it can change at runtime).
pub const CONNECTIONS_TRACKED_MAX: u32 = 1 << 24;
/// Kafka's authorized-operations value when the client did not ask for them.
pub const AUTHORIZED_OPERATIONS_NOT_REQUESTED: i32 = i32::MIN;
/// Inter-broker requests (WriteTxnMarkers): how long to wait for a connection, and
/// then for each read or write. The coordinator holds the transaction meanwhile.
pub const INTER_BROKER_CONNECT_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(5);
pub const INTER_BROKER_IO_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(15);
/// Largest inter-broker response read (a WriteTxnMarkers answer is a few bytes per
/// partition).
pub const INTER_BROKER_RESPONSE_MAX_BYTES: usize = 16 << 20;

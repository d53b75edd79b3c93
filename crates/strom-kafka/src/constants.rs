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

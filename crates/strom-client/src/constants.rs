//! Limits and fixed values of the client, kept in one place.

use std::time::Duration;

/// Largest response frame accepted from a broker; checked before allocating.
pub const RESPONSE_FRAME_BYTES_MAX: usize = 256 * 1024 * 1024;

/// Requests queued for a connection's writer before `send` waits.
pub const CONNECTION_QUEUE_DEPTH: usize = 1024;

/// Upper bound of the exponential retry backoff.
pub const RETRY_BACKOFF_MAX: Duration = Duration::from_secs(1);

/// Produce batches in flight per partition (Kafka's limit for idempotent producers).
pub const IN_FLIGHT_BATCHES_PER_PARTITION_MAX: usize = 5;
/// Most records a new producer batch reserves room for up front.
pub const BATCH_RECORDS_PREALLOCATED_MAX: usize = 4096;

/// Records decoded from one batch, whatever its header claims.
pub const RECORDS_PER_BATCH_MAX: usize = 1_000_000;

/// Version of the v2 record batch format ("magic").
pub const RECORD_BATCH_MAGIC: i8 = 2;

/// Size of the v2 record batch header, up to and including the record count.
pub const RECORD_BATCH_HEADER_BYTES: usize = 61;

/// Name sent in ApiVersions v3+.
pub const CLIENT_SOFTWARE_NAME: &str = "strom-client";

/// Version sent in ApiVersions v3+.
pub const CLIENT_SOFTWARE_VERSION: &str = env!("CARGO_PKG_VERSION");

/// Per-record overhead counted against the producer's buffer memory besides key, value and headers.
pub const RECORD_OVERHEAD_BYTES: usize = 64;

const _: () = assert!(RECORD_BATCH_HEADER_BYTES < RESPONSE_FRAME_BYTES_MAX);
const _: () = assert!(
    IN_FLIGHT_BATCHES_PER_PARTITION_MAX <= 5,
    "brokers track at most 5 batches per producer"
);

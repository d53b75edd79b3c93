//! Idempotent delivery: the producer id an idempotent producer gets from the cluster, the
//! per-partition sequence numbers its batches carry, and the broker's answers about them.
//!
//! Batches get sequence numbers when first sent; at most
//! [`IN_FLIGHT_BATCHES_PER_PARTITION_MAX`](crate::constants::IN_FLIGHT_BATCHES_PER_PARTITION_MAX)
//! are in flight per partition, and a retried batch is sent alone so the broker sees
//! sequences in order (`accumulator.rs`).

use kafka_protocol::messages::{InitProducerIdRequest, ProducerId};

use crate::client::Client;
use crate::error::{Error, Result};

/// The producer id and epoch the cluster gave an idempotent or transactional producer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ProducerIdentity {
    /// The producer id.
    pub id: i64,
    /// The producer epoch; a newer epoch of the same transactional id fences older ones.
    pub epoch: i16,
}

/// Kafka's DUPLICATE_SEQUENCE_NUMBER: the broker already has the batch.
pub(crate) const DUPLICATE_SEQUENCE_NUMBER: i16 = 46;
/// Kafka's OUT_OF_ORDER_SEQUENCE_NUMBER: an earlier batch of the partition is being retried.
pub(crate) const OUT_OF_ORDER_SEQUENCE_NUMBER: i16 = 45;

/// The sequence number after a batch of `records` records starting at `sequence`; Kafka's
/// sequences wrap from i32::MAX to 0.
pub(crate) fn sequence_after(sequence: i32, records: usize) -> i32 {
    let count = i32::try_from(records).unwrap_or(i32::MAX);
    match sequence.checked_add(count) {
        Some(next) => next,
        None => count - (i32::MAX - sequence) - 1,
    }
}

/// A producer id and epoch for an idempotent producer without a transactional id.
pub(crate) async fn init_producer_id(client: &Client) -> Result<(i64, i16)> {
    let request = InitProducerIdRequest::default()
        .with_transactional_id(None)
        .with_transaction_timeout_ms(i32::MAX)
        .with_producer_id(ProducerId(-1))
        .with_producer_epoch(-1);
    client
        .retrying(|| async {
            let response = client.send_any(&request).await?;
            Error::check(response.error_code, None)?;
            if response.producer_id.0 < 0 || response.producer_epoch < 0 {
                return Err(Error::Protocol(format!(
                    "InitProducerId returned producer id {} epoch {}",
                    response.producer_id.0, response.producer_epoch
                )));
            }
            Ok((response.producer_id.0, response.producer_epoch))
        })
        .await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sequences_wrap_from_the_largest_i32_to_zero() {
        assert_eq!(sequence_after(0, 5), 5);
        assert_eq!(sequence_after(i32::MAX - 5, 5), i32::MAX);
        assert_eq!(sequence_after(i32::MAX - 4, 5), 0);
        assert_eq!(sequence_after(i32::MAX - 1, 3), 1);
        assert_eq!(sequence_after(i32::MAX, 1), 0);
    }
}

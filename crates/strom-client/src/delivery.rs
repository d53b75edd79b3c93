//! What `send` returns: a [`DeliveryFuture`] that resolves to the record's [`RecordMetadata`].

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use tokio::sync::oneshot;

use crate::error::{Error, Result};

/// Where a record was stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecordMetadata {
    /// Topic.
    pub topic: String,
    /// Partition.
    pub partition: i32,
    /// Offset, or -1 when unknown (acks=0, or a duplicate the broker already had).
    pub offset: i64,
    /// The record's timestamp: log-append time for such topics, else the creation time.
    pub timestamp: i64,
}

/// Resolves when the broker has acknowledged (or definitively rejected) a record.
///
/// ```no_run
/// # async fn demo(producer: strom_client::Producer) -> strom_client::Result<()> {
/// let delivery = producer.send(strom_client::ProducerRecord::new("events", "payload")).await?;
/// let metadata = delivery.await?;
/// println!("stored at {}-{}@{}", metadata.topic, metadata.partition, metadata.offset);
/// # Ok(()) }
/// ```
#[derive(Debug)]
pub struct DeliveryFuture {
    receiver: oneshot::Receiver<Result<RecordMetadata>>,
}

impl Future for DeliveryFuture {
    type Output = Result<RecordMetadata>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        Pin::new(&mut self.receiver)
            .poll(cx)
            .map(|result| result.unwrap_or_else(|_| Err(Error::Config("producer dropped before delivery".into()))))
    }
}

impl DeliveryFuture {
    /// A future completed through the returned sender, and its sender.
    pub(crate) fn channel() -> (oneshot::Sender<Result<RecordMetadata>>, DeliveryFuture) {
        let (completion, receiver) = oneshot::channel();
        (completion, DeliveryFuture { receiver })
    }
}

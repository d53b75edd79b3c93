//! The one way the façade runs blocking work (file reads, fsync, directory changes):
//! on tokio's blocking pool, so no front-end's I/O threads wait on the disk.
//!
//! Policy for a panicked task: a panic is a bug, not a reason to take down the
//! connection or the broker. It is logged with what was running, and the request that
//! ran it fails with [`BrokerError::Internal`] (UNKNOWN_SERVER_ERROR on the wire).

use crate::error::{BrokerError, Result};

/// Runs `work` on the blocking pool; `what` names it in the log if it panics.
pub(crate) async fn offload<T, F>(what: &'static str, work: F) -> Result<T>
where
    F: FnOnce() -> T + Send + 'static,
    T: Send + 'static,
{
    match tokio::task::spawn_blocking(work).await {
        Ok(value) => Ok(value),
        Err(e) => {
            let reason = if e.is_panic() {
                let panic = e.into_panic();
                panic
                    .downcast_ref::<&str>()
                    .map(|s| s.to_string())
                    .or_else(|| panic.downcast_ref::<String>().cloned())
                    .unwrap_or_else(|| "panic".to_string())
            } else {
                "cancelled".to_string()
            };
            tracing::error!(task = what, %reason, "broker task failed");
            Err(BrokerError::Internal(format!("{what}: {reason}")))
        }
    }
}

/// [`offload`] for work that returns a `Result` itself.
pub(crate) async fn offload_result<T, F>(what: &'static str, work: F) -> Result<T>
where
    F: FnOnce() -> Result<T> + Send + 'static,
    T: Send + 'static,
{
    offload(what, work).await?
}

/// Per-item work on the blocking pool, for requests that name many topics or partitions:
/// items already refused (`Err`) pass through, the others get `work`. If the task itself
/// fails, every item fails with it.
pub(crate) async fn offload_each<I, T, F>(what: &'static str, items: Vec<Result<I>>, work: F) -> Vec<Result<T>>
where
    I: Send + 'static,
    T: Send + 'static,
    F: Fn(I) -> Result<T> + Send + 'static,
{
    let count = items.len();
    let done = offload(what, move || {
        items.into_iter().map(|item| item.and_then(&work)).collect::<Vec<_>>()
    })
    .await;
    done.unwrap_or_else(|e| (0..count).map(|_| Err(BrokerError::Internal(e.to_string()))).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_panic_becomes_an_internal_error() {
        let ok = offload("sum", || 1 + 1).await.unwrap();
        assert_eq!(ok, 2);
        let failed = offload("boom", || -> i32 { panic!("bad state") }).await;
        match failed {
            Err(BrokerError::Internal(message)) => assert!(message.contains("bad state"), "{message}"),
            other => panic!("unexpected {other:?}"),
        }
    }
}

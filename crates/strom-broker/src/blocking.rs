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

//! The client's error type.

use kafka_protocol::error::ResponseError;

/// A specialised `Result` for client operations.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Everything that can go wrong when talking to a broker.
///
/// ```
/// use strom_client::Error;
///
/// let error = Error::Kafka { code: 6, message: String::new() };
/// assert!(error.is_retriable()); // NOT_LEADER_OR_FOLLOWER
/// assert!(error.to_string().starts_with("broker error 6 (NOT_LEADER_OR_FOLLOWER)"));
/// ```
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The broker answered with a Kafka error code.
    #[error("broker error {code} ({}): {}", kafka_error_name(*code), kafka_error_text(*code, message))]
    Kafka {
        /// Kafka's error code (see the protocol guide's error table).
        code: i16,
        /// The broker's error message, or empty.
        message: String,
    },
    /// A socket error: the connection failed or was closed.
    #[error("i/o error: {0}")]
    Io(#[from] std::io::Error),
    /// The broker did not answer within the request timeout (or a bounded wait expired).
    #[error("timed out: {0}")]
    Timeout(String),
    /// The broker sent something this client cannot understand or that violates the protocol.
    #[error("protocol error: {0}")]
    Protocol(String),
    /// None of the bootstrap servers or known brokers could be reached.
    #[error("no broker could be reached")]
    NoBrokers,
    /// The topic (or partition) does not exist on the cluster.
    #[error("topic not found: {0}")]
    UnknownTopic(String),
    /// The client was configured or called with invalid values.
    #[error("invalid configuration: {0}")]
    Config(String),
    /// The producer (or consumer group member) cannot go on, e.g. a transactional producer
    /// fenced by a newer instance with the same transactional id; only closing it is left.
    #[error("fatal: {0}")]
    Fatal(String),
}

impl Error {
    /// Builds a [`Error::Kafka`] from a response's error code and optional message.
    pub fn kafka(code: i16, message: Option<&str>) -> Self {
        Error::Kafka {
            code,
            message: message.unwrap_or_default().to_string(),
        }
    }

    /// Turns a response's error code into `Ok(())` (code 0) or [`Error::Kafka`].
    ///
    /// ```
    /// use strom_client::Error;
    ///
    /// assert!(Error::check(0, None).is_ok());
    /// assert!(Error::check(3, None).is_err());
    /// ```
    pub fn check(code: i16, message: Option<&str>) -> Result<()> {
        if code == 0 {
            Ok(())
        } else {
            Err(Error::kafka(code, message))
        }
    }

    /// Whether retrying the same operation later may succeed: Kafka's retriable error codes,
    /// timeouts and connection failures.
    pub fn is_retriable(&self) -> bool {
        match self {
            Error::Kafka { code, .. } => ResponseError::try_from_code(*code).is_some_and(|e| e.is_retriable()),
            Error::Io(_) | Error::Timeout(_) | Error::NoBrokers => true,
            Error::Protocol(_) | Error::UnknownTopic(_) | Error::Config(_) | Error::Fatal(_) => false,
        }
    }

    /// The Kafka error code, if this is a broker error.
    pub fn code(&self) -> Option<i16> {
        match self {
            Error::Kafka { code, .. } => Some(*code),
            _ => None,
        }
    }

    /// Whether a metadata refresh may fix the error (stale leader or unknown partition).
    pub(crate) fn needs_metadata_refresh(&self) -> bool {
        matches!(
            self.code(),
            Some(3 | 5 | 6 | 9 | 13 | 74 | 75 | 100 | 103) // unknown topic, leader not available, not leader, …
        ) || matches!(self, Error::Io(_) | Error::Timeout(_))
    }
}

impl Clone for Error {
    fn clone(&self) -> Self {
        match self {
            Error::Kafka { code, message } => Error::Kafka {
                code: *code,
                message: message.clone(),
            },
            Error::Io(error) => Error::Io(std::io::Error::new(error.kind(), error.to_string())),
            Error::Timeout(what) => Error::Timeout(what.clone()),
            Error::Protocol(what) => Error::Protocol(what.clone()),
            Error::NoBrokers => Error::NoBrokers,
            Error::UnknownTopic(topic) => Error::UnknownTopic(topic.clone()),
            Error::Config(what) => Error::Config(what.clone()),
            Error::Fatal(what) => Error::Fatal(what.clone()),
        }
    }
}

fn kafka_error_name(code: i16) -> String {
    match ResponseError::try_from_code(code) {
        Some(ResponseError::Unknown(_)) | None => "UNKNOWN".to_string(),
        Some(error) => screaming_snake(&format!("{error:?}")),
    }
}

fn kafka_error_text(code: i16, message: &str) -> String {
    if !message.is_empty() {
        return message.to_string();
    }
    match ResponseError::try_from_code(code) {
        Some(error) => error.to_string(),
        None => "no error".to_string(),
    }
}

/// `NotLeaderOrFollower` → `NOT_LEADER_OR_FOLLOWER`, Kafka's spelling of error names.
fn screaming_snake(camel: &str) -> String {
    let mut out = String::with_capacity(camel.len() + 8);
    for (index, c) in camel.chars().enumerate() {
        if c.is_ascii_uppercase() && index > 0 {
            out.push('_');
        }
        out.push(c.to_ascii_uppercase());
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn display_names_kafka_errors() {
        let error = Error::kafka(3, None);
        assert!(
            error
                .to_string()
                .starts_with("broker error 3 (UNKNOWN_TOPIC_OR_PARTITION)"),
            "{error}"
        );
        assert_eq!(Error::UnknownTopic("t".into()).to_string(), "topic not found: t");
        assert!(Error::Timeout("x".into()).is_retriable());
        assert!(!Error::Config("x".into()).is_retriable());
        assert!(!Error::kafka(-9999, Some("odd")).is_retriable());
    }
}

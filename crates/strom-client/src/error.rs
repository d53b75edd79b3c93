//! The client's error type.

use std::time::Duration;

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
    #[error("broker error {code} ({}){}", kafka_error_name(*code), kafka_error_text(message))]
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
    /// None of the bootstrap servers or known brokers could be reached; holds why, per
    /// address tried.
    #[error("no broker could be reached ({})", join_errors(.0))]
    NoBrokers(Vec<Error>),
    /// A connection to a broker could not be set up.
    #[error("cannot connect to {address}: {failure}")]
    Connect {
        /// The `host:port` tried.
        address: String,
        /// What went wrong.
        failure: ConnectFailure,
    },
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
            Error::Io(_) | Error::Timeout(_) => true,
            Error::NoBrokers(errors) => errors.iter().any(Error::is_retriable),
            Error::Connect { failure, .. } => failure.is_retriable(),
            Error::Protocol(_) | Error::UnknownTopic(_) | Error::Config(_) | Error::Fatal(_) => false,
        }
    }

    /// Kafka's name of the error code (`GROUP_ID_NOT_FOUND`), if this is a broker error.
    pub fn code_name(&self) -> Option<String> {
        self.code().map(kafka_error_name)
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
        ) || matches!(self, Error::Io(_) | Error::Timeout(_) | Error::Connect { .. })
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
            Error::NoBrokers(errors) => Error::NoBrokers(errors.clone()),
            Error::Connect { address, failure } => Error::Connect {
                address: address.clone(),
                failure: failure.clone(),
            },
            Error::UnknownTopic(topic) => Error::UnknownTopic(topic.clone()),
            Error::Config(what) => Error::Config(what.clone()),
            Error::Fatal(what) => Error::Fatal(what.clone()),
        }
    }
}

/// Why a connection to a broker could not be set up, in the order the steps are taken.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConnectFailure {
    /// The address is not `host:port`.
    #[error("no port in the address (expected host:port)")]
    NoPort,
    /// The host name did not resolve.
    #[error("name lookup failed ({0})")]
    Lookup(String),
    /// The TCP connection was refused or failed.
    #[error("{0}")]
    Tcp(String),
    /// Nothing accepted the TCP connection within the connect timeout.
    #[error("no answer within {0:?}")]
    Unanswered(Duration),
    /// The TCP connection was accepted but the Kafka handshake (ApiVersions) got no
    /// answer within the connect timeout.
    #[error("connected, but no answer to the Kafka handshake within {0:?}")]
    NoKafkaAnswer(Duration),
    /// The peer closed the connection before the Kafka handshake finished.
    #[error("the connection was closed during the Kafka handshake ({0})")]
    Closed(String),
    /// The peer answered with something that is not a Kafka response.
    #[error("the answer is not Kafka's ({0})")]
    NotKafka(String),
}

impl ConnectFailure {
    /// A refused or dropped connection may work a moment later (a broker starting or at
    /// its connection limit); a wrong address, a silent port or another protocol will not.
    pub fn is_retriable(&self) -> bool {
        matches!(self, ConnectFailure::Tcp(_) | ConnectFailure::Closed(_))
    }
}

fn join_errors(errors: &[Error]) -> String {
    if errors.is_empty() {
        return "no address to try".to_string();
    }
    errors.iter().map(Error::to_string).collect::<Vec<_>>().join("; ")
}

fn kafka_error_name(code: i16) -> String {
    match ResponseError::try_from_code(code) {
        Some(ResponseError::Unknown(_)) | None => "UNKNOWN".to_string(),
        Some(error) => screaming_snake(&format!("{error:?}")),
    }
}

/// The broker's message after a colon; nothing without one (the name says it already).
fn kafka_error_text(message: &str) -> String {
    if message.is_empty() {
        String::new()
    } else {
        format!(": {message}")
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
        assert_eq!(error.to_string(), "broker error 3 (UNKNOWN_TOPIC_OR_PARTITION)");
        assert_eq!(
            Error::kafka(69, Some("Group g not found.")).to_string(),
            "broker error 69 (GROUP_ID_NOT_FOUND): Group g not found."
        );
        assert_eq!(error.code_name().as_deref(), Some("UNKNOWN_TOPIC_OR_PARTITION"));
        assert_eq!(Error::UnknownTopic("t".into()).to_string(), "topic not found: t");
        assert!(Error::Timeout("x".into()).is_retriable());
        assert!(!Error::Config("x".into()).is_retriable());
        assert!(!Error::kafka(-9999, Some("odd")).is_retriable());
    }

    #[test]
    fn only_refused_or_dropped_connections_are_retried() {
        let connect = |failure| Error::Connect {
            address: "h:1".into(),
            failure,
        };
        assert!(connect(ConnectFailure::Tcp("refused".into())).is_retriable());
        assert!(!connect(ConnectFailure::NoPort).is_retriable());
        assert!(!connect(ConnectFailure::Lookup("unknown".into())).is_retriable());
        assert!(!connect(ConnectFailure::NoKafkaAnswer(Duration::from_secs(5))).is_retriable());
        assert!(!connect(ConnectFailure::NotKafka("HTTP".into())).is_retriable());
        let none = Error::NoBrokers(vec![connect(ConnectFailure::NoPort)]);
        assert!(!none.is_retriable());
        assert_eq!(
            none.to_string(),
            "no broker could be reached (cannot connect to h:1: no port in the address (expected host:port))"
        );
    }
}

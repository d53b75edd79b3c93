//! Who is asking, and the one authorization point every façade call passes.
//!
//! Every front-end (Kafka now; AMQP, gRPC and the registry next) builds a [`Caller`] per
//! connection and hands it to each façade call, which asks the broker's [`Authorizer`]
//! before it acts. Today there is no authentication: every caller is the anonymous
//! principal and [`AllowAll`] allows everything, so TLS, SASL and ACLs plug in here once
//! for every front-end.

use std::net::SocketAddr;
use std::sync::Arc;

use crate::error::{BrokerError, Result};

/// An authenticated identity, as Kafka writes it: `User:alice`, `User:ANONYMOUS`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Principal {
    pub kind: Arc<str>,
    pub name: Arc<str>,
}

impl Principal {
    /// The principal of an unauthenticated connection (Kafka's `User:ANONYMOUS`).
    pub fn anonymous() -> Principal {
        Principal {
            kind: Arc::from("User"),
            name: Arc::from("ANONYMOUS"),
        }
    }
}

impl std::fmt::Display for Principal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}:{}", self.kind, self.name)
    }
}

/// The caller of a façade method: principal, the listener it came in on and the client's
/// address (None for calls from inside the broker).
#[derive(Debug, Clone)]
pub struct Caller {
    pub principal: Principal,
    /// The listener's name (`PLAINTEXT`, later `SASL_SSL`, `AMQP`, ...).
    pub listener: Arc<str>,
    pub client_address: Option<SocketAddr>,
}

impl Caller {
    /// An unauthenticated client on `listener`.
    pub fn anonymous(listener: impl Into<Arc<str>>, client_address: SocketAddr) -> Caller {
        Caller {
            principal: Principal::anonymous(),
            listener: listener.into(),
            client_address: Some(client_address),
        }
    }

    /// The broker itself (coordinators, tests, the CLI's embedded calls).
    pub fn internal() -> Caller {
        Caller {
            principal: Principal {
                kind: Arc::from("User"),
                name: Arc::from("strom-internal"),
            },
            listener: Arc::from("INTERNAL"),
            client_address: None,
        }
    }
}

/// Kafka's ACL operations.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Operation {
    Read,
    Write,
    Create,
    Delete,
    Alter,
    Describe,
    ClusterAction,
    DescribeConfigs,
    AlterConfigs,
    IdempotentWrite,
}

/// What an operation is on, as Kafka's ACL resources name it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Resource<'a> {
    Topic(&'a str),
    Group(&'a str),
    Cluster,
    TransactionalId(&'a str),
}

/// Decides whether a caller may do an operation on a resource.
pub trait Authorizer: Send + Sync {
    fn authorize(&self, caller: &Caller, operation: Operation, resource: Resource<'_>) -> bool;
}

/// No ACLs: everything is allowed (Kafka without an authorizer configured).
#[derive(Debug, Default)]
pub struct AllowAll;

impl Authorizer for AllowAll {
    fn authorize(&self, _: &Caller, _: Operation, _: Resource<'_>) -> bool {
        true
    }
}

/// The error Kafka answers when `operation` on `resource` is refused.
pub(crate) fn refused(resource: Resource<'_>) -> BrokerError {
    match resource {
        Resource::Topic(_) => BrokerError::TopicAuthorizationFailed,
        Resource::Group(_) => BrokerError::GroupAuthorizationFailed,
        Resource::Cluster => BrokerError::ClusterAuthorizationFailed,
        Resource::TransactionalId(_) => BrokerError::TransactionalIdAuthorizationFailed,
    }
}

/// Asks `authorizer`, logging refusals once per call.
pub(crate) fn check(
    authorizer: &dyn Authorizer,
    caller: &Caller,
    operation: Operation,
    resource: Resource<'_>,
) -> Result<()> {
    if authorizer.authorize(caller, operation, resource) {
        return Ok(());
    }
    tracing::info!(principal = %caller.principal, ?operation, ?resource, "refused by the authorizer");
    Err(refused(resource))
}

#[cfg(test)]
mod tests {
    use super::*;

    struct DenyTopic;
    impl Authorizer for DenyTopic {
        fn authorize(&self, _: &Caller, _: Operation, resource: Resource<'_>) -> bool {
            !matches!(resource, Resource::Topic("secret"))
        }
    }

    #[test]
    fn refusals_name_the_resource_type() {
        let caller = Caller::anonymous("PLAINTEXT", "127.0.0.1:1".parse().unwrap());
        assert_eq!(caller.principal.to_string(), "User:ANONYMOUS");
        assert!(check(&AllowAll, &caller, Operation::Write, Resource::Topic("secret")).is_ok());
        assert!(check(&DenyTopic, &caller, Operation::Read, Resource::Topic("public")).is_ok());
        assert!(matches!(
            check(&DenyTopic, &caller, Operation::Read, Resource::Topic("secret")),
            Err(BrokerError::TopicAuthorizationFailed)
        ));
    }
}

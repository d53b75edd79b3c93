//! The registry's errors with Confluent's HTTP status and `error_code` (its
//! `Errors.java`), so clients that switch on the codes behave as with Confluent's.

/// A request the registry refuses or could not carry out.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RegistryError {
    #[error("Subject '{0}' not found.")]
    SubjectNotFound(String),
    #[error("Version {0} not found.")]
    VersionNotFound(i32),
    #[error("Schema {0} not found")]
    SchemaNotFound(String),
    #[error("Subject '{0}' was soft deleted. Set permanent=true to delete permanently")]
    SubjectSoftDeleted(String),
    #[error("Subject '{0}' was not deleted first before being permanently deleted")]
    SubjectNotSoftDeleted(String),
    #[error("Version {0} was soft deleted. Set permanent=true to delete permanently")]
    VersionSoftDeleted(i32),
    #[error("Version {0} was not deleted first before being permanently deleted")]
    VersionNotSoftDeleted(i32),
    #[error("Subject '{0}' does not have subject-level compatibility configured")]
    CompatibilityNotConfigured(String),
    #[error("Subject '{0}' does not have subject-level mode configured")]
    ModeNotConfigured(String),
    /// A schema incompatible with earlier versions: the reasons.
    #[error("Schema being registered is incompatible with an earlier schema for subject \"{subject}\", details: [{}]", .messages.join(", "))]
    Incompatible { subject: String, messages: Vec<String> },
    #[error("{0}")]
    InvalidSchema(String),
    #[error("The specified version '{0}' is not a valid version id. Allowed values are between [1, 2^31-1] and the string \"latest\"")]
    InvalidVersion(String),
    #[error("Invalid compatibility level. Valid values are none, backward, forward, full, backward_transitive, forward_transitive, and full_transitive")]
    InvalidCompatibilityLevel,
    #[error("Invalid mode. Valid values are READWRITE, READONLY, READONLY_OVERRIDE and IMPORT")]
    InvalidMode,
    #[error("{0}")]
    OperationNotPermitted(String),
    #[error("One or more references exist to the schema {{subject={subject},version={version}}}")]
    ReferenceExists { subject: String, version: i32 },
    #[error("{0}")]
    IdMismatch(String),
    #[error("The specified subject '{0}' is not valid")]
    InvalidSubject(String),
    #[error("Schema of {size} bytes is larger than the limit of {max} bytes")]
    SchemaTooLarge { size: usize, max: usize },
    #[error("Error in the backend data store: {0}")]
    Store(String),
    #[error("Operation timed out: {0}")]
    Timeout(String),
}

impl RegistryError {
    /// Confluent's `error_code` in the JSON body.
    pub fn code(&self) -> u32 {
        match self {
            RegistryError::SubjectNotFound(_) => 40401,
            RegistryError::VersionNotFound(_) => 40402,
            RegistryError::SchemaNotFound(_) => 40403,
            RegistryError::SubjectSoftDeleted(_) => 40404,
            RegistryError::SubjectNotSoftDeleted(_) => 40405,
            RegistryError::VersionSoftDeleted(_) => 40406,
            RegistryError::VersionNotSoftDeleted(_) => 40407,
            RegistryError::CompatibilityNotConfigured(_) => 40408,
            RegistryError::ModeNotConfigured(_) => 40409,
            RegistryError::Incompatible { .. } => 409,
            RegistryError::InvalidSchema(_) => 42201,
            RegistryError::InvalidVersion(_) => 42202,
            RegistryError::InvalidCompatibilityLevel => 42203,
            RegistryError::InvalidMode => 42204,
            RegistryError::OperationNotPermitted(_) => 42205,
            RegistryError::ReferenceExists { .. } => 42206,
            RegistryError::IdMismatch(_) => 42207,
            RegistryError::InvalidSubject(_) => 42208,
            RegistryError::SchemaTooLarge { .. } => 42209,
            RegistryError::Store(_) => 50001,
            RegistryError::Timeout(_) => 50002,
        }
    }

    /// The HTTP status: the code's first three digits (409 is its own).
    pub fn status(&self) -> u16 {
        match self.code() {
            409 => 409,
            code => (code / 100) as u16,
        }
    }
}

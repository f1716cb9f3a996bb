//! The one error type of amishare, with a kind to branch on.
//!
//! Backends keep the service's own error code (`InvalidAMIID.NotFound`,
//! `AccessDeniedException`, …) so that callers and tests can be exact, and the
//! message always names the input that failed.

use std::fmt;

/// `Result` with amishare's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// What went wrong, coarsely: the thing to branch on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ErrorKind {
    /// The resource does not exist, or is not visible to the caller.
    NotFound,
    /// A policy denied the call (IAM, key policy, ownership).
    AccessDenied,
    /// The KMS key is disabled, pending deletion or otherwise unusable.
    InvalidKeyState,
    /// The request itself is wrong: a malformed ID, a bad parameter combination, an unsupported value.
    InvalidInput,
    /// The request conflicts with existing state (already exists, in use).
    Conflict,
    /// The service throttled the call; it may be retried after a pause.
    Throttled,
    /// The service or amishare does not support the operation (e.g. sharing an image encrypted with `aws/ebs`).
    Unsupported,
    /// An asynchronous operation ended badly: an image went `failed`, an instance terminated at launch.
    Failed,
    /// A wait ran past its deadline.
    Timeout,
    /// Any other service-side failure.
    Service,
}

impl ErrorKind {
    /// Whether an error of this kind is worth retrying as it is.
    pub fn is_retryable(self) -> bool {
        matches!(self, ErrorKind::Throttled)
    }
}

impl fmt::Display for ErrorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let text = match self {
            ErrorKind::NotFound => "not found",
            ErrorKind::AccessDenied => "access denied",
            ErrorKind::InvalidKeyState => "invalid key state",
            ErrorKind::InvalidInput => "invalid input",
            ErrorKind::Conflict => "conflict",
            ErrorKind::Throttled => "throttled",
            ErrorKind::Unsupported => "unsupported",
            ErrorKind::Failed => "failed",
            ErrorKind::Timeout => "timed out",
            ErrorKind::Service => "service error",
        };
        f.write_str(text)
    }
}

/// An amishare error: a kind, the service's error code if any, a message that
/// names the offending input, and the underlying cause.
pub struct Error {
    kind: ErrorKind,
    code: Option<String>,
    message: String,
    retryable: bool,
    after_changes: bool,
    source: Option<Box<dyn std::error::Error + Send + Sync + 'static>>,
}

impl Error {
    /// A new error of `kind` with a message.
    pub fn new(kind: ErrorKind, message: impl Into<String>) -> Error {
        Error {
            kind,
            code: None,
            message: message.into(),
            retryable: kind.is_retryable(),
            after_changes: false,
            source: None,
        }
    }

    /// An error carrying a service error code such as `InvalidAMIID.NotFound`.
    pub fn service(kind: ErrorKind, code: impl Into<String>, message: impl Into<String>) -> Error {
        Error::new(kind, message).with_code(code)
    }

    /// Bad input: `what` names the kind of input, `value` the input itself.
    pub fn invalid_input(what: &str, value: &str, why: &str) -> Error {
        Error::new(
            ErrorKind::InvalidInput,
            format!("invalid {what} {value:?}: {why}"),
        )
    }

    /// Sets the service error code.
    pub fn with_code(mut self, code: impl Into<String>) -> Error {
        self.code = Some(code.into());
        self
    }

    /// Marks the error retryable or not, overriding the kind's default.
    pub fn with_retryable(mut self, retryable: bool) -> Error {
        self.retryable = retryable;
        self
    }

    /// Marks the error as coming after the operation had made (or may have
    /// made) a change: whatever its kind, it is then no longer "bad input,
    /// nothing changed".
    pub fn after_changes(mut self) -> Error {
        self.after_changes = true;
        self
    }

    /// Whether the operation that failed had already made, or may have
    /// made, a change (a write was sent) before it failed.
    pub fn changed_something(&self) -> bool {
        self.after_changes
    }

    /// Attaches the underlying cause.
    pub fn with_source(
        mut self,
        source: impl Into<Box<dyn std::error::Error + Send + Sync + 'static>>,
    ) -> Error {
        self.source = Some(source.into());
        self
    }

    /// Prefixes the message with context, keeping kind, code and source.
    pub fn context(mut self, context: impl fmt::Display) -> Error {
        self.message = format!("{context}: {}", self.message);
        self
    }

    /// The kind of error.
    pub fn kind(&self) -> ErrorKind {
        self.kind
    }

    /// The service's error code, when the error came from a service.
    pub fn code(&self) -> Option<&str> {
        self.code.as_deref()
    }

    /// The message, without the code.
    pub fn message(&self) -> &str {
        &self.message
    }

    /// Whether retrying the same call may succeed.
    pub fn is_retryable(&self) -> bool {
        self.retryable
    }
}

impl fmt::Debug for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Error")
            .field("kind", &self.kind)
            .field("code", &self.code)
            .field("message", &self.message)
            .field("retryable", &self.retryable)
            .field("after_changes", &self.after_changes)
            .field("source", &self.source)
            .finish()
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.code {
            Some(code) => write!(f, "{code}: {}", self.message),
            None => f.write_str(&self.message),
        }
    }
}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        self.source
            .as_deref()
            .map(|s| s as &(dyn std::error::Error + 'static))
    }
}

impl From<amishare_policy::ParseError> for Error {
    fn from(err: amishare_policy::ParseError) -> Error {
        Error::new(ErrorKind::InvalidInput, format!("invalid policy: {err}")).with_source(err)
    }
}

//! The one error type of amishare, with a kind to branch on.
//!
//! Backends keep the service's own error code (`InvalidAMIID.NotFound`,
//! `AccessDeniedException`, …) so that callers and tests can be exact, and the
//! message always names the input that failed. What a caller may want to act
//! on beyond the kind and the code is a field: a launch or a copy that failed
//! after its call returned ([`Error::failure`]), and a call the retry layer
//! gave up on ([`Error::retries_exhausted`]).

use std::collections::BTreeMap;
use std::fmt;
use std::time::Duration;

use crate::id::{ImageId, InstanceId, Region, SnapshotId};
use crate::model::{ImageState, InstanceState, StateReason};
use crate::scaling::{ActivityStatus, LaunchFailure as ActivityFailure, ServiceLinkedRole};

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
    /// An asynchronous operation ended badly: an image went `failed`. A
    /// launch and a copy have kinds of their own.
    Failed,
    /// An instance went `shutting-down` or `terminated` at launch (EC2
    /// accepted `RunInstances`; KMS may have refused EC2 later), or an Auto
    /// Scaling group's launch activity failed: see [`Error::failure`] for
    /// the instance and EC2's state reason, or the group and its activity.
    LaunchFailed,
    /// An image copy went `failed` after `CopyImage` returned its ID: see
    /// [`Error::failure`] for the copy, its snapshots and EC2's state reason.
    CopyFailed,
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
            ErrorKind::LaunchFailed => "launch failed",
            ErrorKind::CopyFailed => "copy failed",
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
    failure: Option<Box<Failure>>,
    exhausted: Option<Box<Exhausted>>,
    source: Option<Box<dyn std::error::Error + Send + Sync + 'static>>,
}

/// What a launch or a copy that failed after its call returned left to see:
/// the fields of an [`ErrorKind::LaunchFailed`] or [`ErrorKind::CopyFailed`]
/// error, to match on instead of its message.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Failure {
    /// An instance that did not reach `running`.
    Launch(FailedLaunch),
    /// An Auto Scaling group whose launch activity failed.
    GroupLaunch(FailedGroupLaunch),
    /// An image copy that went `failed`.
    Copy(FailedCopy),
}

/// An instance that went `shutting-down` or `terminated` at launch.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct FailedLaunch {
    /// The region of the launch.
    pub region: Region,
    /// The image launched.
    pub image: ImageId,
    /// The instance `RunInstances` returned.
    pub instance: InstanceId,
    /// The state it was seen in.
    pub state: InstanceState,
    /// EC2's `StateReason`, code and message as EC2 gives them (for a KMS
    /// refusal `Client.InternalError`, `Client.InternalError: Client error on
    /// launch`), when EC2 gave one.
    pub reason: Option<StateReason>,
    /// The likely cause, when the backend can tell (the simulation names the
    /// KMS refusal behind it; EC2 does not say).
    pub cause: Option<String>,
}

/// An Auto Scaling group's launch that failed: the activity as Auto
/// Scaling reports it (`docs/spec/production.md` §C1.6).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct FailedGroupLaunch {
    /// The region of the group.
    pub region: Region,
    /// The image launched.
    pub image: ImageId,
    /// The group's name.
    pub group: String,
    /// The service-linked role the group launched as.
    pub role: ServiceLinkedRole,
    /// The failed (or cancelled) activity's ID.
    pub activity: String,
    /// Its status.
    pub status: ActivityStatus,
    /// Its status message, as Auto Scaling gives it.
    pub status_message: Option<String>,
    /// The instance it launched, when it got that far.
    pub instance: Option<InstanceId>,
    /// The cause in KMS's terms, as far as the status message tells it.
    pub cause: Option<ActivityFailure>,
}

/// An image copy that went `failed`.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct FailedCopy {
    /// The region of the copy.
    pub region: Region,
    /// The copy's image ID, as `CopyImage` returned it.
    pub image: ImageId,
    /// The image copied.
    pub source: ImageId,
    /// The state it was seen in (`failed`, or `deregistered`).
    pub state: ImageState,
    /// EC2's `StateReason`, as EC2 gives it, when it gave one.
    pub reason: Option<StateReason>,
    /// The copy's snapshots.
    pub snapshots: Vec<SnapshotId>,
    /// The state message of each of those snapshots that gives one (EC2's
    /// `StateMessage`, such as `Given key ID is not accessible`).
    pub snapshot_messages: BTreeMap<SnapshotId, String>,
    /// The likely cause, when the backend can tell (the simulation names the
    /// KMS refusal behind it).
    pub cause: Option<String>,
}

/// A call the retry layer ([`crate::retry::Retrying`]) repeated until its
/// budget (attempts or deadline) was spent: the fields of the error it
/// returns, which keeps the last attempt's kind and code.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Exhausted {
    /// The API operation, such as `DescribeImages`.
    pub operation: &'static str,
    /// What the call named (an image, a key, snapshots), when it named something.
    pub resource: Option<String>,
    /// The region the call went to, for a regional call.
    pub region: Option<Region>,
    /// How many times the call was sent.
    pub attempts: u32,
    /// How long it went on, from the first attempt to the last failure, on
    /// the flow's clock.
    pub elapsed: Duration,
}

impl fmt::Display for Exhausted {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.operation)?;
        if let Some(resource) = &self.resource {
            write!(f, " {resource}")?;
        }
        if let Some(region) = &self.region {
            write!(f, " in {region}")?;
        }
        Ok(())
    }
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
            failure: None,
            exhausted: None,
            source: None,
        }
    }

    /// An instance that went `shutting-down` or `terminated` at launch:
    /// [`ErrorKind::LaunchFailed`], with EC2's state reason code as its code.
    pub(crate) fn launch_failed(failure: FailedLaunch) -> Error {
        let mut message = format!(
            "instance {} from image {} in {} went {} at launch",
            failure.instance, failure.image, failure.region, failure.state
        );
        push_reason(&mut message, failure.reason.as_ref());
        push_cause(&mut message, failure.cause.as_deref());
        let code = failure.reason.as_ref().map(|r| r.code.clone());
        Error::failed(
            ErrorKind::LaunchFailed,
            message,
            code,
            Failure::Launch(failure),
        )
    }

    /// An Auto Scaling group's launch activity that failed:
    /// [`ErrorKind::LaunchFailed`], its code the EC2 reason the status
    /// message carries (`Client.InternalError`,
    /// `Client.InvalidKMSKey.InvalidState`), else `ScalingActivityFailed`.
    pub(crate) fn group_launch_failed(failure: FailedGroupLaunch) -> Error {
        let mut message = format!(
            "Auto Scaling group {} in {} could not launch {} as {}: activity {} {}: {}",
            failure.group,
            failure.region,
            failure.image,
            failure.role,
            failure.activity,
            failure.status,
            failure.status_message.as_deref().unwrap_or("no message")
        );
        if let Some(cause) = failure.cause {
            message.push_str(&format!(" ({cause})"));
        }
        let code = match failure.cause {
            Some(ActivityFailure::KeyState) => "Client.InvalidKMSKey.InvalidState",
            Some(ActivityFailure::KeyAccess) => "Client.InternalError",
            _ => "ScalingActivityFailed",
        };
        Error::failed(
            ErrorKind::LaunchFailed,
            message,
            Some(code.to_owned()),
            Failure::GroupLaunch(failure),
        )
    }

    /// An image copy that went `failed`: [`ErrorKind::CopyFailed`], with
    /// EC2's state reason code as its code.
    pub(crate) fn copy_failed(failure: FailedCopy) -> Error {
        let mut message = format!(
            "copy {} of image {} in {} is {}",
            failure.image, failure.source, failure.region, failure.state
        );
        push_reason(&mut message, failure.reason.as_ref());
        for (snapshot, text) in &failure.snapshot_messages {
            message.push_str(&format!("; snapshot {snapshot}: {text}"));
        }
        push_cause(&mut message, failure.cause.as_deref());
        let code = failure.reason.as_ref().map(|r| r.code.clone());
        Error::failed(ErrorKind::CopyFailed, message, code, Failure::Copy(failure))
    }

    /// A failure of `kind` with its fields, its code EC2's state reason code.
    fn failed(kind: ErrorKind, message: String, code: Option<String>, failure: Failure) -> Error {
        let mut err = Error::new(kind, message);
        err.code = code;
        err.failure = Some(Box::new(failure));
        err
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

    /// Records that the retry layer gave up on the call after `exhausted`'s
    /// attempts. The message then names the operation and its resource
    /// (unless it already begins with the operation, as the AWS backend's
    /// do) and says how many attempts were made.
    pub(crate) fn with_exhausted(mut self, exhausted: Exhausted) -> Error {
        if !self.message.starts_with(exhausted.operation) {
            self.message = format!("{exhausted}: {}", self.message);
        }
        self.message.push_str(&format!(
            " (gave up after {} attempt{} in {} s)",
            exhausted.attempts,
            if exhausted.attempts == 1 { "" } else { "s" },
            exhausted.elapsed.as_secs()
        ));
        self.exhausted = Some(Box::new(exhausted));
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

    /// The launch or copy that failed, for [`ErrorKind::LaunchFailed`] and
    /// [`ErrorKind::CopyFailed`].
    pub fn failure(&self) -> Option<&Failure> {
        self.failure.as_deref()
    }

    /// The launch that failed, for [`ErrorKind::LaunchFailed`].
    pub fn failed_launch(&self) -> Option<&FailedLaunch> {
        match self.failure() {
            Some(Failure::Launch(launch)) => Some(launch),
            _ => None,
        }
    }

    /// The Auto Scaling group launch that failed, for [`ErrorKind::LaunchFailed`].
    pub fn failed_group_launch(&self) -> Option<&FailedGroupLaunch> {
        match self.failure() {
            Some(Failure::GroupLaunch(launch)) => Some(launch),
            _ => None,
        }
    }

    /// The copy that failed, for [`ErrorKind::CopyFailed`].
    pub fn failed_copy(&self) -> Option<&FailedCopy> {
        match self.failure() {
            Some(Failure::Copy(copy)) => Some(copy),
            _ => None,
        }
    }

    /// The call the retry layer gave up on, when it did: the operation, its
    /// resource and the attempts made.
    pub fn retries_exhausted(&self) -> Option<&Exhausted> {
        self.exhausted.as_deref()
    }
}

/// Appends EC2's reason: its message, without a leading copy of its code,
/// which the error's code already shows.
fn push_reason(message: &mut String, reason: Option<&StateReason>) {
    match reason {
        Some(reason) => {
            let text = reason
                .message
                .strip_prefix(&reason.code)
                .and_then(|rest| rest.strip_prefix(": "))
                .unwrap_or(&reason.message);
            message.push_str(": ");
            message.push_str(text);
        }
        None => message.push_str(": EC2 gave no reason"),
    }
}

/// Appends the likely cause, when the backend told it.
fn push_cause(message: &mut String, cause: Option<&str>) {
    if let Some(cause) = cause {
        message.push_str(&format!(" (likely cause: {cause})"));
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
            .field("failure", &self.failure)
            .field("exhausted", &self.exhausted)
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

//! AWS error codes as amishare error kinds, and SDK errors as amishare [`Error`]s.
//!
//! [`classify`] is the one table from an AWS error code (EC2's query-protocol
//! codes, KMS's and STS's exception names) to an [`ErrorKind`] and whether
//! the call may be retried as it is. [`from_sdk`] turns any SDK error into an
//! amishare [`Error`] that keeps the code, names the operation and its input,
//! and carries the SDK error as its source.

use std::fmt;

use amishare_core::{Error, ErrorKind};
use aws_sdk_kms::config::http::HttpResponse;
use aws_sdk_kms::error::{DisplayErrorContext, ProvideErrorMetadata, SdkError};

/// Classifies an AWS error code: the [`ErrorKind`] to branch on and whether
/// the same call may succeed if retried (throttling and transient service
/// failures). `None` for a code the catalogue does not know.
///
/// The codes and their kinds live in core's one catalogue
/// ([`amishare_core::catalogue`]): EC2's codes (`InvalidAMIID.NotFound`,
/// `UnauthorizedOperation`, `RequestLimitExceeded`, …), KMS's exceptions
/// (`NotFoundException`, `AccessDeniedException`, `DisabledException`, …),
/// Auto Scaling's, and the request-level codes every service shares
/// (`ExpiredToken`, `Throttling`, …).
pub fn classify(code: &str) -> Option<(ErrorKind, bool)> {
    amishare_core::catalogue::lookup(code).map(|row| (row.kind, row.retryable))
}

/// Refines a classification with the message where one code covers
/// different situations, so that callers branch the same way on AWS as on
/// the simulation:
///
/// * `InvalidRequest: You do not have permission to access the storage of this ami`
///   (a copy of an image whose snapshots are not shared) is access denied;
/// * `InvalidParameter: Snapshots encrypted with the AWS Managed CMK can't be shared`
///   (sharing an image encrypted with `aws/ebs`) is unsupported.
pub(crate) fn refine(
    code: &str,
    message: &str,
    classified: (ErrorKind, bool),
) -> (ErrorKind, bool) {
    match code {
        "InvalidRequest" if message.contains("permission to access the storage") => {
            (ErrorKind::AccessDenied, false)
        }
        "InvalidParameter" if message.contains("AWS Managed CMK") => {
            (ErrorKind::Unsupported, false)
        }
        // Auto Scaling names an unknown group with a validation error.
        "ValidationError" if message.contains("not found") => (ErrorKind::NotFound, false),
        _ => classified,
    }
}

/// The classification of an error without a known code, from its HTTP status.
fn from_status(status: Option<u16>) -> (ErrorKind, bool) {
    match status {
        Some(403) => (ErrorKind::AccessDenied, false),
        Some(404) => (ErrorKind::NotFound, false),
        Some(429) => (ErrorKind::Throttled, true),
        Some(500..=599) => (ErrorKind::Service, true),
        _ => (ErrorKind::Service, false),
    }
}

/// Turns an SDK error of `operation` on `subject` (the input the call was
/// about: an image ID, a key ARN, …) into an amishare [`Error`].
///
/// A service error keeps AWS's code and message; its kind comes from
/// [`classify`] (and, for a code the table does not know, the HTTP status).
/// A timeout is [`ErrorKind::Timeout`]; a request that never got an answer
/// (connection refused, DNS) or an answer that could not be read is
/// [`ErrorKind::Service`]. The SDK error is always kept as the source.
pub(crate) fn from_sdk<E>(
    operation: &str,
    subject: &dyn fmt::Display,
    err: SdkError<E, HttpResponse>,
) -> Error
where
    E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
{
    let prefix = if subject.to_string().is_empty() {
        operation.to_owned()
    } else {
        format!("{operation} {subject}")
    };
    let (kind, retryable, code, message) = match &err {
        SdkError::ServiceError(_) => {
            let status = err.raw_response().map(|r| r.status().as_u16());
            let code = err.code().map(str::to_owned);
            let message = err
                .message()
                .filter(|m| !m.is_empty())
                .unwrap_or("the service gave no message")
                .to_owned();
            let (kind, retryable) = match code.as_deref() {
                Some(code) => refine(
                    code,
                    &message,
                    classify(code).unwrap_or(from_status(status)),
                ),
                None => from_status(status),
            };
            (kind, retryable, code, message)
        }
        SdkError::TimeoutError(_) => (
            ErrorKind::Timeout,
            true,
            None,
            format!("the call timed out ({})", DisplayErrorContext(&err)),
        ),
        SdkError::DispatchFailure(failure) => (
            ErrorKind::Service,
            !failure.is_user(),
            None,
            format!(
                "the request could not be sent ({})",
                DisplayErrorContext(&err)
            ),
        ),
        SdkError::ResponseError(_) => (
            ErrorKind::Service,
            false,
            None,
            format!(
                "the response could not be read ({})",
                DisplayErrorContext(&err)
            ),
        ),
        _ => (
            ErrorKind::Service,
            false,
            None,
            format!("{}", DisplayErrorContext(&err)),
        ),
    };
    let mut error = Error::new(kind, format!("{prefix}: {message}")).with_retryable(retryable);
    if let Some(code) = code {
        error = error.with_code(code);
    }
    error.with_source(err)
}

/// A response that does not have the shape AWS documents: a missing field
/// or an identifier that does not parse.
pub(crate) fn unexpected(operation: &str, what: &str, detail: impl fmt::Display) -> Error {
    Error::new(
        ErrorKind::Service,
        format!("{operation}: unexpected response: {what} {detail}"),
    )
}

/// A required field missing from a response.
pub(crate) fn missing(operation: &str, field: &str) -> Error {
    unexpected(operation, field, "is missing")
}

/// Parses an identifier from a response, or says which field was wrong.
pub(crate) fn parse<T>(
    operation: &str,
    field: &str,
    value: Option<&str>,
    parse: impl FnOnce(&str) -> amishare_core::Result<T>,
) -> amishare_core::Result<T> {
    let value = value.ok_or_else(|| missing(operation, field))?;
    parse(value).map_err(|err| {
        unexpected(operation, field, format!("{value:?} ({})", err.message())).with_source(err)
    })
}

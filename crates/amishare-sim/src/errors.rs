//! AWS's errors, with their codes and messages, as amishare [`Error`]s.

use amishare_core::{AliasArn, Error, ErrorKind, ImageId, InstanceId, KeyArn, Region, SnapshotId};

use crate::knobs::{Knobs, PendingDeletionError};

// ---------------------------------------------------------------- KMS

pub(crate) fn kms_access_denied(message: String) -> Error {
    Error::service(ErrorKind::AccessDenied, "AccessDeniedException", message)
}

pub(crate) fn key_not_found(arn: &KeyArn) -> Error {
    Error::service(
        ErrorKind::NotFound,
        "NotFoundException",
        format!("Key '{arn}' does not exist"),
    )
}

pub(crate) fn invalid_arn(region: &Region) -> Error {
    Error::service(
        ErrorKind::NotFound,
        "NotFoundException",
        format!("Invalid arn {region}"),
    )
}

pub(crate) fn alias_not_found(arn: &AliasArn) -> Error {
    Error::service(
        ErrorKind::NotFound,
        "NotFoundException",
        format!("Alias {arn} is not found."),
    )
}

pub(crate) fn alias_exists(arn: &AliasArn) -> Error {
    Error::service(
        ErrorKind::Conflict,
        "AlreadyExistsException",
        format!("An alias with the name {arn} already exists"),
    )
}

pub(crate) fn key_disabled(arn: &KeyArn) -> Error {
    Error::service(
        ErrorKind::InvalidKeyState,
        "DisabledException",
        format!("{arn} is disabled."),
    )
}

pub(crate) fn key_pending_deletion(arn: &KeyArn, knobs: &Knobs) -> Error {
    let code = match knobs.pending_deletion_error {
        PendingDeletionError::InvalidState => "KMSInvalidStateException",
        PendingDeletionError::Disabled => "DisabledException",
    };
    pending_deletion_with(arn, code)
}

pub(crate) fn pending_deletion_with(arn: &KeyArn, code: &str) -> Error {
    Error::service(
        ErrorKind::InvalidKeyState,
        code,
        format!("{arn} is pending deletion."),
    )
}

/// `CancelKeyDeletion` on a key that is not pending deletion (§A3).
pub(crate) fn not_pending_deletion(arn: &KeyArn) -> Error {
    Error::service(
        ErrorKind::InvalidKeyState,
        "KMSInvalidStateException",
        format!("{arn} is not pending deletion."),
    )
}

pub(crate) fn malformed_policy(message: impl Into<String>) -> Error {
    Error::service(
        ErrorKind::InvalidInput,
        "MalformedPolicyDocumentException",
        message,
    )
}

pub(crate) fn policy_too_large(bytes: usize) -> Error {
    Error::service(
        ErrorKind::InvalidInput,
        "LimitExceededException",
        format!(
            "The key policy is {bytes} bytes, over the limit of {} bytes.",
            amishare_policy::MAX_POLICY_BYTES
        ),
    )
}

pub(crate) fn validation(message: impl Into<String>) -> Error {
    Error::service(ErrorKind::InvalidInput, "ValidationException", message)
}

// ---------------------------------------------------------------- EC2

pub(crate) fn unauthorized(detail: &str) -> Error {
    Error::service(
        ErrorKind::AccessDenied,
        "UnauthorizedOperation",
        format!("You are not authorized to perform this operation. {detail}"),
    )
}

/// EC2's answer to an authorized call made with `DryRun`.
pub(crate) fn dry_run_operation() -> Error {
    Error::service(
        ErrorKind::Conflict,
        "DryRunOperation",
        "Request would have succeeded, but DryRun flag is set.",
    )
}

pub(crate) fn images_not_found(ids: &[&ImageId]) -> Error {
    let list = ids
        .iter()
        .map(|id| id.as_str())
        .collect::<Vec<_>>()
        .join(", ");
    let message = if ids.len() == 1 {
        format!("The image id '[{list}]' does not exist")
    } else {
        format!("The image ids '[{list}]' do not exist")
    };
    Error::service(ErrorKind::NotFound, "InvalidAMIID.NotFound", message)
}

pub(crate) fn image_not_found(id: &ImageId) -> Error {
    images_not_found(&[id])
}

pub(crate) fn snapshot_not_found(id: &SnapshotId) -> Error {
    Error::service(
        ErrorKind::NotFound,
        "InvalidSnapshot.NotFound",
        format!("The snapshot '{id}' does not exist."),
    )
}

pub(crate) fn instance_not_found(id: &InstanceId) -> Error {
    Error::service(
        ErrorKind::NotFound,
        "InvalidInstanceID.NotFound",
        format!("The instance ID '{id}' does not exist"),
    )
}

pub(crate) fn invalid_request(kind: ErrorKind, message: impl Into<String>) -> Error {
    Error::service(kind, "InvalidRequest", message)
}

pub(crate) fn invalid_parameter_value(message: impl Into<String>) -> Error {
    Error::service(ErrorKind::InvalidInput, "InvalidParameterValue", message)
}

//! AWS's errors, with their codes and messages, as amishare [`Error`]s;
//! each code's kind comes from core's error catalogue.

use amishare_core::{
    catalogue, AliasArn, Error, ErrorKind, ImageId, InstanceId, KeyArn, Region, SnapshotId,
};

use crate::knobs::{Knobs, PendingDeletionError};

// ---------------------------------------------------------------- KMS

/// A `Marker` KMS did not give (`docs/spec/kms.md` §A8).
pub(crate) fn invalid_marker(marker: &str) -> Error {
    catalogue::error(
        "InvalidMarkerException",
        format!("The marker {marker} does not start a page of this list."),
    )
}

pub(crate) fn kms_access_denied(message: String) -> Error {
    catalogue::error("AccessDeniedException", message)
}

pub(crate) fn key_not_found(arn: &KeyArn) -> Error {
    catalogue::error("NotFoundException", format!("Key '{arn}' does not exist"))
}

pub(crate) fn invalid_arn(region: &Region) -> Error {
    catalogue::error("NotFoundException", format!("Invalid arn {region}"))
}

pub(crate) fn alias_not_found(arn: &AliasArn) -> Error {
    catalogue::error("NotFoundException", format!("Alias {arn} is not found."))
}

pub(crate) fn alias_exists(arn: &AliasArn) -> Error {
    catalogue::error(
        "AlreadyExistsException",
        format!("An alias with the name {arn} already exists"),
    )
}

pub(crate) fn key_disabled(arn: &KeyArn) -> Error {
    catalogue::error("DisabledException", format!("{arn} is disabled."))
}

pub(crate) fn key_pending_deletion(arn: &KeyArn, knobs: &Knobs) -> Error {
    let code = match knobs.pending_deletion_error {
        PendingDeletionError::InvalidState => "KMSInvalidStateException",
        PendingDeletionError::Disabled => "DisabledException",
    };
    pending_deletion_with(arn, code)
}

pub(crate) fn pending_deletion_with(arn: &KeyArn, code: &str) -> Error {
    catalogue::error(code, format!("{arn} is pending deletion."))
}

/// `CancelKeyDeletion` on a key that is not pending deletion (§A3).
pub(crate) fn not_pending_deletion(arn: &KeyArn) -> Error {
    catalogue::error(
        "KMSInvalidStateException",
        format!("{arn} is not pending deletion."),
    )
}

pub(crate) fn malformed_policy(message: impl Into<String>) -> Error {
    catalogue::error("MalformedPolicyDocumentException", message)
}

pub(crate) fn policy_too_large(bytes: usize) -> Error {
    catalogue::error(
        "LimitExceededException",
        format!(
            "The key policy is {bytes} bytes, over the limit of {} bytes.",
            amishare_policy::MAX_POLICY_BYTES
        ),
    )
}

pub(crate) fn validation(message: impl Into<String>) -> Error {
    catalogue::error("ValidationException", message)
}

// ---------------------------------------------------------------- EC2

pub(crate) fn unauthorized(detail: &str) -> Error {
    catalogue::error(
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
    catalogue::error("InvalidAMIID.NotFound", message)
}

pub(crate) fn image_not_found(id: &ImageId) -> Error {
    images_not_found(&[id])
}

pub(crate) fn snapshot_not_found(id: &SnapshotId) -> Error {
    catalogue::error(
        "InvalidSnapshot.NotFound",
        format!("The snapshot '{id}' does not exist."),
    )
}

pub(crate) fn instance_not_found(id: &InstanceId) -> Error {
    catalogue::error(
        "InvalidInstanceID.NotFound",
        format!("The instance ID '{id}' does not exist"),
    )
}

pub(crate) fn invalid_request(kind: ErrorKind, message: impl Into<String>) -> Error {
    Error::service(kind, "InvalidRequest", message)
}

pub(crate) fn invalid_parameter_value(message: impl Into<String>) -> Error {
    catalogue::error("InvalidParameterValue", message)
}

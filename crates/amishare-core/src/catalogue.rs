//! The error catalogue: each AWS error code amishare knows, with the
//! [`ErrorKind`] it means, whether the same call may succeed when retried,
//! and the HTTP status the service answers it with (`docs/spec/ops.md` §E3).
//!
//! The AWS backend classifies the codes it receives with it, the simulation
//! makes its errors with it, and the server picks each answer's status from it.

use crate::error::{Error, ErrorKind};
use crate::ops::Service;

/// One AWS error code.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ErrorCode {
    /// The code, e.g. `InvalidAMIID.NotFound` or `NotFoundException`.
    pub code: &'static str,
    /// What it means to amishare.
    pub kind: ErrorKind,
    /// Whether the same call may succeed if retried (throttling and
    /// transient service failures).
    pub retryable: bool,
    /// The HTTP status it comes with.
    pub status: u16,
    /// The services that answer it with `status`; empty: every service.
    /// Any other service answers it with 400.
    pub services: &'static [Service],
}

const fn row(
    code: &'static str,
    kind: ErrorKind,
    retryable: bool,
    status: u16,
    services: &'static [Service],
) -> ErrorCode {
    ErrorCode {
        code,
        kind,
        retryable,
        status,
        services,
    }
}

use ErrorKind::{
    AccessDenied, Conflict, InvalidInput, InvalidKeyState, NotFound, Throttled, Unsupported,
};
use Service::{AutoScaling, Sts};

/// Every code, grouped by service: EC2 (query protocol), KMS (exception
/// names), EC2 launch templates, EC2 Auto Scaling (`docs/spec/production.md`
/// §C1.7), then the request-level codes every service may answer.
///
/// Kinds follow what a code says, not how it is spelled:
/// `InvalidAMIID.Unavailable` (the image exists but cannot be used now) and
/// `ResourceLimitExceeded` (a quota, not a rate) are conflicts,
/// `OperationNotPermitted` is unsupported, KMS's `LimitExceededException` (a
/// key-policy size or grant quota) is invalid input, `InvalidGrantIdException`
/// (revoking an unknown grant) is not found. `DryRunOperation` means the
/// request would have succeeded; outside a dry run it is a service error.
pub const CATALOGUE: &[ErrorCode] = &[
    row("InvalidAMIID.NotFound", NotFound, false, 400, &[]),
    row("InvalidSnapshot.NotFound", NotFound, false, 400, &[]),
    row("InvalidInstanceID.NotFound", NotFound, false, 400, &[]),
    row("InvalidVolume.NotFound", NotFound, false, 400, &[]),
    row("InvalidSubnetID.NotFound", NotFound, false, 400, &[]),
    row("InvalidAMIID.Malformed", InvalidInput, false, 400, &[]),
    row("InvalidSnapshotID.Malformed", InvalidInput, false, 400, &[]),
    row("InvalidInstanceID.Malformed", InvalidInput, false, 400, &[]),
    row("InvalidVolumeID.Malformed", InvalidInput, false, 400, &[]),
    row("InvalidAMIName.Malformed", InvalidInput, false, 400, &[]),
    row("InvalidAMIID.Unavailable", Conflict, false, 400, &[]),
    row("InvalidSnapshot.InUse", Conflict, false, 400, &[]),
    row("InvalidAMIName.Duplicate", Conflict, false, 400, &[]),
    row("IncorrectState", Conflict, false, 400, &[]),
    row("IncorrectInstanceState", Conflict, false, 400, &[]),
    row("IdempotentParameterMismatch", Conflict, false, 400, &[]),
    row("ResourceLimitExceeded", Conflict, false, 400, &[]),
    row("InstanceLimitExceeded", Conflict, false, 400, &[]),
    row("UnauthorizedOperation", AccessDenied, false, 403, &[]),
    row("AuthFailure", AccessDenied, false, 400, &[]),
    row("OptInRequired", AccessDenied, false, 400, &[]),
    row("InvalidParameter", InvalidInput, false, 400, &[]),
    row("InvalidParameterValue", InvalidInput, false, 400, &[]),
    row("InvalidParameterDependency", InvalidInput, false, 400, &[]),
    row("InvalidParameterCombination", InvalidInput, false, 400, &[]),
    row("MissingParameter", InvalidInput, false, 400, &[]),
    row("UnknownParameter", InvalidInput, false, 400, &[]),
    row("InvalidRequest", InvalidInput, false, 400, &[]),
    row(
        "InvalidAMIAttributeItemValue",
        InvalidInput,
        false,
        400,
        &[],
    ),
    row("UnsupportedOperation", Unsupported, false, 400, &[]),
    row("OperationNotPermitted", Unsupported, false, 400, &[]),
    row("RequestLimitExceeded", Throttled, true, 503, &[]),
    row("EC2ThrottledException", Throttled, true, 400, &[]),
    row("InternalError", ErrorKind::Service, true, 500, &[]),
    row("InternalFailure", ErrorKind::Service, true, 500, &[]),
    row("ServiceUnavailable", ErrorKind::Service, true, 503, &[]),
    row("Unavailable", ErrorKind::Service, true, 503, &[]),
    row(
        "InsufficientInstanceCapacity",
        ErrorKind::Service,
        true,
        400,
        &[],
    ),
    row("DryRunOperation", ErrorKind::Service, false, 412, &[]),
    row("NotFoundException", NotFound, false, 400, &[]),
    row("AccessDeniedException", AccessDenied, false, 400, &[]),
    row("NotAuthorizedException", AccessDenied, false, 400, &[]),
    row("DisabledException", InvalidKeyState, false, 400, &[]),
    row("KMSInvalidStateException", InvalidKeyState, false, 400, &[]),
    row(
        "MalformedPolicyDocumentException",
        InvalidInput,
        false,
        400,
        &[],
    ),
    row("LimitExceededException", InvalidInput, false, 400, &[]),
    row("InvalidArnException", InvalidInput, false, 400, &[]),
    row("InvalidAliasNameException", InvalidInput, false, 400, &[]),
    row("InvalidGrantTokenException", InvalidInput, false, 400, &[]),
    row("InvalidKeyUsageException", InvalidInput, false, 400, &[]),
    row("IncorrectKeyException", InvalidInput, false, 400, &[]),
    row("TagException", InvalidInput, false, 400, &[]),
    row("ValidationException", InvalidInput, false, 400, &[]),
    row("InvalidGrantIdException", NotFound, false, 400, &[]),
    row("InvalidMarkerException", InvalidInput, false, 400, &[]),
    row("AlreadyExistsException", Conflict, false, 400, &[]),
    row(
        "UnsupportedOperationException",
        Unsupported,
        false,
        400,
        &[],
    ),
    row("ThrottlingException", Throttled, true, 400, &[]),
    row("KMSInternalException", ErrorKind::Service, true, 500, &[]),
    row(
        "DependencyTimeoutException",
        ErrorKind::Service,
        true,
        503,
        &[],
    ),
    row(
        "KeyUnavailableException",
        ErrorKind::Service,
        true,
        400,
        &[],
    ),
    row(
        "DryRunOperationException",
        ErrorKind::Service,
        false,
        400,
        &[],
    ),
    row(
        "InvalidLaunchTemplateName.NotFoundException",
        NotFound,
        false,
        400,
        &[],
    ),
    row(
        "InvalidLaunchTemplateId.NotFound",
        NotFound,
        false,
        400,
        &[],
    ),
    row(
        "InvalidLaunchTemplateName.AlreadyExistsException",
        Conflict,
        false,
        400,
        &[],
    ),
    row(
        "InvalidLaunchTemplateName.MalformedException",
        InvalidInput,
        false,
        400,
        &[],
    ),
    row(
        "InvalidLaunchTemplateId.Malformed",
        InvalidInput,
        false,
        400,
        &[],
    ),
    row("AlreadyExists", Conflict, false, 400, &[]),
    row("ResourceInUse", Conflict, false, 400, &[]),
    row("ScalingActivityInProgress", Conflict, false, 400, &[]),
    row("LimitExceeded", Conflict, false, 400, &[]),
    row("ValidationError", InvalidInput, false, 400, &[]),
    row("ResourceContention", ErrorKind::Service, true, 500, &[]),
    row(
        "ServiceLinkedRoleFailure",
        ErrorKind::Service,
        true,
        500,
        &[],
    ),
    row("InvalidNextToken", InvalidInput, false, 400, &[]),
    row(
        "AccessDenied",
        AccessDenied,
        false,
        403,
        &[Sts, AutoScaling],
    ),
    row(
        "InvalidClientTokenId",
        AccessDenied,
        false,
        403,
        &[Sts, AutoScaling],
    ),
    row("SignatureDoesNotMatch", AccessDenied, false, 403, &[Sts]),
    row(
        "MissingAuthenticationToken",
        AccessDenied,
        false,
        403,
        &[Sts],
    ),
    row("ExpiredToken", AccessDenied, false, 400, &[]),
    row("ExpiredTokenException", AccessDenied, false, 400, &[]),
    row("UnrecognizedClientException", AccessDenied, false, 400, &[]),
    row("IncompleteSignature", AccessDenied, false, 400, &[]),
    row("RegionDisabledException", AccessDenied, false, 400, &[]),
    row("Throttling", Throttled, true, 400, &[]),
    row("ThrottledException", Throttled, true, 400, &[]),
    row("RequestThrottled", Throttled, true, 400, &[]),
    row("RequestThrottledException", Throttled, true, 400, &[]),
    row("TooManyRequestsException", Throttled, true, 400, &[]),
    row("PriorRequestNotComplete", Throttled, true, 400, &[]),
    row("SlowDown", Throttled, true, 400, &[]),
];

/// The catalogue's row for `code` (exact, case-sensitive), if it has one.
pub fn lookup(code: &str) -> Option<&'static ErrorCode> {
    CATALOGUE.iter().find(|row| row.code == code)
}

/// The HTTP status `service` answers `code` with: the catalogue's, or 400.
pub fn status(service: Service, code: &str) -> u16 {
    lookup(code)
        .filter(|row| row.services.is_empty() || row.services.contains(&service))
        .map_or(400, |row| row.status)
}

/// An error with `code` and `message`, of the kind and retryability the
/// catalogue gives the code (a code it lacks: a service error, not retryable).
pub fn error(code: &str, message: impl Into<String>) -> Error {
    let (kind, retryable) =
        lookup(code).map_or((ErrorKind::Service, false), |row| (row.kind, row.retryable));
    Error::service(kind, code, message).with_retryable(retryable)
}

/// The code with which `service` throttles a call.
pub fn throttle_code(service: Service) -> &'static str {
    match service {
        Service::Ec2 => "RequestLimitExceeded",
        Service::Kms => "ThrottlingException",
        Service::Sts | Service::AutoScaling => "Throttling",
    }
}

/// The code of `service`'s internal error (a 5xx).
pub fn internal_code(service: Service) -> &'static str {
    match service {
        Service::Ec2 => "InternalError",
        Service::Kms => "KMSInternalException",
        Service::Sts | Service::AutoScaling => "InternalFailure",
    }
}

/// The code with which `service` refuses a bad parameter.
pub fn invalid_input_code(service: Service) -> &'static str {
    match service {
        Service::Ec2 => "InvalidParameterValue",
        Service::Kms => "ValidationException",
        Service::Sts | Service::AutoScaling => "ValidationError",
    }
}

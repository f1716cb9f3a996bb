//! The operation table and the error catalogue, row by row.

use amishare_core::catalogue::{self, CATALOGUE};
use amishare_core::ops::{Operation, Repeat, Service, StoreTrait};
use amishare_core::ErrorKind;

/// Operation, action, mutating, safe to repeat without and with a client
/// token or grant name (`docs/spec/ops.md` §E1, §E2).
const OPERATIONS: &[(Operation, &str, bool, bool, bool)] = &[
    (
        Operation::GetCallerIdentity,
        "sts:GetCallerIdentity",
        false,
        true,
        true,
    ),
    (Operation::CreateKey, "kms:CreateKey", true, false, false),
    (Operation::DescribeKey, "kms:DescribeKey", false, true, true),
    (Operation::CreateAlias, "kms:CreateAlias", true, true, true),
    (
        Operation::PutKeyPolicy,
        "kms:PutKeyPolicy",
        true,
        true,
        true,
    ),
    (Operation::CreateGrant, "kms:CreateGrant", true, false, true),
    (Operation::RevokeGrant, "kms:RevokeGrant", true, true, true),
    (
        Operation::ListRetirableGrants,
        "kms:ListRetirableGrants",
        false,
        true,
        true,
    ),
    (Operation::DisableKey, "kms:DisableKey", true, true, true),
    (
        Operation::ScheduleKeyDeletion,
        "kms:ScheduleKeyDeletion",
        true,
        true,
        true,
    ),
    (Operation::CreateImage, "ec2:CreateImage", true, true, true),
    (Operation::CopyImage, "ec2:CopyImage", true, false, true),
    (
        Operation::DescribeImages,
        "ec2:DescribeImages",
        false,
        true,
        true,
    ),
    (
        Operation::ModifyImageAttribute,
        "ec2:ModifyImageAttribute",
        true,
        true,
        true,
    ),
    (
        Operation::RunInstances,
        "ec2:RunInstances",
        true,
        false,
        true,
    ),
    (
        Operation::TerminateInstances,
        "ec2:TerminateInstances",
        true,
        true,
        true,
    ),
    (
        Operation::DeregisterImage,
        "ec2:DeregisterImage",
        true,
        true,
        true,
    ),
    (
        Operation::DeleteSnapshot,
        "ec2:DeleteSnapshot",
        true,
        false,
        false,
    ),
    (
        Operation::GetEbsEncryptionByDefault,
        "ec2:GetEbsEncryptionByDefault",
        false,
        true,
        true,
    ),
    (
        Operation::CreateLaunchTemplate,
        "ec2:CreateLaunchTemplate",
        true,
        false,
        true,
    ),
    (
        Operation::CreateAutoScalingGroup,
        "autoscaling:CreateAutoScalingGroup",
        true,
        false,
        false,
    ),
    (
        Operation::DeleteAutoScalingGroup,
        "autoscaling:DeleteAutoScalingGroup",
        true,
        true,
        true,
    ),
];

#[test]
fn operations_answer_as_the_spec_says() {
    for &(op, action, mutating, bare, keyed) in OPERATIONS {
        assert_eq!(op.action(), action, "{op:?}");
        assert_eq!(op.to_string(), action, "{op:?}");
        assert_eq!(op.is_mutating(), mutating, "{op:?}");
        assert_eq!(op.repeat().is_safe(false), bare, "{op:?} without a key");
        assert_eq!(op.repeat().is_safe(true), keyed, "{op:?} with a key");
    }
}

#[test]
fn every_row_is_consistent() {
    for &op in Operation::ALL {
        let prefix = op.service().prefix();
        assert!(
            op.action().starts_with(&format!("{prefix}:")),
            "{op:?} is not a {prefix} action"
        );
        assert_eq!(op.action(), format!("{prefix}:{}", op.name()));
        // Reads are the Describe, Get and List operations (§E1).
        let reads = ["Describe", "Get", "List"]
            .iter()
            .any(|verb| op.name().starts_with(verb));
        assert_eq!(op.repeat() == Repeat::Read, reads, "{op:?}");
    }
    let mut methods: Vec<_> = Operation::ALL.iter().filter_map(|op| op.method()).collect();
    let all = methods.len();
    methods.sort();
    methods.dedup();
    assert_eq!(methods.len(), all, "a store method has two rows");
    assert_eq!(Operation::of_store(StoreTrait::Keys).count(), 12);
    assert_eq!(Operation::of_store(StoreTrait::Images).count(), 14);
    assert_eq!(Operation::of_store(StoreTrait::Scaling).count(), 7);
}

/// Code, service, kind, retryable, status (`docs/spec/ops.md` §E3).
const CODES: &[(&str, Service, ErrorKind, bool, u16)] = &[
    (
        "InvalidAMIID.NotFound",
        Service::Ec2,
        ErrorKind::NotFound,
        false,
        400,
    ),
    (
        "UnauthorizedOperation",
        Service::Ec2,
        ErrorKind::AccessDenied,
        false,
        403,
    ),
    (
        "DryRunOperation",
        Service::Ec2,
        ErrorKind::Service,
        false,
        412,
    ),
    ("InternalError", Service::Ec2, ErrorKind::Service, true, 500),
    (
        "RequestLimitExceeded",
        Service::Ec2,
        ErrorKind::Throttled,
        true,
        503,
    ),
    (
        "IdempotentParameterMismatch",
        Service::Ec2,
        ErrorKind::Conflict,
        false,
        400,
    ),
    (
        "NotFoundException",
        Service::Kms,
        ErrorKind::NotFound,
        false,
        400,
    ),
    (
        "KMSInvalidStateException",
        Service::Kms,
        ErrorKind::InvalidKeyState,
        false,
        400,
    ),
    (
        "ThrottlingException",
        Service::Kms,
        ErrorKind::Throttled,
        true,
        400,
    ),
    (
        "KMSInternalException",
        Service::Kms,
        ErrorKind::Service,
        true,
        500,
    ),
    (
        "DependencyTimeoutException",
        Service::Kms,
        ErrorKind::Service,
        true,
        503,
    ),
    (
        "LimitExceededException",
        Service::Kms,
        ErrorKind::InvalidInput,
        false,
        400,
    ),
    (
        "InvalidClientTokenId",
        Service::Sts,
        ErrorKind::AccessDenied,
        false,
        403,
    ),
    (
        "SignatureDoesNotMatch",
        Service::Sts,
        ErrorKind::AccessDenied,
        false,
        403,
    ),
    (
        "SignatureDoesNotMatch",
        Service::Ec2,
        ErrorKind::AccessDenied,
        false,
        400,
    ),
    (
        "AccessDenied",
        Service::AutoScaling,
        ErrorKind::AccessDenied,
        false,
        403,
    ),
    (
        "InternalFailure",
        Service::AutoScaling,
        ErrorKind::Service,
        true,
        500,
    ),
    (
        "Throttling",
        Service::AutoScaling,
        ErrorKind::Throttled,
        true,
        400,
    ),
    (
        "AlreadyExists",
        Service::AutoScaling,
        ErrorKind::Conflict,
        false,
        400,
    ),
];

#[test]
fn codes_answer_as_the_spec_says() {
    for &(code, service, kind, retryable, status) in CODES {
        let row = catalogue::lookup(code).unwrap_or_else(|| panic!("{code} has no row"));
        assert_eq!((row.kind, row.retryable), (kind, retryable), "{code}");
        assert_eq!(
            catalogue::status(service, code),
            status,
            "{code} from {service:?}"
        );
        let err = catalogue::error(code, "message");
        assert_eq!(
            (err.kind(), err.code(), err.is_retryable()),
            (kind, Some(code), retryable),
            "{code}"
        );
    }
}

#[test]
fn the_catalogue_holds_together() {
    let mut codes: Vec<_> = CATALOGUE.iter().map(|row| row.code).collect();
    codes.sort_unstable();
    codes.dedup();
    assert_eq!(codes.len(), CATALOGUE.len(), "a code has two rows");
    for row in CATALOGUE {
        // Only throttling and transient failures are retryable, and every
        // 5xx is one of them.
        if row.retryable {
            assert!(
                matches!(row.kind, ErrorKind::Throttled | ErrorKind::Service),
                "{}",
                row.code
            );
        }
        if row.status >= 500 {
            assert!(row.retryable, "{}", row.code);
        }
        assert!(
            row.kind != ErrorKind::Throttled || row.retryable,
            "{}",
            row.code
        );
    }
    for service in [
        Service::Sts,
        Service::Kms,
        Service::Ec2,
        Service::AutoScaling,
    ] {
        let throttle = catalogue::lookup(catalogue::throttle_code(service)).unwrap();
        assert_eq!(throttle.kind, ErrorKind::Throttled, "{service:?}");
        let internal = catalogue::lookup(catalogue::internal_code(service)).unwrap();
        assert!(internal.retryable && internal.kind == ErrorKind::Service);
        assert_eq!(
            catalogue::status(service, internal.code),
            500,
            "{service:?}"
        );
        let invalid = catalogue::lookup(catalogue::invalid_input_code(service)).unwrap();
        assert_eq!(invalid.kind, ErrorKind::InvalidInput, "{service:?}");
    }
    let unknown = catalogue::error("NoSuchCode", "message");
    assert_eq!(
        (unknown.kind(), unknown.is_retryable()),
        (ErrorKind::Service, false)
    );
    assert_eq!(catalogue::status(Service::Kms, "NoSuchCode"), 400);
}

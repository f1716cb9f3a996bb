//! The simulation's tunable behaviour: timings, and every behaviour the AWS
//! documentation leaves open.
//!
//! Each field that models an unconfirmed AWS behaviour names the section of
//! the behavioural spec (`§A…` in `docs/spec/kms.md`, `§B…` in
//! `docs/spec/ec2.md`, `§C…` in `docs/spec/production.md`) that leaves it open, so that a test author who learns
//! the real answer can set it.

use std::time::Duration;

use amishare_core::scaling::ActivityStatus;
use amishare_core::store::StateReason;
use amishare_core::{Error, ErrorKind};

/// An error the simulation returns where AWS's exact code or text is not
/// known.
///
/// `{id}` in the message is replaced by the offending identifier.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ErrorSpec {
    /// The kind amishare branches on.
    pub kind: ErrorKind,
    /// The AWS error code.
    pub code: String,
    /// The message; `{id}` is replaced by the offending identifier.
    pub message: String,
}

impl ErrorSpec {
    /// An error of `kind` with this code and message template.
    pub fn new(kind: ErrorKind, code: &str, message: &str) -> ErrorSpec {
        ErrorSpec {
            kind,
            code: code.to_owned(),
            message: message.to_owned(),
        }
    }

    /// The error for this identifier.
    pub fn to_error(&self, id: &str) -> Error {
        Error::service(
            self.kind,
            self.code.as_str(),
            self.message.replace("{id}", id),
        )
    }
}

/// Which KMS exception a key pending deletion raises for cryptographic
/// operations and `CreateGrant` (§A3: the KMS documentation permits
/// both).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PendingDeletionError {
    /// `KMSInvalidStateException: <key ARN> is pending deletion.` (current AWS behaviour as far as known).
    InvalidState,
    /// `DisabledException: <key ARN> is pending deletion.`
    Disabled,
}

/// What `DescribeImages` / `DescribeSnapshots` do with an ID that does not
/// exist or that the caller cannot see.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UnknownIds {
    /// Fail the whole call with a `*.NotFound` error naming the IDs.
    Error,
    /// Leave the ID out of the result.
    Omit,
}

/// Timings and open AWS behaviours of a [`World`](crate::World).
///
/// `Knobs::default()` is the simulation's best understanding of AWS.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Knobs {
    /// How long `CreateImage` takes: the image and its snapshots are
    /// `pending` for this long, then `available` / `completed`.
    pub create_image_time: Duration,
    /// The fixed part of how long a successful `CopyImage` takes.
    pub copy_image_base_time: Duration,
    /// Added to [`copy_image_base_time`](Knobs::copy_image_base_time) per GiB
    /// of the image's volumes.
    pub copy_image_time_per_gib: Duration,
    /// How long a doomed `CopyImage` stays `pending` before it goes `failed`.
    pub copy_image_failure_time: Duration,
    /// How long a launched instance stays `pending` before it is `running`.
    pub instance_boot_time: Duration,
    /// When a doomed launch goes `shutting-down`, after `RunInstances`.
    pub failed_launch_shutting_down_after: Duration,
    /// When a doomed launch is `terminated`, after `RunInstances`.
    pub failed_launch_terminated_after: Duration,
    /// How long `TerminateInstances` leaves an instance `shutting-down`.
    pub terminate_time: Duration,
    /// How long a new grant takes to become effective (KMS grants are
    /// eventually consistent, up to about five minutes; §A2.2 step 5). Zero
    /// applies grants at once.
    pub grant_propagation_delay: Duration,

    /// The exception for a key pending deletion (§A3).
    pub pending_deletion_error: PendingDeletionError,
    /// The state reason of an instance terminated at launch because KMS
    /// refused EC2 on the launching principal's behalf (§B11: AWS's
    /// knowledge-center articles show code `Client.InternalError` with the
    /// message `Client.InternalError: Client error on launch`).
    pub launch_kms_failure: StateReason,
    /// The state reason of an instance terminated at launch because a key is
    /// disabled or pending deletion (§B11; AWS may report
    /// `Client.InvalidKMSKey.InvalidState`).
    pub launch_key_state_failure: StateReason,
    /// The state reason of a copied image that went `failed` because of KMS
    /// (§B3).
    pub copy_failure: StateReason,
    /// The state message of the snapshots of such a copy (§B3).
    pub copy_failure_snapshot_message: String,
    /// The error for `CopyImage` with `KmsKeyId` but without `Encrypted=true`
    /// (§B3, §B11).
    pub kms_key_without_encrypted: ErrorSpec,
    /// The error when a principal modifies, describes the permissions of,
    /// deregisters or deletes an image or snapshot that another account owns
    /// (§B5, §B6, §B9, §B10). `{id}` is `image:ami-…` or `snapshot:snap-…`.
    pub not_owner: ErrorSpec,
    /// The error for making an encrypted snapshot public with
    /// `ModifySnapshotAttribute` (§B7). `{id}` is the snapshot ID.
    pub public_encrypted_snapshot: ErrorSpec,
    /// What `DescribeImages` does with unknown or invisible image IDs
    /// (§B4: AWS now errors; older documentation said they are omitted).
    pub unknown_image_ids: UnknownIds,
    /// What `DescribeSnapshots` does with unknown or inaccessible snapshot
    /// IDs (§B8).
    pub unknown_snapshot_ids: UnknownIds,
    /// How many accounts, organizations and OUs an image may be shared with
    /// in a region (§B5, confirmed: 1,000).
    pub launch_permission_quota: usize,
    /// The error when a change would exceed the quota (§B5). `{id}`
    /// is the image ID.
    pub launch_permission_quota_exceeded: ErrorSpec,
    /// The error for `CreateAlias` in the reserved `alias/aws/` namespace
    /// (§A5 CreateAlias). `{id}` is the alias name.
    pub reserved_alias: ErrorSpec,
    /// The error for `RevokeGrant` of an unknown grant (§A5 RevokeGrant:
    /// `InvalidGrantIdException` or `NotFoundException`). `{id}` is the grant
    /// ID.
    pub unknown_grant: ErrorSpec,
    /// The error for `CopyImage` or `RunInstances` of an image that is not
    /// `available` (pending or failed). `{id}` is the image ID.
    pub unavailable_image: ErrorSpec,
    /// How long an Auto Scaling group waits, after a launch failed or its
    /// instance was lost, before it launches again (`docs/spec/production.md`
    /// §C1.6: the pace is not documented).
    pub scaling_retry_delay: Duration,
    /// The status of a launch activity whose instance was launched and
    /// then lost before it was in service (§C1.6: not documented; AWS's
    /// example of such an activity is `Cancelled`).
    pub scaling_lost_instance: ActivityStatus,
    /// The status message of such an activity; `{reason}` is the
    /// instance's termination reason (§C1.6, as users report it).
    pub scaling_unhealthy_message: String,
    /// The error of `CreateAutoScalingGroup` naming no role when the default
    /// service-linked role does not exist and the caller may not create it
    /// (§C1.1: the creation fails; the error is not documented). `{id}` is
    /// the role's ARN.
    pub service_linked_role_refused: ErrorSpec,
    /// The error of `CreateAutoScalingGroup` naming a service-linked role
    /// that does not exist (§C1.1; not documented). `{id}` is the ARN.
    pub unknown_service_linked_role: ErrorSpec,
    /// The error of `DeleteAutoScalingGroup` without `ForceDelete` for a
    /// group that still has instances (§C1.7: which code is not
    /// documented). `{id}` is the group's name.
    pub group_in_use: ErrorSpec,
    /// What `DescribeAutoScalingGroups` does with a name no group has
    /// (§C1.7: an empty answer as far as known, not documented).
    pub unknown_group_names: UnknownIds,
    /// Whether `DescribeSnapshots` reports a pending snapshot's progress, as
    /// EC2 does; off, the simulation answers like a backend that does not.
    pub snapshot_progress: bool,
    /// Whether [`World::calls`](crate::World::calls) keeps a record of every
    /// call. The counters behind [`World::mutating_calls`](crate::World::mutating_calls)
    /// are kept either way; turn this off for long benchmark runs.
    pub record_calls: bool,
}

impl Default for Knobs {
    fn default() -> Knobs {
        // §B11: what `DescribeInstances` shows for a KMS-caused launch failure.
        let launch_failure = StateReason {
            code: "Client.InternalError".to_owned(),
            message: "Client.InternalError: Client error on launch".to_owned(),
        };
        Knobs {
            create_image_time: Duration::from_secs(180),
            copy_image_base_time: Duration::from_secs(240),
            copy_image_time_per_gib: Duration::from_secs(10),
            copy_image_failure_time: Duration::from_secs(60),
            instance_boot_time: Duration::from_secs(40),
            failed_launch_shutting_down_after: Duration::from_secs(15),
            failed_launch_terminated_after: Duration::from_secs(30),
            terminate_time: Duration::from_secs(30),
            grant_propagation_delay: Duration::ZERO,
            pending_deletion_error: PendingDeletionError::InvalidState,
            launch_kms_failure: launch_failure.clone(),
            launch_key_state_failure: launch_failure,
            copy_failure: StateReason {
                code: "Server.InternalError".to_owned(),
                message: "Copy image failed with an internal error".to_owned(),
            },
            copy_failure_snapshot_message: "Given key ID is not accessible".to_owned(),
            kms_key_without_encrypted: ErrorSpec::new(
                ErrorKind::InvalidInput,
                "InvalidParameterDependency",
                "The parameter [KmsKeyId] requires the parameter Encrypted to be set.",
            ),
            not_owner: ErrorSpec::new(
                ErrorKind::AccessDenied,
                "AuthFailure",
                "Not authorized for {id}",
            ),
            public_encrypted_snapshot: ErrorSpec::new(
                ErrorKind::Unsupported,
                "UnsupportedOperation",
                "Encrypted snapshots can\u{2019}t be shared publicly. Specify another snapshot.",
            ),
            unknown_image_ids: UnknownIds::Error,
            unknown_snapshot_ids: UnknownIds::Error,
            launch_permission_quota: 1000,
            launch_permission_quota_exceeded: ErrorSpec::new(
                ErrorKind::Conflict,
                "ResourceLimitExceeded",
                "You have reached the limit of 1000 launch permissions for image {id}.",
            ),
            reserved_alias: ErrorSpec::new(
                ErrorKind::AccessDenied,
                "NotAuthorizedException",
                "{id}: the alias/aws/ prefix is reserved for AWS managed keys",
            ),
            unknown_grant: ErrorSpec::new(
                ErrorKind::NotFound,
                "NotFoundException",
                "Grant ID {id} not found",
            ),
            unavailable_image: ErrorSpec::new(
                ErrorKind::Conflict,
                "InvalidAMIID.Unavailable",
                "The image id '[{id}]' is not available",
            ),
            scaling_retry_delay: Duration::from_secs(30),
            scaling_lost_instance: ActivityStatus::Cancelled,
            scaling_unhealthy_message: "Instance became unhealthy while waiting for instance to be in InService state. Termination Reason: {reason}".to_owned(),
            service_linked_role_refused: ErrorSpec::new(
                ErrorKind::AccessDenied,
                "AccessDenied",
                "The caller may not create the service-linked role {id} (iam:CreateServiceLinkedRole)",
            ),
            unknown_service_linked_role: ErrorSpec::new(
                ErrorKind::InvalidInput,
                "ValidationError",
                "ARN specified is not a valid service-linked role: {id}",
            ),
            group_in_use: ErrorSpec::new(
                ErrorKind::Conflict,
                "ResourceInUse",
                "You cannot delete an AutoScalingGroup while there are instances or pending Spot instance request(s) still in the group.",
            ),
            unknown_group_names: UnknownIds::Omit,
            snapshot_progress: true,
            record_calls: true,
        }
    }
}

//! The operations amishare calls, in one table: each one's AWS name, its
//! service, the store method that makes it, whether it changes anything, and
//! whether repeating it after a lost answer is safe (`docs/spec/ops.md` §E1).
//!
//! Retries ([`crate::retry`]), dry runs ([`crate::plan`]), the simulation's
//! faults and call log, and the stores that count calls all read it here.

use std::any::Any;
use std::fmt;
use std::future::Future;

use crate::error::Result;
use crate::id::Region;

/// The AWS service an operation belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Service {
    /// AWS Security Token Service.
    Sts,
    /// AWS Key Management Service.
    Kms,
    /// Amazon EC2 (launch templates included).
    Ec2,
    /// Amazon EC2 Auto Scaling.
    AutoScaling,
}

impl Service {
    /// The prefix of the service's IAM actions: `kms`, `ec2`, ….
    pub fn prefix(self) -> &'static str {
        match self {
            Service::Sts => "sts",
            Service::Kms => "kms",
            Service::Ec2 => "ec2",
            Service::AutoScaling => "autoscaling",
        }
    }
}

/// Whether, and when, repeating an operation whose answer was lost is safe
/// (`docs/spec/ops.md` §E2).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Repeat {
    /// A read: repeating changes nothing.
    Read,
    /// A write that changes nothing more when repeated with the same
    /// parameters (`PutKeyPolicy`, permission changes, `TerminateInstances`).
    Idempotent,
    /// A write whose repeat is refused (already exists, not found, duplicate
    /// name) and which the flow settles by looking at what is there.
    Settled,
    /// A write that is idempotent only with a client token.
    WithClientToken,
    /// `CreateGrant`: idempotent only with a grant name.
    WithGrantName,
    /// A write that may act twice: never repeated after a 5xx.
    Never,
}

impl Repeat {
    /// Whether a repeat is safe, given whether the request carries the
    /// client token or grant name the rule asks for (`keyed`).
    pub fn is_safe(self, keyed: bool) -> bool {
        match self {
            Repeat::Read | Repeat::Idempotent | Repeat::Settled => true,
            Repeat::WithClientToken | Repeat::WithGrantName => keyed,
            Repeat::Never => false,
        }
    }
}

/// The store trait a method belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum StoreTrait {
    /// [`KeyStore`](crate::store::KeyStore).
    Keys,
    /// [`ImageStore`](crate::store::ImageStore).
    Images,
    /// [`ScalingStore`](crate::scaling::ScalingStore).
    Scaling,
}

/// One row of the table.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OpInfo {
    /// The service.
    pub service: Service,
    /// The action as IAM and the call log name it, e.g. `ec2:CopyImage`.
    pub action: &'static str,
    /// The store method that makes the call, if a store trait has one.
    pub method: Option<(StoreTrait, &'static str)>,
    /// Whether, and when, a repeat is safe; every kind but
    /// [`Repeat::Read`] changes state.
    pub repeat: Repeat,
}

macro_rules! operations {
    ($(
        $(#[$doc:meta])*
        $op:ident => $service:ident, $action:literal, $method:expr, $repeat:ident;
    )*) => {
        /// An AWS operation amishare calls.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub enum Operation {
            $( $(#[$doc])* $op, )*
        }

        impl Operation {
            /// Every operation, in the table's order.
            pub const ALL: &'static [Operation] = &[$(Operation::$op),*];

            /// The operation's row.
            pub const fn info(self) -> OpInfo {
                match self {
                    $(Operation::$op => OpInfo {
                        service: Service::$service,
                        action: $action,
                        method: $method,
                        repeat: Repeat::$repeat,
                    },)*
                }
            }
        }
    };
}

use StoreTrait::{Images, Keys, Scaling};

operations! {
    /// `sts:GetCallerIdentity`.
    GetCallerIdentity => Sts, "sts:GetCallerIdentity", Some((Keys, "caller")), Read;
    /// `kms:CreateKey`: no client token, so a repeat makes a second key.
    CreateKey => Kms, "kms:CreateKey", Some((Keys, "create_key")), Never;
    /// `kms:DescribeKey`.
    DescribeKey => Kms, "kms:DescribeKey", Some((Keys, "describe_key")), Read;
    /// `kms:CreateAlias`: a repeat meets `AlreadyExistsException`.
    CreateAlias => Kms, "kms:CreateAlias", Some((Keys, "create_alias")), Settled;
    /// `kms:GetKeyPolicy`.
    GetKeyPolicy => Kms, "kms:GetKeyPolicy", Some((Keys, "get_key_policy")), Read;
    /// `kms:PutKeyPolicy`: the same document twice is one change.
    PutKeyPolicy => Kms, "kms:PutKeyPolicy", Some((Keys, "put_key_policy")), Idempotent;
    /// `kms:ListGrants`.
    ListGrants => Kms, "kms:ListGrants", Some((Keys, "list_grants")), Read;
    /// `kms:CreateGrant`: idempotent with a grant name.
    CreateGrant => Kms, "kms:CreateGrant", Some((Keys, "create_grant")), WithGrantName;
    /// `kms:ListKeys`.
    ListKeys => Kms, "kms:ListKeys", Some((Keys, "list_keys")), Read;
    /// `kms:ListResourceTags`.
    ListResourceTags => Kms, "kms:ListResourceTags", Some((Keys, "list_resource_tags")), Read;
    /// `kms:RevokeGrant`: a repeat finds the grant gone.
    RevokeGrant => Kms, "kms:RevokeGrant", Some((Keys, "revoke_grant")), Settled;
    /// `kms:ListRetirableGrants`.
    ListRetirableGrants => Kms, "kms:ListRetirableGrants", Some((Keys, "list_retirable_grants")), Read;
    /// `kms:EnableKey`.
    EnableKey => Kms, "kms:EnableKey", None, Idempotent;
    /// `kms:DisableKey`.
    DisableKey => Kms, "kms:DisableKey", None, Idempotent;
    /// `kms:ScheduleKeyDeletion`: a repeat meets a key already pending deletion.
    ScheduleKeyDeletion => Kms, "kms:ScheduleKeyDeletion", None, Settled;
    /// `kms:CancelKeyDeletion`: a repeat meets a key no longer pending deletion.
    CancelKeyDeletion => Kms, "kms:CancelKeyDeletion", None, Settled;
    /// `kms:TagResource`.
    TagResource => Kms, "kms:TagResource", None, Idempotent;
    /// `kms:UntagResource`.
    UntagResource => Kms, "kms:UntagResource", None, Idempotent;
    /// `kms:ListAliases`.
    ListAliases => Kms, "kms:ListAliases", None, Read;
    /// `kms:UpdateAlias`.
    UpdateAlias => Kms, "kms:UpdateAlias", None, Idempotent;
    /// `kms:DeleteAlias`: a repeat finds the alias gone.
    DeleteAlias => Kms, "kms:DeleteAlias", None, Settled;
    /// `ec2:DescribeInstances`.
    DescribeInstances => Ec2, "ec2:DescribeInstances", Some((Images, "describe_instances")), Read;
    /// `ec2:DescribeVolumes`: served by the simulation's AWS-shaped API.
    DescribeVolumes => Ec2, "ec2:DescribeVolumes", None, Read;
    /// `ec2:CreateImage`: a repeat is refused as a duplicate name.
    CreateImage => Ec2, "ec2:CreateImage", Some((Images, "create_image")), Settled;
    /// `ec2:CopyImage`: idempotent with a client token.
    CopyImage => Ec2, "ec2:CopyImage", Some((Images, "copy_image")), WithClientToken;
    /// `ec2:DescribeImages`.
    DescribeImages => Ec2, "ec2:DescribeImages", Some((Images, "describe_images")), Read;
    /// `ec2:DescribeSnapshots`.
    DescribeSnapshots => Ec2, "ec2:DescribeSnapshots", Some((Images, "describe_snapshots")), Read;
    /// `ec2:ModifyImageAttribute` (launch permissions).
    ModifyImageAttribute => Ec2, "ec2:ModifyImageAttribute", Some((Images, "modify_launch_permission")), Idempotent;
    /// `ec2:DescribeImageAttribute` (launch permissions).
    DescribeImageAttribute => Ec2, "ec2:DescribeImageAttribute", Some((Images, "describe_launch_permission")), Read;
    /// `ec2:ModifySnapshotAttribute` (create-volume permissions).
    ModifySnapshotAttribute => Ec2, "ec2:ModifySnapshotAttribute", Some((Images, "modify_create_volume_permission")), Idempotent;
    /// `ec2:DescribeSnapshotAttribute` (create-volume permissions).
    DescribeSnapshotAttribute => Ec2, "ec2:DescribeSnapshotAttribute", Some((Images, "describe_create_volume_permission")), Read;
    /// `ec2:RunInstances`: idempotent with a client token.
    RunInstances => Ec2, "ec2:RunInstances", Some((Images, "run_instances")), WithClientToken;
    /// `ec2:TerminateInstances`: idempotent by default.
    TerminateInstances => Ec2, "ec2:TerminateInstances", Some((Images, "terminate_instances")), Idempotent;
    /// `ec2:DeregisterImage`: a repeat finds the image gone.
    DeregisterImage => Ec2, "ec2:DeregisterImage", Some((Images, "deregister_image")), Settled;
    /// `ec2:DeleteSnapshot`: a repeat is refused as not found, which the
    /// flow does not take as done.
    DeleteSnapshot => Ec2, "ec2:DeleteSnapshot", Some((Images, "delete_snapshot")), Never;
    /// `ec2:GetEbsEncryptionByDefault`, the first of the two reads behind
    /// [`ImageStore::ebs_defaults`](crate::store::ImageStore::ebs_defaults).
    GetEbsEncryptionByDefault => Ec2, "ec2:GetEbsEncryptionByDefault", Some((Images, "ebs_defaults")), Read;
    /// `ec2:GetEbsDefaultKmsKeyId`, the second.
    GetEbsDefaultKmsKeyId => Ec2, "ec2:GetEbsDefaultKmsKeyId", None, Read;
    /// `ec2:CreateLaunchTemplate`: idempotent with a client token.
    CreateLaunchTemplate => Ec2, "ec2:CreateLaunchTemplate", Some((Scaling, "create_launch_template")), WithClientToken;
    /// `ec2:DescribeLaunchTemplates`.
    DescribeLaunchTemplates => Ec2, "ec2:DescribeLaunchTemplates", Some((Scaling, "describe_launch_templates")), Read;
    /// `ec2:DeleteLaunchTemplate`: a repeat finds the template gone.
    DeleteLaunchTemplate => Ec2, "ec2:DeleteLaunchTemplate", Some((Scaling, "delete_launch_template")), Settled;
    /// `autoscaling:CreateAutoScalingGroup`: a 5xx may have created the
    /// group, and a repeat is refused with `AlreadyExists`.
    CreateAutoScalingGroup => AutoScaling, "autoscaling:CreateAutoScalingGroup", Some((Scaling, "create_auto_scaling_group")), Never;
    /// `autoscaling:DescribeAutoScalingGroups`.
    DescribeAutoScalingGroups => AutoScaling, "autoscaling:DescribeAutoScalingGroups", Some((Scaling, "describe_auto_scaling_groups")), Read;
    /// `autoscaling:DescribeScalingActivities`.
    DescribeScalingActivities => AutoScaling, "autoscaling:DescribeScalingActivities", Some((Scaling, "describe_scaling_activities")), Read;
    /// `autoscaling:DeleteAutoScalingGroup`: a repeat finds the group gone or going.
    DeleteAutoScalingGroup => AutoScaling, "autoscaling:DeleteAutoScalingGroup", Some((Scaling, "delete_auto_scaling_group")), Settled;
}

impl Operation {
    /// The service.
    pub fn service(self) -> Service {
        self.info().service
    }

    /// The action with its service prefix, e.g. `ec2:CopyImage`.
    pub fn action(self) -> &'static str {
        self.info().action
    }

    /// The API name alone, e.g. `CopyImage`.
    pub fn name(self) -> &'static str {
        let action = self.action();
        &action[self.service().prefix().len() + 1..]
    }

    /// Whether the operation changes state when it succeeds.
    pub fn is_mutating(self) -> bool {
        self.info().repeat != Repeat::Read
    }

    /// Whether, and when, repeating it is safe.
    pub fn repeat(self) -> Repeat {
        self.info().repeat
    }

    /// The store method that makes the call, if any.
    pub fn method(self) -> Option<(StoreTrait, &'static str)> {
        self.info().method
    }

    /// The operations made by `store`'s methods, in the trait's order.
    pub fn of_store(store: StoreTrait) -> impl Iterator<Item = Operation> {
        Operation::ALL
            .iter()
            .copied()
            .filter(move |op| op.method().is_some_and(|(s, _)| s == store))
    }
}

impl fmt::Display for Operation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.action())
    }
}

/// One call as a wrapper store sees it: the operation, its region and
/// resource (for messages), and whether the request carries the client
/// token or grant name that makes a repeat safe.
#[derive(Clone, Copy)]
pub struct OpCall<'a> {
    /// The operation.
    pub op: Operation,
    /// The region, for calls that name one.
    pub region: Option<&'a Region>,
    /// Whether the request carries the client token or grant name its row asks for.
    pub keyed: bool,
    /// The resource the call acts on, made only when a message needs it.
    resource: &'a (dyn Fn() -> Option<String> + Sync),
    /// The call's request, for the calls that take one.
    request: Option<&'a (dyn Any + Send + Sync)>,
}

impl<'a> OpCall<'a> {
    /// A call of `op` in `region` on the resource `resource` names.
    pub fn new(
        op: Operation,
        region: Option<&'a Region>,
        keyed: bool,
        resource: &'a (dyn Fn() -> Option<String> + Sync),
    ) -> OpCall<'a> {
        OpCall {
            op,
            region,
            keyed,
            resource,
            request: None,
        }
    }

    /// The call's request (`CreateKeyRequest`, `CopyImageRequest`, a
    /// permission change, …), for a wrapper that acts on what was asked.
    pub fn with_request<R: Any + Send + Sync>(mut self, request: Option<&'a R>) -> OpCall<'a> {
        self.request = request.map(|request| request as &(dyn Any + Send + Sync));
        self
    }

    /// The call's request, if it took one of type `R`.
    pub fn request<R: Any>(&self) -> Option<&'a R> {
        self.request.and_then(|request| request.downcast_ref())
    }

    /// The resource the call acts on: an ID, or several joined by `, `.
    pub fn resource(&self) -> Option<String> {
        (self.resource)()
    }

    /// Whether repeating this call after a lost answer is safe.
    pub fn is_safe_to_repeat(&self) -> bool {
        self.op.repeat().is_safe(self.keyed)
    }
}

impl fmt::Debug for OpCall<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("OpCall")
            .field("op", &self.op)
            .field("region", &self.region)
            .field("keyed", &self.keyed)
            .finish_non_exhaustive()
    }
}

/// IDs joined by `, `, or `None` when there are none: the resource of a
/// call on many.
pub fn join_ids<T: fmt::Display>(ids: &[T]) -> Option<String> {
    (!ids.is_empty()).then(|| {
        ids.iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>()
            .join(", ")
    })
}

/// What a wrapper store does around each call of the store it wraps; with
/// [`around_stores!`](crate::around_stores) it makes the wrapper a store.
///
/// `send` makes one attempt of the call; a hook may run it once, several
/// times (retries) or not at all (an injected fault).
pub trait Around: Send + Sync {
    /// Runs `send` as the wrapper sees fit.
    fn around<'a, T, F, Fut>(
        &'a self,
        call: OpCall<'a>,
        send: F,
    ) -> impl Future<Output = Result<T>> + Send + 'a
    where
        T: Send + 'static,
        F: FnMut() -> Fut + Send + 'a,
        Fut: Future<Output = Result<T>> + Send + 'a;
}

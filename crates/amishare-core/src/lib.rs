//! amishare's core: domain types, errors, the backend traits and the
//! cross-account sharing flow.
//!
//! This crate knows nothing about the AWS SDK, tokio or the network: backends
//! implement [`KeyStore`] and [`ImageStore`] (and, to launch through Auto
//! Scaling, [`scaling::ScalingStore`]); [`Flow`] runs the owner side
//! ([`Sharer::share`], [`Sharer::unshare`]) and the target side
//! ([`Sharer::accept`]) over them; [`plan::planning`] turns any pair of
//! stores into a dry run.

mod error;
mod id;
mod model;
mod store;

pub use crate::error::{
    Error, ErrorKind, Exhausted, FailedCopy, FailedGroupLaunch, FailedLaunch, Failure, Result,
};
pub use crate::id::{
    AccountId, AliasArn, AliasName, GrantId, ImageId, InstanceId, KeyArn, KeyId, KeyRef,
    OrganizationArn, OuArn, PrincipalArn, PrincipalKind, Region, SnapshotId, VolumeId,
    KNOWN_REGIONS,
};
pub use crate::model::*;
pub use crate::store::{Clock, ImageStore, KeyStore};
#[cfg(any(test, feature = "mock"))]
pub use crate::store::{MockImageStore, MockKeyStore};

pub mod diagnose;
pub mod ec2_kms;
mod flow;
pub mod plan;
pub mod retry;
pub mod scaling;

#[cfg(any(test, feature = "mock"))]
pub use crate::flow::MockSharer;
pub use crate::flow::{
    check_partitions, smoke_instances, AcceptReport, AcceptRequest, CopyKey, CopyReport, FixReport,
    FixRequest, Flow, GrantReport, ImageSource, Kept, KeyChoice, KeyPolicyReport, LaunchOptions,
    LaunchReport, LaunchVia, Mended, Narrowing, PolicyWrite, RegionImage, RegionShare, ShareReport,
    ShareRequest, Sharer, Step, Target, UnshareReport, UnshareRequest, WaitOptions, TAG_ALIAS,
    TAG_KEY, TAG_SMOKE_KEEP, TAG_SMOKE_TEST, TAG_SOURCE_IMAGE, TAG_SOURCE_INSTANCE,
};

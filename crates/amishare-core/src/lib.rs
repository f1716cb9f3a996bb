#![doc = include_str!("../README.md")]
#![cfg_attr(docsrs, feature(doc_cfg))]

mod around;
mod error;
mod id;
mod model;
pub mod store;

pub use crate::error::{
    Error, ErrorKind, Exhausted, FailedCopy, FailedGroupLaunch, FailedLaunch, Failure, Result,
};
pub use crate::id::{
    AccountId, AliasArn, AliasName, GrantId, ImageId, ImageName, InstanceId, KeyArn, KeyId, KeyRef,
    OrganizationArn, OuArn, PrincipalArn, PrincipalKind, Region, SnapshotId, VolumeId,
    KNOWN_REGIONS,
};
pub use crate::store::{Clock, Stores};

pub mod catalogue;
pub mod diagnose;
pub mod ec2_kms;
pub mod filter;
mod flow;
pub mod hash;
pub mod key_admin;
pub mod ops;
pub mod plan;
pub mod retry;
pub mod scaling;

#[cfg(any(test, feature = "mock"))]
#[cfg_attr(docsrs, doc(cfg(feature = "mock")))]
pub use crate::flow::MockSharer;
pub use crate::flow::{
    check_partitions, smoke_instances, AcceptReport, AcceptRequest, CopyKey, CopyReport, FixReport,
    FixRequest, Flow, GrantReport, ImageSource, ImageStatus, Kept, KeyChoice, KeyPolicyReport,
    KeyStatus, LaunchOptions, LaunchReport, LaunchVia, Mended, Narrowing, PolicyWrite, Readable,
    RegionImage, RegionShare, ShareReport, ShareRequest, Sharer, SmokeStatus, SnapshotStatus,
    StatusReport, StatusRequest, Step, Target, TargetView, UnshareReport, UnshareRequest,
    WaitOptions, TAG_ALIAS, TAG_KEY, TAG_SMOKE_KEEP, TAG_SMOKE_TEST, TAG_SOURCE_IMAGE,
    TAG_SOURCE_INSTANCE,
};

#[doc(hidden)]
pub use async_trait::async_trait as __async_trait;

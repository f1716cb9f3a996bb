//! The one forwarding of the store traits: [`around_stores!`] makes a
//! wrapper a [`KeyStore`](crate::store::KeyStore), [`ImageStore`](crate::store::ImageStore)
//! or [`ScalingStore`](crate::scaling::ScalingStore) by sending each call
//! through its [`Around`] hook with the call's [`Operation`] row.
//!
//! Every wrapper (`Arc`, `Box`, retries, the simulation's faults, the
//! counting stores of the AWS tests) is made by it, so a method added to a
//! trait is added here once. A new trait is one more arm.
//!
//! [`Operation`]: crate::ops::Operation

use std::future::Future;
use std::sync::Arc;

use crate::error::Result;
use crate::ops::{Around, OpCall};

/// Implements a store trait for a wrapper that sends every call through its
/// [`Around`](crate::ops::Around) hook.
///
/// `around_stores!(KeyStore for [generics] Wrapper, |this| inner)`: `inner`
/// is the store to call, reached from `this: &Wrapper`; it may use `?`.
/// The traits: `KeyStore`, `ImageStore`, `ScalingStore`.
#[macro_export]
macro_rules! around_stores {
    (KeyStore for [$($gen:tt)*] $ty:ty, |$this:ident| $inner:expr) => {
        $crate::__around_impl! {
            $crate::store::KeyStore, [$($gen)*] $ty, $this, $inner;
            fn caller() -> $crate::store::Caller;
                GetCallerIdentity, None, false, None, None::<&()>;
            fn create_key(region: &$crate::Region, request: &$crate::store::CreateKeyRequest) -> $crate::store::KeyMetadata;
                CreateKey, Some(region), false, None, Some(request);
            fn describe_key(region: &$crate::Region, key: &$crate::KeyRef) -> $crate::store::KeyMetadata;
                DescribeKey, Some(region), false, Some(key.to_string()), None::<&()>;
            fn create_alias(region: &$crate::Region, alias: &$crate::AliasName, key: &$crate::KeyId) -> ();
                CreateAlias, Some(region), false, Some(alias.to_string()), None::<&()>;
            fn get_key_policy(key: &$crate::KeyArn) -> String;
                GetKeyPolicy, None, false, Some(key.to_string()), None::<&()>;
            fn put_key_policy(key: &$crate::KeyArn, policy: &str) -> ();
                PutKeyPolicy, None, false, Some(key.to_string()), None::<&()>;
            fn list_grants(key: &$crate::KeyArn) -> Vec<$crate::store::Grant>;
                ListGrants, None, false, Some(key.to_string()), None::<&()>;
            fn create_grant(key: &$crate::KeyArn, request: &$crate::store::CreateGrantRequest) -> $crate::GrantId;
                CreateGrant, None, request.name.is_some(), Some(key.to_string()), Some(request);
            fn list_keys(region: &$crate::Region) -> Option<Vec<$crate::KeyArn>>;
                ListKeys, Some(region), false, None, None::<&()>;
            fn list_resource_tags(key: &$crate::KeyArn) -> std::collections::BTreeMap<String, String>;
                ListResourceTags, None, false, Some(key.to_string()), None::<&()>;
            fn revoke_grant(key: &$crate::KeyArn, grant: &$crate::GrantId) -> ();
                RevokeGrant, None, false, Some(format!("{grant} on {key}")), None::<&()>;
            fn list_retirable_grants(region: &$crate::Region, retiring: &$crate::PrincipalArn) -> Vec<$crate::store::Grant>;
                ListRetirableGrants, Some(region), false, Some(retiring.to_string()), None::<&()>;
        }
    };
    (ImageStore for [$($gen:tt)*] $ty:ty, |$this:ident| $inner:expr) => {
        $crate::__around_impl! {
            $crate::store::ImageStore, [$($gen)*] $ty, $this, $inner;
            fn describe_instances(region: &$crate::Region, ids: &[$crate::InstanceId]) -> Vec<$crate::store::Instance>;
                DescribeInstances, Some(region), false, $crate::ops::join_ids(ids), None::<&()>;
            fn create_image(region: &$crate::Region, request: &$crate::store::CreateImageRequest) -> $crate::ImageId;
                CreateImage, Some(region), false, Some(request.instance.to_string()), Some(request);
            fn copy_image(region: &$crate::Region, request: &$crate::store::CopyImageRequest) -> $crate::ImageId;
                CopyImage, Some(region), request.client_token.is_some(), Some(request.source_image.to_string()), Some(request);
            fn describe_images(region: &$crate::Region, query: &$crate::store::ImageQuery) -> Vec<$crate::store::Image>;
                DescribeImages, Some(region), false, $crate::ops::join_ids(&query.image_ids), Some(query);
            fn describe_snapshots(region: &$crate::Region, ids: &[$crate::SnapshotId]) -> Vec<$crate::store::Snapshot>;
                DescribeSnapshots, Some(region), false, $crate::ops::join_ids(ids), None::<&()>;
            fn modify_launch_permission(region: &$crate::Region, image: &$crate::ImageId, change: &$crate::store::PermissionChange<$crate::store::LaunchPermission>) -> ();
                ModifyImageAttribute, Some(region), false, Some(image.to_string()), Some(change);
            fn describe_launch_permission(region: &$crate::Region, image: &$crate::ImageId) -> Vec<$crate::store::LaunchPermission>;
                DescribeImageAttribute, Some(region), false, Some(image.to_string()), None::<&()>;
            fn modify_create_volume_permission(region: &$crate::Region, snapshot: &$crate::SnapshotId, change: &$crate::store::PermissionChange<$crate::store::VolumePermission>) -> ();
                ModifySnapshotAttribute, Some(region), false, Some(snapshot.to_string()), Some(change);
            fn describe_create_volume_permission(region: &$crate::Region, snapshot: &$crate::SnapshotId) -> Vec<$crate::store::VolumePermission>;
                DescribeSnapshotAttribute, Some(region), false, Some(snapshot.to_string()), None::<&()>;
            fn run_instances(region: &$crate::Region, request: &$crate::store::RunInstancesRequest) -> $crate::store::Instance;
                RunInstances, Some(region), request.client_token.is_some(), Some(request.image.to_string()), Some(request);
            fn terminate_instances(region: &$crate::Region, ids: &[$crate::InstanceId]) -> ();
                TerminateInstances, Some(region), false, $crate::ops::join_ids(ids), None::<&()>;
            fn deregister_image(region: &$crate::Region, image: &$crate::ImageId, delete_snapshots: bool) -> ();
                DeregisterImage, Some(region), false, Some(image.to_string()), None::<&()>;
            fn delete_snapshot(region: &$crate::Region, snapshot: &$crate::SnapshotId) -> ();
                DeleteSnapshot, Some(region), false, Some(snapshot.to_string()), None::<&()>;
            fn ebs_defaults(region: &$crate::Region) -> $crate::store::EbsDefaults;
                GetEbsEncryptionByDefault, Some(region), false, None, None::<&()>;
        }
    };
    (ScalingStore for [$($gen:tt)*] $ty:ty, |$this:ident| $inner:expr) => {
        $crate::__around_impl! {
            $crate::scaling::ScalingStore, [$($gen)*] $ty, $this, $inner;
            fn create_launch_template(region: &$crate::Region, request: &$crate::scaling::LaunchTemplateRequest) -> $crate::scaling::LaunchTemplate;
                CreateLaunchTemplate, Some(region), request.client_token.is_some(), Some(request.name.to_string()), Some(request);
            fn describe_launch_templates(region: &$crate::Region, names: &[String]) -> Vec<$crate::scaling::LaunchTemplate>;
                DescribeLaunchTemplates, Some(region), false, $crate::ops::join_ids(names), None::<&()>;
            fn delete_launch_template(region: &$crate::Region, name: &str) -> ();
                DeleteLaunchTemplate, Some(region), false, Some(name.to_owned()), None::<&()>;
            fn create_auto_scaling_group(region: &$crate::Region, request: &$crate::scaling::GroupRequest) -> ();
                CreateAutoScalingGroup, Some(region), false, Some(request.name.to_string()), Some(request);
            fn describe_auto_scaling_groups(region: &$crate::Region, names: &[String]) -> Vec<$crate::scaling::Group>;
                DescribeAutoScalingGroups, Some(region), false, $crate::ops::join_ids(names), None::<&()>;
            fn describe_scaling_activities(region: &$crate::Region, group: &str) -> Vec<$crate::scaling::Activity>;
                DescribeScalingActivities, Some(region), false, Some(group.to_owned()), None::<&()>;
            fn delete_auto_scaling_group(region: &$crate::Region, name: &str, force: bool) -> ();
                DeleteAutoScalingGroup, Some(region), false, Some(name.to_owned()), None::<&()>;
        }
    };
}

/// One method per row: the signature, then the operation, region, whether
/// the request is keyed, the resource, and the request itself where the
/// call takes one.
#[doc(hidden)]
#[macro_export]
macro_rules! __around_impl {
    (
        $trait:path, [$($gen:tt)*] $ty:ty, $this:ident, $inner:expr;
        $(
            fn $method:ident($($arg:ident: $argty:ty),*) -> $ret:ty;
                $op:ident, $region:expr, $keyed:expr, $resource:expr, $request:expr;
        )*
    ) => {
        #[$crate::__async_trait]
        impl<$($gen)*> $trait for $ty {
            $(
                async fn $method(&self, $($arg: $argty),*) -> $crate::Result<$ret> {
                    let $this = self;
                    let inner = $inner;
                    let resource = || -> Option<String> { $resource };
                    let call = $crate::ops::OpCall::new(
                        $crate::ops::Operation::$op,
                        $region,
                        $keyed,
                        &resource,
                    )
                    .with_request($request);
                    $crate::ops::Around::around(self, call, || inner.$method($($arg),*)).await
                }
            )*
        }
    };
}

/// Sends the call once: `Arc` and `Box` only forward.
macro_rules! forward {
    ($($ty:ident),*) => {$(
        impl<S: ?Sized + Send + Sync> Around for $ty<S> {
            fn around<'a, T, F, Fut>(
                &'a self,
                _call: OpCall<'a>,
                mut send: F,
            ) -> impl Future<Output = Result<T>> + Send + 'a
            where
                T: Send + 'static,
                F: FnMut() -> Fut + Send + 'a,
                Fut: Future<Output = Result<T>> + Send + 'a,
            {
                send()
            }
        }
        around_stores!(KeyStore for [S: crate::store::KeyStore + ?Sized] $ty<S>, |this| &**this);
        around_stores!(ImageStore for [S: crate::store::ImageStore + ?Sized] $ty<S>, |this| &**this);
        around_stores!(ScalingStore for [S: crate::scaling::ScalingStore + ?Sized] $ty<S>, |this| &**this);
    )*};
}

forward!(Arc, Box);

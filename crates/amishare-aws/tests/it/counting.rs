//! Stores that count every `KeyStore` and `ImageStore` method called through
//! them, so that an end-to-end run can show that each one reached the server.
//!
//! The method lists are checked against the traits in core's `store.rs`
//! offline, so a method added to a trait cannot go uncounted.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use amishare_core::scaling::{
    Activity, Group, GroupRequest, LaunchTemplate, LaunchTemplateRequest, ScalingStore,
};
use amishare_core::{
    AliasName, Caller, CopyImageRequest, CreateGrantRequest, CreateImageRequest, CreateKeyRequest,
    EbsDefaults, Grant, GrantId, Image, ImageId, ImageQuery, ImageStore, Instance, InstanceId,
    KeyArn, KeyId, KeyMetadata, KeyRef, KeyStore, LaunchPermission, PermissionChange, PrincipalArn,
    Region, Result, RunInstancesRequest, Snapshot, SnapshotId, VolumePermission,
};
use async_trait::async_trait;

/// Every `KeyStore` method, in the trait's order.
pub(crate) const KEY_STORE_METHODS: &[&str] = &[
    "caller",
    "create_key",
    "describe_key",
    "create_alias",
    "get_key_policy",
    "put_key_policy",
    "list_grants",
    "create_grant",
    "list_keys",
    "list_resource_tags",
    "revoke_grant",
    "list_retirable_grants",
];

/// Every `ScalingStore` method, in the trait's order.
pub(crate) const SCALING_STORE_METHODS: &[&str] = &[
    "create_launch_template",
    "describe_launch_templates",
    "delete_launch_template",
    "create_auto_scaling_group",
    "describe_auto_scaling_groups",
    "describe_scaling_activities",
    "delete_auto_scaling_group",
];

/// Every `ImageStore` method, in the trait's order.
pub(crate) const IMAGE_STORE_METHODS: &[&str] = &[
    "describe_instances",
    "create_image",
    "copy_image",
    "describe_images",
    "describe_snapshots",
    "modify_launch_permission",
    "describe_launch_permission",
    "modify_create_volume_permission",
    "describe_create_volume_permission",
    "run_instances",
    "terminate_instances",
    "deregister_image",
    "delete_snapshot",
    "ebs_defaults",
];

/// The methods that change something, as the simulation counts mutating calls.
const MUTATING_METHODS: &[&str] = &[
    "create_key",
    "create_alias",
    "put_key_policy",
    "create_grant",
    "revoke_grant",
    "create_image",
    "copy_image",
    "modify_launch_permission",
    "modify_create_volume_permission",
    "run_instances",
    "terminate_instances",
    "deregister_image",
    "delete_snapshot",
    "create_launch_template",
    "delete_launch_template",
    "create_auto_scaling_group",
    "delete_auto_scaling_group",
];

/// How often each method was called, and how many of those calls failed.
#[derive(Debug, Default)]
pub(crate) struct Calls {
    counts: Mutex<BTreeMap<&'static str, Tally>>,
}

/// Calls of one method.
#[derive(Debug, Default, Clone, Copy)]
struct Tally {
    ok: usize,
    failed: usize,
}

impl Calls {
    /// Tallies one call of `method` and hands its result back.
    fn record<T>(&self, method: &'static str, result: Result<T>) -> Result<T> {
        let mut counts = self.counts.lock().expect("calls lock");
        let tally = counts.entry(method).or_default();
        match &result {
            Ok(_) => tally.ok += 1,
            Err(_) => tally.failed += 1,
        }
        result
    }

    /// Calls of mutating methods, failed ones included (they reached the server).
    pub(crate) fn mutating(&self) -> usize {
        let counts = self.counts.lock().expect("calls lock");
        MUTATING_METHODS
            .iter()
            .filter_map(|m| counts.get(m))
            .map(|t| t.ok + t.failed)
            .sum()
    }

    /// The trait methods never called.
    pub(crate) fn missing(&self) -> Vec<&'static str> {
        let counts = self.counts.lock().expect("calls lock");
        KEY_STORE_METHODS
            .iter()
            .chain(IMAGE_STORE_METHODS)
            .chain(SCALING_STORE_METHODS)
            .filter(|m| !counts.contains_key(*m))
            .copied()
            .collect()
    }

    /// One `method: N ok, M failed` line per method, in the traits' order.
    pub(crate) fn report(&self) -> String {
        let counts = self.counts.lock().expect("calls lock");
        KEY_STORE_METHODS
            .iter()
            .chain(IMAGE_STORE_METHODS)
            .chain(SCALING_STORE_METHODS)
            .map(|m| {
                let t = counts.get(m).copied().unwrap_or_default();
                format!("{m}: {} ok, {} failed", t.ok, t.failed)
            })
            .collect::<Vec<_>>()
            .join("\n")
    }
}

/// A store that records each call in shared [`Calls`] and forwards it.
#[derive(Debug)]
pub(crate) struct Counting<T> {
    inner: T,
    calls: Arc<Calls>,
}

impl<T> Counting<T> {
    pub(crate) fn new(inner: T, calls: Arc<Calls>) -> Counting<T> {
        Counting { inner, calls }
    }
}

#[async_trait]
impl<T: KeyStore> KeyStore for Counting<T> {
    async fn caller(&self) -> Result<Caller> {
        self.calls.record("caller", self.inner.caller().await)
    }
    async fn create_key(&self, region: &Region, request: &CreateKeyRequest) -> Result<KeyMetadata> {
        let result = self.inner.create_key(region, request).await;
        self.calls.record("create_key", result)
    }
    async fn describe_key(&self, region: &Region, key: &KeyRef) -> Result<KeyMetadata> {
        let result = self.inner.describe_key(region, key).await;
        self.calls.record("describe_key", result)
    }
    async fn create_alias(&self, region: &Region, alias: &AliasName, key: &KeyId) -> Result<()> {
        let result = self.inner.create_alias(region, alias, key).await;
        self.calls.record("create_alias", result)
    }
    async fn get_key_policy(&self, key: &KeyArn) -> Result<String> {
        let result = self.inner.get_key_policy(key).await;
        self.calls.record("get_key_policy", result)
    }
    async fn put_key_policy(&self, key: &KeyArn, policy: &str) -> Result<()> {
        let result = self.inner.put_key_policy(key, policy).await;
        self.calls.record("put_key_policy", result)
    }
    async fn list_grants(&self, key: &KeyArn) -> Result<Vec<Grant>> {
        let result = self.inner.list_grants(key).await;
        self.calls.record("list_grants", result)
    }
    async fn create_grant(&self, key: &KeyArn, request: &CreateGrantRequest) -> Result<GrantId> {
        let result = self.inner.create_grant(key, request).await;
        self.calls.record("create_grant", result)
    }
    async fn list_keys(&self, region: &Region) -> Result<Option<Vec<KeyArn>>> {
        let result = self.inner.list_keys(region).await;
        self.calls.record("list_keys", result)
    }
    async fn list_resource_tags(&self, key: &KeyArn) -> Result<BTreeMap<String, String>> {
        let result = self.inner.list_resource_tags(key).await;
        self.calls.record("list_resource_tags", result)
    }
    async fn list_retirable_grants(
        &self,
        region: &Region,
        retiring: &PrincipalArn,
    ) -> Result<Vec<Grant>> {
        let result = self.inner.list_retirable_grants(region, retiring).await;
        self.calls.record("list_retirable_grants", result)
    }
    async fn revoke_grant(&self, key: &KeyArn, grant: &GrantId) -> Result<()> {
        let result = self.inner.revoke_grant(key, grant).await;
        self.calls.record("revoke_grant", result)
    }
}

#[async_trait]
impl<T: ImageStore> ImageStore for Counting<T> {
    async fn describe_instances(
        &self,
        region: &Region,
        ids: &[InstanceId],
    ) -> Result<Vec<Instance>> {
        let result = self.inner.describe_instances(region, ids).await;
        self.calls.record("describe_instances", result)
    }
    async fn create_image(&self, region: &Region, request: &CreateImageRequest) -> Result<ImageId> {
        let result = self.inner.create_image(region, request).await;
        self.calls.record("create_image", result)
    }
    async fn copy_image(&self, region: &Region, request: &CopyImageRequest) -> Result<ImageId> {
        let result = self.inner.copy_image(region, request).await;
        self.calls.record("copy_image", result)
    }
    async fn describe_images(&self, region: &Region, query: &ImageQuery) -> Result<Vec<Image>> {
        let result = self.inner.describe_images(region, query).await;
        self.calls.record("describe_images", result)
    }
    async fn describe_snapshots(
        &self,
        region: &Region,
        ids: &[SnapshotId],
    ) -> Result<Vec<Snapshot>> {
        let result = self.inner.describe_snapshots(region, ids).await;
        self.calls.record("describe_snapshots", result)
    }
    async fn modify_launch_permission(
        &self,
        region: &Region,
        image: &ImageId,
        change: &PermissionChange<LaunchPermission>,
    ) -> Result<()> {
        let result = self
            .inner
            .modify_launch_permission(region, image, change)
            .await;
        self.calls.record("modify_launch_permission", result)
    }
    async fn describe_launch_permission(
        &self,
        region: &Region,
        image: &ImageId,
    ) -> Result<Vec<LaunchPermission>> {
        let result = self.inner.describe_launch_permission(region, image).await;
        self.calls.record("describe_launch_permission", result)
    }
    async fn modify_create_volume_permission(
        &self,
        region: &Region,
        snapshot: &SnapshotId,
        change: &PermissionChange<VolumePermission>,
    ) -> Result<()> {
        let result = self
            .inner
            .modify_create_volume_permission(region, snapshot, change)
            .await;
        self.calls.record("modify_create_volume_permission", result)
    }
    async fn describe_create_volume_permission(
        &self,
        region: &Region,
        snapshot: &SnapshotId,
    ) -> Result<Vec<VolumePermission>> {
        let result = self
            .inner
            .describe_create_volume_permission(region, snapshot)
            .await;
        self.calls
            .record("describe_create_volume_permission", result)
    }
    async fn run_instances(
        &self,
        region: &Region,
        request: &RunInstancesRequest,
    ) -> Result<Instance> {
        let result = self.inner.run_instances(region, request).await;
        self.calls.record("run_instances", result)
    }
    async fn terminate_instances(&self, region: &Region, ids: &[InstanceId]) -> Result<()> {
        let result = self.inner.terminate_instances(region, ids).await;
        self.calls.record("terminate_instances", result)
    }
    async fn deregister_image(
        &self,
        region: &Region,
        image: &ImageId,
        delete_snapshots: bool,
    ) -> Result<()> {
        let result = self
            .inner
            .deregister_image(region, image, delete_snapshots)
            .await;
        self.calls.record("deregister_image", result)
    }
    async fn delete_snapshot(&self, region: &Region, snapshot: &SnapshotId) -> Result<()> {
        let result = self.inner.delete_snapshot(region, snapshot).await;
        self.calls.record("delete_snapshot", result)
    }
    async fn ebs_defaults(&self, region: &Region) -> Result<EbsDefaults> {
        let result = self.inner.ebs_defaults(region).await;
        self.calls.record("ebs_defaults", result)
    }
}

#[async_trait]
impl<T: ScalingStore> ScalingStore for Counting<T> {
    async fn create_launch_template(
        &self,
        region: &Region,
        request: &LaunchTemplateRequest,
    ) -> Result<LaunchTemplate> {
        let result = self.inner.create_launch_template(region, request).await;
        self.calls.record("create_launch_template", result)
    }
    async fn describe_launch_templates(
        &self,
        region: &Region,
        names: &[String],
    ) -> Result<Vec<LaunchTemplate>> {
        let result = self.inner.describe_launch_templates(region, names).await;
        self.calls.record("describe_launch_templates", result)
    }
    async fn delete_launch_template(&self, region: &Region, name: &str) -> Result<()> {
        let result = self.inner.delete_launch_template(region, name).await;
        self.calls.record("delete_launch_template", result)
    }
    async fn create_auto_scaling_group(
        &self,
        region: &Region,
        request: &GroupRequest,
    ) -> Result<()> {
        let result = self.inner.create_auto_scaling_group(region, request).await;
        self.calls.record("create_auto_scaling_group", result)
    }
    async fn describe_auto_scaling_groups(
        &self,
        region: &Region,
        names: &[String],
    ) -> Result<Vec<Group>> {
        let result = self.inner.describe_auto_scaling_groups(region, names).await;
        self.calls.record("describe_auto_scaling_groups", result)
    }
    async fn describe_scaling_activities(
        &self,
        region: &Region,
        group: &str,
    ) -> Result<Vec<Activity>> {
        let result = self.inner.describe_scaling_activities(region, group).await;
        self.calls.record("describe_scaling_activities", result)
    }
    async fn delete_auto_scaling_group(
        &self,
        region: &Region,
        name: &str,
        force: bool,
    ) -> Result<()> {
        let result = self
            .inner
            .delete_auto_scaling_group(region, name, force)
            .await;
        self.calls.record("delete_auto_scaling_group", result)
    }
}

/// The `async fn` names declared in `pub trait <name>` of a core source file.
fn trait_methods(source: &str, name: &str) -> Vec<String> {
    let start = source
        .find(&format!("pub trait {name}"))
        .unwrap_or_else(|| panic!("the source declares no trait {name}"));
    let body = &source[start..];
    let end = body.find("\n}\n").expect("the trait block ends");
    body[..end]
        .lines()
        .filter_map(|line| line.trim().strip_prefix("async fn "))
        .map(|rest| rest.split(['(', '<']).next().unwrap_or(rest).to_owned())
        .collect()
}

/// The counted method lists are exactly the traits' methods, in order.
#[test]
fn counted_methods_are_the_trait_methods() {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../amishare-core/src/store.rs");
    let source = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{path}: {e}"));
    assert_eq!(trait_methods(&source, "KeyStore"), KEY_STORE_METHODS);
    assert_eq!(trait_methods(&source, "ImageStore"), IMAGE_STORE_METHODS);
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../amishare-core/src/scaling.rs"
    );
    let scaling = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{path}: {e}"));
    assert_eq!(
        trait_methods(&scaling, "ScalingStore"),
        SCALING_STORE_METHODS
    );
    for method in MUTATING_METHODS {
        assert!(
            KEY_STORE_METHODS.contains(method)
                || IMAGE_STORE_METHODS.contains(method)
                || SCALING_STORE_METHODS.contains(method),
            "{method} is not a store method"
        );
    }
}

/// Calls are tallied per method and mutating ones are summed.
#[test]
fn calls_are_tallied() {
    let calls = Calls::default();
    let _ = calls.record("create_key", Ok(()));
    let _ = calls.record(
        "create_key",
        Err::<(), _>(amishare_core::Error::new(
            amishare_core::ErrorKind::Service,
            "boom",
        )),
    );
    let _ = calls.record("describe_key", Ok(()));
    assert_eq!(calls.mutating(), 2);
    assert!(!calls.missing().contains(&"create_key"));
    assert!(calls.missing().contains(&"ebs_defaults"));
    assert!(calls.report().contains("create_key: 1 ok, 1 failed"));
}

//! Seeded fault injection: throttling, transient server errors (before or
//! after the service acts), eventual consistency and failed copies, between
//! a flow and a [`SimClient`].
//!
//! [`Faulty`] answers as AWS does on a bad day: each call may be throttled
//! (`RequestLimitExceeded`, `ThrottlingException`) or fail with a 5xx
//! (`InternalError`, `KMSInternalException`) before it acts; a write that
//! repeats safely may act and then lose its answer; a key, alias, image,
//! launch permission or grant just made stays invisible to reads for a
//! while; a copy may go `failed`. The same seed gives the same faults, so a
//! failing run can be replayed.

use std::collections::BTreeMap;
use std::fmt;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use amishare_core::catalogue;
use amishare_core::ops::{Operation, Service};
use amishare_core::scaling::{
    Activity, Group, GroupRequest, LaunchTemplate, LaunchTemplateRequest, ScalingStore,
};
use amishare_core::store::{
    Caller, CopyImageRequest, CreateGrantRequest, CreateImageRequest, CreateKeyRequest,
    EbsDefaults, Grant, Image, ImageQuery, ImageStore, Instance, KeyMetadata, KeyStore,
    LaunchPermission, PermissionChange, RunInstancesRequest, Snapshot, VolumePermission,
};
use amishare_core::{
    AliasArn, AliasName, Error, ErrorKind, GrantId, ImageId, InstanceId, KeyArn, KeyId, KeyRef,
    PrincipalArn, Region, Result, SnapshotId,
};
use async_trait::async_trait;
use serde::Serialize;

use crate::client::SimClient;
use crate::errors;
use crate::world::World;

/// How often and how long things go wrong.
#[derive(Debug, Clone, PartialEq)]
pub struct Faults {
    /// Seeds the faults' generator.
    pub seed: u64,
    /// The chance that a call is throttled.
    pub throttle: f64,
    /// The chance that a call fails with a 5xx before the service acts.
    pub server_error: f64,
    /// The chance that a write whose repetition is safe, as the operation
    /// table says (`docs/spec/ops.md` §E2), acts and then fails with a 5xx,
    /// as when the answer is lost: `PutKeyPolicy`, `CreateAlias`,
    /// `CreateImage`, `CopyImage` and `RunInstances` with a client token,
    /// `CreateGrant` with a name, `TerminateInstances`, the permission
    /// changes and the deletions the flow settles. (`CreateKey` takes no
    /// client token, so a lost answer to it is not injected.)
    pub lost_answer: f64,
    /// How long a new key, alias, image, launch permission or grant stays
    /// invisible to reads.
    pub visibility_delay: Duration,
    /// The chance that a copy goes `failed` with an internal error.
    pub copy_failure: f64,
    /// Stops the caller after this many writes have acted: every later call
    /// fails, as if the process had died at that step boundary.
    pub crash_after: Option<usize>,
}

impl Faults {
    /// No faults at all.
    pub fn none(seed: u64) -> Faults {
        Faults {
            seed,
            throttle: 0.0,
            server_error: 0.0,
            lost_answer: 0.0,
            visibility_delay: Duration::ZERO,
            copy_failure: 0.0,
            crash_after: None,
        }
    }
}

/// What the faults did, summed over a run.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct FaultTally {
    /// Calls throttled.
    pub throttled: usize,
    /// Calls failed with a 5xx before acting.
    pub server_errors: usize,
    /// Writes that acted and then lost their answer.
    pub lost_answers: usize,
    /// Reads that did not see something new.
    pub hidden: usize,
    /// Copies made to fail.
    pub failed_copies: usize,
}

impl std::ops::AddAssign for FaultTally {
    fn add_assign(&mut self, other: FaultTally) {
        self.throttled += other.throttled;
        self.server_errors += other.server_errors;
        self.lost_answers += other.lost_answers;
        self.hidden += other.hidden;
        self.failed_copies += other.failed_copies;
    }
}

#[derive(Debug)]
struct Shared {
    faults: Faults,
    rng: u64,
    /// When each new thing was made, by its name: key ARNs and IDs, alias
    /// names in their region, image IDs, `image|permission`, grant IDs.
    made: BTreeMap<String, Duration>,
    tally: FaultTally,
    /// Writes that acted so far.
    acted: usize,
}

impl Shared {
    /// A uniform draw in `[0, 1)` (splitmix64).
    fn draw(&mut self) -> f64 {
        self.rng = self.rng.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.rng;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^= z >> 31;
        (z >> 11) as f64 / (1u64 << 53) as f64
    }

    fn hidden(&self, name: &str, now: Duration) -> bool {
        self.made
            .get(name)
            .is_some_and(|made| now < *made + self.faults.visibility_delay)
    }
}

/// A [`SimClient`] behind seeded faults. Clones share the faults, their
/// generator and what they made, so the owner's and the target's clients of
/// one run can share one `Faulty`'s state through [`Faulty::for_client`].
#[derive(Clone)]
pub struct Faulty {
    inner: SimClient,
    shared: Arc<Mutex<Shared>>,
}

impl fmt::Debug for Faulty {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Faulty")
            .field("principal", &self.inner.principal().as_str())
            .finish()
    }
}

impl Faulty {
    /// `client` behind `faults`.
    pub fn new(client: SimClient, faults: Faults) -> Faulty {
        let rng = faults.seed ^ 0x5851_f42d_4c95_7f2d;
        Faulty {
            inner: client,
            shared: Arc::new(Mutex::new(Shared {
                faults,
                rng,
                made: BTreeMap::new(),
                tally: FaultTally::default(),
                acted: 0,
            })),
        }
    }

    /// Another principal's client behind the same faults and generator.
    pub fn for_client(&self, client: SimClient) -> Faulty {
        Faulty {
            inner: client,
            shared: self.shared.clone(),
        }
    }

    /// What the faults did so far.
    pub fn tally(&self) -> FaultTally {
        self.lock().tally
    }

    /// Replaces the faults, keeping the generator and what was made.
    pub fn set_faults(&self, faults: Faults) {
        self.lock().faults = faults;
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Shared> {
        self.shared.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn world(&self) -> &World {
        self.inner.world()
    }

    /// Throttles the call or fails it with a 5xx before it acts, by chance,
    /// with the codes of the operation's service.
    fn before(&self, op: Operation) -> Result<()> {
        let mut shared = self.lock();
        if shared
            .faults
            .crash_after
            .is_some_and(|after| shared.acted >= after)
        {
            return Err(Error::new(
                ErrorKind::Service,
                format!("stopped after {} write(s)", shared.acted),
            ));
        }
        if shared.draw() < shared.faults.throttle {
            shared.tally.throttled += 1;
            let code = catalogue::throttle_code(op.service());
            let message = match op.service() {
                Service::Ec2 => "Request limit exceeded.",
                _ => "Rate exceeded",
            };
            return Err(catalogue::error(code, message));
        }
        if shared.draw() < shared.faults.server_error {
            shared.tally.server_errors += 1;
            return Err(server_error(op));
        }
        Ok(())
    }

    /// Counts a write that acted, and turns its success into a lost answer
    /// by chance when the operation table says a repeat is safe (`keyed`:
    /// the request carries the client token or grant name its row asks for).
    fn after<T>(&self, op: Operation, keyed: bool, result: Result<T>) -> Result<T> {
        let value = result?;
        let mut shared = self.lock();
        shared.acted += 1;
        if op.repeat().is_safe(keyed) && shared.draw() < shared.faults.lost_answer {
            shared.tally.lost_answers += 1;
            return Err(server_error(op));
        }
        Ok(value)
    }

    /// Notes that `names` were made now.
    fn made(&self, names: impl IntoIterator<Item = String>) {
        let now = self.world().now();
        let mut shared = self.lock();
        for name in names {
            shared.made.entry(name).or_insert(now);
        }
    }

    /// Whether `name` is still invisible, counting the read it hides from.
    fn hides(&self, name: &str) -> bool {
        let now = self.world().now();
        let mut shared = self.lock();
        let hidden = shared.hidden(name, now);
        if hidden {
            shared.tally.hidden += 1;
        }
        hidden
    }

    /// KMS's `NotFoundException` for a key or alias that is still invisible.
    fn hide_key(&self, region: &Region, key: &KeyRef) -> Result<()> {
        let account = || self.inner.principal().account().clone();
        let alias_arn = |alias: &AliasName| AliasArn::new(region.clone(), account(), alias.clone());
        let name = match key {
            KeyRef::Alias(alias) => alias_name(region, alias),
            KeyRef::AliasArn(arn) => alias_name(arn.region(), arn.alias()),
            KeyRef::Id(id) => id.to_string(),
            KeyRef::Arn(arn) => arn.to_string(),
        };
        if !self.hides(&name) {
            return Ok(());
        }
        Err(match key {
            KeyRef::Alias(alias) => errors::alias_not_found(&alias_arn(alias)),
            KeyRef::AliasArn(arn) => errors::alias_not_found(arn),
            KeyRef::Id(id) => {
                errors::key_not_found(&KeyArn::new(region.clone(), account(), id.clone()))
            }
            KeyRef::Arn(arn) => errors::key_not_found(arn),
        })
    }

    fn hide_key_arn(&self, key: &KeyArn) -> Result<()> {
        self.hide_key(key.region(), &KeyRef::Arn(key.clone()))
    }
}

/// The 5xx of the operation's service.
fn server_error(op: Operation) -> Error {
    catalogue::error(
        catalogue::internal_code(op.service()),
        "An internal error has occurred",
    )
}

fn alias_name(region: &Region, alias: &AliasName) -> String {
    format!("{region}|{alias}")
}

fn permission_name(image: &ImageId, permission: &LaunchPermission) -> String {
    format!("{image}|{permission}")
}

#[async_trait]
impl KeyStore for Faulty {
    async fn caller(&self) -> Result<Caller> {
        self.inner.caller().await
    }
    async fn create_key(&self, region: &Region, request: &CreateKeyRequest) -> Result<KeyMetadata> {
        self.before(Operation::CreateKey)?;
        let meta = self.after(
            Operation::CreateKey,
            false,
            self.inner.create_key(region, request).await,
        )?;
        self.made([meta.arn.to_string(), meta.key_id().to_string()]);
        Ok(meta)
    }
    async fn describe_key(&self, region: &Region, key: &KeyRef) -> Result<KeyMetadata> {
        self.before(Operation::DescribeKey)?;
        self.hide_key(region, key)?;
        let meta = self.inner.describe_key(region, key).await?;
        self.hide_key_arn(&meta.arn)?;
        Ok(meta)
    }
    async fn create_alias(&self, region: &Region, alias: &AliasName, key: &KeyId) -> Result<()> {
        self.before(Operation::CreateAlias)?;
        self.hide_key(region, &KeyRef::Id(key.clone()))?;
        let result = self.inner.create_alias(region, alias, key).await;
        if result.is_ok() {
            self.made([alias_name(region, alias)]);
        }
        self.after(Operation::CreateAlias, false, result)
    }
    async fn get_key_policy(&self, key: &KeyArn) -> Result<String> {
        self.before(Operation::GetKeyPolicy)?;
        self.hide_key_arn(key)?;
        self.inner.get_key_policy(key).await
    }
    async fn put_key_policy(&self, key: &KeyArn, policy: &str) -> Result<()> {
        self.before(Operation::PutKeyPolicy)?;
        self.hide_key_arn(key)?;
        let result = self.inner.put_key_policy(key, policy).await;
        self.after(Operation::PutKeyPolicy, false, result)
    }
    async fn list_grants(&self, key: &KeyArn) -> Result<Vec<Grant>> {
        self.before(Operation::ListGrants)?;
        self.hide_key_arn(key)?;
        let grants = self.inner.list_grants(key).await?;
        Ok(grants
            .into_iter()
            .filter(|grant| !self.hides(grant.id.as_str()))
            .collect())
    }
    async fn create_grant(&self, key: &KeyArn, request: &CreateGrantRequest) -> Result<GrantId> {
        self.before(Operation::CreateGrant)?;
        let id = self.after(
            Operation::CreateGrant,
            request.name.is_some(),
            self.inner.create_grant(key, request).await,
        )?;
        self.made([id.to_string()]);
        Ok(id)
    }
    async fn list_keys(&self, region: &Region) -> Result<Option<Vec<KeyArn>>> {
        self.before(Operation::ListKeys)?;
        let keys = KeyStore::list_keys(&self.inner, region).await?;
        Ok(keys.map(|keys| {
            keys.into_iter()
                .filter(|key| !self.hides(&key.to_string()))
                .collect()
        }))
    }
    async fn list_resource_tags(&self, key: &KeyArn) -> Result<BTreeMap<String, String>> {
        self.before(Operation::ListResourceTags)?;
        self.hide_key_arn(key)?;
        KeyStore::list_resource_tags(&self.inner, key).await
    }
    async fn revoke_grant(&self, key: &KeyArn, grant: &GrantId) -> Result<()> {
        self.before(Operation::RevokeGrant)?;
        let result = self.inner.revoke_grant(key, grant).await;
        self.after(Operation::RevokeGrant, false, result)
    }
    async fn list_retirable_grants(
        &self,
        region: &Region,
        retiring: &PrincipalArn,
    ) -> Result<Vec<Grant>> {
        self.before(Operation::ListRetirableGrants)?;
        let grants = KeyStore::list_retirable_grants(&self.inner, region, retiring).await?;
        Ok(grants
            .into_iter()
            .filter(|grant| !self.hides(grant.id.as_str()))
            .collect())
    }
}

#[async_trait]
impl ScalingStore for Faulty {
    async fn create_launch_template(
        &self,
        region: &Region,
        request: &LaunchTemplateRequest,
    ) -> Result<LaunchTemplate> {
        self.before(Operation::CreateLaunchTemplate)?;
        let result = self.inner.create_launch_template(region, request).await;
        self.after(
            Operation::CreateLaunchTemplate,
            request.client_token.is_some(),
            result,
        )
    }
    async fn describe_launch_templates(
        &self,
        region: &Region,
        names: &[String],
    ) -> Result<Vec<LaunchTemplate>> {
        self.before(Operation::DescribeLaunchTemplates)?;
        self.inner.describe_launch_templates(region, names).await
    }
    async fn delete_launch_template(&self, region: &Region, name: &str) -> Result<()> {
        self.before(Operation::DeleteLaunchTemplate)?;
        let result = self.inner.delete_launch_template(region, name).await;
        self.after(Operation::DeleteLaunchTemplate, false, result)
    }
    async fn create_auto_scaling_group(
        &self,
        region: &Region,
        request: &GroupRequest,
    ) -> Result<()> {
        self.before(Operation::CreateAutoScalingGroup)?;
        let result = self.inner.create_auto_scaling_group(region, request).await;
        self.after(Operation::CreateAutoScalingGroup, false, result)
    }
    async fn describe_auto_scaling_groups(
        &self,
        region: &Region,
        names: &[String],
    ) -> Result<Vec<Group>> {
        self.before(Operation::DescribeAutoScalingGroups)?;
        self.inner.describe_auto_scaling_groups(region, names).await
    }
    async fn describe_scaling_activities(
        &self,
        region: &Region,
        group: &str,
    ) -> Result<Vec<Activity>> {
        self.before(Operation::DescribeScalingActivities)?;
        self.inner.describe_scaling_activities(region, group).await
    }
    async fn delete_auto_scaling_group(
        &self,
        region: &Region,
        name: &str,
        force: bool,
    ) -> Result<()> {
        self.before(Operation::DeleteAutoScalingGroup)?;
        let result = self
            .inner
            .delete_auto_scaling_group(region, name, force)
            .await;
        self.after(Operation::DeleteAutoScalingGroup, false, result)
    }
}

#[async_trait]
impl ImageStore for Faulty {
    async fn describe_instances(
        &self,
        region: &Region,
        ids: &[InstanceId],
    ) -> Result<Vec<Instance>> {
        self.before(Operation::DescribeInstances)?;
        self.inner.describe_instances(region, ids).await
    }
    async fn create_image(&self, region: &Region, request: &CreateImageRequest) -> Result<ImageId> {
        self.before(Operation::CreateImage)?;
        let result = self.inner.create_image(region, request).await;
        if let Ok(id) = &result {
            self.made([id.to_string()]);
        }
        self.after(Operation::CreateImage, false, result)
    }
    async fn copy_image(&self, region: &Region, request: &CopyImageRequest) -> Result<ImageId> {
        self.before(Operation::CopyImage)?;
        let result = self.inner.copy_image(region, request).await;
        if let Ok(id) = &result {
            // A repeat with the same client token returns the copy already
            // made: only a new copy may be made to fail.
            let now = self.world().now();
            let fail = {
                let mut shared = self.lock();
                let new = !shared.made.contains_key(id.as_str());
                shared.made.entry(id.to_string()).or_insert(now);
                let fail = new && shared.draw() < shared.faults.copy_failure;
                if fail {
                    shared.tally.failed_copies += 1;
                }
                fail
            };
            if fail {
                self.world().fail_image(id)?;
            }
        }
        self.after(Operation::CopyImage, request.client_token.is_some(), result)
    }
    async fn describe_images(&self, region: &Region, query: &ImageQuery) -> Result<Vec<Image>> {
        self.before(Operation::DescribeImages)?;
        let hidden: Vec<&ImageId> = query
            .image_ids
            .iter()
            .filter(|id| self.hides(id.as_str()))
            .collect();
        if !hidden.is_empty() {
            return Err(errors::images_not_found(&hidden));
        }
        let images = self.inner.describe_images(region, query).await?;
        Ok(images
            .into_iter()
            .filter(|image| !self.hides(image.id.as_str()))
            .collect())
    }
    async fn describe_snapshots(
        &self,
        region: &Region,
        ids: &[SnapshotId],
    ) -> Result<Vec<Snapshot>> {
        self.before(Operation::DescribeSnapshots)?;
        self.inner.describe_snapshots(region, ids).await
    }
    async fn modify_launch_permission(
        &self,
        region: &Region,
        image: &ImageId,
        change: &PermissionChange<LaunchPermission>,
    ) -> Result<()> {
        self.before(Operation::ModifyImageAttribute)?;
        let result = self
            .inner
            .modify_launch_permission(region, image, change)
            .await;
        if result.is_ok() {
            self.made(change.add.iter().map(|p| permission_name(image, p)));
        }
        self.after(Operation::ModifyImageAttribute, false, result)
    }
    async fn describe_launch_permission(
        &self,
        region: &Region,
        image: &ImageId,
    ) -> Result<Vec<LaunchPermission>> {
        self.before(Operation::DescribeImageAttribute)?;
        let permissions = self.inner.describe_launch_permission(region, image).await?;
        Ok(permissions
            .into_iter()
            .filter(|p| !self.hides(&permission_name(image, p)))
            .collect())
    }
    async fn modify_create_volume_permission(
        &self,
        region: &Region,
        snapshot: &SnapshotId,
        change: &PermissionChange<VolumePermission>,
    ) -> Result<()> {
        self.before(Operation::ModifySnapshotAttribute)?;
        let result = self
            .inner
            .modify_create_volume_permission(region, snapshot, change)
            .await;
        self.after(Operation::ModifySnapshotAttribute, false, result)
    }
    async fn describe_create_volume_permission(
        &self,
        region: &Region,
        snapshot: &SnapshotId,
    ) -> Result<Vec<VolumePermission>> {
        self.before(Operation::DescribeSnapshotAttribute)?;
        self.inner
            .describe_create_volume_permission(region, snapshot)
            .await
    }
    async fn run_instances(
        &self,
        region: &Region,
        request: &RunInstancesRequest,
    ) -> Result<Instance> {
        self.before(Operation::RunInstances)?;
        let result = self.inner.run_instances(region, request).await;
        self.after(
            Operation::RunInstances,
            request.client_token.is_some(),
            result,
        )
    }
    async fn terminate_instances(&self, region: &Region, ids: &[InstanceId]) -> Result<()> {
        self.before(Operation::TerminateInstances)?;
        let result = self.inner.terminate_instances(region, ids).await;
        self.after(Operation::TerminateInstances, false, result)
    }
    async fn deregister_image(
        &self,
        region: &Region,
        image: &ImageId,
        delete_snapshots: bool,
    ) -> Result<()> {
        self.before(Operation::DeregisterImage)?;
        let result = self
            .inner
            .deregister_image(region, image, delete_snapshots)
            .await;
        self.after(Operation::DeregisterImage, false, result)
    }
    async fn delete_snapshot(&self, region: &Region, snapshot: &SnapshotId) -> Result<()> {
        self.before(Operation::DeleteSnapshot)?;
        let result = self.inner.delete_snapshot(region, snapshot).await;
        self.after(Operation::DeleteSnapshot, false, result)
    }
    async fn ebs_defaults(&self, region: &Region) -> Result<EbsDefaults> {
        self.before(Operation::GetEbsEncryptionByDefault)?;
        self.inner.ebs_defaults(region).await
    }
}

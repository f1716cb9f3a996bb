//! Retries of single calls: throttling and transient service errors are
//! retried with capped exponential backoff and full jitter, up to a number of
//! attempts and a deadline, on the flow's clock.
//!
//! A call is retried only when repeating it is safe. Throttling is always
//! safe: the service refused the request before acting on it. A transient
//! service error (a 5xx) may come after the service acted, so it is retried
//! only for reads and for writes whose repetition changes nothing more
//! (`PutKeyPolicy` with the same document, adding a permission that is
//! already there, `CopyImage` with the same client token); `CreateKey`,
//! `CreateGrant` and `RunInstances` are retried only when throttled, and the
//! flow finds or reports what a failed one may have left.

use std::collections::BTreeMap;
use std::future::Future;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;

use crate::error::{Error, ErrorKind, Exhausted, Result};
use crate::id::{
    AliasName, GrantId, ImageId, InstanceId, KeyArn, KeyId, KeyRef, PrincipalArn, Region,
    SnapshotId,
};
use crate::model::{
    Caller, CopyImageRequest, CreateGrantRequest, CreateImageRequest, CreateKeyRequest,
    EbsDefaults, Grant, Image, ImageQuery, Instance, KeyMetadata, LaunchPermission,
    PermissionChange, RunInstancesRequest, Snapshot, VolumePermission,
};
use crate::scaling::{
    Activity, Group, GroupRequest, LaunchTemplate, LaunchTemplateRequest, ScalingStore,
};
use crate::store::{Clock, ImageStore, KeyStore};

/// How calls are retried, and how long something just made may stay
/// invisible to reads (KMS and EC2 are eventually consistent).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryOptions {
    /// Most attempts of one call, the first included; 1 turns retries off.
    pub max_attempts: u32,
    /// The backoff before the second attempt; it doubles with each attempt.
    pub base_delay: Duration,
    /// The longest backoff between two attempts.
    pub max_delay: Duration,
    /// How long one call may go on retrying, from its first attempt.
    pub deadline: Duration,
    /// How long a key, alias or image the flow has just made may be missing
    /// from reads before the flow treats "not found" as final.
    pub settle: Duration,
    /// How many copies of an image the flow makes before it gives up on one
    /// that keeps going `failed`; each failed copy is deregistered.
    pub copy_attempts: u32,
}

impl Default for RetryOptions {
    fn default() -> Self {
        // The AWS SDKs' standard mode backs off from 1 s to 20 s; more
        // attempts, because a share waits hours for its copies anyway and a
        // throttled call is cheaper to repeat than a share to restart.
        RetryOptions {
            max_attempts: 8,
            base_delay: Duration::from_secs(1),
            max_delay: Duration::from_secs(20),
            deadline: Duration::from_secs(120),
            settle: Duration::from_secs(60),
            copy_attempts: 3,
        }
    }
}

impl RetryOptions {
    /// No retries, and "not found" is final at once.
    pub fn none() -> RetryOptions {
        RetryOptions {
            max_attempts: 1,
            settle: Duration::ZERO,
            copy_attempts: 1,
            ..RetryOptions::default()
        }
    }
}

/// Whether repeating a call after a transient service error is safe.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Repeat {
    /// A read, or a write that changes nothing more when repeated.
    Safe,
    /// A write that may act twice: retried only when throttled.
    Unsafe,
}

/// Whether `err` is worth another attempt of a call that repeats as `repeat`.
fn retryable(err: &Error, repeat: Repeat) -> bool {
    match repeat {
        Repeat::Safe => err.is_retryable(),
        Repeat::Unsafe => err.kind() == ErrorKind::Throttled,
    }
}

/// The call being retried, as an error names it once the budget is spent.
struct Call<'a> {
    operation: &'static str,
    resource: Option<String>,
    region: Option<&'a Region>,
}

impl<'a> Call<'a> {
    /// A call that names no resource (`GetCallerIdentity`, `ListKeys`, `CreateKey`).
    fn new(operation: &'static str, region: Option<&'a Region>) -> Call<'a> {
        Call {
            operation,
            resource: None,
            region,
        }
    }

    /// A call on `resource`.
    fn on(
        operation: &'static str,
        region: Option<&'a Region>,
        resource: impl std::fmt::Display,
    ) -> Call<'a> {
        Call {
            operation,
            resource: Some(resource.to_string()),
            region,
        }
    }

    /// A call on each of `ids`, or on none when there are none.
    fn on_each<T: std::fmt::Display>(
        operation: &'static str,
        region: &'a Region,
        ids: &[T],
    ) -> Call<'a> {
        let resource = (!ids.is_empty()).then(|| {
            ids.iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
                .join(", ")
        });
        Call {
            operation,
            resource,
            region: Some(region),
        }
    }
}

/// A [`KeyStore`] and [`ImageStore`] that retries the calls of the stores it
/// wraps as [`RetryOptions`] say, sleeping on a [`Clock`].
#[derive(Debug, Clone)]
pub struct Retrying {
    keys: Arc<dyn KeyStore>,
    images: Arc<dyn ImageStore>,
    /// Auto Scaling and launch templates, when the flow launches through them.
    scaling: Option<Arc<dyn ScalingStore>>,
    clock: Arc<dyn Clock>,
    options: RetryOptions,
    /// The jitter's generator: seeded, so a simulated run repeats exactly.
    rng: Arc<AtomicU64>,
    /// Writes sent so far, by this value and its clones.
    writes: Arc<AtomicUsize>,
}

impl Retrying {
    /// Wraps `keys` and `images`.
    pub fn new(
        keys: Arc<dyn KeyStore>,
        images: Arc<dyn ImageStore>,
        clock: Arc<dyn Clock>,
        options: RetryOptions,
    ) -> Retrying {
        Retrying {
            keys,
            images,
            scaling: None,
            clock,
            options,
            rng: Arc::new(AtomicU64::new(0x9e37_79b9_7f4a_7c15)),
            writes: Arc::new(AtomicUsize::new(0)),
        }
    }

    /// How many calls that change something (or may) were sent through
    /// these stores and their clones, retries not counted.
    pub fn writes(&self) -> usize {
        self.writes.load(Ordering::Relaxed)
    }

    /// Adds an Auto Scaling store, retried like the others.
    pub fn with_scaling(mut self, scaling: Arc<dyn ScalingStore>) -> Retrying {
        self.scaling = Some(scaling);
        self
    }

    /// Whether an Auto Scaling store was given.
    pub fn has_scaling(&self) -> bool {
        self.scaling.is_some()
    }

    /// The Auto Scaling store, or why there is none.
    fn scaling(&self) -> Result<&Arc<dyn ScalingStore>> {
        self.scaling.as_ref().ok_or_else(|| {
            Error::new(
                ErrorKind::Unsupported,
                "launching through Auto Scaling needs an Auto Scaling store, and none was given",
            )
        })
    }

    /// The same stores under other options.
    pub fn with_options(&self, options: RetryOptions) -> Retrying {
        Retrying {
            options,
            ..self.clone()
        }
    }

    /// The options in force.
    pub fn options(&self) -> RetryOptions {
        self.options
    }

    /// The backoff before attempt `attempt + 1`: uniform in
    /// `[0, min(max_delay, base_delay × 2^(attempt-1))]` ("full jitter"), so
    /// that callers throttled together do not retry together.
    fn backoff(&self, attempt: u32) -> Duration {
        let cap = self
            .options
            .base_delay
            .saturating_mul(1u32 << (attempt - 1).min(20))
            .min(self.options.max_delay);
        let x = self
            .rng
            .fetch_add(0x9e37_79b9_7f4a_7c15, Ordering::Relaxed)
            .wrapping_add(0x9e37_79b9_7f4a_7c15);
        // splitmix64's finalizer.
        let mut z = x;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^= z >> 31;
        cap.mul_f64((z >> 11) as f64 / (1u64 << 53) as f64)
    }

    /// [`Retrying::run`] for a call that changes something, counted.
    async fn write<T, F, Fut>(&self, call: Call<'_>, repeat: Repeat, send: F) -> Result<T>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = Result<T>>,
    {
        self.writes.fetch_add(1, Ordering::Relaxed);
        self.run(call, repeat, send).await
    }

    /// Sends `call` until it succeeds, fails in a way not worth repeating,
    /// or spends the budget; an error worth repeating that spent it names
    /// the call and the attempts made ([`Error::retries_exhausted`]).
    async fn run<T, F, Fut>(&self, call: Call<'_>, repeat: Repeat, mut send: F) -> Result<T>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = Result<T>>,
    {
        let operation = call.operation;
        let start = self.clock.now();
        let mut attempt = 1;
        loop {
            let err = match send().await {
                Ok(value) => return Ok(value),
                Err(err) => err,
            };
            if !retryable(&err, repeat) {
                return Err(err);
            }
            let elapsed = self.clock.now().saturating_sub(start);
            let spent = |err: Error| {
                err.with_exhausted(Exhausted {
                    operation,
                    resource: call.resource.clone(),
                    region: call.region.cloned(),
                    attempts: attempt,
                    elapsed,
                })
            };
            if attempt >= self.options.max_attempts {
                return Err(spent(err));
            }
            let delay = self.backoff(attempt);
            if elapsed + delay > self.options.deadline {
                return Err(spent(err));
            }
            tracing::debug!(operation, attempt, delay_ms = delay.as_millis() as u64, error = %err, "retrying");
            self.clock.sleep(delay).await;
            attempt += 1;
        }
    }
}

/// Repeats `call` while it fails with "not found", for up to `options.settle`:
/// for a read of something the flow has just made, which an eventually
/// consistent service may not show yet.
pub(crate) async fn settled<T, F, Fut>(
    clock: &dyn Clock,
    options: &RetryOptions,
    mut call: F,
) -> Result<T>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T>>,
{
    let start = clock.now();
    let mut delay = Duration::from_secs(1);
    loop {
        match call().await {
            Err(err) if err.kind() == ErrorKind::NotFound => {
                let elapsed = clock.now().saturating_sub(start);
                if elapsed + delay > options.settle {
                    return Err(err);
                }
                tracing::debug!(error = %err, "not visible yet");
                clock.sleep(delay).await;
                delay = (delay * 2).min(options.max_delay);
            }
            other => return other,
        }
    }
}

#[async_trait]
impl KeyStore for Retrying {
    async fn caller(&self) -> Result<Caller> {
        self.run(Call::new("GetCallerIdentity", None), Repeat::Safe, || {
            self.keys.caller()
        })
        .await
    }
    async fn create_key(&self, region: &Region, request: &CreateKeyRequest) -> Result<KeyMetadata> {
        self.write(Call::new("CreateKey", Some(region)), Repeat::Unsafe, || {
            self.keys.create_key(region, request)
        })
        .await
    }
    async fn describe_key(&self, region: &Region, key: &KeyRef) -> Result<KeyMetadata> {
        self.run(
            Call::on("DescribeKey", Some(region), key),
            Repeat::Safe,
            || self.keys.describe_key(region, key),
        )
        .await
    }
    async fn create_alias(&self, region: &Region, alias: &AliasName, key: &KeyId) -> Result<()> {
        // A repeat after a lost answer meets the alias it made: the flow
        // checks where an existing alias points.
        self.write(
            Call::on("CreateAlias", Some(region), alias),
            Repeat::Safe,
            || self.keys.create_alias(region, alias, key),
        )
        .await
    }
    async fn get_key_policy(&self, key: &KeyArn) -> Result<String> {
        self.run(Call::on("GetKeyPolicy", None, key), Repeat::Safe, || {
            self.keys.get_key_policy(key)
        })
        .await
    }
    async fn put_key_policy(&self, key: &KeyArn, policy: &str) -> Result<()> {
        self.write(Call::on("PutKeyPolicy", None, key), Repeat::Safe, || {
            self.keys.put_key_policy(key, policy)
        })
        .await
    }
    async fn list_grants(&self, key: &KeyArn) -> Result<Vec<Grant>> {
        self.run(Call::on("ListGrants", None, key), Repeat::Safe, || {
            self.keys.list_grants(key)
        })
        .await
    }
    async fn create_grant(&self, key: &KeyArn, request: &CreateGrantRequest) -> Result<GrantId> {
        self.write(Call::on("CreateGrant", None, key), Repeat::Unsafe, || {
            self.keys.create_grant(key, request)
        })
        .await
    }
    async fn list_keys(&self, region: &Region) -> Result<Option<Vec<KeyArn>>> {
        self.run(Call::new("ListKeys", Some(region)), Repeat::Safe, || {
            self.keys.list_keys(region)
        })
        .await
    }
    async fn list_resource_tags(&self, key: &KeyArn) -> Result<BTreeMap<String, String>> {
        self.run(
            Call::on("ListResourceTags", None, key),
            Repeat::Safe,
            || self.keys.list_resource_tags(key),
        )
        .await
    }
    async fn revoke_grant(&self, key: &KeyArn, grant: &GrantId) -> Result<()> {
        self.write(
            Call::on("RevokeGrant", None, format!("{grant} on {key}")),
            Repeat::Safe,
            || self.keys.revoke_grant(key, grant),
        )
        .await
    }
    async fn list_retirable_grants(
        &self,
        region: &Region,
        retiring: &PrincipalArn,
    ) -> Result<Vec<Grant>> {
        self.run(
            Call::on("ListRetirableGrants", Some(region), retiring),
            Repeat::Safe,
            || self.keys.list_retirable_grants(region, retiring),
        )
        .await
    }
}

#[async_trait]
impl ImageStore for Retrying {
    async fn describe_instances(
        &self,
        region: &Region,
        ids: &[InstanceId],
    ) -> Result<Vec<Instance>> {
        self.run(
            Call::on_each("DescribeInstances", region, ids),
            Repeat::Safe,
            || self.images.describe_instances(region, ids),
        )
        .await
    }
    async fn create_image(&self, region: &Region, request: &CreateImageRequest) -> Result<ImageId> {
        // A repeat after a lost answer is refused as a duplicate name, and
        // the flow then adopts the image by its tag.
        self.write(
            Call::on("CreateImage", Some(region), &request.instance),
            Repeat::Safe,
            || self.images.create_image(region, request),
        )
        .await
    }
    async fn copy_image(&self, region: &Region, request: &CopyImageRequest) -> Result<ImageId> {
        let repeat = if request.client_token.is_some() {
            Repeat::Safe
        } else {
            Repeat::Unsafe
        };
        self.write(
            Call::on("CopyImage", Some(region), &request.source_image),
            repeat,
            || self.images.copy_image(region, request),
        )
        .await
    }
    async fn describe_images(&self, region: &Region, query: &ImageQuery) -> Result<Vec<Image>> {
        self.run(
            Call::on_each("DescribeImages", region, &query.image_ids),
            Repeat::Safe,
            || self.images.describe_images(region, query),
        )
        .await
    }
    async fn describe_snapshots(
        &self,
        region: &Region,
        ids: &[SnapshotId],
    ) -> Result<Vec<Snapshot>> {
        self.run(
            Call::on_each("DescribeSnapshots", region, ids),
            Repeat::Safe,
            || self.images.describe_snapshots(region, ids),
        )
        .await
    }
    async fn modify_launch_permission(
        &self,
        region: &Region,
        image: &ImageId,
        change: &PermissionChange<LaunchPermission>,
    ) -> Result<()> {
        self.write(
            Call::on("ModifyImageAttribute", Some(region), image),
            Repeat::Safe,
            || self.images.modify_launch_permission(region, image, change),
        )
        .await
    }
    async fn describe_launch_permission(
        &self,
        region: &Region,
        image: &ImageId,
    ) -> Result<Vec<LaunchPermission>> {
        self.run(
            Call::on("DescribeImageAttribute", Some(region), image),
            Repeat::Safe,
            || self.images.describe_launch_permission(region, image),
        )
        .await
    }
    async fn modify_create_volume_permission(
        &self,
        region: &Region,
        snapshot: &SnapshotId,
        change: &PermissionChange<VolumePermission>,
    ) -> Result<()> {
        self.write(
            Call::on("ModifySnapshotAttribute", Some(region), snapshot),
            Repeat::Safe,
            || {
                self.images
                    .modify_create_volume_permission(region, snapshot, change)
            },
        )
        .await
    }
    async fn describe_create_volume_permission(
        &self,
        region: &Region,
        snapshot: &SnapshotId,
    ) -> Result<Vec<VolumePermission>> {
        self.run(
            Call::on("DescribeSnapshotAttribute", Some(region), snapshot),
            Repeat::Safe,
            || {
                self.images
                    .describe_create_volume_permission(region, snapshot)
            },
        )
        .await
    }
    async fn run_instances(
        &self,
        region: &Region,
        request: &RunInstancesRequest,
    ) -> Result<Instance> {
        let repeat = if request.client_token.is_some() {
            Repeat::Safe
        } else {
            Repeat::Unsafe
        };
        self.write(
            Call::on("RunInstances", Some(region), &request.image),
            repeat,
            || self.images.run_instances(region, request),
        )
        .await
    }
    async fn terminate_instances(&self, region: &Region, ids: &[InstanceId]) -> Result<()> {
        self.write(
            Call::on_each("TerminateInstances", region, ids),
            Repeat::Safe,
            || self.images.terminate_instances(region, ids),
        )
        .await
    }
    async fn deregister_image(
        &self,
        region: &Region,
        image: &ImageId,
        delete_snapshots: bool,
    ) -> Result<()> {
        // A repeat after a lost answer finds the image gone, which the flow
        // takes as done.
        self.write(
            Call::on("DeregisterImage", Some(region), image),
            Repeat::Safe,
            || {
                self.images
                    .deregister_image(region, image, delete_snapshots)
            },
        )
        .await
    }
    async fn delete_snapshot(&self, region: &Region, snapshot: &SnapshotId) -> Result<()> {
        self.write(
            Call::on("DeleteSnapshot", Some(region), snapshot),
            Repeat::Unsafe,
            || self.images.delete_snapshot(region, snapshot),
        )
        .await
    }
    async fn ebs_defaults(&self, region: &Region) -> Result<EbsDefaults> {
        self.run(
            Call::new("GetEbsDefaultKmsKeyId", Some(region)),
            Repeat::Safe,
            || self.images.ebs_defaults(region),
        )
        .await
    }
}

#[async_trait]
impl ScalingStore for Retrying {
    async fn create_launch_template(
        &self,
        region: &Region,
        request: &LaunchTemplateRequest,
    ) -> Result<LaunchTemplate> {
        let scaling = self.scaling()?;
        // With a client token a repeat returns the template the first made.
        let repeat = if request.client_token.is_some() {
            Repeat::Safe
        } else {
            Repeat::Unsafe
        };
        self.write(
            Call::on("CreateLaunchTemplate", Some(region), &request.name),
            repeat,
            || scaling.create_launch_template(region, request),
        )
        .await
    }
    async fn describe_launch_templates(
        &self,
        region: &Region,
        names: &[String],
    ) -> Result<Vec<LaunchTemplate>> {
        let scaling = self.scaling()?;
        self.run(
            Call::on_each("DescribeLaunchTemplates", region, names),
            Repeat::Safe,
            || scaling.describe_launch_templates(region, names),
        )
        .await
    }
    async fn delete_launch_template(&self, region: &Region, name: &str) -> Result<()> {
        let scaling = self.scaling()?;
        // A repeat after a lost answer finds it gone, which the flow takes as done.
        self.write(
            Call::on("DeleteLaunchTemplate", Some(region), name),
            Repeat::Safe,
            || scaling.delete_launch_template(region, name),
        )
        .await
    }
    async fn create_auto_scaling_group(
        &self,
        region: &Region,
        request: &GroupRequest,
    ) -> Result<()> {
        let scaling = self.scaling()?;
        // A repeat is refused with AlreadyExists, which the flow settles by
        // looking the group up; a 5xx may have created it.
        self.write(
            Call::on("CreateAutoScalingGroup", Some(region), &request.name),
            Repeat::Unsafe,
            || scaling.create_auto_scaling_group(region, request),
        )
        .await
    }
    async fn describe_auto_scaling_groups(
        &self,
        region: &Region,
        names: &[String],
    ) -> Result<Vec<Group>> {
        let scaling = self.scaling()?;
        self.run(
            Call::on_each("DescribeAutoScalingGroups", region, names),
            Repeat::Safe,
            || scaling.describe_auto_scaling_groups(region, names),
        )
        .await
    }
    async fn describe_scaling_activities(
        &self,
        region: &Region,
        group: &str,
    ) -> Result<Vec<Activity>> {
        let scaling = self.scaling()?;
        self.run(
            Call::on("DescribeScalingActivities", Some(region), group),
            Repeat::Safe,
            || scaling.describe_scaling_activities(region, group),
        )
        .await
    }
    async fn delete_auto_scaling_group(
        &self,
        region: &Region,
        name: &str,
        force: bool,
    ) -> Result<()> {
        let scaling = self.scaling()?;
        // A repeat after a lost answer finds the group gone (or going).
        self.write(
            Call::on("DeleteAutoScalingGroup", Some(region), name),
            Repeat::Safe,
            || scaling.delete_auto_scaling_group(region, name, force),
        )
        .await
    }
}

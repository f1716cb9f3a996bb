//! The cross-account sharing flow over any [`KeyStore`] and [`ImageStore`].
//!
//! Owner side ([`Sharer::share`]): resolve or create the key, merge the
//! least-privilege statements into its policy, image the instance if asked,
//! copy the image encrypted under the key, verify every snapshot's key (a
//! hard gate: nothing is granted before it passes), then grant launch and,
//! if asked, create-volume permissions. Each step first looks at what is
//! there, so a rerun finds what an earlier run made and changes nothing.
//!
//! Target side ([`Sharer::accept`]): check key access with `DescribeKey` on
//! the key ARN, find the image, launch a smoke instance and wait for it to
//! run, and optionally copy the image re-encrypted under the target's key.

mod request;
mod wait;

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Debug;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use async_trait::async_trait;
use futures::future::join_all;
use tracing::info;

pub use self::request::*;
use self::wait::{fnv1a, poll_until, Pending, Poll};
use crate::error::{Error, ErrorKind, Result};
use crate::id::{AccountId, ImageId, InstanceId, KeyArn, KeyRef, Region, SnapshotId};
use crate::model::{
    Caller, CopyImageRequest, CreateImageRequest, CreateKeyRequest, Image, ImageOwner, ImageQuery,
    ImageState, InstanceState, KeyManager, KeyMetadata, KeyState, LaunchPermission,
    PermissionChange, RunInstancesRequest, VolumePermission,
};
use crate::store::{Clock, ImageStore, KeyStore};

/// Tag on every image amishare makes, naming the image it came from.
pub const TAG_SOURCE_IMAGE: &str = "amishare:source-image";
/// Tag on a copy, naming the key it is encrypted with.
pub const TAG_KEY: &str = "amishare:key";
/// Tag on an image amishare made from an instance, naming the instance.
pub const TAG_SOURCE_INSTANCE: &str = "amishare:source-instance";

/// Most entries one ModifyImageAttribute call carries; AWS allows 1,000 per image.
const LAUNCH_PERMISSION_BATCH: usize = 500;

/// The sharing flow, as a role: owner side and target side.
#[cfg_attr(any(test, feature = "mock"), mockall::automock)]
#[async_trait]
pub trait Sharer: Send + Sync + Debug {
    /// Owner side: share an image with targets.
    async fn share(&self, request: &ShareRequest) -> Result<ShareReport>;

    /// Target side: check access to a shared image, launch and copy it.
    async fn accept(&self, request: &AcceptRequest) -> Result<AcceptReport>;

    /// Owner side: remove what a share added.
    async fn unshare(&self, request: &UnshareRequest) -> Result<UnshareReport>;
}

/// The [`Sharer`] over a key store and an image store that act as one principal.
#[derive(Debug, Clone)]
pub struct Flow {
    keys: Arc<dyn KeyStore>,
    images: Arc<dyn ImageStore>,
    clock: Arc<dyn Clock>,
    wait: WaitOptions,
}

impl Flow {
    /// A flow acting as the principal behind `keys` and `images`.
    pub fn new(
        keys: Arc<dyn KeyStore>,
        images: Arc<dyn ImageStore>,
        clock: Arc<dyn Clock>,
    ) -> Flow {
        Flow {
            keys,
            images,
            clock,
            wait: WaitOptions::default(),
        }
    }

    /// Replaces the polling options.
    pub fn with_wait(mut self, wait: WaitOptions) -> Flow {
        self.wait = wait;
        self
    }

    /// The key store itself, so that calls go straight to it rather than
    /// through the forwarding implementation for `Arc`.
    fn keys(&self) -> &dyn KeyStore {
        &*self.keys
    }

    /// The image store itself (see [`Flow::keys`]).
    fn images(&self) -> &dyn ImageStore {
        &*self.images
    }
}

/// Collects steps and counts mutating calls, shared by concurrent regions.
#[derive(Debug, Default)]
struct Journal {
    steps: std::sync::Mutex<Vec<Step>>,
    mutating: AtomicUsize,
    warnings: std::sync::Mutex<Vec<String>>,
}

impl Journal {
    fn record(
        &self,
        region: Option<&Region>,
        action: &str,
        resource: impl ToString,
        detail: impl Into<String>,
        changed: bool,
    ) {
        let step = Step {
            region: region.cloned(),
            action: action.to_owned(),
            resource: resource.to_string(),
            detail: detail.into(),
            changed,
        };
        info!(region = ?step.region, action = %step.action, resource = %step.resource, changed, "{}", step.detail);
        if changed {
            self.mutating.fetch_add(1, Ordering::Relaxed);
        }
        self.steps.lock().expect("journal lock").push(step);
    }

    fn warn(&self, text: String) {
        tracing::warn!("{text}");
        self.warnings.lock().expect("journal lock").push(text);
    }

    fn into_parts(self) -> (Vec<Step>, usize, Vec<String>) {
        (
            self.steps.into_inner().expect("journal lock"),
            self.mutating.into_inner(),
            self.warnings.into_inner().expect("journal lock"),
        )
    }
}

#[async_trait]
impl Sharer for Flow {
    async fn share(&self, request: &ShareRequest) -> Result<ShareReport> {
        let caller = self.keys().caller().await?;
        validate_share(request, &caller)?;
        let journal = Journal::default();
        if request.volume_permission && request.targets.iter().any(|t| t.account().is_none()) {
            journal.warn(
                "create-volume permission takes accounts only: organization and OU targets can launch the image but not copy it"
                    .to_owned(),
            );
        }
        let source = self.resolve_source(request, &caller, &journal).await?;
        let regions = request.regions();
        let results = join_all(
            regions
                .iter()
                .map(|region| self.share_in_region(request, &caller, &source, region, &journal)),
        )
        .await;
        let mut shares = Vec::with_capacity(results.len());
        for result in results {
            shares.push(result?);
        }
        let (steps, mutating_calls, warnings) = journal.into_parts();
        Ok(ShareReport {
            source_image: source.id,
            source_region: request.source_region.clone(),
            regions: shares,
            steps,
            mutating_calls,
            warnings,
        })
    }

    async fn accept(&self, request: &AcceptRequest) -> Result<AcceptReport> {
        let caller = self.keys().caller().await?;
        let journal = Journal::default();
        let region = &request.region;
        let image = self
            .find_shared_image(region, &request.image, &caller)
            .await?;
        journal.record(
            Some(region),
            "find-image",
            &image.id,
            format!(
                "visible to {}, owned by {}, {}",
                caller.account, image.owner, image.state
            ),
            false,
        );
        if image.state != ImageState::Available {
            return Err(Error::new(
                ErrorKind::Conflict,
                format!(
                    "image {} in {region} is {}, not available",
                    image.id, image.state
                ),
            ));
        }

        let keys = self.keys_of(region, &image, &request.keys, &journal).await;
        for key in &keys {
            let meta = self
                .keys()
                .describe_key(region, &KeyRef::Arn(key.clone()))
                .await
                .map_err(|err| err.context(format!("{} cannot use key {key}", caller.arn)))?;
            if meta.state != KeyState::Enabled {
                return Err(Error::new(
                    ErrorKind::InvalidKeyState,
                    format!(
                        "key {key} that encrypts image {} is {}",
                        image.id, meta.state
                    ),
                ));
            }
            journal.record(
                Some(region),
                "describe-key",
                key,
                "the target can use the key",
                false,
            );
        }

        let launch = match &request.launch {
            Some(options) => Some(self.smoke_launch(region, &image, options, &journal).await?),
            None => None,
        };
        let copy = match &request.copy {
            Some(copy_key) => Some(
                self.target_copy(request, copy_key, &image, &journal)
                    .await?,
            ),
            None => None,
        };
        let (steps, _, warnings) = journal.into_parts();
        Ok(AcceptReport {
            image: image.id,
            owner: image.owner,
            keys_checked: keys,
            launch,
            copy,
            steps,
            warnings,
        })
    }

    async fn unshare(&self, request: &UnshareRequest) -> Result<UnshareReport> {
        let caller = self.keys().caller().await?;
        if request.targets.is_empty() {
            return Err(Error::new(
                ErrorKind::InvalidInput,
                "unshare needs at least one target",
            ));
        }
        let journal = Journal::default();
        for shared in &request.images {
            self.unshare_in_region(request, &caller, shared, &journal)
                .await?;
        }
        let (steps, mutating_calls, warnings) = journal.into_parts();
        Ok(UnshareReport {
            steps,
            mutating_calls,
            warnings,
        })
    }
}

/// Refuses requests that cannot work before any call is made.
fn validate_share(request: &ShareRequest, caller: &Caller) -> Result<()> {
    if request.targets.is_empty() {
        return Err(Error::new(
            ErrorKind::InvalidInput,
            "share needs at least one target",
        ));
    }
    for target in &request.targets {
        if target.account() == Some(&caller.account) {
            return Err(Error::new(
                ErrorKind::InvalidInput,
                format!(
                    "target {target} is in the owner account {}: it needs no share",
                    caller.account
                ),
            ));
        }
    }
    let regions = request.regions();
    match &request.key {
        KeyChoice::Use(KeyRef::Alias(alias)) | KeyChoice::Create(alias)
            if alias.is_aws_reserved() =>
        {
            return Err(aws_managed_refusal(alias.as_str()));
        }
        KeyChoice::Use(KeyRef::AliasArn(arn)) if arn.alias().is_aws_reserved() => {
            return Err(aws_managed_refusal(&arn.to_string()));
        }
        KeyChoice::Use(key @ KeyRef::Id(_)) if regions.len() > 1 => {
            return Err(Error::invalid_input(
                "key",
                &key.to_string(),
                "a key ID names one region's key; use an alias to share in several regions",
            ));
        }
        KeyChoice::Use(key) => {
            if let Some(key_region) = key.region() {
                if regions.len() > 1 || regions[0] != *key_region {
                    return Err(Error::invalid_input(
                        "key",
                        &key.to_string(),
                        &format!(
                            "the key is in {key_region} but the image is shared in {}; keys are regional, use an alias",
                            regions.iter().map(|r| r.as_str()).collect::<Vec<_>>().join(", ")
                        ),
                    ));
                }
            }
        }
        KeyChoice::Create(_) => {}
    }
    Ok(())
}

fn aws_managed_refusal(key: &str) -> Error {
    Error::new(
        ErrorKind::Unsupported,
        format!(
            "key {key} is AWS-managed: AWS-managed keys can never be shared with other accounts; use a customer-managed key"
        ),
    )
}

impl Flow {
    /// The source image, available, created from the instance if the source is one.
    async fn resolve_source(
        &self,
        request: &ShareRequest,
        caller: &Caller,
        journal: &Journal,
    ) -> Result<Image> {
        let region = &request.source_region;
        let id = match &request.source {
            ImageSource::Image(id) => id.clone(),
            ImageSource::Instance(instance) => {
                self.image_instance(region, instance, caller, journal)
                    .await?
            }
        };
        let image = self.wait_image(region, &id).await?;
        if image.owner != caller.account {
            return Err(Error::new(
                ErrorKind::AccessDenied,
                format!(
                    "image {id} is owned by {}, not by {}: only the owner can share it",
                    image.owner, caller.account
                ),
            ));
        }
        journal.record(
            Some(region),
            "source-image",
            &image.id,
            format!("{} ({})", image.name, image.state),
            false,
        );
        Ok(image)
    }

    /// Images an instance, or finds the image an earlier run made from it.
    async fn image_instance(
        &self,
        region: &Region,
        instance: &InstanceId,
        caller: &Caller,
        journal: &Journal,
    ) -> Result<ImageId> {
        let query = ImageQuery {
            owners: vec![ImageOwner::Me],
            tags: BTreeMap::from([(TAG_SOURCE_INSTANCE.to_owned(), vec![instance.to_string()])]),
            ..ImageQuery::default()
        };
        let existing = self.images().describe_images(region, &query).await?;
        if let Some(image) = existing.into_iter().find(|i| usable(i.state)) {
            journal.record(
                Some(region),
                "create-image",
                &image.id,
                format!("found the image made earlier from {instance}"),
                false,
            );
            return Ok(image.id);
        }
        let found = self
            .images()
            .describe_instances(region, std::slice::from_ref(instance))
            .await?;
        let Some(found) = found.into_iter().next() else {
            return Err(Error::service(
                ErrorKind::NotFound,
                "InvalidInstanceID.NotFound",
                format!("The instance ID '{instance}' does not exist"),
            ));
        };
        if found.owner != caller.account {
            return Err(Error::new(
                ErrorKind::AccessDenied,
                format!("instance {instance} is not owned by {}", caller.account),
            ));
        }
        let name = format!("amishare-{instance}");
        let id = self
            .images()
            .create_image(
                region,
                &CreateImageRequest {
                    instance: instance.clone(),
                    name: name.clone(),
                    tags: BTreeMap::from([(TAG_SOURCE_INSTANCE.to_owned(), instance.to_string())]),
                },
            )
            .await?;
        journal.record(
            Some(region),
            "create-image",
            &id,
            format!("{name} from {instance}"),
            true,
        );
        Ok(id)
    }

    async fn share_in_region(
        &self,
        request: &ShareRequest,
        caller: &Caller,
        source: &Image,
        region: &Region,
        journal: &Journal,
    ) -> Result<RegionShare> {
        let key = self.resolve_key(request, region, journal).await?;
        self.merge_key_policy(request, caller, &key.arn, region, journal)
            .await?;
        let image = self
            .encrypted_copy(request, source, &key.arn, region, journal)
            .await?;
        let snapshots = self
            .verify_snapshots(region, &image, &key.arn, journal)
            .await?;
        let launch_permissions = self
            .grant_launch(request, region, &image.id, journal)
            .await?;
        if request.volume_permission {
            self.grant_volumes(request, region, snapshots.keys(), journal)
                .await?;
        }
        Ok(RegionShare {
            region: region.clone(),
            key: key.arn,
            image: image.id,
            snapshots,
            launch_permissions,
        })
    }

    /// The region's customer-managed key, created with its alias if asked and missing.
    async fn resolve_key(
        &self,
        request: &ShareRequest,
        region: &Region,
        journal: &Journal,
    ) -> Result<KeyMetadata> {
        let meta = match &request.key {
            KeyChoice::Use(key) => self
                .keys()
                .describe_key(region, key)
                .await
                .map_err(|e| e.context(format!("key {key} in {region}")))?,
            KeyChoice::Create(alias) => {
                match self
                    .keys()
                    .describe_key(region, &KeyRef::Alias(alias.clone()))
                    .await
                {
                    Ok(meta) => meta,
                    Err(err) if err.kind() == ErrorKind::NotFound => {
                        let meta = self
                        .keys()
                        .create_key(
                            region,
                            &CreateKeyRequest {
                                description: format!("amishare: encrypts AMIs shared with other accounts ({alias})"),
                                policy: None,
                                tags: BTreeMap::new(),
                            },
                        )
                        .await?;
                        journal.record(
                            Some(region),
                            "create-key",
                            &meta.arn,
                            "symmetric customer-managed key",
                            true,
                        );
                        self.keys()
                            .create_alias(region, alias, meta.key_id())
                            .await?;
                        journal.record(
                            Some(region),
                            "create-alias",
                            alias,
                            format!("→ {}", meta.arn),
                            true,
                        );
                        meta
                    }
                    Err(err) => return Err(err),
                }
            }
        };
        if meta.manager == KeyManager::Aws {
            return Err(aws_managed_refusal(&meta.arn.to_string()));
        }
        if meta.state != KeyState::Enabled {
            return Err(Error::new(
                ErrorKind::InvalidKeyState,
                format!(
                    "key {} is {}: targets could not use it",
                    meta.arn, meta.state
                ),
            ));
        }
        journal.record(
            Some(region),
            "resolve-key",
            &meta.arn,
            "customer-managed, enabled",
            false,
        );
        Ok(meta)
    }

    /// Adds the targets to amishare's statements in the key policy, writing only if it changed.
    async fn merge_key_policy(
        &self,
        request: &ShareRequest,
        caller: &Caller,
        key: &KeyArn,
        region: &Region,
        journal: &Journal,
    ) -> Result<()> {
        let text = self.keys().get_key_policy(key).await?;
        let policy = amishare_policy::Policy::parse(&text)
            .map_err(|e| Error::from(e).context(format!("key policy of {key}")))?;
        let grantees: Vec<_> = request.targets.iter().map(Target::grantee).collect();
        let merged = amishare_policy::merge(
            &policy,
            &grantees,
            &request.narrowing.for_region(region),
            caller.account.as_str(),
            caller.arn.as_str(),
        )
        .map_err(|e| Error::new(ErrorKind::InvalidInput, format!("key policy of {key}: {e}")))?;
        if !merged.changed {
            journal.record(
                Some(region),
                "key-policy",
                key,
                "already allows the targets",
                false,
            );
            return Ok(());
        }
        self.keys()
            .put_key_policy(key, &policy_text(&merged.policy))
            .await?;
        let who: Vec<String> = request.targets.iter().map(ToString::to_string).collect();
        journal.record(
            Some(region),
            "key-policy",
            key,
            format!("allows {}", who.join(", ")),
            true,
        );
        Ok(())
    }

    /// The image to share in `region`: the source itself when it is already
    /// encrypted with the key there, else a copy (found from an earlier run, or made now).
    async fn encrypted_copy(
        &self,
        request: &ShareRequest,
        source: &Image,
        key: &KeyArn,
        region: &Region,
        journal: &Journal,
    ) -> Result<Image> {
        if *region == request.source_region && self.all_snapshots_use(region, source, key).await? {
            journal.record(
                Some(region),
                "copy-image",
                &source.id,
                format!("already encrypted with {key}: no copy needed"),
                false,
            );
            return Ok(source.clone());
        }
        let query = ImageQuery {
            owners: vec![ImageOwner::Me],
            tags: BTreeMap::from([
                (TAG_SOURCE_IMAGE.to_owned(), vec![source.id.to_string()]),
                (TAG_KEY.to_owned(), vec![key.to_string()]),
            ]),
            ..ImageQuery::default()
        };
        let earlier = self.images().describe_images(region, &query).await?;
        let id = match earlier.into_iter().find(|i| usable(i.state)) {
            Some(found) => {
                journal.record(
                    Some(region),
                    "copy-image",
                    &found.id,
                    format!("found the copy of {} made earlier", source.id),
                    false,
                );
                found.id
            }
            None => {
                let name = request
                    .name
                    .clone()
                    .unwrap_or_else(|| format!("{}-shared", source.name));
                let token = format!(
                    "amishare-{:016x}",
                    fnv1a(&format!(
                        "{}|{}|{region}|{key}",
                        source.id, request.source_region
                    ))
                );
                let id = self
                    .images()
                    .copy_image(
                        region,
                        &CopyImageRequest {
                            source_image: source.id.clone(),
                            source_region: request.source_region.clone(),
                            name: name.clone(),
                            encrypted: Some(true),
                            kms_key: Some(KeyRef::Arn(key.clone())),
                            client_token: Some(token),
                            tags: BTreeMap::from([
                                (TAG_SOURCE_IMAGE.to_owned(), source.id.to_string()),
                                (TAG_KEY.to_owned(), key.to_string()),
                            ]),
                        },
                    )
                    .await?;
                journal.record(
                    Some(region),
                    "copy-image",
                    &id,
                    format!("{name}: copy of {} encrypted with {key}", source.id),
                    true,
                );
                id
            }
        };
        let image = self.wait_image(region, &id).await?;
        journal.record(Some(region), "wait-image", &image.id, "available", false);
        Ok(image)
    }

    async fn all_snapshots_use(
        &self,
        region: &Region,
        image: &Image,
        key: &KeyArn,
    ) -> Result<bool> {
        let ids: Vec<SnapshotId> = image
            .block_devices
            .iter()
            .map(|d| d.snapshot_id.clone())
            .collect();
        if ids.is_empty() {
            return Ok(false);
        }
        let snapshots = self.images().describe_snapshots(region, &ids).await?;
        Ok(snapshots.len() == ids.len()
            && snapshots
                .iter()
                .all(|s| s.encrypted && s.kms_key.as_ref() == Some(key)))
    }

    /// The hard gate: every EBS snapshot behind the image must be encrypted with exactly `key`.
    async fn verify_snapshots(
        &self,
        region: &Region,
        image: &Image,
        key: &KeyArn,
        journal: &Journal,
    ) -> Result<BTreeMap<SnapshotId, KeyArn>> {
        let ids: Vec<SnapshotId> = image
            .block_devices
            .iter()
            .map(|d| d.snapshot_id.clone())
            .collect();
        if ids.is_empty() {
            return Err(Error::new(
                ErrorKind::Unsupported,
                format!(
                    "image {} has no EBS snapshots: there is nothing encrypted to share",
                    image.id
                ),
            ));
        }
        let snapshots = self.images().describe_snapshots(region, &ids).await?;
        let mut verified = BTreeMap::new();
        let mut wrong = Vec::new();
        for id in &ids {
            match snapshots.iter().find(|s| &s.id == id) {
                Some(s) if s.encrypted && s.kms_key.as_ref() == Some(key) => {
                    verified.insert(id.clone(), key.clone());
                }
                Some(s) if !s.encrypted => wrong.push(format!("{id} is not encrypted")),
                Some(s) => wrong.push(format!(
                    "{id} is encrypted with {}",
                    s.kms_key
                        .as_ref()
                        .map_or("an unknown key".to_owned(), ToString::to_string)
                )),
                None => wrong.push(format!("{id} was not found")),
            }
        }
        if !wrong.is_empty() {
            return Err(Error::new(
                ErrorKind::Failed,
                format!(
                    "refusing to share image {} in {region}: every snapshot must be encrypted with {key}, but {}",
                    image.id,
                    wrong.join("; ")
                ),
            ));
        }
        journal.record(
            Some(region),
            "verify-snapshots",
            &image.id,
            format!("{} snapshot(s) encrypted with {key}", verified.len()),
            false,
        );
        Ok(verified)
    }

    /// Adds the launch permissions that are missing, in batches.
    async fn grant_launch(
        &self,
        request: &ShareRequest,
        region: &Region,
        image: &ImageId,
        journal: &Journal,
    ) -> Result<Vec<LaunchPermission>> {
        let current: BTreeSet<LaunchPermission> = self
            .images()
            .describe_launch_permission(region, image)
            .await?
            .into_iter()
            .collect();
        let wanted: BTreeSet<LaunchPermission> = request
            .targets
            .iter()
            .map(Target::launch_permission)
            .collect();
        let missing: Vec<LaunchPermission> = wanted.difference(&current).cloned().collect();
        if missing.is_empty() {
            journal.record(
                Some(region),
                "launch-permission",
                image,
                "every target can already launch it",
                false,
            );
            return Ok(current.into_iter().collect());
        }
        for batch in missing.chunks(LAUNCH_PERMISSION_BATCH) {
            self.images()
                .modify_launch_permission(region, image, &PermissionChange::add(batch.to_vec()))
                .await?;
            let who: Vec<String> = batch.iter().map(ToString::to_string).collect();
            journal.record(
                Some(region),
                "launch-permission",
                image,
                format!("added {}", who.join(", ")),
                true,
            );
        }
        Ok(current
            .into_iter()
            .chain(missing)
            .collect::<BTreeSet<_>>()
            .into_iter()
            .collect())
    }

    /// Adds the create-volume permissions that are missing on each snapshot.
    async fn grant_volumes<'a>(
        &self,
        request: &ShareRequest,
        region: &Region,
        snapshots: impl Iterator<Item = &'a SnapshotId>,
        journal: &Journal,
    ) -> Result<()> {
        let accounts: BTreeSet<AccountId> = request
            .targets
            .iter()
            .filter_map(Target::account)
            .cloned()
            .collect();
        for snapshot in snapshots {
            let current = self
                .images()
                .describe_create_volume_permission(region, snapshot)
                .await?;
            let missing: Vec<VolumePermission> = accounts
                .iter()
                .map(|a| VolumePermission::Account(a.clone()))
                .filter(|p| !current.contains(p))
                .collect();
            if missing.is_empty() {
                journal.record(
                    Some(region),
                    "volume-permission",
                    snapshot,
                    "every target account can already copy it",
                    false,
                );
                continue;
            }
            let who: Vec<String> = missing
                .iter()
                .map(|p| match p {
                    VolumePermission::Account(a) => a.to_string(),
                    VolumePermission::Public => "everyone".to_owned(),
                })
                .collect();
            self.images()
                .modify_create_volume_permission(region, snapshot, &PermissionChange::add(missing))
                .await?;
            journal.record(
                Some(region),
                "volume-permission",
                snapshot,
                format!("added {}", who.join(", ")),
                true,
            );
        }
        Ok(())
    }

    /// Polls an image until it is available; a `failed` image ends the wait with its state reason.
    async fn wait_image(&self, region: &Region, id: &ImageId) -> Result<Image> {
        let what = format!("image {id} in {region}");
        let query = ImageQuery::ids([id.clone()]);
        poll_until(
            &*self.clock,
            &self.wait,
            self.wait.image_deadline,
            &what,
            fnv1a(id.as_str()),
            || async {
                let found = self.images().describe_images(region, &query).await?;
                let Some(image) = found.into_iter().next() else {
                    return Err(Error::service(
                        ErrorKind::NotFound,
                        "InvalidAMIID.NotFound",
                        format!("The image id '[{id}]' does not exist"),
                    ));
                };
                match image.state {
                    ImageState::Available => Ok(Poll::Ready(image)),
                    ImageState::Pending => Ok(Poll::Pending(Pending::Image(image.state))),
                    ImageState::Failed | ImageState::Deregistered => {
                        let (code, reason) = match &image.state_reason {
                            Some(r) => (r.code.clone(), r.message.clone()),
                            None => (String::new(), "no reason given".to_owned()),
                        };
                        let err = Error::new(
                            ErrorKind::Failed,
                            format!("{what} is {}: {code}: {reason}", image.state),
                        );
                        Err(if code.is_empty() {
                            err
                        } else {
                            err.with_code(code)
                        })
                    }
                }
            },
        )
        .await
    }

    /// The shared image as the target sees it.
    async fn find_shared_image(
        &self,
        region: &Region,
        id: &ImageId,
        caller: &Caller,
    ) -> Result<Image> {
        let found = self
            .images()
            .describe_images(region, &ImageQuery::ids([id.clone()]))
            .await
            .map_err(|err| match err.kind() {
                ErrorKind::NotFound => err.context(format!(
                    "image {id} is not shared with account {} in {region}, or does not exist",
                    caller.account
                )),
                _ => err,
            })?;
        found.into_iter().next().ok_or_else(|| {
            Error::service(
                ErrorKind::NotFound,
                "InvalidAMIID.NotFound",
                format!(
                    "image {id} is not shared with account {} in {region}, or does not exist",
                    caller.account
                ),
            )
        })
    }

    /// The keys behind an image: those the owner reported, and those the target can read from snapshots it may see.
    async fn keys_of(
        &self,
        region: &Region,
        image: &Image,
        reported: &[KeyArn],
        journal: &Journal,
    ) -> Vec<KeyArn> {
        let mut keys: BTreeSet<KeyArn> = reported.iter().cloned().collect();
        let ids: Vec<SnapshotId> = image
            .block_devices
            .iter()
            .map(|d| d.snapshot_id.clone())
            .collect();
        match self.images().describe_snapshots(region, &ids).await {
            Ok(snapshots) => keys.extend(snapshots.into_iter().filter_map(|s| s.kms_key)),
            Err(_) if !reported.is_empty() => {}
            Err(err) => journal.warn(format!(
                "cannot read the keys of image {}'s snapshots ({err}); the key check is skipped: pass the key ARN the owner reported",
                image.id
            )),
        }
        keys.into_iter().collect()
    }

    /// Launches one instance and waits for it to run; a termination at launch is an error with EC2's reason.
    async fn smoke_launch(
        &self,
        region: &Region,
        image: &Image,
        options: &LaunchOptions,
        journal: &Journal,
    ) -> Result<LaunchReport> {
        let instance = self
            .images()
            .run_instances(
                region,
                &RunInstancesRequest {
                    image: image.id.clone(),
                    instance_type: options.instance_type.clone(),
                    subnet: options.subnet.clone(),
                    kms_key: None,
                    tags: BTreeMap::from([(
                        "amishare:smoke-test".to_owned(),
                        image.id.to_string(),
                    )]),
                },
            )
            .await?;
        journal.record(
            Some(region),
            "run-instances",
            &instance.id,
            format!("{} from {}", options.instance_type, image.id),
            true,
        );
        let id = instance.id.clone();
        let what = format!("instance {id} in {region}");
        let state = poll_until(
            &*self.clock,
            &self.wait,
            self.wait.instance_deadline,
            &what,
            fnv1a(id.as_str()),
            || async {
                let found = self
                    .images()
                    .describe_instances(region, std::slice::from_ref(&id))
                    .await?;
                let Some(instance) = found.into_iter().next() else {
                    return Ok(Poll::Pending(Pending::Text("not visible yet")));
                };
                match instance.state {
                    InstanceState::Running => Ok(Poll::Ready(instance.state)),
                    InstanceState::Pending => Ok(Poll::Pending(Pending::Instance(instance.state))),
                    state => {
                        let reason = instance.state_reason.clone();
                        let text = reason
                            .as_ref()
                            .map_or_else(|| "no reason given".to_owned(), ToString::to_string);
                        let err = Error::new(
                            ErrorKind::Failed,
                            format!(
                                "{what} from image {} went {state} at launch: {text}",
                                image.id
                            ),
                        );
                        Err(match reason {
                            Some(r) => err.with_code(r.code),
                            None => err,
                        })
                    }
                }
            },
        )
        .await?;
        journal.record(Some(region), "wait-instance", &id, state.to_string(), false);
        let terminated_after = !options.keep;
        if terminated_after {
            self.images()
                .terminate_instances(region, std::slice::from_ref(&id))
                .await?;
            journal.record(
                Some(region),
                "terminate-instances",
                &id,
                "smoke test done",
                true,
            );
        }
        Ok(LaunchReport {
            instance: id,
            state,
            terminated_after,
        })
    }

    /// Copies the shared image into the target's ownership, re-encrypted.
    async fn target_copy(
        &self,
        request: &AcceptRequest,
        copy_key: &CopyKey,
        image: &Image,
        journal: &Journal,
    ) -> Result<CopyReport> {
        let region = &request.region;
        let kms_key = match copy_key {
            CopyKey::Key(key) => Some(key.clone()),
            CopyKey::AccountDefault => None,
        };
        let name = request
            .copy_name
            .clone()
            .unwrap_or_else(|| format!("{}-copy", image.name));
        let token = format!(
            "amishare-{:016x}",
            fnv1a(&format!("accept|{}|{region}|{copy_key:?}", image.id))
        );
        let id = self
            .images()
            .copy_image(
                region,
                &CopyImageRequest {
                    source_image: image.id.clone(),
                    source_region: region.clone(),
                    name: name.clone(),
                    encrypted: Some(true),
                    kms_key,
                    client_token: Some(token),
                    tags: BTreeMap::from([(TAG_SOURCE_IMAGE.to_owned(), image.id.to_string())]),
                },
            )
            .await?;
        journal.record(
            Some(region),
            "copy-image",
            &id,
            format!("{name}: the target's own copy of {}", image.id),
            true,
        );
        let copy = self.wait_image(region, &id).await?;
        let ids: Vec<SnapshotId> = copy
            .block_devices
            .iter()
            .map(|d| d.snapshot_id.clone())
            .collect();
        let snapshots = self.images().describe_snapshots(region, &ids).await?;
        let snapshots: BTreeMap<SnapshotId, Option<KeyArn>> =
            snapshots.into_iter().map(|s| (s.id, s.kms_key)).collect();
        journal.record(
            Some(region),
            "wait-image",
            &id,
            "available, owned by the target",
            false,
        );
        Ok(CopyReport {
            image: id,
            snapshots,
        })
    }

    async fn unshare_in_region(
        &self,
        request: &UnshareRequest,
        caller: &Caller,
        shared: &RegionImage,
        journal: &Journal,
    ) -> Result<()> {
        let region = &shared.region;
        let found = self
            .images()
            .describe_images(region, &ImageQuery::ids([shared.image.clone()]))
            .await?;
        let Some(image) = found.into_iter().next() else {
            return Err(Error::service(
                ErrorKind::NotFound,
                "InvalidAMIID.NotFound",
                format!("The image id '[{}]' does not exist", shared.image),
            ));
        };
        if image.owner != caller.account {
            return Err(Error::new(
                ErrorKind::AccessDenied,
                format!(
                    "image {} is owned by {}, not by {}",
                    image.id, image.owner, caller.account
                ),
            ));
        }

        let current: BTreeSet<LaunchPermission> = self
            .images()
            .describe_launch_permission(region, &image.id)
            .await?
            .into_iter()
            .collect();
        let remove: Vec<LaunchPermission> = request
            .targets
            .iter()
            .map(Target::launch_permission)
            .filter(|p| current.contains(p))
            .collect::<BTreeSet<_>>()
            .into_iter()
            .collect();
        if remove.is_empty() {
            journal.record(
                Some(region),
                "launch-permission",
                &image.id,
                "no target had launch permission",
                false,
            );
        } else {
            let who: Vec<String> = remove.iter().map(ToString::to_string).collect();
            self.images()
                .modify_launch_permission(region, &image.id, &PermissionChange::remove(remove))
                .await?;
            journal.record(
                Some(region),
                "launch-permission",
                &image.id,
                format!("removed {}", who.join(", ")),
                true,
            );
        }

        let ids: Vec<SnapshotId> = image
            .block_devices
            .iter()
            .map(|d| d.snapshot_id.clone())
            .collect();
        let snapshots = self.images().describe_snapshots(region, &ids).await?;
        let accounts: BTreeSet<AccountId> = request
            .targets
            .iter()
            .filter_map(Target::account)
            .cloned()
            .collect();
        for snapshot in &snapshots {
            let current = self
                .images()
                .describe_create_volume_permission(region, &snapshot.id)
                .await?;
            let remove: Vec<VolumePermission> = accounts
                .iter()
                .map(|a| VolumePermission::Account(a.clone()))
                .filter(|p| current.contains(p))
                .collect();
            if remove.is_empty() {
                continue;
            }
            self.images()
                .modify_create_volume_permission(
                    region,
                    &snapshot.id,
                    &PermissionChange::remove(remove),
                )
                .await?;
            journal.record(
                Some(region),
                "volume-permission",
                &snapshot.id,
                "removed the targets",
                true,
            );
        }

        let keys: BTreeSet<KeyArn> = snapshots.iter().filter_map(|s| s.kms_key.clone()).collect();
        let grantees: Vec<_> = request.targets.iter().map(Target::grantee).collect();
        for key in &keys {
            let meta = self
                .keys()
                .describe_key(region, &KeyRef::Arn(key.clone()))
                .await?;
            if meta.manager == KeyManager::Aws {
                continue;
            }
            let text = self.keys().get_key_policy(key).await?;
            let policy = amishare_policy::Policy::parse(&text)
                .map_err(|e| Error::from(e).context(format!("key policy of {key}")))?;
            let removed =
                amishare_policy::remove(&policy, &grantees, &request.narrowing.for_region(region));
            if removed.changed {
                self.keys()
                    .put_key_policy(key, &policy_text(&removed.policy))
                    .await?;
                journal.record(
                    Some(region),
                    "key-policy",
                    key,
                    "removed the targets from amishare's statements",
                    true,
                );
            } else {
                journal.record(
                    Some(region),
                    "key-policy",
                    key,
                    "amishare's statements did not name the targets",
                    false,
                );
            }
        }

        if request.deregister {
            if image.tags.contains_key(TAG_SOURCE_IMAGE) {
                self.images()
                    .deregister_image(region, &image.id, true)
                    .await?;
                journal.record(
                    Some(region),
                    "deregister-image",
                    &image.id,
                    "deregistered with its snapshots",
                    true,
                );
            } else {
                journal.warn(format!(
                    "image {} in {region} was not made by amishare (no {TAG_SOURCE_IMAGE} tag): not deregistered",
                    image.id
                ));
            }
        }
        Ok(())
    }
}

/// The text to store: pretty for people, compact when pretty would pass KMS's size limit.
fn policy_text(policy: &amishare_policy::Policy) -> String {
    let pretty = policy.to_json_pretty();
    if pretty.len() <= amishare_policy::MAX_POLICY_BYTES {
        pretty
    } else {
        policy.to_json()
    }
}

/// Whether an image found from an earlier run can still serve.
fn usable(state: ImageState) -> bool {
    matches!(state, ImageState::Pending | ImageState::Available)
}

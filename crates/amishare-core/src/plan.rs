//! Dry runs: stores that read through to the real ones and record every
//! change instead of making it.
//!
//! [`planning`] wraps a key store and an image store. Reads go to the real
//! stores; each mutating call is recorded as a [`PlannedCall`] and answered
//! from an overlay, as AWS would answer it: a planned key, image or instance
//! gets a placeholder ID (all zeros but a counter) and is visible, in its
//! final state, to later reads of the same run. A planned copy's snapshots
//! are encrypted with the key the copy asks for, which is what EC2 does with
//! `Encrypted` and `KmsKeyId`; the plan therefore shows the copy and every
//! call after it, and the real run still verifies the snapshots. Key-policy
//! writes keep the text before and after, for the diff.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex, MutexGuard};

use async_trait::async_trait;
use serde::Serialize;

use crate::error::{Error, ErrorKind, Result};
use crate::id::{
    AliasName, GrantId, ImageId, InstanceId, KeyArn, KeyId, KeyRef, Region, SnapshotId, VolumeId,
};
use crate::model::{
    AttachedVolume, BlockDevice, Caller, CopyImageRequest, CreateGrantRequest, CreateImageRequest,
    CreateKeyRequest, EbsDefaults, Grant, Image, ImageOwner, ImageQuery, ImageState, Instance,
    InstanceState, KeyManager, KeyMetadata, KeyState, LaunchPermission, PermissionChange,
    RunInstancesRequest, Snapshot, SnapshotState, VolumePermission,
};
use crate::ops::Operation;
use crate::scaling::{
    Activity, ActivityStatus, Group, GroupInstance, GroupRequest, LaunchTemplate,
    LaunchTemplateRequest, LifecycleState, ScalingStore,
};
use crate::store::{ImageStore, KeyStore};

/// One change a dry run would have made.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[non_exhaustive]
pub struct PlannedCall {
    /// The API operation, e.g. `ec2:CopyImage`.
    pub operation: String,
    /// The region, for regional calls.
    pub region: Option<Region>,
    /// The resource it acts on (a placeholder ID for a resource the plan creates).
    pub resource: String,
    /// What it would do.
    pub detail: String,
}

/// A key-policy write a dry run would have made.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[non_exhaustive]
pub struct PolicyChange {
    /// The key.
    pub key: KeyArn,
    /// The policy before (empty for a key the plan creates).
    pub before: String,
    /// The policy after.
    pub after: String,
}

/// What a dry run would have changed, in call order.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
#[non_exhaustive]
pub struct Plan {
    /// Every mutating call.
    pub calls: Vec<PlannedCall>,
    /// Every key-policy write, with the text before and after.
    pub policy_changes: Vec<PolicyChange>,
}

/// The overlay: what the planned calls made, as later reads see it.
#[derive(Debug, Default)]
struct Overlay {
    plan: Plan,
    counter: u64,
    keys: BTreeMap<KeyId, KeyMetadata>,
    aliases: BTreeMap<(Region, AliasName), KeyArn>,
    policies: BTreeMap<KeyArn, String>,
    images: BTreeMap<ImageId, (Region, Image)>,
    snapshots: BTreeMap<SnapshotId, Snapshot>,
    instances: BTreeMap<InstanceId, Instance>,
    launch: BTreeMap<ImageId, BTreeSet<LaunchPermission>>,
    volume: BTreeMap<SnapshotId, BTreeSet<VolumePermission>>,
    gone_images: BTreeSet<ImageId>,
    gone_snapshots: BTreeSet<SnapshotId>,
}

impl Overlay {
    fn next(&mut self) -> u64 {
        self.counter += 1;
        self.counter
    }

    /// Records a planned write; the table says which operations are writes.
    fn record(
        &mut self,
        operation: Operation,
        region: Option<&Region>,
        resource: impl ToString,
        detail: impl Into<String>,
    ) {
        debug_assert!(operation.is_mutating(), "{operation} changes nothing");
        self.plan.calls.push(PlannedCall {
            operation: operation.action().to_owned(),
            region: region.cloned(),
            resource: resource.to_string(),
            detail: detail.into(),
        });
    }
}

/// Shared by the two planning stores of one dry run.
#[derive(Debug, Default)]
pub struct Planner {
    overlay: Mutex<Overlay>,
}

impl Planner {
    fn lock(&self) -> MutexGuard<'_, Overlay> {
        self.overlay
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// What the run would have changed so far.
    pub fn plan(&self) -> Plan {
        self.lock().plan.clone()
    }
}

/// Stores for a dry run over `keys` and `images`, and the planner that
/// collects what they would have changed.
pub fn planning(
    keys: Arc<dyn KeyStore>,
    images: Arc<dyn ImageStore>,
) -> (Arc<Planner>, Arc<dyn KeyStore>, Arc<dyn ImageStore>) {
    let planner = Arc::new(Planner::default());
    let key_store = Arc::new(PlanningKeys {
        inner: keys,
        planner: planner.clone(),
    });
    let image_store = PlanningImages {
        inner: images,
        keys: key_store.clone(),
        planner: planner.clone(),
    };
    (planner, key_store, Arc::new(image_store))
}

fn placeholder<T>(text: String, parse: impl FnOnce(&str) -> Result<T>) -> T {
    parse(&text).expect("placeholder IDs are well-formed")
}

/// A key store that plans its changes.
#[derive(Debug)]
struct PlanningKeys {
    inner: Arc<dyn KeyStore>,
    planner: Arc<Planner>,
}

#[async_trait]
impl KeyStore for PlanningKeys {
    async fn caller(&self) -> Result<Caller> {
        self.inner.caller().await
    }

    async fn create_key(&self, region: &Region, request: &CreateKeyRequest) -> Result<KeyMetadata> {
        let caller = self.inner.caller().await?;
        let mut overlay = self.planner.lock();
        let n = overlay.next();
        let id = placeholder(format!("00000000-0000-4000-8000-{n:012x}"), KeyId::parse);
        let meta = KeyMetadata {
            arn: KeyArn::new(region.clone(), caller.account, id.clone()),
            state: KeyState::Enabled,
            manager: KeyManager::Customer,
            description: request.description.clone(),
        };
        let with_policy = if request.policy.is_some() {
            " with its key policy (see the diff)"
        } else {
            ""
        };
        overlay.record(
            Operation::CreateKey,
            Some(region),
            &meta.arn,
            format!("symmetric key {:?}{with_policy}", request.description),
        );
        if let Some(policy) = &request.policy {
            overlay.plan.policy_changes.push(PolicyChange {
                key: meta.arn.clone(),
                before: String::new(),
                after: policy.clone(),
            });
            overlay.policies.insert(meta.arn.clone(), policy.clone());
        }
        overlay.keys.insert(id, meta.clone());
        Ok(meta)
    }

    async fn describe_key(&self, region: &Region, key: &KeyRef) -> Result<KeyMetadata> {
        {
            let overlay = self.planner.lock();
            let planned = match key {
                KeyRef::Alias(alias) => overlay
                    .aliases
                    .get(&(region.clone(), alias.clone()))
                    .and_then(|arn| overlay.keys.get(arn.key_id())),
                KeyRef::Arn(arn) => overlay.keys.get(arn.key_id()),
                KeyRef::Id(id) => overlay.keys.get(id),
                KeyRef::AliasArn(arn) => overlay
                    .aliases
                    .get(&(region.clone(), arn.alias().clone()))
                    .and_then(|arn| overlay.keys.get(arn.key_id())),
            };
            if let Some(meta) = planned {
                return Ok(meta.clone());
            }
        }
        self.inner.describe_key(region, key).await
    }

    async fn create_alias(&self, region: &Region, alias: &AliasName, key: &KeyId) -> Result<()> {
        let planned = self
            .planner
            .lock()
            .keys
            .get(key)
            .map(|meta| meta.arn.clone());
        let arn = match planned {
            Some(arn) => arn,
            None => {
                self.inner
                    .describe_key(region, &KeyRef::Id(key.clone()))
                    .await?
                    .arn
            }
        };
        let mut overlay = self.planner.lock();
        overlay.record(
            Operation::CreateAlias,
            Some(region),
            alias,
            format!("→ {arn}"),
        );
        overlay.aliases.insert((region.clone(), alias.clone()), arn);
        Ok(())
    }

    async fn get_key_policy(&self, key: &KeyArn) -> Result<String> {
        {
            let overlay = self.planner.lock();
            if let Some(text) = overlay.policies.get(key) {
                return Ok(text.clone());
            }
            if overlay.keys.contains_key(key.key_id()) {
                return Ok(
                    amishare_policy::Policy::default_key_policy(key.account().as_str())
                        .to_json_pretty(),
                );
            }
        }
        self.inner.get_key_policy(key).await
    }

    async fn put_key_policy(&self, key: &KeyArn, policy: &str) -> Result<()> {
        let before = self.get_key_policy(key).await?;
        let mut overlay = self.planner.lock();
        overlay.record(
            Operation::PutKeyPolicy,
            Some(key.region()),
            key,
            "replace the key policy (see the diff)",
        );
        overlay.plan.policy_changes.push(PolicyChange {
            key: key.clone(),
            before,
            after: policy.to_owned(),
        });
        overlay.policies.insert(key.clone(), policy.to_owned());
        Ok(())
    }

    async fn list_keys(&self, region: &Region) -> Result<Option<Vec<KeyArn>>> {
        // Planned keys are found by their alias, never listed: the flow lists
        // keys only where no alias names one.
        self.inner.list_keys(region).await
    }

    async fn list_resource_tags(&self, key: &KeyArn) -> Result<BTreeMap<String, String>> {
        self.inner.list_resource_tags(key).await
    }

    async fn list_grants(&self, key: &KeyArn) -> Result<Vec<Grant>> {
        if self.planner.lock().keys.contains_key(key.key_id()) {
            return Ok(Vec::new());
        }
        self.inner.list_grants(key).await
    }

    async fn create_grant(&self, key: &KeyArn, request: &CreateGrantRequest) -> Result<GrantId> {
        let mut overlay = self.planner.lock();
        let n = overlay.next();
        overlay.record(
            Operation::CreateGrant,
            Some(key.region()),
            key,
            format!("{} for {}", request.operations.join(", "), request.grantee),
        );
        Ok(placeholder(format!("{n:064x}"), GrantId::parse))
    }

    async fn revoke_grant(&self, key: &KeyArn, grant: &GrantId) -> Result<()> {
        self.planner.lock().record(
            Operation::RevokeGrant,
            Some(key.region()),
            key,
            format!("grant {grant}"),
        );
        Ok(())
    }
}

/// An image store that plans its changes.
#[derive(Debug)]
struct PlanningImages {
    inner: Arc<dyn ImageStore>,
    /// To resolve the keys of planned copies, planned ones included.
    keys: Arc<PlanningKeys>,
    planner: Arc<Planner>,
}

impl PlanningImages {
    /// An image, planned or real.
    async fn image(&self, region: &Region, id: &ImageId) -> Result<Image> {
        if let Some((_, image)) = self.planner.lock().images.get(id) {
            return Ok(image.clone());
        }
        self.inner
            .describe_images(region, &ImageQuery::ids([id.clone()]))
            .await?
            .into_iter()
            .next()
            .ok_or_else(|| {
                Error::service(
                    ErrorKind::NotFound,
                    "InvalidAMIID.NotFound",
                    format!("The image id '[{id}]' does not exist"),
                )
            })
    }

    /// Registers a planned image whose devices are new snapshots under `key`.
    fn plan_image(
        overlay: &mut Overlay,
        region: &Region,
        owner: &crate::id::AccountId,
        name: &str,
        devices: &[(String, u32, String, Option<KeyArn>)],
        tags: &BTreeMap<String, String>,
        source: Option<(&ImageId, &Region)>,
    ) -> ImageId {
        let n = overlay.next();
        let id = placeholder(format!("ami-{n:017x}"), ImageId::parse);
        let mut block_devices = Vec::new();
        for (device_name, size, volume_type, key) in devices {
            let n = overlay.next();
            let snapshot = placeholder(format!("snap-{n:017x}"), SnapshotId::parse);
            overlay.snapshots.insert(
                snapshot.clone(),
                Snapshot {
                    id: snapshot.clone(),
                    owner: owner.clone(),
                    state: SnapshotState::Completed,
                    state_message: None,
                    volume_size: *size,
                    encrypted: key.is_some(),
                    kms_key: key.clone(),
                    progress: Some(100),
                },
            );
            block_devices.push(BlockDevice {
                device_name: device_name.clone(),
                snapshot_id: snapshot,
                volume_size: *size,
                volume_type: volume_type.clone(),
                encrypted: key.is_some(),
            });
        }
        let image = Image {
            id: id.clone(),
            owner: owner.clone(),
            name: name.to_owned(),
            state: ImageState::Available,
            state_reason: None,
            failure_cause: None,
            public: false,
            block_devices,
            tags: tags.clone(),
            source_image: source.map(|(image, _)| image.clone()),
            source_region: source.map(|(_, region)| region.clone()),
        };
        overlay.images.insert(id.clone(), (region.clone(), image));
        id
    }

    /// The key ARN a copy request's key names, or the account's default key.
    async fn copy_key(
        &self,
        region: &Region,
        request: &CopyImageRequest,
    ) -> Result<Option<KeyArn>> {
        let key = match (&request.kms_key, request.encrypted) {
            (Some(key), _) => key.clone(),
            (None, Some(true)) => self.inner.ebs_defaults(region).await?.kms_key,
            (None, _) => return Ok(None),
        };
        Ok(Some(self.keys.describe_key(region, &key).await?.arn))
    }
}

#[async_trait]
impl ImageStore for PlanningImages {
    async fn describe_instances(
        &self,
        region: &Region,
        ids: &[InstanceId],
    ) -> Result<Vec<Instance>> {
        let (planned, real): (Vec<InstanceId>, Vec<InstanceId>) = {
            let overlay = self.planner.lock();
            ids.iter()
                .cloned()
                .partition(|id| overlay.instances.contains_key(id))
        };
        let mut found = if real.is_empty() && !ids.is_empty() {
            Vec::new()
        } else {
            self.inner.describe_instances(region, &real).await?
        };
        let overlay = self.planner.lock();
        for instance in found.iter_mut() {
            if let Some(planned) = overlay.instances.get(&instance.id) {
                *instance = planned.clone();
            }
        }
        found.extend(
            planned
                .iter()
                .filter_map(|id| overlay.instances.get(id).cloned()),
        );
        if ids.is_empty() {
            // Every instance: the planned ones too.
            found.extend(overlay.instances.values().cloned());
        }
        Ok(found)
    }

    async fn create_image(&self, region: &Region, request: &CreateImageRequest) -> Result<ImageId> {
        let instance = self
            .describe_instances(region, std::slice::from_ref(&request.instance))
            .await?
            .into_iter()
            .next()
            .ok_or_else(|| {
                Error::invalid_input("instance", request.instance.as_str(), "does not exist")
            })?;
        let devices: Vec<_> = instance
            .volumes
            .iter()
            .map(|v| {
                (
                    v.device_name.clone(),
                    v.size,
                    "gp3".to_owned(),
                    v.kms_key.clone(),
                )
            })
            .collect();
        let mut overlay = self.planner.lock();
        let id = Self::plan_image(
            &mut overlay,
            region,
            &instance.owner,
            &request.name,
            &devices,
            &request.tags,
            None,
        );
        overlay.record(
            Operation::CreateImage,
            Some(region),
            &id,
            format!("{:?} from {}", request.name, request.instance),
        );
        Ok(id)
    }

    async fn copy_image(&self, region: &Region, request: &CopyImageRequest) -> Result<ImageId> {
        let source = self
            .image(&request.source_region, &request.source_image)
            .await?;
        let key = self.copy_key(region, request).await?;
        let caller = self.keys.caller().await?;
        let devices: Vec<_> = source
            .block_devices
            .iter()
            .map(|d| {
                (
                    d.device_name.clone(),
                    d.volume_size,
                    d.volume_type.clone(),
                    key.clone(),
                )
            })
            .collect();
        let mut overlay = self.planner.lock();
        let id = Self::plan_image(
            &mut overlay,
            region,
            &caller.account,
            &request.name,
            &devices,
            &request.tags,
            Some((&request.source_image, &request.source_region)),
        );
        let how = key.map_or_else(
            || "not encrypted".to_owned(),
            |key| format!("encrypted with {key}"),
        );
        overlay.record(
            Operation::CopyImage,
            Some(region),
            &id,
            format!("{:?}: copy of {} {how}", request.name, request.source_image),
        );
        Ok(id)
    }

    async fn describe_images(&self, region: &Region, query: &ImageQuery) -> Result<Vec<Image>> {
        let (planned_ids, real_ids): (Vec<ImageId>, Vec<ImageId>) = {
            let overlay = self.planner.lock();
            query
                .image_ids
                .iter()
                .cloned()
                .partition(|id| overlay.images.contains_key(id))
        };
        let mut found = if query.image_ids.is_empty() || !real_ids.is_empty() {
            let real = ImageQuery {
                image_ids: real_ids,
                ..query.clone()
            };
            self.inner.describe_images(region, &real).await?
        } else {
            Vec::new()
        };
        let caller = if query.owners.contains(&ImageOwner::Me) {
            Some(self.keys.caller().await?.account)
        } else {
            None
        };
        let overlay = self.planner.lock();
        found.retain(|image| !overlay.gone_images.contains(&image.id));
        for (id, (image_region, image)) in &overlay.images {
            if image_region != region || overlay.gone_images.contains(id) {
                continue;
            }
            let wanted = planned_ids.contains(id)
                || (query.image_ids.is_empty()
                    && query.matches(image, caller.as_ref().unwrap_or(&image.owner)));
            if wanted {
                found.push(image.clone());
            }
        }
        Ok(found)
    }

    async fn describe_snapshots(
        &self,
        region: &Region,
        ids: &[SnapshotId],
    ) -> Result<Vec<Snapshot>> {
        let (planned, real): (Vec<SnapshotId>, Vec<SnapshotId>) = {
            let overlay = self.planner.lock();
            ids.iter()
                .cloned()
                .partition(|id| overlay.snapshots.contains_key(id))
        };
        let mut found = if real.is_empty() && !ids.is_empty() {
            Vec::new()
        } else {
            self.inner.describe_snapshots(region, &real).await?
        };
        let overlay = self.planner.lock();
        found.retain(|s| !overlay.gone_snapshots.contains(&s.id));
        found.extend(
            planned
                .iter()
                .filter_map(|id| overlay.snapshots.get(id).cloned()),
        );
        Ok(found)
    }

    async fn modify_launch_permission(
        &self,
        region: &Region,
        image: &ImageId,
        change: &PermissionChange<LaunchPermission>,
    ) -> Result<()> {
        let current = applied(
            self.describe_launch_permission(region, image).await?,
            change,
        );
        let mut overlay = self.planner.lock();
        overlay.record(
            Operation::ModifyImageAttribute,
            Some(region),
            image,
            describe_change("launch permission for", change, |p| p.to_string()),
        );
        overlay.launch.insert(image.clone(), current);
        Ok(())
    }

    async fn describe_launch_permission(
        &self,
        region: &Region,
        image: &ImageId,
    ) -> Result<Vec<LaunchPermission>> {
        {
            let overlay = self.planner.lock();
            if let Some(current) = overlay.launch.get(image) {
                return Ok(current.iter().cloned().collect());
            }
            if overlay.images.contains_key(image) {
                return Ok(Vec::new());
            }
        }
        self.inner.describe_launch_permission(region, image).await
    }

    async fn modify_create_volume_permission(
        &self,
        region: &Region,
        snapshot: &SnapshotId,
        change: &PermissionChange<VolumePermission>,
    ) -> Result<()> {
        let current = applied(
            self.describe_create_volume_permission(region, snapshot)
                .await?,
            change,
        );
        let mut overlay = self.planner.lock();
        overlay.record(
            Operation::ModifySnapshotAttribute,
            Some(region),
            snapshot,
            describe_change("createVolumePermission for", change, |p| match p {
                VolumePermission::Account(account) => account.to_string(),
                VolumePermission::Public => "everyone".to_owned(),
            }),
        );
        overlay.volume.insert(snapshot.clone(), current);
        Ok(())
    }

    async fn describe_create_volume_permission(
        &self,
        region: &Region,
        snapshot: &SnapshotId,
    ) -> Result<Vec<VolumePermission>> {
        {
            let overlay = self.planner.lock();
            if let Some(current) = overlay.volume.get(snapshot) {
                return Ok(current.iter().cloned().collect());
            }
            if overlay.snapshots.contains_key(snapshot) {
                return Ok(Vec::new());
            }
        }
        self.inner
            .describe_create_volume_permission(region, snapshot)
            .await
    }

    async fn run_instances(
        &self,
        region: &Region,
        request: &RunInstancesRequest,
    ) -> Result<Instance> {
        let image = self.image(region, &request.image).await?;
        let caller = self.keys.caller().await?;
        let mut overlay = self.planner.lock();
        let n = overlay.next();
        let id = placeholder(format!("i-{n:017x}"), InstanceId::parse);
        let volumes = image
            .block_devices
            .iter()
            .map(|d| {
                let n = overlay.next();
                let key = overlay
                    .snapshots
                    .get(&d.snapshot_id)
                    .and_then(|s| s.kms_key.clone());
                AttachedVolume {
                    volume_id: placeholder(format!("vol-{n:017x}"), VolumeId::parse),
                    device_name: d.device_name.clone(),
                    encrypted: d.encrypted,
                    kms_key: key,
                    size: d.volume_size,
                }
            })
            .collect();
        let instance = Instance {
            id: id.clone(),
            owner: caller.account,
            image: request.image.clone(),
            state: InstanceState::Running,
            state_reason: None,
            failure_cause: None,
            volumes,
            tags: request.tags.clone(),
        };
        overlay.record(
            Operation::RunInstances,
            Some(region),
            &id,
            format!("{} from {}", request.instance_type, request.image),
        );
        overlay.instances.insert(id, instance.clone());
        Ok(instance)
    }

    async fn terminate_instances(&self, region: &Region, ids: &[InstanceId]) -> Result<()> {
        let mut overlay = self.planner.lock();
        for id in ids {
            overlay.record(Operation::TerminateInstances, Some(region), id, "terminate");
            if let Some(instance) = overlay.instances.get_mut(id) {
                instance.state = InstanceState::Terminated;
            }
        }
        Ok(())
    }

    async fn deregister_image(
        &self,
        region: &Region,
        image: &ImageId,
        delete_snapshots: bool,
    ) -> Result<()> {
        let found = self.image(region, image).await?;
        let mut overlay = self.planner.lock();
        let detail = if delete_snapshots {
            "deregister, and delete its snapshots"
        } else {
            "deregister"
        };
        overlay.record(Operation::DeregisterImage, Some(region), image, detail);
        overlay.gone_images.insert(image.clone());
        if delete_snapshots {
            overlay
                .gone_snapshots
                .extend(found.block_devices.iter().map(|d| d.snapshot_id.clone()));
        }
        Ok(())
    }

    async fn delete_snapshot(&self, region: &Region, snapshot: &SnapshotId) -> Result<()> {
        let mut overlay = self.planner.lock();
        overlay.record(Operation::DeleteSnapshot, Some(region), snapshot, "delete");
        overlay.gone_snapshots.insert(snapshot.clone());
        Ok(())
    }

    async fn ebs_defaults(&self, region: &Region) -> Result<EbsDefaults> {
        self.inner.ebs_defaults(region).await
    }
}

/// A permission list after a change.
fn applied<T: Ord + Clone>(current: Vec<T>, change: &PermissionChange<T>) -> BTreeSet<T> {
    let mut current: BTreeSet<T> = current.into_iter().collect();
    current.extend(change.add.iter().cloned());
    for gone in &change.remove {
        current.remove(gone);
    }
    current
}

fn describe_change<T>(
    what: &str,
    change: &PermissionChange<T>,
    show: impl Fn(&T) -> String,
) -> String {
    let list = |items: &[T]| items.iter().map(&show).collect::<Vec<_>>().join(", ");
    let mut parts = Vec::new();
    if !change.add.is_empty() {
        parts.push(format!("add {what} {}", list(&change.add)));
    }
    if !change.remove.is_empty() {
        parts.push(format!("remove {what} {}", list(&change.remove)));
    }
    parts.join("; ")
}

/// What planned Auto Scaling calls made, as later reads see them.
#[derive(Debug, Default)]
struct ScalingOverlay {
    templates: BTreeMap<String, LaunchTemplate>,
    groups: BTreeMap<String, Group>,
    gone_templates: BTreeSet<String>,
    gone_groups: BTreeSet<String>,
}

impl Planner {
    /// An Auto Scaling store for the same dry run over `scaling`: a planned
    /// group has its instance in service at once, as its plan assumes.
    pub fn scaling(self: &Arc<Self>, scaling: Arc<dyn ScalingStore>) -> Arc<dyn ScalingStore> {
        Arc::new(PlanningScaling {
            inner: scaling,
            planner: self.clone(),
            overlay: Mutex::new(ScalingOverlay::default()),
        })
    }
}

/// An Auto Scaling store that plans its changes.
#[derive(Debug)]
struct PlanningScaling {
    inner: Arc<dyn ScalingStore>,
    planner: Arc<Planner>,
    overlay: Mutex<ScalingOverlay>,
}

impl PlanningScaling {
    fn lock(&self) -> MutexGuard<'_, ScalingOverlay> {
        self.overlay
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

#[async_trait]
impl ScalingStore for PlanningScaling {
    async fn create_launch_template(
        &self,
        region: &Region,
        request: &LaunchTemplateRequest,
    ) -> Result<LaunchTemplate> {
        let n = {
            let mut overlay = self.planner.lock();
            let n = overlay.next();
            overlay.record(
                Operation::CreateLaunchTemplate,
                Some(region),
                &request.name,
                format!("{} from {}", request.instance_type, request.image),
            );
            n
        };
        let template = LaunchTemplate {
            id: format!("lt-{n:017x}"),
            name: request.name.clone(),
            tags: request.tags.clone(),
        };
        let mut overlay = self.lock();
        overlay.gone_templates.remove(&request.name);
        overlay
            .templates
            .insert(request.name.clone(), template.clone());
        Ok(template)
    }

    async fn describe_launch_templates(
        &self,
        region: &Region,
        names: &[String],
    ) -> Result<Vec<LaunchTemplate>> {
        let (planned, real): (Vec<String>, Vec<String>) = {
            let overlay = self.lock();
            names
                .iter()
                .cloned()
                .partition(|name| overlay.templates.contains_key(name))
        };
        let mut found = if names.is_empty() || !real.is_empty() {
            self.inner.describe_launch_templates(region, &real).await?
        } else {
            Vec::new()
        };
        let overlay = self.lock();
        found.retain(|t| !overlay.gone_templates.contains(&t.name));
        for (name, template) in &overlay.templates {
            if names.is_empty() || planned.contains(name) {
                found.push(template.clone());
            }
        }
        Ok(found)
    }

    async fn delete_launch_template(&self, region: &Region, name: &str) -> Result<()> {
        self.planner.lock().record(
            Operation::DeleteLaunchTemplate,
            Some(region),
            name,
            "delete",
        );
        let mut overlay = self.lock();
        overlay.templates.remove(name);
        overlay.gone_templates.insert(name.to_owned());
        Ok(())
    }

    async fn create_auto_scaling_group(
        &self,
        region: &Region,
        request: &GroupRequest,
    ) -> Result<()> {
        let instance = {
            let mut overlay = self.planner.lock();
            let n = overlay.next();
            overlay.record(
                Operation::CreateAutoScalingGroup,
                Some(region),
                &request.name,
                format!(
                    "{} instance(s) from launch template {}",
                    request.desired_capacity, request.launch_template
                ),
            );
            placeholder(format!("i-{n:017x}"), InstanceId::parse)
        };
        let group = Group {
            name: request.name.clone(),
            arn: String::new(),
            launch_template: request.launch_template.clone(),
            min_size: request.min_size,
            max_size: request.max_size,
            desired_capacity: request.desired_capacity,
            instances: vec![GroupInstance {
                id: instance,
                lifecycle_state: LifecycleState::InService,
                healthy: true,
            }],
            service_linked_role: request.service_linked_role.clone(),
            status: None,
            tags: request.tags.clone(),
        };
        let mut overlay = self.lock();
        overlay.gone_groups.remove(&request.name);
        overlay.groups.insert(request.name.clone(), group);
        Ok(())
    }

    async fn describe_auto_scaling_groups(
        &self,
        region: &Region,
        names: &[String],
    ) -> Result<Vec<Group>> {
        let (planned, real): (Vec<String>, Vec<String>) = {
            let overlay = self.lock();
            names
                .iter()
                .cloned()
                .partition(|name| overlay.groups.contains_key(name))
        };
        let mut found = if names.is_empty() || !real.is_empty() {
            self.inner
                .describe_auto_scaling_groups(region, &real)
                .await?
        } else {
            Vec::new()
        };
        let overlay = self.lock();
        found.retain(|g| !overlay.gone_groups.contains(&g.name));
        for (name, group) in &overlay.groups {
            if names.is_empty() || planned.contains(name) {
                found.push(group.clone());
            }
        }
        Ok(found)
    }

    async fn describe_scaling_activities(
        &self,
        region: &Region,
        group: &str,
    ) -> Result<Vec<Activity>> {
        let planned = self.lock().groups.get(group).cloned();
        match planned {
            Some(planned) => Ok(vec![Activity {
                id: "00000000-0000-4000-8000-000000000000".to_owned(),
                group: group.to_owned(),
                status: ActivityStatus::Successful,
                status_message: None,
                description: format!("Launching a new EC2 instance: {}", planned.instances[0].id),
                cause: "planned".to_owned(),
                progress: 100,
                instance: Some(planned.instances[0].id.clone()),
            }]),
            None => self.inner.describe_scaling_activities(region, group).await,
        }
    }

    async fn delete_auto_scaling_group(
        &self,
        region: &Region,
        name: &str,
        force: bool,
    ) -> Result<()> {
        let how = if force {
            "delete, and terminate its instances"
        } else {
            "delete"
        };
        self.planner
            .lock()
            .record(Operation::DeleteAutoScalingGroup, Some(region), name, how);
        let mut overlay = self.lock();
        overlay.groups.remove(name);
        overlay.gone_groups.insert(name.to_owned());
        Ok(())
    }
}

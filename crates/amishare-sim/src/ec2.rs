//! EC2: images, snapshots, instances and the EBS defaults, with AWS's
//! visibility rules and its asynchronous KMS failures.
//!
//! EC2 calls KMS on the caller's behalf (`kms:ViaService` =
//! `ec2.<region>.amazonaws.com`) when it copies an encrypted image or creates
//! volumes for an instance. Those checks run at call time, but like AWS the
//! call itself succeeds: the outcome shows later, as a `failed` image or an
//! instance that terminates during launch.

use std::collections::{BTreeMap, BTreeSet};

use amishare_core::ec2_kms::{Encryption, KeyChoice, SourceKey};
use amishare_core::store::{
    AttachedVolume, BlockDevice, CopyImageRequest, CreateImageRequest, EbsDefaults, ExecutableBy,
    Image, ImageOwner, ImageQuery, Instance, InstanceState, KeyManager, LaunchPermission,
    PermissionChange, RunInstancesRequest, Snapshot, StateReason, VolumePermission,
};
use amishare_core::{
    ec2_kms, AccountId, AliasName, Error, ErrorKind, GrantId, ImageId, ImageName, InstanceId,
    KeyArn, KeyId, KeyRef, Region, Result, SnapshotId,
};
use amishare_policy::Context;

use crate::consistency::Made;
use crate::errors;
use crate::kms::{kms_allows, require_enabled};
use crate::knobs::UnknownIds;
use crate::limits;
use crate::state::{
    scoped, Ctx, DeviceRecord, GrantRecord, ImageRecord, InstanceRecord, InstanceVolume,
    SnapshotRecord,
};

/// The cause the simulation keeps for a copy that failed by the world's
/// chance (§B19).
const COPY_FAILED_BY_CHANCE: &str =
    "an internal error inside EC2 (the world's copy-failure chance)";

/// The operations of the grant EC2 holds for an instance's volumes.
const VOLUME_GRANT_OPERATIONS: [&str; 1] = ["Decrypt"];

/// Why EC2's calls to KMS failed.
#[derive(Debug)]
struct Doom {
    /// The key was disabled or pending deletion (rather than inaccessible).
    key_state: bool,
    /// KMS's error, for diagnostics.
    detail: String,
}

impl Doom {
    fn access(detail: String) -> Doom {
        Doom {
            key_state: false,
            detail,
        }
    }
}

/// A device of a source image with what matters about its snapshot.
struct SourceDevice {
    device: DeviceRecord,
    key: Option<KeyArn>,
    own: bool,
}

/// The resource an EC2 action is authorized on; its ARN is only built when
/// identity policies have to be evaluated.
#[derive(Debug, Clone, Copy)]
enum Resource<'r> {
    /// Actions without resource-level permissions.
    Any,
    Image(&'r Region, &'r str),
    Snapshot(&'r Region, &'r str),
    Instance(&'r Region, &'r AccountId, &'r str),
}

impl Resource<'_> {
    /// Runs `f` with the resource's ARN, written on the stack.
    fn with_arn<R>(self, f: impl FnOnce(&str) -> R) -> R {
        let (region, account, kind, id) = match self {
            Resource::Any => return f("*"),
            Resource::Image(region, id) => (region.as_str(), "", "image", id),
            Resource::Snapshot(region, id) => (region.as_str(), "", "snapshot", id),
            Resource::Instance(region, account, id) => {
                (region.as_str(), account.as_str(), "instance", id)
            }
        };
        let parts = ["arn:aws:ec2:", region, ":", account, ":", kind, "/", id];
        let mut buf = [0u8; 256];
        let mut len = 0;
        for part in parts {
            let Some(slot) = buf.get_mut(len..len + part.len()) else {
                return f(&parts.concat());
            };
            slot.copy_from_slice(part.as_bytes());
            len += part.len();
        }
        match std::str::from_utf8(&buf[..len]) {
            Ok(arn) => f(arn),
            Err(_) => f(&parts.concat()),
        }
    }
}

/// The name rules of `CreateImage` and `CopyImage`.
fn validate_image_name(name: &str) -> Result<()> {
    if ImageName::parse(name).is_ok() {
        return Ok(());
    }
    Err(Error::service(
        ErrorKind::InvalidInput,
        "InvalidAMIName.Malformed",
        format!(
            "Invalid AMI name {name:?}: AMI names must be between 3 and 128 characters long, and may contain letters, numbers, '(', ')', '[', ']', ' ', '.', '/', '-', ''', '@' and '_'"
        ),
    ))
}

impl Ctx<'_> {
    /// Authorizes an EC2 action with the caller's identity policies.
    /// In a dry run, the allowed call stops here, before any effect
    /// (`docs/spec/ec2.md` §B16).
    fn authorize_ec2(&mut self, action: &'static str, resource: Resource<'_>) -> Result<()> {
        if !self.who.is_unrestricted() {
            resource
                .with_arn(|arn| self.authorize_identity(action, arn))
                .map_err(|detail| errors::unauthorized(&detail))?;
        }
        self.stop_if_dry_run()
    }

    /// `DryRunOperation` in a dry run, once the caller is authorized.
    pub(crate) fn stop_if_dry_run(&self) -> Result<()> {
        match self.dry_run {
            true => Err(errors::dry_run_operation()),
            false => Ok(()),
        }
    }

    /// Whether the caller may launch (and so see) an image.
    fn launchable(&self, image: &ImageRecord) -> bool {
        &image.owner == self.who.account_id()
            || image
                .launch_permissions
                .iter()
                .any(|permission| self.who.covered_by(permission))
    }

    /// An image of `region` the caller can see.
    fn visible_image(&self, region: &Region, id: &ImageId) -> Option<&ImageRecord> {
        self.ec2
            .images
            .get(id)
            .map(Box::as_ref)
            .filter(|image| &image.region == region && self.launchable(image))
    }

    /// An image of `region` the caller owns: unknown and invisible images are
    /// not found, visible images of other accounts are refused.
    fn owned_image(&self, region: &Region, id: &ImageId) -> Result<&ImageRecord> {
        let image = self
            .visible_image(region, id)
            .ok_or_else(|| errors::image_not_found(id))?;
        if &image.owner != self.who.account_id() {
            return Err(self.knobs.not_owner.to_error(&format!("image:{id}")));
        }
        Ok(image)
    }

    /// A snapshot of `region` the caller can see.
    fn visible_snapshot(&self, region: &Region, id: &SnapshotId) -> Option<&SnapshotRecord> {
        self.ec2
            .snapshots
            .get(id)
            .map(Box::as_ref)
            .filter(|snapshot| {
                &snapshot.region == region && snapshot.readable_by(self.who.account_id())
            })
    }

    fn owned_snapshot(&self, region: &Region, id: &SnapshotId) -> Result<&SnapshotRecord> {
        let snapshot = self
            .visible_snapshot(region, id)
            .ok_or_else(|| errors::snapshot_not_found(id))?;
        if &snapshot.owner != self.who.account_id() {
            return Err(self.knobs.not_owner.to_error(&format!("snapshot:{id}")));
        }
        Ok(snapshot)
    }

    fn is_aws_managed(&self, key: Option<&KeyArn>) -> bool {
        key.and_then(|arn| self.kms.keys.get(arn.key_id()))
            .is_some_and(|key| key.manager == KeyManager::Aws)
    }

    fn check_name_free(&self, account: &AccountId, region: &Region, name: &str) -> Result<()> {
        match self.ec2.image_names.get(&scoped(account, region, name)) {
            Some(existing) => Err(Error::service(
                ErrorKind::Conflict,
                "InvalidAMIName.Duplicate",
                format!("AMI name {name} is already in use by AMI {existing}"),
            )),
            None => Ok(()),
        }
    }

    fn to_image(&self, image: &ImageRecord) -> Image {
        let (state, state_reason) = image.state(self.now);
        Image {
            id: image.id.clone(),
            owner: image.owner.clone(),
            name: image.name.clone(),
            state,
            // The KMS refusal behind a failed copy, shown with its state reason.
            failure_cause: state_reason
                .as_ref()
                .and_then(|_| image.failure_detail.clone()),
            state_reason,
            public: image.is_public(),
            block_devices: image
                .devices
                .iter()
                .map(|device| BlockDevice {
                    device_name: device.device_name.clone(),
                    snapshot_id: device.snapshot.clone(),
                    volume_size: device.size,
                    volume_type: device.volume_type.clone(),
                    encrypted: device.encrypted,
                })
                .collect(),
            tags: if &image.owner == self.who.account_id() {
                image.tags.clone()
            } else {
                BTreeMap::new()
            },
            source_image: image.source_image.clone(),
            source_region: image.source_region.clone(),
        }
    }

    fn to_snapshot(&self, snapshot: &SnapshotRecord) -> Snapshot {
        let (state, state_message) = snapshot.state(self.now);
        Snapshot {
            id: snapshot.id.clone(),
            owner: snapshot.owner.clone(),
            state,
            state_message,
            volume_size: snapshot.size,
            encrypted: snapshot.encrypted,
            kms_key: snapshot.kms_key.clone(),
            progress: if self.knobs.snapshot_progress {
                snapshot.progress(self.now)
            } else {
                None
            },
        }
    }

    /// The devices of an image with their snapshots' keys.
    fn source_devices(&self, image: &ImageRecord) -> Vec<SourceDevice> {
        let account = self.who.account_id();
        image
            .devices
            .iter()
            .map(|device| {
                let snapshot = self.ec2.snapshots.get(&device.snapshot);
                SourceDevice {
                    device: device.clone(),
                    key: snapshot.and_then(|s| s.kms_key.clone()),
                    own: snapshot.is_some_and(|s| &s.owner == account),
                }
            })
            .collect()
    }

    /// The account's default EBS key in `region`.
    fn default_key(&mut self, region: &Region) -> std::result::Result<KeyId, Doom> {
        let account = self.who.account_id();
        let configured = self
            .ec2
            .ebs
            .get(account)
            .and_then(|regions| regions.get(region))
            .and_then(|settings| settings.default_key.as_ref());
        match configured {
            Some(arn) => self
                .kms
                .resolve_arn(region, arn)
                .map(|key| key.arn.key_id().clone())
                .map_err(|err| Doom::access(err.to_string())),
            None => Ok(self.kms.aws_ebs_key(self.ids, account, region)),
        }
    }

    /// The key EC2 encrypts under, as it resolves it on the caller's behalf
    /// in `region` (`docs/spec/ec2.md` §B18).
    fn target_key(
        &mut self,
        region: &Region,
        how: &Encryption<&KeyRef>,
        source: Option<&KeyArn>,
    ) -> std::result::Result<Option<KeyId>, Doom> {
        match (how, how.choice()) {
            (Encryption::Plain, _) => Ok(None),
            (Encryption::SameKey, _) => Ok(source.map(|arn| arn.key_id().clone())),
            (_, Some(KeyChoice::Requested(key))) => self
                .kms
                .resolve(self.ids, self.who.account_id(), region, key)
                .map(Some)
                .map_err(|err| Doom::access(err.to_string())),
            (_, _) => self.default_key(region).map(Some),
        }
    }

    /// Checks `needs` (keys with the actions EC2 performs on each) in order,
    /// stopping at the first refusal.
    fn check_all(&self, needs: &[(&KeyId, &[&str])]) -> std::result::Result<(), Doom> {
        needs
            .iter()
            .try_for_each(|(key, actions)| self.check_via_ec2(key, actions))
    }

    /// What KMS answers when EC2 performs `actions` on `key` on the caller's
    /// behalf: the key exists, policies allow, and it is enabled.
    fn check_via_ec2(&self, key: &KeyId, actions: &[&str]) -> std::result::Result<(), Doom> {
        let Some(key) = self.kms.keys.get(key) else {
            return Err(Doom::access(format!(
                "NotFoundException: Key '{key}' does not exist"
            )));
        };
        let context = Context::via_ec2(key.arn.region().as_str());
        kms_allows(&self.who, key, actions, context, self.now, self.knobs)
            .map_err(|message| Doom::access(format!("AccessDeniedException: {message}")))?;
        require_enabled(key, self.knobs).map_err(|err| Doom {
            key_state: true,
            detail: err.to_string(),
        })
    }

    fn arn_of(&self, key: &KeyId) -> Option<KeyArn> {
        self.kms.keys.get(key).map(|key| key.arn.clone())
    }

    // ------------------------------------------------------------ instances

    pub(crate) fn describe_instances(
        &mut self,
        region: &Region,
        ids: &[InstanceId],
    ) -> Result<Vec<Instance>> {
        self.authorize_ec2("ec2:DescribeInstances", Resource::Any)?;
        let account = self.who.account_id();
        let mine =
            |instance: &&InstanceRecord| &instance.owner == account && &instance.region == region;
        if ids.is_empty() {
            return Ok(self
                .ec2
                .instances
                .values()
                .map(Box::as_ref)
                .filter(mine)
                .map(|instance| instance.to_instance(self.now))
                .collect());
        }
        ids.iter()
            .map(|id| {
                self.ec2
                    .instances
                    .get(id)
                    .map(Box::as_ref)
                    .filter(mine)
                    .map(|instance| instance.to_instance(self.now))
                    .ok_or_else(|| errors::instance_not_found(id))
            })
            .collect()
    }

    pub(crate) fn run_instances(
        &mut self,
        region: &Region,
        request: &RunInstancesRequest,
    ) -> Result<Instance> {
        limits::ec2_tags(&request.tags)?;
        limits::client_token(request.client_token.as_deref())?;
        self.authorize_ec2(
            "ec2:RunInstances",
            Resource::Image(region, request.image.as_str()),
        )?;
        if request.instance_type.trim().is_empty() {
            return Err(errors::invalid_parameter_value(format!(
                "Invalid value '{}' for InstanceType.",
                request.instance_type
            )));
        }
        let token = request
            .client_token
            .as_ref()
            .map(|token| scoped(self.who.account_id(), region, token));
        if let Some(instance) = token
            .as_ref()
            .and_then(|token| self.ec2.instance_tokens.get(token))
            .and_then(|id| self.ec2.instances.get(id))
        {
            return Ok(instance.to_instance(self.now));
        }
        let image = self
            .visible_image(region, &request.image)
            .ok_or_else(|| errors::image_not_found(&request.image))?;
        if !image.is_available(self.now) {
            return Err(self
                .knobs
                .unavailable_image
                .to_error(request.image.as_str()));
        }
        let devices = self.source_devices(image);
        let account = self.who.account_id();
        let encryption_by_default = self.ec2.ebs_settings(account, region).encryption_by_default;

        let mut doom: Option<Doom> = None;
        let mut used_keys: Vec<KeyId> = Vec::new();
        let mut volumes = Vec::with_capacity(devices.len());
        for source in &devices {
            let source_key = SourceKey::new(source.key.is_some(), source.own);
            let how = ec2_kms::encryption(
                source_key,
                request.kms_key.as_ref(),
                // The launch request carries `Encrypted` only with a key.
                false,
                encryption_by_default,
            );
            let volume_key = match self.target_key(region, &how, source.key.as_ref()) {
                Ok(key) => key,
                Err(failure) => {
                    doom.get_or_insert(failure);
                    None
                }
            };
            let encrypted = how.is_encrypted();
            if doom.is_none() {
                let snapshot_key = source.key.as_ref().map(|arn| arn.key_id());
                let needs = ec2_kms::launch_actions(snapshot_key, volume_key.as_ref());
                match self.check_all(&needs) {
                    Ok(()) => {
                        for key in snapshot_key.into_iter().chain(volume_key.as_ref()) {
                            if !used_keys.contains(key) {
                                used_keys.push(key.clone());
                            }
                        }
                    }
                    Err(failure) => doom = Some(failure),
                }
            }
            let kms_key = volume_key.as_ref().and_then(|key| self.arn_of(key));
            volumes.push(InstanceVolume {
                volume: AttachedVolume {
                    volume_id: self.ids.volume(),
                    device_name: source.device.device_name.clone(),
                    encrypted,
                    kms_key,
                    size: source.device.size,
                },
                volume_type: source.device.volume_type.clone(),
            });
        }

        let id = self.ids.instance();
        let now = self.now;
        let mut record = InstanceRecord {
            id: id.clone(),
            owner: account.clone(),
            region: region.clone(),
            image: request.image.clone(),
            timeline: vec![(now, InstanceState::Pending)],
            reason: None,
            failure_detail: None,
            volumes,
            grants: Vec::new(),
            tags: request.tags.clone(),
        };
        match doom {
            Some(failure) => {
                let shutting_down = now + self.knobs.failed_launch_shutting_down_after;
                record
                    .timeline
                    .push((shutting_down, InstanceState::ShuttingDown));
                record.timeline.push((
                    now + self.knobs.failed_launch_terminated_after,
                    InstanceState::Terminated,
                ));
                let reason = if failure.key_state {
                    self.knobs.launch_key_state_failure.clone()
                } else {
                    self.knobs.launch_kms_failure.clone()
                };
                record.reason = Some((shutting_down, reason));
                record.failure_detail = Some(failure.detail);
            }
            None => {
                record
                    .timeline
                    .push((now + self.knobs.instance_boot_time, InstanceState::Running));
                let grantee =
                    format!("arn:aws:sts::{account}:assumed-role/aws:ec2-infrastructure/{id}");
                for key in used_keys {
                    let grant_id = self.ids.grant();
                    if let Some(stored) = self.kms.keys.get_mut(&key) {
                        stored.add_grant(GrantRecord {
                            id: grant_id.clone(),
                            seq: 0,
                            name: None,
                            grantee: grantee.clone(),
                            operations: VOLUME_GRANT_OPERATIONS.map(str::to_owned).to_vec(),
                            issuing_account: account.clone(),
                            created_at: now,
                            retiring_principal: None,
                        });
                        record.grants.push((key, grant_id));
                    }
                }
            }
        }
        let instance = record.to_instance(now);
        if let Some(token) = token {
            self.ec2.instance_tokens.insert(token, id.clone());
        }
        self.ec2.instances.insert(id, Box::new(record));
        Ok(instance)
    }

    pub(crate) fn terminate_instances(
        &mut self,
        region: &Region,
        ids: &[InstanceId],
    ) -> Result<()> {
        let account = self.who.account_id();
        for id in ids {
            self.authorize_ec2(
                "ec2:TerminateInstances",
                Resource::Instance(region, account, id.as_str()),
            )?;
            match self.ec2.instances.get(id) {
                Some(instance) if &instance.owner == account && &instance.region == region => {}
                _ => return Err(errors::instance_not_found(id)),
            }
        }
        self.shut_down(ids);
        Ok(())
    }

    /// Terminates the caller-checked instances `ids` now, as a user does:
    /// `shutting-down`, then `terminated`, and EC2's grants for their
    /// volumes retired. Instances already going are left as they are.
    pub(crate) fn shut_down(&mut self, ids: &[InstanceId]) {
        let now = self.now;
        for id in ids {
            let Some(instance) = self.ec2.instances.get_mut(id) else {
                continue;
            };
            if matches!(
                instance.state(now),
                InstanceState::ShuttingDown | InstanceState::Terminated
            ) {
                continue;
            }
            instance.timeline.retain(|(at, _)| *at <= now);
            instance.timeline.push((now, InstanceState::ShuttingDown));
            instance
                .timeline
                .push((now + self.knobs.terminate_time, InstanceState::Terminated));
            instance.reason = Some((
                now,
                StateReason {
                    code: "Client.UserInitiatedShutdown".to_owned(),
                    message: "Client.UserInitiatedShutdown: User initiated shutdown".to_owned(),
                },
            ));
            let grants: Vec<(KeyId, GrantId)> = std::mem::take(&mut instance.grants);
            for (key, grant) in grants {
                if let Some(key) = self.kms.keys.get_mut(&key) {
                    key.remove_grant(&grant);
                }
            }
        }
    }

    // ------------------------------------------------------------ images

    pub(crate) fn create_image(
        &mut self,
        region: &Region,
        request: &CreateImageRequest,
    ) -> Result<ImageId> {
        limits::ec2_tags(&request.tags)?;
        let account = self.who.account_id();
        self.authorize_ec2(
            "ec2:CreateImage",
            Resource::Instance(region, account, request.instance.as_str()),
        )?;
        let instance = self
            .ec2
            .instances
            .get(&request.instance)
            .filter(|instance| &instance.owner == account && &instance.region == region)
            .ok_or_else(|| errors::instance_not_found(&request.instance))?;
        let state = instance.state(self.now);
        if !matches!(state, InstanceState::Running | InstanceState::Stopped) {
            return Err(Error::service(
                ErrorKind::Conflict,
                "IncorrectInstanceState",
                format!(
                    "The instance '{}' is not in a state from which it can be imaged (state: {state}).",
                    request.instance
                ),
            ));
        }
        let volumes = instance.volumes.clone();
        validate_image_name(&request.name)?;
        self.check_name_free(account, region, &request.name)?;

        let image_id = self.ids.image();
        let ready_at = self.now + self.knobs.create_image_time;
        let mut devices = Vec::with_capacity(volumes.len());
        for volume in volumes {
            let snapshot_id = self.ids.snapshot();
            self.ec2.snapshots.insert(
                snapshot_id.clone(),
                Box::new(SnapshotRecord {
                    id: snapshot_id.clone(),
                    owner: account.clone(),
                    region: region.clone(),
                    size: volume.volume.size,
                    encrypted: volume.volume.encrypted,
                    kms_key: volume.volume.kms_key.clone(),
                    started_at: Some(self.now),
                    ready_at,
                    failure: None,
                    volume_permissions: BTreeSet::new(),
                    image: Some(image_id.clone()),
                }),
            );
            devices.push(DeviceRecord {
                device_name: volume.volume.device_name,
                snapshot: snapshot_id,
                size: volume.volume.size,
                volume_type: volume.volume_type,
                encrypted: volume.volume.encrypted,
            });
        }
        self.ec2.insert_image(ImageRecord {
            id: image_id.clone(),
            owner: account.clone(),
            region: region.clone(),
            name: request.name.clone(),
            ready_at,
            failure: None,
            failure_detail: None,
            devices,
            tags: request.tags.clone(),
            launch_permissions: BTreeSet::new(),
            source_image: None,
            source_region: None,
            source_instance: Some(request.instance.clone()),
            client_token: None,
        });
        self.eventual
            .made(self.now, || Made::Image(image_id.clone()));
        Ok(image_id)
    }

    pub(crate) fn copy_image(
        &mut self,
        region: &Region,
        request: &CopyImageRequest,
    ) -> Result<ImageId> {
        limits::ec2_tags(&request.tags)?;
        limits::client_token(request.client_token.as_deref())?;
        self.authorize_ec2("ec2:CopyImage", Resource::Image(region, "*"))?;
        let account = self.who.account_id();
        let token = request
            .client_token
            .as_ref()
            .map(|token| scoped(account, region, token));
        if let Some(existing) = token
            .as_ref()
            .and_then(|token| self.ec2.client_tokens.get(token))
        {
            if self.ec2.images.contains_key(existing) {
                return Ok(existing.clone());
            }
        }
        if request.kms_key.is_some() && request.encrypted != Some(true) {
            let key = request
                .kms_key
                .as_ref()
                .map(ToString::to_string)
                .unwrap_or_default();
            return Err(self.knobs.kms_key_without_encrypted.to_error(&key));
        }
        validate_image_name(&request.name)?;
        let source = self
            .visible_image(&request.source_region, &request.source_image)
            .ok_or_else(|| errors::image_not_found(&request.source_image))?;
        if !source.is_available(self.now) {
            return Err(self
                .knobs
                .unavailable_image
                .to_error(request.source_image.as_str()));
        }
        let cross_account = &source.owner != account;
        for device in &source.devices {
            let snapshot = &self.ec2.snapshots[&device.snapshot];
            if cross_account && !snapshot.readable_by(account) {
                return Err(errors::invalid_request(
                    ErrorKind::AccessDenied,
                    "You do not have permission to access the storage of this ami",
                ));
            }
            if request.encrypted == Some(false) && snapshot.encrypted {
                return Err(errors::invalid_request(
                    ErrorKind::InvalidInput,
                    format!(
                        "Snapshot {} is encrypted. Creating an unencrypted copy from an encrypted snapshot is not supported.",
                        snapshot.id
                    ),
                ));
            }
        }
        let devices = self.source_devices(source);
        self.check_name_free(account, region, &request.name)?;

        let encryption_by_default = self.ec2.ebs_settings(account, region).encryption_by_default;
        let same_region = &request.source_region == region;
        let mut doom: Option<Doom> = None;
        let mut planned = Vec::with_capacity(devices.len());
        for source in &devices {
            let source_key = SourceKey::new(source.key.is_some(), source.own && same_region);
            let how = ec2_kms::encryption(
                source_key,
                request.kms_key.as_ref(),
                request.encrypted == Some(true),
                encryption_by_default,
            );
            let encrypted = how.is_encrypted();
            let target_key = match self.target_key(region, &how, source.key.as_ref()) {
                Ok(key) => key,
                Err(failure) => {
                    doom.get_or_insert(failure);
                    None
                }
            };
            if doom.is_none() {
                let source_key = source.key.as_ref().map(|arn| arn.key_id());
                let needs = ec2_kms::copy_actions(source_key, target_key.as_ref());
                if let Err(failure) = self.check_all(&needs) {
                    doom = Some(failure);
                }
            }
            let kms_key = target_key.as_ref().and_then(|key| self.arn_of(key));
            planned.push((source.device.clone(), encrypted, kms_key));
        }

        let image_id = self.ids.image();
        // §B19: a copy KMS allows may still fail inside EC2, by the world's chance.
        if doom.is_none() && self.eventual.copy_fails(&image_id) {
            doom = Some(Doom::access(COPY_FAILED_BY_CHANCE.to_owned()));
        }
        let total_gib: u32 = planned.iter().map(|(device, _, _)| device.size).sum();
        let (ready_at, failure, snapshot_failure, failure_detail) = match doom {
            Some(failure) => (
                self.now + self.knobs.copy_image_failure_time,
                Some(self.knobs.copy_failure.clone()),
                Some(self.knobs.copy_failure_snapshot_message.clone()),
                Some(failure.detail),
            ),
            None => (
                self.now
                    + self.knobs.copy_image_base_time
                    + self.knobs.copy_image_time_per_gib * total_gib,
                None,
                None,
                None,
            ),
        };
        let mut new_devices = Vec::with_capacity(planned.len());
        for (device, encrypted, kms_key) in planned {
            let snapshot_id = self.ids.snapshot();
            self.ec2.snapshots.insert(
                snapshot_id.clone(),
                Box::new(SnapshotRecord {
                    id: snapshot_id.clone(),
                    owner: account.clone(),
                    region: region.clone(),
                    size: device.size,
                    encrypted,
                    kms_key,
                    started_at: Some(self.now),
                    ready_at,
                    failure: snapshot_failure.clone(),
                    volume_permissions: BTreeSet::new(),
                    image: Some(image_id.clone()),
                }),
            );
            new_devices.push(DeviceRecord {
                snapshot: snapshot_id,
                encrypted,
                ..device
            });
        }
        if let Some(token) = token {
            self.ec2.client_tokens.insert(token, image_id.clone());
        }
        self.ec2.insert_image(ImageRecord {
            id: image_id.clone(),
            owner: account.clone(),
            region: region.clone(),
            name: request.name.clone(),
            ready_at,
            failure,
            failure_detail,
            devices: new_devices,
            tags: request.tags.clone(),
            launch_permissions: BTreeSet::new(),
            source_image: Some(request.source_image.clone()),
            source_region: Some(request.source_region.clone()),
            source_instance: None,
            client_token: request.client_token.clone(),
        });
        self.eventual
            .made(self.now, || Made::Image(image_id.clone()));
        Ok(image_id)
    }

    pub(crate) fn describe_images(
        &mut self,
        region: &Region,
        query: &ImageQuery,
    ) -> Result<Vec<Image>> {
        self.authorize_ec2("ec2:DescribeImages", Resource::Any)?;
        if query.image_ids.is_empty() {
            let images = self
                .ec2
                .images
                .values()
                .filter(|image| &image.region == region && self.launchable(image))
                .filter(|image| self.matches_query(image, query))
                .map(|image| self.to_image(image))
                .collect();
            return Ok(self
                .eventual
                .visible(self.now, images, |image| Made::Image(image.id.clone())));
        }
        let mut found = Vec::with_capacity(query.image_ids.len());
        let mut missing = Vec::new();
        for id in &query.image_ids {
            // §B19: an image just made is not found yet.
            if self.eventual.hides(self.now, || Made::Image(id.clone())) {
                missing.push(id);
                continue;
            }
            match self.visible_image(region, id) {
                Some(image) if self.matches_query(image, query) => found.push(self.to_image(image)),
                Some(_) => {}
                None => missing.push(id),
            }
        }
        if !missing.is_empty() && self.knobs.unknown_image_ids == UnknownIds::Error {
            return Err(errors::images_not_found(&missing));
        }
        Ok(found)
    }

    fn matches_query(&self, image: &ImageRecord, query: &ImageQuery) -> bool {
        let account = self.who.account_id();
        let owner_ok = query.owners.is_empty()
            || query.owners.iter().any(|owner| match owner {
                ImageOwner::Me => &image.owner == account,
                ImageOwner::Account(other) => &image.owner == other,
            });
        let shared_with_me = || {
            image
                .launch_permissions
                .iter()
                .any(|p| !matches!(p, LaunchPermission::Public) && self.who.covered_by(p))
        };
        let executable_ok = query.executable_by.is_empty()
            || query.executable_by.iter().any(|by| match by {
                ExecutableBy::Me => shared_with_me(),
                ExecutableBy::Account(other) if other == account => shared_with_me(),
                ExecutableBy::Account(other) => image
                    .launch_permissions
                    .contains(&LaunchPermission::Account(other.clone())),
                ExecutableBy::All => image.is_public(),
            });
        // Other accounts never see the owner's tags, so tag filters only
        // match the caller's own images.
        let tags_ok = query.tags.is_empty()
            || (&image.owner == account
                && query.tags.iter().all(|(key, values)| {
                    image
                        .tags
                        .get(key)
                        .is_some_and(|value| values.is_empty() || values.contains(value))
                }));
        owner_ok && executable_ok && tags_ok
    }

    pub(crate) fn deregister_image(
        &mut self,
        region: &Region,
        id: &ImageId,
        delete_snapshots: bool,
    ) -> Result<()> {
        self.authorize_ec2("ec2:DeregisterImage", Resource::Image(region, id.as_str()))?;
        self.owned_image(region, id)?;
        let image = self
            .ec2
            .images
            .remove(id)
            .expect("the image was just found");
        self.ec2
            .image_names
            .remove(&scoped(&image.owner, &image.region, &image.name));
        if let Some(token) = &image.client_token {
            self.ec2
                .client_tokens
                .remove(&scoped(&image.owner, &image.region, token));
        }
        for device in &image.devices {
            if delete_snapshots {
                self.ec2.snapshots.remove(&device.snapshot);
            } else if let Some(snapshot) = self.ec2.snapshots.get_mut(&device.snapshot) {
                snapshot.image = None;
            }
        }
        Ok(())
    }

    pub(crate) fn modify_launch_permission(
        &mut self,
        region: &Region,
        id: &ImageId,
        change: &PermissionChange<LaunchPermission>,
    ) -> Result<()> {
        self.authorize_ec2(
            "ec2:ModifyImageAttribute",
            Resource::Image(region, id.as_str()),
        )?;
        let image = self.owned_image(region, id)?;
        if !change.add.is_empty() {
            let keys = image
                .devices
                .iter()
                .filter_map(|device| self.ec2.snapshots.get(&device.snapshot))
                .map(|snapshot| snapshot.kms_key.as_ref());
            let mut encrypted = image.devices.iter().any(|device| device.encrypted);
            for key in keys {
                encrypted |= key.is_some();
                if self.is_aws_managed(key) {
                    return Err(Error::service(
                        ErrorKind::Unsupported,
                        "InvalidParameter",
                        "Snapshots encrypted with the AWS Managed CMK can't be shared. Specify another snapshot.",
                    ));
                }
            }
            if encrypted && change.add.contains(&LaunchPermission::Public) {
                return Err(Error::service(
                    ErrorKind::Unsupported,
                    "UnsupportedOperation",
                    "Encrypted snapshots can\u{2019}t be shared publicly. Specify another snapshot.",
                ));
            }
        }
        // Only a change that could exceed the quota needs the resulting set
        // computed before it is applied.
        let quota = self.knobs.launch_permission_quota;
        if image.launch_permissions.len() + change.add.len() > quota {
            let mut permissions = image.launch_permissions.clone();
            permissions.extend(change.add.iter().cloned());
            for entry in &change.remove {
                permissions.remove(entry);
            }
            let entities = permissions
                .iter()
                .filter(|p| !matches!(p, LaunchPermission::Public))
                .count();
            if entities > quota {
                return Err(self
                    .knobs
                    .launch_permission_quota_exceeded
                    .to_error(id.as_str()));
            }
        }
        let permissions = &mut self
            .ec2
            .images
            .get_mut(id)
            .expect("the image was just found")
            .launch_permissions;
        if self.eventual.is_delayed() {
            for added in change.add.iter().filter(|p| !permissions.contains(p)) {
                self.eventual.made(self.now, || {
                    Made::LaunchPermission(id.clone(), added.clone())
                });
            }
        }
        permissions.extend(change.add.iter().cloned());
        for entry in &change.remove {
            permissions.remove(entry);
        }
        Ok(())
    }

    pub(crate) fn describe_launch_permission(
        &mut self,
        region: &Region,
        id: &ImageId,
    ) -> Result<Vec<LaunchPermission>> {
        self.authorize_ec2(
            "ec2:DescribeImageAttribute",
            Resource::Image(region, id.as_str()),
        )?;
        let image = self.owned_image(region, id)?;
        let permissions = image.launch_permissions.iter().cloned().collect();
        Ok(self.eventual.visible(self.now, permissions, |permission| {
            Made::LaunchPermission(id.clone(), permission.clone())
        }))
    }

    // ------------------------------------------------------------ snapshots

    pub(crate) fn describe_snapshots(
        &mut self,
        region: &Region,
        ids: &[SnapshotId],
    ) -> Result<Vec<Snapshot>> {
        self.authorize_ec2("ec2:DescribeSnapshots", Resource::Any)?;
        let account = self.who.account_id();
        if ids.is_empty() {
            return Ok(self
                .ec2
                .snapshots
                .values()
                .filter(|snapshot| &snapshot.region == region && snapshot.readable_by(account))
                .map(|snapshot| self.to_snapshot(snapshot))
                .collect());
        }
        let mut found = Vec::with_capacity(ids.len());
        for id in ids {
            match self.visible_snapshot(region, id) {
                Some(snapshot) => found.push(self.to_snapshot(snapshot)),
                None if self.knobs.unknown_snapshot_ids == UnknownIds::Error => {
                    return Err(errors::snapshot_not_found(id))
                }
                None => {}
            }
        }
        Ok(found)
    }

    pub(crate) fn modify_create_volume_permission(
        &mut self,
        region: &Region,
        id: &SnapshotId,
        change: &PermissionChange<VolumePermission>,
    ) -> Result<()> {
        self.authorize_ec2(
            "ec2:ModifySnapshotAttribute",
            Resource::Snapshot(region, id.as_str()),
        )?;
        let snapshot = self.owned_snapshot(region, id)?;
        let shares_with_account = change
            .add
            .iter()
            .any(|p| matches!(p, VolumePermission::Account(_)));
        if shares_with_account && self.is_aws_managed(snapshot.kms_key.as_ref()) {
            return Err(Error::service(
                ErrorKind::Unsupported,
                "OperationNotPermitted",
                "Encrypted snapshots with EBS default key cannot be shared",
            ));
        }
        if snapshot.encrypted && change.add.contains(&VolumePermission::Public) {
            return Err(self.knobs.public_encrypted_snapshot.to_error(id.as_str()));
        }
        let snapshot = self
            .ec2
            .snapshots
            .get_mut(id)
            .expect("the snapshot was just found");
        snapshot
            .volume_permissions
            .extend(change.add.iter().cloned());
        for entry in &change.remove {
            snapshot.volume_permissions.remove(entry);
        }
        Ok(())
    }

    pub(crate) fn describe_create_volume_permission(
        &mut self,
        region: &Region,
        id: &SnapshotId,
    ) -> Result<Vec<VolumePermission>> {
        self.authorize_ec2(
            "ec2:DescribeSnapshotAttribute",
            Resource::Snapshot(region, id.as_str()),
        )?;
        let snapshot = self.owned_snapshot(region, id)?;
        Ok(snapshot.volume_permissions.iter().cloned().collect())
    }

    pub(crate) fn delete_snapshot(&mut self, region: &Region, id: &SnapshotId) -> Result<()> {
        self.authorize_ec2(
            "ec2:DeleteSnapshot",
            Resource::Snapshot(region, id.as_str()),
        )?;
        let snapshot = self.owned_snapshot(region, id)?;
        if let Some(image) = &snapshot.image {
            return Err(Error::service(
                ErrorKind::Conflict,
                "InvalidSnapshot.InUse",
                format!("The snapshot {id} is currently in use by {image}"),
            ));
        }
        self.ec2.snapshots.remove(id);
        Ok(())
    }

    // ------------------------------------------------------------ settings

    pub(crate) fn ebs_defaults(&mut self, region: &Region) -> Result<EbsDefaults> {
        self.authorize_ec2("ec2:GetEbsEncryptionByDefault", Resource::Any)?;
        self.authorize_ec2("ec2:GetEbsDefaultKmsKeyId", Resource::Any)?;
        let settings = self.ec2.ebs_settings(self.who.account_id(), region);
        Ok(EbsDefaults {
            encryption_by_default: settings.encryption_by_default,
            kms_key: match settings.default_key {
                Some(arn) => KeyRef::Arn(arn),
                None => KeyRef::Alias(AliasName::aws_ebs()),
            },
        })
    }
}

#[cfg(test)]
mod tests {
    use amishare_core::{AccountId, Region};

    use super::Resource;

    #[test]
    fn resource_arns_are_written_as_ec2_writes_them() {
        let region = Region::parse("ap-northeast-1").unwrap();
        let account = AccountId::parse("111111111111").unwrap();
        let arn = |resource: Resource<'_>| resource.with_arn(str::to_owned);
        assert_eq!(arn(Resource::Any), "*");
        assert_eq!(
            arn(Resource::Image(&region, "ami-0123456789abcdef0")),
            "arn:aws:ec2:ap-northeast-1::image/ami-0123456789abcdef0"
        );
        assert_eq!(
            arn(Resource::Snapshot(&region, "snap-0123456789abcdef0")),
            "arn:aws:ec2:ap-northeast-1::snapshot/snap-0123456789abcdef0"
        );
        assert_eq!(
            arn(Resource::Instance(&region, &account, "i-0123456789abcdef0")),
            "arn:aws:ec2:ap-northeast-1:111111111111:instance/i-0123456789abcdef0"
        );
        // Longer than the stack buffer: written on the heap, the same way.
        let long = "x".repeat(300);
        assert_eq!(
            arn(Resource::Image(&region, &long)),
            format!("arn:aws:ec2:ap-northeast-1::image/{long}")
        );
    }
}

//! [`AwsImageStore`]: amishare's [`ImageStore`] over aws-sdk-ec2.

use std::collections::{BTreeMap, BTreeSet};

use amishare_core::store::{
    AttachedVolume, BlockDevice, CopyImageRequest, CreateImageRequest, EbsDefaults, ExecutableBy,
    Image, ImageOwner, ImageQuery, ImageState, ImageStore, Instance, InstanceState,
    LaunchPermission, PermissionChange, RunInstancesRequest, Snapshot, SnapshotState, StateReason,
    VolumePermission,
};
use amishare_core::{
    AccountId, Error, ErrorKind, ImageId, InstanceId, KeyArn, KeyRef, OrganizationArn, OuArn,
    Region, Result, SnapshotId, VolumeId,
};
use async_trait::async_trait;
use aws_config::SdkConfig;
use aws_sdk_ec2::types::{self as ec2, ImageAttributeName, PermissionGroup, ResourceType};

use crate::error::{from_sdk, missing, parse, unexpected};
use crate::regional::Regional;

/// EC2 as the principal of an SDK configuration, one client per region.
///
/// List calls (`DescribeImages`, `DescribeSnapshots`, `DescribeInstances`,
/// `DescribeVolumes`) follow every `NextToken`.
pub struct AwsImageStore {
    ec2: Regional<aws_sdk_ec2::Client>,
}

impl AwsImageStore {
    /// A store acting with the credentials, endpoint, retry and timeout
    /// settings of `config`; each call's region overrides the configuration's.
    pub fn new(config: &SdkConfig) -> AwsImageStore {
        AwsImageStore::from_conf(aws_sdk_ec2::Config::from(config))
    }

    /// A store over a service configuration built elsewhere (tests add mock interceptors).
    pub(crate) fn from_conf(ec2: aws_sdk_ec2::Config) -> AwsImageStore {
        AwsImageStore {
            ec2: Regional::new(ec2),
        }
    }

    /// The volumes attached to these instances, by instance ID, in device order.
    async fn attached_volumes(
        &self,
        region: &Region,
        instances: &BTreeSet<String>,
    ) -> Result<BTreeMap<String, Vec<AttachedVolume>>> {
        const OP: &str = "DescribeVolumes";
        let subject = format!("attached to {} instance(s) in {region}", instances.len());
        let filter = ec2::Filter::builder()
            .name("attachment.instance-id")
            .set_values(Some(instances.iter().cloned().collect()))
            .build();
        let mut pages = self
            .ec2
            .get(region)
            .describe_volumes()
            .filters(filter)
            .into_paginator()
            .send();
        let mut attached: BTreeMap<String, Vec<AttachedVolume>> = BTreeMap::new();
        while let Some(page) = pages.next().await {
            let page = page.map_err(|e| from_sdk(OP, &subject, e))?;
            for volume in page.volumes() {
                for attachment in volume.attachments() {
                    let Some(instance) = attachment.instance_id() else {
                        continue;
                    };
                    if !instances.contains(instance) {
                        continue;
                    }
                    attached
                        .entry(instance.to_owned())
                        .or_default()
                        .push(AttachedVolume {
                            volume_id: parse(OP, "VolumeId", volume.volume_id(), VolumeId::parse)?,
                            device_name: attachment.device().unwrap_or_default().to_owned(),
                            encrypted: volume.encrypted().unwrap_or(false),
                            kms_key: optional(OP, "KmsKeyId", volume.kms_key_id(), KeyArn::parse)?,
                            size: size(volume.size()),
                        });
                }
            }
        }
        for volumes in attached.values_mut() {
            volumes.sort_by(|a, b| a.device_name.cmp(&b.device_name));
        }
        Ok(attached)
    }
}

impl std::fmt::Debug for AwsImageStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AwsImageStore")
            .field("ec2", &self.ec2)
            .finish_non_exhaustive()
    }
}

#[async_trait]
impl ImageStore for AwsImageStore {
    /// `DescribeInstances`, then one `DescribeVolumes` (filtered on
    /// `attachment.instance-id`) for the instances that have EBS volumes.
    async fn describe_instances(
        &self,
        region: &Region,
        ids: &[InstanceId],
    ) -> Result<Vec<Instance>> {
        const OP: &str = "DescribeInstances";
        let subject = format!("{} in {region}", list(ids));
        let mut pages = self
            .ec2
            .get(region)
            .describe_instances()
            .set_instance_ids(strings(ids))
            .into_paginator()
            .send();
        let mut found = Vec::new();
        while let Some(page) = pages.next().await {
            let page = page.map_err(|e| from_sdk(OP, &subject, e))?;
            for reservation in page.reservations() {
                for instance in reservation.instances() {
                    found.push((reservation.owner_id().map(str::to_owned), instance.clone()));
                }
            }
        }
        let with_volumes: BTreeSet<String> = found
            .iter()
            .filter(|(_, instance)| {
                instance
                    .block_device_mappings()
                    .iter()
                    .any(|m| m.ebs().is_some())
            })
            .filter_map(|(_, instance)| instance.instance_id().map(str::to_owned))
            .collect();
        let mut volumes = if with_volumes.is_empty() {
            BTreeMap::new()
        } else {
            self.attached_volumes(region, &with_volumes).await?
        };
        found
            .iter()
            .map(|(owner, instance)| {
                let attached = instance
                    .instance_id()
                    .and_then(|id| volumes.remove(id))
                    .unwrap_or_default();
                convert_instance(OP, owner.as_deref(), instance, attached)
            })
            .collect()
    }

    async fn create_image(&self, region: &Region, request: &CreateImageRequest) -> Result<ImageId> {
        const OP: &str = "CreateImage";
        let out = self
            .ec2
            .get(region)
            .create_image()
            .instance_id(request.instance.as_str())
            .name(&request.name)
            .set_tag_specifications(tag_specifications(ResourceType::Image, &request.tags))
            .send()
            .await
            .map_err(|e| {
                from_sdk(
                    OP,
                    &format!(
                        "of {} named {:?} in {region}",
                        request.instance, request.name
                    ),
                    e,
                )
            })?;
        parse(OP, "ImageId", out.image_id(), ImageId::parse)
    }

    /// `CopyImage` in `region`, with the request's client token, and the key
    /// as the request names it (a key ARN for a key of another account).
    async fn copy_image(&self, region: &Region, request: &CopyImageRequest) -> Result<ImageId> {
        const OP: &str = "CopyImage";
        let out = self
            .ec2
            .get(region)
            .copy_image()
            .source_image_id(request.source_image.as_str())
            .source_region(request.source_region.as_str())
            .name(&request.name)
            .set_encrypted(request.encrypted)
            .set_kms_key_id(request.kms_key.as_ref().map(ToString::to_string))
            .set_client_token(request.client_token.clone())
            .set_tag_specifications(tag_specifications(ResourceType::Image, &request.tags))
            .send()
            .await
            .map_err(|e| {
                let key = match &request.kms_key {
                    Some(key) => format!(" under {key}"),
                    None => String::new(),
                };
                from_sdk(
                    OP,
                    &format!(
                        "{} from {} to {region}{key}",
                        request.source_image, request.source_region
                    ),
                    e,
                )
            })?;
        parse(OP, "ImageId", out.image_id(), ImageId::parse)
    }

    /// `DescribeImages` with `ImageIds`, `Owners` (`self` for
    /// [`ImageOwner::Me`]), `ExecutableUsers` (`self`, an account, `all`) and
    /// one `tag:<key>` filter per tag (`tag-key` when any value will do).
    async fn describe_images(&self, region: &Region, query: &ImageQuery) -> Result<Vec<Image>> {
        const OP: &str = "DescribeImages";
        let subject = format!("{} in {region}", list(&query.image_ids));
        let owners: Vec<String> = query
            .owners
            .iter()
            .map(|owner| match owner {
                ImageOwner::Me => "self".to_owned(),
                ImageOwner::Account(account) => account.to_string(),
            })
            .collect();
        let executable_by: Vec<String> = query
            .executable_by
            .iter()
            .map(|by| match by {
                ExecutableBy::Me => "self".to_owned(),
                ExecutableBy::Account(account) => account.to_string(),
                ExecutableBy::All => "all".to_owned(),
            })
            .collect();
        let filters: Vec<ec2::Filter> = query
            .tags
            .iter()
            .map(|(key, values)| {
                if values.is_empty() {
                    ec2::Filter::builder().name("tag-key").values(key).build()
                } else {
                    ec2::Filter::builder()
                        .name(format!("tag:{key}"))
                        .set_values(Some(values.clone()))
                        .build()
                }
            })
            .collect();
        let mut pages = self
            .ec2
            .get(region)
            .describe_images()
            .set_image_ids(strings(&query.image_ids))
            .set_owners(non_empty(owners))
            .set_executable_users(non_empty(executable_by))
            .set_filters(non_empty(filters))
            .into_paginator()
            .send();
        let mut images = Vec::new();
        while let Some(page) = pages.next().await {
            let page = page.map_err(|e| from_sdk(OP, &subject, e))?;
            for image in page.images() {
                images.push(convert_image(image)?);
            }
        }
        Ok(images)
    }

    /// `DescribeSnapshots` by ID; with no IDs, the caller's own snapshots
    /// (`OwnerIds=self`), since every public snapshot would match otherwise.
    async fn describe_snapshots(
        &self,
        region: &Region,
        ids: &[SnapshotId],
    ) -> Result<Vec<Snapshot>> {
        const OP: &str = "DescribeSnapshots";
        let subject = format!("{} in {region}", list(ids));
        let request = self.ec2.get(region).describe_snapshots();
        let request = if ids.is_empty() {
            request.owner_ids("self")
        } else {
            request.set_snapshot_ids(strings(ids))
        };
        let mut pages = request.into_paginator().send();
        let mut snapshots = Vec::new();
        while let Some(page) = pages.next().await {
            let page = page.map_err(|e| from_sdk(OP, &subject, e))?;
            for snapshot in page.snapshots() {
                snapshots.push(convert_snapshot(snapshot)?);
            }
        }
        Ok(snapshots)
    }

    /// One `ModifyImageAttribute` with `LaunchPermission.Add.N` and
    /// `LaunchPermission.Remove.N`; no call when the change is empty.
    async fn modify_launch_permission(
        &self,
        region: &Region,
        image: &ImageId,
        change: &PermissionChange<LaunchPermission>,
    ) -> Result<()> {
        const OP: &str = "ModifyImageAttribute";
        if change.add.is_empty() && change.remove.is_empty() {
            return Ok(());
        }
        let modifications = ec2::LaunchPermissionModifications::builder()
            .set_add(non_empty(
                change.add.iter().map(launch_permission).collect(),
            ))
            .set_remove(non_empty(
                change.remove.iter().map(launch_permission).collect(),
            ))
            .build();
        self.ec2
            .get(region)
            .modify_image_attribute()
            .image_id(image.as_str())
            .launch_permission(modifications)
            .send()
            .await
            .map_err(|e| from_sdk(OP, &format!("launchPermission of {image} in {region}"), e))?;
        Ok(())
    }

    async fn describe_launch_permission(
        &self,
        region: &Region,
        image: &ImageId,
    ) -> Result<Vec<LaunchPermission>> {
        const OP: &str = "DescribeImageAttribute";
        let out = self
            .ec2
            .get(region)
            .describe_image_attribute()
            .image_id(image.as_str())
            .attribute(ImageAttributeName::LaunchPermission)
            .send()
            .await
            .map_err(|e| from_sdk(OP, &format!("launchPermission of {image} in {region}"), e))?;
        out.launch_permissions()
            .iter()
            .map(|permission| {
                if let Some(account) = permission.user_id() {
                    return parse(OP, "UserId", Some(account), AccountId::parse)
                        .map(LaunchPermission::Account);
                }
                if let Some(org) = permission.organization_arn() {
                    return parse(OP, "OrganizationArn", Some(org), OrganizationArn::parse)
                        .map(LaunchPermission::Organization);
                }
                if let Some(ou) = permission.organizational_unit_arn() {
                    return parse(OP, "OrganizationalUnitArn", Some(ou), OuArn::parse)
                        .map(LaunchPermission::OrganizationalUnit);
                }
                match permission.group() {
                    Some(PermissionGroup::All) => Ok(LaunchPermission::Public),
                    Some(other) => Err(unexpected(OP, "Group", format!("{:?}", other.as_str()))),
                    None => Err(missing(OP, "LaunchPermission item")),
                }
            })
            .collect()
    }

    /// `ModifySnapshotAttribute` with `Attribute=createVolumePermission`,
    /// `OperationType`, `UserId.N` and `UserGroup.N`: one call for the
    /// additions, then one for the removals; none when the change is empty.
    async fn modify_create_volume_permission(
        &self,
        region: &Region,
        snapshot: &SnapshotId,
        change: &PermissionChange<VolumePermission>,
    ) -> Result<()> {
        const OP: &str = "ModifySnapshotAttribute";
        for (operation, entries) in [
            (ec2::OperationType::Add, &change.add),
            (ec2::OperationType::Remove, &change.remove),
        ] {
            if entries.is_empty() {
                continue;
            }
            let mut accounts = Vec::new();
            let mut groups = Vec::new();
            for entry in entries {
                match entry {
                    VolumePermission::Account(account) => accounts.push(account.to_string()),
                    VolumePermission::Public => groups.push("all".to_owned()),
                }
            }
            self.ec2
                .get(region)
                .modify_snapshot_attribute()
                .snapshot_id(snapshot.as_str())
                .attribute(ec2::SnapshotAttributeName::CreateVolumePermission)
                .operation_type(operation.clone())
                .set_user_ids(non_empty(accounts))
                .set_group_names(non_empty(groups))
                .send()
                .await
                .map_err(|e| {
                    from_sdk(
                        OP,
                        &format!(
                            "createVolumePermission ({}) of {snapshot} in {region}",
                            operation.as_str()
                        ),
                        e,
                    )
                })?;
        }
        Ok(())
    }

    async fn describe_create_volume_permission(
        &self,
        region: &Region,
        snapshot: &SnapshotId,
    ) -> Result<Vec<VolumePermission>> {
        const OP: &str = "DescribeSnapshotAttribute";
        let out = self
            .ec2
            .get(region)
            .describe_snapshot_attribute()
            .snapshot_id(snapshot.as_str())
            .attribute(ec2::SnapshotAttributeName::CreateVolumePermission)
            .send()
            .await
            .map_err(|e| {
                from_sdk(
                    OP,
                    &format!("createVolumePermission of {snapshot} in {region}"),
                    e,
                )
            })?;
        out.create_volume_permissions()
            .iter()
            .map(|permission| {
                if let Some(account) = permission.user_id() {
                    return parse(OP, "UserId", Some(account), AccountId::parse)
                        .map(VolumePermission::Account);
                }
                match permission.group() {
                    Some(PermissionGroup::All) => Ok(VolumePermission::Public),
                    Some(other) => Err(unexpected(OP, "Group", format!("{:?}", other.as_str()))),
                    None => Err(missing(OP, "CreateVolumePermission item")),
                }
            })
            .collect()
    }

    /// `RunInstances` for one instance. With a key, a `DescribeImages` of the
    /// image comes first, so that every EBS device of the image gets a block
    /// device mapping with `Encrypted=true` and the key. The pending instance
    /// has no volumes yet: describe it later to see them.
    async fn run_instances(
        &self,
        region: &Region,
        request: &RunInstancesRequest,
    ) -> Result<Instance> {
        const OP: &str = "RunInstances";
        let mappings = match &request.kms_key {
            None => None,
            Some(key) => Some(self.encrypted_mappings(region, &request.image, key).await?),
        };
        let out = self
            .ec2
            .get(region)
            .run_instances()
            .image_id(request.image.as_str())
            .instance_type(ec2::InstanceType::from(request.instance_type.as_str()))
            .min_count(1)
            .max_count(1)
            .set_subnet_id(request.subnet.clone())
            .set_block_device_mappings(mappings)
            .set_tag_specifications(tag_specifications(ResourceType::Instance, &request.tags))
            .set_client_token(request.client_token.clone())
            .send()
            .await
            .map_err(|e| {
                from_sdk(
                    OP,
                    &format!("{} ({}) in {region}", request.image, request.instance_type),
                    e,
                )
            })?;
        let instance = out
            .instances()
            .first()
            .ok_or_else(|| missing(OP, "Instances"))?;
        convert_instance(OP, out.owner_id(), instance, Vec::new())
    }

    async fn terminate_instances(&self, region: &Region, ids: &[InstanceId]) -> Result<()> {
        const OP: &str = "TerminateInstances";
        if ids.is_empty() {
            return Ok(());
        }
        self.ec2
            .get(region)
            .terminate_instances()
            .set_instance_ids(strings(ids))
            .send()
            .await
            .map_err(|e| from_sdk(OP, &format!("{} in {region}", list(ids)), e))?;
        Ok(())
    }

    /// `DeregisterImage`, with `DeleteAssociatedSnapshots=true` when asked.
    /// A snapshot EC2 reports as not deleted for a reason other than being
    /// used by another image (`skipped`) makes the call fail, after the image
    /// is gone, naming the snapshots and why.
    async fn deregister_image(
        &self,
        region: &Region,
        image: &ImageId,
        delete_snapshots: bool,
    ) -> Result<()> {
        const OP: &str = "DeregisterImage";
        let out = self
            .ec2
            .get(region)
            .deregister_image()
            .image_id(image.as_str())
            .set_delete_associated_snapshots(delete_snapshots.then_some(true))
            .send()
            .await
            .map_err(|e| from_sdk(OP, &format!("{image} in {region}"), e))?;
        let failed: Vec<String> = out
            .delete_snapshot_results()
            .iter()
            .filter_map(|result| {
                let code = result.return_code()?.as_str();
                (!matches!(code, "success" | "skipped")).then(|| {
                    format!(
                        "{} ({code})",
                        result.snapshot_id().unwrap_or("unknown snapshot")
                    )
                })
            })
            .collect();
        if !failed.is_empty() {
            return Err(Error::new(
                ErrorKind::Failed,
                format!(
                    "{OP} {image} in {region}: the image is deregistered but some snapshots were not deleted: {}",
                    failed.join(", ")
                ),
            ));
        }
        Ok(())
    }

    async fn delete_snapshot(&self, region: &Region, snapshot: &SnapshotId) -> Result<()> {
        const OP: &str = "DeleteSnapshot";
        self.ec2
            .get(region)
            .delete_snapshot()
            .snapshot_id(snapshot.as_str())
            .send()
            .await
            .map_err(|e| from_sdk(OP, &format!("{snapshot} in {region}"), e))?;
        Ok(())
    }

    /// `GetEbsEncryptionByDefault` and `GetEbsDefaultKmsKeyId`; a default key
    /// EC2 does not name is `alias/aws/ebs`.
    async fn ebs_defaults(&self, region: &Region) -> Result<EbsDefaults> {
        let client = self.ec2.get(region);
        let subject = format!("in {region}");
        let by_default = client
            .get_ebs_encryption_by_default()
            .send()
            .await
            .map_err(|e| from_sdk("GetEbsEncryptionByDefault", &subject, e))?;
        const OP: &str = "GetEbsDefaultKmsKeyId";
        let key = client
            .get_ebs_default_kms_key_id()
            .send()
            .await
            .map_err(|e| from_sdk(OP, &subject, e))?;
        let kms_key = match key.kms_key_id() {
            Some(key) => parse(OP, "KmsKeyId", Some(key), KeyRef::parse)?,
            None => KeyRef::Alias(amishare_core::AliasName::aws_ebs()),
        };
        Ok(EbsDefaults {
            encryption_by_default: by_default.ebs_encryption_by_default().unwrap_or(false),
            kms_key,
        })
    }
}

impl AwsImageStore {
    /// Block device mappings that encrypt every EBS device of `image` with `key`.
    async fn encrypted_mappings(
        &self,
        region: &Region,
        image: &ImageId,
        key: &KeyRef,
    ) -> Result<Vec<ec2::BlockDeviceMapping>> {
        const OP: &str = "DescribeImages";
        let out = self
            .ec2
            .get(region)
            .describe_images()
            .image_ids(image.as_str())
            .send()
            .await
            .map_err(|e| from_sdk(OP, &format!("{image} in {region}"), e))?;
        let found = out.images().first().ok_or_else(|| {
            Error::new(
                ErrorKind::NotFound,
                format!("{OP} {image} in {region}: the image is not listed"),
            )
        })?;
        Ok(found
            .block_device_mappings()
            .iter()
            .filter(|mapping| mapping.ebs().is_some())
            .filter_map(|mapping| mapping.device_name())
            .map(|device| {
                ec2::BlockDeviceMapping::builder()
                    .device_name(device)
                    .ebs(
                        ec2::EbsBlockDevice::builder()
                            .encrypted(true)
                            .kms_key_id(key.to_string())
                            .build(),
                    )
                    .build()
            })
            .collect())
    }
}

/// An image as `DescribeImages` shows it.
///
/// EC2 states amishare has no word for map to the nearest one: `transient`
/// is still `pending`, `invalid` and `error` are `failed`, and `disabled`
/// (an image that can no longer be launched) is `deregistered`. EBS devices
/// without a snapshot yet (a copy in progress) and instance-store devices are
/// left out.
fn convert_image(image: &ec2::Image) -> Result<Image> {
    const OP: &str = "DescribeImages";
    let state = match image.state() {
        Some(ec2::ImageState::Pending | ec2::ImageState::Transient) => ImageState::Pending,
        Some(ec2::ImageState::Available) => ImageState::Available,
        Some(ec2::ImageState::Deregistered | ec2::ImageState::Disabled) => ImageState::Deregistered,
        Some(_) => ImageState::Failed,
        None => return Err(missing(OP, "imageState")),
    };
    let mut block_devices = Vec::new();
    for mapping in image.block_device_mappings() {
        let Some(ebs) = mapping.ebs() else { continue };
        let Some(snapshot) = ebs.snapshot_id() else {
            continue;
        };
        block_devices.push(BlockDevice {
            device_name: mapping.device_name().unwrap_or_default().to_owned(),
            snapshot_id: parse(OP, "snapshotId", Some(snapshot), SnapshotId::parse)?,
            volume_size: size(ebs.volume_size()),
            volume_type: ebs
                .volume_type()
                .map(|t| t.as_str().to_owned())
                .unwrap_or_default(),
            encrypted: ebs.encrypted().unwrap_or(false),
        });
    }
    Ok(Image {
        id: parse(OP, "imageId", image.image_id(), ImageId::parse)?,
        owner: parse(OP, "imageOwnerId", image.owner_id(), AccountId::parse)?,
        name: image.name().unwrap_or_default().to_owned(),
        state,
        state_reason: state_reason(image.state_reason()),
        // EC2 says no more than its state reason.
        failure_cause: None,
        public: image.public().unwrap_or(false),
        block_devices,
        tags: tags(image.tags()),
        source_image: optional(OP, "sourceImageId", image.source_image_id(), ImageId::parse)?,
        source_region: optional(
            OP,
            "sourceImageRegion",
            image.source_image_region(),
            Region::parse,
        )?,
    })
}

/// A snapshot as `DescribeSnapshots` shows it. `recoverable` and
/// `recovering` (a snapshot in the Recycle Bin) read as `error`: neither can
/// back an image.
fn convert_snapshot(snapshot: &ec2::Snapshot) -> Result<Snapshot> {
    const OP: &str = "DescribeSnapshots";
    let state = match snapshot.state() {
        Some(ec2::SnapshotState::Pending) => SnapshotState::Pending,
        Some(ec2::SnapshotState::Completed) => SnapshotState::Completed,
        Some(_) => SnapshotState::Error,
        None => return Err(missing(OP, "status")),
    };
    Ok(Snapshot {
        id: parse(OP, "snapshotId", snapshot.snapshot_id(), SnapshotId::parse)?,
        owner: parse(OP, "ownerId", snapshot.owner_id(), AccountId::parse)?,
        state,
        state_message: snapshot
            .state_message()
            .filter(|m| !m.is_empty())
            .map(str::to_owned),
        volume_size: size(snapshot.volume_size()),
        encrypted: snapshot.encrypted().unwrap_or(false),
        kms_key: optional(OP, "kmsKeyId", snapshot.kms_key_id(), KeyArn::parse)?,
        progress: snapshot.progress().and_then(percent),
    })
}

/// EC2's `Progress` ("45%") as a number; anything else is not known.
fn percent(text: &str) -> Option<u8> {
    let number = text.trim().strip_suffix('%').unwrap_or(text.trim());
    number.parse::<u8>().ok().filter(|p| *p <= 100)
}

/// An instance of a `DescribeInstances` reservation or of `RunInstances`.
fn convert_instance(
    operation: &str,
    owner: Option<&str>,
    instance: &ec2::Instance,
    volumes: Vec<AttachedVolume>,
) -> Result<Instance> {
    let state = match instance.state().and_then(|s| s.name()) {
        Some(ec2::InstanceStateName::Pending) => InstanceState::Pending,
        Some(ec2::InstanceStateName::Running) => InstanceState::Running,
        Some(ec2::InstanceStateName::Stopping) => InstanceState::Stopping,
        Some(ec2::InstanceStateName::Stopped) => InstanceState::Stopped,
        Some(ec2::InstanceStateName::ShuttingDown) => InstanceState::ShuttingDown,
        Some(ec2::InstanceStateName::Terminated) => InstanceState::Terminated,
        Some(other) => {
            return Err(unexpected(
                operation,
                "instanceState",
                format!("{:?}", other.as_str()),
            ))
        }
        None => return Err(missing(operation, "instanceState")),
    };
    Ok(Instance {
        id: parse(
            operation,
            "instanceId",
            instance.instance_id(),
            InstanceId::parse,
        )?,
        owner: parse(operation, "ownerId", owner, AccountId::parse)?,
        image: parse(operation, "imageId", instance.image_id(), ImageId::parse)?,
        state,
        state_reason: state_reason(instance.state_reason()),
        failure_cause: None,
        volumes,
        tags: tags(instance.tags()),
    })
}

/// A launch permission as `LaunchPermission.Add.N` / `.Remove.N` carries it.
fn launch_permission(permission: &LaunchPermission) -> ec2::LaunchPermission {
    let builder = ec2::LaunchPermission::builder();
    match permission {
        LaunchPermission::Account(account) => builder.user_id(account.as_str()),
        LaunchPermission::Organization(org) => builder.organization_arn(org.to_string()),
        LaunchPermission::OrganizationalUnit(ou) => builder.organizational_unit_arn(ou.to_string()),
        LaunchPermission::Public => builder.group(PermissionGroup::All),
    }
    .build()
}

/// EC2's `StateReason`, when it says anything.
fn state_reason(reason: Option<&ec2::StateReason>) -> Option<StateReason> {
    let reason = reason?;
    if reason.code().is_none() && reason.message().is_none() {
        return None;
    }
    Some(StateReason {
        code: reason.code().unwrap_or_default().to_owned(),
        message: reason.message().unwrap_or_default().to_owned(),
    })
}

/// Tags as a map.
fn tags(tags: &[ec2::Tag]) -> BTreeMap<String, String> {
    tags.iter()
        .filter_map(|tag| {
            Some((
                tag.key()?.to_owned(),
                tag.value().unwrap_or_default().to_owned(),
            ))
        })
        .collect()
}

/// A `TagSpecifications` entry for `resource`, or none for no tags (EC2
/// refuses an empty one).
fn tag_specifications(
    resource: ResourceType,
    tags: &BTreeMap<String, String>,
) -> Option<Vec<ec2::TagSpecification>> {
    if tags.is_empty() {
        return None;
    }
    let tags = tags
        .iter()
        .map(|(key, value)| ec2::Tag::builder().key(key).value(value).build())
        .collect();
    Some(vec![ec2::TagSpecification::builder()
        .resource_type(resource)
        .set_tags(Some(tags))
        .build()])
}

/// A size in GiB; EC2 never sends a negative one.
fn size(gib: Option<i32>) -> u32 {
    gib.and_then(|n| u32::try_from(n).ok()).unwrap_or(0)
}

/// Parses an optional identifier from a response.
fn optional<T>(
    operation: &str,
    field: &str,
    value: Option<&str>,
    parser: impl FnOnce(&str) -> Result<T>,
) -> Result<Option<T>> {
    match value.filter(|v| !v.is_empty()) {
        None => Ok(None),
        Some(value) => parse(operation, field, Some(value), parser).map(Some),
    }
}

/// Identifiers as the SDK's string lists; `None` for an empty list, so that
/// the parameter is left out.
fn strings<T: AsRef<str>>(ids: &[T]) -> Option<Vec<String>> {
    non_empty(ids.iter().map(|id| id.as_ref().to_owned()).collect())
}

/// `None` for an empty list.
fn non_empty<T>(items: Vec<T>) -> Option<Vec<T>> {
    (!items.is_empty()).then_some(items)
}

/// Identifiers for a message: `[a, b]`, or `(all)` for none.
fn list<T: std::fmt::Display>(ids: &[T]) -> String {
    if ids.is_empty() {
        return "(all)".to_owned();
    }
    let ids: Vec<String> = ids.iter().map(ToString::to_string).collect();
    format!("[{}]", ids.join(", "))
}

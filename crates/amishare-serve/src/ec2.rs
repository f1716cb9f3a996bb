//! EC2 over the query protocol: each action's parameters become a call on
//! the caller's [`SimClient`], and its result an XML answer with EC2's
//! element names.

use std::collections::BTreeMap;

use amishare_core::{
    AccountId, CopyImageRequest, CreateImageRequest, ExecutableBy, Image, ImageId, ImageOwner,
    ImageQuery, ImageStore, Instance, InstanceId, InstanceState, KeyRef, LaunchPermission,
    OrganizationArn, OuArn, PermissionChange, Region, RunInstancesRequest, Snapshot, SnapshotId,
    SnapshotState, VolumeId, VolumePermission,
};
use amishare_sim::SimClient;

use crate::query::Params;
use crate::wire::{invalid_value, missing_parameter, Service, WireError};
use crate::xml::Xml;

/// The actions this server answers.
pub(crate) const ACTIONS: &[&str] = &[
    "CopyImage",
    "CreateImage",
    "CreateLaunchTemplate",
    "DeleteLaunchTemplate",
    "DescribeLaunchTemplates",
    "DeleteSnapshot",
    "DeregisterImage",
    "DescribeImageAttribute",
    "DescribeImages",
    "DescribeInstances",
    "DescribeSnapshotAttribute",
    "DescribeSnapshots",
    "DescribeVolumes",
    "GetEbsDefaultKmsKeyId",
    "GetEbsEncryptionByDefault",
    "ModifyImageAttribute",
    "ModifySnapshotAttribute",
    "RunInstances",
    "TerminateInstances",
];

/// How many instances one `RunInstances` may launch here.
const MAX_INSTANCES_PER_CALL: u32 = 20;

/// Runs one EC2 action as `client` in `region`, writing the answer's
/// elements (after the request ID) to `out`.
pub(crate) async fn handle(
    client: &SimClient,
    region: &Region,
    action: &str,
    params: &Params,
    out: &mut Xml,
) -> Result<(), WireError> {
    if params.bool("DryRun")? == Some(true) {
        return Err(WireError::new(
            "UnsupportedOperation",
            "The simulation does not support DryRun.",
        ));
    }
    let call = Call { client, region };
    match action {
        "CopyImage" => call.copy_image(params, out).await,
        "CreateImage" => call.create_image(params, out).await,
        "DeleteSnapshot" => call.delete_snapshot(params, out).await,
        "DeregisterImage" => call.deregister_image(params, out).await,
        "DescribeImageAttribute" => call.describe_image_attribute(params, out).await,
        "DescribeImages" => call.describe_images(params, out).await,
        "DescribeInstances" => call.describe_instances(params, out).await,
        "DescribeSnapshotAttribute" => call.describe_snapshot_attribute(params, out).await,
        "DescribeSnapshots" => call.describe_snapshots(params, out).await,
        "DescribeVolumes" => call.describe_volumes(params, out).await,
        "GetEbsDefaultKmsKeyId" => call.get_ebs_default_kms_key_id(out).await,
        "GetEbsEncryptionByDefault" => call.get_ebs_encryption_by_default(out).await,
        "ModifyImageAttribute" => call.modify_image_attribute(params, out).await,
        "ModifySnapshotAttribute" => call.modify_snapshot_attribute(params, out).await,
        "RunInstances" => call.run_instances(params, out).await,
        "TerminateInstances" => call.terminate_instances(params, out).await,
        action if crate::autoscaling::EC2_ACTIONS.contains(&action) => {
            crate::autoscaling::handle_ec2(client, region, action, params, out).await
        }
        _ => Err(WireError::new(
            "InvalidAction",
            format!("The action {action} is not valid for this web service."),
        )),
    }
}

/// One request: the caller's client and the region of its credential scope.
struct Call<'a> {
    client: &'a SimClient,
    region: &'a Region,
}

fn sim(err: amishare_core::Error) -> WireError {
    WireError::from_sim(Service::Ec2, &err)
}

impl Call<'_> {
    // ------------------------------------------------------------ instances

    async fn describe_instances(&self, params: &Params, out: &mut Xml) -> Result<(), WireError> {
        let ids = ids(params, "InstanceId", parse_instance_id)?;
        let filters = filters(params, &["instance-id", "image-id", "instance-state-name"])?;
        let tags = tag_filters(params)?;
        let instances = self
            .client
            .describe_instances(self.region, &ids)
            .await
            .map_err(sim)?;
        out.element("reservationSet", |out| {
            for instance in &instances {
                let keep = filters.iter().all(|filter| match filter.name.as_str() {
                    "instance-id" => filter.matches(instance.id.as_str()),
                    "image-id" => filter.matches(instance.image.as_str()),
                    _ => filter.matches(&instance.state.to_string()),
                }) && tags.iter().all(|(key, values)| {
                    instance.tags.get(key).is_some_and(|value| {
                        values.is_empty() || values.iter().any(|pattern| glob(pattern, value))
                    })
                });
                if keep {
                    out.element("item", |out| reservation(out, &[instance], None));
                }
            }
        });
        Ok(())
    }

    async fn run_instances(&self, params: &Params, out: &mut Xml) -> Result<(), WireError> {
        let image = parse_image_id(params.required("ImageId")?)?;
        let min = params
            .integer("MinCount")?
            .ok_or_else(|| missing_parameter("MinCount"))?;
        let max = params
            .integer("MaxCount")?
            .ok_or_else(|| missing_parameter("MaxCount"))?;
        if min == 0 || max < min {
            return Err(invalid_value(
                "MinCount",
                &min.to_string(),
                "MinCount must be at least 1 and at most MaxCount.",
            ));
        }
        if max > MAX_INSTANCES_PER_CALL {
            return Err(WireError::new(
                "InstanceLimitExceeded",
                format!(
                    "The simulation launches at most {MAX_INSTANCES_PER_CALL} instances per call."
                ),
            ));
        }
        let instance_type = params.get("InstanceType").unwrap_or("m1.small").to_owned();
        let kms_key = self.launch_key(params).await?;
        let request = RunInstancesRequest {
            image,
            instance_type: instance_type.clone(),
            subnet: params.get("SubnetId").map(str::to_owned),
            kms_key,
            tags: tags(params, "instance")?,
            client_token: params.get("ClientToken").map(str::to_owned),
        };
        if request.client_token.is_some() && max > 1 {
            return Err(WireError::new(
                "InvalidParameterCombination",
                "The simulation takes a ClientToken for one instance at a time.",
            ));
        }
        let mut launched: Vec<Instance> = Vec::new();
        for _ in 0..max {
            match self.client.run_instances(self.region, &request).await {
                Ok(instance) => launched.push(instance),
                // EC2 launches as many as it can, and fails below MinCount.
                Err(_) if launched.len() >= min as usize => break,
                Err(err) => return Err(sim(err)),
            }
        }
        let first = &launched[0];
        out.leaf("reservationId", reservation_id(&first.id));
        out.leaf("ownerId", &first.owner);
        out.empty("groupSet");
        out.element("instancesSet", |out| {
            for instance in &launched {
                instance_item(out, instance, Some(&instance_type));
            }
        });
        Ok(())
    }

    /// The one key `RunInstances` encrypts every volume with, from the block
    /// device mappings: `Ebs.KmsKeyId` (which needs `Ebs.Encrypted=true`),
    /// or the account's default EBS key for `Ebs.Encrypted=true` alone.
    async fn launch_key(&self, params: &Params) -> Result<Option<KeyRef>, WireError> {
        let mut keys = Vec::new();
        let mut encrypted_without_key = false;
        for mapping in params.members("BlockDeviceMapping") {
            let encrypted = mapping.bool("Ebs.Encrypted")?;
            match (mapping.get("Ebs.KmsKeyId"), encrypted) {
                (Some(key), Some(true)) => keys.push(parse_key_ref("KmsKeyId", key)?),
                (Some(_), _) => {
                    return Err(WireError::new(
                        "InvalidParameterDependency",
                        "The parameter [KmsKeyId] requires the parameter Encrypted to be set.",
                    ))
                }
                (None, Some(true)) => encrypted_without_key = true,
                (None, _) => {}
            }
        }
        keys.dedup();
        if keys.len() > 1 {
            return Err(WireError::new(
                "InvalidParameterCombination",
                "The simulation encrypts every volume of an instance with one key; the block device mappings name several.",
            ));
        }
        if let Some(key) = keys.pop() {
            return Ok(Some(key));
        }
        if encrypted_without_key {
            let defaults = self.client.ebs_defaults(self.region).await.map_err(sim)?;
            return Ok(Some(defaults.kms_key));
        }
        Ok(None)
    }

    async fn terminate_instances(&self, params: &Params, out: &mut Xml) -> Result<(), WireError> {
        let ids = ids(params, "InstanceId", parse_instance_id)?;
        if ids.is_empty() {
            return Err(missing_parameter("InstanceId"));
        }
        // The states before, for the answer; the termination itself decides
        // what the caller may do.
        let before = self
            .client
            .describe_instances(self.region, &ids)
            .await
            .unwrap_or_default();
        self.client
            .terminate_instances(self.region, &ids)
            .await
            .map_err(sim)?;
        let after = self
            .client
            .describe_instances(self.region, &ids)
            .await
            .unwrap_or_default();
        let state_of = |instances: &[Instance], id: &InstanceId| {
            instances
                .iter()
                .find(|instance| &instance.id == id)
                .map(|instance| instance.state)
        };
        out.element("instancesSet", |out| {
            for id in &ids {
                out.element("item", |out| {
                    out.leaf("instanceId", id);
                    let current = state_of(&after, id).unwrap_or(InstanceState::ShuttingDown);
                    out.element("currentState", |out| instance_state(out, current));
                    let previous = state_of(&before, id).unwrap_or(current);
                    out.element("previousState", |out| instance_state(out, previous));
                });
            }
        });
        Ok(())
    }

    async fn describe_volumes(&self, params: &Params, out: &mut Xml) -> Result<(), WireError> {
        let ids = ids(params, "VolumeId", |value| {
            VolumeId::parse(value).map_err(|_| malformed("InvalidVolumeID.Malformed", value, "vol"))
        })?;
        let filters = filters(params, &["attachment.instance-id", "volume-id"])?;
        let instances = self
            .client
            .describe_instances(self.region, &[])
            .await
            .map_err(sim)?;
        let attached: Vec<(&Instance, &amishare_core::AttachedVolume)> = instances
            .iter()
            .flat_map(|instance| {
                instance
                    .volumes
                    .iter()
                    .map(move |volume| (instance, volume))
            })
            .collect();
        if let Some(missing) = ids
            .iter()
            .find(|id| !attached.iter().any(|(_, volume)| &volume.volume_id == *id))
        {
            return Err(WireError::new(
                "InvalidVolume.NotFound",
                format!("The volume '{missing}' does not exist."),
            ));
        }
        out.element("volumeSet", |out| {
            for (instance, volume) in &attached {
                let wanted = ids.is_empty() || ids.contains(&volume.volume_id);
                let keep = filters.iter().all(|filter| match filter.name.as_str() {
                    "attachment.instance-id" => filter.matches(instance.id.as_str()),
                    _ => filter.matches(volume.volume_id.as_str()),
                });
                if !(wanted && keep) {
                    continue;
                }
                out.element("item", |out| {
                    out.leaf("volumeId", &volume.volume_id);
                    out.leaf("size", volume.size);
                    out.leaf("availabilityZone", format!("{}a", self.region));
                    out.leaf("status", "in-use");
                    out.element("attachmentSet", |out| {
                        out.element("item", |out| {
                            out.leaf("volumeId", &volume.volume_id);
                            out.leaf("instanceId", &instance.id);
                            out.leaf("device", &volume.device_name);
                            out.leaf("status", "attached");
                            out.leaf("deleteOnTermination", true);
                        });
                    });
                    out.leaf("encrypted", volume.encrypted);
                    out.leaf_opt("kmsKeyId", volume.kms_key.as_ref());
                });
            }
        });
        Ok(())
    }

    // ------------------------------------------------------------ images

    async fn create_image(&self, params: &Params, out: &mut Xml) -> Result<(), WireError> {
        let request = CreateImageRequest {
            instance: parse_instance_id(params.required("InstanceId")?)?,
            name: params.required("Name")?.to_owned(),
            tags: tags(params, "image")?,
        };
        let image = self
            .client
            .create_image(self.region, &request)
            .await
            .map_err(sim)?;
        out.leaf("imageId", image);
        Ok(())
    }

    async fn copy_image(&self, params: &Params, out: &mut Xml) -> Result<(), WireError> {
        let source_region = params.required("SourceRegion")?;
        let request = CopyImageRequest {
            source_image: parse_image_id(params.required("SourceImageId")?)?,
            source_region: Region::parse(source_region).map_err(|_| {
                invalid_value("SourceRegion", source_region, "Expected a region name.")
            })?,
            name: params.required("Name")?.to_owned(),
            encrypted: params.bool("Encrypted")?,
            kms_key: params
                .get("KmsKeyId")
                .map(|key| parse_key_ref("KmsKeyId", key))
                .transpose()?,
            client_token: params.get("ClientToken").map(str::to_owned),
            tags: tags(params, "image")?,
        };
        let image = self
            .client
            .copy_image(self.region, &request)
            .await
            .map_err(sim)?;
        out.leaf("imageId", image);
        Ok(())
    }

    async fn describe_images(&self, params: &Params, out: &mut Xml) -> Result<(), WireError> {
        let mut query = ImageQuery {
            image_ids: ids(params, "ImageId", parse_image_id)?,
            ..ImageQuery::default()
        };
        // Owner aliases name AWS's own images, which the simulation has none of.
        let owners = params.list("Owner");
        for owner in &owners {
            match *owner {
                "self" => query.owners.push(ImageOwner::Me),
                "amazon" | "aws-marketplace" | "aws-backup-vault" => {}
                other => query
                    .owners
                    .push(ImageOwner::Account(AccountId::parse(other).map_err(
                        |_| {
                            invalid_value(
                                "Owner",
                                other,
                                "Expected self, an owner alias or an account ID.",
                            )
                        },
                    )?)),
            }
        }
        for user in params.list("ExecutableBy") {
            query.executable_by.push(match user {
                "self" => ExecutableBy::Me,
                "all" => ExecutableBy::All,
                other => ExecutableBy::Account(AccountId::parse(other).map_err(|_| {
                    invalid_value(
                        "ExecutableBy",
                        other,
                        "Expected self, all or an account ID.",
                    )
                })?),
            });
        }
        let other_filters = filters(
            params,
            &["name", "state", "image-id", "owner-id", "is-public"],
        )?;
        query.tags = tag_filters(params)?;
        let images = if !owners.is_empty() && query.owners.is_empty() {
            Vec::new()
        } else {
            self.client
                .describe_images(self.region, &query)
                .await
                .map_err(sim)?
        };
        out.element("imagesSet", |out| {
            for image in &images {
                let keep = other_filters
                    .iter()
                    .all(|filter| match filter.name.as_str() {
                        "name" => filter.matches(&image.name),
                        "state" => filter.matches(&image.state.to_string()),
                        "image-id" => filter.matches(image.id.as_str()),
                        "owner-id" => filter.matches(image.owner.as_str()),
                        _ => filter.matches(if image.public { "true" } else { "false" }),
                    });
                if keep {
                    image_item(out, image);
                }
            }
        });
        Ok(())
    }

    async fn deregister_image(&self, params: &Params, out: &mut Xml) -> Result<(), WireError> {
        let image = parse_image_id(params.required("ImageId")?)?;
        let delete_snapshots = params.bool("DeleteAssociatedSnapshots")? == Some(true);
        // The snapshots behind the image, to report what became of each.
        let snapshots: Vec<SnapshotId> = if delete_snapshots {
            self.client
                .describe_images(self.region, &ImageQuery::ids([image.clone()]))
                .await
                .unwrap_or_default()
                .iter()
                .flat_map(|image| image.block_devices.iter())
                .map(|device| device.snapshot_id.clone())
                .collect()
        } else {
            Vec::new()
        };
        self.client
            .deregister_image(self.region, &image, delete_snapshots)
            .await
            .map_err(sim)?;
        out.leaf("return", true);
        if delete_snapshots {
            let mut results = Vec::new();
            for snapshot in snapshots {
                let kept = self
                    .client
                    .describe_snapshots(self.region, std::slice::from_ref(&snapshot))
                    .await
                    .is_ok_and(|found| !found.is_empty());
                results.push((snapshot, if kept { "skipped" } else { "success" }));
            }
            out.element("deleteSnapshotResultSet", |out| {
                for (snapshot, code) in &results {
                    out.element("item", |out| {
                        out.leaf("snapshotId", snapshot);
                        out.leaf("returnCode", code);
                    });
                }
            });
        }
        Ok(())
    }

    async fn modify_image_attribute(
        &self,
        params: &Params,
        out: &mut Xml,
    ) -> Result<(), WireError> {
        let image = parse_image_id(params.required("ImageId")?)?;
        if let Some(attribute) = params.get("Attribute") {
            if attribute != "launchPermission" {
                return Err(unmodelled_attribute(attribute, "launchPermission"));
            }
        }
        let mut change = PermissionChange {
            add: launch_permissions(params, "LaunchPermission.Add")?,
            remove: launch_permissions(params, "LaunchPermission.Remove")?,
        };
        // The older form: OperationType with UserId.N, UserGroup.N, ….
        let legacy = legacy_launch_permissions(params)?;
        merge_legacy(&mut change, legacy, params, "LaunchPermission")?;
        self.client
            .modify_launch_permission(self.region, &image, &change)
            .await
            .map_err(sim)?;
        out.leaf("return", true);
        Ok(())
    }

    async fn describe_image_attribute(
        &self,
        params: &Params,
        out: &mut Xml,
    ) -> Result<(), WireError> {
        let image = parse_image_id(params.required("ImageId")?)?;
        let attribute = params.required("Attribute")?;
        if attribute != "launchPermission" {
            return Err(unmodelled_attribute(attribute, "launchPermission"));
        }
        let permissions = self
            .client
            .describe_launch_permission(self.region, &image)
            .await
            .map_err(sim)?;
        out.leaf("imageId", &image);
        out.element("launchPermission", |out| {
            for permission in &permissions {
                out.element("item", |out| match permission {
                    LaunchPermission::Account(account) => out.leaf("userId", account),
                    LaunchPermission::Organization(org) => out.leaf("organizationArn", org),
                    LaunchPermission::OrganizationalUnit(ou) => {
                        out.leaf("organizationalUnitArn", ou)
                    }
                    LaunchPermission::Public => out.leaf("group", "all"),
                });
            }
        });
        Ok(())
    }

    // ------------------------------------------------------------ snapshots

    async fn describe_snapshots(&self, params: &Params, out: &mut Xml) -> Result<(), WireError> {
        let ids = ids(params, "SnapshotId", parse_snapshot_id)?;
        let caller = self.client.principal().account().clone();
        let mut owners = Vec::new();
        for owner in params.list("Owner") {
            match owner {
                "self" => owners.push(Some(caller.clone())),
                "amazon" | "aws-marketplace" | "aws-backup-vault" => owners.push(None),
                other => owners.push(Some(AccountId::parse(other).map_err(|_| {
                    invalid_value(
                        "Owner",
                        other,
                        "Expected self, an owner alias or an account ID.",
                    )
                })?)),
            }
        }
        // What the caller can read is what it can restore; the simulation
        // cannot answer for other accounts.
        for user in params.list("RestorableBy") {
            if user != "self" && user != caller.as_str() {
                return Err(WireError::new(
                    "UnsupportedOperation",
                    format!("The simulation answers RestorableBy only for the caller, not {user}."),
                ));
            }
        }
        let filters = filters(
            params,
            &[
                "snapshot-id",
                "owner-id",
                "status",
                "encrypted",
                "kms-key-id",
            ],
        )?;
        let snapshots = self
            .client
            .describe_snapshots(self.region, &ids)
            .await
            .map_err(sim)?;
        out.element("snapshotSet", |out| {
            for snapshot in &snapshots {
                let owner_ok = owners.is_empty()
                    || owners
                        .iter()
                        .any(|owner| owner.as_ref() == Some(&snapshot.owner));
                let keep = filters.iter().all(|filter| match filter.name.as_str() {
                    "snapshot-id" => filter.matches(snapshot.id.as_str()),
                    "owner-id" => filter.matches(snapshot.owner.as_str()),
                    "status" => filter.matches(snapshot_state(snapshot.state)),
                    "encrypted" => {
                        filter.matches(if snapshot.encrypted { "true" } else { "false" })
                    }
                    _ => snapshot
                        .kms_key
                        .as_ref()
                        .is_some_and(|key| filter.matches(&key.to_string())),
                });
                if owner_ok && keep {
                    snapshot_item(out, snapshot);
                }
            }
        });
        Ok(())
    }

    async fn modify_snapshot_attribute(
        &self,
        params: &Params,
        out: &mut Xml,
    ) -> Result<(), WireError> {
        let snapshot = parse_snapshot_id(params.required("SnapshotId")?)?;
        if let Some(attribute) = params.get("Attribute") {
            if attribute != "createVolumePermission" {
                return Err(unmodelled_attribute(attribute, "createVolumePermission"));
            }
        }
        let mut change = PermissionChange {
            add: volume_permissions(&params.members("CreateVolumePermission.Add"))?,
            remove: volume_permissions(&params.members("CreateVolumePermission.Remove"))?,
        };
        let mut legacy = Vec::new();
        for user in params.list("UserId") {
            legacy.push(VolumePermission::Account(parse_user_id(user)?));
        }
        for group in params.list("UserGroup") {
            legacy.push(parse_group(group, VolumePermission::Public)?);
        }
        merge_legacy(&mut change, legacy, params, "CreateVolumePermission")?;
        self.client
            .modify_create_volume_permission(self.region, &snapshot, &change)
            .await
            .map_err(sim)?;
        out.leaf("return", true);
        Ok(())
    }

    async fn describe_snapshot_attribute(
        &self,
        params: &Params,
        out: &mut Xml,
    ) -> Result<(), WireError> {
        let snapshot = parse_snapshot_id(params.required("SnapshotId")?)?;
        let attribute = params.required("Attribute")?;
        if attribute != "createVolumePermission" {
            return Err(unmodelled_attribute(attribute, "createVolumePermission"));
        }
        let permissions = self
            .client
            .describe_create_volume_permission(self.region, &snapshot)
            .await
            .map_err(sim)?;
        out.leaf("snapshotId", &snapshot);
        out.element("createVolumePermission", |out| {
            for permission in &permissions {
                out.element("item", |out| match permission {
                    VolumePermission::Account(account) => out.leaf("userId", account),
                    VolumePermission::Public => out.leaf("group", "all"),
                });
            }
        });
        Ok(())
    }

    async fn delete_snapshot(&self, params: &Params, out: &mut Xml) -> Result<(), WireError> {
        let snapshot = parse_snapshot_id(params.required("SnapshotId")?)?;
        self.client
            .delete_snapshot(self.region, &snapshot)
            .await
            .map_err(sim)?;
        out.leaf("return", true);
        Ok(())
    }

    // ------------------------------------------------------------ EBS defaults

    async fn get_ebs_encryption_by_default(&self, out: &mut Xml) -> Result<(), WireError> {
        let defaults = self.client.ebs_defaults(self.region).await.map_err(sim)?;
        out.leaf("ebsEncryptionByDefault", defaults.encryption_by_default);
        out.leaf("sseType", "none");
        Ok(())
    }

    async fn get_ebs_default_kms_key_id(&self, out: &mut Xml) -> Result<(), WireError> {
        let defaults = self.client.ebs_defaults(self.region).await.map_err(sim)?;
        out.leaf("kmsKeyId", defaults.kms_key);
        Ok(())
    }
}

// ---------------------------------------------------------------- answers

/// The reservation of one `RunInstances` call; the simulation keeps no
/// reservations, so each instance's is named after it.
fn reservation_id(instance: &InstanceId) -> String {
    let suffix = instance
        .as_str()
        .strip_prefix("i-")
        .unwrap_or(instance.as_str());
    format!("r-{suffix}")
}

/// A `reservationSet` item's content.
fn reservation(out: &mut Xml, instances: &[&Instance], instance_type: Option<&str>) {
    let first = instances[0];
    out.leaf("reservationId", reservation_id(&first.id));
    out.leaf("ownerId", &first.owner);
    out.empty("groupSet");
    out.element("instancesSet", |out| {
        for instance in instances {
            instance_item(out, instance, instance_type);
        }
    });
}

fn instance_item(out: &mut Xml, instance: &Instance, instance_type: Option<&str>) {
    out.element("item", |out| {
        out.leaf("instanceId", &instance.id);
        out.leaf("imageId", &instance.image);
        out.element("instanceState", |out| instance_state(out, instance.state));
        out.leaf_opt("reason", instance.state_reason.as_ref());
        out.leaf("amiLaunchIndex", 0);
        out.leaf_opt("instanceType", instance_type);
        if let Some(reason) = &instance.state_reason {
            out.element("stateReason", |out| {
                out.leaf("code", &reason.code);
                out.leaf("message", &reason.message);
            });
        }
        if !instance.tags.is_empty() {
            out.element("tagSet", |out| {
                for (key, value) in &instance.tags {
                    out.element("item", |out| {
                        out.leaf("key", key);
                        out.leaf("value", value);
                    });
                }
            });
        }
        out.leaf("rootDeviceType", "ebs");
        out.leaf_opt(
            "rootDeviceName",
            instance.volumes.first().map(|volume| &volume.device_name),
        );
        out.element("blockDeviceMapping", |out| {
            for volume in &instance.volumes {
                out.element("item", |out| {
                    out.leaf("deviceName", &volume.device_name);
                    out.element("ebs", |out| {
                        out.leaf("volumeId", &volume.volume_id);
                        out.leaf("status", "attached");
                        out.leaf("deleteOnTermination", true);
                    });
                });
            }
        });
    });
}

/// `<code>` and `<name>` of an instance state, with EC2's state codes.
fn instance_state(out: &mut Xml, state: InstanceState) {
    let code = match state {
        InstanceState::Pending => 0,
        InstanceState::Running => 16,
        InstanceState::ShuttingDown => 32,
        InstanceState::Terminated => 48,
        InstanceState::Stopping => 64,
        InstanceState::Stopped => 80,
    };
    out.leaf("code", code);
    out.leaf("name", state);
}

fn image_item(out: &mut Xml, image: &Image) {
    out.element("item", |out| {
        out.leaf("imageId", &image.id);
        out.leaf("imageLocation", format!("{}/{}", image.owner, image.name));
        out.leaf("imageState", image.state);
        out.leaf("imageOwnerId", &image.owner);
        out.leaf("isPublic", image.public);
        out.leaf("imageType", "machine");
        out.leaf("name", &image.name);
        out.leaf("rootDeviceType", "ebs");
        out.leaf_opt(
            "rootDeviceName",
            image
                .block_devices
                .first()
                .map(|device| &device.device_name),
        );
        out.element("blockDeviceMapping", |out| {
            for device in &image.block_devices {
                out.element("item", |out| {
                    out.leaf("deviceName", &device.device_name);
                    out.element("ebs", |out| {
                        out.leaf("snapshotId", &device.snapshot_id);
                        out.leaf("volumeSize", device.volume_size);
                        out.leaf("deleteOnTermination", true);
                        out.leaf("volumeType", &device.volume_type);
                        out.leaf("encrypted", device.encrypted);
                    });
                });
            }
        });
        if !image.tags.is_empty() {
            out.element("tagSet", |out| {
                for (key, value) in &image.tags {
                    out.element("item", |out| {
                        out.leaf("key", key);
                        out.leaf("value", value);
                    });
                }
            });
        }
        out.leaf_opt("sourceImageId", image.source_image.as_ref());
        out.leaf_opt("sourceImageRegion", image.source_region.as_ref());
        if let Some(reason) = &image.state_reason {
            out.element("stateReason", |out| {
                out.leaf("code", &reason.code);
                out.leaf("message", &reason.message);
            });
        }
    });
}

fn snapshot_state(state: SnapshotState) -> &'static str {
    match state {
        SnapshotState::Pending => "pending",
        SnapshotState::Completed => "completed",
        SnapshotState::Error => "error",
    }
}

fn snapshot_item(out: &mut Xml, snapshot: &Snapshot) {
    out.element("item", |out| {
        out.leaf("snapshotId", &snapshot.id);
        out.leaf("status", snapshot_state(snapshot.state));
        out.leaf_opt("statusMessage", snapshot.state_message.as_ref());
        let progress = snapshot.progress.unwrap_or(match snapshot.state {
            SnapshotState::Completed => 100,
            _ => 0,
        });
        out.leaf("progress", format!("{progress}%"));
        out.leaf("ownerId", &snapshot.owner);
        out.leaf("volumeSize", snapshot.volume_size);
        out.leaf("encrypted", snapshot.encrypted);
        out.leaf_opt("kmsKeyId", snapshot.kms_key.as_ref());
    });
}

// ---------------------------------------------------------------- parameters

/// The error EC2 gives for an ID of the wrong shape.
fn malformed(code: &str, value: &str, prefix: &str) -> WireError {
    WireError::new(
        code,
        format!("Invalid id: \"{value}\" (expecting \"{prefix}-...\")"),
    )
}

pub(crate) fn parse_image_id(value: &str) -> Result<ImageId, WireError> {
    ImageId::parse(value).map_err(|_| malformed("InvalidAMIID.Malformed", value, "ami"))
}

fn parse_instance_id(value: &str) -> Result<InstanceId, WireError> {
    InstanceId::parse(value).map_err(|_| malformed("InvalidInstanceID.Malformed", value, "i"))
}

fn parse_snapshot_id(value: &str) -> Result<SnapshotId, WireError> {
    SnapshotId::parse(value).map_err(|_| malformed("InvalidSnapshotID.Malformed", value, "snap"))
}

fn parse_key_ref(name: &str, value: &str) -> Result<KeyRef, WireError> {
    KeyRef::parse(value).map_err(|_| {
        invalid_value(
            name,
            value,
            "Expected a key ID, key ARN, alias name or alias ARN.",
        )
    })
}

fn parse_user_id(value: &str) -> Result<AccountId, WireError> {
    AccountId::parse(value).map_err(|_| {
        WireError::new(
            "InvalidAMIAttributeItemValue",
            format!("Invalid attribute item value \"{value}\" for userId item type."),
        )
    })
}

fn parse_group<T>(value: &str, all: T) -> Result<T, WireError> {
    match value {
        "all" => Ok(all),
        other => Err(WireError::new(
            "InvalidAMIAttributeItemValue",
            format!("Invalid attribute item value \"{other}\" for group item type."),
        )),
    }
}

/// A flattened list of IDs, each parsed.
fn ids<T>(
    params: &Params,
    prefix: &str,
    parse: impl Fn(&str) -> Result<T, WireError>,
) -> Result<Vec<T>, WireError> {
    params.list(prefix).into_iter().map(parse).collect()
}

fn unmodelled_attribute(attribute: &str, modelled: &str) -> WireError {
    WireError::new(
        "UnsupportedOperation",
        format!("The simulation models only the {modelled} attribute, not {attribute}."),
    )
}

/// `LaunchPermission.Add.N.*` or `LaunchPermission.Remove.N.*`.
fn launch_permissions(params: &Params, prefix: &str) -> Result<Vec<LaunchPermission>, WireError> {
    let mut permissions = Vec::new();
    for member in params.members(prefix) {
        let permission = if let Some(user) = member.get("UserId") {
            LaunchPermission::Account(parse_user_id(user)?)
        } else if let Some(group) = member.get("Group") {
            parse_group(group, LaunchPermission::Public)?
        } else if let Some(org) = member.get("OrganizationArn") {
            LaunchPermission::Organization(parse_org(org)?)
        } else if let Some(ou) = member.get("OrganizationalUnitArn") {
            LaunchPermission::OrganizationalUnit(parse_ou(ou)?)
        } else {
            return Err(missing_parameter(&format!("{prefix}.UserId")));
        };
        permissions.push(permission);
    }
    Ok(permissions)
}

/// `UserId.N`, `UserGroup.N`, `OrganizationArn.N`, `OrganizationalUnitArn.N`.
fn legacy_launch_permissions(params: &Params) -> Result<Vec<LaunchPermission>, WireError> {
    let mut permissions = Vec::new();
    for user in params.list("UserId") {
        permissions.push(LaunchPermission::Account(parse_user_id(user)?));
    }
    for group in params.list("UserGroup") {
        permissions.push(parse_group(group, LaunchPermission::Public)?);
    }
    for org in params.list("OrganizationArn") {
        permissions.push(LaunchPermission::Organization(parse_org(org)?));
    }
    for ou in params.list("OrganizationalUnitArn") {
        permissions.push(LaunchPermission::OrganizationalUnit(parse_ou(ou)?));
    }
    Ok(permissions)
}

fn parse_org(value: &str) -> Result<OrganizationArn, WireError> {
    OrganizationArn::parse(value)
        .map_err(|_| invalid_value("OrganizationArn", value, "Expected an organization ARN."))
}

fn parse_ou(value: &str) -> Result<OuArn, WireError> {
    OuArn::parse(value).map_err(|_| {
        invalid_value(
            "OrganizationalUnitArn",
            value,
            "Expected an organizational unit ARN.",
        )
    })
}

/// `CreateVolumePermission.Add.N.*` or `.Remove.N.*`.
fn volume_permissions(members: &[Params]) -> Result<Vec<VolumePermission>, WireError> {
    members
        .iter()
        .map(|member| match (member.get("UserId"), member.get("Group")) {
            (Some(user), _) => parse_user_id(user).map(VolumePermission::Account),
            (None, Some(group)) => parse_group(group, VolumePermission::Public),
            (None, None) => Err(missing_parameter("CreateVolumePermission.Add.UserId")),
        })
        .collect()
}

/// The tags of `TagSpecification.N` for `resource`; the simulation tags no
/// other resource, so another resource type is refused rather than ignored.
pub(crate) fn tags(params: &Params, resource: &str) -> Result<BTreeMap<String, String>, WireError> {
    let mut tags = BTreeMap::new();
    for spec in params.members("TagSpecification") {
        let kind = spec
            .get("ResourceType")
            .ok_or_else(|| missing_parameter("TagSpecification.ResourceType"))?;
        if kind != resource {
            return Err(WireError::new(
                "UnsupportedOperation",
                format!(
                    "The simulation tags only the {resource} here, not resources of type {kind}."
                ),
            ));
        }
        for tag in spec.members("Tag") {
            let key = tag
                .get("Key")
                .ok_or_else(|| missing_parameter("TagSpecification.Tag.Key"))?;
            tags.insert(
                key.to_owned(),
                tag.get("Value").unwrap_or_default().to_owned(),
            );
        }
    }
    Ok(tags)
}

/// A `Filter.N` the server applies to the simulation's answer.
struct Filter {
    name: String,
    values: Vec<String>,
}

impl Filter {
    /// Whether `text` matches one of the values (`*` and `?` are wildcards).
    fn matches(&self, text: &str) -> bool {
        self.values.iter().any(|pattern| glob(pattern, text))
    }
}

/// The filters other than tag filters, each of a name in `known`.
fn filters(params: &Params, known: &[&str]) -> Result<Vec<Filter>, WireError> {
    let mut filters = Vec::new();
    for member in params.members("Filter") {
        let name = member
            .get("Name")
            .ok_or_else(|| missing_parameter("Filter.Name"))?;
        if name == "tag-key" || name.starts_with("tag:") {
            continue;
        }
        if !known.contains(&name) {
            return Err(WireError::new(
                "InvalidParameterValue",
                format!("The filter '{name}' is invalid"),
            ));
        }
        filters.push(Filter {
            name: name.to_owned(),
            values: member
                .list("Value")
                .into_iter()
                .map(str::to_owned)
                .collect(),
        });
    }
    Ok(filters)
}

/// `tag:<key>` and `tag-key` filters, as the simulation's image query takes
/// them: a key with its values, or with none for any value. Every one must
/// match, so `tag-key` takes one key per filter.
fn tag_filters(params: &Params) -> Result<BTreeMap<String, Vec<String>>, WireError> {
    let mut tags = BTreeMap::new();
    for member in params.members("Filter") {
        let values: Vec<String> = member
            .list("Value")
            .into_iter()
            .map(str::to_owned)
            .collect();
        match member.get("Name") {
            Some("tag-key") => match <[String; 1]>::try_from(values) {
                Ok([key]) => {
                    tags.insert(key, Vec::new());
                }
                Err(_) => {
                    return Err(WireError::new(
                        "UnsupportedOperation",
                        "The simulation takes one key per tag-key filter.",
                    ))
                }
            },
            Some(name) => {
                if let Some(key) = name.strip_prefix("tag:") {
                    tags.insert(key.to_owned(), values);
                }
            }
            None => {}
        }
    }
    Ok(tags)
}

/// EC2's filter wildcards: `*` any run of characters, `?` any one.
fn glob(pattern: &str, text: &str) -> bool {
    let pattern: Vec<char> = pattern.chars().collect();
    let text: Vec<char> = text.chars().collect();
    let (mut p, mut t) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while t < text.len() {
        if p < pattern.len() && (pattern[p] == '?' || pattern[p] == text[t]) {
            p += 1;
            t += 1;
        } else if p < pattern.len() && pattern[p] == '*' {
            star = Some((p, t));
            p += 1;
        } else if let Some((star_p, star_t)) = star {
            p = star_p + 1;
            t = star_t + 1;
            star = Some((star_p, star_t + 1));
        } else {
            return false;
        }
    }
    pattern[p..].iter().all(|&c| c == '*')
}

/// Adds permissions of the older form (`OperationType` with `UserId.N`,
/// `UserGroup.N`) to `change`; a change that is still empty names `what`
/// as missing.
fn merge_legacy<T>(
    change: &mut PermissionChange<T>,
    legacy: Vec<T>,
    params: &Params,
    what: &str,
) -> Result<(), WireError> {
    if !legacy.is_empty() {
        match params.get("OperationType") {
            Some("add") => change.add.extend(legacy),
            Some("remove") => change.remove.extend(legacy),
            Some(other) => {
                return Err(invalid_value(
                    "OperationType",
                    other,
                    "Expected add or remove.",
                ))
            }
            None => return Err(missing_parameter("OperationType")),
        }
    }
    if change.add.is_empty() && change.remove.is_empty() {
        return Err(missing_parameter(what));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use crate::ec2::glob;

    #[test]
    fn globs_match_like_ec2_filters() {
        for (pattern, text, expected) in [
            ("golden*", "golden-copy", true),
            ("*copy", "golden-copy", true),
            ("g?lden-*", "golden-copy", true),
            ("golden", "golden-copy", false),
            ("*", "", true),
            ("a*b*c", "abxbc", true),
            ("a*b*c", "abxbd", false),
        ] {
            assert_eq!(glob(pattern, text), expected, "{pattern} ~ {text}");
        }
    }
}

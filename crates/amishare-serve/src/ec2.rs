//! EC2 over the query protocol: each action's parameters become a call on
//! the caller's [`SimClient`], and its result an XML answer with EC2's
//! element names.

use std::collections::BTreeMap;

use amishare_core::filter::{self, Filter};
use amishare_core::store::{
    CopyImageRequest, CreateImageRequest, ExecutableBy, Image, ImageQuery, ImageStore, Instance,
    InstanceState, LaunchPermission, PermissionChange, RunInstancesRequest, Snapshot,
    SnapshotState, VolumePermission,
};
use amishare_core::{
    AccountId, ImageId, InstanceId, KeyRef, OrganizationArn, OuArn, Region, SnapshotId, VolumeId,
};
use amishare_sim::{api, SimClient};

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

/// Runs one EC2 action as `client` in `region`, writing the answer's
/// elements (after the request ID) to `out`.
pub(crate) async fn handle(
    client: &SimClient,
    region: &Region,
    action: &str,
    params: &Params,
    out: &mut Xml,
) -> Result<(), WireError> {
    // A dry run is the same call, which the simulation stops at its
    // authorization.
    let dry_run;
    let client = match params.bool("DryRun")? {
        Some(true) => {
            dry_run = client.dry_run();
            &dry_run
        }
        _ => client,
    };
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
        let request = api::DescribeInstances {
            instance_ids: ids(params, "InstanceId", parse_instance_id)?,
            filters: filters(params)?,
            page: page(params)?,
        };
        let answer = self
            .client
            .ec2_describe_instances(self.region, &request)
            .map_err(sim)?;
        out.list("reservationSet", "item", &answer.items, |out, instance| {
            reservation(out, &[instance], None)
        });
        out.leaf_opt("nextToken", answer.next_token.as_ref());
        Ok(())
    }

    async fn run_instances(&self, params: &Params, out: &mut Xml) -> Result<(), WireError> {
        let count = |name: &str| params.integer(name)?.ok_or_else(|| missing_parameter(name));
        let instance_type = params.get("InstanceType").unwrap_or("m1.small").to_owned();
        let mut block_devices = Vec::new();
        for mapping in params.members("BlockDeviceMapping") {
            block_devices.push(api::EbsMapping {
                encrypted: mapping.bool("Ebs.Encrypted")?,
                kms_key: mapping
                    .get("Ebs.KmsKeyId")
                    .map(|key| parse_key_ref("KmsKeyId", key))
                    .transpose()?,
            });
        }
        let request = api::RunInstances {
            request: RunInstancesRequest {
                image: parse_image_id(params.required("ImageId")?)?,
                instance_type: instance_type.clone(),
                subnet: params.get("SubnetId").map(str::to_owned),
                kms_key: None,
                tags: tags(params, "instance")?,
                client_token: params.get("ClientToken").map(str::to_owned),
            },
            block_devices,
            min_count: count("MinCount")?,
            max_count: count("MaxCount")?,
        };
        let launched = self
            .client
            .ec2_run_instances(self.region, &request)
            .map_err(sim)?;
        let Some(first) = launched.first() else {
            return Err(WireError::new("InternalError", "No instance was launched."));
        };
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

    async fn terminate_instances(&self, params: &Params, out: &mut Xml) -> Result<(), WireError> {
        let ids = ids(params, "InstanceId", parse_instance_id)?;
        let changes = self
            .client
            .ec2_terminate_instances(self.region, &ids)
            .map_err(sim)?;
        out.list("instancesSet", "item", &changes, |out, change| {
            out.leaf("instanceId", &change.instance);
            out.element("currentState", |out| instance_state(out, change.current));
            out.element("previousState", |out| instance_state(out, change.previous));
        });
        Ok(())
    }

    async fn describe_volumes(&self, params: &Params, out: &mut Xml) -> Result<(), WireError> {
        let request = api::DescribeVolumes {
            volume_ids: ids(params, "VolumeId", |value| {
                VolumeId::parse(value)
                    .map_err(|_| malformed("InvalidVolumeID.Malformed", value, "vol"))
            })?,
            filters: filters(params)?,
            page: page(params)?,
        };
        let answer = self
            .client
            .ec2_describe_volumes(self.region, &request)
            .map_err(sim)?;
        out.element("volumeSet", |out| {
            for found in &answer.items {
                let volume = &found.volume;
                out.element("item", |out| {
                    out.leaf("volumeId", &volume.volume_id);
                    out.leaf("size", volume.size);
                    out.leaf("availabilityZone", &found.availability_zone);
                    out.leaf("status", "in-use");
                    out.element("attachmentSet", |out| {
                        out.element("item", |out| {
                            out.leaf("volumeId", &volume.volume_id);
                            out.leaf("instanceId", &found.instance);
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
        out.leaf_opt("nextToken", answer.next_token.as_ref());
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
        let mut query = ImageQuery::ids(ids(params, "ImageId", parse_image_id)?);
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
        let request = api::DescribeImages {
            query,
            owners: owners(params, "Owner")?,
            filters: filters(params)?,
            page: page(params)?,
        };
        let answer = self
            .client
            .ec2_describe_images(self.region, &request)
            .map_err(sim)?;
        out.element("imagesSet", |out| {
            for image in &answer.items {
                image_item(out, image);
            }
        });
        out.leaf_opt("nextToken", answer.next_token.as_ref());
        Ok(())
    }

    async fn deregister_image(&self, params: &Params, out: &mut Xml) -> Result<(), WireError> {
        let image = parse_image_id(params.required("ImageId")?)?;
        let delete_snapshots = params.bool("DeleteAssociatedSnapshots")? == Some(true);
        let answer = self
            .client
            .ec2_deregister_image(self.region, &image, delete_snapshots)
            .map_err(sim)?;
        out.leaf("return", true);
        if delete_snapshots {
            out.list(
                "deleteSnapshotResultSet",
                "item",
                &answer.snapshots,
                |out, result| {
                    out.leaf("snapshotId", &result.snapshot);
                    out.leaf(
                        "returnCode",
                        if result.deleted { "success" } else { "skipped" },
                    );
                },
            );
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
        out.list(
            "launchPermission",
            "item",
            &permissions,
            |out, permission| match permission {
                LaunchPermission::Account(account) => out.leaf("userId", account),
                LaunchPermission::Organization(org) => out.leaf("organizationArn", org),
                LaunchPermission::OrganizationalUnit(ou) => out.leaf("organizationalUnitArn", ou),
                LaunchPermission::Public => out.leaf("group", "all"),
            },
        );
        Ok(())
    }

    // ------------------------------------------------------------ snapshots

    async fn describe_snapshots(&self, params: &Params, out: &mut Xml) -> Result<(), WireError> {
        let request = api::DescribeSnapshots {
            snapshot_ids: ids(params, "SnapshotId", parse_snapshot_id)?,
            owners: owners(params, "Owner")?,
            restorable_by: owners(params, "RestorableBy")?,
            filters: filters(params)?,
            page: page(params)?,
        };
        let answer = self
            .client
            .ec2_describe_snapshots(self.region, &request)
            .map_err(sim)?;
        out.element("snapshotSet", |out| {
            for snapshot in &answer.items {
                snapshot_item(out, snapshot);
            }
        });
        out.leaf_opt("nextToken", answer.next_token.as_ref());
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
        out.list(
            "createVolumePermission",
            "item",
            &permissions,
            |out, permission| match permission {
                VolumePermission::Account(account) => out.leaf("userId", account),
                VolumePermission::Public => out.leaf("group", "all"),
            },
        );
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
        // EC2's state reason message already begins with its code.
        out.leaf_opt(
            "reason",
            instance.state_reason.as_ref().map(|reason| &reason.message),
        );
        out.leaf("amiLaunchIndex", 0);
        out.leaf_opt("instanceType", instance_type);
        if let Some(reason) = &instance.state_reason {
            out.element("stateReason", |out| {
                out.leaf("code", &reason.code);
                out.leaf("message", &reason.message);
            });
        }
        if !instance.tags.is_empty() {
            out.tag_set(&instance.tags);
        }
        out.leaf("rootDeviceType", "ebs");
        out.leaf_opt(
            "rootDeviceName",
            instance.volumes.first().map(|volume| &volume.device_name),
        );
        out.list(
            "blockDeviceMapping",
            "item",
            &instance.volumes,
            |out, volume| {
                out.leaf("deviceName", &volume.device_name);
                out.element("ebs", |out| {
                    out.leaf("volumeId", &volume.volume_id);
                    out.leaf("status", "attached");
                    out.leaf("deleteOnTermination", true);
                });
            },
        );
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
        out.list(
            "blockDeviceMapping",
            "item",
            &image.block_devices,
            |out, device| {
                out.leaf("deviceName", &device.device_name);
                out.element("ebs", |out| {
                    out.leaf("snapshotId", &device.snapshot_id);
                    out.leaf("volumeSize", device.volume_size);
                    out.leaf("deleteOnTermination", true);
                    out.leaf("volumeType", &device.volume_type);
                    out.leaf("encrypted", device.encrypted);
                });
            },
        );
        if !image.tags.is_empty() {
            out.tag_set(&image.tags);
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

fn snapshot_item(out: &mut Xml, snapshot: &Snapshot) {
    out.element("item", |out| {
        out.leaf("snapshotId", &snapshot.id);
        out.leaf("status", filter::snapshot_status(snapshot.state));
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

/// `Filter.N`, each with its `Value.N`.
fn filters(params: &Params) -> Result<Vec<Filter>, WireError> {
    params
        .members("Filter")
        .iter()
        .map(|member| {
            let name = member
                .get("Name")
                .ok_or_else(|| missing_parameter("Filter.Name"))?;
            Ok(Filter::new(name, member.list("Value")))
        })
        .collect()
}

/// `MaxResults` and `NextToken`.
fn page(params: &Params) -> Result<api::Page, WireError> {
    Ok(api::Page {
        max_results: params.integer("MaxResults")?,
        next_token: params.get("NextToken").map(str::to_owned),
    })
}

/// `Owner.N` or `RestorableBy.N`: `self`, an owner alias or an account ID.
fn owners(params: &Params, prefix: &str) -> Result<Vec<api::Owner>, WireError> {
    params
        .list(prefix)
        .into_iter()
        .map(|owner| match owner {
            "self" => Ok(api::Owner::Me),
            "amazon" | "aws-marketplace" | "aws-backup-vault" => {
                Ok(api::Owner::Alias(owner.to_owned()))
            }
            other => AccountId::parse(other)
                .map(api::Owner::Account)
                .map_err(|_| {
                    invalid_value(
                        prefix,
                        other,
                        "Expected self, an owner alias or an account ID.",
                    )
                }),
        })
        .collect()
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

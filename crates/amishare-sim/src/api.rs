//! The simulation's operations as AWS defines them: requests with AWS's
//! parameters (filters, `MinCount`/`MaxCount`, `DeleteAssociatedSnapshots`,
//! paging) and answers with what AWS answers (state changes, per-snapshot
//! results, a next token). Each is one call of [`SimClient`], made under
//! one lock of the world, so a server speaking for the simulation parses a
//! request, makes one of these calls and prints the answer.
//!
//! Core's store traits, which [`SimClient`] also implements, are the same
//! operations seen through amishare's narrower requests.

use amishare_core::ops::Operation;
use std::collections::BTreeMap;
use std::ops::RangeInclusive;

use amishare_core::filter::{self, Filter, Filterable};
use amishare_core::store::{
    AttachedVolume, Image, ImageOwner, ImageQuery, Instance, InstanceState, RunInstancesRequest,
    Snapshot,
};
use amishare_core::{
    AccountId, AliasName, Error, ErrorKind, InstanceId, KeyRef, Region, Result, SnapshotId,
    VolumeId,
};

use crate::client::SimClient;
use crate::errors;
use crate::state::Ctx;

/// How many instances one `RunInstances` launches at most here.
pub const MAX_INSTANCES_PER_CALL: u32 = 20;

/// One page of a listing: `MaxResults` and the `NextToken` of the page
/// before (`docs/spec/ec2.md` §B17).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Page {
    /// At most this many items; `None` for all of them.
    pub max_results: Option<u32>,
    /// Where the page before stopped.
    pub next_token: Option<String>,
}

/// A page of items and the token for the next page, if there is one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Paged<T> {
    /// The page's items.
    pub items: Vec<T>,
    /// The token that asks for the next page; `None` on the last page.
    pub next_token: Option<String>,
}

/// An owner in `DescribeImages` and `DescribeSnapshots`: `self`, an account
/// ID, or one of AWS's owner aliases (`amazon`, `aws-marketplace`,
/// `aws-backup-vault`), whose resources the simulation has none of.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Owner {
    /// `self`.
    Me,
    /// An account ID.
    Account(AccountId),
    /// An owner alias.
    Alias(String),
}

/// `DescribeImages`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DescribeImages {
    /// `ImageId.N` and `ExecutableBy.N`; its owners and tags are those of
    /// [`DescribeImages::owners`] and [`DescribeImages::filters`].
    pub query: ImageQuery,
    /// `Owner.N`.
    pub owners: Vec<Owner>,
    /// `Filter.N`.
    pub filters: Vec<Filter>,
    /// `MaxResults`, `NextToken`.
    pub page: Page,
}

/// `DescribeInstances`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DescribeInstances {
    /// `InstanceId.N`.
    pub instance_ids: Vec<InstanceId>,
    /// `Filter.N`.
    pub filters: Vec<Filter>,
    /// `MaxResults`, `NextToken`.
    pub page: Page,
}

/// `DescribeSnapshots`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DescribeSnapshots {
    /// `SnapshotId.N`.
    pub snapshot_ids: Vec<SnapshotId>,
    /// `Owner.N`.
    pub owners: Vec<Owner>,
    /// `RestorableBy.N`: the simulation answers only for the caller.
    pub restorable_by: Vec<Owner>,
    /// `Filter.N`.
    pub filters: Vec<Filter>,
    /// `MaxResults`, `NextToken`.
    pub page: Page,
}

/// `DescribeVolumes`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DescribeVolumes {
    /// `VolumeId.N`.
    pub volume_ids: Vec<VolumeId>,
    /// `Filter.N`.
    pub filters: Vec<Filter>,
    /// `MaxResults`, `NextToken`.
    pub page: Page,
}

/// A volume, as `DescribeVolumes` answers: the simulation's volumes are
/// those attached to instances.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Volume {
    /// The volume.
    pub volume: AttachedVolume,
    /// The instance it is attached to.
    pub instance: InstanceId,
    /// The instance's availability zone.
    pub availability_zone: String,
}

/// The filter names [`Volume`] answers (beside tag filters).
pub const VOLUME_FILTERS: &[&str] = &["attachment.instance-id", "volume-id"];

static NO_TAGS: BTreeMap<String, String> = BTreeMap::new();

impl Filterable for Volume {
    fn filter_values(&self, name: &str) -> Vec<String> {
        match name {
            "attachment.instance-id" => vec![self.instance.to_string()],
            "volume-id" => vec![self.volume.volume_id.to_string()],
            _ => Vec::new(),
        }
    }

    fn tags(&self) -> &BTreeMap<String, String> {
        &NO_TAGS
    }
}

/// One `BlockDeviceMapping.N.Ebs` of `RunInstances`, as far as encryption
/// goes.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct EbsMapping {
    /// `Ebs.Encrypted`.
    pub encrypted: Option<bool>,
    /// `Ebs.KmsKeyId`; requires `Ebs.Encrypted=true`.
    pub kms_key: Option<KeyRef>,
}

/// `RunInstances`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RunInstances {
    /// The launch; its `kms_key` is decided from
    /// [`RunInstances::block_devices`].
    pub request: RunInstancesRequest,
    /// `BlockDeviceMapping.N.Ebs`.
    pub block_devices: Vec<EbsMapping>,
    /// `MinCount`.
    pub min_count: u32,
    /// `MaxCount`.
    pub max_count: u32,
}

/// An instance's state before and after `TerminateInstances`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StateChange {
    /// The instance.
    pub instance: InstanceId,
    /// Its state before the call.
    pub previous: InstanceState,
    /// Its state after it.
    pub current: InstanceState,
}

/// What `DeregisterImage` with `DeleteAssociatedSnapshots` did with one
/// snapshot.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SnapshotResult {
    /// The snapshot.
    pub snapshot: SnapshotId,
    /// Whether it was deleted (`success`) or kept (`skipped`).
    pub deleted: bool,
}

/// `DeregisterImage`'s answer.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Deregistered {
    /// One entry per snapshot of the image, when its snapshots were to be
    /// deleted; empty otherwise.
    pub snapshots: Vec<SnapshotResult>,
}

impl SimClient {
    /// EC2 `DescribeImages`.
    pub fn ec2_describe_images(
        &self,
        region: &Region,
        request: &DescribeImages,
    ) -> Result<Paged<Image>> {
        self.call(Operation::DescribeImages, Some(region), |ctx| {
            ctx.api_describe_images(region, request)
        })
    }

    /// EC2 `DescribeInstances`.
    pub fn ec2_describe_instances(
        &self,
        region: &Region,
        request: &DescribeInstances,
    ) -> Result<Paged<Instance>> {
        self.call(Operation::DescribeInstances, Some(region), |ctx| {
            ctx.api_describe_instances(region, request)
        })
    }

    /// EC2 `DescribeSnapshots`.
    pub fn ec2_describe_snapshots(
        &self,
        region: &Region,
        request: &DescribeSnapshots,
    ) -> Result<Paged<Snapshot>> {
        self.call(Operation::DescribeSnapshots, Some(region), |ctx| {
            ctx.api_describe_snapshots(region, request)
        })
    }

    /// EC2 `DescribeVolumes`.
    pub fn ec2_describe_volumes(
        &self,
        region: &Region,
        request: &DescribeVolumes,
    ) -> Result<Paged<Volume>> {
        self.call(Operation::DescribeVolumes, Some(region), |ctx| {
            ctx.api_describe_volumes(region, request)
        })
    }

    /// EC2 `RunInstances`: between `MinCount` and `MaxCount` instances, or
    /// none (`docs/spec/ec2.md` §B15).
    pub fn ec2_run_instances(
        &self,
        region: &Region,
        request: &RunInstances,
    ) -> Result<Vec<Instance>> {
        self.call(Operation::RunInstances, Some(region), |ctx| {
            ctx.api_run_instances(region, request)
        })
    }

    /// EC2 `TerminateInstances`: each instance's state before and after.
    pub fn ec2_terminate_instances(
        &self,
        region: &Region,
        ids: &[InstanceId],
    ) -> Result<Vec<StateChange>> {
        self.call(Operation::TerminateInstances, Some(region), |ctx| {
            ctx.api_terminate_instances(region, ids)
        })
    }

    /// EC2 `DeregisterImage`, with `DeleteAssociatedSnapshots`.
    pub fn ec2_deregister_image(
        &self,
        region: &Region,
        image: &amishare_core::ImageId,
        delete_associated_snapshots: bool,
    ) -> Result<Deregistered> {
        self.call(Operation::DeregisterImage, Some(region), |ctx| {
            ctx.api_deregister_image(region, image, delete_associated_snapshots)
        })
    }
}

/// Refuses a `MaxResults` outside `bounds`, as EC2 does.
fn check_max_results(page: &Page, bounds: RangeInclusive<u32>) -> Result<()> {
    match page.max_results {
        Some(max) if !bounds.contains(&max) => Err(errors::invalid_parameter_value(format!(
            "Value ( {max} ) for parameter maxResults is invalid. Expecting a value between {} and {}.",
            bounds.start(),
            bounds.end()
        ))),
        _ => Ok(()),
    }
}

/// The page of `items` (in the order of `key`) that `page` asks for; the
/// token is the key of the page's last item.
pub(crate) fn page_of<T>(mut items: Vec<T>, page: &Page, key: impl Fn(&T) -> String) -> Paged<T> {
    if page.max_results.is_none() && page.next_token.is_none() {
        return Paged {
            items,
            next_token: None,
        };
    }
    items.sort_by_key(&key);
    if let Some(token) = &page.next_token {
        items.retain(|item| key(item) > *token);
    }
    let max = page.max_results.map_or(usize::MAX, |max| max as usize);
    let next_token = (items.len() > max).then(|| key(&items[max - 1]));
    items.truncate(max);
    Paged { items, next_token }
}

/// Refuses paging together with IDs, as EC2 does for instances and volumes.
fn ids_or_page(ids: bool, page: &Page, parameter: &str) -> Result<()> {
    if ids && page.max_results.is_some() {
        return Err(Error::service(
            ErrorKind::InvalidInput,
            "InvalidParameterCombination",
            format!("The parameter {parameter} cannot be used with the parameter maxResults"),
        ));
    }
    Ok(())
}

impl Ctx<'_> {
    fn api_describe_images(
        &mut self,
        region: &Region,
        request: &DescribeImages,
    ) -> Result<Paged<Image>> {
        filter::check_names(&request.filters, filter::IMAGE_FILTERS)?;
        check_max_results(&request.page, 1..=1000)?;
        let mut query = request.query.clone();
        for owner in &request.owners {
            match owner {
                Owner::Me => query.owners.push(ImageOwner::Me),
                Owner::Account(account) => query.owners.push(ImageOwner::Account(account.clone())),
                Owner::Alias(_) => {}
            }
        }
        let mut images = self.describe_images(region, &query)?;
        // Only owner aliases: AWS's own images, of which there are none here.
        if !request.owners.is_empty()
            && request
                .owners
                .iter()
                .all(|owner| matches!(owner, Owner::Alias(_)))
        {
            images.clear();
        }
        images.retain(|image| filter::matches_all(&request.filters, image));
        Ok(page_of(images, &request.page, |image| image.id.to_string()))
    }

    fn api_describe_instances(
        &mut self,
        region: &Region,
        request: &DescribeInstances,
    ) -> Result<Paged<Instance>> {
        filter::check_names(&request.filters, filter::INSTANCE_FILTERS)?;
        check_max_results(&request.page, 5..=1000)?;
        ids_or_page(
            !request.instance_ids.is_empty(),
            &request.page,
            "instanceIds",
        )?;
        let mut instances = self.describe_instances(region, &request.instance_ids)?;
        instances.retain(|instance| filter::matches_all(&request.filters, instance));
        Ok(page_of(instances, &request.page, |instance| {
            instance.id.to_string()
        }))
    }

    fn api_describe_snapshots(
        &mut self,
        region: &Region,
        request: &DescribeSnapshots,
    ) -> Result<Paged<Snapshot>> {
        filter::check_names(&request.filters, filter::SNAPSHOT_FILTERS)?;
        check_max_results(&request.page, 5..=1000)?;
        let caller = self.who.account_id().clone();
        // What the caller can read is what it can restore; the simulation
        // cannot answer for other accounts.
        for by in &request.restorable_by {
            match by {
                Owner::Me => {}
                Owner::Account(account) if *account == caller => {}
                Owner::Account(other) => {
                    return Err(Error::service(
                        ErrorKind::Unsupported,
                        "UnsupportedOperation",
                        format!(
                            "The simulation answers RestorableBy only for the caller, not {other}."
                        ),
                    ))
                }
                Owner::Alias(other) => {
                    return Err(errors::invalid_parameter_value(format!(
                        "Invalid value '{other}' for RestorableBy."
                    )))
                }
            }
        }
        let mut snapshots = self.describe_snapshots(region, &request.snapshot_ids)?;
        snapshots.retain(|snapshot| {
            let owner_ok = request.owners.is_empty()
                || request.owners.iter().any(|owner| match owner {
                    Owner::Me => snapshot.owner == caller,
                    Owner::Account(account) => &snapshot.owner == account,
                    Owner::Alias(_) => false,
                });
            owner_ok && filter::matches_all(&request.filters, snapshot)
        });
        Ok(page_of(snapshots, &request.page, |snapshot| {
            snapshot.id.to_string()
        }))
    }

    fn api_describe_volumes(
        &mut self,
        region: &Region,
        request: &DescribeVolumes,
    ) -> Result<Paged<Volume>> {
        filter::check_names(&request.filters, VOLUME_FILTERS)?;
        check_max_results(&request.page, 5..=500)?;
        ids_or_page(!request.volume_ids.is_empty(), &request.page, "volumeIds")?;
        // Volumes are described with the instances they belong to.
        let instances = self.describe_instances(region, &[])?;
        let volumes: Vec<Volume> = instances
            .into_iter()
            .flat_map(|instance| {
                let id = instance.id;
                instance.volumes.into_iter().map(move |volume| Volume {
                    volume,
                    instance: id.clone(),
                    availability_zone: format!("{region}a"),
                })
            })
            .collect();
        if let Some(missing) = request
            .volume_ids
            .iter()
            .find(|id| !volumes.iter().any(|volume| &volume.volume.volume_id == *id))
        {
            return Err(Error::service(
                ErrorKind::NotFound,
                "InvalidVolume.NotFound",
                format!("The volume '{missing}' does not exist."),
            ));
        }
        let wanted: Vec<Volume> = volumes
            .into_iter()
            .filter(|volume| {
                (request.volume_ids.is_empty()
                    || request.volume_ids.contains(&volume.volume.volume_id))
                    && filter::matches_all(&request.filters, volume)
            })
            .collect();
        Ok(page_of(wanted, &request.page, |volume| {
            volume.volume.volume_id.to_string()
        }))
    }

    /// The one key the launch encrypts with, from the block device
    /// mappings: `Ebs.KmsKeyId` (which needs `Ebs.Encrypted=true`), or the
    /// account's default EBS key for `Ebs.Encrypted=true` alone.
    fn launch_key(&self, region: &Region, request: &RunInstances) -> Result<Option<KeyRef>> {
        let mut keys: Vec<&KeyRef> = Vec::new();
        let mut encrypted_without_key = false;
        for mapping in &request.block_devices {
            match (&mapping.kms_key, mapping.encrypted) {
                (Some(key), Some(true)) => keys.push(key),
                (Some(_), _) => {
                    return Err(Error::service(
                        ErrorKind::InvalidInput,
                        "InvalidParameterDependency",
                        "The parameter [KmsKeyId] requires the parameter Encrypted to be set.",
                    ))
                }
                (None, Some(true)) => encrypted_without_key = true,
                (None, _) => {}
            }
        }
        keys.dedup();
        match keys.as_slice() {
            [] if encrypted_without_key => {
                let settings = self.ec2.ebs_settings(self.who.account_id(), region);
                Ok(Some(match settings.default_key {
                    Some(arn) => KeyRef::Arn(arn),
                    None => KeyRef::Alias(AliasName::aws_ebs()),
                }))
            }
            [] => Ok(request.request.kms_key.clone()),
            [key] => Ok(Some((*key).clone())),
            _ => Err(Error::service(
                ErrorKind::Unsupported,
                "InvalidParameterCombination",
                "The simulation encrypts every volume of an instance with one key; the block device mappings name several.",
            )),
        }
    }

    fn api_run_instances(
        &mut self,
        region: &Region,
        request: &RunInstances,
    ) -> Result<Vec<Instance>> {
        let (min, max) = (request.min_count, request.max_count);
        if min == 0 || max < min {
            return Err(errors::invalid_parameter_value(format!(
                "Invalid value '{min}' for MinCount. MinCount must be at least 1 and at most MaxCount."
            )));
        }
        if max > MAX_INSTANCES_PER_CALL {
            return Err(Error::service(
                ErrorKind::Unsupported,
                "InstanceLimitExceeded",
                format!(
                    "The simulation launches at most {MAX_INSTANCES_PER_CALL} instances per call."
                ),
            ));
        }
        crate::limits::client_token(request.request.client_token.as_deref())?;
        let launch = RunInstancesRequest {
            kms_key: self.launch_key(region, request)?,
            ..request.request.clone()
        };
        // What refuses one launch refuses them all, so the first answers for
        // every one: MaxCount instances, or none. A ClientToken covers the
        // whole call: the n-th instance is kept under `<token>#<n>` (the
        // token cut to 60 characters), so a retry finds every one again.
        let mut launched = Vec::with_capacity(max as usize);
        for n in 0..max {
            let token = match (&request.request.client_token, n) {
                // Within the token's 64 characters (it is ASCII, checked above).
                (Some(token), n) if n > 0 => Some(format!("{}#{n}", &token[..token.len().min(60)])),
                (token, _) => token.clone(),
            };
            let one = RunInstancesRequest {
                client_token: token,
                ..launch.clone()
            };
            launched.push(self.run_instances(region, &one)?);
        }
        Ok(launched)
    }

    fn api_terminate_instances(
        &mut self,
        region: &Region,
        ids: &[InstanceId],
    ) -> Result<Vec<StateChange>> {
        if ids.is_empty() {
            return Err(Error::service(
                ErrorKind::InvalidInput,
                "MissingParameter",
                "The request must contain the parameter InstanceId",
            ));
        }
        let before: Vec<(InstanceId, InstanceState)> = ids
            .iter()
            .filter_map(|id| self.ec2.instances.get(id))
            .map(|instance| (instance.id.clone(), instance.state(self.now)))
            .collect();
        self.terminate_instances(region, ids)?;
        Ok(before
            .into_iter()
            .map(|(id, previous)| StateChange {
                current: self
                    .ec2
                    .instances
                    .get(&id)
                    .map_or(InstanceState::Terminated, |instance| {
                        instance.state(self.now)
                    }),
                instance: id,
                previous,
            })
            .collect())
    }

    fn api_deregister_image(
        &mut self,
        region: &Region,
        image: &amishare_core::ImageId,
        delete_snapshots: bool,
    ) -> Result<Deregistered> {
        let snapshots: Vec<SnapshotId> = match (delete_snapshots, self.ec2.images.get(image)) {
            (true, Some(record)) => record
                .devices
                .iter()
                .map(|device| device.snapshot.clone())
                .collect(),
            _ => Vec::new(),
        };
        self.deregister_image(region, image, delete_snapshots)?;
        Ok(Deregistered {
            snapshots: snapshots
                .into_iter()
                .map(|snapshot| SnapshotResult {
                    deleted: !self.ec2.snapshots.contains_key(&snapshot),
                    snapshot,
                })
                .collect(),
        })
    }
}

// ---------------------------------------------------------------- Auto Scaling

/// A launch template named by name (`LaunchTemplateName`) or by ID
/// (`LaunchTemplateId`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TemplateRef {
    /// By name.
    Name(String),
    /// By ID (`lt-…`).
    Id(String),
}

/// `CreateAutoScalingGroup`.
#[derive(Debug, Clone, PartialEq)]
pub struct CreateAutoScalingGroup {
    /// The group; its `launch_template` is replaced by the name of
    /// [`CreateAutoScalingGroup::template`].
    pub request: amishare_core::scaling::GroupRequest,
    /// `LaunchTemplate.LaunchTemplateName` or `.LaunchTemplateId`.
    pub template: TemplateRef,
}

/// `DescribeScalingActivities`' answer.
#[derive(Debug, Clone, PartialEq)]
pub struct ScalingActivities {
    /// The group's activities, newest first; none for a deleted group
    /// unless `IncludeDeletedGroups` asked for them.
    pub activities: Vec<amishare_core::scaling::Activity>,
    /// Whether the group has been deleted.
    pub group_deleted: bool,
}

impl SimClient {
    /// Auto Scaling `CreateAutoScalingGroup`, its launch template named by
    /// name or ID.
    pub fn autoscaling_create_group(
        &self,
        region: &Region,
        request: &CreateAutoScalingGroup,
    ) -> Result<()> {
        self.create_group_with(region, &request.request, |ctx| {
            let name = match &request.template {
                TemplateRef::Name(name) => name.clone(),
                TemplateRef::Id(id) => ctx.template_name(region, id).ok_or_else(|| {
                    Error::service(
                        ErrorKind::InvalidInput,
                        "ValidationError",
                        format!("You must use a valid fully-formed launch template. The specified launch template, with template ID {id}, does not exist."),
                    )
                })?,
            };
            let group = amishare_core::scaling::GroupRequest {
                launch_template: name,
                ..request.request.clone()
            };
            ctx.create_auto_scaling_group(region, &group)
        })
    }

    /// Auto Scaling `DescribeScalingActivities` for one group.
    pub fn autoscaling_describe_scaling_activities(
        &self,
        region: &Region,
        group: &str,
        include_deleted_groups: bool,
    ) -> Result<ScalingActivities> {
        self.call(Operation::DescribeScalingActivities, Some(region), |ctx| {
            let activities = ctx.describe_scaling_activities(region, group)?;
            let group_deleted = !ctx.group_exists(region, group);
            Ok(ScalingActivities {
                activities: match group_deleted && !include_deleted_groups {
                    true => Vec::new(),
                    false => activities,
                },
                group_deleted,
            })
        })
    }

    /// EC2 `DeleteLaunchTemplate`: the template as it was.
    pub fn ec2_delete_launch_template(
        &self,
        region: &Region,
        template: &TemplateRef,
    ) -> Result<amishare_core::scaling::LaunchTemplate> {
        self.call(Operation::DeleteLaunchTemplate, Some(region), |ctx| {
            let name = match template {
                TemplateRef::Name(name) => name.clone(),
                TemplateRef::Id(id) => ctx.template_name(region, id).ok_or_else(|| {
                    Error::service(
                        ErrorKind::NotFound,
                        "InvalidLaunchTemplateId.NotFound",
                        format!(
                            "The specified launch template, with template ID {id}, does not exist."
                        ),
                    )
                })?,
            };
            let found = ctx.launch_template(region, &name);
            ctx.delete_launch_template(region, &name)?;
            found.ok_or_else(crate::scaling::template_not_found)
        })
    }
}

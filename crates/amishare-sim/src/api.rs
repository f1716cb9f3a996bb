//! The simulation's operations as AWS defines them: requests with AWS's
//! parameters (filters, `MinCount`/`MaxCount`, `DeleteAssociatedSnapshots`,
//! EC2's and KMS's paging) and answers with what AWS answers (state changes,
//! per-snapshot results, a next token or marker). Each is one call of [`SimClient`], made under
//! one lock of the world, so a server speaking for the simulation parses a
//! request, makes one of these calls and prints the answer.
//!
//! Core's store traits, which [`SimClient`] also implements, are the same
//! operations seen through amishare's narrower requests.

use amishare_core::catalogue;
use amishare_core::ops::{Operation, Service};
use std::collections::BTreeMap;
use std::ops::RangeInclusive;

use amishare_core::filter::{self, Filter, Filterable};
use amishare_core::store::{
    AttachedVolume, Grant, Image, ImageOwner, ImageQuery, Instance, InstanceState,
    RunInstancesRequest, Snapshot,
};
use amishare_core::{
    AccountId, AliasName, Error, ErrorKind, InstanceId, KeyArn, KeyRef, PrincipalArn, Region,
    Result, SnapshotId, VolumeId,
};

use crate::client::SimClient;
use crate::errors;
use crate::kms_admin::AliasEntry;
use crate::state::Ctx;

/// How many instances one `RunInstances` launches at most here.
pub const MAX_INSTANCES_PER_CALL: u32 = 20;

/// One page of a listing: EC2's `MaxResults` and the `NextToken` of the
/// page before (`docs/spec/ec2.md` §B17), or KMS's `Limit` and `Marker`
/// (`docs/spec/kms.md` §A8).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Page {
    /// At most this many items (`MaxResults`, `Limit`); `None` for the
    /// operation's default.
    pub max_results: Option<u32>,
    /// Where the page before stopped (`NextToken`, `Marker`).
    pub next_token: Option<String>,
}

/// A page of items and the token for the next page, if there is one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Paged<T> {
    /// The page's items.
    pub items: Vec<T>,
    /// The token that asks for the next page (`NextToken`, KMS's
    /// `NextMarker`); `None` on the last page, where KMS answers
    /// `Truncated` false.
    pub next_token: Option<String>,
}

impl<T> Paged<T> {
    /// KMS's `Truncated`: whether more items follow this page.
    pub fn truncated(&self) -> bool {
        self.next_token.is_some()
    }
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

/// How one listing pages (`docs/spec/ec2.md` §B17, `docs/spec/kms.md` §A8):
/// the page sizes it accepts, how many items a page holds when the caller
/// names no size, and at most.
#[derive(Debug, Clone)]
pub(crate) struct Paging {
    service: Service,
    sizes: RangeInclusive<u32>,
    /// Items per page without `MaxResults` or `Limit`; `None` for all.
    default: Option<u32>,
    /// The most items one page holds, whatever size was asked for.
    most: u32,
}

impl Paging {
    /// An EC2 `Describe*` call: `MaxResults` within `sizes`, every item in
    /// one page without it.
    pub(crate) const fn ec2(sizes: RangeInclusive<u32>) -> Paging {
        let most = *sizes.end();
        Paging {
            service: Service::Ec2,
            sizes,
            default: None,
            most,
        }
    }

    /// An Auto Scaling `Describe*` call: `MaxRecords` from 1 to `most`,
    /// `default` items a page without it (`docs/spec/production.md` §C1.7).
    pub(crate) const fn autoscaling(default: u32, most: u32) -> Paging {
        Paging {
            service: Service::AutoScaling,
            sizes: 1..=most,
            default: Some(default),
            most,
        }
    }

    /// A KMS `List*` call: `Limit` from 1 to 1000 (the API's `LimitType`),
    /// `default` items a page without it and at most `most`.
    pub(crate) const fn kms(default: u32, most: u32) -> Paging {
        Paging {
            service: Service::Kms,
            sizes: 1..=1000,
            default: Some(default),
            most,
        }
    }

    /// The page of `items` (in the order of `key`) that `page` asks for,
    /// after refusing a size or token the service would refuse. The next
    /// page starts after the key of this page's last item: EC2's token is
    /// that key, KMS's marker that key in hexadecimal.
    pub(crate) fn page<T>(
        &self,
        mut items: Vec<T>,
        page: &Page,
        key: impl Fn(&T) -> String,
    ) -> Result<Paged<T>> {
        self.check_size(page.max_results)?;
        let after = match (&page.next_token, self.service) {
            (Some(marker), Service::Kms) => Some(decode_marker(marker)?),
            (token, _) => token.clone(),
        };
        let size = page
            .max_results
            .or(self.default)
            .map(|size| size.min(self.most));
        if size.is_none() && after.is_none() {
            return Ok(Paged {
                items,
                next_token: None,
            });
        }
        items.sort_by_key(&key);
        if let Some(after) = &after {
            items.retain(|item| key(item) > *after);
        }
        let size = size.map_or(usize::MAX, |size| size as usize);
        let next = (items.len() > size).then(|| key(&items[size - 1]));
        items.truncate(size);
        let next_token = match self.service {
            Service::Kms => next.map(|next| hex::encode(next.as_bytes())),
            _ => next,
        };
        Ok(Paged { items, next_token })
    }

    /// Refuses a page size outside the accepted ones, in the service's words.
    fn check_size(&self, size: Option<u32>) -> Result<()> {
        let Some(size) = size.filter(|size| !self.sizes.contains(size)) else {
            return Ok(());
        };
        let (start, end) = (*self.sizes.start(), *self.sizes.end());
        let (relation, bound) = match size < start {
            true => ("greater", start),
            false => ("less", end),
        };
        let message = match self.service {
            Service::Ec2 => format!(
                "Value ( {size} ) for parameter maxResults is invalid. Expecting a value between {start} and {end}."
            ),
            service => {
                let field = if service == Service::Kms { "limit" } else { "maxRecords" };
                format!(
                    "1 validation error detected: Value '{size}' at '{field}' failed to satisfy constraint: Member must have value {relation} than or equal to {bound}"
                )
            }
        };
        Err(catalogue::error(
            catalogue::invalid_input_code(self.service),
            message,
        ))
    }
}

/// `DescribeImages`' `MaxResults` (`docs/spec/ec2.md` §B17).
const IMAGE_PAGES: Paging = Paging::ec2(1..=1000);
/// `DescribeInstances`' `MaxResults`.
const INSTANCE_PAGES: Paging = Paging::ec2(5..=1000);
/// `DescribeSnapshots`' `MaxResults`.
const SNAPSHOT_PAGES: Paging = Paging::ec2(5..=1000);
/// `DescribeVolumes`' `MaxResults`.
const VOLUME_PAGES: Paging = Paging::ec2(5..=500);
/// `DescribeLaunchTemplates`' `MaxResults` (`docs/spec/production.md` §C1.7).
const LAUNCH_TEMPLATE_PAGES: Paging = Paging::ec2(1..=200);
/// `DescribeAutoScalingGroups`' `MaxRecords`: 50 a page unless asked, up to 100.
const GROUP_PAGES: Paging = Paging::autoscaling(50, 100);
/// `DescribeScalingActivities`' `MaxRecords`: 100 a page unless asked, up to 100.
const ACTIVITY_PAGES: Paging = Paging::autoscaling(100, 100);
/// `ListKeys`' `Limit`: 100 a page unless asked, up to 1000 (`docs/spec/kms.md` §A8).
const KEY_PAGES: Paging = Paging::kms(100, 1000);
/// `ListAliases`', `ListGrants`' and `ListRetirableGrants`' `Limit`: 50 a
/// page unless asked, up to 100.
const ALIAS_AND_GRANT_PAGES: Paging = Paging::kms(50, 100);
/// `ListResourceTags`' `Limit`: 50 a page unless asked, up to 50.
const TAG_PAGES: Paging = Paging::kms(50, 50);

/// The key a KMS marker stands for; a marker the simulation cannot have
/// given (not hexadecimal text, or empty) is `InvalidMarkerException`.
fn decode_marker(marker: &str) -> Result<String> {
    hex::decode(marker)
        .ok()
        .and_then(|bytes| String::from_utf8(bytes).ok())
        .filter(|key| !key.is_empty())
        .ok_or_else(|| errors::invalid_marker(marker))
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
        IMAGE_PAGES.check_size(request.page.max_results)?;
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
        IMAGE_PAGES.page(images, &request.page, |image| image.id.to_string())
    }

    fn api_describe_instances(
        &mut self,
        region: &Region,
        request: &DescribeInstances,
    ) -> Result<Paged<Instance>> {
        filter::check_names(&request.filters, filter::INSTANCE_FILTERS)?;
        INSTANCE_PAGES.check_size(request.page.max_results)?;
        ids_or_page(
            !request.instance_ids.is_empty(),
            &request.page,
            "instanceIds",
        )?;
        let mut instances = self.describe_instances(region, &request.instance_ids)?;
        instances.retain(|instance| filter::matches_all(&request.filters, instance));
        INSTANCE_PAGES.page(instances, &request.page, |instance| instance.id.to_string())
    }

    fn api_describe_snapshots(
        &mut self,
        region: &Region,
        request: &DescribeSnapshots,
    ) -> Result<Paged<Snapshot>> {
        filter::check_names(&request.filters, filter::SNAPSHOT_FILTERS)?;
        SNAPSHOT_PAGES.check_size(request.page.max_results)?;
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
        SNAPSHOT_PAGES.page(snapshots, &request.page, |snapshot| snapshot.id.to_string())
    }

    fn api_describe_volumes(
        &mut self,
        region: &Region,
        request: &DescribeVolumes,
    ) -> Result<Paged<Volume>> {
        filter::check_names(&request.filters, VOLUME_FILTERS)?;
        VOLUME_PAGES.check_size(request.page.max_results)?;
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
        VOLUME_PAGES.page(wanted, &request.page, |volume| {
            volume.volume.volume_id.to_string()
        })
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
        // every one: MaxCount instances, or none. A dry run stops at the
        // first's authorization, which is every instance's (§B16). A ClientToken covers the
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

// ---------------------------------------------------------------- KMS

/// `ListAliases`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ListAliases {
    /// `KeyId`: only the aliases of this key of the caller's account.
    pub key: Option<KeyRef>,
    /// `Limit`, `Marker`.
    pub page: Page,
}

/// `ListGrants`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListGrants {
    /// `KeyId`, as a key ARN.
    pub key: KeyArn,
    /// `GrantId`: only the grant with this ID.
    pub grant_id: Option<String>,
    /// `GranteePrincipal`: only the grants to this principal.
    pub grantee: Option<String>,
    /// `Limit`, `Marker`.
    pub page: Page,
}

/// `ListRetirableGrants`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListRetirableGrants {
    /// `RetiringPrincipal`.
    pub retiring: PrincipalArn,
    /// `Limit`, `Marker`.
    pub page: Page,
}

impl SimClient {
    /// KMS `ListKeys`, page by page (`docs/spec/kms.md` §A8).
    pub fn kms_list_keys(&self, region: &Region, page: &Page) -> Result<Paged<KeyArn>> {
        self.call(Operation::ListKeys, Some(region), |ctx| {
            let keys = ctx.list_keys(region)?;
            KEY_PAGES.page(keys, page, |arn| arn.key_id().to_string())
        })
    }

    /// KMS `ListAliases`, of the account or of one key, page by page.
    pub fn kms_list_aliases(
        &self,
        region: &Region,
        request: &ListAliases,
    ) -> Result<Paged<AliasEntry>> {
        self.call(Operation::ListAliases, Some(region), |ctx| {
            let aliases = ctx.list_aliases(region, request.key.as_ref())?;
            ALIAS_AND_GRANT_PAGES.page(aliases, &request.page, |alias| {
                alias.arn.alias().to_string()
            })
        })
    }

    /// KMS `ListGrants`, with its `GrantId` and `GranteePrincipal` filters,
    /// page by page.
    pub fn kms_list_grants(&self, request: &ListGrants) -> Result<Paged<Grant>> {
        self.call(Operation::ListGrants, Some(request.key.region()), |ctx| {
            let mut grants = ctx.list_grants(&request.key)?;
            grants.retain(|grant| {
                request
                    .grant_id
                    .as_deref()
                    .is_none_or(|id| grant.id.as_str() == id)
                    && request
                        .grantee
                        .as_deref()
                        .is_none_or(|grantee| grant.grantee == grantee)
            });
            ALIAS_AND_GRANT_PAGES.page(grants, &request.page, |grant| grant.id.to_string())
        })
    }

    /// KMS `ListRetirableGrants`, page by page; each grant names its key.
    pub fn kms_list_retirable_grants(
        &self,
        region: &Region,
        request: &ListRetirableGrants,
    ) -> Result<Paged<Grant>> {
        self.call(Operation::ListRetirableGrants, Some(region), |ctx| {
            let grants = ctx.list_retirable_grants(region, &request.retiring)?;
            // Grants of several keys: the key first, so that equal IDs on
            // two keys stay apart.
            ALIAS_AND_GRANT_PAGES.page(grants, &request.page, |grant| {
                let key = grant.key.as_ref().map(KeyArn::to_string);
                format!("{} {}", key.unwrap_or_default(), grant.id)
            })
        })
    }

    /// KMS `ListResourceTags`, page by page: tag keys and values.
    pub fn kms_list_resource_tags(
        &self,
        key: &KeyArn,
        page: &Page,
    ) -> Result<Paged<(String, String)>> {
        self.call(Operation::ListResourceTags, Some(key.region()), |ctx| {
            let tags = ctx.list_resource_tags(key)?.into_iter().collect();
            TAG_PAGES.page(tags, page, |(tag, _)| tag.clone())
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
    /// The token that asks for the next page of activities; `None` on the
    /// last page.
    pub next_token: Option<String>,
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

    /// Auto Scaling `DescribeAutoScalingGroups`: a page of the groups
    /// named, or of all the caller's groups in `region` when none are.
    pub fn autoscaling_describe_groups(
        &self,
        region: &Region,
        names: &[String],
        page: &Page,
    ) -> Result<Paged<amishare_core::scaling::Group>> {
        self.call(Operation::DescribeAutoScalingGroups, Some(region), |ctx| {
            let groups = ctx.describe_auto_scaling_groups(region, names)?;
            GROUP_PAGES.page(groups, page, |group| group.name.clone())
        })
    }

    /// Auto Scaling `DescribeScalingActivities` for one group: a page of
    /// its activities, newest first.
    pub fn autoscaling_describe_scaling_activities(
        &self,
        region: &Region,
        group: &str,
        include_deleted_groups: bool,
        page: &Page,
    ) -> Result<ScalingActivities> {
        self.call(Operation::DescribeScalingActivities, Some(region), |ctx| {
            let activities = ctx.describe_scaling_activities(region, group)?;
            let group_deleted = !ctx.group_exists(region, group);
            let activities = match group_deleted && !include_deleted_groups {
                true => Vec::new(),
                false => activities,
            };
            // Newest first, and a page boundary that stays put while new
            // activities start: the key counts down from the oldest.
            let count = activities.len();
            let keyed: Vec<(String, amishare_core::scaling::Activity)> = activities
                .into_iter()
                .enumerate()
                .map(|(newer, activity)| {
                    (
                        format!("{:020}", u64::MAX - (count - 1 - newer) as u64),
                        activity,
                    )
                })
                .collect();
            let paged = ACTIVITY_PAGES.page(keyed, page, |(key, _)| key.clone())?;
            Ok(ScalingActivities {
                activities: paged
                    .items
                    .into_iter()
                    .map(|(_, activity)| activity)
                    .collect(),
                group_deleted,
                next_token: paged.next_token,
            })
        })
    }

    /// EC2 `DescribeLaunchTemplates`: a page of the templates named, or of
    /// all the caller's templates in `region` when none are.
    pub fn ec2_describe_launch_templates(
        &self,
        region: &Region,
        names: &[String],
        page: &Page,
    ) -> Result<Paged<amishare_core::scaling::LaunchTemplate>> {
        self.call(Operation::DescribeLaunchTemplates, Some(region), |ctx| {
            let templates = ctx.describe_launch_templates(region, names)?;
            LAUNCH_TEMPLATE_PAGES.page(templates, page, |template| template.name.clone())
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

#[cfg(test)]
mod tests {
    use super::{Page, Paging, ALIAS_AND_GRANT_PAGES, INSTANCE_PAGES, KEY_PAGES};

    /// Every page of `items` at `size` a page under `paging`: the sizes of
    /// the pages, and every item in the order the pages gave them.
    fn walk(paging: &Paging, items: &[u32], size: Option<u32>) -> (Vec<usize>, Vec<u32>) {
        let (mut sizes, mut seen) = (Vec::new(), Vec::new());
        let mut token = None;
        loop {
            let page = Page {
                max_results: size,
                next_token: token.clone(),
            };
            let paged = paging
                .page(items.to_vec(), &page, |n| format!("{n:04}"))
                .unwrap();
            sizes.push(paged.items.len());
            seen.extend(paged.items.iter().copied());
            match paged.next_token {
                Some(next) => token = Some(next),
                None => return (sizes, seen),
            }
            assert!(sizes.len() < 1000, "the pages never end");
        }
    }

    #[test]
    fn pages_hold_every_item_once_in_order() {
        let items: Vec<u32> = (0..230).rev().collect();
        let ordered: Vec<u32> = (0..230).collect();
        for (what, paging, size, sizes) in [
            (
                "EC2 without MaxResults: one page",
                &INSTANCE_PAGES,
                None,
                vec![230],
            ),
            ("EC2 at 100", &INSTANCE_PAGES, Some(100), vec![100, 100, 30]),
            ("ListKeys by default", &KEY_PAGES, None, vec![100, 100, 30]),
            ("ListKeys at 1000", &KEY_PAGES, Some(1000), vec![230]),
            (
                "ListGrants by default",
                &ALIAS_AND_GRANT_PAGES,
                None,
                vec![50, 50, 50, 50, 30],
            ),
            (
                "ListGrants at 1000: 100 at most",
                &ALIAS_AND_GRANT_PAGES,
                Some(1000),
                vec![100, 100, 30],
            ),
        ] {
            let (got, seen) = walk(paging, &items, size);
            assert_eq!(got, sizes, "{what}");
            let expected = match size.is_none() && paging.default.is_none() {
                // One page of everything keeps the order it came in.
                true => &items,
                false => &ordered,
            };
            assert_eq!(&seen, expected, "{what}");
        }
    }

    #[test]
    fn sizes_and_markers_the_service_would_refuse_are_refused() {
        for (what, paging, page, code) in [
            (
                "EC2 below its range",
                &INSTANCE_PAGES,
                Page {
                    max_results: Some(4),
                    next_token: None,
                },
                "InvalidParameterValue",
            ),
            (
                "KMS below 1",
                &KEY_PAGES,
                Page {
                    max_results: Some(0),
                    next_token: None,
                },
                "ValidationException",
            ),
            (
                "KMS above 1000",
                &ALIAS_AND_GRANT_PAGES,
                Page {
                    max_results: Some(1001),
                    next_token: None,
                },
                "ValidationException",
            ),
            (
                "a marker KMS never gave",
                &KEY_PAGES,
                Page {
                    max_results: None,
                    next_token: Some("zz".into()),
                },
                "InvalidMarkerException",
            ),
            (
                "an empty marker",
                &KEY_PAGES,
                Page {
                    max_results: None,
                    next_token: Some(String::new()),
                },
                "InvalidMarkerException",
            ),
        ] {
            let err = paging
                .page(vec![1, 2, 3], &page, u32::to_string)
                .unwrap_err();
            assert_eq!(err.code(), Some(code), "{what}: {err}");
        }
        // EC2's token is the last item's ID as it stands.
        let page = Page {
            max_results: Some(5),
            next_token: None,
        };
        let paged = INSTANCE_PAGES
            .page((0..7).collect(), &page, |n: &u32| n.to_string())
            .unwrap();
        assert_eq!(paged.next_token.as_deref(), Some("4"));
    }
}

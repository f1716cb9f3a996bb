//! What a share left in place, read from both sides: who may launch and copy
//! an image, which statements and grants its keys carry, which key each
//! snapshot really uses, and which smoke instances still run. Reads only.

use std::collections::{BTreeMap, BTreeSet};

use amishare_policy::{amishare_statements, Policy, Statement};

use crate::error::{Error, ErrorKind, Result};
use crate::flow::{
    copies_query, smoke_instances, Flow, RegionImage, TAG_SMOKE_KEEP, TAG_SMOKE_TEST,
};
use crate::id::{AccountId, ImageId, InstanceId, KeyArn, KeyRef, PrincipalArn, Region, SnapshotId};
use crate::model::{
    Grant, ImageQuery, ImageState, InstanceState, KeyMetadata, LaunchPermission, VolumePermission,
};

/// What [`Flow::status`] is asked to look at: an image (itself, or the
/// copies amishare made of it), a key, or both, in one or more regions.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct StatusRequest {
    /// An image: a copy amishare made, or a source whose copies to find.
    pub image: Option<ImageId>,
    /// A key: its statements, grants and the caller's images it encrypts.
    pub key: Option<KeyRef>,
    /// The region the image is in (and the key, when no `regions` are given).
    pub region: Region,
    /// The regions to look in; empty means `region` alone.
    pub regions: Vec<Region>,
}

impl StatusRequest {
    /// The status of nothing yet in `region`: name an image, a key or both
    /// with [`StatusRequest::with_image`] and [`StatusRequest::with_key`].
    pub fn new(region: Region) -> StatusRequest {
        StatusRequest {
            image: None,
            key: None,
            region,
            regions: Vec::new(),
        }
    }

    /// Looks at `image` too.
    pub fn with_image(mut self, image: ImageId) -> StatusRequest {
        self.image = Some(image);
        self
    }

    /// Looks at `key` too.
    pub fn with_key(mut self, key: KeyRef) -> StatusRequest {
        self.key = Some(key);
        self
    }

    /// The status of `image` in `region`.
    pub fn image(image: ImageId, region: Region) -> StatusRequest {
        StatusRequest {
            image: Some(image),
            key: None,
            region,
            regions: Vec::new(),
        }
    }

    /// The status of `key` in `region`.
    pub fn key(key: KeyRef, region: Region) -> StatusRequest {
        StatusRequest {
            image: None,
            key: Some(key),
            region,
            regions: Vec::new(),
        }
    }

    /// Looks in `regions` instead of the request's region alone.
    pub fn in_regions(mut self, regions: Vec<Region>) -> StatusRequest {
        self.regions = regions;
        self
    }

    /// The regions to look in.
    fn regions(&self) -> &[Region] {
        if self.regions.is_empty() {
            std::slice::from_ref(&self.region)
        } else {
            &self.regions
        }
    }
}

/// A value, or why this side could not read it: a status report goes on
/// past what one side may not see.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Readable<T> {
    /// The value as read.
    Known(T),
    /// Why it could not be read.
    Unknown(String),
}

impl<T> Readable<T> {
    /// The value, when it was read.
    pub fn known(&self) -> Option<&T> {
        match self {
            Readable::Known(value) => Some(value),
            Readable::Unknown(_) => None,
        }
    }
}

impl<T> From<Result<T>> for Readable<T> {
    fn from(result: Result<T>) -> Readable<T> {
        match result {
            Ok(value) => Readable::Known(value),
            Err(err) => Readable::Unknown(err.to_string()),
        }
    }
}

/// What [`Flow::status`] found.
#[derive(Debug, Clone, PartialEq, Default)]
#[non_exhaustive]
pub struct StatusReport {
    /// The images looked at, in region order.
    pub images: Vec<ImageStatus>,
    /// The keys behind them (and the key asked about), by ARN.
    pub keys: BTreeMap<KeyArn, KeyStatus>,
    /// What the target side sees, when one was given.
    pub target_view: Option<TargetView>,
    /// Smoke instances `accept` launched that still run (or could), on
    /// each side looked from.
    pub smoke_instances: Vec<Readable<SmokeStatus>>,
}

/// One image as its owner sees it.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct ImageStatus {
    /// Its region.
    pub region: Region,
    /// The image.
    pub image: ImageId,
    /// Its owner.
    pub owner: AccountId,
    /// Its state.
    pub state: ImageState,
    /// Its name.
    pub name: String,
    /// Who may launch it.
    pub launch_permissions: Readable<Vec<LaunchPermission>>,
    /// Its snapshots, in block-device order.
    pub snapshots: Vec<SnapshotStatus>,
}

/// One snapshot of an image.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct SnapshotStatus {
    /// The snapshot.
    pub snapshot: SnapshotId,
    /// The key that really encrypts it (`None`: not encrypted).
    pub key: Readable<Option<KeyArn>>,
    /// Who may create volumes from it, and so copy the image.
    pub volume_permissions: Readable<Vec<VolumePermission>>,
}

/// One key as the caller sees it.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct KeyStatus {
    /// What `DescribeKey` says of it.
    pub metadata: Readable<KeyMetadata>,
    /// amishare's statements (Sid `amishare:…`) in its policy, whole.
    pub amishare_statements: Readable<Vec<Statement>>,
    /// How many other statements the policy has (amishare never touches them).
    pub other_statements: Option<usize>,
    /// Its grants.
    pub grants: Readable<Vec<Grant>>,
    /// The caller's images tagged as encrypted with it.
    pub images: Vec<ImageId>,
}

/// A smoke instance `accept` launched that still runs, or could.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct SmokeStatus {
    /// Its region.
    pub region: Region,
    /// The account that launched it.
    pub account: AccountId,
    /// The instance.
    pub instance: InstanceId,
    /// The image it tests, as its tag names it.
    pub image: String,
    /// Its state.
    pub state: InstanceState,
    /// Launched to be kept; otherwise an accept stopped before its cleanup.
    pub kept: bool,
}

/// What the target side sees of the images and keys a status looked at.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct TargetView {
    /// The principal the target side acts as.
    pub caller: PrincipalArn,
    /// Each image: whether the target sees it.
    pub images: BTreeMap<ImageId, Readable<bool>>,
    /// Each key: what `DescribeKey` by ARN tells the target.
    pub keys: BTreeMap<KeyArn, Readable<KeyMetadata>>,
}

impl Flow {
    /// The shared images behind `image` in `region`: itself when it is a
    /// copy amishare made; else, in each of `regions` (empty: `region`
    /// alone), the caller's copies of it, found by their
    /// `amishare:source-image` tag as `share` finds its own earlier copies,
    /// or the image itself in its own region when it was shared as it is.
    pub async fn shared_images(
        &self,
        image: &ImageId,
        region: &Region,
        regions: &[Region],
    ) -> Result<Vec<RegionImage>> {
        let found = self
            .images()
            .describe_images(region, &ImageQuery::ids([image.clone()]))
            .await?;
        let Some(found) = found.into_iter().next() else {
            return Err(Error::new(
                ErrorKind::NotFound,
                format!("image {image} does not exist in {region}"),
            ));
        };
        if found.tags.contains_key(crate::flow::TAG_SOURCE_IMAGE) {
            return Ok(vec![RegionImage {
                region: region.clone(),
                image: image.clone(),
            }]);
        }
        let regions = if regions.is_empty() {
            std::slice::from_ref(region)
        } else {
            regions
        };
        let caller = self.keys().caller().await?;
        let query = copies_query(Some(image), None);
        let mut shared = Vec::new();
        for r in regions {
            let mut copies = self.images().describe_images(r, &query).await?;
            copies.retain(|copy| query.matches(copy, &caller.account));
            if copies.is_empty() && r == region {
                shared.push(RegionImage {
                    region: r.clone(),
                    image: image.clone(),
                });
            }
            shared.extend(copies.into_iter().map(|copy| RegionImage {
                region: r.clone(),
                image: copy.id,
            }));
        }
        Ok(shared)
    }

    /// Reads what a share left in place, as this flow's principal (the
    /// owner) and, with `target`, as the target's: the images behind
    /// `request.image` (see [`Flow::shared_images`]) with their launch and
    /// create-volume permissions and the key of each snapshot; each key's
    /// state, amishare's statements and grants; what the target sees; and
    /// the smoke instances left running on either side. Only reads, through
    /// the retry layer; a read one side may not make is reported as
    /// [`Readable::Unknown`], not an error.
    pub async fn status(
        &self,
        request: &StatusRequest,
        target: Option<&Flow>,
    ) -> Result<StatusReport> {
        let regions = request.regions();
        let mut report = StatusReport::default();
        let mut keys: BTreeSet<KeyArn> = BTreeSet::new();
        if let Some(image) = &request.image {
            for shared in self.shared_images(image, &request.region, regions).await? {
                let status = self.image_status(&shared.region, &shared.image).await?;
                keys.extend(
                    status
                        .snapshots
                        .iter()
                        .filter_map(|s| s.key.known().cloned().flatten()),
                );
                report.images.push(status);
            }
        }
        if let Some(key) = &request.key {
            for r in regions {
                keys.insert(self.keys().describe_key(r, key).await?.arn);
            }
        }
        if let Some(target) = target {
            report.target_view = Some(target.target_view(&report.images, &keys).await?);
        }
        for flow in std::iter::once(self).chain(target) {
            for r in regions {
                match smoke_instances(flow.images(), r, None).await {
                    Ok(found) => report.smoke_instances.extend(found.into_iter().map(|i| {
                        Readable::Known(SmokeStatus {
                            region: r.clone(),
                            account: i.owner.clone(),
                            image: i.tags.get(TAG_SMOKE_TEST).cloned().unwrap_or_default(),
                            kept: i.tags.contains_key(TAG_SMOKE_KEEP),
                            state: i.state,
                            instance: i.id,
                        })
                    })),
                    Err(err) => report
                        .smoke_instances
                        .push(Readable::Unknown(format!("smoke instances in {r}: {err}"))),
                }
            }
        }
        // Whose images `key_status` lists: read once, not once per key.
        let caller = self.keys().caller().await.ok().map(|c| c.account);
        for key in keys {
            let status = self.key_status(&key, caller.as_ref()).await;
            report.keys.insert(key, status);
        }
        Ok(report)
    }

    /// One image and its snapshots; an image that is gone is an error.
    async fn image_status(&self, region: &Region, id: &ImageId) -> Result<ImageStatus> {
        let images = self.images();
        let image = images
            .describe_images(region, &ImageQuery::ids([id.clone()]))
            .await?
            .into_iter()
            .next()
            .ok_or_else(|| {
                Error::new(
                    ErrorKind::NotFound,
                    format!("image {id} is gone from {region}"),
                )
            })?;
        let ids: Vec<SnapshotId> = image
            .block_devices
            .iter()
            .map(|d| d.snapshot_id.clone())
            .collect();
        let snapshots = images.describe_snapshots(region, &ids).await;
        let mut statuses = Vec::new();
        for device in &image.block_devices {
            let key = match &snapshots {
                Ok(found) => match found.iter().find(|s| s.id == device.snapshot_id) {
                    Some(snapshot) => Readable::Known(snapshot.kms_key.clone()),
                    None => {
                        Readable::Unknown("the snapshot is not visible to this account".to_owned())
                    }
                },
                Err(err) => Readable::Unknown(err.to_string()),
            };
            statuses.push(SnapshotStatus {
                snapshot: device.snapshot_id.clone(),
                key,
                volume_permissions: images
                    .describe_create_volume_permission(region, &device.snapshot_id)
                    .await
                    .into(),
            });
        }
        Ok(ImageStatus {
            region: region.clone(),
            launch_permissions: images
                .describe_launch_permission(region, &image.id)
                .await
                .into(),
            image: image.id,
            owner: image.owner,
            state: image.state,
            name: image.name,
            snapshots: statuses,
        })
    }

    /// One key: its metadata, amishare's statements, grants, and the
    /// images of `caller`'s tagged as encrypted with it.
    async fn key_status(&self, key: &KeyArn, caller: Option<&AccountId>) -> KeyStatus {
        let region = key.region();
        let keys = self.keys();
        let metadata = keys.describe_key(region, &KeyRef::Arn(key.clone())).await;
        let (amishare, other_statements) = match keys.get_key_policy(key).await {
            Ok(text) => match Policy::parse(&text) {
                Ok(policy) => {
                    let ours: Vec<Statement> = amishare_statements(&policy).cloned().collect();
                    let others = policy.statements.len() - ours.len();
                    (Readable::Known(ours), Some(others))
                }
                Err(err) => (Readable::Unknown(err.to_string()), None),
            },
            Err(err) => (Readable::Unknown(err.to_string()), None),
        };
        let grants = keys.list_grants(key).await.into();
        let query = copies_query(None, Some(key));
        let mut images = Vec::new();
        if let (Some(caller), Ok(found)) =
            (caller, self.images().describe_images(region, &query).await)
        {
            images = found
                .into_iter()
                .filter(|image| query.matches(image, caller))
                .map(|i| i.id)
                .collect();
        }
        KeyStatus {
            metadata: metadata.into(),
            amishare_statements: amishare,
            other_statements,
            grants,
            images,
        }
    }

    /// What this flow's principal, the target, sees of `images` and `keys`.
    async fn target_view(
        &self,
        images: &[ImageStatus],
        keys: &BTreeSet<KeyArn>,
    ) -> Result<TargetView> {
        let caller = self.keys().caller().await?;
        let mut view = TargetView {
            caller: caller.arn,
            images: BTreeMap::new(),
            keys: BTreeMap::new(),
        };
        for image in images {
            let seen = self
                .images()
                .describe_images(&image.region, &ImageQuery::ids([image.image.clone()]))
                .await
                .map(|found| !found.is_empty());
            view.images.insert(image.image.clone(), seen.into());
        }
        for key in keys {
            let described = self
                .keys()
                .describe_key(key.region(), &KeyRef::Arn(key.clone()))
                .await;
            view.keys.insert(key.clone(), described.into());
        }
        Ok(view)
    }
}

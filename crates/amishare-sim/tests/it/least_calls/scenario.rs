//! One share of one image with N accounts in R regions, on the simulation,
//! and the least mutating calls AWS's documented limits allow it.
//!
//! The least-calls test asserts the calls against [`Scenario::least`]; the
//! fan-out bench (`benches/fanout.rs`, which includes this file) prints them
//! next to it. The image has S snapshots of 8 GiB, unencrypted, so every
//! region needs an encrypted copy, the source region too, and the share asks
//! for create-volume permission.
//!
//! The least, per region:
//!
//! - 1 `CopyImage`: the copy encrypted under the region's key;
//! - ⌈N / 10,000⌉ `ModifyImageAttribute`: one call adds up to 10,000 account
//!   IDs to a launch permission ([`LAUNCH_PERMISSIONS_PER_CALL`]);
//! - S × ⌈N / 500⌉ `ModifySnapshotAttribute`: one call makes up to 500
//!   modifications to one snapshot ([`VOLUME_PERMISSIONS_PER_CALL`]);
//! - for the key: `CreateKey` (created with its final policy) and
//!   `CreateAlias`, or one `PutKeyPolicy` when an existing key's policy lacks
//!   the targets.
//!
//! A rerun's least is 0. A share that cannot complete makes none: a key
//! policy names each target account's root twice (the use statement, and the
//! attachment statement under `kms:GrantIsForAWSResource`), 66 bytes an
//! account, and KMS refuses a key policy over 32,768 bytes, so one key cannot
//! be shared with 1,001 accounts, and the share must refuse before it writes.
//! Below that size every launch and create-volume term is one call.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use amishare_core::store::{CreateImageRequest, CreateKeyRequest, ImageStore, KeyStore};
use amishare_core::{
    AccountId, AliasName, Flow, ImageId, ImageSource, KeyChoice, KeyRef, Region, ShareReport,
    ShareRequest, Sharer, Target,
};
use amishare_sim::{CallRecord, Knobs, SimClient, VolumeEncryption, VolumeSeed, World};

/// Account IDs one `ModifyImageAttribute` call may add to a launch
/// permission: "Up to 10 000 account IDs can be specified in a single
/// request" (EC2 API Reference, `LaunchPermission`, `UserId`:
/// <https://docs.aws.amazon.com/AWSEC2/latest/APIReference/API_LaunchPermission.html>).
/// An image may be shared with 1,000 accounts, organizations and OUs per
/// region by default, a quota that can be raised (EC2 User Guide, "AMI
/// quotas": <https://docs.aws.amazon.com/AWSEC2/latest/UserGuide/ami-quotas.html>).
pub(crate) const LAUNCH_PERMISSIONS_PER_CALL: usize = 10_000;
/// Create-volume permissions one `ModifySnapshotAttribute` call may change:
/// "You can make up to 500 modifications to a snapshot in a single
/// operation" (EC2 API Reference, `ModifySnapshotAttribute`:
/// <https://docs.aws.amazon.com/AWSEC2/latest/APIReference/API_ModifySnapshotAttribute.html>).
pub(crate) const VOLUME_PERMISSIONS_PER_CALL: usize = 500;
/// The size of every snapshot.
pub(crate) const SNAPSHOT_GIB: u32 = 8;
/// The source region first: shares in R regions use the first R.
pub(crate) const REGIONS: [&str; 5] = [
    "ap-northeast-1",
    "us-east-1",
    "eu-west-1",
    "us-west-2",
    "ap-southeast-2",
];
const OWNER: &str = "111111111111";
const ALIAS: &str = "alias/fanout";

/// How the share gets its key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Key {
    /// Created by the share in each region.
    Created,
    /// Existing in each region, with KMS's default policy.
    Existing,
}

/// One share.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Scenario {
    /// Snapshots of the image, S.
    pub(crate) snapshots: u32,
    /// Target accounts, N.
    pub(crate) accounts: usize,
    /// Regions, R.
    pub(crate) regions: usize,
    /// Whether the share creates its keys.
    pub(crate) key: Key,
    /// Whether the owner's store shows snapshot progress.
    pub(crate) progress: bool,
}

/// Mutating calls by region and operation (`ec2:CopyImage`, ...).
pub(crate) type Tally = BTreeMap<(Region, &'static str), usize>;

/// A share and its immediate rerun.
pub(crate) struct Run {
    /// The world after the rerun.
    pub(crate) world: World,
    /// The share's answer.
    pub(crate) share: amishare_core::Result<ShareReport>,
    /// Every call the share made.
    pub(crate) calls: Vec<CallRecord>,
    /// Virtual time from the share's start to its answer.
    pub(crate) share_time: Duration,
    /// The rerun's answer.
    pub(crate) rerun: amishare_core::Result<ShareReport>,
    /// Every call the rerun made.
    pub(crate) rerun_calls: Vec<CallRecord>,
}

impl Scenario {
    /// The regions of the share, the source region first.
    pub(crate) fn regions(&self) -> Vec<Region> {
        REGIONS[..self.regions].iter().map(|r| region(r)).collect()
    }

    /// The least mutating calls of a share that completes (module docs).
    pub(crate) fn least(&self) -> Tally {
        let key: &[&'static str] = match self.key {
            Key::Created => &["kms:CreateKey", "kms:CreateAlias"],
            Key::Existing => &["kms:PutKeyPolicy"],
        };
        let snapshots = self.snapshots as usize;
        let mut least = Tally::new();
        for region in self.regions() {
            let mut add = |operation, calls| {
                least.insert((region.clone(), operation), calls);
            };
            add("ec2:CopyImage", 1);
            add(
                "ec2:ModifyImageAttribute",
                self.accounts.div_ceil(LAUNCH_PERMISSIONS_PER_CALL),
            );
            add(
                "ec2:ModifySnapshotAttribute",
                snapshots * self.accounts.div_ceil(VOLUME_PERMISSIONS_PER_CALL),
            );
            for operation in key {
                add(operation, 1);
            }
        }
        least
    }

    /// How long the slowest copy takes: every region's copy runs at once.
    pub(crate) fn copy_time(&self, knobs: &Knobs) -> Duration {
        knobs.copy_image_base_time + knobs.copy_image_time_per_gib * (SNAPSHOT_GIB * self.snapshots)
    }
}

/// The mutating calls of `calls`, by region and operation.
pub(crate) fn tally(calls: &[CallRecord]) -> Tally {
    let mut tally = Tally::new();
    for call in calls.iter().filter(|c| c.mutating) {
        let region = call
            .region
            .clone()
            .expect("every mutating call has a region");
        *tally.entry((region, call.operation)).or_default() += 1;
    }
    tally
}

/// Every (region, operation) whose count in `calls` differs from `least`,
/// as `region operation: made N, least M`; empty when they are equal.
pub(crate) fn differences(least: &Tally, calls: &[CallRecord]) -> Vec<String> {
    let made = tally(calls);
    let mut keys: Vec<&(Region, &'static str)> = least.keys().chain(made.keys()).collect();
    keys.sort();
    keys.dedup();
    keys.into_iter()
        .filter_map(|key| {
            let (made, least) = (
                made.get(key).copied().unwrap_or(0),
                least.get(key).copied().unwrap_or(0),
            );
            (made != least).then(|| format!("{} {}: made {made}, least {least}", key.0, key.1))
        })
        .collect()
}

fn region(name: &str) -> Region {
    Region::parse(name).expect("valid region")
}

/// Runs the share of `scenario` and, right after, the same share again.
pub(crate) async fn run(scenario: Scenario) -> Run {
    let world = World::new(7);
    let owner = AccountId::parse(OWNER).expect("valid account");
    world.add_account(&owner).expect("owner");
    let targets: Vec<Target> = (1..=scenario.accounts)
        .map(|i| {
            let account =
                AccountId::parse(&format!("{}", 200_000_000_000 + i)).expect("valid account");
            world.add_account(&account).expect("target");
            Target::Account(account)
        })
        .collect();
    let regions = scenario.regions();
    let source_region = regions[0].clone();
    let client = world.root_client(&owner).expect("owner client");
    let image = seed_image(&world, &client, &owner, &source_region, scenario.snapshots).await;
    let alias = AliasName::parse(ALIAS).expect("valid alias");
    if scenario.key == Key::Existing {
        for region in &regions {
            seed_key(&client, region, &alias).await;
        }
    }
    let key = match scenario.key {
        Key::Created => KeyChoice::Create(alias.clone()),
        Key::Existing => KeyChoice::Use(KeyRef::Alias(alias)),
    };
    let request = ShareRequest::new(ImageSource::Image(image), source_region, key, targets)
        .with_regions(regions)
        .with_volume_permission(true);
    let mut knobs = world.knobs();
    knobs.snapshot_progress = scenario.progress;
    world.set_knobs(knobs);
    let client = Arc::new(client);
    let flow = Flow::new(client.clone(), client, Arc::new(world.clock()));

    world.clear_calls();
    let start = world.now();
    let share = flow.share(&request).await;
    let share_time = world.now() - start;
    let calls = world.calls();
    world.clear_calls();
    let rerun = flow.share(&request).await;
    let rerun_calls = world.calls();
    Run {
        world,
        share,
        calls,
        share_time,
        rerun,
        rerun_calls,
    }
}

/// An available, unencrypted image of the owner's with `snapshots` 8 GiB
/// snapshots, made from an instance with as many volumes.
async fn seed_image(
    world: &World,
    client: &SimClient,
    owner: &AccountId,
    region: &Region,
    snapshots: u32,
) -> ImageId {
    let volumes: Vec<VolumeSeed> = (0..snapshots)
        .map(|i| {
            let device = match i {
                0 => "/dev/xvda".to_owned(),
                _ => format!("/dev/sd{}", char::from(b'a' + i as u8)),
            };
            VolumeSeed::new(&device, SNAPSHOT_GIB, VolumeEncryption::Unencrypted)
        })
        .collect();
    let instance = world
        .seed_instance(owner, region, &volumes)
        .expect("instance");
    let image = client
        .create_image(
            region,
            &CreateImageRequest {
                instance,
                name: "golden".to_owned(),
                tags: BTreeMap::new(),
            },
        )
        .await
        .expect("image");
    world.advance(world.knobs().create_image_time);
    image
}

/// A key with KMS's default policy, behind `alias` in `region`.
async fn seed_key(client: &SimClient, region: &Region, alias: &AliasName) {
    let key = client
        .create_key(
            region,
            &CreateKeyRequest {
                description: "existing".to_owned(),
                policy: None,
                tags: BTreeMap::new(),
            },
        )
        .await
        .expect("key");
    client
        .create_alias(region, alias, key.key_id())
        .await
        .expect("alias");
}

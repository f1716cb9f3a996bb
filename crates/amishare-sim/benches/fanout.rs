//! What one share costs on the simulation, in calls and in virtual time,
//! printed as Markdown tables of exact figures (the simulation is
//! deterministic): `cargo bench -p amishare-sim --bench fanout`.
//!
//! Every scenario shares one image of S snapshots (8 GiB each, unencrypted,
//! so every region needs an encrypted copy, the source region too) with N
//! accounts in R regions, with create-volume permission.
//!
//! **Mutating calls.** The simulation counts them ([`World::mutating_calls`]),
//! for the share and for an immediate rerun of it. The least a share can
//! make is, per region:
//!
//! - 1 `CopyImage` (the copy encrypted under the region's key);
//! - ⌈N / 500⌉ `ModifyImageAttribute` (launch permissions, 500 accounts a
//!   call, amishare's batch);
//! - S `ModifySnapshotAttribute` (create-volume permission: one call per
//!   snapshot names every account);
//! - for the key: 2 (`CreateKey` with its final policy, and `CreateAlias`)
//!   when it is created, or 1 `PutKeyPolicy` when an existing key's policy
//!   lacks the targets.
//!
//! so `R × (1 + ⌈N / 500⌉ + S + K)` with K = 2 or 1. A rerun's least is 0.
//!
//! **Fan-out.** The virtual time from the share's start to its report,
//! against the slowest region's copy time (`copy_image_base_time` +
//! `copy_image_time_per_gib` × 8 GiB × S: copies in all regions run at
//! once), and, per copy, the `DescribeImages` polls and `DescribeSnapshots`
//! progress reads of its wait, against a fixed 15-second waiter's
//! ⌈copy time / 15 s⌉ + 1 polls. The same shares run once more with
//! snapshot progress turned off (`Knobs::snapshot_progress`), as a backend
//! that does not report it would answer, where the wait falls back to backoff.

#![allow(missing_docs)] // A bench binary has no API.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::Arc;
use std::time::Duration;

use amishare_core::{
    AccountId, AliasName, CreateImageRequest, CreateKeyRequest, Flow, ImageId, ImageSource,
    ImageStore, KeyChoice, KeyRef, KeyStore, Narrowing, Region, ShareRequest, Sharer, Target,
};
use amishare_sim::{CallRecord, SimClient, VolumeEncryption, VolumeSeed, World};

/// Launch permissions amishare puts in one `ModifyImageAttribute` call.
const LAUNCH_PERMISSION_BATCH: usize = 500;
/// The size of every snapshot.
const SNAPSHOT_GIB: u32 = 8;
/// The interval of the fixed waiter the wait is compared with.
const FIXED_INTERVAL: Duration = Duration::from_secs(15);
/// The source region first: shares in R regions use the first R.
const REGIONS: [&str; 5] = [
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
enum Key {
    /// Created by the share in each region.
    Created,
    /// Existing in each region, with KMS's default policy.
    Existing,
}

/// One scenario.
#[derive(Debug, Clone, Copy)]
struct Scenario {
    snapshots: u32,
    accounts: usize,
    regions: usize,
    key: Key,
    /// Whether the owner's store shows snapshot progress.
    progress: bool,
}

impl Scenario {
    /// The least mutating calls a share can make (see the module docs).
    fn minimum(&self) -> usize {
        let launch = self.accounts.div_ceil(LAUNCH_PERMISSION_BATCH);
        let key = match self.key {
            Key::Created => 2,
            Key::Existing => 1,
        };
        self.regions * (1 + launch + self.snapshots as usize + key)
    }

    fn copy_time(&self, world: &World) -> Duration {
        let knobs = world.knobs();
        knobs.copy_image_base_time + knobs.copy_image_time_per_gib * (SNAPSHOT_GIB * self.snapshots)
    }
}

/// What a share and its rerun did.
struct Outcome {
    mutating: usize,
    by_operation: BTreeMap<&'static str, usize>,
    rerun_mutating: usize,
    copy_time: Duration,
    share_time: Duration,
    waits: Vec<Wait>,
}

/// One copy's wait, from the call log.
struct Wait {
    polls: usize,
    progress_reads: usize,
}

fn region(name: &str) -> Region {
    Region::parse(name).expect("valid region")
}

async fn run(scenario: Scenario) -> Outcome {
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
    let regions: Vec<Region> = REGIONS[..scenario.regions]
        .iter()
        .map(|r| region(r))
        .collect();
    let source_region = regions[0].clone();
    let client = world.root_client(&owner).expect("owner client");
    let image = seed_image(&world, &client, &owner, &source_region, scenario.snapshots).await;
    let alias = AliasName::parse(ALIAS).expect("valid alias");
    if scenario.key == Key::Existing {
        for region in &regions {
            seed_key(&client, region, &alias).await;
        }
    }
    let request = ShareRequest {
        source: ImageSource::Image(image),
        source_region,
        regions: regions.clone(),
        key: match scenario.key {
            Key::Created => KeyChoice::Create(alias.clone()),
            Key::Existing => KeyChoice::Use(KeyRef::Alias(alias.clone())),
        },
        targets,
        volume_permission: true,
        name: None,
        narrowing: Narrowing::default(),
    };
    let mut knobs = world.knobs();
    knobs.snapshot_progress = scenario.progress;
    world.set_knobs(knobs);
    let client = Arc::new(client);
    let flow = Flow::new(client.clone(), client, Arc::new(world.clock()));

    world.clear_calls();
    let start = world.now();
    flow.share(&request).await.expect("the share succeeds");
    let share_time = world.now() - start;
    let calls = world.calls();
    let mutating = world.mutating_calls();
    let mut by_operation = BTreeMap::new();
    for call in calls.iter().filter(|c| c.mutating) {
        *by_operation.entry(call.operation).or_default() += 1;
    }
    let waits = regions.iter().map(|r| wait_of(&calls, r)).collect();

    world.clear_calls();
    flow.share(&request).await.expect("the rerun succeeds");
    Outcome {
        mutating,
        by_operation,
        rerun_mutating: world.mutating_calls(),
        copy_time: scenario.copy_time(&world),
        share_time,
        waits,
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

/// The calls of the wait for the copy in `region`: from its `CopyImage` to
/// the last `DescribeImages` there (the snapshot check reads after it).
fn wait_of(calls: &[CallRecord], region: &Region) -> Wait {
    let here = |c: &&CallRecord| c.region.as_ref() == Some(region);
    let regional: Vec<&CallRecord> = calls.iter().filter(here).collect();
    let copy = regional
        .iter()
        .position(|c| c.operation == "ec2:CopyImage")
        .expect("a copy in every region");
    let last = regional
        .iter()
        .rposition(|c| c.operation == "ec2:DescribeImages")
        .expect("a wait in every region");
    let wait = &regional[copy..=last];
    let count = |operation: &str| wait.iter().filter(|c| c.operation == operation).count();
    Wait {
        polls: count("ec2:DescribeImages"),
        progress_reads: count("ec2:DescribeSnapshots"),
    }
}

/// `n`, or `a–b` when the copies' figures differ.
fn range(values: impl Iterator<Item = usize>) -> String {
    let values: Vec<usize> = values.collect();
    let (min, max) = (values.iter().min(), values.iter().max());
    match (min, max) {
        (Some(min), Some(max)) if min == max => min.to_string(),
        (Some(min), Some(max)) => format!("{min}–{max}"),
        _ => "-".to_owned(),
    }
}

fn seconds(duration: Duration) -> String {
    format!("{:.1} s", duration.as_secs_f64())
}

fn late_percent(late: Duration, of: Duration) -> String {
    format!("{:.1} %", 100.0 * late.as_secs_f64() / of.as_secs_f64())
}

/// Polls a fixed waiter makes: at 0, 15 s, … until it sees the copy.
fn fixed_polls(copy: Duration) -> usize {
    (copy.as_secs_f64() / FIXED_INTERVAL.as_secs_f64()).ceil() as usize + 1
}

fn main() {
    // Criterion's flags (`--bench`) are passed to every bench binary; this one takes none.
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .start_paused(true)
        .build()
        .expect("runtime");
    let mut out = String::new();

    writeln!(out, "### Mutating calls of one share, key created\n").unwrap();
    writeln!(
        out,
        "| snapshots S | accounts N | regions R | share | minimum R×(1+⌈N/500⌉+S+2) | rerun |"
    )
    .unwrap();
    writeln!(out, "|---:|---:|---:|---:|---:|---:|").unwrap();
    let mut over = Vec::new();
    for snapshots in [1, 4, 8] {
        for accounts in [1, 10, 100] {
            for regions in [1, 3, 5] {
                let scenario = Scenario {
                    snapshots,
                    accounts,
                    regions,
                    key: Key::Created,
                    progress: true,
                };
                let outcome = runtime.block_on(run(scenario));
                check(&scenario, &outcome, &mut over);
                writeln!(
                    out,
                    "| {snapshots} | {accounts} | {regions} | {} | {} | {} |",
                    outcome.mutating,
                    scenario.minimum(),
                    outcome.rerun_mutating
                )
                .unwrap();
            }
        }
    }

    writeln!(
        out,
        "\n### Mutating calls of one share, existing key (S = 4)\n"
    )
    .unwrap();
    writeln!(
        out,
        "| accounts N | regions R | share | minimum R×(1+⌈N/500⌉+S+1) | rerun | calls |"
    )
    .unwrap();
    writeln!(out, "|---:|---:|---:|---:|---:|---|").unwrap();
    for accounts in [1, 10, 100] {
        for regions in [1, 3, 5] {
            let scenario = Scenario {
                snapshots: 4,
                accounts,
                regions,
                key: Key::Existing,
                progress: true,
            };
            let outcome = runtime.block_on(run(scenario));
            check(&scenario, &outcome, &mut over);
            let calls: Vec<String> = outcome
                .by_operation
                .iter()
                .map(|(op, n)| format!("{op} {n}"))
                .collect();
            writeln!(
                out,
                "| {accounts} | {regions} | {} | {} | {} | {} |",
                outcome.mutating,
                scenario.minimum(),
                outcome.rerun_mutating,
                calls.join(", ")
            )
            .unwrap();
        }
    }

    writeln!(
        out,
        "\n### Fan-out: virtual time of a share (N = 10) against its slowest copy\n"
    )
    .unwrap();
    writeln!(
        out,
        "| snapshots S | regions R | slowest copy | progress: share | late | polls / copy | progress reads / copy | fixed 15 s waiter: polls | late | no progress (backoff): share | late | polls / copy |"
    )
    .unwrap();
    writeln!(
        out,
        "|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"
    )
    .unwrap();
    for snapshots in [1, 4, 8] {
        for regions in [1, 3, 5] {
            let scenario = |progress| Scenario {
                snapshots,
                accounts: 10,
                regions,
                key: Key::Created,
                progress,
            };
            let with = runtime.block_on(run(scenario(true)));
            let without = runtime.block_on(run(scenario(false)));
            let copy = with.copy_time;
            let fixed = fixed_polls(copy);
            let fixed_late = FIXED_INTERVAL * (fixed as u32 - 1) - copy;
            writeln!(
                out,
                "| {snapshots} | {regions} | {} | {} | {} | {} | {} | {fixed} | {} | {} | {} | {} |",
                seconds(copy),
                seconds(with.share_time),
                late_percent(with.share_time.saturating_sub(copy), copy),
                range(with.waits.iter().map(|w| w.polls)),
                range(with.waits.iter().map(|w| w.progress_reads)),
                late_percent(fixed_late, copy),
                seconds(without.share_time),
                late_percent(without.share_time.saturating_sub(copy), copy),
                range(without.waits.iter().map(|w| w.polls)),
            )
            .unwrap();
        }
    }
    print!("{out}");
    if !over.is_empty() {
        eprintln!("over the minimum or not idempotent:\n{}", over.join("\n"));
        std::process::exit(1);
    }
}

/// Notes a scenario whose share exceeds the minimum or whose rerun mutates.
fn check(scenario: &Scenario, outcome: &Outcome, over: &mut Vec<String>) {
    if outcome.mutating > scenario.minimum() || outcome.rerun_mutating > 0 {
        over.push(format!(
            "{scenario:?}: {} calls (minimum {}), rerun {}: {:?}",
            outcome.mutating,
            scenario.minimum(),
            outcome.rerun_mutating,
            outcome.by_operation
        ));
    }
}

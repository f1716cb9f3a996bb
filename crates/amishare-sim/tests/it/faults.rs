//! The seed flow under seeded faults, and stopped after each of its writes.
//!
//! What a run must reach is derived from the share's request and the seed
//! world, never from another run of the flow: one key under the request's
//! alias whose policy is KMS's default statement and the seed's two
//! statements naming the request's targets; the image made from the
//! instance; one copy under the request's name, every snapshot encrypted
//! with the key; launch and create-volume permissions for exactly the
//! targets' accounts; the target's copy under its default EBS key; no
//! instance left running, no failed copy.
//!
//! A run may fail only for a reason the faults injected into it explain
//! (every copy of an image failed, a call throttled or failed on every
//! retry, the stop); right after a failure the world must never hold a
//! permission on an image whose snapshots were not verified, a key-policy
//! statement other than the expected ones, a failed copy, or anything made
//! twice; and a rerun without faults then reaches the expected state.
//!
//! The checks are tested too: flows broken on purpose (granting before the
//! copy is verified, leaving failed copies, copying twice) run through the
//! same drivers, and the checks must report them.

use std::any::Any;
use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;
use std::future::Future;
use std::io::Write as _;
use std::ops::Range;
use std::sync::Arc;
use std::time::Duration;

use amishare_core::ops::{Around, OpCall, Operation};
use amishare_core::store::{
    CopyImageRequest, Image, ImageOwner, ImageQuery, ImageState, ImageStore, InstanceState,
    KeyStore, LaunchPermission, PermissionChange, Snapshot, SnapshotState, VolumePermission,
};
use amishare_core::{
    AcceptRequest, AccountId, CopyKey, Error, Flow, ImageId, ImageSource, InstanceId, KeyChoice,
    KeyRef, LaunchOptions, Region, Result, ShareReport, ShareRequest, Sharer, SnapshotId, Target,
};
use amishare_sim::faults::{FaultTally, Faults, Faulty};
use amishare_sim::seed::{SeedWorld, OWNER_ACCOUNT, TARGET_ACCOUNT};
use amishare_sim::{Consistency, World};
use serde_json::{json, Value};

/// Tags amishare documents for what it makes (ARCHITECTURE.md, "every step
/// looks before it acts"), written out so that the checks do not borrow
/// the flow's constants.
const SOURCE_INSTANCE_TAG: &str = "amishare:source-instance";
const SOURCE_IMAGE_TAG: &str = "amishare:source-image";
const KEY_TAG: &str = "amishare:key";
const ALIAS_TAG: &str = "amishare:alias";

/// What the share asks for, from its request and the seed world alone.
struct Expected {
    region: Region,
    owner: AccountId,
    target: AccountId,
    alias: String,
    instance: InstanceId,
    copy_name: String,
    /// The instance's volumes: each one's encryption becomes a snapshot of
    /// the image made from it.
    source_encrypted: Vec<bool>,
    /// The targets' accounts, which launch and create-volume permissions name.
    accounts: BTreeSet<AccountId>,
    volume_permission: bool,
    /// Every statement the key policy must hold, canonical, by Sid.
    statements: BTreeMap<String, Value>,
}

impl Expected {
    /// What `request` asks of the seed world, read before anything runs.
    async fn of(seed: &SeedWorld, request: &ShareRequest) -> Expected {
        let owner = AccountId::parse(OWNER_ACCOUNT).unwrap();
        let target = AccountId::parse(TARGET_ACCOUNT).unwrap();
        let ImageSource::Instance(instance) = &request.source else {
            panic!("the fault tests share an instance");
        };
        let KeyChoice::Create(alias) = &request.key else {
            panic!("the fault tests create the key");
        };
        let a = seed.world.root_client(&owner).unwrap();
        let volumes = &a
            .describe_instances(&request.source_region, std::slice::from_ref(instance))
            .await
            .unwrap()[0]
            .volumes;
        let mut principals = Vec::new();
        let mut accounts = BTreeSet::new();
        for target in &request.targets {
            match target {
                Target::Principal(p) => {
                    principals.push(p.to_string());
                    accounts.insert(p.account().clone());
                }
                Target::Account(account) => {
                    principals.push(account.root_arn().to_string());
                    accounts.insert(account.clone());
                }
                other => panic!("the fault tests share with principals and accounts, not {other}"),
            }
        }
        Expected {
            region: request.source_region.clone(),
            owner: owner.clone(),
            target,
            alias: alias.to_string(),
            instance: instance.clone(),
            copy_name: request
                .name
                .as_ref()
                .expect("the seed names its copy")
                .to_string(),
            source_encrypted: volumes.iter().map(|v| v.encrypted).collect(),
            accounts,
            volume_permission: request.volume_permission,
            statements: key_policy(&owner, &principals),
        }
    }

    fn launch_permissions(&self) -> BTreeSet<LaunchPermission> {
        self.accounts
            .iter()
            .map(|a| LaunchPermission::Account(a.clone()))
            .collect()
    }

    fn volume_permissions(&self) -> BTreeSet<VolumePermission> {
        self.accounts
            .iter()
            .map(|a| VolumePermission::Account(a.clone()))
            .collect()
    }
}

/// The statements a key created for the share holds: KMS's default
/// statement for the owner account (`docs/spec/kms.md` §A2.1), and, under
/// amishare's Sids, the console's "Allow use of the key" and "Allow
/// attachment of persistent resources" for the targets, the latter on
/// `kms:GrantIsForAWSResource` (§A2.3).
fn key_policy(owner: &AccountId, principals: &[String]) -> BTreeMap<String, Value> {
    let statements = [
        json!({
            "Sid": "Enable IAM User Permissions",
            "Effect": "Allow",
            "Principal": {"AWS": owner.root_arn().to_string()},
            "Action": "kms:*",
            "Resource": "*",
        }),
        json!({
            "Sid": "amishare: Allow use of the key",
            "Effect": "Allow",
            "Principal": {"AWS": principals},
            "Action": ["kms:Encrypt", "kms:Decrypt", "kms:ReEncrypt*", "kms:GenerateDataKey*", "kms:DescribeKey"],
            "Resource": "*",
        }),
        json!({
            "Sid": "amishare: Allow attachment of persistent resources",
            "Effect": "Allow",
            "Principal": {"AWS": principals},
            "Action": ["kms:CreateGrant", "kms:ListGrants", "kms:RevokeGrant"],
            "Resource": "*",
            "Condition": {"Bool": {"kms:GrantIsForAWSResource": "true"}},
        }),
    ];
    statements
        .into_iter()
        .map(|s| (s["Sid"].as_str().unwrap().to_owned(), canonical(&s)))
        .collect()
}

/// A statement with lists sorted and one-element lists as their element,
/// so that equal statements compare equal however they were written.
fn canonical(value: &Value) -> Value {
    match value {
        Value::Object(map) => {
            Value::Object(map.iter().map(|(k, v)| (k.clone(), canonical(v))).collect())
        }
        Value::Array(items) => {
            let mut items: Vec<Value> = items.iter().map(canonical).collect();
            items.sort_by_key(ToString::to_string);
            items.dedup();
            if items.len() == 1 {
                items.pop().unwrap()
            } else {
                Value::Array(items)
            }
        }
        other => other.clone(),
    }
}

/// One image as the checks see it.
struct Seen {
    image: Image,
    snapshots: Vec<Snapshot>,
    launch: BTreeSet<LaunchPermission>,
    volume: Vec<BTreeSet<VolumePermission>>,
}

/// Everything the checks look at, read as the accounts' roots.
struct World2 {
    /// A's customer-managed keys: ARN, the alias tag, statements by Sid.
    keys: Vec<(String, Option<String>, BTreeMap<String, Value>)>,
    /// The key the alias names.
    aliased: Option<String>,
    owner_images: Vec<Seen>,
    target_images: Vec<Seen>,
    /// B's instances pending or running.
    running: usize,
    /// B's default EBS key.
    target_default_key: String,
}

async fn images_of(world: &World, account: &AccountId, region: &Region) -> Vec<Seen> {
    let client = world.root_client(account).unwrap();
    let mine = ImageQuery {
        owners: vec![ImageOwner::Me],
        ..ImageQuery::default()
    };
    let mut seen = Vec::new();
    for image in client.describe_images(region, &mine).await.unwrap() {
        if image.state == ImageState::Deregistered {
            continue;
        }
        let ids: Vec<SnapshotId> = image
            .block_devices
            .iter()
            .map(|d| d.snapshot_id.clone())
            .collect();
        let snapshots = client.describe_snapshots(region, &ids).await.unwrap();
        let launch = client
            .describe_launch_permission(region, &image.id)
            .await
            .unwrap()
            .into_iter()
            .collect();
        let mut volume = Vec::new();
        for id in &ids {
            volume.push(
                client
                    .describe_create_volume_permission(region, id)
                    .await
                    .unwrap()
                    .into_iter()
                    .collect(),
            );
        }
        seen.push(Seen {
            image,
            snapshots,
            launch,
            volume,
        });
    }
    seen.sort_by(|x, y| x.image.name.cmp(&y.image.name));
    seen
}

async fn look(world: &World, expected: &Expected) -> World2 {
    let a = world.root_client(&expected.owner).unwrap();
    let mut keys = Vec::new();
    for (arn, tags) in world.customer_keys(&expected.owner) {
        let policy: Value = serde_json::from_str(&a.get_key_policy(&arn).await.unwrap()).unwrap();
        let statements = policy["Statement"]
            .as_array()
            .cloned()
            .unwrap_or_default()
            .iter()
            .map(|s| {
                let sid = s["Sid"].as_str().unwrap_or("(no Sid)").to_owned();
                (sid, canonical(s))
            })
            .collect();
        keys.push((arn.to_string(), tags.get(ALIAS_TAG).cloned(), statements));
    }
    let alias = KeyRef::Alias(amishare_core::AliasName::parse(&expected.alias).unwrap());
    let aliased = a
        .describe_key(&expected.region, &alias)
        .await
        .ok()
        .map(|meta| meta.arn.to_string());
    let running = world
        .instances(&expected.target)
        .into_iter()
        .filter(|(_, state)| matches!(state, InstanceState::Running | InstanceState::Pending))
        .count();
    World2 {
        keys,
        aliased,
        owner_images: images_of(world, &expected.owner, &expected.region).await,
        target_images: images_of(world, &expected.target, &expected.region).await,
        running,
        target_default_key: world
            .aws_ebs_key(&expected.target, &expected.region)
            .unwrap()
            .to_string(),
    }
}

/// Whether every snapshot of `seen` is complete and encrypted with `key`.
fn verified(seen: &Seen, key: Option<&str>) -> bool {
    seen.image.state == ImageState::Available
        && !seen.snapshots.is_empty()
        && seen.snapshots.len() == seen.image.block_devices.len()
        && seen.snapshots.iter().all(|s| {
            s.state == SnapshotState::Completed
                && s.encrypted
                && s.kms_key.as_ref().map(ToString::to_string).as_deref() == key
        })
}

/// What the world must never hold, even right after a failure.
fn never(seen: &World2, expected: &Expected) -> Vec<String> {
    let mut wrong = Vec::new();
    let aliased: Vec<_> = seen
        .keys
        .iter()
        .filter(|(_, tag, _)| tag.is_some())
        .collect();
    if aliased.len() > 1 {
        wrong.push(format!("{} keys made for the alias", aliased.len()));
    }
    for (arn, _, statements) in &seen.keys {
        for (sid, statement) in statements {
            match expected.statements.get(sid) {
                Some(want) if want == statement => {}
                Some(want) => wrong.push(format!(
                    "key {arn}: statement {sid:?} is {statement}, not {want}"
                )),
                None => wrong.push(format!("key {arn}: unexpected statement {statement}")),
            }
        }
        if !statements.contains_key("Enable IAM User Permissions") {
            wrong.push(format!("key {arn}: KMS's default statement is gone"));
        }
    }
    let key = seen.aliased.as_deref();
    for image in &seen.owner_images {
        let id = &image.image.id;
        let granted = !image.launch.is_empty() || image.volume.iter().any(|v| !v.is_empty());
        if granted && !verified(image, key) {
            wrong.push(format!(
                "{id} ({}, {}) carries launch or create-volume permissions before its snapshots were verified under the key",
                image.image.name, image.image.state
            ));
        }
        if !image.launch.is_subset(&expected.launch_permissions()) {
            wrong.push(format!("{id} may be launched by {:?}", image.launch));
        }
        for volume in &image.volume {
            if !volume.is_subset(&expected.volume_permissions()) {
                wrong.push(format!("a snapshot of {id} may be copied by {volume:?}"));
            }
        }
    }
    for image in seen.owner_images.iter().chain(&seen.target_images) {
        if image.image.state == ImageState::Failed {
            wrong.push(format!(
                "a copy left failed: {} ({}) of {}",
                image.image.id, image.image.name, image.image.owner
            ));
        }
    }
    let usable = |images: &[Seen], tag: &str| {
        images
            .iter()
            .filter(|i| i.image.tags.contains_key(tag) && i.image.state != ImageState::Failed)
            .count()
    };
    if usable(&seen.owner_images, SOURCE_INSTANCE_TAG) > 1 {
        wrong.push("more than one image made from the instance".to_owned());
    }
    if usable(&seen.owner_images, SOURCE_IMAGE_TAG) > 1 {
        wrong.push("more than one copy shared".to_owned());
    }
    let target_copies = seen
        .target_images
        .iter()
        .filter(|i| i.image.state != ImageState::Failed)
        .count();
    if target_copies > 1 {
        wrong.push(format!("{target_copies} copies in the target account"));
    }
    wrong
}

/// How the end state differs from what the share and accept ask for.
fn differences(seen: &World2, expected: &Expected) -> Vec<String> {
    let mut wrong = never(seen, expected);
    match seen.keys.as_slice() {
        [(arn, tag, statements)] => {
            if tag.as_deref() != Some(expected.alias.as_str()) {
                wrong.push(format!("the key's alias tag is {tag:?}"));
            }
            if seen.aliased.as_ref() != Some(arn) {
                wrong.push(format!("the alias names {:?}, not {arn}", seen.aliased));
            }
            if statements != &expected.statements {
                wrong.push(format!(
                    "the key policy holds {:?}",
                    statements.keys().collect::<Vec<_>>()
                ));
            }
        }
        keys => wrong.push(format!("{} customer-managed keys", keys.len())),
    }
    let key = seen.aliased.as_deref();
    let source = seen.owner_images.iter().find(|i| {
        i.image.tags.get(SOURCE_INSTANCE_TAG).map(String::as_str)
            == Some(expected.instance.as_str())
    });
    let copy = seen
        .owner_images
        .iter()
        .find(|i| i.image.name == expected.copy_name);
    if seen.owner_images.len() != 2 {
        let names: Vec<_> = seen
            .owner_images
            .iter()
            .map(|i| format!("{} {}", i.image.name, i.image.state))
            .collect();
        wrong.push(format!(
            "the owner has {names:?}, not the image and its copy"
        ));
    }
    match source {
        Some(source) => {
            let encrypted: Vec<bool> = source.snapshots.iter().map(|s| s.encrypted).collect();
            if source.image.state != ImageState::Available
                || encrypted != expected.source_encrypted
                || !source.launch.is_empty()
                || source.volume.iter().any(|v| !v.is_empty())
            {
                wrong.push(format!(
                    "the image of the instance is {}, snapshots encrypted {encrypted:?}, shared {:?}",
                    source.image.state, source.launch
                ));
            }
        }
        None => wrong.push("no image made from the instance".to_owned()),
    }
    match (copy, source) {
        (Some(copy), Some(source)) => {
            let tags = (
                copy.image.tags.get(SOURCE_IMAGE_TAG).map(String::as_str),
                copy.image.tags.get(KEY_TAG).map(String::as_str),
            );
            if tags != (Some(source.image.id.as_str()), key) {
                wrong.push(format!("the copy's tags are {tags:?}"));
            }
            if copy.snapshots.len() != expected.source_encrypted.len() || !verified(copy, key) {
                wrong.push(format!(
                    "the copy is {} with snapshots {:?}, not every one under {key:?}",
                    copy.image.state,
                    copy.snapshots
                        .iter()
                        .map(|s| (s.state, s.kms_key.as_ref().map(ToString::to_string)))
                        .collect::<Vec<_>>()
                ));
            }
            if copy.launch != expected.launch_permissions() {
                wrong.push(format!("the copy may be launched by {:?}", copy.launch));
            }
            let volume = if expected.volume_permission {
                expected.volume_permissions()
            } else {
                BTreeSet::new()
            };
            if copy.volume.iter().any(|v| *v != volume) {
                wrong.push(format!(
                    "the copy's snapshots may be copied by {:?}",
                    copy.volume
                ));
            }
        }
        _ => wrong.push(format!("no copy named {}", expected.copy_name)),
    }
    match seen.target_images.as_slice() {
        [copy] => {
            if !verified(copy, Some(&seen.target_default_key))
                || copy.snapshots.len() != expected.source_encrypted.len()
            {
                wrong.push(format!(
                    "the target's copy is {}, not every snapshot under its default key {}",
                    copy.image.state, seen.target_default_key
                ));
            }
        }
        images => wrong.push(format!(
            "the target has {} images, not one copy",
            images.len()
        )),
    }
    if seen.running != 0 {
        wrong.push(format!(
            "{} of the target's instances left running",
            seen.running
        ));
    }
    wrong
}

/// How the flow's image calls reach the world: straight, or through a
/// flow broken on purpose.
type Route = fn(Faulty) -> Arc<dyn ImageStore>;

fn straight(faulty: Faulty) -> Arc<dyn ImageStore> {
    Arc::new(faulty)
}

/// The part of the run that failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Phase {
    Share,
    Accept,
}

/// A failed run: where, why, and the faults injected in that part.
struct Failure {
    phase: Phase,
    err: Error,
    faults: FaultTally,
}

fn since(before: FaultTally, after: FaultTally) -> FaultTally {
    FaultTally {
        throttled: after.throttled - before.throttled,
        server_errors: after.server_errors - before.server_errors,
        lost_answers: after.lost_answers - before.lost_answers,
        hidden: after.hidden - before.hidden,
        failed_copies: after.failed_copies - before.failed_copies,
    }
}

/// B's side of the seed flow, as the CLI's `accept --launch --copy-key
/// default` runs it: a smoke instance that is terminated, and a copy under
/// B's default key.
fn accept_request(seed: &SeedWorld, share: &ShareReport) -> AcceptRequest {
    let shared = &share.regions[0];
    AcceptRequest::new(
        shared.image.clone(),
        seed.region.clone(),
        [shared.key.clone()],
    )
    .with_launch(LaunchOptions::default())
    .with_copy(CopyKey::AccountDefault)
}

async fn share(seed: &SeedWorld, owner: &Faulty, route: Route) -> Result<ShareReport> {
    let clock = Arc::new(seed.world.stepping_clock());
    Flow::new(Arc::new(owner.clone()), route(owner.clone()), clock)
        .share(&seed.share_request())
        .await
}

async fn accept(
    seed: &SeedWorld,
    target: &Faulty,
    route: Route,
    shared: &ShareReport,
) -> Result<()> {
    let clock = Arc::new(seed.world.stepping_clock());
    Flow::new(Arc::new(target.clone()), route(target.clone()), clock)
        .accept(&accept_request(seed, shared))
        .await
        .map(drop)
}

/// Shares as A behind `owner`'s faults, then, once the share has settled,
/// accepts as B behind the same faults.
async fn run(
    seed: &SeedWorld,
    owner: &Faulty,
    settle: Duration,
    route: Route,
) -> std::result::Result<(), Failure> {
    let before = owner.tally();
    let shared = share(seed, owner, route).await.map_err(|err| Failure {
        phase: Phase::Share,
        err,
        faults: since(before, owner.tally()),
    })?;
    seed.world.advance(settle);
    let target = owner.for_client(seed.world.client(&seed.target).unwrap());
    let before = owner.tally();
    accept(seed, &target, route, &shared)
        .await
        .map_err(|err| Failure {
            phase: Phase::Accept,
            err,
            faults: since(before, owner.tally()),
        })
}

/// The fault that explains a failure, or why nothing does.
fn explain(failure: &Failure, stopped: bool) -> std::result::Result<&'static str, String> {
    let text = failure.err.to_string();
    let faults = failure.faults;
    if stopped {
        return if text.contains("stopped after") {
            Ok("stopped")
        } else {
            Err(text)
        };
    }
    let copies_failed = text
        .split_once("the copy failed ")
        .and_then(|(_, rest)| rest.split_once(" time"))
        .and_then(|(n, _)| n.parse::<usize>().ok());
    if let Some(n) = copies_failed {
        // Only copies the faults made fail can have failed here.
        return if 0 < n && n <= faults.failed_copies {
            Ok("every copy of the image failed")
        } else {
            Err(format!(
                "{text} with {} copies made to fail",
                faults.failed_copies
            ))
        };
    }
    match failure.err.code() {
        Some("RequestLimitExceeded" | "ThrottlingException") if faults.throttled > 0 => {
            Ok("throttled on every retry")
        }
        Some("InternalError" | "KMSInternalException")
            if faults.server_errors + faults.lost_answers > 0 =>
        {
            Ok("a 5xx on every retry")
        }
        _ => Err(text),
    }
}

/// What one driver saw.
#[derive(Default)]
struct Tally {
    correct: usize,
    /// Failures by phase and the fault that explains them.
    failed: BTreeMap<(Phase, &'static str), usize>,
    faults: FaultTally,
    /// Everything the checks found wrong, each naming its run.
    wrong: Vec<String>,
}

/// Runs the flow after a failure without faults, and checks that it
/// reaches the expected state: whatever the failed run left, the rerun
/// adopted or removed.
async fn rerun(
    seed: &SeedWorld,
    faulty: &Faulty,
    expected: &Expected,
    route: Route,
    what: &str,
    tally: &mut Tally,
) {
    faulty.set_faults(Faults::none(0));
    seed.world.advance(Duration::from_secs(600));
    match run(seed, faulty, Duration::ZERO, route).await {
        Ok(()) => {
            let seen = look(&seed.world, expected).await;
            for wrong in differences(&seen, expected) {
                tally
                    .wrong
                    .push(format!("{what}, after the rerun: {wrong}"));
            }
        }
        Err(failure) => tally
            .wrong
            .push(format!("{what}: the rerun failed: {}", failure.err)),
    }
}

/// The faults of run `n`: rates spread from none to harsh.
fn faults_for(n: u64) -> Faults {
    let spread = |salt: u64, max: f64| {
        let x = (n.wrapping_mul(0x9e37_79b9_7f4a_7c15) ^ salt.wrapping_mul(0xbf58_476d_1ce4_e5b9))
            % 1000;
        max * x as f64 / 1000.0
    };
    Faults {
        seed: n,
        throttle: spread(1, 0.3),
        server_error: spread(2, 0.08),
        lost_answer: spread(3, 0.15),
        visibility_delay: Duration::from_secs_f64(spread(4, 30.0)),
        copy_failure: spread(5, 0.5),
        crash_after: None,
    }
}

/// Runs `runs` of the seed flow under their faults, through `route`.
async fn faulty_runs(runs: Range<u64>, route: Route) -> Tally {
    let mut tally = Tally::default();
    for n in runs {
        let seed = SeedWorld::new(1).unwrap();
        let expected = Expected::of(&seed, &seed.share_request()).await;
        let faults = faults_for(n);
        let settle = faults.visibility_delay;
        let mut knobs = seed.world.knobs();
        knobs.grant_propagation_delay = Duration::from_secs(n % 7 * 20);
        knobs.record_calls = false;
        seed.world.set_knobs(knobs);
        let faulty = Faulty::new(seed.world.client(&seed.owner).unwrap(), faults);
        let outcome = run(&seed, &faulty, settle, route).await;
        tally.faults += faulty.tally();
        // The checks read what the world holds, not what a read may not
        // see yet.
        seed.world.set_consistency(Consistency::IMMEDIATE);
        let seen = look(&seed.world, &expected).await;
        match outcome {
            Ok(()) => {
                tally.correct += 1;
                for wrong in differences(&seen, &expected) {
                    tally.wrong.push(format!("run {n} succeeded: {wrong}"));
                }
            }
            Err(failure) => {
                match explain(&failure, false) {
                    Ok(why) => *tally.failed.entry((failure.phase, why)).or_default() += 1,
                    Err(why) => tally.wrong.push(format!(
                        "run {n}: {:?} failed for a reason its faults do not explain: {why}",
                        failure.phase
                    )),
                }
                for wrong in never(&seen, &expected) {
                    tally
                        .wrong
                        .push(format!("run {n}, right after it failed: {wrong}"));
                }
                rerun(
                    &seed,
                    &faulty,
                    &expected,
                    route,
                    &format!("run {n}"),
                    &mut tally,
                )
                .await;
            }
        }
    }
    tally
}

/// How many writes an untroubled `phase` makes.
async fn writes_of(phase: Phase) -> usize {
    let seed = SeedWorld::new(1).unwrap();
    let owner = Faulty::new(seed.world.client(&seed.owner).unwrap(), Faults::none(0));
    let before = seed.world.mutating_calls();
    let shared = share(&seed, &owner, straight).await.unwrap();
    if phase == Phase::Share {
        return seed.world.mutating_calls() - before;
    }
    let before = seed.world.mutating_calls();
    let target = Faulty::new(seed.world.client(&seed.target).unwrap(), Faults::none(0));
    accept(&seed, &target, straight, &shared).await.unwrap();
    seed.world.mutating_calls() - before
}

/// Stops `phase` before its first write and after each of its `writes`
/// (the last included), checks the state right after the stop, then runs
/// the whole flow again without faults.
async fn stopped_after_each_write(phase: Phase, writes: usize, route: Route) -> Tally {
    let mut tally = Tally::default();
    for stop in 0..=writes {
        let what = format!("{phase:?} stopped after {stop} of {writes} writes");
        let seed = SeedWorld::new(1).unwrap();
        let expected = Expected::of(&seed, &seed.share_request()).await;
        let stopping = Faults {
            crash_after: Some(stop),
            ..Faults::none(0)
        };
        let (faulty, result) = match phase {
            Phase::Share => {
                let owner = Faulty::new(seed.world.client(&seed.owner).unwrap(), stopping);
                let result = share(&seed, &owner, route).await.map(drop);
                (owner, result)
            }
            Phase::Accept => {
                let owner = Faulty::new(seed.world.client(&seed.owner).unwrap(), Faults::none(0));
                let shared = share(&seed, &owner, route).await.unwrap();
                let target = Faulty::new(seed.world.client(&seed.target).unwrap(), stopping);
                let result = accept(&seed, &target, route, &shared).await;
                (owner, result)
            }
        };
        match result {
            Ok(()) if stop == writes => tally.correct += 1,
            Ok(()) => tally.wrong.push(format!("{what}: it finished")),
            Err(err) => {
                let failure = Failure {
                    phase,
                    err,
                    faults: FaultTally::default(),
                };
                match explain(&failure, true) {
                    Ok(why) => *tally.failed.entry((phase, why)).or_default() += 1,
                    Err(why) => tally.wrong.push(format!("{what}: failed otherwise: {why}")),
                }
                let seen = look(&seed.world, &expected).await;
                for wrong in never(&seen, &expected) {
                    tally
                        .wrong
                        .push(format!("{what}, right after the stop: {wrong}"));
                }
            }
        }
        faulty.set_faults(Faults::none(0));
        rerun(&seed, &faulty, &expected, route, &what, &mut tally).await;
    }
    tally
}

/// The figures README states for `cargo test -p amishare-sim --test it faults -- --nocapture`.
const RUNS: u64 = 1000;
const CORRECT: usize = 932;
const SHARE_COPIES_FAILED: usize = 23;
const ACCEPT_COPIES_FAILED: usize = 44;
const ACCEPT_5XX_EXHAUSTED: usize = 1;
const INJECTED: FaultTally = FaultTally {
    throttled: 11890,
    server_errors: 2673,
    lost_answers: 708,
    hidden: 6446,
    failed_copies: 701,
};
const SHARE_WRITES: usize = 6;
const ACCEPT_WRITES: usize = 3;

/// Prints a driver's tally straight to stderr, where a passing run shows
/// it, with the faults injected when there were any.
fn print(title: &str, tally: &Tally) {
    let mut out = format!("{title}: {} correct", tally.correct);
    for ((phase, why), count) in &tally.failed {
        let _ = write!(out, "; {count} × {phase:?} failed: {why}");
    }
    let f = tally.faults;
    if f == FaultTally::default() {
        let _ = writeln!(std::io::stderr(), "{out}");
        return;
    }
    let _ = write!(
        out,
        "\n  faults injected: {} throttled, {} 5xx before acting, {} lost answers, {} reads that missed something new, {} failed copies",
        f.throttled, f.server_errors, f.lost_answers, f.hidden, f.failed_copies
    );
    let _ = writeln!(std::io::stderr(), "{out}");
}

#[tokio::test(start_paused = true)]
async fn a_thousand_faulty_seed_flows_end_as_the_request_asks_or_fail_for_their_faults() {
    let tally = faulty_runs(0..RUNS, straight).await;
    print(&format!("{RUNS} fault-injected seed flows"), &tally);
    assert!(tally.wrong.is_empty(), "{:#?}", tally.wrong);
    assert_eq!(tally.correct, CORRECT);
    assert_eq!(
        tally.failed,
        BTreeMap::from([
            (
                (Phase::Share, "every copy of the image failed"),
                SHARE_COPIES_FAILED
            ),
            (
                (Phase::Accept, "every copy of the image failed"),
                ACCEPT_COPIES_FAILED
            ),
            (
                (Phase::Accept, "a 5xx on every retry"),
                ACCEPT_5XX_EXHAUSTED
            ),
        ])
    );
    assert_eq!(tally.faults, INJECTED);
}

#[tokio::test(start_paused = true)]
async fn a_share_stopped_after_each_write_resumes_to_what_the_request_asks() {
    let writes = writes_of(Phase::Share).await;
    assert_eq!(writes, SHARE_WRITES, "the seed share's writes");
    let tally = stopped_after_each_write(Phase::Share, writes, straight).await;
    print("the share stopped before and after each write", &tally);
    assert!(tally.wrong.is_empty(), "{:#?}", tally.wrong);
    // Stopped after its last write, the share has nothing left to do.
    assert_eq!(tally.correct, 1);
    assert_eq!(
        tally.failed,
        BTreeMap::from([((Phase::Share, "stopped"), writes)])
    );
}

/// The target's accept (a smoke launch, then a copy under its default key)
/// stopped after each of its writes (`RunInstances`, `TerminateInstances`,
/// `CopyImage`): the rerun terminates the smoke instance the stopped run
/// left running (by its `amishare:smoke-test` tag) and reaches the
/// expected state, with no instance left running.
#[tokio::test(start_paused = true)]
async fn an_accept_stopped_after_each_write_resumes_to_what_the_request_asks() {
    let writes = writes_of(Phase::Accept).await;
    assert_eq!(writes, ACCEPT_WRITES, "the seed accept's writes");
    let tally = stopped_after_each_write(Phase::Accept, writes, straight).await;
    print("the accept stopped before and after each write", &tally);
    assert!(tally.wrong.is_empty(), "{:#?}", tally.wrong);
    // After its last write, the accept still waits for its copy.
    assert_eq!(tally.correct, 0);
    assert_eq!(
        tally.failed,
        BTreeMap::from([((Phase::Accept, "stopped"), writes + 1)])
    );
}

/// A flow broken on purpose, for testing the checks.
#[derive(Debug, Clone, Copy)]
enum Breakage {
    /// Grants the target launch permission on a copy as soon as it is made.
    GrantsFirst,
    /// Never deregisters a failed copy.
    LeavesFailedCopies,
    /// Makes a second copy beside each copy and leaves it.
    CopiesTwice,
}

#[derive(Debug)]
struct Broken {
    inner: Faulty,
    breakage: Breakage,
}

fn grants_first(faulty: Faulty) -> Arc<dyn ImageStore> {
    Arc::new(Broken {
        inner: faulty,
        breakage: Breakage::GrantsFirst,
    })
}

fn leaves_failed_copies(faulty: Faulty) -> Arc<dyn ImageStore> {
    Arc::new(Broken {
        inner: faulty,
        breakage: Breakage::LeavesFailedCopies,
    })
}

fn copies_twice(faulty: Faulty) -> Arc<dyn ImageStore> {
    Arc::new(Broken {
        inner: faulty,
        breakage: Breakage::CopiesTwice,
    })
}

impl Around for Broken {
    async fn around<'a, T, F, Fut>(&'a self, call: OpCall<'a>, mut send: F) -> Result<T>
    where
        T: Send + 'static,
        F: FnMut() -> Fut + Send + 'a,
        Fut: Future<Output = Result<T>> + Send + 'a,
    {
        if call.op == Operation::DeregisterImage {
            if let Breakage::LeavesFailedCopies = self.breakage {
                // Answers as if deregistered, and leaves the image.
                let nothing: Box<dyn Any> = Box::new(());
                return Ok(*nothing.downcast::<T>().expect("DeregisterImage answers ()"));
            }
        }
        let value = send().await?;
        let copy = (&value as &dyn Any).downcast_ref::<ImageId>();
        let (Operation::CopyImage, Some(region), Some(request), Some(id)) = (
            call.op,
            call.region,
            call.request::<CopyImageRequest>(),
            copy,
        ) else {
            return Ok(value);
        };
        match self.breakage {
            Breakage::GrantsFirst => {
                let target = AccountId::parse(TARGET_ACCOUNT).unwrap();
                let grant = PermissionChange::add(vec![LaunchPermission::Account(target)]);
                let _ = self
                    .inner
                    .modify_launch_permission(region, id, &grant)
                    .await;
            }
            Breakage::CopiesTwice => {
                let mut again = request.clone();
                again.name = format!("{}-again", request.name);
                again.client_token = request.client_token.as_ref().map(|t| format!("{t}-again"));
                let _ = self.inner.copy_image(region, &again).await;
            }
            Breakage::LeavesFailedCopies => {}
        }
        Ok(value)
    }
}

amishare_core::around_stores!(ImageStore for [] Broken, |this| &this.inner);

/// The checks themselves: a flow that grants launch permission on its copy
/// before verifying the copy's snapshots, one that leaves failed copies
/// behind, and one that leaves a second copy, each run through the same
/// drivers as the real flow, are reported.
#[tokio::test(start_paused = true)]
async fn the_checks_report_a_flow_that_grants_before_verifying_or_leaves_a_copy() {
    let found = |tally: &Tally, what: &str| {
        let hit = tally.wrong.iter().find(|w| w.contains(what));
        if let Some(hit) = hit {
            println!("reported: {hit}");
        }
        hit.is_some()
    };

    let tally = stopped_after_each_write(Phase::Share, SHARE_WRITES, grants_first).await;
    assert!(
        found(&tally, "right after the stop")
            && found(&tally, "before its snapshots were verified under the key"),
        "granting first goes unreported: {:#?}",
        tally.wrong
    );

    let tally = faulty_runs(0..50, leaves_failed_copies).await;
    assert!(
        found(&tally, "a copy left failed"),
        "failed copies left behind go unreported: {:#?}",
        tally.wrong
    );

    let tally = faulty_runs(0..5, copies_twice).await;
    assert!(
        found(&tally, "more than one copy shared") && found(&tally, "not the image and its copy"),
        "a second copy left behind goes unreported: {:#?}",
        tally.wrong
    );

    // The real flow, through the same drivers, is not reported.
    let tally = faulty_runs(0..50, straight).await;
    assert!(tally.wrong.is_empty(), "{:#?}", tally.wrong);
}

//! The seed flow under seeded faults, and interrupted at every step boundary:
//! each run ends in the correct state, or fails cleanly and a rerun then
//! reaches exactly the state an untroubled run reaches, with nothing left
//! behind (no second key, image or copy, no failed copy, no running smoke
//! instance, no lost key-policy statement).

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use amishare_core::{
    AcceptRequest, AccountId, CopyKey, Error, Flow, ImageOwner, ImageQuery, ImageState, ImageStore,
    InstanceState, KeyRef, KeyStore, LaunchOptions, LaunchPermission, Sharer, VolumePermission,
    TAG_ALIAS,
};
use amishare_sim::faults::{FaultTally, Faults, Faulty};
use amishare_sim::seed::{SeedWorld, KEY_ALIAS, OWNER_ACCOUNT, TARGET_ACCOUNT};
use amishare_sim::World;
use serde_json::Value;

/// What a seed share and accept leave behind, by names and states rather
/// than IDs, so runs that took different paths compare equal.
#[derive(Debug, PartialEq)]
struct EndState {
    /// A's customer-managed keys, by their `amishare:alias` tag.
    keys: Vec<Option<String>>,
    /// The statements of the key the alias names.
    statements: Vec<Value>,
    /// A's images: name and state.
    owner_images: Vec<(String, ImageState)>,
    /// The shared copy's launch permissions.
    launch: Vec<LaunchPermission>,
    /// Each snapshot of the shared copy: encrypted with the key, and its
    /// create-volume permissions.
    snapshots: Vec<(bool, Vec<VolumePermission>)>,
    /// B's images: name and state.
    target_images: Vec<(String, ImageState)>,
    /// B's instances still running.
    running: usize,
}

async fn end_state(world: &World) -> EndState {
    let owner = AccountId::parse(OWNER_ACCOUNT).unwrap();
    let target = AccountId::parse(TARGET_ACCOUNT).unwrap();
    let region = amishare_core::Region::parse(amishare_sim::seed::REGION).unwrap();
    let a = world.root_client(&owner).unwrap();
    let b = world.root_client(&target).unwrap();
    let mut keys: Vec<Option<String>> = world
        .customer_keys(&owner)
        .into_iter()
        .map(|(_, tags)| tags.get(TAG_ALIAS).cloned())
        .collect();
    keys.sort();
    let alias = KeyRef::Alias(amishare_core::AliasName::parse(KEY_ALIAS).unwrap());
    let (key, statements) = match a.describe_key(&region, &alias).await {
        Ok(meta) => {
            let policy: Value =
                serde_json::from_str(&a.get_key_policy(&meta.arn).await.unwrap()).unwrap();
            let statements = policy["Statement"].as_array().cloned().unwrap_or_default();
            (Some(meta.arn), statements)
        }
        Err(_) => (None, Vec::new()),
    };
    let mine = ImageQuery {
        owners: vec![ImageOwner::Me],
        ..ImageQuery::default()
    };
    let images = a.describe_images(&region, &mine).await.unwrap();
    let mut owner_images: Vec<(String, ImageState)> =
        images.iter().map(|i| (i.name.clone(), i.state)).collect();
    owner_images.sort_by(|x, y| x.0.cmp(&y.0));
    let copy = images
        .iter()
        .find(|i| i.tags.contains_key(amishare_core::TAG_KEY));
    let (launch, snapshots) = match copy {
        Some(copy) => {
            let launch = a
                .describe_launch_permission(&region, &copy.id)
                .await
                .unwrap();
            let ids: Vec<_> = copy
                .block_devices
                .iter()
                .map(|d| d.snapshot_id.clone())
                .collect();
            let mut snapshots = Vec::new();
            for snapshot in a.describe_snapshots(&region, &ids).await.unwrap() {
                let permissions = a
                    .describe_create_volume_permission(&region, &snapshot.id)
                    .await
                    .unwrap();
                snapshots.push((snapshot.encrypted && snapshot.kms_key == key, permissions));
            }
            (launch, snapshots)
        }
        None => (Vec::new(), Vec::new()),
    };
    let mut target_images: Vec<(String, ImageState)> = b
        .describe_images(&region, &mine)
        .await
        .unwrap()
        .into_iter()
        .map(|i| (i.name, i.state))
        .collect();
    target_images.sort_by(|x, y| x.0.cmp(&y.0));
    let running = world
        .instances(&target)
        .into_iter()
        .filter(|(_, state)| matches!(state, InstanceState::Running | InstanceState::Pending))
        .count();
    EndState {
        keys,
        statements,
        owner_images,
        launch,
        snapshots,
        target_images,
        running,
    }
}

/// B's side of the seed flow, as the CLI's `accept --launch --copy-key
/// default` runs it: a smoke instance that is terminated, and a copy under
/// B's default key.
fn accept_request(seed: &SeedWorld, share: &amishare_core::ShareReport) -> AcceptRequest {
    let shared = &share.regions[0];
    AcceptRequest {
        grants: Vec::new(),
        image: shared.image.clone(),
        region: seed.region.clone(),
        keys: vec![shared.key.clone()],
        launch: Some(LaunchOptions::default()),
        copy: Some(CopyKey::AccountDefault),
        copy_name: None,
    }
}

/// Shares and accepts, the owner's and the target's calls behind `owner`'s faults.
async fn run(seed: &SeedWorld, owner: &Faulty, settle: Duration) -> Result<(), Error> {
    let clock = Arc::new(seed.world.stepping_clock());
    let a = Arc::new(owner.clone());
    let share = Flow::new(a.clone(), a, clock.clone())
        .share(&seed.share_request())
        .await?;
    // B accepts once the share has settled, as another team does later.
    seed.world.advance(settle);
    let b = Arc::new(owner.for_client(seed.world.client(&seed.target).unwrap()));
    Flow::new(b.clone(), b, clock)
        .accept(&accept_request(seed, &share))
        .await?;
    Ok(())
}

/// The state an untroubled run reaches from the seed world.
async fn reference(seed: u64) -> EndState {
    let seed = SeedWorld::new(seed).unwrap();
    let owner = Faulty::new(seed.world.client(&seed.owner).unwrap(), Faults::none(0));
    run(&seed, &owner, Duration::ZERO).await.unwrap();
    end_state(&seed.world).await
}

/// Reruns the flow without faults after a failed run, and checks that it
/// reaches the reference state: whatever the failed run left, the rerun
/// adopted, so nothing was orphaned.
async fn recover(seed: &SeedWorld, faulty: &Faulty, expected: &EndState, what: &str) {
    faulty.set_faults(Faults::none(0));
    seed.world.advance(Duration::from_secs(600));
    run(seed, faulty, Duration::ZERO)
        .await
        .unwrap_or_else(|err| panic!("{what}: the rerun failed: {err}"));
    let got = end_state(&seed.world).await;
    assert_eq!(&got, expected, "{what}: the rerun's end state");
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

#[tokio::test(start_paused = true)]
async fn a_thousand_faulty_seed_flows_end_correct_or_fail_cleanly() {
    const RUNS: u64 = 1000;
    let expected = reference(1).await;
    assert_eq!(expected.keys, vec![Some(KEY_ALIAS.to_owned())]);
    assert_eq!(expected.running, 0);
    assert_eq!(expected.target_images.len(), 1);
    let mut correct = 0;
    let mut failed: BTreeMap<String, usize> = BTreeMap::new();
    let mut tally = FaultTally::default();
    for n in 0..RUNS {
        let seed = SeedWorld::new(1).unwrap();
        let faults = faults_for(n);
        let settle = faults.visibility_delay;
        let mut knobs = seed.world.knobs();
        knobs.grant_propagation_delay = Duration::from_secs(n % 7 * 20);
        knobs.record_calls = false;
        seed.world.set_knobs(knobs);
        let faulty = Faulty::new(seed.world.client(&seed.owner).unwrap(), faults);
        let outcome = run(&seed, &faulty, settle).await;
        tally += faulty.tally();
        match outcome {
            Ok(()) => {
                correct += 1;
                let got = end_state(&seed.world).await;
                assert_eq!(got, expected, "run {n} succeeded in a wrong state");
            }
            Err(err) => {
                let code = err.code().unwrap_or("-").to_owned();
                let text = err.to_string();
                let what = if text.contains("the copy failed") {
                    "every copy failed"
                } else if text.contains("at launch") {
                    "the smoke instance terminated at launch"
                } else {
                    "a call failed"
                };
                *failed
                    .entry(format!("{what}: {} ({code})", err.kind()))
                    .or_default() += 1;
                recover(&seed, &faulty, &expected, &format!("run {n}: {err}")).await;
            }
        }
    }
    let failures: usize = failed.values().sum();
    eprintln!(
        "{RUNS} fault-injected seed flows: {correct} correct, {failures} failed cleanly and recovered on a rerun"
    );
    for (why, count) in &failed {
        eprintln!("  failed: {count} × {why}");
    }
    eprintln!(
        "  faults injected: {} throttled, {} 5xx before acting, {} lost answers, {} reads that missed something new, {} failed copies",
        tally.throttled, tally.server_errors, tally.lost_answers, tally.hidden, tally.failed_copies
    );
    assert_eq!(correct + failures, RUNS as usize);
    // Retries must carry most runs through: faults are injected, not fatal.
    assert!(
        correct > RUNS as usize * 3 / 4,
        "only {correct} of {RUNS} runs succeeded"
    );
    assert!(tally.throttled > 0 && tally.lost_answers > 0 && tally.failed_copies > 0);
    assert!(tally.hidden > 0 && tally.server_errors > 0);
}

#[tokio::test(start_paused = true)]
async fn a_share_stopped_at_any_step_boundary_resumes_to_the_same_end() {
    let expected = reference(1).await;
    // How many writes an untroubled share makes.
    let writes = {
        let seed = SeedWorld::new(1).unwrap();
        let before = seed.world.mutating_calls();
        let owner = Arc::new(seed.world.client(&seed.owner).unwrap());
        let clock = Arc::new(seed.world.stepping_clock());
        Flow::new(owner.clone(), owner, clock)
            .share(&seed.share_request())
            .await
            .unwrap();
        seed.world.mutating_calls() - before
    };
    assert!(writes >= 6, "the seed share makes {writes} writes");
    for stop in 0..writes {
        let seed = SeedWorld::new(1).unwrap();
        let faulty = Faulty::new(
            seed.world.client(&seed.owner).unwrap(),
            Faults {
                crash_after: Some(stop),
                ..Faults::none(0)
            },
        );
        let clock = Arc::new(seed.world.stepping_clock());
        let a = Arc::new(faulty.clone());
        let stopped = Flow::new(a.clone(), a, clock)
            .share(&seed.share_request())
            .await;
        assert!(
            stopped.is_err(),
            "a share stopped after {stop} of {writes} writes cannot finish"
        );
        recover(
            &seed,
            &faulty,
            &expected,
            &format!("stopped after {stop} of {writes} writes"),
        )
        .await;
    }
}

/// The target's accept (a smoke launch, then a copy under its default key)
/// stopped after each of its writes (`RunInstances`, `TerminateInstances`,
/// `CopyImage`) and run again: the rerun terminates the smoke instance the
/// stopped run left running (by its `amishare:smoke-test` tag) and reaches
/// the state an untroubled run reaches, with no instance left running.
#[tokio::test(start_paused = true)]
async fn an_accept_stopped_at_any_step_boundary_resumes_to_the_same_end() {
    let expected = reference(1).await;
    assert_eq!(expected.running, 0);
    let share = |seed: &SeedWorld| {
        let owner = Arc::new(seed.world.client(&seed.owner).unwrap());
        let clock = Arc::new(seed.world.stepping_clock());
        let request = seed.share_request();
        async move {
            Flow::new(owner.clone(), owner, clock)
                .share(&request)
                .await
                .unwrap()
        }
    };
    // How many writes an untroubled accept makes.
    let writes = {
        let seed = SeedWorld::new(1).unwrap();
        let shared = share(&seed).await;
        let before = seed.world.mutating_calls();
        let target = Arc::new(seed.world.client(&seed.target).unwrap());
        Flow::new(
            target.clone(),
            target,
            Arc::new(seed.world.stepping_clock()),
        )
        .accept(&accept_request(&seed, &shared))
        .await
        .unwrap();
        seed.world.mutating_calls() - before
    };
    assert!(writes >= 3, "the accept makes {writes} writes");
    for stop in 0..writes {
        let seed = SeedWorld::new(1).unwrap();
        let shared = share(&seed).await;
        let faulty = Faulty::new(
            seed.world.client(&seed.target).unwrap(),
            Faults {
                crash_after: Some(stop),
                ..Faults::none(0)
            },
        );
        let b = Arc::new(faulty.clone());
        let clock = Arc::new(seed.world.stepping_clock());
        let stopped = Flow::new(b.clone(), b.clone(), clock.clone())
            .accept(&accept_request(&seed, &shared))
            .await;
        assert!(
            stopped.is_err(),
            "an accept stopped after {stop} of {writes} writes cannot finish"
        );
        faulty.set_faults(Faults::none(0));
        seed.world.advance(Duration::from_secs(600));
        Flow::new(b.clone(), b, clock)
            .accept(&accept_request(&seed, &shared))
            .await
            .unwrap_or_else(|err| panic!("stopped after {stop} writes: the rerun failed: {err}"));
        assert_eq!(
            end_state(&seed.world).await,
            expected,
            "stopped after {stop} of {writes} writes: the rerun's end state"
        );
    }
}

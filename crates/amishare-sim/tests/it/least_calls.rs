//! A share makes exactly the least mutating calls AWS's limits allow it, and
//! a rerun none (`least_calls/scenario.rs` derives the least).

mod scenario;

use amishare_core::ErrorKind;

use self::scenario::{differences, run, tally, Key, Scenario};

/// Snapshots S of the shares that complete.
const SNAPSHOTS: [u32; 2] = [1, 4];
/// Target accounts N of the shares that complete: 480 is near the most one
/// key policy can name (66 bytes an account under KMS's 32,768).
const ACCOUNTS: [usize; 3] = [1, 10, 480];
/// Regions R of the shares that complete.
const REGIONS: [usize; 2] = [1, 3];
/// More accounts than one key policy can name, and than one image may be
/// shared with by default (1,000): the share refuses before any write.
const TOO_MANY: usize = 1_001;

fn scenario(snapshots: u32, accounts: usize, regions: usize, key: Key) -> Scenario {
    Scenario {
        snapshots,
        accounts,
        regions,
        key,
        progress: true,
    }
}

#[tokio::test(start_paused = true)]
async fn a_share_makes_the_least_mutating_calls_and_a_rerun_none() {
    let mut failures = Vec::new();
    println!("| S | N | R | key | share | least | rerun |");
    for key in [Key::Created, Key::Existing] {
        for snapshots in SNAPSHOTS {
            for accounts in ACCOUNTS {
                for regions in REGIONS {
                    let scenario = scenario(snapshots, accounts, regions, key);
                    let run = run(scenario).await;
                    let least = scenario.least();
                    println!(
                        "| {snapshots} | {accounts} | {regions} | {key:?} | {} | {} | {} |",
                        tally(&run.calls).values().sum::<usize>(),
                        least.values().sum::<usize>(),
                        tally(&run.rerun_calls).values().sum::<usize>(),
                    );
                    let mut wrong = differences(&least, &run.calls);
                    wrong.extend(
                        differences(&Default::default(), &run.rerun_calls)
                            .into_iter()
                            .map(|d| format!("rerun: {d}")),
                    );
                    if let Err(err) = run.share.as_ref().and(run.rerun.as_ref()) {
                        wrong.push(format!("failed: {err}"));
                    }
                    // Nothing is granted before the copy is there to verify.
                    let copy = scenario.copy_time(&run.world.knobs());
                    if run.share_time < copy {
                        wrong.push(format!(
                            "answered after {:?}, before its copy",
                            run.share_time
                        ));
                    }
                    if !wrong.is_empty() {
                        failures.push(format!("{scenario:?}:\n  {}", wrong.join("\n  ")));
                    }
                }
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[tokio::test(start_paused = true)]
async fn a_share_with_more_accounts_than_a_key_policy_holds_writes_nothing() {
    for key in [Key::Created, Key::Existing] {
        let scenario = scenario(2, TOO_MANY, 2, key);
        let run = run(scenario).await;
        for (what, answer, calls) in [
            ("share", &run.share, &run.calls),
            ("rerun", &run.rerun, &run.rerun_calls),
        ] {
            let err = answer
                .as_ref()
                .expect_err("the key policy cannot hold the targets");
            assert_eq!(err.kind(), ErrorKind::InvalidInput, "{key:?} {what}: {err}");
            assert!(
                err.message().contains("32768 bytes"),
                "{key:?} {what}: {err}"
            );
            assert_eq!(tally(calls), Default::default(), "{key:?} {what}");
        }
    }
}

/// The checker itself: a log with any one mutating call taken out, or made
/// twice, differs from the least, in that call's region and operation.
#[tokio::test(start_paused = true)]
async fn the_check_sees_any_mutating_call_skipped_or_doubled() {
    let scenario = scenario(2, 3, 2, Key::Created);
    let run = run(scenario).await;
    let least = scenario.least();
    assert_eq!(differences(&least, &run.calls), Vec::<String>::new());
    let mutating: Vec<usize> = (0..run.calls.len())
        .filter(|&i| run.calls[i].mutating)
        .collect();
    assert_eq!(mutating.len(), least.values().sum::<usize>());
    for &i in &mutating {
        let call = &run.calls[i];
        let named = format!(
            "{} {}: made",
            call.region.as_ref().expect("a region"),
            call.operation
        );
        let mut skipped = run.calls.clone();
        skipped.remove(i);
        let mut doubled = run.calls.clone();
        doubled.insert(i, call.clone());
        for (how, calls) in [("skipped", skipped), ("doubled", doubled)] {
            let found = differences(&least, &calls);
            assert!(
                found.len() == 1 && found[0].starts_with(&named),
                "{named} {how}: {found:?}"
            );
        }
    }
    // Reads are not counted.
    let mut reads = run.calls.clone();
    reads.retain(|c| c.mutating);
    assert_eq!(differences(&least, &reads), Vec::<String>::new());
}

//! What one share costs on the simulation, in calls and in virtual time,
//! printed as Markdown tables of exact figures (the simulation is
//! deterministic): `cargo bench -p amishare-sim --bench fanout`.
//!
//! Every scenario shares one image of S snapshots (8 GiB each, unencrypted,
//! so every region needs an encrypted copy, the source region too) with N
//! accounts in R regions, with create-volume permission
//! (`tests/it/least_calls/scenario.rs`, which the least-calls test runs too).
//!
//! **Mutating calls.** The simulation counts them, for the share and for an
//! immediate rerun of it, next to the least AWS's documented limits allow
//! (`Scenario::least`: per region one `CopyImage`, ⌈N / 10,000⌉
//! `ModifyImageAttribute`, S × ⌈N / 500⌉ `ModifySnapshotAttribute`, and
//! `CreateKey` and `CreateAlias` for a created key or one `PutKeyPolicy` for
//! an existing one; 0 for a rerun, and for a share with more accounts than
//! one key policy can name). The bench exits with an error when any count
//! differs from the least, by region and operation.
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

#[path = "../tests/it/least_calls/scenario.rs"]
mod scenario;

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::time::Duration;

use amishare_core::Region;
use amishare_sim::CallRecord;

use crate::scenario::{differences, run, tally, Key, Run, Scenario};

/// The interval of the fixed waiter the wait is compared with.
const FIXED_INTERVAL: Duration = Duration::from_secs(15);
/// Target accounts of the call tables: 480 is near the most one key policy
/// can name.
const ACCOUNTS: [usize; 3] = [1, 10, 480];
/// More accounts than one key policy can name.
const TOO_MANY: usize = 1_001;

/// One copy's wait, from the call log.
struct Wait {
    polls: usize,
    progress_reads: usize,
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
    let mut wrong = Vec::new();

    writeln!(out, "### Mutating calls of one share, key created\n").unwrap();
    writeln!(
        out,
        "| snapshots S | accounts N | regions R | share | least R×(1+⌈N/10,000⌉+S×⌈N/500⌉+2) | rerun |"
    )
    .unwrap();
    writeln!(out, "|---:|---:|---:|---:|---:|---:|").unwrap();
    for snapshots in [1, 4, 8] {
        for accounts in ACCOUNTS {
            for regions in [1, 3, 5] {
                let scenario = Scenario {
                    snapshots,
                    accounts,
                    regions,
                    key: Key::Created,
                    progress: true,
                };
                let outcome = runtime.block_on(run(scenario));
                check(&scenario, &outcome, &mut wrong);
                writeln!(
                    out,
                    "| {snapshots} | {accounts} | {regions} | {} | {} | {} |",
                    mutating(&outcome.calls),
                    scenario.least().values().sum::<usize>(),
                    mutating(&outcome.rerun_calls),
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
        "| accounts N | regions R | share | least R×(1+⌈N/10,000⌉+S×⌈N/500⌉+1) | rerun | calls |"
    )
    .unwrap();
    writeln!(out, "|---:|---:|---:|---:|---:|---|").unwrap();
    for accounts in ACCOUNTS {
        for regions in [1, 3, 5] {
            let scenario = Scenario {
                snapshots: 4,
                accounts,
                regions,
                key: Key::Existing,
                progress: true,
            };
            let outcome = runtime.block_on(run(scenario));
            check(&scenario, &outcome, &mut wrong);
            let mut by_operation: BTreeMap<&str, usize> = BTreeMap::new();
            for ((_, operation), n) in tally(&outcome.calls) {
                *by_operation.entry(operation).or_default() += n;
            }
            let calls: Vec<String> = by_operation
                .iter()
                .map(|(op, n)| format!("{op} {n}"))
                .collect();
            writeln!(
                out,
                "| {accounts} | {regions} | {} | {} | {} | {} |",
                mutating(&outcome.calls),
                scenario.least().values().sum::<usize>(),
                mutating(&outcome.rerun_calls),
                calls.join(", ")
            )
            .unwrap();
        }
    }

    writeln!(
        out,
        "\n### More accounts than one key policy can name (S = 4, R = 3)\n"
    )
    .unwrap();
    writeln!(out, "| key | accounts N | share | least | answer |").unwrap();
    writeln!(out, "|---|---:|---:|---:|---|").unwrap();
    for key in [Key::Created, Key::Existing] {
        let scenario = Scenario {
            snapshots: 4,
            accounts: TOO_MANY,
            regions: 3,
            key,
            progress: true,
        };
        let outcome = runtime.block_on(run(scenario));
        let answer = match &outcome.share {
            Ok(_) => {
                wrong.push(format!(
                    "{scenario:?}: shared with more accounts than a key policy holds"
                ));
                "shared".to_owned()
            }
            // The refusal, without the key's name.
            Err(err) => err
                .message()
                .rsplit(": ")
                .next()
                .unwrap_or_default()
                .to_owned(),
        };
        wrong.extend(
            differences(&Default::default(), &outcome.calls)
                .into_iter()
                .map(|d| format!("{scenario:?}: {d}")),
        );
        writeln!(
            out,
            "| {key:?} | {TOO_MANY} | {} | 0 | {answer} |",
            mutating(&outcome.calls),
        )
        .unwrap();
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
            let waits = |outcome: &Run| -> Vec<Wait> {
                scenario(true)
                    .regions()
                    .iter()
                    .map(|r| wait_of(&outcome.calls, r))
                    .collect()
            };
            let (with_waits, without_waits) = (waits(&with), waits(&without));
            let copy = scenario(true).copy_time(&with.world.knobs());
            let fixed = fixed_polls(copy);
            let fixed_late = FIXED_INTERVAL * (fixed as u32 - 1) - copy;
            writeln!(
                out,
                "| {snapshots} | {regions} | {} | {} | {} | {} | {} | {fixed} | {} | {} | {} | {} |",
                seconds(copy),
                seconds(with.share_time),
                late_percent(with.share_time.saturating_sub(copy), copy),
                range(with_waits.iter().map(|w| w.polls)),
                range(with_waits.iter().map(|w| w.progress_reads)),
                late_percent(fixed_late, copy),
                seconds(without.share_time),
                late_percent(without.share_time.saturating_sub(copy), copy),
                range(without_waits.iter().map(|w| w.polls)),
            )
            .unwrap();
        }
    }
    print!("{out}");
    if !wrong.is_empty() {
        eprintln!("not the least mutating calls:\n{}", wrong.join("\n"));
        std::process::exit(1);
    }
}

/// How many of `calls` mutate.
fn mutating(calls: &[CallRecord]) -> usize {
    calls.iter().filter(|c| c.mutating).count()
}

/// Notes every way a share's or its rerun's calls differ from the least.
fn check(scenario: &Scenario, outcome: &Run, wrong: &mut Vec<String>) {
    if let Err(err) = outcome.share.as_ref().and(outcome.rerun.as_ref()) {
        wrong.push(format!("{scenario:?}: {err}"));
    }
    let share = differences(&scenario.least(), &outcome.calls);
    let rerun = differences(&Default::default(), &outcome.rerun_calls);
    for difference in share {
        wrong.push(format!("{scenario:?}: {difference}"));
    }
    for difference in rerun {
        wrong.push(format!("{scenario:?} rerun: {difference}"));
    }
}

//! `cargo xtask first-run`: the README's first command, as a newcomer runs
//! it on a fresh clone, measured.
//!
//! It runs `cargo run -p amishare-cli --no-default-features -- demo` with a
//! cold, temporary target directory (`target/first-run`, removed before and
//! after), after an untimed `cargo fetch`, so what is measured is the build
//! and the demo, not downloads. It reports the wall time and two peaks of
//! memory: the largest single process (`getrusage(RUSAGE_CHILDREN)`'s
//! `ru_maxrss`, as `/usr/bin/time -v` reports it), and the sum of every
//! process of the build at once, sampled from `/proc` every 100 ms (on
//! Linux), which is what a machine must hold. It fails when the demo does
//! not finish, when any `aws-*` crate was compiled, or when the time or the
//! summed peak passes its budget (90 s and 2048 MiB unless told otherwise).
//! The time budget holds for a machine of its own: when the 1-minute load
//! average before the run is at or above the number of cores (other builds
//! share it), the time is printed with the load but not held to the budget.

use std::{
    collections::BTreeMap,
    ffi::OsString,
    fs,
    path::Path,
    process::{Command, Stdio},
    sync::{
        atomic::{AtomicBool, Ordering},
        Arc,
    },
    thread,
    time::{Duration, Instant},
};

use anyhow::{format_err, Context};

use crate::cargo;

/// The command measured: the README's first command.
const COMMAND: [&str; 6] = [
    "run",
    "-p",
    "amishare-cli",
    "--no-default-features",
    "--",
    "demo",
];

/// What the README promises a newcomer on 2 cores.
const DEFAULT_MAX_SECONDS: u64 = 90;
const DEFAULT_MAX_MIB: u64 = 2048;

/// Budgets and options of one run.
struct Options {
    max_seconds: u64,
    max_mib: u64,
    keep: bool,
}

/// Builds and runs the demo from a cold target directory and reports what it took.
pub(crate) fn run(root: &Path, args: &[OsString]) -> anyhow::Result<()> {
    let options = parse_args(args)?;
    let target = root.join("target").join("first-run");
    remove(&target)?;
    let fetched = Command::new(cargo())
        .arg("fetch")
        .current_dir(root)
        .status()
        .context("running cargo fetch")?;
    if !fetched.success() {
        return Err(format_err!("cargo fetch failed: {fetched}"));
    }
    let (load, busy) = load_average();
    eprintln!(
        "first-run: cargo {} (target directory {}, load average {load})",
        COMMAND.join(" "),
        target.display()
    );
    let started = Instant::now();
    let mut child = Command::new(cargo())
        .args(COMMAND)
        .current_dir(root)
        .env("CARGO_TARGET_DIR", &target)
        .env_remove("RUSTFLAGS")
        .env_remove("CARGO_BUILD_RUSTFLAGS")
        .env_remove("RUSTC_WRAPPER")
        .env_remove("CARGO_BUILD_RUSTC_WRAPPER")
        .stdout(Stdio::piped())
        .spawn()
        .context("starting cargo run")?;
    let sampler = Sampler::start(child.id());
    let mut stdout = String::new();
    if let Some(mut out) = child.stdout.take() {
        std::io::Read::read_to_string(&mut out, &mut stdout).context("reading the demo")?;
    }
    let status = child.wait().context("waiting for cargo run")?;
    let wall = started.elapsed();
    let summed = sampler.stop();
    let largest = largest_child_kib()?;
    let aws = aws_crates_built(&target)?;
    if !options.keep {
        remove(&target)?;
    }
    println!(
        "first-run: `cargo {}` from a cold target directory: {:.1} s wall, peak memory {} (all processes at once, sampled from /proc every 100 ms), largest process {} (getrusage RUSAGE_CHILDREN max RSS); load average before {load}, {} cores",
        COMMAND.join(" "),
        wall.as_secs_f64(),
        summed.map_or_else(|| "not sampled (no /proc)".to_owned(), mib),
        mib(largest),
        thread::available_parallelism().map_or(0, |n| n.get()),
    );
    if !status.success() {
        return Err(format_err!("the demo failed: {status}\n{stdout}"));
    }
    if !stdout.contains("Done in") {
        return Err(format_err!("the demo did not report its end:\n{stdout}"));
    }
    if !aws.is_empty() {
        return Err(format_err!(
            "the sim-only build compiled AWS crates: {}",
            aws.join(", ")
        ));
    }
    let mut over = Vec::new();
    if busy && options.max_seconds > 0 && wall > Duration::from_secs(options.max_seconds) {
        eprintln!(
            "first-run: {:.1} s is over the budget of {} s, not held to it: the machine was busy (load average {load})",
            wall.as_secs_f64(),
            options.max_seconds
        );
    } else if options.max_seconds > 0 && wall > Duration::from_secs(options.max_seconds) {
        over.push(format!(
            "{:.1} s is over the budget of {} s",
            wall.as_secs_f64(),
            options.max_seconds
        ));
    }
    let peak = summed.unwrap_or(largest);
    if options.max_mib > 0 && peak > options.max_mib * 1024 {
        over.push(format!(
            "{} is over the budget of {} MiB",
            mib(peak),
            options.max_mib
        ));
    }
    if over.is_empty() {
        Ok(())
    } else {
        Err(format_err!(
            "the first run is over budget: {} (load average before: {load})",
            over.join("; ")
        ))
    }
}

fn parse_args(args: &[OsString]) -> anyhow::Result<Options> {
    let mut options = Options {
        max_seconds: DEFAULT_MAX_SECONDS,
        max_mib: DEFAULT_MAX_MIB,
        keep: false,
    };
    let mut args = args.iter();
    while let Some(arg) = args.next() {
        let arg = arg
            .to_str()
            .ok_or_else(|| format_err!("argument is not valid UTF-8: {arg:?}"))?;
        let mut number = |flag: &str| -> anyhow::Result<u64> {
            let value = args
                .next()
                .and_then(|v| v.to_str())
                .ok_or_else(|| format_err!("{flag} needs a number"))?;
            value
                .parse()
                .map_err(|_| format_err!("{flag} {value:?} is not a whole number"))
        };
        match arg {
            "--max-seconds" => options.max_seconds = number(arg)?,
            "--max-mib" => options.max_mib = number(arg)?,
            "--keep" => options.keep = true,
            _ => {
                return Err(format_err!(
                "unknown argument {arg:?}; first-run takes --max-seconds N, --max-mib N and --keep"
            ))
            }
        }
    }
    Ok(options)
}

fn remove(dir: &Path) -> anyhow::Result<()> {
    match fs::remove_dir_all(dir) {
        Ok(()) => Ok(()),
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(err) => Err(err).with_context(|| format!("removing {}", dir.display())),
    }
}

/// KiB as MiB, for people.
fn mib(kib: u64) -> String {
    format!("{:.0} MiB", kib as f64 / 1024.0)
}

/// The largest resident set of any waited-for descendant, in KiB.
fn largest_child_kib() -> anyhow::Result<u64> {
    let usage = nix::sys::resource::getrusage(nix::sys::resource::UsageWho::RUSAGE_CHILDREN)
        .context("getrusage")?;
    // Linux reports ru_maxrss in KiB.
    Ok(u64::try_from(usage.max_rss()).unwrap_or(0))
}

/// The 1, 5 and 15 minute load averages (or `unknown`), and whether the
/// 1-minute one says other work shares the machine: at or above its cores.
fn load_average() -> (String, bool) {
    let Some(text) = fs::read_to_string("/proc/loadavg").ok() else {
        return ("unknown".to_owned(), false);
    };
    let fields: Vec<&str> = text.split_whitespace().take(3).collect();
    let cores = thread::available_parallelism().map_or(1, |n| n.get()) as f64;
    let busy = fields
        .first()
        .and_then(|one| one.parse::<f64>().ok())
        .is_some_and(|one| one >= cores);
    (fields.join(" "), busy)
}

/// The compiled crates in `target`'s dependency directory whose names start with `aws`.
fn aws_crates_built(target: &Path) -> anyhow::Result<Vec<String>> {
    let deps = target.join("debug").join("deps");
    let mut found = Vec::new();
    for entry in fs::read_dir(&deps).with_context(|| format!("reading {}", deps.display()))? {
        let name = entry?.file_name().to_string_lossy().into_owned();
        let stem = name.strip_prefix("lib").unwrap_or(&name);
        if stem.starts_with("aws_") && name.ends_with(".rlib") {
            found.push(name);
        }
    }
    found.sort();
    Ok(found)
}

/// Samples the summed resident memory of a process and its descendants.
struct Sampler {
    stop: Arc<AtomicBool>,
    handle: thread::JoinHandle<Option<u64>>,
}

impl Sampler {
    fn start(root: u32) -> Sampler {
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        let handle = thread::spawn(move || {
            let mut peak = None;
            while !flag.load(Ordering::Relaxed) {
                if let Some(kib) = tree_rss_kib(root) {
                    peak = Some(peak.map_or(kib, |p: u64| p.max(kib)));
                }
                thread::sleep(Duration::from_millis(100));
            }
            peak
        });
        Sampler { stop, handle }
    }

    /// The highest sum seen, in KiB; `None` without `/proc`.
    fn stop(self) -> Option<u64> {
        self.stop.store(true, Ordering::Relaxed);
        self.handle.join().unwrap_or(None)
    }
}

/// The summed `VmRSS` of `root` and every process under it, in KiB.
fn tree_rss_kib(root: u32) -> Option<u64> {
    let mut parents: BTreeMap<u32, u32> = BTreeMap::new();
    for entry in fs::read_dir("/proc").ok()?.flatten() {
        let Some(pid) = entry.file_name().to_str().and_then(|s| s.parse().ok()) else {
            continue;
        };
        // The parent is the second field after the command name, which
        // ends at the last `)` (names may hold spaces and parentheses).
        let Ok(stat) = fs::read_to_string(format!("/proc/{pid}/stat")) else {
            continue;
        };
        let ppid = stat
            .rsplit_once(')')
            .and_then(|(_, rest)| rest.split_whitespace().nth(1))
            .and_then(|p| p.parse().ok());
        if let Some(ppid) = ppid {
            parents.insert(pid, ppid);
        }
    }
    let in_tree = |mut pid: u32| loop {
        if pid == root {
            return true;
        }
        match parents.get(&pid) {
            Some(&parent) if parent != 0 && parent != pid => pid = parent,
            _ => return false,
        }
    };
    let mut total = 0;
    for &pid in parents.keys() {
        if !in_tree(pid) {
            continue;
        }
        let status = fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
        total += status
            .lines()
            .find_map(|line| line.strip_prefix("VmRSS:"))
            .and_then(|v| v.split_whitespace().next())
            .and_then(|kib| kib.parse::<u64>().ok())
            .unwrap_or(0);
    }
    Some(total)
}

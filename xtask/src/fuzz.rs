//! `cargo xtask fuzz [--seconds N] [TARGET...]`: runs the cargo-fuzz
//! targets in `fuzz/` for a while each and tallies what they did.
//!
//! Installs cargo-fuzz when it is missing. The targets are built without a
//! sanitizer (`--sanitizer none`), which needs no nightly compiler: Rust
//! code is memory-safe, and what the targets look for is panics and failed
//! assertions, which libFuzzer catches either way. Each target's corpus
//! lives in `fuzz/corpus/<target>` (not in git) and is seeded from
//! `testdata/` on first use; a crashing input is written to
//! `fuzz/artifacts/<target>/`.

use std::{
    ffi::OsString,
    fs,
    io::{BufRead, BufReader},
    path::Path,
    process::{Command, Stdio},
    time::Instant,
};

use anyhow::{format_err, Context};

use crate::cargo;

/// The fuzz targets, as named in `fuzz/Cargo.toml`.
const TARGETS: [&str; 3] = ["policy", "ids", "world_file"];

/// How long each target runs unless `--seconds` says otherwise.
const DEFAULT_SECONDS: u64 = 30;

/// Parses the arguments, then installs cargo-fuzz if needed and runs each
/// target; fails if any target crashed.
pub(crate) fn run(root: &Path, args: &[OsString]) -> anyhow::Result<()> {
    let (seconds, targets) = parse_args(args)?;
    ensure_cargo_fuzz()?;
    let mut tallies = Vec::new();
    for target in &targets {
        seed_corpus(root, target)?;
        tallies.push(run_target(root, target, seconds)?);
    }
    println!("== fuzz summary");
    for tally in &tallies {
        println!("{tally}");
    }
    let crashed: Vec<&str> = tallies
        .iter()
        .filter(|tally| tally.crashed)
        .map(|tally| tally.target.as_str())
        .collect();
    if crashed.is_empty() {
        return Ok(());
    }
    Err(format_err!(
        "fuzz target(s) crashed: {}; the inputs are in fuzz/artifacts/",
        crashed.join(", ")
    ))
}

/// What one target did.
struct Tally {
    target: String,
    runs: Option<u64>,
    seconds: u64,
    corpus: usize,
    crashed: bool,
}

impl std::fmt::Display for Tally {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let runs = match self.runs {
            Some(runs) => runs.to_string(),
            None => "?".to_owned(),
        };
        write!(
            f,
            "fuzz {}: {runs} runs in {} s, corpus {} inputs, crashes {}",
            self.target,
            self.seconds,
            self.corpus,
            u8::from(self.crashed)
        )
    }
}

/// `[--seconds N] [TARGET...]`; no target means all of them.
fn parse_args(args: &[OsString]) -> anyhow::Result<(u64, Vec<String>)> {
    let mut seconds = DEFAULT_SECONDS;
    let mut targets = Vec::new();
    let mut args = args.iter();
    while let Some(arg) = args.next() {
        let Some(arg) = arg.to_str() else {
            return Err(format_err!("argument is not valid UTF-8: {arg:?}"));
        };
        let value = match arg.strip_prefix("--seconds") {
            Some("") => match args.next().and_then(|value| value.to_str()) {
                Some(value) => Some(value),
                None => return Err(format_err!("--seconds needs a number of seconds")),
            },
            Some(rest) => rest.strip_prefix('='),
            None => None,
        };
        if let Some(value) = value {
            seconds = match value.parse() {
                Ok(n) if 0 < n => n,
                _ => {
                    return Err(format_err!(
                        "--seconds takes a positive number, got {value:?}"
                    ))
                }
            };
            continue;
        }
        if !TARGETS.contains(&arg) {
            return Err(format_err!(
                "unknown fuzz target `{arg}`; the targets are {}",
                TARGETS.join(", ")
            ));
        }
        targets.push(arg.to_owned());
    }
    if targets.is_empty() {
        targets = TARGETS.iter().map(|target| (*target).to_owned()).collect();
    }
    Ok((seconds, targets))
}

/// Installs cargo-fuzz with `cargo install --locked` unless `cargo fuzz`
/// already runs.
fn ensure_cargo_fuzz() -> anyhow::Result<()> {
    let found = Command::new(cargo())
        .args(["fuzz", "--version"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|status| status.success());
    if found {
        return Ok(());
    }
    println!("== cargo install cargo-fuzz --locked");
    let status = Command::new(cargo())
        .args(["install", "cargo-fuzz", "--locked"])
        .status()
        .context("running cargo install")?;
    if !status.success() {
        return Err(format_err!("cargo install cargo-fuzz failed: {status}"));
    }
    Ok(())
}

/// Copies the target's seeds from `testdata/` into an empty or missing
/// `fuzz/corpus/<target>`.
fn seed_corpus(root: &Path, target: &str) -> anyhow::Result<()> {
    let corpus = root.join("fuzz/corpus").join(target);
    if count_files(&corpus) != 0 {
        return Ok(());
    }
    fs::create_dir_all(&corpus).with_context(|| format!("creating {}", corpus.display()))?;
    let seeds = match target {
        "policy" => {
            let mut seeds = Vec::new();
            for dir in ["key", "identity", "roundtrip", "share"] {
                seeds.extend(json_files(&root.join("testdata/policies").join(dir))?);
            }
            seeds
        }
        "world_file" => json_files(&root.join("testdata/worlds"))?,
        "ids" => {
            let path = root.join("testdata/ids.txt");
            let text =
                fs::read_to_string(&path).with_context(|| format!("reading {}", path.display()))?;
            // `<kind> <ok|err> <input>`: the input is the rest of the line.
            text.lines()
                .filter(|line| !line.starts_with('#'))
                .filter_map(|line| line.splitn(3, ' ').nth(2))
                .enumerate()
                .map(|(index, input)| (format!("ids-{index}"), input.as_bytes().to_vec()))
                .collect()
        }
        _ => Vec::new(),
    };
    for (name, bytes) in &seeds {
        let path = corpus.join(format!("seed-{name}"));
        fs::write(&path, bytes).with_context(|| format!("writing {}", path.display()))?;
    }
    println!("== seeded {} with {} inputs", corpus.display(), seeds.len());
    Ok(())
}

/// The `.json` files of a directory, as (file name, contents).
fn json_files(dir: &Path) -> anyhow::Result<Vec<(String, Vec<u8>)>> {
    let mut files = Vec::new();
    for entry in fs::read_dir(dir).with_context(|| format!("reading {}", dir.display()))? {
        let path = entry?.path();
        if path.extension().is_some_and(|ext| ext == "json") {
            let name = path
                .file_name()
                .map(|name| name.to_string_lossy().into_owned());
            let bytes = fs::read(&path).with_context(|| format!("reading {}", path.display()))?;
            files.push((name.unwrap_or_default(), bytes));
        }
    }
    files.sort();
    Ok(files)
}

/// Runs one target for `seconds`, echoing libFuzzer's output (but for its
/// line per new input) and reading its final statistics.
fn run_target(root: &Path, target: &str, seconds: u64) -> anyhow::Result<Tally> {
    println!("== cargo fuzz run --sanitizer none {target} (for {seconds} s)");
    let corpus = root.join("fuzz/corpus").join(target);
    let mut child = Command::new(cargo())
        .current_dir(root)
        .args([
            "fuzz",
            "run",
            "--sanitizer",
            "none",
            "--debug-assertions",
            target,
        ])
        .arg(&corpus)
        .arg("--")
        .arg(format!("-max_total_time={seconds}"))
        .arg("-print_final_stats=1")
        .stderr(Stdio::piped())
        .spawn()
        .context("running cargo fuzz")?;
    let started = Instant::now();
    let mut runs = None;
    let mut fuzzed_seconds = None;
    let mut artifact = None;
    if let Some(stderr) = child.stderr.take() {
        for line in BufReader::new(stderr).split(b'\n') {
            let line = String::from_utf8_lossy(&line?).into_owned();
            if let Some(n) = line.strip_prefix("stat::number_of_executed_units:") {
                runs = n.trim().parse().ok();
            }
            // `Done 2196737 runs in 11 second(s)`
            if let Some(done) = line.strip_prefix("Done ") {
                fuzzed_seconds = done
                    .split(' ')
                    .nth(3)
                    .and_then(|seconds| seconds.parse().ok());
            }
            if line.contains("Test unit written to") {
                artifact = Some(line.clone());
            }
            if !(line.contains("\tNEW ") || line.contains("\tREDUCE ")) {
                eprintln!("{line}");
            }
        }
    }
    let status = child.wait().context("waiting for cargo fuzz")?;
    let crashed = !status.success();
    if crashed && runs.is_none() && artifact.is_none() {
        return Err(format_err!(
            "cargo fuzz run {target} failed before fuzzing: {status}"
        ));
    }
    Ok(Tally {
        target: target.to_owned(),
        runs,
        seconds: fuzzed_seconds.unwrap_or_else(|| started.elapsed().as_secs()),
        corpus: count_files(&corpus),
        crashed,
    })
}

/// The number of entries in a directory (0 when it does not exist).
fn count_files(dir: &Path) -> usize {
    fs::read_dir(dir).map_or(0, |entries| entries.count())
}

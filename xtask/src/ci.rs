//! `cargo xtask ci`: the checks CI runs, in order, stopping at the first
//! failure. [`steps`] is the one list of them: `.ci/run` only checks the
//! toolchain and runs `cargo xtask ci`, and `cargo xtask ci --list` prints
//! the steps without running them.
//!
//! 1. `cargo fmt --all --check`
//! 2. `cargo clippy --workspace --all-targets -- -D warnings`, then the same
//!    for amishare-aws and amishare-cli with their `localstack` features (the e2e tests)
//!    and for the command without its AWS backend (`--no-default-features`)
//! 3. `cargo test --workspace` (this includes the tidy tests in xtask), then
//!    the command's tests without its AWS backend
//! 4. `cargo xtask first-run`: the README's first command from a cold target
//!    directory, within its time and memory budget
//! 5. `cargo test --doc --workspace`: the READMEs' examples, which are the
//!    crates' front pages
//! 6. `RUSTDOCFLAGS="-D warnings" cargo doc --workspace --no-deps`
//! 7. `cargo build --workspace --examples`, then each example in
//!    [`RUNNABLE_EXAMPLES`] runs to success (the others act on AWS)
//! 8. `cargo package --offline` of every published crate (see [`package`])
//! 9. `cargo xtask fuzz --seconds 15`: a short run of each fuzz target
//! 10. `cargo xtask e2e`: amishare-aws against LocalStack (needs Python 3.12+)
//! 11. `cargo deny check bans licenses sources`, only when `cargo deny --version`
//!     succeeds; otherwise the step is skipped with the reason printed.
//!
//! The advisories check is left out because it needs the advisory database
//! from the network.

use std::ffi::OsString;

use anyhow::format_err;
use xshell::{cmd, Shell};

use crate::cargo;

/// What a step does, given the shell (at the repository root) and cargo.
type Action = Box<dyn Fn(&Shell, &OsString) -> anyhow::Result<()>>;

/// One CI step: the command it runs, as listed and reported, and how.
pub(crate) struct Step {
    /// The command, as a user would type it.
    pub(crate) name: String,
    action: Action,
}

impl Step {
    /// A step that runs cargo with the arguments after `cargo ` in `name`,
    /// and with `env` set.
    fn cargo(name: &str, env: &'static [(&'static str, &'static str)]) -> Step {
        let args = cargo_args(name);
        let shown = name.to_owned();
        Step {
            name: name.to_owned(),
            action: Box::new(move |sh, cargo| {
                let args = &args;
                let mut command = cmd!(sh, "{cargo} {args...}");
                for (key, value) in env {
                    command = command.env(key, value);
                }
                command
                    .run()
                    .map_err(|err| format_err!("ci step `{shown}` failed: {err}"))
            }),
        }
    }

    /// A step that runs `action`, whose errors name the step.
    fn task(
        name: &str,
        action: impl Fn(&Shell, &OsString) -> anyhow::Result<()> + 'static,
    ) -> Step {
        let shown = name.to_owned();
        Step {
            name: name.to_owned(),
            action: Box::new(move |sh, cargo| {
                action(sh, cargo).map_err(|err| format_err!("ci step `{shown}` failed: {err:#}"))
            }),
        }
    }
}

/// The arguments after `cargo` in a step's command, without the
/// environment assignments before it (which the step sets itself).
pub(crate) fn cargo_args(command: &str) -> Vec<String> {
    command
        .split_whitespace()
        .skip_while(|word| *word != "cargo")
        .skip(1)
        .map(str::to_owned)
        .collect()
}

/// Every CI step, in order: the one list `cargo xtask ci` runs and lists.
pub(crate) fn steps() -> Vec<Step> {
    let mut steps = vec![
        Step::cargo("cargo fmt --all --check", &[]),
        Step::cargo("cargo clippy --workspace --all-targets -- -D warnings", &[]),
        Step::cargo(
            "cargo clippy -p amishare-aws -p amishare-cli --all-targets --features amishare-aws/localstack,amishare-cli/localstack -- -D warnings",
            &[],
        ),
        Step::cargo(
            "cargo clippy -p amishare-cli --no-default-features --all-targets -- -D warnings",
            &[],
        ),
        Step::cargo("cargo test --workspace", &[]),
        // The command without its AWS backend: the simulation, the demo, sim serve.
        Step::cargo("cargo test -p amishare-cli --no-default-features", &[]),
        Step::task("cargo xtask first-run", |_, _| {
            crate::first_run::run(&crate::project_root(), &[])
        }),
        Step::cargo("cargo test --doc --workspace", &[]),
        Step::cargo(
            "RUSTDOCFLAGS=\"-D warnings\" cargo doc --workspace --no-deps",
            &[("RUSTDOCFLAGS", "-D warnings")],
        ),
        Step::cargo("cargo build --workspace --examples", &[]),
    ];
    // The examples the workspace build just made, run as `cargo run -p
    // PACKAGE --example NAME` would run them: `cargo run` would build them
    // again with the features of their package alone, which differ from the
    // workspace's and so rebuild the AWS SDK (minutes, 8 GB) for nothing.
    for (package, example) in RUNNABLE_EXAMPLES {
        let binary = crate::project_root()
            .join("target/debug/examples")
            .join(example);
        steps.push(Step::task(
            &format!("{package} example {example}"),
            move |sh, _| Ok(cmd!(sh, "{binary}").run()?),
        ));
    }
    steps.push(Step::task(
        "cargo package --offline (the published crates)",
        |sh, cargo| {
            for (package, example) in AWS_EXAMPLES {
                eprintln!("built, not run (it acts on AWS): {package} example {example}");
            }
            package(sh, cargo)
        },
    ));
    steps.push(Step::task("cargo xtask fuzz --seconds 15", |_, _| {
        crate::fuzz::run(&crate::project_root(), &["--seconds".into(), "15".into()])
    }));
    steps.push(Step::task("cargo xtask e2e", |_, _| {
        crate::e2e::run(&crate::project_root())
    }));
    steps.push(Step::task(
        "cargo deny check bans licenses sources (when cargo-deny is installed)",
        |sh, cargo| {
            match cargo_deny_missing(sh, cargo) {
                None => cmd!(sh, "{cargo} deny check bans licenses sources").run()?,
                Some(reason) => eprintln!(
                    "skipped `cargo deny check bans licenses sources`: {reason}; \
                     install it with `cargo install cargo-deny --locked`"
                ),
            }
            Ok(())
        },
    ));
    steps
}

/// The steps' commands, one a line, as `cargo xtask ci --list` prints them.
pub(crate) fn list() -> String {
    steps()
        .iter()
        .map(|step| format!("{}\n", step.name))
        .collect()
}

/// Runs every CI step in order and returns an error naming the first step that fails.
pub(crate) fn run(sh: &Shell) -> anyhow::Result<()> {
    let cargo = cargo();
    for step in steps() {
        eprintln!("== {}", step.name);
        (step.action)(sh, &cargo)?;
    }
    eprintln!("ci: all steps passed");
    Ok(())
}

/// The examples CI runs, by package: each must exit 0. Every other example
/// (`crates/*/examples/*.rs`) acts on AWS and is only built.
pub(crate) const RUNNABLE_EXAMPLES: &[(&str, &str)] = &[
    ("amishare-sim", "own_automation"),
    ("amishare-aws", "serve_to_sdk"),
];

/// The examples that only build, since they act on real AWS accounts.
pub(crate) const AWS_EXAMPLES: &[(&str, &str)] = &[("amishare-aws", "share_on_aws")];

/// The published crates whose packages are built alone, in dependency order.
const VERIFIED: &[&str] = &[
    "amishare-policy",
    "amishare-core",
    "amishare-sim",
    "amishare-conformance",
    "amishare-serve",
];

/// The published crates that link the AWS SDK, packaged without the build
/// of the packaged crate: that build happens outside the workspace's
/// profile, so it compiles the SDK once more from scratch, which took
/// 12 min 6 s of wall time (460 s of CPU) and 8.3 GB of peak memory on
/// the 2-core CI machine (`/usr/bin/time -v cargo package --offline -p
/// amishare-aws …`, a cold run), while every other step already builds
/// their sources in the workspace.
const UNVERIFIED: &[&str] = &["amishare-aws", "amishare-cli"];

/// `cargo package --offline` of every published crate (xtask is not):
/// cargo packages crates that depend on each other together, resolving
/// them to the ones just packaged. The crates in [`VERIFIED`] are then
/// built from their packages alone; all are packaged again with
/// `--no-verify`, for those in [`UNVERIFIED`].
pub(crate) fn package(sh: &Shell, cargo: &OsString) -> anyhow::Result<()> {
    let args = |names: &[&str]| -> Vec<String> {
        names
            .iter()
            .flat_map(|name| ["-p".to_owned(), (*name).to_owned()])
            .collect()
    };
    forget_packaged_sources()?;
    let verified = args(VERIFIED);
    // Cargo takes a registry crate's build for that version's, whatever its
    // sources: the builds of the last run's packages go too (and with them
    // the workspace's builds of these crates, rebuilt in seconds).
    let clean = verified.clone();
    step(&format!("cargo clean {}", verified.join(" ")), || {
        cmd!(sh, "{cargo} clean {clean...}").run()
    })?;
    step(
        &format!("cargo package --offline {}", verified.join(" ")),
        || cmd!(sh, "{cargo} package --offline {verified...}").run(),
    )?;
    let all = args(&[VERIFIED, UNVERIFIED].concat());
    step(
        &format!("cargo package --offline --no-verify {}", all.join(" ")),
        || cmd!(sh, "{cargo} package --offline --no-verify {all...}").run(),
    )
}

/// Removes the sources cargo extracted from its temporary registry of the
/// crates it packaged last time (`$CARGO_HOME/registry/src/*/amishare-*`):
/// a local registry unpacks a crate only where its directory does not exist
/// yet, so the packages of this version would otherwise be verified against
/// the sources of an earlier run.
fn forget_packaged_sources() -> anyhow::Result<()> {
    let cargo_home = match std::env::var_os("CARGO_HOME") {
        Some(home) => std::path::PathBuf::from(home),
        None => match std::env::var_os("HOME") {
            Some(home) => std::path::PathBuf::from(home).join(".cargo"),
            None => return Ok(()),
        },
    };
    let Ok(registries) = std::fs::read_dir(cargo_home.join("registry/src")) else {
        return Ok(());
    };
    for registry in registries.flatten() {
        let Ok(crates) = std::fs::read_dir(registry.path()) else {
            continue;
        };
        for krate in crates.flatten() {
            if krate.file_name().to_string_lossy().starts_with("amishare-") {
                std::fs::remove_dir_all(krate.path()).map_err(|err| {
                    format_err!("cannot remove {}: {err}", krate.path().display())
                })?;
            }
        }
    }
    Ok(())
}

/// Runs one part of a step, turning its failure into an error that names it.
fn step(name: &str, f: impl FnOnce() -> xshell::Result<()>) -> anyhow::Result<()> {
    eprintln!("== {name}");
    f().map_err(|err| format_err!("`{name}` failed: {err}"))
}

/// Returns why cargo-deny cannot be used, or `None` when `cargo deny --version` succeeds.
fn cargo_deny_missing(sh: &Shell, cargo: &OsString) -> Option<String> {
    let output = cmd!(sh, "{cargo} deny --version")
        .quiet()
        .ignore_status()
        .output();
    let output = match output {
        Ok(output) => output,
        Err(err) => return Some(format!("`cargo deny --version` could not run: {err}")),
    };
    if output.status.success() {
        return None;
    }
    let stderr = String::from_utf8_lossy(&output.stderr);
    let first_line = stderr.lines().map(str::trim).find(|line| !line.is_empty());
    let reason = match first_line {
        Some(line) => format!("`cargo deny --version` failed ({}): {line}", output.status),
        None => format!("`cargo deny --version` failed ({})", output.status),
    };
    Some(reason)
}

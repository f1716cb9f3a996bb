//! `cargo xtask ci`: the checks CI runs, in order, stopping at the first failure.
//!
//! 1. `cargo fmt --all --check`
//! 2. `cargo clippy --workspace --all-targets -- -D warnings`, then the same
//!    for amishare-aws and amishare-cli with their `localstack` features (the e2e tests)
//!    and for the command without its AWS backend (`--no-default-features`)
//! 3. `cargo test --workspace` (this includes the tidy tests in xtask), then
//!    the command's tests without its AWS backend
//! 4. `cargo xtask first-run`: the README's first command from a cold target
//!    directory, within its time and memory budget
//! 5. `cargo xtask fuzz --seconds 15`: a short run of each fuzz target
//! 6. `cargo xtask e2e`: amishare-aws against LocalStack (needs Python 3.12+)
//! 7. `cargo deny check bans licenses sources`, only when `cargo deny --version`
//!    succeeds; otherwise the step is skipped with the reason printed.
//!
//! The advisories check is left out because it needs the advisory database
//! from the network.

use std::ffi::OsString;

use anyhow::format_err;
use xshell::{cmd, Shell};

use crate::cargo;

/// Runs every CI step in order and returns an error naming the first step that fails.
pub(crate) fn run(sh: &Shell) -> anyhow::Result<()> {
    let cargo = cargo();

    step("cargo fmt --all --check", || {
        cmd!(sh, "{cargo} fmt --all --check").run()
    })?;
    step(
        "cargo clippy --workspace --all-targets -- -D warnings",
        || {
            cmd!(
                sh,
                "{cargo} clippy --workspace --all-targets -- -D warnings"
            )
            .run()
        },
    )?;
    step(
        "cargo clippy -p amishare-aws -p amishare-cli --all-targets --features amishare-aws/localstack,amishare-cli/localstack -- -D warnings",
        || {
            cmd!(
                sh,
                "{cargo} clippy -p amishare-aws -p amishare-cli --all-targets --features amishare-aws/localstack,amishare-cli/localstack -- -D warnings"
            )
            .run()
        },
    )?;
    step(
        "cargo clippy -p amishare-cli --no-default-features --all-targets -- -D warnings",
        || {
            cmd!(
                sh,
                "{cargo} clippy -p amishare-cli --no-default-features --all-targets -- -D warnings"
            )
            .run()
        },
    )?;
    step("cargo test --workspace", || {
        cmd!(sh, "{cargo} test --workspace").run()
    })?;
    step("cargo test -p amishare-cli --no-default-features", || {
        cmd!(sh, "{cargo} test -p amishare-cli --no-default-features").run()
    })?;
    if let Err(err) = crate::first_run::run(&crate::project_root(), &[]) {
        return Err(format_err!(
            "ci step `cargo xtask first-run` failed: {err:#}"
        ));
    }
    let fuzz_args = ["--seconds".into(), "15".into()];
    if let Err(err) = crate::fuzz::run(&crate::project_root(), &fuzz_args) {
        return Err(format_err!(
            "ci step `cargo xtask fuzz --seconds 15` failed: {err:#}"
        ));
    }
    match crate::e2e::run(&crate::project_root()) {
        Ok(()) => {}
        Err(err) => return Err(format_err!("ci step `cargo xtask e2e` failed: {err:#}")),
    }

    match cargo_deny_missing(sh, &cargo) {
        None => step("cargo deny check bans licenses sources", || {
            cmd!(sh, "{cargo} deny check bans licenses sources").run()
        })?,
        Some(reason) => eprintln!(
            "skipped `cargo deny check bans licenses sources`: {reason}; \
             install it with `cargo install cargo-deny --locked`"
        ),
    }

    eprintln!("ci: all steps passed");
    Ok(())
}

/// Runs one step, turning its failure into an error that names the step.
fn step(name: &str, f: impl FnOnce() -> xshell::Result<()>) -> anyhow::Result<()> {
    match f() {
        Ok(()) => Ok(()),
        Err(err) => Err(format_err!("ci step `{name}` failed: {err}")),
    }
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

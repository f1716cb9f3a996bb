//! Repository automation for amishare, run as `cargo xtask <task>`.
//!
//! Every task is a plain Rust function that drives subprocesses through
//! [`xshell`], or `std::process::Command` where it needs process groups
//! (`e2e`), so no command line is ever handed to a shell. The process
//! always works from the repository root, whatever directory `cargo xtask`
//! was started from.
//!
//! Repository invariants (module docs, dependency rules, whitespace) are not a
//! task: they are `#[test]`s in the `tidy` module, so `cargo test` alone
//! enforces them.

mod ci;
mod e2e;
mod first_run;
mod fuzz;
#[cfg(test)]
mod tidy;
#[cfg(test)]
mod tidy_serve;

use std::{
    env,
    ffi::OsString,
    path::{Path, PathBuf},
    process::ExitCode,
};

use anyhow::format_err;
use xshell::Shell;

/// The text printed by `cargo xtask`, `cargo xtask --help` and `cargo xtask help`.
const HELP: &str = "\
Repository automation for amishare.

Usage: cargo xtask <TASK> [ARGS]

Tasks:
  ci [--list]
          Run the checks CI runs: rustfmt, clippy with -D warnings
          (also of the command without its AWS backend), the workspace
          tests and the sim-only command's, the first run, the docs,
          the examples, the packages, a short fuzz run, the LocalStack
          e2e and, when cargo-deny is installed, `cargo deny check bans
          licenses sources`. `.ci/run` runs this task. With --list,
          print the steps, one a line, without running them.
  e2e     Run amishare-aws against LocalStack, without Docker: find
          Python 3.12+, install LocalStack in target/e2e/venv (once,
          about 90 s), start it on 127.0.0.1, run the e2e tests, print
          a summary, and always stop LocalStack (about 2-3 minutes
          with LocalStack installed).
  first-run [--max-seconds N] [--max-mib N] [--keep]
          Run the README's first command (`cargo run -p amishare-cli
          --no-default-features -- demo`) from a cold target directory
          (target/first-run) and print its wall time and peak memory;
          fails past 90 s or 2048 MiB (0 turns a budget off), or if
          any aws-* crate was built.
  fuzz [--seconds N] [TARGET...]
          Run the cargo-fuzz targets in fuzz/ (policy, ids,
          world_file; all by default) for N seconds each (default
          30) on the stable compiler, seeding each corpus from
          testdata/ on first use; installs cargo-fuzz if missing.
          Prints a tally per target and fails if any crashed.
  help    Print this message (also `--help` or `-h`).

Repository invariants are #[test]s in xtask/src/tidy.rs: `cargo test` runs them.
";

fn main() -> ExitCode {
    match try_main() {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("error: {err:#}");
            ExitCode::FAILURE
        }
    }
}

/// Parses the command line by hand and runs the task named by the first argument.
fn try_main() -> anyhow::Result<()> {
    let mut args = env::args_os().skip(1);
    let task = match args.next() {
        None => {
            print!("{HELP}");
            return Ok(());
        }
        Some(task) => task,
    };
    let task = match task.to_str() {
        Some(task) => task.to_owned(),
        None => return Err(format_err!("task name is not valid UTF-8: {task:?}")),
    };
    let rest: Vec<OsString> = args.collect();

    let sh = Shell::new()?;
    sh.change_dir(project_root());

    match task.as_str() {
        "help" | "--help" | "-h" => {
            no_more_args(&task, &rest)?;
            print!("{HELP}");
            Ok(())
        }
        "ci" => match rest.first().and_then(|arg| arg.to_str()) {
            Some("--list") => {
                no_more_args("ci --list", &rest[1..])?;
                print!("{}", ci::list());
                Ok(())
            }
            _ => {
                no_more_args(&task, &rest)?;
                ci::run(&sh)
            }
        },
        "e2e" => {
            no_more_args(&task, &rest)?;
            e2e::run(&project_root())
        }
        "fuzz" => fuzz::run(&project_root(), &rest),
        "first-run" => first_run::run(&project_root(), &rest),
        _ => Err(format_err!(
            "unknown task `{task}`; run `cargo xtask --help` for the list of tasks"
        )),
    }
}

/// The repository root: the parent of the `xtask` package directory.
fn project_root() -> PathBuf {
    let manifest_dir = Path::new(env!("CARGO_MANIFEST_DIR"));
    match manifest_dir.parent() {
        Some(root) => root.to_path_buf(),
        None => manifest_dir.to_path_buf(),
    }
}

/// The cargo to run: `$CARGO` when set (the one that launched `cargo xtask`),
/// otherwise `cargo` from `PATH`.
fn cargo() -> OsString {
    env::var_os("CARGO").unwrap_or_else(|| OsString::from("cargo"))
}

/// Fails when a task that takes no arguments was given some.
fn no_more_args(task: &str, rest: &[OsString]) -> anyhow::Result<()> {
    match rest.first() {
        None => Ok(()),
        Some(arg) => Err(format_err!(
            "task `{task}` takes no arguments, got {arg:?}; run `cargo xtask --help`"
        )),
    }
}

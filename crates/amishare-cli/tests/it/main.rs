//! End-to-end tests of the `amishare` binary.

mod autoscaling;
#[cfg(feature = "aws")]
mod aws;
mod bad_inputs;
mod commands;
mod concurrency;
mod demo;
mod json;
mod killed;
#[cfg(feature = "localstack")]
mod localstack;
mod promises;
mod reference;
mod serve;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// Runs the binary with `args`.
fn amishare(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_amishare"))
        .args(args)
        .env_remove("RUST_LOG")
        .env_remove("AWS_PROFILE")
        .output()
        .expect("the binary runs")
}

/// The repository's `testdata/`.
fn testdata() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../testdata")
}

/// A copy of the seed world in a fresh directory.
fn seed_world() -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("world.json");
    std::fs::copy(testdata().join("worlds/seed.json"), &path).unwrap();
    (dir, path)
}

/// Runs the binary on the world file as `profile`, in ap-northeast-1.
fn sim(world: &Path, profile: &str, args: &[&str]) -> Output {
    let mut argv = vec![
        "--backend",
        "sim",
        "--world",
        world.to_str().unwrap(),
        "--region",
        "ap-northeast-1",
        "--profile",
        profile,
    ];
    argv.extend_from_slice(args);
    amishare(&argv)
}

/// The stdout of a command that must succeed.
fn ok(out: &Output) -> String {
    let stdout = String::from_utf8(out.stdout.clone()).unwrap();
    assert!(
        out.status.success(),
        "exit {:?}\nstdout:\n{stdout}\nstderr:\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
}

//! End-to-end tests of the `amishare` binary.

mod aws;
mod bad_inputs;
mod commands;
mod demo;
#[cfg(feature = "localstack")]
mod localstack;
mod promises;
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

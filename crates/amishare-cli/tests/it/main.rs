//! End-to-end tests of the `amishare` binary.

mod demo;

use std::process::{Command, Output};

/// Runs the binary with `args`.
fn amishare(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_amishare"))
        .args(args)
        .env_remove("RUST_LOG")
        .output()
        .expect("the binary runs")
}

//! `amishare sim serve` as a user runs it: it serves a world file, this very
//! command reaches it with `--backend aws --endpoint-url` as a principal of
//! the world, and stopping it saves the world.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};

use serde_json::Value;

use crate::{amishare, seed_world};

/// The seed world's access key of a-admin.
const A_ADMIN_KEY: &str = "AKIAAADMINEXAMPLE001";

fn as_principal(endpoint: &str, access_key: &str, args: &[&str]) -> std::process::Output {
    let mut argv = vec![
        "--backend",
        "aws",
        "--endpoint-url",
        endpoint,
        "--region",
        "ap-northeast-1",
    ];
    argv.extend_from_slice(args);
    Command::new(env!("CARGO_BIN_EXE_amishare"))
        .args(&argv)
        .env_clear()
        .env("AWS_ACCESS_KEY_ID", access_key)
        .env("AWS_SECRET_ACCESS_KEY", "unused")
        .env("AWS_CONFIG_FILE", "/nonexistent/config")
        .env("AWS_SHARED_CREDENTIALS_FILE", "/nonexistent/credentials")
        .env("AWS_EC2_METADATA_DISABLED", "true")
        .output()
        .expect("the binary runs")
}

#[test]
fn sim_serve_serves_the_world_to_the_aws_backend_and_saves_it_on_stop() {
    let (_dir, world) = seed_world();
    let mut server = Command::new(env!("CARGO_BIN_EXE_amishare"))
        .args(["sim", "serve", "--world"])
        .arg(&world)
        .args(["--listen", "127.0.0.1:0", "--time-scale", "1000"])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("the server starts");
    let mut line = String::new();
    BufReader::new(server.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let endpoint = line
        .trim()
        .strip_prefix("listening on ")
        .unwrap_or_else(|| panic!("the server says where it listens: {line:?}"))
        .to_owned();

    // The command, on AWS's wire protocols, acting as the world's a-admin:
    // a key made by the served world, and read back.
    let out = as_principal(
        &endpoint,
        A_ADMIN_KEY,
        &["--json", "status", "--key", "alias/nothing-here"],
    );
    assert_eq!(out.status.code(), Some(1), "no such alias yet");
    let out = as_principal(
        &endpoint,
        A_ADMIN_KEY,
        &[
            "--json",
            "share",
            "--instance",
            "i-0c0ffee0123456789",
            "--create-key",
            "alias/cross-ami",
            "--to",
            "222222222222",
            "--dry-run",
        ],
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let plan: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert!(plan.to_string().contains("kms:CreateKey"), "{plan}");
    assert!(
        plan["policy_changes"][0]["after"]
            .as_str()
            .is_some_and(|p| p.contains("arn:aws:iam::222222222222:root")),
        "{plan}"
    );

    // An unknown access key gets AWS's refusal.
    let out = as_principal(
        &endpoint,
        "AKIANOSUCHKEYEXAMPLE",
        &["status", "--key", "alias/cross-ami"],
    );
    assert_eq!(out.status.code(), Some(1));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("UnrecognizedClientException"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    // SIGTERM stops it and saves the world: the account a 12-digit key
    // created is in the file.
    let out = as_principal(&endpoint, "333333333333", &["status", "--key", "alias/x"]);
    assert_eq!(out.status.code(), Some(1));
    let pid = i32::try_from(server.id()).unwrap();
    let killed = Command::new("kill")
        .args(["-TERM", &pid.to_string()])
        .status()
        .unwrap();
    assert!(killed.success());
    let status = server.wait().unwrap();
    assert!(status.success(), "stopped cleanly: {status}");
    let saved: Value = serde_json::from_str(&std::fs::read_to_string(&world).unwrap()).unwrap();
    let accounts: Vec<&str> = saved["accounts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["id"].as_str().unwrap())
        .collect();
    assert!(accounts.contains(&"333333333333"), "{accounts:?}");
}

#[test]
fn sim_serve_refuses_bad_input() {
    let out = amishare(&["sim", "serve"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("--world"));
    let (_dir, world) = seed_world();
    let world = world.to_str().unwrap();
    let out = amishare(&["sim", "serve", "--world", world, "--time-scale", "0.5"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("time scale"));
    let out = amishare(&["sim", "serve", "--world", "/nonexistent/world.json"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("/nonexistent/world.json"));
}

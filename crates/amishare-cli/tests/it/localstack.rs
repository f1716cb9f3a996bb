//! The command on `--backend aws` against LocalStack, as `cargo xtask e2e`
//! runs it (`AMISHARE_LOCALSTACK_URL`): what a user types, over the real wire
//! protocols. LocalStack never encrypts a copy, so `share` must stop at the
//! snapshot-key gate, with exit 1 and the reason.

use std::process::{Command, Output};
use std::time::{SystemTime, UNIX_EPOCH};

use serde_json::Value;

/// Amazon Linux 2023 (x86_64), preloaded by LocalStack in ap-northeast-1.
const IMAGE: &str = "ami-02b76b739f98bb809";

/// Runs the binary as the root of `account` (LocalStack maps a 12-digit
/// access key ID to that account).
fn amishare(account: &str, args: &[&str]) -> Output {
    let endpoint = std::env::var("AMISHARE_LOCALSTACK_URL")
        .expect("AMISHARE_LOCALSTACK_URL names LocalStack (cargo xtask e2e sets it)");
    let mut argv = vec![
        "--backend",
        "aws",
        "--endpoint-url",
        &endpoint,
        "--region",
        "ap-northeast-1",
    ];
    argv.extend_from_slice(args);
    Command::new(env!("CARGO_BIN_EXE_amishare"))
        .args(&argv)
        .env_clear()
        .env("AWS_ACCESS_KEY_ID", account)
        .env("AWS_SECRET_ACCESS_KEY", "test")
        .env("AWS_CONFIG_FILE", "/nonexistent/config")
        .env("AWS_SHARED_CREDENTIALS_FILE", "/nonexistent/credentials")
        .env("AWS_EC2_METADATA_DISABLED", "true")
        .output()
        .expect("the binary runs")
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

#[test]
fn the_command_on_localstack() {
    let stamp = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_millis();
    let planned = format!("alias/amishare-cli-plan-{stamp}");
    let alias = format!("alias/amishare-cli-{stamp}");

    // The owner launches and keeps an instance of a public image, as
    // `accept --launch --keep` does for any image it may launch.
    let out = amishare(
        "111111111111",
        &["--json", "accept", "--image", IMAGE, "--launch", "--keep"],
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    let accepted: Value = serde_json::from_slice(&out.stdout).unwrap();
    let instance = accepted["launch"]["instance"].as_str().unwrap().to_owned();
    println!("cli: accept --launch --keep left {instance} running");

    // A dry run plans the key, its policy and the copy, and creates nothing.
    let out = amishare(
        "111111111111",
        &[
            "--json",
            "--dry-run",
            "share",
            "--instance",
            &instance,
            "--create-key",
            &planned,
            "--to",
            "222222222222",
        ],
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    let plan: Value = serde_json::from_slice(&out.stdout).unwrap();
    let operations: Vec<&str> = plan["calls"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["operation"].as_str().unwrap())
        .collect();
    for operation in [
        "ec2:CreateImage",
        "kms:CreateKey",
        "kms:CreateAlias",
        "ec2:CopyImage",
        "ec2:ModifyImageAttribute",
    ] {
        assert!(operations.contains(&operation), "{operation}: {plan}");
    }
    let out = amishare("111111111111", &["status", "--key", &planned]);
    assert_eq!(out.status.code(), Some(1), "the dry run created {planned}");
    println!("cli: dry run planned {operations:?} and created nothing");

    // The real share: key, policy and encrypted copy are made, and the gate
    // refuses, because LocalStack's copy is not encrypted.
    let out = amishare(
        "111111111111",
        &[
            "share",
            "--instance",
            &instance,
            "--create-key",
            &alias,
            "--to",
            "222222222222",
        ],
    );
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("refusing to share"), "{stderr}");
    println!("cli: share stopped at the snapshot-key gate");

    // The key exists and its policy names the target, as the share wrote it.
    let out = amishare("111111111111", &["--json", "status", "--key", &alias]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let status: Value = serde_json::from_slice(&out.stdout).unwrap();
    let keys = status["keys"].as_object().unwrap();
    assert_eq!(keys.len(), 1, "{status}");
    let key = keys.values().next().unwrap();
    assert!(
        key["amishare_statements"]
            .to_string()
            .contains("arn:aws:iam::222222222222:root"),
        "{status}"
    );

    // The doctor, as the target account on the public image: what it can
    // read passes, what LocalStack does not serve (the default EBS key)
    // stays unknown; nothing is guessed broken.
    let out = amishare("222222222222", &["--json", "doctor", "--image", IMAGE]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out.stderr));
    let report: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(report["verdict"], "unknown", "{report}");
    let findings = report["findings"].as_array().unwrap();
    let verdict_of = |code: &str| -> Vec<&str> {
        findings
            .iter()
            .filter(|f| f["code"] == code)
            .map(|f| f["verdict"].as_str().unwrap())
            .collect()
    };
    assert_eq!(verdict_of("image.found"), ["pass"], "{report}");
    assert_eq!(verdict_of("image.shared"), ["pass"], "{report}");
    // The account root's IAM needs no reading: it may call EC2.
    assert_eq!(verdict_of("iam.ec2-action"), ["pass"], "{report}");
    assert!(findings.iter().all(|f| f["verdict"] != "fail"), "{report}");
    println!(
        "cli: doctor on LocalStack reported {} links",
        findings.len()
    );

    // Bad input never reaches LocalStack.
    let out = amishare(
        "111111111111",
        &[
            "share",
            "--instance",
            &instance,
            "--create-key",
            "cross-ami",
            "--to",
            "222222222222",
        ],
    );
    assert_eq!(out.status.code(), Some(2));
    println!("cli: status read the key policy; bad input exited 2");
}

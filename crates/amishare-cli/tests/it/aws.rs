//! The command on `--backend aws`, against a local HTTP server that answers
//! with recorded EC2, KMS and STS responses (`testdata/replay`): the SDK's
//! serializers and parsers run for real, and no request leaves the machine.

use std::process::{Command, Output};

use wiremock::matchers::{body_string_contains, header, method};
use wiremock::{Mock, MockBuilder, MockServer, ResponseTemplate};

use crate::testdata;

fn query(action: &str) -> MockBuilder {
    Mock::given(method("POST")).and(body_string_contains(format!("Action={action}&")))
}

fn kms(operation: &str) -> MockBuilder {
    Mock::given(method("POST")).and(header(
        "x-amz-target",
        format!("TrentService.{operation}").as_str(),
    ))
}

fn replay(file: &str, content_type: &str) -> ResponseTemplate {
    let body = std::fs::read(testdata().join("replay").join(file)).unwrap();
    ResponseTemplate::new(200).set_body_raw(body, content_type)
}

async fn server() -> MockServer {
    let server = MockServer::start().await;
    let xml = "text/xml";
    let json = "application/x-amz-json-1.1";
    for (action, file) in [
        ("GetCallerIdentity", "sts/get_caller_identity.xml"),
        ("DescribeImages", "ec2/describe_images.xml"),
        ("DescribeImageAttribute", "ec2/describe_image_attribute.xml"),
        (
            "DescribeSnapshotAttribute",
            "ec2/describe_snapshot_attribute.xml",
        ),
    ] {
        query(action)
            .respond_with(replay(file, xml))
            .mount(&server)
            .await;
    }
    // Paged: the first answer carries a token, the second ends the listing.
    query("DescribeSnapshots")
        .and(body_string_contains("NextToken="))
        .respond_with(replay("ec2/describe_snapshots_page2.xml", xml))
        .with_priority(1)
        .mount(&server)
        .await;
    query("DescribeSnapshots")
        .respond_with(replay("ec2/describe_snapshots_page1.xml", xml))
        .with_priority(2)
        .mount(&server)
        .await;
    for (operation, file) in [
        ("DescribeKey", "kms/describe_key.json"),
        ("GetKeyPolicy", "kms/get_key_policy.json"),
        ("ListGrants", "kms/list_grants_page2.json"),
    ] {
        kms(operation)
            .respond_with(replay(file, json))
            .mount(&server)
            .await;
    }
    server
}

/// Runs the binary against `server` with static test credentials.
async fn amishare(server: &MockServer, args: &[&str]) -> Output {
    let mut argv = vec![
        "--backend".to_owned(),
        "aws".to_owned(),
        "--endpoint-url".to_owned(),
        server.uri(),
        "--region".to_owned(),
        "ap-northeast-1".to_owned(),
    ];
    argv.extend(args.iter().map(|a| (*a).to_owned()));
    tokio::task::spawn_blocking(move || {
        Command::new(env!("CARGO_BIN_EXE_amishare"))
            .args(&argv)
            .env_clear()
            .env("AWS_ACCESS_KEY_ID", "AKIDEXAMPLE")
            .env("AWS_SECRET_ACCESS_KEY", "secret")
            .env("AWS_CONFIG_FILE", "/nonexistent/config")
            .env("AWS_SHARED_CREDENTIALS_FILE", "/nonexistent/credentials")
            .env("AWS_EC2_METADATA_DISABLED", "true")
            .output()
            .expect("the binary runs")
    })
    .await
    .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn status_reads_an_image_and_its_key_through_the_sdk() {
    let server = server().await;
    let out = amishare(
        &server,
        &["--json", "status", "--image", "ami-0fedcba9876543210"],
    )
    .await;
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let report: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    let image = &report["images"][0];
    assert_eq!(image["image"], "ami-0fedcba9876543210");
    assert_eq!(image["state"], "available");
    let key = "arn:aws:kms:ap-northeast-1:111111111111:key/1234abcd-12ab-34cd-56ef-1234567890ab";
    assert_eq!(report["keys"][key]["state"], "PendingDeletion", "{report}");
    let statements = &report["keys"][key]["amishare_statements"]["known"];
    assert!(statements.is_array(), "the key policy was read: {report}");
    assert!(
        report["keys"][key]["grants"]["known"].is_array(),
        "{report}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn accept_refuses_a_key_pending_deletion_with_exit_1() {
    let server = server().await;
    let key = "arn:aws:kms:ap-northeast-1:111111111111:key/1234abcd-12ab-34cd-56ef-1234567890ab";
    let out = amishare(
        &server,
        &["accept", "--image", "ami-0fedcba9876543210", "--key", key],
    )
    .await;
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains(key) && stderr.contains("PendingDeletion"),
        "{stderr}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dry_run_share_on_aws_stops_where_the_real_run_would_without_a_write() {
    let server = server().await;
    let out = amishare(
        &server,
        &[
            "share",
            "--image",
            "ami-0fedcba9876543210",
            "--key",
            "arn:aws:kms:ap-northeast-1:111111111111:key/1234abcd-12ab-34cd-56ef-1234567890ab",
            "--to",
            "222222222222",
            "--dry-run",
        ],
    )
    .await;
    let stderr = String::from_utf8_lossy(&out.stderr);
    let requests = server.received_requests().await.unwrap();
    for request in &requests {
        let body = String::from_utf8_lossy(&request.body);
        let target = request
            .headers
            .get("x-amz-target")
            .map(|v| v.to_str().unwrap().to_owned())
            .unwrap_or_default();
        for write in [
            "CopyImage",
            "ModifyImageAttribute",
            "ModifySnapshotAttribute",
            "CreateImage",
        ] {
            assert!(
                !body.contains(&format!("Action={write}&")),
                "{write} was sent: {stderr}"
            );
        }
        assert!(
            !target.contains("PutKeyPolicy") && !target.contains("CreateKey"),
            "{target}"
        );
    }
    // The key is pending deletion: the plan stops there, as the real run would.
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("PendingDeletion"), "{stderr}");
}

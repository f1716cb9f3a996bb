//! `amishare sim serve` as a user runs it: it serves a world file, this very
//! command reaches it with `--backend aws --endpoint-url` as a principal of
//! the world, and stopping it saves the world. While it serves, commands on
//! the file are refused; SIGHUP saves from the start; off loopback it asks
//! for a flag and then for signed requests.

use std::io::{BufRead, BufReader, Read as _, Write as _};
use std::path::Path;
use std::process::{Child, Command, Stdio};

use serde_json::Value;

use crate::{amishare, seed_world};

/// The seed world's access key of a-admin, and its secret.
const A_ADMIN_KEY: &str = "AKIAAADMINEXAMPLE001";
const A_ADMIN_SECRET: &str = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYADMINEXAMPLE";

/// A running `amishare sim serve` and the endpoint it printed.
struct Served {
    child: Child,
    endpoint: String,
}

impl Served {
    /// Serves `world` with these extra arguments; returns once it says
    /// where it listens.
    fn start(world: &Path, args: &[&str]) -> Served {
        let mut child = Command::new(env!("CARGO_BIN_EXE_amishare"))
            .args(["sim", "serve", "--world"])
            .arg(world)
            .args(["--time-scale", "1000"])
            .args(args)
            .env_remove("RUST_LOG")
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("the server starts");
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        let endpoint = line
            .trim()
            .strip_prefix("listening on ")
            .unwrap_or_else(|| panic!("the server says where it listens: {line:?}"))
            .to_owned();
        Served { child, endpoint }
    }

    fn pid(&self) -> String {
        self.child.id().to_string()
    }

    fn signal(&self, signal: &str) {
        let sent = Command::new("kill")
            .args([&format!("-{signal}"), &self.pid()])
            .status()
            .unwrap();
        assert!(sent.success());
    }

    /// Stops it with SIGTERM; returns what it said on stderr.
    fn stop(mut self) -> String {
        self.signal("TERM");
        let status = self.child.wait().unwrap();
        let mut stderr = String::new();
        self.child
            .stderr
            .take()
            .unwrap()
            .read_to_string(&mut stderr)
            .unwrap();
        assert!(status.success(), "stopped cleanly: {status}\n{stderr}");
        stderr
    }
}

/// A raw HTTP/1.1 request to the server; returns the status line and body.
fn raw(endpoint: &str, request: &str) -> String {
    let addr = endpoint.trim_start_matches("http://");
    let mut stream = std::net::TcpStream::connect(addr).unwrap();
    stream.write_all(request.as_bytes()).unwrap();
    let mut answer = String::new();
    stream.read_to_string(&mut answer).unwrap();
    answer
}

#[cfg(feature = "aws")]
fn as_principal(endpoint: &str, access_key: &str, args: &[&str]) -> std::process::Output {
    as_signed(endpoint, access_key, "unused", args)
}

#[cfg(feature = "aws")]
fn as_signed(
    endpoint: &str,
    access_key: &str,
    secret: &str,
    args: &[&str],
) -> std::process::Output {
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
        .env("AWS_SECRET_ACCESS_KEY", secret)
        .env("AWS_CONFIG_FILE", "/nonexistent/config")
        .env("AWS_SHARED_CREDENTIALS_FILE", "/nonexistent/credentials")
        .env("AWS_EC2_METADATA_DISABLED", "true")
        .output()
        .expect("the binary runs")
}

#[cfg(feature = "aws")]
#[test]
fn sim_serve_serves_the_world_to_the_aws_backend_and_saves_it_on_stop() {
    let (_dir, world) = seed_world();
    let server = Served::start(&world, &["--listen", "127.0.0.1:0", "--new-accounts", "1"]);
    let endpoint = server.endpoint.clone();

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
    // created (one is allowed) is in the file.
    let out = as_principal(&endpoint, "333333333333", &["status", "--key", "alias/x"]);
    assert_eq!(out.status.code(), Some(1));
    server.stop();
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
fn sim_serve_refuses_bad_input_and_leaves_the_world_as_it_was() {
    let out = amishare(&["sim", "serve"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("--world"));
    let (_dir, path) = seed_world();
    let before = std::fs::read(&path).unwrap();
    let world = path.to_str().unwrap();
    for (args, says) in [
        (vec!["--time-scale", "0.5"], "time scale"),
        (vec!["--listen", "0.0.0.0:0"], "--allow-remote"),
        (vec!["--listen", "not-an-address"], "--listen"),
        (
            vec![
                "--listen",
                "0.0.0.0:0",
                "--allow-remote",
                "--new-accounts",
                "3",
            ],
            "--new-accounts",
        ),
    ] {
        let mut argv = vec!["sim", "serve", "--world", world];
        argv.extend(&args);
        let out = amishare(&argv);
        assert_eq!(out.status.code(), Some(2), "{args:?}");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(stderr.contains(says), "{args:?}: {stderr}");
        assert_eq!(std::fs::read(&path).unwrap(), before, "{args:?}");
    }
    let out = amishare(&["sim", "serve", "--world", "/nonexistent/world.json"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("/nonexistent/world.json"));
}

#[test]
fn a_command_on_a_served_world_is_refused_and_told_where_the_server_is() {
    let (_dir, world) = seed_world();
    let server = Served::start(&world, &["--listen", "127.0.0.1:0"]);
    let share = [
        "--backend",
        "sim",
        "--world",
        world.to_str().unwrap(),
        "--region",
        "ap-northeast-1",
        "--profile",
        "a-admin",
        "share",
        "--instance",
        "i-0c0ffee0123456789",
        "--create-key",
        "alias/cross-ami",
        "--to",
        "333333333333",
    ];
    let out = amishare(&share);
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains(&format!("pid {}", server.pid())),
        "{stderr}"
    );
    assert!(
        stderr.contains(&format!("--backend aws --endpoint-url {}", server.endpoint)),
        "{stderr}"
    );
    // The served world changes through the server (a key made by KMS).
    let key = raw(
        &server.endpoint,
        &format!(
            "POST / HTTP/1.1\r\nHost: x\r\nConnection: close\r\nX-Amz-Target: TrentService.CreateKey\r\nAuthorization: AWS4-HMAC-SHA256 Credential={A_ADMIN_KEY}/20261128/ap-northeast-1/kms/aws4_request, SignedHeaders=host, Signature=00\r\nContent-Length: 2\r\n\r\n{{}}"
        ),
    );
    assert!(key.starts_with("HTTP/1.1 200"), "{key}");
    server.stop();
    // Stopped, it has saved its world, key and all; commands work again and
    // keep it.
    let out = amishare(&share);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let saved: Value = serde_json::from_str(&std::fs::read_to_string(&world).unwrap()).unwrap();
    let keys = saved["keys"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|k| k["arn"].as_str().unwrap().contains(":111111111111:"))
        .count();
    assert_eq!(keys, 2, "the served world's key and the share's");
}

#[test]
fn sighup_right_after_listening_saves_and_the_server_goes_on() {
    for _ in 0..5 {
        let (_dir, world) = seed_world();
        let server = Served::start(&world, &["--listen", "127.0.0.1:0"]);
        server.signal("HUP");
        // Still serving: a request is answered after the signal.
        let health = raw(
            &server.endpoint,
            "GET /_amishare/health HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
        );
        assert!(health.starts_with("HTTP/1.1 200"), "{health}");
        let stderr = server.stop();
        assert!(
            stderr.contains(&format!("saved {}", world.display())),
            "{stderr}"
        );
    }
}

#[test]
fn off_loopback_only_requests_signed_with_the_world_s_secrets_are_answered() {
    let (_dir, world) = seed_world();
    let server = Served::start(&world, &["--listen", "0.0.0.0:0", "--allow-remote"]);
    let port = server.endpoint.rsplit(':').next().unwrap().to_owned();
    let endpoint = format!("http://127.0.0.1:{port}");

    // Signed by the AWS SDK for Rust (this command, built with its AWS
    // backend) with the right secret: the server answers, here that there
    // is no such alias.
    #[cfg(feature = "aws")]
    {
        let status = ["--json", "status", "--key", "alias/nothing-here"];
        let out = as_signed(&endpoint, A_ADMIN_KEY, A_ADMIN_SECRET, &status);
        assert_eq!(out.status.code(), Some(1));
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(stderr.contains("NotFoundException"), "{stderr}");

        // A wrong secret, an unknown key, a 12-digit key: refused before anything.
        let out = as_signed(&endpoint, A_ADMIN_KEY, "not the secret", &status);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(stderr.contains("InvalidSignatureException"), "{stderr}");
        let out = as_signed(&endpoint, "111111111111", "anything", &status);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(stderr.contains("UnrecognizedClientException"), "{stderr}");
    }

    // Unsigned.
    let unsigned = raw(
        &endpoint,
        "POST / HTTP/1.1\r\nHost: x\r\nConnection: close\r\nContent-Length: 43\r\n\r\nAction=DescribeInstances&Version=2016-11-15",
    );
    assert!(unsigned.starts_with("HTTP/1.1 401"), "{unsigned}");
    assert!(
        unsigned.contains("MissingAuthenticationToken"),
        "{unsigned}"
    );

    // The stock aws CLI, where it is installed, signs as the world's a-admin.
    if let Some(aws) = aws_cli() {
        let identity = |secret: &str| {
            Command::new(&aws)
                .args([
                    "sts",
                    "get-caller-identity",
                    "--output",
                    "text",
                    "--query",
                    "Arn",
                ])
                .args(["--endpoint-url", &endpoint, "--region", "ap-northeast-1"])
                .env_clear()
                .env("PATH", std::env::var_os("PATH").unwrap_or_default())
                .env("HOME", std::env::temp_dir())
                .env("AWS_ACCESS_KEY_ID", A_ADMIN_KEY)
                .env("AWS_SECRET_ACCESS_KEY", secret)
                .env("AWS_CONFIG_FILE", "/dev/null")
                .env("AWS_SHARED_CREDENTIALS_FILE", "/dev/null")
                .env("AWS_MAX_ATTEMPTS", "1")
                .output()
                .unwrap()
        };
        let out = identity(A_ADMIN_SECRET);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert_eq!(
            String::from_utf8_lossy(&out.stdout).trim(),
            "arn:aws:iam::111111111111:user/a-admin"
        );
        let out = identity("not the secret");
        assert!(!out.status.success());
        assert!(
            String::from_utf8_lossy(&out.stderr).contains("SignatureDoesNotMatch"),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    } else {
        eprintln!("no aws CLI on PATH: signed requests checked with the AWS SDK for Rust only");
    }
    server.stop();
}

/// The stock aws command line client, if one is on PATH.
fn aws_cli() -> Option<std::path::PathBuf> {
    let found = Command::new("aws").arg("--version").output().ok()?;
    found.status.success().then(|| "aws".into())
}

/// `amishare policy … > p.json` prints a whole key policy that KMS's
/// `PutKeyPolicy` takes as it is: sent through the AWS SDK for Rust (the
/// AWS backend's KMS client) to a served world, it lets the target
/// describe a key it could not describe before; amishare's statements alone
/// are not a key policy, and KMS refuses them.
#[cfg(feature = "aws")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_policy_command_prints_a_document_put_key_policy_takes_unchanged() {
    use amishare_aws::{AwsKeyStore, ConnectOptions};
    use amishare_core::store::{CreateKeyRequest, KeyStore};
    use amishare_core::{ErrorKind, KeyRef};

    let (dir, world) = seed_world();
    let b_user = "arn:aws:iam::222222222222:user/b-user";
    let printed = amishare(&[
        "policy",
        "--principal",
        b_user,
        "--owner-account",
        "111111111111",
    ]);
    assert!(printed.status.success(), "{printed:?}");
    let file = dir.path().join("p.json");
    std::fs::write(&file, &printed.stdout).unwrap();
    let statements = amishare(&["policy", "--principal", b_user, "--statements"]);
    assert!(statements.status.success(), "{statements:?}");

    let server = Served::start(&world, &["--listen", "127.0.0.1:0"]);
    let profiles = dir.path().join("config");
    std::fs::write(
        &profiles,
        format!(
            "[profile a-admin]\naws_access_key_id = {A_ADMIN_KEY}\naws_secret_access_key = {A_ADMIN_SECRET}\n\
             [profile b-user]\naws_access_key_id = AKIABUSEREXAMPLE0001\naws_secret_access_key = unchecked\n"
        ),
    )
    .unwrap();
    let region = amishare_core::Region::parse("ap-northeast-1").unwrap();
    let store = |profile: &str| {
        let options = ConnectOptions {
            profile: Some(profile.to_owned()),
            profile_file: Some(profiles.clone()),
            region: Some(region.clone()),
            endpoint_url: Some(server.endpoint.clone()),
            ..ConnectOptions::default()
        };
        async move { AwsKeyStore::new(&amishare_aws::load(&options).await) }
    };
    let owner = store("a-admin").await;
    let target = store("b-user").await;
    let key = owner
        .create_key(
            &region,
            &CreateKeyRequest {
                description: "a key whose policy a file gives".to_owned(),
                policy: None,
                tags: Default::default(),
            },
        )
        .await
        .unwrap()
        .arn;
    let by_arn = KeyRef::Arn(key.clone());
    let refused = target.describe_key(&region, &by_arn).await.unwrap_err();
    assert_eq!(refused.kind(), ErrorKind::AccessDenied, "{refused}");

    let text = String::from_utf8(std::fs::read(&file).unwrap()).unwrap();
    owner.put_key_policy(&key, &text).await.unwrap();
    let stored = owner.get_key_policy(&key).await.unwrap();
    assert_eq!(
        amishare_policy::Policy::parse(&stored).unwrap(),
        amishare_policy::Policy::parse(&text).unwrap()
    );
    let described = target.describe_key(&region, &by_arn).await.unwrap();
    assert_eq!(described.arn, key);

    let alone = String::from_utf8(statements.stdout).unwrap();
    let err = owner.put_key_policy(&key, &alone).await.unwrap_err();
    assert_eq!(
        err.code(),
        Some("MalformedPolicyDocumentException"),
        "{err}"
    );
    server.stop();
}

//! The stock `aws` command line client against the server: runs
//! `tests/awscli-seed.sh` when `AMISHARE_AWS_CLI` names an `aws` binary
//! (`python3 -m venv V && V/bin/pip install awscli`), and says why it
//! skipped otherwise.

use std::process::Command;

use crate::support::Harness;

/// The variable that names the `aws` binary and turns the test on.
const AWS_CLI: &str = "AMISHARE_AWS_CLI";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_aws_cli_drives_the_seed_flow() {
    let Some(aws) = std::env::var_os(AWS_CLI) else {
        eprintln!("skipped: set {AWS_CLI} to an aws binary to run the seed flow with the aws CLI");
        return;
    };
    let mut server = Harness::seed(amishare_serve::DEFAULT_TIME_SCALE).await;
    let script = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/awscli-seed.sh");
    let endpoint = format!("http://{}", server.addr);
    let output = tokio::task::spawn_blocking(move || {
        Command::new("bash")
            .arg(script)
            .env("AMISHARE_ENDPOINT", endpoint)
            .env("AWS_CLI", aws)
            .env_remove("AMISHARE_SERVE")
            .output()
            .unwrap()
    })
    .await
    .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success(),
        "the script failed:\n{stdout}\n{stderr}"
    );
    eprintln!("{}", stdout.lines().last().unwrap_or_default());

    // The flow's state is in the world saved on shutdown.
    let saved = server.stop().await;
    assert!(
        saved.contains("seed-golden-encrypted"),
        "the saved world lacks the copy"
    );
}

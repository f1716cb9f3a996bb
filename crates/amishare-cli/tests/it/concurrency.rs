//! Commands at once on one world file take turns: every command's changes
//! are kept, no ID is handed out twice, and no command fails for another.

use std::collections::BTreeSet;
use std::path::Path;
use std::process::{Child, Command, Output, Stdio};
use std::time::Instant;

use serde_json::Value;

use crate::seed_world;

const INSTANCE: &str = "i-0c0ffee0123456789";
const B_USER: &str = "arn:aws:iam::222222222222:user/b-user";
/// Commands in one round, all started at once.
const AT_ONCE: usize = 8;
const ROUNDS: usize = 20;

/// Starts a command on the world as `profile`, its output captured. The
/// lock wait is generous: this is about what the file holds afterwards, not
/// about how long a turn takes on a loaded machine.
fn start(world: &Path, profile: &str, args: &[&str]) -> Child {
    Command::new(env!("CARGO_BIN_EXE_amishare"))
        .args([
            "--backend",
            "sim",
            "--world",
            world.to_str().unwrap(),
            "--region",
            "ap-northeast-1",
            "--lock-wait",
            "600",
            "--profile",
            profile,
            "--json",
        ])
        .args(args)
        .env_remove("RUST_LOG")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("the binary runs")
}

/// Waits for every command; each must have succeeded. Returns their JSON.
fn finish(children: Vec<Child>) -> Vec<Value> {
    let outputs: Vec<Output> = children
        .into_iter()
        .map(|child| child.wait_with_output().unwrap())
        .collect();
    outputs
        .iter()
        .map(|out| {
            assert!(
                out.status.success(),
                "exit {:?}\n{}",
                out.status.code(),
                String::from_utf8_lossy(&out.stderr)
            );
            serde_json::from_slice(&out.stdout).expect("JSON on stdout")
        })
        .collect()
}

fn target(round: usize, index: usize) -> String {
    format!(
        "{:012}",
        300_000_000_000_u64 + (round * AT_ONCE + index) as u64
    )
}

/// `share` of the seed instance to `account`, with a key of alias
/// `alias/cross-ami` unless `extra` names another.
fn share_to(world: &Path, account: &str, extra: &[&str]) -> Child {
    let mut args = vec!["share", "--instance", INSTANCE, "--to", account];
    if !extra.contains(&"--create-key") {
        args.extend(["--create-key", "alias/cross-ami"]);
    }
    args.extend(extra);
    start(world, "a-admin", &args)
}

fn world_json(world: &Path) -> Value {
    serde_json::from_str(&std::fs::read_to_string(world).unwrap()).unwrap()
}

/// The shared copy (the image with launch permissions) and the key's policy.
fn shared_state(world: &Value) -> (BTreeSet<String>, String) {
    let images = world["images"].as_array().unwrap();
    let copies: Vec<&Value> = images
        .iter()
        .filter(|image| image["owner"] == "111111111111" && image["source_image"].is_string())
        .collect();
    assert_eq!(copies.len(), 1, "one shared copy, however many shares ran");
    let launch = copies[0]["launch_permissions"]
        .as_array()
        .map(|list| {
            list.iter()
                .filter_map(|p| p["account"].as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default();
    let keys: Vec<&Value> = world["keys"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|key| key["arn"].as_str().unwrap().contains(":111111111111:"))
        .collect();
    assert_eq!(keys.len(), 1, "one key, however many shares ran");
    (launch, keys[0]["policy"].to_string())
}

/// Every resource a command reports creating (a rerun adopts what an
/// earlier command made, and reports it unchanged).
fn created(report: &Value) -> Vec<String> {
    let mut ids: Vec<String> = report["steps"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|step| {
            step["changed"] == true
                && matches!(
                    step["action"].as_str(),
                    Some("create-image" | "create-key" | "copy-image")
                )
        })
        .map(|step| step["resource"].as_str().unwrap().to_owned())
        .collect();
    ids.sort();
    ids.dedup();
    ids
}

/// Asserts that no two commands were told they created the same resource,
/// and that every one of them is in the world file.
fn assert_created_once(reports: &[Value], seen: &mut BTreeSet<String>, world: &Path) {
    let text = std::fs::read_to_string(world).unwrap();
    for report in reports {
        for id in created(report) {
            assert!(seen.insert(id.clone()), "{id} was handed out twice");
            assert!(
                text.contains(&id),
                "{id} was reported but is not in the world"
            );
        }
    }
}

/// Eight shares at once, twenty rounds, each share to an account of its own.
fn eight_shares_a_round(world: &Path) {
    let mut seen = BTreeSet::new();
    let mut everyone = BTreeSet::new();
    let started = Instant::now();
    for round in 0..ROUNDS {
        let targets: Vec<String> = (0..AT_ONCE).map(|i| target(round, i)).collect();
        let children = targets.iter().map(|t| share_to(world, t, &[])).collect();
        let reports = finish(children);
        assert_created_once(&reports, &mut seen, world);
        let (launch, policy) = shared_state(&world_json(world));
        everyone.extend(targets);
        for account in &everyone {
            assert!(
                launch.contains(account),
                "round {round}: {account} lost from the launch permission"
            );
            assert!(
                policy.contains(&format!("arn:aws:iam::{account}:root")),
                "round {round}: {account} lost from the key policy"
            );
        }
        assert_loads(world);
    }
    eprintln!(
        "{ROUNDS} rounds of {AT_ONCE} shares at once on {} bytes: {:.1} s",
        std::fs::metadata(world).unwrap().len(),
        started.elapsed().as_secs_f64()
    );
}

/// The world file loads, and a command reads it.
fn assert_loads(world: &Path) {
    let out = Command::new(env!("CARGO_BIN_EXE_amishare"))
        .args(["--backend", "sim", "--world", world.to_str().unwrap()])
        .args(["--profile", "a-admin", "--region", "ap-northeast-1"])
        .args(["--lock-wait", "600", "status", "--key", "alias/cross-ami"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn eight_shares_at_once_keep_every_target() {
    let (_dir, world) = seed_world();
    eight_shares_a_round(&world);
}

/// The seed world with `count` more images and snapshots of another account
/// (16,000 make over 10 MB once saved).
pub(crate) fn large_world(world: &Path, count: u64) {
    let mut doc = world_json(world);
    doc["accounts"]
        .as_array_mut()
        .unwrap()
        .push(serde_json::json!({"id": "999999999999"}));
    let mut images = Vec::new();
    let mut snapshots = Vec::new();
    for i in 0..count {
        let snapshot = format!("snap-{:017x}", 0x1000 + i);
        let image = format!("ami-{:017x}", 0x1000 + i);
        snapshots.push(serde_json::json!({
            "id": snapshot, "owner": "999999999999", "region": "ap-northeast-1",
            "size_gib": 8, "image": image,
        }));
        images.push(serde_json::json!({
            "id": image, "owner": "999999999999", "region": "ap-northeast-1",
            "name": format!("filler-{i:05}"),
            "devices": [{"device_name": "/dev/xvda", "snapshot": snapshot, "size_gib": 8}],
            "tags": {"purpose": "filler", "index": i.to_string()},
        }));
    }
    doc["images"] = Value::Array(images);
    doc["snapshots"] = Value::Array(snapshots);
    std::fs::write(world, serde_json::to_string_pretty(&doc).unwrap()).unwrap();
}

#[test]
fn eight_shares_at_once_keep_every_target_on_a_ten_megabyte_world() {
    let (_dir, world) = seed_world();
    large_world(&world, 16_000);
    // The first share writes the world in its own layout, over 10 MB.
    let out = share_to(&world, "222222222222", &[])
        .wait_with_output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let size = std::fs::metadata(&world).unwrap().len();
    assert!(size >= 10 << 20, "the world is {size} bytes");
    eight_shares_a_round(&world);
}

#[test]
fn shares_accepts_and_status_at_once_keep_every_change() {
    let (_dir, world) = seed_world();
    let first = finish(vec![start(
        &world,
        "a-admin",
        &[
            "share",
            "--instance",
            INSTANCE,
            "--create-key",
            "alias/cross-ami",
            "--principal",
            B_USER,
            "--volume-permission",
        ],
    )]);
    let image = first[0]["regions"][0]["image"].as_str().unwrap().to_owned();
    let key = first[0]["regions"][0]["key"].as_str().unwrap().to_owned();
    let mut seen = BTreeSet::new();
    assert_created_once(&first, &mut seen, &world);
    let mut shared = Vec::new();
    let started = Instant::now();
    for round in 0..ROUNDS {
        let mut children = Vec::new();
        // Each share makes a key and a copy of its own: new IDs every round.
        for i in 0..3 {
            let alias = format!("alias/round-{round}-{i}");
            let name = format!("copy-{round}-{i}");
            let extra = ["--create-key", &alias, "--name", &name];
            children.push(share_to(&world, &target(round, i), &extra));
        }
        for _ in 0..3 {
            children.push(start(
                &world,
                "b-user",
                &[
                    "accept",
                    "--image",
                    &image,
                    "--key",
                    &key,
                    "--copy-key",
                    "default",
                ],
            ));
        }
        for _ in 0..2 {
            children.push(start(&world, "a-admin", &["status", "--image", &image]));
        }
        let reports = finish(children);
        assert_created_once(&reports, &mut seen, &world);
        for (i, report) in reports[..3].iter().enumerate() {
            let region = &report["regions"][0];
            shared.push((
                target(round, i),
                region["image"].as_str().unwrap().to_owned(),
                region["key"].as_str().unwrap().to_owned(),
            ));
        }
        let saved = world_json(&world);
        for (account, image, key) in &shared {
            let (launch, policy) = shared_state_of(&saved, image, key);
            assert!(
                launch.contains(account),
                "round {round}: {account} lost from {image}"
            );
            assert!(
                policy.contains(&format!("arn:aws:iam::{account}:root")),
                "round {round}: {account} lost from {key}"
            );
        }
        let theirs: Vec<&str> = saved["images"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|i| i["owner"] == "222222222222")
            .map(|i| i["id"].as_str().unwrap())
            .collect();
        for report in &reports[3..6] {
            let copy = report["copy"]["image"].as_str().expect("accept has a copy");
            assert_eq!(
                theirs,
                [copy],
                "round {round}: the target's one copy is kept"
            );
        }
        for report in &reports[6..] {
            assert_eq!(
                report["images"][0]["image"],
                image.as_str(),
                "status read the image"
            );
        }
    }
    eprintln!(
        "{ROUNDS} rounds of 3 shares, 3 accepts and 2 status at once: {:.1} s, {} IDs made",
        started.elapsed().as_secs_f64(),
        seen.len()
    );
}

/// The launch permission of `image` and the policy of `key`.
fn shared_state_of(world: &Value, image: &str, key: &str) -> (BTreeSet<String>, String) {
    let find = |list: &str, field: &str, value: &str| -> Value {
        world[list]
            .as_array()
            .unwrap()
            .iter()
            .find(|item| item[field] == value)
            .unwrap_or_else(|| panic!("{value} is not in the world"))
            .clone()
    };
    let launch = find("images", "id", image)["launch_permissions"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|p| p["account"].as_str().map(str::to_owned))
        .collect();
    (launch, find("keys", "arn", key)["policy"].to_string())
}

#[test]
fn a_command_says_whom_it_waits_for_and_gives_up_with_exit_1() {
    let (_dir, world) = seed_world();
    let before = std::fs::read(&world).unwrap();
    let holder = amishare_sim::LockHolder::this_process("amishare share (a test)");
    let held = amishare_sim::WorldLock::acquire(&world, &holder, std::time::Duration::ZERO, |_| {})
        .unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_amishare"))
        .args(["--backend", "sim", "--world", world.to_str().unwrap()])
        .args(["--profile", "a-admin", "--region", "ap-northeast-1"])
        .args(["--lock-wait", "1", "status", "--key", "alias/x"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains(&format!("waiting for {holder} to finish with")),
        "{stderr}"
    );
    assert!(stderr.contains("still in use by"), "{stderr}");
    drop(held);
    assert_eq!(std::fs::read(&world).unwrap(), before);
}

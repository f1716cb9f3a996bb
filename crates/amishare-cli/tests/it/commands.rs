//! The commands end to end on a world file: the mission's five steps as two
//! principals in separate invocations, then status, unshare, dry runs and
//! the operation failures.

use std::path::Path;
use std::process::Output;

use serde_json::Value;

use crate::{amishare, ok, seed_world, sim};

const B_USER: &str = "arn:aws:iam::222222222222:user/b-user";
const INSTANCE: &str = "i-0c0ffee0123456789";

fn json(out: &Output) -> Value {
    serde_json::from_str(&ok(out)).expect("JSON on stdout")
}

fn world_json(world: &Path) -> Value {
    serde_json::from_str(&std::fs::read_to_string(world).unwrap()).unwrap()
}

/// Edits the world file: the key policy of `key` keeps only the statements
/// `keep` accepts, as if its owner had edited it behind amishare's back.
fn keep_statements(world: &Path, key: &str, keep: impl Fn(&Value) -> bool) {
    let mut saved = world_json(world);
    for stored in saved["keys"].as_array_mut().unwrap() {
        if stored["arn"] == key {
            let statements = stored["policy"]["Statement"].as_array_mut().unwrap();
            statements.retain(&keep);
        }
    }
    std::fs::write(world, serde_json::to_string_pretty(&saved).unwrap()).unwrap();
}

/// The `Sid` of each statement of a JSON array of statements.
fn sids(statements: &Value) -> Vec<&str> {
    statements
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["Sid"].as_str().unwrap())
        .collect()
}

/// The owner's share, as JSON: returns the shared image and the key ARN.
fn share(world: &Path) -> (String, String) {
    let report = share_report(world);
    let region = &report["regions"][0];
    (
        region["image"].as_str().unwrap().to_owned(),
        region["key"].as_str().unwrap().to_owned(),
    )
}

/// The owner's share of the seed instance with B's user: its JSON report.
fn share_report(world: &Path) -> Value {
    json(&sim(
        world,
        "a-admin",
        &[
            "--json",
            "share",
            "--instance",
            INSTANCE,
            "--create-key",
            "alias/cross-ami",
            "--principal",
            B_USER,
            "--volume-permission",
        ],
    ))
}

/// `share --json` shows the key policy it wrote: the whole policy of a key
/// it created; amishare's statements when it merged them into a key's
/// policy; and, on a rerun that writes nothing, the statements in place.
#[test]
fn share_json_shows_the_key_policy_statements_it_wrote() {
    let (_dir, world) = seed_world();
    let run = || share_report(&world);
    let names_b = |statements: &Value| {
        let statements = statements.as_array().unwrap();
        statements.len() == 2
            && statements.iter().all(|s| {
                s["Sid"].as_str().unwrap().starts_with("amishare:")
                    && s["Principal"]["AWS"] == B_USER
            })
    };
    let created = run();
    assert_eq!(created["format"], "amishare-share/1");
    let policy = &created["regions"][0]["key_policy"];
    assert_eq!(policy["written"], "created", "{created}");
    assert!(names_b(&policy["statements"]), "{policy}");
    assert_eq!(policy["policy"]["Statement"].as_array().unwrap().len(), 3);

    let key = created["regions"][0]["key"].as_str().unwrap().to_owned();
    keep_statements(&world, &key, |s| {
        !s["Sid"].as_str().unwrap_or("").starts_with("amishare:")
    });
    let merged = run();
    let policy = &merged["regions"][0]["key_policy"];
    assert_eq!(policy["written"], "merged", "{merged}");
    assert!(names_b(&policy["statements"]), "{policy}");
    assert!(
        policy.get("policy").is_none(),
        "only a created key's whole policy"
    );

    let rerun = run();
    let policy = &rerun["regions"][0]["key_policy"];
    assert_eq!(policy["written"], "unchanged", "{rerun}");
    assert!(names_b(&policy["statements"]), "{policy}");
}

#[test]
fn share_then_accept_as_the_target_runs_the_five_steps() {
    let (_dir, world) = seed_world();
    let (image, key) = share(&world);
    let saved = world_json(&world);
    let copy = saved["images"]
        .as_array()
        .unwrap()
        .iter()
        .find(|i| i["id"] == image.as_str())
        .expect("the shared copy is in the world file");
    assert_eq!(copy["launch_permissions"][0]["account"], "222222222222");
    let stored_key = saved["keys"]
        .as_array()
        .unwrap()
        .iter()
        .find(|k| k["arn"] == key.as_str())
        .unwrap();
    assert!(stored_key["policy"].to_string().contains(B_USER));

    let out = sim(
        &world,
        "b-user",
        &[
            "accept",
            "--image",
            &image,
            "--key",
            &key,
            "--launch",
            "--keep",
            "--copy-key",
            "default",
        ],
    );
    let stdout = ok(&out);
    assert!(
        stdout.contains("reached running and is still running"),
        "{stdout}"
    );
    assert!(stdout.contains("is owned by this account"), "{stdout}");
    let saved = world_json(&world);
    let running = saved["instances"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|i| i["owner"] == "222222222222")
        .count();
    assert_eq!(running, 1, "the kept smoke instance is in the world file");
}

#[test]
fn a_rerun_of_share_changes_nothing() {
    let (_dir, world) = seed_world();
    let (image, _) = share(&world);
    let source = world_json(&world)["images"]
        .as_array()
        .unwrap()
        .iter()
        .find(|i| i["id"] != image.as_str())
        .unwrap()["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let out = sim(
        &world,
        "a-admin",
        &[
            "share",
            "--image",
            &source,
            "--key",
            "alias/cross-ami",
            "--principal",
            B_USER,
            "--volume-permission",
        ],
    );
    let stdout = ok(&out);
    assert!(stdout.contains("0 mutating calls."), "{stdout}");
}

#[test]
fn status_shows_both_sides_and_unshare_takes_everything_back() {
    let (_dir, world) = seed_world();
    let (image, key) = share(&world);
    let status = json(&sim(
        &world,
        "a-admin",
        &[
            "--json",
            "--target-profile",
            "b-user",
            "status",
            "--image",
            &image,
        ],
    ));
    assert_eq!(
        status["images"][0]["launch_permissions"]["known"][0]["account"],
        "222222222222"
    );
    assert_eq!(
        status["images"][0]["snapshots"][0]["key"]["known"],
        key.as_str()
    );
    let statements = &status["keys"][&key]["amishare_statements"]["known"];
    assert_eq!(statements.as_array().unwrap().len(), 2, "{status}");
    assert!(
        statements[0]["Sid"]
            .as_str()
            .is_some_and(|sid| sid.starts_with("amishare:")),
        "{status}"
    );
    assert!(status["target_view"][&image]["known"]
        .as_str()
        .unwrap()
        .contains("sees the image"));

    let out = sim(
        &world,
        "a-admin",
        &[
            "unshare",
            "--image",
            &image,
            "--principal",
            B_USER,
            "--deregister",
        ],
    );
    ok(&out);
    let saved = world_json(&world);
    assert!(
        saved["images"]
            .as_array()
            .unwrap()
            .iter()
            .all(|i| i["id"] != image.as_str()),
        "the copy is deregistered"
    );
    let stored_key = saved["keys"]
        .as_array()
        .unwrap()
        .iter()
        .find(|k| k["arn"] == key.as_str())
        .unwrap();
    assert!(
        !stored_key["policy"].to_string().contains("amishare:"),
        "{stored_key}"
    );

    // The target no longer finds the image: the operation fails, exit 1.
    let out = sim(
        &world,
        "b-user",
        &["accept", "--image", &image, "--key", &key],
    );
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains(&image), "{stderr}");
}

#[test]
fn a_dry_run_prints_every_call_and_the_policy_diff_and_changes_nothing() {
    let (_dir, world) = seed_world();
    let before = std::fs::read(&world).unwrap();
    let args = [
        "share",
        "--instance",
        INSTANCE,
        "--create-key",
        "alias/cross-ami",
        "--principal",
        B_USER,
        "--volume-permission",
        "--dry-run",
    ];
    let stdout = ok(&sim(&world, "a-admin", &args));
    for call in [
        "ec2:CreateImage",
        "kms:CreateKey",
        "kms:CreateAlias",
        "ec2:CopyImage",
        "ec2:ModifyImageAttribute",
        "ec2:ModifySnapshotAttribute",
    ] {
        assert!(stdout.contains(call), "{call} missing:\n{stdout}");
    }
    // A new key is created with its policy: no separate write.
    assert!(!stdout.contains("kms:PutKeyPolicy"), "{stdout}");
    assert!(stdout.contains("with its key policy"), "{stdout}");
    assert!(
        stdout.contains("+      \"Sid\": \"amishare: Allow use of the key\""),
        "{stdout}"
    );
    assert_eq!(std::fs::read(&world).unwrap(), before);

    let mut with_json = vec!["--json"];
    with_json.extend_from_slice(&args);
    let plan = json(&sim(&world, "a-admin", &with_json));
    assert_eq!(plan["calls"].as_array().unwrap().len(), 6, "{plan}");
    assert_eq!(plan["policy_changes"][0]["before"], "", "{plan}");
    assert_eq!(std::fs::read(&world).unwrap(), before);
}

#[test]
fn a_launch_the_key_policy_does_not_allow_fails_with_the_reason() {
    let (_dir, world) = seed_world();
    let (image, key) = share(&world);
    // The owner drops the statement that lets EC2 create grants for the
    // user, the commonest mistake: the key check passes, the launch dies.
    keep_statements(&world, &key, |s| {
        s["Sid"] != "amishare: Allow attachment of persistent resources"
    });
    let out = sim(&world, "b-user", &["accept", "--image", &image, "--launch"]);
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("Client.InternalError"), "{stderr}");
    // The doctor names the missing link next to EC2's reason.
    assert!(
        stderr.contains("FAIL kms.key-policy [kms:CreateGrant]") && stderr.contains(&key),
        "{stderr}"
    );
    assert!(
        !stderr.contains("FAIL kms.key-policy [kms:Decrypt]"),
        "{stderr}"
    );
    // As JSON: the instance and EC2's state reason as fields, and the cause the simulation knows.
    let out = sim(
        &world,
        "b-user",
        &["accept", "--image", &image, "--launch", "--json"],
    );
    assert_eq!(out.status.code(), Some(1));
    let failure: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(failure["format"], "amishare-launch-failure/1");
    assert!(
        failure["instance"].as_str().unwrap().starts_with("i-"),
        "{failure}"
    );
    assert_eq!(failure["state_reason_code"], "Client.InternalError");
    assert_eq!(
        failure["state_reason_message"],
        "Client.InternalError: Client error on launch"
    );
    assert!(failure["cause"].is_string(), "{failure}");

    // Without the use statement, the key check itself names the denial.
    keep_statements(&world, &key, |s| {
        !s["Sid"].as_str().unwrap_or("").starts_with("amishare:")
    });
    let out = sim(&world, "b-user", &["accept", "--image", &image, "--launch"]);
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("kms:DescribeKey") && stderr.contains(&key),
        "{stderr}"
    );
}

#[test]
fn policy_prints_a_whole_key_policy_statements_on_request_and_merges_a_file_with_a_diff() {
    // By default a whole key policy: KMS's default statement for the key's
    // account, then amishare's.
    let whole: Value = serde_json::from_str(&ok(&amishare(&[
        "policy",
        "--principal",
        B_USER,
        "--owner-account",
        "111111111111",
    ])))
    .unwrap();
    assert_eq!(whole["Version"], "2012-10-17");
    let sids = sids(&whole["Statement"]);
    assert_eq!(
        sids,
        [
            "Enable IAM User Permissions",
            "amishare: Allow use of the key",
            "amishare: Allow attachment of persistent resources"
        ]
    );
    assert_eq!(
        whole["Statement"][0]["Principal"]["AWS"],
        "arn:aws:iam::111111111111:root"
    );
    // The key's account comes from --owner-account or --caller; without
    // either, exit 2 naming both and --statements.
    let out = amishare(&["policy", "--principal", B_USER]);
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("--owner-account") && stderr.contains("--statements"),
        "{stderr}"
    );
    let by_caller: Value = serde_json::from_str(&ok(&amishare(&[
        "policy",
        "--principal",
        B_USER,
        "--caller",
        "arn:aws:iam::111111111111:role/KeyAdmin",
    ])))
    .unwrap();
    assert_eq!(by_caller, whole);
    // --json wraps the document in a versioned report.
    let report: Value = serde_json::from_str(&ok(&amishare(&[
        "--json",
        "policy",
        "--principal",
        B_USER,
        "--owner-account",
        "111111111111",
    ])))
    .unwrap();
    assert_eq!(report["format"], "amishare-policy/1");
    assert_eq!(report["policy"], whole);

    // The statements alone, when asked.
    let statements: Value = serde_json::from_str(&ok(&amishare(&[
        "policy",
        "--principal",
        B_USER,
        "--caller-account",
        "--statements",
    ])))
    .unwrap();
    assert_eq!(statements.as_array().unwrap().len(), 2);
    assert!(statements.to_string().contains("kms:CallerAccount"));

    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("policy.json");
    std::fs::write(
        &file,
        r#"{"Version":"2012-10-17","Statement":[{"Sid":"Enable IAM User Permissions","Effect":"Allow","Principal":{"AWS":"arn:aws:iam::111111111111:root"},"Action":"kms:*","Resource":"*"}]}"#,
    )
    .unwrap();
    let out = amishare(&[
        "policy",
        "--to",
        "222222222222",
        "--merge",
        file.to_str().unwrap(),
    ]);
    let merged: Value = serde_json::from_str(&ok(&out)).unwrap();
    assert!(merged
        .to_string()
        .contains("arn:aws:iam::222222222222:root"));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("+      \"Sid\": \"amishare: Allow use of the key\""),
        "{stderr}"
    );

    // A policy that no longer lets its writer update it is refused: exit 1.
    std::fs::write(
        &file,
        r#"{"Version":"2012-10-17","Statement":[{"Sid":"Only","Effect":"Allow","Principal":{"AWS":"arn:aws:iam::111111111111:user/someone"},"Action":"kms:Decrypt","Resource":"*"}]}"#,
    )
    .unwrap();
    let out = amishare(&[
        "policy",
        "--to",
        "222222222222",
        "--merge",
        file.to_str().unwrap(),
        "--owner-account",
        "111111111111",
    ]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("update the key policy"));
}

#[test]
fn an_ou_share_in_two_regions_lets_an_account_of_the_ou_launch() {
    let dir = tempfile::tempdir().unwrap();
    let world = dir.path().join("org.json");
    std::fs::copy(crate::testdata().join("worlds/org.json"), &world).unwrap();
    let report = json(&sim(
        &world,
        "a-admin",
        &[
            "--json",
            "share",
            "--instance",
            INSTANCE,
            "--create-key",
            "alias/golden",
            "--ou-arn",
            "arn:aws:organizations::111111111111:ou/o-a1b2c3d4e5/ou-ab12-11111111",
            "--regions",
            "ap-northeast-1,us-east-1",
        ],
    ));
    let regions = report["regions"].as_array().unwrap();
    assert_eq!(regions.len(), 2, "{report}");
    let tokyo = regions
        .iter()
        .find(|r| r["region"] == "ap-northeast-1")
        .unwrap();
    for region in regions {
        assert_eq!(
            region["launch_permissions"][0]["organizational-unit"],
            "arn:aws:organizations::111111111111:ou/o-a1b2c3d4e5/ou-ab12-11111111"
        );
        assert!(region["key"]
            .as_str()
            .unwrap()
            .contains(region["region"].as_str().unwrap()));
    }
    let image = tokyo["image"].as_str().unwrap();
    let key = tokyo["key"].as_str().unwrap();
    let stdout = ok(&sim(
        &world,
        "c-user",
        &["accept", "--image", image, "--key", key, "--launch"],
    ));
    assert!(stdout.contains("reached running"), "{stdout}");
    // Account 222222222222 is outside the OU: the image is not shared with it.
    let out = sim(
        &world,
        "b-user",
        &["accept", "--image", image, "--key", key],
    );
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("not shared with account 222222222222"));
}

/// The codes of the doctor's failed links, from its JSON.
fn failed_links(report: &Value) -> Vec<(String, String)> {
    report["findings"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|f| f["verdict"] == "fail")
        .map(|f| {
            (
                f["code"].as_str().unwrap().to_owned(),
                f["action"].as_str().unwrap_or("").to_owned(),
            )
        })
        .collect()
}

#[test]
fn doctor_names_the_broken_link_and_fix_mends_the_key_policy() {
    let (_dir, world) = seed_world();
    let (image, key) = share(&world);

    // The seed's share: every link holds, as the target sees it.
    let out = sim(
        &world,
        "b-user",
        &["doctor", "--image", &image, "--intent", "both"],
    );
    let text = ok(&out);
    assert!(text.contains("every link holds"), "{text}");
    assert!(!text.contains("FAIL") && !text.contains("??"), "{text}");

    // The owner drops the statement that lets EC2 create grants.
    keep_statements(&world, &key, |s| {
        s["Sid"] != "amishare: Allow attachment of persistent resources"
    });
    let out = sim(&world, "b-user", &["--json", "doctor", "--image", &image]);
    assert_eq!(out.status.code(), Some(1), "a broken link exits 1");
    let report: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(report["verdict"], "fail");
    assert_eq!(
        failed_links(&report),
        vec![("kms.key-policy".to_owned(), "kms:CreateGrant".to_owned())]
    );
    let fix = report["findings"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["verdict"] == "fail")
        .unwrap()["fix"]
        .clone();
    assert_eq!(fix["kind"], "key-policy-statements");
    assert_eq!(fix["key"], key.as_str());

    // A dry run of --fix shows the change and writes nothing.
    let before = std::fs::read_to_string(&world).unwrap();
    let args = ["doctor", "--image", &image, "--principal", B_USER, "--fix"];
    let mut dry = vec!["--dry-run"];
    dry.extend_from_slice(&args);
    let out = sim(&world, "a-admin", &dry);
    assert_eq!(out.status.code(), Some(1), "nothing was mended");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("would change the key policy"), "{stdout}");
    assert!(
        stdout.contains("PutKeyPolicy"),
        "the plan lists the write: {stdout}"
    );
    assert_eq!(std::fs::read_to_string(&world).unwrap(), before);
    // In JSON, with amishare's statements as the fix would leave them.
    let mut dry_json = vec!["--json"];
    dry_json.extend_from_slice(&dry);
    let out = sim(&world, "a-admin", &dry_json);
    let plan_and_report = String::from_utf8_lossy(&out.stdout).into_owned();
    let report: Value = serde_json::Deserializer::from_str(&plan_and_report)
        .into_iter::<Value>()
        .map(Result::unwrap)
        .find(|doc| doc["format"] == "amishare-doctor/1")
        .unwrap_or_else(|| panic!("a doctor report: {plan_and_report}"));
    let fixed = &report["fixed"][0];
    assert_eq!(fixed["key"], key.as_str());
    let sids = sids(&fixed["statements"]);
    assert_eq!(
        sids,
        [
            "amishare: Allow use of the key",
            "amishare: Allow attachment of persistent resources"
        ],
        "{report}"
    );
    assert_eq!(std::fs::read_to_string(&world).unwrap(), before);

    // --fix as the owner merges the statements back; the target can launch.
    let out = sim(&world, "a-admin", &args);
    let text = ok(&out);
    assert!(
        text.contains("+      \"Sid\": \"amishare: Allow attachment of persistent resources\""),
        "{text}"
    );
    assert!(text.contains("amishare's statements in it now:"), "{text}");
    assert!(text.contains("every link holds"), "{text}");
    let out = sim(&world, "b-user", &["accept", "--image", &image, "--launch"]);
    ok(&out);
    // A second --fix finds nothing to add.
    let out = sim(&world, "a-admin", &args);
    ok(&out);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("no key-policy statement is missing"),
        "{stderr}"
    );
}

#[test]
fn doctor_from_one_side_says_what_it_cannot_see() {
    let (_dir, world) = seed_world();
    let (image, _key) = share(&world);
    let out = sim(
        &world,
        "b-user",
        &["--json", "doctor", "--image", &image, "--intent", "copy"],
    );
    let report: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(report["verdict"], "pass", "the simulation sees every side");
    assert_eq!(report["sight"]["owner"], true);
    assert_eq!(report["sight"]["identity"], true);

    // Not shared with this account: the image link fails, nothing else is guessed.
    let out = sim(
        &world,
        "a-admin",
        &[
            "doctor",
            "--image",
            &image,
            "--principal",
            "arn:aws:iam::333333333333:root",
        ],
    );
    assert_eq!(out.status.code(), Some(1));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("FAIL image.shared"), "{text}");
}

//! `amishare demo`: the mission's five steps on the simulation.

use crate::amishare;

#[test]
fn demo_prints_the_five_steps_and_ends_running() {
    let out = amishare(&["demo"]);
    let stdout = String::from_utf8(out.stdout).unwrap();
    assert!(
        out.status.success(),
        "exit {:?}\n{stdout}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    for step in 1..=5 {
        assert!(
            stdout.contains(&format!("Step {step} (")),
            "step {step} missing:\n{stdout}"
        );
    }
    for action in [
        "create-key",
        "create-alias",
        "key-policy",
        "create-image",
        "copy-image",
        "verify-snapshots",
        "launch-permission",
        "volume-permission",
        "describe-key",
        "run-instances",
    ] {
        assert!(stdout.contains(action), "{action} missing:\n{stdout}");
    }
    assert!(stdout.contains("alias/cross-ami"), "{stdout}");
    assert!(
        stdout.contains("arn:aws:iam::222222222222:user/b-user"),
        "{stdout}"
    );
    assert!(stdout.contains("is running in 222222222222"), "{stdout}");
}

#[test]
fn demo_json_is_the_whole_report() {
    let out = amishare(&["demo", "--json"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).expect("stdout is JSON");
    let shared = &report["share"]["regions"][0];
    let key = shared["key"].as_str().unwrap();
    assert!(
        key.starts_with("arn:aws:kms:ap-northeast-1:111111111111:key/"),
        "{key}"
    );
    let snapshots = shared["snapshots"].as_object().unwrap();
    assert!(!snapshots.is_empty());
    assert!(
        snapshots.values().all(|k| k == key),
        "every snapshot uses the key"
    );
    assert_eq!(report["accept"]["launch"]["state"], "running");
    assert_eq!(report["accept"]["owner"], "111111111111");
    let copy_keys = report["accept"]["copy"]["snapshots"].as_object().unwrap();
    assert!(
        copy_keys
            .values()
            .all(|k| k.as_str().unwrap().contains(":222222222222:key/")),
        "B's copy uses B's key"
    );
    assert!(0.0 < report["simulated"].as_f64().unwrap());
}

#[test]
fn same_seed_same_ids_other_seed_other_ids() {
    let run = |seed: &str| {
        let out = amishare(&["demo", "--json", "--seed", seed]);
        assert!(out.status.success());
        let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        report["share"]["regions"][0]["image"]
            .as_str()
            .unwrap()
            .to_owned()
    };
    assert_eq!(run("7"), run("7"));
    assert_ne!(run("7"), run("8"));
}

#[test]
fn bad_arguments_exit_2_and_name_the_argument() {
    let out = amishare(&["demo", "--seed", "eleven"]);
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("--seed") && stderr.contains("eleven"),
        "{stderr}"
    );
    let out = amishare(&["share-everything"]);
    assert_eq!(out.status.code(), Some(2));
}

/// The seed's whole point is its key policy: the demo prints the policy the
/// key was created with, in text and in JSON, naming B's user.
#[test]
fn demo_shows_the_key_policy_it_created() {
    let out = amishare(&["demo"]);
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(out.status.success());
    let step1 = &text[text.find("Step 1").unwrap()..text.find("Step 2").unwrap()];
    assert!(
        step1.contains("created with the key: its whole policy"),
        "{step1}"
    );
    for sid in [
        "Enable IAM User Permissions",
        "amishare: Allow use of the key",
        "amishare: Allow attachment of persistent resources",
    ] {
        assert!(step1.contains(sid), "{sid} missing:\n{step1}");
    }

    let out = amishare(&["demo", "--json"]);
    assert!(out.status.success());
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(report["format"], "amishare-demo/1");
    let written = &report["share"]["regions"][0]["key_policy"];
    assert_eq!(written["written"], "created", "{written}");
    let statements = written["statements"].as_array().unwrap();
    assert_eq!(statements.len(), 2, "{written}");
    for statement in statements {
        assert!(statement["Sid"].as_str().unwrap().starts_with("amishare:"));
        assert_eq!(
            statement["Principal"]["AWS"],
            "arn:aws:iam::222222222222:user/b-user"
        );
    }
    let whole = written["policy"]["Statement"].as_array().unwrap();
    assert_eq!(whole.len(), 3, "KMS's default statement and amishare's two");
    assert_eq!(
        whole[0]["Principal"]["AWS"],
        "arn:aws:iam::111111111111:root"
    );
}

#[test]
fn demo_autoscaling_adds_the_grant_and_the_group_launch() {
    let out = amishare(&["demo", "--autoscaling"]);
    let stdout = String::from_utf8(out.stdout).unwrap();
    assert!(
        out.status.success(),
        "exit {:?}\n{stdout}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("Step 6 (B)"), "{stdout}");
    for action in [
        "create-grant",
        "create-launch-template",
        "create-auto-scaling-group",
        "delete-auto-scaling-group",
        "delete-launch-template",
    ] {
        assert!(stdout.contains(action), "{action} missing:\n{stdout}");
    }
    assert!(
        stdout.contains(
            "role/aws-service-role/autoscaling.amazonaws.com/AWSServiceRoleForAutoScaling"
        ),
        "{stdout}"
    );
    assert!(stdout.contains("InService"), "{stdout}");
    assert!(
        stdout.contains("their accounts may grant their AWSServiceRoleForAutoScaling the key"),
        "step 1 says the key policy lets B grant its role:\n{stdout}"
    );
}

//! The Auto Scaling options end to end on a world file, each command a
//! separate invocation as the owner or the target: the failing group launch
//! and its doctor, `share --autoscaling`, `accept --autoscaling-grant
//! --launch-via autoscaling`, reruns, a dry run, and `unshare`.

use std::process::Output;

use serde_json::Value;

use crate::{ok, seed_world, sim};

const B_USER: &str = "arn:aws:iam::222222222222:user/b-user";
const ROLE: &str = "arn:aws:iam::222222222222:role/aws-service-role/autoscaling.amazonaws.com/AWSServiceRoleForAutoScaling";

fn json(out: &Output) -> Value {
    serde_json::from_str(&ok(out)).expect("JSON on stdout")
}

#[test]
fn the_grant_route_through_the_commands() {
    let (_dir, world) = seed_world();
    let share_args = [
        "--json",
        "share",
        "--instance",
        "i-0c0ffee0123456789",
        "--create-key",
        "alias/cross-ami",
        "--principal",
        B_USER,
    ];
    let report = json(&sim(&world, "a-admin", &share_args));
    let image = report["regions"][0]["image"].as_str().unwrap().to_owned();
    let key = report["regions"][0]["key"].as_str().unwrap().to_owned();
    let accept = |extra: &[&str]| {
        let mut args = vec!["accept", "--image", &image, "--key", &key];
        args.extend_from_slice(extra);
        sim(&world, "b-user", &args)
    };

    let doctor = || {
        sim(
            &world,
            "a-admin",
            &[
                "doctor",
                "--image",
                &image,
                "--principal",
                B_USER,
                "--intent",
                "autoscaling",
            ],
        )
    };

    // Under the seed's policy the group's launch fails, and the doctor's
    // findings come with the activity's message.
    let failed = accept(&["--launch", "--launch-via", "autoscaling"]);
    assert_eq!(failed.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&failed.stderr);
    assert!(stderr.contains("Client.InternalError"), "{stderr}");
    assert!(stderr.contains("asg.grant"), "{stderr}");
    // As JSON: the group, its activity and the cause its message tells, as fields.
    let failed = accept(&["--launch", "--launch-via", "autoscaling", "--json"]);
    assert_eq!(failed.status.code(), Some(1));
    let failure: Value = serde_json::from_slice(&failed.stdout).unwrap();
    assert_eq!(failure["format"], "amishare-launch-failure/1");
    assert!(failure["group"].is_string(), "{failure}");
    assert!(failure["activity"].is_string(), "{failure}");
    assert_eq!(failure["activity_cause"], "key-access", "{failure}");
    assert!(failure["state_reason_code"].is_null(), "{failure}");
    let failing = doctor();
    assert_eq!(failing.status.code(), Some(1));
    let checklist = String::from_utf8_lossy(&failing.stdout);
    assert!(checklist.contains("asg.create-grant"), "{checklist}");

    // The owner allows the grant; a dry run shows the statement it writes.
    let mut with_option = share_args.to_vec();
    with_option.push("--autoscaling");
    let planned = sim(&world, "a-admin", &{
        let mut args = vec!["--dry-run"];
        args.extend_from_slice(&with_option[1..]);
        args
    });
    let plan = ok(&planned);
    assert!(
        plan.contains("amishare: Allow grants for service-linked roles (222222222222)"),
        "{plan}"
    );
    assert!(plan.contains(ROLE), "{plan}");
    let shared = json(&sim(&world, "a-admin", &with_option));
    assert_eq!(shared["mutating_calls"], 1, "{shared}");

    // The target creates the grant and proves it with a group launch.
    let accepted: Value = serde_json::from_str(&ok(&accept(&[
        "--json",
        "--autoscaling-grant",
        "--launch",
        "--launch-via",
        "autoscaling",
    ])))
    .unwrap();
    let grant = accepted["grants"][0]["grant_id"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_eq!(accepted["grants"][0]["grantee"], ROLE);
    assert_eq!(accepted["grants"][0]["created"], true);
    assert!(accepted["launch"]["group"].is_string(), "{accepted}");
    let again: Value =
        serde_json::from_str(&ok(&accept(&["--json", "--autoscaling-grant"]))).unwrap();
    assert_eq!(again["grants"][0]["grant_id"], grant.as_str());
    assert_eq!(again["grants"][0]["created"], false);
    ok(&doctor());

    // Unshare revokes amishare's grant.
    let unshared = json(&sim(
        &world,
        "a-admin",
        &[
            "--json",
            "unshare",
            "--image",
            &image,
            "--principal",
            B_USER,
        ],
    ));
    let steps = unshared["steps"].as_array().unwrap();
    assert!(
        steps.iter().any(
            |s| s["action"] == "revoke-grant" && s["detail"].as_str().unwrap().contains(&grant)
        ),
        "{unshared}"
    );
}

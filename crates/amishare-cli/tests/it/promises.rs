//! What the commands promise a user, on a world file: `--via-service`
//! shares that `accept` proves through EC2, unshare and `doctor --fix` that
//! stay in scope, and smoke instances that `status` lists.

use std::path::Path;

use serde_json::Value;

use crate::{ok, seed_world, sim};

const B_USER: &str = "arn:aws:iam::222222222222:user/b-user";
const B_ROOT: &str = "arn:aws:iam::222222222222:root";
const INSTANCE: &str = "i-0c0ffee0123456789";

/// Shares the seed instance under `alias/cross-ami` with `targets`; returns the image and the key.
fn share(world: &Path, targets: &[&str]) -> (String, String) {
    let mut args = vec![
        "--json",
        "share",
        "--instance",
        INSTANCE,
        "--create-key",
        "alias/cross-ami",
        "--volume-permission",
    ];
    args.extend_from_slice(targets);
    let report: Value = serde_json::from_str(&ok(&sim(world, "a-admin", &args))).unwrap();
    let region = &report["regions"][0];
    (
        region["image"].as_str().unwrap().to_owned(),
        region["key"].as_str().unwrap().to_owned(),
    )
}

#[test]
fn a_share_narrowed_to_ec2_is_accepted_through_its_launch_and_copy() {
    for narrowing in [
        &["--via-service"][..],
        &["--via-service", "--caller-account"],
    ] {
        for target in [["--principal", B_USER], ["--to", "222222222222"]] {
            let (_dir, world) = seed_world();
            let mut targets = target.to_vec();
            targets.extend_from_slice(narrowing);
            let (image, key) = share(&world, &targets);
            let case = format!("{targets:?}");

            // The doctor passes, and accept succeeds: the key is used through EC2.
            let out = sim(
                &world,
                "b-user",
                &["doctor", "--image", &image, "--intent", "both"],
            );
            let text = ok(&out);
            assert!(text.contains("every link holds"), "{case}: {text}");
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
                    "--copy-key",
                    "default",
                ],
            );
            let text = ok(&out);
            assert!(text.contains("key-through-ec2"), "{case}: {text}");
            assert!(text.contains("the smoke instance ran"), "{case}: {text}");

            // Without a launch or a copy nothing can show the key usable: exit 1.
            let out = sim(
                &world,
                "b-user",
                &["accept", "--image", &image, "--key", &key],
            );
            assert_eq!(out.status.code(), Some(1), "{case}");
            let stderr = String::from_utf8_lossy(&out.stderr);
            assert!(stderr.contains("only through EC2"), "{case}: {stderr}");
            assert!(stderr.contains(&key), "{case}: {stderr}");
        }
    }
}

#[test]
fn unshare_of_one_principal_keeps_what_the_account_root_still_needs() {
    let (_dir, world) = seed_world();
    let (image, _key) = share(&world, &["--principal", B_USER]);
    let (again, _) = share(&world, &["--to", "222222222222"]);
    assert_eq!(again, image, "one shared copy");

    // The dry run says what it would keep, and changes nothing.
    let before = std::fs::read(&world).unwrap();
    let args = ["unshare", "--image", image.as_str(), "--principal", B_USER];
    let mut dry = vec!["--dry-run"];
    dry.extend_from_slice(&args);
    let out = sim(&world, "a-admin", &dry);
    ok(&out);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("kept: account 222222222222"), "{stderr}");
    assert!(stderr.contains(B_ROOT), "{stderr}");
    assert_eq!(std::fs::read(&world).unwrap(), before);

    let text = ok(&sim(&world, "a-admin", &args));
    assert!(text.contains("kept: account 222222222222"), "{text}");
    assert!(text.contains(B_ROOT), "{text}");
    // b-user is out of amishare's statements, but the account root they
    // still name delegates to the account's IAM, which allows b-user: it
    // still launches, so its account's launch permission had to stay.
    let text = ok(&sim(&world, "b-user", &["doctor", "--image", &image]));
    assert!(text.contains("every link holds"), "{text}");
    ok(&sim(
        &world,
        "b-user",
        &["accept", "--image", &image, "--launch"],
    ));

    // Unsharing the account too removes the permissions.
    let text = ok(&sim(
        &world,
        "a-admin",
        &["unshare", "--image", &image, "--to", "222222222222"],
    ));
    assert!(!text.contains("kept:"), "{text}");
    assert!(text.contains("removed account 222222222222"), "{text}");
    let out = sim(&world, "b-user", &["doctor", "--image", &image]);
    assert_eq!(out.status.code(), Some(1));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("FAIL image.shared"), "{text}");
}

#[test]
fn fix_for_an_account_that_cannot_see_the_image_changes_nothing_and_says_why() {
    let (_dir, world) = seed_world();
    let (image, _key) = share(&world, &["--principal", B_USER]);
    let before = std::fs::read(&world).unwrap();
    let out = sim(
        &world,
        "a-admin",
        &[
            "doctor",
            "--image",
            &image,
            "--principal",
            "arn:aws:iam::333333333333:user/c-user",
            "--fix",
        ],
    );
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("is not shared with account 333333333333"),
        "{stderr}"
    );
    assert!(stderr.contains("shares it first"), "{stderr}");
    assert_eq!(std::fs::read(&world).unwrap(), before, "nothing changed");
}

#[test]
fn status_lists_the_smoke_instance_kept_running() {
    let (_dir, world) = seed_world();
    let (image, key) = share(&world, &["--principal", B_USER]);
    ok(&sim(
        &world,
        "b-user",
        &[
            "accept", "--image", &image, "--key", &key, "--launch", "--keep",
        ],
    ));
    let text = ok(&sim(
        &world,
        "a-admin",
        &["--target-profile", "b-user", "status", "--image", &image],
    ));
    assert!(text.contains("smoke instance i-"), "{text}");
    assert!(text.contains(&format!("of image {image}")), "{text}");
    assert!(text.contains("kept with --keep"), "{text}");
    // A later accept leaves a kept instance alone.
    ok(&sim(
        &world,
        "b-user",
        &["accept", "--image", &image, "--key", &key, "--launch"],
    ));
    let text = ok(&sim(
        &world,
        "a-admin",
        &["--target-profile", "b-user", "status", "--image", &image],
    ));
    assert_eq!(text.matches("smoke instance i-").count(), 1, "{text}");
}

//! EC2's `DryRun`: the call is authorized as without it, then answers
//! `DryRunOperation` (412) or `UnauthorizedOperation` (403) and changes
//! nothing.

use serde_json::{json, Value};

use crate::support::{Harness, OWNER_KEY, REGION, SEED_INSTANCE, SEED_WORLD};

/// An access key of the owner's account whose user may only describe.
const READER_KEY: &str = "AKIAAREADEREXAMPLE01";

/// The seed world with a user of the owner's account allowed `ec2:Describe*` only.
fn world_with_reader() -> String {
    let mut world: Value = serde_json::from_str(SEED_WORLD).unwrap();
    let arn = "arn:aws:iam::111111111111:user/a-reader";
    world["access_keys"][READER_KEY] = json!({ "principal": arn, "secret_access_key": "wJalrXUtnFEMI/K7MDENG/bPxRfiCYREADEREXAMPLE" });
    let owner = world["accounts"]
        .as_array_mut()
        .unwrap()
        .iter_mut()
        .find(|account| account["id"] == "111111111111")
        .unwrap();
    owner["principals"].as_array_mut().unwrap().push(json!({
        "arn": arn,
        "policies": [{
            "Version": "2012-10-17",
            "Statement": [{ "Effect": "Allow", "Action": "ec2:Describe*", "Resource": "*" }]
        }]
    }));
    world.to_string()
}

#[tokio::test]
async fn a_dry_run_answers_whether_the_call_is_allowed_and_changes_nothing() {
    let server = Harness::start(&world_with_reader(), 1.0).await;
    let terminate = [
        ("Action", "TerminateInstances"),
        ("InstanceId.1", SEED_INSTANCE),
        ("DryRun", "true"),
    ];
    let create_image = [
        ("Action", "CreateImage"),
        ("InstanceId", SEED_INSTANCE),
        ("Name", "golden"),
        ("DryRun", "true"),
    ];
    let describe = [("Action", "DescribeInstances"), ("DryRun", "true")];
    for (key, params, status, code) in [
        (OWNER_KEY, &terminate[..], 412, "DryRunOperation"),
        (OWNER_KEY, &create_image[..], 412, "DryRunOperation"),
        (OWNER_KEY, &describe[..], 412, "DryRunOperation"),
        (READER_KEY, &describe[..], 412, "DryRunOperation"),
        (READER_KEY, &terminate[..], 403, "UnauthorizedOperation"),
        (READER_KEY, &create_image[..], 403, "UnauthorizedOperation"),
    ] {
        let answer = server.ec2(key, REGION, params).await;
        assert_eq!(
            (answer.status, answer.ec2_code()),
            (status, code.to_owned()),
            "{key} {params:?}: {}",
            answer.body
        );
    }
    // Nothing happened: the instance runs and no image was made.
    let instances = server
        .ec2(OWNER_KEY, REGION, &[("Action", "DescribeInstances")])
        .await
        .ok();
    assert_eq!(
        instances.texts("reservationSet/item/instancesSet/item/instanceState/name"),
        ["running"]
    );
    let images = server
        .ec2(
            OWNER_KEY,
            REGION,
            &[("Action", "DescribeImages"), ("Owner.1", "self")],
        )
        .await
        .ok();
    assert!(
        images.texts("imagesSet/item/imageId").is_empty(),
        "{}",
        images.body
    );
    // Without DryRun the same calls take effect.
    let image = server.image_seed_instance().await;
    assert!(image.starts_with("ami-"), "{image}");
}

/// A dry run of a launch of several instances answers what the real launch
/// answers: `DryRunOperation` exactly when the real call launches them all,
/// and the real call's error otherwise (`docs/spec/ec2.md` §B16).
#[tokio::test]
async fn a_dry_run_of_several_instances_answers_as_the_real_launch() {
    let server = Harness::start(&world_with_reader(), 10_000.0).await;
    let image = server.image_seed_instance().await;
    server.until_available(&image).await;
    let count = || async {
        server
            .ec2(OWNER_KEY, REGION, &[("Action", "DescribeInstances")])
            .await
            .ok()
            .texts("reservationSet/item/instancesSet/item/instanceId")
            .len()
    };
    for (what, key, min, max, real) in [
        ("three allowed", OWNER_KEY, "3", "3", "3 instances"),
        (
            "three refused",
            READER_KEY,
            "3",
            "3",
            "UnauthorizedOperation",
        ),
        (
            "MinCount above MaxCount",
            OWNER_KEY,
            "3",
            "2",
            "InvalidParameterValue",
        ),
        (
            "more than one call launches",
            OWNER_KEY,
            "1",
            "21",
            "InstanceLimitExceeded",
        ),
    ] {
        let launch = [
            ("Action", "RunInstances"),
            ("ImageId", image.as_str()),
            ("InstanceType", "t3.micro"),
            ("MinCount", min),
            ("MaxCount", max),
        ];
        let before = count().await;
        let mut dry = launch.to_vec();
        dry.push(("DryRun", "true"));
        let dry = server.ec2(key, REGION, &dry).await;
        assert_eq!(
            count().await,
            before,
            "{what}: the dry run launched nothing"
        );
        let wet = server.ec2(key, REGION, &launch).await;
        let answered = match wet.status {
            200 => format!(
                "{} instances",
                wet.texts("instancesSet/item/instanceId").len()
            ),
            _ => wet.ec2_code(),
        };
        assert_eq!(answered, real, "{what}: {}", wet.body);
        let expected = match wet.status {
            200 => (412, "DryRunOperation".to_owned()),
            status => (status, wet.ec2_code()),
        };
        assert_eq!(
            (dry.status, dry.ec2_code()),
            expected,
            "{what}: {}",
            dry.body
        );
    }
}

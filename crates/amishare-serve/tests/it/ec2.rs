//! EC2 over the wire: the seed flow, each answer checked for its fields and
//! for using only the element names AWS sends (as recorded in
//! `testdata/replay/ec2/`), and bad requests answered with AWS's errors
//! (as recorded in `testdata/errors/ec2/`).

use serde_json::json;

use crate::support::{
    assert_known_paths, recorded_paths, signature, testdata, xml_paths, Answer, Harness, OWNER,
    OWNER_KEY, REGION, SEED_INSTANCE, TARGET, TARGET_KEY,
};

/// Element names of the EC2 API model (botocore's `ec2/2016-11-15`
/// `Instance` shape) that the recorded `DescribeInstances` answer happens
/// not to carry.
const INSTANCE_MODEL_EXTRAS: &[&str] = &[
    "reservationSet/item/instancesSet/item/amiLaunchIndex",
    "reservationSet/item/instancesSet/item/rootDeviceType",
    "reservationSet/item/instancesSet/item/rootDeviceName",
];

/// Asserts that an answer is `<{action}Response>` with the request ID first
/// and only element names of the recorded AWS answer.
#[track_caller]
fn check_names(answer: &Answer, action: &str, recording: &str, extra: &[&str]) {
    assert_eq!(
        answer.root(),
        format!("{action}Response"),
        "{}",
        answer.body
    );
    assert!(
        answer
            .body
            .contains("xmlns=\"http://ec2.amazonaws.com/doc/2016-11-15/\""),
        "{}",
        answer.body
    );
    assert_eq!(answer.text("requestId"), answer.request_id);
    assert_eq!(answer.content_type, "text/xml;charset=UTF-8");
    assert_known_paths(action, &answer.paths(), &recorded_paths(recording), extra);
}

/// Sends one EC2 request in the test region as `key`, expects it to
/// succeed, and checks its element names against the recorded AWS answer.
async fn answered(
    server: &Harness,
    key: &str,
    params: &[(&str, &str)],
    recording: &str,
    extra: &[&str],
) -> Answer {
    let action = params
        .iter()
        .find_map(|(name, value)| (*name == "Action").then_some(*value))
        .expect("the request names its Action");
    let answer = server.ec2(key, REGION, params).await.ok();
    check_names(&answer, action, recording, extra);
    answer
}

#[tokio::test]
async fn the_seed_flow_over_ec2_answers_as_aws_does() {
    let server = Harness::seed(10_000.0).await;
    let key_arn = server.create_key("seed").await;

    // The owner images its instance.
    let created = answered(
        &server,
        OWNER_KEY,
        &[
            ("Action", "CreateImage"),
            ("InstanceId", SEED_INSTANCE),
            ("Name", "golden"),
            ("TagSpecification.1.ResourceType", "image"),
            ("TagSpecification.1.Tag.1.Key", "amishare:source-instance"),
            ("TagSpecification.1.Tag.1.Value", SEED_INSTANCE),
        ],
        "ec2/create_image.xml",
        &[],
    )
    .await;
    let image = created.text("imageId");
    let seen = server
        .poll(
            OWNER_KEY,
            &[("Action", "DescribeImages"), ("ImageId.1", &image)],
            "imagesSet/item/imageState",
            "available",
        )
        .await;
    assert_eq!(seen, ["pending", "available"]);
    let by_tag = server
        .ec2(
            OWNER_KEY,
            REGION,
            &[
                ("Action", "DescribeImages"),
                ("Owner.1", "self"),
                ("Filter.1.Name", "tag:amishare:source-instance"),
                ("Filter.1.Value.1", SEED_INSTANCE),
            ],
        )
        .await
        .ok();
    assert_eq!(by_tag.texts("imagesSet/item/imageId"), [image.as_str()]);
    assert_eq!(
        by_tag.texts("imagesSet/item/tagSet/item/value"),
        [SEED_INSTANCE]
    );

    // … copies it encrypted under the key; a retry with the token is the same copy.
    let copy_params = [
        ("Action", "CopyImage"),
        ("SourceImageId", image.as_str()),
        ("SourceRegion", REGION),
        ("Name", "golden-encrypted"),
        ("Encrypted", "true"),
        ("KmsKeyId", key_arn.as_str()),
        ("ClientToken", "copy-1"),
    ];
    let copied = answered(&server, OWNER_KEY, &copy_params, "ec2/copy_image.xml", &[]).await;
    let copy = copied.text("imageId");
    let again = server.ec2(OWNER_KEY, REGION, &copy_params).await.ok();
    assert_eq!(again.text("imageId"), copy);
    server
        .poll(
            OWNER_KEY,
            &[("Action", "DescribeImages"), ("ImageId.1", &copy)],
            "imagesSet/item/imageState",
            "available",
        )
        .await;
    let described = answered(
        &server,
        OWNER_KEY,
        &[("Action", "DescribeImages"), ("ImageId.1", &copy)],
        "ec2/describe_images.xml",
        &[],
    )
    .await;
    assert_eq!(described.text("imagesSet/item/imageOwnerId"), OWNER);
    assert_eq!(described.text("imagesSet/item/name"), "golden-encrypted");
    assert_eq!(described.text("imagesSet/item/isPublic"), "false");
    assert_eq!(described.text("imagesSet/item/sourceImageId"), image);
    assert_eq!(described.text("imagesSet/item/sourceImageRegion"), REGION);
    assert_eq!(
        described.texts("imagesSet/item/blockDeviceMapping/item/ebs/encrypted"),
        ["true"]
    );
    let snapshot = described.text("imagesSet/item/blockDeviceMapping/item/ebs/snapshotId");

    // … checks the snapshot's key.
    let snapshots = answered(
        &server,
        OWNER_KEY,
        &[("Action", "DescribeSnapshots"), ("SnapshotId.1", &snapshot)],
        "ec2/describe_snapshots_page1.xml",
        &[],
    )
    .await;
    assert_eq!(snapshots.text("snapshotSet/item/kmsKeyId"), key_arn);
    assert_eq!(snapshots.text("snapshotSet/item/encrypted"), "true");
    assert_eq!(snapshots.text("snapshotSet/item/status"), "completed");
    assert_eq!(snapshots.text("snapshotSet/item/ownerId"), OWNER);
    let own = server
        .ec2(
            OWNER_KEY,
            REGION,
            &[("Action", "DescribeSnapshots"), ("Owner.1", "self")],
        )
        .await
        .ok();
    assert!(own.texts("snapshotSet/item/snapshotId").contains(&snapshot));

    // The target cannot see the copy before it is shared.
    let hidden = server
        .ec2(
            TARGET_KEY,
            REGION,
            &[("Action", "DescribeImages"), ("ImageId.1", &copy)],
        )
        .await;
    assert_eq!(
        (hidden.status, hidden.ec2_code()),
        (400, "InvalidAMIID.NotFound".to_owned())
    );

    // The owner shares the image and its snapshot.
    let modified = answered(
        &server,
        OWNER_KEY,
        &[
            ("Action", "ModifyImageAttribute"),
            ("ImageId", &copy),
            ("LaunchPermission.Add.1.UserId", TARGET),
        ],
        "ec2/modify_image_attribute.xml",
        &[],
    )
    .await;
    assert_eq!(modified.text("return"), "true");
    let attribute = answered(
        &server,
        OWNER_KEY,
        &[
            ("Action", "DescribeImageAttribute"),
            ("ImageId", &copy),
            ("Attribute", "launchPermission"),
        ],
        "ec2/describe_image_attribute.xml",
        &[],
    )
    .await;
    assert_eq!(attribute.texts("launchPermission/item/userId"), [TARGET]);
    answered(
        &server,
        OWNER_KEY,
        &[
            ("Action", "ModifySnapshotAttribute"),
            ("SnapshotId", &snapshot),
            ("Attribute", "createVolumePermission"),
            ("OperationType", "add"),
            ("UserId.1", TARGET),
        ],
        "ec2/modify_snapshot_attribute.xml",
        &[],
    )
    .await;
    let volume_permission = answered(
        &server,
        OWNER_KEY,
        &[
            ("Action", "DescribeSnapshotAttribute"),
            ("SnapshotId", &snapshot),
            ("Attribute", "createVolumePermission"),
        ],
        "ec2/describe_snapshot_attribute.xml",
        &[],
    )
    .await;
    assert_eq!(
        volume_permission.texts("createVolumePermission/item/userId"),
        [TARGET]
    );

    // The target finds it, and, once the key policy allows it, launches it.
    let launchable = server
        .ec2(
            TARGET_KEY,
            REGION,
            &[("Action", "DescribeImages"), ("ExecutableBy.1", "self")],
        )
        .await
        .ok();
    assert_eq!(launchable.texts("imagesSet/item/imageId"), [copy.as_str()]);
    let policy = std::fs::read_to_string(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/seed-key-policy.json"),
    )
    .unwrap();
    server
        .kms(
            OWNER_KEY,
            REGION,
            "PutKeyPolicy",
            json!({"KeyId": key_arn, "PolicyName": "default", "Policy": policy}),
        )
        .await
        .ok();
    let run = server
        .ec2(
            TARGET_KEY,
            REGION,
            &[
                ("Action", "RunInstances"),
                ("ImageId", &copy),
                ("InstanceType", "t3.micro"),
                ("MinCount", "1"),
                ("MaxCount", "1"),
                ("BlockDeviceMapping.1.DeviceName", "/dev/xvda"),
                ("BlockDeviceMapping.1.Ebs.Encrypted", "true"),
                ("BlockDeviceMapping.1.Ebs.KmsKeyId", &key_arn),
            ],
        )
        .await
        .ok();
    // A reservation's instances have the same elements in both answers.
    let instance_paths: Vec<String> = recorded_paths("ec2/describe_instances.xml")
        .iter()
        .map(String::as_str)
        .chain(INSTANCE_MODEL_EXTRAS.iter().copied())
        .filter_map(|path| path.strip_prefix("reservationSet/item/"))
        .map(str::to_owned)
        .collect();
    let instance_paths: Vec<&str> = instance_paths.iter().map(String::as_str).collect();
    check_names(
        &run,
        "RunInstances",
        "ec2/run_instances.xml",
        &instance_paths,
    );
    assert_eq!(run.text("ownerId"), TARGET);
    assert_eq!(run.text("instancesSet/item/instanceState/name"), "pending");
    assert_eq!(run.text("instancesSet/item/instanceState/code"), "0");
    assert_eq!(run.text("instancesSet/item/instanceType"), "t3.micro");
    let instance = run.text("instancesSet/item/instanceId");
    let seen = server
        .poll(
            TARGET_KEY,
            &[("Action", "DescribeInstances"), ("InstanceId.1", &instance)],
            "reservationSet/item/instancesSet/item/instanceState/name",
            "running",
        )
        .await;
    // The instance boots in 0.4 s of wall time: on a loaded machine the
    // first poll may already see it running (RunInstances showed pending).
    assert!(
        seen == ["pending", "running"] || seen == ["running"],
        "{seen:?}"
    );
    let running = answered(
        &server,
        TARGET_KEY,
        &[("Action", "DescribeInstances"), ("InstanceId.1", &instance)],
        "ec2/describe_instances.xml",
        INSTANCE_MODEL_EXTRAS,
    )
    .await;
    assert_eq!(running.text("reservationSet/item/ownerId"), TARGET);
    assert_eq!(
        running.text("reservationSet/item/instancesSet/item/imageId"),
        copy
    );
    assert_eq!(
        running.text("reservationSet/item/instancesSet/item/instanceState/code"),
        "16"
    );
    let volumes = answered(
        &server,
        TARGET_KEY,
        &[
            ("Action", "DescribeVolumes"),
            ("Filter.1.Name", "attachment.instance-id"),
            ("Filter.1.Value.1", &instance),
        ],
        "ec2/describe_volumes.xml",
        &[],
    )
    .await;
    assert_eq!(
        volumes.texts("volumeSet/item/attachmentSet/item/instanceId"),
        [instance.as_str()]
    );
    assert_eq!(volumes.text("volumeSet/item/encrypted"), "true");
    assert_eq!(volumes.text("volumeSet/item/kmsKeyId"), key_arn);

    // EBS defaults, as the target sees them.
    let by_default = answered(
        &server,
        TARGET_KEY,
        &[("Action", "GetEbsEncryptionByDefault")],
        "ec2/get_ebs_encryption_by_default.xml",
        &[],
    )
    .await;
    assert_eq!(by_default.text("ebsEncryptionByDefault"), "false");
    let default_key = answered(
        &server,
        TARGET_KEY,
        &[("Action", "GetEbsDefaultKmsKeyId")],
        "ec2/get_ebs_default_kms_key_id.xml",
        &[],
    )
    .await;
    assert_eq!(default_key.text("kmsKeyId"), "alias/aws/ebs");

    // The target terminates its instance.
    let terminated = answered(
        &server,
        TARGET_KEY,
        &[
            ("Action", "TerminateInstances"),
            ("InstanceId.1", &instance),
        ],
        "ec2/terminate_instances.xml",
        &[],
    )
    .await;
    assert_eq!(
        terminated.text("instancesSet/item/previousState/name"),
        "running"
    );
    assert_eq!(
        terminated.text("instancesSet/item/currentState/name"),
        "shutting-down"
    );
    assert_eq!(terminated.text("instancesSet/item/currentState/code"), "32");

    // The owner cleans up: the copy's snapshot is in use until the copy goes.
    let in_use = server
        .ec2(
            OWNER_KEY,
            REGION,
            &[("Action", "DeleteSnapshot"), ("SnapshotId", &snapshot)],
        )
        .await;
    assert_eq!(
        (in_use.status, in_use.ec2_code()),
        (400, "InvalidSnapshot.InUse".to_owned())
    );
    assert_eq!(
        in_use.paths(),
        xml_paths(
            &std::fs::read_to_string(testdata().join("errors/ec2/InvalidSnapshot.InUse.xml"))
                .unwrap()
        )
    );
    let deregistered = answered(
        &server,
        OWNER_KEY,
        &[
            ("Action", "DeregisterImage"),
            ("ImageId", &image),
            ("DeleteAssociatedSnapshots", "true"),
        ],
        "ec2/deregister_image.xml",
        &[],
    )
    .await;
    assert_eq!(
        deregistered.texts("deleteSnapshotResultSet/item/returnCode"),
        ["success"]
    );
    server
        .ec2(
            OWNER_KEY,
            REGION,
            &[("Action", "DeregisterImage"), ("ImageId", &copy)],
        )
        .await
        .ok();
    answered(
        &server,
        OWNER_KEY,
        &[("Action", "DeleteSnapshot"), ("SnapshotId", &snapshot)],
        "ec2/delete_snapshot.xml",
        &[],
    )
    .await;
}

/// One bad request and the error it must get.
struct BadRequest {
    what: &'static str,
    params: &'static [(&'static str, &'static str)],
    status: u16,
    code: &'static str,
    /// The exact message, where it is AWS's and matters.
    message: Option<&'static str>,
}

const BAD_REQUESTS: &[BadRequest] = &[
    BadRequest {
        what: "an unknown action",
        params: &[("Action", "LaunchRocket")],
        status: 400,
        code: "InvalidAction",
        message: Some("The action LaunchRocket is not valid for this web service."),
    },
    BadRequest {
        what: "no action",
        params: &[("ImageId.1", "ami-0123456789abcdef0")],
        status: 400,
        code: "MissingAction",
        message: None,
    },
    BadRequest {
        what: "CreateImage without a name",
        params: &[("Action", "CreateImage"), ("InstanceId", SEED_INSTANCE)],
        status: 400,
        code: "MissingParameter",
        message: Some("The request must contain the parameter Name"),
    },
    BadRequest {
        what: "CreateImage of a malformed instance ID",
        params: &[
            ("Action", "CreateImage"),
            ("InstanceId", "i-xyz"),
            ("Name", "n"),
        ],
        status: 400,
        code: "InvalidInstanceID.Malformed",
        message: Some("Invalid id: \"i-xyz\" (expecting \"i-...\")"),
    },
    BadRequest {
        what: "DescribeImages of a malformed image ID",
        params: &[("Action", "DescribeImages"), ("ImageId.1", "ami-xyz")],
        status: 400,
        code: "InvalidAMIID.Malformed",
        message: None,
    },
    BadRequest {
        what: "DescribeSnapshots of a malformed snapshot ID",
        params: &[("Action", "DescribeSnapshots"), ("SnapshotId.1", "snap-zz")],
        status: 400,
        code: "InvalidSnapshotID.Malformed",
        message: None,
    },
    BadRequest {
        what: "DescribeInstances of an unknown instance",
        params: &[
            ("Action", "DescribeInstances"),
            ("InstanceId.1", "i-0123456789abcdef0"),
        ],
        status: 400,
        code: "InvalidInstanceID.NotFound",
        message: None,
    },
    BadRequest {
        what: "DescribeImages of an unknown image",
        params: &[
            ("Action", "DescribeImages"),
            ("ImageId.1", "ami-0123456789abcdef0"),
        ],
        status: 400,
        code: "InvalidAMIID.NotFound",
        message: None,
    },
    BadRequest {
        what: "DescribeImages with a filter the server does not apply",
        params: &[
            ("Action", "DescribeImages"),
            ("Filter.1.Name", "architecture"),
            ("Filter.1.Value.1", "x86_64"),
        ],
        status: 400,
        code: "InvalidParameterValue",
        message: Some("The filter 'architecture' is invalid"),
    },
    BadRequest {
        what: "CopyImage with a key but without Encrypted",
        params: &[
            ("Action", "CopyImage"),
            ("SourceImageId", "ami-0123456789abcdef0"),
            ("SourceRegion", REGION),
            ("Name", "n"),
            ("KmsKeyId", "alias/cross-ami"),
        ],
        status: 400,
        code: "InvalidParameterDependency",
        message: None,
    },
    BadRequest {
        what: "CopyImage from a malformed region",
        params: &[
            ("Action", "CopyImage"),
            ("SourceImageId", "ami-0123456789abcdef0"),
            ("SourceRegion", "moon"),
            ("Name", "n"),
        ],
        status: 400,
        code: "InvalidParameterValue",
        message: None,
    },
    BadRequest {
        what: "a launch permission for a malformed account",
        params: &[
            ("Action", "ModifyImageAttribute"),
            ("ImageId", "ami-0123456789abcdef0"),
            ("LaunchPermission.Add.1.UserId", "12345"),
        ],
        status: 400,
        code: "InvalidAMIAttributeItemValue",
        message: None,
    },
    BadRequest {
        what: "RunInstances without MinCount",
        params: &[
            ("Action", "RunInstances"),
            ("ImageId", "ami-0123456789abcdef0"),
            ("MaxCount", "1"),
        ],
        status: 400,
        code: "MissingParameter",
        message: Some("The request must contain the parameter MinCount"),
    },
    BadRequest {
        what: "RunInstances with a key but without Encrypted",
        params: &[
            ("Action", "RunInstances"),
            ("ImageId", "ami-0123456789abcdef0"),
            ("MinCount", "1"),
            ("MaxCount", "1"),
            ("BlockDeviceMapping.1.Ebs.KmsKeyId", "alias/cross-ami"),
        ],
        status: 400,
        code: "InvalidParameterDependency",
        message: None,
    },
    BadRequest {
        what: "TerminateInstances of nothing",
        params: &[("Action", "TerminateInstances")],
        status: 400,
        code: "MissingParameter",
        message: Some("The request must contain the parameter InstanceId"),
    },
    BadRequest {
        what: "a boolean that is not one",
        params: &[("Action", "DescribeImages"), ("DryRun", "maybe")],
        status: 400,
        code: "InvalidParameterValue",
        message: None,
    },
    BadRequest {
        what: "an image attribute the simulation does not model",
        params: &[
            ("Action", "DescribeImageAttribute"),
            ("ImageId", "ami-0123456789abcdef0"),
            ("Attribute", "description"),
        ],
        status: 400,
        code: "UnsupportedOperation",
        message: None,
    },
];

/// The code and message of a recorded EC2 error, for the errors whose AWS
/// wording the server reproduces.
fn recorded_message(code: &str) -> Option<String> {
    let path = testdata().join("errors/ec2").join(format!("{code}.xml"));
    let text = std::fs::read_to_string(path).ok()?;
    let doc = roxmltree::Document::parse(&text).unwrap();
    let message = doc
        .descendants()
        .find(|node| node.has_tag_name("Message"))?
        .text()?
        .to_owned();
    Some(message)
}

#[tokio::test]
async fn bad_requests_get_ec2_s_errors() {
    let server = Harness::seed(1.0).await;
    let envelope = xml_paths(
        &std::fs::read_to_string(testdata().join("errors/ec2/InvalidAMIID.NotFound.xml")).unwrap(),
    );
    for case in BAD_REQUESTS {
        let answer = server.ec2(OWNER_KEY, REGION, case.params).await;
        assert_eq!(answer.status, case.status, "{}: {}", case.what, answer.body);
        assert_eq!(
            answer.ec2_code(),
            case.code,
            "{}: {}",
            case.what,
            answer.body
        );
        assert_eq!(answer.paths(), envelope, "{}: {}", case.what, answer.body);
        assert_eq!(answer.text("RequestID"), answer.request_id, "{}", case.what);
        if let Some(message) = case.message {
            assert_eq!(
                answer.text("Errors/Error/Message"),
                message,
                "{}",
                case.what
            );
        }
    }
    // Where AWS's wording is recorded for the same input, the server's is the same.
    for (params, code) in [
        (
            &[("Action", "DescribeImages"), ("ImageId.1", "ami-xyz")][..],
            "InvalidAMIID.Malformed",
        ),
        (
            &[
                ("Action", "DescribeImages"),
                ("ImageId.1", "ami-0123456789abcdef0"),
            ][..],
            "InvalidAMIID.NotFound",
        ),
        (
            &[
                ("Action", "DescribeInstances"),
                ("InstanceId.1", "i-0123456789abcdef0"),
            ][..],
            "InvalidInstanceID.NotFound",
        ),
        (
            &[
                ("Action", "ModifyImageAttribute"),
                ("ImageId", "ami-0123456789abcdef0"),
                ("LaunchPermission.Add.1.UserId", "12345"),
            ][..],
            "InvalidAMIAttributeItemValue",
        ),
        (
            &[
                ("Action", "RunInstances"),
                ("ImageId", "ami-0123456789abcdef0"),
                ("MinCount", "1"),
                ("MaxCount", "1"),
                ("BlockDeviceMapping.1.Ebs.KmsKeyId", "alias/k"),
            ][..],
            "InvalidParameterDependency",
        ),
    ] {
        let answer = server.ec2(OWNER_KEY, REGION, params).await;
        assert_eq!(answer.ec2_code(), code);
        assert_eq!(
            Some(answer.text("Errors/Error/Message")),
            recorded_message(code),
            "{code}"
        );
    }
}

#[tokio::test]
async fn a_malformed_form_body_is_refused() {
    let server = Harness::seed(1.0).await;
    for body in [
        "Action=DescribeImages&ImageId.1=%zz",
        "Action=DescribeImages&Name=%ff",
    ] {
        let answer = server
            .send(
                "POST",
                "/",
                &[("authorization", signature(OWNER_KEY, REGION, "ec2"))],
                body.as_bytes().to_vec(),
            )
            .await;
        assert_eq!(
            (answer.status, answer.ec2_code()),
            (400, "MalformedQueryString".to_owned()),
            "{body}"
        );
    }
}

#[tokio::test]
async fn a_doomed_launch_terminates_with_ec2_s_state_reason() {
    // The key policy does not name the target yet: EC2 cannot use the key
    // on its behalf, and the instance dies at launch.
    let server = Harness::seed(10_000.0).await;
    let key_arn = server.create_key("").await;
    let image = server.image_seed_instance().await;
    server.until_available(&image).await;
    let copy = server
        .ec2(
            OWNER_KEY,
            REGION,
            &[
                ("Action", "CopyImage"),
                ("SourceImageId", &image),
                ("SourceRegion", REGION),
                ("Name", "golden-encrypted"),
                ("Encrypted", "true"),
                ("KmsKeyId", &key_arn),
            ],
        )
        .await
        .ok()
        .text("imageId");
    server
        .poll(
            OWNER_KEY,
            &[("Action", "DescribeImages"), ("ImageId.1", &copy)],
            "imagesSet/item/imageState",
            "available",
        )
        .await;
    server
        .ec2(
            OWNER_KEY,
            REGION,
            &[
                ("Action", "ModifyImageAttribute"),
                ("ImageId", &copy),
                ("Attribute", "launchPermission"),
                ("OperationType", "add"),
                ("UserId.1", TARGET),
            ],
        )
        .await
        .ok();
    let instance = server
        .ec2(
            TARGET_KEY,
            REGION,
            &[
                ("Action", "RunInstances"),
                ("ImageId", &copy),
                ("MinCount", "1"),
                ("MaxCount", "1"),
            ],
        )
        .await
        .ok()
        .text("instancesSet/item/instanceId");
    let path = "reservationSet/item/instancesSet/item/instanceState/name";
    let params = [
        ("Action", "DescribeInstances"),
        ("InstanceId.1", instance.as_str()),
    ];
    let seen = server.poll(TARGET_KEY, &params, path, "terminated").await;
    assert!(!seen.contains(&"running".to_owned()), "{seen:?}");
    let dead = server.ec2(TARGET_KEY, REGION, &params).await.ok();
    assert_eq!(
        dead.text("reservationSet/item/instancesSet/item/stateReason/code"),
        "Client.InternalError"
    );
    assert_eq!(
        dead.text("reservationSet/item/instancesSet/item/stateReason/message"),
        "Client.InternalError: Client error on launch"
    );
    assert_eq!(
        dead.text("reservationSet/item/instancesSet/item/reason"),
        "Client.InternalError: Client error on launch"
    );
}

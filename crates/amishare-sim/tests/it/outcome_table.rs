//! Every row of the end-to-end outcome table (`docs/spec/ec2.md` §B13).

use amishare_core::store::{
    ImageQuery, ImageState, ImageStore, InstanceState, KeyState, KeyStore, LaunchPermission,
    PermissionChange, SnapshotState, VolumePermission,
};
use amishare_core::ErrorKind;
use amishare_sim::VolumeEncryption;

use crate::fixture::{account, assert_error, kms_use_policy, region, Fx, B, EC2_ALL, OTHER_REGION};

#[tokio::test(start_paused = true)]
async fn share_image_encrypted_with_aws_ebs_is_refused() {
    let fx = Fx::new();
    let image = fx.image(VolumeEncryption::AwsEbs).await;
    let result = fx
        .owner
        .modify_launch_permission(
            &fx.region,
            &image,
            &PermissionChange::add(vec![LaunchPermission::Account(fx.b.clone())]),
        )
        .await;
    let err = assert_error(
        result,
        "InvalidParameter",
        "Snapshots encrypted with the AWS Managed CMK can't be shared. Specify another snapshot.",
    );
    assert_eq!(err.kind(), ErrorKind::Unsupported);
    assert!(fx
        .owner
        .describe_launch_permission(&fx.region, &image)
        .await
        .unwrap()
        .is_empty());
}

#[tokio::test(start_paused = true)]
async fn share_snapshot_encrypted_with_aws_ebs_is_refused() {
    let fx = Fx::new();
    let image = fx.image(VolumeEncryption::AwsEbs).await;
    let snapshot = fx.snapshots_of(&fx.owner, &image).await.remove(0);
    let result = fx
        .owner
        .modify_create_volume_permission(
            &fx.region,
            &snapshot.id,
            &PermissionChange::add(vec![VolumePermission::Account(fx.b.clone())]),
        )
        .await;
    assert_error(
        result,
        "OperationNotPermitted",
        "Encrypted snapshots with EBS default key cannot be shared",
    );
}

#[tokio::test(start_paused = true)]
async fn making_an_encrypted_image_public_is_refused() {
    let fx = Fx::new();
    let key = fx.cmk().await;
    let image = fx.encrypted_image(&key).await;
    let result = fx
        .owner
        .modify_launch_permission(
            &fx.region,
            &image,
            &PermissionChange::add(vec![LaunchPermission::Public]),
        )
        .await;
    assert_error(
        result,
        "UnsupportedOperation",
        "Encrypted snapshots can\u{2019}t be shared publicly. Specify another snapshot.",
    );
    assert!(!fx.image_of(&fx.owner, &image).await.public);
}

/// How the target is set up for a launch row.
struct LaunchRow {
    name: &'static str,
    /// Key-policy grantees (`{B}` is the target account, `{P}` the launching principal).
    grantees: &'static [&'static str],
    /// Whether the launching principal's IAM policy allows the key.
    target_iam: bool,
    /// Launch as a role rather than a user.
    as_role: bool,
    key_state: KeyState,
    /// `None`: the instance runs; `Some(code, message)`: it terminates with this reason.
    expect: Option<(&'static str, &'static str)>,
    /// What KMS told EC2, for the failing rows.
    cause: &'static str,
}

const CLIENT_ERROR: Option<(&str, &str)> = Some((
    "Client.InternalError",
    "Client.InternalError: Client error on launch",
));

const LAUNCH_ROWS: &[LaunchRow] = &[
    LaunchRow {
        name: "key policy not updated",
        grantees: &[],
        target_iam: true,
        as_role: false,
        key_state: KeyState::Enabled,
        expect: CLIENT_ERROR,
        cause: "because no resource-based policy allows the kms:",
    },
    LaunchRow {
        name: "key policy allows the target root, target IAM has no KMS allow",
        grantees: &["arn:aws:iam::{B}:root"],
        target_iam: false,
        as_role: false,
        key_state: KeyState::Enabled,
        expect: CLIENT_ERROR,
        cause: "because no identity-based policy allows the kms:",
    },
    LaunchRow {
        name: "key policy names the target role, no target IAM",
        grantees: &["{P}"],
        target_iam: false,
        as_role: true,
        key_state: KeyState::Enabled,
        expect: CLIENT_ERROR,
        cause: "because no identity-based policy allows the kms:",
    },
    LaunchRow {
        name: "key policy and target IAM correct, key disabled",
        grantees: &["{P}"],
        target_iam: true,
        as_role: false,
        key_state: KeyState::Disabled,
        expect: CLIENT_ERROR,
        cause: "is disabled.",
    },
    LaunchRow {
        name: "key policy allows the target root and target IAM allows",
        grantees: &["arn:aws:iam::{B}:root"],
        target_iam: true,
        as_role: false,
        key_state: KeyState::Enabled,
        expect: None,
        cause: "",
    },
    LaunchRow {
        name: "key policy names the target role and target IAM allows",
        grantees: &["{P}"],
        target_iam: true,
        as_role: true,
        key_state: KeyState::Enabled,
        expect: None,
        cause: "",
    },
];

#[tokio::test(start_paused = true)]
async fn launches_of_a_shared_encrypted_image() {
    for row in LAUNCH_ROWS {
        let fx = Fx::new();
        let key = fx.cmk().await;
        let image = fx.encrypted_image(&key).await;
        fx.share(&image, &fx.b).await;

        let iam = kms_use_policy(&key);
        let mut policies = vec![EC2_ALL];
        if row.target_iam {
            policies.push(&iam);
        }
        let principal = if row.as_role {
            fx.world.add_role(&fx.b, "launcher", &policies).unwrap()
        } else {
            fx.world.add_user(&fx.b, "launcher", &policies).unwrap()
        };
        let grantees: Vec<String> = row
            .grantees
            .iter()
            .map(|g| g.replace("{B}", B).replace("{P}", principal.as_str()))
            .collect();
        let grantees: Vec<&str> = grantees.iter().map(String::as_str).collect();
        fx.owner
            .put_key_policy(
                &key,
                &crate::fixture::seed_key_policy(crate::fixture::A, &grantees),
            )
            .await
            .unwrap();
        fx.world.set_key_state(&key, row.key_state).unwrap();

        let client = fx.client(&principal);
        let launched = fx.launch(&client, &image).await;
        assert_eq!(launched.state, InstanceState::Pending, "{}", row.name);
        assert_eq!(launched.state_reason, None, "{}", row.name);

        fx.advance(16);
        let early = fx.instance(&client, &launched.id).await;
        fx.advance(30);
        let late = fx.instance(&client, &launched.id).await;
        match row.expect {
            Some((code, message)) => {
                assert_eq!(early.state, InstanceState::ShuttingDown, "{}", row.name);
                assert_eq!(late.state, InstanceState::Terminated, "{}", row.name);
                let reason = late.state_reason.expect(row.name);
                assert_eq!(
                    (reason.code.as_str(), reason.message.as_str()),
                    (code, message),
                    "{}",
                    row.name
                );
                let detail = fx
                    .world
                    .failure_detail(launched.id.as_str())
                    .expect(row.name);
                assert!(detail.contains(row.cause), "{}: {detail}", row.name);
                assert!(
                    detail.contains(key.key_id().as_str()),
                    "{}: {detail}",
                    row.name
                );
                // No grant is left behind by a launch that failed.
                assert!(
                    fx.owner.list_grants(&key).await.unwrap().is_empty(),
                    "{}",
                    row.name
                );
            }
            None => {
                assert_eq!(early.state, InstanceState::Pending, "{}", row.name);
                assert_eq!(late.state, InstanceState::Running, "{}", row.name);
                assert_eq!(late.state_reason, None, "{}", row.name);
                assert_eq!(
                    fx.owner.list_grants(&key).await.unwrap().len(),
                    1,
                    "{}",
                    row.name
                );
            }
        }
    }
}

#[tokio::test(start_paused = true)]
async fn target_copy_without_snapshot_permission_fails_at_once() {
    let fx = Fx::new();
    let key = fx.shared_cmk(&[&format!("arn:aws:iam::{B}:root")]).await;
    let image = fx.encrypted_image(&key).await;
    fx.share(&image, &fx.b).await;
    let target = fx.world.root_client(&fx.b).unwrap();
    let mutating = fx.world.mutating_calls();
    let result = target
        .copy_image(&fx.region, &fx.copy_request(&image, "copy", None))
        .await;
    let err = assert_error(
        result,
        "InvalidRequest",
        "You do not have permission to access the storage of this ami",
    );
    assert_eq!(
        err.message(),
        "You do not have permission to access the storage of this ami"
    );
    assert_eq!(fx.world.mutating_calls(), mutating + 1);
    assert!(target
        .describe_images(
            &fx.region,
            &ImageQuery {
                owners: vec![amishare_core::store::ImageOwner::Me],
                ..Default::default()
            }
        )
        .await
        .unwrap()
        .is_empty());
}

#[tokio::test(start_paused = true)]
async fn target_copy_with_snapshot_permission_and_kms_access_succeeds() {
    let fx = Fx::new();
    let key = fx.shared_cmk(&[&format!("arn:aws:iam::{B}:root")]).await;
    let image = fx.encrypted_image(&key).await;
    fx.share(&image, &fx.b).await;
    fx.share_snapshots(&image, &fx.b).await;
    let target = fx.world.root_client(&fx.b).unwrap();

    // With the target's own key.
    let target_key = target
        .create_key(&fx.region, &Default::default())
        .await
        .unwrap()
        .arn;
    let with_key = target
        .copy_image(
            &fx.region,
            &fx.copy_request(&image, "copy-cmk", Some(&target_key)),
        )
        .await
        .unwrap();
    // With no key: the target's default EBS key.
    let mut request = fx.copy_request(&image, "copy-default", None);
    request.encrypted = None;
    let with_default = target.copy_image(&fx.region, &request).await.unwrap();
    fx.advance(4 * 60 + 80);

    let aws_ebs = fx.world.aws_ebs_key(&fx.b, &fx.region).unwrap();
    for (copy, expected_key) in [(with_key, target_key), (with_default, aws_ebs)] {
        let described = fx.image_of(&target, &copy).await;
        assert_eq!(described.owner, fx.b);
        assert_eq!(described.state, ImageState::Available);
        assert_eq!(described.source_image.as_ref(), Some(&image));
        let snapshots = fx.snapshots_of(&target, &copy).await;
        assert_eq!(snapshots.len(), 1);
        assert_eq!(snapshots[0].owner, fx.b);
        assert!(snapshots[0].encrypted);
        assert_eq!(snapshots[0].kms_key.as_ref(), Some(&expected_key));
        assert_eq!(snapshots[0].state, SnapshotState::Completed);
    }
}

#[tokio::test(start_paused = true)]
async fn target_copy_without_kms_access_fails_later() {
    let fx = Fx::new();
    // The key policy names B, but B's user has no IAM allow for the key.
    let key = fx.shared_cmk(&[&format!("arn:aws:iam::{B}:root")]).await;
    let image = fx.encrypted_image(&key).await;
    fx.share(&image, &fx.b).await;
    fx.share_snapshots(&image, &fx.b).await;
    let (_, target) = fx.target_user("copier", None);

    let copy = target
        .copy_image(&fx.region, &fx.copy_request(&image, "copy", None))
        .await
        .unwrap();
    assert_eq!(fx.image_of(&target, &copy).await.state, ImageState::Pending);
    fx.advance(60);
    let failed = fx.image_of(&target, &copy).await;
    assert_eq!(failed.state, ImageState::Failed);
    let reason = failed.state_reason.unwrap();
    assert_eq!(reason.code, "Server.InternalError");
    assert_eq!(reason.message, "Copy image failed with an internal error");
    let snapshots = fx.snapshots_of(&target, &copy).await;
    assert_eq!(snapshots[0].state, SnapshotState::Error);
    assert_eq!(
        snapshots[0].state_message.as_deref(),
        Some("Given key ID is not accessible")
    );
    let detail = fx.world.failure_detail(copy.as_str()).unwrap();
    assert!(
        detail.contains("AccessDeniedException") && detail.contains(key.to_string().as_str()),
        "{detail}"
    );
}

#[tokio::test(start_paused = true)]
async fn copy_with_a_key_of_another_region_fails_later() {
    let fx = Fx::new();
    let image = fx.image(VolumeEncryption::Unencrypted).await;
    let elsewhere = fx
        .owner
        .create_key(&region(OTHER_REGION), &Default::default())
        .await
        .unwrap()
        .arn;
    let copy = fx
        .owner
        .copy_image(
            &fx.region,
            &fx.copy_request(&image, "copy", Some(&elsewhere)),
        )
        .await
        .unwrap();
    assert_eq!(
        fx.image_of(&fx.owner, &copy).await.state,
        ImageState::Pending
    );
    fx.advance(60);
    let failed = fx.image_of(&fx.owner, &copy).await;
    assert_eq!(failed.state, ImageState::Failed);
    let reason = failed.state_reason.unwrap();
    assert_eq!(
        (reason.code.as_str(), reason.message.as_str()),
        (
            "Server.InternalError",
            "Copy image failed with an internal error"
        )
    );
    assert_eq!(
        fx.snapshots_of(&fx.owner, &copy).await[0].state,
        SnapshotState::Error
    );
    let detail = fx.world.failure_detail(copy.as_str()).unwrap();
    assert!(
        detail.contains(&format!("Invalid arn {OTHER_REGION}")),
        "{detail}"
    );
}

#[tokio::test(start_paused = true)]
async fn target_cannot_see_the_image_before_sharing() {
    let fx = Fx::new();
    let key = fx.cmk().await;
    let image = fx.encrypted_image(&key).await;
    let target = fx.world.root_client(&fx.b).unwrap();
    let err = assert_error(
        target
            .describe_images(&fx.region, &ImageQuery::ids([image.clone()]))
            .await,
        "InvalidAMIID.NotFound",
        "",
    );
    assert_eq!(
        err.message(),
        format!("The image id '[{image}]' does not exist")
    );
    assert_eq!(err.kind(), ErrorKind::NotFound);
    // Launching is refused the same way.
    assert_error(
        target
            .run_instances(&fx.region, &Fx::run_request(&image))
            .await,
        "InvalidAMIID.NotFound",
        image.as_str(),
    );
    fx.share(&image, &fx.b).await;
    assert_eq!(fx.image_of(&target, &image).await.id, image);
}

#[tokio::test(start_paused = true)]
async fn owner_cannot_delete_a_snapshot_of_a_registered_image() {
    let fx = Fx::new();
    let image = fx.image(VolumeEncryption::Unencrypted).await;
    let snapshot = fx.snapshots_of(&fx.owner, &image).await.remove(0);
    let err = assert_error(
        fx.owner.delete_snapshot(&fx.region, &snapshot.id).await,
        "InvalidSnapshot.InUse",
        "",
    );
    assert_eq!(
        err.message(),
        format!(
            "The snapshot {} is currently in use by {image}",
            snapshot.id
        )
    );
    assert_eq!(err.kind(), ErrorKind::Conflict);
    fx.owner
        .deregister_image(&fx.region, &image, false)
        .await
        .unwrap();
    fx.owner
        .delete_snapshot(&fx.region, &snapshot.id)
        .await
        .unwrap();
    assert_error(
        fx.owner
            .describe_snapshots(&fx.region, std::slice::from_ref(&snapshot.id))
            .await,
        "InvalidSnapshot.NotFound",
        snapshot.id.as_str(),
    );
}

#[tokio::test(start_paused = true)]
async fn unused_account_is_not_involved() {
    // Sanity of the fixture: C exists and sees nothing of A's.
    let fx = Fx::new();
    let image = fx.image(VolumeEncryption::Unencrypted).await;
    let c = fx.world.root_client(&account(crate::fixture::C)).unwrap();
    assert!(c
        .describe_images(&fx.region, &ImageQuery::default())
        .await
        .unwrap()
        .is_empty());
    assert_error(
        c.describe_images(&fx.region, &ImageQuery::ids([image]))
            .await,
        "InvalidAMIID.NotFound",
        "",
    );
}

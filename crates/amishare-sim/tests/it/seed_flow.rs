//! The walkthrough's flow end to end (mission.md), at the trait level.

use amishare_core::store::{
    ExecutableBy, ImageQuery, ImageState, ImageStore, InstanceState, KeyManager, KeyState,
    KeyStore, LaunchPermission, SnapshotState,
};
use amishare_core::{AliasName, KeyRef};
use amishare_sim::VolumeEncryption;

use crate::fixture::{seed_key_policy, Fx, A};

#[tokio::test(start_paused = true)]
async fn seed_flow_shares_and_launches() {
    let fx = Fx::new();
    let region = fx.region.clone();

    // 1. A creates the key and its alias, then writes the seed statements for
    //    B's user into the key policy.
    let created = fx
        .owner
        .create_key(
            &region,
            &amishare_core::store::CreateKeyRequest {
                description: "Cross-AMI".into(),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(
        (created.state, created.manager),
        (KeyState::Enabled, KeyManager::Customer)
    );
    let key = created.arn.clone();
    let alias = AliasName::parse("alias/Cross-AMI").unwrap();
    fx.owner
        .create_alias(&region, &alias, key.key_id())
        .await
        .unwrap();
    let (bob, target) = fx.target_user("bob", Some(&key));
    let default_policy = fx.owner.get_key_policy(&key).await.unwrap();
    assert!(default_policy.contains("key-default-1"), "{default_policy}");
    fx.owner
        .put_key_policy(&key, &seed_key_policy(A, &[bob.as_str()]))
        .await
        .unwrap();
    assert!(fx
        .owner
        .get_key_policy(&key)
        .await
        .unwrap()
        .contains("Allow attachment of persistent resources"));

    // 2. A images a running instance, then copies the image encrypted under the key.
    let source = fx.image(VolumeEncryption::Unencrypted).await;
    assert!(fx.world.source_instance(&source).is_some());
    let mut request = fx.copy_request(&source, "cross-test-encrypted", None);
    request.kms_key = Some(KeyRef::Alias(alias.clone()));
    let copy = fx.owner.copy_image(&region, &request).await.unwrap();
    assert_eq!(
        fx.image_of(&fx.owner, &copy).await.state,
        ImageState::Pending
    );
    fx.advance(4 * 60 + 80);
    let encrypted = fx.image_of(&fx.owner, &copy).await;
    assert_eq!(encrypted.state, ImageState::Available);
    assert!(encrypted.block_devices.iter().all(|d| d.encrypted));
    assert_eq!(encrypted.block_devices[0].device_name, "/dev/xvda");
    assert_eq!(encrypted.block_devices[0].volume_size, 8);
    let snapshots = fx.snapshots_of(&fx.owner, &copy).await;
    assert!(snapshots
        .iter()
        .all(|s| s.kms_key.as_ref() == Some(&key) && s.state == SnapshotState::Completed));

    // 3. A shares the image with B.
    fx.share(&copy, &fx.b).await;
    assert_eq!(
        fx.owner
            .describe_launch_permission(&region, &copy)
            .await
            .unwrap(),
        vec![LaunchPermission::Account(fx.b.clone())]
    );

    // 4. B's user can use the key by ARN, and sees the image.
    let described = target
        .describe_key(&region, &KeyRef::Arn(key.clone()))
        .await
        .unwrap();
    assert_eq!(described.arn, key);
    let shared = target
        .describe_images(
            &region,
            &ImageQuery {
                executable_by: vec![ExecutableBy::Me],
                ..Default::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(shared.len(), 1);
    assert_eq!(shared[0].id, copy);
    assert_eq!(shared[0].owner, fx.a);
    assert!(!shared[0].public);

    // 5. B launches it; it runs once virtual time passes.
    let instance = fx.launch(&target, &copy).await;
    assert_eq!(instance.state, InstanceState::Pending);
    assert_eq!(instance.owner, fx.b);
    tokio::time::sleep(std::time::Duration::from_secs(41)).await;
    let running = fx.instance(&target, &instance.id).await;
    assert_eq!(running.state, InstanceState::Running);
    assert_eq!(running.state_reason, None);
    // The volume was re-encrypted under B's default key, aws/ebs.
    let aws_ebs = fx.world.aws_ebs_key(&fx.b, &region).unwrap();
    assert_eq!(running.volumes[0].kms_key.as_ref(), Some(&aws_ebs));
    assert!(running.volumes[0].encrypted);

    // EC2 holds a grant on A's key for the instance.
    let grants = fx.owner.list_grants(&key).await.unwrap();
    assert_eq!(grants.len(), 1);
    assert_eq!(
        grants[0].grantee,
        format!(
            "arn:aws:sts::{}:assumed-role/aws:ec2-infrastructure/{}",
            fx.b, instance.id
        )
    );
    assert_eq!(grants[0].issuing_account, fx.b);

    // The call log saw every step, all successful except none.
    let calls = fx.world.calls();
    assert!(calls.iter().all(|c| c.is_ok()), "{calls:#?}");
    assert!(calls
        .iter()
        .any(|c| c.operation == "ec2:RunInstances" && c.principal == bob));
}

#[tokio::test(start_paused = true)]
async fn rerunning_the_checks_makes_no_mutating_call() {
    let fx = Fx::new();
    let key = fx
        .shared_cmk(&[&format!("arn:aws:iam::{}:root", fx.b)])
        .await;
    let image = fx.encrypted_image(&key).await;
    fx.share(&image, &fx.b).await;
    let before = fx.world.mutating_calls();
    assert!(before > 0);
    // What a rerun of the owner side reads to find everything already done.
    fx.owner
        .describe_key(&fx.region, &KeyRef::Arn(key.clone()))
        .await
        .unwrap();
    fx.owner.get_key_policy(&key).await.unwrap();
    fx.owner
        .describe_images(&fx.region, &ImageQuery::ids([image.clone()]))
        .await
        .unwrap();
    fx.owner
        .describe_launch_permission(&fx.region, &image)
        .await
        .unwrap();
    assert_eq!(fx.world.mutating_calls(), before);
    let calls = fx.world.calls();
    let tail = &calls[calls.len() - 4..];
    assert!(tail
        .iter()
        .all(|c| !c.mutating && c.is_ok() && c.region.as_ref() == Some(&fx.region)));
    // A mutating call that changes nothing still counts as a mutating call.
    fx.share(&image, &fx.b).await;
    assert_eq!(fx.world.mutating_calls(), before + 1);
    fx.world.clear_calls();
    assert_eq!(
        (
            fx.world.mutating_calls(),
            fx.world.call_count(),
            fx.world.calls().len()
        ),
        (0, 0, 0)
    );
}

#[tokio::test(start_paused = true)]
async fn caller_identity() {
    let fx = Fx::new();
    let (bob, target) = fx.target_user("bob", None);
    let caller = target.caller().await.unwrap();
    assert_eq!((caller.account, caller.arn), (fx.b.clone(), bob));
    let root = fx.owner.caller().await.unwrap();
    assert_eq!(root.arn, fx.a.root_arn());
    // A role session acts with its role's policies.
    let role = fx
        .world
        .add_role(&fx.b, "deployer", &[crate::fixture::EC2_ALL])
        .unwrap();
    let session = amishare_core::PrincipalArn::parse(&format!(
        "arn:aws:sts::{}:assumed-role/deployer/ci",
        fx.b
    ))
    .unwrap();
    let client = fx.client(&session);
    assert_eq!(client.caller().await.unwrap().arn, session);
    assert!(client
        .describe_images(&fx.region, &ImageQuery::default())
        .await
        .unwrap()
        .is_empty());
    assert_eq!(
        role.as_str(),
        format!("arn:aws:iam::{}:role/deployer", fx.b)
    );
    // Unknown principals get no client.
    let ghost =
        amishare_core::PrincipalArn::parse(&format!("arn:aws:iam::{}:user/ghost", fx.b)).unwrap();
    assert_eq!(
        fx.world.client(&ghost).unwrap_err().kind(),
        amishare_core::ErrorKind::NotFound
    );
    let nowhere = amishare_core::AccountId::parse("999999999999").unwrap();
    assert!(fx.world.root_client(&nowhere).is_err());
}

/// The calls of `amishare demo` (seed 1, as the `seed_flow` benchmark runs
/// it), by operation: README's figures for the benchmark.
const DEMO_CALLS: [(&str, usize); 15] = [
    ("ec2:CopyImage", 2),
    ("ec2:CreateImage", 1),
    ("ec2:DescribeImageAttribute", 1),
    ("ec2:DescribeImages", 23),
    ("ec2:DescribeInstances", 5),
    ("ec2:DescribeSnapshotAttribute", 1),
    ("ec2:DescribeSnapshots", 13),
    ("ec2:ModifyImageAttribute", 1),
    ("ec2:ModifySnapshotAttribute", 1),
    ("ec2:RunInstances", 1),
    ("kms:CreateAlias", 1),
    ("kms:CreateKey", 1),
    ("kms:DescribeKey", 2),
    ("kms:ListKeys", 1),
    ("sts:GetCallerIdentity", 2),
];

#[tokio::test(start_paused = true)]
async fn seed_flow_calls_by_operation() {
    let seed = amishare_sim::seed::SeedWorld::new(1).unwrap();
    seed.run().await.unwrap();
    let calls = seed.world.calls();
    let mut made: std::collections::BTreeMap<&str, usize> = Default::default();
    for call in &calls {
        *made.entry(call.operation).or_default() += 1;
    }
    println!(
        "{} calls, {} mutating",
        calls.len(),
        seed.world.mutating_calls()
    );
    for (operation, count) in &made {
        println!("{count:>3} {operation}");
    }
    assert_eq!(made, std::collections::BTreeMap::from(DEMO_CALLS));
    assert_eq!(calls.len(), 56);
    // The one refusal: the share looks up the alias before creating the key.
    let failed: Vec<(&str, Option<&str>)> = calls
        .iter()
        .filter(|c| !c.is_ok())
        .map(|c| (c.operation, c.error.as_deref()))
        .collect();
    println!("failed: {failed:?}");
    assert_eq!(failed, [("kms:DescribeKey", Some("NotFoundException"))]);
    // Before it launches, accept looks for smoke instances an earlier
    // accept of the image left running.
    let search = calls
        .iter()
        .position(|c| c.operation == "ec2:DescribeInstances" && c.principal == seed.target);
    let launch = calls.iter().position(|c| c.operation == "ec2:RunInstances");
    assert!(search.is_some() && search < launch, "{search:?} {launch:?}");
}

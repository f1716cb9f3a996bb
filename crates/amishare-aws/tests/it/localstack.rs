//! amishare-aws against LocalStack, as `cargo xtask e2e` runs it: one test
//! that does the seed's steps at the trait level, runs the conformance suite
//! with LocalStack's capabilities, calls the store methods nothing else
//! reached, and asserts that every `KeyStore` and `ImageStore` method was
//! called against the server.
//!
//! Two accounts: a 12-digit access key ID is that account's root in
//! LocalStack. The owner is the root of 111111111111; the target is an IAM
//! user of 222222222222, created here with an access key (LocalStack maps
//! that key to the user, so `GetCallerIdentity` names it).
//!
//! `AMISHARE_LOCALSTACK_URL` names the endpoint; the test fails without it.
//! LocalStack hides shared images from the target and never encrypts a copy,
//! so the test asserts what a correct amishare must do there: refuse to share
//! at the snapshot-key gate, and tell the target the image is not shared.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use amishare_aws::SdkConfig;
use amishare_conformance::{named, summary, Harness, Ran, VolumeSeed};
use amishare_core::store::{
    CopyImageRequest, CreateGrantRequest, CreateImageRequest, CreateKeyRequest, ImageQuery,
    ImageState, InstanceState, KeyManager, KeyState, LaunchPermission, PermissionChange,
    RunInstancesRequest, VolumePermission,
};
use amishare_core::{
    AcceptRequest, AliasName, ErrorKind, Flow, ImageId, ImageSource, KeyArn, KeyChoice, KeyRef,
    LaunchOptions, Region, ShareRequest, Sharer, SnapshotId, Target,
};

use crate::conformance::{
    assert_as_planned, localstack_capabilities, party, AwsHarness, Settings, LOCALSTACK_FULL,
    LOCALSTACK_PART, LOCALSTACK_SKIPPED,
};
use crate::counting::Calls;
use crate::support::config;

/// The variable `cargo xtask e2e` sets to LocalStack's URL.
const ENDPOINT: &str = "AMISHARE_LOCALSTACK_URL";
/// The owner account; its root is the owner's administrator.
const OWNER_ACCOUNT: &str = "111111111111";
/// The target account; an IAM user of it is the target principal.
const TARGET_ACCOUNT: &str = "222222222222";
/// Amazon Linux 2023 (x86_64), preloaded by LocalStack in ap-northeast-1.
const IMAGE: &str = "ami-02b76b739f98bb809";

/// An SDK configuration for LocalStack with static credentials, ignoring the host's AWS settings.
async fn target_user(endpoint: &str, admin: &SdkConfig) -> SdkConfig {
    let iam = aws_sdk_iam::Client::new(admin);
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    let name = format!("amishare-e2e-target-{nanos:x}");
    iam.create_user()
        .user_name(&name)
        .send()
        .await
        .expect("CreateUser of the target principal");
    let key = iam
        .create_access_key()
        .user_name(&name)
        .send()
        .await
        .expect("CreateAccessKey of the target principal");
    let key = key.access_key().expect("an access key");
    config(endpoint, key.access_key_id(), key.secret_access_key()).await
}

/// The harness settings for the LocalStack at `endpoint`.
async fn settings(endpoint: &str) -> Arc<Settings> {
    let owner_config = config(endpoint, OWNER_ACCOUNT, "test").await;
    let target_admin_config = config(endpoint, TARGET_ACCOUNT, "test").await;
    let target_config = target_user(endpoint, &target_admin_config).await;
    let calls = Arc::new(Calls::default());
    let owner = party(&owner_config, &calls).await;
    let target = party(&target_config, &calls).await;
    assert_eq!(
        owner.principal.as_str(),
        format!("arn:aws:iam::{OWNER_ACCOUNT}:root")
    );
    assert!(
        target
            .principal
            .as_str()
            .starts_with(&format!("arn:aws:iam::{TARGET_ACCOUNT}:user/")),
        "the target is an IAM user: {}",
        target.principal
    );
    Arc::new(Settings {
        owner_config,
        target_admin_config,
        owner,
        target,
        region: Region::parse("ap-northeast-1").unwrap(),
        other_region: Region::parse("us-east-1").unwrap(),
        image: ImageId::parse(IMAGE).unwrap(),
        instance_type: "t3.micro".to_owned(),
        subnet: None,
        capabilities: localstack_capabilities(),
        calls,
    })
}

#[tokio::test]
async fn localstack_e2e() {
    let endpoint = std::env::var(ENDPOINT).unwrap_or_else(|_| {
        panic!("{ENDPOINT} is not set: the LocalStack tests run through `cargo xtask e2e`")
    });
    let settings = settings(&endpoint).await;
    let h = AwsHarness {
        settings: settings.clone(),
    };
    println!(
        "e2e: owner {}, target {}, at {endpoint}",
        h.owner().principal,
        h.target().principal
    );

    let seeded = seed_steps(&h).await;
    println!("e2e: seed steps passed");

    // The doctor's IAM directory reads back what the harness attached.
    h.set_target_kms_access(std::slice::from_ref(&seeded.key))
        .await
        .expect("target IAM");
    let facts = h
        .directory()
        .expect("a directory")
        .principal(&h.target().principal)
        .await
        .expect("IAM is readable")
        .expect("a user's facts");
    let sids: Vec<&str> = facts
        .policies
        .iter()
        .flat_map(|p| p.document.statements.iter())
        .filter_map(|s| s.sid.as_deref())
        .collect();
    assert!(
        sids.contains(&"UseEc2") && sids.contains(&"UseSharedAmiKeys"),
        "{sids:?}"
    );
    println!("e2e: the IAM directory read the target's policies: {sids:?}");

    // The runner holds each function to its plan for LocalStack's capabilities.
    let outcomes = amishare_conformance::run_all(|| AwsHarness {
        settings: settings.clone(),
    })
    .await;
    // `cargo xtask e2e` repeats the `e2e:` and `scenario` lines and those
    // indented under them in its summary.
    let counts = summary("LocalStack", &outcomes, false);
    println!("e2e: {}", counts.lines().next().unwrap_or_default());
    for outcome in &outcomes {
        println!("scenario {outcome}");
    }
    assert_as_planned(&settings.capabilities, &outcomes);
    assert_eq!(named(&outcomes, Ran::Full), LOCALSTACK_FULL);
    assert_eq!(named(&outcomes, Ran::Part), LOCALSTACK_PART);
    assert_eq!(named(&outcomes, Ran::Skipped), LOCALSTACK_SKIPPED);

    other_calls(&h, seeded).await;
    println!("e2e: store calls against LocalStack:");
    for line in settings.calls.report().lines() {
        println!("    {line}");
    }
    assert_eq!(
        settings.calls.missing(),
        Vec::<&str>::new(),
        "store methods never called against LocalStack"
    );
}

/// What the seed steps leave for [`other_calls`] to clean up.
struct Seeded {
    key: KeyArn,
    instance: amishare_core::InstanceId,
    source: ImageId,
    source_snapshots: Vec<SnapshotId>,
    copy: ImageId,
}

/// The seed's five steps as far as LocalStack allows, at the trait level.
async fn seed_steps(h: &AwsHarness) -> Seeded {
    let owner = h.owner();
    let target = h.target();
    let region = h.region();

    // 1. Key, alias and key policy round-trip.
    let created = owner
        .keys
        .create_key(
            &region,
            &CreateKeyRequest {
                description: "amishare e2e: the seed's key".to_owned(),
                ..CreateKeyRequest::default()
            },
        )
        .await
        .expect("CreateKey");
    let key = created.arn;
    assert_eq!(key.account().as_str(), OWNER_ACCOUNT);
    assert_eq!(created.state, KeyState::Enabled);
    assert_eq!(created.manager, KeyManager::Customer);
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    let alias = AliasName::parse(&format!("alias/cross-ami-{nanos:x}")).unwrap();
    owner
        .keys
        .create_alias(&region, &alias, key.key_id())
        .await
        .expect("CreateAlias");
    let by_alias = owner
        .keys
        .describe_key(&region, &KeyRef::Alias(alias.clone()))
        .await
        .expect("DescribeKey by alias");
    assert_eq!(by_alias.arn, key, "the alias names the key");
    let default_policy = owner.keys.get_key_policy(&key).await.expect("GetKeyPolicy");
    let parsed =
        amishare_policy::Policy::parse(&default_policy).expect("the default policy parses");
    let merged = amishare_policy::merge(
        &parsed,
        &[amishare_policy::Grantee::Principal(
            target.principal.to_string(),
        )],
        &amishare_policy::Narrowing::default(),
        OWNER_ACCOUNT,
        owner.principal.as_str(),
    )
    .expect("merge the target into the policy");
    assert!(merged.changed);
    let written = merged.policy.to_json();
    owner
        .keys
        .put_key_policy(&key, &written)
        .await
        .expect("PutKeyPolicy");
    let read_back = owner.keys.get_key_policy(&key).await.expect("GetKeyPolicy");
    assert_eq!(json(&read_back), json(&written), "the policy round-trips");
    assert!(read_back.contains(target.principal.as_str()));
    assert!(read_back.contains("kms:GrantIsForAWSResource"));

    // 2. Instance, image, and a copy encrypted under the key.
    let instance = h
        .seed_instance(&[VolumeSeed::Unencrypted])
        .await
        .expect("seed instance");
    let described = owner
        .images
        .describe_instances(&region, std::slice::from_ref(&instance))
        .await
        .expect("DescribeInstances");
    assert_eq!(described[0].state, InstanceState::Running);
    assert_eq!(described[0].owner.as_str(), OWNER_ACCOUNT);
    assert!(
        !described[0].volumes.is_empty(),
        "the instance has its volume"
    );
    let source = owner
        .images
        .create_image(
            &region,
            &CreateImageRequest {
                instance: instance.clone(),
                name: format!("amishare-e2e-source-{nanos:x}"),
                tags: BTreeMap::from([("amishare-e2e".to_owned(), "source".to_owned())]),
            },
        )
        .await
        .expect("CreateImage");
    let source_image = available(h, &source).await;
    assert_eq!(
        source_image.tags.get("amishare-e2e").map(String::as_str),
        Some("source")
    );
    let source_snapshots: Vec<SnapshotId> = source_image
        .block_devices
        .iter()
        .map(|d| d.snapshot_id.clone())
        .collect();
    assert!(!source_snapshots.is_empty());
    let copy = owner
        .images
        .copy_image(
            &region,
            &CopyImageRequest {
                source_image: source.clone(),
                source_region: region.clone(),
                name: format!("amishare-e2e-copy-{nanos:x}"),
                encrypted: Some(true),
                kms_key: Some(KeyRef::Arn(key.clone())),
                client_token: Some(format!("amishare-e2e-{nanos:x}")),
                tags: BTreeMap::new(),
            },
        )
        .await
        .expect("CopyImage");
    let copied = available(h, &copy).await;
    assert_ne!(copied.id, source);
    let copy_snapshots: Vec<SnapshotId> = copied
        .block_devices
        .iter()
        .map(|d| d.snapshot_id.clone())
        .collect();
    let snapshots = owner
        .images
        .describe_snapshots(&region, &copy_snapshots)
        .await
        .expect("DescribeSnapshots");
    assert_eq!(snapshots.len(), copy_snapshots.len());
    // LocalStack ignores the encryption a copy asks for. Should it start
    // honouring it, this fails: turn `encrypts_copies` on then.
    assert!(
        snapshots
            .iter()
            .all(|s| !s.encrypted && s.kms_key.is_none()),
        "LocalStack encrypted the copy: {snapshots:?}"
    );

    // 3. `share` refuses: the copy's snapshots are not encrypted with the key.
    let flow = Flow::new(owner.keys.clone(), owner.images.clone(), h.clock());
    let refused = flow
        .share(
            &ShareRequest::new(
                ImageSource::Image(source.clone()),
                region.clone(),
                KeyChoice::Use(KeyRef::Arn(key.clone())),
                [Target::Principal(target.principal.clone())],
            )
            .with_volume_permission(true),
        )
        .await
        .expect_err("an unencrypted copy is never shared");
    assert_eq!(refused.kind(), ErrorKind::Failed, "{refused}");
    assert!(
        refused.message().contains("refusing to share image")
            && refused.message().contains("is not encrypted")
            && refused.message().contains(&key.to_string()),
        "the snapshot-key gate refused: {refused}"
    );

    // 4. Launch and create-volume permissions, added and read back.
    let account = target.account().clone();
    owner
        .images
        .modify_launch_permission(
            &region,
            &copy,
            &PermissionChange::add(vec![LaunchPermission::Account(account.clone())]),
        )
        .await
        .expect("ModifyImageAttribute");
    assert_eq!(
        owner
            .images
            .describe_launch_permission(&region, &copy)
            .await
            .expect("DescribeImageAttribute"),
        vec![LaunchPermission::Account(account.clone())]
    );
    for snapshot in &copy_snapshots {
        owner
            .images
            .modify_create_volume_permission(
                &region,
                snapshot,
                &PermissionChange::add(vec![VolumePermission::Account(account.clone())]),
            )
            .await
            .expect("ModifySnapshotAttribute");
        assert_eq!(
            owner
                .images
                .describe_create_volume_permission(&region, snapshot)
                .await
                .expect("DescribeSnapshotAttribute"),
            vec![VolumePermission::Account(account.clone())]
        );
    }

    // 5. The target: DescribeKey by the key ARN works; the image stays
    // invisible in LocalStack, and accept says so.
    let seen = target
        .keys
        .describe_key(&region, &KeyRef::Arn(key.clone()))
        .await
        .expect("the target's DescribeKey by key ARN");
    assert_eq!(seen.arn, key);
    assert_eq!(seen.state, KeyState::Enabled);
    let target_flow = Flow::new(target.keys.clone(), target.images.clone(), h.clock());
    let accepted = target_flow
        .accept(
            &AcceptRequest::new(copy.clone(), region.clone(), [key.clone()])
                .with_launch(LaunchOptions::default()),
        )
        .await
        .expect_err("LocalStack never shows a shared image to the target");
    assert_eq!(accepted.kind(), ErrorKind::NotFound, "{accepted}");
    assert!(
        accepted
            .message()
            .contains(&format!("is not shared with account {TARGET_ACCOUNT}")),
        "{accepted}"
    );

    // The permissions come off again.
    owner
        .images
        .modify_launch_permission(
            &region,
            &copy,
            &PermissionChange::remove(vec![LaunchPermission::Account(account.clone())]),
        )
        .await
        .expect("ModifyImageAttribute remove");
    assert!(owner
        .images
        .describe_launch_permission(&region, &copy)
        .await
        .expect("DescribeImageAttribute")
        .is_empty());
    Seeded {
        key,
        instance,
        source,
        source_snapshots,
        copy,
    }
}

/// The store methods the seed steps and the suite leave uncalled on
/// LocalStack, each with its outcome asserted, and the seed's resources removed.
async fn other_calls(h: &AwsHarness, seeded: Seeded) {
    let owner = h.owner();
    // The settings' party, scaling store included: the suite is not offered
    // it on LocalStack, but its calls are still made once for the record.
    let target = h.settings.target.clone();
    let region = h.region();

    // Grants: created, listed and revoked on the owner's own key.
    let grant = owner
        .keys
        .create_grant(
            &seeded.key,
            &CreateGrantRequest {
                grantee: target.principal.clone(),
                operations: vec!["Decrypt".to_owned(), "DescribeKey".to_owned()],
                name: Some("amishare-e2e".to_owned()),
                retiring_principal: None,
            },
        )
        .await
        .expect("CreateGrant");
    let grants = owner
        .keys
        .list_grants(&seeded.key)
        .await
        .expect("ListGrants");
    let listed = grants
        .iter()
        .find(|g| g.id == grant)
        .expect("the grant is listed");
    assert_eq!(listed.grantee, target.principal.as_str());
    assert_eq!(
        listed.operations.iter().collect::<BTreeSet<_>>(),
        BTreeSet::from([&"Decrypt".to_owned(), &"DescribeKey".to_owned()])
    );
    assert_eq!(listed.issuing_account.as_str(), OWNER_ACCOUNT);
    owner
        .keys
        .revoke_grant(&seeded.key, &grant)
        .await
        .expect("RevokeGrant");
    let grants = owner
        .keys
        .list_grants(&seeded.key)
        .await
        .expect("ListGrants");
    assert!(grants.iter().all(|g| g.id != grant), "the grant is revoked");

    // Retirable grants: none names the target as retiring principal.
    let retirable = target
        .keys
        .list_retirable_grants(&region, &target.principal)
        .await
        .expect("ListRetirableGrants");
    assert!(retirable.is_empty(), "{retirable:?}");

    // Launch templates are EC2 and work; LocalStack 2026.3.0's free edition
    // does not emulate Auto Scaling (501 InternalFailure), which is why the
    // suite lacks the Auto Scaling capability there.
    let scaling = target
        .scaling
        .as_ref()
        .expect("the AWS backend's scaling store");
    let name = "amishare-e2e-smoke".to_owned();
    let template = scaling
        .create_launch_template(
            &region,
            &amishare_core::scaling::LaunchTemplateRequest {
                name: name.clone(),
                image: h.settings.image.clone(),
                instance_type: "t3.micro".to_owned(),
                tags: BTreeMap::new(),
                client_token: None,
            },
        )
        .await
        .expect("CreateLaunchTemplate");
    let listed = scaling
        .describe_launch_templates(&region, std::slice::from_ref(&name))
        .await
        .expect("DescribeLaunchTemplates");
    assert_eq!(
        listed.iter().map(|t| &t.id).collect::<Vec<_>>(),
        [&template.id]
    );
    let group = amishare_core::scaling::GroupRequest {
        name: name.clone(),
        launch_template: name.clone(),
        min_size: 0,
        max_size: 1,
        desired_capacity: 0,
        availability_zones: vec![format!("{region}a")],
        subnets: None,
        service_linked_role: None,
        tags: BTreeMap::new(),
    };
    let unemulated = [
        scaling
            .create_auto_scaling_group(&region, &group)
            .await
            .err(),
        scaling
            .describe_auto_scaling_groups(&region, std::slice::from_ref(&name))
            .await
            .err(),
        scaling
            .describe_scaling_activities(&region, &name)
            .await
            .err(),
        scaling
            .delete_auto_scaling_group(&region, &name, true)
            .await
            .err(),
    ];
    for error in unemulated {
        let error = error.expect("LocalStack does not emulate Auto Scaling");
        assert_eq!(error.code(), Some("InternalFailure"), "{error}");
    }
    scaling
        .delete_launch_template(&region, &name)
        .await
        .expect("DeleteLaunchTemplate");

    // EBS defaults: LocalStack 2026.3.0 does not implement GetEbsDefaultKmsKeyId.
    let defaults = owner
        .images
        .ebs_defaults(&region)
        .await
        .expect_err("LocalStack does not implement GetEbsDefaultKmsKeyId");
    assert_eq!(defaults.code(), Some("InternalFailure"), "{defaults}");
    assert!(
        defaults.message().starts_with("GetEbsDefaultKmsKeyId"),
        "the error names the operation: {defaults}"
    );

    // A launch through the store (the suite's launches are the target's,
    // which LocalStack cannot reach): pending at first, then running.
    let launched = owner
        .images
        .run_instances(
            &region,
            &RunInstancesRequest {
                image: h.settings.image.clone(),
                instance_type: "t3.micro".to_owned(),
                subnet: None,
                kms_key: None,
                tags: BTreeMap::from([("amishare-e2e".to_owned(), "launch".to_owned())]),
                client_token: None,
            },
        )
        .await
        .expect("RunInstances");
    assert_eq!(launched.state, InstanceState::Pending);
    assert_eq!(launched.image, h.settings.image);
    assert_eq!(launched.owner.as_str(), OWNER_ACCOUNT);

    // Cleanup through the stores: both instances, the copy with its
    // snapshots, and the source image, then its snapshot on its own.
    let instances = [seeded.instance.clone(), launched.id.clone()];
    owner
        .images
        .terminate_instances(&region, &instances)
        .await
        .expect("TerminateInstances");
    let described = owner
        .images
        .describe_instances(&region, &instances)
        .await
        .expect("DescribeInstances");
    assert_eq!(described.len(), 2);
    for instance in &described {
        assert!(
            matches!(
                instance.state,
                InstanceState::ShuttingDown | InstanceState::Terminated
            ),
            "{} terminated: {:?}",
            instance.id,
            instance.state
        );
    }
    for (image, delete_snapshots) in [(&seeded.copy, true), (&seeded.source, false)] {
        owner
            .images
            .deregister_image(&region, image, delete_snapshots)
            .await
            .expect("DeregisterImage");
        let gone = owner
            .images
            .describe_images(&region, &ImageQuery::ids([image.clone()]))
            .await;
        match gone {
            Err(err) => assert_eq!(err.code(), Some("InvalidAMIID.NotFound"), "{err}"),
            Ok(images) => assert!(
                images.iter().all(|i| i.state == ImageState::Deregistered),
                "{images:?}"
            ),
        }
    }
    for snapshot in &seeded.source_snapshots {
        owner
            .images
            .delete_snapshot(&region, snapshot)
            .await
            .expect("DeleteSnapshot of a snapshot no image uses");
        let gone = owner
            .images
            .describe_snapshots(&region, std::slice::from_ref(snapshot))
            .await
            .expect_err("the snapshot is deleted");
        assert_eq!(gone.code(), Some("InvalidSnapshot.NotFound"), "{gone}");
    }
}

/// Describes an image until it is available (LocalStack's are at once).
async fn available(h: &AwsHarness, image: &ImageId) -> amishare_core::store::Image {
    let found = h
        .owner()
        .images
        .describe_images(&h.region(), &ImageQuery::ids([image.clone()]))
        .await
        .expect("DescribeImages");
    assert_eq!(found.len(), 1);
    assert_eq!(found[0].state, ImageState::Available, "{:?}", found[0]);
    found.into_iter().next().unwrap()
}

/// A policy document as JSON, for comparing what was written with what is read.
fn json(text: &str) -> serde_json::Value {
    serde_json::from_str(text).expect("a policy is JSON")
}

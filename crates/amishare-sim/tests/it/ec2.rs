//! EC2: visibility, permissions, copies, launches, deregistration and the
//! EBS defaults.

use std::collections::BTreeMap;

use amishare_core::store::{
    ExecutableBy, ImageOwner, ImageQuery, ImageState, ImageStore, InstanceState, KeyStore,
    LaunchPermission, PermissionChange, VolumePermission,
};
use amishare_core::{AccountId, ErrorKind, KeyRef, OrganizationArn, OuArn};
use amishare_sim::{Knobs, UnknownIds, VolumeEncryption, VolumeSeed};

use crate::fixture::{account, assert_error, Fx, B, C, EC2_ALL};

fn org_arn() -> OrganizationArn {
    OrganizationArn::parse("arn:aws:organizations::999999999999:organization/o-abcdef1234").unwrap()
}

#[tokio::test(start_paused = true)]
async fn identity_policies_gate_ec2_actions() {
    let fx = Fx::new();
    let nobody = fx.world.add_user(&fx.b, "nobody", &[]).unwrap();
    let client = fx.client(&nobody);
    let err = assert_error(
        client
            .describe_images(&fx.region, &ImageQuery::default())
            .await,
        "UnauthorizedOperation",
        "You are not authorized to perform this operation.",
    );
    assert!(err
        .message()
        .starts_with("You are not authorized to perform this operation."));
    assert!(err.message().contains("ec2:DescribeImages"));
    assert_eq!(err.kind(), ErrorKind::AccessDenied);
    // An explicit deny beats the root's implicit permissions.
    fx.world.set_identity_policies(&nobody, &[EC2_ALL]).unwrap();
    client
        .describe_images(&fx.region, &ImageQuery::default())
        .await
        .unwrap();
    let deny = r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"ec2:*","Resource":"*"},{"Effect":"Deny","Action":"ec2:RunInstances","Resource":"*"}]}"#;
    fx.world.set_identity_policies(&nobody, &[deny]).unwrap();
    let image = fx.image(VolumeEncryption::Unencrypted).await;
    fx.share(&image, &fx.b).await;
    assert_error(
        client
            .run_instances(&fx.region, &Fx::run_request(&image))
            .await,
        "UnauthorizedOperation",
        "explicit deny",
    );
}

#[tokio::test(start_paused = true)]
async fn sharing_with_an_organization_or_ou() {
    let fx = Fx::new();
    let c = fx.world.root_client(&account(C)).unwrap();
    let image = fx.image(VolumeEncryption::Unencrypted).await;
    let query = |by| ImageQuery {
        executable_by: vec![by],
        ..Default::default()
    };

    fx.owner
        .modify_launch_permission(
            &fx.region,
            &image,
            &PermissionChange::add(vec![LaunchPermission::Organization(org_arn())]),
        )
        .await
        .unwrap();
    assert_eq!(
        c.describe_images(&fx.region, &query(ExecutableBy::Me))
            .await
            .unwrap()
            .len(),
        1
    );
    assert_eq!(
        c.describe_images(&fx.region, &query(ExecutableBy::Account(account(C))))
            .await
            .unwrap()
            .len(),
        1
    );
    // Naming another account only lists images explicitly shared with it.
    assert!(fx
        .owner
        .describe_images(&fx.region, &query(ExecutableBy::Account(account(C))))
        .await
        .unwrap()
        .is_empty());
    // B is not in the organization.
    let b = fx.world.root_client(&fx.b).unwrap();
    assert!(b
        .describe_images(&fx.region, &ImageQuery::default())
        .await
        .unwrap()
        .is_empty());

    fx.owner
        .modify_launch_permission(
            &fx.region,
            &image,
            &PermissionChange::remove(vec![LaunchPermission::Organization(org_arn())]),
        )
        .await
        .unwrap();
    assert!(c
        .describe_images(&fx.region, &ImageQuery::default())
        .await
        .unwrap()
        .is_empty());
    // A parent OU of C's covers it; an unrelated OU does not.
    for (ou, visible) in [
        ("ou-ab12-11111111", true),
        ("ou-ab12-22222222", true),
        ("ou-ab12-33333333", false),
    ] {
        let arn = OuArn::parse(&format!(
            "arn:aws:organizations::999999999999:ou/o-abcdef1234/{ou}"
        ))
        .unwrap();
        let change = PermissionChange::add(vec![LaunchPermission::OrganizationalUnit(arn.clone())]);
        fx.owner
            .modify_launch_permission(&fx.region, &image, &change)
            .await
            .unwrap();
        let seen = c
            .describe_images(&fx.region, &query(ExecutableBy::Me))
            .await
            .unwrap();
        assert_eq!(seen.len() == 1, visible, "{ou}");
        let change = PermissionChange::remove(vec![LaunchPermission::OrganizationalUnit(arn)]);
        fx.owner
            .modify_launch_permission(&fx.region, &image, &change)
            .await
            .unwrap();
    }
}

#[tokio::test(start_paused = true)]
async fn describe_images_filters_and_hides_owner_tags() {
    let fx = Fx::new();
    let instance = fx.plain_instance();
    let tags = BTreeMap::from([("team".to_owned(), "platform".to_owned())]);
    let tagged = fx
        .owner
        .create_image(
            &fx.region,
            &amishare_core::store::CreateImageRequest {
                instance,
                name: "tagged".into(),
                tags: tags.clone(),
            },
        )
        .await
        .unwrap();
    let plain = fx.image_named("plain", VolumeEncryption::Unencrypted).await;
    fx.share(&tagged, &fx.b).await;
    let b = fx.world.root_client(&fx.b).unwrap();

    let by_tag = |value: &str| ImageQuery {
        tags: BTreeMap::from([("team".to_owned(), vec![value.to_owned()])]),
        ..Default::default()
    };
    let mine = fx
        .owner
        .describe_images(&fx.region, &by_tag("platform"))
        .await
        .unwrap();
    assert_eq!(
        mine.iter().map(|i| &i.id).collect::<Vec<_>>(),
        vec![&tagged]
    );
    assert_eq!(mine[0].tags, tags);
    assert!(fx
        .owner
        .describe_images(&fx.region, &by_tag("other"))
        .await
        .unwrap()
        .is_empty());
    // B sees the image but not the owner's tags, so tag filters never match it.
    let seen = fx.image_of(&b, &tagged).await;
    assert!(seen.tags.is_empty());
    assert!(b
        .describe_images(&fx.region, &by_tag("platform"))
        .await
        .unwrap()
        .is_empty());
    // Owners.
    let owners = |owner| ImageQuery {
        owners: vec![owner],
        ..Default::default()
    };
    assert_eq!(
        fx.owner
            .describe_images(&fx.region, &owners(ImageOwner::Me))
            .await
            .unwrap()
            .len(),
        2
    );
    assert!(b
        .describe_images(&fx.region, &owners(ImageOwner::Me))
        .await
        .unwrap()
        .is_empty());
    assert_eq!(
        b.describe_images(&fx.region, &owners(ImageOwner::Account(fx.a.clone())))
            .await
            .unwrap()
            .len(),
        1
    );
    // Unknown IDs: every missing one is named.
    let err = assert_error(
        b.describe_images(
            &fx.region,
            &ImageQuery::ids([tagged.clone(), plain.clone()]),
        )
        .await,
        "InvalidAMIID.NotFound",
        "",
    );
    assert_eq!(
        err.message(),
        format!("The image id '[{plain}]' does not exist")
    );
    let ghost = "ami-0123456789abcdef0".parse().unwrap();
    let err = assert_error(
        b.describe_images(&fx.region, &ImageQuery::ids([plain.clone(), ghost]))
            .await,
        "InvalidAMIID.NotFound",
        "",
    );
    assert_eq!(
        err.message(),
        format!("The image ids '[{plain}, ami-0123456789abcdef0]' do not exist")
    );
    // … or, with the knob, left out.
    fx.world.set_knobs(Knobs {
        unknown_image_ids: UnknownIds::Omit,
        ..Knobs::default()
    });
    let seen = b
        .describe_images(&fx.region, &ImageQuery::ids([tagged.clone(), plain]))
        .await
        .unwrap();
    assert_eq!(
        seen.iter().map(|i| &i.id).collect::<Vec<_>>(),
        vec![&tagged]
    );
    // Images are regional.
    assert!(fx
        .owner
        .describe_images(
            &crate::fixture::region(crate::fixture::OTHER_REGION),
            &ImageQuery::default()
        )
        .await
        .unwrap()
        .is_empty());
}

#[tokio::test(start_paused = true)]
async fn snapshots_are_visible_to_their_owner_and_to_accounts_they_are_shared_with() {
    let fx = Fx::new();
    let key = fx.cmk().await;
    let image = fx.encrypted_image(&key).await;
    let snapshot = fx.snapshots_of(&fx.owner, &image).await.remove(0);
    assert_eq!(snapshot.kms_key.as_ref(), Some(&key));
    assert_eq!(snapshot.volume_size, 8);
    let b = fx.world.root_client(&fx.b).unwrap();
    let err = assert_error(
        b.describe_snapshots(&fx.region, std::slice::from_ref(&snapshot.id))
            .await,
        "InvalidSnapshot.NotFound",
        "",
    );
    assert_eq!(
        err.message(),
        format!("The snapshot '{}' does not exist.", snapshot.id)
    );
    fx.world.set_knobs(Knobs {
        unknown_snapshot_ids: UnknownIds::Omit,
        ..Knobs::default()
    });
    assert!(b
        .describe_snapshots(&fx.region, std::slice::from_ref(&snapshot.id))
        .await
        .unwrap()
        .is_empty());

    let change = PermissionChange::add(vec![VolumePermission::Account(fx.b.clone())]);
    fx.owner
        .modify_create_volume_permission(&fx.region, &snapshot.id, &change)
        .await
        .unwrap();
    fx.owner
        .modify_create_volume_permission(&fx.region, &snapshot.id, &change)
        .await
        .unwrap();
    assert_eq!(
        fx.owner
            .describe_create_volume_permission(&fx.region, &snapshot.id)
            .await
            .unwrap(),
        vec![VolumePermission::Account(fx.b.clone())]
    );
    let seen = b
        .describe_snapshots(&fx.region, std::slice::from_ref(&snapshot.id))
        .await
        .unwrap();
    assert_eq!(seen[0].kms_key.as_ref(), Some(&key));
    assert_eq!(
        b.describe_snapshots(&fx.region, &[]).await.unwrap().len(),
        1
    );
    // Only the owner manages the permissions (error is a knob).
    let err = assert_error(
        b.describe_create_volume_permission(&fx.region, &snapshot.id)
            .await,
        "AuthFailure",
        "",
    );
    assert_eq!(
        err.message(),
        format!("Not authorized for snapshot:{}", snapshot.id)
    );
    assert_error(
        b.delete_snapshot(&fx.region, &snapshot.id).await,
        "AuthFailure",
        snapshot.id.as_str(),
    );
    // An encrypted snapshot cannot be made public (code is a knob).
    let public = PermissionChange::add(vec![VolumePermission::Public]);
    assert_error(
        fx.owner
            .modify_create_volume_permission(&fx.region, &snapshot.id, &public)
            .await,
        "UnsupportedOperation",
        "publicly",
    );
}

#[tokio::test(start_paused = true)]
async fn launch_permissions_are_a_set_managed_by_the_owner() {
    let fx = Fx::new();
    let image = fx.image(VolumeEncryption::Unencrypted).await;
    fx.share(&image, &fx.b).await;
    fx.share(&image, &fx.b).await;
    let change = PermissionChange {
        add: vec![
            LaunchPermission::Account(account(C)),
            LaunchPermission::Public,
        ],
        remove: vec![LaunchPermission::Account(account("444444444444"))],
    };
    fx.owner
        .modify_launch_permission(&fx.region, &image, &change)
        .await
        .unwrap();
    assert_eq!(
        fx.owner
            .describe_launch_permission(&fx.region, &image)
            .await
            .unwrap(),
        vec![
            LaunchPermission::Account(fx.b.clone()),
            LaunchPermission::Account(account(C)),
            LaunchPermission::Public
        ]
    );
    // Unencrypted images can be public; everyone sees them.
    assert!(fx.image_of(&fx.owner, &image).await.public);
    let b = fx.world.root_client(&fx.b).unwrap();
    let all = ImageQuery {
        executable_by: vec![ExecutableBy::All],
        ..Default::default()
    };
    assert_eq!(b.describe_images(&fx.region, &all).await.unwrap().len(), 1);

    let err = assert_error(
        b.modify_launch_permission(
            &fx.region,
            &image,
            &PermissionChange::add(vec![LaunchPermission::Account(account(C))]),
        )
        .await,
        "AuthFailure",
        "",
    );
    assert_eq!(err.message(), format!("Not authorized for image:{image}"));
    assert_error(
        b.describe_launch_permission(&fx.region, &image).await,
        "AuthFailure",
        image.as_str(),
    );
    assert_error(
        b.deregister_image(&fx.region, &image, false).await,
        "AuthFailure",
        image.as_str(),
    );

    // The entity quota (1,000 on AWS) counts accounts, organizations and OUs.
    fx.world.set_knobs(Knobs {
        launch_permission_quota: 3,
        ..Knobs::default()
    });
    let one_more = PermissionChange::add(vec![LaunchPermission::Organization(org_arn())]);
    fx.owner
        .modify_launch_permission(&fx.region, &image, &one_more)
        .await
        .unwrap();
    let too_many = PermissionChange::add(vec![LaunchPermission::Account(account("555555555555"))]);
    let err = assert_error(
        fx.owner
            .modify_launch_permission(&fx.region, &image, &too_many)
            .await,
        "ResourceLimitExceeded",
        image.as_str(),
    );
    assert_eq!(err.kind(), ErrorKind::Conflict);
}

#[tokio::test(start_paused = true)]
async fn copy_image_parameters() {
    let fx = Fx::new();
    let key = fx.cmk().await;
    let encrypted = fx.encrypted_image(&key).await;

    let mut request = fx.copy_request(&encrypted, "decrypted", None);
    request.encrypted = Some(false);
    let snapshot = fx.snapshots_of(&fx.owner, &encrypted).await.remove(0);
    let err = assert_error(
        fx.owner.copy_image(&fx.region, &request).await,
        "InvalidRequest",
        "",
    );
    assert_eq!(
        err.message(),
        format!("Snapshot {} is encrypted. Creating an unencrypted copy from an encrypted snapshot is not supported.", snapshot.id)
    );

    let mut request = fx.copy_request(&encrypted, "no-flag", Some(&key));
    request.encrypted = None;
    let err = assert_error(
        fx.owner.copy_image(&fx.region, &request).await,
        "InvalidParameterDependency",
        "Encrypted",
    );
    assert_eq!(err.kind(), ErrorKind::InvalidInput);

    // Own encrypted image, no parameters: the same key.
    let mut request = fx.copy_request(&encrypted, "same-key", None);
    request.encrypted = None;
    request.client_token = Some("token-1".into());
    request.tags = BTreeMap::from([("copy".to_owned(), "yes".to_owned())]);
    let copy = fx.owner.copy_image(&fx.region, &request).await.unwrap();
    // The client token makes a retry return the same image.
    assert_eq!(
        fx.owner.copy_image(&fx.region, &request).await.unwrap(),
        copy
    );
    fx.advance(400);
    let described = fx.image_of(&fx.owner, &copy).await;
    assert_eq!(described.tags, request.tags);
    assert_eq!(described.source_region.as_ref(), Some(&fx.region));
    assert_eq!(
        fx.snapshots_of(&fx.owner, &copy).await[0].kms_key.as_ref(),
        Some(&key)
    );
    // Names are unique per account and region.
    let mut again = fx.copy_request(&encrypted, "same-key", None);
    again.encrypted = None;
    assert_error(
        fx.owner.copy_image(&fx.region, &again).await,
        "InvalidAMIName.Duplicate",
        copy.as_str(),
    );
    assert_error(
        fx.owner
            .copy_image(&fx.region, &fx.copy_request(&encrypted, "x", None))
            .await,
        "InvalidAMIName.Malformed",
        "",
    );

    // Copying an image that is still pending is refused (the code is a knob).
    let pending = fx
        .owner
        .copy_image(
            &fx.region,
            &fx.copy_request(&encrypted, "pending-copy", Some(&key)),
        )
        .await
        .unwrap();
    assert_error(
        fx.owner
            .copy_image(
                &fx.region,
                &fx.copy_request(&pending, "copy-of-pending", Some(&key)),
            )
            .await,
        "InvalidAMIID.Unavailable",
        pending.as_str(),
    );
}

#[tokio::test(start_paused = true)]
async fn copies_by_the_target_do_not_carry_the_owners_tags_or_permissions() {
    let fx = Fx::new();
    let instance = fx.plain_instance();
    let image = fx
        .owner
        .create_image(
            &fx.region,
            &amishare_core::store::CreateImageRequest {
                instance,
                name: "golden".into(),
                tags: BTreeMap::from([("secret".into(), "1".into())]),
            },
        )
        .await
        .unwrap();
    fx.advance(180);
    fx.share(&image, &fx.b).await;
    fx.share_snapshots(&image, &fx.b).await;
    let b = fx.world.root_client(&fx.b).unwrap();
    let mut request = fx.copy_request(&image, "mine-now", None);
    request.encrypted = None;
    let copy = b.copy_image(&fx.region, &request).await.unwrap();
    fx.advance(400);
    let described = fx.image_of(&b, &copy).await;
    assert_eq!(described.state, ImageState::Available);
    assert!(described.tags.is_empty());
    assert!(b
        .describe_launch_permission(&fx.region, &copy)
        .await
        .unwrap()
        .is_empty());
    // Unencrypted stays unencrypted.
    assert_eq!(fx.snapshots_of(&b, &copy).await[0].kms_key, None);
    // The copy belongs to B: A cannot see it.
    assert_error(
        fx.owner
            .describe_images(&fx.region, &ImageQuery::ids([copy]))
            .await,
        "InvalidAMIID.NotFound",
        "",
    );
}

#[tokio::test(start_paused = true)]
async fn launch_volume_keys_follow_the_defaults() {
    let fx = Fx::new();
    let image = fx.image(VolumeEncryption::Unencrypted).await;
    fx.share(&image, &fx.b).await;
    let b = fx.world.root_client(&fx.b).unwrap();

    // Unencrypted stays unencrypted…
    let plain = fx.launch(&b, &image).await;
    assert!(!plain.volumes[0].encrypted);
    assert_eq!(plain.volumes[0].kms_key, None);
    // …unless encryption by default is on: then aws/ebs.
    fx.world
        .set_ebs_encryption_by_default(&fx.b, &fx.region, true)
        .unwrap();
    let defaults = b.ebs_defaults(&fx.region).await.unwrap();
    assert!(defaults.encryption_by_default);
    assert_eq!(
        defaults.kms_key,
        KeyRef::Alias(amishare_core::AliasName::aws_ebs())
    );
    let encrypted = fx.launch(&b, &image).await;
    assert_eq!(
        encrypted.volumes[0].kms_key,
        Some(fx.world.aws_ebs_key(&fx.b, &fx.region).unwrap())
    );
    // A default key B cannot use dooms the launch.
    let unusable = fx.cmk().await;
    fx.world
        .set_ebs_default_key(&fx.b, &fx.region, Some(unusable.clone()))
        .unwrap();
    assert_eq!(
        b.ebs_defaults(&fx.region).await.unwrap().kms_key,
        KeyRef::Arn(unusable)
    );
    let doomed = fx.launch(&b, &image).await;
    // An explicit key works.
    let own = b
        .create_key(&fx.region, &Default::default())
        .await
        .unwrap()
        .arn;
    let mut request = Fx::run_request(&image);
    request.kms_key = Some(KeyRef::Arn(own.clone()));
    let explicit = b.run_instances(&fx.region, &request).await.unwrap();
    assert_eq!(explicit.volumes[0].kms_key.as_ref(), Some(&own));

    fx.advance(60);
    for (instance, state) in [
        (&plain, InstanceState::Running),
        (&encrypted, InstanceState::Running),
        (&doomed, InstanceState::Terminated),
        (&explicit, InstanceState::Running),
    ] {
        assert_eq!(
            fx.instance(&b, &instance.id).await.state,
            state,
            "{}",
            instance.id
        );
    }
    // The owner's own encrypted instance keeps the snapshot key.
    let key = fx.cmk().await;
    let encrypted_image = fx.encrypted_image(&key).await;
    let own_launch = fx.launch(&fx.owner, &encrypted_image).await;
    assert_eq!(own_launch.volumes[0].kms_key.as_ref(), Some(&key));
}

#[tokio::test(start_paused = true)]
async fn key_state_failures_at_launch_use_their_own_reason() {
    let fx = Fx::new();
    let reason = amishare_core::store::StateReason {
        code: "Client.InvalidKMSKey.InvalidState".into(),
        message: "Client.InvalidKMSKey.InvalidState: The KMS key provided is in an incorrect state"
            .into(),
    };
    fx.world.set_knobs(Knobs {
        launch_key_state_failure: reason.clone(),
        ..Knobs::default()
    });
    let key = fx.cmk().await;
    let image = fx.encrypted_image(&key).await;
    fx.world
        .set_key_state(&key, amishare_core::store::KeyState::PendingDeletion)
        .unwrap();
    let instance = fx.launch(&fx.owner, &image).await;
    fx.advance(30);
    let terminated = fx.instance(&fx.owner, &instance.id).await;
    assert_eq!(terminated.state, InstanceState::Terminated);
    assert_eq!(terminated.state_reason, Some(reason));
    assert!(fx
        .world
        .failure_detail(instance.id.as_str())
        .unwrap()
        .contains("pending deletion"));
}

#[tokio::test(start_paused = true)]
async fn terminating_retires_the_instances_grants() {
    let fx = Fx::new();
    let key = fx.cmk().await;
    let image = fx.encrypted_image(&key).await;
    let instance = fx.launch(&fx.owner, &image).await;
    assert_eq!(fx.owner.list_grants(&key).await.unwrap().len(), 1);
    fx.advance(40);
    fx.owner
        .terminate_instances(&fx.region, std::slice::from_ref(&instance.id))
        .await
        .unwrap();
    let stopping = fx.instance(&fx.owner, &instance.id).await;
    assert_eq!(stopping.state, InstanceState::ShuttingDown);
    assert_eq!(
        stopping.state_reason.unwrap().code,
        "Client.UserInitiatedShutdown"
    );
    assert!(fx.owner.list_grants(&key).await.unwrap().is_empty());
    fx.advance(30);
    assert_eq!(
        fx.instance(&fx.owner, &instance.id).await.state,
        InstanceState::Terminated
    );
    // Terminating again is a no-op; someone else's instance is not found.
    fx.owner
        .terminate_instances(&fx.region, std::slice::from_ref(&instance.id))
        .await
        .unwrap();
    let b = fx.world.root_client(&fx.b).unwrap();
    let err = assert_error(
        b.terminate_instances(&fx.region, std::slice::from_ref(&instance.id))
            .await,
        "InvalidInstanceID.NotFound",
        "",
    );
    assert_eq!(
        err.message(),
        format!("The instance ID '{}' does not exist", instance.id)
    );
}

#[tokio::test(start_paused = true)]
async fn deregistering_can_delete_the_snapshots() {
    let fx = Fx::new();
    let image = fx.image(VolumeEncryption::Unencrypted).await;
    let snapshot = fx.snapshots_of(&fx.owner, &image).await.remove(0);
    fx.owner
        .deregister_image(&fx.region, &image, true)
        .await
        .unwrap();
    assert_error(
        fx.owner
            .describe_images(&fx.region, &ImageQuery::ids([image.clone()]))
            .await,
        "InvalidAMIID.NotFound",
        "",
    );
    assert_error(
        fx.owner
            .describe_snapshots(&fx.region, &[snapshot.id])
            .await,
        "InvalidSnapshot.NotFound",
        "",
    );
    assert_error(
        fx.owner.deregister_image(&fx.region, &image, true).await,
        "InvalidAMIID.NotFound",
        image.as_str(),
    );
    // The name is free again.
    fx.image(VolumeEncryption::Unencrypted).await;
}

#[tokio::test(start_paused = true)]
async fn create_image_keeps_each_volumes_encryption() {
    let fx = Fx::new();
    let key = fx.cmk().await;
    let volumes = [
        VolumeSeed::root(VolumeEncryption::Key(key.clone())),
        VolumeSeed::new("/dev/sdb", 20, VolumeEncryption::AwsEbs),
        VolumeSeed::new("/dev/sdc", 5, VolumeEncryption::Unencrypted),
    ];
    let instance = fx.world.seed_instance(&fx.a, &fx.region, &volumes).unwrap();
    let image = fx
        .owner
        .create_image(
            &fx.region,
            &amishare_core::store::CreateImageRequest {
                instance: instance.clone(),
                name: "multi".into(),
                tags: BTreeMap::new(),
            },
        )
        .await
        .unwrap();
    assert_eq!(fx.world.source_instance(&image), Some(instance));
    fx.advance(180);
    let described = fx.image_of(&fx.owner, &image).await;
    let devices: Vec<_> = described
        .block_devices
        .iter()
        .map(|d| (d.device_name.as_str(), d.volume_size, d.encrypted))
        .collect();
    assert_eq!(
        devices,
        vec![
            ("/dev/xvda", 8, true),
            ("/dev/sdb", 20, true),
            ("/dev/sdc", 5, false)
        ]
    );
    let keys: Vec<_> = fx
        .snapshots_of(&fx.owner, &image)
        .await
        .into_iter()
        .map(|s| s.kms_key)
        .collect();
    let aws_ebs = fx.world.aws_ebs_key(&fx.a, &fx.region).unwrap();
    assert_eq!(keys, vec![Some(key), Some(aws_ebs), None]);
    // Unknown instances and other accounts' instances cannot be imaged.
    let b = fx.world.root_client(&fx.b).unwrap();
    let request = amishare_core::store::CreateImageRequest {
        instance: fx.plain_instance(),
        name: "theirs".into(),
        tags: BTreeMap::new(),
    };
    assert_error(
        b.create_image(&fx.region, &request).await,
        "InvalidInstanceID.NotFound",
        "",
    );
}

#[test]
fn seeding_refuses_bad_input() {
    let fx = Fx::new();
    assert_eq!(
        fx.world.add_account(&fx.a).unwrap_err().kind(),
        ErrorKind::Conflict
    );
    let unknown = AccountId::parse("999999999999").unwrap();
    assert_eq!(
        fx.world.add_user(&unknown, "x", &[]).unwrap_err().kind(),
        ErrorKind::NotFound
    );
    assert_eq!(
        fx.world.add_user(&fx.b, "x", &["{"]).unwrap_err().kind(),
        ErrorKind::InvalidInput
    );
    assert!(fx
        .world
        .add_account_in_org(&unknown, "o-abcdef1234/ou-x/")
        .is_err());
    assert!(fx
        .world
        .add_account_in_org(&unknown, "o-abcdef1234/r-ab12")
        .is_err());
    fx.world.add_user(&fx.b, "dup", &[EC2_ALL]).unwrap();
    assert_eq!(
        fx.world.add_user(&fx.b, "dup", &[]).unwrap_err().kind(),
        ErrorKind::Conflict
    );
    assert_eq!(
        fx.world
            .principals(&fx.b)
            .get(&format!("arn:aws:iam::{B}:user/dup")),
        Some(&1)
    );
    assert_eq!(fx.world.accounts().len(), 3);
    let elsewhere = crate::fixture::region(crate::fixture::OTHER_REGION);
    let key = fx.world.seed_key(&fx.a, &elsewhere, "k", None).unwrap();
    assert!(fx
        .world
        .set_ebs_default_key(&fx.b, &fx.region, Some(key.clone()))
        .is_err());
    assert!(fx
        .world
        .seed_instance(
            &fx.a,
            &fx.region,
            &[VolumeSeed::root(VolumeEncryption::Key(key))]
        )
        .is_err());
}

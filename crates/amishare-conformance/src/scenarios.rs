//! The suite: one function per behaviour. Each asserts exact outcomes (error
//! code, image or instance state, state reason) and panics on a mismatch.
//! `§B13` is the outcome table of the behavioural spec, `docs/spec/ec2.md`.

use std::collections::BTreeMap;

use amishare_core::store::{
    CopyImageRequest, CreateKeyRequest, ImageQuery, ImageState, InstanceState, KeyState,
    LaunchPermission, PermissionChange, VolumePermission,
};
use amishare_core::{
    AcceptRequest, CopyKey, ErrorKind, ImageSource, KeyChoice, KeyRef, LaunchOptions, RegionImage,
    ShareRequest, Sharer, Target, UnshareRequest, TAG_ALIAS,
};

use crate::harness::{Capability, Coverage, Harness, VolumeSeed};
use crate::support::{
    assert_aws_message, assert_code, assert_gate_refused, assert_kms_launch_reason,
    assert_terminated_at_launch, flow, manual_share, owner_image, seed_share, settle_image,
    share_or_gate, target_launch, unique_alias, Shared,
};

/// What a backend that does not encrypt copies cannot go past.
const GATE_REFUSES: Capability = Capability::EncryptsCopies;

/// The seed: share from a running instance under a new key with the target
/// principal, then the target checks the key, launches (running) and copies
/// the image under its own default key.
pub async fn seed_flow(h: &dyn Harness) -> Coverage {
    let mut coverage = Coverage::default();
    let caps = h.capabilities();
    let owner = h.owner();
    let target = h.target();
    let region = h.region();
    let instance = h
        .seed_instance(&[VolumeSeed::Unencrypted])
        .await
        .expect("seed instance");

    let alias = unique_alias(h, "seed");
    let request = seed_share(h, ImageSource::Instance(instance), alias.clone(), true);
    let report = match share_or_gate(h, &request, &mut coverage).await {
        Shared::Done(report) => report,
        Shared::Refused { .. } => {
            // The key and its policy come before the gate.
            let key = owner
                .keys
                .describe_key(&region, &KeyRef::Alias(alias))
                .await
                .expect("the key is found by its alias")
                .arn;
            assert_policy_names_target(h, &key).await;
            coverage.check("the key is created under its alias and its policy names the target");
            coverage.skip(
                "launch and create-volume permissions, the target's launch and copy",
                GATE_REFUSES,
            );
            return coverage;
        }
    };
    assert_eq!(report.regions.len(), 1);
    let shared = &report.regions[0];
    assert_eq!(shared.key.account(), owner.account());
    assert_ne!(
        shared.image, report.source_image,
        "the shared image is an encrypted copy"
    );
    assert!(!shared.snapshots.is_empty());
    assert!(
        shared.snapshots.values().all(|k| *k == shared.key),
        "every snapshot uses the key"
    );
    assert_eq!(
        shared.launch_permissions,
        vec![LaunchPermission::Account(target.account().clone())]
    );
    // A key created for the share carries the targets' statements from its
    // creation: its key-policy step lists them without a separate write.
    assert!(
        report.steps.iter().any(|s| s.action == "key-policy"),
        "the report lists the key-policy step"
    );
    for action in [
        "create-key",
        "create-alias",
        "create-image",
        "copy-image",
        "launch-permission",
        "volume-permission",
    ] {
        assert!(
            report.steps.iter().any(|s| s.action == action && s.changed),
            "the report lists a changing {action} step"
        );
    }

    assert_policy_names_target(h, &shared.key).await;
    coverage.check("the share copies under a new key whose policy names the target, verifies every snapshot's key and grants launch and create-volume permissions");

    h.set_target_kms_access(std::slice::from_ref(&shared.key))
        .await
        .expect("target IAM");
    if !caps.cross_account_visibility {
        coverage.skip("target launch and copy", Capability::CrossAccountVisibility);
        return coverage;
    }
    let accepted = flow(h, &target)
        .accept(
            &AcceptRequest::new(shared.image.clone(), region.clone(), [shared.key.clone()])
                .with_launch(LaunchOptions::default())
                .with_copy(CopyKey::AccountDefault),
        )
        .await
        .expect("the target accepts the share");
    assert_eq!(accepted.owner, *owner.account());
    assert_eq!(accepted.keys_checked, vec![shared.key.clone()]);
    let launch = accepted.launch.expect("launched");
    assert_eq!(launch.state, amishare_core::store::InstanceState::Running);
    let copy = accepted.copy.expect("copied");
    let copied = settle_image(h, &target, &region, &copy.image).await;
    assert_eq!(copied.owner, *target.account(), "the copier owns the copy");
    assert!(!copy.snapshots.is_empty());
    for key in copy.snapshots.values() {
        let key = key.as_ref().expect("the copy is encrypted");
        assert_eq!(
            key.account(),
            target.account(),
            "the copy no longer depends on the owner's key"
        );
    }
    coverage.check("the target launches the image and copies it under its own key");
    coverage
}

/// A second identical share finds everything in place and changes nothing.
pub async fn rerun_changes_nothing(h: &dyn Harness) -> Coverage {
    let mut coverage = Coverage::default();
    let owner = h.owner();
    let instance = h
        .seed_instance(&[VolumeSeed::Unencrypted, VolumeSeed::Unencrypted])
        .await
        .expect("seed instance");
    let request = seed_share(
        h,
        ImageSource::Instance(instance),
        unique_alias(h, "rerun"),
        true,
    );
    let first = match share_or_gate(h, &request, &mut coverage).await {
        Shared::Done(first) => first,
        Shared::Refused { image } => {
            rerun_refused(h, &request, &image, &mut coverage).await;
            return coverage;
        }
    };
    assert!(0 < first.mutating_calls);
    if !h.capabilities().tags_copies {
        coverage.skip("a rerun that finds the copy", Capability::TagsCopies);
        return coverage;
    }
    let calls_before = h.mutating_calls();
    let second = flow(h, &owner).share(&request).await.expect("rerun");
    assert_eq!(
        second.mutating_calls, 0,
        "a rerun makes no mutating call: {:#?}",
        second.steps
    );
    assert_eq!(second.source_image, first.source_image);
    assert_eq!(second.regions[0].image, first.regions[0].image);
    assert_eq!(second.regions[0].key, first.regions[0].key);
    coverage.check("the rerun reports no mutating call and the same image and key");
    match (calls_before, h.mutating_calls()) {
        (Some(before), Some(after)) => {
            assert_eq!(before, after, "the backend served no mutating call");
            coverage.check("the backend served no mutating call to the rerun");
        }
        _ => coverage.skip("backend call count", Capability::CountsCalls),
    }
    coverage
}

/// A share that stopped after creating its key and before naming it: the
/// rerun finds the key by its `amishare:alias` tag (`ListKeys`,
/// `ListResourceTags`), names it and merges the targets' statements into
/// its policy, rather than leaving it behind and creating a second key.
pub async fn resume_unnamed_key(h: &dyn Harness) -> Coverage {
    let mut coverage = Coverage::default();
    let owner = h.owner();
    let region = h.region();
    let alias = unique_alias(h, "resume");
    let stopped = owner
        .keys
        .create_key(
            &region,
            &CreateKeyRequest {
                description: "created by a share that stopped".to_owned(),
                policy: None,
                tags: BTreeMap::from([(TAG_ALIAS.to_owned(), alias.to_string())]),
            },
        )
        .await
        .expect("create key")
        .arn;
    let instance = h
        .seed_instance(&[VolumeSeed::Unencrypted])
        .await
        .expect("seed instance");
    let request = seed_share(h, ImageSource::Instance(instance), alias.clone(), false);
    match share_or_gate(h, &request, &mut coverage).await {
        Shared::Done(report) => {
            assert_eq!(
                report.regions[0].key, stopped,
                "the share used the stopped run's key"
            );
            assert!(
                !report.steps.iter().any(|step| step.action == "create-key"),
                "no second key: {:#?}",
                report.steps
            );
        }
        Shared::Refused { .. } => {
            coverage.skip("the share's report of the key it used", GATE_REFUSES);
        }
    }
    let named = owner
        .keys
        .describe_key(&region, &KeyRef::Alias(alias))
        .await
        .expect("the alias names a key");
    assert_eq!(named.arn, stopped, "the alias names the stopped run's key");
    let policy = owner.keys.get_key_policy(&stopped).await.expect("policy");
    let target = h.target().principal;
    assert!(
        policy.contains("amishare:") && policy.contains(target.as_str()),
        "the targets' statements were merged: {policy}"
    );
    coverage.check("the rerun names the stopped run's key and merges the targets into its policy");
    coverage
}

/// Unshare removes exactly what share added: launch and create-volume
/// permissions, and the target from amishare's key-policy statements.
pub async fn unshare_restores(h: &dyn Harness) -> Coverage {
    let mut coverage = Coverage::default();
    let owner = h.owner();
    let target = h.target();
    let region = h.region();
    let alias = unique_alias(h, "unshare");
    // A key that already exists, with a policy of the owner's own.
    let key = owner
        .keys
        .create_key(&region, &Default::default())
        .await
        .expect("create key")
        .arn;
    owner
        .keys
        .create_alias(&region, &alias, key.key_id())
        .await
        .expect("alias");
    let before = owner.keys.get_key_policy(&key).await.expect("policy");

    let instance = h
        .seed_instance(&[VolumeSeed::Unencrypted])
        .await
        .expect("seed instance");
    let mut request = seed_share(h, ImageSource::Instance(instance), alias, true);
    request.key = KeyChoice::Use(KeyRef::Arn(key.clone()));
    let (image, snapshots, policy_restorable) = match share_or_gate(h, &request, &mut coverage)
        .await
    {
        Shared::Done(report) => {
            let shared = &report.regions[0];
            let snapshots: Vec<_> = shared.snapshots.keys().cloned().collect();
            (shared.image.clone(), snapshots, true)
        }
        Shared::Refused { image } => {
            // Grant by hand what the share would have, so that unshare has it to remove.
            let snapshots = grant_by_hand(h, &image).await;
            coverage.check("unshare removes the permissions granted by hand on the refused copy");
            (image, snapshots, false)
        }
    };
    assert_ne!(
        owner.keys.get_key_policy(&key).await.expect("policy"),
        before,
        "the share added the target to the key policy"
    );

    let undone = flow(h, &owner)
        .unshare(&UnshareRequest::new(
            [RegionImage::new(region.clone(), image.clone())],
            request.targets.clone(),
        ))
        .await
        .expect("unshare");
    assert!(0 < undone.mutating_calls);
    if policy_restorable {
        let after = owner.keys.get_key_policy(&key).await.expect("policy");
        let parsed =
            |t: &str| serde_json::from_str::<serde_json::Value>(t).expect("policy is JSON");
        assert_eq!(
            parsed(&after),
            parsed(&before),
            "the key policy is back as it was"
        );
    } else {
        coverage.skip("the key policy is back as it was", GATE_REFUSES);
    }
    let launch = owner
        .images
        .describe_launch_permission(&region, &image)
        .await
        .expect("launch permission");
    assert!(launch.is_empty(), "no launch permission left: {launch:?}");
    for snapshot in &snapshots {
        let volume = owner
            .images
            .describe_create_volume_permission(&region, snapshot)
            .await
            .expect("volume permission");
        assert!(
            volume.is_empty(),
            "no create-volume permission left on {snapshot}"
        );
    }
    let images = owner
        .images
        .describe_images(&region, &ImageQuery::ids([image.clone()]))
        .await
        .expect("the image stays");
    assert_eq!(
        images[0].state,
        ImageState::Available,
        "unshare deletes nothing it was not asked to"
    );
    coverage.check("unshare removes the launch and create-volume permissions and keeps the image");

    if h.capabilities().cross_account_visibility {
        let seen = target
            .images
            .describe_images(&region, &ImageQuery::ids([image.clone()]))
            .await;
        assert_code(seen, "InvalidAMIID.NotFound");
        coverage.check("the target no longer sees the image");
    } else {
        coverage.skip(
            "target no longer sees the image",
            Capability::CrossAccountVisibility,
        );
    }
    let again = flow(h, &owner)
        .unshare(&UnshareRequest::new(
            [RegionImage::new(region, image)],
            request.targets,
        ))
        .await
        .expect("a second unshare");
    assert_eq!(again.mutating_calls, 0, "nothing left to remove");
    coverage.check("a second unshare changes nothing");
    coverage
}

/// §B13: sharing an AMI encrypted with `aws/ebs` fails with `InvalidParameter`;
/// amishare refuses the `aws/ebs` key before any call, and shares such an image by copying it under a CMK.
pub async fn aws_managed_image(h: &dyn Harness) -> Coverage {
    let mut coverage = Coverage::default();
    let owner = h.owner();
    let region = h.region();
    let image = owner_image(h, &[VolumeSeed::AwsManaged], "aws-managed")
        .await
        .id;
    if h.capabilities().encrypts_copies {
        let denied = owner
            .images
            .modify_launch_permission(
                &region,
                &image,
                &PermissionChange::add(vec![LaunchPermission::Account(
                    h.target().account().clone(),
                )]),
            )
            .await;
        let err = assert_code(denied, "InvalidParameter");
        assert!(err.message().contains("AWS Managed CMK"), "{err}");
        coverage.check("EC2 refuses to share an aws/ebs image with InvalidParameter");
    } else {
        coverage.skip(
            "InvalidParameter on an aws/ebs image",
            Capability::EncryptsCopies,
        );
    }

    let mut request = seed_share(
        h,
        ImageSource::Image(image.clone()),
        unique_alias(h, "awsebs"),
        false,
    );
    request.key = KeyChoice::Use(KeyRef::Alias(amishare_core::AliasName::aws_ebs()));
    let calls = h.mutating_calls();
    let refused = flow(h, &owner)
        .share(&request)
        .await
        .expect_err("aws/ebs is refused");
    assert_eq!(refused.kind(), ErrorKind::Unsupported);
    assert!(refused.message().contains("alias/aws/ebs"), "{refused}");
    coverage.check("a share under alias/aws/ebs is refused as unsupported");
    match (calls, h.mutating_calls()) {
        (Some(before), Some(after)) => {
            assert_eq!(before, after, "refused before any mutating call");
            coverage.check("the refusal comes before any mutating call");
        }
        _ => coverage.skip(
            "no mutating call before the refusal",
            Capability::CountsCalls,
        ),
    }

    request.key = KeyChoice::Create(unique_alias(h, "cmk"));
    match share_or_gate(h, &request, &mut coverage).await {
        Shared::Done(report) => {
            assert_ne!(report.regions[0].image, image);
            coverage.check("the aws/ebs image is shared as a copy under a new key");
        }
        Shared::Refused { image: copy } => {
            assert_ne!(copy, image, "the gate refused the copy, not the source");
            coverage.skip("sharing the CMK copy", GATE_REFUSES);
        }
    }
    coverage
}

/// §B13: a snapshot encrypted with `aws/ebs` cannot be shared (`OperationNotPermitted`),
/// and an encrypted image cannot be made public (`UnsupportedOperation`).
pub async fn refused_permissions(h: &dyn Harness) -> Coverage {
    let mut coverage = Coverage::default();
    let owner = h.owner();
    let region = h.region();
    let image = owner_image(h, &[VolumeSeed::AwsManaged], "aws-managed-snapshot").await;
    let snapshot = &image.block_devices[0].snapshot_id;
    let denied = owner
        .images
        .modify_create_volume_permission(
            &region,
            snapshot,
            &PermissionChange::add(vec![VolumePermission::Account(
                h.target().account().clone(),
            )]),
        )
        .await;
    let err = assert_code(denied, "OperationNotPermitted");
    assert!(err.message().contains("EBS default key"), "{err}");

    // An image encrypted with a customer-managed key can be shared, but never publicly.
    let key = owner
        .keys
        .create_key(&region, &Default::default())
        .await
        .expect("create key")
        .arn;
    let image = owner_image(h, &[VolumeSeed::Key(key)], "cmk-public").await;
    let public = owner
        .images
        .modify_launch_permission(
            &region,
            &image.id,
            &PermissionChange::add(vec![LaunchPermission::Public]),
        )
        .await;
    assert_code(public, "UnsupportedOperation");
    let launch = owner
        .images
        .describe_launch_permission(&region, &image.id)
        .await
        .expect("launch permission");
    assert!(launch.is_empty(), "a refused call changes nothing");
    coverage.check("an aws/ebs snapshot is refused with OperationNotPermitted, a public encrypted image with UnsupportedOperation");
    coverage
}

/// §B13: the key policy was never updated: sharing works, the launch dies asynchronously,
/// and amishare's accept names the key the target cannot use. The direct
/// `DescribeKey` is refused too, which a key narrowed to EC2 would also
/// refuse, so accept lets its smoke launch decide (§D1), and the launch
/// terminates as EC2 terminates it.
pub async fn launch_without_key_policy(h: &dyn Harness) -> Coverage {
    let mut coverage = Coverage::default();
    let (key, image) = manual_share(h, &[], false).await;
    h.set_target_kms_access(std::slice::from_ref(&key))
        .await
        .expect("target IAM");
    assert_terminated_at_launch(&target_launch(h, &image.id).await);

    let accepted = flow(h, &h.target())
        .accept(
            &AcceptRequest::new(image.id.clone(), h.region(), [key.clone()])
                .with_launch(LaunchOptions::default()),
        )
        .await
        .expect_err("the smoke launch fails");
    assert_eq!(accepted.kind(), ErrorKind::LaunchFailed, "{accepted}");
    let launch = accepted
        .failed_launch()
        .expect("a failed launch carries its fields");
    assert_eq!(launch.image, image.id);
    assert_eq!(launch.region, h.region());
    let reason = launch.reason.as_ref().expect("EC2 says why");
    assert_kms_launch_reason(reason);
    assert_eq!(accepted.code(), Some(reason.code.as_str()), "{accepted}");
    let seen = h
        .target()
        .images
        .describe_instances(&h.region(), std::slice::from_ref(&launch.instance))
        .await
        .expect("the failed instance is the target's");
    assert_eq!(seen.len(), 1, "the error names the instance launched");
    assert!(
        matches!(
            seen[0].state,
            InstanceState::ShuttingDown | InstanceState::Terminated
        ),
        "{:?}",
        seen[0].state
    );
    assert!(accepted.message().contains(&key.to_string()), "{accepted}");
    assert!(
        accepted.message().contains("DescribeKey"),
        "the error says the direct DescribeKey was refused too: {accepted}"
    );
    coverage.check("the launch terminates with Client.InternalError, and accept's error names the key and the refused DescribeKey");
    coverage
}

/// §B13: the key policy allows the target account root, but the target's IAM allows no KMS action.
pub async fn launch_without_target_iam(h: &dyn Harness) -> Coverage {
    let mut coverage = Coverage::default();
    let root = h.target().account().root_arn().to_string();
    let (_key, image) = manual_share(h, &[root], false).await;
    h.set_target_kms_access(&[]).await.expect("target IAM");
    assert_terminated_at_launch(&target_launch(h, &image.id).await);
    coverage.check("the launch terminates with Client.InternalError");
    coverage
}

/// §B13: the key policy names the target principal itself; without its own IAM allow it still fails.
pub async fn launch_with_principal_but_no_iam(h: &dyn Harness) -> Coverage {
    let mut coverage = Coverage::default();
    let (_key, image) = manual_share(h, &[h.target().principal.to_string()], false).await;
    h.set_target_kms_access(&[]).await.expect("target IAM");
    assert_terminated_at_launch(&target_launch(h, &image.id).await);
    coverage.check("the launch terminates with Client.InternalError");
    coverage
}

/// §B13: everything allowed, but the key is disabled.
pub async fn launch_with_disabled_key(h: &dyn Harness) -> Coverage {
    let mut coverage = Coverage::default();
    let (key, image) = manual_share(h, &[h.target().principal.to_string()], false).await;
    h.set_target_kms_access(std::slice::from_ref(&key))
        .await
        .expect("target IAM");
    let ok = target_launch(h, &image.id).await;
    assert_eq!(
        ok.state,
        amishare_core::store::InstanceState::Running,
        "the share works while the key is enabled"
    );
    h.set_key_state(&key, KeyState::Disabled)
        .await
        .expect("disable key");
    assert_terminated_at_launch(&target_launch(h, &image.id).await);
    coverage.check("the launch runs while the key is enabled and terminates with Client.InternalError once it is disabled");
    coverage
}

/// §B13: the target copies a shared image whose snapshots were not shared.
pub async fn copy_without_snapshot_permission(h: &dyn Harness) -> Coverage {
    let mut coverage = Coverage::default();
    let (key, image) = manual_share(h, &[h.target().principal.to_string()], false).await;
    h.set_target_kms_access(std::slice::from_ref(&key))
        .await
        .expect("target IAM");
    let copied = h
        .target()
        .images
        .copy_image(&h.region(), &copy_request(h, &image.id, None))
        .await;
    let err = assert_code(copied, "InvalidRequest");
    assert_aws_message(
        &err,
        "You do not have permission to access the storage of this ami",
    );
    coverage.check("CopyImage is refused with InvalidRequest and AWS's message");
    coverage
}

/// §B13: snapshots shared and KMS allowed: the copy is the target's, under the target's key.
pub async fn copy_with_snapshot_permission(h: &dyn Harness) -> Coverage {
    let mut coverage = Coverage::default();
    let target = h.target();
    let region = h.region();
    let (key, image) = manual_share(h, &[target.principal.to_string()], true).await;
    let own_key = h.seed_target_key().await.expect("target key");
    h.set_target_kms_access(&[key, own_key.clone()])
        .await
        .expect("target IAM");
    let copy = target
        .images
        .copy_image(
            &region,
            &copy_request(h, &image.id, Some(KeyRef::Arn(own_key.clone()))),
        )
        .await
        .expect("copy");
    let copied = settle_image(h, &target, &region, &copy).await;
    assert_eq!(copied.state, ImageState::Available);
    assert_eq!(copied.owner, *target.account());
    let ids: Vec<_> = copied
        .block_devices
        .iter()
        .map(|d| d.snapshot_id.clone())
        .collect();
    let snapshots = target
        .images
        .describe_snapshots(&region, &ids)
        .await
        .expect("own snapshots");
    assert_eq!(snapshots.len(), ids.len());
    for snapshot in snapshots {
        assert_eq!(snapshot.owner, *target.account());
        assert_eq!(snapshot.kms_key.as_ref(), Some(&own_key));
    }
    coverage.check("the copy is available, the target's, and its snapshots use the target's key");
    coverage
}

/// §B13: snapshots shared but the key policy does not allow the target: the copy fails later.
pub async fn copy_without_kms(h: &dyn Harness) -> Coverage {
    let mut coverage = Coverage::default();
    let target = h.target();
    let region = h.region();
    let (key, image) = manual_share(h, &[], true).await;
    h.set_target_kms_access(std::slice::from_ref(&key))
        .await
        .expect("target IAM");
    let copy = target
        .images
        .copy_image(&region, &copy_request(h, &image.id, None))
        .await
        .expect("CopyImage returns an ID");
    let copied = settle_image(h, &target, &region, &copy).await;
    assert_eq!(copied.state, ImageState::Failed);
    assert!(copied.state_reason.is_some(), "a failed copy says why");
    coverage.check("CopyImage returns an ID and the copy goes failed with a reason");
    coverage
}

/// §B13: CopyImage with a KmsKeyId of another region returns an ID, then fails.
pub async fn copy_with_key_from_other_region(h: &dyn Harness) -> Coverage {
    let mut coverage = Coverage::default();
    let owner = h.owner();
    let region = h.region();
    let far = owner
        .keys
        .create_key(&h.other_region(), &Default::default())
        .await
        .expect("key elsewhere")
        .arn;
    let source = owner_image(h, &[VolumeSeed::Unencrypted], "far-key-source")
        .await
        .id;
    let copy = owner
        .images
        .copy_image(&region, &copy_request(h, &source, Some(KeyRef::Arn(far))))
        .await
        .expect("CopyImage returns an ID");
    let copied = settle_image(h, &owner, &region, &copy).await;
    assert_eq!(copied.state, ImageState::Failed);
    coverage.check("CopyImage returns an ID and the copy goes failed");
    coverage
}

/// §B13: before sharing, the target cannot see the image; after, it can.
pub async fn invisible_before_share(h: &dyn Harness) -> Coverage {
    let mut coverage = Coverage::default();
    let owner = h.owner();
    let target = h.target();
    let region = h.region();
    let image = owner_image(h, &[VolumeSeed::Unencrypted], "not-shared-yet")
        .await
        .id;
    let seen = target
        .images
        .describe_images(&region, &ImageQuery::ids([image.clone()]))
        .await;
    let err = assert_code(seen, "InvalidAMIID.NotFound");
    assert!(err.message().contains(image.as_str()), "{err}");
    coverage.check("the target's DescribeImages of an image not shared is InvalidAMIID.NotFound");
    owner
        .images
        .modify_launch_permission(
            &region,
            &image,
            &PermissionChange::add(vec![LaunchPermission::Account(target.account().clone())]),
        )
        .await
        .expect("share");
    if h.capabilities().cross_account_visibility {
        let seen = target
            .images
            .describe_images(&region, &ImageQuery::ids([image.clone()]))
            .await
            .expect("visible now");
        assert_eq!(seen[0].owner, *owner.account());
        assert!(seen[0].tags.is_empty(), "the owner's tags are not shared");
        coverage.check("the target sees the shared image, without the owner's tags");
    } else {
        coverage.skip(
            "target sees the shared image",
            Capability::CrossAccountVisibility,
        );
    }
    coverage
}

/// §B13: the owner cannot delete a snapshot while a registered image uses it.
pub async fn snapshot_in_use(h: &dyn Harness) -> Coverage {
    let mut coverage = Coverage::default();
    let owner = h.owner();
    let region = h.region();
    let image = owner_image(h, &[VolumeSeed::Unencrypted], "in-use").await;
    let snapshot = &image.block_devices[0].snapshot_id;
    let err = assert_code(
        owner.images.delete_snapshot(&region, snapshot).await,
        "InvalidSnapshot.InUse",
    );
    assert_aws_message(
        &err,
        &format!(
            "The snapshot {snapshot} is currently in use by {}",
            image.id
        ),
    );
    coverage.check("DeleteSnapshot is refused with InvalidSnapshot.InUse and AWS's message");
    coverage
}

/// amishare refuses to share an image whose snapshots are not all under the key (the hard gate),
/// before granting anything.
pub async fn snapshot_key_gate(h: &dyn Harness) -> Coverage {
    let owner = h.owner();
    let region = h.region();
    let other = owner
        .keys
        .create_key(&region, &Default::default())
        .await
        .expect("other key")
        .arn;
    let image = owner_image(h, &[VolumeSeed::Key(other.clone())], "other-key")
        .await
        .id;
    let request = ShareRequest::new(
        ImageSource::Image(image.clone()),
        region.clone(),
        KeyChoice::Create(unique_alias(h, "gate")),
        [Target::Account(h.target().account().clone())],
    );
    let mut coverage = Coverage::default();
    match share_or_gate(h, &request, &mut coverage).await {
        Shared::Done(report) => {
            // The copy re-encrypts under the requested key, so the gate passes.
            let shared = &report.regions[0];
            assert!(shared.snapshots.values().all(|k| *k == shared.key));
            coverage.check(
                "the copy of an image under another key is re-encrypted and passes the gate",
            );
        }
        Shared::Refused { image: copy } => {
            assert_ne!(copy, image, "the gate refused the copy, not the source");
            coverage.skip("gate passing", GATE_REFUSES);
        }
    }
    coverage
}

/// One share in two regions: one key per region (created by alias), a copy
/// under each region's key, every snapshot verified against its own region's key.
pub async fn multi_region_share(h: &dyn Harness) -> Coverage {
    let mut coverage = Coverage::default();
    let owner = h.owner();
    let region = h.region();
    let other = h.other_region();
    let instance = h
        .seed_instance(&[VolumeSeed::Unencrypted])
        .await
        .expect("seed instance");
    let alias = unique_alias(h, "regions");
    let mut request = seed_share(h, ImageSource::Instance(instance), alias.clone(), true);
    request.regions = vec![region.clone(), other.clone()];
    let report = match share_or_gate(h, &request, &mut coverage).await {
        Shared::Done(report) => report,
        Shared::Refused { .. } => {
            // Keys come before the gate, in every region.
            let mut keys = Vec::new();
            for expected in [&region, &other] {
                let key = owner
                    .keys
                    .describe_key(expected, &KeyRef::Alias(alias.clone()))
                    .await
                    .expect("a key under the alias in each region")
                    .arn;
                assert_eq!(key.region(), expected, "one key per region");
                keys.push(key);
            }
            assert_ne!(keys[0], keys[1]);
            coverage.check("one key per region, each created under the alias");
            coverage.skip(
                "copies verified in both regions, and the rerun",
                GATE_REFUSES,
            );
            return coverage;
        }
    };
    assert_eq!(report.regions.len(), 2);
    let mut keys = Vec::new();
    for (shared, expected) in report.regions.iter().zip([&region, &other]) {
        assert_eq!(&shared.region, expected);
        assert_eq!(shared.key.region(), expected, "one key per region");
        assert!(!shared.snapshots.is_empty());
        assert!(shared.snapshots.values().all(|k| *k == shared.key));
        let images = owner
            .images
            .describe_images(expected, &ImageQuery::ids([shared.image.clone()]))
            .await
            .expect("the copy is in its region");
        assert_eq!(images[0].state, ImageState::Available);
        keys.push(shared.key.clone());
    }
    assert_ne!(keys[0], keys[1]);
    coverage.check("one key per region, and a copy in each verified against its own region's key");
    let again = flow(h, &owner)
        .share(&request)
        .await
        .expect("rerun in two regions");
    assert_eq!(again.mutating_calls, 0, "{:#?}", again.steps);
    coverage.check("the rerun in two regions changes nothing");
    coverage
}

/// Sharing with an organization: launch permission for the organization, a
/// key-policy statement on `aws:PrincipalOrgID`, and a member account's
/// principal launches the image.
pub async fn organization_share(h: &dyn Harness) -> Coverage {
    let mut coverage = Coverage::default();
    let (org, _ou) = h
        .target_organization()
        .expect("the harness has an organization");
    let owner = h.owner();
    let region = h.region();
    let instance = h
        .seed_instance(&[VolumeSeed::Unencrypted])
        .await
        .expect("seed instance");
    let mut request = seed_share(
        h,
        ImageSource::Instance(instance),
        unique_alias(h, "org"),
        true,
    );
    request.targets = vec![Target::Organization(org.clone())];
    let report = flow(h, &owner)
        .share(&request)
        .await
        .expect("share with the organization");
    assert!(
        report
            .warnings
            .iter()
            .any(|w| w.contains("create-volume permission")),
        "create-volume permission cannot name an organization: {:?}",
        report.warnings
    );
    let shared = &report.regions[0];
    assert_eq!(
        shared.launch_permissions,
        vec![LaunchPermission::Organization(org.clone())]
    );
    let policy = owner
        .keys
        .get_key_policy(&shared.key)
        .await
        .expect("policy");
    assert!(
        policy.contains("aws:PrincipalOrgID") && policy.contains(org.org_id()),
        "{policy}"
    );
    coverage.check(
        "launch permission for the organization and a key-policy statement on aws:PrincipalOrgID",
    );
    let caps = h.capabilities();
    let lacking = caps.lacking(&[
        Capability::CrossAccountVisibility,
        Capability::EnforcesKeyPolicy,
    ]);
    if !lacking.is_empty() {
        for capability in lacking {
            coverage.skip("member launches", capability);
        }
        return coverage;
    }
    h.set_target_kms_access(std::slice::from_ref(&shared.key))
        .await
        .expect("target IAM");
    let accepted = flow(h, &h.target())
        .accept(
            &AcceptRequest::new(shared.image.clone(), region, [shared.key.clone()])
                .with_launch(LaunchOptions::default()),
        )
        .await
        .expect("a member of the organization launches the image");
    assert_eq!(
        accepted.launch.expect("launched").state,
        amishare_core::store::InstanceState::Running
    );
    coverage.check("a member of the organization launches the image");
    coverage
}

pub(crate) fn copy_request(
    h: &dyn Harness,
    image: &amishare_core::ImageId,
    key: Option<KeyRef>,
) -> CopyImageRequest {
    CopyImageRequest {
        source_image: image.clone(),
        source_region: h.region(),
        name: format!("copy-of-{image}"),
        encrypted: Some(true),
        kms_key: key,
        client_token: None,
        tags: BTreeMap::new(),
    }
}

/// Asserts that the key policy names the target principal, in a statement
/// that lets EC2 create grants for it.
async fn assert_policy_names_target(h: &dyn Harness, key: &amishare_core::KeyArn) {
    let policy = h
        .owner()
        .keys
        .get_key_policy(key)
        .await
        .expect("owner reads the policy");
    assert!(
        policy.contains(h.target().principal.as_str()),
        "the key policy names the target principal"
    );
    assert!(policy.contains("kms:GrantIsForAWSResource"));
}

/// The rerun of a share the gate refused: refused again, and, where the
/// backend keeps the copy's tags, without a mutating call.
async fn rerun_refused(
    h: &dyn Harness,
    request: &ShareRequest,
    first_copy: &amishare_core::ImageId,
    coverage: &mut Coverage,
) {
    let calls_before = h.mutating_calls();
    let again = flow(h, &h.owner())
        .share(request)
        .await
        .expect_err("the rerun is refused too");
    let (copy, _) = assert_gate_refused(&again);
    match (calls_before, h.mutating_calls()) {
        (Some(before), Some(after)) if h.capabilities().tags_copies => {
            assert_eq!(&copy, first_copy, "the rerun finds the copy");
            assert_eq!(before, after, "the rerun makes no mutating call");
            coverage
                .check("the rerun of the refused share is refused again without a mutating call");
        }
        (Some(before), Some(after)) => {
            assert_ne!(&copy, first_copy, "the backend cannot find the first copy");
            assert_eq!(
                after - before,
                1,
                "the rerun finds the key, its policy and the instance's image, and only copies again"
            );
            coverage.check(
                "the rerun finds the key, its policy and the instance's image, copies again (one mutating call) and is refused again",
            );
            coverage.skip("no mutating call on rerun", Capability::TagsCopies);
        }
        _ => coverage.skip("backend call count", Capability::CountsCalls),
    }
    coverage.skip("rerun of a completed share", GATE_REFUSES);
}

/// Grants the target account launch permission on `image` and create-volume
/// permission on its snapshots, at the trait level, and returns the snapshots.
async fn grant_by_hand(
    h: &dyn Harness,
    image: &amishare_core::ImageId,
) -> Vec<amishare_core::SnapshotId> {
    let owner = h.owner();
    let region = h.region();
    let account = h.target().account().clone();
    owner
        .images
        .modify_launch_permission(
            &region,
            image,
            &PermissionChange::add(vec![LaunchPermission::Account(account.clone())]),
        )
        .await
        .expect("grant launch permission");
    let found = owner
        .images
        .describe_images(&region, &ImageQuery::ids([image.clone()]))
        .await
        .expect("the copy is listed");
    let snapshots: Vec<_> = found[0]
        .block_devices
        .iter()
        .map(|d| d.snapshot_id.clone())
        .collect();
    for snapshot in &snapshots {
        owner
            .images
            .modify_create_volume_permission(
                &region,
                snapshot,
                &PermissionChange::add(vec![VolumePermission::Account(account.clone())]),
            )
            .await
            .expect("grant create-volume permission");
    }
    snapshots
}

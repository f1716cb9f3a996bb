//! The flow's own promises: the options of `share` that shape access
//! compose, so that what the doctor says of the target's launch or copy is
//! what `accept` then does; `unshare` takes back only what no other
//! principal of the account still relies on; the doctor's fix writes only
//! for a principal whose account can see the image.

use amishare_core::diagnose::{DiagnoseRequest, Diagnosis, Doctor, Intent, Verdict};
use amishare_core::store::{
    CreateKeyRequest, ImageQuery, LaunchPermission, PermissionChange, VolumePermission,
};
use amishare_core::{
    smoke_instances, AcceptReport, AcceptRequest, CopyKey, Error, FixRequest, ImageName,
    ImageSource, KeyChoice, KeyRef, LaunchOptions, Narrowing, RegionImage, ShareRequest, Sharer,
    Target, UnshareRequest,
};

use crate::doctor::{check_both_outcomes, diagnose, launch_works, render, sight, stores};
use crate::harness::{Capability, Coverage, Harness, VolumeSeed};
use crate::support::{flow, owner_image, unique_alias};

/// Asserts that the doctor's verdict on an intent and `accept` with that
/// intent agree: the doctor passes exactly when accept succeeds. A link the
/// doctor cannot see (`??`) is excepted only where the backend cannot show
/// it every side.
#[track_caller]
fn agrees(
    h: &dyn Harness,
    case: &str,
    diagnosis: &Diagnosis,
    accepted: &Result<AcceptReport, Error>,
) {
    match (diagnosis.verdict, accepted) {
        (Verdict::Pass, Ok(_)) | (Verdict::Fail, Err(_)) => {}
        (Verdict::Unknown, _) if h.directory().is_none() => {}
        (verdict, result) => panic!(
            "{case}: the doctor says {verdict}, but accept {}\n{}",
            match result {
                Ok(_) => "succeeded".to_owned(),
                Err(err) => format!("failed: {err}"),
            },
            render(diagnosis)
        ),
    }
}

/// `accept` as the target, with one intent: a smoke launch, or a copy under
/// the target's default EBS key.
async fn accept(
    h: &dyn Harness,
    image: &amishare_core::ImageId,
    key: &amishare_core::KeyArn,
    intent: Intent,
) -> Result<AcceptReport, Error> {
    flow(h, &h.target())
        .accept(&{
            let mut request = AcceptRequest::new(image.clone(), h.region(), [key.clone()]);
            if intent == Intent::Launch {
                request = request.with_launch(LaunchOptions::default());
            }
            if intent == Intent::Copy {
                request = request.with_copy(CopyKey::AccountDefault);
            }
            request
        })
        .await
}

/// Every combination of the share options that shape access (account,
/// principal, organization and OU targets; `--via-service`;
/// `--caller-account`; create-volume permission on and off; a key created
/// for the share or one that exists), then, as the target, `accept` with a
/// launch and with a copy under its default key, each next to the doctor's
/// verdict on that intent: accept succeeds exactly when the doctor passes,
/// and always where the options promise it (a launch always; a copy with
/// create-volume permission, which names accounts only). No smoke instance
/// is left running.
pub async fn share_options_agree_with_accept(h: &dyn Harness) -> Coverage {
    let mut coverage = sight(h);
    let owner = h.owner();
    let target = h.target();
    let region = h.region();
    let source = owner_image(h, &[VolumeSeed::Unencrypted], "matrix-source").await;
    // Each target, and whether create-volume permission can reach it.
    let mut targets = vec![
        (Target::Account(target.account().clone()), true),
        (Target::Principal(target.principal.clone()), true),
    ];
    match h.target_organization() {
        Some((org, ou)) => {
            targets.push((Target::Organization(org), false));
            targets.push((Target::OrganizationalUnit(ou), false));
        }
        None => coverage.skip("organization and OU targets", Capability::Organizations),
    }
    let mut outcomes = (0, 0);
    for (chosen, copyable) in &targets {
        for via_service in [false, true] {
            for caller_account in [false, true] {
                for volume_permission in [false, true] {
                    for created in [true, false] {
                        let case = format!(
                            "{chosen}, via-service {via_service}, caller-account {caller_account}, create-volume permission {volume_permission}, key {}",
                            if created { "created" } else { "existing" }
                        );
                        let alias = unique_alias(h, "matrix");
                        // The copy's name, unique like the alias.
                        let name = ImageName::parse(alias.as_str().trim_start_matches("alias/"))
                            .expect("a unique alias is an image name");
                        let key = if created {
                            KeyChoice::Create(alias)
                        } else {
                            let key = owner
                                .keys
                                .create_key(&region, &CreateKeyRequest::default())
                                .await
                                .expect("create key");
                            owner
                                .keys
                                .create_alias(&region, &alias, key.key_id())
                                .await
                                .expect("alias");
                            KeyChoice::Use(KeyRef::Alias(alias))
                        };
                        let request = ShareRequest::new(
                            ImageSource::Image(source.id.clone()),
                            region.clone(),
                            key,
                            [chosen.clone()],
                        )
                        .with_volume_permission(volume_permission)
                        .with_name(name)
                        .with_narrowing(
                            Narrowing::default()
                                .with_via_service(via_service)
                                .with_caller_account(caller_account),
                        );
                        let report = flow(h, &owner)
                            .share(&request)
                            .await
                            .unwrap_or_else(|err| panic!("{case}: the share: {err}"));
                        let shared = &report.regions[0];
                        h.set_target_kms_access(std::slice::from_ref(&shared.key))
                            .await
                            .expect("target IAM");
                        for intent in [Intent::Launch, Intent::Copy] {
                            let case = format!("{case}: {intent}");
                            let diagnosis =
                                diagnose(h, &shared.image, intent, CopyKey::AccountDefault).await;
                            let accepted = accept(h, &shared.image, &shared.key, intent).await;
                            agrees(h, &case, &diagnosis, &accepted);
                            let promised =
                                intent == Intent::Launch || (volume_permission && *copyable);
                            let Ok(report) = &accepted else {
                                assert!(!promised, "{case}: accept failed: {accepted:?}");
                                outcomes.1 += 1;
                                continue;
                            };
                            outcomes.0 += 1;
                            let key = std::slice::from_ref(&shared.key);
                            if via_service {
                                // Only EC2 may use the key: the launch or copy proved it.
                                assert_eq!(report.keys_through_ec2, key, "{case}");
                                assert!(report.keys_checked.is_empty(), "{case}");
                            } else {
                                assert_eq!(report.keys_checked, key, "{case}");
                            }
                            if let Some(launch) = &report.launch {
                                assert!(launch.terminated_after, "{case}");
                            }
                        }
                    }
                }
            }
        }
    }
    check_both_outcomes(
        &mut coverage,
        "accept and the doctor agree on every combination of targets and share options",
        outcomes,
    );
    let running = smoke_instances(&*target.images, &region, None)
        .await
        .expect("the target's instances");
    assert!(running.is_empty(), "no smoke instance left: {running:?}");
    coverage.check("no smoke instance is left running");
    coverage
}

/// Two principals of one account, shared with separately: unsharing one
/// keeps the account's launch and create-volume permissions, which the
/// other still needs, says so, and takes only the first out of the key
/// policy; the other still launches and copies, the first no longer can.
/// Unsharing the other then removes the permissions.
pub async fn unshare_keeps_what_another_principal_needs(h: &dyn Harness) -> Coverage {
    let mut coverage = sight(h);
    let other = h
        .other_target()
        .expect("the harness has a second target principal");
    let owner = h.owner();
    let target = h.target();
    let region = h.region();
    let account = target.account().clone();
    assert_eq!(
        other.account(),
        &account,
        "the two principals share an account"
    );
    let source = owner_image(h, &[VolumeSeed::Unencrypted], "scope-source").await;
    let alias = unique_alias(h, "scope");
    let share_with = |principal: &amishare_core::PrincipalArn| {
        ShareRequest::new(
            ImageSource::Image(source.id.clone()),
            region.clone(),
            KeyChoice::Create(alias.clone()),
            [Target::Principal(principal.clone())],
        )
        .with_volume_permission(true)
    };
    let first = flow(h, &owner)
        .share(&share_with(&target.principal))
        .await
        .expect("share with the target");
    let second = flow(h, &owner)
        .share(&share_with(&other.principal))
        .await
        .expect("share with the other principal");
    let shared = &second.regions[0];
    assert_eq!(shared.image, first.regions[0].image, "one shared copy");
    h.set_target_kms_access(std::slice::from_ref(&shared.key))
        .await
        .expect("target IAM");
    let unshare = |principal: &amishare_core::PrincipalArn| {
        UnshareRequest::new(
            [RegionImage::new(region.clone(), shared.image.clone())],
            [Target::Principal(principal.clone())],
        )
    };
    let report = flow(h, &owner)
        .unshare(&unshare(&target.principal))
        .await
        .expect("unshare the target");
    assert_eq!(report.kept.len(), 1, "{:#?}", report.steps);
    assert_eq!(report.kept[0].account, account);
    assert_eq!(report.kept[0].named, [other.principal.to_string()]);
    assert!(
        report
            .steps
            .iter()
            .any(|s| s.action == "keep-permissions" && s.detail.contains(other.principal.as_str())),
        "the report says what it kept and why: {:#?}",
        report.steps
    );
    let launch = owner
        .images
        .describe_launch_permission(&region, &shared.image)
        .await
        .expect("launch permission");
    assert_eq!(launch, [LaunchPermission::Account(account.clone())]);
    for snapshot in shared.snapshots.keys() {
        let volume = owner
            .images
            .describe_create_volume_permission(&region, snapshot)
            .await
            .expect("create-volume permission");
        assert_eq!(volume, [VolumePermission::Account(account.clone())]);
    }
    let policy = owner
        .keys
        .get_key_policy(&shared.key)
        .await
        .expect("policy");
    assert!(!policy.contains(target.principal.as_str()), "{policy}");
    assert!(policy.contains(other.principal.as_str()), "{policy}");

    let still = flow(h, &other)
        .accept(
            &AcceptRequest::new(shared.image.clone(), region.clone(), [shared.key.clone()])
                .with_launch(LaunchOptions::default())
                .with_copy(CopyKey::AccountDefault),
        )
        .await
        .expect("the other principal still launches and copies");
    assert!(still.launch.is_some() && still.copy.is_some());
    let diagnosis = diagnose(h, &shared.image, Intent::Launch, CopyKey::AccountDefault).await;
    let accepted = accept(h, &shared.image, &shared.key, Intent::Launch).await;
    agrees(h, "the unshared principal's launch", &diagnosis, &accepted);
    assert!(
        accepted.is_err(),
        "the unshared principal can no longer launch"
    );

    let report = flow(h, &owner)
        .unshare(&unshare(&other.principal))
        .await
        .expect("unshare the other principal");
    assert!(report.kept.is_empty(), "{:#?}", report.kept);
    let launch = owner
        .images
        .describe_launch_permission(&region, &shared.image)
        .await
        .expect("launch permission");
    assert!(launch.is_empty(), "{launch:?}");
    coverage.check("unsharing one principal keeps the account's permissions for the other, which still launches and copies; unsharing the other removes them");
    coverage
}

/// The doctor's fix for a principal whose account cannot see the image:
/// it names the share that must come first and changes nothing (no key
/// policy written, no call that changes anything). Once the image is
/// shared, the fix writes the key policy and the target launches.
pub async fn fix_waits_for_the_share(h: &dyn Harness) -> Coverage {
    let mut coverage = sight(h);
    let owner = h.owner();
    let target = h.target();
    let region = h.region();
    let key = owner
        .keys
        .create_key(&region, &CreateKeyRequest::default())
        .await
        .expect("create key")
        .arn;
    let image = owner_image(h, &[VolumeSeed::Key(key.clone())], "fix-unseen").await;
    h.set_target_kms_access(std::slice::from_ref(&key))
        .await
        .expect("target IAM");
    let mut doctor = Doctor::new()
        .with_owner(stores(&owner))
        .with_target(stores(&h.target_admin().unwrap_or_else(|| h.target())));
    if let Some(directory) = h.directory() {
        doctor = doctor.with_directory(directory);
    }
    let request = FixRequest::new(DiagnoseRequest::new(
        image.id.clone(),
        region.clone(),
        target.principal.clone(),
        Intent::Launch,
    ));
    let policy = owner.keys.get_key_policy(&key).await.expect("policy");
    let calls = h.mutating_calls();
    let refused = flow(h, &owner)
        .fix(&doctor, &request)
        .await
        .expect("the fix answers");
    assert!(refused.mended.is_empty(), "{:?}", refused.mended);
    let why = refused
        .refused
        .as_deref()
        .expect("the fix says why it wrote nothing");
    assert!(
        why.contains("not shared")
            && why.contains(target.account().as_str())
            && why.contains("share"),
        "{why}"
    );
    assert!(!refused.passes());
    assert_eq!(
        owner.keys.get_key_policy(&key).await.expect("policy"),
        policy,
        "the key policy is unchanged"
    );
    match (calls, h.mutating_calls()) {
        (Some(before), Some(after)) => assert_eq!(before, after, "no call changed anything"),
        _ => coverage.skip("no mutating call", Capability::CountsCalls),
    }

    owner
        .images
        .modify_launch_permission(
            &region,
            &image.id,
            &PermissionChange::add(vec![LaunchPermission::Account(target.account().clone())]),
        )
        .await
        .expect("share the image");
    let visible = target
        .images
        .describe_images(&region, &ImageQuery::ids([image.id.clone()]))
        .await
        .expect("the target sees the image");
    assert_eq!(visible.len(), 1);
    let fixed = flow(h, &owner)
        .fix(&doctor, &request)
        .await
        .expect("the fix writes");
    assert!(fixed.refused.is_none(), "{:?}", fixed.refused);
    assert_eq!(fixed.mended.len(), 1);
    assert!(fixed.mended[0].changed);
    assert_eq!(fixed.mended[0].key, key);
    if h.directory().is_some() {
        assert!(fixed.passes(), "{}", render(&fixed.diagnosis));
    }
    assert!(
        launch_works(h, &image.id).await,
        "the target launches after the fix"
    );
    coverage.check("the fix refuses before the share, with nothing written, and after it writes the key policy and the target launches");
    coverage
}

//! The doctor against reality: for each case the doctor judges first, then
//! the target really launches or copies, and the verdict must agree with
//! what happened and name the broken link.

use std::fmt::Write as _;

use amishare_core::diagnose::{DiagnoseRequest, Diagnosis, Doctor, Intent, Link, Stores, Verdict};
use amishare_core::store::{
    ImageState, InstanceState, KeyState, LaunchPermission, PermissionChange, RunInstancesRequest,
};
use amishare_core::{CopyKey, ImageId, KeyRef};
use amishare_policy::{action_matches, OneOrMany, Policy, SID_PREFIX};

use crate::harness::{Capability, Coverage, Harness, Party, VolumeSeed};
use crate::scenarios::copy_request;
use crate::support::{
    manual_share, manual_share_edited, owner_image, settle_image, settle_instance, INSTANCE_TYPE,
};

/// The actions of the seed's least-privilege statements, each removed in turn.
const SEED_ACTIONS: [&str; 8] = [
    "kms:Encrypt",
    "kms:Decrypt",
    "kms:ReEncrypt*",
    "kms:GenerateDataKey*",
    "kms:DescribeKey",
    "kms:CreateGrant",
    "kms:ListGrants",
    "kms:RevokeGrant",
];

pub(crate) fn stores(party: &Party) -> Stores {
    party.stores.clone()
}

/// A coverage that notes, on a backend whose doctor cannot read the
/// target's IAM policies, that verdicts are only held where they are not
/// `??`.
pub(crate) fn sight(h: &dyn Harness) -> Coverage {
    let mut coverage = Coverage::default();
    if !h.capabilities().directory {
        coverage.skip(
            "exact verdicts on links that depend on the target's IAM policies",
            Capability::Directory,
        );
    }
    coverage
}

/// The doctor's view of a case, from both sides.
pub(crate) async fn diagnose(
    h: &dyn Harness,
    image: &ImageId,
    intent: Intent,
    copy_key: CopyKey,
) -> Diagnosis {
    let mut doctor = Doctor::new()
        .with_owner(stores(&h.owner()))
        .with_target(stores(&h.target_admin().unwrap_or_else(|| h.target())));
    if let Some(directory) = h.directory() {
        doctor = doctor.with_directory(directory);
    }
    doctor
        .diagnose(
            &DiagnoseRequest::new(image.clone(), h.region(), h.target().principal, intent)
                .with_copy_key(copy_key),
        )
        .await
        .expect("the doctor only reads")
}

/// Whether the target's launch reaches `running`.
pub(crate) async fn launch_works(h: &dyn Harness, image: &ImageId) -> bool {
    let target = h.target();
    let launched = target
        .images
        .run_instances(
            &h.region(),
            &RunInstancesRequest {
                image: image.clone(),
                instance_type: INSTANCE_TYPE.to_owned(),
                subnet: None,
                kms_key: None,
                tags: Default::default(),
                client_token: None,
            },
        )
        .await;
    match launched {
        Ok(instance) => {
            settle_instance(h, &target, &h.region(), &instance.id)
                .await
                .state
                == InstanceState::Running
        }
        Err(_) => false,
    }
}

/// Whether the target's copy becomes `available`.
async fn copy_works(h: &dyn Harness, image: &ImageId, key: Option<KeyRef>) -> bool {
    let target = h.target();
    match target
        .images
        .copy_image(&h.region(), &copy_request(h, image, key))
        .await
    {
        Ok(copy) => {
            settle_image(h, &target, &h.region(), &copy).await.state == ImageState::Available
        }
        Err(_) => false,
    }
}

pub(crate) fn render(diagnosis: &Diagnosis) -> String {
    let mut out = String::new();
    for f in &diagnosis.findings {
        let _ = writeln!(
            out,
            "  {:7} {} {} {}: {}",
            f.verdict.to_string(),
            f.link,
            f.subject,
            f.action.as_deref().unwrap_or(""),
            f.summary
        );
    }
    out
}

/// Asserts the verdict matches the outcome, and that a failure names
/// `expected` (a link, and an action pattern the failing action matches).
#[track_caller]
fn assert_agrees(
    h: &dyn Harness,
    case: &str,
    diagnosis: &Diagnosis,
    works: bool,
    expected: &[(Link, Option<&str>)],
) {
    let full_sight = h.directory().is_some();
    let shown = render(diagnosis);
    if works {
        if full_sight {
            assert_eq!(
                diagnosis.verdict,
                Verdict::Pass,
                "{case}: it works\n{shown}"
            );
        } else {
            assert_ne!(
                diagnosis.verdict,
                Verdict::Fail,
                "{case}: it works\n{shown}"
            );
        }
        return;
    }
    if full_sight {
        assert_eq!(
            diagnosis.verdict,
            Verdict::Fail,
            "{case}: it fails\n{shown}"
        );
    } else {
        assert_ne!(
            diagnosis.verdict,
            Verdict::Pass,
            "{case}: it fails\n{shown}"
        );
    }
    for (link, action) in expected {
        let named = diagnosis.failures().any(|f| {
            f.link == *link
                && action.is_none_or(|pattern| {
                    f.action
                        .as_deref()
                        .is_some_and(|a| action_matches(pattern, a))
                })
        });
        if full_sight || diagnosis.verdict == Verdict::Fail {
            assert!(named, "{case}: the doctor names {link} {action:?}\n{shown}");
        }
    }
}

/// Takes `action` out of every statement amishare wrote.
fn without_action(policy: &mut Policy, action: &str) {
    for statement in &mut policy.statements {
        let ours = statement
            .sid
            .as_deref()
            .is_some_and(|sid| sid.starts_with(SID_PREFIX));
        if let (true, Some(actions)) = (ours, &statement.action) {
            let kept: Vec<String> = actions.iter().filter(|a| *a != action).cloned().collect();
            statement.action = Some(OneOrMany::Many(kept));
        }
    }
}

/// The seed's share seen by the doctor: every link passes, and the target
/// does launch and copy.
pub async fn doctor_seed_passes(h: &dyn Harness) -> Coverage {
    let mut coverage = sight(h);
    let (key, image) = manual_share(h, &[h.target().principal.to_string()], true).await;
    h.set_target_kms_access(std::slice::from_ref(&key))
        .await
        .expect("target IAM");
    let diagnosis = diagnose(h, &image.id, Intent::Both, CopyKey::AccountDefault).await;
    if h.directory().is_some() {
        coverage.check("every link of the seed share passes, and the chain checks each link");
        let shown = render(&diagnosis);
        assert!(
            diagnosis
                .findings
                .iter()
                .all(|f| f.verdict == Verdict::Pass),
            "every link passes:\n{shown}"
        );
        for link in [
            Link::ImageFound,
            Link::ImageAvailable,
            Link::ImageShared,
            Link::Ec2Permission,
            Link::SnapshotKey,
            Link::KeyCustomerManaged,
            Link::KeyRegion,
            Link::KeyState,
            Link::VolumePermission,
            Link::DestinationKey,
            Link::KeyPolicy,
            Link::IdentityPolicy,
        ] {
            assert!(
                diagnosis.findings.iter().any(|f| f.link == link),
                "the chain checks {link}:\n{shown}"
            );
        }
    }
    assert!(launch_works(h, &image.id).await, "the seed's launch runs");
    assert!(
        copy_works(h, &image.id, None).await,
        "the seed's copy is available"
    );
    assert_agrees(h, "seed", &diagnosis, true, &[]);
    coverage.check("the seed's launch runs and its copy is available, as the doctor says");
    coverage
}

/// Each action of the seed's key-policy statements removed in turn: the
/// doctor's launch and copy verdicts agree with the real launch and copy.
pub async fn doctor_key_policy_actions(h: &dyn Harness) -> Coverage {
    let mut coverage = sight(h);
    let mut outcomes = (0, 0);
    for action in SEED_ACTIONS {
        let (key, image) = manual_share_edited(
            h,
            &[h.target().principal.to_string()],
            true,
            &move |policy| without_action(policy, action),
        )
        .await;
        h.set_target_kms_access(std::slice::from_ref(&key))
            .await
            .expect("target IAM");
        let expected = [(Link::KeyPolicy, Some(action))];
        for intent in [Intent::Launch, Intent::Copy] {
            let diagnosis = diagnose(h, &image.id, intent, CopyKey::AccountDefault).await;
            let works = match intent {
                Intent::Copy => copy_works(h, &image.id, None).await,
                _ => launch_works(h, &image.id).await,
            };
            let case = format!("{intent} without {action} in the key policy");
            assert_agrees(h, &case, &diagnosis, works, &expected);
            if works {
                outcomes.0 += 1;
            } else {
                outcomes.1 += 1;
            }
        }
    }
    check_both_outcomes(
        &mut coverage,
        "the doctor's launch and copy verdicts agree with the real outcomes, each failure naming the key policy's action",
        outcomes,
    );
    coverage
}

/// Asserts that a table of cases held both outcomes, some working and
/// some failing (one that only works or only fails checks less than it
/// seems), and notes `what` with the counts.
pub(crate) fn check_both_outcomes(
    coverage: &mut Coverage,
    what: &str,
    (worked, failed): (usize, usize),
) {
    assert!(
        worked > 0 && failed > 0,
        "{what}: some cases work and some do not, but {worked} worked and {failed} failed"
    );
    coverage.check(&format!(
        "{what}: {} cases, {worked} working and {failed} failing",
        worked + failed
    ));
}

/// The failure rows of `docs/spec/ec2.md` §B13, each diagnosed, then tried.
pub async fn doctor_outcome_table(h: &dyn Harness) -> Coverage {
    let mut coverage = sight(h);
    let target = h.target();
    let principal = target.principal.to_string();
    let root = target.account().root_arn().to_string();

    // Key policy never updated.
    let (key, image) = manual_share(h, &[], true).await;
    h.set_target_kms_access(std::slice::from_ref(&key))
        .await
        .expect("target IAM");
    let d = diagnose(h, &image.id, Intent::Launch, CopyKey::AccountDefault).await;
    let works = launch_works(h, &image.id).await;
    assert_agrees(
        h,
        "key policy not updated",
        &d,
        works,
        &[(Link::KeyPolicy, Some("kms:CreateGrant"))],
    );
    let d = diagnose(h, &image.id, Intent::Copy, CopyKey::AccountDefault).await;
    let works = copy_works(h, &image.id, None).await;
    assert_agrees(
        h,
        "copy, KMS missing",
        &d,
        works,
        &[(Link::KeyPolicy, Some("kms:Decrypt"))],
    );

    // The key policy names the root or the principal, the target's IAM nothing.
    for (case, named) in [
        ("key policy allows the target root, no target IAM", &root),
        ("key policy allows the principal, no target IAM", &principal),
    ] {
        let (_key, image) = manual_share(h, std::slice::from_ref(named), false).await;
        h.set_target_kms_access(&[]).await.expect("target IAM");
        let d = diagnose(h, &image.id, Intent::Launch, CopyKey::AccountDefault).await;
        let works = launch_works(h, &image.id).await;
        assert_agrees(
            h,
            case,
            &d,
            works,
            &[(Link::IdentityPolicy, Some("kms:DescribeKey"))],
        );
    }

    // Everything allowed, the key disabled.
    let (key, image) = manual_share(h, std::slice::from_ref(&principal), true).await;
    h.set_target_kms_access(std::slice::from_ref(&key))
        .await
        .expect("target IAM");
    h.set_key_state(&key, KeyState::Disabled)
        .await
        .expect("disable");
    for intent in [Intent::Launch, Intent::Copy] {
        let d = diagnose(h, &image.id, intent, CopyKey::AccountDefault).await;
        let works = match intent {
            Intent::Copy => copy_works(h, &image.id, None).await,
            _ => launch_works(h, &image.id).await,
        };
        assert_agrees(
            h,
            &format!("{intent} with the key disabled"),
            &d,
            works,
            &[(Link::KeyState, None)],
        );
    }

    // Snapshots not shared: the copy is refused, the launch works.
    let (key, image) = manual_share(h, std::slice::from_ref(&principal), false).await;
    h.set_target_kms_access(std::slice::from_ref(&key))
        .await
        .expect("target IAM");
    let d = diagnose(h, &image.id, Intent::Copy, CopyKey::AccountDefault).await;
    let works = copy_works(h, &image.id, None).await;
    assert_agrees(
        h,
        "copy, snapshot not shared",
        &d,
        works,
        &[(Link::VolumePermission, None)],
    );
    let d = diagnose(h, &image.id, Intent::Launch, CopyKey::AccountDefault).await;
    let works = launch_works(h, &image.id).await;
    assert_agrees(h, "launch, snapshot not shared", &d, works, &[]);

    // Snapshots shared, KMS allowed, copied under the target's own key; and
    // under a key of another region.
    let (key, image) = manual_share(h, std::slice::from_ref(&principal), true).await;
    let own = h.seed_target_key().await.expect("target key");
    h.set_target_kms_access(&[key, own.clone()])
        .await
        .expect("target IAM");
    let d = diagnose(
        h,
        &image.id,
        Intent::Copy,
        CopyKey::Key(KeyRef::Arn(own.clone())),
    )
    .await;
    let works = copy_works(h, &image.id, Some(KeyRef::Arn(own))).await;
    assert_agrees(h, "copy under the target's key", &d, works, &[]);
    let far = h
        .owner()
        .keys
        .create_key(&h.other_region(), &Default::default())
        .await
        .expect("key elsewhere")
        .arn;
    let d = diagnose(
        h,
        &image.id,
        Intent::Copy,
        CopyKey::Key(KeyRef::Arn(far.clone())),
    )
    .await;
    let works = copy_works(h, &image.id, Some(KeyRef::Arn(far))).await;
    assert_agrees(
        h,
        "copy under a key of another region",
        &d,
        works,
        &[(Link::DestinationKey, None)],
    );

    // Not shared at all.
    let image = owner_image(h, &[VolumeSeed::Unencrypted], "doctor-not-shared").await;
    let d = diagnose(h, &image.id, Intent::Launch, CopyKey::AccountDefault).await;
    let works = launch_works(h, &image.id).await;
    assert_agrees(h, "not shared", &d, works, &[(Link::ImageShared, None)]);

    // Encrypted with aws/ebs: EC2 refuses to share it.
    let image = owner_image(h, &[VolumeSeed::AwsManaged], "doctor-aws-managed").await;
    let refused = h
        .owner()
        .images
        .modify_launch_permission(
            &h.region(),
            &image.id,
            &PermissionChange::add(vec![LaunchPermission::Account(target.account().clone())]),
        )
        .await;
    assert!(refused.is_err(), "EC2 refuses to share an aws/ebs image");
    let d = diagnose(h, &image.id, Intent::Launch, CopyKey::AccountDefault).await;
    let works = launch_works(h, &image.id).await;
    assert_agrees(
        h,
        "image under aws/ebs",
        &d,
        works,
        &[(Link::ImageShared, None), (Link::KeyCustomerManaged, None)],
    );
    coverage.check("the doctor's verdict on each failure row of the outcome table agrees with the real launch or copy and names the broken link");
    coverage
}

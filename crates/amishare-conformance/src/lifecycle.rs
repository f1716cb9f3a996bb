//! A shared image through its key's lifecycle (`docs/spec/kms.md` §A3,
//! §A7): the owner disables the key, enables it, schedules its deletion and
//! cancels it, through core's [`KeyAdmin`]; the target's launch of the
//! shared image works only while the key is enabled, and the target may
//! administer none of it.

use std::sync::Arc;

use amishare_core::key_admin::KeyAdmin;
use amishare_core::store::{InstanceState, KeyState, KeyStore};
use amishare_core::{
    AcceptRequest, ErrorKind, ImageId, ImageSource, KeyArn, KeyRef, LaunchOptions, Sharer,
};

use crate::harness::{Capability, Coverage, Harness, Party, VolumeSeed};
use crate::support::{
    assert_terminated_at_launch, flow, seed_share, share_or_gate, target_launch, unique_alias,
    Shared,
};

/// What the target's launch of the shared image needs: an encrypted share
/// (the snapshot-key gate refuses any other), the image visible to the
/// target, instances that can terminate at launch, and KMS enforcing the
/// key's state for EC2.
const LAUNCH: &[Capability] = &[
    Capability::EncryptsCopies,
    Capability::CrossAccountVisibility,
    Capability::AsyncStates,
    Capability::EnforcesKeyPolicy,
];

/// The key of a share, and its image where the backend can launch it.
struct Setup {
    key: KeyArn,
    image: Option<ImageId>,
}

/// The owner shares a fresh image under a new key. Where the backend can
/// show the launch, the target accepts it with a launch that runs; where it
/// cannot, the launch checks are skipped, naming what the backend lacks.
async fn share(h: &dyn Harness, stem: &str, coverage: &mut Coverage) -> Setup {
    let owner = h.owner();
    let instance = h
        .seed_instance(&[VolumeSeed::Unencrypted])
        .await
        .expect("seed instance");
    let alias = unique_alias(h, stem);
    let request = seed_share(h, ImageSource::Instance(instance), alias.clone(), false);
    let shared = share_or_gate(h, &request, coverage).await;
    let key = owner
        .keys
        .describe_key(&h.region(), &KeyRef::Alias(alias))
        .await
        .expect("the share's key is found by its alias")
        .arn;
    let lacking = h.capabilities().lacking(LAUNCH);
    let image = match (shared, lacking.first()) {
        (Shared::Done(report), None) => report.regions[0].image.clone(),
        (_, Some(lacking)) => {
            coverage.skip("the target's launches of the shared image", *lacking);
            return Setup { key, image: None };
        }
        (Shared::Refused { .. }, None) => unreachable!("a backend that encrypts copies shares"),
    };
    h.set_target_kms_access(std::slice::from_ref(&key))
        .await
        .expect("the target's IAM policy");
    assert_accept_runs(h, &image, &key).await;
    Setup {
        key,
        image: Some(image),
    }
}

/// The owner's key administration.
fn admin(party: &Party) -> Arc<dyn KeyAdmin> {
    party
        .key_admin
        .clone()
        .expect("a backend that administers keys offers it in its stores")
}

/// The key's state as its owner's `DescribeKey` shows it.
async fn state(h: &dyn Harness, key: &KeyArn) -> KeyState {
    h.owner()
        .keys
        .describe_key(&h.region(), &KeyRef::Arn(key.clone()))
        .await
        .expect("the owner describes its key")
        .state
}

fn accept(h: &dyn Harness, image: &ImageId, key: &KeyArn) -> AcceptRequest {
    AcceptRequest::new(image.clone(), h.region(), [key.clone()])
        .with_launch(LaunchOptions::default())
}

/// The target accepts the share, and its smoke launch runs.
async fn assert_accept_runs(h: &dyn Harness, image: &ImageId, key: &KeyArn) {
    let accepted = flow(h, &h.target())
        .accept(&accept(h, image, key))
        .await
        .expect("the target accepts the share and its launch runs");
    let launch = accepted.launch.expect("a launch was asked");
    assert_eq!(launch.state, InstanceState::Running);
}

/// The key is out of use: the target's accept names the key's state before
/// it launches anything, and a launch of the image terminates with
/// `Client.InternalError` (§A3, `docs/spec/ec2.md` §B11).
async fn assert_launch_fails(h: &dyn Harness, image: &ImageId, key: &KeyArn, shown: KeyState) {
    let err = flow(h, &h.target())
        .accept(&accept(h, image, key))
        .await
        .expect_err("a key out of use fails the accept");
    assert_eq!(err.kind(), ErrorKind::InvalidKeyState, "{err}");
    assert!(err.message().contains(&shown.to_string()), "{err}");
    assert_terminated_at_launch(&target_launch(h, image).await);
}

/// Asserts that the target may administer none of the owner's key (§A7:
/// none of these calls works across accounts).
async fn assert_target_may_not_administer(h: &dyn Harness, key: &KeyArn, coverage: &mut Coverage) {
    if !h.capabilities().has(Capability::EnforcesKeyPolicy) {
        coverage.skip(
            "the target's key administration refused",
            Capability::EnforcesKeyPolicy,
        );
        return;
    }
    let target = admin(&h.target());
    let refused = [
        ("DisableKey", target.disable_key(key).await.err()),
        ("EnableKey", target.enable_key(key).await.err()),
        (
            "ScheduleKeyDeletion",
            target.schedule_key_deletion(key, Some(7)).await.err(),
        ),
        (
            "CancelKeyDeletion",
            target.cancel_key_deletion(key).await.err(),
        ),
    ];
    for (call, err) in refused {
        let err = err.unwrap_or_else(|| panic!("the target's {call} on {key} is refused"));
        assert_eq!(err.kind(), ErrorKind::AccessDenied, "{call}: {err}");
    }
    coverage.check(
        "the target may not disable, enable, schedule or cancel the deletion of the owner's key",
    );
}

/// §A3, §A7: after a share and an accept whose launch runs, the owner
/// disables the key and the target's launch fails (`Client.InternalError`);
/// the owner enables it and the launch runs again. The target may
/// administer none of it.
pub async fn key_disabled_and_enabled(h: &dyn Harness) -> Coverage {
    let mut coverage = Coverage::default();
    let setup = share(h, "disable", &mut coverage).await;
    let owner = admin(&h.owner());
    owner.disable_key(&setup.key).await.expect("DisableKey");
    assert_eq!(state(h, &setup.key).await, KeyState::Disabled);
    assert_target_may_not_administer(h, &setup.key, &mut coverage).await;
    if let Some(image) = &setup.image {
        assert_launch_fails(h, image, &setup.key, KeyState::Disabled).await;
        coverage.check(
            "with the key disabled the accept refuses and a launch ends Client.InternalError",
        );
    }
    owner.enable_key(&setup.key).await.expect("EnableKey");
    assert_eq!(state(h, &setup.key).await, KeyState::Enabled);
    coverage.check("DisableKey and EnableKey move the key between Disabled and Enabled");
    if let Some(image) = &setup.image {
        assert_accept_runs(h, image, &setup.key).await;
        coverage.check("with the key enabled again the accept's launch runs");
    }
    coverage
}

/// §A3, §A7: the owner schedules the key's deletion and the target's
/// launch fails; the owner cancels it and the key comes back `Disabled`, so
/// the launch still fails; once the owner enables it, the launch runs. The
/// target may administer none of it.
pub async fn key_deletion_cancelled(h: &dyn Harness) -> Coverage {
    let mut coverage = Coverage::default();
    let setup = share(h, "deletion", &mut coverage).await;
    let owner = admin(&h.owner());
    let scheduled = owner
        .schedule_key_deletion(&setup.key, Some(7))
        .await
        .expect("ScheduleKeyDeletion");
    assert_eq!(scheduled.key, setup.key);
    assert_eq!(scheduled.window_days, 7);
    assert_eq!(state(h, &setup.key).await, KeyState::PendingDeletion);
    assert_target_may_not_administer(h, &setup.key, &mut coverage).await;
    if let Some(image) = &setup.image {
        assert_launch_fails(h, image, &setup.key, KeyState::PendingDeletion).await;
        coverage.check("with the key pending deletion the accept refuses and a launch ends Client.InternalError");
    }
    owner
        .cancel_key_deletion(&setup.key)
        .await
        .expect("CancelKeyDeletion");
    assert_eq!(
        state(h, &setup.key).await,
        KeyState::Disabled,
        "a cancelled deletion leaves the key disabled"
    );
    coverage.check("ScheduleKeyDeletion makes the key PendingDeletion for 7 days, and CancelKeyDeletion leaves it Disabled");
    if let Some(image) = &setup.image {
        assert_launch_fails(h, image, &setup.key, KeyState::Disabled).await;
        coverage.check("with the deletion cancelled the launch still fails");
    }
    owner.enable_key(&setup.key).await.expect("EnableKey");
    assert_eq!(state(h, &setup.key).await, KeyState::Enabled);
    if let Some(image) = &setup.image {
        assert_accept_runs(h, image, &setup.key).await;
        coverage.check("once the key is enabled the accept's launch runs");
    }
    coverage
}

//! Launching the way production launches: an Auto Scaling group in the
//! target account, which launches as the account's service-linked role
//! (`docs/spec/production.md` §C1, `docs/spec/choices.md` §D6).

use amishare_core::diagnose::{DiagnoseRequest, Diagnosis, Doctor, Intent, Link, Verdict};
use amishare_core::scaling::{LaunchFailure as ActivityFailure, ServiceLinkedRole};
use amishare_core::store::KeyStore;
use amishare_core::{
    AcceptRequest, ErrorKind, Flow, ImageId, ImageSource, KeyArn, LaunchOptions, LaunchVia,
    RegionImage, Sharer, Target, UnshareRequest,
};

use crate::doctor::{render, stores};
use crate::harness::{Capability, Coverage, Harness, VolumeSeed};
use crate::support::{flow, seed_share, unique_alias};

fn accept(
    h: &dyn Harness,
    image: &ImageId,
    key: &KeyArn,
    grant: bool,
    launch: bool,
) -> AcceptRequest {
    let role = ServiceLinkedRole::auto_scaling();
    let mut request = AcceptRequest::new(image.clone(), h.region(), [key.clone()]);
    if launch {
        request = request
            .with_launch(LaunchOptions::default().with_via(LaunchVia::AutoScaling(role.clone())));
    }
    if grant {
        request = request.with_grants([role]);
    }
    request
}

async fn diagnose(h: &dyn Harness, image: &ImageId) -> Diagnosis {
    let mut doctor = Doctor::new()
        .with_owner(stores(&h.owner()))
        .with_target(stores(&h.target()));
    if let Some(directory) = h.directory() {
        doctor = doctor.with_directory(directory);
    }
    doctor
        .diagnose(&DiagnoseRequest::new(
            image.clone(),
            h.region(),
            h.target().principal,
            Intent::AutoScaling,
        ))
        .await
        .expect("the doctor only reads")
}

/// An Auto Scaling launch of a shared image fails under the seed's key
/// policy (the activity ends `Client.InternalError`), and the doctor names
/// the missing grant and why the target cannot create it; after `share
/// --autoscaling` and `accept --autoscaling-grant` the group's instance
/// reaches `InService` and the doctor passes; a rerun of both makes no
/// mutating call; after `unshare` the grant is revoked and a new launch
/// fails again.
pub async fn autoscaling_grant_route(h: &dyn Harness) -> Coverage {
    let mut coverage = Coverage::default();
    let target = h.target();
    let scaling = target
        .scaling
        .clone()
        .expect("a backend that models Auto Scaling has an Auto Scaling store");
    let owner = h.owner();
    let instance = h
        .seed_instance(&[VolumeSeed::Unencrypted])
        .await
        .expect("seed instance");
    let mut request = seed_share(
        h,
        ImageSource::Instance(instance),
        unique_alias(h, "asg"),
        false,
    );
    let share = flow(h, &owner).share(&request).await.expect("the share");
    let shared = share.regions[0].clone();
    h.set_target_kms_access(std::slice::from_ref(&shared.key))
        .await
        .expect("the target's IAM policy");
    let target_flow: Flow = flow(h, &target).with_scaling(scaling);
    let full_sight = h.capabilities().has(Capability::Directory);

    // The seed's policy: the group's launch fails, and the target may not
    // create the grant (kms:GrantIsForAWSResource).
    let err = target_flow
        .accept(&accept(h, &shared.image, &shared.key, false, true))
        .await
        .expect_err("a group launches as its role, which has no grant");
    assert_eq!(err.code(), Some("Client.InternalError"), "{err}");
    assert_eq!(err.kind(), ErrorKind::LaunchFailed, "{err}");
    let failed = err
        .failed_group_launch()
        .expect("the group and its activity");
    assert_eq!(failed.image, shared.image);
    assert_eq!(failed.cause, Some(ActivityFailure::KeyAccess), "{err}");
    coverage.check("under the seed's policy the group's launch ends Client.InternalError");
    let diagnosis = diagnose(h, &shared.image).await;
    let shown = render(&diagnosis);
    if full_sight {
        assert_eq!(diagnosis.verdict, Verdict::Fail, "{shown}");
        for link in [Link::ServiceRoleGrant, Link::ServiceRoleCreateGrant] {
            assert!(
                diagnosis.failures().any(|f| f.link == link),
                "the doctor names {link}\n{shown}"
            );
        }
        coverage.check("the doctor names the missing grant and why the target cannot create it");
    } else {
        assert_ne!(diagnosis.verdict, Verdict::Pass, "{shown}");
        coverage.skip(
            "the doctor's verdict on the failing launch, link by link",
            Capability::Directory,
        );
    }
    let err = target_flow
        .accept(&accept(h, &shared.image, &shared.key, true, false))
        .await
        .expect_err("the seed's CreateGrant statement needs kms:GrantIsForAWSResource");
    assert_eq!(err.code(), Some("AccessDeniedException"), "{err}");
    coverage.check("under the seed's policy the target may not create the grant");

    // share --autoscaling, then accept --autoscaling-grant --launch-via autoscaling.
    request.service_roles = vec![ServiceLinkedRole::auto_scaling()];
    let reshared = flow(h, &owner)
        .share(&request)
        .await
        .expect("the share with --autoscaling");
    assert_eq!(
        reshared.mutating_calls, 1,
        "one PutKeyPolicy: {:#?}",
        reshared.steps
    );
    let accepted = target_flow
        .accept(&accept(h, &shared.image, &shared.key, true, true))
        .await
        .expect("the group's instance reaches InService");
    assert_eq!(accepted.grants.len(), 1);
    assert!(accepted.grants[0].created);
    let launch = accepted.launch.expect("a launch was asked");
    assert!(launch.group.is_some() && launch.terminated_after);
    coverage.check("after share --autoscaling and the grant, the group's instance is InService");
    let diagnosis = diagnose(h, &shared.image).await;
    let shown = render(&diagnosis);
    if full_sight {
        assert_eq!(diagnosis.verdict, Verdict::Pass, "{shown}");
        coverage.check("the doctor passes the working launch");
    } else {
        assert_ne!(diagnosis.verdict, Verdict::Fail, "{shown}");
        coverage.skip(
            "the doctor's pass on the working launch",
            Capability::Directory,
        );
    }

    // Reruns of both change nothing.
    match h.mutating_calls() {
        Some(before) => {
            flow(h, &owner).share(&request).await.expect("rerun");
            let again = target_flow
                .accept(&accept(h, &shared.image, &shared.key, true, false))
                .await
                .expect("rerun of accept");
            assert!(!again.grants[0].created);
            assert_eq!(again.grants[0].grant_id, accepted.grants[0].grant_id);
            assert_eq!(h.mutating_calls(), Some(before), "a rerun changes nothing");
            coverage.check("a rerun of share and accept makes no mutating call");
        }
        None => coverage.skip("a rerun makes no mutating call", Capability::CountsCalls),
    }

    // Unshare revokes the grant amishare made; a new launch fails again.
    let unshared = flow(h, &owner)
        .unshare(
            &UnshareRequest::new(
                [RegionImage::new(h.region(), shared.image.clone())],
                [Target::Principal(target.principal.clone())],
            )
            .with_narrowing(request.narrowing),
        )
        .await
        .expect("the unshare");
    let grant = accepted.grants[0].grant_id.as_str();
    assert!(
        unshared
            .steps
            .iter()
            .any(|s| s.action == "revoke-grant" && s.detail.contains(grant)),
        "{:#?}",
        unshared.steps
    );
    let remaining = owner
        .keys
        .list_grants(&shared.key)
        .await
        .expect("ListGrants");
    assert!(remaining.iter().all(|g| g.id.as_str() != grant));
    target_flow
        .accept(&accept(h, &shared.image, &shared.key, false, true))
        .await
        .expect_err("after unshare the group cannot launch the image");
    coverage.check("unshare revokes the grant, and a new launch fails again");
    coverage
}

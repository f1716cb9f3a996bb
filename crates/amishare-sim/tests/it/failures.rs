//! A launch or a copy that fails after its call returned, and a call the
//! retry layer gives up on, as a library user meets them: matched by kind
//! and fields, never by message.

use std::sync::Arc;

use amishare_core::retry::{RetryOptions, Retrying};
use amishare_core::store::{ImageQuery, ImageStore, InstanceState};
use amishare_core::{
    AcceptRequest, CopyKey, ErrorKind, Flow, ImageId, KeyArn, LaunchOptions, Sharer,
};
use amishare_sim::faults::{Faults, Faulty};
use amishare_sim::SimClient;

use crate::fixture::Fx;

/// A's encrypted image shared with B (launch and create-volume
/// permissions) under a key whose policy never names B: B's launch and
/// copy are accepted by EC2 and then fail when KMS refuses EC2.
/// Returns the image, the key and a client of B's user `bob`, whose IAM
/// policy allows the key.
async fn shared_without_key_policy(fx: &Fx) -> (ImageId, KeyArn, SimClient) {
    let key = fx.cmk().await;
    let image = fx.encrypted_image(&key).await;
    fx.share(&image, &fx.b).await;
    fx.share_snapshots(&image, &fx.b).await;
    let (_, target) = fx.target_user("bob", Some(&key));
    (image, key, target)
}

/// A flow acting as `target` on the world's clock.
fn accept_as(target: &SimClient, fx: &Fx) -> Flow {
    Flow::new(
        Arc::new(target.clone()),
        Arc::new(target.clone()),
        Arc::new(fx.world.clock()),
    )
}

fn accept(image: &ImageId, key: &KeyArn, fx: &Fx) -> AcceptRequest {
    AcceptRequest::new(image.clone(), fx.region.clone(), [key.clone()])
}

#[tokio::test(start_paused = true)]
async fn a_failed_smoke_launch_is_matched_by_kind_and_fields() {
    let fx = Fx::new();
    let (image, key, target) = shared_without_key_policy(&fx).await;
    let err = accept_as(&target, &fx)
        .accept(&accept(&image, &key, &fx).with_launch(LaunchOptions::default()))
        .await
        .expect_err("KMS refuses EC2 the key");

    assert_eq!(err.kind(), ErrorKind::LaunchFailed);
    assert!(err.failed_copy().is_none());
    assert!(err.retries_exhausted().is_none());
    let launch = err.failed_launch().expect("a failed launch has its fields");
    assert_eq!(launch.image, image);
    assert_eq!(launch.region, fx.region);
    assert!(
        matches!(
            launch.state,
            InstanceState::ShuttingDown | InstanceState::Terminated
        ),
        "{:?}",
        launch.state
    );
    // The state reason as EC2 gives it (§B11), and the error's code is its code.
    let knobs = fx.world.knobs();
    assert_eq!(launch.reason.as_ref(), Some(&knobs.launch_kms_failure));
    assert_eq!(err.code(), Some(knobs.launch_kms_failure.code.as_str()));
    // The simulation can tell the likely cause: the KMS refusal it recorded.
    assert_eq!(
        launch.cause,
        fx.world.failure_detail(launch.instance.as_str())
    );
    assert!(launch.cause.is_some());
    // The instance is B's, and it terminates.
    fx.advance(60);
    let seen = target
        .describe_instances(&fx.region, std::slice::from_ref(&launch.instance))
        .await
        .unwrap();
    assert_eq!(seen[0].image, image);
    assert_eq!(seen[0].state, InstanceState::Terminated);
    // People read the code once.
    let text = err.to_string();
    assert_eq!(
        text.matches(knobs.launch_kms_failure.code.as_str()).count(),
        1,
        "{text}"
    );
}

#[tokio::test(start_paused = true)]
async fn a_failed_copy_is_matched_by_kind_and_fields() {
    let fx = Fx::new();
    let (image, key, target) = shared_without_key_policy(&fx).await;
    let err = accept_as(&target, &fx)
        .accept(&accept(&image, &key, &fx).with_copy(CopyKey::AccountDefault))
        .await
        .expect_err("KMS refuses EC2 the key");

    assert_eq!(err.kind(), ErrorKind::CopyFailed);
    assert!(err.failed_launch().is_none());
    let copy = err.failed_copy().expect("a failed copy has its fields");
    assert_eq!(copy.source, image);
    assert_eq!(copy.region, fx.region);
    let knobs = fx.world.knobs();
    assert_eq!(copy.reason.as_ref(), Some(&knobs.copy_failure));
    assert_eq!(err.code(), Some(knobs.copy_failure.code.as_str()));
    assert!(!copy.snapshots.is_empty());
    assert_eq!(
        copy.snapshot_messages.keys().collect::<Vec<_>>(),
        copy.snapshots.iter().collect::<Vec<_>>()
    );
    assert!(copy
        .snapshot_messages
        .values()
        .all(|message| *message == knobs.copy_failure_snapshot_message));
    assert!(copy.cause.is_some());
    // The failed copy was deregistered: it can never serve.
    let gone = target
        .describe_images(&fx.region, &ImageQuery::ids([copy.image.clone()]))
        .await
        .expect_err("deregistered");
    assert_eq!(gone.kind(), ErrorKind::NotFound);
}

/// A target throttled on every call: the retry layer gives up after its
/// attempts, and the error names the operation, the resource and the attempts.
#[tokio::test(start_paused = true)]
async fn an_exhausted_retry_names_the_operation_the_resource_and_the_attempts() {
    let fx = Fx::new();
    let (image, _, target) = shared_without_key_policy(&fx).await;
    let throttled = Faulty::new(
        target,
        Faults {
            throttle: 1.0,
            ..Faults::none(7)
        },
    );
    let store = Retrying::new(
        Arc::new(throttled.clone()),
        Arc::new(throttled),
        Arc::new(fx.world.clock()),
        RetryOptions {
            max_attempts: 4,
            ..RetryOptions::default()
        },
    );
    let err = store
        .describe_images(&fx.region, &ImageQuery::ids([image.clone()]))
        .await
        .expect_err("throttled every time");
    assert_eq!(err.kind(), ErrorKind::Throttled);
    let spent = err.retries_exhausted().expect("the layer gave up");
    assert_eq!(spent.operation, "DescribeImages");
    assert_eq!(spent.resource.as_deref(), Some(image.as_str()));
    assert_eq!(spent.region.as_ref(), Some(&fx.region));
    assert_eq!(spent.attempts, 4);
}

//! Small building blocks the suite functions share.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use amishare_core::store::{
    CopyImageRequest, CreateImageRequest, CreateKeyRequest, Image, ImageQuery, ImageState,
    Instance, InstanceState, LaunchPermission, PermissionChange, RunInstancesRequest, StateReason,
};
use amishare_core::{
    Error, ErrorKind, Flow, ImageId, ImageSource, InstanceId, KeyArn, KeyChoice, KeyRef, Region,
    ShareReport, ShareRequest, Sharer, Target,
};

use crate::harness::{Coverage, Harness, Party, VolumeSeed};

/// The seed flow's instance type.
pub(crate) const INSTANCE_TYPE: &str = "t3.micro";

/// A flow acting as `party`, on the harness's clock.
pub(crate) fn flow(h: &dyn Harness, party: &Party) -> Flow {
    Flow::over(&party.stores, h.clock())
}

/// A unique-enough alias per call, so scenarios never collide on a shared backend.
pub(crate) fn unique_alias(h: &dyn Harness, stem: &str) -> amishare_core::AliasName {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    // The clock separates runs against a shared backend; the counter, calls within a run.
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    let now = h.clock().now().as_millis() % 0xffff_ffff_ffff;
    amishare_core::AliasName::parse(&format!("alias/{stem}-{now:x}-{n}"))
        .expect("generated alias is valid")
}

/// The seed's share: from an instance, a new key, to the target principal.
pub(crate) fn seed_share(
    h: &dyn Harness,
    source: ImageSource,
    alias: amishare_core::AliasName,
    volume_permission: bool,
) -> ShareRequest {
    ShareRequest::new(
        source,
        h.region(),
        KeyChoice::Create(alias),
        [Target::Principal(h.target().principal)],
    )
    .with_volume_permission(volume_permission)
}

/// An available image of the owner's, made from a fresh instance with these volumes.
pub(crate) async fn owner_image(h: &dyn Harness, volumes: &[VolumeSeed], name: &str) -> Image {
    let owner = h.owner();
    let region = h.region();
    let instance = h.seed_instance(volumes).await.expect("seed instance");
    let request = CreateImageRequest {
        instance,
        name: name.to_owned(),
        tags: BTreeMap::new(),
    };
    let id = owner
        .images
        .create_image(&region, &request)
        .await
        .expect("create image");
    settle_image(h, &owner, &region, &id).await
}

/// Polls an image with the harness clock until it leaves `pending`.
pub(crate) async fn settle_image(
    h: &dyn Harness,
    party: &Party,
    region: &Region,
    image: &ImageId,
) -> Image {
    for _ in 0..400 {
        let found = party
            .images
            .describe_images(region, &ImageQuery::ids([image.clone()]))
            .await
            .unwrap_or_else(|e| panic!("describe {image}: {e}"));
        let image = found.into_iter().next().expect("the image is listed");
        if image.state != ImageState::Pending {
            return image;
        }
        h.clock().sleep(Duration::from_secs(15)).await;
    }
    panic!("image {image} stayed pending for 100 minutes");
}

/// Polls an instance until it leaves `pending` and `shutting-down`.
pub(crate) async fn settle_instance(
    h: &dyn Harness,
    party: &Party,
    region: &Region,
    instance: &InstanceId,
) -> Instance {
    for _ in 0..400 {
        let found = party
            .images
            .describe_instances(region, std::slice::from_ref(instance))
            .await
            .unwrap_or_else(|e| panic!("describe {instance}: {e}"));
        let instance = found.into_iter().next().expect("the instance is listed");
        if !matches!(
            instance.state,
            InstanceState::Pending | InstanceState::ShuttingDown
        ) {
            return instance;
        }
        h.clock().sleep(Duration::from_secs(5)).await;
    }
    panic!("instance {instance} never settled");
}

/// The owner's side done by hand at the trait level, without amishare's key-policy step:
/// a new key whose policy names `policy_targets` (none: the default policy), an image of a
/// fresh instance copied encrypted under it, launch permission for the target account, and
/// create-volume permission if asked.
pub(crate) async fn manual_share(
    h: &dyn Harness,
    policy_targets: &[String],
    volume_permission: bool,
) -> (KeyArn, Image) {
    manual_share_edited(h, policy_targets, volume_permission, &|_| {}).await
}

/// [`manual_share`], with `edit` applied to the key policy after the
/// targets' statements were merged in.
pub(crate) async fn manual_share_edited(
    h: &dyn Harness,
    policy_targets: &[String],
    volume_permission: bool,
    edit: &(dyn Fn(&mut amishare_policy::Policy) + Send + Sync),
) -> (KeyArn, Image) {
    let owner = h.owner();
    let region = h.region();
    let key = owner
        .keys
        .create_key(&region, &CreateKeyRequest::default())
        .await
        .expect("create key")
        .arn;
    if !policy_targets.is_empty() {
        let text = owner
            .keys
            .get_key_policy(&key)
            .await
            .expect("get key policy");
        let policy = amishare_policy::Policy::parse(&text).expect("AWS's key policy parses");
        let grantees: Vec<_> = policy_targets
            .iter()
            .map(|p| amishare_policy::Grantee::Principal(p.clone()))
            .collect();
        let merged = amishare_policy::merge(
            &policy,
            &grantees,
            &amishare_policy::Narrowing::default(),
            owner.account().as_str(),
            owner.principal.as_str(),
        )
        .expect("merge");
        let mut policy = merged.policy;
        edit(&mut policy);
        owner
            .keys
            .put_key_policy(&key, &policy.to_json())
            .await
            .expect("put key policy");
    }
    let source = owner_image(
        h,
        &[VolumeSeed::Unencrypted],
        &format!("conformance-source-{}", key.key_id()),
    )
    .await
    .id;
    let copy = owner
        .images
        .copy_image(
            &region,
            &CopyImageRequest {
                source_image: source,
                source_region: region.clone(),
                name: format!("conformance-copy-{}", key.key_id()),
                encrypted: Some(true),
                kms_key: Some(KeyRef::Arn(key.clone())),
                client_token: None,
                tags: BTreeMap::new(),
            },
        )
        .await
        .expect("copy image");
    let image = settle_image(h, &owner, &region, &copy).await;
    owner
        .images
        .modify_launch_permission(
            &region,
            &image.id,
            &PermissionChange::add(vec![LaunchPermission::Account(
                h.target().account().clone(),
            )]),
        )
        .await
        .expect("grant launch permission");
    if volume_permission {
        for device in &image.block_devices {
            owner
                .images
                .modify_create_volume_permission(
                    &region,
                    &device.snapshot_id,
                    &PermissionChange::add(vec![amishare_core::store::VolumePermission::Account(
                        h.target().account().clone(),
                    )]),
                )
                .await
                .expect("grant create-volume permission");
        }
    }
    (key, image)
}

/// The target launches the image and the instance settles.
pub(crate) async fn target_launch(h: &dyn Harness, image: &ImageId) -> Instance {
    let target = h.target();
    let region = h.region();
    let instance = target
        .images
        .run_instances(
            &region,
            &RunInstancesRequest {
                image: image.clone(),
                instance_type: INSTANCE_TYPE.to_owned(),
                subnet: None,
                kms_key: None,
                tags: BTreeMap::new(),
                client_token: None,
            },
        )
        .await
        .expect("RunInstances itself succeeds: KMS failures are asynchronous");
    assert_eq!(
        instance.state,
        InstanceState::Pending,
        "a new instance starts pending"
    );
    settle_instance(h, &target, &region, &instance.id).await
}

/// Asserts that an instance terminated at launch with EC2's KMS failure reason.
#[track_caller]
pub(crate) fn assert_terminated_at_launch(instance: &Instance) {
    assert_eq!(
        instance.state,
        InstanceState::Terminated,
        "instance {} should terminate at launch",
        instance.id
    );
    let reason = instance
        .state_reason
        .as_ref()
        .expect("a terminated instance has a state reason");
    assert_kms_launch_reason(reason);
}

/// Asserts that a state reason is the one EC2 gives a launch KMS refused
/// (§B11): the message `Client.InternalError: Client error on launch`, with
/// the code the knowledge center shows (`Client.InternalError`) or the one
/// users also report (`Server.InternalError`).
#[track_caller]
pub(crate) fn assert_kms_launch_reason(reason: &StateReason) {
    assert!(
        matches!(
            reason.code.as_str(),
            "Client.InternalError" | "Server.InternalError"
        ),
        "{reason}"
    );
    assert_eq!(
        reason.message,
        "Client.InternalError: Client error on launch"
    );
}

/// Asserts that an error carries AWS's message verbatim: the whole message, or,
/// from a backend that prefixes the operation and its input (`DeleteSnapshot
/// snap-… in ap-northeast-1: `), everything after that prefix.
#[track_caller]
pub(crate) fn assert_aws_message(err: &Error, aws: &str) {
    let message = err.message();
    let prefixed = message
        .strip_suffix(aws)
        .is_some_and(|prefix| prefix.is_empty() || prefix.ends_with(": "));
    assert!(prefixed, "expected AWS's message {aws:?}, got {message:?}");
}

/// Asserts an error's AWS code.
#[track_caller]
pub(crate) fn assert_code<T: std::fmt::Debug>(result: Result<T, Error>, code: &str) -> Error {
    match result {
        Ok(value) => panic!("expected error {code}, got {value:?}"),
        Err(err) => {
            assert_eq!(err.code(), Some(code), "unexpected error: {err}");
            err
        }
    }
}

/// How a share ended on the backend.
#[derive(Debug)]
pub(crate) enum Shared {
    /// Shared, on a backend that encrypts copies.
    Done(ShareReport),
    /// Refused by the snapshot-key gate, on a backend whose copies stay
    /// unencrypted.
    Refused {
        /// The unencrypted copy that was refused.
        image: ImageId,
    },
}

/// Shares as the owner. A backend that encrypts copies must share; one that
/// does not must be refused by the snapshot-key gate with nothing granted on
/// the copy, which is noted in `coverage`.
pub(crate) async fn share_or_gate(
    h: &dyn Harness,
    request: &ShareRequest,
    coverage: &mut Coverage,
) -> Shared {
    let owner = h.owner();
    let result = flow(h, &owner).share(request).await;
    if h.capabilities().encrypts_copies {
        return Shared::Done(result.expect("the share succeeds"));
    }
    let err = result.expect_err("a copy that is not encrypted must not be shared");
    let (image, region) = assert_gate_refused(&err);
    let launch = owner
        .images
        .describe_launch_permission(&region, &image)
        .await
        .expect("launch permission of the refused copy");
    assert!(
        launch.is_empty(),
        "nothing granted before the gate: {launch:?}"
    );
    let copy = owner
        .images
        .describe_images(&region, &ImageQuery::ids([image.clone()]))
        .await
        .expect("the refused copy is listed");
    for device in &copy[0].block_devices {
        let volume = owner
            .images
            .describe_create_volume_permission(&region, &device.snapshot_id)
            .await
            .expect("create-volume permission of the refused copy");
        assert!(
            volume.is_empty(),
            "nothing granted on {} before the gate: {volume:?}",
            device.snapshot_id
        );
    }
    coverage.check(&format!(
        "the snapshot-key gate refused the unencrypted copy {image} in {region}, before granting anything"
    ));
    Shared::Refused { image }
}

/// Asserts that `err` is the snapshot-key gate refusing an unencrypted copy,
/// and returns the image and region it names.
#[track_caller]
pub(crate) fn assert_gate_refused(err: &Error) -> (ImageId, Region) {
    assert_eq!(err.kind(), ErrorKind::Failed, "not the gate: {err}");
    let message = err.message();
    let rest = message
        .split_once("refusing to share image ")
        .unwrap_or_else(|| panic!("not the gate: {err}"))
        .1;
    assert!(
        message.contains("is not encrypted"),
        "the gate names the unencrypted snapshot: {err}"
    );
    let (image, rest) = rest.split_once(" in ").expect("the gate names the region");
    let (region, _) = rest.split_once(':').expect("the gate says why");
    (
        ImageId::parse(image).expect("the gate names an image"),
        Region::parse(region).expect("the gate names a region"),
    )
}

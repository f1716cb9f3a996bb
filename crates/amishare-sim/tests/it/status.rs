//! `Flow::status` as a library user calls it, on the seed world: what the
//! owner and the target see of an image before its share, after it, with
//! a smoke instance kept, and after the unshare.

use std::sync::Arc;

use amishare_core::store::{CreateImageRequest, ImageStore, InstanceState, LaunchPermission};
use amishare_core::{
    AcceptRequest, Clock, ErrorKind, Flow, ImageId, LaunchOptions, Readable, RegionImage, Sharer,
    StatusReport, StatusRequest, Target, UnshareRequest,
};
use amishare_sim::seed::SeedWorld;

/// The owner's and the target's flows on the seed world's clock.
fn flows(seed: &SeedWorld) -> (Flow, Flow) {
    let clock: Arc<dyn Clock> = Arc::new(seed.world.stepping_clock());
    let owner = Arc::new(seed.world.client(&seed.owner).unwrap());
    let target = Arc::new(seed.world.client(&seed.target).unwrap());
    (
        Flow::new(owner.clone(), owner, clock.clone()),
        Flow::new(target.clone(), target, clock),
    )
}

async fn status(owner: &Flow, target: &Flow, image: &ImageId, seed: &SeedWorld) -> StatusReport {
    owner
        .status(
            &StatusRequest::image(image.clone(), seed.region.clone()),
            Some(target),
        )
        .await
        .unwrap()
}

#[tokio::test(start_paused = true)]
async fn status_reads_an_image_before_its_share_after_it_and_after_the_unshare() {
    let seed = SeedWorld::new(7).unwrap();
    let (owner, target) = flows(&seed);

    // Before the share: an unencrypted image of A's, launched by A alone.
    let client = seed.world.client(&seed.owner).unwrap();
    let source = client
        .create_image(
            &seed.region,
            &CreateImageRequest {
                instance: seed.instance.clone(),
                name: "status-source".to_owned(),
                tags: Default::default(),
            },
        )
        .await
        .unwrap();
    let before = status(&owner, &target, &source, &seed).await;
    assert_eq!(before.images.len(), 1);
    let image = &before.images[0];
    assert_eq!(image.image, source);
    assert_eq!(image.launch_permissions, Readable::Known(Vec::new()));
    assert_eq!(image.snapshots.len(), 1);
    assert_eq!(
        image.snapshots[0].key,
        Readable::Known(None),
        "not encrypted"
    );
    assert!(before.keys.is_empty(), "no key encrypts it");
    let view = before.target_view.as_ref().unwrap();
    assert_eq!(view.caller, seed.target);
    // EC2 answers an ID the caller may not see as one that does not exist.
    assert!(
        matches!(&view.images[&source], Readable::Unknown(why) if why.contains("InvalidAMIID.NotFound")),
        "{:?}",
        view.images[&source]
    );

    // After the share of that image: its copy, encrypted, launched by B.
    let mut request = seed.share_request();
    request.source = amishare_core::ImageSource::Image(source.clone());
    request.name = None;
    let share = owner.share(&request).await.unwrap();
    let shared = &share.regions[0];
    let after = status(&owner, &target, &source, &seed).await;
    assert_eq!(after.images.len(), 1, "the copy stands for its source");
    let image = &after.images[0];
    assert_eq!(image.image, shared.image);
    assert_eq!(image.name, "status-source-shared");
    assert_eq!(
        image.launch_permissions,
        Readable::Known(vec![LaunchPermission::Account(
            seed.target.account().clone()
        )])
    );
    assert_eq!(
        image.snapshots[0].key,
        Readable::Known(Some(shared.key.clone()))
    );
    let key = &after.keys[&shared.key];
    let statements = key.amishare_statements.known().unwrap();
    assert!(!statements.is_empty(), "amishare's statements are in place");
    assert_eq!(key.images, vec![shared.image.clone()]);
    let view = after.target_view.as_ref().unwrap();
    assert_eq!(view.images[&shared.image], Readable::Known(true));
    assert!(
        view.keys[&shared.key].known().is_some(),
        "B may describe it"
    );
    assert!(after.smoke_instances.is_empty());

    // A smoke instance B keeps is listed, as B's.
    let accept = target
        .accept(
            &AcceptRequest::new(
                shared.image.clone(),
                seed.region.clone(),
                [shared.key.clone()],
            )
            .with_launch(LaunchOptions::default().with_keep(true)),
        )
        .await
        .unwrap();
    let launched = accept.launch.unwrap().instance;
    let kept = status(&owner, &target, &shared.image, &seed).await;
    let smoke: Vec<_> = kept
        .smoke_instances
        .iter()
        .filter_map(Readable::known)
        .collect();
    assert_eq!(smoke.len(), 1, "{:?}", kept.smoke_instances);
    assert_eq!(smoke[0].instance, launched);
    assert_eq!(&smoke[0].account, seed.target.account());
    assert_eq!(smoke[0].image, shared.image.to_string());
    assert_eq!(smoke[0].state, InstanceState::Running);
    assert!(smoke[0].kept);

    // After the unshare: B neither sees the image nor is named in the key policy.
    owner
        .unshare(&UnshareRequest::new(
            [RegionImage::new(seed.region.clone(), shared.image.clone())],
            [Target::Principal(seed.target.clone())],
        ))
        .await
        .unwrap();
    let unshared = status(&owner, &target, &source, &seed).await;
    assert_eq!(
        unshared.images[0].launch_permissions,
        Readable::Known(Vec::new())
    );
    assert_eq!(
        unshared.keys[&shared.key].amishare_statements,
        Readable::Known(Vec::new())
    );
    let view = unshared.target_view.as_ref().unwrap();
    assert!(
        matches!(&view.images[&shared.image], Readable::Unknown(why) if why.contains("InvalidAMIID.NotFound")),
        "{:?}",
        view.images[&shared.image]
    );
}

#[tokio::test(start_paused = true)]
async fn status_of_an_image_that_does_not_exist_is_not_found() {
    let seed = SeedWorld::new(7).unwrap();
    let (owner, _) = flows(&seed);
    let missing = ImageId::parse("ami-0123456789abcdef0").unwrap();
    let err = owner
        .status(&StatusRequest::image(missing, seed.region.clone()), None)
        .await
        .unwrap_err();
    assert!(
        matches!(err.kind(), ErrorKind::NotFound | ErrorKind::InvalidInput),
        "{err}"
    );
}

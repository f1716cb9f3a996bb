//! The world's eventual consistency and its copies that fail inside EC2
//! (`docs/spec/kms.md` §A9, `docs/spec/ec2.md` §B19): each kind of new
//! thing is hidden from reads until the delay has passed, what was made
//! before the delay was set stays visible, and a new copy fails at chance
//! 1.0 and never at 0.0.

use std::collections::BTreeMap;
use std::time::Duration;

use amishare_core::store::{
    CreateGrantRequest, CreateImageRequest, ImageOwner, ImageQuery, ImageState, ImageStore,
    KeyStore, LaunchPermission, PermissionChange, SnapshotState,
};
use amishare_core::{AliasName, Error, GrantId, ImageId, KeyArn, KeyRef};
use amishare_sim::api::DescribeImages;
use amishare_sim::{Consistency, ConsistencyTally};

use crate::fixture::{secs, Fx};

const DELAY: Duration = Duration::from_secs(30);

/// The kinds of thing the delay hides, each with the read that misses it.
#[derive(Debug, Clone, Copy)]
enum Kind {
    /// A key, read by its ID (`DescribeKey`).
    KeyById,
    /// A key, read by its ARN (`GetKeyPolicy`, and left out of `ListKeys`).
    KeyByArn,
    /// An alias (`DescribeKey` of the alias).
    Alias,
    /// A grant (left out of `ListGrants`).
    Grant,
    /// An image, read by its ID (`DescribeImages`).
    ImageById,
    /// An image, left out of the caller's list (`DescribeImages` by owner).
    ImageListed,
    /// An image through the AWS-shaped API `amishare sim serve` answers with.
    ImageServed,
    /// A launch permission (left out of `DescribeImageAttribute`).
    LaunchPermission,
}

const KINDS: [Kind; 8] = [
    Kind::KeyById,
    Kind::KeyByArn,
    Kind::Alias,
    Kind::Grant,
    Kind::ImageById,
    Kind::ImageListed,
    Kind::ImageServed,
    Kind::LaunchPermission,
];

/// One thing made, as its read needs it.
enum Thing {
    Key(KeyArn),
    Alias(AliasName),
    Grant(KeyArn, GrantId),
    Image(ImageId),
    Permission(ImageId),
}

/// Makes a thing of `kind`; `n` keeps names apart.
async fn make(fx: &Fx, kind: Kind, n: usize) -> Thing {
    match kind {
        Kind::KeyById | Kind::KeyByArn => Thing::Key(fx.cmk().await),
        Kind::Alias => {
            let key = visible_key(fx).await;
            let alias = AliasName::parse(&format!("alias/visible-{n}")).unwrap();
            fx.owner
                .create_alias(&fx.region, &alias, key.key_id())
                .await
                .unwrap();
            Thing::Alias(alias)
        }
        Kind::Grant => {
            let key = visible_key(fx).await;
            let grant = fx
                .owner
                .create_grant(
                    &key,
                    &CreateGrantRequest {
                        grantee: fx.b.root_arn(),
                        operations: vec!["Decrypt".to_owned()],
                        name: None,
                        retiring_principal: None,
                    },
                )
                .await
                .unwrap();
            Thing::Grant(key, grant)
        }
        Kind::ImageById | Kind::ImageListed | Kind::ImageServed => {
            let image = fx
                .owner
                .create_image(
                    &fx.region,
                    &CreateImageRequest {
                        instance: fx.plain_instance(),
                        name: format!("visible-{n}"),
                        tags: BTreeMap::new(),
                    },
                )
                .await
                .unwrap();
            Thing::Image(image)
        }
        Kind::LaunchPermission => {
            Thing::Permission(fx.image_named(&format!("shared-{n}"), plain()).await)
        }
    }
}

/// A key made and waited out, so that only what is made on it next is new.
async fn visible_key(fx: &Fx) -> KeyArn {
    let key = fx.cmk().await;
    fx.world.advance(DELAY);
    key
}

fn plain() -> amishare_sim::VolumeEncryption {
    amishare_sim::VolumeEncryption::Unencrypted
}

/// Adds B's launch permission to `image`: the thing a permission row makes
/// once the image itself is visible.
async fn permit(fx: &Fx, image: &ImageId) {
    fx.owner
        .modify_launch_permission(
            &fx.region,
            image,
            &PermissionChange::add(vec![LaunchPermission::Account(fx.b.clone())]),
        )
        .await
        .unwrap();
}

/// Whether the reads of `kind` see `thing`; a read that misses it must
/// answer AWS's not-found error or leave it out, nothing else.
async fn seen(fx: &Fx, kind: Kind, thing: &Thing) -> bool {
    let not_found = |result: Result<(), Error>, code: &str| match result {
        Ok(()) => true,
        Err(err) if err.code() == Some(code) => false,
        Err(err) => panic!("{kind:?}: {err}"),
    };
    match (kind, thing) {
        (Kind::KeyById, Thing::Key(key)) => not_found(
            fx.owner
                .describe_key(&fx.region, &KeyRef::Id(key.key_id().clone()))
                .await
                .map(drop),
            "NotFoundException",
        ),
        (Kind::KeyByArn, Thing::Key(key)) => {
            let read = not_found(
                fx.owner.get_key_policy(key).await.map(drop),
                "NotFoundException",
            );
            let listed = fx
                .owner
                .list_keys(&fx.region)
                .await
                .unwrap()
                .unwrap()
                .contains(key);
            assert_eq!(read, listed, "GetKeyPolicy and ListKeys agree");
            read
        }
        (Kind::Alias, Thing::Alias(alias)) => not_found(
            fx.owner
                .describe_key(&fx.region, &KeyRef::Alias(alias.clone()))
                .await
                .map(drop),
            "NotFoundException",
        ),
        (Kind::Grant, Thing::Grant(key, grant)) => fx
            .owner
            .list_grants(key)
            .await
            .unwrap()
            .iter()
            .any(|g| &g.id == grant),
        (Kind::ImageById, Thing::Image(image)) => not_found(
            fx.owner
                .describe_images(&fx.region, &ImageQuery::ids([image.clone()]))
                .await
                .map(drop),
            "InvalidAMIID.NotFound",
        ),
        (Kind::ImageListed, Thing::Image(image)) => {
            let mine = ImageQuery {
                owners: vec![ImageOwner::Me],
                ..ImageQuery::default()
            };
            fx.owner
                .describe_images(&fx.region, &mine)
                .await
                .unwrap()
                .iter()
                .any(|i| &i.id == image)
        }
        (Kind::ImageServed, Thing::Image(image)) => {
            let request = DescribeImages {
                query: ImageQuery::ids([image.clone()]),
                ..DescribeImages::default()
            };
            not_found(
                fx.owner.ec2_describe_images(&fx.region, &request).map(drop),
                "InvalidAMIID.NotFound",
            )
        }
        (Kind::LaunchPermission, Thing::Permission(image)) => fx
            .owner
            .describe_launch_permission(&fx.region, image)
            .await
            .unwrap()
            .contains(&LaunchPermission::Account(fx.b.clone())),
        (kind, _) => unreachable!("{kind:?} makes another thing"),
    }
}

/// Each kind: one made before the delay is set stays visible; one made
/// after is hidden until the delay has passed, then visible; the world
/// counts the reads it hid something from.
#[tokio::test(start_paused = true)]
async fn each_new_thing_is_hidden_until_the_delay_has_passed() {
    for kind in KINDS {
        let fx = Fx::new();
        let before = make(&fx, kind, 0).await;
        if let (Kind::LaunchPermission, Thing::Permission(image)) = (kind, &before) {
            permit(&fx, image).await;
        }
        let delayed = Consistency {
            visibility_delay: DELAY,
            ..Consistency::IMMEDIATE
        };
        fx.world.set_consistency(delayed);
        let after = make(&fx, kind, 1).await;
        if let (Kind::LaunchPermission, Thing::Permission(image)) = (kind, &after) {
            // The image was made under the delay and has waited it out
            // (`image_named` waits for it to be available).
            assert!(seen(&fx, Kind::ImageById, &Thing::Image(image.clone())).await);
            permit(&fx, image).await;
        }
        let start = fx.world.consistency_tally();

        assert!(
            seen(&fx, kind, &before).await,
            "{kind:?}: made before the delay was set"
        );
        assert!(!seen(&fx, kind, &after).await, "{kind:?}: just made");
        fx.world.advance(DELAY - secs(1));
        assert!(
            !seen(&fx, kind, &after).await,
            "{kind:?}: a second before the delay ends"
        );
        let hidden = fx.world.consistency_tally().hidden - start.hidden;
        assert!(hidden >= 2, "{kind:?}: {hidden} reads counted as hidden");
        fx.world.advance(secs(1));
        assert!(
            seen(&fx, kind, &after).await,
            "{kind:?}: once the delay has passed"
        );
        assert!(seen(&fx, kind, &before).await, "{kind:?}: still visible");
    }
}

/// A zero delay shows at once what a delay was hiding.
#[tokio::test(start_paused = true)]
async fn turning_the_delay_off_shows_everything_at_once() {
    let fx = Fx::new();
    fx.world.set_consistency(Consistency {
        visibility_delay: DELAY,
        ..Consistency::IMMEDIATE
    });
    let key = make(&fx, Kind::KeyByArn, 0).await;
    assert!(!seen(&fx, Kind::KeyByArn, &key).await);
    fx.world.set_consistency(Consistency::IMMEDIATE);
    assert!(seen(&fx, Kind::KeyByArn, &key).await);
}

/// Copies of an available image under `consistency`; how many went
/// `failed`, and the world's count.
async fn copies(consistency: Consistency, count: usize) -> (usize, ConsistencyTally, Vec<ImageId>) {
    let fx = Fx::new();
    let source = fx.image(plain()).await;
    fx.world.set_consistency(consistency);
    let mut made = Vec::new();
    for n in 0..count {
        let mut request = fx.copy_request(&source, &format!("copy-{n}"), None);
        request.client_token = Some(format!("token-{n}"));
        let id = fx.owner.copy_image(&fx.region, &request).await.unwrap();
        // The same client token returns the same copy and draws no more.
        let again = fx.owner.copy_image(&fx.region, &request).await.unwrap();
        assert_eq!(again, id);
        made.push(id);
    }
    fx.advance(3600);
    let images = fx
        .owner
        .describe_images(&fx.region, &ImageQuery::ids(made.clone()))
        .await
        .unwrap();
    assert_eq!(images.len(), count);
    let failed: Vec<ImageId> = images
        .iter()
        .filter(|image| image.state == ImageState::Failed)
        .map(|image| image.id.clone())
        .collect();
    assert!(images
        .iter()
        .all(|image| matches!(image.state, ImageState::Failed | ImageState::Available)));
    for image in &failed {
        let snapshots = fx.snapshots_of(&fx.owner, image).await;
        assert!(snapshots.iter().all(|s| s.state == SnapshotState::Error));
    }
    (failed.len(), fx.world.consistency_tally(), failed)
}

#[tokio::test(start_paused = true)]
async fn a_new_copy_fails_at_chance_one_and_never_at_chance_zero() {
    let at = |copy_failure: f64, seed: u64| Consistency {
        copy_failure,
        seed,
        ..Consistency::IMMEDIATE
    };
    let (failed, tally, _) = copies(at(1.0, 3), 12).await;
    assert_eq!((failed, tally.failed_copies), (12, 12));
    let (failed, tally, _) = copies(at(0.0, 3), 12).await;
    assert_eq!((failed, tally.failed_copies), (0, 0));

    // Halfway, the seed decides which: the same seed fails the same copies.
    let (failed, tally, which) = copies(at(0.5, 3), 40).await;
    assert_eq!(failed, tally.failed_copies);
    assert!(0 < failed && failed < 40, "{failed} of 40 failed");
    let (_, _, again) = copies(at(0.5, 3), 40).await;
    assert_eq!(which, again);
}

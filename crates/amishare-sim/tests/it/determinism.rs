//! Same seed and same calls, same IDs.

use amishare_core::store::KeyStore;
use amishare_sim::VolumeEncryption;

use crate::fixture::Fx;

async fn run_flow(fx: &Fx) -> Vec<String> {
    let key = fx.cmk().await;
    let image = fx.encrypted_image(&key).await;
    fx.share(&image, &fx.b).await;
    let instance = fx.launch(&fx.owner, &image).await;
    let grants = fx.owner.list_grants(&key).await.unwrap();
    let snapshots = fx.snapshots_of(&fx.owner, &image).await;
    let plain = fx.image_named("plain", VolumeEncryption::AwsEbs).await;
    vec![
        key.to_string(),
        image.to_string(),
        instance.id.to_string(),
        instance.volumes[0].volume_id.to_string(),
        grants[0].id.to_string(),
        snapshots[0].id.to_string(),
        plain.to_string(),
    ]
}

#[tokio::test(start_paused = true)]
async fn same_seed_same_ids() {
    let first = run_flow(&Fx::new()).await;
    let second = run_flow(&Fx::new()).await;
    assert_eq!(first, second);
    // The IDs have AWS's shapes.
    let [key, image, instance, volume, grant, snapshot, _] = first.as_slice() else {
        panic!("{first:?}")
    };
    assert!(key.starts_with("arn:aws:kms:ap-northeast-1:111111111111:key/"));
    for (id, prefix) in [
        (image, "ami-"),
        (instance, "i-"),
        (volume, "vol-"),
        (snapshot, "snap-"),
    ] {
        let hex = id.strip_prefix(prefix).unwrap();
        assert_eq!(hex.len(), 17, "{id}");
        assert!(hex.bytes().all(|b| b.is_ascii_hexdigit()), "{id}");
    }
    assert_eq!(grant.len(), 64);
    // All distinct.
    let mut unique = first.clone();
    unique.sort();
    unique.dedup();
    assert_eq!(unique.len(), first.len());
}

#[tokio::test(start_paused = true)]
async fn different_seeds_give_different_ids() {
    let fx = Fx::new();
    let other = amishare_sim::World::new(43);
    other.add_account(&fx.a).unwrap();
    let theirs = other.seed_key(&fx.a, &fx.region, "k", None).unwrap();
    let ours = fx.world.seed_key(&fx.a, &fx.region, "k", None).unwrap();
    assert_ne!(theirs, ours);
    assert_eq!(other.seed(), 43);
}

//! Virtual time: states change lazily when read.

use std::time::{Duration, Instant};

use amishare_core::store::{ImageState, ImageStore, InstanceState, SnapshotState};
use amishare_core::Clock;
use amishare_sim::{Knobs, VolumeEncryption};

use crate::fixture::{secs, Fx};

#[tokio::test(start_paused = true)]
async fn images_and_instances_change_state_at_their_times() {
    let fx = Fx::new();
    let instance = fx.plain_instance();
    let request = amishare_core::store::CreateImageRequest {
        instance,
        name: "timed".into(),
        tags: Default::default(),
    };
    let image = fx.owner.create_image(&fx.region, &request).await.unwrap();
    fx.advance(179);
    assert_eq!(
        fx.image_of(&fx.owner, &image).await.state,
        ImageState::Pending
    );
    assert_eq!(
        fx.snapshots_of(&fx.owner, &image).await[0].state,
        SnapshotState::Pending
    );
    fx.advance(1);
    assert_eq!(
        fx.image_of(&fx.owner, &image).await.state,
        ImageState::Available
    );
    assert_eq!(
        fx.snapshots_of(&fx.owner, &image).await[0].state,
        SnapshotState::Completed
    );

    // A copy takes 4 minutes plus 10 seconds per GiB: 320 s for 8 GiB.
    let key = fx.cmk().await;
    let copy = fx
        .owner
        .copy_image(
            &fx.region,
            &fx.copy_request(&image, "timed-copy", Some(&key)),
        )
        .await
        .unwrap();
    // Its snapshot's progress grows linearly, rounded down, and reads 100 %
    // only once it is completed, also in a world saved and loaded mid-copy.
    let progress = |snapshots: Vec<amishare_core::store::Snapshot>| snapshots[0].progress;
    assert_eq!(progress(fx.snapshots_of(&fx.owner, &copy).await), Some(0));
    fx.advance(160);
    assert_eq!(progress(fx.snapshots_of(&fx.owner, &copy).await), Some(50));
    let loaded = amishare_sim::World::from_file(&fx.world.to_file()).unwrap();
    let loaded_owner = loaded.root_client(&fx.a).unwrap();
    assert_eq!(
        progress(fx.snapshots_of(&loaded_owner, &copy).await),
        Some(50)
    );
    fx.advance(159);
    assert_eq!(progress(fx.snapshots_of(&fx.owner, &copy).await), Some(99));
    assert_eq!(
        fx.image_of(&fx.owner, &copy).await.state,
        ImageState::Pending
    );
    fx.advance(1);
    assert_eq!(
        fx.image_of(&fx.owner, &copy).await.state,
        ImageState::Available
    );
    assert_eq!(progress(fx.snapshots_of(&fx.owner, &copy).await), Some(100));

    let launched = fx.launch(&fx.owner, &copy).await;
    fx.advance(39);
    assert_eq!(
        fx.instance(&fx.owner, &launched.id).await.state,
        InstanceState::Pending
    );
    fx.advance(1);
    assert_eq!(
        fx.instance(&fx.owner, &launched.id).await.state,
        InstanceState::Running
    );
}

#[tokio::test(start_paused = true)]
async fn timings_are_knobs() {
    let fx = Fx::new();
    fx.world.set_knobs(Knobs {
        create_image_time: secs(10),
        ..Knobs::default()
    });
    let instance = fx.plain_instance();
    let request = amishare_core::store::CreateImageRequest {
        instance,
        name: "quick".into(),
        tags: Default::default(),
    };
    let image = fx.owner.create_image(&fx.region, &request).await.unwrap();
    fx.advance(10);
    assert_eq!(
        fx.image_of(&fx.owner, &image).await.state,
        ImageState::Available
    );
}

#[tokio::test(start_paused = true)]
async fn the_clock_sleeps_in_virtual_time() {
    let fx = Fx::new();
    let clock = fx.world.clock();
    let started = Instant::now();
    let before = clock.now();
    let instance = fx.plain_instance();
    let request = amishare_core::store::CreateImageRequest {
        instance,
        name: "slept".into(),
        tags: Default::default(),
    };
    let image = fx.owner.create_image(&fx.region, &request).await.unwrap();
    clock.sleep(Duration::from_secs(3 * 60)).await;
    assert!(clock.now() - before >= Duration::from_secs(180));
    assert_eq!(
        fx.image_of(&fx.owner, &image).await.state,
        ImageState::Available
    );
    // World::advance moves the same clock.
    let now = clock.now();
    fx.world.advance(secs(5));
    assert!(clock.now() >= now + secs(5));
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "no real waiting"
    );
}

/// On a runtime whose clock is not paused, a world that follows the
/// runtime's clock refuses to sleep in real time, and says how to fix it;
/// a stepped world's clock steps on any runtime.
#[tokio::test]
async fn the_clock_refuses_to_sleep_in_real_time() {
    let world = amishare_sim::World::new(1);
    let clock = world.clock();
    let slept = tokio::spawn(async move { clock.sleep(secs(500)).await });
    let panic = slept.await.unwrap_err().into_panic();
    let message = panic
        .downcast_ref::<String>()
        .expect("a formatted panic message");
    assert!(message.contains("would sleep 500s of virtual time in real time"));
    assert!(message.contains("start_paused = true"));
    assert!(message.contains("World::stepped"));
    assert_eq!(world.now().as_secs(), 0);

    // Not sleeping at all needs no paused clock.
    world.clock().sleep(Duration::ZERO).await;

    let stepped = amishare_sim::World::stepped(1);
    stepped.clock().sleep(secs(500)).await;
    assert_eq!(stepped.now(), secs(500));
}

#[test]
fn advance_works_without_a_runtime() {
    let fx = Fx::new();
    let before = fx.world.now();
    fx.world.advance(secs(3600));
    assert!(fx.world.now() >= before + secs(3600));
}

#[tokio::test(start_paused = true)]
async fn the_seed_flow_is_the_same_on_the_stepping_clock_and_the_runtime_timer() {
    let record = |seed: &amishare_sim::seed::SeedWorld| {
        let mut knobs = seed.world.knobs();
        knobs.record_calls = true;
        seed.world.set_knobs(knobs);
    };
    let stepped = amishare_sim::seed::SeedWorld::new(3).unwrap();
    record(&stepped);
    let stepped_report = stepped.run().await.unwrap();
    let stepped_now = stepped.world.now();
    let timed = amishare_sim::seed::SeedWorld::in_world(amishare_sim::World::new(3)).unwrap();
    record(&timed);
    let timed_report = timed
        .run_with_clock(std::sync::Arc::new(timed.world.clock()))
        .await
        .unwrap();
    assert_eq!(
        serde_json::to_value(&stepped_report).unwrap(),
        serde_json::to_value(&timed_report).unwrap()
    );
    assert_eq!(stepped.world.calls(), timed.world.calls());
    assert_eq!(stepped_now, timed.world.now());
}

#[tokio::test(start_paused = true)]
async fn the_stepping_clock_sleeps_whole_milliseconds_at_once() {
    let fx = Fx::new();
    let clock = fx.world.stepping_clock();
    let before = clock.now();
    clock.sleep(Duration::from_micros(1_500)).await;
    assert_eq!(clock.now() - before, Duration::from_millis(2));
    clock.sleep(Duration::from_secs(60)).await;
    assert_eq!(clock.now() - before, Duration::from_millis(60_002));
}

#[tokio::test(start_paused = true)]
async fn a_stepped_world_ignores_the_runtime_clock() {
    let world = amishare_sim::World::stepped(1);
    tokio::time::sleep(Duration::from_secs(60)).await;
    assert_eq!(world.now(), Duration::ZERO);
    world.clock().sleep(Duration::from_micros(2_500)).await;
    assert_eq!(world.now(), Duration::from_millis(3));
    world.advance(secs(5));
    assert_eq!(world.now(), Duration::from_millis(5_003));
}

/// Copies in several regions run at once, and each wait follows its copy's
/// progress: a share in three regions takes its slowest copy's time (320 s
/// for 8 GiB) to within 5 %, with fewer describe calls per copy than a fixed
/// 15-second waiter's 23 polls.
#[tokio::test(start_paused = true)]
async fn a_share_in_three_regions_ends_with_its_slowest_copy() {
    use std::sync::Arc;

    use amishare_core::{
        AliasName, Flow, ImageSource, KeyChoice, Region, ShareRequest, Sharer, Target,
    };

    let fx = Fx::new();
    let image = fx.image(VolumeEncryption::Unencrypted).await;
    let regions: Vec<Region> = [crate::fixture::REGION, "us-east-1", "eu-west-1"]
        .into_iter()
        .map(crate::fixture::region)
        .collect();
    let owner = Arc::new(fx.owner.clone());
    let flow = Flow::new(owner.clone(), owner, Arc::new(fx.world.clock()));
    fx.world.clear_calls();
    let start = fx.world.now();
    flow.share(
        &ShareRequest::new(
            ImageSource::Image(image),
            fx.region.clone(),
            KeyChoice::Create(AliasName::parse("alias/fanout").unwrap()),
            [Target::Account(fx.b.clone())],
        )
        .with_regions(regions.clone())
        .with_volume_permission(true),
    )
    .await
    .unwrap();
    let took = fx.world.now() - start;
    let knobs = fx.world.knobs();
    let copy = knobs.copy_image_base_time + knobs.copy_image_time_per_gib * 8;
    assert!(
        copy <= took && took <= copy.mul_f64(1.05),
        "{took:?} for a {copy:?} copy"
    );
    let calls = fx.world.calls();
    for region in &regions {
        let describes = calls
            .iter()
            .filter(|c| c.region.as_ref() == Some(region))
            .filter(|c| matches!(c.operation, "ec2:DescribeImages" | "ec2:DescribeSnapshots"))
            .count();
        assert!(describes < 23, "{describes} describe calls in {region}");
    }
}

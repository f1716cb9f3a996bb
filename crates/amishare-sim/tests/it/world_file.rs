//! World files: a world saved and loaded is the same world, a flow goes on
//! across a save, and a malformed file names the entry at fault.

use std::sync::Arc;

use amishare_core::plan::planning;
use amishare_core::store::InstanceState;
use amishare_core::{
    AcceptRequest, Flow, ImageSource, InstanceId, LaunchOptions, PrincipalArn, Sharer,
};
use amishare_sim::seed::SeedWorld;
use amishare_sim::{World, WorldFile};

const SEED_WORLD: &str = include_str!("../../../../testdata/worlds/seed.json");

fn profile(world: &World, name: &str) -> PrincipalArn {
    world.profiles()[name].clone()
}

fn flow(world: &World, principal: &PrincipalArn) -> Flow {
    let client = Arc::new(world.client(principal).unwrap());
    Flow::new(client.clone(), client, Arc::new(world.clock()))
}

/// The share request of the walkthrough, on the shipped seed world.
fn share_request(world: &World) -> amishare_core::ShareRequest {
    let seed = SeedWorld::new(1).unwrap();
    let mut request = seed.share_request();
    request.source = ImageSource::Instance(InstanceId::parse("i-0c0ffee0123456789").unwrap());
    request.targets = vec![amishare_core::Target::Principal(profile(world, "b-user"))];
    request
}

#[tokio::test(start_paused = true)]
async fn a_world_after_the_whole_flow_saves_and_loads_unchanged() {
    let seed = SeedWorld::new(3).unwrap();
    seed.world.set_profile("a-admin", &seed.owner).unwrap();
    seed.run().await.unwrap();
    let saved = seed.world.to_file();
    let loaded = World::from_file(&WorldFile::parse(&saved.to_json()).unwrap()).unwrap();
    assert_eq!(loaded.to_file(), saved);
    assert_eq!(loaded.now(), seed.world.now());
    assert!(!saved.keys.is_empty() && !saved.images.is_empty() && !saved.instances.is_empty());
}

#[tokio::test(start_paused = true)]
async fn the_target_accepts_in_a_later_invocation() {
    let file = WorldFile::parse(SEED_WORLD).unwrap();
    let world = World::from_file(&file).unwrap();
    let share = flow(&world, &profile(&world, "a-admin"))
        .share(&share_request(&world))
        .await
        .unwrap();
    let text = world.to_file().to_json();

    // A new process: only the file carries the state over.
    let world = World::from_file(&WorldFile::parse(&text).unwrap()).unwrap();
    let shared = &share.regions[0];
    let accept = flow(&world, &profile(&world, "b-user"))
        .accept(
            &AcceptRequest::new(
                shared.image.clone(),
                shared.region.clone(),
                [shared.key.clone()],
            )
            .with_launch(LaunchOptions::default().with_keep(true)),
        )
        .await
        .unwrap();
    let launch = accept.launch.unwrap();
    assert_eq!(launch.state, InstanceState::Running);
}

#[tokio::test(start_paused = true)]
async fn a_dry_run_plans_exactly_the_calls_the_real_run_makes_and_changes_nothing() {
    let file = WorldFile::parse(SEED_WORLD).unwrap();
    let world = World::from_file(&file).unwrap();
    let owner = profile(&world, "a-admin");
    let before = world.to_file();
    let client = Arc::new(world.client(&owner).unwrap());
    let (planner, keys, images) = planning(client.clone(), client);
    Flow::new(keys, images, Arc::new(world.clock()))
        .share(&share_request(&world))
        .await
        .unwrap();
    let plan = planner.plan();
    assert_eq!(world.mutating_calls(), 0);
    let mut after = world.to_file();
    after.now_ms = before.now_ms;
    assert_eq!(after, before, "a dry run changed the world");

    world.clear_calls();
    flow(&world, &owner)
        .share(&share_request(&world))
        .await
        .unwrap();
    let real: Vec<&str> = world
        .calls()
        .iter()
        .filter(|call| call.mutating)
        .map(|call| call.operation)
        .collect();
    let planned: Vec<&str> = plan.calls.iter().map(|c| c.operation.as_str()).collect();
    assert_eq!(planned, real);
    assert_eq!(plan.policy_changes.len(), 1);
    assert!(plan.policy_changes[0].after.contains("b-user"));
}

#[test]
fn malformed_world_files_name_the_entry() {
    let cases: &[(&str, &str, &str)] = &[
        ("\"format\": \"amishare-world/1\"", "\"format\": \"v2\"", "format: is \"v2\""),
        ("\"seed\": 1", "\"seed\": 1, \"colour\": 1", "unknown field `colour`"),
        ("\"id\": \"222222222222\"", "\"id\": \"22222222222\"", "accounts[1].id"),
        ("\"id\": \"222222222222\"", "\"id\": \"111111111111\"", "listed twice"),
        (
            "\"arn\": \"arn:aws:iam::222222222222:user/b-user\"",
            "\"arn\": \"arn:aws:iam::111111111111:user/b-user\"",
            "accounts[1].principals[0].arn: arn:aws:iam::111111111111:user/b-user is not in account 222222222222",
        ),
        (
            "\"b-user\": \"arn:aws:iam::222222222222:user/b-user\"",
            "\"b-user\": \"arn:aws:iam::222222222222:user/nobody\"",
            "profiles.b-user",
        ),
        ("\"owner\": \"111111111111\"", "\"owner\": \"333333333333\"", "instances[0].owner: account 333333333333 is not in accounts"),
        ("\"size_gib\": 8", "\"size_gib\": -8", "instances[0].volumes[0].size_gib"),
        ("\"Effect\": \"Allow\", \"Action\": \"*\"", "\"Effect\": \"Maybe\", \"Action\": \"*\"", "accounts[0].principals[0].policies[0]"),
    ];
    for (from, to, expected) in cases {
        assert!(SEED_WORLD.contains(from), "{from} is not in the seed world");
        let text = SEED_WORLD.replacen(from, to, 1);
        let err = WorldFile::parse(&text)
            .and_then(|file| World::from_file(&file))
            .expect_err(to);
        assert!(
            err.to_string().contains(expected),
            "{to}: {err} does not contain {expected}"
        );
        assert_eq!(err.kind(), amishare_core::ErrorKind::InvalidInput, "{to}");
    }
}

#[test]
fn a_key_alias_and_image_written_by_hand_load() {
    let text = SEED_WORLD.replacen(
        "\"instances\": [",
        r#""keys": [{"arn": "arn:aws:kms:ap-northeast-1:111111111111:key/11111111-2222-4333-8444-555555555555"}],
  "aliases": [{"name": "alias/golden", "key": "arn:aws:kms:ap-northeast-1:111111111111:key/11111111-2222-4333-8444-555555555555"}],
  "snapshots": [{"id": "snap-0123456789abcdef0", "owner": "111111111111", "region": "ap-northeast-1", "size_gib": 8, "kms_key": "arn:aws:kms:ap-northeast-1:111111111111:key/11111111-2222-4333-8444-555555555555"}],
  "images": [{"id": "ami-0123456789abcdef0", "owner": "111111111111", "region": "ap-northeast-1", "name": "golden", "devices": [{"device_name": "/dev/xvda", "snapshot": "snap-0123456789abcdef0", "size_gib": 8, "encrypted": true}]}],
  "instances": ["#,
        1,
    );
    let world = World::from_file(&WorldFile::parse(&text).unwrap()).unwrap();
    let saved = world.to_file();
    assert_eq!(saved.aliases.len(), 1);
    assert_eq!(
        saved.images[0].devices[0].snapshot.as_str(),
        "snap-0123456789abcdef0"
    );
    // A dangling device is refused.
    let dangling = text.replacen(
        "\"snapshot\": \"snap-0123456789abcdef0\"",
        "\"snapshot\": \"snap-0fffffffffffffff0\"",
        1,
    );
    let err = World::from_file(&WorldFile::parse(&dangling).unwrap()).unwrap_err();
    assert!(
        err.to_string().contains("images[0].devices[0].snapshot"),
        "{err}"
    );
}

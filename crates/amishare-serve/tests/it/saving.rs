//! The world is loaded from its file, saved back on shutdown and on request,
//! and keeps its access keys; a world file that maps a key to nobody is
//! refused.

use amishare_core::store::{ImageQuery, ImageStore};
use amishare_core::{AccountId, ImageId, Region};
use amishare_serve::{ServeError, ServeOptions, Server, HEALTH_PATH, SAVE_PATH};
use amishare_sim::World;

use crate::support::{Harness, REGION, SEED_WORLD};

#[tokio::test]
async fn the_world_is_saved_on_request_and_on_shutdown() {
    let mut server = Harness::with(SEED_WORLD, |options| options.new_accounts = 1).await;
    let health = server.send("GET", HEALTH_PATH, &[], Vec::new()).await.ok();
    assert_eq!(health.json()["status"], "running");

    let key = server.create_key("saved on request").await;
    let saved = server.send("POST", SAVE_PATH, &[], Vec::new()).await.ok();
    assert_eq!(saved.json()["saved"], server.path.display().to_string());
    let text = std::fs::read_to_string(&server.path).unwrap();
    assert!(text.contains(&key), "the saved world lacks {key}");
    World::load(&server.path).unwrap();

    // A 12-digit key makes an account; an image is started; shutdown saves both.
    server
        .sts("444444444444", &[("Action", "GetCallerIdentity")])
        .await
        .ok();
    let image = server.image_seed_instance().await;
    server.stop().await;
    let world = World::load(&server.path).unwrap();
    assert!(world
        .accounts()
        .contains(&AccountId::parse("444444444444").unwrap()));
    let owner = world
        .root_client(&AccountId::parse("111111111111").unwrap())
        .unwrap();
    let region = Region::parse(REGION).unwrap();
    let images = owner
        .describe_images(&region, &ImageQuery::ids([ImageId::parse(&image).unwrap()]))
        .await
        .unwrap();
    assert_eq!(images.len(), 1);
    assert_eq!(
        world.access_keys(),
        World::load(&crate::support::testdata().join("worlds/seed.json"))
            .unwrap()
            .access_keys()
    );
    assert_eq!(world.access_keys().len(), 2);
}

#[tokio::test]
async fn a_save_handle_saves_while_serving() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("world.json");
    std::fs::write(&path, SEED_WORLD).unwrap();
    let server = Server::bind(ServeOptions::new(&path, "127.0.0.1:0".parse().unwrap()))
        .await
        .unwrap();
    server
        .world()
        .add_account(&AccountId::parse("555555555555").unwrap())
        .unwrap();
    let saver = server.save_handle();
    assert_eq!(saver.world_path(), path);
    saver.save().unwrap();
    let world = World::load(&path).unwrap();
    assert!(world
        .accounts()
        .contains(&AccountId::parse("555555555555").unwrap()));
}

#[tokio::test]
async fn a_world_file_whose_access_key_names_nobody_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("world.json");
    let text = SEED_WORLD.replace(
        "\"principal\": \"arn:aws:iam::222222222222:user/b-user\"",
        "\"principal\": \"arn:aws:iam::222222222222:user/nobody\"",
    );
    assert_ne!(text, SEED_WORLD);
    std::fs::write(&path, text).unwrap();
    let err = Server::bind(ServeOptions::new(&path, "127.0.0.1:0".parse().unwrap()))
        .await
        .unwrap_err();
    assert!(matches!(err, ServeError::Load(_)), "{err}");
    assert!(
        err.to_string().contains("access_keys.AKIABUSEREXAMPLE0001"),
        "{err}"
    );

    let text = SEED_WORLD.replace("\"AKIABUSEREXAMPLE0001\":", "\"akia-lower\":");
    std::fs::write(&path, text).unwrap();
    let err = Server::bind(ServeOptions::new(&path, "127.0.0.1:0".parse().unwrap()))
        .await
        .unwrap_err();
    assert!(err.to_string().contains("access key ID"), "{err}");
}

#[tokio::test]
async fn a_world_without_access_keys_or_secrets_still_loads_and_saves_as_it_was() {
    let start = SEED_WORLD.find("  \"access_keys\"").unwrap();
    let end = SEED_WORLD[start..].find("\n  },\n").unwrap() + start + "\n  },\n".len();
    let without = format!("{}{}", &SEED_WORLD[..start], &SEED_WORLD[end..]);
    assert!(!without.contains("access_keys"));
    let mut server = Harness::start(&without, 1.0).await;
    let saved = server.stop().await;
    assert!(!saved.contains("access_keys"), "{saved}");
    assert!(saved.contains("\"format\": \"amishare-world/1\""));

    // The older form, an access key naming its principal alone, still loads,
    // and is saved as it was written.
    let older = SEED_WORLD.replace(
        "{\n      \"principal\": \"arn:aws:iam::222222222222:user/b-user\",\n      \"secret_access_key\": \"wJalrXUtnFEMI/K7MDENG/bPxRfiCYBUSEREXAMPLE\"\n    }",
        "\"arn:aws:iam::222222222222:user/b-user\"",
    );
    assert_ne!(older, SEED_WORLD);
    let mut server = Harness::start(&older, 1.0).await;
    let saved: serde_json::Value = serde_json::from_str(&server.stop().await).unwrap();
    assert_eq!(
        saved["access_keys"]["AKIABUSEREXAMPLE0001"],
        "arn:aws:iam::222222222222:user/b-user"
    );
    assert_eq!(
        saved["access_keys"]["AKIAAADMINEXAMPLE001"]["secret_access_key"],
        "wJalrXUtnFEMI/K7MDENG/bPxRfiCYADMINEXAMPLE"
    );
}

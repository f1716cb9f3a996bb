//! The world file's lock and saves: a second holder waits and says for
//! whom, a server is refused at once with how to reach it, a save keeps the
//! file's mode and writes through a symlink, and a world that only read is
//! not written back.

use std::os::unix::fs::PermissionsExt as _;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use amishare_core::{AccountId, ErrorKind};
use amishare_sim::{LockHolder, WorldLock};

const SEED_WORLD: &str = include_str!("../../../../testdata/worlds/seed.json");

fn seed_file() -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("world.json");
    std::fs::write(&path, SEED_WORLD).unwrap();
    (dir, path)
}

fn lock(path: &Path, command: &str) -> WorldLock {
    WorldLock::acquire(
        path,
        &LockHolder::this_process(command),
        Duration::ZERO,
        |_| {},
    )
    .unwrap()
}

#[test]
fn a_second_holder_waits_names_the_first_and_gives_up_in_time() {
    let (_dir, path) = seed_file();
    let first = lock(&path, "amishare share");
    let mut told = None;
    let started = Instant::now();
    let err = WorldLock::acquire(
        &path,
        &LockHolder::this_process("amishare status"),
        Duration::from_millis(200),
        |holder| told = holder.cloned(),
    )
    .unwrap_err();
    assert!(started.elapsed() >= Duration::from_millis(200));
    assert_eq!(err.kind(), ErrorKind::Timeout, "{err}");
    assert_eq!(told, Some(LockHolder::this_process("amishare share")));
    assert!(err.message().contains("amishare share"), "{err}");

    // Once the first lets go, the second gets its turn.
    drop(first);
    lock(&path, "amishare status");
}

#[test]
fn a_server_holding_the_world_is_refused_at_once_with_its_endpoint() {
    let (_dir, path) = seed_file();
    let server = lock(&path, "amishare sim serve");
    server
        .set_holder(
            &LockHolder::this_process("amishare sim serve").serving("http://127.0.0.1:9566"),
        )
        .unwrap();
    let err = WorldLock::acquire(
        &path,
        &LockHolder::this_process("amishare share"),
        Duration::from_secs(60),
        |_| panic!("nobody waits for a server"),
    )
    .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Conflict);
    let message = err.message();
    assert!(
        message.contains("--backend aws --endpoint-url http://127.0.0.1:9566"),
        "{message}"
    );
    assert!(
        message.contains(&format!("pid {}", std::process::id())),
        "{message}"
    );
}

#[test]
fn a_missing_world_file_is_bad_input() {
    let dir = tempfile::tempdir().unwrap();
    let err = WorldLock::acquire(
        &dir.path().join("nothing.json"),
        &LockHolder::this_process("amishare status"),
        Duration::ZERO,
        |_| {},
    )
    .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::InvalidInput);
    assert!(!dir.path().join("nothing.json.lock").exists());
}

#[test]
fn a_save_keeps_the_mode_and_writes_through_a_symlink() {
    let (dir, path) = seed_file();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
    let link = dir.path().join("link.json");
    std::os::unix::fs::symlink(&path, &link).unwrap();

    let held = lock(&link, "amishare share");
    let world = held.load().unwrap();
    world
        .add_account(&AccountId::parse("444444444444").unwrap())
        .unwrap();
    held.save(&world).unwrap();
    drop(held);

    assert!(std::fs::symlink_metadata(&link)
        .unwrap()
        .file_type()
        .is_symlink());
    let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600);
    let text = std::fs::read_to_string(&path).unwrap();
    assert!(text.contains("444444444444"));
    // The lock is the target's, whichever name it was taken by.
    assert!(dir.path().join("world.json.lock").exists());
    assert!(!dir.path().join("link.json.lock").exists());
    let leftovers: Vec<_> = std::fs::read_dir(dir.path())
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|name| name.ends_with(".tmp"))
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");
}

#[tokio::test(start_paused = true)]
async fn a_world_that_only_read_is_not_written_back() {
    use amishare_core::store::{ImageQuery, ImageStore, KeyStore};
    use amishare_core::Region;
    let (_dir, path) = seed_file();
    let held = lock(&path, "amishare status");
    let world = held.load().unwrap();
    let owner = world
        .root_client(&AccountId::parse("111111111111").unwrap())
        .unwrap();
    let region = Region::parse("ap-northeast-1").unwrap();
    owner
        .describe_images(&region, &ImageQuery::default())
        .await
        .unwrap();
    assert!(!held.save_if_changed(&world).unwrap());
    assert_eq!(std::fs::read_to_string(&path).unwrap(), SEED_WORLD);

    world
        .add_account(&AccountId::parse("444444444444").unwrap())
        .unwrap();
    // Seeding is not a call: only calls and new IDs count as changes.
    assert!(!held.save_if_changed(&world).unwrap());
    owner
        .create_key(&region, &amishare_core::store::CreateKeyRequest::default())
        .await
        .unwrap();
    assert!(held.save_if_changed(&world).unwrap());
    assert_ne!(std::fs::read_to_string(&path).unwrap(), SEED_WORLD);
}

//! A command killed with SIGKILL while it saves the world file leaves the
//! file as it was before the command or as the command left it, never
//! anything else.

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::concurrency::large_world;
use crate::seed_world;

const KILLS: usize = 100;

fn share(world: &Path) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_amishare"));
    command
        .args(["--backend", "sim", "--world", world.to_str().unwrap()])
        .args(["--region", "ap-northeast-1", "--profile", "a-admin"])
        .args(["share", "--instance", "i-0c0ffee0123456789"])
        .args(["--create-key", "alias/cross-ami", "--to", "222222222222"])
        .env_remove("RUST_LOG")
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    command
}

/// Whether a writer's temporary file is in the world's directory.
fn saving(dir: &Path) -> bool {
    std::fs::read_dir(dir).unwrap().flatten().any(|entry| {
        let name = entry.file_name();
        let name = name.to_string_lossy();
        name.starts_with(".world.json.") && name.ends_with(".tmp")
    })
}

/// Starts the share and waits until its save has begun (its temporary
/// file appears) or it has exited; returns the child and when the save
/// began.
fn until_saving(world: &Path) -> (std::process::Child, Option<Instant>) {
    let dir = world.parent().unwrap();
    let mut child = share(world).spawn().unwrap();
    loop {
        if saving(dir) {
            return (child, Some(Instant::now()));
        }
        if child.try_wait().unwrap().is_some() {
            return (child, None);
        }
        std::thread::sleep(Duration::from_micros(200));
    }
}

/// A small deterministic generator for the kill points.
fn next(state: &mut u64) -> u64 {
    *state ^= *state << 13;
    *state ^= *state >> 7;
    *state ^= *state << 17;
    *state
}

#[test]
fn a_writer_killed_during_its_save_leaves_the_world_before_or_after() {
    let (dir, world) = seed_world();
    large_world(&world, 1_500);
    let before = std::fs::read(&world).unwrap();

    // The state after: the same command run to its end (the simulation is
    // deterministic, so every run writes the same bytes).
    let (mut child, began) = until_saving(&world);
    assert!(child.wait().unwrap().success());
    let save = began.expect("the save used a temporary file").elapsed();
    let after = std::fs::read(&world).unwrap();
    assert_ne!(before, after);

    let window = save.mul_f64(1.5).as_micros().max(1) as u64;
    let mut seed = 0x9E37_79B9_7F4A_7C15_u64;
    let (mut old, mut new) = (0, 0);
    for kill in 0..KILLS {
        std::fs::write(&world, &before).unwrap();
        let (mut child, began) = until_saving(&world);
        if let Some(began) = began {
            let at = Duration::from_micros(next(&mut seed) % window);
            std::thread::sleep(at.saturating_sub(began.elapsed()));
            let _ = child.kill();
        }
        child.wait().unwrap();
        let found = std::fs::read(&world).unwrap();
        if found == before {
            old += 1;
        } else if found == after {
            new += 1;
        } else {
            panic!("kill {kill}: the world file is neither the old one nor the new one");
        }
        amishare_sim::World::load(&world).expect("the world loads");
    }
    eprintln!(
        "{KILLS} kills within {window} us of a save's start ({} us long): {old} left the old world, {new} the new",
        save.as_micros()
    );
    assert!(old > 0, "no kill landed before the rename");
    // The next command finds the dead writers' temporary files and removes them.
    let out = share(&world).status().unwrap();
    assert!(out.success());
    assert!(!saving(dir.path()), "temporary files left behind");
}

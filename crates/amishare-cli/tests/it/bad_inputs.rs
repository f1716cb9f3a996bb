//! Bad input, from `testdata/cli/bad-inputs.txt`: exit 2, a message that
//! names the input, nothing on stdout, and the world file untouched (a
//! command that made a change would have saved it).

use crate::{amishare, seed_world, testdata};

#[test]
fn every_bad_input_exits_2_names_it_and_changes_nothing() {
    let table = std::fs::read_to_string(testdata().join("cli/bad-inputs.txt")).unwrap();
    let mut rows = 0;
    for line in table.lines() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let (fragment, args) = line.split_once(" | ").expect("FRAGMENT | ARGS");
        let (_dir, world) = seed_world();
        let before = std::fs::read(&world).unwrap();
        let world_arg = world.to_str().unwrap();
        let mut argv: Vec<&str> = Vec::new();
        let args = match args.strip_prefix('!') {
            Some(raw) => raw,
            None => {
                argv.extend([
                    "--backend",
                    "sim",
                    "--world",
                    world_arg,
                    "--region",
                    "ap-northeast-1",
                    "--profile",
                    "a-admin",
                ]);
                args
            }
        };
        let expanded = expand(args, world_arg);
        argv.extend(expanded.iter().map(String::as_str));
        let out = amishare(&argv);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(
            out.status.code(),
            Some(2),
            "{args}: exit {:?}\n{stderr}",
            out.status
        );
        assert!(
            stderr.contains(fragment),
            "{args}: stderr does not say {fragment:?}:\n{stderr}"
        );
        assert!(out.stdout.is_empty(), "{args}: printed on stdout");
        assert_eq!(
            std::fs::read(&world).unwrap(),
            before,
            "{args}: the world file changed"
        );
        rows += 1;
    }
    assert!(rows >= 70, "only {rows} bad inputs");
}

/// The arguments of a row: split on spaces; `WORLD` is the world file,
/// `<SP>` a space within an argument, and `TOx<N>` stands for `--to` with
/// N distinct accounts.
fn expand(args: &str, world: &str) -> Vec<String> {
    let mut argv = Vec::new();
    for arg in args.split(' ') {
        if arg == "WORLD" {
            argv.push(world.to_owned());
        } else if let Some(count) = arg.strip_prefix("TOx") {
            let count: u64 = count.parse().expect("TOx<N>");
            for n in 0..count {
                argv.push("--to".to_owned());
                argv.push(format!("{}", 300_000_000_000_u64 + n));
            }
        } else {
            argv.push(arg.replace("<SP>", " "));
        }
    }
    argv
}

/// A build without the AWS backend refuses `--backend aws`, given or by
/// default, as bad input before any call, and says how to get the backend.
#[cfg(not(feature = "aws"))]
#[test]
fn a_build_without_the_aws_backend_refuses_it_and_says_how_to_get_it() {
    let share = [
        "--region",
        "ap-northeast-1",
        "share",
        "--image",
        "ami-0123456789abcdef0",
        "--create-key",
        "alias/cross-ami",
        "--to",
        "222222222222",
    ];
    for backend in [&["--backend", "aws"][..], &[]] {
        let argv: Vec<&str> = backend.iter().chain(&share).copied().collect();
        let out = amishare(&argv);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{argv:?}: {stderr}");
        assert!(stderr.contains("without the AWS backend"), "{stderr}");
        assert!(
            stderr.contains("cargo install --path crates/amishare-cli"),
            "{stderr}"
        );
        assert!(out.stdout.is_empty());
    }
}

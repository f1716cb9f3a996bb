//! The command's help, completions and manual: global options under their
//! own heading in every command's help, completion scripts that name every
//! command (and that the shells installed here parse), and manual pages
//! for every command.

use std::process::Command;

use crate::{amishare, ok};

/// The options every command takes.
const GLOBAL: [&str; 10] = [
    "--backend",
    "--world",
    "--lock-wait",
    "--profile",
    "--target-profile",
    "--target-role-arn",
    "--region",
    "--endpoint-url",
    "--json",
    "--dry-run",
];

/// The commands `--help` lists (`help` aside), each with its subcommands
/// (`sim serve`), read from the command itself.
fn commands() -> Vec<Vec<String>> {
    let listed = |args: &[&str]| -> Vec<String> {
        let help = ok(&amishare(args));
        let section = help
            .split_once("Commands:\n")
            .unwrap_or_else(|| panic!("{args:?} lists commands:\n{help}"))
            .1;
        section
            .lines()
            .take_while(|line| !line.trim().is_empty())
            .filter_map(|line| line.split_whitespace().next())
            .filter(|name| *name != "help")
            .map(str::to_owned)
            .collect()
    };
    let mut commands = Vec::new();
    for name in listed(&["--help"]) {
        let help = ok(&amishare(&[&name, "--help"]));
        if help.contains("Commands:\n") {
            for sub in listed(&[&name, "--help"]) {
                commands.push(vec![name.clone(), sub]);
            }
        } else {
            commands.push(vec![name]);
        }
    }
    commands
}

/// The option names at the start of the lines of a help section.
fn options(section: &str) -> Vec<&str> {
    section
        .lines()
        .filter_map(|line| line.trim_start().split([' ', ',']).next())
        .filter(|word| word.starts_with("--"))
        .collect()
}

#[test]
fn every_command_s_help_shows_the_global_options_apart() {
    let commands = commands();
    assert!(commands.len() >= 10, "{commands:?}");
    for command in &commands {
        let mut args: Vec<&str> = command.iter().map(String::as_str).collect();
        args.push("--help");
        let help = ok(&amishare(&args));
        let (own, global) = help
            .split_once("\nGlobal options:\n")
            .unwrap_or_else(|| panic!("{command:?}: no Global options heading:\n{help}"));
        let own = options(own);
        let global = options(global);
        for flag in GLOBAL {
            assert!(
                global.contains(&flag),
                "{command:?}: {flag} not under Global options"
            );
            assert!(
                !own.contains(&flag),
                "{command:?}: {flag} among the command's own options"
            );
        }
        assert!(
            global.iter().all(|flag| GLOBAL.contains(flag)),
            "{command:?}: only global options under the heading: {global:?}"
        );
    }
    // The command's own options stay on top, e.g. share's.
    let help = ok(&amishare(&["share", "--help"]));
    let own = options(help.split_once("\nGlobal options:\n").unwrap().0);
    for flag in [
        "--image",
        "--instance",
        "--key",
        "--create-key",
        "--principal",
    ] {
        assert!(own.contains(&flag), "share's own {flag}: {own:?}");
    }
}

#[test]
fn help_speaks_to_the_user() {
    let help = ok(&amishare(&["--help"]));
    for words in ["mission's", "five steps"] {
        assert!(!help.contains(words), "{words} in:\n{help}");
    }
    let demo = ok(&amishare(&["demo", "--help"]));
    assert!(demo.contains("offline"), "{demo}");
}

/// Each shell's script names every command; the shells installed here parse it.
#[test]
fn completions_name_every_command_and_parse() {
    let commands = commands();
    for shell in ["bash", "zsh", "fish", "elvish", "powershell"] {
        let script = ok(&amishare(&["completions", shell]));
        for command in &commands {
            for name in command {
                assert!(
                    script.contains(name.as_str()),
                    "{shell}: {name} missing from the completions"
                );
            }
        }
        // Fish names long options without their dashes (`-l create-key`).
        for flag in ["create-key", "principal", "backend", "via-service"] {
            assert!(script.contains(flag), "{shell}: --{flag} missing");
        }
        let check: &[&str] = match shell {
            "bash" => &["bash", "-n"],
            "zsh" => &["zsh", "-n"],
            "fish" => &["fish", "--no-execute"],
            _ => continue,
        };
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join(format!("amishare.{shell}"));
        std::fs::write(&file, &script).unwrap();
        match Command::new(check[0]).args(&check[1..]).arg(&file).output() {
            Ok(out) => assert!(
                out.status.success(),
                "{shell} does not parse the script: {}",
                String::from_utf8_lossy(&out.stderr)
            ),
            Err(err) if err.kind() == std::io::ErrorKind::NotFound => {
                eprintln!("{shell} is not installed: its script was checked for the commands only");
            }
            Err(err) => panic!("running {shell}: {err}"),
        }
    }
    let out = amishare(&["completions", "tcsh"]);
    assert_eq!(out.status.code(), Some(2), "an unknown shell is bad input");
}

#[test]
fn the_manual_has_a_page_for_every_command() {
    let page = ok(&amishare(&["man"]));
    assert!(page.contains(".TH amishare 1"), "{page}");
    for command in commands() {
        assert!(
            page.contains(command[0].as_str()),
            "{command:?} not in amishare(1)"
        );
    }
    let dir = tempfile::tempdir().unwrap();
    let out = amishare(&["man", "--dir", dir.path().to_str().unwrap()]);
    ok(&out);
    for command in commands() {
        let file = dir.path().join(format!("amishare-{}.1", command.join("-")));
        let page = std::fs::read_to_string(&file)
            .unwrap_or_else(|err| panic!("{}: {err}", file.display()));
        assert!(
            page.contains(&format!(".TH amishare-{} 1", command.join("-"))),
            "{page}"
        );
    }
    assert!(dir.path().join("amishare.1").is_file());
}

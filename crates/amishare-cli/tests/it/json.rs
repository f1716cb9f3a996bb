//! Every JSON document the command prints (`--json`) is an object whose
//! first field, `"format"`, names the document and its version, and
//! `docs/json.md` describes every format and every top-level field each
//! one has.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::process::Output;

use serde_json::Value;

use crate::{amishare, seed_world, sim};

const B_USER: &str = "arn:aws:iam::222222222222:user/b-user";

/// The JSON documents on a command's stdout, in order.
fn documents(out: &Output) -> Vec<Value> {
    serde_json::Deserializer::from_slice(&out.stdout)
        .into_iter::<Value>()
        .map(|doc| doc.expect("stdout is JSON"))
        .collect()
}

/// `docs/json.md`: each `## \`amishare-…/N\`` section's text, by format.
fn documented() -> BTreeMap<String, String> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../docs/json.md");
    let text = std::fs::read_to_string(&path).unwrap();
    let mut sections = BTreeMap::new();
    let mut current: Option<(String, String)> = None;
    for line in text.lines() {
        if let Some(heading) = line.strip_prefix("## ") {
            if let Some((format, body)) = current.take() {
                sections.insert(format, body);
            }
            let format = heading.trim().trim_matches('`');
            if format.starts_with("amishare-") {
                current = Some((format.to_owned(), String::new()));
            }
        } else if let Some((_, body)) = &mut current {
            body.push_str(line);
            body.push('\n');
        }
    }
    if let Some((format, body)) = current {
        sections.insert(format, body);
    }
    sections
}

/// `args` after `--json`.
fn json<'a>(args: &[&'a str]) -> Vec<&'a str> {
    [&["--json"][..], args].concat()
}

/// The command as `profile` on the world file, with `--json`.
fn sim_json(world: &Path, profile: &str, args: &[&str]) -> Output {
    let mut argv = vec!["--json"];
    argv.extend_from_slice(args);
    sim(world, profile, &argv)
}

/// The documents of a command that exits with `exit`.
fn printed(out: &Output, exit: i32) -> Vec<Value> {
    assert_eq!(
        out.status.code(),
        Some(exit),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let docs = documents(out);
    assert!(!docs.is_empty(), "no JSON printed");
    docs
}

#[test]
fn every_json_document_names_its_versioned_format_and_is_documented() {
    let mut all: Vec<Value> = Vec::new();
    all.extend(printed(&amishare(&["demo", "--json"]), 0));
    let whole = [
        "policy",
        "--principal",
        B_USER,
        "--owner-account",
        "111111111111",
    ];
    all.extend(printed(&amishare(&json(&whole)), 0));
    all.extend(printed(
        &amishare(&json(&["policy", "--principal", B_USER, "--statements"])),
        0,
    ));
    let (dir, world) = seed_world();
    let file = dir.path().join("policy.json");
    std::fs::write(&file, &amishare(&whole).stdout).unwrap();
    all.extend(printed(
        &amishare(&json(&[
            "policy",
            "--principal",
            B_USER,
            "--merge",
            file.to_str().unwrap(),
        ])),
        0,
    ));

    let share = [
        "share",
        "--instance",
        "i-0c0ffee0123456789",
        "--create-key",
        "alias/cross-ami",
        "--principal",
        B_USER,
        "--volume-permission",
    ];
    let dry = [&["--dry-run"][..], &share].concat();
    all.extend(printed(&sim_json(&world, "a-admin", &dry), 0));
    let shared = printed(&sim_json(&world, "a-admin", &share), 0);
    let image = shared[0]["regions"][0]["image"]
        .as_str()
        .unwrap()
        .to_owned();
    let key = shared[0]["regions"][0]["key"].as_str().unwrap().to_owned();
    all.extend(shared);
    let accept = [
        "accept",
        "--image",
        &image,
        "--launch",
        "--copy-key",
        "default",
    ];
    all.extend(printed(&sim_json(&world, "b-user", &accept), 0));
    let status = ["status", "--image", &image];
    all.extend(printed(&sim_json(&world, "a-admin", &status), 0));
    let doctor = ["doctor", "--image", &image];
    all.extend(printed(&sim_json(&world, "b-user", &doctor), 0));
    let unshare = ["unshare", "--image", &image, "--principal", B_USER];
    all.extend(printed(&sim_json(&world, "a-admin", &unshare), 0));
    // A launch the key policy does not allow: the failure, with the doctor's findings.
    all.extend(printed(&sim_json(&world, "a-admin", &share), 0));
    drop_amishare_statements(&world, &key);
    let launch = ["accept", "--image", &image, "--launch", "--key", &key];
    all.extend(printed(&sim_json(&world, "b-user", &launch), 1));

    let documented = documented();
    let mut seen = BTreeSet::new();
    for doc in &all {
        let object = doc.as_object().expect("a document is an object");
        let (first, format) = object.iter().next().expect("a document has fields");
        assert_eq!(first, "format", "the first field names the format: {doc}");
        let format = format.as_str().expect("the format is text");
        let (name, version) = format.rsplit_once('/').expect("format/version");
        assert!(name.starts_with("amishare-"), "{format}");
        assert!(version.parse::<u32>().is_ok(), "{format}: a version number");
        let section = documented
            .get(format)
            .unwrap_or_else(|| panic!("docs/json.md has no section for {format}"));
        for field in object.keys() {
            assert!(
                section.contains(&format!("`{field}`")),
                "docs/json.md, {format}: field `{field}` undocumented"
            );
        }
        seen.insert(format.to_owned());
    }
    let documented: BTreeSet<String> = documented.into_keys().collect();
    assert_eq!(
        seen, documented,
        "every documented format is printed by a command here"
    );
}

/// Takes amishare's statements out of `key`'s policy in the world file.
fn drop_amishare_statements(world: &Path, key: &str) {
    let mut saved: Value = serde_json::from_str(&std::fs::read_to_string(world).unwrap()).unwrap();
    for stored in saved["keys"].as_array_mut().unwrap() {
        if stored["arn"] == key {
            stored["policy"]["Statement"]
                .as_array_mut()
                .unwrap()
                .retain(|s| !s["Sid"].as_str().unwrap_or("").starts_with("amishare:"));
        }
    }
    std::fs::write(world, serde_json::to_string_pretty(&saved).unwrap()).unwrap();
}

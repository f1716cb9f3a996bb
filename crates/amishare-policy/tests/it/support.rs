//! Fixture loading shared by the test modules.

use std::path::{Path, PathBuf};

use amishare_policy::Policy;

pub(crate) const OWNER: &str = "111111111111";
pub(crate) const OWNER_ROOT: &str = "arn:aws:iam::111111111111:root";
pub(crate) const KEY_ARN: &str =
    "arn:aws:kms:ap-northeast-1:111111111111:key/1234abcd-12ab-34cd-56ef-1234567890ab";

pub(crate) fn testdata() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../testdata/policies")
}

#[track_caller]
pub(crate) fn read(relative: &str) -> String {
    let path = testdata().join(relative);
    std::fs::read_to_string(&path).unwrap_or_else(|err| panic!("reading {}: {err}", path.display()))
}

#[track_caller]
pub(crate) fn policy(relative: &str) -> Policy {
    Policy::parse(&read(relative)).unwrap_or_else(|err| panic!("parsing {relative}: {err}"))
}

/// Every policy document among the fixtures, as paths relative to
/// `testdata/policies`.
pub(crate) fn policy_fixtures() -> Vec<String> {
    let mut out = Vec::new();
    for dir in ["key", "identity", "roundtrip", "share"] {
        let entries = std::fs::read_dir(testdata().join(dir)).expect("fixture directory");
        for entry in entries {
            let name = entry
                .expect("directory entry")
                .file_name()
                .to_string_lossy()
                .into_owned();
            if name.ends_with(".json") && !name.ends_with("-statements.json") {
                out.push(format!("{dir}/{name}"));
            }
        }
    }
    out.sort();
    assert!(
        20 <= out.len(),
        "expected the policy fixtures, found {out:?}"
    );
    out
}

/// Compares with a stored expectation; `UPDATE_EXPECT=1` rewrites it.
#[track_caller]
pub(crate) fn check_expect(relative: &str, actual: &str) {
    let path = testdata().join(relative);
    if std::env::var_os("UPDATE_EXPECT").is_some() {
        std::fs::write(&path, format!("{actual}\n")).expect("writing expectation");
        return;
    }
    let expected = read(relative);
    assert_eq!(
        expected.trim_end(),
        actual,
        "{relative} differs (UPDATE_EXPECT=1 rewrites it)"
    );
}

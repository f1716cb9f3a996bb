//! `classify` and `refine` against every error body in `testdata/errors/`,
//! as listed with its expected outcome in `testdata/errors/expected.txt`.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use amishare_core::ErrorKind;

use crate::error::{classify, refine};

fn errors_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../testdata/errors")
}

/// One row of `expected.txt`.
struct Case {
    file: String,
    classified: Option<(ErrorKind, bool)>,
    returned: (ErrorKind, bool),
}

fn cases() -> Vec<Case> {
    let text = std::fs::read_to_string(errors_dir().join("expected.txt")).unwrap();
    text.lines()
        .filter(|line| !line.trim().is_empty() && !line.starts_with('#'))
        .map(|line| {
            let fields: Vec<&str> = line.split_whitespace().collect();
            assert_eq!(fields.len(), 4, "malformed row: {line}");
            Case {
                file: fields[0].to_owned(),
                classified: (fields[2] != "-").then(|| kind_flag(fields[2])),
                returned: kind_flag(fields[3]),
            }
        })
        .collect()
}

/// `Kind/retryable`.
fn kind_flag(text: &str) -> (ErrorKind, bool) {
    let (kind, retryable) = text.split_once('/').expect("Kind/retryable");
    let kind = match kind {
        "NotFound" => ErrorKind::NotFound,
        "AccessDenied" => ErrorKind::AccessDenied,
        "InvalidKeyState" => ErrorKind::InvalidKeyState,
        "InvalidInput" => ErrorKind::InvalidInput,
        "Conflict" => ErrorKind::Conflict,
        "Throttled" => ErrorKind::Throttled,
        "Unsupported" => ErrorKind::Unsupported,
        "Service" => ErrorKind::Service,
        other => panic!("unknown kind {other}"),
    };
    (kind, retryable.parse().expect("true or false"))
}

/// The code and message of an EC2 XML or KMS JSON error body, read the way
/// the SDK reads them (a KMS `__type` may carry a `namespace#` prefix).
fn code_and_message(file: &str, body: &str) -> (String, String) {
    let between = |start: &str, end: &str| -> String {
        let from = body
            .find(start)
            .unwrap_or_else(|| panic!("{file}: no {start}"))
            + start.len();
        let to = from + body[from..].find(end).unwrap();
        body[from..to].to_owned()
    };
    if file.ends_with(".xml") {
        let unescape = |s: String| {
            s.replace("&quot;", "\"")
                .replace("&apos;", "'")
                .replace("&lt;", "<")
                .replace("&gt;", ">")
                .replace("&amp;", "&")
        };
        (
            unescape(between("<Code>", "</Code>")),
            unescape(between("<Message>", "</Message>")),
        )
    } else {
        let json: serde_json::Value = serde_json::from_str(body).unwrap();
        let code = json["__type"].as_str().unwrap();
        let code = code.rsplit('#').next().unwrap().to_owned();
        (code, json["message"].as_str().unwrap().to_owned())
    }
}

#[test]
fn every_error_body_classifies_as_expected() {
    let cases = cases();
    assert!(30 < cases.len(), "the table lists the error bodies");
    for case in &cases {
        let body = std::fs::read_to_string(errors_dir().join(&case.file)).unwrap();
        let (code, message) = code_and_message(&case.file, &body);
        assert_eq!(
            classify(&code),
            case.classified,
            "classify({code}) for {}",
            case.file
        );
        if let Some(classified) = case.classified {
            assert_eq!(
                refine(&code, &message, classified),
                case.returned,
                "kind of {} once its message is read",
                case.file
            );
        }
    }
}

#[test]
fn every_error_body_is_listed() {
    let listed: BTreeSet<String> = cases().into_iter().map(|c| c.file).collect();
    for service in ["ec2", "kms"] {
        for entry in std::fs::read_dir(errors_dir().join(service)).unwrap() {
            let name = format!("{service}/{}", entry.unwrap().file_name().to_string_lossy());
            assert!(listed.contains(&name), "{name} has no row in expected.txt");
        }
    }
}

#[test]
fn only_throttling_and_transient_failures_are_retryable() {
    for code in [
        "RequestLimitExceeded",
        "ThrottlingException",
        "Throttling",
        "InternalError",
        "ServiceUnavailable",
        "Unavailable",
        "KMSInternalException",
        "DependencyTimeoutException",
    ] {
        let (kind, retryable) = classify(code).unwrap();
        assert!(retryable, "{code}");
        assert!(
            matches!(kind, ErrorKind::Throttled | ErrorKind::Service),
            "{code}"
        );
    }
    for code in [
        "InvalidAMIID.NotFound",
        "AccessDeniedException",
        "DisabledException",
        "InvalidSnapshot.InUse",
        "DryRunOperation",
    ] {
        assert!(!classify(code).unwrap().1, "{code}");
    }
}

#[test]
fn codes_are_case_sensitive_and_unknown_codes_are_none() {
    assert_eq!(classify("invalidamiid.notfound"), None);
    assert_eq!(classify(""), None);
    assert_eq!(classify("Client.InternalError"), None);
}

#[test]
fn the_message_decides_only_for_its_code() {
    let storage = "You do not have permission to access the storage of this ami";
    assert_eq!(
        refine("InvalidRequest", storage, (ErrorKind::InvalidInput, false)),
        (ErrorKind::AccessDenied, false)
    );
    assert_eq!(
        refine(
            "InvalidParameterValue",
            storage,
            (ErrorKind::InvalidInput, false)
        ),
        (ErrorKind::InvalidInput, false)
    );
    assert_eq!(
        refine(
            "InvalidParameter",
            "Snapshots encrypted with the AWS Managed CMK can't be shared. Specify another snapshot.",
            (ErrorKind::InvalidInput, false)
        ),
        (ErrorKind::Unsupported, false)
    );
}

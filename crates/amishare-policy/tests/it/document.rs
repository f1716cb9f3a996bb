//! The document model: lossless round trips and located parse errors.

use amishare_policy::{Effect, OneOrMany, ParseErrorKind, Policy, Principal};
use serde::Deserialize;
use serde_json::Value;

use crate::support::{self, OWNER};

#[test]
fn fixtures_round_trip_losslessly() {
    for name in support::policy_fixtures() {
        let text = support::read(&name);
        let input: Value = serde_json::from_str(&text).expect("fixture is JSON");
        let policy = Policy::parse(&text).unwrap_or_else(|err| panic!("{name}: {err}"));
        assert_eq!(policy.to_value(), input, "{name}: value differs");
        // Same key order and forms, byte for byte.
        assert_eq!(
            policy.to_json(),
            serde_json::to_string(&input).unwrap(),
            "{name}: compact text differs"
        );
        assert_eq!(
            policy.to_json_pretty(),
            serde_json::to_string_pretty(&input).unwrap(),
            "{name}: pretty text differs"
        );
        // The serde impls agree with parse / to_value.
        let via_serde: Policy = serde_json::from_str(&text).unwrap();
        assert_eq!(via_serde, policy, "{name}");
        assert_eq!(serde_json::to_value(&policy).unwrap(), input, "{name}");
        // And a second trip is stable.
        let again = Policy::parse(&policy.to_json()).unwrap();
        assert_eq!(again, policy, "{name}");
        assert_eq!(again.to_json(), policy.to_json(), "{name}");
    }
}

#[derive(Deserialize)]
struct InvalidCase {
    name: String,
    text: String,
    kind: String,
    line: Option<usize>,
    statement: Option<usize>,
    field: Option<String>,
    contains: Vec<String>,
}

#[test]
fn malformed_documents_are_located() {
    let cases: Vec<InvalidCase> = serde_json::from_str(&support::read("invalid.json")).unwrap();
    assert!(15 <= cases.len());
    let mut failures = Vec::new();
    for case in &cases {
        let err = match Policy::parse(&case.text) {
            Ok(policy) => {
                failures.push(format!("{}: parsed as {policy:?}", case.name));
                continue;
            }
            Err(err) => err,
        };
        let kind = match err.kind() {
            ParseErrorKind::Syntax => "Syntax",
            ParseErrorKind::Shape => "Shape",
            _ => "other",
        };
        let message = err.to_string();
        let mut problems = Vec::new();
        if kind != case.kind {
            problems.push(format!("kind {kind}"));
        }
        if case.line.is_some() && err.line() != case.line {
            problems.push(format!("line {:?}", err.line()));
        }
        if case.kind == "Syntax" && err.column().is_none() {
            problems.push("no column".to_owned());
        }
        if err.statement() != case.statement {
            problems.push(format!("statement {:?}", err.statement()));
        }
        if err.field() != case.field.as_deref() {
            problems.push(format!("field {:?}", err.field()));
        }
        for needle in &case.contains {
            if !message.contains(needle.as_str()) {
                problems.push(format!("message lacks {needle:?}"));
            }
        }
        if err.message() != message {
            problems.push("message() differs from Display".to_owned());
        }
        if !problems.is_empty() {
            failures.push(format!(
                "{}: {} (message: {message})",
                case.name,
                problems.join(", ")
            ));
        }
        // The serde entry point reports the same problem.
        let via_serde = serde_json::from_str::<Policy>(&case.text);
        assert!(via_serde.is_err(), "{}: serde accepted it", case.name);
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn built_in_policies_match_the_documented_text() {
    let default = Policy::default_key_policy(OWNER);
    assert_eq!(default, support::policy("key/default.json"));
    support::check_expect("key/default.json", &default.to_json_pretty());

    let ebs = Policy::aws_managed_ebs_key_policy(OWNER, "ap-northeast-1");
    assert_eq!(ebs, support::policy("key/aws-ebs.json"));
    support::check_expect("key/aws-ebs.json", &ebs.to_json_pretty());
    assert_eq!(ebs.id.as_deref(), Some("auto-ebs-2"));
}

#[test]
fn principal_forms() {
    let policy = support::policy("roundtrip/key-order-and-unknown-keys.json");
    let principal = policy.statements[0].principal.as_ref().unwrap();
    assert_eq!(
        principal.aws(),
        ["arn:aws:iam::222222222222:root", "333333333333"]
    );
    assert_eq!(principal.services(), ["ec2.amazonaws.com"]);
    assert_eq!(Principal::Any.aws(), ["*"]);

    let seed = support::policy("key/seed.json");
    let use_key = seed.statement_by_sid("Allow use of the key").unwrap();
    assert_eq!(
        use_key.principal.as_ref().unwrap().aws(),
        ["arn:aws:iam::222222222222:user/cross-ami-user"]
    );
    assert!(seed.statement_by_sid("nope").is_none());

    let one = Principal::from_aws(vec!["a".into()]);
    assert_eq!(
        serde_json::to_value(&one).unwrap(),
        serde_json::json!({"AWS": "a"})
    );
    let two = Principal::from_aws(vec!["a".into(), "b".into()]);
    assert_eq!(
        serde_json::to_value(&two).unwrap(),
        serde_json::json!({"AWS": ["a", "b"]})
    );
    let star: Principal = serde_json::from_str("\"*\"").unwrap();
    assert_eq!(star, Principal::Any);
    assert!(serde_json::from_str::<Principal>("\"arn:aws:iam::1:root\"").is_err());
}

#[test]
fn one_or_many_keeps_its_form() {
    let one = OneOrMany::from(vec!["kms:*".to_owned()]);
    assert_eq!(one, OneOrMany::One("kms:*".to_owned()));
    assert!(one.contains("kms:*"));
    assert_eq!(one.len(), 1);
    let many = OneOrMany::from(vec!["a".to_owned(), "b".to_owned()]);
    assert_eq!(
        many.iter().map(String::as_str).collect::<Vec<_>>(),
        ["a", "b"]
    );
    assert!(!many.contains("c"));
    let empty: OneOrMany<String> = OneOrMany::from(Vec::new());
    assert!(empty.is_empty());
    assert_eq!(
        serde_json::to_string(&OneOrMany::Many(vec!["x".to_owned()])).unwrap(),
        "[\"x\"]"
    );
    assert_eq!(
        serde_json::to_string(&OneOrMany::One("x".to_owned())).unwrap(),
        "\"x\""
    );
}

#[test]
fn edited_statements_are_rewritten_and_others_keep_their_layout() {
    let mut policy = support::policy("roundtrip/key-order-and-unknown-keys.json");
    let untouched = policy.to_json();
    policy.statements[0].effect = Effect::Deny;
    let value = policy.to_value();
    let statement = &value["Statement"][0];
    // An edited statement is written in canonical order, unknown keys last.
    let keys: Vec<&str> = statement
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    assert_eq!(
        keys,
        [
            "Sid",
            "Effect",
            "Principal",
            "Action",
            "Resource",
            "x-owner"
        ]
    );
    // Top-level layout is still the parsed one.
    let top: Vec<&str> = value
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    assert_eq!(top, ["Statement", "x-generated-by", "Version", "Id"]);
    // Undoing the edit restores the original text.
    policy.statements[0].effect = Effect::Allow;
    assert_eq!(policy.to_json(), untouched);
}

#[test]
fn single_statement_object_form_is_kept_only_for_one_statement() {
    let mut policy = support::policy("roundtrip/single-statement-object.json");
    assert!(policy.to_value()["Statement"].is_object());
    let extra = policy.statements[0].clone();
    policy.statements.push(extra);
    assert!(policy.to_value()["Statement"].is_array());
}

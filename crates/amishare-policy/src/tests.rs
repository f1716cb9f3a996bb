//! Unit tests of the matching primitives behind the evaluator.

use serde_json::{json, Value};

use crate::eval::{condition_matches, glob, parse_root_account, principal_account};
use crate::Context;

#[track_caller]
fn check_glob(pattern: &str, text: &str, expected: bool) {
    assert_eq!(glob(pattern, text), expected, "glob({pattern:?}, {text:?})");
}

#[test]
fn glob_matching() {
    let rows = [
        ("*", "", true),
        ("*", "anything", true),
        ("", "", true),
        ("", "x", false),
        ("a*", "a", true),
        ("a*c", "abbbc", true),
        ("a*c", "abbbcd", false),
        ("a?c", "abc", true),
        ("a?c", "ac", false),
        ("*b*b*", "abxbz", true),
        ("*b*b*", "abz", false),
        ("o-abc/*/ou-1/*", "o-abc/r-1/ou-1/", true),
        ("o-abc/*/ou-1/*", "o-abc/r-1/ou-2/ou-1/x/", true),
        ("o-abc/*/ou-1/*", "o-abc/r-1/ou-10", false),
        ("Key", "key", false),
        ("鍵*", "鍵ポリシー", true),
        // A `*` in the pattern is a wildcard even where the text has a `*`.
        ("a*", "a*b", true),
        ("*b", "*xb", true),
        ("a*c", "a*xc", true),
        ("a?c*", "abc*d", true),
        ("鍵*", "鍵*ポリシー", true),
        ("*", "*", true),
        ("a*", "b*", false),
    ];
    for (pattern, text, expected) in rows {
        check_glob(pattern, text, expected);
    }
}

#[test]
fn account_parsing() {
    assert_eq!(
        parse_root_account("arn:aws:iam::111111111111:root"),
        Some("111111111111")
    );
    assert_eq!(
        parse_root_account("arn:aws-cn:iam::111111111111:root"),
        Some("111111111111")
    );
    assert_eq!(
        parse_root_account("arn:aws:iam::111111111111:user/root"),
        None
    );
    assert_eq!(parse_root_account("arn:aws:iam::11111111111:root"), None);
    assert_eq!(parse_root_account("111111111111"), None);
    assert_eq!(principal_account("111111111111"), Some("111111111111"));
    assert_eq!(
        principal_account("arn:aws:sts::222222222222:assumed-role/r/s"),
        Some("222222222222")
    );
    assert_eq!(principal_account("arn:aws:iam::2222:user/x"), None);
    assert_eq!(principal_account("*"), None);
}

/// One row: operator, key, policy values, request context, expected.
struct Row {
    operator: &'static str,
    key: &'static str,
    values: Value,
    context: Context,
    expected: bool,
}

fn row(
    operator: &'static str,
    key: &'static str,
    values: Value,
    context: Context,
    expected: bool,
) -> Row {
    Row {
        operator,
        key,
        values,
        context,
        expected,
    }
}

#[test]
fn condition_operators() {
    let via = || Context::new().with("kms:ViaService", "ec2.ap-northeast-1.amazonaws.com");
    let none = Context::new;
    let ops = || {
        Context::new().with_values(
            "kms:GrantOperations",
            vec!["Decrypt".into(), "Encrypt".into()],
        )
    };
    let rows = [
        // String operators; any listed value may match (OR).
        row(
            "StringEquals",
            "kms:ViaService",
            json!("ec2.ap-northeast-1.amazonaws.com"),
            via(),
            true,
        ),
        row(
            "StringEquals",
            "KMS:VIASERVICE",
            json!("ec2.ap-northeast-1.amazonaws.com"),
            via(),
            true,
        ),
        row(
            "StringEquals",
            "kms:ViaService",
            json!(["x", "ec2.ap-northeast-1.amazonaws.com"]),
            via(),
            true,
        ),
        row(
            "StringEquals",
            "kms:ViaService",
            json!("EC2.ap-northeast-1.amazonaws.com"),
            via(),
            false,
        ),
        row(
            "StringEquals",
            "kms:ViaService",
            json!("ec2.ap-northeast-1.amazonaws.com"),
            none(),
            false,
        ),
        row(
            "StringEqualsIfExists",
            "kms:ViaService",
            json!("x"),
            none(),
            true,
        ),
        row(
            "StringEqualsIfExists",
            "kms:ViaService",
            json!("x"),
            via(),
            false,
        ),
        row("StringNotEquals", "kms:ViaService", json!("x"), via(), true),
        row(
            "StringNotEquals",
            "kms:ViaService",
            json!(["x", "ec2.ap-northeast-1.amazonaws.com"]),
            via(),
            false,
        ),
        // A negated operator is satisfied by a missing key, as in IAM.
        row(
            "StringNotEquals",
            "kms:ViaService",
            json!("x"),
            none(),
            true,
        ),
        row(
            "StringEqualsIgnoreCase",
            "kms:ViaService",
            json!("EC2.AP-NORTHEAST-1.amazonaws.com"),
            via(),
            true,
        ),
        row(
            "StringNotEqualsIgnoreCase",
            "kms:ViaService",
            json!("EC2.AP-NORTHEAST-1.amazonaws.com"),
            via(),
            false,
        ),
        row(
            "StringLike",
            "kms:ViaService",
            json!("ec2.*.amazonaws.com"),
            via(),
            true,
        ),
        row("StringLike", "kms:ViaService", json!("rds.*"), via(), false),
        row(
            "StringNotLike",
            "kms:ViaService",
            json!("rds.*"),
            via(),
            true,
        ),
        row(
            "StringNotLikeIfExists",
            "kms:ViaService",
            json!("ec2.*"),
            none(),
            true,
        ),
        // Bool: JSON true and "true" are the same; comparison ignores case.
        row(
            "Bool",
            "kms:GrantIsForAWSResource",
            json!(true),
            Context::via_ec2("r"),
            true,
        ),
        row(
            "Bool",
            "kms:GrantIsForAWSResource",
            json!("true"),
            Context::via_ec2("r"),
            true,
        ),
        row(
            "Bool",
            "kms:GrantIsForAWSResource",
            json!("TRUE"),
            Context::via_ec2("r"),
            true,
        ),
        row(
            "Bool",
            "kms:GrantIsForAWSResource",
            json!("true"),
            none(),
            false,
        ),
        row(
            "Bool",
            "kms:GrantIsForAWSResource",
            json!(false),
            none().with_bool("kms:GrantIsForAWSResource", false),
            true,
        ),
        row(
            "BoolIfExists",
            "aws:MultiFactorAuthPresent",
            json!("false"),
            none(),
            true,
        ),
        // Null: true means absent, false means present.
        row("Null", "kms:ViaService", json!("true"), none(), true),
        row("Null", "kms:ViaService", json!(true), via(), false),
        row("Null", "kms:ViaService", json!("false"), via(), true),
        row("Null", "kms:ViaService", json!(false), none(), false),
        // Numeric.
        row("NumericEquals", "n", json!(5), none().with("n", "5"), true),
        row(
            "NumericEquals",
            "n",
            json!("5.0"),
            none().with("n", "5"),
            true,
        ),
        row(
            "NumericNotEquals",
            "n",
            json!(5),
            none().with("n", "6"),
            true,
        ),
        row(
            "NumericLessThan",
            "n",
            json!(5),
            none().with("n", "4"),
            true,
        ),
        row(
            "NumericLessThan",
            "n",
            json!(5),
            none().with("n", "5"),
            false,
        ),
        row(
            "NumericLessThanEquals",
            "n",
            json!(5),
            none().with("n", "5"),
            true,
        ),
        row(
            "NumericGreaterThan",
            "n",
            json!(5),
            none().with("n", "5.5"),
            true,
        ),
        row(
            "NumericGreaterThanEquals",
            "n",
            json!(5),
            none().with("n", "4"),
            false,
        ),
        row(
            "NumericEquals",
            "n",
            json!(5),
            none().with("n", "five"),
            false,
        ),
        row("NumericEquals", "n", json!(5), none(), false),
        // Dates: ISO 8601 in the same format, or epoch seconds.
        row(
            "DateLessThan",
            "aws:CurrentTime",
            json!("2030-01-01T00:00:00Z"),
            none().with("aws:CurrentTime", "2026-08-21T10:00:00Z"),
            true,
        ),
        row(
            "DateGreaterThan",
            "aws:EpochTime",
            json!(100),
            none().with("aws:EpochTime", "99"),
            false,
        ),
        // ARNs: per-segment globs.
        row(
            "ArnLike",
            "aws:PrincipalArn",
            json!("arn:aws:iam::*:role/launch*"),
            none().with(
                "aws:PrincipalArn",
                "arn:aws:iam::222222222222:role/launcher",
            ),
            true,
        ),
        row(
            "ArnEquals",
            "aws:PrincipalArn",
            json!("arn:aws:iam::222222222222:role/launcher"),
            none().with(
                "aws:PrincipalArn",
                "arn:aws:iam::222222222222:role/launcher",
            ),
            true,
        ),
        row(
            "ArnLike",
            "aws:PrincipalArn",
            json!("arn:aws:iam::*:role/x"),
            none().with(
                "aws:PrincipalArn",
                "arn:aws:iam::222222222222:role/launcher",
            ),
            false,
        ),
        row(
            "ArnLike",
            "aws:PrincipalArn",
            json!("arn:aws:iam::*"),
            none().with("aws:PrincipalArn", "arn:aws:iam::2:root"),
            false,
        ),
        row(
            "ArnNotLike",
            "aws:PrincipalArn",
            json!("arn:aws:iam::*:role/x"),
            none().with("aws:PrincipalArn", "arn:aws:iam::2:role/y"),
            true,
        ),
        // Set operators on multi-valued keys.
        row(
            "ForAllValues:StringEquals",
            "kms:GrantOperations",
            json!(["Decrypt", "Encrypt", "DescribeKey"]),
            ops(),
            true,
        ),
        row(
            "ForAllValues:StringEquals",
            "kms:GrantOperations",
            json!(["Decrypt"]),
            ops(),
            false,
        ),
        row(
            "ForAllValues:StringEquals",
            "kms:GrantOperations",
            json!(["Decrypt"]),
            none(),
            true,
        ),
        row(
            "ForAnyValue:StringEquals",
            "kms:GrantOperations",
            json!(["Decrypt"]),
            ops(),
            true,
        ),
        row(
            "ForAnyValue:StringEquals",
            "kms:GrantOperations",
            json!(["Sign"]),
            ops(),
            false,
        ),
        row(
            "ForAnyValue:StringEquals",
            "kms:GrantOperations",
            json!(["Decrypt"]),
            none(),
            false,
        ),
        row(
            "ForAnyValue:StringNotEquals",
            "kms:GrantOperations",
            json!(["Decrypt"]),
            ops(),
            true,
        ),
        row(
            "ForAllValues:StringNotEquals",
            "kms:GrantOperations",
            json!(["Sign"]),
            ops(),
            true,
        ),
        row(
            "ForAllValues:StringNotEquals",
            "kms:GrantOperations",
            json!(["Encrypt"]),
            ops(),
            false,
        ),
        row(
            "forallvalues:stringlike",
            "kms:GrantOperations",
            json!("*crypt"),
            ops(),
            true,
        ),
        row(
            "ForAnyValue:StringEqualsIfExists",
            "kms:GrantOperations",
            json!("x"),
            none(),
            true,
        ),
        // Without a set operator a multi-valued key matches when any value does.
        row(
            "StringEquals",
            "kms:GrantOperations",
            json!("Encrypt"),
            ops(),
            true,
        ),
        row(
            "StringNotEquals",
            "kms:GrantOperations",
            json!("Encrypt"),
            ops(),
            false,
        ),
        // Operators not modelled never match.
        row(
            "IpAddress",
            "aws:SourceIp",
            json!("10.0.0.0/8"),
            none().with("aws:SourceIp", "10.0.0.1"),
            false,
        ),
        row("Bogus", "kms:ViaService", json!("x"), via(), false),
    ];
    let mut failures = Vec::new();
    for r in &rows {
        let got = condition_matches(r.operator, r.key, &r.values, &r.context);
        if got != r.expected {
            failures.push(format!(
                "{} {} {} with {:?}: got {got}",
                r.operator, r.key, r.values, r.context
            ));
        }
    }
    assert!(
        failures.is_empty(),
        "condition rows failed:\n{}",
        failures.join("\n")
    );
}

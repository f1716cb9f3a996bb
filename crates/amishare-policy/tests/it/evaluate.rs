//! The evaluator, driven by `testdata/policies/eval-cases.json`.

use std::collections::BTreeMap;

use amishare_policy::{
    action_matches, evaluate_identity, evaluate_kms, is_cross_account_action, Caller, Context,
    Decision, GrantView, Missing, Outcome, Policy, PolicySource, Request, StatementRef,
};
use serde::Deserialize;
use serde_json::Value;

use crate::support::{self, KEY_ARN, OWNER};

#[derive(Deserialize)]
struct Table {
    defaults: Defaults,
    cases: Vec<Case>,
}

#[derive(Deserialize)]
struct Defaults {
    resource: String,
    resource_account: String,
}

#[derive(Deserialize)]
struct GrantRow {
    id: String,
    grantee: String,
    operations: Vec<String>,
}

#[derive(Deserialize)]
struct Case {
    name: String,
    #[serde(default)]
    evaluator: Option<String>,
    caller: String,
    #[serde(default)]
    org_id: Option<String>,
    #[serde(default)]
    org_paths: Vec<String>,
    action: String,
    #[serde(default)]
    resource: Option<String>,
    #[serde(default)]
    resource_account: Option<String>,
    #[serde(default)]
    via_ec2: Option<String>,
    #[serde(default)]
    context: BTreeMap<String, Value>,
    #[serde(default)]
    key_policy: Option<String>,
    #[serde(default)]
    identity: Vec<String>,
    #[serde(default)]
    grants: Vec<GrantRow>,
    expect: String,
    #[serde(default)]
    missing: Vec<String>,
    #[serde(default)]
    allowed_by: Option<Vec<String>>,
    #[serde(default)]
    denied_by: Option<String>,
    #[serde(default)]
    message: Option<String>,
}

fn account_of(arn: &str) -> &str {
    arn.split(':').nth(4).expect("caller ARN has an account")
}

fn context(case: &Case) -> Context {
    let mut ctx = match &case.via_ec2 {
        Some(region) => Context::via_ec2(region),
        None => Context::new(),
    };
    for (key, value) in &case.context {
        ctx = match value {
            Value::Bool(b) => ctx.with_bool(key, *b),
            Value::String(s) => ctx.with(key, s.as_str()),
            Value::Array(items) => ctx.with_values(
                key,
                items
                    .iter()
                    .map(|v| v.as_str().unwrap().to_owned())
                    .collect(),
            ),
            other => panic!("{}: context value {other}", case.name),
        };
    }
    ctx
}

fn render_ref(r: &StatementRef) -> String {
    match &r.source {
        PolicySource::KeyPolicy => format!("key[{}]", r.index),
        PolicySource::Identity { index } => format!("identity[{index}][{}]", r.index),
        PolicySource::Grant { grant_id } => format!("grant:{grant_id}"),
    }
}

fn render_outcome(outcome: &Outcome) -> &'static str {
    match outcome {
        Outcome::Allow => "Allow",
        Outcome::ImplicitDeny => "ImplicitDeny",
        Outcome::ExplicitDeny => "ExplicitDeny",
    }
}

fn render_missing(missing: &Missing) -> &'static str {
    match missing {
        Missing::KeyPolicyAllow => "KeyPolicyAllow",
        Missing::IdentityPolicyAllow => "IdentityPolicyAllow",
        Missing::CrossAccountNotPermitted => "CrossAccountNotPermitted",
    }
}

/// Checks one row; returns the problems found.
fn run(case: &Case, defaults: &Defaults) -> Vec<String> {
    let key_policy: Option<Policy> = case.key_policy.as_deref().map(support::policy);
    let identities: Vec<Policy> = case.identity.iter().map(|p| support::policy(p)).collect();
    let identity_refs: Vec<&Policy> = identities.iter().collect();
    let grants: Vec<GrantView<'_>> = case
        .grants
        .iter()
        .map(|g| GrantView {
            grant_id: &g.id,
            grantee: &g.grantee,
            operations: &g.operations,
        })
        .collect();
    let req = Request {
        caller: Caller {
            arn: &case.caller,
            account: account_of(&case.caller),
            org_id: case.org_id.as_deref(),
            org_paths: &case.org_paths,
        },
        action: &case.action,
        resource: case.resource.as_deref().unwrap_or(&defaults.resource),
        resource_account: case
            .resource_account
            .as_deref()
            .unwrap_or(&defaults.resource_account),
        context: context(case),
    };
    let decision: Decision = match case.evaluator.as_deref() {
        Some("identity") => evaluate_identity(&req, &identity_refs),
        None => evaluate_kms(
            &req,
            key_policy.as_ref().expect("key_policy"),
            &identity_refs,
            &grants,
        ),
        Some(other) => panic!("{}: unknown evaluator {other}", case.name),
    };

    let mut problems = Vec::new();
    let outcome = render_outcome(&decision.outcome);
    if outcome != case.expect {
        problems.push(format!("outcome {outcome}, expected {}", case.expect));
    }
    let missing: Vec<&str> = decision.missing.iter().map(render_missing).collect();
    if missing != case.missing {
        problems.push(format!("missing {missing:?}, expected {:?}", case.missing));
    }
    let allowed_by: Vec<String> = decision.allowed_by.iter().map(render_ref).collect();
    match &case.allowed_by {
        Some(expected) if &allowed_by != expected => {
            problems.push(format!("allowed_by {allowed_by:?}, expected {expected:?}"))
        }
        None if !allowed_by.is_empty() => {
            problems.push(format!("allowed_by {allowed_by:?}, expected none"))
        }
        _ => {}
    }
    let denied_by = decision.denied_by.as_ref().map(render_ref);
    if denied_by != case.denied_by {
        problems.push(format!(
            "denied_by {denied_by:?}, expected {:?}",
            case.denied_by
        ));
    }
    // Invariants of every decision.
    match decision.outcome {
        Outcome::Allow => {
            if decision.denied_by.is_some()
                || !decision.missing.is_empty()
                || !decision.denial_message(&req).is_empty()
            {
                problems.push("allow with denial details".to_owned());
            }
        }
        Outcome::ImplicitDeny => {
            if decision.missing.is_empty()
                || decision.denied_by.is_some()
                || !decision.allowed_by.is_empty()
            {
                problems.push("implicit deny without exactly the missing links".to_owned());
            }
        }
        Outcome::ExplicitDeny => {
            if decision.denied_by.is_none() || !decision.allowed_by.is_empty() {
                problems.push("explicit deny without denied_by".to_owned());
            }
        }
    }
    if decision.is_allowed() != (decision.outcome == Outcome::Allow) {
        problems.push("is_allowed disagrees with outcome".to_owned());
    }
    if let Some(sid_ref) = decision
        .allowed_by
        .iter()
        .chain(&decision.denied_by)
        .find(|r| r.source == PolicySource::KeyPolicy)
    {
        let sid = key_policy
            .as_ref()
            .and_then(|p| p.statements[sid_ref.index].sid.clone());
        if sid != sid_ref.sid {
            problems.push(format!(
                "statement ref Sid {:?}, policy says {sid:?}",
                sid_ref.sid
            ));
        }
    }
    let message = decision.denial_message(&req);
    if decision.outcome != Outcome::Allow {
        let head = format!(
            "User: {} is not authorized to perform: {} on resource: {}",
            req.caller.arn, req.action, req.resource
        );
        if !message.starts_with(&head) {
            problems.push(format!("message {message:?}"));
        }
    }
    if let Some(needle) = &case.message {
        if !message.contains(needle.as_str()) {
            problems.push(format!("message {message:?} lacks {needle:?}"));
        }
    }
    problems
}

#[test]
fn evaluation_table() {
    let table: Table =
        serde_json::from_str(&support::read("eval-cases.json")).expect("eval-cases.json");
    assert!(60 <= table.cases.len());
    let mut failures = Vec::new();
    for case in &table.cases {
        let problems = run(case, &table.defaults);
        if !problems.is_empty() {
            failures.push(format!("{}:\n    {}", case.name, problems.join("\n    ")));
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {} rows failed:\n{}",
        failures.len(),
        table.cases.len(),
        failures.join("\n")
    );
}

#[test]
fn action_globs() {
    let rows = [
        ("kms:*", "kms:Decrypt", true),
        ("*", "ec2:CopyImage", true),
        ("kms:ReEncrypt*", "kms:ReEncryptFrom", true),
        ("kms:ReEncrypt*", "kms:ReEncryptTo", true),
        ("kms:reencrypt*", "KMS:REENCRYPTTO", true),
        (
            "kms:GenerateDataKey*",
            "kms:GenerateDataKeyPairWithoutPlaintext",
            true,
        ),
        ("kms:GenerateDataKey*", "kms:Generate", false),
        ("kms:Describe?ey", "kms:DescribeKey", true),
        ("kms:Decrypt", "kms:DecryptX", false),
        ("kms:*", "ec2:RunInstances", false),
        ("kms:Create*", "kms:CreateGrant", true),
    ];
    for (pattern, action, expected) in rows {
        assert_eq!(
            action_matches(pattern, action),
            expected,
            "{pattern} vs {action}"
        );
    }
}

#[test]
fn cross_account_whitelist() {
    for action in [
        "kms:Encrypt",
        "kms:Decrypt",
        "kms:ReEncryptFrom",
        "kms:ReEncryptTo",
        "kms:GenerateDataKey",
        "kms:GenerateDataKeyWithoutPlaintext",
        "kms:CreateGrant",
        "kms:DescribeKey",
        "kms:GetKeyRotationStatus",
        "kms:GetPublicKey",
        "kms:ListGrants",
        "kms:RetireGrant",
        "kms:RevokeGrant",
        "KMS:decrypt",
    ] {
        assert!(is_cross_account_action(action), "{action}");
    }
    for action in [
        "kms:GetKeyPolicy",
        "kms:PutKeyPolicy",
        "kms:ScheduleKeyDeletion",
        "kms:CreateAlias",
        "kms:ListKeys",
        "kms:DisableKey",
        "ec2:CopyImage",
        "Decrypt",
    ] {
        assert!(!is_cross_account_action(action), "{action}");
    }
}

#[test]
fn caller_names() {
    let session = Caller::new(
        "arn:aws:sts::222222222222:assumed-role/launcher/i-0abc",
        "222222222222",
    );
    assert_eq!(
        session.role_arn().as_deref(),
        Some("arn:aws:iam::222222222222:role/launcher")
    );
    assert!(!session.is_root());
    let root = Caller::new("arn:aws:iam::222222222222:root", "222222222222");
    assert!(root.is_root());
    assert_eq!(root.role_arn(), None);
    let user = Caller::new("arn:aws:iam::222222222222:user/root", "222222222222");
    assert!(!user.is_root());
    assert_eq!(user.role_arn(), None);
    let china = Caller::new(
        "arn:aws-cn:sts::222222222222:assumed-role/r/s",
        "222222222222",
    );
    assert_eq!(
        china.role_arn().as_deref(),
        Some("arn:aws-cn:iam::222222222222:role/r")
    );
}

#[test]
fn context_keys_are_case_insensitive() {
    let ctx = Context::via_ec2("ap-northeast-1")
        .with_values("kms:GrantOperations", vec!["Decrypt".into()]);
    assert_eq!(
        ctx.get("KMS:VIASERVICE"),
        Some(&["ec2.ap-northeast-1.amazonaws.com".to_owned()][..])
    );
    assert_eq!(
        ctx.get("kms:grantisforawsresource"),
        Some(&["true".to_owned()][..])
    );
    assert_eq!(ctx.get("kms:GrantOperations").map(<[String]>::len), Some(1));
    assert_eq!(ctx.get("kms:CallerAccount"), None);
}

#[test]
fn caller_derived_keys_can_be_overridden_by_the_context() {
    // kms:CallerAccount is derived from the caller unless the request sets
    // it, as when a service acts on someone's behalf.
    let policy = Policy::parse(
        r#"{"Statement": [{"Effect": "Allow", "Principal": "*", "Action": "kms:Decrypt", "Resource": "*",
            "Condition": {"StringEquals": {"kms:CallerAccount": "111111111111", "aws:PrincipalIsAWSService": "false"}}}]}"#,
    )
    .unwrap();
    let mut req = Request {
        caller: Caller::new("arn:aws:iam::111111111111:user/alice", OWNER),
        action: "kms:Decrypt",
        resource: KEY_ARN,
        resource_account: OWNER,
        context: Context::new(),
    };
    assert!(evaluate_kms(&req, &policy, &[], &[]).is_allowed());
    req.context = Context::new().with("kms:CallerAccount", "999999999999");
    assert_eq!(
        evaluate_kms(&req, &policy, &[], &[]).missing,
        [Missing::KeyPolicyAllow]
    );
}

#[test]
fn statements_without_action_or_resource_have_no_effect() {
    let policy = Policy::parse(
        r#"{"Statement": [
            {"Effect": "Allow", "Principal": "*", "Action": "kms:*"},
            {"Effect": "Allow", "Principal": "*", "Resource": "*"},
            {"Effect": "Allow", "Action": "kms:*", "Resource": "*"},
            {"Effect": "Allow", "Principal": {"Service": "ec2.amazonaws.com"}, "Action": "kms:*", "Resource": "*"}
        ]}"#,
    )
    .unwrap();
    let req = Request {
        caller: Caller::new("arn:aws:iam::111111111111:user/alice", OWNER),
        action: "kms:Decrypt",
        resource: KEY_ARN,
        resource_account: OWNER,
        context: Context::new(),
    };
    let decision = evaluate_kms(&req, &policy, &[], &[]);
    assert_eq!(decision.outcome, Outcome::ImplicitDeny);
    assert_eq!(decision.missing, [Missing::KeyPolicyAllow]);
}

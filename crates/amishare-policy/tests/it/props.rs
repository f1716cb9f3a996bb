//! Property tests: the round trip is lossless, merge/remove never harm
//! statements amishare does not own nor the owner's hold on the key, and the
//! evaluator agrees with the small evaluator in `oracle.rs`.
//!
//! Each property runs 10,000 cases (`PROPTEST_CASES` overrides that),
//! counts the kinds of case it ran, prints the mix (`--nocapture` shows it)
//! and asserts it ([`Mix`]): the evaluator properties' requests are steered
//! so that allows, implicit denies and explicit denies each make at least a
//! fifth of the cases, grants among what decides them, and the merge
//! properties bound the merges refused, where there is less to check.

use amishare_policy::{
    evaluate_identity, evaluate_identity_outcome, evaluate_kms, evaluate_kms_outcome, merge_key,
    remove, Caller, Context, GrantView, Grantee, MergeError, Narrowing, Outcome, Policy, Request,
    SID_PREFIX,
};
use proptest::prelude::*;
use proptest::test_runner::TestCaseError;
use serde_json::{json, Map, Value};

use crate::mix::Mix;
use crate::oracle::{self, Cond, Grant, Op, Set, St, Who};
use crate::support::{KEY_ARN, OWNER, OWNER_ROOT};

/// An owner-account role with `kms:*` in its IAM policy.
const OWNER_ADMIN: &str = "arn:aws:iam::111111111111:role/Admin";

/// 10,000 cases per property unless `PROPTEST_CASES` says otherwise.
fn config() -> ProptestConfig {
    let cases = std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(10_000);
    ProptestConfig::with_cases(cases)
}

fn one_or_many(item: impl Strategy<Value = String> + Clone) -> impl Strategy<Value = Value> {
    prop_oneof![
        item.clone().prop_map(Value::String),
        prop::collection::vec(item, 0..4)
            .prop_map(|items| Value::Array(items.into_iter().map(Value::String).collect())),
    ]
}

fn scalar() -> impl Strategy<Value = Value> {
    prop_oneof![
        "[a-zA-Z0-9:/*._-]{0,12}".prop_map(Value::String),
        any::<bool>().prop_map(Value::Bool),
        (-1000i64..1000).prop_map(|n| json!(n)),
        (-1.0e6f64..1.0e6).prop_map(|f| json!(f)),
    ]
}

fn arn() -> impl Strategy<Value = String> + Clone {
    prop_oneof![
        Just("arn:aws:iam::111111111111:root".to_owned()),
        Just("111111111111".to_owned()),
        Just(OWNER_ADMIN.to_owned()),
        Just("222222222222".to_owned()),
        "arn:aws:iam::(222222222222|333333333333):(user|role)/[a-z]{1,6}",
        Just("*".to_owned()),
    ]
}

fn principal() -> impl Strategy<Value = Value> {
    prop_oneof![
        Just(json!("*")),
        one_or_many(arn()).prop_map(|aws| json!({ "AWS": aws })),
        one_or_many("[a-z0-9]{1,6}\\.amazonaws\\.com").prop_map(|svc| json!({ "Service": svc })),
        (
            one_or_many("[a-z]{1,6}\\.amazonaws\\.com"),
            one_or_many(arn())
        )
            .prop_map(|(svc, aws)| json!({ "Service": svc, "AWS": aws })),
    ]
}

fn conditions() -> impl Strategy<Value = Value> {
    let operator = prop_oneof![
        Just("StringEquals".to_owned()),
        Just("StringLike".to_owned()),
        Just("Bool".to_owned()),
        Just("NumericLessThan".to_owned()),
        Just("ForAnyValue:StringLike".to_owned()),
        Just("StringNotEqualsIfExists".to_owned()),
        Just("Null".to_owned()),
    ];
    let values = prop_oneof![
        scalar(),
        prop::collection::vec(scalar(), 0..3).prop_map(Value::Array)
    ];
    let block = prop::collection::btree_map("(kms|aws|x):[A-Za-z]{1,8}", values, 1..3)
        .prop_map(|m| Value::Object(m.into_iter().collect()));
    prop::collection::btree_map(operator, block, 1..3)
        .prop_map(|m| Value::Object(m.into_iter().collect()))
}

/// Actions a Deny may name without denying kms:PutKeyPolicy to anyone.
fn safe_action() -> impl Strategy<Value = String> + Clone {
    prop_oneof![
        Just("kms:Decrypt".to_owned()),
        Just("kms:ScheduleKeyDeletion".to_owned()),
        Just("kms:Get*".to_owned()),
        Just("s3:*".to_owned()),
    ]
}

fn any_action() -> impl Strategy<Value = String> + Clone {
    prop_oneof![
        safe_action(),
        Just("kms:*".to_owned()),
        Just("*".to_owned()),
        Just("kms:ReEncrypt*".to_owned()),
        Just("kms:PutKeyPolicy".to_owned()),
        Just("kms:Put*".to_owned()),
    ]
}

/// A statement amishare does not own, as JSON with shuffled keys. With
/// `safe`, it never denies kms:PutKeyPolicy.
fn foreign_statement(safe: bool) -> impl Strategy<Value = Value> {
    let sid = prop::option::of("[A-Za-z0-9 ]{0,12}");
    let effect = prop_oneof![Just("Allow"), Just("Deny")];
    let who = prop::option::of((any::<bool>(), principal()));
    let resource = (
        any::<bool>(),
        // The key itself among them: merges are checked on the key's ARN.
        one_or_many(prop_oneof![
            Just("*".to_owned()),
            Just(KEY_ARN.to_owned()),
            "arn:aws:kms:[a-z0-9-]{1,8}:[0-9]{12}:key/[a-f0-9]{4}"
        ]),
    );
    let condition = prop::option::of(conditions());
    let extra = prop::option::of(("x-[a-z]{1,5}", scalar()));
    (
        sid,
        effect,
        who,
        any::<bool>(),
        one_or_many(any_action()),
        one_or_many(safe_action()),
        resource,
        condition,
        extra,
    )
        .prop_map(
            move |(
                sid,
                effect,
                who,
                not_action,
                actions,
                safe_actions,
                (not_resource, resources),
                condition,
                extra,
            )| {
                let mut entries: Vec<(String, Value)> = Vec::new();
                if let Some(sid) = sid {
                    entries.push(("Sid".into(), Value::String(sid)));
                }
                entries.push(("Effect".into(), json!(effect)));
                if let Some((not, p)) = who {
                    entries.push((if not { "NotPrincipal" } else { "Principal" }.into(), p));
                }
                if safe && effect == "Deny" {
                    entries.push(("Action".into(), safe_actions));
                } else {
                    entries.push((
                        if not_action { "NotAction" } else { "Action" }.into(),
                        actions,
                    ));
                }
                entries.push((
                    if not_resource {
                        "NotResource"
                    } else {
                        "Resource"
                    }
                    .into(),
                    resources,
                ));
                if let Some(condition) = condition {
                    entries.push(("Condition".into(), condition));
                }
                if let Some((key, value)) = extra {
                    entries.push((key, value));
                }
                entries
            },
        )
        .prop_shuffle()
        .prop_map(|entries| Value::Object(entries.into_iter().collect()))
}

/// A policy document as JSON. With `root`, it starts with the owner root's
/// `kms:*`; with `safe`, no statement denies kms:PutKeyPolicy, so (with
/// `root`) merges pass the lockout check.
fn policy_value(safe: bool, root: bool) -> impl Strategy<Value = Value> {
    let owner_root = json!({"Sid": "Enable IAM User Permissions", "Effect": "Allow",
        "Principal": {"AWS": OWNER_ROOT}, "Action": "kms:*", "Resource": "*"});
    let statements = prop::collection::vec(foreign_statement(safe), 0..5);
    let version = prop::option::of(prop_oneof![Just("2012-10-17"), Just("2008-10-17")]);
    let id = prop::option::of("[a-z0-9-]{1,12}");
    let extra = prop::option::of(("x-[a-z]{1,5}", scalar()));
    (statements, any::<bool>(), version, id, extra)
        .prop_map(move |(mut statements, object_form, version, id, extra)| {
            if root {
                statements.insert(0, owner_root.clone());
            }
            let statement = match (object_form, statements.len()) {
                (true, 1) => statements.pop().unwrap_or(Value::Null),
                _ => Value::Array(statements),
            };
            let mut entries: Vec<(String, Value)> = vec![("Statement".into(), statement)];
            if let Some(v) = version {
                entries.push(("Version".into(), json!(v)));
            }
            if let Some(id) = id {
                entries.push(("Id".into(), json!(id)));
            }
            if let Some((key, value)) = extra {
                entries.push((key, value));
            }
            entries
        })
        .prop_shuffle()
        .prop_map(|entries| Value::Object(entries.into_iter().collect::<Map<_, _>>()))
}

fn grantee() -> impl Strategy<Value = Grantee> {
    prop_oneof![
        4 => "arn:aws:iam::(222222222222|333333333333|444444444444):(root|user/u[12]|role/r[12])".prop_map(Grantee::Principal),
        1 => "(222222222222|444444444444)".prop_map(Grantee::Principal),
        1 => "o-(abc1234567|def7654321)".prop_map(|org_id| Grantee::Organization { org_id }),
        1 => ("o-abc1234567", "ou-ab12-(1111|2222)")
            .prop_map(|(org_id, ou_id)| Grantee::OrganizationalUnit { org_id: org_id.to_owned(), ou_id }),
    ]
}

fn narrowing() -> impl Strategy<Value = Narrowing> {
    (
        prop::option::of(prop_oneof![Just("ap-northeast-1"), Just("us-east-1")]),
        any::<bool>(),
    )
        .prop_map(|(region, caller_account)| Narrowing {
            via_service_region: region.map(str::to_owned),
            caller_account,
            service_roles: Vec::new(),
        })
}

/// The statements not owned by amishare, as compact JSON, in order.
fn foreign(policy: &Policy) -> Vec<String> {
    let value = policy.to_value();
    let statements = match &value["Statement"] {
        Value::Array(items) => items.clone(),
        other => vec![other.clone()],
    };
    statements
        .into_iter()
        .filter(|st| {
            !st["Sid"]
                .as_str()
                .is_some_and(|sid| sid.starts_with(SID_PREFIX))
        })
        .map(|st| st.to_string())
        .collect()
}

fn normalised(grantee: &Grantee) -> Grantee {
    match grantee {
        Grantee::Principal(id) if id.len() == 12 => {
            Grantee::Principal(format!("arn:aws:iam::{id}:root"))
        }
        other => other.clone(),
    }
}

/// A statement under one of the Sids amishare writes that amishare did not
/// write: it may be all that lets the owner manage the key.
fn impostor() -> impl Strategy<Value = Value> {
    let sid = prop_oneof![
        Just("amishare: Allow use of the key"),
        Just("amishare: Allow attachment of persistent resources"),
        Just("amishare: Allow use of the key (caller account)"),
        Just("amishare: Allow use of the key (via ec2.us-east-1.amazonaws.com)"),
    ];
    let who = one_or_many(prop_oneof![
        Just(OWNER_ROOT.to_owned()),
        Just(OWNER_ADMIN.to_owned()),
        Just("arn:aws:iam::222222222222:root".to_owned()),
    ]);
    let action = prop_oneof![
        Just(json!("kms:*")),
        Just(json!(["kms:Decrypt", "kms:PutKeyPolicy"]))
    ];
    (sid, who, action).prop_map(|(sid, who, action)| {
        json!({"Sid": sid, "Effect": "Allow", "Principal": {"AWS": who}, "Action": action, "Resource": "*"})
    })
}

/// A key policy a merge may meet, one of three kinds in the proportions
/// `weights`: led by the owner root's statement, with Deny statements that
/// never name kms:PutKeyPolicy; the same with Deny statements that may; or
/// without the owner root's statement. In `impostors` of them (a fraction),
/// an [`impostor`] too.
fn key_policy(impostors: f64, weights: [u32; 3]) -> impl Strategy<Value = Policy> {
    let [safe, unsafe_, rootless] = weights;
    let value = prop_oneof![
        safe => policy_value(true, true),
        unsafe_ => policy_value(false, true),
        rootless => policy_value(false, false),
    ];
    let impostor = if impostors > 0.0 {
        prop::option::weighted(impostors, (impostor(), any::<prop::sample::Index>())).boxed()
    } else {
        Just(None).boxed()
    };
    (value, impostor).prop_map(|(mut value, impostor)| {
        if let Some((impostor, at)) = impostor {
            let statements = match value["Statement"].take() {
                Value::Array(items) => items,
                one => vec![one],
            };
            let mut statements = statements;
            statements.insert(at.index(statements.len() + 1), impostor);
            value["Statement"] = Value::Array(statements);
        }
        Policy::parse(&value.to_string()).unwrap()
    })
}

/// Whether `who` (the owner root, or [`OWNER_ADMIN`] with `kms:*` in IAM)
/// may call kms:PutKeyPolicy on the key, as the evaluator decides.
fn may_put_key_policy(policy: &Policy, who: &str) -> bool {
    let iam = Policy::parse(r#"{"Statement":{"Effect":"Allow","Action":"kms:*","Resource":"*"}}"#)
        .unwrap();
    let identity: Vec<&Policy> = if who == OWNER_ADMIN {
        vec![&iam]
    } else {
        Vec::new()
    };
    let req = Request {
        caller: Caller::new(who, OWNER),
        action: "kms:PutKeyPolicy",
        resource: KEY_ARN,
        resource_account: OWNER,
        context: Context::new(),
    };
    evaluate_kms_outcome(&req, policy, &identity, &[]) == Outcome::Allow
}

// ---------------------------------------------------------- oracle inputs

const KMS_ACTIONS: [&str; 8] = [
    "kms:Decrypt",
    "kms:Encrypt",
    "kms:CreateGrant",
    "kms:DescribeKey",
    "kms:GenerateDataKeyWithoutPlaintext",
    "kms:ReEncryptFrom",
    "kms:PutKeyPolicy",
    "kms:ScheduleKeyDeletion",
];

const EC2_ACTIONS: [&str; 3] = ["ec2:RunInstances", "ec2:CopyImage", "ec2:DescribeImages"];

fn pick(items: &'static [&'static str]) -> impl Strategy<Value = String> + Clone {
    prop::sample::select(items).prop_map(str::to_owned)
}

/// Callers from the key's account and two others: root, a user, a role.
fn who() -> impl Strategy<Value = Who> {
    (
        pick(&["111111111111", "222222222222", "333333333333"]),
        pick(&["root", "user/alice", "role/Admin"]),
    )
        .prop_map(|(account, name)| Who {
            arn: format!("arn:aws:iam::{account}:{name}"),
            account,
        })
}

fn principal_entry() -> impl Strategy<Value = String> + Clone {
    pick(&[
        "*",
        "111111111111",
        "222222222222",
        "arn:aws:iam::111111111111:root",
        "arn:aws:iam::222222222222:root",
        "arn:aws:iam::111111111111:user/alice",
        "arn:aws:iam::111111111111:role/Admin",
        "arn:aws:iam::222222222222:user/alice",
        "arn:aws:iam::222222222222:role/Admin",
        "arn:aws:iam::333333333333:role/Admin",
    ])
}

fn action_pattern() -> impl Strategy<Value = String> + Clone {
    pick(&[
        "*",
        "kms:*",
        "kms:Decrypt",
        "KMS:decrypt",
        "kms:De*",
        "kms:*Key*",
        "kms:Re?ncrypt*",
        "kms:GenerateDataKey*",
        "kms:?ncrypt",
        "kms:CreateGrant",
        "kms:*Grant",
        "kms:PutKeyPolicy",
        "kms:Put*",
        "kms:Describe*",
        "ec2:*",
        "ec2:RunInstances",
        "ec2:*Image*",
        "EC2:copyimage",
    ])
}

const EC2_RESOURCE: &str = "arn:aws:ec2:ap-northeast-1::image/ami-0123456789abcdef0";

fn resource_pattern() -> impl Strategy<Value = String> + Clone {
    pick(&[
        "*",
        KEY_ARN,
        "arn:aws:kms:*",
        "arn:aws:kms:ap-northeast-1:111111111111:key/*",
        "arn:aws:kms:*:222222222222:key/*",
        "arn:aws:kms:??-northeast-1:*",
        "arn:aws:kms:ap-northeast-1:111111111111:key/1234ABCD*",
        "arn:aws:ec2:*::image/*",
        EC2_RESOURCE,
        "arn:aws:ec2:us-east-1::image/*",
    ])
}

/// Condition keys (in the case the policy writes them), the values a policy
/// compares them with, and whether a request may give several values.
const CONDITION_KEYS: [(&str, &[&str], bool); 7] = [
    (
        "kms:ViaService",
        &[
            "ec2.ap-northeast-1.amazonaws.com",
            "ec2.us-east-1.amazonaws.com",
            "ec2.*.amazonaws.com",
            "EC2.ap-northeast-1.amazonaws.com",
            "ec2.??-northeast-1.amazonaws.com",
            "*",
        ],
        false,
    ),
    (
        "KMS:viaservice",
        &["ec2.ap-northeast-1.amazonaws.com", "ec2.*"],
        false,
    ),
    (
        "kms:GrantIsForAWSResource",
        &["true", "false", "True", "TRUE", "yes"],
        false,
    ),
    (
        "kms:CallerAccount",
        &["111111111111", "222222222222", "2222*", "*"],
        false,
    ),
    (
        "aws:PrincipalArn",
        &[
            "arn:aws:iam::222222222222:user/alice",
            "arn:aws:iam::*:role/*",
            "arn:aws:iam::111111111111:*",
            "arn:aws:iam::222222222222:root",
            "arn:aws:iam::*:user/?lice",
            "arn:aws:iam::*",
            "*",
        ],
        false,
    ),
    (
        "x:Tags",
        &["a", "b", "ab", "a*", "*b", "a*b", "?", "*"],
        true,
    ),
    ("x:Absent", &["a", "*"], false),
];

fn condition() -> impl Strategy<Value = Cond> {
    let set = prop_oneof![
        3 => Just(Set::Single),
        1 => Just(Set::ForAnyValue),
        1 => Just(Set::ForAllValues),
    ];
    let op = prop::sample::select(vec![
        Op::StringEquals,
        Op::StringNotEquals,
        Op::StringLike,
        Op::Bool,
        Op::ArnLike,
    ]);
    let key = (0..CONDITION_KEYS.len()).prop_flat_map(|at| {
        let (key, values, multi) = CONDITION_KEYS[at];
        (
            Just(key),
            prop::collection::vec(pick(values), 1..3),
            Just(multi),
        )
    });
    (set, op, any::<bool>(), key).prop_map(|(set, op, if_exists, (key, mut values, multi))| {
        // ArnLike compares six colon-separated parts; AWS does not say what
        // a bare "*" does, so the subset spells it out.
        if op == Op::ArnLike {
            for value in values.iter_mut().filter(|v| *v == "*") {
                *value = "arn:*:*:*:*:*".to_owned();
            }
        }
        Cond {
            // A key with several values only under a set operator: a
            // single-valued operator over several values is outside the subset.
            set: if multi && set == Set::Single {
                Set::ForAnyValue
            } else {
                set
            },
            op,
            if_exists,
            key: key.to_owned(),
            values,
        }
    })
}

/// The first of each operator and key: a JSON object has one entry per
/// operator and key.
fn distinct(conds: Vec<Cond>) -> Vec<Cond> {
    let mut seen = Vec::new();
    conds
        .into_iter()
        .filter(|c| {
            let id = (c.set, c.op, c.if_exists, c.key.clone());
            let fresh = !seen.contains(&id);
            seen.push(id);
            fresh
        })
        .collect()
}

/// A statement of the oracle's subset; with `key_policy`, with a Principal.
fn oracle_statement(key_policy: bool) -> impl Strategy<Value = St> {
    let principal = if key_policy {
        prop::collection::vec(principal_entry(), 1..3)
            .prop_map(Some)
            .boxed()
    } else {
        Just(None).boxed()
    };
    (
        prop::bool::weighted(0.25),
        principal,
        prop::bool::weighted(0.2),
        prop::collection::vec(action_pattern(), 1..3),
        prop::bool::weighted(0.2),
        prop::collection::vec(resource_pattern(), 1..3),
        prop::collection::vec(condition(), 0..3),
    )
        .prop_map(
            |(deny, principal, not_action, actions, not_resource, resources, conds)| {
                let conds = distinct(conds);
                St {
                    deny,
                    principal,
                    not_action,
                    actions,
                    not_resource,
                    resources,
                    conds,
                }
            },
        )
}

/// A request context: the keys EC2 sets, and a multi-valued one.
fn context() -> impl Strategy<Value = Vec<(String, Vec<String>)>> {
    let via = prop::option::of(pick(&[
        "ec2.ap-northeast-1.amazonaws.com",
        "ec2.us-east-1.amazonaws.com",
        "EC2.ap-northeast-1.amazonaws.com",
    ]));
    let grant = prop::option::of(pick(&["true", "false", "True"]));
    let tags = prop::option::of(prop::collection::vec(
        pick(&["a", "b", "ab", "a*b", "*", "ba"]),
        1..4,
    ));
    (via, grant, tags).prop_map(|(via, grant, tags)| {
        let mut context = Vec::new();
        if let Some(via) = via {
            context.push(("kms:ViaService".to_owned(), vec![via]));
        }
        if let Some(grant) = grant {
            context.push(("kms:GrantIsForAWSResource".to_owned(), vec![grant]));
        }
        if let Some(tags) = tags {
            context.push(("x:Tags".to_owned(), tags));
        }
        context
    })
}

/// The statements as a policy document.
fn document(statements: &[St]) -> String {
    let statements: Vec<Value> = statements.iter().map(statement_json).collect();
    json!({ "Version": "2012-10-17", "Statement": statements }).to_string()
}

fn statement_json(st: &St) -> Value {
    let mut out = Map::new();
    out.insert(
        "Effect".into(),
        json!(if st.deny { "Deny" } else { "Allow" }),
    );
    if let Some(entries) = &st.principal {
        // `"*"` alone in its short form, one entry as a string.
        let principal = match entries.as_slice() {
            [star] if star == "*" => json!("*"),
            [one] => json!({ "AWS": one }),
            many => json!({ "AWS": many }),
        };
        out.insert("Principal".into(), principal);
    }
    let action = if st.not_action { "NotAction" } else { "Action" };
    out.insert(action.into(), one_or_list(&st.actions));
    let resource = if st.not_resource {
        "NotResource"
    } else {
        "Resource"
    };
    out.insert(resource.into(), one_or_list(&st.resources));
    let mut blocks: Map<String, Value> = Map::new();
    for cond in &st.conds {
        let set = match cond.set {
            Set::Single => "",
            Set::ForAnyValue => "ForAnyValue:",
            Set::ForAllValues => "ForAllValues:",
        };
        let suffix = if cond.if_exists { "IfExists" } else { "" };
        let operator = format!("{set}{:?}{suffix}", cond.op);
        let block = blocks.entry(operator).or_insert_with(|| json!({}));
        block[cond.key.as_str()] = one_or_list(&cond.values);
    }
    if !blocks.is_empty() {
        out.insert("Condition".into(), Value::Object(blocks));
    }
    Value::Object(out)
}

fn one_or_list(items: &[String]) -> Value {
    match items {
        [one] => json!(one),
        many => json!(many),
    }
}

fn to_context(pairs: &[(String, Vec<String>)]) -> Context {
    pairs.iter().fold(Context::new(), |ctx, (key, values)| {
        ctx.with_values(key, values.clone())
    })
}

fn parse(statements: &[St]) -> Policy {
    let text = document(statements);
    Policy::parse(&text).unwrap_or_else(|err| panic!("{text}: {err}"))
}

// ------------------------------------------------ requests and their cases

/// Operations a grant may list (KMS API Reference, `CreateGrant`,
/// `Operations`), among them every grant operation of [`KMS_ACTIONS`];
/// `PutKeyPolicy` and `ScheduleKeyDeletion` are not grant operations.
const GRANT_OPERATIONS: [&str; 10] = [
    "Decrypt",
    "Encrypt",
    "CreateGrant",
    "DescribeKey",
    "GenerateDataKeyWithoutPlaintext",
    "ReEncryptFrom",
    "ReEncryptTo",
    "GenerateDataKey",
    "RetireGrant",
    "Sign",
];

/// Principals a grant may name: the callers [`who`] draws from.
const GRANTEES: [&str; 9] = [
    "arn:aws:iam::111111111111:root",
    "arn:aws:iam::111111111111:user/alice",
    "arn:aws:iam::111111111111:role/Admin",
    "arn:aws:iam::222222222222:root",
    "arn:aws:iam::222222222222:user/alice",
    "arn:aws:iam::222222222222:role/Admin",
    "arn:aws:iam::333333333333:root",
    "arn:aws:iam::333333333333:user/alice",
    "arn:aws:iam::333333333333:role/Admin",
];

fn grant() -> impl Strategy<Value = Grant> {
    (
        pick(&GRANTEES),
        prop::collection::vec(pick(&GRANT_OPERATIONS), 1..4),
    )
        .prop_map(|(grantee, operations)| Grant {
            grantee,
            operations,
        })
}

/// What a case is steered towards. The generator adds statements (or a
/// grant) meant to decide the request that way, among random ones; the
/// outcome is whatever the oracle decides, and each property counts it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Intent {
    /// A key-policy and an IAM allow for the request, or a grant for it.
    Allow,
    /// A deny for the request.
    Deny,
    /// Random statements only.
    Neither,
}

fn intent(allow: u32, deny: u32, neither: u32) -> impl Strategy<Value = Intent> {
    prop_oneof![
        allow => Just(Intent::Allow),
        deny => Just(Intent::Deny),
        neither => Just(Intent::Neither),
    ]
}

/// How a statement aimed at a request names it: which of the principal,
/// action and resource patterns that match the request it uses, whether it
/// names the action by a `NotAction` that leaves it out, and conditions of
/// its own, which may or may not hold.
#[derive(Debug, Clone)]
struct Aim {
    principal: prop::sample::Index,
    action: prop::sample::Index,
    resource: prop::sample::Index,
    not_action: bool,
    conds: Vec<Cond>,
}

fn aim() -> impl Strategy<Value = Aim> {
    (
        any::<prop::sample::Index>(),
        any::<prop::sample::Index>(),
        any::<prop::sample::Index>(),
        prop::bool::weighted(0.15),
        prop::option::weighted(0.3, prop::collection::vec(condition(), 1..3)),
    )
        .prop_map(|(principal, action, resource, not_action, conds)| Aim {
            principal,
            action,
            resource,
            not_action,
            conds: distinct(conds.unwrap_or_default()),
        })
}

/// Principal entries that cover `who`: its ARN, everyone, or its account by
/// ID or root ARN (which delegates to the account's IAM policies).
fn covering(who: &Who) -> [String; 4] {
    [
        who.arn.clone(),
        "*".to_owned(),
        who.account.clone(),
        format!("arn:aws:iam::{}:root", who.account),
    ]
}

/// Action patterns that match `action`: itself, in capitals, its service's
/// `*`, `*`, a prefix with `*`, and one letter as `?`.
fn matching_actions(action: &str) -> [String; 6] {
    let (service, name) = action.split_once(':').expect("service:action");
    let half = &name[..name.len() / 2];
    [
        action.to_owned(),
        action.to_uppercase(),
        format!("{service}:*"),
        "*".to_owned(),
        format!("{service}:{half}*"),
        format!("{service}:?{}", &name[1..]),
    ]
}

/// Resource patterns that match `resource`: itself, `*` and a prefix with `*`.
fn matching_resources(resource: &str) -> [String; 3] {
    [
        resource.to_owned(),
        "*".to_owned(),
        format!("{}*", &resource[..resource.len() / 2]),
    ]
}

/// A statement aimed at `action` on `resource` (by `who`, in a key policy).
fn aimed(aim: &Aim, deny: bool, who: Option<&Who>, action: &str, resource: &str) -> St {
    let principal = who.map(|who| vec![aim.principal.get(&covering(who)).clone()]);
    let actions = if aim.not_action {
        vec!["s3:*".to_owned()]
    } else {
        vec![aim.action.get(&matching_actions(action)).clone()]
    };
    St {
        deny,
        principal,
        not_action: aim.not_action,
        actions,
        not_resource: false,
        resources: vec![aim.resource.get(&matching_resources(resource)).clone()],
        conds: aim.conds.clone(),
    }
}

/// Puts `statement` into one of `policies` (a new one when there is none).
fn insert_into(policies: &mut Vec<Vec<St>>, at: prop::sample::Index, statement: St) {
    if policies.is_empty() {
        policies.push(Vec::new());
    }
    let policy = at.get_mut(policies);
    let place = at.index(policy.len() + 1);
    policy.insert(place, statement);
}

/// A KMS request on [`KEY_ARN`] with the key policy, the caller's IAM
/// policies and the key's grants that decide it.
#[derive(Debug, Clone)]
struct KmsCase {
    who: Who,
    action: String,
    context: Vec<(String, Vec<String>)>,
    key_policy: Vec<St>,
    identity: Vec<Vec<St>>,
    grants: Vec<Grant>,
}

fn kms_case() -> impl Strategy<Value = KmsCase> {
    let random = (
        prop::collection::vec(oracle_statement(true), 0..4),
        prop::collection::vec(prop::collection::vec(oracle_statement(false), 0..3), 0..3),
        prop::collection::vec(grant(), 0..3),
    );
    let request = (who(), pick(&KMS_ACTIONS), context());
    let steering = (
        intent(2, 2, 1),
        aim(),
        aim(),
        any::<prop::sample::Index>(),
        any::<bool>(),
    );
    (random, request, steering).prop_map(
        |(
            (mut key_policy, mut identity, mut grants),
            (who, action, context),
            (intent, on_key, on_iam, at, choice),
        )| {
            match intent {
                // Through the policies, or through a grant when the action
                // is a grant operation.
                Intent::Allow
                    if choice && GRANT_OPERATIONS.contains(&action.trim_start_matches("kms:")) =>
                {
                    let operation = action.trim_start_matches("kms:").to_owned();
                    let grantee = on_key
                        .principal
                        .get(&[
                            who.arn.clone(),
                            format!("arn:aws:iam::{}:root", who.account),
                        ])
                        .clone();
                    let place = at.index(grants.len() + 1);
                    grants.insert(
                        place,
                        Grant {
                            grantee,
                            operations: vec![operation],
                        },
                    );
                }
                Intent::Allow => {
                    key_policy.insert(
                        at.index(key_policy.len() + 1),
                        aimed(&on_key, false, Some(&who), &action, KEY_ARN),
                    );
                    insert_into(
                        &mut identity,
                        at,
                        aimed(&on_iam, false, None, &action, KEY_ARN),
                    );
                }
                // In the key policy, or in an IAM policy.
                Intent::Deny if choice => {
                    key_policy.insert(
                        at.index(key_policy.len() + 1),
                        aimed(&on_key, true, Some(&who), &action, KEY_ARN),
                    );
                }
                Intent::Deny => insert_into(
                    &mut identity,
                    at,
                    aimed(&on_iam, true, None, &action, KEY_ARN),
                ),
                Intent::Neither => {}
            }
            KmsCase {
                who,
                action,
                context,
                key_policy,
                identity,
                grants,
            }
        },
    )
}

/// A request without a resource policy, with the caller's IAM policies.
#[derive(Debug, Clone)]
struct IdentityCase {
    who: Who,
    action: String,
    resource: &'static str,
    context: Vec<(String, Vec<String>)>,
    identity: Vec<Vec<St>>,
}

fn identity_case() -> impl Strategy<Value = IdentityCase> {
    let random = prop::collection::vec(prop::collection::vec(oracle_statement(false), 0..4), 0..3);
    let request = (
        who(),
        prop_oneof![pick(&EC2_ACTIONS), pick(&KMS_ACTIONS)],
        prop_oneof![Just("*"), Just(EC2_RESOURCE), Just(KEY_ARN)],
        context(),
    );
    (
        random,
        request,
        intent(1, 1, 1),
        aim(),
        any::<prop::sample::Index>(),
    )
        .prop_map(
            |(mut identity, (who, action, resource, context), intent, on_iam, at)| {
                if intent != Intent::Neither {
                    let deny = intent == Intent::Deny;
                    insert_into(
                        &mut identity,
                        at,
                        aimed(&on_iam, deny, None, &action, resource),
                    );
                }
                IdentityCase {
                    who,
                    action,
                    resource,
                    context,
                    identity,
                }
            },
        )
}

#[test]
fn round_trip_is_lossless() {
    let mix = Mix::new(
        "round_trip_is_lossless",
        &["no statement", "one statement", "several statements"],
    );
    proptest!(config(), |(value in policy_value(false, false))| {
        let text = value.to_string();
        let policy = Policy::parse(&text).unwrap();
        prop_assert_eq!(policy.to_value(), value.clone());
        prop_assert_eq!(policy.to_json(), text);
        prop_assert_eq!(policy.to_json_pretty(), serde_json::to_string_pretty(&value).unwrap());
        mix.count(match policy.statements.len() {
            0 => "no statement",
            1 => "one statement",
            _ => "several statements",
        });
    });
    mix.check(&[
        ("no statement", 0.1, 1.0),
        ("one statement", 0.1, 1.0),
        ("several statements", 0.1, 1.0),
    ]);
}

/// A merge refused only because it would lock `owner_caller` out: the one
/// refusal the generators leave possible.
fn refused_for_lockout(error: &MergeError, owner_caller: &str) -> Result<(), TestCaseError> {
    match error {
        MergeError::Lockout { principal } if principal == owner_caller => Ok(()),
        other => Err(TestCaseError::fail(format!("refused: {other}"))),
    }
}

#[test]
fn merge_keeps_foreign_statements_and_is_idempotent() {
    let mix = Mix::new(
        "merge_keeps_foreign_statements_and_is_idempotent",
        &["merged", "unchanged", "refused"],
    );
    proptest!(config(), |(
        policy in key_policy(0.4, [12, 2, 1]),
        grantees in prop::collection::vec(grantee(), 1..5),
        narrowing in narrowing(),
        owner_caller in prop_oneof![Just(OWNER_ROOT), Just(OWNER_ADMIN)],
    )| {
        let once = match merge_key(&policy, &grantees, &narrowing, OWNER, owner_caller, Some(KEY_ARN)) {
            Ok(once) => once,
            Err(error) => {
                mix.count("refused");
                return refused_for_lockout(&error, owner_caller);
            }
        };
        mix.count(if once.changed { "merged" } else { "unchanged" });
        prop_assert_eq!(foreign(&once.policy), foreign(&policy));
        // Every statement that is not amishare's keeps its place, byte for byte.
        for (index, st) in policy.statements.iter().enumerate() {
            if !st.sid.as_deref().is_some_and(|sid| sid.starts_with(SID_PREFIX)) {
                prop_assert_eq!(&once.policy.statements[index], st);
            }
        }
        let twice = merge_key(&once.policy, &grantees, &narrowing, OWNER, owner_caller, Some(KEY_ARN)).unwrap();
        prop_assert!(!twice.changed);
        prop_assert_eq!(twice.policy.to_json(), once.policy.to_json());
    });
    mix.check(&[("merged", 0.9, 1.0), ("refused", 0.0, 0.1)]);
}

#[test]
fn merge_of_a_safe_policy_appends_and_keeps_the_text() {
    let mix = Mix::new(
        "merge_of_a_safe_policy_appends_and_keeps_the_text",
        &["text kept as a prefix", "no statement list"],
    );
    proptest!(config(), |(
        value in policy_value(true, true),
        grantees in prop::collection::vec(grantee(), 1..5),
        narrowing in narrowing(),
    )| {
        let policy = Policy::parse(&value.to_string()).unwrap();
        let once = merge_key(&policy, &grantees, &narrowing, OWNER, OWNER_ROOT, Some(KEY_ARN)).unwrap();
        prop_assert!(once.changed);
        let n = policy.statements.len();
        prop_assert_eq!(&once.policy.statements[..n], &policy.statements[..]);
        prop_assert!(once.policy.statements[n..].iter().all(|st| st.sid.as_deref().unwrap().starts_with(SID_PREFIX)));
        // The original text survives as a prefix of the statement list.
        let original = policy.to_json();
        let merged_text = once.policy.to_json();
        if let (Some(Value::Array(_)), true) = (value.get("Statement"), n > 0) {
            let statements_text = serde_json::to_string(&value["Statement"]).unwrap();
            let prefix = statements_text.trim_end_matches(']');
            prop_assert!(merged_text.contains(prefix), "{} not in {}", prefix, merged_text);
            mix.count("text kept as a prefix");
        } else {
            mix.count("no statement list");
        }
        prop_assert_eq!(policy.to_json(), original);
    });
    mix.check(&[("text kept as a prefix", 0.8, 1.0)]);
}

#[test]
fn merge_never_takes_put_key_policy_from_the_owner() {
    let mix = Mix::new(
        "merge_never_takes_put_key_policy_from_the_owner",
        &[
            "kept",
            "refused, held before",
            "refused, not held before",
            "unchanged",
        ],
    );
    proptest!(config(), |(
        policy in key_policy(0.6, [2, 2, 3]),
        grantees in prop::collection::vec(grantee(), 1..5),
        narrowing in narrowing(),
        owner_caller in prop_oneof![Just(OWNER_ROOT), Just(OWNER_ADMIN)],
    )| {
        let before = may_put_key_policy(&policy, owner_caller);
        match merge_key(&policy, &grantees, &narrowing, OWNER, owner_caller, Some(KEY_ARN)) {
            Ok(merged) if !merged.changed => mix.count("unchanged"),
            // A merge that goes through keeps what the owner had, and never
            // gives the owner kms:PutKeyPolicy: the owner had it.
            Ok(merged) => {
                mix.count("kept");
                prop_assert!(
                    before && may_put_key_policy(&merged.policy, owner_caller),
                    "{} (before: {}) lacks kms:PutKeyPolicy:\n{}\n->\n{}",
                    owner_caller, before, policy.to_json(), merged.policy.to_json()
                );
            }
            Err(error) => {
                mix.count(if before { "refused, held before" } else { "refused, not held before" });
                refused_for_lockout(&error, owner_caller)?;
            }
        }
    });
    mix.check(&[
        ("kept", 0.6, 1.0),
        ("refused, held before", 0.01, 0.2),
        ("refused, not held before", 0.05, 0.4),
    ]);
}

#[test]
fn remove_after_merge_restores_the_original() {
    let mix = Mix::new(
        "remove_after_merge_restores_the_original",
        &["restored", "refused", "restored, nothing fresh"],
    );
    proptest!(config(), |(
        policy in key_policy(0.0, [12, 2, 1]),
        earlier in prop::collection::vec(grantee(), 0..4),
        grantees in prop::collection::vec(grantee(), 1..5),
        narrowing in narrowing(),
    )| {
        // Without amishare statements for these grantees beforehand.
        let merged = match merge_key(&policy, &grantees, &narrowing, OWNER, OWNER_ROOT, Some(KEY_ARN)) {
            Ok(merged) => merged,
            Err(error) => {
                mix.count("refused");
                return refused_for_lockout(&error, OWNER_ROOT);
            }
        };
        let restored = remove(&merged.policy, &grantees, &narrowing);
        prop_assert!(restored.changed);
        prop_assert_eq!(restored.policy.to_json(), policy.to_json());
        prop_assert_eq!(&restored.policy, &policy);

        // With amishare statements for other grantees already present.
        let base = merge_key(&policy, &earlier, &narrowing, OWNER, OWNER_ROOT, Some(KEY_ARN)).unwrap().policy;
        let taken: Vec<Grantee> = earlier.iter().map(normalised).collect();
        let fresh: Vec<Grantee> = grantees.iter().filter(|g| !taken.contains(&normalised(g))).cloned().collect();
        let shared = merge_key(&base, &fresh, &narrowing, OWNER, OWNER_ROOT, Some(KEY_ARN)).unwrap();
        let back = remove(&shared.policy, &fresh, &narrowing);
        prop_assert_eq!(back.changed, shared.changed);
        prop_assert_eq!(back.policy.to_json(), base.to_json());
        mix.count(if shared.changed { "restored" } else { "restored, nothing fresh" });
    });
    mix.check(&[("refused", 0.0, 0.1)]);
}

/// The kinds of outcome an evaluator property counts.
const OUTCOMES: [&str; 3] = ["allow", "implicit deny", "explicit deny"];

/// The evaluator properties' bounds: every outcome is common.
const EACH_OUTCOME_AT_LEAST_A_FIFTH: [(&str, f64, f64); 3] = [
    ("allow", 0.2, 1.0),
    ("implicit deny", 0.2, 1.0),
    ("explicit deny", 0.2, 1.0),
];

fn outcome_kind(outcome: &Outcome) -> &'static str {
    match outcome {
        Outcome::Allow => OUTCOMES[0],
        Outcome::ImplicitDeny => OUTCOMES[1],
        Outcome::ExplicitDeny => OUTCOMES[2],
    }
}

#[test]
fn kms_evaluation_agrees_with_the_oracle() {
    let mix = Mix::new("kms_evaluation_agrees_with_the_oracle", &OUTCOMES);
    let grants = Mix::new(
        "kms_evaluation_agrees_with_the_oracle, grants",
        &[
            "no grant",
            "grants, none for the request",
            "a grant decides",
            "a grant, and the policies allow",
            "a grant for the request, denied",
        ],
    );
    proptest!(config(), |(case in kms_case())| {
        let KmsCase { who, action, context, key_policy: key_statements, identity, grants: grant_list } = &case;
        let key_policy = parse(key_statements);
        let identity_policies: Vec<Policy> = identity.iter().map(|sts| parse(sts)).collect();
        let identity_refs: Vec<&Policy> = identity_policies.iter().collect();
        let identity_statements: Vec<St> = identity.concat();
        let ids: Vec<String> = (0..grant_list.len()).map(|n| format!("grant-{n}")).collect();
        let views: Vec<GrantView<'_>> = grant_list
            .iter()
            .zip(&ids)
            .map(|(g, id)| GrantView { grant_id: id, grantee: &g.grantee, operations: &g.operations })
            .collect();
        let req = Request {
            caller: Caller::new(&who.arn, &who.account),
            action,
            resource: KEY_ARN,
            resource_account: OWNER,
            context: to_context(context),
        };
        let expected = oracle::kms_outcome(who, action, (KEY_ARN, OWNER), key_statements, &identity_statements, grant_list, context);
        mix.count(outcome_kind(&expected));
        let for_the_request = grant_list.iter().any(|g| oracle::grant_allows(g, who, action));
        let without_grants = || oracle::kms_outcome(who, action, (KEY_ARN, OWNER), key_statements, &identity_statements, &[], context);
        grants.count(match (grant_list.is_empty(), for_the_request, &expected) {
            (true, _, _) => "no grant",
            (false, false, _) => "grants, none for the request",
            (false, true, Outcome::ExplicitDeny) => "a grant for the request, denied",
            (false, true, _) if without_grants() == Outcome::Allow => "a grant, and the policies allow",
            (false, true, _) => "a grant decides",
        });
        let decision = evaluate_kms(&req, &key_policy, &identity_refs, &views);
        prop_assert_eq!(
            &decision.outcome, &expected,
            "{} {}\nkey policy {}\nidentity {:?}\ngrants {:?}\ncontext {:?}",
            who.arn, action, key_policy.to_json(),
            identity_policies.iter().map(Policy::to_json).collect::<Vec<_>>(), grant_list, context
        );
        prop_assert_eq!(evaluate_kms_outcome(&req, &key_policy, &identity_refs, &views), expected);
    });
    mix.check(&EACH_OUTCOME_AT_LEAST_A_FIFTH);
    grants.check(&[
        ("a grant decides", 0.1, 1.0),
        ("a grant for the request, denied", 0.005, 1.0),
    ]);
}

#[test]
fn identity_evaluation_agrees_with_the_oracle() {
    let mix = Mix::new("identity_evaluation_agrees_with_the_oracle", &OUTCOMES);
    proptest!(config(), |(case in identity_case())| {
        let IdentityCase { who, action, resource, context, identity } = &case;
        let identity_policies: Vec<Policy> = identity.iter().map(|sts| parse(sts)).collect();
        let identity_refs: Vec<&Policy> = identity_policies.iter().collect();
        let req = Request {
            caller: Caller::new(&who.arn, &who.account),
            action,
            resource,
            resource_account: OWNER,
            context: to_context(context),
        };
        let expected = oracle::identity_outcome(who, action, resource, &identity.concat(), context);
        mix.count(outcome_kind(&expected));
        let decision = evaluate_identity(&req, &identity_refs);
        prop_assert_eq!(
            &decision.outcome, &expected,
            "{} {} on {}\nidentity {:?}\ncontext {:?}",
            who.arn, action, resource,
            identity_policies.iter().map(Policy::to_json).collect::<Vec<_>>(), context
        );
        prop_assert_eq!(evaluate_identity_outcome(&req, &identity_refs), expected);
    });
    mix.check(&EACH_OUTCOME_AT_LEAST_A_FIFTH);
}

/// Principal grantees only: the service-linked-role statement is written
/// per account, never for an organization or OU.
fn principal_grantee() -> impl Strategy<Value = Grantee> {
    prop_oneof![
        4 => "arn:aws:iam::(222222222222|333333333333|444444444444):(root|user/u[12]|role/r[12])".prop_map(Grantee::Principal),
        1 => "(222222222222|444444444444)".prop_map(Grantee::Principal),
    ]
}

/// The roles `share --autoscaling` and `--service-linked-role` name.
fn service_roles() -> impl Strategy<Value = Vec<String>> {
    prop::collection::btree_set(
        prop_oneof![
            Just("aws-service-role/autoscaling.amazonaws.com/AWSServiceRoleForAutoScaling"),
            Just("aws-service-role/autoscaling.amazonaws.com/AWSServiceRoleForAutoScaling_web"),
            Just("aws-service-role/ec2fleet.amazonaws.com/AWSServiceRoleForEC2Fleet"),
        ],
        1..3,
    )
    .prop_map(|roles| roles.into_iter().map(str::to_owned).collect())
}

#[test]
fn service_role_statements_keep_foreign_statements_and_remove_restores() {
    let mix = Mix::new(
        "service_role_statements_keep_foreign_statements_and_remove_restores",
        &["merged", "refused"],
    );
    proptest!(config(), |(
        policy in key_policy(0.0, [12, 2, 1]),
        grantees in prop::collection::vec(principal_grantee(), 1..5),
        narrowing in narrowing(),
        roles in service_roles(),
    )| {
        let narrowing = Narrowing { service_roles: roles, ..narrowing };
        let once = match merge_key(&policy, &grantees, &narrowing, OWNER, OWNER_ROOT, Some(KEY_ARN)) {
            Ok(once) => once,
            Err(error) => {
                mix.count("refused");
                return refused_for_lockout(&error, OWNER_ROOT);
            }
        };
        mix.count("merged");
        prop_assert_eq!(foreign(&once.policy), foreign(&policy));
        let sids: Vec<&str> = once.policy.statements.iter().filter_map(|st| st.sid.as_deref()).collect();
        prop_assert!(sids.iter().any(|sid| sid.starts_with("amishare: Allow grants for service-linked roles (")));
        let twice = merge_key(&once.policy, &grantees, &narrowing, OWNER, OWNER_ROOT, Some(KEY_ARN)).unwrap();
        prop_assert!(!twice.changed);
        // Removing the grantees takes out exactly what the merge added.
        let back = remove(&once.policy, &grantees, &narrowing);
        prop_assert_eq!(back.policy.to_json(), policy.to_json());
    });
    mix.check(&[("refused", 0.0, 0.1)]);
}

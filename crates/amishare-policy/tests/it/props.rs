//! Property tests: the round trip is lossless, and merge/remove never harm
//! statements amishare does not own.

use amishare_policy::{merge, remove, Grantee, Narrowing, Policy, SID_PREFIX};
use proptest::prelude::*;
use serde_json::{json, Map, Value};

use crate::support::{OWNER, OWNER_ROOT};

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
        Just("kms:ReEncrypt*".to_owned())
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
        one_or_many(prop_oneof![
            Just("*".to_owned()),
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

/// A policy document as JSON. With `safe`, it starts with the owner root's
/// `kms:*` and no statement denies kms:PutKeyPolicy, so merges pass the
/// lockout check.
fn policy_value(safe: bool) -> impl Strategy<Value = Value> {
    let root = json!({"Sid": "Enable IAM User Permissions", "Effect": "Allow",
        "Principal": {"AWS": OWNER_ROOT}, "Action": "kms:*", "Resource": "*"});
    let statements = prop::collection::vec(foreign_statement(safe), 0..5);
    let version = prop::option::of(prop_oneof![Just("2012-10-17"), Just("2008-10-17")]);
    let id = prop::option::of("[a-z0-9-]{1,12}");
    let extra = prop::option::of(("x-[a-z]{1,5}", scalar()));
    (statements, any::<bool>(), version, id, extra)
        .prop_map(move |(mut statements, object_form, version, id, extra)| {
            if safe {
                statements.insert(0, root.clone());
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

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn round_trip_is_lossless(value in policy_value(false)) {
        let text = value.to_string();
        let policy = Policy::parse(&text).unwrap();
        prop_assert_eq!(policy.to_value(), value.clone());
        prop_assert_eq!(policy.to_json(), text);
        prop_assert_eq!(policy.to_json_pretty(), serde_json::to_string_pretty(&value).unwrap());
    }

    #[test]
    fn merge_keeps_foreign_statements_and_is_idempotent(
        value in policy_value(true),
        grantees in prop::collection::vec(grantee(), 1..5),
        narrowing in narrowing(),
    ) {
        let policy = Policy::parse(&value.to_string()).unwrap();
        let once = merge(&policy, &grantees, &narrowing, OWNER, OWNER_ROOT).unwrap();
        prop_assert!(once.changed);
        prop_assert_eq!(foreign(&once.policy), foreign(&policy));
        let n = policy.statements.len();
        prop_assert_eq!(&once.policy.statements[..n], &policy.statements[..]);
        prop_assert!(once.policy.statements[n..].iter().all(|st| st.sid.as_deref().unwrap().starts_with(SID_PREFIX)));
        // The original text survives as a prefix of the statement list.
        let original = policy.to_json();
        let merged_text = once.policy.to_json();
        if let Some(Value::Array(_)) = value.get("Statement") {
            if n > 0 {
                let statements_text = serde_json::to_string(&value["Statement"]).unwrap();
                let prefix = statements_text.trim_end_matches(']');
                prop_assert!(merged_text.contains(prefix), "{} not in {}", prefix, merged_text);
            }
        }
        let twice = merge(&once.policy, &grantees, &narrowing, OWNER, OWNER_ROOT).unwrap();
        prop_assert!(!twice.changed);
        prop_assert_eq!(twice.policy.to_json(), merged_text);
        prop_assert_eq!(policy.to_json(), original);
    }

    #[test]
    fn remove_after_merge_restores_the_original(
        value in policy_value(true),
        earlier in prop::collection::vec(grantee(), 0..4),
        grantees in prop::collection::vec(grantee(), 1..5),
        narrowing in narrowing(),
    ) {
        let policy = Policy::parse(&value.to_string()).unwrap();
        // Without amishare statements for these grantees beforehand.
        let restored = remove(&merge(&policy, &grantees, &narrowing, OWNER, OWNER_ROOT).unwrap().policy, &grantees, &narrowing);
        prop_assert!(restored.changed);
        prop_assert_eq!(restored.policy.to_json(), policy.to_json());
        prop_assert_eq!(&restored.policy, &policy);

        // With amishare statements for other grantees already present.
        let base = merge(&policy, &earlier, &narrowing, OWNER, OWNER_ROOT).unwrap().policy;
        let taken: Vec<Grantee> = earlier.iter().map(normalised).collect();
        let fresh: Vec<Grantee> = grantees.iter().filter(|g| !taken.contains(&normalised(g))).cloned().collect();
        let shared = merge(&base, &fresh, &narrowing, OWNER, OWNER_ROOT).unwrap();
        let back = remove(&shared.policy, &fresh, &narrowing);
        prop_assert_eq!(back.changed, shared.changed);
        prop_assert_eq!(back.policy.to_json(), base.to_json());
    }
}

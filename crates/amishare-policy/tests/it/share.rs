//! Builder, merge, remove and the lockout check.

use amishare_policy::{
    amishare_principals, check_lockout, check_lockout_on, evaluate_kms, least_privilege_statements,
    merge, merge_key, remove, Caller, Context, Grantee, MergeError, Missing, Narrowing, Outcome,
    Policy, Request, Statement, MAX_POLICY_BYTES, SID_PREFIX,
};
use serde_json::{json, Value};

use crate::support::{self, KEY_ARN, OWNER, OWNER_ROOT};

const B_USER: &str = "arn:aws:iam::222222222222:user/cross-ami-user";
const B_ROOT: &str = "arn:aws:iam::222222222222:root";
const C_ROLE: &str = "arn:aws:iam::333333333333:role/launcher";

fn principal(arn: &str) -> Grantee {
    Grantee::Principal(arn.to_owned())
}

fn org() -> Grantee {
    Grantee::Organization {
        org_id: "o-abc1234567".to_owned(),
    }
}

fn ou() -> Grantee {
    Grantee::OrganizationalUnit {
        org_id: "o-abc1234567".to_owned(),
        ou_id: "ou-ab12-11111111".to_owned(),
    }
}

fn tokyo() -> Narrowing {
    Narrowing {
        via_service_region: Some("ap-northeast-1".to_owned()),
        caller_account: true,
        service_roles: Vec::new(),
    }
}

#[track_caller]
fn merged(policy: &Policy, grantees: &[Grantee], narrowing: &Narrowing) -> Policy {
    let result = merge(policy, grantees, narrowing, OWNER, OWNER_ROOT).expect("merge");
    assert!(result.changed);
    result.policy
}

fn statements_json(statements: &[Statement]) -> String {
    serde_json::to_string_pretty(statements).unwrap()
}

fn sids(policy: &Policy) -> Vec<&str> {
    policy
        .statements
        .iter()
        .map(|st| st.sid.as_deref().unwrap_or(""))
        .collect()
}

fn foreign(policy: &Policy) -> Vec<String> {
    let value = policy.to_value();
    let statements = match &value["Statement"] {
        Value::Array(items) => items.clone(),
        other => vec![other.clone()],
    };
    statements
        .iter()
        .filter(|st| {
            !st["Sid"]
                .as_str()
                .is_some_and(|sid| sid.starts_with(SID_PREFIX))
        })
        .map(|st| st.to_string())
        .collect()
}

#[test]
fn seed_statements_for_one_user() {
    let statements = least_privilege_statements(&[principal(B_USER)], &Narrowing::default());
    support::check_expect("share/seed-statements.json", &statements_json(&statements));
    // The same shape as the walkthrough's statements, with amishare's Sids.
    let seed = support::policy("key/seed.json");
    for (ours, theirs) in statements.iter().zip(&seed.statements[1..]) {
        let mut ours = ours.clone();
        assert_eq!(
            ours.sid
                .as_deref()
                .map(|s| s.strip_prefix("amishare: ").unwrap()),
            theirs.sid.as_deref()
        );
        ours.sid = theirs.sid.clone();
        assert_eq!(&ours, theirs);
    }
}

#[test]
fn narrowed_statements_for_mixed_grantees() {
    let grantees = [
        principal(C_ROLE),
        principal(B_ROOT),
        principal("222222222222"),
        principal(B_USER),
        org(),
        ou(),
        org(),
    ];
    let statements = least_privilege_statements(&grantees, &tokyo());
    support::check_expect(
        "share/narrowed-statements.json",
        &statements_json(&statements),
    );
    let value = serde_json::to_value(&statements).unwrap();
    // Sorted, deduplicated, bare account ids written as root ARNs.
    assert_eq!(
        value[0]["Principal"]["AWS"],
        json!([B_ROOT, B_USER, C_ROLE])
    );
    assert_eq!(
        value[0]["Condition"]["StringEquals"]["kms:CallerAccount"],
        json!(["222222222222", "333333333333"])
    );
    assert_eq!(
        value[1]["Condition"]["Bool"]["kms:GrantIsForAWSResource"],
        json!("true")
    );
    assert_eq!(
        statements.len(),
        6,
        "one pair each for principals, the organization and the OU"
    );
    for st in &statements {
        assert!(st.sid.as_deref().unwrap().starts_with(SID_PREFIX));
    }
}

#[test]
fn merge_into_the_default_policy() {
    let default = Policy::default_key_policy(OWNER);
    let result = merge(
        &default,
        &[principal(B_USER)],
        &Narrowing::default(),
        OWNER,
        OWNER_ROOT,
    )
    .unwrap();
    assert!(result.changed);
    support::check_expect(
        "share/default-plus-user.json",
        &result.policy.to_json_pretty(),
    );
    assert_eq!(
        sids(&result.policy),
        [
            "Enable IAM User Permissions",
            "amishare: Allow use of the key",
            "amishare: Allow attachment of persistent resources"
        ]
    );
}

#[test]
fn merge_keeps_foreign_statements_byte_identical() {
    for fixture in [
        "key/seed.json",
        "key/console-default.json",
        "key/deny.json",
        "key/org.json",
        "key/conditions.json",
    ] {
        let policy = support::policy(fixture);
        let input = support::read(fixture);
        let result = merge(
            &policy,
            &[principal(C_ROLE), org()],
            &tokyo(),
            OWNER,
            OWNER_ROOT,
        )
        .unwrap_or_else(|err| panic!("{fixture}: {err}"));
        assert!(result.changed, "{fixture}");
        assert_eq!(foreign(&result.policy), foreign(&policy), "{fixture}");
        // Existing statements keep their place; new ones come last.
        let n = policy.statements.len();
        assert_eq!(
            &result.policy.statements[..n],
            &policy.statements[..],
            "{fixture}"
        );
        assert_eq!(result.policy.statements.len(), n + 4, "{fixture}");
        // Pretty output shows every foreign statement as it was written.
        let output = result.policy.to_json_pretty();
        let input_value: Value = serde_json::from_str(&input).unwrap();
        let pretty_input = serde_json::to_string_pretty(&input_value).unwrap();
        let head = pretty_input
            .trim_end()
            .trim_end_matches('}')
            .trim_end()
            .trim_end_matches(']');
        assert!(
            output.starts_with(head.trim_end()),
            "{fixture}: existing text was rewritten"
        );
    }
}

#[test]
fn merge_is_idempotent() {
    let seed = support::policy("key/seed.json");
    let grantees = [principal(B_ROOT), principal(C_ROLE), ou()];
    for narrowing in [Narrowing::default(), tokyo()] {
        let once = merge(&seed, &grantees, &narrowing, OWNER, OWNER_ROOT).unwrap();
        assert!(once.changed);
        let twice = merge(&once.policy, &grantees, &narrowing, OWNER, OWNER_ROOT).unwrap();
        assert!(!twice.changed);
        assert_eq!(twice.policy.to_json(), once.policy.to_json());
        // A subset is already there too.
        let subset = merge(
            &once.policy,
            &[principal(C_ROLE)],
            &narrowing,
            OWNER,
            OWNER_ROOT,
        )
        .unwrap();
        assert!(!subset.changed);
        // Merging nothing changes nothing.
        let nothing = merge(&seed, &[], &narrowing, OWNER, OWNER_ROOT).unwrap();
        assert!(!nothing.changed);
        assert_eq!(nothing.policy.to_json(), seed.to_json());
    }
}

#[test]
fn different_narrowings_never_share_a_statement() {
    let narrowings = [
        Narrowing::default(),
        Narrowing {
            via_service_region: Some("ap-northeast-1".to_owned()),
            caller_account: false,
            service_roles: Vec::new(),
        },
        Narrowing {
            via_service_region: None,
            caller_account: true,
            service_roles: Vec::new(),
        },
        tokyo(),
        Narrowing {
            via_service_region: Some("us-east-1".to_owned()),
            caller_account: true,
            service_roles: Vec::new(),
        },
    ];
    let mut policy = Policy::default_key_policy(OWNER);
    for narrowing in &narrowings {
        policy = merged(&policy, &[principal(B_USER)], narrowing);
    }
    let ours: Vec<&str> = sids(&policy)
        .into_iter()
        .filter(|s| s.starts_with(SID_PREFIX))
        .collect();
    let mut unique = ours.clone();
    unique.sort();
    unique.dedup();
    assert_eq!(ours.len(), 2 * narrowings.len());
    assert_eq!(unique.len(), ours.len(), "{ours:?}");
    assert!(ours.contains(
        &"amishare: Allow use of the key (via ec2.ap-northeast-1.amazonaws.com) (caller account)"
    ));
    assert!(ours.contains(&"amishare: Allow attachment of persistent resources (caller account)"));
    // Removing from one narrowing leaves the others alone.
    let removed = remove(&policy, &[principal(B_USER)], &tokyo());
    assert!(removed.changed);
    assert_eq!(removed.policy.statements.len(), policy.statements.len() - 2);
    assert!(removed
        .policy
        .statement_by_sid("amishare: Allow use of the key")
        .is_some());
}

#[test]
fn caller_account_values_follow_the_grantees() {
    let narrowing = Narrowing {
        via_service_region: None,
        caller_account: true,
        service_roles: Vec::new(),
    };
    let sid = "amishare: Allow use of the key (caller account)";
    let accounts = |policy: &Policy| {
        serde_json::to_value(policy.statement_by_sid(sid).unwrap()).unwrap()["Condition"]
            ["StringEquals"]["kms:CallerAccount"]
            .clone()
    };
    let principals = |policy: &Policy| {
        policy
            .statement_by_sid(sid)
            .unwrap()
            .principal
            .clone()
            .unwrap()
    };
    let one = merged(
        &Policy::default_key_policy(OWNER),
        &[principal(B_USER)],
        &narrowing,
    );
    assert_eq!(accounts(&one), json!("222222222222"));
    assert_eq!(
        serde_json::to_value(principals(&one)).unwrap(),
        json!({"AWS": B_USER})
    );
    let two = merged(&one, &[principal(C_ROLE), principal(B_ROOT)], &narrowing);
    assert_eq!(accounts(&two), json!(["222222222222", "333333333333"]));
    assert_eq!(
        serde_json::to_value(principals(&two)).unwrap(),
        json!({"AWS": [B_ROOT, B_USER, C_ROLE]})
    );
    let back = remove(&two, &[principal(C_ROLE)], &narrowing);
    assert!(back.changed);
    assert_eq!(accounts(&back.policy), json!("222222222222"));
    let back = remove(&back.policy, &[principal("222222222222")], &narrowing);
    assert_eq!(back.policy, one, "a bare account id removes its root ARN");
    let empty = remove(&back.policy, &[principal(B_USER)], &narrowing);
    assert_eq!(empty.policy, Policy::default_key_policy(OWNER));
}

#[test]
fn remove_is_exact() {
    let seed = support::policy("key/seed.json");
    // The walkthrough's own statements name B's user but are not amishare's.
    let untouched = remove(&seed, &[principal(B_USER)], &Narrowing::default());
    assert!(!untouched.changed);
    assert_eq!(untouched.policy.to_json(), seed.to_json());

    let shared = merged(
        &seed,
        &[principal(B_USER), principal(C_ROLE), org(), ou()],
        &Narrowing::default(),
    );
    let minus_org = remove(&shared, &[org()], &Narrowing::default());
    assert!(minus_org.changed);
    assert_eq!(
        minus_org.policy.statements.len(),
        shared.statements.len() - 2
    );
    assert!(minus_org
        .policy
        .statement_by_sid(
            "amishare: Allow use of the key (organizational unit ou-ab12-11111111 of o-abc1234567)"
        )
        .is_some());
    let not_there = remove(
        &minus_org.policy,
        &[org(), principal("arn:aws:iam::444444444444:root")],
        &Narrowing::default(),
    );
    assert!(!not_there.changed);
    let all = remove(
        &shared,
        &[principal(B_USER), principal(C_ROLE), org(), ou()],
        &Narrowing::default(),
    );
    assert_eq!(all.policy, seed);
    assert_eq!(all.policy.to_json(), seed.to_json());
}

#[test]
fn size_limit_is_enforced_on_compact_json() {
    let base = Policy::default_key_policy(OWNER);
    let grantees = [principal(B_USER)];
    let merged_size = |padding: usize| {
        let mut policy = base.clone();
        policy
            .extra
            .insert("x-padding".to_owned(), Value::String("p".repeat(padding)));
        let size = {
            let mut probe = policy.clone();
            probe
                .statements
                .extend(least_privilege_statements(&grantees, &Narrowing::default()));
            probe.to_json().len()
        };
        (policy, size)
    };
    let (_, size0) = merged_size(0);
    let fits = MAX_POLICY_BYTES - size0;
    let (at_limit, size) = merged_size(fits);
    assert_eq!(size, MAX_POLICY_BYTES);
    let ok = merge(
        &at_limit,
        &grantees,
        &Narrowing::default(),
        OWNER,
        OWNER_ROOT,
    )
    .unwrap();
    assert_eq!(ok.policy.to_json().len(), MAX_POLICY_BYTES);
    let (over, _) = merged_size(fits + 1);
    let err = merge(&over, &grantees, &Narrowing::default(), OWNER, OWNER_ROOT).unwrap_err();
    assert_eq!(
        err,
        MergeError::TooLarge {
            bytes: MAX_POLICY_BYTES + 1,
            fit: 0,
            grantees: 1
        }
    );
    assert!(err.to_string().contains("32769 bytes"), "{err}");
}

#[test]
fn a_policy_too_large_says_how_many_targets_fit() {
    let base = Policy::default_key_policy(OWNER);
    let accounts: Vec<Grantee> = (0..600)
        .map(|n| principal(&format!("{:012}", 200_000_000_000_u64 + n)))
        .collect();
    for narrowing in [Narrowing::default(), tokyo()] {
        let err = merge(&base, &accounts, &narrowing, OWNER, OWNER_ROOT).unwrap_err();
        let MergeError::TooLarge {
            bytes,
            fit,
            grantees,
        } = err.clone()
        else {
            panic!("not too large: {err}");
        };
        assert!(bytes > MAX_POLICY_BYTES);
        assert_eq!(grantees, 600);
        // Exactly `fit` accounts fit, one more does not.
        merge(&base, &accounts[..fit], &narrowing, OWNER, OWNER_ROOT).expect("fit");
        let over = merge(&base, &accounts[..=fit], &narrowing, OWNER, OWNER_ROOT);
        assert!(matches!(over, Err(MergeError::TooLarge { .. })), "{fit}");
        let text = err.to_string();
        assert!(
            text.contains(&format!("{fit} of the 600 targets fit")),
            "{text}"
        );
        assert!(text.contains("organizational unit"), "{text}");
    }
}

#[test]
fn amishare_principals_are_those_its_statements_name() {
    let base = Policy::default_key_policy(OWNER);
    assert!(
        amishare_principals(&base).is_empty(),
        "the root statement is not amishare's"
    );
    let shared = merge(
        &base,
        &[principal(B_USER), principal("222222222222"), org()],
        &Narrowing::default(),
        OWNER,
        OWNER_ROOT,
    )
    .unwrap()
    .policy;
    let shared = merge(&shared, &[principal(C_ROLE)], &tokyo(), OWNER, OWNER_ROOT)
        .unwrap()
        .policy;
    let named: Vec<String> = amishare_principals(&shared).into_iter().collect();
    assert_eq!(named, [B_ROOT, B_USER, C_ROLE]);
}

#[test]
fn merge_refuses_a_lockout() {
    // aws/ebs gives nobody kms:PutKeyPolicy.
    let ebs = support::policy("key/aws-ebs.json");
    let err = merge(
        &ebs,
        &[principal(B_USER)],
        &Narrowing::default(),
        OWNER,
        OWNER_ROOT,
    )
    .unwrap_err();
    assert_eq!(
        err,
        MergeError::Lockout {
            principal: OWNER_ROOT.to_owned()
        }
    );
    assert!(err
        .to_string()
        .contains("will not allow arn:aws:iam::111111111111:root to update the key policy"));
    // An owner caller from another account can never update the policy.
    let default = Policy::default_key_policy(OWNER);
    let err = merge(
        &default,
        &[principal(B_USER)],
        &Narrowing::default(),
        OWNER,
        B_ROOT,
    )
    .unwrap_err();
    assert!(matches!(err, MergeError::Lockout { .. }));
    // A user of the owner account is allowed through root delegation.
    let ok = merge(
        &default,
        &[principal(B_USER)],
        &Narrowing::default(),
        OWNER,
        "arn:aws:iam::111111111111:user/alice",
    );
    assert!(ok.is_ok());
}

#[test]
fn lockout_table() {
    let rows = [
        ("key/default.json", OWNER_ROOT, true),
        ("key/default.json", OWNER, true),
        (
            "key/default.json",
            "arn:aws:iam::111111111111:user/alice",
            true,
        ),
        (
            "key/default.json",
            "arn:aws:sts::111111111111:assumed-role/Admin/ops",
            true,
        ),
        ("key/default.json", B_ROOT, false),
        ("key/aws-ebs.json", OWNER_ROOT, false),
        ("key/cross-all.json", B_ROOT, false),
        ("key/deny.json", OWNER_ROOT, true),
        // The lockout safety check itself must not be bypassed.
        ("key/conditions.json", OWNER_ROOT, true),
        ("key/seed.json", B_USER, false),
    ];
    for (fixture, caller, ok) in rows {
        let result = check_lockout(&support::policy(fixture), OWNER, caller);
        assert_eq!(result.is_ok(), ok, "{fixture} / {caller}: {result:?}");
    }
    let admin_only = Policy::parse(
        r#"{"Statement": [{"Effect": "Allow", "Principal": {"AWS": "arn:aws:iam::111111111111:role/Admin"},
            "Action": ["kms:Put*", "kms:Get*"], "Resource": "*"}]}"#,
    )
    .unwrap();
    assert!(check_lockout(&admin_only, OWNER, "arn:aws:iam::111111111111:role/Admin").is_ok());
    assert!(check_lockout(
        &admin_only,
        OWNER,
        "arn:aws:sts::111111111111:assumed-role/Admin/me"
    )
    .is_ok());
    assert!(check_lockout(&admin_only, OWNER, OWNER_ROOT).is_err());
    assert!(check_lockout(&admin_only, OWNER, "arn:aws:iam::111111111111:user/alice").is_err());
}

/// Given the key's ARN, the lockout check decides a statement that names the
/// key by ARN as KMS does; without it, it asks about resource `"*"`, which
/// such a statement does not match (right only for a key not created yet).
#[test]
fn lockout_check_on_the_key_decides_statements_that_name_it() {
    let by_arn = |element: &str| {
        let text = format!(
            r#"{{"Statement": [{{"Effect": "Allow", "Principal": {{"AWS": "{OWNER_ROOT}"}},
                "Action": "kms:*", "{element}": "{KEY_ARN}"}}]}}"#
        );
        Policy::parse(&text).unwrap()
    };
    let may_put = |policy: &Policy| {
        let req = Request {
            caller: Caller::new(OWNER_ROOT, OWNER),
            action: "kms:PutKeyPolicy",
            resource: KEY_ARN,
            resource_account: OWNER,
            context: Context::new(),
        };
        evaluate_kms(&req, policy, &[], &[]).is_allowed()
    };
    let named = by_arn("Resource");
    assert!(may_put(&named));
    assert!(check_lockout_on(&named, OWNER, OWNER_ROOT, Some(KEY_ARN)).is_ok());
    assert!(check_lockout(&named, OWNER, OWNER_ROOT).is_err());
    let all_but = by_arn("NotResource");
    assert!(!may_put(&all_but));
    assert!(check_lockout_on(&all_but, OWNER, OWNER_ROOT, Some(KEY_ARN)).is_err());
    assert!(check_lockout(&all_but, OWNER, OWNER_ROOT).is_ok());
    // merge_key refuses the merge that would lock the owner out of this key.
    let grantee = [Grantee::Principal(
        "arn:aws:iam::222222222222:user/bob".to_owned(),
    )];
    let narrowing = Narrowing::default();
    assert!(merge_key(
        &all_but,
        &grantee,
        &narrowing,
        OWNER,
        OWNER_ROOT,
        Some(KEY_ARN)
    )
    .is_err());
    assert!(merge_key(
        &named,
        &grantee,
        &narrowing,
        OWNER,
        OWNER_ROOT,
        Some(KEY_ARN)
    )
    .is_ok());
}

#[test]
fn invalid_grantees_are_named() {
    let rows: [(Grantee, &str); 9] = [
        (principal("*"), "\"*\""),
        (principal("arn:aws:iam::22222222222:root"), "22222222222"),
        (
            principal("arn:aws:iam::222222222222:group/devs"),
            "group/devs",
        ),
        (principal("arn:aws:iam::222222222222:user/*"), "wildcards"),
        (principal("arn:aws:iam::222222222222:role/"), "role/"),
        (
            principal("arn:aws:sts::222222222222:assumed-role/r/s"),
            "assumed-role",
        ),
        (
            Grantee::Organization {
                org_id: "abc".to_owned(),
            },
            "organization abc",
        ),
        (
            Grantee::OrganizationalUnit {
                org_id: "o-abc1234567".to_owned(),
                ou_id: "r-12".to_owned(),
            },
            "r-12",
        ),
        (
            Grantee::OrganizationalUnit {
                org_id: "o-".to_owned(),
                ou_id: "ou-1".to_owned(),
            },
            "o-",
        ),
    ];
    let default = Policy::default_key_policy(OWNER);
    for (grantee, needle) in rows {
        let err = merge(
            &default,
            &[principal(B_USER), grantee.clone()],
            &Narrowing::default(),
            OWNER,
            OWNER_ROOT,
        )
        .unwrap_err();
        assert!(
            matches!(err, MergeError::InvalidGrantee { .. }),
            "{grantee:?}: {err:?}"
        );
        assert!(err.to_string().contains(needle), "{grantee:?}: {err}");
    }
    let bad_region = Narrowing {
        via_service_region: Some("Tokyo 1".to_owned()),
        caller_account: false,
        service_roles: Vec::new(),
    };
    let err = merge(
        &default,
        &[principal(B_USER)],
        &bad_region,
        OWNER,
        OWNER_ROOT,
    )
    .unwrap_err();
    assert!(err.to_string().contains("Tokyo 1"), "{err}");
}

/// What the merged statements mean, checked with the evaluator.
#[test]
fn merged_policy_grants_exactly_the_shared_access() {
    let identity = support::policy("identity/kms-key-use.json");
    let identity = [&identity];
    let policy = merged(
        &Policy::default_key_policy(OWNER),
        &[principal(B_USER), org()],
        &tokyo(),
    );
    let decide = |caller: &str, org_id: Option<&str>, action: &str, context: Context| {
        let account = caller.split(':').nth(4).unwrap();
        let req = amishare_policy::Request {
            caller: Caller {
                arn: caller,
                account,
                org_id,
                org_paths: &[],
            },
            action,
            resource: KEY_ARN,
            resource_account: OWNER,
            context,
        };
        evaluate_kms(&req, &policy, &identity, &[])
    };
    let via = || Context::via_ec2("ap-northeast-1");
    assert!(decide(B_USER, None, "kms:Decrypt", via()).is_allowed());
    assert!(decide(B_USER, None, "kms:CreateGrant", via()).is_allowed());
    assert!(decide(B_USER, None, "kms:ReEncryptFrom", via()).is_allowed());
    // Narrowed to EC2 in Tokyo: direct use and other regions are refused.
    assert_eq!(
        decide(B_USER, None, "kms:Decrypt", Context::new()).missing,
        [Missing::KeyPolicyAllow]
    );
    assert_eq!(
        decide(B_USER, None, "kms:Decrypt", Context::via_ec2("us-east-1")).missing,
        [Missing::KeyPolicyAllow]
    );
    // A direct CreateGrant is not for an AWS resource.
    let direct = Context::new().with("kms:ViaService", "ec2.ap-northeast-1.amazonaws.com");
    assert_eq!(
        decide(B_USER, None, "kms:CreateGrant", direct).outcome,
        Outcome::ImplicitDeny
    );
    // Others in B are not named.
    assert!(!decide(
        "arn:aws:iam::222222222222:user/mallory",
        None,
        "kms:Decrypt",
        via()
    )
    .is_allowed());
    // Organization members are, through the organization statements.
    let carol = "arn:aws:iam::333333333333:user/carol";
    assert!(decide(carol, Some("o-abc1234567"), "kms:Decrypt", via()).is_allowed());
    assert!(!decide(carol, Some("o-zzz9999999"), "kms:Decrypt", via()).is_allowed());
    assert!(!decide(carol, None, "kms:Decrypt", via()).is_allowed());
    // Nothing beyond use and attachment.
    assert!(!decide(B_USER, None, "kms:ScheduleKeyDeletion", via()).is_allowed());
    assert!(decide(B_USER, None, "kms:Encrypt", via()).is_allowed());
}

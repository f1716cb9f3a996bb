//! The evaluator in its plain form, kept to check the allocation-free one:
//! it lowercases copies to compare case-insensitively, globs over collected
//! characters and clones the request context to add what the caller implies.
//! The property tests below check that both decide the same on random
//! policies, callers, contexts and grants.

use std::collections::BTreeMap;

use proptest::prelude::*;
use serde_json::{json, Value};

use crate::document::{Effect, OneOrMany, Policy, Principal, Statement};
use crate::eval::{
    action_matches, evaluate_identity, evaluate_identity_outcome, evaluate_kms,
    evaluate_kms_outcome, first_kms_refusal, glob, glob_chars, is_cross_account_action,
    parse_root_account, principal_account, Caller, Context, Decision, GrantView, Missing, Outcome,
    PolicySource, Request, StatementRef,
};

fn ref_context_get<'c>(ctx: &'c Context, key: &str) -> Option<&'c [String]> {
    ctx.values.get(&key.to_lowercase()).map(Vec::as_slice)
}

fn ref_context_set(ctx: &mut Context, key: &str, values: Vec<String>) {
    ctx.values.insert(key.to_lowercase(), values);
}

fn ref_role_arn(arn: &str) -> Option<String> {
    let parts: Vec<&str> = arn.splitn(6, ':').collect();
    let [arn, partition, "sts", "", account, resource] = parts.as_slice() else {
        return None;
    };
    if *arn != "arn" {
        return None;
    }
    let rest = resource.strip_prefix("assumed-role/")?;
    let (role, _session) = rest.split_once('/')?;
    if role.is_empty() {
        return None;
    }
    Some(format!("arn:{partition}:iam::{account}:role/{role}"))
}

fn ref_is_account_id(s: &str) -> bool {
    s.len() == 12 && s.bytes().all(|b| b.is_ascii_digit())
}

fn ref_parse_root_account(arn: &str) -> Option<&str> {
    let parts: Vec<&str> = arn.split(':').collect();
    match parts.as_slice() {
        ["arn", _, "iam", "", account, "root"] if ref_is_account_id(account) => Some(account),
        _ => None,
    }
}

fn ref_principal_account(entry: &str) -> Option<&str> {
    if ref_is_account_id(entry) {
        return Some(entry);
    }
    let parts: Vec<&str> = entry.splitn(6, ':').collect();
    match parts.as_slice() {
        ["arn", _, _, _, account, _] if ref_is_account_id(account) => Some(account),
        _ => None,
    }
}

fn ref_action_matches(pattern: &str, action: &str) -> bool {
    glob_chars(&pattern.to_lowercase(), &action.to_lowercase())
}

fn ref_kms_operation(action: &str) -> Option<&str> {
    let (service, op) = action.split_once(':')?;
    service.eq_ignore_ascii_case("kms").then_some(op)
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum How {
    Direct,
    Account,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    KeyPolicy,
    Identity,
}

struct RefWho<'a> {
    arn: &'a str,
    account: &'a str,
    role_arn: Option<String>,
    is_root: bool,
}

impl<'a> RefWho<'a> {
    fn new(caller: &Caller<'a>) -> RefWho<'a> {
        RefWho {
            arn: caller.arn,
            account: caller.account,
            role_arn: ref_role_arn(caller.arn),
            is_root: ref_parse_root_account(caller.arn).is_some(),
        }
    }

    fn match_entry(&self, entry: &str) -> Option<How> {
        if entry == "*" || entry == self.arn || self.role_arn.as_deref() == Some(entry) {
            return Some(How::Direct);
        }
        let account = if ref_is_account_id(entry) {
            Some(entry)
        } else {
            ref_parse_root_account(entry)
        };
        match account {
            Some(account) if account == self.account => Some(if self.is_root {
                How::Direct
            } else {
                How::Account
            }),
            _ => None,
        }
    }

    fn match_principal(&self, principal: &Principal) -> Option<How> {
        let mut best = None;
        for entry in principal.aws() {
            match self.match_entry(entry) {
                Some(How::Direct) => return Some(How::Direct),
                Some(How::Account) => best = Some(How::Account),
                None => {}
            }
        }
        best
    }
}

fn ref_statement_ref(source: PolicySource, index: usize, st: &Statement) -> StatementRef {
    StatementRef {
        source,
        index,
        sid: st.sid.clone(),
    }
}

fn ref_matching<'p>(
    policy: &'p Policy,
    effect: Effect,
    req: &'p Request<'_>,
    ctx: &'p Context,
    who: &'p RefWho<'_>,
    kind: Kind,
) -> impl Iterator<Item = (usize, &'p Statement, How)> + 'p {
    policy
        .statements
        .iter()
        .enumerate()
        .filter_map(move |(index, st)| {
            if st.effect != effect {
                return None;
            }
            let how = ref_applies(st, req, ctx, who, kind)?;
            Some((index, st, how))
        })
}

fn ref_identity(
    effect: Effect,
    req: &Request<'_>,
    ctx: &Context,
    who: &RefWho<'_>,
    policies: &[&Policy],
) -> Option<StatementRef> {
    policies.iter().enumerate().find_map(|(p, policy)| {
        ref_matching(policy, effect, req, ctx, who, Kind::Identity)
            .next()
            .map(|(index, st, _)| ref_statement_ref(PolicySource::Identity { index: p }, index, st))
    })
}

fn ref_applies(
    st: &Statement,
    req: &Request<'_>,
    ctx: &Context,
    who: &RefWho<'_>,
    kind: Kind,
) -> Option<How> {
    let how = match kind {
        Kind::Identity => How::Direct,
        Kind::KeyPolicy => match (&st.principal, &st.not_principal) {
            (Some(p), _) => who.match_principal(p)?,
            (None, Some(np)) => match who.match_principal(np) {
                Some(How::Direct) => return None,
                _ => How::Direct,
            },
            (None, None) => return None,
        },
    };
    let any_action =
        |list: &OneOrMany<String>| list.iter().any(|p| ref_action_matches(p, req.action));
    let action_ok = match (&st.action, &st.not_action) {
        (None, None) => false,
        (a, n) => a.as_ref().is_none_or(any_action) && !n.as_ref().is_some_and(any_action),
    };
    let any_resource =
        |list: &OneOrMany<String>| list.iter().any(|p| p == "*" || glob_chars(p, req.resource));
    let resource_ok = match (&st.resource, &st.not_resource) {
        (None, None) => false,
        (r, n) => r.as_ref().is_none_or(any_resource) && !n.as_ref().is_some_and(any_resource),
    };
    if !action_ok || !resource_ok {
        return None;
    }
    if let Some(conditions) = &st.condition {
        let all = conditions.iter().all(|(operator, block)| match block {
            Value::Object(keys) => keys
                .iter()
                .all(|(key, values)| ref_condition(operator, key, values, ctx)),
            _ => false,
        });
        if !all {
            return None;
        }
    }
    Some(how)
}

fn ref_grant_matches(grant: &GrantView<'_>, req: &Request<'_>, who: &RefWho<'_>) -> bool {
    let Some(op) = ref_kms_operation(req.action) else {
        return false;
    };
    let grantee_ok = grant.grantee == who.arn
        || who.role_arn.as_deref() == Some(grant.grantee)
        || ref_parse_root_account(grant.grantee) == Some(who.account)
        || grant.grantee == who.account;
    grantee_ok && grant.operations.iter().any(|o| o.eq_ignore_ascii_case(op))
}

fn ref_effective_context(req: &Request<'_>) -> Context {
    let caller = &req.caller;
    let mut ctx = req.context.clone();
    let mut default = |key: &str, values: Vec<String>| {
        if ref_context_get(&ctx, key).is_none() {
            ref_context_set(&mut ctx, key, values);
        }
    };
    default("kms:CallerAccount", vec![caller.account.to_owned()]);
    default("aws:PrincipalAccount", vec![caller.account.to_owned()]);
    default(
        "aws:PrincipalArn",
        vec![ref_role_arn(caller.arn).unwrap_or_else(|| caller.arn.to_owned())],
    );
    default("aws:PrincipalIsAWSService", vec!["false".to_owned()]);
    if let Some(org) = caller.org_id {
        default("aws:PrincipalOrgID", vec![org.to_owned()]);
    }
    if !caller.org_paths.is_empty() {
        default("aws:PrincipalOrgPaths", caller.org_paths.to_vec());
    }
    ctx
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum SetOp {
    None,
    ForAllValues,
    ForAnyValue,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Base {
    StringEquals,
    StringEqualsIgnoreCase,
    StringLike,
    Numeric(std::cmp::Ordering, bool),
    Date(std::cmp::Ordering, bool),
    Bool,
    Arn,
}

fn ref_parse_operator(name: &str) -> Option<(Base, bool)> {
    use std::cmp::Ordering::{Equal, Greater, Less};
    let lower = name.to_lowercase();
    let parsed = match lower.as_str() {
        "stringequals" => (Base::StringEquals, false),
        "stringnotequals" => (Base::StringEquals, true),
        "stringequalsignorecase" => (Base::StringEqualsIgnoreCase, false),
        "stringnotequalsignorecase" => (Base::StringEqualsIgnoreCase, true),
        "stringlike" => (Base::StringLike, false),
        "stringnotlike" => (Base::StringLike, true),
        "numericequals" => (Base::Numeric(Equal, false), false),
        "numericnotequals" => (Base::Numeric(Equal, false), true),
        "numericlessthan" => (Base::Numeric(Less, false), false),
        "numericlessthanequals" => (Base::Numeric(Less, true), false),
        "numericgreaterthan" => (Base::Numeric(Greater, false), false),
        "numericgreaterthanequals" => (Base::Numeric(Greater, true), false),
        "dateequals" => (Base::Date(Equal, false), false),
        "datenotequals" => (Base::Date(Equal, false), true),
        "datelessthan" => (Base::Date(Less, false), false),
        "datelessthanequals" => (Base::Date(Less, true), false),
        "dategreaterthan" => (Base::Date(Greater, false), false),
        "dategreaterthanequals" => (Base::Date(Greater, true), false),
        "bool" => (Base::Bool, false),
        "arnequals" | "arnlike" => (Base::Arn, false),
        "arnnotequals" | "arnnotlike" => (Base::Arn, true),
        _ => return None,
    };
    Some(parsed)
}

fn ref_strip_prefix_ci<'a>(s: &'a str, prefix: &str) -> Option<&'a str> {
    let head = s.get(..prefix.len())?;
    head.eq_ignore_ascii_case(prefix)
        .then(|| &s[prefix.len()..])
}

fn ref_strip_suffix_ci<'a>(s: &'a str, suffix: &str) -> Option<&'a str> {
    let cut = s.len().checked_sub(suffix.len())?;
    let tail = s.get(cut..)?;
    tail.eq_ignore_ascii_case(suffix).then(|| &s[..cut])
}

fn ref_scalar_values(value: &Value) -> Vec<String> {
    fn scalar(value: &Value) -> Option<String> {
        match value {
            Value::String(s) => Some(s.clone()),
            Value::Bool(b) => Some(b.to_string()),
            Value::Number(n) => Some(n.to_string()),
            _ => None,
        }
    }
    match value {
        Value::Array(items) => items.iter().filter_map(scalar).collect(),
        other => scalar(other).into_iter().collect(),
    }
}

fn ref_condition(operator: &str, key: &str, policy_values: &Value, ctx: &Context) -> bool {
    let (set, rest) = if let Some(rest) = ref_strip_prefix_ci(operator, "ForAllValues:") {
        (SetOp::ForAllValues, rest)
    } else if let Some(rest) = ref_strip_prefix_ci(operator, "ForAnyValue:") {
        (SetOp::ForAnyValue, rest)
    } else {
        (SetOp::None, operator)
    };
    let (base_name, if_exists) = match ref_strip_suffix_ci(rest, "IfExists") {
        Some(base) => (base, true),
        None => (rest, false),
    };
    let wanted = ref_scalar_values(policy_values);
    let present = ref_context_get(ctx, key).filter(|values| !values.is_empty());
    if base_name.eq_ignore_ascii_case("Null") {
        let absent = present.is_none();
        return wanted.iter().any(|w| match w.to_lowercase().as_str() {
            "true" => absent,
            "false" => !absent,
            _ => false,
        });
    }
    let Some((base, negated)) = ref_parse_operator(base_name) else {
        return false;
    };
    let Some(values) = present else {
        if if_exists {
            return true;
        }
        return match set {
            SetOp::ForAllValues => true,
            SetOp::ForAnyValue => false,
            SetOp::None => negated,
        };
    };
    let positive = |value: &String| wanted.iter().any(|w| ref_base_matches(base, w, value));
    let test = |value: &String| positive(value) != negated;
    match set {
        SetOp::None if negated => !values.iter().any(positive),
        SetOp::None => values.iter().any(positive),
        SetOp::ForAnyValue => values.iter().any(test),
        SetOp::ForAllValues => values.iter().all(test),
    }
}

fn ref_base_matches(base: Base, wanted: &str, value: &str) -> bool {
    let compare = |cmp: Option<std::cmp::Ordering>, order, or_equal: bool| match cmp {
        Some(c) => c == order || (or_equal && c == std::cmp::Ordering::Equal),
        None => false,
    };
    match base {
        Base::StringEquals => wanted == value,
        Base::StringEqualsIgnoreCase => wanted.to_lowercase() == value.to_lowercase(),
        Base::StringLike => glob_chars(wanted, value),
        Base::Bool => wanted.eq_ignore_ascii_case(value),
        Base::Arn => {
            if wanted == "*" {
                return true;
            }
            let p: Vec<&str> = wanted.splitn(6, ':').collect();
            let a: Vec<&str> = value.splitn(6, ':').collect();
            p.len() == 6 && a.len() == 6 && p.iter().zip(&a).all(|(p, a)| glob_chars(p, a))
        }
        Base::Numeric(order, or_equal) => {
            match (wanted.trim().parse::<f64>(), value.trim().parse::<f64>()) {
                (Ok(w), Ok(v)) => compare(v.partial_cmp(&w), order, or_equal),
                _ => false,
            }
        }
        Base::Date(order, or_equal) => {
            let cmp = match (wanted.trim().parse::<f64>(), value.trim().parse::<f64>()) {
                (Ok(w), Ok(v)) => v.partial_cmp(&w),
                _ => Some(value.cmp(wanted)),
            };
            compare(cmp, order, or_equal)
        }
    }
}

fn decision(
    outcome: Outcome,
    allowed_by: Vec<StatementRef>,
    denied_by: Option<StatementRef>,
    missing: Vec<Missing>,
) -> Decision {
    Decision {
        outcome,
        allowed_by,
        denied_by,
        missing,
    }
}

/// [`evaluate_kms`] in its plain form.
fn ref_evaluate_kms(
    req: &Request<'_>,
    key_policy: &Policy,
    identity_policies: &[&Policy],
    grants: &[GrantView<'_>],
) -> Decision {
    let ctx = ref_effective_context(req);
    let who = RefWho::new(&req.caller);
    if let Some((index, st, _)) =
        ref_matching(key_policy, Effect::Deny, req, &ctx, &who, Kind::KeyPolicy).next()
    {
        let by = ref_statement_ref(PolicySource::KeyPolicy, index, st);
        return decision(Outcome::ExplicitDeny, Vec::new(), Some(by), Vec::new());
    }
    if let Some(by) = ref_identity(Effect::Deny, req, &ctx, &who, identity_policies) {
        return decision(Outcome::ExplicitDeny, Vec::new(), Some(by), Vec::new());
    }
    let cross_account = req.caller.account != req.resource_account;
    if cross_account && !is_cross_account_action(req.action) {
        let missing = vec![Missing::CrossAccountNotPermitted];
        return decision(Outcome::ImplicitDeny, Vec::new(), None, missing);
    }
    let mut direct = None;
    let mut delegated = None;
    for (index, st, how) in
        ref_matching(key_policy, Effect::Allow, req, &ctx, &who, Kind::KeyPolicy)
    {
        let slot = match how {
            How::Direct => &mut direct,
            How::Account => &mut delegated,
        };
        if slot.is_none() {
            *slot = Some(ref_statement_ref(PolicySource::KeyPolicy, index, st));
        }
    }
    let identity = ref_identity(Effect::Allow, req, &ctx, &who, identity_policies);
    let grant = grants
        .iter()
        .find(|g| ref_grant_matches(g, req, &who))
        .map(|g| StatementRef {
            source: PolicySource::Grant {
                grant_id: g.grant_id.to_owned(),
            },
            index: 0,
            sid: None,
        });
    if !cross_account {
        if let Some(direct) = direct {
            return decision(Outcome::Allow, vec![direct], None, Vec::new());
        }
        if let (Some(delegated), Some(identity)) = (&delegated, identity.clone()) {
            let by = vec![delegated.clone(), identity];
            return decision(Outcome::Allow, by, None, Vec::new());
        }
        if let Some(grant) = grant {
            return decision(Outcome::Allow, vec![grant], None, Vec::new());
        }
        let missing = if delegated.is_some() {
            Missing::IdentityPolicyAllow
        } else {
            Missing::KeyPolicyAllow
        };
        return decision(Outcome::ImplicitDeny, Vec::new(), None, vec![missing]);
    }
    let key_allow = match (direct, delegated) {
        (Some(a), Some(b)) => Some(if a.index <= b.index { a } else { b }),
        (a, b) => a.or(b),
    };
    let identity_ok = identity.is_some() || ref_parse_root_account(req.caller.arn).is_some();
    if let (Some(key_allow), true) = (&key_allow, identity_ok) {
        let mut allowed_by = vec![key_allow.clone()];
        allowed_by.extend(identity);
        return decision(Outcome::Allow, allowed_by, None, Vec::new());
    }
    if let Some(grant) = grant {
        return decision(Outcome::Allow, vec![grant], None, Vec::new());
    }
    let mut missing = Vec::new();
    if key_allow.is_none() {
        missing.push(Missing::KeyPolicyAllow);
    }
    if !identity_ok {
        missing.push(Missing::IdentityPolicyAllow);
    }
    decision(Outcome::ImplicitDeny, Vec::new(), None, missing)
}

/// [`evaluate_identity`] in its plain form.
fn ref_evaluate_identity(req: &Request<'_>, identity_policies: &[&Policy]) -> Decision {
    let ctx = ref_effective_context(req);
    let who = RefWho::new(&req.caller);
    if let Some(by) = ref_identity(Effect::Deny, req, &ctx, &who, identity_policies) {
        return decision(Outcome::ExplicitDeny, Vec::new(), Some(by), Vec::new());
    }
    match ref_identity(Effect::Allow, req, &ctx, &who, identity_policies) {
        Some(by) => decision(Outcome::Allow, vec![by], None, Vec::new()),
        None if who.is_root => decision(Outcome::Allow, Vec::new(), None, Vec::new()),
        None => decision(
            Outcome::ImplicitDeny,
            Vec::new(),
            None,
            vec![Missing::IdentityPolicyAllow],
        ),
    }
}

// ------------------------------------------------------------ strategies

/// Text over a small alphabet that makes globs meet: wildcards, colons,
/// both cases, and characters whose lowercase is special (the Kelvin sign
/// lowercases to an ASCII `k`, the dotted capital I to two characters).
fn tricky_text(max: usize) -> impl Strategy<Value = String> + Clone {
    let ch = prop_oneof![
        8 => prop::sample::select(vec!['a', 'A', 'b', 'B', 'k', 'K', ':', '/', '-', '*', '?']),
        1 => prop::sample::select(vec!['\u{212A}', '\u{130}', 'é', 'É', '鍵', 'ß']),
    ];
    prop::collection::vec(ch, 0..max).prop_map(|chars| chars.into_iter().collect())
}

fn ascii_text(max: usize) -> impl Strategy<Value = String> + Clone {
    prop::collection::vec(
        prop::sample::select(vec!['a', 'A', 'b', 'B', 'c', ':', '/', '*', '?']),
        0..max,
    )
    .prop_map(|chars| chars.into_iter().collect())
}

const ACCOUNTS: [&str; 3] = ["111111111111", "222222222222", "333333333333"];

fn account() -> impl Strategy<Value = String> + Clone {
    prop::sample::select(ACCOUNTS.to_vec()).prop_map(str::to_owned)
}

fn caller_arn() -> impl Strategy<Value = String> + Clone {
    (
        account(),
        prop::sample::select(vec![
            "root", "user/u", "user/v", "role/r", "role/s", "session",
        ]),
        prop::sample::select(vec!["aws", "aws-cn"]),
    )
        .prop_map(|(account, kind, partition)| match kind {
            "root" => format!("arn:{partition}:iam::{account}:root"),
            "session" => format!("arn:{partition}:sts::{account}:assumed-role/r/sess"),
            other => format!("arn:{partition}:iam::{account}:{other}"),
        })
}

fn principal_entry() -> impl Strategy<Value = String> + Clone {
    prop_oneof![
        Just("*".to_owned()),
        account(),
        caller_arn(),
        account().prop_map(|a| format!("arn:aws:iam::{a}:role/r")),
        Just("arn:aws:iam::1111:root".to_owned()),
    ]
}

fn strings(item: impl Strategy<Value = String> + Clone) -> impl Strategy<Value = Value> + Clone {
    prop_oneof![
        item.clone().prop_map(Value::String),
        prop::collection::vec(item, 0..3)
            .prop_map(|items| Value::Array(items.into_iter().map(Value::String).collect())),
    ]
}

fn action() -> impl Strategy<Value = String> + Clone {
    prop::sample::select(vec![
        "kms:Decrypt",
        "kms:CreateGrant",
        "kms:PutKeyPolicy",
        "kms:DescribeKey",
        "KMS:decrypt",
        "kms:ReEncryptFrom",
        "ec2:RunInstances",
        "ec2:DescribeImages",
        "s3:GetObject",
    ])
    .prop_map(str::to_owned)
}

fn action_pattern() -> impl Strategy<Value = String> + Clone {
    prop_oneof![
        4 => prop::sample::select(vec![
            "*", "kms:*", "kms:Decrypt", "kms:ReEncrypt*", "KMS:DESCRIBE*", "ec2:*",
            "ec2:Describe?mages", "kms:Create*", "s3:*", "kms:?ecrypt", "kms:PutKeyPolicy",
        ])
        .prop_map(str::to_owned),
        1 => tricky_text(8),
    ]
}

fn resource_pattern() -> impl Strategy<Value = String> + Clone {
    prop_oneof![
        Just("*".to_owned()),
        Just("arn:aws:kms:ap-northeast-1:111111111111:key/*".to_owned()),
        Just("arn:aws:kms:*:222222222222:key/*".to_owned()),
        Just("arn:aws:ec2:*::image/*".to_owned()),
        Just("arn:aws:kms:ap-northeast-1:111111111111:key/k?y".to_owned()),
    ]
}

fn condition_key() -> impl Strategy<Value = String> + Clone {
    prop::sample::select(vec![
        "kms:CallerAccount",
        "KMS:calleraccount",
        "aws:PrincipalAccount",
        "aws:PrincipalArn",
        "aws:principalarn",
        "aws:PrincipalIsAWSService",
        "aws:PrincipalOrgID",
        "aws:PrincipalOrgPaths",
        "kms:ViaService",
        "kms:GrantIsForAWSResource",
        "kms:GrantOperations",
        "x:Count",
        "\u{212A}ms:ViaService",
        "x:Missing",
    ])
    .prop_map(str::to_owned)
}

fn condition_value() -> impl Strategy<Value = Value> + Clone {
    let scalar = prop_oneof![
        prop::sample::select(vec![
            "111111111111",
            "222222222222",
            "arn:aws:iam::222222222222:user/u",
            "arn:aws:iam::*:role/r",
            "arn:aws:iam::111111111111:*",
            "ec2.ap-northeast-1.amazonaws.com",
            "EC2.AP-NORTHEAST-1.AMAZONAWS.COM",
            "ec2.*.amazonaws.com",
            "o-aaaaaaaaaa",
            "o-aaaaaaaaaa/*/ou-1/*",
            "Decrypt",
            "*crypt",
            "true",
            "TRUE",
            "false",
            "10",
            "2.5",
            "2024-01-01T00:00:00Z",
            "\u{212A}",
        ])
        .prop_map(|s| Value::String(s.to_owned())),
        any::<bool>().prop_map(Value::Bool),
        (-20i64..20).prop_map(|n| json!(n)),
    ];
    prop_oneof![
        scalar.clone(),
        prop::collection::vec(scalar, 0..3).prop_map(Value::Array),
    ]
}

fn operator() -> impl Strategy<Value = String> + Clone {
    let base = prop::sample::select(vec![
        "StringEquals",
        "StringNotEquals",
        "StringEqualsIgnoreCase",
        "stringnotequalsignorecase",
        "StringLike",
        "StringNotLike",
        "NumericLessThan",
        "NumericGreaterThanEquals",
        "NumericEquals",
        "DateLessThan",
        "DateNotEquals",
        "Bool",
        "ArnLike",
        "ArnNotEquals",
        "Null",
        "IpAddress",
        "StringLi\u{212A}e",
    ]);
    let set = prop::sample::select(vec![
        "",
        "",
        "ForAnyValue:",
        "ForAllValues:",
        "forallvalues:",
    ]);
    (set, base, any::<bool>()).prop_map(|(set, base, if_exists)| {
        format!("{set}{base}{}", if if_exists { "IfExists" } else { "" })
    })
}

fn conditions() -> impl Strategy<Value = Value> + Clone {
    let block = prop::collection::btree_map(condition_key(), condition_value(), 1..3)
        .prop_map(|m| Value::Object(m.into_iter().collect()));
    prop::collection::btree_map(operator(), block, 1..3)
        .prop_map(|m| Value::Object(m.into_iter().collect()))
}

fn statement(key_policy: bool) -> impl Strategy<Value = Value> + Clone {
    let principal = prop_oneof![
        Just(json!("*")),
        strings(principal_entry()).prop_map(|aws| json!({ "AWS": aws })),
        Just(json!({ "Service": "ec2.amazonaws.com" })),
    ];
    (
        prop::option::of("[A-Za-z ]{0,6}"),
        prop::bool::weighted(0.25),
        prop::option::of((any::<bool>(), principal)),
        (any::<bool>(), strings(action_pattern())),
        (any::<bool>(), strings(resource_pattern())),
        prop::option::weighted(0.5, conditions()),
    )
        .prop_map(
            move |(sid, deny, who, (not_action, actions), (not_resource, resources), condition)| {
                let mut st = serde_json::Map::new();
                if let Some(sid) = sid {
                    st.insert("Sid".into(), Value::String(sid));
                }
                st.insert("Effect".into(), json!(if deny { "Deny" } else { "Allow" }));
                if key_policy {
                    if let Some((not, p)) = who {
                        st.insert(if not { "NotPrincipal" } else { "Principal" }.into(), p);
                    }
                }
                st.insert(
                    if not_action { "NotAction" } else { "Action" }.into(),
                    actions,
                );
                st.insert(
                    if not_resource {
                        "NotResource"
                    } else {
                        "Resource"
                    }
                    .into(),
                    resources,
                );
                if let Some(condition) = condition {
                    st.insert("Condition".into(), condition);
                }
                Value::Object(st)
            },
        )
}

fn policy(key_policy: bool) -> impl Strategy<Value = Policy> {
    prop::collection::vec(statement(key_policy), 0..5).prop_map(|statements| {
        Policy::from_value(json!({ "Version": "2012-10-17", "Statement": statements }))
            .expect("a generated policy parses")
    })
}

fn context() -> impl Strategy<Value = Context> {
    let entry = (
        condition_key(),
        prop::collection::vec(
            prop::sample::select(vec![
                "111111111111",
                "ec2.ap-northeast-1.amazonaws.com",
                "true",
                "false",
                "Decrypt",
                "Encrypt",
                "5",
                "arn:aws:iam::222222222222:user/u",
            ])
            .prop_map(str::to_owned),
            0..3,
        ),
    );
    (
        prop::bool::weighted(0.3),
        prop::collection::vec(entry, 0..3),
    )
        .prop_map(|(via_ec2, entries)| {
            let start = if via_ec2 {
                Context::via_ec2("ap-northeast-1")
            } else {
                Context::new()
            };
            entries
                .into_iter()
                .fold(start, |ctx, (key, values)| ctx.with_values(&key, values))
        })
}

/// Everything one evaluation needs, owned.
#[derive(Debug, Clone)]
struct Case {
    caller: String,
    caller_account: String,
    org_id: Option<String>,
    org_paths: Vec<String>,
    action: String,
    resource: String,
    resource_account: String,
    context: Context,
    key_policy: Policy,
    identity: Vec<Policy>,
    grants: Vec<(String, String, Vec<String>)>,
}

fn case() -> impl Strategy<Value = Case> {
    let grant = (
        "g-[a-z]{1,3}",
        prop_oneof![caller_arn(), account()],
        prop::collection::vec(
            prop::sample::select(vec!["Decrypt", "CreateGrant", "describekey"])
                .prop_map(str::to_owned),
            0..3,
        ),
    );
    let org = prop::option::of(Just((
        "o-aaaaaaaaaa".to_owned(),
        vec!["o-aaaaaaaaaa/r-ab12/ou-1/".to_owned()],
    )));
    (
        caller_arn(),
        prop::option::weighted(0.1, account()),
        org,
        action(),
        prop_oneof![
            Just("arn:aws:kms:ap-northeast-1:111111111111:key/key".to_owned()),
            Just("arn:aws:kms:ap-northeast-1:222222222222:key/kay".to_owned()),
            Just("*".to_owned()),
        ],
        context(),
        policy(true),
        prop::collection::vec(policy(false), 0..3),
        prop::collection::vec(grant, 0..3),
    )
        .prop_map(
            |(
                caller,
                other_account,
                org,
                action,
                resource,
                context,
                key_policy,
                identity,
                grants,
            )| {
                let caller_account = other_account
                    .unwrap_or_else(|| caller.split(':').nth(4).unwrap_or_default().to_owned());
                let resource_account = resource
                    .split(':')
                    .nth(4)
                    .filter(|a| !a.is_empty())
                    .unwrap_or("111111111111")
                    .to_owned();
                let (org_id, org_paths) = match org {
                    Some((id, paths)) => (Some(id), paths),
                    None => (None, Vec::new()),
                };
                Case {
                    caller,
                    caller_account,
                    org_id,
                    org_paths,
                    action,
                    resource,
                    resource_account,
                    context,
                    key_policy,
                    identity,
                    grants,
                }
            },
        )
}

impl Case {
    fn request(&self) -> Request<'_> {
        Request {
            caller: Caller {
                arn: &self.caller,
                account: &self.caller_account,
                org_id: self.org_id.as_deref(),
                org_paths: &self.org_paths,
            },
            action: &self.action,
            resource: &self.resource,
            resource_account: &self.resource_account,
            context: self.context.clone(),
        }
    }

    fn grants(&self) -> Vec<GrantView<'_>> {
        self.grants
            .iter()
            .map(|(id, grantee, operations)| GrantView {
                grant_id: id,
                grantee,
                operations,
            })
            .collect()
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2048))]

    #[test]
    fn glob_agrees_on_ascii(pattern in ascii_text(10), text in ascii_text(12)) {
        prop_assert_eq!(glob(&pattern, &text), glob_chars(&pattern, &text));
    }

    #[test]
    fn glob_agrees_beyond_ascii(pattern in tricky_text(8), text in tricky_text(10)) {
        prop_assert_eq!(glob(&pattern, &text), glob_chars(&pattern, &text));
    }

    #[test]
    fn action_matching_agrees(pattern in tricky_text(8), text in tricky_text(10)) {
        prop_assert_eq!(action_matches(&pattern, &text), ref_action_matches(&pattern, &text));
    }

    #[test]
    fn action_matching_agrees_on_ascii(pattern in ascii_text(10), text in ascii_text(12)) {
        prop_assert_eq!(action_matches(&pattern, &text), ref_action_matches(&pattern, &text));
    }

    #[test]
    fn arn_parsing_agrees(
        text in prop_oneof![
            caller_arn(),
            principal_entry(),
            "[a-z0-9:/-]{0,30}",
            tricky_text(20),
            account().prop_map(|a| format!("arn:aws:iam::{a}:root:extra")),
        ]
    ) {
        prop_assert_eq!(parse_root_account(&text), ref_parse_root_account(&text));
        prop_assert_eq!(principal_account(&text), ref_principal_account(&text));
        prop_assert_eq!(Caller::new(&text, "111111111111").role_arn(), ref_role_arn(&text));
    }

    #[test]
    fn context_lookup_agrees(context in context(), key in prop_oneof![condition_key(), tricky_text(12)]) {
        prop_assert_eq!(context.get(&key), ref_context_get(&context, &key));
        prop_assert_eq!(context.contains(&key), ref_context_get(&context, &key).is_some());
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2048))]

    #[test]
    fn kms_evaluation_agrees(case in case()) {
        let req = case.request();
        let identity: Vec<&Policy> = case.identity.iter().collect();
        let grants = case.grants();
        let fast = evaluate_kms(&req, &case.key_policy, &identity, &grants);
        let plain = ref_evaluate_kms(&req, &case.key_policy, &identity, &grants);
        prop_assert_eq!(&fast, &plain);
        prop_assert_eq!(
            evaluate_kms_outcome(&req, &case.key_policy, &identity, &grants),
            plain.outcome
        );
    }

    #[test]
    fn several_actions_at_once_agree(case in case(), others in prop::collection::vec(action(), 0..4)) {
        let identity: Vec<&Policy> = case.identity.iter().collect();
        let grants = case.grants();
        let mut actions: Vec<&str> = vec![&case.action];
        actions.extend(others.iter().map(String::as_str));
        let plain = actions.iter().position(|action| {
            let req = Request { action, ..case.request() };
            ref_evaluate_kms(&req, &case.key_policy, &identity, &grants).outcome != Outcome::Allow
        });
        prop_assert_eq!(
            first_kms_refusal(&case.request(), &actions, &case.key_policy, &identity, &grants),
            plain
        );
    }

    #[test]
    fn identity_evaluation_agrees(case in case()) {
        let req = case.request();
        let identity: Vec<&Policy> = case.identity.iter().collect();
        let fast = evaluate_identity(&req, &identity);
        let plain = ref_evaluate_identity(&req, &identity);
        prop_assert_eq!(&fast, &plain);
        prop_assert_eq!(evaluate_identity_outcome(&req, &identity), plain.outcome);
    }
}

/// The generated cases reach every outcome, so the agreement above is not
/// vacuous.
#[test]
fn generated_cases_reach_every_outcome() {
    use proptest::strategy::ValueTree;
    use proptest::test_runner::TestRunner;

    let mut runner = TestRunner::deterministic();
    let strategy = case();
    let mut seen: BTreeMap<String, usize> = BTreeMap::new();
    for _ in 0..2000 {
        let case = strategy.new_tree(&mut runner).expect("a case").current();
        let req = case.request();
        let identity: Vec<&Policy> = case.identity.iter().collect();
        let decision = evaluate_kms(&req, &case.key_policy, &identity, &case.grants());
        let label = match (
            &decision.outcome,
            decision.allowed_by.first().map(|r| &r.source),
        ) {
            (Outcome::Allow, Some(PolicySource::Grant { .. })) => "allow by grant".to_owned(),
            (Outcome::Allow, by) => {
                format!("allow ({} refs, first {by:?})", decision.allowed_by.len())
                    .split(" {")
                    .next()
                    .unwrap_or_default()
                    .to_owned()
            }
            (outcome, _) => format!("{outcome:?} {:?}", decision.missing),
        };
        *seen.entry(label).or_default() += 1;
    }
    let has = |prefix: &str| seen.keys().any(|label| label.starts_with(prefix));
    for wanted in [
        "allow by grant",
        "allow (1 refs",
        "allow (2 refs",
        "ExplicitDeny",
        "ImplicitDeny [CrossAccountNotPermitted]",
        "ImplicitDeny [KeyPolicyAllow]",
        "ImplicitDeny [IdentityPolicyAllow]",
        "ImplicitDeny [KeyPolicyAllow, IdentityPolicyAllow]",
    ] {
        assert!(has(wanted), "no generated case gives {wanted}: {seen:?}");
    }
}

// ------------------------------------------------------------ printing

/// A document with statements in any key order, unknown keys at both
/// levels, and either `"Statement"` form.
fn document() -> impl Strategy<Value = Value> {
    let extra_value = prop_oneof![
        Just(json!(1.5)),
        Just(json!("x\u{e9}\"\\\n")),
        Just(json!([1, {"a": null}])),
        Just(json!(true)),
    ];
    // Statements are generated with their keys in printing order; half of
    // them are shuffled.
    let statement = (
        statement(true),
        prop::collection::vec(("x-[a-z]{1,3}", extra_value.clone()), 0..3),
        any::<bool>(),
    )
        .prop_flat_map(|(st, extra, shuffle)| {
            let mut entries: Vec<(String, Value)> = match st {
                Value::Object(map) => map.into_iter().collect(),
                _ => Vec::new(),
            };
            entries.extend(extra);
            if shuffle {
                Just(entries).prop_shuffle().boxed()
            } else {
                Just(entries).boxed()
            }
        })
        .prop_map(|entries| Value::Object(entries.into_iter().collect()));
    (
        prop::collection::vec(statement, 0..4),
        any::<bool>(),
        prop::option::of(Just("2012-10-17")),
        prop::option::of("[a-z0-9-]{1,6}"),
        prop::option::of(("x-[a-z]{1,3}", extra_value)),
    )
        .prop_map(|(mut statements, object_form, version, id, extra)| {
            let statement = match (object_form, statements.len()) {
                (true, 1) => statements.pop().unwrap_or(Value::Null),
                _ => Value::Array(statements),
            };
            let mut entries: Vec<(String, Value)> = vec![("Statement".into(), statement)];
            entries.extend(version.map(|v| ("Version".to_owned(), json!(v))));
            entries.extend(id.map(|id| ("Id".to_owned(), json!(id))));
            entries.extend(extra);
            entries
        })
        .prop_shuffle()
        .prop_map(|entries| Value::Object(entries.into_iter().collect()))
}

/// What may happen to a parsed policy before it is printed again.
#[derive(Debug, Clone)]
enum Edit {
    None,
    Push,
    Remove,
    Rename,
    ReservedExtra,
    Swap,
    Duplicate,
    AddExtra,
    ReverseExtras,
}

fn edit() -> impl Strategy<Value = Edit> {
    prop::sample::select(vec![
        Edit::None,
        Edit::Push,
        Edit::Remove,
        Edit::Rename,
        Edit::ReservedExtra,
        Edit::Swap,
        Edit::Duplicate,
        Edit::AddExtra,
        Edit::ReverseExtras,
    ])
}

fn apply(policy: &mut Policy, edit: &Edit) {
    match edit {
        Edit::None => {}
        Edit::Push => {
            let mut st = Statement::new(Effect::Deny);
            st.action = Some(OneOrMany::One("kms:*".to_owned()));
            policy.statements.push(st);
        }
        Edit::Remove => {
            policy.statements.pop();
        }
        Edit::Rename => {
            if let Some(st) = policy.statements.first_mut() {
                st.sid = Some("renamed".to_owned());
            }
        }
        Edit::ReservedExtra => {
            policy.extra.insert("Version".to_owned(), json!("shadowed"));
            if let Some(st) = policy.statements.first_mut() {
                st.extra.insert("Effect".to_owned(), json!("Deny"));
            }
        }
        Edit::Swap => policy.statements.reverse(),
        Edit::Duplicate => {
            if let Some(st) = policy.statements.first().cloned() {
                policy.statements.push(st);
            }
        }
        Edit::AddExtra => {
            if let Some(st) = policy.statements.first_mut() {
                st.extra.insert("x-added".to_owned(), json!(1));
            }
        }
        Edit::ReverseExtras => {
            for st in &mut policy.statements {
                let entries: Vec<(String, Value)> =
                    std::mem::take(&mut st.extra).into_iter().collect();
                st.extra = entries.into_iter().rev().collect();
            }
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(1024))]

    /// Printing straight from the model gives what printing the JSON value
    /// of `to_value` gives, before and after edits.
    #[test]
    fn printing_matches_the_json_value(value in document(), edits in prop::collection::vec(edit(), 0..3)) {
        let mut policy = Policy::from_value(value).expect("a generated document parses");
        for edit in &edits {
            apply(&mut policy, edit);
        }
        let reference = policy.to_value();
        prop_assert_eq!(policy.to_json(), reference.to_string());
        prop_assert_eq!(policy.json_len(), reference.to_string().len());
        prop_assert!(policy.json_len() <= policy.json_len_bound());
        prop_assert_eq!(
            policy.to_json_pretty(),
            serde_json::to_string_pretty(&reference).expect("a value prints")
        );
        prop_assert_eq!(serde_json::to_value(&policy).expect("a policy converts"), reference);
        for st in &policy.statements {
            prop_assert_eq!(
                serde_json::to_string(st).expect("a statement prints"),
                Value::Object(st.to_map(None)).to_string()
            );
        }
        if let Some(Principal::Map(_) | Principal::Any) = policy.statements.first().and_then(|st| st.principal.as_ref()) {
            let principal = policy.statements[0].principal.as_ref().expect("checked");
            let expected = match principal {
                Principal::Any => json!("*"),
                Principal::Map(map) => Value::Object(map.clone()),
            };
            prop_assert_eq!(serde_json::to_value(principal).expect("a principal converts"), expected);
        }
    }
}

// ------------------------------------------------------------ reading

/// Ways to spoil a document's text, so that the direct reader meets
/// everything the general path handles.
fn spoil(text: &str, how: u8, at: usize) -> String {
    let cut = |s: &str, at: usize| {
        let at = at % (s.len() + 1);
        (0..=at).rev().find(|&i| s.is_char_boundary(i)).unwrap_or(0)
    };
    match how % 9 {
        0 => text.to_owned(),
        // Malformed or truncated JSON.
        1 => text[..cut(text, at)].to_owned(),
        // Trailing text.
        2 => format!("{text} x"),
        3 => format!("{text}  \n"),
        // A key written twice, at the top and in a statement.
        4 => text.replacen('{', r#"{"Id": "a", "Id": "b", "#, 1),
        5 => text.replacen(r#""Effect""#, r#""Effect": "Deny", "Effect""#, 1),
        // Wrong shapes.
        6 => text.replacen(r#""Allow""#, r#""allow""#, 1),
        7 => text.replacen(r#""Action": "#, r#""Action": 5, "x-Action": "#, 1),
        _ => text.replacen(r#""Resource": "#, r#""Resource": [1], "x-Resource": "#, 1),
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(1024))]

    /// Reading straight from the text gives exactly what reading through a
    /// JSON value gives: the same policy, key orders and form, or the same
    /// error.
    #[test]
    fn direct_reading_matches_the_general_path(
        value in document(),
        pretty in any::<bool>(),
        how in any::<u8>(),
        at in any::<usize>(),
    ) {
        let text = if pretty {
            serde_json::to_string_pretty(&value).expect("a value prints")
        } else {
            value.to_string()
        };
        let text = spoil(&text, how, at);
        let direct = Policy::parse(&text);
        let general = Policy::parse_via_value(&text);
        match (&direct, &general) {
            (Ok(a), Ok(b)) => prop_assert_eq!(a.internals(), b.internals()),
            _ => prop_assert_eq!(direct, general),
        }
    }
}

#[test]
fn direct_reading_matches_on_the_fixtures() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../testdata/policies");
    let mut seen = 0;
    for sub in ["key", "identity", "roundtrip", "share"] {
        for entry in std::fs::read_dir(dir.join(sub)).expect("fixture directory") {
            let path = entry.expect("directory entry").path();
            if path.extension().is_some_and(|e| e == "json") {
                let text = std::fs::read_to_string(&path).expect("fixture");
                let direct = Policy::parse(&text);
                let general = Policy::parse_via_value(&text);
                match (&direct, &general) {
                    (Ok(a), Ok(b)) => assert_eq!(a.internals(), b.internals(), "{path:?}"),
                    _ => assert_eq!(direct, general, "{path:?}"),
                }
                seen += 1;
            }
        }
    }
    assert!(seen >= 20, "expected the policy fixtures, read {seen}");
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2048))]

    /// Leaving out the key orders of statements that are in printing order
    /// prints every document exactly as remembering them would, whatever
    /// edits follow.
    #[test]
    fn layouts_in_printing_order_are_not_needed(
        value in document(),
        edits in prop::collection::vec(edit(), 0..4),
    ) {
        let text = value.to_string();
        let lean = Policy::parse(&text).expect("a generated document parses");
        crate::document::KEEP_LAYOUTS.with(|keep| keep.set(true));
        let full = Policy::parse(&text);
        let full_via_value = Policy::parse_via_value(&text);
        crate::document::KEEP_LAYOUTS.with(|keep| keep.set(false));
        let (mut lean, mut full) = (lean, full.expect("a generated document parses"));
        prop_assert_eq!(
            full.internals(),
            full_via_value.expect("a generated document parses").internals()
        );
        for edit in &edits {
            apply(&mut lean, edit);
            apply(&mut full, edit);
        }
        prop_assert_eq!(lean.to_json(), full.to_json());
        prop_assert_eq!(lean.to_json_pretty(), full.to_json_pretty());
        prop_assert_eq!(lean.to_value(), full.to_value());
        prop_assert_eq!(lean.clone().to_json(), full.clone().to_json());
    }
}

/// The generated documents include some whose statements are in printing
/// order and some that are not, so both ways of reading are exercised.
#[test]
fn generated_documents_are_in_and_out_of_printing_order() {
    use proptest::strategy::ValueTree;
    use proptest::test_runner::TestRunner;

    let mut runner = TestRunner::deterministic();
    let strategy = document();
    let (mut lean, mut kept) = (0, 0);
    for _ in 0..300 {
        let value = strategy
            .new_tree(&mut runner)
            .expect("a document")
            .current();
        let policy = Policy::parse(&value.to_string()).expect("a generated document parses");
        if policy.statements.is_empty() {
            continue;
        }
        if policy.internals().ends_with(", [])") {
            lean += 1;
        } else {
            kept += 1;
        }
    }
    assert!(
        lean > 30 && kept > 30,
        "{lean} without layouts, {kept} with"
    );
}

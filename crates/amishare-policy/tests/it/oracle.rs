//! A small evaluator written straight from the AWS policy evaluation logic,
//! for a subset of the policy language, to judge the crate's evaluator.
//!
//! It shares no code with the crate: statements are its own plain values,
//! which the property tests print to JSON for the crate to parse.
//! The subset: Allow and Deny; Action or NotAction and Resource or NotResource with `*` and `?` globs;
//! Principal `"*"` or AWS entries (account ids, root, user and role ARNs);
//! conditions with StringEquals, StringNotEquals, StringLike, Bool and
//! ArnLike, the `IfExists` suffix and the `ForAnyValue:` / `ForAllValues:`
//! prefixes; grants without constraints. No sessions or organizations.

use amishare_policy::Outcome;

/// A condition operator of the subset.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) enum Op {
    StringEquals,
    StringNotEquals,
    StringLike,
    Bool,
    ArnLike,
}

/// A set operator prefix.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) enum Set {
    Single,
    ForAnyValue,
    ForAllValues,
}

/// One operator and key of a Condition block, with the policy's values.
#[derive(Debug, Clone)]
pub(crate) struct Cond {
    pub(crate) set: Set,
    pub(crate) op: Op,
    pub(crate) if_exists: bool,
    pub(crate) key: String,
    pub(crate) values: Vec<String>,
}

/// A statement; `principal` is `None` in an identity policy.
#[derive(Debug, Clone)]
pub(crate) struct St {
    pub(crate) deny: bool,
    pub(crate) principal: Option<Vec<String>>,
    pub(crate) not_action: bool,
    pub(crate) actions: Vec<String>,
    pub(crate) not_resource: bool,
    pub(crate) resources: Vec<String>,
    pub(crate) conds: Vec<Cond>,
}

/// A grant on the key: who may call which operations (`Decrypt`, without
/// the `kms:` prefix).
#[derive(Debug, Clone)]
pub(crate) struct Grant {
    pub(crate) grantee: String,
    pub(crate) operations: Vec<String>,
}

/// The caller: `arn:aws:iam::<account>:root`, `:user/<name>` or `:role/<name>`.
#[derive(Debug, Clone)]
pub(crate) struct Who {
    pub(crate) arn: String,
    pub(crate) account: String,
}

impl Who {
    fn is_root(&self) -> bool {
        self.arn == format!("arn:aws:iam::{}:root", self.account)
    }
}

/// `*` matches any run of characters, `?` exactly one; nothing else is special.
fn glob(pattern: &[char], text: &[char]) -> bool {
    match pattern.split_first() {
        None => text.is_empty(),
        Some(('*', rest)) => (0..=text.len()).any(|skip| glob(rest, &text[skip..])),
        Some((p, rest)) => match text.split_first() {
            Some((t, text)) => (*p == '?' || p == t) && glob(rest, text),
            None => false,
        },
    }
}

fn like(pattern: &str, text: &str) -> bool {
    glob(
        &pattern.chars().collect::<Vec<_>>(),
        &text.chars().collect::<Vec<_>>(),
    )
}

/// A condition operator's test of one request value against one policy value.
fn op_matches(op: Op, policy: &str, value: &str) -> bool {
    match op {
        Op::StringEquals | Op::StringNotEquals => policy == value,
        Op::StringLike => like(policy, value),
        Op::Bool => policy.to_lowercase() == value.to_lowercase(),
        // Each of the six colon-separated parts separately, with globs.
        Op::ArnLike => {
            let p: Vec<&str> = policy.splitn(6, ':').collect();
            let v: Vec<&str> = value.splitn(6, ':').collect();
            p.len() == 6 && v.len() == 6 && p.iter().zip(&v).all(|(p, v)| like(p, v))
        }
    }
}

fn cond_holds(cond: &Cond, context: &[(String, Vec<String>)]) -> bool {
    let found = context
        .iter()
        .find(|(key, _)| key.to_lowercase() == cond.key.to_lowercase());
    let Some((_, values)) = found else {
        // A missing key: IfExists and ForAllValues hold, ForAnyValue does
        // not, and a single-valued operator holds only when negated.
        return cond.if_exists
            || cond.set == Set::ForAllValues
            || (cond.set == Set::Single && cond.op == Op::StringNotEquals);
    };
    let negated = cond.op == Op::StringNotEquals;
    // A request value passes when it matches some policy value (negated: none).
    let passes =
        |value: &String| cond.values.iter().any(|p| op_matches(cond.op, p, value)) != negated;
    match cond.set {
        Set::Single | Set::ForAnyValue => values.iter().any(passes),
        Set::ForAllValues => values.iter().all(passes),
    }
}

/// How a statement covers the caller: not at all, by name, or through the
/// caller's account root (which delegates to the account's IAM policies).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Covers {
    No,
    Direct,
    Account,
}

/// How a key-policy statement's Principal covers the caller.
fn covers(st: &St, who: &Who) -> Covers {
    let root = format!("arn:aws:iam::{}:root", who.account);
    let mut best = Covers::No;
    for entry in st.principal.iter().flatten() {
        if entry == "*" || *entry == who.arn {
            return Covers::Direct;
        }
        if *entry == who.account || *entry == root {
            best = if who.is_root() {
                Covers::Direct
            } else {
                Covers::Account
            };
        }
    }
    best
}

/// Whether action, resource and conditions match (the principal aside).
fn matches(st: &St, action: &str, resource: &str, context: &[(String, Vec<String>)]) -> bool {
    let action_listed = st
        .actions
        .iter()
        .any(|p| like(&p.to_lowercase(), &action.to_lowercase()));
    let resource_listed = st.resources.iter().any(|p| like(p, resource));
    action_listed != st.not_action
        && resource_listed != st.not_resource
        && st.conds.iter().all(|c| cond_holds(c, context))
}

/// The request context with what the caller implies.
fn full_context(who: &Who, context: &[(String, Vec<String>)]) -> Vec<(String, Vec<String>)> {
    let mut all = context.to_vec();
    all.push(("kms:CallerAccount".into(), vec![who.account.clone()]));
    all.push(("aws:PrincipalArn".into(), vec![who.arn.clone()]));
    all
}

/// The KMS operations that can ever be called across accounts, among those
/// the generator asks for.
const CROSS_ACCOUNT: [&str; 6] = [
    "kms:Decrypt",
    "kms:Encrypt",
    "kms:CreateGrant",
    "kms:DescribeKey",
    "kms:GenerateDataKeyWithoutPlaintext",
    "kms:ReEncryptFrom",
];

/// Whether `grant` lets `who` call `action`: a grant allows its grantee the
/// operations it lists, without a key-policy or IAM allow (AWS KMS Developer
/// Guide, "Grants in AWS KMS"). A grantee that is an account's root is taken
/// to cover that account's principals, as `shared/docs/aws-semantics.md`
/// §A.5 reads a point AWS leaves open.
pub(crate) fn grant_allows(grant: &Grant, who: &Who, action: &str) -> bool {
    let Some(operation) = action.strip_prefix("kms:") else {
        return false;
    };
    let root = format!("arn:aws:iam::{}:root", who.account);
    (grant.grantee == who.arn || grant.grantee == root)
        && grant.operations.iter().any(|o| o == operation)
}

/// A KMS request's outcome: an explicit deny in either policy wins;
/// within the key's account the key policy allows by itself when it names
/// the caller, or with an IAM policy when it names the account root; across
/// accounts both must allow (the other account's root needs no IAM policy);
/// a grant for the caller and the action allows by itself.
pub(crate) fn kms_outcome(
    who: &Who,
    action: &str,
    key: (&str, &str),
    key_policy: &[St],
    identity: &[St],
    grants: &[Grant],
    context: &[(String, Vec<String>)],
) -> Outcome {
    let (key_arn, key_account) = key;
    let context = full_context(who, context);
    let key_says = |deny: bool| -> Vec<Covers> {
        let applying = key_policy
            .iter()
            .filter(|st| st.deny == deny && matches(st, action, key_arn, &context));
        applying
            .map(|st| covers(st, who))
            .filter(|c| *c != Covers::No)
            .collect()
    };
    let iam_says = |deny: bool| {
        let mut applying = identity.iter().filter(|st| st.deny == deny);
        applying.any(|st| matches(st, action, key_arn, &context))
    };
    if !key_says(true).is_empty() || iam_says(true) {
        return Outcome::ExplicitDeny;
    }
    let allows = key_says(false);
    let iam_allows = iam_says(false);
    let allowed = if who.account == key_account {
        allows.contains(&Covers::Direct) || (allows.contains(&Covers::Account) && iam_allows)
    } else {
        CROSS_ACCOUNT.contains(&action) && !allows.is_empty() && (iam_allows || who.is_root())
    };
    allowed_or_not(allowed || grants.iter().any(|g| grant_allows(g, who, action)))
}

fn allowed_or_not(allowed: bool) -> Outcome {
    if allowed {
        Outcome::Allow
    } else {
        Outcome::ImplicitDeny
    }
}

/// The outcome of an action without a resource policy: IAM alone, and an
/// account root is allowed unless denied.
pub(crate) fn identity_outcome(
    who: &Who,
    action: &str,
    resource: &str,
    identity: &[St],
    context: &[(String, Vec<String>)],
) -> Outcome {
    let context = full_context(who, context);
    let says = |deny: bool| {
        let mut applying = identity.iter().filter(|st| st.deny == deny);
        applying.any(|st| matches(st, action, resource, &context))
    };
    if says(true) {
        return Outcome::ExplicitDeny;
    }
    allowed_or_not(says(false) || who.is_root())
}

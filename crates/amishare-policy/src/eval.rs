//! Authorization the way AWS KMS decides it.
//!
//! The order follows the KMS evaluation logic: an explicit deny anywhere wins;
//! across accounts only a fixed set of actions can ever succeed; then the key
//! policy, the caller's IAM policies and grants are combined by the
//! same-account / cross-account rules. Denials report every missing link so
//! that a failed share can say what to fix.

use std::borrow::Cow;
use std::collections::BTreeMap;

use serde_json::Value;

use crate::document::{Effect, OneOrMany, Policy, Principal, Statement};

/// The principal making a request.
#[derive(Debug, Clone, Copy)]
pub struct Caller<'a> {
    /// `arn:aws:iam::<acct>:root`, `:user/<name>`, `:role/<name>` or
    /// `arn:aws:sts::<acct>:assumed-role/<role>/<session>`.
    pub arn: &'a str,
    /// The caller's 12-digit account id.
    pub account: &'a str,
    /// Organization of the caller's account; fills `aws:PrincipalOrgID`.
    pub org_id: Option<&'a str>,
    /// `o-xxx/r-xxxx/ou-xxxx-xxxxxxxx/` entries; fill `aws:PrincipalOrgPaths`.
    pub org_paths: &'a [String],
}

impl<'a> Caller<'a> {
    /// A caller outside any organization.
    pub fn new(arn: &'a str, account: &'a str) -> Caller<'a> {
        Caller {
            arn,
            account,
            org_id: None,
            org_paths: &[],
        }
    }
}

impl Caller<'_> {
    /// True for the account root user, which needs no IAM policy.
    pub fn is_root(&self) -> bool {
        parse_root_account(self.arn).is_some()
    }

    /// The role behind an assumed-role session: key policies name roles, not
    /// sessions.
    pub fn role_arn(&self) -> Option<String> {
        let (partition, account, role) = assumed_role_parts(self.arn)?;
        Some(format!("arn:{partition}:iam::{account}:role/{role}"))
    }
}

/// `(partition, account, role)` of an
/// `arn:<partition>:sts::<account>:assumed-role/<role>/<session>` ARN.
fn assumed_role_parts(arn: &str) -> Option<(&str, &str, &str)> {
    // `arn:<partition>:sts::<account>:<resource>`, read left to right.
    let (partition, rest) = split_colon(arn.strip_prefix("arn:")?)?;
    let (account, resource) = split_colon(rest.strip_prefix("sts::")?)?;
    let rest = resource.strip_prefix("assumed-role/")?;
    let (role, _session) = rest.split_once('/')?;
    if role.is_empty() {
        return None;
    }
    Some((partition, account, role))
}

/// One authorization question: may `caller` perform `action` on `resource`?
#[derive(Debug, Clone)]
pub struct Request<'a> {
    /// Who asks.
    pub caller: Caller<'a>,
    /// `"kms:CreateGrant"`, `"ec2:CopyImage"`, ...
    pub action: &'a str,
    /// Key ARN, an EC2 resource ARN, or `"*"`.
    pub resource: &'a str,
    /// Account that owns the resource (the key owner for KMS).
    pub resource_account: &'a str,
    /// Request condition keys beyond the ones derived from the caller.
    pub context: Context,
}

/// Request condition keys, looked up case-insensitively.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Context {
    pub(crate) values: BTreeMap<String, Vec<String>>,
}

impl Context {
    /// An empty context.
    pub fn new() -> Self {
        Context::default()
    }

    /// Sets a single-valued key.
    pub fn with(self, key: &str, value: impl Into<String>) -> Self {
        self.with_values(key, vec![value.into()])
    }

    /// Sets a multi-valued key.
    pub fn with_values(mut self, key: &str, values: Vec<String>) -> Self {
        self.values.insert(key.to_lowercase(), values);
        self
    }

    /// Sets a boolean key as `"true"` / `"false"`.
    pub fn with_bool(self, key: &str, value: bool) -> Self {
        self.with(key, if value { "true" } else { "false" })
    }

    /// The values of a key, if the request has it.
    pub fn get(&self, key: &str) -> Option<&[String]> {
        if self.values.is_empty() {
            return None;
        }
        // Keys are stored lowercased; an ASCII key is lowercased on the stack.
        const STACK: usize = 64;
        if !key.is_ascii() || key.len() > STACK {
            return self.values.get(&key.to_lowercase()).map(Vec::as_slice);
        }
        if !key.bytes().any(|b| b.is_ascii_uppercase()) {
            return self.values.get(key).map(Vec::as_slice);
        }
        let mut buf = [0u8; STACK];
        let lower = &mut buf[..key.len()];
        lower.copy_from_slice(key.as_bytes());
        lower.make_ascii_lowercase();
        match std::str::from_utf8(lower) {
            Ok(lower) => self.values.get(lower).map(Vec::as_slice),
            Err(_) => self.values.get(&key.to_lowercase()).map(Vec::as_slice),
        }
    }

    /// True if the request has this key.
    pub fn contains(&self, key: &str) -> bool {
        self.get(key).is_some()
    }

    /// What EC2 sets when it calls KMS on a principal's behalf in `region`:
    /// `kms:ViaService = ec2.<region>.amazonaws.com`, `kms:GrantIsForAWSResource = true`.
    pub fn via_ec2(region: &str) -> Context {
        Context::new()
            .with("kms:ViaService", format!("ec2.{region}.amazonaws.com"))
            .with_bool("kms:GrantIsForAWSResource", true)
    }
}

/// A grant on the key, as far as authorization is concerned.
#[derive(Debug, Clone, Copy)]
pub struct GrantView<'a> {
    /// The grant id, reported when the grant is what allowed a request.
    pub grant_id: &'a str,
    /// Principal ARN (an account root grantee covers that account's
    /// principals).
    pub grantee: &'a str,
    /// `"Decrypt"`, `"CreateGrant"`, ... (without the `kms:` prefix).
    pub operations: &'a [String],
}

/// The verdict.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// Some path allows and nothing denies.
    Allow,
    /// Nothing allows (AWS `AccessDenied` without an explicit deny).
    ImplicitDeny,
    /// A matching `Deny` statement decided.
    ExplicitDeny,
}

/// Where a deciding statement lives.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PolicySource {
    /// The key policy.
    KeyPolicy,
    /// The caller's identity policy at this index of the slice passed in.
    Identity {
        /// Index into `identity_policies`.
        index: usize,
    },
    /// A grant on the key.
    Grant {
        /// The grant's id.
        grant_id: String,
    },
}

/// A statement (or grant) that took part in a decision.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StatementRef {
    /// Which document.
    pub source: PolicySource,
    /// Statement index within that document (0 for a grant).
    pub index: usize,
    /// The statement's Sid, if any.
    pub sid: Option<String>,
}

/// A link that was missing for an implicit deny.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Missing {
    /// No key-policy statement allows this caller (and no grant).
    KeyPolicyAllow,
    /// The caller's own IAM policies do not allow it (needed across accounts,
    /// or for a delegation via the account root).
    IdentityPolicyAllow,
    /// The action can never be used across accounts.
    CrossAccountNotPermitted,
}

/// The result of an evaluation, with the reasons.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Decision {
    /// Allow, implicit deny or explicit deny.
    pub outcome: Outcome,
    /// The statements or grant that allowed (key policy first); empty unless
    /// allowed, and empty for an account root allowed by default.
    pub allowed_by: Vec<StatementRef>,
    /// The explicit `Deny` that decided, if any.
    pub denied_by: Option<StatementRef>,
    /// On implicit deny: every missing link.
    pub missing: Vec<Missing>,
}

impl Decision {
    /// True for [`Outcome::Allow`].
    pub fn is_allowed(&self) -> bool {
        self.outcome == Outcome::Allow
    }

    /// AWS-style text: `User: <arn> is not authorized to perform: kms:X on resource: <arn> because no resource-based policy allows the kms:X action`
    /// (`... because no identity-based policy allows ...`, `... with an explicit deny in a resource-based policy` / `an identity-based policy`).
    ///
    /// Empty for an allowed request.
    pub fn denial_message(&self, req: &Request<'_>) -> String {
        let head = format!(
            "User: {} is not authorized to perform: {} on resource: {}",
            req.caller.arn, req.action, req.resource
        );
        match self.outcome {
            Outcome::Allow => String::new(),
            Outcome::ExplicitDeny => {
                let kind = match self.denied_by.as_ref().map(|r| &r.source) {
                    Some(PolicySource::Identity { .. }) => "an identity-based",
                    _ => "a resource-based",
                };
                format!("{head} with an explicit deny in {kind} policy")
            }
            Outcome::ImplicitDeny => {
                let kind = if self.missing.contains(&Missing::IdentityPolicyAllow)
                    && !self.missing.contains(&Missing::KeyPolicyAllow)
                    && !self.missing.contains(&Missing::CrossAccountNotPermitted)
                {
                    "identity-based"
                } else {
                    "resource-based"
                };
                format!(
                    "{head} because no {kind} policy allows the {} action",
                    req.action
                )
            }
        }
    }
}

/// KMS: key policy + caller's identity policies + grants, with the cross-account rules.
pub fn evaluate_kms(
    req: &Request<'_>,
    key_policy: &Policy,
    identity_policies: &[&Policy],
    grants: &[GrantView<'_>],
) -> Decision {
    kms_verdict(req, key_policy, identity_policies, grants).into_decision(
        Some(key_policy),
        identity_policies,
        grants,
    )
}

/// The outcome [`evaluate_kms`] decides, without collecting the statements
/// and missing links behind it. It allocates only for a role session's
/// role ARN, a numeric condition value, or text beyond ASCII.
pub fn evaluate_kms_outcome(
    req: &Request<'_>,
    key_policy: &Policy,
    identity_policies: &[&Policy],
    grants: &[GrantView<'_>],
) -> Outcome {
    kms_verdict(req, key_policy, identity_policies, grants).outcome
}

/// Anything without a resource policy (EC2 actions): identity policies only; an account root caller is allowed unless explicitly denied.
pub fn evaluate_identity(req: &Request<'_>, identity_policies: &[&Policy]) -> Decision {
    identity_verdict(req, identity_policies).into_decision(None, identity_policies, &[])
}

/// The outcome [`evaluate_identity`] decides, without collecting the
/// statements and missing links behind it (allocating as little as
/// [`evaluate_kms_outcome`]).
pub fn evaluate_identity_outcome(req: &Request<'_>, identity_policies: &[&Policy]) -> Outcome {
    identity_verdict(req, identity_policies).outcome
}

/// A statement or grant that took part in a decision, by position.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Found {
    /// Statement index in the key policy.
    KeyPolicy(usize),
    /// Policy index in the identity policies, statement index in it.
    Identity(usize, usize),
    /// Index in the grants.
    Grant(usize),
}

/// Missing links as flags, reported in this order.
const MISSING_CROSS_ACCOUNT: u8 = 1;
const MISSING_KEY_POLICY: u8 = 2;
const MISSING_IDENTITY: u8 = 4;

/// A [`Decision`] by positions: what the evaluation finds before anything
/// is copied out of the policies.
struct Verdict {
    outcome: Outcome,
    allowed_by: [Option<Found>; 2],
    denied_by: Option<Found>,
    missing: u8,
}

impl Verdict {
    fn allow(first: Option<Found>, second: Option<Found>) -> Verdict {
        Verdict {
            outcome: Outcome::Allow,
            allowed_by: [first, second],
            denied_by: None,
            missing: 0,
        }
    }

    fn explicit_deny(by: Found) -> Verdict {
        Verdict {
            outcome: Outcome::ExplicitDeny,
            allowed_by: [None, None],
            denied_by: Some(by),
            missing: 0,
        }
    }

    fn implicit_deny(missing: u8) -> Verdict {
        Verdict {
            outcome: Outcome::ImplicitDeny,
            allowed_by: [None, None],
            denied_by: None,
            missing,
        }
    }

    fn into_decision(
        self,
        key_policy: Option<&Policy>,
        identity_policies: &[&Policy],
        grants: &[GrantView<'_>],
    ) -> Decision {
        let reference = |found: Found| match found {
            Found::KeyPolicy(index) => statement_ref(
                PolicySource::KeyPolicy,
                index,
                key_policy.map(|policy| &policy.statements[index]),
            ),
            Found::Identity(policy, index) => statement_ref(
                PolicySource::Identity { index: policy },
                index,
                Some(&identity_policies[policy].statements[index]),
            ),
            Found::Grant(index) => StatementRef {
                source: PolicySource::Grant {
                    grant_id: grants[index].grant_id.to_owned(),
                },
                index: 0,
                sid: None,
            },
        };
        let mut missing = Vec::new();
        for (flag, link) in [
            (MISSING_CROSS_ACCOUNT, Missing::CrossAccountNotPermitted),
            (MISSING_KEY_POLICY, Missing::KeyPolicyAllow),
            (MISSING_IDENTITY, Missing::IdentityPolicyAllow),
        ] {
            if self.missing & flag != 0 {
                missing.push(link);
            }
        }
        Decision {
            outcome: self.outcome,
            allowed_by: self
                .allowed_by
                .into_iter()
                .flatten()
                .map(reference)
                .collect(),
            denied_by: self.denied_by.map(reference),
            missing,
        }
    }
}

fn kms_verdict(
    req: &Request<'_>,
    key_policy: &Policy,
    identity_policies: &[&Policy],
    grants: &[GrantView<'_>],
) -> Verdict {
    let who = Who::new(&req.caller);
    let keys = Keys::new(&req.context, &req.caller, &who);
    decide_kms(
        req,
        req.action,
        &who,
        |effect| matching(key_policy, effect, req, &keys, &who, Kind::KeyPolicy),
        |effect| identity_first(effect, req, &keys, &who, identity_policies),
        grants,
    )
}

/// The KMS decision for `action`, given the key-policy statements and the
/// first identity-policy statement of an effect that apply to it.
fn decide_kms<I>(
    req: &Request<'_>,
    action: &str,
    who: &Who<'_>,
    key_policy: impl Fn(Effect) -> I,
    identity: impl Fn(Effect) -> Option<Found>,
    grants: &[GrantView<'_>],
) -> Verdict
where
    I: Iterator<Item = (usize, PrincipalMatch)>,
{
    // 1. An explicit deny anywhere wins.
    if let Some((index, _)) = key_policy(Effect::Deny).next() {
        return Verdict::explicit_deny(Found::KeyPolicy(index));
    }
    if let Some(denied) = identity(Effect::Deny) {
        return Verdict::explicit_deny(denied);
    }

    // 2. Most of the API is never available across accounts.
    let cross_account = req.caller.account != req.resource_account;
    if cross_account && !is_cross_account_action(action) {
        return Verdict::implicit_deny(MISSING_CROSS_ACCOUNT);
    }

    // 3. Key policy allows: naming the caller (or "*") directly, or only its
    // account root, which delegates to the account's IAM policies.
    let mut direct = None;
    let mut delegated = None;
    for (index, how) in key_policy(Effect::Allow) {
        let slot = match how {
            PrincipalMatch::Direct => &mut direct,
            PrincipalMatch::Account => &mut delegated,
        };
        if slot.is_none() {
            *slot = Some(index);
        }
    }
    // 4. The caller's own IAM policies.
    let identity = identity(Effect::Allow);
    // 5. Grants.
    let grant = grants
        .iter()
        .position(|g| grant_matches(g, action, who))
        .map(Found::Grant);

    if !cross_account {
        if let Some(direct) = direct {
            return Verdict::allow(Some(Found::KeyPolicy(direct)), None);
        }
        if let (Some(delegated), Some(identity)) = (delegated, identity) {
            return Verdict::allow(Some(Found::KeyPolicy(delegated)), Some(identity));
        }
        if grant.is_some() {
            return Verdict::allow(grant, None);
        }
        return Verdict::implicit_deny(if delegated.is_some() {
            MISSING_IDENTITY
        } else {
            MISSING_KEY_POLICY
        });
    }

    // Across accounts both sides must allow, whatever the key policy names;
    // only the other account's root needs no IAM policy.
    let key_allow = match (direct, delegated) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    };
    let identity_ok = identity.is_some() || who.is_root;
    if let (Some(key_allow), true) = (key_allow, identity_ok) {
        return Verdict::allow(Some(Found::KeyPolicy(key_allow)), identity);
    }
    if grant.is_some() {
        return Verdict::allow(grant, None);
    }
    let mut missing = 0;
    if key_allow.is_none() {
        missing |= MISSING_KEY_POLICY;
    }
    if !identity_ok {
        missing |= MISSING_IDENTITY;
    }
    Verdict::implicit_deny(missing)
}

/// Which of `actions`, each in place of `req.action`, is the first that
/// [`evaluate_kms_outcome`] would not allow; `None` when it allows them all.
///
/// A service calling KMS on a caller's behalf asks for several actions on
/// one key at once; principals, resources and conditions do not depend on
/// the action, so they are matched once for all of them.
pub fn first_kms_refusal(
    req: &Request<'_>,
    actions: &[&str],
    key_policy: &Policy,
    identity_policies: &[&Policy],
    grants: &[GrantView<'_>],
) -> Option<usize> {
    let who = Who::new(&req.caller);
    let keys = Keys::new(&req.context, &req.caller, &who);
    let key_statements: Vec<(usize, &Statement, PrincipalMatch)> = key_policy
        .statements
        .iter()
        .enumerate()
        .filter_map(|(index, st)| {
            let how = applies_to_any_action(st, req, &keys, &who, Kind::KeyPolicy)?;
            Some((index, st, how))
        })
        .collect();
    let identity_statements: Vec<(usize, usize, &Statement)> = identity_policies
        .iter()
        .enumerate()
        .flat_map(|(p, policy)| {
            policy
                .statements
                .iter()
                .enumerate()
                .map(move |(index, st)| (p, index, st))
        })
        .filter(|(_, _, st)| applies_to_any_action(st, req, &keys, &who, Kind::Identity).is_some())
        .collect();
    actions.iter().position(|action| {
        let key_policy = |effect: Effect| {
            key_statements
                .iter()
                .filter(move |(_, st, _)| st.effect == effect && action_applies(st, action))
                .map(|(index, _, how)| (*index, *how))
        };
        let identity = |effect: Effect| {
            identity_statements
                .iter()
                .find(|(_, _, st)| st.effect == effect && action_applies(st, action))
                .map(|(p, index, _)| Found::Identity(*p, *index))
        };
        decide_kms(req, action, &who, key_policy, identity, grants).outcome != Outcome::Allow
    })
}

fn identity_verdict(req: &Request<'_>, identity_policies: &[&Policy]) -> Verdict {
    let who = Who::new(&req.caller);
    let keys = Keys::new(&req.context, &req.caller, &who);
    if let Some(denied) = identity_first(Effect::Deny, req, &keys, &who, identity_policies) {
        return Verdict::explicit_deny(denied);
    }
    match identity_first(Effect::Allow, req, &keys, &who, identity_policies) {
        Some(allowed) => Verdict::allow(Some(allowed), None),
        None if who.is_root => Verdict::allow(None, None),
        None => Verdict::implicit_deny(MISSING_IDENTITY),
    }
}

/// Case-insensitive IAM glob (`*` and `?`), as used in `Action`.
pub fn action_matches(pattern: &str, action: &str) -> bool {
    let (p, t) = (pattern.as_bytes(), action.as_bytes());
    // Compare the pattern's literal head as it is read; most patterns end
    // there or in a single final `*`, and most mismatches show in the head.
    let mut i = 0;
    loop {
        let Some(&c) = p.get(i) else {
            return t.len() == p.len();
        };
        if c == b'*' || c == b'?' {
            break;
        }
        match t.get(i) {
            Some(&b) if c.is_ascii() && b.is_ascii() => {
                if !c.eq_ignore_ascii_case(&b) {
                    return false;
                }
            }
            None if c.is_ascii() => return false,
            _ => return action_matches_lowercased(pattern, action),
        }
        i += 1;
    }
    if i + 1 == p.len() && p[i] == b'*' {
        return true;
    }
    if pattern.is_ascii() && action.is_ascii() {
        glob_bytes(p, t, |p, t| p.eq_ignore_ascii_case(&t))
    } else {
        action_matches_lowercased(pattern, action)
    }
}

/// [`action_matches`] beyond ASCII: both sides lowercased, then globbed.
fn action_matches_lowercased(pattern: &str, action: &str) -> bool {
    glob_chars(&pattern.to_lowercase(), &action.to_lowercase())
}

/// The actions KMS permits across accounts; any other action fails across
/// accounts even when both policies allow it.
pub fn is_cross_account_action(action: &str) -> bool {
    const ACTIONS: [&str; 22] = [
        "Encrypt",
        "Decrypt",
        "ReEncrypt",
        "ReEncryptFrom",
        "ReEncryptTo",
        "GenerateDataKey",
        "GenerateDataKeyWithoutPlaintext",
        "GenerateDataKeyPair",
        "GenerateDataKeyPairWithoutPlaintext",
        "GenerateMac",
        "VerifyMac",
        "Sign",
        "Verify",
        "DeriveSharedSecret",
        "CreateGrant",
        "DescribeKey",
        "GetKeyRotationStatus",
        "GetPublicKey",
        "ListGrants",
        "RetireGrant",
        "RevokeGrant",
        "GenerateRandom",
    ];
    match kms_operation(action) {
        Some(op) => ACTIONS.iter().any(|a| a.eq_ignore_ascii_case(op)),
        None => false,
    }
}

/// The operation name of a `kms:` action.
fn kms_operation(action: &str) -> Option<&str> {
    // The service is what comes before the first `:`.
    let head = action.get(..4)?;
    head.eq_ignore_ascii_case("kms:").then(|| &action[4..])
}

/// How a key-policy principal covers the caller.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum PrincipalMatch {
    /// By its own ARN, its role, `"*"`, or the root naming itself.
    Direct,
    /// By its account only: a delegation to the account's IAM policies.
    Account,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    KeyPolicy,
    Identity,
}

/// The caller's names, computed once per evaluation.
struct Who<'a> {
    arn: &'a str,
    account: &'a str,
    /// The role behind an assumed-role session (the only name that has to be
    /// built).
    role_arn: Option<String>,
    is_root: bool,
}

impl<'a> Who<'a> {
    fn new(caller: &Caller<'a>) -> Who<'a> {
        Who {
            arn: caller.arn,
            account: caller.account,
            role_arn: caller.role_arn(),
            is_root: caller.is_root(),
        }
    }

    fn match_entry(&self, entry: &str) -> Option<PrincipalMatch> {
        if entry == "*" || entry == self.arn || self.role_arn.as_deref() == Some(entry) {
            return Some(PrincipalMatch::Direct);
        }
        let account = if is_account_id(entry) {
            Some(entry)
        } else {
            parse_root_account(entry)
        };
        match account {
            Some(account) if account == self.account => Some(if self.is_root {
                PrincipalMatch::Direct
            } else {
                PrincipalMatch::Account
            }),
            _ => None,
        }
    }

    fn match_principal(&self, principal: &Principal) -> Option<PrincipalMatch> {
        let mut best = None;
        for entry in principal.aws_iter() {
            match self.match_entry(entry) {
                Some(PrincipalMatch::Direct) => return Some(PrincipalMatch::Direct),
                Some(PrincipalMatch::Account) => best = Some(PrincipalMatch::Account),
                None => {}
            }
        }
        best
    }
}

fn statement_ref(source: PolicySource, index: usize, st: Option<&Statement>) -> StatementRef {
    StatementRef {
        source,
        index,
        sid: st.and_then(|st| st.sid.clone()),
    }
}

/// Statements of `policy` with this effect that apply to the request, by
/// index, with how the principal matched.
fn matching<'p>(
    policy: &'p Policy,
    effect: Effect,
    req: &'p Request<'_>,
    keys: &'p Keys<'_>,
    who: &'p Who<'_>,
    kind: Kind,
) -> impl Iterator<Item = (usize, PrincipalMatch)> + 'p {
    policy
        .statements
        .iter()
        .enumerate()
        .filter_map(move |(index, st)| {
            if st.effect != effect {
                return None;
            }
            let how = applies(st, req, keys, who, kind)?;
            Some((index, how))
        })
}

/// The first identity-policy statement with this effect that applies.
fn identity_first(
    effect: Effect,
    req: &Request<'_>,
    keys: &Keys<'_>,
    who: &Who<'_>,
    policies: &[&Policy],
) -> Option<Found> {
    policies.iter().enumerate().find_map(|(p, policy)| {
        matching(policy, effect, req, keys, who, Kind::Identity)
            .next()
            .map(|(index, _)| Found::Identity(p, index))
    })
}

/// Whether the statement applies: principal, action, resource and
/// conditions all match.
fn applies(
    st: &Statement,
    req: &Request<'_>,
    keys: &Keys<'_>,
    who: &Who<'_>,
    kind: Kind,
) -> Option<PrincipalMatch> {
    let how = principal_applies(st, who, kind)?;
    if !action_applies(st, req.action) || !resource_applies(st, req.resource) {
        return None;
    }
    conditions_apply(st, keys).then_some(how)
}

/// [`applies`] but for the action: whether the statement applies to the
/// request with some action its `Action` allows.
fn applies_to_any_action(
    st: &Statement,
    req: &Request<'_>,
    keys: &Keys<'_>,
    who: &Who<'_>,
    kind: Kind,
) -> Option<PrincipalMatch> {
    let how = principal_applies(st, who, kind)?;
    (resource_applies(st, req.resource) && conditions_apply(st, keys)).then_some(how)
}

/// How the statement's principal covers the caller, if it does.
fn principal_applies(st: &Statement, who: &Who<'_>, kind: Kind) -> Option<PrincipalMatch> {
    match kind {
        // Identity policies are attached to the caller; a Principal there has
        // no meaning.
        Kind::Identity => Some(PrincipalMatch::Direct),
        Kind::KeyPolicy => match (&st.principal, &st.not_principal) {
            (Some(p), _) => who.match_principal(p),
            // NotPrincipal exempts only the principals it names exactly: an
            // account root listed there exempts the root, not every
            // principal of the account.
            (None, Some(np)) => match who.match_principal(np) {
                Some(PrincipalMatch::Direct) => None,
                _ => Some(PrincipalMatch::Direct),
            },
            (None, None) => None,
        },
    }
}

fn conditions_apply(st: &Statement, keys: &Keys<'_>) -> bool {
    st.condition
        .as_ref()
        .is_none_or(|conditions| conditions_match(conditions, keys))
}

fn action_applies(st: &Statement, action: &str) -> bool {
    let any = |list: &OneOrMany<String>| list.iter().any(|p| action_matches(p, action));
    match (&st.action, &st.not_action) {
        (None, None) => false,
        (action_list, not_action) => {
            action_list.as_ref().is_none_or(any) && !not_action.as_ref().is_some_and(any)
        }
    }
}

fn resource_applies(st: &Statement, resource: &str) -> bool {
    // In a key policy "*" means "this key"; other patterns are matched
    // against the key ARN.
    let matches = |pattern: &String| pattern == "*" || glob(pattern, resource);
    let any = |list: &OneOrMany<String>| list.iter().any(matches);
    match (&st.resource, &st.not_resource) {
        (None, None) => false,
        (resources, not_resources) => {
            resources.as_ref().is_none_or(any) && !not_resources.as_ref().is_some_and(any)
        }
    }
}

fn grant_matches(grant: &GrantView<'_>, action: &str, who: &Who<'_>) -> bool {
    let Some(op) = kms_operation(action) else {
        return false;
    };
    let grantee_ok = grant.grantee == who.arn
        || who.role_arn.as_deref() == Some(grant.grantee)
        || parse_root_account(grant.grantee) == Some(who.account)
        || grant.grantee == who.account;
    grantee_ok && grant.operations.iter().any(|o| o.eq_ignore_ascii_case(op))
}

/// The values of one condition key.
#[derive(Debug, Clone, Copy)]
enum Values<'a> {
    /// As the request context lists them.
    List(&'a [String]),
    /// One value derived from the caller.
    One(&'a str),
}

impl<'a> Values<'a> {
    fn is_empty(self) -> bool {
        matches!(self, Values::List(values) if values.is_empty())
    }

    fn iter(self) -> impl Iterator<Item = &'a str> {
        let (one, list): (Option<&'a str>, &'a [String]) = match self {
            Values::One(value) => (Some(value), &[]),
            Values::List(values) => (None, values),
        };
        one.into_iter().chain(list.iter().map(String::as_str))
    }
}

/// What the caller implies about the condition keys a request does not set.
struct CallerKeys<'a> {
    account: &'a str,
    /// `aws:PrincipalArn`: the role of a session, else the caller's ARN.
    principal_arn: &'a str,
    org_id: Option<&'a str>,
    org_paths: &'a [String],
}

/// The request context plus what the caller implies, unless the request set
/// it already; looked up without copying either.
struct Keys<'a> {
    context: &'a Context,
    caller: Option<CallerKeys<'a>>,
}

impl<'a> Keys<'a> {
    fn new(context: &'a Context, caller: &Caller<'a>, who: &'a Who<'_>) -> Keys<'a> {
        Keys {
            context,
            caller: Some(CallerKeys {
                account: caller.account,
                principal_arn: who.role_arn.as_deref().unwrap_or(caller.arn),
                org_id: caller.org_id,
                org_paths: caller.org_paths,
            }),
        }
    }

    /// The request context alone.
    #[cfg(test)]
    fn request_only(context: &'a Context) -> Keys<'a> {
        Keys {
            context,
            caller: None,
        }
    }

    /// The values of a key, compared case-insensitively.
    fn get(&self, key: &str) -> Option<Values<'a>> {
        if let Some(values) = self.context.get(key) {
            return Some(Values::List(values));
        }
        let caller = self.caller.as_ref()?;
        let lowered;
        let key = if key.is_ascii() {
            key
        } else {
            lowered = key.to_lowercase();
            lowered.as_str()
        };
        let is = |name: &str| key.eq_ignore_ascii_case(name);
        if is("kms:CallerAccount") || is("aws:PrincipalAccount") {
            Some(Values::One(caller.account))
        } else if is("aws:PrincipalArn") {
            Some(Values::One(caller.principal_arn))
        } else if is("aws:PrincipalIsAWSService") {
            Some(Values::One("false"))
        } else if is("aws:PrincipalOrgID") {
            caller.org_id.map(Values::One)
        } else if is("aws:PrincipalOrgPaths") && !caller.org_paths.is_empty() {
            Some(Values::List(caller.org_paths))
        } else {
            None
        }
    }
}

fn conditions_match(conditions: &serde_json::Map<String, Value>, keys: &Keys<'_>) -> bool {
    conditions.iter().all(|(operator, block)| match block {
        Value::Object(entries) => entries
            .iter()
            .all(|(key, values)| condition_holds(operator, key, values, keys)),
        _ => false,
    })
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

/// Parses an operator name (without set prefix and `IfExists`) into the
/// positive test and whether it is negated.
fn parse_operator(name: &str) -> Option<(Base, bool)> {
    use std::cmp::Ordering::{Equal, Greater, Less};
    const OPERATORS: [(&str, Base, bool); 23] = [
        ("stringequals", Base::StringEquals, false),
        ("stringnotequals", Base::StringEquals, true),
        (
            "stringequalsignorecase",
            Base::StringEqualsIgnoreCase,
            false,
        ),
        (
            "stringnotequalsignorecase",
            Base::StringEqualsIgnoreCase,
            true,
        ),
        ("stringlike", Base::StringLike, false),
        ("stringnotlike", Base::StringLike, true),
        ("numericequals", Base::Numeric(Equal, false), false),
        ("numericnotequals", Base::Numeric(Equal, false), true),
        ("numericlessthan", Base::Numeric(Less, false), false),
        ("numericlessthanequals", Base::Numeric(Less, true), false),
        ("numericgreaterthan", Base::Numeric(Greater, false), false),
        (
            "numericgreaterthanequals",
            Base::Numeric(Greater, true),
            false,
        ),
        ("dateequals", Base::Date(Equal, false), false),
        ("datenotequals", Base::Date(Equal, false), true),
        ("datelessthan", Base::Date(Less, false), false),
        ("datelessthanequals", Base::Date(Less, true), false),
        ("dategreaterthan", Base::Date(Greater, false), false),
        ("dategreaterthanequals", Base::Date(Greater, true), false),
        ("bool", Base::Bool, false),
        ("arnequals", Base::Arn, false),
        ("arnlike", Base::Arn, false),
        ("arnnotequals", Base::Arn, true),
        ("arnnotlike", Base::Arn, true),
    ];
    let found = if name.is_ascii() {
        OPERATORS
            .iter()
            .find(|(lower, _, _)| lower.eq_ignore_ascii_case(name))
    } else {
        let lowered = name.to_lowercase();
        OPERATORS.iter().find(|(lower, _, _)| *lower == lowered)
    };
    found.map(|&(_, base, negated)| (base, negated))
}

fn strip_prefix_ci<'a>(s: &'a str, prefix: &str) -> Option<&'a str> {
    let head = s.get(..prefix.len())?;
    head.eq_ignore_ascii_case(prefix)
        .then(|| &s[prefix.len()..])
}

fn strip_suffix_ci<'a>(s: &'a str, suffix: &str) -> Option<&'a str> {
    let cut = s.len().checked_sub(suffix.len())?;
    let tail = s.get(cut..)?;
    tail.eq_ignore_ascii_case(suffix).then(|| &s[..cut])
}

/// Whether `s`, lowercased, is `lower` (an ASCII lowercase word).
fn lowercases_to(s: &str, lower: &str) -> bool {
    if s.is_ascii() {
        s.eq_ignore_ascii_case(lower)
    } else {
        s.to_lowercase() == lower
    }
}

/// One operator/key pair of a Condition block, against a request context.
#[cfg(test)]
pub(crate) fn condition_matches(
    operator: &str,
    key: &str,
    policy_values: &Value,
    ctx: &Context,
) -> bool {
    condition_holds(operator, key, policy_values, &Keys::request_only(ctx))
}

/// One operator/key pair of a Condition block.
fn condition_holds(operator: &str, key: &str, policy_values: &Value, keys: &Keys<'_>) -> bool {
    let (set, rest) = if let Some(rest) = strip_prefix_ci(operator, "ForAllValues:") {
        (SetOp::ForAllValues, rest)
    } else if let Some(rest) = strip_prefix_ci(operator, "ForAnyValue:") {
        (SetOp::ForAnyValue, rest)
    } else {
        (SetOp::None, operator)
    };
    let (base_name, if_exists) = match strip_suffix_ci(rest, "IfExists") {
        Some(base) => (base, true),
        None => (rest, false),
    };
    let present = keys.get(key).filter(|values| !values.is_empty());

    if base_name.eq_ignore_ascii_case("Null") {
        let absent = present.is_none();
        return scalar_values(policy_values).any(|w| {
            if lowercases_to(&w, "true") {
                absent
            } else if lowercases_to(&w, "false") {
                !absent
            } else {
                false
            }
        });
    }
    // Unknown operators never match.
    let Some((base, negated)) = parse_operator(base_name) else {
        return false;
    };
    let Some(values) = present else {
        if if_exists {
            return true;
        }
        return match set {
            SetOp::ForAllValues => true,
            SetOp::ForAnyValue => false,
            // A negated operator is satisfied by a missing key, as in IAM.
            SetOp::None => negated,
        };
    };
    let positive =
        |value: &str| scalar_values(policy_values).any(|w| base_matches(base, &w, value));
    let test = |value: &str| positive(value) != negated;
    let mut values = values.iter();
    match set {
        SetOp::None if negated => !values.any(positive),
        SetOp::None => values.any(positive),
        SetOp::ForAnyValue => values.any(test),
        SetOp::ForAllValues => values.all(test),
    }
}

/// The scalar values of a condition entry, as text; only a number has to be
/// formatted.
fn scalar_values(value: &Value) -> impl Iterator<Item = Cow<'_, str>> {
    fn scalar(value: &Value) -> Option<Cow<'_, str>> {
        match value {
            Value::String(s) => Some(Cow::Borrowed(s.as_str())),
            Value::Bool(b) => Some(Cow::Borrowed(if *b { "true" } else { "false" })),
            Value::Number(n) => Some(Cow::Owned(n.to_string())),
            _ => None,
        }
    }
    let (one, items): (Option<&Value>, &[Value]) = match value {
        Value::Array(items) => (None, items.as_slice()),
        other => (Some(other), &[]),
    };
    one.into_iter().chain(items).filter_map(scalar)
}

/// The positive form of an operator: does the request `value` match the
/// policy value `wanted`?
fn base_matches(base: Base, wanted: &str, value: &str) -> bool {
    match base {
        Base::StringEquals => wanted == value,
        Base::StringEqualsIgnoreCase => {
            if wanted.is_ascii() && value.is_ascii() {
                wanted.eq_ignore_ascii_case(value)
            } else {
                wanted.to_lowercase() == value.to_lowercase()
            }
        }
        Base::StringLike => glob(wanted, value),
        Base::Bool => wanted.eq_ignore_ascii_case(value),
        Base::Arn => arn_like(wanted, value),
        Base::Numeric(order, or_equal) => {
            match (wanted.trim().parse::<f64>(), value.trim().parse::<f64>()) {
                (Ok(w), Ok(v)) => compare(v.partial_cmp(&w), order, or_equal),
                _ => false,
            }
        }
        Base::Date(order, or_equal) => {
            // Epoch seconds compare numerically; ISO 8601 UTC timestamps in
            // the same format compare as text.
            let cmp = match (wanted.trim().parse::<f64>(), value.trim().parse::<f64>()) {
                (Ok(w), Ok(v)) => v.partial_cmp(&w),
                _ => Some(value.cmp(wanted)),
            };
            compare(cmp, order, or_equal)
        }
    }
}

fn compare(cmp: Option<std::cmp::Ordering>, order: std::cmp::Ordering, or_equal: bool) -> bool {
    match cmp {
        Some(c) => c == order || (or_equal && c == std::cmp::Ordering::Equal),
        None => false,
    }
}

/// The six colon-separated parts of an ARN (the last keeps any further
/// colons); `None` with fewer than six.
fn split6(s: &str) -> Option<[&str; 6]> {
    let mut parts = s.splitn(6, ':');
    Some([
        parts.next()?,
        parts.next()?,
        parts.next()?,
        parts.next()?,
        parts.next()?,
        parts.next()?,
    ])
}

/// ArnLike: the six colon-separated parts match one by one, with globs.
fn arn_like(pattern: &str, arn: &str) -> bool {
    if pattern == "*" {
        return true;
    }
    match (split6(pattern), split6(arn)) {
        (Some(p), Some(a)) => p.iter().zip(&a).all(|(p, a)| glob(p, a)),
        _ => false,
    }
}

/// Glob with `*` (any run, including empty) and `?` (one character);
/// case-sensitive.
pub(crate) fn glob(pattern: &str, text: &str) -> bool {
    // Without `?` a byte-wise comparison is a character-wise one, whatever
    // the text: a literal prefix that matches ends on a character boundary.
    let (p, t) = (pattern.as_bytes(), text.as_bytes());
    match literal_prefix(p) {
        Shape::Literal => return p == t,
        Shape::Prefix(prefix) => return t.starts_with(prefix),
        Shape::Other => {}
    }
    if pattern.is_ascii() && text.is_ascii() {
        glob_bytes(pattern.as_bytes(), text.as_bytes(), |p, t| p == t)
    } else {
        glob_chars(pattern, text)
    }
}

/// The two pattern shapes nearly every policy uses, which need no
/// backtracking.
enum Shape<'p> {
    /// No `*` or `?`: the text must equal the pattern.
    Literal,
    /// A literal followed by one final `*`.
    Prefix(&'p [u8]),
    /// Anything else.
    Other,
}

fn literal_prefix(p: &[u8]) -> Shape<'_> {
    match p.iter().position(|&b| b == b'*' || b == b'?') {
        None => Shape::Literal,
        Some(at) if at + 1 == p.len() && p[at] == b'*' => Shape::Prefix(&p[..at]),
        Some(_) => Shape::Other,
    }
}

/// The glob over ASCII bytes, with `eq` deciding whether a pattern byte
/// matches a text byte. A `*` in the pattern is always a wildcard, even
/// against a `*` in the text, exactly as in [`glob_chars`].
fn glob_bytes(p: &[u8], t: &[u8], eq: impl Fn(u8, u8) -> bool) -> bool {
    let (mut pi, mut ti) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while ti < t.len() {
        if pi < p.len() && p[pi] == b'*' {
            star = Some((pi, ti));
            pi += 1;
        } else if pi < p.len() && (p[pi] == b'?' || eq(p[pi], t[ti])) {
            pi += 1;
            ti += 1;
        } else if let Some((sp, st)) = star {
            pi = sp + 1;
            ti = st + 1;
            star = Some((sp, st + 1));
        } else {
            return false;
        }
    }
    p[pi..].iter().all(|&c| c == b'*')
}

/// The glob over characters, for text beyond ASCII.
pub(crate) fn glob_chars(pattern: &str, text: &str) -> bool {
    let p: Vec<char> = pattern.chars().collect();
    let t: Vec<char> = text.chars().collect();
    let (mut pi, mut ti) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while ti < t.len() {
        if pi < p.len() && p[pi] == '*' {
            star = Some((pi, ti));
            pi += 1;
        } else if pi < p.len() && (p[pi] == '?' || p[pi] == t[ti]) {
            pi += 1;
            ti += 1;
        } else if let Some((sp, st)) = star {
            pi = sp + 1;
            ti = st + 1;
            star = Some((sp, st + 1));
        } else {
            return false;
        }
    }
    p[pi..].iter().all(|&c| c == '*')
}

/// `s.split_once(':')`, for the short fields of an ARN.
fn split_colon(s: &str) -> Option<(&str, &str)> {
    let at = s.bytes().position(|b| b == b':')?;
    Some((&s[..at], &s[at + 1..]))
}

fn is_account_id(s: &str) -> bool {
    s.len() == 12 && s.bytes().all(|b| b.is_ascii_digit())
}

/// The account of `arn:<partition>:iam::<account>:root`.
pub(crate) fn parse_root_account(arn: &str) -> Option<&str> {
    // Exactly `arn`, a partition, `iam`, an empty region, the account and
    // `root`, separated by colons.
    let rest = arn.strip_suffix(":root")?.strip_prefix("arn:")?;
    let (_partition, rest) = split_colon(rest)?;
    let account = rest.strip_prefix("iam::")?;
    is_account_id(account).then_some(account)
}

/// The account named by a principal entry: a bare id or the account part of
/// an ARN.
pub(crate) fn principal_account(entry: &str) -> Option<&str> {
    if is_account_id(entry) {
        return Some(entry);
    }
    match split6(entry)? {
        ["arn", _, _, _, account, _] if is_account_id(account) => Some(account),
        _ => None,
    }
}

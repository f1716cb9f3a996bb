//! Authorization the way AWS KMS decides it.
//!
//! The order follows the KMS evaluation logic: an explicit deny anywhere wins;
//! across accounts only a fixed set of actions can ever succeed; then the key
//! policy, the caller's IAM policies and grants are combined by the
//! same-account / cross-account rules. Denials report every missing link so
//! that a failed share can say what to fix.

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
        let parts: Vec<&str> = self.arn.splitn(6, ':').collect();
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
    values: BTreeMap<String, Vec<String>>,
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
        self.values.get(&key.to_lowercase()).map(Vec::as_slice)
    }

    /// True if the request has this key.
    pub fn contains(&self, key: &str) -> bool {
        self.values.contains_key(&key.to_lowercase())
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

    fn allow(allowed_by: Vec<StatementRef>) -> Decision {
        Decision {
            outcome: Outcome::Allow,
            allowed_by,
            denied_by: None,
            missing: Vec::new(),
        }
    }

    fn explicit_deny(by: StatementRef) -> Decision {
        Decision {
            outcome: Outcome::ExplicitDeny,
            allowed_by: Vec::new(),
            denied_by: Some(by),
            missing: Vec::new(),
        }
    }

    fn implicit_deny(missing: Vec<Missing>) -> Decision {
        Decision {
            outcome: Outcome::ImplicitDeny,
            allowed_by: Vec::new(),
            denied_by: None,
            missing,
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
    let ctx = effective_context(req);
    let who = Who::new(&req.caller);

    // 1. An explicit deny anywhere wins.
    if let Some((index, st, _)) =
        matching(key_policy, Effect::Deny, req, &ctx, &who, Kind::KeyPolicy).next()
    {
        return Decision::explicit_deny(statement_ref(PolicySource::KeyPolicy, index, st));
    }
    if let Some(denied) = identity_deny(req, &ctx, &who, identity_policies) {
        return Decision::explicit_deny(denied);
    }

    // 2. Most of the API is never available across accounts.
    let cross_account = req.caller.account != req.resource_account;
    if cross_account && !is_cross_account_action(req.action) {
        return Decision::implicit_deny(vec![Missing::CrossAccountNotPermitted]);
    }

    // 3. Key policy allows: naming the caller (or "*") directly, or only its
    // account root, which delegates to the account's IAM policies.
    let mut direct = None;
    let mut delegated = None;
    for (index, st, how) in matching(key_policy, Effect::Allow, req, &ctx, &who, Kind::KeyPolicy) {
        let slot = match how {
            PrincipalMatch::Direct => &mut direct,
            PrincipalMatch::Account => &mut delegated,
        };
        if slot.is_none() {
            *slot = Some(statement_ref(PolicySource::KeyPolicy, index, st));
        }
    }
    // 4. The caller's own IAM policies.
    let identity = identity_allow(req, &ctx, &who, identity_policies);
    // 5. Grants.
    let grant = grants
        .iter()
        .find(|g| grant_matches(g, req, &who))
        .map(|g| StatementRef {
            source: PolicySource::Grant {
                grant_id: g.grant_id.to_owned(),
            },
            index: 0,
            sid: None,
        });

    if !cross_account {
        if let Some(direct) = direct {
            return Decision::allow(vec![direct]);
        }
        if let (Some(delegated), Some(identity)) = (&delegated, identity.clone()) {
            return Decision::allow(vec![delegated.clone(), identity]);
        }
        if let Some(grant) = grant {
            return Decision::allow(vec![grant]);
        }
        let missing = if delegated.is_some() {
            Missing::IdentityPolicyAllow
        } else {
            Missing::KeyPolicyAllow
        };
        return Decision::implicit_deny(vec![missing]);
    }

    // Across accounts both sides must allow, whatever the key policy names;
    // only the other account's root needs no IAM policy.
    let key_allow = match (direct, delegated) {
        (Some(a), Some(b)) => Some(if a.index <= b.index { a } else { b }),
        (a, b) => a.or(b),
    };
    let identity_ok = identity.is_some() || req.caller.is_root();
    if let (Some(key_allow), true) = (&key_allow, identity_ok) {
        let mut allowed_by = vec![key_allow.clone()];
        allowed_by.extend(identity);
        return Decision::allow(allowed_by);
    }
    if let Some(grant) = grant {
        return Decision::allow(vec![grant]);
    }
    let mut missing = Vec::new();
    if key_allow.is_none() {
        missing.push(Missing::KeyPolicyAllow);
    }
    if !identity_ok {
        missing.push(Missing::IdentityPolicyAllow);
    }
    Decision::implicit_deny(missing)
}

/// Anything without a resource policy (EC2 actions): identity policies only; an account root caller is allowed unless explicitly denied.
pub fn evaluate_identity(req: &Request<'_>, identity_policies: &[&Policy]) -> Decision {
    let ctx = effective_context(req);
    let who = Who::new(&req.caller);
    if let Some(denied) = identity_deny(req, &ctx, &who, identity_policies) {
        return Decision::explicit_deny(denied);
    }
    match identity_allow(req, &ctx, &who, identity_policies) {
        Some(allowed) => Decision::allow(vec![allowed]),
        None if req.caller.is_root() => Decision::allow(Vec::new()),
        None => Decision::implicit_deny(vec![Missing::IdentityPolicyAllow]),
    }
}

/// Case-insensitive IAM glob (`*` and `?`), as used in `Action`.
pub fn action_matches(pattern: &str, action: &str) -> bool {
    glob(&pattern.to_lowercase(), &action.to_lowercase())
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
    let (service, op) = action.split_once(':')?;
    service.eq_ignore_ascii_case("kms").then_some(op)
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

/// The caller's names, computed once.
struct Who<'a> {
    arn: &'a str,
    account: &'a str,
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
        for entry in principal.aws() {
            match self.match_entry(entry) {
                Some(PrincipalMatch::Direct) => return Some(PrincipalMatch::Direct),
                Some(PrincipalMatch::Account) => best = Some(PrincipalMatch::Account),
                None => {}
            }
        }
        best
    }
}

fn statement_ref(source: PolicySource, index: usize, st: &Statement) -> StatementRef {
    StatementRef {
        source,
        index,
        sid: st.sid.clone(),
    }
}

/// Statements of `policy` with this effect that apply to the request, with
/// how the principal matched.
fn matching<'p>(
    policy: &'p Policy,
    effect: Effect,
    req: &'p Request<'_>,
    ctx: &'p Context,
    who: &'p Who<'_>,
    kind: Kind,
) -> impl Iterator<Item = (usize, &'p Statement, PrincipalMatch)> + 'p {
    policy
        .statements
        .iter()
        .enumerate()
        .filter_map(move |(index, st)| {
            if st.effect != effect {
                return None;
            }
            let how = applies(st, req, ctx, who, kind)?;
            Some((index, st, how))
        })
}

fn identity_deny(
    req: &Request<'_>,
    ctx: &Context,
    who: &Who<'_>,
    policies: &[&Policy],
) -> Option<StatementRef> {
    policies.iter().enumerate().find_map(|(p, policy)| {
        matching(policy, Effect::Deny, req, ctx, who, Kind::Identity)
            .next()
            .map(|(index, st, _)| statement_ref(PolicySource::Identity { index: p }, index, st))
    })
}

fn identity_allow(
    req: &Request<'_>,
    ctx: &Context,
    who: &Who<'_>,
    policies: &[&Policy],
) -> Option<StatementRef> {
    policies.iter().enumerate().find_map(|(p, policy)| {
        matching(policy, Effect::Allow, req, ctx, who, Kind::Identity)
            .next()
            .map(|(index, st, _)| statement_ref(PolicySource::Identity { index: p }, index, st))
    })
}

/// Whether the statement applies: principal, action, resource and
/// conditions all match.
fn applies(
    st: &Statement,
    req: &Request<'_>,
    ctx: &Context,
    who: &Who<'_>,
    kind: Kind,
) -> Option<PrincipalMatch> {
    let how = match kind {
        // Identity policies are attached to the caller; a Principal there has
        // no meaning.
        Kind::Identity => PrincipalMatch::Direct,
        Kind::KeyPolicy => match (&st.principal, &st.not_principal) {
            (Some(p), _) => who.match_principal(p)?,
            // NotPrincipal exempts only the principals it names exactly: an
            // account root listed there exempts the root, not every
            // principal of the account.
            (None, Some(np)) => match who.match_principal(np) {
                Some(PrincipalMatch::Direct) => return None,
                _ => PrincipalMatch::Direct,
            },
            (None, None) => return None,
        },
    };
    if !action_applies(st, req.action) || !resource_applies(st, req.resource) {
        return None;
    }
    if let Some(conditions) = &st.condition {
        if !conditions_match(conditions, ctx) {
            return None;
        }
    }
    Some(how)
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

fn grant_matches(grant: &GrantView<'_>, req: &Request<'_>, who: &Who<'_>) -> bool {
    let Some(op) = kms_operation(req.action) else {
        return false;
    };
    let grantee_ok = grant.grantee == who.arn
        || who.role_arn.as_deref() == Some(grant.grantee)
        || parse_root_account(grant.grantee) == Some(who.account)
        || grant.grantee == who.account;
    grantee_ok && grant.operations.iter().any(|o| o.eq_ignore_ascii_case(op))
}

/// The request context plus what the caller implies, unless the request set
/// it already.
fn effective_context(req: &Request<'_>) -> Context {
    let caller = &req.caller;
    let mut ctx = req.context.clone();
    let mut default = |key: &str, values: Vec<String>| {
        if !ctx.contains(key) {
            ctx = std::mem::take(&mut ctx).with_values(key, values);
        }
    };
    default("kms:CallerAccount", vec![caller.account.to_owned()]);
    default("aws:PrincipalAccount", vec![caller.account.to_owned()]);
    default(
        "aws:PrincipalArn",
        vec![caller.role_arn().unwrap_or_else(|| caller.arn.to_owned())],
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

fn conditions_match(conditions: &serde_json::Map<String, Value>, ctx: &Context) -> bool {
    conditions.iter().all(|(operator, block)| match block {
        Value::Object(keys) => keys
            .iter()
            .all(|(key, values)| condition_matches(operator, key, values, ctx)),
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

/// One operator/key pair of a Condition block.
pub(crate) fn condition_matches(
    operator: &str,
    key: &str,
    policy_values: &Value,
    ctx: &Context,
) -> bool {
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
    let wanted = scalar_values(policy_values);
    let present = ctx.get(key).filter(|values| !values.is_empty());

    if base_name.eq_ignore_ascii_case("Null") {
        let absent = present.is_none();
        return wanted.iter().any(|w| match w.to_lowercase().as_str() {
            "true" => absent,
            "false" => !absent,
            _ => false,
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
    let positive = |value: &String| wanted.iter().any(|w| base_matches(base, w, value));
    let test = |value: &String| positive(value) != negated;
    match set {
        SetOp::None if negated => !values.iter().any(positive),
        SetOp::None => values.iter().any(positive),
        SetOp::ForAnyValue => values.iter().any(test),
        SetOp::ForAllValues => values.iter().all(test),
    }
}

fn scalar_values(value: &Value) -> Vec<String> {
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

/// The positive form of an operator: does the request `value` match the
/// policy value `wanted`?
fn base_matches(base: Base, wanted: &str, value: &str) -> bool {
    match base {
        Base::StringEquals => wanted == value,
        Base::StringEqualsIgnoreCase => wanted.to_lowercase() == value.to_lowercase(),
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

/// ArnLike: the six colon-separated parts match one by one, with globs.
fn arn_like(pattern: &str, arn: &str) -> bool {
    if pattern == "*" {
        return true;
    }
    let p: Vec<&str> = pattern.splitn(6, ':').collect();
    let a: Vec<&str> = arn.splitn(6, ':').collect();
    p.len() == 6 && a.len() == 6 && p.iter().zip(&a).all(|(p, a)| glob(p, a))
}

/// Glob with `*` (any run, including empty) and `?` (one character);
/// case-sensitive.
pub(crate) fn glob(pattern: &str, text: &str) -> bool {
    let p: Vec<char> = pattern.chars().collect();
    let t: Vec<char> = text.chars().collect();
    let (mut pi, mut ti) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while ti < t.len() {
        if pi < p.len() && (p[pi] == '?' || p[pi] == t[ti]) {
            pi += 1;
            ti += 1;
        } else if pi < p.len() && p[pi] == '*' {
            star = Some((pi, ti));
            pi += 1;
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

fn is_account_id(s: &str) -> bool {
    s.len() == 12 && s.bytes().all(|b| b.is_ascii_digit())
}

/// The account of `arn:<partition>:iam::<account>:root`.
pub(crate) fn parse_root_account(arn: &str) -> Option<&str> {
    let parts: Vec<&str> = arn.split(':').collect();
    match parts.as_slice() {
        ["arn", _, "iam", "", account, "root"] if is_account_id(account) => Some(account),
        _ => None,
    }
}

/// The account named by a principal entry: a bare id or the account part of
/// an ARN.
pub(crate) fn principal_account(entry: &str) -> Option<&str> {
    if is_account_id(entry) {
        return Some(entry);
    }
    let parts: Vec<&str> = entry.splitn(6, ':').collect();
    match parts.as_slice() {
        ["arn", _, _, _, account, _] if is_account_id(account) => Some(account),
        _ => None,
    }
}

//! The statements amishare writes to share a key, and how they are merged into
//! and removed from an existing key policy.
//!
//! amishare owns exactly the statements whose Sid starts with [`SID_PREFIX`];
//! everything else in a key policy belongs to someone else and is left as it
//! is, byte for byte.

use std::borrow::Cow;
use std::collections::BTreeSet;
use std::fmt;
use std::sync::OnceLock;

use serde_json::{Map, Value};

use crate::document::{root_arn, Effect, OneOrMany, Policy, Principal, Statement};
use crate::eval::{evaluate_kms_outcome, principal_account, Caller, Context, Outcome, Request};

/// The KMS key policy size quota (not adjustable).
pub const MAX_POLICY_BYTES: usize = 32_768;

/// Every statement amishare writes has a Sid starting with this.
pub const SID_PREFIX: &str = "amishare:";

/// Who a key is shared with.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Grantee {
    /// `arn:aws:iam::<acct>:root | user/... | role/...`; a bare 12-digit
    /// account id stands for that account's root.
    Principal(String),
    /// Every account of an organization: Principal `"*"` narrowed by
    /// `aws:PrincipalOrgID`.
    Organization {
        /// `o-xxxxxxxxxx`.
        org_id: String,
    },
    /// Every account under an OU: Principal `"*"` narrowed by
    /// `aws:PrincipalOrgPaths`.
    OrganizationalUnit {
        /// `o-xxxxxxxxxx`.
        org_id: String,
        /// `ou-xxxx-xxxxxxxx`.
        ou_id: String,
    },
}

impl fmt::Display for Grantee {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Grantee::Principal(arn) => f.write_str(arn),
            Grantee::Organization { org_id } => write!(f, "organization {org_id}"),
            Grantee::OrganizationalUnit { org_id, ou_id } => {
                write!(f, "organizational unit {ou_id} of {org_id}")
            }
        }
    }
}

/// Optional conditions that narrow the shared statements further.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Narrowing {
    /// Adds StringEquals `kms:ViaService = ec2.<region>.amazonaws.com`: the key
    /// is usable only through EC2 in that region.
    pub via_service_region: Option<String>,
    /// Adds StringEquals kms:CallerAccount = the grantees' accounts (to the
    /// statements of principals; organization and OU statements are already
    /// narrowed by their organization condition).
    pub caller_account: bool,
    /// Service-linked roles, as the path and name after `role/`
    /// (`aws-service-role/autoscaling.amazonaws.com/AWSServiceRoleForAutoScaling`):
    /// each principal grantee's account also gets a statement letting its
    /// named principals create grants on the key for its own roles of these
    /// names, and only with [`SERVICE_ROLE_GRANT_OPERATIONS`]. Organization
    /// and OU grantees cannot have it (see [`MergeError::ServiceRolesForOrganization`]).
    pub service_roles: Vec<String>,
}

/// The operations of a grant for a service-linked role that launches
/// instances on a key of another account (AWS's own list for Auto Scaling,
/// EC2 Fleet and Spot, `docs/spec/production.md` §C1.3).
pub const SERVICE_ROLE_GRANT_OPERATIONS: [&str; 8] = [
    "Encrypt",
    "Decrypt",
    "ReEncryptFrom",
    "ReEncryptTo",
    "GenerateDataKey",
    "GenerateDataKeyWithoutPlaintext",
    "DescribeKey",
    "CreateGrant",
];

/// The result of [`merge`] or [`remove`].
#[derive(Debug, Clone, PartialEq)]
pub struct Merged {
    /// The new policy (equal to the input when nothing changed).
    pub policy: Policy,
    /// False when the input already was the result: no PutKeyPolicy needed.
    pub changed: bool,
}

/// Why a merge was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum MergeError {
    /// The result would exceed [`MAX_POLICY_BYTES`] (KMS would answer
    /// LimitExceededException).
    #[error(
        "the key policy would be {bytes} bytes, over the KMS limit of 32768 bytes: {fit} of the {grantees} targets fit; share with an organization or an organizational unit instead, which takes one pair of statements for all its accounts"
    )]
    TooLarge {
        /// Size of the compact JSON.
        bytes: usize,
        /// How many of the grantees, taken in order, would fit.
        fit: usize,
        /// How many grantees were asked for.
        grantees: usize,
    },
    /// The result would not let this principal call kms:PutKeyPolicy again
    /// (KMS would refuse it with its lockout safety check).
    #[error(
        "the new key policy will not allow {principal} to update the key policy in the future"
    )]
    Lockout {
        /// The principal that would be locked out.
        principal: String,
    },
    /// A grantee that cannot appear in a key policy.
    #[error("invalid grantee {grantee:?}: {reason}")]
    InvalidGrantee {
        /// The grantee as given.
        grantee: String,
        /// What is wrong with it.
        reason: String,
    },
    /// A narrowing option that cannot be written.
    #[error("invalid narrowing: region {region:?} is not a region name")]
    InvalidRegion {
        /// The region as given.
        region: String,
    },
    /// Grants for service-linked roles were asked for an organization or OU
    /// grantee: a statement for every account of it could not tie the
    /// grantee role to the caller's own account.
    #[error("grants for service-linked roles cannot be allowed to {grantee}: a key policy statement for every account of an organization or OU could not tie the grantee role to the caller's own account; name the accounts (or their principals) as targets instead")]
    ServiceRolesForOrganization {
        /// The grantee as given.
        grantee: String,
    },
}

/// The seed's two statements for these grantees: "Allow use of the key" (Encrypt, Decrypt, ReEncrypt*, GenerateDataKey*, DescribeKey)
/// and "Allow attachment of persistent resources" (CreateGrant, ListGrants, RevokeGrant with Bool kms:GrantIsForAWSResource "true"),
/// with Sids prefixed by SID_PREFIX (and per-org/OU statements as needed).
///
/// Principals share one pair of statements (sorted, deduplicated; bare
/// account ids written as root ARNs); each organization and OU gets a pair of
/// its own.
pub fn least_privilege_statements(grantees: &[Grantee], narrowing: &Narrowing) -> Vec<Statement> {
    let mut statements = Vec::new();
    add_grantees(&mut statements, grantees, narrowing);
    statements
}

/// Adds the grantees to amishare's statements (creating them if absent). Never touches a statement whose Sid lacks SID_PREFIX.
/// Idempotent: merging twice changes nothing the second time (changed = false).
/// Refuses a result over MAX_POLICY_BYTES (compact JSON) or one that no longer lets `owner_caller` call kms:PutKeyPolicy
/// (see [`check_lockout`]: being covered through the owner root counts).
///
/// Existing statements keep their place; new ones are appended. The checks
/// only apply when something changed, since an unchanged policy is never
/// written.
pub fn merge(
    policy: &Policy,
    grantees: &[Grantee],
    narrowing: &Narrowing,
    owner_account: &str,
    owner_caller: &str,
) -> Result<Merged, MergeError> {
    merge_key(
        policy,
        grantees,
        narrowing,
        owner_account,
        owner_caller,
        None,
    )
}

/// [`merge`] for the policy of the key `key` (its ARN), which the lockout
/// check then asks about: a statement that names the key by ARN in
/// `Resource` or `NotResource` decides as KMS would decide it. `None` is for
/// a key not created yet, which no statement can name.
pub fn merge_key(
    policy: &Policy,
    grantees: &[Grantee],
    narrowing: &Narrowing,
    owner_account: &str,
    owner_caller: &str,
    key: Option<&str>,
) -> Result<Merged, MergeError> {
    validate(grantees, narrowing)?;
    let mut out = policy.clone();
    add_grantees(&mut out.statements, grantees, narrowing);
    // Equal statements print the same document, and a different number of
    // statements prints a different one; only a same-length change needs
    // the two documents compared.
    let changed = out.statements.len() != policy.statements.len()
        || (out.statements != policy.statements && out.to_json() != policy.to_json());
    if changed {
        // Printing is only needed when the quick bound does not settle it.
        if MAX_POLICY_BYTES < out.json_len_bound() {
            let bytes = out.json_len();
            if MAX_POLICY_BYTES < bytes {
                return Err(MergeError::TooLarge {
                    bytes,
                    fit: fitting(policy, grantees, narrowing),
                    grantees: grantees.len(),
                });
            }
        }
        check_lockout_on(&out, owner_account, owner_caller, key)?;
    }
    Ok(Merged {
        policy: out,
        changed,
    })
}

/// How many of `grantees`, taken in order, can be merged into `policy`
/// without passing [`MAX_POLICY_BYTES`]: merging more grantees never makes a
/// policy smaller, so a binary search finds the largest prefix that fits.
fn fitting(policy: &Policy, grantees: &[Grantee], narrowing: &Narrowing) -> usize {
    let fits = |count: usize| {
        let mut out = policy.clone();
        add_grantees(&mut out.statements, &grantees[..count], narrowing);
        out.json_len() <= MAX_POLICY_BYTES
    };
    if !fits(0) {
        return 0;
    }
    // fits(low) holds; fits(high) does not (the whole list was refused).
    let (mut low, mut high) = (0, grantees.len());
    while high - low > 1 {
        let middle = low + (high - low) / 2;
        if fits(middle) {
            low = middle;
        } else {
            high = middle;
        }
    }
    low
}

/// The policy of a key created for these grantees: KMS's default key
/// policy for `owner_account` (`docs/spec/kms.md` §A2.1) with amishare's
/// statements merged in, refused as [`merge`] refuses (over
/// [`MAX_POLICY_BYTES`], or locking `owner_caller` out). It is a complete
/// document: `CreateKey` and `PutKeyPolicy` take it as it is.
pub fn new_key_policy(
    grantees: &[Grantee],
    narrowing: &Narrowing,
    owner_account: &str,
    owner_caller: &str,
) -> Result<Policy, MergeError> {
    merge(
        &Policy::default_key_policy(owner_account),
        grantees,
        narrowing,
        owner_account,
        owner_caller,
    )
    .map(|merged| merged.policy)
}

/// The statements of `policy` that amishare wrote (Sid beginning
/// [`SID_PREFIX`]), in document order.
pub fn amishare_statements(policy: &Policy) -> impl Iterator<Item = &Statement> {
    policy.statements.iter().filter(|st| {
        st.sid
            .as_deref()
            .is_some_and(|sid| sid.starts_with(SID_PREFIX))
    })
}

/// The principals amishare's statements name (account roots written as
/// root ARNs): who a key policy still shares the key with, as far as
/// amishare wrote it. Organization and OU statements name no principal.
pub fn amishare_principals(policy: &Policy) -> BTreeSet<String> {
    amishare_statements(policy)
        .flat_map(existing_principals)
        .filter(|principal| principal != "*")
        .collect()
}

/// Takes out exactly these grantees from amishare's statements; a statement left with no principal is removed.
///
/// Only the statements of this narrowing are touched; statements without
/// [`SID_PREFIX`] never are.
pub fn remove(policy: &Policy, grantees: &[Grantee], narrowing: &Narrowing) -> Merged {
    let mut out = policy.clone();
    let gone: BTreeSet<String> = principals_of(grantees);
    if !gone.is_empty() {
        for purpose in [Purpose::Use, Purpose::Attach] {
            let sid = principal_sid(purpose, narrowing);
            let Some(pos) = position(&out.statements, &sid) else {
                continue;
            };
            let existing = existing_principals(&out.statements[pos]);
            if existing.is_disjoint(&gone) {
                continue;
            }
            let kept: Vec<String> = existing.difference(&gone).cloned().collect();
            if kept.is_empty() {
                out.statements.remove(pos);
            } else {
                out.statements[pos] = principal_statement(purpose, &kept, narrowing);
            }
        }
    }
    if !gone.is_empty() {
        remove_from_role_statements(&mut out.statements, &gone);
    }
    let scoped: Vec<String> = grantees
        .iter()
        .filter_map(scope_of)
        .flat_map(|scope| [Purpose::Use, Purpose::Attach].map(|p| scoped_sid(p, &scope, narrowing)))
        .collect();
    out.statements
        .retain(|st| !st.sid.as_ref().is_some_and(|sid| scoped.contains(sid)));
    // Equal statements print the same document.
    let changed = out.statements != policy.statements && out.to_json() != policy.to_json();
    Merged {
        policy: out,
        changed,
    }
}

/// The lockout check of PutKeyPolicy (`docs/spec/kms.md` §A5): would `caller` still be allowed kms:PutKeyPolicy (root delegation counts)?
///
/// A caller allowed only through its account root is assumed to hold the
/// IAM permission it is using right now.
pub fn check_lockout(policy: &Policy, owner_account: &str, caller: &str) -> Result<(), MergeError> {
    check_lockout_on(policy, owner_account, caller, None)
}

/// [`check_lockout`] on the key `key` (its ARN); `None` asks about resource
/// `"*"`, right only for a policy that names no key by ARN, such as the
/// policy of a key not created yet.
pub fn check_lockout_on(
    policy: &Policy,
    owner_account: &str,
    caller: &str,
    key: Option<&str>,
) -> Result<(), MergeError> {
    let arn: Cow<'_, str> = if principal_account(caller) == Some(caller) {
        Cow::Owned(root_arn(caller))
    } else {
        Cow::Borrowed(caller)
    };
    let account = principal_account(&arn).unwrap_or(owner_account);
    // The IAM permission the caller is using right now.
    static IAM: OnceLock<Policy> = OnceLock::new();
    let iam = IAM.get_or_init(|| {
        let mut iam = Statement::new(Effect::Allow);
        iam.action = Some(OneOrMany::One("kms:PutKeyPolicy".to_owned()));
        iam.resource = Some(OneOrMany::One("*".to_owned()));
        Policy::from_statements(vec![iam])
    });
    let req = Request {
        caller: Caller::new(&arn, account),
        action: "kms:PutKeyPolicy",
        resource: key.unwrap_or("*"),
        resource_account: owner_account,
        context: Context::new(),
    };
    if evaluate_kms_outcome(&req, policy, &[iam], &[]) == Outcome::Allow {
        Ok(())
    } else {
        Err(MergeError::Lockout {
            principal: caller.to_owned(),
        })
    }
}

const USE_SID: &str = "amishare: Allow use of the key";
const ATTACH_SID: &str = "amishare: Allow attachment of persistent resources";
const USE_ACTIONS: [&str; 5] = [
    "kms:Encrypt",
    "kms:Decrypt",
    "kms:ReEncrypt*",
    "kms:GenerateDataKey*",
    "kms:DescribeKey",
];
const ATTACH_ACTIONS: [&str; 3] = ["kms:CreateGrant", "kms:ListGrants", "kms:RevokeGrant"];

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Purpose {
    Use,
    Attach,
}

/// An organization or OU: the part of the Sid and the condition that
/// identify it.
struct Scope {
    label: String,
    operator: &'static str,
    key: &'static str,
    value: String,
}

fn scope_of(grantee: &Grantee) -> Option<Scope> {
    match grantee {
        Grantee::Principal(_) => None,
        Grantee::Organization { org_id } => Some(Scope {
            label: format!("organization {org_id}"),
            operator: "StringEquals",
            key: "aws:PrincipalOrgID",
            value: org_id.clone(),
        }),
        Grantee::OrganizationalUnit { org_id, ou_id } => Some(Scope {
            label: format!("organizational unit {ou_id} of {org_id}"),
            operator: "ForAnyValue:StringLike",
            key: "aws:PrincipalOrgPaths",
            value: format!("{org_id}/*/{ou_id}/*"),
        }),
    }
}

fn base_sid(purpose: Purpose) -> &'static str {
    match purpose {
        Purpose::Use => USE_SID,
        Purpose::Attach => ATTACH_SID,
    }
}

fn via_service(narrowing: &Narrowing) -> Option<String> {
    narrowing
        .via_service_region
        .as_ref()
        .map(|region| format!("ec2.{region}.amazonaws.com"))
}

fn principal_sid(purpose: Purpose, narrowing: &Narrowing) -> String {
    let mut sid = base_sid(purpose).to_owned();
    if let Some(via) = via_service(narrowing) {
        sid.push_str(&format!(" (via {via})"));
    }
    if narrowing.caller_account {
        sid.push_str(" (caller account)");
    }
    sid
}

/// Organization and OU statements carry no kms:CallerAccount condition (the
/// accounts are not known), so only the region narrows their Sid.
fn scoped_sid(purpose: Purpose, scope: &Scope, narrowing: &Narrowing) -> String {
    let mut sid = format!("{} ({})", base_sid(purpose), scope.label);
    if let Some(via) = via_service(narrowing) {
        sid.push_str(&format!(" (via {via})"));
    }
    sid
}

fn string_or_list(mut values: Vec<String>) -> Value {
    if values.len() == 1 {
        if let Some(one) = values.pop() {
            return Value::String(one);
        }
    }
    Value::Array(values.into_iter().map(Value::String).collect())
}

fn statement(
    purpose: Purpose,
    sid: String,
    principal: Principal,
    equals: Vec<(&str, Value)>,
    scope: Option<&Scope>,
) -> Statement {
    let actions: &[&str] = match purpose {
        Purpose::Use => &USE_ACTIONS,
        Purpose::Attach => &ATTACH_ACTIONS,
    };
    let mut st = Statement::new(Effect::Allow);
    st.sid = Some(sid);
    st.principal = Some(principal);
    st.action = Some(OneOrMany::Many(
        actions.iter().map(|a| (*a).to_owned()).collect(),
    ));
    st.resource = Some(OneOrMany::One("*".to_owned()));

    let mut condition = Map::new();
    if purpose == Purpose::Attach {
        let mut bool_block = Map::new();
        bool_block.insert(
            "kms:GrantIsForAWSResource".to_owned(),
            Value::String("true".to_owned()),
        );
        condition.insert("Bool".to_owned(), Value::Object(bool_block));
    }
    let mut string_equals = Map::new();
    if let Some(scope) = scope {
        let mut block = Map::new();
        block.insert(scope.key.to_owned(), Value::String(scope.value.clone()));
        if scope.operator == "StringEquals" {
            string_equals = block;
        } else {
            condition.insert(scope.operator.to_owned(), Value::Object(block));
        }
    }
    for (key, value) in equals {
        string_equals.insert(key.to_owned(), value);
    }
    if !string_equals.is_empty() {
        condition.insert("StringEquals".to_owned(), Value::Object(string_equals));
    }
    if !condition.is_empty() {
        st.condition = Some(condition);
    }
    st
}

/// The statement for these principals (sorted, deduplicated, normalised).
fn principal_statement(
    purpose: Purpose,
    principals: &[String],
    narrowing: &Narrowing,
) -> Statement {
    let mut equals = Vec::new();
    if let Some(via) = via_service(narrowing) {
        equals.push(("kms:ViaService", Value::String(via)));
    }
    if narrowing.caller_account {
        let accounts: BTreeSet<String> = principals
            .iter()
            .filter_map(|p| principal_account(p))
            .map(str::to_owned)
            .collect();
        equals.push((
            "kms:CallerAccount",
            string_or_list(accounts.into_iter().collect()),
        ));
    }
    statement(
        purpose,
        principal_sid(purpose, narrowing),
        Principal::from_aws(principals.to_vec()),
        equals,
        None,
    )
}

fn scoped_statement(purpose: Purpose, scope: &Scope, narrowing: &Narrowing) -> Statement {
    let mut equals = Vec::new();
    if let Some(via) = via_service(narrowing) {
        equals.push(("kms:ViaService", Value::String(via)));
    }
    statement(
        purpose,
        scoped_sid(purpose, scope, narrowing),
        Principal::Any,
        equals,
        Some(scope),
    )
}

/// A principal as amishare writes it: a bare account id becomes its root ARN.
fn normalise(principal: &str) -> String {
    if principal_account(principal) == Some(principal) {
        root_arn(principal)
    } else {
        principal.to_owned()
    }
}

fn principals_of(grantees: &[Grantee]) -> BTreeSet<String> {
    grantees
        .iter()
        .filter_map(|g| match g {
            Grantee::Principal(p) => Some(normalise(p)),
            _ => None,
        })
        .collect()
}

fn existing_principals(st: &Statement) -> BTreeSet<String> {
    st.principal
        .as_ref()
        .map(|p| p.aws().into_iter().map(normalise).collect())
        .unwrap_or_default()
}

fn position(statements: &[Statement], sid: &str) -> Option<usize> {
    statements
        .iter()
        .position(|st| st.sid.as_deref() == Some(sid))
}

const ROLE_GRANT_SID: &str = "amishare: Allow grants for service-linked roles";

/// The Sid of the service-linked-role statement of `account`.
fn role_grant_sid(account: &str) -> String {
    format!("{ROLE_GRANT_SID} ({account})")
}

/// The service-linked-role statement of `account`: its principals may
/// create grants on the key for the account's own roles, with the
/// operations EBS needs and no more (`docs/spec/production.md` §C1.5).
fn role_grant_statement(
    account: &str,
    principals: &BTreeSet<String>,
    roles: &BTreeSet<String>,
) -> Statement {
    let mut st = Statement::new(Effect::Allow);
    st.sid = Some(role_grant_sid(account));
    st.principal = Some(Principal::from_aws(principals.iter().cloned().collect()));
    st.action = Some(OneOrMany::One("kms:CreateGrant".to_owned()));
    st.resource = Some(OneOrMany::One("*".to_owned()));
    let mut equals = Map::new();
    equals.insert(
        "kms:CallerAccount".to_owned(),
        Value::String(account.to_owned()),
    );
    equals.insert(
        "kms:GranteePrincipal".to_owned(),
        string_or_list(roles.iter().cloned().collect()),
    );
    let mut all = Map::new();
    all.insert(
        "kms:GrantOperations".to_owned(),
        Value::Array(
            SERVICE_ROLE_GRANT_OPERATIONS
                .iter()
                .map(|op| Value::String((*op).to_owned()))
                .collect(),
        ),
    );
    let mut condition = Map::new();
    condition.insert("StringEquals".to_owned(), Value::Object(equals));
    condition.insert("ForAllValues:StringEquals".to_owned(), Value::Object(all));
    st.condition = Some(condition);
    st
}

/// The role ARNs a role statement allows grants for.
fn statement_roles(st: &Statement) -> BTreeSet<String> {
    let Some(condition) = &st.condition else {
        return BTreeSet::new();
    };
    let Some(Value::Object(equals)) = condition.get("StringEquals") else {
        return BTreeSet::new();
    };
    match equals.get("kms:GranteePrincipal") {
        Some(Value::String(one)) => BTreeSet::from([one.clone()]),
        Some(Value::Array(many)) => many
            .iter()
            .filter_map(|v| v.as_str().map(str::to_owned))
            .collect(),
        _ => BTreeSet::new(),
    }
}

/// Adds, per account of the principal grantees, the statement that lets
/// them create grants for the account's service-linked roles.
fn add_role_statements(
    statements: &mut Vec<Statement>,
    wanted: &BTreeSet<String>,
    roles: &[String],
) {
    let mut by_account: std::collections::BTreeMap<String, (String, BTreeSet<String>)> =
        std::collections::BTreeMap::new();
    for principal in wanted {
        let Some(account) = principal_account(principal) else {
            continue;
        };
        // The partition of the principal's ARN is the roles' too.
        let partition = principal.split(':').nth(1).unwrap_or("aws").to_owned();
        by_account
            .entry(account.to_owned())
            .or_insert_with(|| (partition, BTreeSet::new()))
            .1
            .insert(principal.clone());
    }
    for (account, (partition, principals)) in by_account {
        let roles: BTreeSet<String> = roles
            .iter()
            .map(|role| format!("arn:{partition}:iam::{account}:role/{role}"))
            .collect();
        let sid = role_grant_sid(&account);
        match position(statements, &sid) {
            Some(pos) => {
                let existing = existing_principals(&statements[pos]);
                let existing_roles = statement_roles(&statements[pos]);
                if !principals.is_subset(&existing) || !roles.is_subset(&existing_roles) {
                    let all: BTreeSet<String> = existing.union(&principals).cloned().collect();
                    let all_roles: BTreeSet<String> =
                        existing_roles.union(&roles).cloned().collect();
                    statements[pos] = role_grant_statement(&account, &all, &all_roles);
                }
            }
            None => statements.push(role_grant_statement(&account, &principals, &roles)),
        }
    }
}

/// Takes `gone` out of every service-linked-role statement; one left
/// without principals is removed.
fn remove_from_role_statements(statements: &mut Vec<Statement>, gone: &BTreeSet<String>) {
    let prefix = format!("{ROLE_GRANT_SID} (");
    let mut index = 0;
    while index < statements.len() {
        let st = &statements[index];
        let ours = st
            .sid
            .as_deref()
            .is_some_and(|sid| sid.starts_with(&prefix));
        if ours {
            let existing = existing_principals(st);
            if !existing.is_disjoint(gone) {
                let kept: BTreeSet<String> = existing.difference(gone).cloned().collect();
                if kept.is_empty() {
                    statements.remove(index);
                    continue;
                }
                let account = st
                    .sid
                    .as_deref()
                    .and_then(|sid| sid.strip_prefix(&prefix))
                    .and_then(|rest| rest.strip_suffix(')'))
                    .unwrap_or_default()
                    .to_owned();
                let roles = statement_roles(st);
                statements[index] = role_grant_statement(&account, &kept, &roles);
            }
        }
        index += 1;
    }
}

/// Adds grantees to amishare's statements in `statements`, leaving any
/// statement that already covers them as it is.
fn add_grantees(statements: &mut Vec<Statement>, grantees: &[Grantee], narrowing: &Narrowing) {
    let wanted = principals_of(grantees);
    if !narrowing.service_roles.is_empty() {
        add_role_statements(statements, &wanted, &narrowing.service_roles);
    }
    if !wanted.is_empty() {
        for purpose in [Purpose::Use, Purpose::Attach] {
            let sid = principal_sid(purpose, narrowing);
            match position(statements, &sid) {
                Some(pos) => {
                    let existing = existing_principals(&statements[pos]);
                    if !wanted.is_subset(&existing) {
                        let all: Vec<String> = existing.union(&wanted).cloned().collect();
                        statements[pos] = principal_statement(purpose, &all, narrowing);
                    }
                }
                None => {
                    let all: Vec<String> = wanted.iter().cloned().collect();
                    statements.push(principal_statement(purpose, &all, narrowing));
                }
            }
        }
    }
    for scope in grantees.iter().filter_map(scope_of) {
        for purpose in [Purpose::Use, Purpose::Attach] {
            let sid = scoped_sid(purpose, &scope, narrowing);
            if position(statements, &sid).is_none() {
                statements.push(scoped_statement(purpose, &scope, narrowing));
            }
        }
    }
}

fn validate(grantees: &[Grantee], narrowing: &Narrowing) -> Result<(), MergeError> {
    if let Some(region) = &narrowing.via_service_region {
        let ok = !region.is_empty()
            && region
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-');
        if !ok {
            return Err(MergeError::InvalidRegion {
                region: region.clone(),
            });
        }
    }
    for grantee in grantees {
        if !narrowing.service_roles.is_empty() && !matches!(grantee, Grantee::Principal(_)) {
            return Err(MergeError::ServiceRolesForOrganization {
                grantee: grantee.to_string(),
            });
        }
        if let Err(reason) = validate_grantee(grantee) {
            return Err(MergeError::InvalidGrantee {
                grantee: grantee.to_string(),
                reason: reason.to_owned(),
            });
        }
    }
    Ok(())
}

fn validate_grantee(grantee: &Grantee) -> Result<(), &'static str> {
    let id_ok = |id: &str, prefix: &str| {
        id.strip_prefix(prefix).is_some_and(|rest| {
            !rest.is_empty() && rest.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
        })
    };
    match grantee {
        Grantee::Principal(p) => {
            if principal_account(p) == Some(p.as_str()) {
                return Ok(());
            }
            let parts: Vec<&str> = p.splitn(6, ':').collect();
            let ["arn", partition, "iam", "", account, resource] = parts.as_slice() else {
                return Err(
                    "expected an IAM ARN (account root, user or role) or a 12-digit account id",
                );
            };
            if partition.is_empty() || principal_account(account) != Some(account) {
                return Err(
                    "expected an IAM ARN (account root, user or role) or a 12-digit account id",
                );
            }
            if p.contains(['*', '?']) {
                return Err("wildcards are not allowed in a key policy principal");
            }
            let named = |prefix: &str| {
                resource
                    .strip_prefix(prefix)
                    .is_some_and(|name| !name.is_empty())
            };
            if *resource == "root" || named("user/") || named("role/") {
                Ok(())
            } else {
                Err("only an account root, a user or a role can be named")
            }
        }
        Grantee::Organization { org_id } => {
            if id_ok(org_id, "o-") {
                Ok(())
            } else {
                Err("organization ids look like o-xxxxxxxxxx")
            }
        }
        Grantee::OrganizationalUnit { org_id, ou_id } => {
            if !id_ok(org_id, "o-") {
                Err("organization ids look like o-xxxxxxxxxx")
            } else if !id_ok(ou_id, "ou-") {
                Err("organizational unit ids look like ou-xxxx-xxxxxxxx")
            } else {
                Ok(())
            }
        }
    }
}

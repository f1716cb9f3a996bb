//! Key-policy and IAM-policy documents for amishare.
//!
//! Three layers, each usable on its own:
//! - [`Policy`] and friends: a lossless model of a policy document, so that
//!   editing a key policy never rewrites statements amishare does not own;
//! - [`evaluate_kms`] / [`evaluate_identity`]: an evaluator that decides
//!   Allow / implicit deny / explicit deny the way AWS KMS does, and says which
//!   link is missing when access is denied;
//! - [`least_privilege_statements`], [`merge`], [`remove`] and
//!   [`check_lockout`]: the statements amishare writes to share a key, and the
//!   safe way to add them to or take them out of an existing key policy.
//!
//! ```
//! use amishare_policy::{evaluate_kms, merge, Caller, Context, Grantee, Missing, Narrowing, Policy, Request};
//!
//! let owner = "111111111111";
//! let user = "arn:aws:iam::222222222222:user/cross-ami-user";
//! let policy = Policy::default_key_policy(owner);
//! let grantees = [Grantee::Principal(user.to_owned())];
//! let shared = merge(&policy, &grantees, &Narrowing::default(), owner, "arn:aws:iam::111111111111:root")?;
//! assert!(shared.changed);
//!
//! // Across accounts the key policy is not enough: the user's own IAM
//! // policies must allow the key as well.
//! let req = Request {
//!     caller: Caller::new(user, "222222222222"),
//!     action: "kms:Decrypt",
//!     resource: "arn:aws:kms:ap-northeast-1:111111111111:key/1234abcd-12ab-34cd-56ef-1234567890ab",
//!     resource_account: owner,
//!     context: Context::via_ec2("ap-northeast-1"),
//! };
//! let decision = evaluate_kms(&req, &shared.policy, &[], &[]);
//! assert_eq!(decision.missing, [Missing::IdentityPolicyAllow]);
//! assert!(decision.denial_message(&req).ends_with("because no identity-based policy allows the kms:Decrypt action"));
//! # Ok::<(), amishare_policy::MergeError>(())
//! ```

mod document;
mod eval;
mod share;

#[cfg(test)]
mod reference;
#[cfg(test)]
mod tests;

pub use document::{
    Conditions, Effect, OneOrMany, ParseError, ParseErrorKind, Policy, Principal, Statement,
};
pub use eval::{
    action_matches, evaluate_identity, evaluate_identity_outcome, evaluate_kms,
    evaluate_kms_outcome, first_kms_refusal, is_cross_account_action, Caller, Context, Decision,
    GrantView, Missing, Outcome, PolicySource, Request, StatementRef,
};
pub use share::{
    amishare_principals, amishare_statements, check_lockout, check_lockout_on,
    least_privilege_statements, merge, merge_key, new_key_policy, remove, Grantee, MergeError,
    Merged, Narrowing, MAX_POLICY_BYTES, SERVICE_ROLE_GRANT_OPERATIONS, SID_PREFIX,
};

#![doc = include_str!("../README.md")]

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

//! One behavioural suite that every amishare backend runs.
//!
//! Each function is one behaviour: the seed flow, a row of AWS's outcome
//! table for cross-account encrypted AMIs, the rerun, unshare. A backend
//! provides a [`Harness`] (seeding, and the [`Capabilities`] it models) and
//! runs every function from one test; see [`run_all`].
//!
//! **Warning:** the functions create keys, images and instances in the
//! backend they are given, and change the target principal's identity
//! policies. Never point them at accounts that matter. The suite is not part
//! of amishare's stable API.

mod autoscaling;
mod doctor;
mod harness;
mod promises;
mod scenarios;
mod support;

pub use crate::autoscaling::autoscaling_grant_route;
pub use crate::doctor::{doctor_key_policy_actions, doctor_outcome_table, doctor_seed_passes};
pub use crate::harness::{Capabilities, Coverage, Harness, Party, VolumeSeed};
pub use crate::promises::{
    fix_waits_for_the_share, share_options_agree_with_accept,
    unshare_keeps_what_another_principal_needs,
};
pub use crate::scenarios::*;

/// Every suite function with its name, in a stable order.
pub fn all() -> Vec<(&'static str, Scenario)> {
    vec![
        ("seed_flow", |h| Box::pin(seed_flow(h))),
        ("rerun_changes_nothing", |h| {
            Box::pin(rerun_changes_nothing(h))
        }),
        ("resume_unnamed_key", |h| Box::pin(resume_unnamed_key(h))),
        ("unshare_restores", |h| Box::pin(unshare_restores(h))),
        ("aws_managed_image", |h| Box::pin(aws_managed_image(h))),
        ("refused_permissions", |h| Box::pin(refused_permissions(h))),
        ("launch_without_key_policy", |h| {
            Box::pin(launch_without_key_policy(h))
        }),
        ("launch_without_target_iam", |h| {
            Box::pin(launch_without_target_iam(h))
        }),
        ("launch_with_principal_but_no_iam", |h| {
            Box::pin(launch_with_principal_but_no_iam(h))
        }),
        ("launch_with_disabled_key", |h| {
            Box::pin(launch_with_disabled_key(h))
        }),
        ("copy_without_snapshot_permission", |h| {
            Box::pin(copy_without_snapshot_permission(h))
        }),
        ("copy_with_snapshot_permission", |h| {
            Box::pin(copy_with_snapshot_permission(h))
        }),
        ("copy_without_kms", |h| Box::pin(copy_without_kms(h))),
        ("copy_with_key_from_other_region", |h| {
            Box::pin(copy_with_key_from_other_region(h))
        }),
        ("invisible_before_share", |h| {
            Box::pin(invisible_before_share(h))
        }),
        ("snapshot_in_use", |h| Box::pin(snapshot_in_use(h))),
        ("snapshot_key_gate", |h| Box::pin(snapshot_key_gate(h))),
        ("multi_region_share", |h| Box::pin(multi_region_share(h))),
        ("organization_share", |h| Box::pin(organization_share(h))),
        ("doctor_seed_passes", |h| Box::pin(doctor_seed_passes(h))),
        ("doctor_key_policy_actions", |h| {
            Box::pin(doctor_key_policy_actions(h))
        }),
        ("doctor_outcome_table", |h| {
            Box::pin(doctor_outcome_table(h))
        }),
        ("share_options_agree_with_accept", |h| {
            Box::pin(share_options_agree_with_accept(h))
        }),
        ("unshare_keeps_what_another_principal_needs", |h| {
            Box::pin(unshare_keeps_what_another_principal_needs(h))
        }),
        ("fix_waits_for_the_share", |h| {
            Box::pin(fix_waits_for_the_share(h))
        }),
        ("autoscaling_grant_route", |h| {
            Box::pin(autoscaling_grant_route(h))
        }),
    ]
}

/// A suite function, boxed so that [`all`] can list them.
pub type Scenario =
    for<'a> fn(
        &'a dyn Harness,
    ) -> std::pin::Pin<Box<dyn std::future::Future<Output = Coverage> + Send + 'a>>;

/// Runs every suite function, each on a fresh harness from `make`, and
/// returns what each skipped. A failing check panics with the function's name.
pub async fn run_all<H: Harness, F: FnMut() -> H>(mut make: F) -> Vec<(&'static str, Coverage)> {
    let mut results = Vec::new();
    for (name, scenario) in all() {
        let harness = make();
        let coverage = scenario(&harness).await;
        results.push((name, coverage));
    }
    results
}

#![doc = include_str!("../README.md")]

mod autoscaling;
mod doctor;
mod harness;
mod lifecycle;
mod promises;
mod scenarios;
mod support;

pub use crate::autoscaling::autoscaling_grant_route;
pub use crate::doctor::{doctor_key_policy_actions, doctor_outcome_table, doctor_seed_passes};
pub use crate::harness::{Capabilities, Capability, Coverage, Harness, Party, Skip, VolumeSeed};
pub use crate::lifecycle::{key_deletion_cancelled, key_disabled_and_enabled};
pub use crate::promises::{
    fix_waits_for_the_share, share_options_agree_with_accept,
    unshare_keeps_what_another_principal_needs,
};
pub use crate::scenarios::{
    aws_managed_image, copy_with_key_from_other_region, copy_with_snapshot_permission,
    copy_without_kms, copy_without_snapshot_permission, invisible_before_share,
    launch_with_disabled_key, launch_with_principal_but_no_iam, launch_without_key_policy,
    launch_without_target_iam, multi_region_share, organization_share, refused_permissions,
    rerun_changes_nothing, resume_unnamed_key, seed_flow, snapshot_in_use, snapshot_key_gate,
    unshare_restores,
};

use Capability::{
    AdministersKeys, AsyncStates, AutoScaling, CountsCalls, CrossAccountVisibility, Directory,
    EncryptsCopies, EnforcesKeyPolicy, Organizations, OtherTarget, TagsCopies,
};

/// What the doctor's and the flow's promises need: authorization, encrypted
/// copies, shared images and asynchronous outcomes, as on AWS.
const MODELLED: &[Capability] = &[
    EnforcesKeyPolicy,
    EncryptsCopies,
    CrossAccountVisibility,
    AsyncStates,
];

/// Every suite function with what it needs, in a stable order.
pub fn all() -> Vec<Function> {
    vec![
        Function::new("seed_flow", |h| Box::pin(seed_flow(h)))
            .full(&[EncryptsCopies, CrossAccountVisibility]),
        Function::new("rerun_changes_nothing", |h| {
            Box::pin(rerun_changes_nothing(h))
        })
        .full(&[EncryptsCopies, TagsCopies, CountsCalls]),
        Function::new("resume_unnamed_key", |h| Box::pin(resume_unnamed_key(h)))
            .full(&[EncryptsCopies]),
        Function::new("unshare_restores", |h| Box::pin(unshare_restores(h)))
            .full(&[EncryptsCopies, CrossAccountVisibility]),
        Function::new("aws_managed_image", |h| Box::pin(aws_managed_image(h)))
            .full(&[EncryptsCopies, CountsCalls]),
        Function::new("refused_permissions", |h| Box::pin(refused_permissions(h)))
            .needs(&[EncryptsCopies]),
        Function::new("launch_without_key_policy", |h| {
            Box::pin(launch_without_key_policy(h))
        })
        .needs(MODELLED),
        Function::new("launch_without_target_iam", |h| {
            Box::pin(launch_without_target_iam(h))
        })
        .needs(MODELLED),
        Function::new("launch_with_principal_but_no_iam", |h| {
            Box::pin(launch_with_principal_but_no_iam(h))
        })
        .needs(MODELLED),
        Function::new("launch_with_disabled_key", |h| {
            Box::pin(launch_with_disabled_key(h))
        })
        .needs(MODELLED),
        Function::new("copy_without_snapshot_permission", |h| {
            Box::pin(copy_without_snapshot_permission(h))
        })
        .needs(&[CrossAccountVisibility]),
        Function::new("copy_with_snapshot_permission", |h| {
            Box::pin(copy_with_snapshot_permission(h))
        })
        .needs(&[CrossAccountVisibility, EncryptsCopies]),
        Function::new("copy_without_kms", |h| Box::pin(copy_without_kms(h))).needs(MODELLED),
        Function::new("copy_with_key_from_other_region", |h| {
            Box::pin(copy_with_key_from_other_region(h))
        })
        .needs(&[EncryptsCopies, AsyncStates]),
        Function::new("invisible_before_share", |h| {
            Box::pin(invisible_before_share(h))
        })
        .full(&[CrossAccountVisibility]),
        Function::new("snapshot_in_use", |h| Box::pin(snapshot_in_use(h))),
        Function::new("snapshot_key_gate", |h| Box::pin(snapshot_key_gate(h)))
            .full(&[EncryptsCopies]),
        Function::new("multi_region_share", |h| Box::pin(multi_region_share(h)))
            .full(&[EncryptsCopies]),
        Function::new("organization_share", |h| Box::pin(organization_share(h)))
            .needs(&[Organizations, EncryptsCopies])
            .full(&[CrossAccountVisibility, EnforcesKeyPolicy]),
        Function::new("doctor_seed_passes", |h| Box::pin(doctor_seed_passes(h)))
            .needs(MODELLED)
            .full(&[Directory]),
        Function::new("doctor_key_policy_actions", |h| {
            Box::pin(doctor_key_policy_actions(h))
        })
        .needs(MODELLED)
        .full(&[Directory]),
        Function::new("doctor_outcome_table", |h| {
            Box::pin(doctor_outcome_table(h))
        })
        .needs(MODELLED)
        .full(&[Directory]),
        Function::new("share_options_agree_with_accept", |h| {
            Box::pin(share_options_agree_with_accept(h))
        })
        .needs(MODELLED)
        .full(&[Organizations, Directory]),
        Function::new("unshare_keeps_what_another_principal_needs", |h| {
            Box::pin(unshare_keeps_what_another_principal_needs(h))
        })
        .needs(&[
            EnforcesKeyPolicy,
            EncryptsCopies,
            CrossAccountVisibility,
            AsyncStates,
            OtherTarget,
        ])
        .full(&[Directory]),
        Function::new("fix_waits_for_the_share", |h| {
            Box::pin(fix_waits_for_the_share(h))
        })
        .needs(MODELLED)
        .full(&[CountsCalls, Directory]),
        Function::new("autoscaling_grant_route", |h| {
            Box::pin(autoscaling_grant_route(h))
        })
        .needs(&[
            EnforcesKeyPolicy,
            EncryptsCopies,
            CrossAccountVisibility,
            AsyncStates,
            AutoScaling,
        ])
        .full(&[CountsCalls, Directory]),
        Function::new("key_disabled_and_enabled", |h| {
            Box::pin(key_disabled_and_enabled(h))
        })
        .needs(&[AdministersKeys])
        .full(MODELLED),
        Function::new("key_deletion_cancelled", |h| {
            Box::pin(key_deletion_cancelled(h))
        })
        .needs(&[AdministersKeys])
        .full(MODELLED),
    ]
}

/// A suite function's body, boxed so that [`all`] can list them.
pub type Scenario =
    for<'a> fn(
        &'a dyn Harness,
    ) -> std::pin::Pin<Box<dyn std::future::Future<Output = Coverage> + Send + 'a>>;

/// A suite function: its name, its body, and the capabilities it needs.
#[derive(Clone, Copy)]
pub struct Function {
    /// The function's name.
    pub name: &'static str,
    /// Its body. Call it through [`run`], which holds it to its plan.
    pub scenario: Scenario,
    /// What it needs to check anything: without one of these it is not run.
    pub needs: &'static [Capability],
    /// What it needs besides to run in full: without one of these it runs in part.
    pub full: &'static [Capability],
}

impl std::fmt::Debug for Function {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Function")
            .field("name", &self.name)
            .field("needs", &self.needs)
            .field("full", &self.full)
            .finish()
    }
}

impl Function {
    /// A function that needs nothing.
    pub const fn new(name: &'static str, scenario: Scenario) -> Function {
        Function {
            name,
            scenario,
            needs: &[],
            full: &[],
        }
    }

    /// The capabilities it needs to check anything.
    pub const fn needs(mut self, needs: &'static [Capability]) -> Function {
        self.needs = needs;
        self
    }

    /// The capabilities it needs besides to run in full.
    pub const fn full(mut self, full: &'static [Capability]) -> Function {
        self.full = full;
        self
    }

    /// What it covers on a backend with `capabilities`.
    pub fn plan(&self, capabilities: &Capabilities) -> Plan {
        let lacking = capabilities.lacking(self.needs);
        if !lacking.is_empty() {
            return Plan::Skipped(lacking);
        }
        let lacking = capabilities.lacking(self.full);
        if !lacking.is_empty() {
            return Plan::Part(lacking);
        }
        Plan::Full
    }
}

/// What a function covers on a backend, from its capabilities alone.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Plan {
    /// Every check runs.
    Full,
    /// Some checks run; these capabilities are lacking for the rest.
    Part(Vec<Capability>),
    /// Nothing runs: these capabilities are lacking.
    Skipped(Vec<Capability>),
}

/// How far a function ran.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Ran {
    /// Every check ran.
    Full,
    /// Some checks ran and some were skipped.
    Part,
    /// Nothing was checked.
    Skipped,
}

impl Plan {
    /// How far a function with this plan runs.
    pub fn ran(&self) -> Ran {
        match self {
            Plan::Full => Ran::Full,
            Plan::Part(_) => Ran::Part,
            Plan::Skipped(_) => Ran::Skipped,
        }
    }
}

impl std::fmt::Display for Ran {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Ran::Full => "in full",
            Ran::Part => "in part",
            Ran::Skipped => "skipped",
        })
    }
}

/// One function's run on one backend.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Outcome {
    /// The function.
    pub name: &'static str,
    /// How far it ran: in full or in part only when it noted a check.
    pub ran: Ran,
    /// What it checked.
    pub checked: Vec<String>,
    /// What it skipped, each with why.
    pub skipped: Vec<String>,
}

impl std::fmt::Display for Outcome {
    /// `name: in full (3 checks)`, or the checks and skips one per line.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.ran == Ran::Full {
            return write!(f, "{}: in full ({} checks)", self.name, self.checked.len());
        }
        write!(f, "{}: {}", self.name, self.ran)?;
        for checked in &self.checked {
            write!(f, "\n    checked: {checked}")?;
        }
        for skipped in &self.skipped {
            write!(f, "\n    skipped {skipped}")?;
        }
        Ok(())
    }
}

/// Runs one function on `h`, held to its plan for `h`'s capabilities.
///
/// A function whose needs `h` lacks is not called: it is reported skipped,
/// with what is lacking. One that noted no check is reported skipped too.
///
/// # Panics
///
/// With the function's name, when a check fails, when the harness does not
/// offer what its capabilities claim, or when the run differs from the
/// plan: it ran in part where the plan says in full (or the reverse),
/// checked nothing where the plan says it runs, or skipped something for a
/// capability the backend has or the function does not declare.
pub async fn run(function: &Function, h: &dyn Harness) -> Outcome {
    let capabilities = h.capabilities();
    check_offers(h, &capabilities);
    let name = function.name;
    let plan = function.plan(&capabilities);
    if let Plan::Skipped(lacking) = &plan {
        return Outcome {
            name,
            ran: Ran::Skipped,
            checked: Vec::new(),
            skipped: lacking
                .iter()
                .map(|c| format!("everything: {}", c.lacking()))
                .collect(),
        };
    }
    let coverage = (function.scenario)(h).await;
    for skip in coverage.skipped() {
        assert!(
            !capabilities.has(skip.lacking) && function.full.contains(&skip.lacking),
            "{name} skipped {skip}, but the backend has {:?} or the function does not declare it",
            skip.lacking
        );
    }
    let ran = match (coverage.checked().is_empty(), coverage.skipped().is_empty()) {
        (true, _) => Ran::Skipped,
        (false, true) => Ran::Full,
        (false, false) => Ran::Part,
    };
    let mut skipped: Vec<String> = coverage.skipped().iter().map(ToString::to_string).collect();
    if ran == Ran::Skipped {
        skipped.push("everything: it noted no check".to_owned());
    }
    let outcome = Outcome {
        name,
        ran,
        checked: coverage.checked().to_vec(),
        skipped,
    };
    assert_eq!(
        outcome.ran,
        plan.ran(),
        "{name} ran {}, where its plan for this backend says {} ({plan:?}):\n{outcome}",
        outcome.ran,
        plan.ran()
    );
    outcome
}

/// Asserts that the harness offers what its capabilities claim.
fn check_offers(h: &dyn Harness, capabilities: &Capabilities) {
    let offers = [
        (Organizations, h.target_organization().is_some()),
        (OtherTarget, h.other_target().is_some()),
        (Directory, h.directory().is_some()),
        (CountsCalls, h.mutating_calls().is_some()),
        (AutoScaling, h.target().scaling.is_some()),
        (
            AdministersKeys,
            h.owner().key_admin.is_some() && h.target().key_admin.is_some(),
        ),
    ];
    for (capability, offered) in offers {
        assert_eq!(
            capabilities.has(capability),
            offered,
            "the harness's capabilities and what it offers disagree on {capability:?}"
        );
    }
}

/// Runs every suite function, each on a fresh harness from `make`, through
/// [`run`].
pub async fn run_all<H: Harness, F: FnMut() -> H>(mut make: F) -> Vec<Outcome> {
    let mut outcomes = Vec::new();
    for function in all() {
        let harness = make();
        outcomes.push(run(&function, &harness).await);
    }
    outcomes
}

/// The names of the functions that ran as `ran`, in order.
pub fn named(outcomes: &[Outcome], ran: Ran) -> Vec<&'static str> {
    outcomes
        .iter()
        .filter(|o| o.ran == ran)
        .map(|o| o.name)
        .collect()
}

/// One line of counts, then every function that did not run in full, with
/// what it checked and what it skipped and why; with `every`, the functions
/// that ran in full too.
pub fn summary(backend: &str, outcomes: &[Outcome], every: bool) -> String {
    let count = |ran| outcomes.iter().filter(|o| o.ran == ran).count();
    let mut out = format!(
        "conformance on {backend}: {} suite functions, {} in full, {} in part, {} skipped",
        outcomes.len(),
        count(Ran::Full),
        count(Ran::Part),
        count(Ran::Skipped)
    );
    for outcome in outcomes {
        if every || outcome.ran != Ran::Full {
            out.push_str(&format!("\n  {outcome}"));
        }
    }
    out
}

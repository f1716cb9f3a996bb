//! The conformance suite on the simulation: every function, all capabilities on.

use std::io::Write as _;
use std::sync::Arc;

use amishare_conformance::{
    named, summary, Capabilities, Capability, Coverage, Function, Harness, Outcome, Party, Ran,
    VolumeSeed,
};
use amishare_core::diagnose::Directory;
use amishare_core::store::KeyState;
use amishare_core::{Clock, InstanceId, KeyArn, OrganizationArn, OuArn, Region, Result};
use amishare_sim::harness::WorldHarness;
use async_trait::async_trait;

#[tokio::test(start_paused = true)]
async fn every_suite_function_passes_on_the_simulation() {
    let mut seed = 0;
    let outcomes = amishare_conformance::run_all(|| {
        seed += 1;
        WorldHarness::in_process(seed).expect("the suite's world")
    })
    .await;
    // Straight to stderr, so that a passing run shows it too.
    let _ = writeln!(
        std::io::stderr(),
        "{}",
        summary("the simulation", &outcomes, false)
    );
    assert_eq!(outcomes.len(), amishare_conformance::all().len());
    assert_eq!(
        named(&outcomes, Ran::Full).len(),
        outcomes.len(),
        "the simulation models everything: {}",
        summary("the simulation", &outcomes, false)
    );
}

/// The simulation's harness, claiming to lack some capabilities.
struct Lacking {
    inner: WorldHarness,
    capabilities: Capabilities,
}

#[async_trait]
impl Harness for Lacking {
    fn capabilities(&self) -> Capabilities {
        self.capabilities
    }
    fn region(&self) -> Region {
        self.inner.region()
    }
    fn other_region(&self) -> Region {
        self.inner.other_region()
    }
    fn owner(&self) -> Party {
        self.inner.owner()
    }
    fn target(&self) -> Party {
        self.inner.target()
    }
    fn clock(&self) -> Arc<dyn Clock> {
        self.inner.clock()
    }
    fn target_organization(&self) -> Option<(OrganizationArn, OuArn)> {
        self.inner.target_organization()
    }
    async fn seed_instance(&self, volumes: &[VolumeSeed]) -> Result<InstanceId> {
        self.inner.seed_instance(volumes).await
    }
    async fn seed_target_key(&self) -> Result<KeyArn> {
        self.inner.seed_target_key().await
    }
    async fn set_target_kms_access(&self, keys: &[KeyArn]) -> Result<()> {
        self.inner.set_target_kms_access(keys).await
    }
    async fn set_key_state(&self, key: &KeyArn, state: KeyState) -> Result<()> {
        self.inner.set_key_state(key, state).await
    }
    fn mutating_calls(&self) -> Option<usize> {
        self.inner.mutating_calls()
    }
    fn directory(&self) -> Option<Arc<dyn Directory>> {
        self.inner.directory()
    }
    fn target_admin(&self) -> Option<Party> {
        self.inner.target_admin()
    }
    fn other_target(&self) -> Option<Party> {
        self.inner.other_target()
    }
}

/// Runs `function` through the runner on a fresh harness lacking what
/// `lacks` says, and returns its outcome or the runner's panic message.
async fn through_runner(
    function: Function,
    lacks: fn(&mut Capabilities),
) -> std::result::Result<Outcome, String> {
    let joined = tokio::spawn(async move {
        let mut capabilities = Capabilities::all();
        lacks(&mut capabilities);
        let h = Lacking {
            inner: WorldHarness::in_process(1).expect("the suite's world"),
            capabilities,
        };
        amishare_conformance::run(&function, &h).await
    })
    .await;
    joined.map_err(|err| {
        let panic = err.into_panic();
        panic
            .downcast_ref::<String>()
            .cloned()
            .or_else(|| panic.downcast_ref::<&str>().map(|s| (*s).to_owned()))
            .unwrap_or_default()
    })
}

fn lacks_nothing(_: &mut Capabilities) {}

fn lacks_encryption(capabilities: &mut Capabilities) {
    capabilities.encrypts_copies = false;
}

/// The runner, not each function, decides what counts as run: a function
/// that notes no check is never counted as run, a function whose needs the
/// backend lacks is not called, and a run that differs from its plan fails.
#[tokio::test(start_paused = true)]
async fn the_runner_never_counts_a_function_that_checked_nothing() {
    // Notes nothing: reported as skipped, against a plan that says it runs.
    let silent = Function::new("silent", |_| Box::pin(async { Coverage::default() }));
    let err = through_runner(silent, lacks_nothing)
        .await
        .expect_err("a function that checked nothing fails its plan");
    assert!(
        err.contains("silent ran skipped") && err.contains("it noted no check"),
        "{err}"
    );

    // Needs encrypted copies: not called where they are lacking.
    let needy = Function::new("needy", |_| {
        Box::pin(async { panic!("called on a backend that lacks what it needs") })
    })
    .needs(&[Capability::EncryptsCopies]);
    let outcome = through_runner(needy, lacks_encryption)
        .await
        .expect("the runner skips it");
    assert_eq!(outcome.ran, Ran::Skipped);
    assert_eq!(
        outcome.skipped,
        [format!(
            "everything: {}",
            Capability::EncryptsCopies.lacking()
        )]
    );

    // Skips what the backend has: the run fails.
    let shirker = Function::new("shirker", |_| {
        Box::pin(async {
            let mut coverage = Coverage::default();
            coverage.check("something");
            coverage.skip("the rest", Capability::EncryptsCopies);
            coverage
        })
    })
    .full(&[Capability::EncryptsCopies]);
    let err = through_runner(shirker, lacks_nothing)
        .await
        .expect_err("a skip for a capability the backend has fails");
    assert!(err.contains("shirker skipped the rest"), "{err}");

    // The same skip where the capability is lacking: in part, as planned.
    let outcome = through_runner(shirker, lacks_encryption)
        .await
        .expect("in part, as planned");
    assert_eq!(outcome.ran, Ran::Part);
    assert_eq!(outcome.checked, ["something"]);

    // Checks everything where its plan says in part: the run fails.
    let eager = Function::new("eager", |_| {
        Box::pin(async {
            let mut coverage = Coverage::default();
            coverage.check("everything");
            coverage
        })
    })
    .full(&[Capability::EncryptsCopies]);
    let err = through_runner(eager, lacks_encryption)
        .await
        .expect_err("in full where the plan says in part");
    assert!(err.contains("eager ran in full"), "{err}");
}

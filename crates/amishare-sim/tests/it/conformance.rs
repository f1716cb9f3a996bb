//! The conformance suite on the simulation: every function, all capabilities on.

use std::io::Write as _;

use amishare_conformance::{named, summary, Ran};
use amishare_sim::harness::WorldHarness;

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

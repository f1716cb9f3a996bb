//! The conformance suite on the simulation: every function, all capabilities on.

use amishare_sim::harness::WorldHarness;

#[tokio::test(start_paused = true)]
async fn every_suite_function_passes_on_the_simulation() {
    let mut seed = 0;
    let results = amishare_conformance::run_all(|| {
        seed += 1;
        WorldHarness::in_process(seed).expect("the suite's world")
    })
    .await;
    assert_eq!(results.len(), amishare_conformance::all().len());
    for (name, coverage) in &results {
        assert!(
            coverage.skipped.is_empty(),
            "{name} skipped {:?} on the simulation, which models everything",
            coverage.skipped
        );
    }
}

//! Whole seed flows per second on the simulation, on one core.
//!
//! `seed_flow` runs the flow of `amishare demo` (A shares an encrypted AMI
//! with B's user; B checks the key, launches an instance until it runs, and
//! copies the image under its own key) once per iteration, on a fresh world
//! built (and dropped) outside the timed part. Criterion reports the throughput in flows
//! (elements) per second.

#![allow(missing_docs)] // criterion's macros generate undocumented items.

use criterion::{criterion_group, criterion_main, BatchSize, Criterion, Throughput};

use amishare_sim::seed::SeedWorld;

// The allocator the `amishare` command runs with.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn seed_flow(c: &mut Criterion) {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .start_paused(true)
        .build()
        .expect("runtime");
    let mut group = c.benchmark_group("sim");
    group.throughput(Throughput::Elements(1));
    group.bench_function("seed_flow", |b| {
        // The world is built and dropped outside the timed part.
        b.iter_batched_ref(
            || SeedWorld::new(1).expect("seed world"),
            |seed| {
                let report = runtime
                    .block_on(seed.run())
                    .expect("the seed flow succeeds");
                assert!(report.accept.launch.is_some());
                report
            },
            // One world per timed flow: a batch of worlds built up front
            // would measure page faults on fresh memory instead.
            BatchSize::PerIteration,
        )
    });
    group.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default();
    targets = seed_flow
}
criterion_main!(benches);

//! `cargo bench -p ebb-core --bench internals`: what the engine's machinery costs per call, in
//! process: the scheduler's plan over queues of 10 to 10,000 jobs, one tick of the idle
//! estimator, a bucket's admission of one piece, and one committed change through the queue
//! task (a `Set*` call: the request, the job row's write and its fsync).
#![allow(clippy::unwrap_used, missing_docs)]

use std::hint::black_box;

use criterion::{BenchmarkId, Criterion, criterion_group, criterion_main};
use ebb_core::internals::{EstimatorBench, LimiterBench, PlanBench};
use ebb_core::{Engine, EngineConfig, JobType, PropertyChange};

fn plan(c: &mut Criterion) {
    let mut group = c.benchmark_group("plan");
    for n in [10, 1_000, 10_000] {
        let bench = PlanBench::new(n);
        group.bench_with_input(BenchmarkId::from_parameter(n), &bench, |b, bench| {
            b.iter(|| black_box(bench.run()));
        });
    }
    group.finish();
}

fn estimator(c: &mut Criterion) {
    let mut bench = EstimatorBench::default();
    c.bench_function("estimator update", |b| b.iter(|| black_box(bench.run())));
}

fn limiter(c: &mut Criterion) {
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let bench = LimiterBench::new(1 << 40);
    c.bench_function("limiter admit 16 KiB", |b| {
        b.to_async(&runtime).iter(|| bench.run(16 * 1024));
    });
}

fn store_commit(c: &mut Criterion) {
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let mut config = EngineConfig::new(dir.path().join("queue")).with_scheduling(false);
    config.secret_key = dir.path().join("secret.key");
    config.platform_secret_store = false;
    let (engine, id) = runtime.block_on(async {
        let engine = Engine::open(config).await.unwrap();
        let id = engine.create_job("bench", JobType::Download).await.unwrap();
        (engine, id)
    });
    let mut n = 0u64;
    c.bench_function("store commit (a Set call)", |b| {
        b.to_async(&runtime).iter(|| {
            n += 1;
            let change = PropertyChange::Description(format!("change {n}"));
            let engine = engine.clone();
            async move { engine.set_property(id, change).await.unwrap() }
        });
    });
    runtime.block_on(engine.shutdown());
}

criterion_group!(benches, plan, estimator, limiter, store_commit);
criterion_main!(benches);

//! The long run of issue 27's differential test: 100,000 generated kustomizations (by
//! default), each rendered by `kubectl kustomize` before and after tagpromoter's bump,
//! every container's image compared with tagpromoter's model of kustomize's image
//! transformer and with the effective reference it computes. Prints what it covered and
//! fails on any disagreement. `BENCH_CASES` and `BENCH_SEED` change the size and the seed.
//! Run with `cargo bench --bench kustomize_oracle` (needs kubectl).

#[path = "../tests/support/mod.rs"]
mod support;

use std::time::Instant;

use support::env;
use support::kustomize_cases::{Coverage, generate, judge};

fn main() {
    let cases = env("BENCH_CASES", 100_000);
    let seed = env("BENCH_SEED", 27) as u64;
    support::require("kubectl");
    let started = Instant::now();
    let mut cov = Coverage::default();
    const BATCH: usize = 2_000;
    for (k, start) in (0..cases).step_by(BATCH).enumerate() {
        let n = BATCH.min(cases - start);
        let dir = tempfile::tempdir().expect("a temporary directory");
        judge(
            dir.path(),
            &generate(n, seed * 1_000_003 + k as u64),
            &mut cov,
        );
    }
    println!(
        "kustomize oracle: {} cases, {} container images compared with kubectl kustomize in {:.1} s; {} disagreements",
        cov.cases,
        cov.images,
        started.elapsed().as_secs_f64(),
        cov.failures.len()
    );
    for (kind, n) in &cov.counts {
        println!("  {kind}: {n}");
    }
    if let Some(first) = cov.failures.first() {
        eprintln!("the first disagreement:\n{first}");
        std::process::exit(1);
    }
    if !cov.missing().is_empty() {
        eprintln!("never generated: {:?}", cov.missing());
        std::process::exit(1);
    }
}

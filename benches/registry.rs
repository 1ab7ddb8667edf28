//! Benchmark: list 500 repositories of 200 tags each on a loopback `docker-registry`, as one
//! pass of the watcher would, and print requests, wall time, requests per second and peak
//! memory. Run with `cargo bench --bench registry` (needs Debian's docker-registry).
//! `BENCH_REPOS`, `BENCH_TAGS` and `BENCH_RPS` change the sizes and the pacing.

#[path = "../tests/support/mod.rs"]
mod support;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Instant;

use support::{Auth, DockerRegistry};
use support::{env, peak_rss_kib};
use tagpromoter::image::Repository;
use tagpromoter::registry::{HostConfig, Registry, RetryPolicy};

#[tokio::main]
async fn main() {
    let repos = env("BENCH_REPOS", 500);
    let tags = env("BENCH_TAGS", 200);
    let rps = env("BENCH_RPS", 1000) as f64;
    let reg = DockerRegistry::start(Auth::None);

    let seeding = Instant::now();
    let names: Vec<String> = (0..tags)
        .map(|i| format!("1.{}.{}", i / 50, i % 50))
        .collect();
    support::oci::seed_many(&reg.addr, repos, |i| format!("bench/app-{i:03}"), names).await;
    eprintln!(
        "seeded {repos} repositories x {tags} tags in {:.1}s",
        seeding.elapsed().as_secs_f64()
    );

    // Measure the pass alone: reset the peak RSS counter after seeding.
    let _ = std::fs::write("/proc/self/clear_refs", "5");
    let config = HostConfig {
        insecure: true,
        requests_per_second: rps,
        concurrency: 8,
        ..HostConfig::default()
    };
    let client = Arc::new(
        Registry::new(
            HashMap::from([(reg.addr.clone(), config)]),
            RetryPolicy::default(),
        )
        .unwrap(),
    );
    let started = Instant::now();
    let mut tasks = tokio::task::JoinSet::new();
    for r in 0..repos {
        let client = Arc::clone(&client);
        let image = Repository::new(&format!("{}/bench/app-{r:03}", reg.addr)).unwrap();
        tasks.spawn(async move { client.tags(&image).await.map(|l| l.tags.len()) });
    }
    let mut listed = 0;
    while let Some(joined) = tasks.join_next().await {
        listed += joined.unwrap().expect("listing");
    }
    let wall = started.elapsed();
    let requests = client.request_count();
    println!("repositories        {repos}");
    println!("tags listed         {listed}");
    println!("requests            {requests}");
    println!("wall time           {:.3} s", wall.as_secs_f64());
    println!(
        "requests per second {:.1} (pacing limit {rps})",
        requests as f64 / wall.as_secs_f64().max(f64::EPSILON)
    );
    println!(
        "peak memory (RSS)   {:.1} MiB",
        peak_rss_kib() as f64 / 1024.0
    );
}

//! Benchmark: `tagpromoter once` over 500 promotions x 3 environments (dev -> staging ->
//! prod), 200 tags per image, on a loopback `docker-registry` and `git daemon`. Prints, for a
//! cold run (an empty cache, every dev environment bumped) and for runs with nothing to
//! change (each a new process on the warm cache, as a CronJob runs them): wall time, peak
//! memory, and the run's own summary (landed, failed, registry requests); then a worker's
//! in-process pass with nothing to change. `BENCH_APPS` and `BENCH_TAGS` change the sizes.
//! Run with `cargo bench --bench engine` (needs python3 for the peak-memory figure).

#[path = "../tests/support/mod.rs"]
mod support;

use std::time::Instant;

use support::git::{GitDaemon, bare_repo, git};
use support::{Auth, DockerRegistry, env};
use tagpromoter::engine::{Engine, Options};

fn overlay(image: &str) -> String {
    format!(
        "apiVersion: kustomize.config.k8s.io/v1beta1\nkind: Kustomization\nresources:\n  - ../base\nimages:\n  - name: {image}\n    newTag: 1.0.0 # bumped by the bot\n"
    )
}

#[tokio::main]
async fn main() {
    let apps = env("BENCH_APPS", 500);
    let tags = env("BENCH_TAGS", 200);
    let reg = DockerRegistry::start(Auth::None);
    let seeding = Instant::now();
    let names: Vec<String> = (0..tags)
        .map(|i| format!("1.{}.{}", i / 50, i % 50))
        .collect();
    support::oci::seed_many(&reg.addr, apps, |i| format!("bench/app-{i:03}"), names).await;

    let base = tempfile::tempdir().unwrap();
    let mut files = Vec::new();
    let mut rules = format!(
        "apiVersion: tagpromoter.io/v1alpha1\nkind: Settings\nspec:\n  git: {{ url: 'GITURL' }}\n  registries: [{{ host: '{}', insecure: true, requestsPerSecond: 5000 }}]\n",
        reg.addr
    );
    for a in 0..apps {
        let image = format!("{}/bench/app-{a:03}", reg.addr);
        for e in ["dev", "staging", "prod"] {
            files.push((
                format!("apps/app-{a:03}/{e}/kustomization.yaml"),
                overlay(&image),
            ));
        }
        rules.push_str(&format!(
            "---\napiVersion: tagpromoter.io/v1alpha1\nkind: Promotion\nmetadata: {{ name: app-{a:03} }}\nspec:\n  image: {image}\n  environments:\n    - {{ name: dev, policy: {{ semver: '>=1.0.0' }}, target: {{ kustomize: {{ file: apps/app-{a:03}/dev/kustomization.yaml }} }} }}\n    - {{ name: staging, from: dev, soak: 1h, policy: {{ semver: '>=1.0.0' }}, target: {{ kustomize: {{ file: apps/app-{a:03}/staging/kustomization.yaml }} }} }}\n    - {{ name: prod, from: staging, soak: 24h, policy: {{ semver: '>=1.0.0' }}, target: {{ kustomize: {{ file: apps/app-{a:03}/prod/kustomization.yaml }} }} }}\n"
        ));
    }
    let refs: Vec<(&str, &str)> = files
        .iter()
        .map(|(p, t)| (p.as_str(), t.as_str()))
        .collect();
    let bare = bare_repo(base.path(), "fleet", &refs);
    let daemon = GitDaemon::start(base.path());
    let rules_dir = tempfile::tempdir().unwrap();
    std::fs::write(
        rules_dir.path().join("rules.yaml"),
        rules.replace("GITURL", &format!("{}fleet.git", daemon.url)),
    )
    .unwrap();
    eprintln!(
        "seeded {apps} images x {tags} tags and {} files in {:.1}s",
        files.len(),
        seeding.elapsed().as_secs_f64()
    );

    let cache = tempfile::tempdir().unwrap();
    println!("{apps} promotions x 3 environments, {tags} tags per image");
    // `tagpromoter once` as a CronJob runs it: a new process each time.
    let once = |label: &str| {
        let started = Instant::now();
        let (out, max_rss_kib) = run_measured(&[
            "--rules",
            rules_dir.path().to_str().unwrap(),
            "--cache-dir",
            cache.path().to_str().unwrap(),
            "once",
        ]);
        let wall = started.elapsed();
        let summary = out.lines().last().unwrap_or_default().to_string();
        println!(
            "{label:<34} {:>7.3} s  peak RSS {:>6.1} MiB  {summary}",
            wall.as_secs_f64(),
            max_rss_kib as f64 / 1024.0
        );
    };
    once("once, cold (empty cache)");
    let commits = git(&bare, &["rev-list", "--count", "main"])
        .trim()
        .to_string();
    once("once, nothing to change");
    once("once, nothing to change (again)");
    assert_eq!(
        git(&bare, &["rev-list", "--count", "main"]).trim(),
        commits,
        "nothing changed"
    );
    println!("commits on the branch: {commits} (one initial, one per dev bump)");

    // The worker's case: the same engine, pass after pass.
    let engine = Engine::open(
        tagpromoter::rules::load_dir(rules_dir.path()).unwrap(),
        cache.path(),
        Options::default(),
    )
    .await
    .unwrap();
    let now = jiff::Timestamp::now();
    engine.pass(now).await;
    let started = Instant::now();
    let warm = engine.pass(now).await;
    let wall = started.elapsed();
    println!(
        "{:<34} {:>7.3} s  {} registry requests, {} landed",
        "run, nothing to change (in process)",
        wall.as_secs_f64(),
        warm.registry_requests,
        warm.landed()
    );
}

/// Run the tagpromoter binary; its stdout and its peak RSS in KiB (through Python's
/// `getrusage`, so that nothing but python3 is needed).
fn run_measured(args: &[&str]) -> (String, u64) {
    let out = std::process::Command::new("python3")
        .args([
            "-c",
            "import resource, subprocess, sys\n\
             r = subprocess.run(sys.argv[1:], stdout=subprocess.PIPE)\n\
             sys.stdout.write(r.stdout.decode())\n\
             print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)",
            env!("CARGO_BIN_EXE_tagpromoter"),
        ])
        .args(args)
        .env("TAGPROMOTER_LOG", "error")
        .output()
        .expect("python3 runs");
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let mut lines: Vec<&str> = text.lines().collect();
    let rss = lines.pop().and_then(|l| l.trim().parse().ok()).unwrap_or(0);
    (lines.join("\n"), rss)
}

//! Benchmark: a large fleet over many repositories (issue 18). 10,000 promotions x 3
//! environments (dev -> staging -> prod) written to 20 GitOps repositories, on a loopback
//! `docker-registry` and `git daemon`. Prints:
//!
//! - the floor: fetching the same tag lists with `curl --parallel` (median of 3);
//! - `tagpromoter once` cold (every dev bumped, one push per repository) and with nothing to
//!   change (a new process on the warm cache, as a CronJob runs it): wall time, peak RSS,
//!   and the no-change pass against the floor (target: within 1.5x, under 256 MiB);
//! - `once` after a person's commit to every repository (each kept snapshot grown by it);
//! - with `--shards 4`, each shard's registry requests in a no-change pass against a
//!   quarter of the images (target: within 10%).
//!
//! `BENCH_FLEET_PROMOTIONS`, `BENCH_FLEET_REPOS` and `BENCH_FLEET_TAGS` change the sizes;
//! `BENCH_FLEET_KEEP=1` keeps the fleet up after the cold run (for profiling by hand).
//! Run with `cargo bench --bench fleet` (needs curl, and python3 for the peak RSS).

#[path = "../tests/support/mod.rs"]
mod support;

use std::time::Instant;

use support::git::{GitDaemon, bare_repo, git};
use support::{Auth, DockerRegistry, env, run_measured};
use tagpromoter::engine::{Engine, Options};
use tagpromoter::shard::Shard;

/// Connections to the registry at once, for tagpromoter (`concurrency:`) and for curl
/// (`--parallel-max`) alike.
const CONNECTIONS: usize = 8;

fn overlay(image: &str) -> String {
    format!(
        "apiVersion: kustomize.config.k8s.io/v1beta1\nkind: Kustomization\nresources:\n  - ../base\nimages:\n  - name: {image}\n    newTag: 1.0.0 # bumped by the bot\n"
    )
}

fn app(i: usize) -> String {
    format!("bench/app-{i:05}")
}

fn repo_name(r: usize) -> String {
    match r {
        0 => "default".to_string(),
        r => format!("team-{r:02}"),
    }
}

#[tokio::main]
async fn main() {
    let promotions = env("BENCH_FLEET_PROMOTIONS", 10_000);
    let repos = env("BENCH_FLEET_REPOS", 20).max(1);
    let tags = env("BENCH_FLEET_TAGS", 20);
    let reg = DockerRegistry::start(Auth::None);
    let seeding = Instant::now();
    let names: Vec<String> = (0..tags).map(|i| format!("1.{i}.0")).collect();
    support::oci::seed_many(&reg.addr, promotions, app, names).await;

    // Repository r holds the promotions p with p % repos == r.
    let base = tempfile::tempdir().unwrap();
    let mut bares = Vec::new();
    for r in 0..repos {
        let files: Vec<(String, String)> = (r..promotions)
            .step_by(repos)
            .flat_map(|p| {
                let image = format!("{}/{}", reg.addr, app(p));
                ["dev", "staging", "prod"].map(|e| {
                    (
                        format!("apps/app-{p:05}/{e}/kustomization.yaml"),
                        overlay(&image),
                    )
                })
            })
            .collect();
        let refs: Vec<(&str, &str)> = files
            .iter()
            .map(|(p, t)| (p.as_str(), t.as_str()))
            .collect();
        bares.push(bare_repo(base.path(), &repo_name(r), &refs));
    }
    let daemon = GitDaemon::start(base.path());
    let mut settings = format!(
        "apiVersion: tagpromoter.io/v1alpha1\nkind: Settings\nspec:\n  git: {{ url: '{}default.git' }}\n  registries: [{{ host: '{}', insecure: true, requestsPerSecond: 100000, concurrency: {CONNECTIONS} }}]\n  repositories:\n",
        daemon.url, reg.addr
    );
    for r in 1..repos {
        settings.push_str(&format!(
            "    - {{ name: {n}, url: '{}{n}.git' }}\n",
            daemon.url,
            n = repo_name(r)
        ));
    }
    // One file of promotions per repository, as teams keep them (a rules file holds at
    // most 1 MiB).
    let mut files: Vec<String> = vec![String::new(); repos];
    for p in 0..promotions {
        let a = format!("app-{p:05}");
        files[p % repos].push_str(&format!(
            "---\napiVersion: tagpromoter.io/v1alpha1\nkind: Promotion\nmetadata: {{ name: {a} }}\nspec:\n  image: {}/{}\n  repository: {}\n  environments:\n    - {{ name: dev, policy: {{ semver: '>=1.0.0' }}, target: {{ kustomize: {{ file: apps/{a}/dev/kustomization.yaml }} }} }}\n    - {{ name: staging, from: dev, soak: 1h, policy: {{ semver: '>=1.0.0' }}, target: {{ kustomize: {{ file: apps/{a}/staging/kustomization.yaml }} }} }}\n    - {{ name: prod, from: staging, soak: 24h, policy: {{ semver: '>=1.0.0' }}, target: {{ kustomize: {{ file: apps/{a}/prod/kustomization.yaml }} }} }}\n",
            reg.addr,
            app(p),
            repo_name(p % repos)
        ));
    }
    let rules_dir = tempfile::tempdir().unwrap();
    std::fs::write(rules_dir.path().join("settings.yaml"), &settings).unwrap();
    for (r, text) in files.iter().enumerate() {
        std::fs::write(
            rules_dir.path().join(format!("{}.yaml", repo_name(r))),
            text,
        )
        .unwrap();
    }
    eprintln!(
        "seeded {promotions} images x {tags} tags and {repos} repositories in {:.1}s",
        seeding.elapsed().as_secs_f64()
    );
    println!(
        "{promotions} promotions x 3 environments over {repos} repositories, {tags} tags per image"
    );

    let floor = curl_floor(&reg.addr, promotions);
    println!(
        "{:<36} {:>7.3} s  ({promotions} tag lists over {CONNECTIONS} connections, median of 3)",
        "curl --parallel, the same tag lists", floor
    );

    let cache = tempfile::tempdir().unwrap();
    let once = |label: &str| {
        let run = run_measured(&[
            "--rules",
            rules_dir.path().to_str().unwrap(),
            "--cache-dir",
            cache.path().to_str().unwrap(),
            "once",
        ]);
        let (wall, rss) = (run.wall, run.rss_kib);
        let summary = run.out.lines().last().unwrap_or_default().to_string();
        assert!(
            summary.contains(" landed, 0 failed"),
            "{label}: {}",
            run.out
        );
        println!(
            "{label:<36} {wall:>7.3} s  peak RSS {:>6.1} MiB  {summary}",
            rss as f64 / 1024.0
        );
        (wall, rss)
    };
    once("once, cold (empty cache)");
    let counts = |bares: &[std::path::PathBuf]| -> Vec<String> {
        bares
            .iter()
            .map(|b| git(b, &["rev-list", "--count", "main"]).trim().to_string())
            .collect()
    };
    let after_cold = counts(&bares);
    if std::env::var_os("BENCH_FLEET_KEEP").is_some() {
        // For profiling by hand: the fleet stays up until the marker file is removed.
        let marker = base.path().join("keep");
        std::fs::write(&marker, "").unwrap();
        eprintln!(
            "kept: --rules {} --cache-dir {}; remove {} to go on",
            rules_dir.path().display(),
            cache.path().display(),
            marker.display()
        );
        while marker.exists() {
            std::thread::sleep(std::time::Duration::from_secs(1));
        }
    }

    let mut passes = Vec::new();
    for label in ["once, nothing to change", "once, nothing to change (again)"] {
        passes.push(once(label));
    }
    assert_eq!(counts(&bares), after_cold, "nothing changed");
    let (wall, rss) = passes
        .iter()
        .cloned()
        .min_by(|a, b| a.0.total_cmp(&b.0))
        .unwrap_or_default();
    println!(
        "no-change pass: {:.2}x the curl floor (target < 1.5x), peak RSS {:.1} MiB (target < 256 MiB)",
        wall / floor,
        rss as f64 / 1024.0
    );
    // A person commits to every repository: the next `once` grows each kept snapshot by
    // that one commit instead of reading the history again.
    let now = jiff::Timestamp::now().as_second();
    for bare in &bares {
        support::git::append_commits(bare, 1, now);
    }
    let (wall, _) = once("once, after a commit to every repository");
    println!(
        "after a commit to every repository: {:.2}x the curl floor",
        wall / floor
    );

    // Where a no-change pass's time goes, each part alone on the warm cache.
    let started = Instant::now();
    let all = tagpromoter::rules::load_dir(rules_dir.path()).unwrap();
    let load = started.elapsed().as_secs_f64();
    let worker = Options {
        keep_history: true,
        ..Options::default()
    };
    let engine = Engine::open(all.clone(), cache.path(), worker)
        .await
        .unwrap();
    let started = Instant::now();
    let fetches = all.destinations().into_iter().map(|d| {
        let repo = engine.repo(&d).unwrap();
        async move { repo.fetch().await.unwrap() }
    });
    futures_util::future::join_all(fetches).await;
    let fetch = started.elapsed().as_secs_f64();
    let registry = tagpromoter::registry::Registry::from_settings(&all.settings)
        .unwrap()
        .with_cache_dir(cache.path());
    let started = Instant::now();
    let lists = all.promotions.iter().map(|p| registry.tags(&p.image));
    futures_util::future::join_all(lists).await;
    let listing = started.elapsed().as_secs_f64();
    let started = Instant::now();
    let plan = engine.plan(jiff::Timestamp::now()).await.unwrap();
    let whole = started.elapsed().as_secs_f64();
    // A worker's next pass: the branches did not move, their histories are not read again.
    let started = Instant::now();
    engine.plan(jiff::Timestamp::now()).await.unwrap();
    let again = started.elapsed().as_secs_f64();
    println!(
        "in process: rules {load:.3} s; {} git fetches {fetch:.3} s; {promotions} tag lists {listing:.3} s; a whole plan {whole:.3} s ({} environments), the next one {again:.3} s; the worker's no-change pass {:.2}x the curl floor",
        all.destinations().len(),
        plan.decisions.len(),
        again / floor
    );

    // Four shards, each a worker's engine on the warm cache: a no-change pass lists only
    // its own images.
    let quarter = promotions as f64 / 4.0;
    let mut shares = Vec::new();
    for index in 0..4 {
        let shard = Shard::new(index, 4).unwrap();
        let owned = tagpromoter::worker::owned(all.clone(), shard);
        let engine = Engine::open(owned, cache.path(), Options::default())
            .await
            .unwrap();
        let report = engine.pass(jiff::Timestamp::now()).await;
        assert_eq!(report.landed(), 0, "nothing to change");
        shares.push(report.registry_requests);
    }
    let worst = shares
        .iter()
        .map(|&n| (n as f64 - quarter).abs() / quarter)
        .fold(0.0, f64::max);
    println!(
        "--shards 4, registry requests per shard in a no-change pass: {shares:?} (a quarter is {quarter:.0}; worst {:.1}% off, target within 10%)",
        worst * 100.0
    );
}

/// The median wall time of fetching every image's tag list with `curl --parallel`.
fn curl_floor(registry: &str, images: usize) -> f64 {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("urls");
    let mut text = String::new();
    for i in 0..images {
        text.push_str(&format!(
            "url = \"http://{registry}/v2/{}/tags/list?n=1000\"\noutput = \"/dev/null\"\n",
            app(i)
        ));
    }
    std::fs::write(&config, text).unwrap();
    let mut times: Vec<f64> = (0..3)
        .map(|_| {
            let started = Instant::now();
            let status = std::process::Command::new("curl")
                .args(["--silent", "--no-progress-meter", "--fail", "--parallel"])
                .args(["--parallel-max", &CONNECTIONS.to_string()])
                .arg("--config")
                .arg(&config)
                .status()
                .expect("curl runs");
            assert!(status.success(), "curl fetched every tag list");
            started.elapsed().as_secs_f64()
        })
        .collect();
    times.sort_by(f64::total_cmp);
    times[1]
}

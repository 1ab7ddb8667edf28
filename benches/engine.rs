//! Benchmark: `tagpromoter once` over 500 promotions x 3 environments (dev -> staging ->
//! prod), 200 tags per image, on a loopback `docker-registry` and `git daemon`. Prints, for a
//! cold run (an empty cache, every dev environment bumped) and for runs with nothing to
//! change (each a new process on the warm cache, as a CronJob runs them): wall time, peak
//! memory, and the run's own summary (landed, failed, registry requests); then a worker's
//! in-process pass with nothing to change. `BENCH_APPS` and `BENCH_TAGS` change the sizes.
//!
//! Before that, two figures of the fresh cache (every CronJob run and pod restart starts
//! with one: `deploy/` mounts it as an `emptyDir`): `plan` over 50 images x 20 tags from a
//! fresh cache against a warm one (`BENCH_PLAN_IMAGES`, `BENCH_PLAN_TAGS`), and `once` from a
//! fresh cache over a 10,000-commit history whose hold was made 9,000 commits back
//! (`BENCH_COMMITS`).
//!
//! Run with `cargo bench --bench engine` (needs python3 for the peak-memory figure).

#[path = "../tests/support/mod.rs"]
mod support;

use std::time::Instant;

use support::git::{GitDaemon, append_commits, bare_repo, git};
use support::{Auth, DockerRegistry, env, run_measured};
use tagpromoter::engine::{Engine, Options};

fn overlay(image: &str) -> String {
    format!(
        "apiVersion: kustomize.config.k8s.io/v1beta1\nkind: Kustomization\nresources:\n  - ../base\nimages:\n  - name: {image}\n    newTag: 1.0.0 # bumped by the bot\n"
    )
}

#[tokio::main]
async fn main() {
    fresh_against_warm_plan().await;
    deep_hold_on_a_fresh_cache().await;
    fleet().await;
}

/// A GitOps repository `name.git` under `base` with one overlay per image `bench/app-NNN`
/// (at 1.0.0) of the registry at `registry`, and rules promoting each (one environment,
/// `dev`, `^1.0.0`) into it: the bare repository and the rules directory.
fn one_env_fleet(
    base: &std::path::Path,
    name: &str,
    registry: &str,
    images: usize,
) -> (std::path::PathBuf, tempfile::TempDir) {
    let files: Vec<(String, String)> = (0..images)
        .map(|a| {
            (
                format!("apps/app-{a:03}/kustomization.yaml"),
                overlay(&format!("{registry}/bench/app-{a:03}")),
            )
        })
        .collect();
    let refs: Vec<(&str, &str)> = files
        .iter()
        .map(|(p, t)| (p.as_str(), t.as_str()))
        .collect();
    let bare = bare_repo(base, name, &refs);
    let mut rules = format!(
        "apiVersion: tagpromoter.io/v1alpha1\nkind: Settings\nspec:\n  git: {{ url: 'file://{}' }}\n  registries: [{{ host: '{registry}', insecure: true, requestsPerSecond: 5000 }}]\n",
        bare.display()
    );
    for a in 0..images {
        rules.push_str(&format!(
            "---\napiVersion: tagpromoter.io/v1alpha1\nkind: Promotion\nmetadata: {{ name: app-{a:03} }}\nspec:\n  image: {registry}/bench/app-{a:03}\n  environments:\n    - {{ name: dev, policy: {{ semver: '^1.0.0' }}, target: {{ kustomize: {{ file: apps/app-{a:03}/kustomization.yaml }} }} }}\n"
        ));
    }
    let rules_dir = tempfile::tempdir().unwrap();
    std::fs::write(rules_dir.path().join("rules.yaml"), rules).unwrap();
    (bare, rules_dir)
}

/// `plan` from a fresh cache and from a warm one, each a new process (a CronJob's run).
async fn fresh_against_warm_plan() {
    let images = env("BENCH_PLAN_IMAGES", 50);
    let tags = env("BENCH_PLAN_TAGS", 20);
    let reg = DockerRegistry::start(Auth::None);
    let names: Vec<String> = (0..tags).map(|i| format!("1.{i}.0")).collect();
    support::oci::seed_distinct(&reg.addr, images, |i| format!("bench/app-{i:03}"), names).await;
    let base = tempfile::tempdir().unwrap();
    let (_bare, rules_dir) = one_env_fleet(base.path(), "plan", &reg.addr, images);
    let warm = tempfile::tempdir().unwrap();
    // A run's wall time, its own CPU time, and the CPU time it cost the registry.
    let plan = |cache: &std::path::Path| {
        let before = reg.cpu_seconds();
        let run = run_measured(&[
            "--rules",
            rules_dir.path().to_str().unwrap(),
            "--cache-dir",
            cache.to_str().unwrap(),
            "plan",
        ]);
        [run.wall, run.cpu, reg.cpu_seconds() - before]
    };
    plan(warm.path());
    let runs = 7;
    // A fresh cache, and a warm one with only its git mirror or only its registry
    // metadata removed: what each costs a fresh run.
    let copy_without = |part: &str| {
        let dir = tempfile::tempdir().unwrap();
        let status = std::process::Command::new("cp")
            .args(["-a", &format!("{}/.", warm.path().display())])
            .arg(dir.path())
            .status()
            .unwrap();
        assert!(status.success());
        // Absent when the runs kept nothing of that kind (no tag's config was read).
        let _ = std::fs::remove_dir_all(dir.path().join(part));
        dir
    };
    let mut times: [Vec<[f64; 3]>; 4] = Default::default();
    for _ in 0..runs {
        let fresh = tempfile::tempdir().unwrap();
        times[0].push(plan(fresh.path()));
        times[1].push(plan(warm.path()));
        times[2].push(plan(copy_without("git").path()));
        times[3].push(plan(copy_without("registry").path()));
    }
    // The median of each figure on its own.
    let [f, w, g, r] = times.map(|runs| {
        [0, 1, 2].map(|i| {
            let mut v: Vec<f64> = runs.iter().map(|r| r[i]).collect();
            v.sort_by(f64::total_cmp);
            v[v.len() / 2]
        })
    });
    println!(
        "plan, {images} images x {tags} tags (median of {runs}): fresh cache {:.3} s, warm {:.3} s: {:.2}x (target < 1.5x); warm but a fresh git mirror {:.3} s, warm but no image metadata {:.3} s",
        f[0],
        w[0],
        f[0] / w[0],
        g[0],
        r[0]
    );
    println!(
        "  CPU time: tagpromoter (with its git processes) fresh {:.3} s, warm {:.3} s; the registry serving it fresh {:.3} s, warm {:.3} s",
        f[1], w[1], f[2], w[2]
    );
}

/// `once` from a fresh cache over a long history whose only hold lies deep in it: it must
/// read back to the hold (deepening the shallow mirror), and hold.
async fn deep_hold_on_a_fresh_cache() {
    let commits = env("BENCH_COMMITS", 10_000);
    let images = 20;
    let reg = DockerRegistry::start(Auth::None);
    let names: Vec<String> = (0..5).map(|i| format!("1.{i}.0")).collect();
    support::oci::seed_many(&reg.addr, images, |i| format!("bench/app-{i:03}"), names).await;
    let base = tempfile::tempdir().unwrap();
    let (bare, rules_dir) = one_env_fleet(base.path(), "deep", &reg.addr, images);
    let start = jiff::Timestamp::now().as_second() - 60 * (commits as i64 + 10);
    // app-000 was bumped and rolled back by hand 9/10 of the history ago; nothing since.
    let deep = commits / 10;
    append_commits(&bare, deep, start);
    let work = tempfile::tempdir().unwrap();
    git(work.path(), &["clone", "-q", bare.to_str().unwrap(), "w"]);
    let w = work.path().join("w");
    let file = w.join("apps/app-000/kustomization.yaml");
    let original = std::fs::read_to_string(&file).unwrap();
    std::fs::write(&file, original.replace("newTag: 1.0.0", "newTag: 1.4.0")).unwrap();
    git(&w, &["commit", "-qam", "app-000: 1.4.0 by hand"]);
    std::fs::write(&file, original.replace("newTag: 1.0.0", "newTag: 1.1.0")).unwrap();
    git(
        &w,
        &[
            "commit",
            "-qam",
            "app-000: back to 1.1.0 by hand (incident)",
        ],
    );
    git(&w, &["push", "-q", "origin", "main"]);
    append_commits(&bare, commits - deep - 2, start + 60 * deep as i64);
    let fresh = tempfile::tempdir().unwrap();
    let run = run_measured(&[
        "--rules",
        rules_dir.path().to_str().unwrap(),
        "--cache-dir",
        fresh.path().to_str().unwrap(),
        "once",
    ]);
    let held =
        git(&bare, &["show", "main:apps/app-000/kustomization.yaml"]).contains("newTag: 1.1.0");
    assert!(held, "the hand-made rollback deep in history holds");
    println!(
        "once, fresh cache, {commits}-commit history, a hold {} commits deep: {:.3} s  peak RSS {:.1} MiB  {}",
        commits - deep,
        run.wall,
        run.rss_kib as f64 / 1024.0,
        run.out.lines().last().unwrap_or_default()
    );
}

async fn fleet() {
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
        let run = run_measured(&[
            "--rules",
            rules_dir.path().to_str().unwrap(),
            "--cache-dir",
            cache.path().to_str().unwrap(),
            "once",
        ]);
        let summary = run.out.lines().last().unwrap_or_default().to_string();
        println!(
            "{label:<34} {:>7.3} s  peak RSS {:>6.1} MiB  {summary}",
            run.wall,
            run.rss_kib as f64 / 1024.0
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

    // Every environment verified by an Argo CD Application (on the stand-in Kubernetes
    // API, each synced and healthy at the tip): one list for all of them.
    let api = support::kube_api::KubeApi::start().await;
    api.grant("tagpromoter", "applications", "argocd");
    let (kubeconfig, _) = api.kubeconfig_with_token("tagpromoter");
    let tip = git(&bare, &["rev-parse", "main"]).trim().to_string();
    let verified_rules = tempfile::tempdir().unwrap();
    let text = std::fs::read_to_string(rules_dir.path().join("rules.yaml")).unwrap();
    let mut verified = text.replacen(
        "  registries:",
        &format!(
            "  clusters: [{{ name: bench, kubeconfig: '{}' }}]\n  registries:",
            kubeconfig.display()
        ),
        1,
    );
    for a in 0..apps {
        for e in ["dev", "staging", "prod"] {
            let name = format!("app-{a:03}-{e}");
            verified = verified.replacen(
                &format!("target: {{ kustomize: {{ file: apps/app-{a:03}/{e}/kustomization.yaml }} }} }}"),
                &format!("target: {{ kustomize: {{ file: apps/app-{a:03}/{e}/kustomization.yaml }} }}, verify: {{ argocd: {{ application: {name} }}, cluster: bench }} }}"),
                1,
            );
            api.put(
                "applications",
                serde_json::json!({
                    "apiVersion": "argoproj.io/v1alpha1",
                    "kind": "Application",
                    "metadata": { "name": name, "namespace": "argocd" },
                    "spec": { "project": "default", "source": { "repoURL": "https://git.example.com/fleet.git", "targetRevision": "main", "path": format!("apps/app-{a:03}/{e}") }, "destination": { "server": "https://kubernetes.default.svc", "namespace": name } },
                    "status": {
                        "sync": { "status": "Synced", "revision": tip },
                        "health": { "status": "Healthy" },
                        "history": [ { "id": 1, "revision": tip, "deployedAt": "2026-11-01T00:00:00Z" } ]
                    }
                }),
            );
        }
    }
    std::fs::write(verified_rules.path().join("rules.yaml"), verified).unwrap();
    let quiet = |rules: &std::path::Path| {
        let run = run_measured(&[
            "--rules",
            rules.to_str().unwrap(),
            "--cache-dir",
            cache.path().to_str().unwrap(),
            "once",
        ]);
        assert!(run.out.contains(" 0 failed"), "{}", run.out);
        run.wall
    };
    let median = |rules: &std::path::Path| {
        let mut walls: Vec<f64> = (0..5).map(|_| quiet(rules)).collect();
        walls.sort_by(f64::total_cmp);
        walls[2]
    };
    let (without, with) = (median(rules_dir.path()), median(verified_rules.path()));
    println!(
        "once, nothing to change, every environment verified: {with:.3} s against {without:.3} s without (median of 5): {:.2}x (target < 1.5x), {} requests to the Kubernetes API",
        with / without,
        api.served()
    );

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

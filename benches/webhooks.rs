//! Benchmark: push-to-commit latency through a registry webhook. The real `docker-registry`
//! notifies a `tagpromoter run` whose interval is 1h; each of 20 pushes (`BENCH_PUSHES`) is
//! timed from the moment the registry accepted the tag's manifest to the moment dev's bump
//! commit is on the GitOps branch. `BENCH_APPS` adds promotions the pass also decides (the
//! pass covers every promotion). Prints p50, p95 and the worst; target p50 < 5 s.
//! Run with `cargo bench --bench webhooks`.

#[path = "../tests/support/mod.rs"]
mod support;

use std::time::{Duration, Instant};

use support::git::{bare_repo, git};
use support::oci::Pusher;
use support::worker::Worker;
use support::{DockerRegistry, env, free_port};

fn overlay(image: &str) -> String {
    format!("images:\n  - name: {image}\n    newTag: 1.0.0 # bumped by the bot\n")
}

#[tokio::main]
async fn main() {
    let pushes = env("BENCH_PUSHES", 20);
    let apps = env("BENCH_APPS", 0);
    let port = free_port();
    let secret = "bench-webhook-secret";
    let registry = DockerRegistry::notifying(
        &format!("http://127.0.0.1:{port}/webhooks/distribution"),
        secret,
    );
    let r = registry.addr.clone();
    let pusher = Pusher::new(&r);
    let created = "2026-11-01T00:00:00Z";
    pusher
        .image("bench/app", Some("1.0.0"), created, "linux", "amd64")
        .await;
    let image = format!("{r}/bench/app");
    let mut files = vec![(
        "apps/app/dev/kustomization.yaml".to_string(),
        overlay(&image),
    )];
    let env_rule = |name: &str, file: &str| {
        format!(
            "---\napiVersion: tagpromoter.io/v1alpha1\nkind: Promotion\nmetadata: {{ name: {name} }}\nspec:\n  image: IMAGE\n  environments:\n    - {{ name: dev, policy: {{ semver: '>=1.0.0' }}, target: {{ kustomize: {{ file: {file} }} }} }}\n"
        )
    };
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("secret"), secret).unwrap();
    let mut rules = format!(
        "apiVersion: tagpromoter.io/v1alpha1\nkind: Settings\nspec:\n  git: {{ url: 'GITURL' }}\n  registries: [{{ host: '{r}', insecure: true }}]\n  interval: 1h\n  receivers: [{{ type: distribution, secretFile: {} }}]\n",
        dir.path().join("secret").display()
    );
    rules.push_str(&env_rule("app", "apps/app/dev/kustomization.yaml").replace("IMAGE", &image));
    for a in 0..apps {
        let other = format!("{r}/bench/other-{a:03}");
        pusher
            .image(
                &format!("bench/other-{a:03}"),
                Some("1.0.0"),
                created,
                "linux",
                "amd64",
            )
            .await;
        let file = format!("apps/other-{a:03}/dev/kustomization.yaml");
        files.push((file.clone(), overlay(&other)));
        rules.push_str(&env_rule(&format!("other-{a:03}"), &file).replace("IMAGE", &other));
    }
    let refs: Vec<(&str, &str)> = files
        .iter()
        .map(|(p, t)| (p.as_str(), t.as_str()))
        .collect();
    let bare = bare_repo(dir.path(), "deploys", &refs);
    let rules_dir = tempfile::tempdir().unwrap();
    std::fs::write(
        rules_dir.path().join("rules.yaml"),
        rules.replace("GITURL", &format!("file://{}", bare.display())),
    )
    .unwrap();
    let cache = tempfile::tempdir().unwrap();
    let worker = Worker::start(rules_dir.path(), cache.path(), port, &[]).await;

    let dev = || git(&bare, &["show", "main:apps/app/dev/kustomization.yaml"]);
    let mut took = Vec::new();
    // Push 0 is not timed: it waits behind the notifications the registry queued while the
    // worker was not listening yet (the seeding's pushes), as after any outage.
    for i in 0..=pushes {
        let tag = format!("1.0.{}", i + 1);
        pusher
            .image("bench/app", Some(&tag), created, "linux", "amd64")
            .await;
        let pushed = Instant::now();
        while !dev().contains(&format!("newTag: {tag} ")) {
            assert!(
                pushed.elapsed() < Duration::from_secs(60),
                "{tag} never landed"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        if i == 0 {
            println!(
                "first push (behind the registry's backlog): {:.2} s",
                pushed.elapsed().as_secs_f64()
            );
        } else {
            took.push(pushed.elapsed());
        }
    }
    worker.stop();

    took.sort();
    let at = |q: f64| took[((took.len() as f64 * q).ceil() as usize).clamp(1, took.len()) - 1];
    println!(
        "push to commit over {pushes} pushes ({} promotions, interval 1h): p50 {:.2} s  p95 {:.2} s  worst {:.2} s  (target p50 < 5 s)",
        apps + 1,
        at(0.50).as_secs_f64(),
        at(0.95).as_secs_f64(),
        took.last().map_or(0.0, Duration::as_secs_f64),
    );
}

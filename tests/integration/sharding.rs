//! A sharded fleet (issue 18): three `tagpromoter run` processes with `--shards 3` over one
//! fleet of twelve promotions, a real registry and a real `git daemon`. Peers reach each
//! other through `--peer-url` (its `{shard}` makes the ports here: 4870{shard}, say).

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use crate::engine::kustomization;
use crate::support::git::{GitDaemon, bare_repo_at, git};
use crate::support::oci::Pusher;
use crate::support::worker::Worker;
use crate::support::{Auth, DockerRegistry};

const APPS: usize = 12;

fn app(i: usize) -> String {
    format!("app-{i:02}")
}

/// A port prefix `P` with `P0`..`P9` all free: shard `i` listens on `P{i}`.
fn port_prefix() -> u16 {
    let free = |p: u16| std::net::TcpListener::bind(("127.0.0.1", p)).is_ok();
    let seed = std::process::id() as u16;
    (0..500u16)
        .map(|k| 2000 + (seed.wrapping_add(k * 7)) % 4500)
        .find(|&prefix| (0..10).all(|d| free(prefix * 10 + d)))
        .expect("ten free ports in a row")
}

/// `acme/app-NN:tag` pushed to the registry at `addr`.
async fn push_image(addr: &str, i: usize, tag: &str) {
    Pusher::new(addr)
        .image(
            &format!("acme/{}", app(i)),
            Some(tag),
            crate::engine::INITIAL,
            "linux",
            "amd64",
        )
        .await;
}

struct Fleet {
    registry: DockerRegistry,
    bare: std::path::PathBuf,
    rules: tempfile::TempDir,
    prefix: u16,
    _base: tempfile::TempDir,
    _daemon: GitDaemon,
}

impl Fleet {
    async fn start() -> Self {
        let registry = DockerRegistry::start(Auth::None);
        for i in 0..APPS {
            for tag in ["1.0.0", "1.1.0"] {
                push_image(&registry.addr, i, tag).await;
            }
        }
        let base = tempfile::tempdir().unwrap();
        let files: Vec<(String, String)> = (0..APPS)
            .map(|i| {
                (
                    format!("apps/{}/kustomization.yaml", app(i)),
                    kustomization(&format!("{}/acme/{}", registry.addr, app(i)), "1.0.0"),
                )
            })
            .collect();
        let refs: Vec<(&str, &str)> = files
            .iter()
            .map(|(p, t)| (p.as_str(), t.as_str()))
            .collect();
        let bare = bare_repo_at(base.path(), "fleet", &refs, Some(crate::engine::INITIAL));
        let daemon = GitDaemon::start(base.path());
        let rules = tempfile::tempdir().unwrap();
        std::fs::write(rules.path().join("secret"), "generic-s3cret\n").unwrap();
        let mut text = format!(
            "apiVersion: tagpromoter.io/v1alpha1\nkind: Settings\nspec:\n  git: {{ url: '{}fleet.git' }}\n  registries: [{{ host: '{}', insecure: true }}]\n  interval: 1h\n  receivers: [{{ type: generic, secretFile: '{}/secret' }}]\n",
            daemon.url,
            registry.addr,
            rules.path().display()
        );
        for i in 0..APPS {
            text.push_str(&format!(
                "---\napiVersion: tagpromoter.io/v1alpha1\nkind: Promotion\nmetadata: {{ name: {a} }}\nspec:\n  image: {r}/acme/{a}\n  environments:\n    - {{ name: dev, policy: {{ semver: '^1.0.0' }}, target: {{ kustomize: {{ file: apps/{a}/kustomization.yaml }} }} }}\n",
                a = app(i),
                r = registry.addr
            ));
        }
        std::fs::write(rules.path().join("rules.yaml"), text).unwrap();
        Self {
            registry,
            bare,
            rules,
            prefix: port_prefix(),
            _base: base,
            _daemon: daemon,
        }
    }

    /// Shard `index` of `shards`, on its own cache.
    async fn worker(&self, index: usize, shards: usize, cache: &std::path::Path) -> Worker {
        let port = self.prefix * 10 + index as u16;
        let peer = format!("http://127.0.0.1:{}{{shard}}", self.prefix);
        Worker::start_with(
            self.rules.path(),
            cache,
            port,
            &[],
            &[
                "--shards",
                &shards.to_string(),
                "--shard",
                &index.to_string(),
                "--peer-url",
                &peer,
            ],
        )
        .await
    }

    fn tag(&self, i: usize) -> String {
        let text = git(
            &self.bare,
            &["show", &format!("main:apps/{}/kustomization.yaml", app(i))],
        );
        let line = text.lines().find(|l| l.contains("newTag:")).unwrap();
        line.split_whitespace().nth(1).unwrap().to_string()
    }

    /// How many commits on the branch moved `app(i)` to `tag`.
    fn bumps_to(&self, i: usize, tag: &str) -> usize {
        git(&self.bare, &["log", "--format=%s", "main"])
            .lines()
            .filter(|s| s.contains(&format!(": {} ", app(i))) && s.ends_with(&format!("-> {tag}")))
            .count()
    }

    async fn push(&self, i: usize, tag: &str) {
        push_image(&self.registry.addr, i, tag).await;
    }

    /// The generic webhook for `app(i):tag`, sent to `worker`: its answer.
    async fn ring(&self, worker: &Worker, i: usize, tag: &str) -> serde_json::Value {
        let answer = reqwest::Client::new()
            .post(format!("{}/webhooks/generic", worker.base))
            .bearer_auth("generic-s3cret")
            .body(
                serde_json::json!({ "image": format!("{}/acme/{}", self.registry.addr, app(i)), "tag": tag })
                    .to_string(),
            )
            .send()
            .await
            .unwrap();
        assert_eq!(answer.status().as_u16(), 202);
        serde_json::from_str(&answer.text().await.unwrap()).unwrap()
    }

    async fn until(&self, what: &str, done: impl Fn() -> bool) {
        let started = Instant::now();
        while !done() {
            assert!(started.elapsed() < Duration::from_secs(40), "never: {what}");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

async fn status(worker: &Worker) -> serde_json::Value {
    let text = reqwest::get(format!("{}/status", worker.base))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    serde_json::from_str(&text).unwrap()
}

/// Three workers share twelve promotions: each decides exactly its own (and says who owns
/// what), a webhook sent to the wrong worker is forwarded to the owner and lands, killing
/// one leaves the other two working, and scaling to four — old and new workers overlapping —
/// lands every bump exactly once.
#[tokio::test(flavor = "multi_thread")]
async fn three_workers_share_a_fleet_and_scale_to_four() {
    let fleet = Fleet::start().await;
    let caches: Vec<tempfile::TempDir> = (0..7).map(|_| tempfile::tempdir().unwrap()).collect();
    let mut workers = Vec::new();
    for (i, cache) in caches.iter().take(3).enumerate() {
        workers.push(Some(fleet.worker(i, 3, cache.path()).await));
    }
    let owner = |i: usize, shards: usize| tagpromoter::shard::owner(&app(i), shards);

    // Every promotion decided by exactly one worker: the one /status names.
    let mut decided = BTreeSet::new();
    for (index, w) in workers.iter().enumerate() {
        let s = status(w.as_ref().unwrap()).await;
        assert_eq!(s["shard"]["index"], index);
        assert_eq!(s["shard"]["owners"].as_object().unwrap().len(), APPS);
        for e in s["environments"].as_array().unwrap() {
            let name = e["promotion"].as_str().unwrap().to_string();
            assert_eq!(owner(name[4..].parse().unwrap(), 3), index, "{name}");
            assert!(decided.insert(name.clone()), "{name} decided twice");
        }
    }
    assert_eq!(decided.len(), APPS);
    // Any shard's board shows the whole fleet, asking its peers.
    let board = reqwest::get(format!("{}/", workers[1].as_ref().unwrap().base))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    for i in 0..APPS {
        let row = format!("<th scope=\"row\">{}<br>", app(i));
        assert!(board.contains(&row), "{} on the board", app(i));
    }
    for shard in 0..3 {
        assert!(
            board.contains(&format!("Shard {shard}: last pass")),
            "{board}"
        );
    }
    fleet
        .until("every app at 1.1.0", || {
            (0..APPS).all(|i| fleet.tag(i) == "1.1.0")
        })
        .await;
    assert!((0..APPS).all(|i| fleet.bumps_to(i, "1.1.0") == 1));

    // A webhook to a worker that does not own the image is forwarded to the owner.
    let stranger = (0..APPS).find(|&i| owner(i, 3) == 1).unwrap();
    fleet.push(stranger, "1.2.0").await;
    let answer = fleet
        .ring(workers[0].as_ref().unwrap(), stranger, "1.2.0")
        .await;
    assert_eq!(answer["forwarded"], serde_json::json!([1]), "{answer}");
    fleet
        .until("the forwarded webhook lands", || {
            fleet.tag(stranger) == "1.2.0"
        })
        .await;

    // Shard 2 goes away; the other two go on (a webhook through shard 1 for shard 0's app).
    workers[2].take().unwrap().stop();
    let first = (0..APPS).find(|&i| owner(i, 3) == 0).unwrap();
    fleet.push(first, "1.3.0").await;
    fleet
        .ring(workers[1].as_ref().unwrap(), first, "1.3.0")
        .await;
    fleet
        .until("shard 0 lands with shard 2 gone", || {
            fleet.tag(first) == "1.3.0"
        })
        .await;

    // Scale to four: new workers start while the old two still run and are rung for every
    // app; each bump lands once.
    for i in 0..APPS {
        fleet.push(i, "1.4.0").await;
    }
    let mut old = Vec::new();
    for w in workers.into_iter().flatten() {
        old.push(w);
    }
    let rings = async {
        for i in 0..APPS {
            fleet.ring(&old[i % old.len()], i, "1.4.0").await;
        }
    };
    // New shards 2 and 3 start at once (2 on the port the stopped shard left); 0 and 1
    // take over their ports once the old ones stop, as a StatefulSet's rollout does.
    let (new2, new3, ()) = tokio::join!(
        fleet.worker(2, 4, caches[3].path()),
        fleet.worker(3, 4, caches[4].path()),
        rings
    );
    for w in old {
        w.stop();
    }
    let new0 = fleet.worker(0, 4, caches[5].path()).await;
    let new1 = fleet.worker(1, 4, caches[6].path()).await;
    fleet
        .until("every app at 1.4.0", || {
            (0..APPS).all(|i| fleet.tag(i) == "1.4.0")
        })
        .await;
    for i in 0..APPS {
        assert_eq!(fleet.bumps_to(i, "1.4.0"), 1, "{} landed once", app(i));
    }
    let moved = (0..APPS).filter(|&i| owner(i, 3) != owner(i, 4)).count();
    assert!(moved < APPS / 2, "{moved} of {APPS} moved");
    for w in [new0, new1, new2, new3] {
        let s = status(&w).await;
        assert_eq!(s["shard"]["count"], 4);
        w.stop();
    }
}

/// A worker that cannot tell its shard, or is given no shards, says so and exits 1 before
/// doing anything.
#[test]
fn a_worker_without_a_shard_says_how_to_give_it_one() {
    let run = |args: &[&str]| {
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_tagpromoter"))
            .args(["--rules", "/nonexistent", "run", "--listen", "127.0.0.1:0"])
            .args(args)
            .env("HOSTNAME", "laptop")
            .env_remove("TAGPROMOTER_SHARD")
            .output()
            .unwrap();
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };
    let (code, err) = run(&["--shards", "3"]);
    assert_eq!(code, Some(1), "{err}");
    assert!(
        err.contains("--shards 3 needs this worker's shard") && err.contains("pass --shard"),
        "{err}"
    );
    let (code, err) = run(&["--shards", "0"]);
    assert_eq!(code, Some(1), "{err}");
    assert!(err.contains("--shards must be at least 1"), "{err}");
    let (code, err) = run(&["--shards", "3", "--shard", "3"]);
    assert_eq!(code, Some(1), "{err}");
    assert!(
        err.contains("shard 3 is not one of --shards 3 (0 to 2)"),
        "{err}"
    );
}

//! Benchmark: 100 bumps committed into a repository of 10,000 files and pushed (one push),
//! by tagpromoter (bare mirror, no worktree) and by plain git (clone, edit, commit, push),
//! both against a loopback `git daemon`. Prints wall times and tagpromoter's peak memory.
//! Run with `cargo bench --bench gitops`; `BENCH_FILES` and `BENCH_BUMPS` change the sizes.

#[path = "../tests/support/mod.rs"]
mod support;

use std::path::Path;
use std::process::Command;
use std::time::Instant;

use support::git::{GitDaemon, git};
use support::{env, peak_rss_kib};
use tagpromoter::gitops::git::RemoteAuth;
use tagpromoter::gitops::message::{Actor, Record};
use tagpromoter::gitops::store::Author;
use tagpromoter::gitops::{Bump, FileEdit, Outcome, Repo, RepoConfig};
use tagpromoter::image::{Repository, Tag};
use tagpromoter::manifest::{Target, Wanted};

fn overlay(i: usize, tag: &str) -> String {
    format!(
        "apiVersion: kustomize.config.k8s.io/v1beta1\nkind: Kustomization\nresources:\n  - ../../base\nimages:\n  - name: ghcr.io/acme/app-{i:05}\n    newTag: {tag} # bumped by the bot\n"
    )
}

fn path(i: usize) -> String {
    format!("apps/group-{:03}/app-{i:05}/kustomization.yaml", i / 100)
}

/// A bare repository with `files` overlays, built with fast-import (seconds, not minutes).
fn seed(base: &Path, files: usize) -> std::path::PathBuf {
    let bare = base.join("big.git");
    git(
        base,
        &["init", "-q", "--bare", "-b", "main", bare.to_str().unwrap()],
    );
    let mut stream = String::from(
        "commit refs/heads/main\ncommitter Seed <seed@example.com> 1700000000 +0000\ndata 4\nseed\n",
    );
    for i in 0..files {
        let text = overlay(i, "1.0.0");
        stream.push_str(&format!(
            "M 100644 inline {}\ndata {}\n{text}\n",
            path(i),
            text.len()
        ));
    }
    let mut child = Command::new("git")
        .args(["fast-import", "--quiet"])
        .current_dir(&bare)
        .stdin(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    use std::io::Write;
    child
        .stdin
        .take()
        .unwrap()
        .write_all(stream.as_bytes())
        .unwrap();
    assert!(child.wait().unwrap().success());
    bare
}

fn main() {
    let files = env("BENCH_FILES", 10_000);
    let bumps = env("BENCH_BUMPS", 100);
    let base = tempfile::tempdir().unwrap();
    let seeding = Instant::now();
    seed(base.path(), files);
    eprintln!(
        "seeded {files} files in {:.1}s",
        seeding.elapsed().as_secs_f64()
    );
    let daemon = GitDaemon::start(base.path());
    let url = format!("{}big.git", daemon.url);
    let step = files / bumps;

    // tagpromoter: a cold cache (first clone into the mirror) and then a warm one.
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    let cache = tempfile::tempdir().unwrap();
    let run = |from: &'static str, tag: &'static str| {
        let config = RepoConfig {
            url: url.clone(),
            branch: "main".into(),
            auth: RemoteAuth::None,
            author: Author {
                name: "tagpromoter".into(),
                email: "bot@example.com".into(),
            },
            cache_dir: cache.path().to_path_buf(),
            depth: Some(1),
            max_attempts: 5,
            git_timeout: std::time::Duration::from_secs(600),
            lock_timeout: std::time::Duration::from_secs(600),
            keep_snapshot: false,
            render: tagpromoter::rules::RenderMode::Auto,
        };
        let started = Instant::now();
        let landed = rt.block_on(async {
            let repo = Repo::open(config).await.unwrap();
            let list: Vec<Bump> = (0..bumps)
                .map(|k| {
                    let i = k * step;
                    let image = Repository::new(&format!("ghcr.io/acme/app-{i:05}")).unwrap();
                    let to = Tag::new(tag).unwrap();
                    Bump {
                        record: Record {
                            promotion: format!("app-{i:05}"),
                            environment: "prod".into(),
                            image: image.clone(),
                            from: Tag::new(from).ok(),
                            to: Some(to.clone()),
                            digest: None,
                            actor: Actor::Bot,
                            reason: None,
                            forced: false,
                            hold: None,
                            target: None,
                            identity: None,
                        },
                        edits: vec![FileEdit {
                            file: path(i).into(),
                            target: Target::Kustomize {
                                name: image.to_string(),
                            },
                            expected: Some(from.into()),
                            wanted: Wanted {
                                repository: image,
                                tag: to,
                                digest: None,
                                pin: false,
                            },
                        }],
                    }
                })
                .collect();
            let report = repo.apply(&list, jiff::Timestamp::now()).await.unwrap();
            report
                .outcomes
                .iter()
                .filter(|(_, o)| matches!(o, Outcome::Landed(_)))
                .count()
        });
        (landed, started.elapsed())
    };
    let (landed, cold) = run("1.0.0", "2.0.0");
    let (_, warm) = run("2.0.0", "3.0.0");
    let peak = peak_rss_kib();

    // Plain git, as a person (or a script-based bot) would do it.
    let work = tempfile::tempdir().unwrap();
    let started = Instant::now();
    git(work.path(), &["clone", "-q", &url, "w"]);
    let w = work.path().join("w");
    for k in 0..bumps {
        let p = w.join(path(k * step));
        let text = std::fs::read_to_string(&p)
            .unwrap()
            .replace("newTag: 3.0.0", "newTag: 4.0.0");
        std::fs::write(&p, text).unwrap();
        git(&w, &["commit", "-q", "-am", &format!("bump {k}")]);
    }
    git(&w, &["push", "-q", "origin", "main"]);
    let plain = started.elapsed();

    println!("files in the repository       {files}");
    println!("bumps (one commit each)       {landed}");
    println!(
        "tagpromoter, cold mirror      {:.3} s (clone into the cache + commits + one push + verify)",
        cold.as_secs_f64()
    );
    println!(
        "tagpromoter, warm mirror      {:.3} s (fetch + commits + one push + verify)",
        warm.as_secs_f64()
    );
    println!(
        "tagpromoter peak memory (RSS) {:.1} MiB (this process; git children not counted)",
        peak as f64 / 1024.0
    );
    println!(
        "plain git                     {:.3} s (clone with checkout + edits + commits + push)",
        plain.as_secs_f64()
    );
}

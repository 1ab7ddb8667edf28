//! The GitOps repository against real servers started by the tests: `git daemon` with
//! receive-pack, and `git http-backend` behind nginx with basic auth; a `pre-receive` hook
//! stands in for branch protection.

use crate::support;

use std::path::{Path, PathBuf};

use crate::support::git::{
    GitDaemon, GitHttp, bare_repo, git, person_always_pushes_first, person_pushes_first_once,
    protect_prod,
};
use jiff::Timestamp;
use tagpromoter::gitops::git::RemoteAuth;
use tagpromoter::gitops::history::History;
use tagpromoter::gitops::message::{Actor, HoldChange, Record};
use tagpromoter::gitops::store::Author;
use tagpromoter::gitops::{
    Bump, FileEdit, GitErrorKind, Outcome, Pushed, Repo, RepoConfig, Report,
};
use tagpromoter::image::{Repository, Tag};
use tagpromoter::manifest::{Target, Wanted};

const IMAGE: &str = "ghcr.io/stefanprodan/podinfo";

fn overlay(tag: &str) -> String {
    format!(
        "# managed by tagpromoter\napiVersion: kustomize.config.k8s.io/v1beta1\nkind: Kustomization\nresources:\n  - ../../base\nimages:\n  - name: {IMAGE}\n    newTag: \"{tag}\"   # bumped automatically\n"
    )
}

fn files() -> Vec<(&'static str, String)> {
    vec![
        (
            "apps/podinfo/overlays/dev/kustomization.yaml",
            overlay("6.5.3"),
        ),
        (
            "apps/podinfo/overlays/prod/kustomization.yaml",
            overlay("6.5.3"),
        ),
        (
            "apps/podinfo/staging/values.yaml",
            "image:\n  repository: ghcr.io/stefanprodan/podinfo\n  tag: 6.5.3 # staging\n".into(),
        ),
        ("README.md", "gitops\n".into()),
    ]
}

fn seed(base: &Path, name: &str) -> PathBuf {
    let f = files();
    let refs: Vec<(&str, &str)> = f.iter().map(|(p, t)| (*p, t.as_str())).collect();
    bare_repo(base, name, &refs)
}

fn config(url: &str, cache: &Path, auth: RemoteAuth) -> RepoConfig {
    RepoConfig {
        url: url.to_string(),
        branch: "main".into(),
        auth,
        author: Author {
            name: "tagpromoter".into(),
            email: "tagpromoter@example.com".into(),
        },
        cache_dir: cache.to_path_buf(),
        depth: Some(50),
        max_attempts: 20,
        git_timeout: std::time::Duration::from_secs(60),
        lock_timeout: std::time::Duration::from_secs(60),
        keep_snapshot: false,
        render: tagpromoter::rules::RenderMode::Auto,
    }
}

fn record(env: &str, from: &str, to: &str) -> Record {
    Record {
        promotion: "podinfo".into(),
        environment: env.into(),
        image: Repository::new(IMAGE).unwrap(),
        from: Some(Tag::new(from).unwrap()),
        to: Some(Tag::new(to).unwrap()),
        digest: None,
        actor: Actor::Bot,
        reason: None,
        forced: false,
        hold: None,
        target: None,
        identity: None,
    }
}

/// Bumps of dev, prod and staging (a Helm target) to 6.5.4, in that order: prod sits
/// between the others in the chain.
fn three_bumps() -> [Bump; 3] {
    let mut staging = bump("staging", "apps/podinfo/staging/values.yaml", "6.5.4");
    if let Some(edit) = staging.edits.first_mut() {
        edit.target = Target::Helm {
            tag: "image.tag".parse().unwrap(),
            repository: None,
            digest: None,
        };
    }
    [
        bump(
            "dev",
            "apps/podinfo/overlays/dev/kustomization.yaml",
            "6.5.4",
        ),
        bump(
            "prod",
            "apps/podinfo/overlays/prod/kustomization.yaml",
            "6.5.4",
        ),
        staging,
    ]
}

/// A bump of a Kustomize overlay from 6.5.3 to `to`, as the engine makes it.
fn bump(env: &str, file: &str, to: &str) -> Bump {
    Bump {
        record: record(env, "6.5.3", to),
        edits: vec![FileEdit {
            file: file.into(),
            target: Target::Kustomize { name: IMAGE.into() },
            expected: Some("6.5.3".into()),
            wanted: Wanted {
                repository: Repository::new(IMAGE).unwrap(),
                tag: Tag::new(to).unwrap(),
                digest: None,
                pin: false,
            },
        }],
    }
}

fn now() -> Timestamp {
    Timestamp::now()
}

fn landed(report: &Report) -> usize {
    report
        .outcomes
        .iter()
        .filter(|(_, o)| matches!(o, Outcome::Landed(_)))
        .count()
}

fn outcome_of<'r>(report: &'r Report, env: &str) -> &'r Outcome {
    &report
        .outcomes
        .iter()
        .find(|(r, _)| r.environment == env)
        .unwrap_or_else(|| panic!("no outcome for {env}: {:?}", report.outcomes))
        .1
}

/// A seeded bare repository served by `git daemon`, and a cache directory.
struct Fixture {
    _base: tempfile::TempDir,
    bare: PathBuf,
    daemon: GitDaemon,
    cache: tempfile::TempDir,
}

impl Fixture {
    fn new() -> Self {
        let base = tempfile::tempdir().unwrap();
        let bare = seed(base.path(), "deploys");
        let daemon = GitDaemon::start(base.path());
        Self {
            _base: base,
            bare,
            daemon,
            cache: tempfile::tempdir().unwrap(),
        }
    }

    fn config(&self) -> RepoConfig {
        config(
            &format!("{}deploys.git", self.daemon.url),
            self.cache.path(),
            RemoteAuth::None,
        )
    }

    async fn repo(&self) -> Repo {
        Repo::open(self.config()).await.unwrap()
    }

    /// A person's clone of the repository.
    fn person(&self) -> (tempfile::TempDir, PathBuf) {
        let dir = tempfile::tempdir().unwrap();
        git(
            dir.path(),
            &["clone", "-q", self.bare.to_str().unwrap(), "w"],
        );
        let w = dir.path().join("w");
        (dir, w)
    }
}

fn show(bare: &Path, rev: &str, path: &str) -> String {
    git(bare, &["show", &format!("{rev}:{path}")])
}

#[tokio::test(flavor = "multi_thread")]
async fn bumps_land_over_git_daemon_with_trailers_and_only_the_tag_changes() {
    let fx = Fixture::new();
    let bare = fx.bare.clone();
    let repo = fx.repo().await;
    repo.fetch().await.unwrap();
    let text = repo
        .read(Path::new("apps/podinfo/overlays/dev/kustomization.yaml"))
        .unwrap()
        .unwrap();
    assert_eq!(text, overlay("6.5.3"));

    let report = repo
        .apply(
            &[
                bump(
                    "dev",
                    "apps/podinfo/overlays/dev/kustomization.yaml",
                    "6.5.4",
                ),
                bump(
                    "prod",
                    "apps/podinfo/overlays/prod/kustomization.yaml",
                    "6.5.4",
                ),
            ],
            now(),
        )
        .await
        .unwrap();
    assert_eq!(landed(&report), 2);
    assert_eq!(report.pushes, 1);
    let head = git(&bare, &["rev-parse", "main"]).trim().to_string();
    assert_eq!(
        *outcome_of(&report, "prod"),
        Outcome::Landed(head.parse().unwrap())
    );
    assert_eq!(
        git(&bare, &["rev-list", "--count", "main"]).trim(),
        "3",
        "one commit per bump"
    );
    let message = git(&bare, &["log", "-1", "--format=%B", "main~1"]);
    assert!(
        message.starts_with("promote(dev): podinfo 6.5.3 -> 6.5.4\n\n"),
        "{message}"
    );
    assert!(
        message.contains(
            "Tagpromoter-Environment: dev\nTagpromoter-Image: ghcr.io/stefanprodan/podinfo\n"
        ),
        "{message}"
    );
    assert_eq!(
        git(&bare, &["log", "-1", "--format=%an <%ae>", "main"]).trim(),
        "tagpromoter <tagpromoter@example.com>"
    );

    // The diff touches only the tag's bytes.
    let diff = git(
        &bare,
        &[
            "diff",
            "--unified=0",
            "--word-diff=porcelain",
            "main~2",
            "main",
        ],
    );
    let changed: Vec<&str> = diff
        .lines()
        .filter(|l| {
            (l.starts_with('-') || l.starts_with('+'))
                && !l.starts_with("---")
                && !l.starts_with("+++")
        })
        .collect();
    assert_eq!(
        changed,
        ["-\"6.5.3\"", "+\"6.5.4\"", "-\"6.5.3\"", "+\"6.5.4\""],
        "{diff}"
    );
    assert_eq!(
        show(
            &bare,
            "main",
            "apps/podinfo/overlays/prod/kustomization.yaml"
        ),
        overlay("6.5.4")
    );

    // The same bump again is already in place: no commit, no push.
    let report = repo
        .apply(
            &[bump(
                "dev",
                "apps/podinfo/overlays/dev/kustomization.yaml",
                "6.5.4",
            )],
            now(),
        )
        .await
        .unwrap();
    assert_eq!(report.outcomes[0].1, Outcome::AlreadyInPlace);
    assert_eq!(report.pushes, 0);
    assert_eq!(git(&bare, &["rev-parse", "main"]).trim(), head);
}

#[tokio::test(flavor = "multi_thread")]
async fn http_with_basic_auth_and_a_refused_password() {
    let base = tempfile::tempdir().unwrap();
    let bare = seed(base.path(), "deploys");
    let http = GitHttp::start(base.path(), "bot", "http-Secret-42");
    let cache = tempfile::tempdir().unwrap();
    let secrets = tempfile::tempdir().unwrap();
    let password_file = secrets.path().join("password");
    std::fs::write(&password_file, "http-Secret-42\n").unwrap();
    let auth = RemoteAuth::Password {
        username: "bot".into(),
        password_file: password_file.clone(),
    };
    let url = format!("{}deploys.git", http.url);

    // Watch every process's arguments while git runs: the password must never be in them.
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let watcher = {
        let stop = std::sync::Arc::clone(&stop);
        std::thread::spawn(move || {
            let mut seen_git = false;
            while !stop.load(std::sync::atomic::Ordering::SeqCst) {
                for entry in std::fs::read_dir("/proc").into_iter().flatten().flatten() {
                    if let Ok(cmdline) = std::fs::read(entry.path().join("cmdline")) {
                        let text = String::from_utf8_lossy(&cmdline);
                        seen_git |= text.contains("git") && text.contains("deploys.git");
                        assert!(
                            !text.contains("http-Secret-42"),
                            "a process argument holds the password: {text}"
                        );
                    }
                }
                std::thread::sleep(std::time::Duration::from_millis(2));
            }
            seen_git
        })
    };
    let repo = Repo::open(config(&url, cache.path(), auth)).await.unwrap();
    let report = repo
        .apply(
            &[bump(
                "dev",
                "apps/podinfo/overlays/dev/kustomization.yaml",
                "6.6.0",
            )],
            now(),
        )
        .await
        .unwrap();
    assert_eq!(landed(&report), 1);
    assert_eq!(
        show(
            &bare,
            "main",
            "apps/podinfo/overlays/dev/kustomization.yaml"
        ),
        overlay("6.6.0")
    );
    stop.store(true, std::sync::atomic::Ordering::SeqCst);
    assert!(watcher.join().unwrap(), "the watcher saw git run");

    std::fs::write(&password_file, "not-the-password\n").unwrap();
    let err = repo.fetch().await.unwrap_err();
    assert_eq!(err.kind, GitErrorKind::Auth, "{err}");
    assert!(!err.to_string().contains("not-the-password"));
    assert!(err.to_string().contains("check git.auth"), "{err}");
    // It names the kind of credentials the rules gave (issue 17).
    assert!(
        err.to_string()
            .contains("authenticating with git.auth.username and passwordFile"),
        "{err}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_hook_rejecting_prod_fails_only_prod_with_its_message() {
    let base = tempfile::tempdir().unwrap();
    let bare = seed(base.path(), "deploys");
    protect_prod(&bare);
    let daemon = GitDaemon::start(base.path());
    let cache = tempfile::tempdir().unwrap();
    let repo = Repo::open(config(
        &format!("{}deploys.git", daemon.url),
        cache.path(),
        RemoteAuth::None,
    ))
    .await
    .unwrap();
    // prod sits between dev and staging in the chain: the commits after it land too.
    let report = repo.apply(&three_bumps(), now()).await.unwrap();
    let Outcome::Failed(err) = outcome_of(&report, "prod") else {
        panic!("{:?}", report.outcomes)
    };
    assert_eq!(err.kind, GitErrorKind::Rejected, "{err}");
    assert!(
        err.to_string()
            .contains("prod is protected: open a pull request"),
        "{err}"
    );
    assert!(matches!(outcome_of(&report, "dev"), Outcome::Landed(_)));
    assert!(matches!(outcome_of(&report, "staging"), Outcome::Landed(_)));
    let log = git(&bare, &["log", "--format=%s", "main"]);
    assert_eq!(
        log.lines().collect::<Vec<_>>(),
        [
            "promote(staging): podinfo 6.5.3 -> 6.5.4",
            "promote(dev): podinfo 6.5.3 -> 6.5.4",
            "initial"
        ]
    );
    assert_eq!(
        show(
            &bare,
            "main",
            "apps/podinfo/overlays/prod/kustomization.yaml"
        ),
        overlay("6.5.3")
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_persons_commit_in_between_is_rebased_on() {
    let fx = Fixture::new();
    let bare = fx.bare.clone();
    person_pushes_first_once(
        &bare,
        "README.md",
        "gitops, edited by a person\n",
        "docs: a change by a person",
    );
    let repo = fx.repo().await;
    let report = repo
        .apply(
            &[bump(
                "dev",
                "apps/podinfo/overlays/dev/kustomization.yaml",
                "6.5.5",
            )],
            now(),
        )
        .await
        .unwrap();
    assert_eq!(report.pushes, 2, "rejected once as behind, then rebased");
    assert_eq!(landed(&report), 1);
    let log = git(&bare, &["log", "--format=%s", "main"]);
    assert_eq!(
        log.lines().collect::<Vec<_>>(),
        [
            "promote(dev): podinfo 6.5.3 -> 6.5.5",
            "docs: a change by a person",
            "initial"
        ]
    );
    assert_eq!(
        git(&bare, &["rev-list", "--merges", "--count", "main"]).trim(),
        "0",
        "history stays linear"
    );
}

/// A person rolls dev back by hand between our fetch and our push: our bump expected 6.5.3
/// and finds 6.5.2, so it is dropped, never written over the person's change.
#[tokio::test(flavor = "multi_thread")]
async fn a_persons_change_to_the_same_file_is_never_overwritten() {
    let fx = Fixture::new();
    let bare = fx.bare.clone();
    let file = "apps/podinfo/overlays/dev/kustomization.yaml";
    person_pushes_first_once(&bare, file, &overlay("6.5.2"), "rollback dev by hand");
    let repo = fx.repo().await;
    let report = repo
        .apply(&[bump("dev", file, "6.5.4")], now())
        .await
        .unwrap();
    assert_eq!(
        *outcome_of(&report, "dev"),
        Outcome::Superseded {
            found: Some("6.5.2".into())
        }
    );
    assert_eq!(show(&bare, "main", file), overlay("6.5.2"));
    let log = git(&bare, &["log", "--format=%s", "main"]);
    assert!(!log.contains("promote("), "{log}");
}

/// A bump of several targets lands whole or not at all: when a person changed one of its
/// files (prod) first, the other (dev) is not written either.
#[tokio::test(flavor = "multi_thread")]
async fn a_bump_of_several_targets_lands_whole_or_not_at_all() {
    let fx = Fixture::new();
    let bare = fx.bare.clone();
    let dev = "apps/podinfo/overlays/dev/kustomization.yaml";
    let prod = "apps/podinfo/overlays/prod/kustomization.yaml";
    person_pushes_first_once(&bare, prod, &overlay("6.5.2"), "prod back by hand");
    let repo = fx.repo().await;
    let mut both = bump("dev", dev, "6.5.4");
    let mut second = both.edits[0].clone();
    second.file = prod.into();
    both.edits.push(second);
    let report = repo.apply(&[both], now()).await.unwrap();
    assert_eq!(
        *outcome_of(&report, "dev"),
        Outcome::Superseded {
            found: Some("6.5.2".into())
        }
    );
    assert_eq!(show(&bare, "main", dev), overlay("6.5.3"));
    assert_eq!(show(&bare, "main", prod), overlay("6.5.2"));
    let log = git(&bare, &["log", "--format=%s", "main"]);
    assert!(!log.contains("promote("), "{log}");
}

/// `commit` and `push` apart: a chain pushed to another branch, leaving the main branch.
#[tokio::test(flavor = "multi_thread")]
async fn a_chain_can_be_pushed_to_another_branch() {
    let fx = Fixture::new();
    let repo = fx.repo().await;
    let tip = repo.fetch().await.unwrap();
    let chain = repo
        .commit(
            tip,
            &[bump(
                "prod",
                "apps/podinfo/overlays/prod/kustomization.yaml",
                "6.5.4",
            )],
            "2026-11-22T10:00:00Z".parse().unwrap(),
        )
        .await
        .unwrap();
    assert_eq!(chain.commits.len(), 1);
    let head = chain.commits[0].1;
    let pushed = repo.push(head, "tagpromoter/podinfo/prod").await.unwrap();
    assert!(matches!(pushed, Pushed::Done), "{pushed:?}");
    assert_eq!(
        git(&fx.bare, &["rev-parse", "tagpromoter/podinfo/prod"]).trim(),
        head.to_string()
    );
    assert_eq!(
        git(
            &fx.bare,
            &["log", "-1", "--format=%cI", "tagpromoter/podinfo/prod"]
        )
        .trim(),
        "2026-11-22T10:00:00Z",
        "the commit time is the pass's time"
    );
    assert_eq!(
        git(&fx.bare, &["rev-parse", "main"]).trim(),
        tip.to_string()
    );
}

/// A repository of 20 overlays `apps/app-NN/kustomization.yaml` at 6.5.3, for races.
fn twenty_apps(base: &Path, name: &str) -> PathBuf {
    let mut files: Vec<(String, String)> =
        (0..20).map(|i| (app_file(i), overlay("6.5.3"))).collect();
    files.push(("README.md".into(), "x\n".into()));
    let refs: Vec<(&str, &str)> = files
        .iter()
        .map(|(p, t)| (p.as_str(), t.as_str()))
        .collect();
    bare_repo(base, name, &refs)
}

fn app_file(i: usize) -> String {
    format!("apps/app-{i:02}/kustomization.yaml")
}

/// The bump of app `i` to `to`.
fn app_bump(i: usize, to: &str) -> Bump {
    bump(&format!("app-{i:02}"), &app_file(i), to)
}

/// Two tagpromoters (separate mirrors, separate threads and runtimes) race to land the same
/// 20 bumps on one branch, each bump in its own push: every bump lands exactly once.
#[test]
fn two_racing_promoters_land_every_bump_exactly_once() {
    let base = tempfile::tempdir().unwrap();
    let bare = twenty_apps(base.path(), "race");
    let daemon = GitDaemon::start(base.path());
    let url = format!("{}race.git", daemon.url);
    let run = |order: Vec<usize>| {
        let url = url.clone();
        std::thread::spawn(move || {
            let cache = tempfile::tempdir().unwrap();
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            rt.block_on(async move {
                let repo = Repo::open(config(&url, cache.path(), RemoteAuth::None))
                    .await
                    .unwrap();
                let mut landed = 0;
                for i in order {
                    let b = app_bump(i, "7.0.0");
                    landed += self::landed(&repo.apply(&[b], now()).await.unwrap());
                }
                landed
            })
        })
    };
    let a = run((0..20).collect());
    let b = run((0..20).rev().collect());
    let landed = a.join().unwrap() + b.join().unwrap();
    assert_eq!(landed, 20, "each bump landed once, by one of the two");
    let subjects = git(&bare, &["log", "--format=%s", "main"]);
    let mut bumps: Vec<&str> = subjects
        .lines()
        .filter(|s| s.starts_with("promote("))
        .collect();
    assert_eq!(bumps.len(), 20);
    bumps.sort();
    bumps.dedup();
    assert_eq!(bumps.len(), 20, "no duplicate commits");
    assert_eq!(
        git(&bare, &["rev-list", "--merges", "--count", "main"]).trim(),
        "0"
    );
    for i in 0..20 {
        assert_eq!(show(&bare, "main", &app_file(i)), overlay("7.0.0"));
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn history_gives_each_files_changes_and_our_records() {
    let fx = Fixture::new();
    let repo = fx.repo().await;
    let file = "apps/podinfo/overlays/dev/kustomization.yaml";
    repo.apply(&[bump("dev", file, "6.5.4")], now())
        .await
        .unwrap();
    // A person rolls back by hand, and changes an unrelated file.
    let (_person, w) = fx.person();
    std::fs::write(w.join(file), overlay("6.5.3")).unwrap();
    git(&w, &["commit", "-q", "-am", "rollback dev"]);
    std::fs::write(w.join("README.md"), "other\n").unwrap();
    git(&w, &["commit", "-q", "-am", "docs"]);
    git(&w, &["push", "-q", "origin", "main"]);
    let mut held = bump(
        "prod",
        "apps/podinfo/overlays/prod/kustomization.yaml",
        "6.5.2",
    );
    held.record.actor = Actor::Person("alice".into());
    held.record.hold = Some(HoldChange::Set { until: None });
    repo.apply(&[held], now()).await.unwrap();

    let tip = repo.fetch().await.unwrap();
    let history = History::walk(repo.store(), tip).unwrap();
    let subjects: Vec<&str> = history
        .commits()
        .iter()
        .map(|c| c.info.message.lines().next().unwrap_or_default())
        .collect();
    assert_eq!(
        subjects,
        [
            "promote(prod): podinfo 6.5.3 -> 6.5.2",
            "docs",
            "rollback dev",
            "promote(dev): podinfo 6.5.3 -> 6.5.4",
            "initial"
        ]
    );
    let changes = history
        .file_changes(repo.store(), &[file.into(), "absent.yaml".into()])
        .unwrap();
    let dev = &changes[Path::new(file)];
    let at: Vec<usize> = dev.iter().map(|c| c.commit).collect();
    assert_eq!(
        at,
        [4, 3, 2],
        "initial, our bump, the rollback (oldest first)"
    );
    assert_eq!(
        dev[0].blob, dev[2].blob,
        "the rollback restored the same bytes"
    );
    let absent = &changes[Path::new("absent.yaml")];
    assert_eq!(absent.len(), 1);
    assert_eq!(absent[0].blob, None);
    let prod = history.commits()[0].record.as_ref().unwrap();
    assert_eq!(prod.actor, Actor::Person("alice".into()));
    assert_eq!(prod.hold, Some(HoldChange::Set { until: None }));
    assert!(
        history.commits()[2].record.is_none(),
        "the person's commit is not ours"
    );
    assert_eq!(history.commits()[2].info.author, "A Person");
}

#[tokio::test(flavor = "multi_thread")]
async fn symlinks_submodules_and_directories_are_refused() {
    let base = tempfile::tempdir().unwrap();
    let work = tempfile::tempdir().unwrap();
    let w = work.path();
    git(w, &["init", "-q", "-b", "main"]);
    std::fs::create_dir_all(w.join("real")).unwrap();
    std::fs::write(w.join("real/kustomization.yaml"), overlay("1.0.0")).unwrap();
    std::os::unix::fs::symlink("real", w.join("link")).unwrap();
    std::os::unix::fs::symlink("real/kustomization.yaml", w.join("file-link.yaml")).unwrap();
    git(w, &["add", "-A"]);
    git(
        w,
        &[
            "update-index",
            "--add",
            "--cacheinfo",
            "160000,1111111111111111111111111111111111111111,vendored",
        ],
    );
    git(w, &["commit", "-q", "-m", "init"]);
    let bare = base.path().join("odd.git");
    git(
        base.path(),
        &[
            "clone",
            "-q",
            "--bare",
            w.to_str().unwrap(),
            bare.to_str().unwrap(),
        ],
    );
    let cache = tempfile::tempdir().unwrap();
    let repo = Repo::open(config(
        &format!("file://{}", bare.display()),
        cache.path(),
        RemoteAuth::None,
    ))
    .await
    .unwrap();
    repo.fetch().await.unwrap();
    for (path, why) in [
        ("link/kustomization.yaml", "link is a symbolic link"),
        ("file-link.yaml", "is a symbolic link"),
        ("vendored/x.yaml", "vendored is a submodule"),
        ("real", "is a directory"),
    ] {
        let err = repo.read(Path::new(path)).unwrap_err();
        assert_eq!(err.kind, GitErrorKind::Target, "{path}: {err}");
        assert!(err.to_string().contains(why), "{path}: {err}");
    }
    let report = repo
        .apply(&[bump("dev", "link/kustomization.yaml", "2.0.0")], now())
        .await
        .unwrap();
    let Outcome::Failed(err) = outcome_of(&report, "dev") else {
        panic!("{:?}", report.outcomes)
    };
    assert_eq!(err.kind, GitErrorKind::Target, "{err}");
    assert_eq!(report.pushes, 0);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_branch_that_never_stops_moving_ends_in_a_conflict() {
    let fx = Fixture::new();
    person_always_pushes_first(&fx.bare, "README.md");
    let mut cfg = fx.config();
    cfg.max_attempts = 2;
    let repo = Repo::open(cfg).await.unwrap();
    let report = repo
        .apply(
            &[bump(
                "dev",
                "apps/podinfo/overlays/dev/kustomization.yaml",
                "6.5.9",
            )],
            now(),
        )
        .await
        .unwrap();
    let Outcome::Failed(err) = outcome_of(&report, "dev") else {
        panic!("{:?}", report.outcomes)
    };
    assert_eq!(err.kind, GitErrorKind::Conflict, "{err}");
    assert!(
        err.to_string().contains("gave up after 2 attempts"),
        "{err}"
    );
    let log = git(&fx.bare, &["log", "--format=%s", "main"]);
    assert!(!log.contains("promote("), "nothing of ours landed half-way");
}

#[tokio::test(flavor = "multi_thread")]
async fn unreachable_and_missing_repositories_are_classified() {
    let cache = tempfile::tempdir().unwrap();
    let port = support::free_port();
    let repo = Repo::open(config(
        &format!("git://127.0.0.1:{port}/none.git"),
        cache.path(),
        RemoteAuth::None,
    ))
    .await
    .unwrap();
    let err = repo.fetch().await.unwrap_err();
    assert_eq!(err.kind, GitErrorKind::Network, "{err}");

    let base = tempfile::tempdir().unwrap();
    seed(base.path(), "deploys");
    let daemon = GitDaemon::start(base.path());
    let repo = Repo::open(config(
        &format!("{}absent.git", daemon.url),
        cache.path(),
        RemoteAuth::None,
    ))
    .await
    .unwrap();
    let err = repo.fetch().await.unwrap_err();
    assert_eq!(err.kind, GitErrorKind::NotFound, "{err}");
    let mut cfg = config(
        &format!("{}deploys.git", daemon.url),
        cache.path(),
        RemoteAuth::None,
    );
    cfg.branch = "no-such-branch".into();
    let err = Repo::open(cfg).await.unwrap().fetch().await.unwrap_err();
    assert_eq!(err.kind, GitErrorKind::NotFound, "{err}");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_shallow_mirror_is_deepened_for_history() {
    let base = tempfile::tempdir().unwrap();
    let bare = seed(base.path(), "deploys");
    let person = tempfile::tempdir().unwrap();
    git(person.path(), &["clone", "-q", bare.to_str().unwrap(), "w"]);
    let w = person.path().join("w");
    for i in 0..5 {
        std::fs::write(w.join("README.md"), format!("{i}\n")).unwrap();
        git(&w, &["commit", "-q", "-am", &format!("change {i}")]);
    }
    git(&w, &["push", "-q", "origin", "main"]);
    let cache = tempfile::tempdir().unwrap();
    let mut cfg = config(
        &format!("file://{}", bare.display()),
        cache.path(),
        RemoteAuth::None,
    );
    cfg.depth = Some(2);
    let repo = Repo::open(cfg).await.unwrap();
    let tip = repo.fetch().await.unwrap();
    let shallow = History::walk(repo.store(), tip).unwrap();
    assert!(shallow.truncated);
    assert_eq!(shallow.commits().len(), 2);
    repo.deepen(100_000).await.unwrap();
    let repo_store = repo.store();
    let full = History::walk(repo_store, tip).unwrap();
    assert!(!full.truncated);
    assert_eq!(full.commits().len(), 6);
}

#[test]
fn settings_become_a_repo_config() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("settings.yaml"),
        "apiVersion: tagpromoter.io/v1alpha1\nkind: Settings\nspec:\n  git:\n    url: https://git.example.com/acme/deploys.git\n    auth: { tokenFile: /run/secrets/token }\n    author: { name: bot, email: bot@example.com }\n",
    )
    .unwrap();
    let rules = tagpromoter::rules::load_dir(dir.path()).unwrap();
    let config = RepoConfig::from_settings(&rules.settings.git, Path::new("/cache"));
    assert_eq!(config.branch, "main");
    assert_eq!(config.author.name, "bot");
    assert!(
        matches!(config.auth, RemoteAuth::Password { ref username, ref password_file } if username == "x-access-token" && password_file == Path::new("/run/secrets/token"))
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn ssh_with_a_key_and_known_hosts() {
    let base = tempfile::tempdir().unwrap();
    let bare = seed(base.path(), "deploys");
    let ssh = support::git::SshServer::start();
    let url = format!("ssh://root@127.0.0.1:{}{}", ssh.port, bare.display());
    let cache = tempfile::tempdir().unwrap();
    let auth = RemoteAuth::Ssh {
        key_file: ssh.client_key.clone(),
        known_hosts: Some(ssh.known_hosts.clone()),
    };
    let repo = Repo::open(config(&url, cache.path(), auth)).await.unwrap();
    let report = repo
        .apply(
            &[bump(
                "dev",
                "apps/podinfo/overlays/dev/kustomization.yaml",
                "6.7.0",
            )],
            now(),
        )
        .await
        .unwrap();
    assert_eq!(landed(&report), 1);
    assert_eq!(
        show(
            &bare,
            "main",
            "apps/podinfo/overlays/dev/kustomization.yaml"
        ),
        overlay("6.7.0")
    );

    // An unauthorized key, and a server not in known_hosts: both are auth errors.
    let stranger = RemoteAuth::Ssh {
        key_file: ssh.stranger_key(),
        known_hosts: Some(ssh.known_hosts.clone()),
    };
    let other_cache = tempfile::tempdir().unwrap();
    let err = Repo::open(config(&url, other_cache.path(), stranger))
        .await
        .unwrap()
        .fetch()
        .await
        .unwrap_err();
    assert_eq!(err.kind, GitErrorKind::Auth, "{err}");
    let empty = other_cache.path().join("empty_known_hosts");
    std::fs::write(&empty, "").unwrap();
    let unknown = RemoteAuth::Ssh {
        key_file: ssh.client_key.clone(),
        known_hosts: Some(empty),
    };
    let err = Repo::open(config(&url, other_cache.path(), unknown))
        .await
        .unwrap()
        .fetch()
        .await
        .unwrap_err();
    assert_eq!(err.kind, GitErrorKind::Auth, "{err}");
}

/// Entry point of the worker processes of `two_processes_sharing_one_cache_directory`: run
/// only as their child process (it reads its job from the environment).
#[test]
#[ignore = "a subprocess entry point, started by two_processes_sharing_one_cache_directory"]
fn race_worker() {
    let url = std::env::var("RACE_URL").expect("RACE_URL");
    let cache = std::env::var("RACE_CACHE").expect("RACE_CACHE");
    let order: Vec<usize> = std::env::var("RACE_ORDER")
        .expect("RACE_ORDER")
        .split(',')
        .map(|n| n.parse().unwrap())
        .collect();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let landed = rt.block_on(async move {
        let repo = Repo::open(config(&url, Path::new(&cache), RemoteAuth::None))
            .await
            .unwrap();
        let mut landed = 0;
        for i in order {
            let b = app_bump(i, "8.0.0");
            landed += self::landed(&repo.apply(&[b], now()).await.unwrap());
        }
        landed
    });
    println!("RACE_LANDED={landed}");
}

/// Two real processes share one cache directory (one mirror) and race on 20 bumps: the
/// mirror's lock keeps them from corrupting it, and every bump lands exactly once.
#[test]
fn two_processes_sharing_one_cache_directory() {
    let base = tempfile::tempdir().unwrap();
    let bare = twenty_apps(base.path(), "shared");
    let daemon = GitDaemon::start(base.path());
    let cache = tempfile::tempdir().unwrap();
    let spawn = |order: String| {
        std::process::Command::new(std::env::current_exe().unwrap())
            .args([
                "--ignored",
                "--exact",
                "gitops::race_worker",
                "--nocapture",
                "--test-threads=1",
            ])
            .env("RACE_URL", format!("{}shared.git", daemon.url))
            .env("RACE_CACHE", cache.path())
            .env("RACE_ORDER", order)
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap()
    };
    let forward: Vec<String> = (0..20).map(|i| i.to_string()).collect();
    let backward: Vec<String> = (0..20).rev().map(|i| i.to_string()).collect();
    let a = spawn(forward.join(","));
    let b = spawn(backward.join(","));
    let mut landed = 0;
    for child in [a, b] {
        let out = child.wait_with_output().unwrap();
        let text = String::from_utf8_lossy(&out.stdout);
        let errors = String::from_utf8_lossy(&out.stderr);
        assert!(out.status.success(), "a worker failed:\n{text}\n{errors}");
        landed += text
            .lines()
            .find_map(|l| l.split("RACE_LANDED=").nth(1))
            .and_then(|n| n.trim().parse::<usize>().ok())
            .unwrap_or_else(|| panic!("the worker did not report:\n{text}\n{errors}"));
    }
    assert_eq!(landed, 20);
    let subjects = git(&bare, &["log", "--format=%s", "main"]);
    assert_eq!(
        subjects
            .lines()
            .filter(|s| s.starts_with("promote("))
            .count(),
        20
    );
    assert_eq!(
        git(&bare, &["rev-list", "--merges", "--count", "main"]).trim(),
        "0"
    );
    git(&bare, &["fsck", "--no-dangling"]);
    let mirror = std::fs::read_dir(cache.path().join("git"))
        .unwrap()
        .flatten()
        .find(|e| e.path().extension().is_some_and(|x| x == "git"))
        .unwrap()
        .path();
    git(&mirror, &["fsck", "--no-dangling"]);
}

/// A repository of `n` overlays whose `pre-receive` hook refuses any push that touches a
/// file named in `refused.txt` (one pattern per line) beside it.
fn hooked_apps(base: &Path, n: usize, refused: &[usize]) -> PathBuf {
    let mut files: Vec<(String, String)> =
        (0..n).map(|i| (app_file(i), overlay("6.5.3"))).collect();
    files.push(("README.md".into(), "x\n".into()));
    let refs: Vec<(&str, &str)> = files
        .iter()
        .map(|(p, t)| (p.as_str(), t.as_str()))
        .collect();
    let bare = bare_repo(base, "hooked", &refs);
    let patterns: String = refused
        .iter()
        .map(|i| format!("^{}$\n", app_file(*i)))
        .collect();
    std::fs::write(bare.join("refused.txt"), patterns).unwrap();
    let hook = bare.join("hooks/pre-receive");
    std::fs::write(
        &hook,
        format!(
            "#!/bin/sh\nwhile read old new ref; do\n  if git diff --name-only \"$old\" \"$new\" | grep -q -f '{}'; then\n    echo 'refused by policy' >&2\n    exit 1\n  fi\ndone\n",
            bare.join("refused.txt").display()
        ),
    )
    .unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&hook, std::fs::Permissions::from_mode(0o755)).unwrap();
    bare
}

/// Narrowing a refused push costs O(n) pushes when the hook refuses every bump (not
/// n·log n: 48 refused bumps once took 231 pushes), and O(log n) when it refuses one.
#[tokio::test(flavor = "multi_thread")]
async fn narrowing_refused_bumps_costs_linear_pushes_at_worst_and_logarithmic_for_one() {
    let n = 48;
    for (refused, most) in [((0..n).collect::<Vec<_>>(), n + 8), (vec![29], 16)] {
        let base = tempfile::tempdir().unwrap();
        let bare = hooked_apps(base.path(), n, &refused);
        let cache = tempfile::tempdir().unwrap();
        let repo = Repo::open(config(
            &format!("file://{}", bare.display()),
            cache.path(),
            RemoteAuth::None,
        ))
        .await
        .unwrap();
        let bumps: Vec<Bump> = (0..n).map(|i| app_bump(i, "7.0.0")).collect();
        let report = repo.apply(&bumps, now()).await.unwrap();
        let failed = report
            .outcomes
            .iter()
            .filter(|(_, o)| matches!(o, Outcome::Failed(e) if e.kind == GitErrorKind::Rejected))
            .count();
        assert_eq!(failed, refused.len());
        assert_eq!(landed(&report), n - refused.len());
        assert!(
            report.pushes <= most,
            "{} refused of {n}: {} pushes, at most {most} expected",
            refused.len(),
            report.pushes
        );
        for i in 0..n {
            let want = if refused.contains(&i) {
                "6.5.3"
            } else {
                "7.0.0"
            };
            assert_eq!(show(&bare, "main", &app_file(i)), overlay(want), "app {i}");
        }
    }
}

/// A connection that drops part-way through narrowing fails only what had not landed: the
/// bump a probe had already pushed is reported landed, as the branch shows.
#[tokio::test(flavor = "multi_thread")]
async fn a_connection_lost_while_narrowing_keeps_what_landed_landed() {
    let base = tempfile::tempdir().unwrap();
    let bare = seed(base.path(), "flaky");
    // The first push touching prod is refused; on the second the connection drops.
    let count = bare.join("prod-pushes");
    let hook = bare.join("hooks/pre-receive");
    std::fs::write(
        &hook,
        format!(
            "#!/bin/sh\nwhile read old new ref; do\n  if git diff --name-only \"$old\" \"$new\" | grep -q '/prod/'; then\n    echo x >> '{0}'\n    if [ \"$(wc -l < '{0}')\" -ge 2 ]; then kill -9 $PPID; fi\n    echo 'prod is protected' >&2\n    exit 1\n  fi\ndone\n",
            count.display()
        ),
    )
    .unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&hook, std::fs::Permissions::from_mode(0o755)).unwrap();
    let cache = tempfile::tempdir().unwrap();
    let repo = Repo::open(config(
        &format!("file://{}", bare.display()),
        cache.path(),
        RemoteAuth::None,
    ))
    .await
    .unwrap();
    let report = repo
        .apply(&three_bumps(), now())
        .await
        .expect("a partial failure is a report, not an error");
    assert!(
        matches!(outcome_of(&report, "dev"), Outcome::Landed(_)),
        "{:?}",
        report.outcomes
    );
    assert!(matches!(outcome_of(&report, "prod"), Outcome::Failed(_)));
    assert!(matches!(outcome_of(&report, "staging"), Outcome::Failed(_)));
    let log = git(&bare, &["log", "--format=%s", "main"]);
    assert_eq!(
        log.lines().next(),
        Some("promote(dev): podinfo 6.5.3 -> 6.5.4")
    );
}

/// A snapshot reads history as far as its caller says it needs, no further: a little of a
/// deep mirror when that is enough, doubling what it reads while it is not, and deepening a
/// shallow mirror (doubling again) once the mirror's own history is read whole.
#[tokio::test(flavor = "multi_thread")]
async fn a_snapshot_reads_as_far_as_needed_and_no_further() {
    let base = tempfile::tempdir().unwrap();
    let bare = seed(base.path(), "deep");
    support::git::append_commits(&bare, 3_000, 1_700_000_000);
    let cache = tempfile::tempdir().unwrap();
    let mut cfg = config(
        &format!("file://{}", bare.display()),
        cache.path(),
        RemoteAuth::None,
    );
    // 500, then deepened by 500: the mirror's boundary falls exactly where the first walk
    // stops.
    cfg.depth = Some(500);
    let repo = Repo::open(cfg).await.unwrap();
    let queries = dev_query("podinfo");
    // Enough at once: the shallow mirror's 500 commits are all it reads.
    let s = repo.snapshot(queries.clone(), |_| true).await.unwrap();
    assert_eq!(s.walked, 500);
    // The whole history (3,001 commits): deepened until its first commit is read.
    let s = repo
        .snapshot(queries.clone(), |s| s.targets[0].from_start)
        .await
        .unwrap();
    assert_eq!(s.walked, 3_001);
    assert!(s.targets[0].from_start);
    // The mirror is deep now; a caller that needs little reads a first slice of it only
    // (once nothing kept on disk answers for this tip).
    forget_kept_snapshots(cache.path());
    let s = repo.snapshot(queries.clone(), |_| true).await.unwrap();
    assert_eq!(s.walked, 1_000);
    forget_kept_snapshots(cache.path());
    let s = repo.snapshot(queries, |s| s.walked >= 1_500).await.unwrap();
    assert_eq!(s.walked, 2_000, "doubled once");
}

/// A person rolls dev back from 6.5.3 to 6.5.1 with a commit pushed to `bare`.
fn roll_dev_back_by_hand(bare: &Path) {
    let work = tempfile::tempdir().unwrap();
    git(work.path(), &["clone", "-q", bare.to_str().unwrap(), "."]);
    let path = work
        .path()
        .join("apps/podinfo/overlays/dev/kustomization.yaml");
    let text = std::fs::read_to_string(&path).unwrap();
    std::fs::write(&path, text.replace("6.5.3", "6.5.1")).unwrap();
    git(work.path(), &["commit", "-qam", "roll dev back"]);
    git(work.path(), &["push", "-q", "origin", "main"]);
}

/// The dev overlay's target, as promotion `promotion` asks for its history.
fn dev_query(promotion: &str) -> std::sync::Arc<Vec<tagpromoter::gitops::TargetQuery>> {
    let file = "apps/podinfo/overlays/dev/kustomization.yaml";
    std::sync::Arc::new(vec![tagpromoter::gitops::TargetQuery {
        file: file.into(),
        target: Target::Kustomize { name: IMAGE.into() },
        id: format!("{file}#images[name=podinfo]"),
        names: (promotion.into(), "dev".into()),
        others: Vec::new(),
        identity: tagpromoter::rules::Identity {
            repository: "test".into(),
            branch: "main".into(),
        },
        shared: false,
    }])
}

/// Remove the snapshots kept on disk under `cache`, so that the next read reads.
fn forget_kept_snapshots(cache: &Path) {
    for entry in std::fs::read_dir(cache.join("git")).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "snapshot") {
            std::fs::remove_file(path).unwrap();
        }
    }
}

/// A server that records the `Authorization` headers it receives and answers 401 with a
/// Basic challenge (so that git offers credentials if it has any for it): the other
/// origin of a redirect.
async fn credential_trap() -> (String, std::sync::Arc<std::sync::Mutex<Vec<String>>>) {
    use axum::http::{HeaderMap, StatusCode, header};
    let seen = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let kept = std::sync::Arc::clone(&seen);
    let app = axum::Router::new().fallback(move |headers: HeaderMap| {
        let kept = std::sync::Arc::clone(&kept);
        async move {
            if let Some(a) = headers.get(header::AUTHORIZATION) {
                kept.lock()
                    .unwrap()
                    .push(a.to_str().unwrap_or("?").to_string());
            }
            (
                StatusCode::UNAUTHORIZED,
                [(header::WWW_AUTHENTICATE, "Basic realm=\"trap\"")],
                "",
            )
        }
    });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    (url, seen)
}

/// Issue 16: `git.url` answers with a redirect to another origin. git follows it, and the
/// other origin asks for credentials: tagpromoter never gives them (its credentials are for
/// `git.url`'s origin only), and says why the fetch failed. Same-origin servers still get
/// them (see `http_with_basic_auth_and_a_refused_password`).
#[tokio::test(flavor = "multi_thread")]
async fn credentials_never_follow_a_redirect_to_another_origin() {
    use axum::http::{StatusCode, Uri, header};
    let (trap, seen) = credential_trap().await;
    let redirector = axum::Router::new().fallback(move |uri: Uri| {
        let to = format!("{trap}{uri}");
        async move { (StatusCode::FOUND, [(header::LOCATION, to)], "") }
    });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/git/deploys.git", listener.local_addr().unwrap());
    tokio::spawn(async move {
        let _ = axum::serve(listener, redirector).await;
    });
    let cache = tempfile::tempdir().unwrap();
    let secrets = tempfile::tempdir().unwrap();
    let password_file = secrets.path().join("password");
    std::fs::write(&password_file, "redirect-Secret-9\n").unwrap();
    let auth = RemoteAuth::Password {
        username: "bot".into(),
        password_file,
    };
    let repo = Repo::open(config(&url, cache.path(), auth)).await.unwrap();
    let Err(e) = repo.fetch().await else {
        panic!("a redirect to another origin cannot be cloned with our credentials")
    };
    assert!(
        seen.lock().unwrap().is_empty(),
        "the other origin received credentials: {:?}",
        seen.lock().unwrap()
    );
    let text = e.to_string();
    assert!(!text.contains("redirect-Secret-9"), "{text}");
    assert!(text.contains("only to"), "says why: {text}");
}

/// A worker keeps its last read of each branch: a branch that did not move is not read
/// again (the same snapshot comes back), a branch a person moved is read afresh, and a
/// caller that needs more than what was kept gets more. A `once` keeps nothing.
#[tokio::test(flavor = "multi_thread")]
async fn a_kept_snapshot_serves_an_unchanged_branch_and_only_it() {
    let base = tempfile::tempdir().unwrap();
    let bare = seed(base.path(), "kept");
    let cache = tempfile::tempdir().unwrap();
    let url = format!("file://{}", bare.display());
    let mut cfg = config(&url, cache.path(), RemoteAuth::None);
    cfg.keep_snapshot = true;
    let repo = Repo::open(cfg).await.unwrap();
    let queries = dev_query("podinfo");
    let first = repo.snapshot(queries.clone(), |_| true).await.unwrap();
    let again = repo.snapshot(queries.clone(), |_| true).await.unwrap();
    assert!(std::sync::Arc::ptr_eq(&first, &again), "read again");

    // A person moves dev by hand.
    roll_dev_back_by_hand(&bare);
    let moved = repo.snapshot(queries.clone(), |_| true).await.unwrap();
    assert!(!std::sync::Arc::ptr_eq(&first, &moved));
    assert_eq!(
        moved.targets[0].current.as_ref().unwrap().tag.as_deref(),
        Some("6.5.1")
    );
    // Asked again with a different need that the kept read does not meet: read afresh.
    let mut asked = 0;
    let needy = repo
        .snapshot(queries.clone(), |_| {
            asked += 1;
            asked > 1
        })
        .await
        .unwrap();
    assert!(!std::sync::Arc::ptr_eq(&moved, &needy));

    // Without keep_snapshot, nothing is kept.
    let once = Repo::open(config(&url, cache.path(), RemoteAuth::None))
        .await
        .unwrap();
    let a = once.snapshot(queries.clone(), |_| true).await.unwrap();
    let b = once.snapshot(queries, |_| true).await.unwrap();
    assert!(!std::sync::Arc::ptr_eq(&a, &b));
}

/// A new process (every `once`, a worker after a restart) whose branch did not move takes
/// the snapshot the last one kept on disk instead of reading the history again; a branch
/// that moved, other queries, or a damaged file are read afresh (never a stale answer).
#[tokio::test(flavor = "multi_thread")]
async fn a_snapshot_kept_on_disk_serves_the_next_process_only_for_the_same_tip_and_queries() {
    let base = tempfile::tempdir().unwrap();
    let bare = seed(base.path(), "on-disk");
    let cache = tempfile::tempdir().unwrap();
    let url = format!("file://{}", bare.display());
    let process = || async {
        Repo::open(config(&url, cache.path(), RemoteAuth::None))
            .await
            .unwrap()
    };
    // What a new process reads for promotion `promotion`.
    let read_anew = |promotion: &'static str| async move {
        process()
            .await
            .snapshot(dev_query(promotion), |_| true)
            .await
            .unwrap()
    };
    let first = read_anew("podinfo").await;
    let kept: Vec<std::path::PathBuf> = std::fs::read_dir(cache.path().join("git"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "snapshot"))
        .collect();
    assert_eq!(kept.len(), 1, "one snapshot kept beside the mirror");
    let kept = &kept[0];

    // What the next process reads is what was kept: mark the kept copy to tell.
    let author = &first.targets[0].entries[0].author;
    let text = std::fs::read_to_string(kept).unwrap();
    assert!(text.contains(author.as_str()));
    std::fs::write(kept, text.replace(author.as_str(), "Kept On Disk")).unwrap();
    let next = read_anew("podinfo").await;
    assert_eq!(next.tip, first.tip);
    assert_eq!(
        next.targets[0].entries[0].author, "Kept On Disk",
        "taken from disk"
    );

    // Other queries: read afresh.
    let other = read_anew("renamed").await;
    assert_eq!(
        other.targets[0].entries[0].author, *author,
        "read, not taken"
    );

    // A damaged file under the right key: read afresh, and kept again whole.
    let text = std::fs::read_to_string(kept).unwrap();
    let (key, _) = text.split_once('\n').unwrap();
    let damaged = format!("{key}\n{{\"tip\": ");
    std::fs::write(kept, &damaged).unwrap();
    let repaired = read_anew("renamed").await;
    assert_eq!(repaired.targets[0].entries[0].author, *author);
    let rewritten = std::fs::read_to_string(kept).unwrap();
    assert!(rewritten.starts_with(key) && rewritten.len() > damaged.len());

    // A person moves the branch: the next process reads the new tip, not the kept one.
    roll_dev_back_by_hand(&bare);
    let moved = read_anew("renamed").await;
    assert_ne!(moved.tip, first.tip);
    assert_eq!(
        moved.targets[0].current.as_ref().unwrap().tag.as_deref(),
        Some("6.5.1")
    );

    // A need the kept read does not meet: read again (deeper, were the mirror shallow).
    let mut asked = 0;
    process()
        .await
        .snapshot(dev_query("renamed"), |_| {
            asked += 1;
            asked > 1
        })
        .await
        .unwrap();
    assert_eq!(
        asked, 2,
        "the kept snapshot was offered, refused, and a read followed"
    );
}

/// Loose objects do not pile up in a mirror (automatic collection is off in it, and our
/// commits and small fetches leave objects loose): once there are as many as git's own
/// `gc.auto` would pack, a fetch packs the reachable ones and drops unreachable ones two
/// weeks old, never a newer one (another process may be building on it), and everything
/// stays readable.
#[tokio::test(flavor = "multi_thread")]
async fn a_mirror_packs_its_loose_objects_instead_of_gathering_them_for_ever() {
    let base = tempfile::tempdir().unwrap();
    let bare = seed(base.path(), "loose");
    let cache = tempfile::tempdir().unwrap();
    let url = format!("file://{}", bare.display());
    let repo = Repo::open(config(&url, cache.path(), RemoteAuth::None))
        .await
        .unwrap();
    let tip = repo.fetch().await.unwrap().to_string();
    let mirror = std::fs::read_dir(cache.path().join("git"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| p.extension().is_some_and(|e| e == "git"))
        .unwrap();
    let loose = || -> usize {
        let counts = git(&mirror, &["count-objects", "-v"]);
        counts
            .lines()
            .find_map(|l| l.strip_prefix("count: "))
            .unwrap()
            .parse()
            .unwrap()
    };
    // Objects written straight into the mirror, loose, as commits and small fetches leave
    // them: their ids.
    let write = |texts: Vec<String>, stdin_lines: bool, args: &[&str]| -> String {
        let mut child = std::process::Command::new("git")
            .args([
                "-c",
                "user.name=A Person",
                "-c",
                "user.email=person@example.com",
            ])
            .args(args)
            .current_dir(&mirror)
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        let mut stdin = child.stdin.take().unwrap();
        let input = if stdin_lines {
            texts.join("\n") + "\n"
        } else {
            texts.concat()
        };
        // Fed from a thread: git answers as it reads.
        let feeding =
            std::thread::spawn(move || std::io::Write::write_all(&mut stdin, input.as_bytes()));
        let out = child.wait_with_output().unwrap();
        feeding.join().unwrap().unwrap();
        assert!(out.status.success(), "git {args:?}");
        String::from_utf8(out.stdout).unwrap()
    };
    let blobs = tempfile::tempdir().unwrap();
    let mut paths = Vec::new();
    for i in 0..10_000 {
        let path = blobs.path().join(i.to_string());
        std::fs::write(&path, format!("object {i}\n")).unwrap();
        paths.push(path.display().to_string());
    }
    let ids = write(paths, true, &["hash-object", "-w", "--stdin-paths"]);
    // 10,000 of them reachable: a commit on the branch (pushed, then fetched) holding them.
    let entries: Vec<String> = ids
        .lines()
        .enumerate()
        .map(|(i, id)| format!("100644 blob {id}\t{i}"))
        .collect();
    let bulk = write(entries, true, &["mktree"]);
    let mut root: Vec<String> = git(&mirror, &["ls-tree", &tip])
        .lines()
        .map(str::to_string)
        .collect();
    root.push(format!("040000 tree {}\tbulk", bulk.trim()));
    let root = write(root, true, &["mktree"]);
    let commit = write(
        vec!["bulk objects".into()],
        false,
        &["commit-tree", root.trim(), "-p", &tip],
    );
    git(
        &mirror,
        &[
            "push",
            "-q",
            &url,
            &format!("{}:refs/heads/main", commit.trim()),
        ],
    );
    // And unreachable ones: a bump that never landed three weeks ago, and one just made.
    let old = write(
        vec!["an old bump".into()],
        false,
        &["hash-object", "-w", "--stdin"],
    );
    let new = write(
        vec!["a bump being made".into()],
        false,
        &["hash-object", "-w", "--stdin"],
    );
    let old_file = mirror
        .join("objects")
        .join(&old.trim()[..2])
        .join(&old.trim()[2..]);
    let weeks_ago = std::time::SystemTime::now() - std::time::Duration::from_secs(21 * 86_400);
    std::fs::File::options()
        .write(true)
        .open(&old_file)
        .unwrap()
        .set_modified(weeks_ago)
        .unwrap();
    assert!(loose() > 10_000, "{} loose", loose());

    repo.fetch().await.unwrap();
    assert!(loose() < 100, "still {} loose after a fetch", loose());
    git(&mirror, &["cat-file", "-e", ids.lines().last().unwrap()]);
    git(&mirror, &["cat-file", "-e", new.trim()]);
    assert!(
        !old_file.exists(),
        "an unreachable object three weeks old is dropped"
    );
    let read = repo.snapshot(dev_query("podinfo"), |_| true).await.unwrap();
    assert_eq!(
        read.targets[0].current.as_ref().unwrap().tag.as_deref(),
        Some("6.5.3")
    );
}

/// A snapshot whose branch gained a few plain commits since it was read (our bump, a
/// person's edit, an unrelated commit) grows by those only, and says exactly what a whole
/// read from a fresh cache says; a merge among them makes it read whole.
#[tokio::test(flavor = "multi_thread")]
async fn a_snapshot_grown_by_new_commits_says_what_a_whole_read_says() {
    let base = tempfile::tempdir().unwrap();
    let bare = seed(base.path(), "grow");
    let cache = tempfile::tempdir().unwrap();
    let url = format!("file://{}", bare.display());
    let dev = "apps/podinfo/overlays/dev/kustomization.yaml";
    let prod = "apps/podinfo/overlays/prod/kustomization.yaml";
    let staging = "apps/podinfo/staging/values.yaml";
    let kustomize = || Target::Kustomize { name: IMAGE.into() };
    let mut queries: Vec<_> = [(dev, "dev"), (prod, "prod")]
        .map(|(file, env)| tagpromoter::gitops::TargetQuery {
            file: file.into(),
            target: kustomize(),
            id: format!("{file}#images[name=podinfo]"),
            names: ("podinfo".into(), env.into()),
            others: Vec::new(),
            identity: tagpromoter::rules::Identity {
                repository: "test".into(),
                branch: "main".into(),
            },
            shared: false,
        })
        .to_vec();
    // Staging also writes prod's file (an odd layout, but one whose current value depends
    // on a file the query is not named by): its value must be worked out again when only
    // that other file changes.
    queries.push(tagpromoter::gitops::TargetQuery {
        file: staging.into(),
        target: Target::Helm {
            tag: "image.tag".parse().unwrap(),
            repository: None,
            digest: None,
        },
        id: format!("{staging}#image.tag"),
        names: ("podinfo".into(), "staging".into()),
        others: vec![(prod.into(), kustomize())],
        identity: tagpromoter::rules::Identity {
            repository: "test".into(),
            branch: "main".into(),
        },
        shared: false,
    });
    let queries = std::sync::Arc::new(queries);
    let read_in = |cache: std::path::PathBuf| {
        let (url, queries) = (url.clone(), queries.clone());
        async move {
            Repo::open(config(&url, &cache, RemoteAuth::None))
                .await
                .unwrap()
                .snapshot(queries, |_| true)
                .await
                .unwrap()
        }
    };
    // What a snapshot says, but for how many commits were walked to say it.
    let said = |s: &tagpromoter::gitops::Snapshot| {
        let mut v = serde_json::to_value(s).unwrap();
        v.as_object_mut().unwrap().remove("walked");
        v
    };
    let whole_read = || async {
        let fresh = tempfile::tempdir().unwrap();
        said(&*read_in(fresh.path().to_path_buf()).await)
    };
    let first = read_in(cache.path().to_path_buf()).await;

    // Our bump of dev, a person's edit of prod, an unrelated commit.
    let repo = Repo::open(config(&url, cache.path(), RemoteAuth::None))
        .await
        .unwrap();
    let mut bump = bump("dev", dev, "6.5.4");
    bump.record.target = Some(format!("{dev}#images[name=podinfo]"));
    assert_eq!(landed(&repo.apply(&[bump], now()).await.unwrap()), 1);
    let work = tempfile::tempdir().unwrap();
    git(work.path(), &["clone", "-q", bare.to_str().unwrap(), "."]);
    let edit = |file: &str, from: &str, to: &str, message: &str| {
        let path = work.path().join(file);
        let text = std::fs::read_to_string(&path).unwrap_or_default();
        std::fs::write(&path, text.replace(from, to) + "\n").unwrap();
        git(work.path(), &["add", file]);
        git(work.path(), &["commit", "-qm", message]);
    };
    edit(prod, "6.5.3", "6.5.2", "prod back to 6.5.2 by hand");
    edit("README.md", "", "", "unrelated");
    git(work.path(), &["push", "-q", "origin", "main"]);

    let grown = read_in(cache.path().to_path_buf()).await;
    assert_ne!(grown.tip, first.tip);
    assert_eq!(
        said(&grown),
        whole_read().await,
        "grown as a whole read says"
    );
    assert_eq!(
        grown.targets[1].current.as_ref().unwrap().tag.as_deref(),
        Some("6.5.2")
    );
    assert!(
        grown.targets[2].current.is_err(),
        "staging and prod no longer agree: {:?}",
        grown.targets[2].current
    );

    // It is grown from what was kept, not read again: a mark in the kept copy stays, in
    // the history and in the text and value of a file no new commit changed.
    let kept = std::fs::read_dir(cache.path().join("git"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| p.extension().is_some_and(|e| e == "snapshot"))
        .unwrap();
    let text = std::fs::read_to_string(&kept).unwrap();
    let text = text.replace("A Person", "Kept On Disk");
    let text = text.replace("6.5.4", "6.5.4-kept");
    std::fs::write(&kept, text).unwrap();
    edit("README.md", "", "", "unrelated again");
    git(work.path(), &["push", "-q", "origin", "main"]);
    let marked = read_in(cache.path().to_path_buf()).await;
    assert_eq!(marked.targets[0].entries[0].author, "Kept On Disk");
    assert!(
        marked.files[std::path::Path::new(dev)]
            .as_ref()
            .unwrap()
            .contains("6.5.4-kept")
    );
    assert_eq!(
        marked.targets[0].current.as_ref().unwrap().tag.as_deref(),
        Some("6.5.4-kept"),
        "a file no new commit changed is not read again"
    );

    // A merge among the new commits: read whole (the mark is gone), as a fresh cache does.
    git(work.path(), &["checkout", "-qb", "side"]);
    edit(dev, "6.5.4", "6.5.5", "dev to 6.5.5 on a branch");
    git(work.path(), &["checkout", "-q", "main"]);
    git(
        work.path(),
        &["merge", "-q", "--no-ff", "-m", "merge side", "side"],
    );
    git(work.path(), &["push", "-q", "origin", "main"]);
    let merged = read_in(cache.path().to_path_buf()).await;
    assert_eq!(merged.targets[0].entries[0].author, "A Person");
    assert_eq!(said(&merged), whole_read().await);
}

/// The oracle for a kept read grown by new commits (issue 28: it counted a record
/// cherry-picked from another branch that a whole read did not): generated histories of
/// plain commits — a person's edits of dev and prod, records for either target written for
/// this branch, another branch, another repository or before records said whose they
/// were (holds, releases, bumps), unrelated commits — and after every commit a grown read
/// and a whole read from a fresh cache must say exactly the same. Deterministic (a seeded
/// generator); prints how many of each kind it made.
#[tokio::test(flavor = "multi_thread")]
async fn a_grown_read_says_what_a_whole_read_says_over_generated_histories() {
    let base = tempfile::tempdir().unwrap();
    let bare = seed(base.path(), "generated");
    let cache = tempfile::tempdir().unwrap();
    let url = format!("file://{}", bare.display());
    let dev = "apps/podinfo/overlays/dev/kustomization.yaml";
    let prod = "apps/podinfo/overlays/prod/kustomization.yaml";
    let ours = tagpromoter::rules::Identity {
        repository: "test".into(),
        branch: "main".into(),
    };
    let queries: Vec<_> = [(dev, "dev"), (prod, "prod")]
        .map(|(file, env)| tagpromoter::gitops::TargetQuery {
            file: file.into(),
            target: Target::Kustomize { name: IMAGE.into() },
            id: format!("{file}#images[name=podinfo]"),
            names: ("podinfo".into(), env.into()),
            others: Vec::new(),
            identity: ours.clone(),
            // prod's target is written by another environment elsewhere too.
            shared: env == "prod",
        })
        .to_vec();
    let queries = std::sync::Arc::new(queries);
    // Whole histories on both sides (a shallow fresh clone would stop at its depth: how far
    // to read is the engine's question, not this one).
    let full = |cache: &Path| RepoConfig {
        depth: None,
        ..config(&url, cache, RemoteAuth::None)
    };
    let mut kept_cfg = full(cache.path());
    kept_cfg.keep_snapshot = true;
    let kept = Repo::open(kept_cfg).await.unwrap();
    let said = |s: &tagpromoter::gitops::Snapshot| {
        let mut v = serde_json::to_value(s).unwrap();
        v.as_object_mut().unwrap().remove("walked");
        v
    };
    let whole = || async {
        let fresh = tempfile::tempdir().unwrap();
        let repo = Repo::open(full(fresh.path())).await.unwrap();
        said(&repo.snapshot(queries.clone(), |_| true).await.unwrap())
    };
    kept.snapshot(queries.clone(), |_| true).await.unwrap();
    let work = tempfile::tempdir().unwrap();
    git(work.path(), &["clone", "-q", bare.to_str().unwrap(), "."]);
    let mut seed: u64 = 0x5eed_2028;
    let mut next = |n: u64| {
        seed = seed
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        (seed >> 33) % n
    };
    let mut made: std::collections::BTreeMap<&str, usize> = Default::default();
    let tags = ["6.5.1", "6.5.2", "6.5.3", "6.5.4", "6.6.0"];
    for step in 0..80 {
        let (file, env) = [(dev, "dev"), (prod, "prod")][next(2) as usize];
        let tag = tags[next(tags.len() as u64) as usize];
        let kind = match next(4) {
            0 => {
                let path = work.path().join(file);
                let text = std::fs::read_to_string(&path).unwrap();
                let line = text.lines().find(|l| l.contains("newTag:")).unwrap();
                std::fs::write(&path, text.replace(line, &format!("    newTag: {tag}"))).unwrap();
                let message = format!("{env} to {tag} by hand");
                git(
                    work.path(),
                    &["commit", "-q", "--allow-empty", "-am", &message],
                );
                "a person's edit"
            }
            1 => {
                std::fs::write(work.path().join("NOTES.md"), format!("step {step}\n")).unwrap();
                git(work.path(), &["add", "NOTES.md"]);
                git(work.path(), &["commit", "-qm", "unrelated"]);
                "an unrelated commit"
            }
            _ => {
                let mut r = record(env, "6.5.3", tag);
                r.target = Some(format!("{file}#images[name=podinfo]"));
                r.actor = Actor::Person("alice".into());
                r.hold = match next(3) {
                    0 => Some(HoldChange::Set { until: None }),
                    1 => Some(HoldChange::Released),
                    _ => None,
                };
                let (identity, kind) = match next(4) {
                    0 => (Some(ours.clone()), "a record of this branch"),
                    1 => (
                        Some(tagpromoter::rules::Identity {
                            repository: "test".into(),
                            branch: "staging".into(),
                        }),
                        "a record of another branch",
                    ),
                    2 => (
                        Some(tagpromoter::rules::Identity {
                            repository: "elsewhere".into(),
                            branch: "main".into(),
                        }),
                        "a record of another repository",
                    ),
                    _ => (None, "a record without identity"),
                };
                r.identity = identity;
                git(
                    work.path(),
                    &["commit", "-q", "--allow-empty", "-m", &r.message()],
                );
                kind
            }
        };
        *made.entry(kind).or_default() += 1;
        git(work.path(), &["push", "-q", "origin", "HEAD:main"]);
        let grown = kept.snapshot(queries.clone(), |_| true).await.unwrap();
        assert_eq!(said(&grown), whole().await, "step {step}: {kind}");
    }
    eprintln!("grown = whole after each of 80 generated commits: {made:?}");
    assert!(made.len() >= 6, "every kind of commit made: {made:?}");
}

//! `write: pull-request` on GitHub, GitLab and Gitea: branches pushed to the real `git
//! daemon`, the forges' APIs answered by stand-ins (no real forge can run here; see
//! `tests/support/forge.rs`, which checks methods, paths, fields, auth headers and pages).

use jiff::{SignedDuration, Timestamp};

use crate::engine::{INITIAL, kustomization};
use crate::support::forge::{Dialect, ForgeStandIn};
use crate::support::git::{GitDaemon, bare_repo_at, git};
use crate::support::oci::Pusher;
use crate::support::{Auth, DockerRegistry};
use tagpromoter::engine::{Applied, Engine, Options, PassReport, State};

fn at(minutes: i64) -> Timestamp {
    "2026-11-20T10:00:00Z".parse::<Timestamp>().unwrap() + SignedDuration::from_mins(minutes)
}

fn prod(report: &PassReport) -> &tagpromoter::engine::EnvReport {
    &report.environments[0]
}

#[tokio::test(flavor = "multi_thread")]
async fn stand_in_github_pull_requests() {
    pull_requests(Dialect::GitHub).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn stand_in_gitlab_merge_requests() {
    pull_requests(Dialect::GitLab).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn stand_in_gitea_pull_requests() {
    pull_requests(Dialect::Gitea).await;
}

/// What the pull-request tests share: a registry with `acme/app` 1.0.0, a GitOps repository
/// (one kustomization per environment, each at 1.0.0) served by `git daemon`, a stand-in
/// forge of one dialect, and rules promoting `acme/app` through the environments given.
struct Site {
    _registry: DockerRegistry,
    pusher: Pusher,
    image: String,
    bare: std::path::PathBuf,
    _daemon: GitDaemon,
    forge: ForgeStandIn,
    /// The forge token's file.
    token: std::path::PathBuf,
    rules: tempfile::TempDir,
    _dirs: [tempfile::TempDir; 2],
}

impl Site {
    /// `environments`: (name, the rest of its YAML flow mapping after `name`).
    async fn start(dialect: Dialect, environments: &[(&str, &str)]) -> Self {
        let registry = DockerRegistry::start(Auth::None);
        let pusher = Pusher::new(&registry.addr);
        let image = format!("{}/acme/app", registry.addr);
        pusher
            .image("acme/app", Some("1.0.0"), INITIAL, "linux", "amd64")
            .await;
        let base = tempfile::tempdir().unwrap();
        let overlay = kustomization(&image, "1.0.0");
        let files: Vec<(String, &str)> = environments
            .iter()
            .map(|(env, _)| (format!("apps/{env}/kustomization.yaml"), overlay.as_str()))
            .collect();
        let refs: Vec<(&str, &str)> = files.iter().map(|(f, t)| (f.as_str(), *t)).collect();
        let bare = bare_repo_at(base.path(), "deploys", &refs, Some(INITIAL));
        let daemon = GitDaemon::start(base.path());
        let forge = ForgeStandIn::start(dialect, "forge-token-1").await;
        let secrets = tempfile::tempdir().unwrap();
        let token = secrets.path().join("token");
        std::fs::write(&token, "forge-token-1\n").unwrap();
        let envs: String = environments
            .iter()
            .map(|(env, rest)| {
                format!("    - {{ name: {env}, {rest}, target: {{ kustomize: {{ file: apps/{env}/kustomization.yaml }} }} }}\n")
            })
            .collect();
        let rules = tempfile::tempdir().unwrap();
        std::fs::write(
            rules.path().join("rules.yaml"),
            format!(
                "apiVersion: tagpromoter.io/v1alpha1\nkind: Settings\nspec:\n  git:\n    url: '{}deploys.git'\n    forge: {{ kind: {}, apiUrl: '{}', tokenFile: {}, project: acme/deploys }}\n  registries: [{{ host: '{}', insecure: true }}]\n---\napiVersion: tagpromoter.io/v1alpha1\nkind: Promotion\nmetadata: {{ name: app }}\nspec:\n  image: {image}\n  environments:\n{envs}",
                daemon.url,
                dialect.kind(),
                forge.api_url,
                token.display(),
                registry.addr
            ),
        )
        .unwrap();
        Self {
            _registry: registry,
            pusher,
            image,
            bare,
            _daemon: daemon,
            forge,
            token,
            rules,
            _dirs: [base, secrets],
        }
    }

    /// `acme/app:tag` pushed.
    async fn push(&self, tag: &str) {
        self.pusher
            .image("acme/app", Some(tag), INITIAL, "linux", "amd64")
            .await;
    }

    /// An engine on a cache of its own.
    async fn engine(&self) -> (Engine, tempfile::TempDir) {
        let cache = tempfile::tempdir().unwrap();
        let engine = Engine::open(
            tagpromoter::rules::load_dir(self.rules.path()).unwrap(),
            cache.path(),
            Options::default(),
        )
        .await
        .unwrap();
        (engine, cache)
    }
}

/// Opened, left alone when nothing changed, updated for a newer tag, stalled past
/// stallAfter, closed unmerged (not proposed again), merged (up to date), a person's commit
/// on the branch (left alone), a refused token and a forge error (classified failures).
async fn pull_requests(dialect: Dialect) {
    let site = Site::start(
        dialect,
        &[(
            "prod",
            "write: pull-request, stallAfter: 60d, policy: { semver: '>=1.0.0' }",
        )],
    )
    .await;
    let (pusher, image, bare, github) = (&site.pusher, &site.image, &site.bare, &site.forge);
    let token = &site.token;
    let overlay = kustomization(image, "1.0.0");
    let labels = serde_json::json!({
        "org.opencontainers.image.source": "https://github.com/acme/app",
        "org.opencontainers.image.revision": "4f2a9c1",
        "maintainer": "not shown",
    });
    pusher
        .labeled("acme/app", Some("1.1.0"), INITIAL, "linux", "amd64", labels)
        .await;
    let (engine, cache) = site.engine().await;
    let settings = engine.rules().settings.clone();
    let mut alerting = tagpromoter::alert::Alerting::start(
        &settings,
        cache.path(),
        tagpromoter::metrics::Metrics::new().alerts,
    )
    .unwrap();
    let mut alerts = |p: &PassReport| -> Vec<(String, Option<String>, Option<String>)> {
        alerting
            .after_pass(p, &settings)
            .into_iter()
            .filter(|n| n.event == tagpromoter::alert::Event::Firing)
            .map(|n| {
                (
                    n.alert.name.as_str().to_string(),
                    n.alert.class,
                    n.alert.error,
                )
            })
            .collect()
    };
    let branch = "tagpromoter/app/prod";
    let file_on = |rev: &str| {
        git(
            bare,
            &["show", &format!("{rev}:apps/prod/kustomization.yaml")],
        )
    };

    // Opened: the bump on its own branch, the base branch untouched.
    let p = engine.pass(at(0)).await;
    assert!(
        matches!(prod(&p).applied, Applied::Proposed { number: 1, .. }),
        "{:?}",
        prod(&p).applied
    );
    assert!(matches!(
        prod(&p).state(p.now),
        State::InReview { number: 1, .. }
    ));
    assert_eq!(file_on(branch), kustomization(image, "1.1.0"));
    assert_eq!(file_on("main"), overlay);
    let pr = &github.prs()[0];
    assert_eq!((pr.head.as_str(), pr.base.as_str()), (branch, "main"));
    assert_eq!(pr.title, "promote(prod): app 1.0.0 -> 1.1.0");
    assert!(
        pr.body.contains("| to | `1.1.0` |") && pr.body.contains("Tagpromoter-To: 1.1.0\n"),
        "{}",
        pr.body
    );
    assert!(pr.body.contains("| digest | `sha256:"), "{}", pr.body);
    assert!(
        pr.body
            .contains("| org.opencontainers.image.revision | `4f2a9c1` |")
            && pr
                .body
                .contains("| org.opencontainers.image.source | `https://github.com/acme/app` |")
            && !pr.body.contains("not shown"),
        "{}",
        pr.body
    );

    // The board links it.
    let Applied::Proposed { url, .. } = &prod(&p).applied else {
        unreachable!()
    };
    let board = tagpromoter::server::board::page_of(&p);
    assert!(
        board.contains(&format!("<a href=\"{url}\">Pull request #1</a> (open)")),
        "{board}"
    );
    assert!(
        board.contains("<p class=\"state\">In review</p>"),
        "{board}"
    );

    // status and plan show it, without writing anything.
    let preview = engine.preview(at(0)).await;
    let text = tagpromoter::view::status_table(&preview);
    assert!(text.contains("in review: #1 http://"), "{text}");
    let text = tagpromoter::view::plan_text(&preview);
    assert!(
        text.contains("by pull request from tagpromoter/app/prod; in review: #1 http://"),
        "{text}"
    );

    // Again, with 60 newer pull requests of other branches: still found (on a second page
    // where the API cannot filter by branch); nothing new to say, no call but lookups.
    github.crowd(60);
    let before = github.calls().len();
    let p = engine.pass(at(1)).await;
    assert!(matches!(
        prod(&p).applied,
        Applied::Proposed { number: 1, .. }
    ));
    let lookups = github.calls()[before..].to_vec();
    assert!(
        !lookups.is_empty() && lookups.iter().all(|c| c.starts_with("GET list")),
        "nothing but lookups: {lookups:?}"
    );

    // A newer tag: the branch and the same pull request are updated.
    pusher
        .image("acme/app", Some("1.2.0"), INITIAL, "linux", "amd64")
        .await;
    let p = engine.pass(at(2)).await;
    assert!(matches!(
        prod(&p).applied,
        Applied::Proposed { number: 1, .. }
    ));
    assert_eq!(github.prs().len(), 61, "one of ours, 60 of others");
    assert_eq!(github.prs()[0].title, "promote(prod): app 1.0.0 -> 1.2.0");
    assert_eq!(file_on(branch), kustomization(image, "1.2.0"));
    assert_eq!(
        git(bare, &["rev-list", "--count", &format!("main..{branch}")]).trim(),
        "1"
    );

    // Open past stallAfter: stalled, with the pull request's URL in the alert.
    let p = engine.pass(at(24 * 60 * 60)).await;
    assert!(matches!(prod(&p).state(p.now), State::Stalled { .. }));
    let fired = alerts(&p);
    assert_eq!(fired.len(), 1, "{fired:?}");
    assert_eq!(fired[0].0, "PromotionStalled");
    assert!(
        fired[0]
            .2
            .as_deref()
            .is_some_and(|e| e.contains("pull request #1 is still open: http://")),
        "{fired:?}"
    );

    // A person closes it unmerged: 1.2.0 is not proposed again.
    github.finish(1, false);
    let p = engine.pass(at(3)).await;
    assert!(
        matches!(prod(&p).applied, Applied::Declined { number: 1, .. }),
        "{:?}",
        prod(&p).applied
    );
    assert_eq!(github.prs().len(), 61);

    // A newer tag is proposed in a new pull request; merged, the environment is up to date.
    pusher
        .image("acme/app", Some("1.3.0"), INITIAL, "linux", "amd64")
        .await;
    let p = engine.pass(at(4)).await;
    assert!(
        matches!(prod(&p).applied, Applied::Proposed { number: 62, .. }),
        "{:?}",
        prod(&p).applied
    );
    github.finish(62, true);
    git(
        bare,
        &[
            "update-ref",
            "refs/heads/main",
            &format!("refs/heads/{branch}"),
        ],
    );
    let p = engine.pass(at(5)).await;
    assert_eq!(prod(&p).state(p.now), State::UpToDate);
    assert_eq!(prod(&p).decision.current.as_deref(), Some("1.3.0"));

    // A person's commit on our branch is never overwritten.
    pusher
        .image("acme/app", Some("1.4.0"), INITIAL, "linux", "amd64")
        .await;
    engine.pass(at(6)).await;
    let work = tempfile::tempdir().unwrap();
    git(
        work.path(),
        &["clone", "-q", "-b", branch, bare.to_str().unwrap(), "w"],
    );
    let w = work.path().join("w");
    std::fs::write(w.join("NOTES.md"), "why 1.4.0 needs a migration\n").unwrap();
    git(&w, &["add", "NOTES.md"]);
    git(&w, &["commit", "-q", "-m", "notes for the reviewer"]);
    git(&w, &["push", "-q", "origin", branch]);
    let theirs = git(bare, &["rev-parse", branch]);
    pusher
        .image("acme/app", Some("1.5.0"), INITIAL, "linux", "amd64")
        .await;
    let p = engine.pass(at(7)).await;
    assert!(
        matches!(prod(&p).applied, Applied::Skipped { ref why } if why.contains("someone else committed")),
        "{:?}",
        prod(&p).applied
    );
    assert_eq!(git(bare, &["rev-parse", branch]), theirs);

    // Failures are classified like push failures: a refused token, a forge error.
    git(bare, &["update-ref", "-d", &format!("refs/heads/{branch}")]);
    github.finish(63, false);
    std::fs::write(token, "expired-token\n").unwrap();
    let p = engine.pass(at(8)).await;
    assert!(
        alerts(&p)
            .iter()
            .any(|(name, class, _)| name == "PromotionFailed" && class.as_deref() == Some("auth")),
        "a refused token raises PromotionFailed (auth)"
    );
    assert!(
        matches!(prod(&p).state(p.now), State::Failing { ref class, ref error } if class == "auth" && !error.contains("expired-token") && error.contains("check git.forge.tokenFile") && !error.contains("git.auth")),
        "{:?}",
        prod(&p).state(p.now)
    );
    std::fs::write(token, "forge-token-1\n").unwrap();
    github.fail_next(502);
    let p = engine.pass(at(9)).await;
    assert!(
        matches!(prod(&p).state(p.now), State::Failing { ref class, .. } if class == "network"),
        "{:?}",
        prod(&p).state(p.now)
    );
    let p = engine.pass(at(10)).await;
    assert!(
        matches!(prod(&p).applied, Applied::Proposed { number: 64, .. }),
        "{:?}",
        prod(&p).applied
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn stand_in_github_soak_counts_from_a_fast_forward_merge() {
    soak_from_the_merge(Dialect::GitHub).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn stand_in_gitlab_soak_counts_from_a_fast_forward_merge() {
    soak_from_the_merge(Dialect::GitLab).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn stand_in_gitea_soak_counts_from_a_fast_forward_merge() {
    soak_from_the_merge(Dialect::Gitea).await;
}

/// staging writes by pull request, prod takes its tags after 24 h there. A person merges
/// staging's pull request by fast-forward ten hours after the bot committed it: the commit
/// keeps the bot's time, but staging ran the tag only from the merge, so prod waits 24 h from
/// the merge (the forge says when). A forge that cannot say fails prod loudly (`forge`).
async fn soak_from_the_merge(dialect: Dialect) {
    let site = Site::start(
        dialect,
        &[
            (
                "staging",
                "write: pull-request, policy: { semver: '>=1.0.0' }",
            ),
            (
                "prod",
                "from: staging, soak: 24h, policy: { semver: '>=1.0.0' }",
            ),
        ],
    )
    .await;
    site.push("1.1.0").await;
    let (bare, forge) = (&site.bare, &site.forge);
    let open = || site.engine();
    let (engine, _cache) = open().await;
    let prod = |p: &PassReport| p.environments[1].clone();
    let hours = |h: i64| at(h * 60);

    let p = engine.pass(hours(0)).await;
    assert!(matches!(
        p.environments[0].applied,
        Applied::Proposed { number: 1, .. }
    ));
    // Merged by fast-forward ten hours later: main now is the bot's commit itself.
    let branch = "refs/heads/tagpromoter/app/staging";
    let head = git(bare, &["rev-parse", branch]).trim().to_string();
    git(bare, &["update-ref", "refs/heads/main", &head]);
    forge.merge_at(1, &head, &hours(10).to_string());

    // 24 h after the commit, 14 h after the merge: not soaked.
    let p = engine.pass(hours(24) + SignedDuration::from_mins(10)).await;
    assert_eq!(p.environments[0].state(p.now), State::UpToDate);
    assert_eq!(
        prod(&p).state(p.now),
        State::Soaking { until: hours(34) },
        "prod waits 24 h from the merge"
    );
    assert_eq!(prod(&p).decision.current.as_deref(), Some("1.0.0"));

    // A forge that cannot say when it merged fails prod, and says so (a fresh engine asks).
    let (fresh, _fresh_cache) = open().await;
    forge.fail_next(502);
    let p = fresh.pass(hours(25)).await;
    assert!(
        matches!(prod(&p).state(p.now), State::Failing { ref class, ref error } if class == "forge" && error.contains("502")),
        "{:?}",
        prod(&p).state(p.now)
    );
    assert_eq!(prod(&p).decision.current.as_deref(), Some("1.0.0"));

    // 24 h after the merge: promoted.
    let p = engine.pass(hours(34) + SignedDuration::from_mins(10)).await;
    assert!(
        matches!(prod(&p).applied, Applied::Landed { .. }),
        "{:?}",
        prod(&p).applied
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn stand_in_github_forks_and_forged_commits_are_not_ours() {
    not_ours(Dialect::GitHub).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn stand_in_gitlab_forks_and_forged_commits_are_not_ours() {
    not_ours(Dialect::GitLab).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn stand_in_gitea_forks_and_forged_commits_are_not_ours() {
    not_ours(Dialect::Gitea).await;
}

/// Issue 16's attacks on pull requests. A fork's pull request from a branch named like ours
/// (closed with our body: it would block the tag as "declined"; open: it would be updated
/// and shown as our proposal) is never taken for ours. A commit on our branch that carries
/// our message over another change — added on top, or in place of ours — makes the branch a
/// person's: left alone, and said so, never reported as our proposal.
async fn not_ours(dialect: Dialect) {
    let site = Site::start(
        dialect,
        &[("prod", "write: pull-request, policy: { semver: '>=1.0.0' }")],
    )
    .await;
    site.push("1.1.0").await;
    let (bare, forge) = (&site.bare, &site.forge);
    let (engine, _cache) = site.engine().await;
    let branch = "tagpromoter/app/prod";
    let title = "promote(prod): app 1.0.0 -> 1.1.0";
    let body = "lookalike\n\nTagpromoter-To: 1.1.0\n";
    let declined = forge.fork_opens("mallory", branch, title, body, false);
    let open = forge.fork_opens("mallory", branch, title, body, true);

    let p = engine.pass(at(0)).await;
    let Applied::Proposed { number, .. } = prod(&p).applied.clone() else {
        panic!("{:?}", prod(&p).applied)
    };
    assert!(
        number > open,
        "our own pull request, not a fork's: #{number}"
    );
    for fork in [declined, open] {
        let pr = &forge.prs()[fork as usize - 1];
        assert_eq!((pr.title.as_str(), pr.body.as_str()), (title, body));
    }
    assert!(
        !forge
            .calls()
            .iter()
            .any(|c| c.starts_with("PATCH") || c.starts_with("PUT")),
        "{:?}",
        forge.calls()
    );
    let ours = git(bare, &["rev-parse", branch]).trim().to_string();

    // A commit with our message and a backdoor, on top of ours.
    let work = tempfile::tempdir().unwrap();
    git(
        work.path(),
        &["clone", "-q", "-b", branch, bare.to_str().unwrap(), "w"],
    );
    let w = work.path().join("w");
    let message = git(&w, &["log", "-1", "--format=%B"]);
    std::fs::write(w.join("backdoor.yaml"), "kind: ClusterRoleBinding\n").unwrap();
    git(&w, &["add", "backdoor.yaml"]);
    git(&w, &["commit", "-q", "-m", &message]);
    git(&w, &["push", "-q", "origin", branch]);
    let p = engine.pass(at(1)).await;
    assert!(
        matches!(prod(&p).applied, Applied::Skipped { ref why } if why.contains("someone else committed")),
        "a forged commit on top: {:?}",
        prod(&p).applied
    );

    // Back to our commit alone: ours again.
    git(
        &w,
        &[
            "push",
            "-q",
            "-f",
            "origin",
            &format!("{ours}:refs/heads/{branch}"),
        ],
    );
    let p = engine.pass(at(2)).await;
    assert!(
        matches!(prod(&p).applied, Applied::Proposed { number: n, .. } if n == number),
        "{:?}",
        prod(&p).applied
    );

    // Ours replaced by a lookalike: same parent, same message, one more file.
    git(&w, &["fetch", "-q", "origin"]);
    git(&w, &["reset", "-q", "--hard", &ours]);
    std::fs::write(w.join("backdoor.yaml"), "kind: ClusterRoleBinding\n").unwrap();
    git(&w, &["add", "backdoor.yaml"]);
    git(&w, &["commit", "-q", "--amend", "-m", &message]);
    git(&w, &["push", "-q", "-f", "origin", branch]);
    let p = engine.pass(at(3)).await;
    assert!(
        matches!(prod(&p).applied, Applied::Skipped { ref why } if why.contains("someone else committed")),
        "a forged commit in place of ours: {:?}",
        prod(&p).applied
    );
}

/// A "forge" that answers every request with a JSON list that never ends (chunked, up to
/// 1 GiB): how many bytes it got to send.
async fn endless_forge() -> (String, std::sync::Arc<std::sync::atomic::AtomicU64>) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let sent = std::sync::Arc::new(std::sync::atomic::AtomicU64::new(0));
    let counter = std::sync::Arc::clone(&sent);
    tokio::spawn(async move {
        while let Ok((mut stream, _)) = listener.accept().await {
            let counter = std::sync::Arc::clone(&counter);
            tokio::spawn(async move {
                let mut head = [0u8; 4096];
                let _ = stream.read(&mut head).await;
                let start = "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n1\r\n[\r\n";
                if stream.write_all(start.as_bytes()).await.is_err() {
                    return;
                }
                let item = "{\"number\":1,\"html_url\":\"x\",\"state\":\"open\",\"title\":\"t\",\"body\":\"padding\"},";
                let chunk = item.repeat(65536 / item.len());
                let framed = format!("{:x}\r\n{chunk}\r\n", chunk.len());
                for _ in 0..(1u64 << 30) / chunk.len() as u64 {
                    if stream.write_all(framed.as_bytes()).await.is_err() {
                        return;
                    }
                    counter.fetch_add(chunk.len() as u64, std::sync::atomic::Ordering::Relaxed);
                }
            });
        }
    });
    (url, sent)
}

/// Issue 16: a forge whose answer never ends (1 GiB of pull requests) costs `plan` little
/// memory: the answer is refused as `invalid` once it passes the limit, and the rest is
/// never read. Run as the real binary, its peak memory read from `/proc`.
#[tokio::test(flavor = "multi_thread")]
async fn a_gigabyte_forge_answer_is_refused_with_little_memory() {
    let registry = DockerRegistry::start(Auth::None);
    let pusher = Pusher::new(&registry.addr);
    let image = format!("{}/acme/app", registry.addr);
    for tag in ["1.0.0", "1.1.0"] {
        pusher
            .image("acme/app", Some(tag), INITIAL, "linux", "amd64")
            .await;
    }
    let base = tempfile::tempdir().unwrap();
    let overlay = kustomization(&image, "1.0.0");
    let bare = bare_repo_at(
        base.path(),
        "deploys",
        &[("apps/prod/kustomization.yaml", overlay.as_str())],
        Some(INITIAL),
    );
    let (forge, sent) = endless_forge().await;
    let rules = tempfile::tempdir().unwrap();
    let token = rules.path().join("token");
    std::fs::write(&token, "forge-token\n").unwrap();
    std::fs::write(
        rules.path().join("rules.yaml"),
        format!(
            "apiVersion: tagpromoter.io/v1alpha1\nkind: Settings\nspec:\n  git:\n    url: 'file://{}'\n    forge: {{ kind: github, apiUrl: '{forge}', tokenFile: {}, project: acme/deploys }}\n  registries: [{{ host: '{}', insecure: true }}]\n---\napiVersion: tagpromoter.io/v1alpha1\nkind: Promotion\nmetadata: {{ name: app }}\nspec:\n  image: {image}\n  environments:\n    - {{ name: prod, write: pull-request, policy: {{ semver: '>=1.0.0' }}, target: {{ kustomize: {{ file: apps/prod/kustomization.yaml }} }} }}\n",
            bare.display(),
            token.display(),
            registry.addr
        ),
    )
    .unwrap();
    let cache = tempfile::tempdir().unwrap();
    let (text, peak) = crate::support::run_watching_memory(&[
        "--rules".as_ref(),
        rules.path().as_os_str(),
        "--cache-dir".as_ref(),
        cache.path().as_os_str(),
        "plan".as_ref(),
    ])
    .await;
    let sent = sent.load(std::sync::atomic::Ordering::Relaxed);
    eprintln!(
        "plan peak RSS {peak} KiB; the forge got to send {} MiB",
        sent >> 20
    );
    assert!(text.contains("invalid"), "{text}");
    assert!(text.contains("larger than the 8 MiB"), "{text}");
    assert!(peak < 96 * 1024, "plan peaked at {peak} KiB");
    assert!(
        sent < 256 << 20,
        "the rest of the answer was read: {sent} bytes"
    );
}

/// A promotion writing to a repository other than `git:` opens its pull request on that
/// repository's forge, against that repository's branch; `git:` (here a repository that
/// does not even exist) is not touched.
#[tokio::test(flavor = "multi_thread")]
async fn stand_in_github_pull_request_on_a_named_repositorys_forge() {
    let site = Site::start(
        Dialect::GitHub,
        &[("prod", "write: pull-request, policy: { semver: '>=1.0.0' }")],
    )
    .await;
    // The same repository and forge, now named `deploys`; `git:` elsewhere.
    let path = site.rules.path().join("rules.yaml");
    let rules = std::fs::read_to_string(&path).unwrap();
    let (head, rest) = rules.split_once("  git:\n    url: '").unwrap();
    let (url, rest) = rest.split_once("'\n").unwrap();
    let (forge, rest) = rest.split_once('\n').unwrap();
    let rules = format!(
        "{head}  git: {{ url: '{}' }}\n  repositories:\n    - name: deploys\n      url: '{url}'\n  {forge}\n{rest}",
        url.replace("deploys.git", "nowhere.git")
    )
    .replace("spec:\n  image:", "spec:\n  repository: deploys\n  image:");
    std::fs::write(&path, &rules).unwrap();
    site.push("1.1.0").await;
    let (engine, _cache) = site.engine().await;
    let p = engine.pass(at(0)).await;
    assert!(
        matches!(prod(&p).applied, Applied::Proposed { number: 1, .. }),
        "{:?}\n{rules}",
        prod(&p).applied
    );
    assert_eq!(prod(&p).decision.destination.repository, "deploys");
    let pr = &site.forge.prs()[0];
    assert_eq!(
        (pr.head.as_str(), pr.base.as_str()),
        ("tagpromoter/app/prod", "main")
    );
    assert_eq!(
        git(
            &site.bare,
            &["show", "tagpromoter/app/prod:apps/prod/kustomization.yaml"]
        ),
        kustomization(&site.image, "1.1.0")
    );
    assert!(!p.failed(), "{p:#?}");
}

/// A person's change on `site`'s main: `env`'s file set to `tag`, dated `date`.
fn by_hand(site: &Site, env: &str, tag: &str, date: Timestamp) {
    let work = tempfile::tempdir().unwrap();
    git(
        work.path(),
        &["clone", "-q", site.bare.to_str().unwrap(), "."],
    );
    std::fs::write(
        work.path().join(format!("apps/{env}/kustomization.yaml")),
        kustomization(&site.image, tag),
    )
    .unwrap();
    git(work.path(), &["add", "."]);
    crate::support::git::commit_at(
        work.path(),
        &["-m", &format!("{env}: {tag} by hand")],
        Some(&date.to_string()),
    );
    git(work.path(), &["push", "-q", "origin", "main"]);
}

#[tokio::test(flavor = "multi_thread")]
async fn stand_in_github_a_pull_request_whose_tag_was_rolled_back_upstream_is_withdrawn() {
    outlived(Dialect::GitHub).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn stand_in_gitlab_a_merge_request_whose_tag_was_rolled_back_upstream_is_withdrawn() {
    outlived(Dialect::GitLab).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn stand_in_gitea_a_pull_request_whose_tag_was_rolled_back_upstream_is_withdrawn() {
    outlived(Dialect::Gitea).await;
}

/// A pull request outlives the reason it was opened (issue 28): prod's pull request for
/// 1.1.0 is open when a person rolls staging back from 1.1.0. `plan` names it and says the
/// next pass closes it; the next pass closes it, its text saying why and not to merge it;
/// `status` names it. Withdrawn is not declined: once staging runs 1.1.0 again and it
/// soaks, it is proposed again.
async fn outlived(dialect: Dialect) {
    let site = Site::start(
        dialect,
        &[
            ("staging", "policy: { semver: '>=1.0.0' }"),
            (
                "prod",
                "from: staging, soak: 1h, write: pull-request, policy: { semver: '>=1.0.0' }",
            ),
        ],
    )
    .await;
    site.push("1.1.0").await;
    let (engine, _cache) = site.engine().await;
    let prod = |p: &PassReport| p.environments[1].clone();
    engine.pass(at(0)).await;
    let p = engine.pass(at(61)).await;
    assert!(
        matches!(prod(&p).applied, Applied::Proposed { number: 1, .. }),
        "{:?}",
        prod(&p).applied
    );

    // A person rolls staging back from 1.1.0.
    by_hand(&site, "staging", "1.0.0", at(62));
    let plan = engine.preview(at(63)).await;
    let text = tagpromoter::view::plan_text(&plan);
    assert!(
        text.contains("pull request #1")
            && text.contains("proposes 1.1.0, which is no longer eligible here")
            && text.contains("staging was rolled back from it")
            && text.contains("the next pass closes it"),
        "{text}"
    );
    assert!(site.forge.prs()[0].open, "plan changes nothing");

    let p = engine.pass(at(64)).await;
    let pr = &site.forge.prs()[0];
    assert!(!pr.open && !pr.merged, "closed unmerged");
    assert!(
        pr.body.starts_with("**tagpromoter withdrew this pull request**: 1.1.0 is no longer eligible for `app/prod`: ")
            && pr.body.contains("staging was rolled back from it")
            && pr.body.contains("Do not merge it"),
        "{}",
        pr.body
    );
    assert!(pr.title.starts_with("[withdrawn] "), "{}", pr.title);
    let status = tagpromoter::view::status_table(&p);
    assert!(
        status.contains("closed pull request #1")
            && status.contains("1.1.0 is no longer eligible here"),
        "{status}"
    );
    let p = engine.pass(at(65)).await;
    assert_ne!(
        prod(&p).state(p.now).name(),
        "declined",
        "withdrawn by the bot, not declined by a person"
    );

    // staging is released and runs 1.1.0 again; an hour on, prod's 1.1.0 is proposed again.
    engine
        .release("app", "staging", "alice", None, at(66))
        .await
        .unwrap();
    engine.pass(at(67)).await;
    let p = engine.pass(at(128)).await;
    assert!(
        matches!(prod(&p).applied, Applied::Proposed { number: 2, .. }),
        "{:?}",
        prod(&p).applied
    );
}

/// A pull request closed unmerged whose change a person then pushes by hand soaks from
/// that push, not from when the bot proposed it (issue 28): staging writes by pull
/// request, prod takes staging's tags after 24 h. The bot proposes staging 1.1.0; a person
/// closes it and, a day later, pushes the bot's commit onto main themselves.
#[tokio::test(flavor = "multi_thread")]
async fn stand_in_github_a_declined_change_pushed_by_hand_soaks_from_the_push() {
    let site = Site::start(
        Dialect::GitHub,
        &[
            (
                "staging",
                "write: pull-request, policy: { semver: '>=1.0.0' }",
            ),
            (
                "prod",
                "from: staging, soak: 24h, policy: { semver: '>=1.0.0' }",
            ),
        ],
    )
    .await;
    site.push("1.1.0").await;
    let (engine, _cache) = site.engine().await;
    let hours = |h: i64| at(h * 60);
    let p = engine.pass(hours(0)).await;
    assert!(matches!(
        p.environments[0].applied,
        Applied::Proposed { number: 1, .. }
    ));
    site.forge.finish(1, false);
    // A day later a person pushes the proposed commit onto main by hand.
    let head = git(
        &site.bare,
        &["rev-parse", "refs/heads/tagpromoter/app/staging"],
    )
    .trim()
    .to_string();
    git(&site.bare, &["update-ref", "refs/heads/main", &head]);
    let p = engine.pass(hours(25)).await;
    assert_eq!(p.environments[0].decision.current.as_deref(), Some("1.1.0"));
    assert_eq!(
        p.environments[1].state(p.now),
        State::Soaking { until: hours(49) },
        "24 h from the push the bot saw, not from its proposal"
    );
    assert_eq!(p.environments[1].decision.current.as_deref(), Some("1.0.0"));
}

//! Many GitOps repositories from one installation (issue 18): an application team's
//! repository, the platform's, and one with a branch per environment — two served by
//! `git daemon`, one over smart HTTP with basic auth — with a real registry; the engine in
//! process, each pass from a fresh cache (as every CronJob run starts).

use jiff::{SignedDuration, Timestamp};

use crate::engine::{INITIAL, kustomization};
use crate::support::git::{GitDaemon, GitHttp, bare_repo_at, git};
use crate::support::in_process::InProcessWorker;
use crate::support::oci::Pusher;
use crate::support::{Auth, DockerRegistry, free_port};
use tagpromoter::engine::{PassReport, State};

fn at(hours: i64) -> Timestamp {
    "2026-11-20T10:00:00Z".parse::<Timestamp>().unwrap() + SignedDuration::from_hours(hours)
}

/// The registry with `acme/app` and `acme/web` at 1.0.0 and 1.1.0; three repositories:
/// `app` (the app team's: dev) and `platform` (prod) over `git daemon`, `envs` over
/// authenticated HTTP with a `staging` and a `prod` branch (web's environments).
struct Estate {
    registry: DockerRegistry,
    base: tempfile::TempDir,
    daemon: GitDaemon,
    http: GitHttp,
    secrets: tempfile::TempDir,
    rules: tempfile::TempDir,
}

impl Estate {
    async fn new() -> Self {
        let registry = DockerRegistry::start(Auth::None);
        let pusher = Pusher::new(&registry.addr);
        for image in ["acme/app", "acme/web"] {
            for tag in ["1.0.0", "1.1.0"] {
                pusher
                    .image(image, Some(tag), INITIAL, "linux", "amd64")
                    .await;
            }
        }
        let base = tempfile::tempdir().unwrap();
        let app = format!("{}/acme/app", registry.addr);
        let web = format!("{}/acme/web", registry.addr);
        let overlay = |image: &str| kustomization(image, "1.0.0");
        bare_repo_at(
            base.path(),
            "app",
            &[("deploy/dev/kustomization.yaml", &overlay(&app))],
            Some(INITIAL),
        );
        bare_repo_at(
            base.path(),
            "platform",
            &[("apps/app/prod/kustomization.yaml", &overlay(&app))],
            Some(INITIAL),
        );
        let envs = bare_repo_at(
            base.path(),
            "envs",
            &[("web/kustomization.yaml", &overlay(&web))],
            Some(INITIAL),
        );
        for branch in ["staging", "prod"] {
            git(&envs, &["branch", branch, "main"]);
        }
        let daemon = GitDaemon::start(base.path());
        let http = GitHttp::start(base.path(), "bot", "envs-Secret-7");
        let secrets = tempfile::tempdir().unwrap();
        std::fs::write(secrets.path().join("password"), "envs-Secret-7\n").unwrap();
        Self {
            registry,
            base,
            daemon,
            http,
            secrets,
            rules: tempfile::tempdir().unwrap(),
        }
    }

    /// The rules: app from the app team's dev to the platform's prod (24 h soak), web
    /// through the `envs` repository's staging and prod branches; `platform_url` where the
    /// platform repository is.
    fn rules(&self, platform_url: &str) {
        self.rules_with(platform_url, "");
    }

    /// [`Estate::rules`] with more Settings lines (`  key: value`).
    fn rules_with(&self, platform_url: &str, settings: &str) {
        let r = &self.registry.addr;
        std::fs::write(
            self.rules.path().join("rules.yaml"),
            format!(
                "apiVersion: tagpromoter.io/v1alpha1
kind: Settings
spec:
  git: {{ url: '{platform_url}' }}
  repositories:
    - {{ name: app-team, url: '{daemon}app.git' }}
    - name: envs
      url: '{http}envs.git'
      auth: {{ username: bot, passwordFile: '{secrets}/password' }}
  registries: [{{ host: '{r}', insecure: true }}]
{settings}---
apiVersion: tagpromoter.io/v1alpha1
kind: Promotion
metadata: {{ name: app }}
spec:
  image: {r}/acme/app
  environments:
    - {{ name: dev, repository: app-team, policy: {{ semver: '^1.0.0' }}, target: {{ kustomize: {{ file: deploy/dev/kustomization.yaml }} }} }}
    - {{ name: prod, from: dev, soak: 24h, policy: {{ semver: '^1.0.0' }}, target: {{ kustomize: {{ file: apps/app/prod/kustomization.yaml }} }} }}
---
apiVersion: tagpromoter.io/v1alpha1
kind: Promotion
metadata: {{ name: web }}
spec:
  image: {r}/acme/web
  repository: envs
  environments:
    - {{ name: staging, branch: staging, policy: {{ semver: '^1.0.0' }}, target: {{ kustomize: {{ file: web/kustomization.yaml }} }} }}
    - {{ name: prod, branch: prod, from: staging, policy: {{ semver: '^1.0.0' }}, target: {{ kustomize: {{ file: web/kustomization.yaml }} }} }}
",
                daemon = self.daemon.url,
                http = self.http.url,
                secrets = self.secrets.path().display(),
            ),
        )
        .unwrap();
    }

    /// One pass at `now` by a fresh engine on a fresh cache.
    async fn pass(&self, now: Timestamp) -> PassReport {
        crate::engine::fresh_pass(self.rules.path(), now).await
    }

    /// The tag `file` holds on `branch` of the bare repository `name`.
    fn tag(&self, name: &str, branch: &str, file: &str) -> String {
        let bare = self.base.path().join(format!("{name}.git"));
        let text = git(&bare, &["show", &format!("{branch}:{file}")]);
        let line = text.lines().find(|l| l.contains("newTag:")).unwrap();
        line.split_whitespace().nth(1).unwrap().to_string()
    }
}

fn state(report: &PassReport, key: &str) -> State {
    let e = report
        .environments
        .iter()
        .find(|e| e.decision.key.to_string() == key)
        .unwrap_or_else(|| panic!("{key} is in the report"));
    e.state(report.now)
}

/// Every environment lands in its own repository and branch, one push each; prod, in the
/// platform repository, counts its soak from the app team's repository's history — read
/// from a fresh cache — and the branch-per-environment promotion moves staging's branch
/// first and prod's after it.
#[tokio::test(flavor = "multi_thread")]
async fn three_repositories_and_a_branch_per_environment_each_get_their_bumps() {
    let estate = Estate::new().await;
    estate.rules(&format!("{}platform.git", estate.daemon.url));

    let first = estate.pass(at(0)).await;
    assert!(!first.failed(), "{first:#?}");
    assert_eq!(
        estate.tag("app", "main", "deploy/dev/kustomization.yaml"),
        "1.1.0"
    );
    assert_eq!(
        estate.tag("envs", "staging", "web/kustomization.yaml"),
        "1.1.0"
    );
    // Prod soaks what this pass put in dev, in another repository (the report shows the
    // state after the pass's own bumps); web's prod waits for staging's branch.
    assert_eq!(
        estate.tag("platform", "main", "apps/app/prod/kustomization.yaml"),
        "1.0.0"
    );
    assert_eq!(state(&first, "app/prod"), State::Soaking { until: at(24) });
    assert_eq!(
        estate.tag("envs", "prod", "web/kustomization.yaml"),
        "1.0.0"
    );
    // Nothing crossed into a branch or repository it does not own.
    assert_eq!(
        estate.tag("envs", "main", "web/kustomization.yaml"),
        "1.0.0"
    );
    assert_eq!(first.pushes, 2, "one push per destination with bumps");
    assert_eq!(first.tips.len(), 4, "{:?}", first.tips);
    // status says where each environment writes.
    let table = tagpromoter::view::status_table(&first);
    for row in [
        "app        dev      app-team@main",
        "app        prod     default@main",
        "web        staging  envs@staging",
        "web        prod     envs@prod",
    ] {
        assert!(table.contains(row), "{row:?} in\n{table}");
    }
    let json: serde_json::Value =
        serde_json::from_str(&tagpromoter::view::json(&first, None)).unwrap();
    assert_eq!(json["environments"][2]["repository"], "envs");
    assert_eq!(json["environments"][2]["branch"], "staging");
    assert_eq!(json["tips"].as_object().unwrap().len(), 4);

    // 12 hours on: soaking until 24 h after dev's commit (from a fresh cache, the app
    // team's history says when).
    let half = estate.pass(at(12)).await;
    assert_eq!(
        state(&half, "app/prod"),
        State::Soaking { until: at(24) },
        "{half:#?}"
    );
    assert_eq!(
        estate.tag("envs", "prod", "web/kustomization.yaml"),
        "1.1.0"
    );

    let soaked = estate.pass(at(25)).await;
    assert!(!soaked.failed(), "{soaked:#?}");
    assert_eq!(
        estate.tag("platform", "main", "apps/app/prod/kustomization.yaml"),
        "1.1.0"
    );
    let log = git(
        &estate.base.path().join("platform.git"),
        &["log", "-1", "--format=%B", "main"],
    );
    assert!(log.contains("promote(prod): app 1.0.0 -> 1.1.0"), "{log}");
}

/// A repository that cannot be reached fails the environments writing there — and those
/// taking their tags from them — with the git error's class; every other repository's
/// bumps land in the same pass.
#[tokio::test(flavor = "multi_thread")]
async fn an_unreachable_repository_fails_only_the_environments_that_need_it() {
    let estate = Estate::new().await;
    estate.rules(&format!("git://127.0.0.1:{}/platform.git", free_port()));

    let report = estate.pass(at(0)).await;
    assert_eq!(
        estate.tag("app", "main", "deploy/dev/kustomization.yaml"),
        "1.1.0"
    );
    assert_eq!(
        estate.tag("envs", "staging", "web/kustomization.yaml"),
        "1.1.0"
    );
    match state(&report, "app/prod") {
        State::Failing { class, error } => {
            assert_eq!(class, "network", "{error}");
            assert!(error.contains("platform.git"), "{error}");
        }
        other => panic!("app/prod should fail, not {other:?}"),
    }
    // Its PromotionFailed alert names the repository, for routing to whoever owns it.
    let rules = tagpromoter::rules::load_dir(estate.rules.path()).unwrap();
    let memory = tagpromoter::alert::state::Memory::default();
    let firing = tagpromoter::alert::rules::firing(&tagpromoter::alert::rules::Context {
        report: &report,
        memory: &memory,
        settings: &rules.settings,
        now: report.now,
    });
    let failed: Vec<_> = firing
        .iter()
        .map(|a| {
            (
                a.name.as_str(),
                a.promotion.as_str(),
                a.environment.as_str(),
                a.repository.as_str(),
            )
        })
        .collect();
    assert_eq!(failed, [("PromotionFailed", "app", "prod", "default")]);
    for fine in ["app/dev", "web/staging", "web/prod"] {
        assert!(
            !matches!(state(&report, fine), State::Failing { .. }),
            "{fine}: {:?}",
            state(&report, fine)
        );
    }
}

/// `check --repo` fetches every repository and branch the rules write to and looks for each
/// target there: all found, it names every place; a target missing from one branch is
/// reported against its environment, with the place it was looked for.
#[tokio::test(flavor = "multi_thread")]
async fn check_repo_looks_for_each_target_where_its_environment_writes() {
    let estate = Estate::new().await;
    estate.rules(&format!("{}platform.git", estate.daemon.url));
    let cache = tempfile::tempdir().unwrap();
    let check = || {
        let mut cmd = assert_cmd::Command::cargo_bin("tagpromoter").unwrap();
        cmd.env_remove("TAGPROMOTER_RULES")
            .arg("--rules")
            .arg(estate.rules.path())
            .arg("--cache-dir")
            .arg(cache.path())
            .args(["check", "--repo"]);
        cmd.output().unwrap()
    };
    let out = check();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    for place in [
        "app.git (main)",
        "platform.git (main)",
        "envs.git (staging)",
        "envs.git (prod)",
    ] {
        assert!(stdout.contains(place), "{place} in {stdout}");
    }

    // The prod branch loses web's file: only web/prod says so.
    let envs = estate.base.path().join("envs.git");
    let work = tempfile::tempdir().unwrap();
    git(
        work.path(),
        &["clone", "-q", "-b", "prod", envs.to_str().unwrap(), "."],
    );
    git(work.path(), &["rm", "-q", "web/kustomization.yaml"]);
    git(work.path(), &["commit", "-q", "-m", "move web"]);
    git(work.path(), &["push", "-q", "origin", "prod"]);
    let out = check();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(2), "{stdout}");
    assert!(
        stdout.contains("web/prod: target web/kustomization.yaml: does not exist in"),
        "{stdout}"
    );
    assert!(stdout.contains("envs.git (prod)"), "{stdout}");
    assert!(!stdout.contains("web/staging"), "{stdout}");
}

/// A forge's push to one repository asks for a pass over the promotions writing there, and
/// no others: the worker (in process, with its server) moves app's dev, in the app team's
/// repository, to a tag pushed since the last pass, and leaves web — whose new tag waits
/// in the same registry — for the next interval.
#[tokio::test(flavor = "multi_thread")]
async fn a_forge_push_to_one_repository_passes_over_its_promotions_only() {
    let estate = Estate::new().await;
    let secret_file = estate.secrets.path().join("gitlab");
    std::fs::write(&secret_file, "gitlab-s3cret\n").unwrap();
    estate.rules_with(
        &format!("{}platform.git", estate.daemon.url),
        &format!(
            "  interval: 1h\n  receivers: [{{ type: gitlab, secretFile: '{}' }}]\n",
            secret_file.display()
        ),
    );
    let worker = InProcessWorker::start(estate.rules.path()).await;
    let base = worker.base.clone();
    let dev = || estate.tag("app", "main", "deploy/dev/kustomization.yaml");
    let staging = || estate.tag("envs", "staging", "web/kustomization.yaml");
    let deadline = || tokio::time::Instant::now() + std::time::Duration::from_secs(30);
    // The first (full) pass.
    let by = deadline();
    while dev() != "1.1.0" || staging() != "1.1.0" {
        assert!(
            tokio::time::Instant::now() < by,
            "the first pass never landed"
        );
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }

    let pusher = Pusher::new(&estate.registry.addr);
    for image in ["acme/app", "acme/web"] {
        pusher
            .image(image, Some("1.2.0"), INITIAL, "linux", "amd64")
            .await;
    }
    let answer = reqwest::Client::new()
        .post(format!("{base}/webhooks/gitlab"))
        .header("X-Gitlab-Event", "Push Hook")
        .header("X-Gitlab-Token", "gitlab-s3cret")
        .body(
            serde_json::json!({"object_kind": "push", "ref": "refs/heads/main", "project": {"path_with_namespace": "app"}})
                .to_string(),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(answer.status().as_u16(), 202);
    let by = deadline();
    while dev() != "1.2.0" {
        assert!(tokio::time::Instant::now() < by, "dev never moved");
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    // The pass that moved dev covered app only: web's staging waits for the interval.
    assert_eq!(staging(), "1.1.0");
    let (last, _) = worker.shared.last().unwrap();
    let status: serde_json::Value =
        serde_json::from_str(&tagpromoter::view::json(&last, None)).unwrap();
    let web = status["environments"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["promotion"] == "web" && e["environment"] == "staging")
        .unwrap()
        .clone();
    assert_eq!(web["current"], "1.1.0", "{web}");
    worker.stop().await;
}

/// A record counts only for the environment it was written for — its repository and
/// branch too (issue 28): prod is held after an incident rollback; staging, on its own
/// branch, is held and then released with `tagpromoter release`; a person merges staging's
/// branch into prod's (the file holds the same value on both). Staging's release arrives
/// with the merge, and prod stays held.
#[tokio::test(flavor = "multi_thread")]
async fn a_release_merged_from_another_environments_branch_releases_nothing() {
    staging_release_reaches_prod("merge").await;
}

/// The same, the release cherry-picked onto prod's branch: a plain commit, which a worker's
/// kept read grows by rather than reading whole — it must weigh whose the record is too.
#[tokio::test(flavor = "multi_thread")]
async fn a_release_cherry_picked_from_another_environments_branch_releases_nothing() {
    staging_release_reaches_prod("cherry-pick").await;
}

/// Prod held, staging held and released on its own branch; staging's release reaches prod's
/// branch `how` (`merge` or `cherry-pick`): prod stays held, warm and fresh alike.
async fn staging_release_reaches_prod(how: &str) {
    use tagpromoter::engine::manual::PromoteRequest;
    let estate = Estate::new().await;
    // web alone, each branch deciding for itself (no `from`): prod is kept only by its hold.
    std::fs::write(
        estate.rules.path().join("rules.yaml"),
        format!(
            "apiVersion: tagpromoter.io/v1alpha1\nkind: Settings\nspec:\n  git: {{ url: '{http}envs.git', auth: {{ username: bot, passwordFile: '{secrets}/password' }} }}\n  registries: [{{ host: '{r}', insecure: true }}]\n---\napiVersion: tagpromoter.io/v1alpha1\nkind: Promotion\nmetadata: {{ name: web }}\nspec:\n  image: {r}/acme/web\n  environments:\n    - {{ name: staging, branch: staging, policy: {{ semver: '^1.0.0' }}, target: {{ kustomize: {{ file: web/kustomization.yaml }} }} }}\n    - {{ name: prod, branch: prod, policy: {{ semver: '^1.0.0' }}, target: {{ kustomize: {{ file: web/kustomization.yaml }} }} }}\n",
            http = estate.http.url,
            secrets = estate.secrets.path().display(),
            r = estate.registry.addr,
        ),
    )
    .unwrap();
    estate.pass(at(0)).await;
    for branch in ["staging", "prod"] {
        assert_eq!(
            estate.tag("envs", branch, "web/kustomization.yaml"),
            "1.1.0"
        );
    }
    let cache = tempfile::tempdir().unwrap();
    let engine = tagpromoter::engine::Engine::open(
        tagpromoter::rules::load_dir(estate.rules.path()).unwrap(),
        cache.path(),
        tagpromoter::engine::Options::default(),
    )
    .await
    .unwrap();
    let rollback = |environment: &str, reason: &str| PromoteRequest {
        promotion: "web".into(),
        environment: environment.into(),
        tag: Some(tagpromoter::image::Tag::new("1.0.0").unwrap()),
        reason: Some(reason.into()),
        force: false,
        hold_for: None,
        actor: "alice".into(),
    };
    engine
        .promote(&rollback("prod", "INC-1: 1.1.0 corrupts data"), at(2))
        .await
        .unwrap();
    engine
        .promote(&rollback("staging", "a test"), at(2))
        .await
        .unwrap();
    engine
        .release("web", "staging", "bob", None, at(3))
        .await
        .unwrap();
    // A person merges staging into prod.
    let work = tempfile::tempdir().unwrap();
    let bare = estate.base.path().join("envs.git");
    git(work.path(), &["clone", "-q", bare.to_str().unwrap(), "w"]);
    let w = work.path().join("w");
    git(&w, &["checkout", "-q", "prod"]);
    let person = [
        "-c",
        "user.name=A Person",
        "-c",
        "user.email=person@example.com",
    ];
    match how {
        "merge" => git(
            &w,
            &[
                &person[..],
                &[
                    "merge",
                    "-q",
                    "--no-ff",
                    "-m",
                    "Merge staging",
                    "origin/staging",
                ],
            ]
            .concat(),
        ),
        _ => git(
            &w,
            &[
                &person[..],
                &["cherry-pick", "--allow-empty", "origin/staging"],
            ]
            .concat(),
        ),
    };
    git(&w, &["push", "-q", "origin", "prod"]);
    let warm = engine.pass(at(5)).await;
    let fresh = estate.pass(at(5)).await;
    for report in [&warm, &fresh] {
        assert!(
            matches!(state(report, "web/prod"), State::Held(_)),
            "{how}: {:?}",
            state(report, "web/prod")
        );
    }
    assert_eq!(
        estate.tag("envs", "prod", "web/kustomization.yaml"),
        "1.0.0"
    );
}

/// A person's change in `bare`'s `branch`: `file` set to `tag`, committed as dated `date`
/// (whatever date its writer chose), pushed.
fn person_sets(bare: &std::path::Path, branch: &str, file: &str, tag: &str, date: Timestamp) {
    let work = tempfile::tempdir().unwrap();
    git(
        work.path(),
        &["clone", "-q", "-b", branch, bare.to_str().unwrap(), "."],
    );
    let path = work.path().join(file);
    let text = std::fs::read_to_string(&path).unwrap();
    let line = text.lines().find(|l| l.contains("newTag:")).unwrap();
    let text = text.replace(line, &format!("    newTag: {tag}"));
    std::fs::write(&path, text).unwrap();
    git(work.path(), &["add", "."]);
    crate::support::git::commit_at(
        work.path(),
        &["-m", &format!("set {tag}")],
        Some(&date.to_string()),
    );
    git(work.path(), &["push", "-q", "origin", branch]);
}

/// No clock an upstream writer sets may shorten a soak (issue 28): the app team, who can
/// push only to their own repository, sets dev to a new tag in a commit dated three days
/// back. Prod, in the platform repository, soaks from when the bot first saw it — not from
/// the date the team wrote — and that sighting is kept in the platform repository, where a
/// fresh cache finds it.
#[tokio::test(flavor = "multi_thread")]
async fn a_backdated_commit_in_another_repository_does_not_shorten_the_soak() {
    let estate = Estate::new().await;
    estate.rules(&format!("{}platform.git", estate.daemon.url));
    estate.pass(at(0)).await;
    estate.pass(at(25)).await;
    let prod = "apps/app/prod/kustomization.yaml";
    assert_eq!(estate.tag("platform", "main", prod), "1.1.0");

    // The team pushes 1.2.0 and writes it to dev themselves, dated three days ago.
    Pusher::new(&estate.registry.addr)
        .image("acme/app", Some("1.2.0"), INITIAL, "linux", "amd64")
        .await;
    let app = estate.base.path().join("app.git");
    person_sets(
        &app,
        "main",
        "deploy/dev/kustomization.yaml",
        "1.2.0",
        at(30) - SignedDuration::from_hours(72),
    );
    let seen = estate.pass(at(30)).await;
    assert_eq!(
        estate.tag("platform", "main", prod),
        "1.1.0",
        "not seconds after the tag was pushed"
    );
    assert_eq!(state(&seen, "app/prod"), State::Soaking { until: at(54) });
    let ledger = git(
        &estate.base.path().join("platform.git"),
        &["show", "refs/tagpromoter/sightings/main:sightings"],
    );
    assert!(
        ledger.contains(&format!("{} ", at(30)))
            && ledger.contains(" app-team@main:deploy/dev/kustomization.yaml#images[name=")
            && ledger.contains("] 1.2.0\n"),
        "{ledger}"
    );
    // A fresh cache, a day later: still soaking until the sighting's day is out.
    let later = estate.pass(at(50)).await;
    assert_eq!(state(&later, "app/prod"), State::Soaking { until: at(54) });
    estate.pass(at(55)).await;
    assert_eq!(estate.tag("platform", "main", prod), "1.2.0");
}

/// In one repository, a person's change written days ago on a branch and fast-forwarded
/// onto the environment's branch today soaks from today (issue 28): the commit's date
/// says when it was written, not when it reached the branch.
#[tokio::test(flavor = "multi_thread")]
async fn a_change_written_long_ago_and_fast_forwarded_today_soaks_from_today() {
    let estate = Estate::new().await;
    estate.rules(&format!("{}platform.git", estate.daemon.url));
    let envs = estate.base.path().join("envs.git");
    estate.pass(at(0)).await;
    estate.pass(at(1)).await;
    assert_eq!(
        estate.tag("envs", "prod", "web/kustomization.yaml"),
        "1.1.0"
    );
    Pusher::new(&estate.registry.addr)
        .image("acme/web", Some("1.2.0"), INITIAL, "linux", "amd64")
        .await;
    // Written on a side branch three days before, fast-forwarded onto staging now.
    git(&envs, &["branch", "feature", "staging"]);
    person_sets(
        &envs,
        "feature",
        "web/kustomization.yaml",
        "1.2.0",
        at(10) - SignedDuration::from_hours(72),
    );
    git(
        &envs,
        &["update-ref", "refs/heads/staging", "refs/heads/feature"],
    );
    // Web's prod takes staging's tags once they ran a day (the rules say no soak: give it one).
    let rules = estate.rules.path().join("rules.yaml");
    let text = std::fs::read_to_string(&rules).unwrap();
    std::fs::write(
        &rules,
        text.replace("from: staging, policy", "from: staging, soak: 24h, policy"),
    )
    .unwrap();
    let seen = estate.pass(at(10)).await;
    assert_eq!(
        estate.tag("envs", "prod", "web/kustomization.yaml"),
        "1.1.0"
    );
    assert_eq!(state(&seen, "web/prod"), State::Soaking { until: at(34) });
    estate.pass(at(35)).await;
    assert_eq!(
        estate.tag("envs", "prod", "web/kustomization.yaml"),
        "1.2.0"
    );
}

/// Install `script` as `hook` of the bare repository `bare`.
fn install_hook(bare: &std::path::Path, hook: &str, script: &str) {
    use std::os::unix::fs::PermissionsExt;
    let path = bare.join("hooks").join(hook);
    std::fs::write(&path, script).unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
}

/// Another worker (a shard) moves the platform's sightings ledger between this pass's
/// read and its write: the pass fetches the ledger again and adds its sightings to it, so
/// neither worker's are lost.
#[tokio::test(flavor = "multi_thread")]
async fn a_ledger_another_worker_moved_meanwhile_gets_this_passs_sightings_too() {
    let estate = Estate::new().await;
    estate.rules(&format!("{}platform.git", estate.daemon.url));
    estate.pass(at(0)).await;
    let platform = estate.base.path().join("platform.git");
    // When prod's bump lands, another worker writes the ledger first.
    install_hook(
        &platform,
        "post-receive",
        r#"#!/bin/sh
while read old new ref; do
  if [ "$ref" = refs/heads/main ] && [ ! -e moved ]; then
    touch moved
    parent=$(git rev-parse -q --verify refs/tagpromoter/sightings/main)
    text="$(git show refs/tagpromoter/sightings/main:sightings 2>/dev/null)
2026-11-20T09:00:00Z abcd1234 other/dev 9.9.9"
    blob=$(printf '%s\n' "$text" | git hash-object -w --stdin)
    tree=$(printf '100644 blob %s\tsightings\n' "$blob" | git mktree)
    commit=$(git -c user.name=w -c user.email=w@example.com commit-tree "$tree" ${parent:+-p "$parent"} -m "another worker")
    git update-ref refs/tagpromoter/sightings/main "$commit"
  fi
done
"#,
    );
    Pusher::new(&estate.registry.addr)
        .image("acme/app", Some("1.2.0"), INITIAL, "linux", "amd64")
        .await;
    // Prod takes 1.1.0 (a push to the platform's main: the hook runs) and dev 1.2.0, a
    // sighting for the platform's ledger.
    let report = estate.pass(at(25)).await;
    assert_eq!(
        estate.tag("platform", "main", "apps/app/prod/kustomization.yaml"),
        "1.1.0"
    );
    assert!(platform.join("moved").exists(), "the other worker wrote");
    let ledger = git(
        &platform,
        &["show", "refs/tagpromoter/sightings/main:sightings"],
    );
    assert!(ledger.contains(" other/dev 9.9.9"), "{ledger}");
    assert!(
        ledger.contains(&format!("{} ", at(25)))
            && ledger.contains(" app-team@main:deploy/dev/kustomization.yaml#images[name=")
            && ledger.contains("] 1.2.0\n"),
        "{ledger}"
    );
    let text = tagpromoter::view::plan_text(&report);
    assert!(!text.contains("cannot write refs/tagpromoter"), "{text}");
}

/// A remote that refuses the ledger's ref: the environments that soak there say so, with
/// what to do — their soaks cannot end while the bot cannot record what it sees, so one
/// waiting for a soak fails (class `sightings`: `PromotionFailed`).
#[tokio::test(flavor = "multi_thread")]
async fn a_ledger_the_remote_refuses_is_said_where_its_soaks_wait() {
    let estate = Estate::new().await;
    estate.rules(&format!("{}platform.git", estate.daemon.url));
    install_hook(
        &estate.base.path().join("platform.git"),
        "pre-receive",
        "#!/bin/sh\nwhile read old new ref; do\n  case \"$ref\" in refs/tagpromoter/*) echo \"only branches here\"; exit 1;; esac\ndone\n",
    );
    let report = estate.pass(at(0)).await;
    assert_eq!(
        estate.tag("app", "main", "deploy/dev/kustomization.yaml"),
        "1.1.0"
    );
    let text = tagpromoter::view::plan_text(&report);
    assert!(
        text.contains(
            "tagpromoter cannot write refs/tagpromoter/sightings/main to this repository"
        ) && text.contains("only branches here")
            && text.contains("until the bot may push refs/tagpromoter/sightings/main"),
        "{text}"
    );
    let status = tagpromoter::view::json(&report, None);
    assert!(
        status.contains("cannot write refs/tagpromoter/sightings/main"),
        "{status}"
    );
    // prod waits for a soak that cannot end: failing, which alerts.
    assert!(
        matches!(state(&report, "app/prod"), State::Failing { ref class, .. } if class == "sightings"),
        "{:?}",
        state(&report, "app/prod")
    );
}

/// A branch forced back to an older commit runs that commit's value again only from when
/// the bot sees it so (issue 28; found by the fresh-eyes review): dev ran 1.1.0 for an
/// hour, then 1.2.0 for a day; the app team forces dev's branch back to the 1.1.0 commit.
/// Prod must not take 1.1.0 as if it had run in dev all along.
#[tokio::test(flavor = "multi_thread")]
async fn a_branch_forced_back_to_an_old_commit_soaks_its_value_afresh() {
    let estate = Estate::new().await;
    estate.rules(&format!("{}platform.git", estate.daemon.url));
    let app = estate.base.path().join("app.git");
    estate.pass(at(0)).await;
    let old = git(&app, &["rev-parse", "main"]).trim().to_string();
    Pusher::new(&estate.registry.addr)
        .image("acme/app", Some("1.2.0"), INITIAL, "linux", "amd64")
        .await;
    estate.pass(at(1)).await;
    assert_eq!(
        estate.tag("app", "main", "deploy/dev/kustomization.yaml"),
        "1.2.0"
    );
    // The app's environments take 1.1.x only now (1.2.0 is withdrawn): dev stays where it
    // is forced to, and what it ran of 1.1.0 is what counts for prod.
    let rules = estate.rules.path().join("rules.yaml");
    let text = std::fs::read_to_string(&rules).unwrap();
    let (first, web) = text.split_once("metadata: { name: web }").unwrap();
    let first = first.replace("semver: '^1.0.0'", "semver: '~1.1.0'");
    std::fs::write(&rules, format!("{first}metadata: {{ name: web }}{web}")).unwrap();
    git(&app, &["update-ref", "refs/heads/main", &old]);
    let report = estate.pass(at(30)).await;
    assert_eq!(
        estate.tag("platform", "main", "apps/app/prod/kustomization.yaml"),
        "1.0.0",
        "1.1.0 ran an hour in dev, and again only from now"
    );
    assert_eq!(state(&report, "app/prod"), State::Soaking { until: at(54) });
}

/// Renaming a promotion or an environment changes nothing it means (README), soaks
/// included: the sightings are kept by where an environment writes, not by its names.
#[tokio::test(flavor = "multi_thread")]
async fn renaming_a_promotion_and_its_environments_keeps_their_soak() {
    let estate = Estate::new().await;
    estate.rules(&format!("{}platform.git", estate.daemon.url));
    estate.pass(at(0)).await;
    let rules = estate.rules.path().join("rules.yaml");
    let text = std::fs::read_to_string(&rules).unwrap();
    let renamed = text
        .replace("metadata: { name: app }", "metadata: { name: application }")
        .replace(
            "name: dev, repository: app-team",
            "name: development, repository: app-team",
        )
        .replace(
            "name: prod, from: dev,",
            "name: production, from: development,",
        );
    assert_ne!(renamed, text);
    std::fs::write(&rules, renamed).unwrap();
    let report = estate.pass(at(12)).await;
    assert_eq!(
        state(&report, "application/production"),
        State::Soaking { until: at(24) },
        "the soak that began before the rename goes on"
    );
}

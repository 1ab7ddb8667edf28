//! The product's promises (DESIGN.md, "Invariants every pass keeps") on ordinary histories,
//! end to end: the real `docker-registry`, a real bare repository (`file://`), the engine
//! as `once`, `promote` and `release` run it. Each test is one way the promises were
//! broken: a person's change undone, an automatic downgrade, a hold lost on a fresh cache
//! or a rename, an environment starved or blocked without a word.

use std::path::PathBuf;
use std::time::Duration;

use jiff::{SignedDuration, Timestamp};

use crate::support::git::{append_commits, bare_repo_at, commit_at, git};
use crate::support::oci::Pusher;
use crate::support::{Auth, DockerRegistry};
use tagpromoter::engine::manual::{ManualError, ManualOutcome, PromoteRequest};
use tagpromoter::engine::{Applied, Engine, Options, PassReport, State};
use tagpromoter::image::Tag;

const INITIAL: &str = "2026-11-01T00:00:00Z";

/// Hours after the initial commit.
fn at(hours: i64) -> Timestamp {
    INITIAL.parse::<Timestamp>().unwrap() + SignedDuration::from_hours(hours)
}

fn values(tag: &str) -> String {
    format!(
        "# prod values (the chart names the repository)\nimage:\n  tag: {tag} # pinned by tagpromoter\n  digest: \"\"\n"
    )
}

/// A registry, a GitOps repository with one values file per environment, and rules.
struct Scene {
    registry: DockerRegistry,
    _base: tempfile::TempDir,
    bare: PathBuf,
    rules: tempfile::TempDir,
}

impl Scene {
    /// `environments`: (name, the tag its file holds at first). `promotion`: the rules'
    /// environments list, with `{r}` for the registry's address.
    fn start(environments: &[(&str, &str)]) -> Self {
        let registry = DockerRegistry::start(Auth::None);
        let base = tempfile::tempdir().unwrap();
        let files: Vec<(String, String)> = environments
            .iter()
            .map(|(env, tag)| (format!("apps/app/{env}/values.yaml"), values(tag)))
            .collect();
        let refs: Vec<(&str, &str)> = files
            .iter()
            .map(|(p, t)| (p.as_str(), t.as_str()))
            .collect();
        let bare = bare_repo_at(base.path(), "gitops", &refs, Some(INITIAL));
        Self {
            registry,
            _base: base,
            bare,
            rules: tempfile::tempdir().unwrap(),
        }
    }

    /// Write the rules: settings, and one promotion `app` whose environments are
    /// `environments` (YAML list items, indented by four spaces; `{file:ENV}` is replaced
    /// by that environment's target).
    fn rules(&self, environments: &str) {
        let r = &self.registry.addr;
        std::fs::write(
            self.rules.path().join("settings.yaml"),
            format!(
                "apiVersion: tagpromoter.io/v1alpha1\nkind: Settings\nspec:\n  git:\n    url: file://{}\n    author: {{ name: tagpromoter, email: bot@example.com }}\n  registries:\n    - {{ host: '{r}', insecure: true }}\n",
                self.bare.display()
            ),
        )
        .unwrap();
        let envs = regex::Regex::new(r"\{file:(\w+)\}").unwrap().replace_all(
            environments,
            |c: &regex::Captures| {
                format!(
                    "{{ helm: {{ file: apps/app/{}/values.yaml, tag: image.tag }} }}",
                    &c[1]
                )
            },
        );
        std::fs::write(
            self.rules.path().join("app.yaml"),
            format!(
                "apiVersion: tagpromoter.io/v1alpha1\nkind: Promotion\nmetadata: {{ name: app }}\nspec:\n  image: {r}/acme/app\n  environments:\n{envs}"
            ),
        )
        .unwrap();
    }

    /// An engine with a cache of its own (a fresh one each time unless `cache` is given).
    async fn engine(&self, cache: &std::path::Path) -> Engine {
        let rules = tagpromoter::rules::load_dir(self.rules.path()).unwrap();
        Engine::open(
            rules,
            cache,
            Options {
                registry_deadline: Duration::from_secs(5),
                progress: None,
                // A worker's engine, pass after pass: histories kept between passes.
                keep_history: true,
            },
        )
        .await
        .unwrap()
    }

    fn pusher(&self) -> Pusher {
        Pusher::new(&self.registry.addr)
    }

    /// Push `tag` as a single amd64 image created at `created`.
    async fn push(&self, tag: &str, created: Timestamp) -> String {
        self.pusher()
            .image(
                "acme/app",
                Some(tag),
                &created.to_string(),
                "linux",
                "amd64",
            )
            .await
            .digest
    }

    fn tag_in(&self, env: &str) -> String {
        let text = git(
            &self.bare,
            &["show", &format!("main:apps/app/{env}/values.yaml")],
        );
        let line = text.lines().find(|l| l.contains("tag:")).unwrap();
        line.split_whitespace()
            .nth(1)
            .unwrap()
            .trim_matches('"')
            .to_string()
    }

    /// A person's commit setting `env`'s tag by hand, at `date`.
    fn by_hand(&self, env: &str, tag: &str, date: Timestamp) {
        self.commit_with(Some((env, tag)), &format!("{env}: {tag} by hand"), date);
    }

    /// A commit with `message`, setting an environment's tag or (`None`) changing nothing.
    fn commit_with(&self, set: Option<(&str, &str)>, message: &str, date: Timestamp) {
        let dir = tempfile::tempdir().unwrap();
        git(
            dir.path(),
            &["clone", "-q", self.bare.to_str().unwrap(), "w"],
        );
        let w = dir.path().join("w");
        if let Some((env, tag)) = set {
            std::fs::write(w.join(format!("apps/app/{env}/values.yaml")), values(tag)).unwrap();
        }
        commit(&w, &["--allow-empty", "-am", message], date);
        git(&w, &["push", "-q", "origin", "main"]);
    }

    /// `n` commits that touch nothing tagpromoter reads, one minute apart from `date`.
    fn unrelated_commits(&self, n: usize, date: Timestamp) {
        append_commits(&self.bare, n, date.as_second());
    }
}

fn commit(w: &std::path::Path, args: &[&str], date: Timestamp) {
    commit_at(w, args, Some(&date.to_string()));
}

fn env<'r>(report: &'r PassReport, name: &str) -> &'r tagpromoter::engine::EnvReport {
    report
        .environments
        .iter()
        .find(|e| e.decision.key.environment == name)
        .unwrap_or_else(|| panic!("no {name}"))
}

fn state(report: &PassReport, name: &str) -> State {
    env(report, name).state(report.now)
}

fn landed(report: &PassReport, name: &str) -> bool {
    matches!(env(report, name).applied, Applied::Landed { .. })
}

fn request(env: &str, tag: Option<&str>, force: bool, reason: Option<&str>) -> PromoteRequest {
    PromoteRequest {
        promotion: "app".into(),
        environment: env.into(),
        tag: tag.map(|t| Tag::new(t).unwrap()),
        reason: reason.map(str::to_string),
        force,
        hold_for: None,
        actor: "alice".into(),
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_forced_hotfix_outside_the_range_and_a_hand_set_newer_tag_are_never_undone() {
    let scene = Scene::start(&[("prod", "1.0.0")]);
    scene
        .rules("    - name: prod\n      policy: { semver: '^1.0.0' }\n      target: {file:prod}\n");
    for (tag, day) in [
        ("1.0.0", 0),
        ("1.1.0", 1),
        ("1.0.1-hotfix.1", 2),
        ("7.0.0", 3),
    ] {
        scene.push(tag, at(day * 24)).await;
    }
    let cache = tempfile::tempdir().unwrap();
    let engine = scene.engine(cache.path()).await;
    assert!(landed(&engine.pass(at(100)).await, "prod"));
    assert_eq!(scene.tag_in("prod"), "1.1.0");

    // The hotfix is outside ^1.0.0 (a prerelease) and below 1.1.0: a rollback, held.
    let out = engine
        .promote(
            &request("prod", Some("1.0.1-hotfix.1"), true, Some("INC-1")),
            at(101),
        )
        .await
        .unwrap();
    let ManualOutcome::Landed { record, .. } = out else {
        panic!("{out:?}")
    };
    assert!(record.hold.is_some(), "a forced rollback holds: {record:?}");
    let next = engine.pass(at(102)).await;
    assert!(!landed(&next, "prod"));
    assert!(
        matches!(state(&next, "prod"), State::Held(_)),
        "{:?}",
        state(&next, "prod")
    );
    assert_eq!(scene.tag_in("prod"), "1.0.1-hotfix.1");

    // Released, the bot moves on; then a person sets 7.0.0 (outside the range, above it).
    engine
        .release("app", "prod", "alice", None, at(103))
        .await
        .unwrap();
    assert!(landed(&engine.pass(at(104)).await, "prod"));
    assert_eq!(scene.tag_in("prod"), "1.1.0");
    scene.by_hand("prod", "7.0.0", at(105));
    for hour in [106, 130] {
        let p = engine.pass(at(hour)).await;
        assert!(!landed(&p, "prod"), "7.0.0 must not be moved back to 1.1.0");
        assert_eq!(
            state(&p, "prod"),
            State::Ahead {
                best: "1.1.0".into()
            },
            "not 'up to date': it runs what the policy does not accept"
        );
        // The table's BEST is never older than CURRENT.
        let table = tagpromoter::view::status_table(&p);
        let row = table
            .lines()
            .find(|l| l.contains(" prod "))
            .unwrap_or_default();
        let cells: Vec<&str> = row.split_whitespace().collect();
        assert_eq!(cells.get(2..4), Some(&["7.0.0", "7.0.0"][..]), "{table}");
    }
    assert_eq!(scene.tag_in("prod"), "7.0.0");
    // A person's `latest`, which semver cannot order, holds too.
    scene.by_hand("prod", "latest", at(131));
    let p = engine.pass(at(132)).await;
    assert!(
        matches!(state(&p, "prod"), State::Held(ref h) if h.by == "A Person"),
        "{:?}",
        state(&p, "prod")
    );
    assert_eq!(scene.tag_in("prod"), "latest");
}

#[tokio::test(flavor = "multi_thread")]
async fn promote_without_a_tag_never_rolls_back() {
    let scene = Scene::start(&[("prod", "1.0.0")]);
    scene
        .rules("    - name: prod\n      policy: { semver: '^1.0.0' }\n      target: {file:prod}\n");
    scene.push("1.0.0", at(0)).await;
    scene.push("1.1.0", at(1)).await;
    scene.push("1.2.0", at(2)).await;
    scene.by_hand("prod", "1.2.0", at(3));
    // 1.2.0 is withdrawn from the policy's reach: the best eligible is now below prod.
    scene.rules(
        "    - name: prod\n      policy: { semver: '>=1.0.0 <1.2.0' }\n      target: {file:prod}\n",
    );
    let cache = tempfile::tempdir().unwrap();
    let engine = scene.engine(cache.path()).await;
    let before = git(&scene.bare, &["rev-parse", "main"]);
    let got = engine
        .promote(&request("prod", None, false, None), at(4))
        .await;
    assert!(
        matches!(&got, Err(ManualError::Refused(why)) if why.contains("runs 1.2.0, and the best eligible tag 1.1.0 is not newer") && why.contains("--tag")),
        "{got:?}"
    );
    let forced = engine
        .promote(&request("prod", None, true, Some("x")), at(4))
        .await;
    assert!(matches!(forced, Err(ManualError::Refused(_))), "{forced:?}");
    assert_eq!(
        git(&scene.bare, &["rev-parse", "main"]),
        before,
        "nothing written"
    );
    assert_eq!(scene.tag_in("prod"), "1.2.0");
}

#[tokio::test(flavor = "multi_thread")]
async fn newest_build_holds_a_hand_rollback_and_never_downgrades_when_the_running_build_is_gone() {
    let scene = Scene::start(&[("dev", "main-a")]);
    scene.rules("    - name: dev\n      policy: { newestBuild: {} }\n      target: {file:dev}\n");
    scene.push("main-a", at(0)).await;
    scene.push("main-b", at(1)).await;
    let c = scene.push("main-c", at(2)).await;
    let cache = tempfile::tempdir().unwrap();
    let engine = scene.engine(cache.path()).await;
    assert!(landed(&engine.pass(at(10)).await, "dev"));
    assert_eq!(scene.tag_in("dev"), "main-c");

    // Back to main-b by hand: an older build, so it holds.
    scene.by_hand("dev", "main-b", at(11));
    let p = engine.pass(at(12)).await;
    assert!(
        matches!(state(&p, "dev"), State::Held(_)),
        "{:?}",
        state(&p, "dev")
    );
    assert_eq!(scene.tag_in("dev"), "main-b");
    engine
        .release("app", "dev", "alice", None, at(13))
        .await
        .unwrap();
    assert!(landed(&engine.pass(at(14)).await, "dev"));
    assert_eq!(scene.tag_in("dev"), "main-c");

    // The running build is deleted from the registry: nothing tells main-b is newer than
    // it, so dev stays, and says why as a failure.
    scene.pusher().delete("acme/app", &c).await;
    let p = engine.pass(at(15)).await;
    assert!(!landed(&p, "dev"));
    assert_eq!(scene.tag_in("dev"), "main-c");
    assert!(
        matches!(state(&p, "dev"), State::Failing { ref class, ref error } if class == "facts" && error.contains("main-c")),
        "{:?}",
        state(&p, "dev")
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_hold_deep_in_history_holds_on_a_fresh_cache_and_can_be_released_from_one() {
    let scene = Scene::start(&[("prod", "1.0.0")]);
    scene
        .rules("    - name: prod\n      policy: { semver: '^1.0.0' }\n      target: {file:prod}\n");
    scene.push("1.0.0", at(0)).await;
    scene.push("1.1.0", at(1)).await;
    scene.by_hand("prod", "1.1.0", at(2));
    scene.by_hand("prod", "1.0.0", at(3));
    // 700 commits since the hand-made rollback: past the first fetch's depth of 500.
    scene.unrelated_commits(700, at(4));
    let fresh = tempfile::tempdir().unwrap();
    let p = scene.engine(fresh.path()).await.pass(at(40)).await;
    assert!(!landed(&p, "prod"), "{:?}", state(&p, "prod"));
    assert!(
        matches!(state(&p, "prod"), State::Held(ref h) if h.since == at(3)),
        "{:?}",
        state(&p, "prod")
    );
    let fresh = tempfile::tempdir().unwrap();
    let released = scene
        .engine(fresh.path())
        .await
        .release("app", "prod", "alice", None, at(41))
        .await
        .unwrap();
    assert!(
        matches!(released, ManualOutcome::Landed { .. }),
        "{released:?}"
    );
    let fresh = tempfile::tempdir().unwrap();
    assert!(landed(
        &scene.engine(fresh.path()).await.pass(at(42)).await,
        "prod"
    ));
    assert_eq!(scene.tag_in("prod"), "1.1.0");
}

#[tokio::test(flavor = "multi_thread")]
async fn renaming_an_environment_keeps_its_released_hold_released() {
    let scene = Scene::start(&[("prod", "1.0.0")]);
    scene
        .rules("    - name: prod\n      policy: { semver: '^1.0.0' }\n      target: {file:prod}\n");
    scene.push("1.0.0", at(0)).await;
    scene.push("1.1.0", at(1)).await;
    let cache = tempfile::tempdir().unwrap();
    let engine = scene.engine(cache.path()).await;
    assert!(landed(&engine.pass(at(2)).await, "prod"));
    engine
        .promote(
            &request("prod", Some("1.0.0"), false, Some("incident")),
            at(3),
        )
        .await
        .unwrap();
    engine
        .release("app", "prod", "alice", None, at(4))
        .await
        .unwrap();
    let message = git(&scene.bare, &["log", "-1", "--format=%B", "main"]);
    assert!(
        message.contains("Tagpromoter-Target: apps/app/prod/values.yaml#image.tag"),
        "{message}"
    );
    // The release's subject says what it does (it moved no tag).
    assert!(
        message.starts_with("release(prod): app may move on from 1.0.0\n"),
        "{message}"
    );

    scene.rules(
        "    - name: production\n      policy: { semver: '^1.0.0' }\n      target: {file:prod}\n",
    );
    let p = scene.engine(cache.path()).await.pass(at(5)).await;
    assert!(landed(&p, "production"), "{:?}", state(&p, "production"));
    assert_eq!(scene.tag_in("prod"), "1.1.0");
}

/// Commits written before the `Tagpromoter-Target` trailer name only the promotion and
/// environment: a rollback's record is tied to the target by the change it made, and the
/// release under the same old names counts after a rename.
#[tokio::test(flavor = "multi_thread")]
async fn records_written_before_the_target_trailer_survive_a_rename() {
    let scene = Scene::start(&[("prod", "1.1.0")]);
    scene.push("1.0.0", at(0)).await;
    scene.push("1.1.0", at(0)).await;
    let image = format!("{}/acme/app", scene.registry.addr);
    let trailers = |extra: &str| {
        format!(
            "Tagpromoter-Promotion: app\nTagpromoter-Environment: prod\nTagpromoter-Image: {image}\nTagpromoter-From: 1.1.0\nTagpromoter-To: 1.0.0\nTagpromoter-Actor: alice (manual)\n{extra}"
        )
    };
    scene.commit_with(
        Some(("prod", "1.0.0")),
        &format!(
            "promote(prod): app 1.1.0 -> 1.0.0\n\n{}",
            trailers("Tagpromoter-Reason: incident\nTagpromoter-Hold: set\n")
        ),
        at(1),
    );
    scene.commit_with(
        None,
        &format!(
            "promote(prod): app 1.0.0 -> 1.0.0\n\n{}",
            trailers("Tagpromoter-Hold: released\n").replace("From: 1.1.0", "From: 1.0.0")
        ),
        at(2),
    );
    scene.rules(
        "    - name: production\n      policy: { semver: '^1.0.0' }\n      target: {file:prod}\n",
    );
    let cache = tempfile::tempdir().unwrap();
    let p = scene.engine(cache.path()).await.pass(at(3)).await;
    assert!(landed(&p, "production"), "{:?}", state(&p, "production"));
    assert_eq!(scene.tag_in("prod"), "1.1.0");
}

#[tokio::test(flavor = "multi_thread")]
async fn the_soaked_tag_is_found_behind_many_newer_ones() {
    let scene = Scene::start(&[("staging", "1.0.5"), ("prod", "1.0.0")]);
    scene.rules(
        "    - name: staging\n      policy: { semver: '^1.0.0' }\n      platforms: [linux/amd64]\n      target: {file:staging}\n    - name: prod\n      from: staging\n      soak: 24h\n      policy: { semver: '^1.0.0' }\n      platforms: [linux/amd64]\n      target: {file:prod}\n",
    );
    scene.push("1.0.0", at(0)).await;
    scene.push("1.0.5", at(0)).await;
    // A pass sees staging's 1.0.5 (the best tag yet; nothing soaked, nothing moves).
    let cache = tempfile::tempdir().unwrap();
    let engine = scene.engine(cache.path()).await;
    engine.pass(at(1)).await;
    // 40 newer tags staging never ran; staging itself is held by hand at 1.0.5.
    let body = scene.pusher().get_manifest("acme/app", "1.0.5").await;
    let newer: Vec<String> = (1..=40).map(|i| format!("1.{i}.0")).collect();
    scene
        .pusher()
        .retag(
            "acme/app",
            &newer,
            &body,
            "application/vnd.oci.image.manifest.v1+json",
        )
        .await;
    let p = engine.plan(at(48)).await.unwrap();
    let prod = p
        .decisions
        .iter()
        .find(|d| d.key.environment == "prod")
        .unwrap();
    assert_eq!(
        prod.promotes_to().map(Tag::as_str),
        Some("1.0.5"),
        "{:?}",
        prod.outcome
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn tags_outside_a_numerical_policy_are_not_candidates_and_say_why() {
    let scene = Scene::start(&[("dev", "100")]);
    scene.rules("    - name: dev\n      policy: { numerical: asc }\n      target: {file:dev}\n");
    for tag in ["100", "101", "latest"] {
        scene.push(tag, at(0)).await;
    }
    let cache = tempfile::tempdir().unwrap();
    let engine = scene.engine(cache.path()).await;
    let p = engine.pass(at(1)).await;
    assert!(landed(&p, "dev"), "{:?}", state(&p, "dev"));
    assert_eq!(scene.tag_in("dev"), "101");
    let text = tagpromoter::view::plan_text(&engine.preview(at(2)).await);
    assert!(
        text.contains("latest") && text.contains("not a number"),
        "{text}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_re_pushed_tag_does_not_reach_prod_with_a_digest_that_never_soaked() {
    let scene = Scene::start(&[("staging", "1.0.0"), ("prod", "1.0.0")]);
    scene.rules(
        "    - name: staging\n      policy: { semver: '^1.0.0' }\n      target: {file:staging}\n    - name: prod\n      from: staging\n      soak: 1h\n      pinDigest: true\n      policy: { semver: '^1.0.0' }\n      target: { helm: { file: apps/app/prod/values.yaml, tag: image.tag, digest: image.digest } }\n",
    );
    scene.push("1.0.0", at(0)).await;
    let soaked = scene.push("1.1.0", at(1)).await;
    let cache = tempfile::tempdir().unwrap();
    let engine = scene.engine(cache.path()).await;
    assert!(landed(&engine.pass(at(2)).await, "staging"));
    let message = git(&scene.bare, &["log", "-1", "--format=%B", "main"]);
    assert!(
        message.contains(&format!("Tagpromoter-Digest: {soaked}")),
        "{message}"
    );

    // 1.1.0 is pushed again: other bits under the same tag.
    let repushed = scene.push("1.1.0", at(3)).await;
    assert_ne!(soaked, repushed);
    let p = engine.pass(at(10)).await;
    assert!(!landed(&p, "prod"), "the new digest never ran in staging");
    assert_eq!(scene.tag_in("prod"), "1.0.0");
    let text = tagpromoter::view::plan_text(&p);
    assert!(
        text.contains(&format!("1.1.0: re-pushed since it soaked: staging ran {soaked}, the registry now has {repushed}")),
        "{text}"
    );
    assert!(
        text.contains(&format!("warning: 1.1.0 was re-pushed since it was written here: it ran as {soaked}, the registry now has {repushed}")),
        "{text}"
    );
    let board = tagpromoter::server::board::page_of(&p);
    assert!(
        board.contains("was re-pushed since it was written here"),
        "the board flags it"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_tag_upstream_was_rolled_back_from_does_not_flow_on() {
    let scene = Scene::start(&[("dev", "1.0.0"), ("staging", "1.0.0")]);
    scene.rules(
        "    - name: dev\n      policy: { semver: '^1.0.0' }\n      target: {file:dev}\n    - name: staging\n      from: dev\n      soak: 1h\n      policy: { semver: '^1.0.0' }\n      target: {file:staging}\n",
    );
    scene.push("1.0.0", at(0)).await;
    scene.push("1.1.0", at(0)).await;
    // dev ran 1.1.0 long enough (a pass saw it at 1:00); staging takes it. dev runs 1.2.0
    // for 2h, then is rolled back by hand to 1.1.0: 1.2.0 soaked, and still must not reach
    // staging.
    scene.by_hand("dev", "1.1.0", at(1));
    let cache = tempfile::tempdir().unwrap();
    let engine = scene.engine(cache.path()).await;
    engine.pass(at(1)).await;
    scene.push("1.2.0", at(0)).await;
    let p = engine.pass(at(3)).await;
    assert!(
        landed(&p, "dev") && landed(&p, "staging"),
        "{:?}",
        state(&p, "staging")
    );
    assert_eq!(
        (scene.tag_in("dev"), scene.tag_in("staging")),
        ("1.2.0".into(), "1.1.0".into())
    );
    scene.by_hand("dev", "1.1.0", at(5));
    let p = engine.pass(at(8)).await;
    assert!(!landed(&p, "staging"));
    assert_eq!(scene.tag_in("staging"), "1.1.0");
    let text = tagpromoter::view::plan_text(&p);
    assert!(
        text.contains("1.2.0: dev was rolled back from it and has not run it since"),
        "{text}"
    );
    // Once dev runs 1.2.0 again (released), and it soaks again, staging takes it.
    engine
        .release("app", "dev", "alice", None, at(9))
        .await
        .unwrap();
    assert!(landed(&engine.pass(at(10)).await, "dev"));
    assert!(
        !landed(&engine.pass(at(10)).await, "staging"),
        "not soaked again yet"
    );
    assert!(landed(&engine.pass(at(12)).await, "staging"));
    assert_eq!(scene.tag_in("staging"), "1.2.0");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_running_tag_gone_from_the_registry_is_flagged() {
    let scene = Scene::start(&[("prod", "1.0.0")]);
    scene
        .rules("    - name: prod\n      policy: { semver: '^1.0.0' }\n      target: {file:prod}\n");
    let gone = scene.push("1.0.0", at(0)).await;
    scene.pusher().delete("acme/app", &gone).await;
    let cache = tempfile::tempdir().unwrap();
    let engine = scene.engine(cache.path()).await;
    let report = engine.preview(at(1)).await;
    let table = tagpromoter::view::status_table(&report);
    assert!(
        table.contains("warning: 1.0.0, which it runs, is not in the registry"),
        "{table}"
    );
}

/// Rules that are reloaded bring their registry settings with them: a worker started with
/// the wrong credentials file (every listing fails) promotes once the rules name the right
/// one, without a restart (`run` reloads through `Engine::set_rules`).
#[tokio::test(flavor = "multi_thread")]
async fn reloaded_rules_bring_new_registry_credentials() {
    let registry = DockerRegistry::start(Auth::Htpasswd("alice", "s3cret-pass"));
    let pusher = Pusher::new(&registry.addr).basic("alice", "s3cret-pass");
    for tag in ["1.0.0", "1.1.0"] {
        pusher
            .image("acme/app", Some(tag), INITIAL, "linux", "amd64")
            .await;
    }
    let base = tempfile::tempdir().unwrap();
    let bare = bare_repo_at(
        base.path(),
        "gitops",
        &[("apps/app/prod/values.yaml", &values("1.0.0"))],
        Some(INITIAL),
    );
    let secrets = tempfile::tempdir().unwrap();
    std::fs::write(secrets.path().join("wrong"), "not-the-password\n").unwrap();
    std::fs::write(secrets.path().join("right"), "s3cret-pass\n").unwrap();
    let rules = tempfile::tempdir().unwrap();
    let r = &registry.addr;
    let write_rules = |file: &str| {
        std::fs::write(
            rules.path().join("settings.yaml"),
            format!(
                "apiVersion: tagpromoter.io/v1alpha1\nkind: Settings\nspec:\n  git:\n    url: file://{}\n    author: {{ name: tagpromoter, email: bot@example.com }}\n  registries:\n    - {{ host: '{r}', insecure: true, username: alice, passwordFile: {} }}\n",
                bare.display(),
                secrets.path().join(file).display()
            ),
        )
        .unwrap();
        std::fs::write(
            rules.path().join("app.yaml"),
            format!("apiVersion: tagpromoter.io/v1alpha1\nkind: Promotion\nmetadata: {{ name: app }}\nspec:\n  image: {r}/acme/app\n  environments:\n    - name: prod\n      policy: {{ semver: '^1.0.0' }}\n      target: {{ helm: {{ file: apps/app/prod/values.yaml, tag: image.tag }} }}\n"),
        )
        .unwrap();
        tagpromoter::rules::load_dir(rules.path()).unwrap()
    };
    let cache = tempfile::tempdir().unwrap();
    let mut engine = Engine::open(write_rules("wrong"), cache.path(), Options::default())
        .await
        .unwrap();
    let p = engine.pass(at(1)).await;
    assert!(
        matches!(state(&p, "prod"), State::Failing { ref class, .. } if class == "registry"),
        "{:?}",
        state(&p, "prod")
    );
    engine.set_rules(write_rules("right")).await.unwrap();
    let p = engine.pass(at(2)).await;
    assert!(landed(&p, "prod"), "{:?}", state(&p, "prod"));
}

/// An incident rollback is not break-glass: back to a tag this environment ran, with a
/// reason, goes in a freeze and whatever `from` says; a tag it never ran needs `--force`.
#[tokio::test(flavor = "multi_thread")]
async fn an_incident_rollback_to_a_tag_prod_ran_goes_in_a_freeze_without_force() {
    let scene = Scene::start(&[("staging", "1.1.0"), ("prod", "1.0.0")]);
    scene.rules(
        "    - name: staging\n      policy: { semver: '^1.0.0' }\n      target: {file:staging}\n    - name: prod\n      from: staging\n      soak: 1h\n      policy: { semver: '^1.0.0' }\n      target: {file:prod}\n",
    );
    for tag in ["1.0.0", "1.0.1", "1.1.0"] {
        scene.push(tag, at(0)).await;
    }
    let cache = tempfile::tempdir().unwrap();
    // The first pass sees staging's 1.1.0; an hour on, it soaked.
    scene.engine(cache.path()).await.pass(at(0)).await;
    assert!(landed(
        &scene.engine(cache.path()).await.pass(at(2)).await,
        "prod"
    ));
    assert_eq!(scene.tag_in("prod"), "1.1.0");
    // Now frozen all year.
    scene.rules(
        "    - name: staging\n      policy: { semver: '^1.0.0' }\n      target: {file:staging}\n    - name: prod\n      from: staging\n      soak: 1h\n      policy: { semver: '^1.0.0' }\n      freeze: [{ from: '2026-01-01T00:00:00', to: '2027-12-31T00:00:00', timeZone: UTC }]\n      target: {file:prod}\n",
    );
    let engine = scene.engine(cache.path()).await;
    let never_ran = engine
        .promote(&request("prod", Some("1.0.1"), false, Some("INC-7")), at(3))
        .await;
    assert!(
        matches!(&never_ran, Err(ManualError::Refused(why)) if why.contains("--force")),
        "{never_ran:?}"
    );
    let back = engine
        .promote(&request("prod", Some("1.0.0"), false, Some("INC-7")), at(3))
        .await
        .unwrap();
    assert!(
        matches!(&back, ManualOutcome::Landed { record, .. } if record.hold.is_some() && !record.forced),
        "{back:?}"
    );
    assert_eq!(scene.tag_in("prod"), "1.0.0");
}

/// A release made on a branch and merged (a merge commit, as a pull request lands) counts:
/// the first-parent walk also reads the records a merge brought in.
#[tokio::test(flavor = "multi_thread")]
async fn a_release_merged_from_a_branch_releases() {
    let scene = Scene::start(&[("prod", "1.1.0")]);
    scene
        .rules("    - name: prod\n      policy: { semver: '^1.0.0' }\n      target: {file:prod}\n");
    scene.push("1.0.0", at(0)).await;
    scene.push("1.1.0", at(0)).await;
    scene.by_hand("prod", "1.0.0", at(1));
    let cache = tempfile::tempdir().unwrap();
    let p = scene.engine(cache.path()).await.pass(at(2)).await;
    assert!(
        matches!(state(&p, "prod"), State::Held(_)),
        "{:?}",
        state(&p, "prod")
    );

    let image = format!("{}/acme/app", scene.registry.addr);
    let release = format!(
        "promote(prod): app 1.0.0 -> 1.0.0\n\nTagpromoter-Promotion: app\nTagpromoter-Environment: prod\nTagpromoter-Image: {image}\nTagpromoter-From: 1.0.0\nTagpromoter-To: 1.0.0\nTagpromoter-Actor: alice (manual)\nTagpromoter-Hold: released\nTagpromoter-Target: apps/app/prod/values.yaml#image.tag\n"
    );
    let dir = tempfile::tempdir().unwrap();
    git(
        dir.path(),
        &["clone", "-q", scene.bare.to_str().unwrap(), "w"],
    );
    let w = dir.path().join("w");
    git(&w, &["checkout", "-q", "-b", "release-prod"]);
    commit(&w, &["--allow-empty", "-m", &release], at(3));
    git(&w, &["checkout", "-q", "main"]);
    std::fs::write(w.join("README.md"), "meanwhile on main\n").unwrap();
    git(&w, &["add", "README.md"]);
    commit(&w, &["-m", "docs"], at(3));
    let out = std::process::Command::new("git")
        .current_dir(&w)
        .args([
            "-c",
            "user.name=A Person",
            "-c",
            "user.email=person@example.com",
        ])
        .args([
            "merge",
            "-q",
            "--no-ff",
            "-m",
            "Merge release-prod",
            "release-prod",
        ])
        .env("GIT_AUTHOR_DATE", at(4).to_string())
        .env("GIT_COMMITTER_DATE", at(4).to_string())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    git(&w, &["push", "-q", "origin", "main"]);

    let p = scene.engine(cache.path()).await.pass(at(5)).await;
    assert!(landed(&p, "prod"), "{:?}", state(&p, "prod"));
    assert_eq!(scene.tag_in("prod"), "1.1.0");
}

/// A history longer than a walk may read, with no reset in it, fails the environment
/// loudly (a hold cannot be ruled out) and says what to do; `release` is that: it records
/// where the history starts, and the next pass decides.
#[tokio::test(flavor = "multi_thread")]
async fn a_history_too_long_to_read_fails_loudly_until_released() {
    let scene = Scene::start(&[("prod", "1.0.0")]);
    scene
        .rules("    - name: prod\n      policy: { semver: '^1.0.0' }\n      target: {file:prod}\n");
    scene.push("1.0.0", at(0)).await;
    scene.push("1.1.0", at(0)).await;
    scene.unrelated_commits(tagpromoter::gitops::history::MAX_COMMITS + 10, at(1));
    let cache = tempfile::tempdir().unwrap();
    let engine = scene.engine(cache.path()).await;
    let p = engine.pass(at(400)).await;
    assert!(!landed(&p, "prod"));
    assert!(
        matches!(state(&p, "prod"), State::Failing { ref class, ref error } if class == "history" && error.contains("tagpromoter release")),
        "{:?}",
        state(&p, "prod")
    );
    let released = engine.release("app", "prod", "alice", None, at(401)).await;
    assert!(
        matches!(released, Ok(ManualOutcome::Landed { .. })),
        "{released:?}"
    );
    assert!(landed(&engine.pass(at(402)).await, "prod"));
    assert_eq!(scene.tag_in("prod"), "1.1.0");
}

/// Each environment's state on every surface of a report: `status`'s table (its STATE
/// column), `/status`'s JSON, the board's cell, and — for a report that wrote nothing —
/// `plan`'s text (one line each).
fn states_on_every_surface(report: &PassReport, planned: bool) -> Vec<(String, [String; 4])> {
    let table = tagpromoter::view::status_table(report);
    let json: serde_json::Value =
        serde_json::from_str(&tagpromoter::view::json(report, None)).unwrap();
    let board = tagpromoter::server::board::page_of(report);
    let plan = tagpromoter::view::plan_text(report);
    report
        .environments
        .iter()
        .enumerate()
        .map(|(i, e)| {
            let key = e.decision.key.to_string();
            let state = e.state(report.now);
            let name = state.name().to_string();
            let in_table = table
                .lines()
                .find(|l| l.split_whitespace().take(2).collect::<Vec<_>>().join("/") == key)
                .map(|l| l.contains(&state.to_string()))
                .unwrap_or(false);
            let env = &e.decision.key.environment;
            let in_board = board.contains(&format!("data-env=\"{env}\" data-state=\"{name}\""));
            let line = plan
                .lines()
                .find(|l| l.starts_with(&format!("{key}: ")))
                .unwrap_or_default();
            // plan says "up to date" only of what status calls up to date.
            let plan_agrees = !planned || line.contains("up to date at") == (name == "up-to-date");
            (
                key,
                [
                    name.clone(),
                    if in_table {
                        name.clone()
                    } else {
                        "table differs".into()
                    },
                    json["environments"][i]["state"]
                        .as_str()
                        .unwrap_or_default()
                        .to_string(),
                    if in_board && plan_agrees {
                        name.clone()
                    } else {
                        "board or plan differs".into()
                    },
                ],
            )
        })
        .collect()
}

/// `plan`, `status`, `/status` and the board agree, and show the state after the pass's own
/// bumps (issue 28): after every step a pass's report and a `plan` at the same moment name
/// the same state for every environment, on every surface; staging soaks (not "dev has
/// not run it") right after the pass that moved dev; a newer tag held back by a rollback
/// upstream is `waiting`, never `up-to-date`.
#[tokio::test(flavor = "multi_thread")]
async fn every_surface_names_the_same_state_after_the_passs_own_bumps() {
    let scene = Scene::start(&[("dev", "1.0.0"), ("staging", "1.0.0"), ("prod", "1.0.0")]);
    scene.rules(
        "    - name: dev\n      policy: { semver: '^1.0.0' }\n      target: {file:dev}\n    - name: staging\n      from: dev\n      soak: 1h\n      policy: { semver: '^1.0.0' }\n      target: {file:staging}\n    - name: prod\n      from: staging\n      soak: 1h\n      policy: { semver: '^1.0.0' }\n      target: {file:prod}\n",
    );
    scene.push("1.0.0", at(0)).await;
    scene.push("1.1.0", at(0)).await;
    let cache = tempfile::tempdir().unwrap();
    let engine = scene.engine(cache.path()).await;
    let mut covered = std::collections::BTreeMap::<String, usize>::new();
    let mut check = async |now: Timestamp, expect: &[(&str, &str)]| {
        let pass = engine.pass(now).await;
        let plan = scene
            .engine(tempfile::tempdir().unwrap().path())
            .await
            .preview(now)
            .await;
        let (after, planned) = (
            states_on_every_surface(&pass, false),
            states_on_every_surface(&plan, true),
        );
        for ((key, surfaces), (_, planned)) in after.iter().zip(&planned) {
            let name = &surfaces[0];
            assert!(
                surfaces.iter().all(|s| s == name),
                "{key} at {now}: {surfaces:?}"
            );
            assert_eq!(planned, surfaces, "{key} at {now}: plan after the pass");
            *covered.entry(name.clone()).or_default() += 1;
        }
        for (key, state) in expect {
            let got = &after.iter().find(|(k, _)| k == key).unwrap().1[0];
            assert_eq!(got, state, "{key} at {now}");
        }
    };
    // dev moves to 1.1.0: in the same report, staging soaks it.
    check(
        at(0),
        &[("app/dev", "up-to-date"), ("app/staging", "soaking")],
    )
    .await;
    check(
        at(2),
        &[("app/staging", "up-to-date"), ("app/prod", "soaking")],
    )
    .await;
    // A person rolls staging back from 1.1.0: it holds; prod's 1.1.0 waits — not up to date.
    scene.by_hand("staging", "1.0.0", at(2) + SignedDuration::from_mins(30));
    check(at(3), &[("app/staging", "held"), ("app/prod", "waiting")]).await;
    assert!(covered.len() >= 4, "{covered:?}");
}

//! The engine end to end, against the real `docker-registry` and real git repositories
//! (a `file://` remote, and `git daemon` where a hook is needed). The pass's clock is
//! passed in, so a day of soaking takes no time; every commit is stamped with it.

use std::path::PathBuf;
use std::time::Duration;

use jiff::{SignedDuration, Timestamp};

use crate::support::git::{
    GitDaemon, bare_repo_at, commit_at, git, person_pushes_first_once, protect_prod,
};
use crate::support::oci::Pusher;
use crate::support::{Auth, DockerRegistry, HungServer};
use tagpromoter::engine::manual::{ManualError, ManualOutcome, PromoteRequest};
use tagpromoter::engine::{Applied, Engine, Options, PassReport, State};
use tagpromoter::image::Tag;
use tagpromoter::view as render;

const T0: &str = "2026-11-20T10:00:00Z";
pub const INITIAL: &str = "2026-11-01T00:00:00Z";

fn at(hours: i64) -> Timestamp {
    T0.parse::<Timestamp>().unwrap() + SignedDuration::from_hours(hours)
}

pub fn kustomization(image: &str, tag: &str) -> String {
    format!(
        "# prod overlay\napiVersion: kustomize.config.k8s.io/v1beta1\nkind: Kustomization\nresources:\n  - ../base\nimages:\n  - name: {image}\n    newTag: {tag} # set by tagpromoter\n"
    )
}

fn values(tag: &str) -> String {
    format!(
        "# staging values\nimage:\n  repository: somewhere/podinfo\n  tag: \"{tag}\"  # keep quoted\nreplicas: 2\n"
    )
}

/// Push a two-platform index (amd64 and arm64) tagged `tag`, or an amd64-only one.
async fn push(p: &Pusher, repo: &str, tag: &str, created: &str, both: bool) {
    let amd = p.image(repo, None, created, "linux", "amd64").await;
    let mut children = vec![(amd, "linux", "amd64")];
    if both {
        let arm = p.image(repo, None, created, "linux", "arm64").await;
        children.push((arm, "linux", "arm64"));
    }
    p.index(repo, tag, &children).await;
}

pub struct Fleet {
    pub registry: DockerRegistry,
    _hung: HungServer,
    _base: tempfile::TempDir,
    pub bare: PathBuf,
    pub rules: tempfile::TempDir,
    pub cache: tempfile::TempDir,
}

impl Fleet {
    /// podinfo dev -> staging (1h, both platforms) -> prod (24h, both platforms, a freeze);
    /// billing (a plain manifest); broken (a target without the key); ghost (an image on a
    /// registry that never answers).
    pub async fn start() -> Self {
        let registry = DockerRegistry::start(Auth::None);
        let hung = HungServer::start();
        let r = &registry.addr;
        let pusher = Pusher::new(r);
        for (tag, day) in [("6.5.3", "01"), ("6.5.4", "05"), ("6.6.0-rc.1", "10")] {
            push(
                &pusher,
                "acme/podinfo",
                tag,
                &format!("2026-11-{day}T00:00:00Z"),
                true,
            )
            .await;
        }
        for (tag, day) in [("1.0.0", "01"), ("1.1.0", "18")] {
            pusher
                .image(
                    "acme/billing",
                    Some(tag),
                    &format!("2026-11-{day}T00:00:00Z"),
                    "linux",
                    "amd64",
                )
                .await;
        }
        pusher
            .image("acme/broken", Some("2.0.0"), INITIAL, "linux", "amd64")
            .await;
        let base = tempfile::tempdir().unwrap();
        let podinfo = format!("{r}/acme/podinfo");
        let files = [
            (
                "apps/podinfo/dev/kustomization.yaml".to_string(),
                kustomization(&podinfo, "6.5.3"),
            ),
            ("apps/podinfo/staging/values.yaml".into(), values("6.5.3")),
            (
                "apps/podinfo/prod/kustomization.yaml".into(),
                kustomization(&podinfo, "6.5.3"),
            ),
            (
                "apps/billing/deployment.yaml".into(),
                format!(
                    "apiVersion: apps/v1\nkind: Deployment\nspec:\n  template:\n    spec:\n      containers:\n        - name: billing\n          image: {r}/acme/billing:1.0.0\n"
                ),
            ),
            (
                "apps/broken/values.yaml".into(),
                "image:\n  repository: x\n".into(),
            ),
            (
                "apps/ghost/values.yaml".into(),
                "image:\n  tag: 0.1.0\n".into(),
            ),
        ];
        let refs: Vec<(&str, &str)> = files
            .iter()
            .map(|(p, t)| (p.as_str(), t.as_str()))
            .collect();
        let bare = bare_repo_at(base.path(), "fleet", &refs, Some(INITIAL));
        let rules = tempfile::tempdir().unwrap();
        let h = &hung.addr;
        std::fs::write(
            rules.path().join("settings.yaml"),
            format!(
                "apiVersion: tagpromoter.io/v1alpha1\nkind: Settings\nspec:\n  git:\n    url: file://{}\n    author: {{ name: tagpromoter, email: bot@example.com }}\n  registries:\n    - {{ host: '{r}', insecure: true }}\n    - {{ host: '{h}', insecure: true }}\n  interval: 2s\n",
                bare.display()
            ),
        )
        .unwrap();
        std::fs::write(
            rules.path().join("podinfo.yaml"),
            format!(
                r#"apiVersion: tagpromoter.io/v1alpha1
kind: Promotion
metadata: {{ name: podinfo }}
spec:
  image: {podinfo}
  environments:
    - name: dev
      policy: {{ semver: '>=6.0.0-0' }}
      target: {{ kustomize: {{ file: apps/podinfo/dev/kustomization.yaml }} }}
    - name: staging
      from: dev
      soak: 1h
      policy: {{ semver: '^6.0.0' }}
      platforms: [linux/amd64, linux/arm64]
      target: {{ helm: {{ file: apps/podinfo/staging/values.yaml, tag: image.tag, name: somewhere/podinfo }} }}
    - name: prod
      from: staging
      soak: 24h
      policy: {{ semver: '^6.0.0' }}
      platforms: [linux/amd64, linux/arm64]
      stallAfter: 2h
      freeze:
        - {{ from: '2026-11-21T12:00:00', to: '2026-11-21T15:00:00', timeZone: UTC }}
      target: {{ kustomize: {{ file: apps/podinfo/prod/kustomization.yaml }} }}
---
apiVersion: tagpromoter.io/v1alpha1
kind: Promotion
metadata: {{ name: billing }}
spec:
  image: {r}/acme/billing
  environments:
    - name: prod
      policy: {{ semver: '>=1.0.0' }}
      minAge: 1h
      target: {{ manifest: {{ file: apps/billing/deployment.yaml }} }}
---
apiVersion: tagpromoter.io/v1alpha1
kind: Promotion
metadata: {{ name: broken }}
spec:
  image: {r}/acme/broken
  environments:
    - name: dev
      policy: {{ semver: '>=1.0.0' }}
      target: {{ helm: {{ file: apps/broken/values.yaml, tag: image.tag }} }}
---
apiVersion: tagpromoter.io/v1alpha1
kind: Promotion
metadata: {{ name: ghost }}
spec:
  image: {h}/acme/ghost
  environments:
    - name: dev
      policy: {{ semver: '>=0.1.0' }}
      target: {{ helm: {{ file: apps/ghost/values.yaml, tag: image.tag }} }}
"#
            ),
        )
        .unwrap();
        Self {
            registry,
            _hung: hung,
            _base: base,
            bare,
            rules,
            cache: tempfile::tempdir().unwrap(),
        }
    }

    async fn engine(&self) -> Engine {
        let rules = tagpromoter::rules::load_dir(self.rules.path()).unwrap();
        Engine::open(
            rules,
            self.cache.path(),
            Options {
                registry_deadline: Duration::from_secs(3),
                progress: None,
                // A worker's engine, pass after pass: histories kept between passes.
                keep_history: true,
            },
        )
        .await
        .unwrap()
    }

    fn show(&self, path: &str) -> String {
        git(&self.bare, &["show", &format!("main:{path}")])
    }

    fn subjects(&self) -> Vec<String> {
        git(&self.bare, &["log", "--format=%s", "main"])
            .lines()
            .map(str::to_string)
            .collect()
    }

    /// A person's commit setting `path` to `text`, made at `date`.
    fn person_commits(&self, path: &str, text: &str, message: &str, date: Timestamp) {
        let dir = tempfile::tempdir().unwrap();
        git(
            dir.path(),
            &["clone", "-q", self.bare.to_str().unwrap(), "w"],
        );
        let w = dir.path().join("w");
        std::fs::write(w.join(path), text).unwrap();
        commit_at(&w, &["-am", message], Some(&date.to_string()));
        git(&w, &["push", "-q", "origin", "main"]);
    }
}

fn state(report: &PassReport, key: &str) -> State {
    env(report, key).state(report.now)
}

fn env<'r>(report: &'r PassReport, key: &str) -> &'r tagpromoter::engine::EnvReport {
    report
        .environments
        .iter()
        .find(|e| e.decision.key.to_string() == key)
        .unwrap_or_else(|| panic!("no {key}"))
}

fn landed(report: &PassReport, key: &str) -> bool {
    matches!(env(report, key).applied, Applied::Landed { .. })
}

/// Redact the registry ports, which change from run to run.
fn redact(text: &str, fleet: &Fleet) -> String {
    text.replace(&fleet.registry.addr, "REGISTRY")
        .replace(&fleet._hung.addr, "HUNG")
}

/// The board's table for `report`, one element per line, with the registry ports and the
/// commit ids (their trees hold the ports) redacted.
fn board(report: &PassReport, fleet: &Fleet) -> String {
    let page = tagpromoter::server::board::page_of(report);
    let start = page.find("<main id=\"board\">").unwrap();
    let end = page.find("</main>").unwrap();
    let ids = regex::Regex::new(r"<code>[0-9a-f]{7}</code>").unwrap();
    let main = ids.replace_all(&page[start..end], "<code>COMMIT</code>");
    redact(&main, fleet).replace("><", ">\n<")
}

#[tokio::test(flavor = "multi_thread")]
async fn a_fleet_moves_through_dev_staging_and_prod_as_the_rules_say() {
    let fleet = Fleet::start().await;
    let engine = fleet.engine().await;
    let podinfo = format!("{}/acme/podinfo", fleet.registry.addr);

    // T0: dev takes the prerelease its range allows; staging's range does not allow it.
    // billing moves; the broken target and the hung registry fail alone, within the deadline.
    let started = std::time::Instant::now();
    let p1 = engine.pass(at(0)).await;
    assert!(
        started.elapsed() < Duration::from_secs(20),
        "{:?}",
        started.elapsed()
    );
    assert!(landed(&p1, "podinfo/dev"));
    assert!(landed(&p1, "billing/prod"));
    // Not up to date: 6.5.4 suits staging, and it waits for dev to run it.
    assert_eq!(
        state(&p1, "podinfo/staging"),
        State::Waiting {
            tag: "6.5.4".into()
        }
    );
    assert!(
        matches!(state(&p1, "broken/dev"), State::Failing { ref class, .. } if class == "target")
    );
    assert!(
        matches!(state(&p1, "ghost/dev"), State::Failing { ref class, .. } if class == "registry")
    );
    assert!(p1.failed());
    assert_eq!(
        fleet.show("apps/podinfo/dev/kustomization.yaml"),
        kustomization(&podinfo, "6.6.0-rc.1")
    );
    insta::assert_snapshot!(
        "fleet_status_t0",
        redact(&render::status_table(&p1), &fleet)
    );

    // A pass right after changes nothing and lists each image once.
    let commits = fleet.subjects().len();
    let p2 = engine.pass(at(0)).await;
    assert_eq!(p2.landed(), 0);
    assert_eq!(fleet.subjects().len(), commits, "a re-run is a no-op");
    let podinfo_and_billing_requests = p2.registry_requests;
    assert!(
        (3..=8).contains(&podinfo_and_billing_requests),
        "tag lists (3 images, the hung one retried) and the facts the platform gates need: {podinfo_and_billing_requests}"
    );

    // 6.6.0 appears; dev takes it, staging after an hour in dev.
    let pusher = Pusher::new(&fleet.registry.addr);
    push(
        &pusher,
        "acme/podinfo",
        "6.6.0",
        "2026-11-19T00:00:00Z",
        true,
    )
    .await;
    let p3 = engine.pass(at(1)).await;
    assert!(landed(&p3, "podinfo/dev"));
    assert!(
        !landed(&p3, "podinfo/staging"),
        "6.6.0 has not soaked in dev yet"
    );
    let p4 = engine.pass(at(3)).await;
    assert!(landed(&p4, "podinfo/staging"));
    assert_eq!(
        fleet.show("apps/podinfo/staging/values.yaml"),
        values("6.6.0")
    );

    // 6.6.1 exists for amd64 only: dev takes it, staging and prod skip it.
    push(
        &pusher,
        "acme/podinfo",
        "6.6.1",
        "2026-11-20T00:00:00Z",
        false,
    )
    .await;
    let p5 = engine.pass(at(4)).await;
    assert!(landed(&p5, "podinfo/dev"));
    let p6 = engine.pass(at(6)).await;
    assert!(!landed(&p6, "podinfo/staging"));
    let waiting = render::view(env(&p6, "podinfo/staging"), p6.now).waiting;
    assert_eq!(waiting[0].tag, "6.6.1");
    assert_eq!(waiting[0].why, "lacks platforms linux/arm64");

    // prod: 6.6.0 soaks in staging for 24h from T0+3h; the freeze holds it until 15:00.
    let p7 = engine.pass(at(26)).await;
    assert!(
        matches!(state(&p7, "podinfo/prod"), State::Soaking { .. }),
        "{:?}",
        state(&p7, "podinfo/prod")
    );
    let p8 = engine.pass(at(28)).await;
    assert_eq!(
        state(&p8, "podinfo/prod"),
        State::Frozen {
            until: "2026-11-21T15:00:00Z".parse().unwrap()
        }
    );
    insta::assert_snapshot!("fleet_plan_frozen", redact(&render::plan_text(&p8), &fleet));
    insta::assert_snapshot!("fleet_board_frozen", board(&p8, &fleet));
    let p9 = engine.pass(at(29)).await;
    assert!(landed(&p9, "podinfo/prod"));
    assert_eq!(
        fleet.show("apps/podinfo/prod/kustomization.yaml"),
        kustomization(&podinfo, "6.6.0")
    );
    let trailers = git(&fleet.bare, &["log", "-1", "--format=%B", "main"]);
    assert!(
        trailers.contains(
            "Tagpromoter-From: 6.5.3\nTagpromoter-To: 6.6.0\nTagpromoter-Digest: sha256:"
        ),
        "{trailers}"
    );
    insta::assert_snapshot!(
        "fleet_status_after_prod",
        redact(&render::status_table(&p9), &fleet)
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn rollbacks_by_promote_and_by_hand_hold_until_released() {
    let fleet = Fleet::start().await;
    let engine = fleet.engine().await;
    let podinfo = format!("{}/acme/podinfo", fleet.registry.addr);
    let pusher = Pusher::new(&fleet.registry.addr);
    push(
        &pusher,
        "acme/podinfo",
        "6.6.0",
        "2026-11-19T00:00:00Z",
        true,
    )
    .await;
    engine.pass(at(0)).await; // dev 6.6.0
    engine.pass(at(2)).await; // staging 6.6.0
    let p = engine.pass(at(30)).await; // prod 6.6.0, after the freeze
    assert!(landed(&p, "podinfo/prod"));

    let request = |tag: Option<&str>, force: bool, reason: Option<&str>| PromoteRequest {
        promotion: "podinfo".into(),
        environment: "prod".into(),
        tag: tag.map(|t| Tag::new(t).unwrap()),
        reason: reason.map(str::to_string),
        force,
        hold_for: None,
        actor: "alice".into(),
    };
    // 6.5.4 never ran in staging: refused without --force, and --force needs a reason.
    let refused = engine
        .promote(&request(Some("6.5.4"), false, None), at(31))
        .await;
    assert!(
        matches!(refused, Err(ManualError::Refused(ref why)) if why.contains("staging has not run it")),
        "{refused:?}"
    );
    let refused = engine
        .promote(&request(Some("6.5.4"), true, None), at(31))
        .await;
    assert!(
        matches!(refused, Err(ManualError::Refused(ref why)) if why.contains("--reason")),
        "{refused:?}"
    );
    let refused = engine
        .promote(&request(Some("9.9.9"), true, Some("x")), at(31))
        .await;
    assert!(
        matches!(refused, Err(ManualError::Refused(ref why)) if why.contains("no tag 9.9.9")),
        "{refused:?}"
    );

    // A rollback to 6.5.3 (which soaked in staging long ago) holds prod.
    let done = engine
        .promote(&request(Some("6.5.3"), false, Some("incident 42")), at(31))
        .await
        .unwrap();
    assert!(matches!(done, ManualOutcome::Landed { .. }));
    let message = git(&fleet.bare, &["log", "-1", "--format=%B", "main"]);
    assert!(
        message.starts_with("promote(prod): podinfo 6.6.0 -> 6.5.3\n"),
        "{message}"
    );
    assert!(message.contains("Tagpromoter-Actor: alice (manual)\nTagpromoter-Reason: incident 42\nTagpromoter-Hold: set\n"), "{message}");
    let p = engine.pass(at(32)).await;
    let State::Held(hold) = state(&p, "podinfo/prod") else {
        panic!("{:?}", state(&p, "podinfo/prod"))
    };
    assert_eq!(
        (hold.by.as_str(), hold.reason.as_deref()),
        ("alice", Some("incident 42"))
    );
    assert_eq!(
        fleet.show("apps/podinfo/prod/kustomization.yaml"),
        kustomization(&podinfo, "6.5.3")
    );

    // A person rolls dev back by hand: the next passes leave it there.
    fleet.person_commits(
        "apps/podinfo/dev/kustomization.yaml",
        &kustomization(&podinfo, "6.5.4"),
        "rollback dev: bad build",
        at(33),
    );
    for hour in [34, 40] {
        let p = engine.pass(at(hour)).await;
        assert!(
            !landed(&p, "podinfo/dev"),
            "a pass undid a hand-made rollback"
        );
        assert!(matches!(state(&p, "podinfo/dev"), State::Held(ref h) if h.by == "A Person"));
    }
    let p41 = engine.pass(at(41)).await;
    insta::assert_snapshot!(
        "rollback_status",
        redact(&render::status_table(&p41), &fleet)
    );
    insta::assert_snapshot!("rollback_board", board(&p41, &fleet));

    // Released, both move on again.
    for env in ["prod", "dev"] {
        let r = engine
            .release("podinfo", env, "bob", Some("fixed".into()), at(42))
            .await
            .unwrap();
        assert!(matches!(r, ManualOutcome::Landed { .. }), "{r:?}");
    }
    assert_eq!(
        git(&fleet.bare, &["log", "-1", "--format=%B", "main"])
            .lines()
            .filter(|l| l.starts_with("Tagpromoter-Hold"))
            .collect::<Vec<_>>(),
        ["Tagpromoter-Hold: released"]
    );
    let p = engine.pass(at(43)).await;
    assert!(landed(&p, "podinfo/prod"));
    assert!(landed(&p, "podinfo/dev"));
    let again = engine
        .release("podinfo", "prod", "bob", None, at(44))
        .await
        .unwrap();
    assert!(matches!(again, ManualOutcome::Nothing(_)));

    // Break-glass: a forced promotion records its reason.
    let forced = engine
        .promote(
            &request(Some("6.5.4"), true, Some("hotfix for INC-7")),
            at(45),
        )
        .await
        .unwrap();
    assert!(matches!(forced, ManualOutcome::Landed { .. }));
    let message = git(&fleet.bare, &["log", "-1", "--format=%B", "main"]);
    assert!(
        message.contains("Tagpromoter-Reason: hotfix for INC-7\nTagpromoter-Forced: true\n"),
        "{message}"
    );
}

/// One pass at `now` over the rules in `rules` by a fresh engine on a fresh cache (as
/// every CronJob run starts).
pub async fn fresh_pass(
    rules: &std::path::Path,
    now: Timestamp,
) -> tagpromoter::engine::PassReport {
    let cache = tempfile::tempdir().unwrap();
    let rules = tagpromoter::rules::load_dir(rules).unwrap();
    let engine = Engine::open(rules, cache.path(), Options::default())
        .await
        .unwrap();
    engine.pass(now).await
}

/// A fresh cache asks the registry no more than a warm one for a `plan` that promotes, and
/// plans the same: the tag to write needs only its digest (one HEAD either way); its config
/// (creation time, labels, platforms) is read only where a gate, `newestBuild` or a pull
/// request needs it.
#[tokio::test(flavor = "multi_thread")]
async fn a_fresh_cache_asks_the_registry_no_more_than_a_warm_one() {
    let (registry, image) = app_registry().await;
    let base = tempfile::tempdir().unwrap();
    let bare = bare_repo_at(
        base.path(),
        "fresh",
        &[
            ("dev/kustomization.yaml", &kustomization(&image, "1.0.0")),
            (
                "staging/kustomization.yaml",
                &kustomization(&image, "1.0.0"),
            ),
        ],
        Some(INITIAL),
    );
    let rules_dir = tempfile::tempdir().unwrap();
    std::fs::write(
        rules_dir.path().join("rules.yaml"),
        format!(
            "apiVersion: tagpromoter.io/v1alpha1
kind: Settings
spec:
  git: {{ url: 'file://{bare}' }}
  registries: [{{ host: '{r}', insecure: true }}]
---
apiVersion: tagpromoter.io/v1alpha1
kind: Promotion
metadata: {{ name: app }}
spec:
  image: {image}
  environments:
    - {{ name: dev, policy: {{ semver: '^1.0.0' }}, target: {{ kustomize: {{ file: dev/kustomization.yaml }} }} }}
    - {{ name: staging, policy: {{ semver: '^1.0.0' }}, target: {{ kustomize: {{ file: staging/kustomization.yaml }} }} }}
",
            bare = bare.display(),
            r = registry.addr,
        ),
    )
    .unwrap();
    let rules = tagpromoter::rules::load_dir(rules_dir.path()).unwrap();
    let cache = tempfile::tempdir().unwrap();
    let mut plans = Vec::new();
    for _ in 0..2 {
        let engine = Engine::open(rules.clone(), cache.path(), Options::default())
            .await
            .unwrap();
        let report = engine.preview(at(0)).await;
        plans.push((render::plan_text(&report), report.registry_requests));
    }
    let [(fresh, fresh_requests), (warm, warm_requests)] = <[_; 2]>::try_from(plans).unwrap();
    assert_eq!(fresh, warm, "a fresh cache plans as a warm one");
    assert!(fresh.contains("promote 1.0.0 -> 1.1.0"), "{fresh}");
    assert_eq!(
        fresh_requests, warm_requests,
        "fresh: {fresh_requests} requests, warm: {warm_requests}"
    );
    // The tag list, and a HEAD for 1.1.0's digest (both environments write it).
    assert_eq!(warm_requests, 2, "{warm}");
}

/// A registry holding `acme/app` at 1.0.0 and 1.1.0; and the image's name.
pub async fn app_registry() -> (DockerRegistry, String) {
    let registry = DockerRegistry::start(Auth::None);
    let pusher = Pusher::new(&registry.addr);
    for tag in ["1.0.0", "1.1.0"] {
        pusher
            .image("acme/app", Some(tag), INITIAL, "linux", "amd64")
            .await;
    }
    let image = format!("{}/acme/app", registry.addr);
    (registry, image)
}

/// Three independent environments under a `pre-receive` hook that refuses `*/prod/*`; and a
/// person's rollback landing between our fetch and our push.
#[tokio::test(flavor = "multi_thread")]
async fn a_hook_rejecting_prod_lets_the_others_land_and_a_racing_person_wins() {
    let (registry, image) = app_registry().await;
    let r = &registry.addr;
    let base = tempfile::tempdir().unwrap();
    let files: Vec<(String, String)> = ["dev", "staging", "prod"]
        .iter()
        .map(|e| {
            (
                format!("apps/{e}/kustomization.yaml"),
                kustomization(&image, "1.0.0"),
            )
        })
        .collect();
    let refs: Vec<(&str, &str)> = files
        .iter()
        .map(|(p, t)| (p.as_str(), t.as_str()))
        .collect();
    let bare = bare_repo_at(base.path(), "hooked", &refs, Some(INITIAL));
    protect_prod(&bare);
    let daemon = GitDaemon::start(base.path());
    let rules = tempfile::tempdir().unwrap();
    let mut text = format!(
        "apiVersion: tagpromoter.io/v1alpha1\nkind: Settings\nspec:\n  git: {{ url: '{}hooked.git' }}\n  registries: [{{ host: '{r}', insecure: true }}]\n",
        daemon.url
    );
    for e in ["dev", "staging", "prod"] {
        text.push_str(&format!(
            "---\napiVersion: tagpromoter.io/v1alpha1\nkind: Promotion\nmetadata: {{ name: app-{e} }}\nspec:\n  image: {image}\n  environments:\n    - name: {e}\n      policy: {{ semver: '>=1.0.0' }}\n      target: {{ kustomize: {{ file: apps/{e}/kustomization.yaml }} }}\n"
        ));
    }
    std::fs::write(rules.path().join("rules.yaml"), text).unwrap();
    let cache = tempfile::tempdir().unwrap();
    let engine = Engine::open(
        tagpromoter::rules::load_dir(rules.path()).unwrap(),
        cache.path(),
        Options::default(),
    )
    .await
    .unwrap();
    let p = engine.pass(at(0)).await;
    assert!(landed(&p, "app-dev/dev"));
    assert!(landed(&p, "app-staging/staging"));
    let State::Failing { class, error } = state(&p, "app-prod/prod") else {
        panic!("{:?}", state(&p, "app-prod/prod"))
    };
    assert_eq!(class, "rejected");
    assert!(
        error.contains("prod is protected: open a pull request"),
        "{error}"
    );

    // The hook is replaced by a person who moves dev to 1.0.1 by hand just before our push.
    Pusher::new(r)
        .image("acme/app", Some("1.2.0"), INITIAL, "linux", "amd64")
        .await;
    std::fs::remove_file(bare.join("hooks/pre-receive")).unwrap();
    person_pushes_first_once(
        &bare,
        "apps/dev/kustomization.yaml",
        &kustomization(&image, "1.0.1"),
        "dev: pin 1.0.1 by hand",
    );
    let p = engine.pass(at(1)).await;
    assert!(
        matches!(env(&p, "app-dev/dev").applied, Applied::Superseded { found: Some(ref f) } if f == "1.0.1"),
        "{:?}",
        env(&p, "app-dev/dev").applied
    );
    assert!(landed(&p, "app-prod/prod"));
    let dev = git(&bare, &["show", "main:apps/dev/kustomization.yaml"]);
    assert_eq!(
        dev,
        kustomization(&image, "1.0.1"),
        "the person's change stays"
    );
}

/// `tagpromoter plan` writes nothing, prints the diff it would commit, and exits 1 when an
/// environment cannot be decided.
#[tokio::test(flavor = "multi_thread")]
async fn plan_writes_nothing() {
    let fleet = Fleet::start().await;
    let before = git(&fleet.bare, &["rev-parse", "main"]);
    let out = tagpromoter(&fleet, &["plan"]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{stdout}");
    assert!(
        stdout.contains(
            "--- a/apps/podinfo/dev/kustomization.yaml\n+++ b/apps/podinfo/dev/kustomization.yaml\n"
        ),
        "{stdout}"
    );
    assert!(stdout.contains("-    newTag: 6.5.3 # set by tagpromoter\n+    newTag: 6.6.0-rc.1 # set by tagpromoter\n"), "{stdout}");
    assert!(stdout.contains("broken/dev: error (target)"), "{stdout}");
    assert_eq!(
        git(&fleet.bare, &["rev-parse", "main"]),
        before,
        "plan wrote nothing"
    );
}

fn tagpromoter(fleet: &Fleet, args: &[&str]) -> std::process::Output {
    assert_cmd::Command::cargo_bin("tagpromoter")
        .unwrap()
        .arg("--rules")
        .arg(fleet.rules.path())
        .arg("--cache-dir")
        .arg(fleet.cache.path())
        .args(["--registry-timeout", "2s"])
        .args(args)
        .output()
        .unwrap()
}

fn run(fleet: &Fleet, args: &[&str]) -> (Option<i32>, String, String) {
    let out = tagpromoter(fleet, args);
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// `status`, `once`, `promote` and `release` as a person runs them: output and exit codes.
/// (The servers are other processes, so blocking on the binary here stalls nothing.)
#[tokio::test(flavor = "multi_thread")]
async fn the_commands_as_a_person_runs_them() {
    let fleet = Fleet::start().await;
    let (code, out, _) = run(&fleet, &["status", "--output", "json"]);
    assert_eq!(code, Some(0), "status exits 0 even when environments fail");
    let doc: serde_json::Value = serde_json::from_str(&out).unwrap();
    let dev = doc["environments"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["promotion"] == "podinfo" && e["environment"] == "dev")
        .unwrap();
    assert_eq!(dev["current"], "6.5.3");
    assert_eq!(dev["best"], "6.6.0-rc.1");
    assert_eq!(dev["decision"], "promote");

    let (code, out, _) = run(&fleet, &["once"]);
    assert_eq!(
        code,
        Some(1),
        "the broken target and the hung registry fail the run: {out}"
    );
    assert!(out.contains("podinfo/dev: 6.5.3 -> 6.6.0-rc.1 ("), "{out}");
    assert!(out.contains("broken/dev: failed (target)"), "{out}");
    assert!(out.contains("2 landed, 2 failed, 6 environments"), "{out}");
    let (_, out, _) = run(&fleet, &["once"]);
    assert!(
        out.contains("0 landed, 2 failed"),
        "a re-run is a no-op: {out}"
    );

    let (code, _, err) = run(
        &fleet,
        &["promote", "podinfo", "--env", "prod", "--tag", "6.5.4"],
    );
    assert_eq!(code, Some(2), "{err}");
    assert!(err.contains("refused: 6.5.4 is not eligible for podinfo/prod: staging has not run it; --force --reason TEXT bypasses"), "{err}");
    let (code, _, err) = run(
        &fleet,
        &[
            "promote", "podinfo", "--env", "prod", "--tag", "6.5.4", "--force",
        ],
    );
    assert_eq!(code, Some(2), "{err}");
    let (code, out, err) = run(
        &fleet,
        &[
            "promote",
            "podinfo",
            "--env",
            "prod",
            "--tag",
            "6.5.4",
            "--force",
            "--reason",
            "customer hotfix",
            "--actor",
            "carol",
        ],
    );
    assert_eq!(code, Some(0), "{err}");
    assert!(out.starts_with("podinfo/prod: 6.5.3 -> 6.5.4 ("), "{out}");
    let message = git(&fleet.bare, &["log", "-1", "--format=%B", "main"]);
    assert!(message.contains("Tagpromoter-Actor: carol (manual)\nTagpromoter-Reason: customer hotfix\nTagpromoter-Forced: true\n"), "{message}");
    let (code, out, _) = run(&fleet, &["release", "podinfo", "--env", "prod"]);
    assert_eq!(code, Some(0));
    assert!(
        out.contains("podinfo/prod is not held; nothing to do"),
        "{out}"
    );
    let (code, _, err) = run(&fleet, &["promote", "nope", "--env", "prod"]);
    assert_eq!(code, Some(2));
    assert!(
        err.contains(
            "no promotion \"nope\" in the rules; there are: podinfo, billing, broken, ghost"
        ),
        "{err}"
    );
}

/// `run`: passes every interval, keeps the last valid rules when they turn invalid, and
/// exits 0 on SIGTERM.
#[tokio::test(flavor = "multi_thread")]
async fn the_worker_keeps_going_on_bad_rules_and_stops_cleanly_on_sigterm() {
    let fleet = Fleet::start().await;
    let mut child = crate::support::Process::spawn(
        std::process::Command::new(assert_cmd::cargo::cargo_bin("tagpromoter"))
            .arg("--rules")
            .arg(fleet.rules.path())
            .arg("--cache-dir")
            .arg(fleet.cache.path())
            .args(["--registry-timeout", "2s", "--log-format", "json", "run"])
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::piped()),
    );
    let wait_for = |path: &str, text: &str| {
        for _ in 0..300 {
            if fleet.show(path).contains(text) {
                return;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        panic!("{path} never held {text}");
    };
    wait_for("apps/billing/deployment.yaml", "billing:1.1.0");
    std::fs::write(
        fleet.rules.path().join("zz-broken.yaml"),
        "kind: [unclosed\n",
    )
    .unwrap();
    Pusher::new(&fleet.registry.addr)
        .image(
            "acme/billing",
            Some("1.2.0"),
            "2026-11-19T00:00:00Z",
            "linux",
            "amd64",
        )
        .await;
    wait_for("apps/billing/deployment.yaml", "billing:1.2.0");
    crate::support::sigterm(&child);
    let mut log = String::new();
    std::io::Read::read_to_string(&mut child.stderr.take().unwrap(), &mut log).unwrap();
    let status = child.wait().unwrap();
    assert_eq!(status.code(), Some(0), "{log}");
    assert!(
        log.contains("the rules are invalid; the last valid rules stay in force"),
        "{log}"
    );
    assert!(log.contains("zz-broken.yaml"), "{log}");
}

/// A user trying tagpromoter on a laptop: the GitOps repository is a local path beside
/// the rules (`./deploys.git`), no git server anywhere.
#[tokio::test(flavor = "multi_thread")]
async fn a_local_path_is_a_gitops_repository() {
    let (registry, image) = app_registry().await;
    let r = &registry.addr;
    let rules = tempfile::tempdir().unwrap();
    let overlay = kustomization(&image, "1.0.0");
    let bare = bare_repo_at(
        rules.path(),
        "deploys",
        &[("apps/app/kustomization.yaml", overlay.as_str())],
        None,
    );
    std::fs::write(
        rules.path().join("rules.yaml"),
        format!(
            "apiVersion: tagpromoter.io/v1alpha1\nkind: Settings\nspec:\n  git: {{ url: ./deploys.git }}\n  registries: [{{ host: '{r}', insecure: true }}]\n---\napiVersion: tagpromoter.io/v1alpha1\nkind: Promotion\nmetadata: {{ name: app }}\nspec:\n  image: {image}\n  environments:\n    - {{ name: dev, policy: {{ semver: '>=1.0.0' }}, target: {{ kustomize: {{ file: apps/app/kustomization.yaml }} }} }}\n"
        ),
    )
    .unwrap();
    let cache = tempfile::tempdir().unwrap();
    // Run from elsewhere: the path is relative to the rules, not to the working directory.
    let out = assert_cmd::Command::cargo_bin("tagpromoter")
        .unwrap()
        .current_dir(cache.path())
        .arg("--rules")
        .arg(rules.path())
        .arg("--cache-dir")
        .arg(cache.path())
        .arg("once")
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("app/dev: 1.0.0 -> 1.1.0"), "{stdout}");
    assert_eq!(
        git(&bare, &["show", "main:apps/app/kustomization.yaml"]),
        kustomization(&image, "1.1.0")
    );
}

/// The README's first command: `examples/demo.sh` walks a tag dev -> staging -> prod on a
/// registry and a GitOps repository of its own, shows the commits and `status`, and leaves
/// nothing running.
#[test]
fn the_demo_walks_a_tag_to_prod_and_cleans_up() {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let out = std::process::Command::new(root.join("examples/demo.sh"))
        .env(
            "TAGPROMOTER_BIN",
            assert_cmd::cargo::cargo_bin("tagpromoter"),
        )
        .env_remove("TAGPROMOTER_RULES")
        .env_remove("TAGPROMOTER_CACHE_DIR")
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    for line in [
        "promote(dev): app 1.0.0 -> 1.2.0",
        "promote(staging): app 1.0.0 -> 1.2.0",
        "promote(prod): app 1.0.0 -> 1.2.0",
    ] {
        assert!(stdout.contains(line), "{line} missing:\n{stdout}");
    }
    assert!(
        stdout.contains("app        prod     1.2.0    1.2.0  up-to-date"),
        "{stdout}"
    );
    let left: Vec<String> = std::fs::read_dir("/proc")
        .unwrap()
        .flatten()
        .filter_map(|e| std::fs::read(e.path().join("cmdline")).ok())
        .map(|c| String::from_utf8_lossy(&c).replace('\0', " "))
        .filter(|c| c.contains("tagpromoter-demo"))
        .collect();
    assert!(left.is_empty(), "the demo left processes running: {left:?}");
}

/// At a terminal, `plan` shows a progress line while registries are listed and clears it;
/// with output to a pipe, or as JSON, there is none.
#[tokio::test(flavor = "multi_thread")]
async fn plan_shows_progress_only_at_a_terminal() {
    let fleet = Fleet::start().await;
    let bin = assert_cmd::cargo::cargo_bin("tagpromoter");
    let command = format!(
        "{} --rules {} --cache-dir {} --registry-timeout 2s plan",
        bin.display(),
        fleet.rules.path().display(),
        fleet.cache.path().display()
    );
    // `script` gives the command a terminal and copies what it wrote.
    let out = std::process::Command::new(crate::support::require("script"))
        .args(["-qec", &command, "/dev/null"])
        .output()
        .unwrap();
    let seen = String::from_utf8_lossy(&out.stdout);
    assert!(seen.contains("listing registries: 0/4 images"), "{seen}");
    assert!(seen.contains("\r\x1b[2K"), "the line is cleared: {seen:?}");
    assert!(seen.contains("podinfo/dev: promote"), "{seen}");
    for args in [vec!["plan"], vec!["plan", "--output", "json"]] {
        let out = tagpromoter(&fleet, &args);
        let all = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(!all.contains("listing registries"), "{args:?}: {all}");
    }
}

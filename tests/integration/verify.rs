//! Deploy verification end to end (issue 19): a real registry and a real bare repository,
//! and the STAND-IN Kubernetes API of `support::kube_api` (no kube-apiserver can run here)
//! serving the Argo CD Application that deploys dev. The engine in process, each pass from
//! a fresh cache, at chosen times.

use jiff::{SignedDuration, Timestamp};
use serde_json::json;

use crate::engine::{INITIAL, app_registry, kustomization};
use crate::support::DockerRegistry;
use crate::support::git::{bare_repo_at, git};
use crate::support::in_process::InProcessWorker;
use crate::support::kube_api::KubeApi;
use tagpromoter::engine::PassReport;

fn at(minutes: i64) -> Timestamp {
    "2026-11-20T10:00:00Z".parse::<Timestamp>().unwrap() + SignedDuration::from_mins(minutes)
}

/// The Application deploying dev, as Argo CD reports it: synced to `revision` with
/// `health`, deployed at `deployed_at`.
fn application(revision: &str, health: &str, deployed_at: Timestamp) -> serde_json::Value {
    json!({
        "apiVersion": "argoproj.io/v1alpha1",
        "kind": "Application",
        "metadata": { "name": "app-dev", "namespace": "argocd", "generation": 1 },
        "spec": {
            "project": "default",
            "source": { "repoURL": "https://git.example.com/gitops.git", "targetRevision": "main", "path": "deploy/dev" },
            "destination": { "server": "https://kubernetes.default.svc", "namespace": "app" }
        },
        "status": {
            "sync": { "status": "Synced", "revision": revision },
            "health": { "status": health },
            "operationState": { "phase": "Succeeded", "message": "successfully synced (all tasks run)", "startedAt": deployed_at.to_string(), "finishedAt": deployed_at.to_string(), "syncResult": { "revision": revision } },
            "history": [ { "id": 1, "revision": revision, "deployStartedAt": deployed_at.to_string(), "deployedAt": deployed_at.to_string() } ]
        }
    })
}

/// `application` listing `images` in `status.summary.images`, as Argo CD reports what the
/// deployed objects run.
fn running(mut application: serde_json::Value, images: &[String]) -> serde_json::Value {
    application["status"]["summary"] = json!({ "images": images });
    application
}

fn report_of<'r>(report: &'r PassReport, key: &str) -> &'r tagpromoter::engine::EnvReport {
    report
        .environments
        .iter()
        .find(|e| e.decision.key.to_string() == key)
        .unwrap_or_else(|| panic!("{key} is in the report"))
}

fn state(report: &PassReport, key: &str) -> &'static str {
    report_of(report, key).state(report.now).name()
}

/// The repository's first commit (what the Application ran before the bump).
fn first_of(world: &World) -> String {
    git(&world.bare, &["rev-list", "--max-parents=0", "main"])
        .trim()
        .to_string()
}

struct World {
    _registry: DockerRegistry,
    _base: tempfile::TempDir,
    bare: std::path::PathBuf,
    api: KubeApi,
    rules: tempfile::TempDir,
}

impl World {
    /// `acme/app` 1.0.0 and 1.1.0; dev and prod at 1.0.0; prod takes what dev ran for an
    /// hour; dev is deployed by the Application `app-dev`, which runs the first commit.
    async fn new() -> Self {
        Self::with("{ argocd: { application: app-dev }, cluster: dev }", true).await
    }

    /// [`World::new`] with dev's `verify:` written as `verify`; the worker may read the
    /// controllers' objects only when `granted`.
    async fn with(verify: &str, granted: bool) -> Self {
        let (registry, image) = app_registry().await;
        let base = tempfile::tempdir().unwrap();
        let bare = bare_repo_at(
            base.path(),
            "gitops",
            &[
                (
                    "deploy/dev/kustomization.yaml",
                    &kustomization(&image, "1.0.0"),
                ),
                (
                    "deploy/prod/kustomization.yaml",
                    &kustomization(&image, "1.0.0"),
                ),
            ],
            Some(INITIAL),
        );
        let api = KubeApi::start().await;
        if granted {
            api.grant("tagpromoter", "applications", "argocd");
            api.grant("tagpromoter", "kustomizations", "flux-system");
            api.grant("tagpromoter", "helmreleases", "flux-system");
        }
        let first = git(&bare, &["rev-parse", "main"]).trim().to_string();
        api.put("applications", application(&first, "Healthy", at(-600)));
        let (kubeconfig, _) = api.kubeconfig_with_token("tagpromoter");
        let rules = tempfile::tempdir().unwrap();
        std::fs::write(
            rules.path().join("rules.yaml"),
            format!(
                "apiVersion: tagpromoter.io/v1alpha1
kind: Settings
spec:
  git: {{ url: 'file://{bare}' }}
  registries: [{{ host: '{r}', insecure: true }}]
  clusters: [{{ name: dev, kubeconfig: '{kubeconfig}' }}]
---
apiVersion: tagpromoter.io/v1alpha1
kind: Promotion
metadata: {{ name: app }}
spec:
  image: {image}
  environments:
    - name: dev
      policy: {{ semver: '^1.0.0' }}
      target: {{ kustomize: {{ file: deploy/dev/kustomization.yaml }} }}
      verify: {verify}
    - {{ name: prod, from: dev, soak: 1h, policy: {{ semver: '^1.0.0' }}, target: {{ kustomize: {{ file: deploy/prod/kustomization.yaml }} }} }}
",
                bare = bare.display(),
                r = registry.addr,
                kubeconfig = kubeconfig.display(),
            ),
        )
        .unwrap();
        Self {
            _registry: registry,
            _base: base,
            bare,
            api,
            rules,
        }
    }

    /// Pass every `interval` (a worker's rules).
    fn set_interval(&self, interval: &str) {
        let file = self.rules.path().join("rules.yaml");
        let text = std::fs::read_to_string(&file).unwrap();
        let text = text.replacen(
            "  clusters:",
            &format!("  interval: {interval}\n  clusters:"),
            1,
        );
        std::fs::write(file, text).unwrap();
    }

    /// One pass at `now` by a fresh engine on a fresh cache.
    async fn pass(&self, now: Timestamp) -> PassReport {
        crate::engine::fresh_pass(self.rules.path(), now).await
    }

    /// An engine kept across passes (a worker's warm mirror and memory) on `cache`.
    async fn engine(&self, cache: &std::path::Path) -> tagpromoter::engine::Engine {
        tagpromoter::engine::Engine::open(
            tagpromoter::rules::load_dir(self.rules.path()).unwrap(),
            cache,
            tagpromoter::engine::Options::default(),
        )
        .await
        .unwrap()
    }

    /// The alerts that fire after `report`: `name promotion/environment class`.
    fn alerts(&self, report: &PassReport) -> Vec<String> {
        let rules = tagpromoter::rules::load_dir(self.rules.path()).unwrap();
        let memory = tagpromoter::alert::state::Memory::default();
        let cx = tagpromoter::alert::rules::Context {
            report,
            memory: &memory,
            settings: &rules.settings,
            now: report.now,
        };
        tagpromoter::alert::rules::firing(&cx)
            .iter()
            .map(|a| {
                format!(
                    "{} {}/{} {}",
                    a.name.as_str(),
                    a.promotion,
                    a.environment,
                    a.class.as_deref().unwrap_or("-")
                )
            })
            .collect()
    }

    fn tag(&self, env: &str) -> String {
        let text = git(
            &self.bare,
            &["show", &format!("main:deploy/{env}/kustomization.yaml")],
        );
        let line = text.lines().find(|l| l.contains("newTag:")).unwrap();
        line.split_whitespace().nth(1).unwrap().to_string()
    }
}

/// Prod's soak counts from when Argo CD reports dev's bump synced and healthy, not from
/// the bump's commit: while the Application runs the older commit, or runs the bump
/// unhealthy, the tag does not go on, however long ago the commit landed.
#[tokio::test(flavor = "multi_thread")]
async fn soak_counts_from_the_rollout_that_argo_cd_reports_not_from_the_commit() {
    let world = World::new().await;
    let report = world.pass(at(0)).await;
    assert_eq!(world.tag("dev"), "1.1.0");
    assert_eq!(state(&report, "app/dev"), "deploying");
    let bump = git(&world.bare, &["rev-parse", "main"]).trim().to_string();

    // Two hours after the commit, Argo CD has not synced it: dev does not run 1.1.0.
    let report = world.pass(at(120)).await;
    assert_eq!(world.tag("prod"), "1.0.0", "not deployed, so not soaked");
    let dev = report_of(&report, "app/dev");
    assert_eq!(dev.state(report.now).name(), "deploying");
    assert_eq!(
        report.figures().rollouts,
        [1, 0, 0, 0],
        "counted for tagpromoter_environments_not_deployed"
    );
    assert_eq!(
        world.alerts(&report),
        vec!["PromotionStalled app/dev not deployed".to_string()],
        "two hours past deployTimeout"
    );
    assert!(
        dev.state(report.now).to_string().contains(&format!(
            "the controller runs {}, not yet {}",
            &first_of(&world)[..12],
            &bump[..12]
        )),
        "{}",
        dev.state(report.now)
    );

    // Synced at 2:10, but the rollout is degraded at 2:20: still not running well.
    world
        .api
        .put("applications", application(&bump, "Degraded", at(130)));
    let report = world.pass(at(140)).await;
    assert_eq!(
        world.tag("prod"),
        "1.0.0",
        "an unhealthy rollout does not soak"
    );
    assert_eq!(state(&report, "app/dev"), "unhealthy");
    assert_eq!(report.figures().rollouts, [0, 1, 0, 0]);
    assert_eq!(
        world.alerts(&report),
        vec!["DeploymentUnhealthy app/dev unhealthy".to_string()]
    );

    // Healthy, deployed at 2:10 (an Argo CD that does not say when its health turned): the
    // soak ends an hour after the pass that saw it degraded, at 3:20, not at 1:00.
    world
        .api
        .put("applications", application(&bump, "Healthy", at(130)));
    let report = world.pass(at(180)).await;
    assert_eq!(world.tag("prod"), "1.0.0", "soaking since the rollout");
    assert_eq!(state(&report, "app/dev"), "up-to-date");
    assert_eq!(state(&report, "app/prod"), "soaking");

    // A person's later commit synced since: the Application runs a descendant of the bump.
    let work = tempfile::tempdir().unwrap();
    git(
        work.path(),
        &["clone", "-q", world.bare.to_str().unwrap(), "."],
    );
    std::fs::write(work.path().join("README.md"), "notes\n").unwrap();
    git(work.path(), &["add", "README.md"]);
    git(work.path(), &["commit", "-qm", "docs"]);
    git(work.path(), &["push", "-q", "origin", "main"]);
    let later = git(&world.bare, &["rev-parse", "main"]).trim().to_string();
    world
        .api
        .put("applications", application(&later, "Healthy", at(130)));
    world.pass(at(195)).await;
    assert_eq!(world.tag("prod"), "1.0.0", "seen degraded at 2:20");
    world.pass(at(201)).await;
    assert_eq!(world.tag("prod"), "1.1.0", "an hour after");
}

/// A worker that may not read the Application (no RBAC) cannot tell whether dev runs its
/// bump: dev says so, and the tag does not go on to prod, however long it waits.
#[tokio::test(flavor = "multi_thread")]
async fn a_forbidden_api_holds_the_tag_where_it_is_and_says_why() {
    let world = World::with("{ argocd: { application: app-dev }, cluster: dev }", false).await;
    world.pass(at(0)).await;
    assert_eq!(world.tag("dev"), "1.1.0");
    let report = world.pass(at(600)).await;
    assert_eq!(world.tag("prod"), "1.0.0", "unknown rollouts do not soak");
    let dev = report_of(&report, "app/dev").state(report.now);
    assert_eq!(dev.name(), "unknown");
    assert!(
        dev.to_string().contains("forbidden")
            && dev
                .to_string()
                .contains("grant get, list and watch on applications"),
        "{dev}"
    );
    assert_eq!(
        world.alerts(&report),
        vec!["PromotionStalled app/dev not deployed".to_string()]
    );
}

/// Flux: the Kustomization that applies dev's overlay, and the HelmRelease it changes,
/// must both be Ready with the bump; prod's soak starts when the later of the two did.
#[tokio::test(flavor = "multi_thread")]
async fn a_flux_kustomization_and_its_helm_release_verify() {
    let world = World::with(
        "{ flux: { kustomization: apps, helmRelease: app }, cluster: dev }",
        true,
    )
    .await;
    world.pass(at(0)).await;
    let bump = git(&world.bare, &["rev-parse", "main"]).trim().to_string();
    let ready = |kind: &str, name: &str, transition: Timestamp, extra: serde_json::Value| {
        let mut status = json!({
            "observedGeneration": 2,
            "conditions": [ { "type": "Ready", "status": "True", "reason": "ReconciliationSucceeded", "message": "Applied", "observedGeneration": 2, "lastTransitionTime": transition.to_string() } ]
        });
        status
            .as_object_mut()
            .unwrap()
            .extend(extra.as_object().unwrap().clone());
        let api_version = if kind == "HelmRelease" {
            "helm.toolkit.fluxcd.io/v2"
        } else {
            "kustomize.toolkit.fluxcd.io/v1"
        };
        json!({ "apiVersion": api_version, "kind": kind, "metadata": { "name": name, "namespace": "flux-system", "generation": 2 }, "spec": {}, "status": status })
    };
    world.api.put(
        "kustomizations",
        ready(
            "Kustomization",
            "apps",
            at(10),
            json!({ "lastAppliedRevision": format!("main@sha1:{bump}") }),
        ),
    );
    world.api.put(
        "helmreleases",
        ready("HelmRelease", "app", at(20), json!({})),
    );
    world.pass(at(79)).await;
    assert_eq!(
        world.tag("prod"),
        "1.0.0",
        "the release turned ready at 0:20"
    );
    world.pass(at(81)).await;
    assert_eq!(world.tag("prod"), "1.1.0");
}

/// A multi-source Argo CD application reports a revision per source: it runs the bump when
/// one of them is the bump (the other is the chart's version).
#[tokio::test(flavor = "multi_thread")]
async fn a_multi_source_argo_cd_application_verifies() {
    let world = World::new().await;
    world.pass(at(0)).await;
    let bump = git(&world.bare, &["rev-parse", "main"]).trim().to_string();
    let mut app = application(&bump, "Healthy", at(5));
    app["status"]["sync"] = json!({ "status": "Synced", "revisions": [bump, "6.5.4"] });
    app["status"]["history"] = json!([
        { "id": 2, "revisions": [bump, "6.5.4"], "deployStartedAt": at(4).to_string(), "deployedAt": at(5).to_string() }
    ]);
    world.api.put("applications", app);
    world.pass(at(64)).await;
    assert_eq!(world.tag("prod"), "1.0.0");
    world.pass(at(66)).await;
    assert_eq!(world.tag("prod"), "1.1.0");
}

/// The worker watches the Application between passes: when Argo CD reports dev's bump
/// synced and healthy, or degraded, the worker knows within seconds — not at its next
/// interval, an hour away. One list at each pass and one watch per cluster, kind and
/// namespace, however many passes the watch rings. When the API server expires the watch's
/// history (410 Gone), the worker lists again and keeps watching.
#[tokio::test(flavor = "multi_thread")]
async fn the_worker_sees_a_rollout_turn_healthy_or_degraded_within_seconds() {
    let world = World::new().await;
    world.set_interval("1h");
    let worker = InProcessWorker::start(world.rules.path()).await;
    let state_of = |report: &PassReport| state(report, "app/dev");
    worker
        .wait_for(30, "the first pass bumps dev", |r| {
            state_of(r) == "deploying"
        })
        .await;
    assert_eq!(world.tag("dev"), "1.1.0");
    let bump = git(&world.bare, &["rev-parse", "main"]).trim().to_string();

    world.api.put(
        "applications",
        application(&bump, "Degraded", Timestamp::now()),
    );
    worker
        .wait_for(10, "dev is seen unhealthy", |r| state_of(r) == "unhealthy")
        .await;

    // The API server forgets the watch's history; the worker lists again and still sees
    // the next change.
    let lists = world.api.lists();
    world.api.expire_history();
    for _ in 0..100 {
        if world.api.lists() > lists {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    assert!(world.api.lists() > lists, "listed again after 410 Gone");
    world.api.put(
        "applications",
        application(&bump, "Healthy", Timestamp::now()),
    );
    let report = worker
        .wait_for(10, "dev is seen deployed", |r| state_of(r) == "up-to-date")
        .await;
    assert_eq!(state(&report, "app/prod"), "soaking");
    assert_eq!(
        world.api.watches(),
        3,
        "one watch; when the history expired, one resumed (answered 410 Gone) and one after listing again"
    );
    worker.stop().await;
}

/// A worker allowed to list Applications but not to watch them still reads every rollout at
/// its passes (dev is "deploying", not "unknown"), and tries the watch again ever more
/// slowly rather than hammering the API.
#[tokio::test(flavor = "multi_thread")]
async fn a_worker_not_allowed_to_watch_backs_off_and_still_reads_rollouts_at_each_pass() {
    let world = World::with("{ argocd: { application: app-dev }, cluster: dev }", false).await;
    world
        .api
        .grant_verbs("tagpromoter", &["get", "list"], "applications", "argocd");
    world.set_interval("1h");
    let worker = InProcessWorker::start(world.rules.path()).await;
    worker
        .wait_for(30, "the first pass bumps dev", |r| {
            state(r, "app/dev") == "deploying"
        })
        .await;
    tokio::time::sleep(std::time::Duration::from_secs(5)).await;
    let watches = world.api.watches();
    assert!(
        (1..=3).contains(&watches),
        "tried at once, after 2 s and after 4 more, not {watches} times"
    );
    worker.stop().await;
}

/// Dev's bump to 1.1.0 was never synced by Argo CD (its history shows only the first
/// commit, deployed long before), and dev has since been bumped to 1.2.0, not synced
/// either: dev still runs 1.0.0, so 1.1.0 never soaked there and prod keeps 1.0.0, however
/// long ago 1.1.0 was committed. The history showing 1.1.0 deployed at 1:02 later does not
/// undo what the pass at 2:00 saw (dev not running it): it counts from then.
#[tokio::test(flavor = "multi_thread")]
async fn a_value_the_controllers_history_never_deployed_does_not_soak() {
    let world = World::new().await;
    let first = first_of(&world);
    world.pass(at(0)).await;
    let one_one = git(&world.bare, &["rev-parse", "main"]).trim().to_string();
    crate::support::oci::Pusher::new(&world._registry.addr)
        .image("acme/app", Some("1.2.0"), INITIAL, "linux", "amd64")
        .await;
    world.pass(at(120)).await;
    assert_eq!(world.tag("dev"), "1.2.0");
    let report = world.pass(at(121)).await;
    assert_eq!(
        world.tag("prod"),
        "1.0.0",
        "1.1.0 never ran in dev: {}",
        report_of(&report, "app/prod").state(report.now)
    );

    // Argo CD's history: the first commit, then 1.1.0's at 1:02; 1.2.0 not synced yet.
    let mut app = application(&one_one, "Healthy", at(62));
    app["status"]["history"] = json!([
        { "id": 1, "revision": first, "deployStartedAt": at(-600).to_string(), "deployedAt": at(-600).to_string() },
        { "id": 2, "revision": one_one, "deployStartedAt": at(62).to_string(), "deployedAt": at(62).to_string() }
    ]);
    world.api.put("applications", app);
    world.pass(at(123)).await;
    assert_eq!(
        world.tag("prod"),
        "1.0.0",
        "the pass at 2:00 saw dev not running 1.1.0: a history told later does not undo that"
    );
    world.pass(at(179)).await;
    assert_eq!(world.tag("prod"), "1.0.0");
    world.pass(at(181)).await;
    assert_eq!(world.tag("prod"), "1.1.0", "an hour after that pass");
}

/// A remembered rollout of a commit the mirror does not have (another branch, a fork, a
/// push it has not fetched) may be the one that deployed dev's 1.1.0: with it in Argo
/// CD's history, 1.1.0 is not taken for never deployed — but it counts only from when a
/// pass last saw dev not running it (at 2:00, the controller on the first commit), never
/// from its commit.
#[tokio::test(flavor = "multi_thread")]
async fn a_rollout_the_mirror_cannot_read_leaves_the_history_silent() {
    let world = World::new().await;
    let first = first_of(&world);
    world.pass(at(0)).await;
    crate::support::oci::Pusher::new(&world._registry.addr)
        .image("acme/app", Some("1.2.0"), INITIAL, "linux", "amd64")
        .await;
    world.pass(at(120)).await;
    let unknown = "0123456789abcdef0123456789abcdef01234567";
    let mut app = application(&first, "Healthy", at(-600));
    app["status"]["history"] = json!([
        { "id": 1, "revision": first, "deployStartedAt": at(-600).to_string(), "deployedAt": at(-600).to_string() },
        { "id": 2, "revision": unknown, "deployStartedAt": at(30).to_string(), "deployedAt": at(30).to_string() }
    ]);
    world.api.put("applications", app);
    world.pass(at(121)).await;
    assert_eq!(world.tag("prod"), "1.0.0", "not from its commit at 0:00");
}

/// Synced to tagpromoter's commit and healthy, yet running the old image (issue 27): Argo
/// CD's `status.summary.images` lacks the reference the overlay renders. Dev is not
/// deployed — `mismatch`, `DeploymentMismatch` naming the file, the entry and what runs —
/// and its tag does not soak for prod; once the image runs, it soaks from then.
#[tokio::test(flavor = "multi_thread")]
async fn synced_but_running_another_image_is_a_mismatch_and_does_not_soak() {
    let world = World::new().await;
    world.pass(at(0)).await;
    assert_eq!(world.tag("dev"), "1.1.0");
    let bump = git(&world.bare, &["rev-parse", "main"]).trim().to_string();
    let rules = tagpromoter::rules::load_dir(world.rules.path()).unwrap();
    let image = rules.promotions[0].image.to_string();
    let old = vec![format!("{image}:1.0.0"), "busybox:1.36".to_string()];
    world.api.put(
        "applications",
        running(application(&bump, "Healthy", at(10)), &old),
    );
    let report = world.pass(at(120)).await;
    assert_eq!(state(&report, "app/dev"), "mismatch");
    assert_eq!(
        world.tag("prod"),
        "1.0.0",
        "what does not run does not soak"
    );
    assert_eq!(report.figures().rollouts, [0, 0, 1, 0]);
    assert_eq!(
        world.alerts(&report),
        vec!["DeploymentMismatch app/dev mismatch".to_string()]
    );
    let text = report_of(&report, "app/dev").state(report.now).to_string();
    for part in [
        format!("runs {image}:1.0.0"),
        format!("not {image}:1.1.0"),
        "deploy/dev/kustomization.yaml#images[name=".to_string(),
        "Argo CD Application argocd/app-dev".to_string(),
    ] {
        assert!(text.contains(&part), "{part} in {text}");
    }

    // The image runs from 2:30: prod takes it an hour later, not an hour after the sync.
    let new = vec![format!("{image}:1.1.0"), "busybox:1.36".to_string()];
    world.api.put(
        "applications",
        running(application(&bump, "Healthy", at(150)), &new),
    );
    let report = world.pass(at(180)).await;
    assert_eq!(state(&report, "app/dev"), "up-to-date");
    assert!(world.alerts(&report).is_empty());
    world.pass(at(200)).await;
    assert_eq!(world.tag("prod"), "1.0.0", "soaking since the image ran");
    world.pass(at(215)).await;
    assert_eq!(world.tag("prod"), "1.1.0");
}

/// Decisions use only what the branch as fetched now reaches (issue 28): Argo CD reports a
/// revision that was force-pushed away since. A warm mirror still holds that commit (and
/// could walk its ancestry to the bump); a fresh one never fetched it. Both must say the
/// same: dev's bump is not known to run.
#[tokio::test(flavor = "multi_thread")]
async fn a_revision_force_pushed_away_counts_for_nothing_in_a_warm_mirror_too() {
    let world = World::new().await;
    world.pass(at(0)).await;
    let bump = git(&world.bare, &["rev-parse", "main"]).trim().to_string();
    // A person's commit on top, which Argo CD syncs…
    let work = tempfile::tempdir().unwrap();
    git(
        work.path(),
        &["clone", "-q", world.bare.to_str().unwrap(), "."],
    );
    std::fs::write(work.path().join("NOTES.md"), "a note\n").unwrap();
    git(work.path(), &["add", "NOTES.md"]);
    git(
        work.path(),
        &[
            "-c",
            "user.name=A Person",
            "-c",
            "user.email=person@example.com",
            "commit",
            "-qm",
            "a note",
        ],
    );
    git(work.path(), &["push", "-q", "origin", "main"]);
    let note = git(work.path(), &["rev-parse", "HEAD"]).trim().to_string();
    world
        .api
        .put("applications", application(&note, "Healthy", at(10)));
    let cache = tempfile::tempdir().unwrap();
    let engine = world.engine(cache.path()).await;
    let warm = engine.pass(at(20)).await;
    assert_eq!(
        state(&warm, "app/dev"),
        "up-to-date",
        "the note runs the bump"
    );
    // …then force-pushed away: the branch is the bump again.
    git(&world.bare, &["update-ref", "refs/heads/main", &bump]);
    let warm = engine.pass(at(30)).await;
    let fresh = world.pass(at(30)).await;
    assert_eq!(state(&fresh, "app/dev"), "deploying");
    assert_eq!(
        state(&warm, "app/dev"),
        state(&fresh, "app/dev"),
        "a warm mirror decides as a fresh one"
    );
}

/// Soak is time run *healthy* (issue 28): a rollout Synced but Degraded for a while, then
/// Healthy, soaks from when Argo CD says its health turned (`status.health.lastTransitionTime`),
/// not from `deployedAt`; a flap back to Degraded and Healthy again restarts the count.
#[tokio::test(flavor = "multi_thread")]
async fn soak_counts_only_the_time_argo_cd_reports_healthy() {
    let world = World::new().await;
    world.pass(at(0)).await;
    let bump = git(&world.bare, &["rev-parse", "main"]).trim().to_string();
    let health = |status: &str, deployed: Timestamp, turned: Timestamp| {
        let mut app = application(&bump, status, deployed);
        app["status"]["health"]["lastTransitionTime"] = json!(turned.to_string());
        app
    };
    // Deployed at 0:10, Degraded until 1:50.
    world
        .api
        .put("applications", health("Degraded", at(10), at(10)));
    world.pass(at(75)).await;
    assert_eq!(world.tag("prod"), "1.0.0", "degraded does not soak");
    world
        .api
        .put("applications", health("Healthy", at(10), at(110)));
    let report = world.pass(at(120)).await;
    assert_eq!(
        world.tag("prod"),
        "1.0.0",
        "healthy for ten minutes, not for the 110 since deployedAt"
    );
    assert_eq!(state(&report, "app/prod"), "soaking");
    // A flap at 2:30: the count starts again at 2:40.
    world
        .api
        .put("applications", health("Healthy", at(10), at(160)));
    world.pass(at(200)).await;
    assert_eq!(world.tag("prod"), "1.0.0", "the flap restarted the count");
    world.pass(at(221)).await;
    assert_eq!(world.tag("prod"), "1.1.0", "an hour healthy since the flap");
}

/// An Argo CD that does not say when its health turned (before 2.11): once a worker saw
/// the rollout Degraded, the soak counts from no earlier than that sighting — for a fresh
/// process too (the sighting is kept in the ledger, not in the worker's memory).
#[tokio::test(flavor = "multi_thread")]
async fn a_worker_that_saw_the_rollout_degraded_soaks_from_after_it() {
    let world = World::new().await;
    world.pass(at(0)).await;
    let bump = git(&world.bare, &["rev-parse", "main"]).trim().to_string();
    world
        .api
        .put("applications", application(&bump, "Healthy", at(10)));
    let cache = tempfile::tempdir().unwrap();
    let engine = world.engine(cache.path()).await;
    engine.pass(at(20)).await;
    world
        .api
        .put("applications", application(&bump, "Degraded", at(10)));
    engine.pass(at(40)).await;
    world
        .api
        .put("applications", application(&bump, "Healthy", at(10)));
    let report = engine.pass(at(80)).await;
    assert_eq!(world.tag("prod"), "1.0.0", "seen degraded at 0:40");
    assert_eq!(state(&report, "app/prod"), "soaking");
    let fresh = world.pass(at(90)).await;
    assert_eq!(world.tag("prod"), "1.0.0", "a fresh process knows it too");
    assert_eq!(state(&fresh, "app/prod"), "soaking");
    engine.pass(at(101)).await;
    assert_eq!(world.tag("prod"), "1.1.0", "an hour after the sighting");
}

/// A person rolls dev back (1.2.0 to 1.1.0), and Argo CD never rolls the rollback out: it
/// still runs the first commit. The rollback stops 1.2.0 at once, and 1.1.0 has not
/// started running: prod keeps 1.0.0 however long it waits (found by the property test:
/// a rollback not rolled out counted from its commit).
#[tokio::test(flavor = "multi_thread")]
async fn a_rollback_the_controller_never_rolled_out_does_not_soak() {
    let world = World::new().await;
    world.pass(at(0)).await;
    assert_eq!(world.tag("dev"), "1.1.0");
    crate::support::oci::Pusher::new(&world._registry.addr)
        .image("acme/app", Some("1.2.0"), INITIAL, "linux", "amd64")
        .await;
    world.pass(at(5)).await;
    assert_eq!(world.tag("dev"), "1.2.0");
    let work = tempfile::tempdir().unwrap();
    git(
        work.path(),
        &["clone", "-q", world.bare.to_str().unwrap(), "."],
    );
    let file = work.path().join("deploy/dev/kustomization.yaml");
    let text = std::fs::read_to_string(&file).unwrap();
    std::fs::write(&file, text.replace("newTag: 1.2.0", "newTag: 1.1.0")).unwrap();
    // Dated when it is made (the passes run at chosen times).
    let made = std::process::Command::new("git")
        .args([
            "-c",
            "user.name=Person",
            "-c",
            "user.email=person@example.com",
            "commit",
            "-qam",
            "roll dev back",
        ])
        .env("GIT_AUTHOR_DATE", at(6).to_string())
        .env("GIT_COMMITTER_DATE", at(6).to_string())
        .current_dir(work.path())
        .status()
        .unwrap();
    assert!(made.success());
    git(work.path(), &["push", "-q", "origin", "main"]);
    let report = world.pass(at(10)).await;
    assert_eq!(
        state(&report, "app/dev"),
        "held",
        "a person's rollback holds"
    );
    world.pass(at(300)).await;
    assert_eq!(
        world.tag("prod"),
        "1.0.0",
        "1.1.0 never ran in dev: the controller still runs the first commit"
    );
}

/// Found by a fresh-eyes review: dev moves on to 1.2.0 while Argo CD stays on 1.1.0's
/// commit, which goes Degraded (a pass sees it at 0:20) and then Healthy again, from an Argo
/// CD that does not say when health turned. 1.1.0 counts from that sighting, not from when
/// 1.2.0 came.
#[tokio::test(flavor = "multi_thread")]
async fn a_value_the_controller_still_runs_counts_from_when_it_was_last_seen_degraded() {
    let world = World::new().await;
    world.pass(at(0)).await;
    let one_one = git(&world.bare, &["rev-parse", "main"]).trim().to_string();
    world
        .api
        .put("applications", application(&one_one, "Healthy", at(1)));
    world.pass(at(5)).await;
    crate::support::oci::Pusher::new(&world._registry.addr)
        .image("acme/app", Some("1.2.0"), INITIAL, "linux", "amd64")
        .await;
    world.pass(at(10)).await;
    assert_eq!(world.tag("dev"), "1.2.0");
    world
        .api
        .put("applications", application(&one_one, "Degraded", at(1)));
    world.pass(at(20)).await;
    world
        .api
        .put("applications", application(&one_one, "Healthy", at(1)));
    world.pass(at(75)).await;
    assert_eq!(world.tag("prod"), "1.0.0", "seen degraded at 0:20");
    world.pass(at(81)).await;
    assert_eq!(world.tag("prod"), "1.1.0", "an hour after");
}

/// Found by a fresh-eyes review: dev's 1.1.0 never rolled out (Argo CD stays on the first
/// commit), dev moves on to 1.2.0, then the API forbids every read. Nothing is known of
/// what runs: prod is held where it is, and 1.1.0 does not start counting.
#[tokio::test(flavor = "multi_thread")]
async fn an_unreadable_controller_holds_the_downstream_where_it_is() {
    let world = World::new().await;
    world.pass(at(0)).await;
    world.pass(at(5)).await;
    crate::support::oci::Pusher::new(&world._registry.addr)
        .image("acme/app", Some("1.2.0"), INITIAL, "linux", "amd64")
        .await;
    world.pass(at(10)).await;
    assert_eq!(world.tag("dev"), "1.2.0");
    world.api.revoke("tagpromoter");
    for minute in [70, 130, 300] {
        let report = world.pass(at(minute)).await;
        assert_eq!(
            world.tag("prod"),
            "1.0.0",
            "{}",
            report_of(&report, "app/prod").state(report.now)
        );
    }
}

//! Repositories and images as real users have them (issue 17): platform variants, and more
//! to come. A real registry and a real bare repository; the engine in process.

use jiff::Timestamp;

use crate::engine::{INITIAL, kustomization};
use crate::support::git::{bare_repo_at, git};
use crate::support::oci::Pusher;
use crate::support::{Auth, DockerRegistry};
use tagpromoter::engine::{Engine, Options, PassReport};

pub(crate) fn now() -> Timestamp {
    "2026-11-20T10:00:00Z".parse().unwrap()
}

/// A registry, a repository with `files`, and rules (Settings for both, then `promotions`):
/// one pass; the report and what the branch holds after it.
pub(crate) struct World {
    pub(crate) registry: DockerRegistry,
    pub(crate) bare: std::path::PathBuf,
    rules: tempfile::TempDir,
    _dirs: [tempfile::TempDir; 2],
}

impl World {
    pub(crate) fn new(files: &[(&str, String)]) -> Self {
        let registry = DockerRegistry::start(Auth::None);
        let base = tempfile::tempdir().unwrap();
        let refs: Vec<(&str, &str)> = files.iter().map(|(p, t)| (*p, t.as_str())).collect();
        let bare = bare_repo_at(base.path(), "deploys", &refs, Some(INITIAL));
        Self {
            registry,
            bare,
            rules: tempfile::tempdir().unwrap(),
            _dirs: [base, tempfile::tempdir().unwrap()],
        }
    }

    pub(crate) fn pusher(&self) -> Pusher {
        Pusher::new(&self.registry.addr)
    }

    pub(crate) fn image(&self, path: &str) -> String {
        format!("{}/{path}", self.registry.addr)
    }

    /// The rules: Settings for this registry and repository, then `promotions` (YAML docs).
    pub(crate) fn rules(&self, promotions: &str) {
        std::fs::write(
            self.rules.path().join("rules.yaml"),
            format!(
                "apiVersion: tagpromoter.io/v1alpha1\nkind: Settings\nspec:\n  git: {{ url: 'file://{}' }}\n  registries: [{{ host: '{}', insecure: true }}]\n---\n{promotions}",
                self.bare.display(),
                self.registry.addr
            ),
        )
        .unwrap();
    }

    /// An engine for the rules in force, on a cache of its own.
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

    /// One pass at `at` from a fresh cache.
    pub(crate) async fn pass(&self, at: Timestamp) -> PassReport {
        self.engine().await.0.pass(at).await
    }

    /// `path:tag` pushed for each of `tags` (linux/amd64); the image's name.
    pub(crate) async fn push(&self, path: &str, tags: &[&str]) -> String {
        for tag in tags {
            self.pusher()
                .image(path, Some(tag), INITIAL, "linux", "amd64")
                .await;
        }
        self.image(path)
    }

    /// The rules: one promotion `name` of `image` through `environments` (YAML list items).
    pub(crate) fn promotion(&self, name: &str, image: &str, environments: &str) {
        self.rules(&format!(
            "apiVersion: tagpromoter.io/v1alpha1\nkind: Promotion\nmetadata: {{ name: {name} }}\nspec:\n  image: {image}\n  environments:\n{environments}"
        ));
    }

    /// The rules directory.
    pub(crate) fn rules_dir(&self) -> &std::path::Path {
        self.rules.path()
    }

    pub(crate) fn file(&self, path: &str) -> String {
        git(&self.bare, &["show", &format!("main:{path}")])
    }
}

/// `platforms` match as OCI's platform matchers do: `linux/arm64` is satisfied by an index
/// whose arm64 child says `linux/arm64/v8` (as every arm64 image built by buildx does), and
/// `linux/arm/v7` by a bare `linux/arm`; an explicit variant must match (`linux/arm/v6` is
/// not `v7`).
#[tokio::test(flavor = "multi_thread")]
async fn platforms_match_with_their_variants_normalised() {
    let world = World::new(&[
        ("apps/arm64/kustomization.yaml", String::new()),
        ("apps/armv7/kustomization.yaml", String::new()),
        ("apps/armv6/kustomization.yaml", String::new()),
    ]);
    let image = world.image("acme/multi");
    let pusher = world.pusher();
    for tag in ["1.0.0", "1.1.0"] {
        let amd64 = pusher
            .image("acme/multi", None, INITIAL, "linux", "amd64")
            .await;
        let arm64 = pusher
            .image("acme/multi", None, INITIAL, "linux", "arm64")
            .await;
        let arm = pusher
            .image("acme/multi", None, INITIAL, "linux", "arm")
            .await;
        pusher
            .platform_index(
                "acme/multi",
                tag,
                &[
                    (amd64, "linux/amd64"),
                    (arm64, "linux/arm64/v8"),
                    (arm, "linux/arm"),
                ],
            )
            .await;
    }
    // Each overlay at 1.0.0.
    let overlays: Vec<(&str, String)> = [
        "apps/arm64/kustomization.yaml",
        "apps/armv7/kustomization.yaml",
        "apps/armv6/kustomization.yaml",
    ]
    .into_iter()
    .map(|f| (f, kustomization(&image, "1.0.0")))
    .collect();
    commit_files(&world, &overlays);
    let env = |name: &str, platforms: &str| {
        format!(
            "    - {{ name: {name}, policy: {{ semver: '>=1.0.0' }}, platforms: [{platforms}], target: {{ kustomize: {{ file: apps/{name}/kustomization.yaml }} }} }}\n"
        )
    };
    world.promotion(
        "multi",
        &image,
        &format!(
            "{}{}{}",
            env("arm64", "linux/arm64"),
            env("armv7", "linux/arm/v7"),
            env("armv6", "linux/arm/v6"),
        ),
    );
    let p = world.pass(now()).await;
    let line = |env: &str| world.file(&format!("apps/{env}/kustomization.yaml"));
    assert!(
        line("arm64").contains("newTag: 1.1.0"),
        "{:?}",
        p.environments[0]
    );
    assert!(
        line("armv7").contains("newTag: 1.1.0"),
        "{:?}",
        p.environments[1]
    );
    assert!(line("armv6").contains("newTag: 1.0.0"));
    let text = tagpromoter::view::plan_text(&p);
    assert!(text.contains("lacks platforms linux/arm/v6"), "{text}");
}

/// Text logs piped to a file or another program carry no ANSI colour codes (issue 17).
#[tokio::test(flavor = "multi_thread")]
async fn text_logs_off_a_terminal_have_no_colour_codes() {
    let dead = format!("127.0.0.1:{}", crate::support::free_port());
    let world = World::new(&[(
        "apps/dev/kustomization.yaml",
        kustomization(&format!("{dead}/acme/app"), "1.0.0"),
    )]);
    std::fs::write(
        world.rules.path().join("rules.yaml"),
        format!(
            "apiVersion: tagpromoter.io/v1alpha1\nkind: Settings\nspec:\n  git: {{ url: 'file://{}' }}\n  registries: [{{ host: '{dead}', insecure: true }}]\n---\napiVersion: tagpromoter.io/v1alpha1\nkind: Promotion\nmetadata: {{ name: app }}\nspec:\n  image: {dead}/acme/app\n  environments:\n    - {{ name: dev, policy: {{ semver: '>=1.0.0' }}, target: {{ kustomize: {{ file: apps/dev/kustomization.yaml }} }} }}\n",
            world.bare.display()
        ),
    )
    .unwrap();
    let cache = tempfile::tempdir().unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_tagpromoter"))
        .arg("--rules")
        .arg(world.rules.path())
        .arg("--cache-dir")
        .arg(cache.path())
        .args(["--log-format", "text", "--registry-timeout", "3s", "once"])
        .output()
        .unwrap();
    let log = String::from_utf8_lossy(&out.stderr);
    assert!(log.contains("cannot list tags"), "{log}");
    assert!(
        !log.contains('\u{1b}'),
        "colour codes in a piped log: {log:?}"
    );
}

/// Tags people really push (`1.0`, `2.0`, `v5`): under the strict semver policy they are
/// passed over, and `plan` and `status` say so in text with the way out; with
/// `semver: { range, loose: true }` they are versions (issue 17).
#[tokio::test(flavor = "multi_thread")]
async fn short_version_tags_are_explained_strictly_and_taken_loosely() {
    let world = World::new(&[("apps/dev/kustomization.yaml", String::new())]);
    let image = world
        .push("acme/short", &["1.0.0", "1.0", "2.0", "v5"])
        .await;
    commit_files(
        &world,
        &[(
            "apps/dev/kustomization.yaml",
            kustomization(&image, "1.0.0"),
        )],
    );
    let rules = |semver: &str| {
        world.promotion(
            "short",
            &image,
            &format!(
            "    - {{ name: dev, policy: {{ semver: {semver} }}, target: {{ kustomize: {{ file: apps/dev/kustomization.yaml }} }} }}\n"
        ))
    };
    rules("'>=1.0.0 <5'");
    let (engine, _cache) = world.engine().await;
    let preview = engine.preview(now()).await;
    let plan = tagpromoter::view::plan_text(&preview);
    assert!(
        plan.contains("passed over, not a version X.Y.Z (`semver: { range: …, loose: true }` reads 1.0 and v5 as versions): 1.0, 2.0, v5"),
        "{plan}"
    );
    let status = tagpromoter::view::status_table(&preview);
    assert!(
        status.contains("passed over, not a version X.Y.Z"),
        "{status}"
    );

    rules("{ range: '>=1.0.0 <5', loose: true }");
    let p = world.pass(now()).await;
    assert!(
        world
            .file("apps/dev/kustomization.yaml")
            .contains("newTag: \"2.0\""),
        "{:?}",
        p.environments[0]
    );
}

/// Every environment of the pass landed its bump.
fn assert_landed(p: &PassReport) {
    for e in &p.environments {
        assert!(
            matches!(e.applied, tagpromoter::engine::Applied::Landed { .. }),
            "{e:?}"
        );
    }
}

/// Clone a world's repository, write `files`, commit and push them.
pub(crate) fn commit_files(world: &World, files: &[(&str, String)]) {
    let work = tempfile::tempdir().unwrap();
    git(
        work.path(),
        &["clone", "-q", world.bare.to_str().unwrap(), "w"],
    );
    let w = work.path().join("w");
    for (path, text) in files {
        let path = w.join(path);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, text).unwrap();
    }
    git(&w, &["add", "-A"]);
    git(&w, &["commit", "-qm", "files"]);
    git(&w, &["push", "-q", "origin", "main"]);
}

/// Docker's names (issue 17): a Deployment that writes `redis:7.0.0` (and a sidecar
/// `index.docker.io/library/redis:7.0.0`) is promoted from tags read in a mirror, through
/// `manifest: { file, name: docker.io/library/redis }`; each line keeps its own spelling.
#[tokio::test(flavor = "multi_thread")]
async fn docker_hub_names_are_one_repository_and_stay_as_written() {
    let world = World::new(&[("README.md", "deploys\n".into())]);
    let mirror = world.push("library/redis", &["7.0.0", "7.2.4"]).await;
    let deployment = "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: cache\nspec:\n  template:\n    spec:\n      containers:\n        - name: redis\n          image: redis:7.0.0 # the cache\n        - name: exporter\n          image: oliver006/redis_exporter:v1.62.0\n      initContainers:\n        - name: warm\n          image: \"index.docker.io/library/redis:7.0.0\"\n";
    commit_files(&world, &[("apps/cache/deployment.yaml", deployment.into())]);
    world.promotion(
        "redis",
        &mirror,
        "    - { name: prod, policy: { semver: '^7.0.0' }, target: { manifest: { file: apps/cache/deployment.yaml, name: docker.io/library/redis } } }\n");
    let p = world.pass(now()).await;
    assert_landed(&p);
    assert_eq!(
        world.file("apps/cache/deployment.yaml"),
        deployment
            .replace("image: redis:7.0.0", "image: redis:7.2.4")
            .replace("library/redis:7.0.0\"", "library/redis:7.2.4\"")
    );
}

/// Flux's own markers (issue 17): a HelmRelease's values marked
/// `# {"$imagepolicy": "flux-system:podinfo:tag"}` are promoted as written with
/// `marker: { file, policy: flux-system:podinfo }`; without `policy`, the error lists the
/// markers the file carries.
#[tokio::test(flavor = "multi_thread")]
async fn flux_markers_are_used_as_written() {
    let world = World::new(&[("README.md", "deploys\n".into())]);
    let mirror = world
        .push("stefanprodan/podinfo", &["6.5.0", "6.7.1"])
        .await;
    let release = "apiVersion: helm.toolkit.fluxcd.io/v2\nkind: HelmRelease\nmetadata:\n  name: podinfo\n  namespace: podinfo\nspec:\n  chart:\n    spec:\n      chart: podinfo\n      version: \"6.x\"\n  values:\n    image:\n      repository: ghcr.io/stefanprodan/podinfo # {\"$imagepolicy\": \"flux-system:podinfo:name\"}\n      tag: 6.5.0 # {\"$imagepolicy\": \"flux-system:podinfo:tag\"}\n";
    commit_files(&world, &[("apps/podinfo/release.yaml", release.into())]);
    let rules = |marker: &str| {
        world.promotion(
            "podinfo",
            &mirror,
            &format!(
            "    - {{ name: prod, policy: {{ semver: '^6.0.0' }}, target: {{ marker: {{ file: apps/podinfo/release.yaml{marker} }} }} }}\n"
        ))
    };
    rules("");
    let p = world.pass(now()).await;
    let text = tagpromoter::view::plan_text(&p);
    assert!(
        text.contains(
            "the file's markers name flux-system:podinfo: set target.marker.policy to one of them"
        ),
        "{text}"
    );
    rules(", policy: flux-system:podinfo, name: ghcr.io/stefanprodan/podinfo");
    let p = world.pass(now()).await;
    assert_landed(&p);
    assert_eq!(
        world.file("apps/podinfo/release.yaml"),
        release.replace("tag: 6.5.0 #", "tag: 6.7.1 #")
    );
}

/// A kustomization that had no `images:` (issue 17): the first pass adds the entry, as
/// `kustomize edit set image` would, and the next finds it and is up to date.
#[tokio::test(flavor = "multi_thread")]
async fn a_kustomization_without_images_gets_its_entry() {
    let overlay = "apiVersion: kustomize.config.k8s.io/v1beta1\nkind: Kustomization\nresources:\n  - ../../base # shared\n";
    let world = World::new(&[("apps/prod/kustomization.yaml", overlay.into())]);
    let image = world.image("acme/app");
    world
        .pusher()
        .image("acme/app", Some("1.4.0"), INITIAL, "linux", "amd64")
        .await;
    world.promotion(
        "app",
        &image,
        "    - { name: prod, policy: { semver: '>=1.0.0' }, target: { kustomize: { file: apps/prod/kustomization.yaml } } }\n");
    let p = world.pass(now()).await;
    assert_landed(&p);
    assert_eq!(
        world.file("apps/prod/kustomization.yaml"),
        format!("{overlay}images:\n  - name: {image}\n    newTag: 1.4.0\n")
    );
    let p = world.pass(now()).await;
    assert_eq!(
        p.environments[0].state(p.now),
        tagpromoter::engine::State::UpToDate
    );
}

/// Helm values that hold the whole reference (issue 17; Argo CD Image Updater's
/// `helm.image-spec`): `helm: { file, image: <path> }` rewrites the tag inside that one
/// string, and with `pinDigest` the digest, keeping the repository as written.
#[tokio::test(flavor = "multi_thread")]
async fn helm_values_holding_the_whole_reference() {
    let world = World::new(&[("README.md", "deploys\n".into())]);
    let mirror = world.image("acme/app");
    let pushed = {
        let pusher = world.pusher();
        pusher
            .image("acme/app", Some("1.2.3"), INITIAL, "linux", "amd64")
            .await;
        pusher
            .image("acme/app", Some("1.3.0"), INITIAL, "linux", "arm64")
            .await
    };
    let values = "# values for prod\nworker:\n  image: ghcr.io/acme/app:1.2.3 # the chart's image\n  replicas: 2\napi:\n  image: \"ghcr.io/acme/app:1.2.3\"\n";
    commit_files(&world, &[("apps/prod/values.yaml", values.into())]);
    world.promotion(
        "app",
        &mirror,
        "    - { name: prod, policy: { semver: '^1.0.0' }, target: { helm: { file: apps/prod/values.yaml, image: worker.image, name: ghcr.io/acme/app } } }\n    - { name: api, pinDigest: true, policy: { semver: '^1.0.0' }, target: { helm: { file: apps/prod/values.yaml, image: api.image, name: ghcr.io/acme/app } } }\n");
    let p = world.pass(now()).await;
    assert_landed(&p);
    assert_eq!(
        world.file("apps/prod/values.yaml"),
        values
            .replace(
                "image: ghcr.io/acme/app:1.2.3 #",
                "image: ghcr.io/acme/app:1.3.0 #"
            )
            .replace(
                "\"ghcr.io/acme/app:1.2.3\"",
                &format!("\"ghcr.io/acme/app:1.3.0@{}\"", pushed.digest)
            )
    );
    // Read back, both are up to date.
    let p = world.pass(now()).await;
    for e in &p.environments {
        assert_eq!(
            e.state(p.now),
            tagpromoter::engine::State::UpToDate,
            "{e:?}"
        );
    }
}

/// States that tell the truth (issue 17): dev jumped from 1.0.0 to 2.1.0-rc.1, so staging
/// (no prereleases) can never take 2.0.0 through it. Staging is not "up to date": it says dev
/// skipped 2.0.0 and how to fix it, and after `stallAfter` it is stalled and alerts.
#[tokio::test(flavor = "multi_thread")]
async fn a_release_the_upstream_skipped_is_said_and_stalls() {
    let values = |tag: &str| format!("image:\n  tag: {tag}\n");
    let world = World::new(&[
        ("apps/dev/values.yaml", values("1.0.0")),
        ("apps/staging/values.yaml", values("1.0.0")),
    ]);
    let image = world
        .push("acme/app", &["1.0.0", "2.0.0", "2.1.0-rc.1"])
        .await;
    world.promotion(
        "app",
        &image,
        "    - { name: dev, policy: { semver: '>=1.0.0-0' }, target: { helm: { file: apps/dev/values.yaml, tag: image.tag } } }\n    - { name: staging, from: dev, soak: 1h, stallAfter: 2h, policy: { semver: '>=1.0.0' }, target: { helm: { file: apps/staging/values.yaml, tag: image.tag } } }\n");
    let (engine, _cache) = world.engine().await;
    let at = |hours: i64| now() + jiff::SignedDuration::from_hours(hours);
    engine.pass(at(0)).await;
    assert!(world.file("apps/dev/values.yaml").contains("2.1.0-rc.1"));
    let p = engine.pass(at(1)).await;
    let staging = &p.environments[1];
    assert_eq!(
        staging.state(p.now),
        tagpromoter::engine::State::Waiting {
            tag: "2.0.0".into()
        }
    );
    let status = tagpromoter::view::status_table(&p);
    assert!(
        status.contains("2.0.0: dev skipped it: it moved on to 2.1.0-rc.1"),
        "{status}"
    );
    assert!(status.contains("run it in dev"), "{status}");
    let p = engine.pass(at(3)).await;
    assert!(
        matches!(
            p.environments[1].state(p.now),
            tagpromoter::engine::State::Stalled { .. }
        ),
        "{:?}",
        p.environments[1].state(p.now)
    );
    let settings = engine.rules().settings.clone();
    let memory = tagpromoter::alert::state::Memory::default();
    let fired = tagpromoter::alert::rules::firing(&tagpromoter::alert::rules::Context {
        report: &p,
        memory: &memory,
        settings: &settings,
        now: p.now,
    });
    assert!(
        fired
            .iter()
            .any(|a| a.name.as_str() == "PromotionStalled" && a.environment == "staging"),
        "{fired:?}"
    );
}

/// Argo CD Image Updater's Git write-back files (issue 17): `.argocd-source-<app>.yaml` with
/// a `kustomize.images` entry (`repo:tag`) or `helm.parameters` (`image.tag`) are edited in
/// place by an `argocdSource` target, so those repositories move over unchanged.
#[tokio::test(flavor = "multi_thread")]
async fn argo_cd_image_updater_write_back_files_are_edited_in_place() {
    let world = World::new(&[("README.md", "deploys\n".into())]);
    let image = world.push("acme/app", &["1.0.0", "1.1.0"]).await;
    let kustomize =
        format!("kustomize:\n  images:\n  - {image}:1.0.0\n  - ghcr.io/acme/sidecar:2.0.0\n");
    let helm = format!(
        "helm:\n  parameters:\n  - name: image.name\n    value: {image}\n    forcestring: true\n  - name: image.tag\n    value: 1.0.0\n    forcestring: true\n"
    );
    commit_files(
        &world,
        &[
            ("apps/dev/.argocd-source-app-dev.yaml", kustomize.clone()),
            ("apps/prod/.argocd-source-app-prod.yaml", helm.clone()),
        ],
    );
    world.promotion(
        "app",
        &image,
        "    - { name: dev, policy: { semver: '^1.0.0' }, target: { argocdSource: { file: apps/dev/.argocd-source-app-dev.yaml } } }\n    - { name: prod, policy: { semver: '^1.0.0' }, target: { argocdSource: { file: apps/prod/.argocd-source-app-prod.yaml } } }\n");
    let p = world.pass(now()).await;
    assert_landed(&p);
    assert_eq!(
        world.file("apps/dev/.argocd-source-app-dev.yaml"),
        kustomize.replace(":1.0.0", ":1.1.0")
    );
    assert_eq!(
        world.file("apps/prod/.argocd-source-app-prod.yaml"),
        helm.replace("value: 1.0.0", "value: 1.1.0")
    );
}

/// Every file under `tests/data/real-repos/<name>/`, relative to it.
fn tree(name: &str) -> Vec<(String, String)> {
    fn walk(dir: &std::path::Path, root: &std::path::Path, out: &mut Vec<(String, String)>) {
        let mut entries: Vec<_> = std::fs::read_dir(dir).unwrap().flatten().collect();
        entries.sort_by_key(|e| e.path());
        for e in entries {
            let path = e.path();
            if path.is_dir() {
                walk(&path, root, out);
            } else {
                let rel = path
                    .strip_prefix(root)
                    .unwrap()
                    .to_string_lossy()
                    .into_owned();
                out.push((rel, std::fs::read_to_string(&path).unwrap()));
            }
        }
    }
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/data/real-repos")
        .join(name);
    let mut out = Vec::new();
    walk(&root, &root, &mut out);
    out
}

/// The modelled repository `name` promoted through: `images` (repository path, tags)
/// pushed, `promotions` (with `REGISTRY` for the registry's address) in force, a pass at
/// each of `hours`. What the branch's history then says, and the bare repository (for
/// rendering).
async fn promote_through(
    name: &str,
    images: &[(&str, &[&str])],
    promotions: &str,
    hours: &[i64],
) -> (String, World) {
    let files = tree(name);
    let world = World::new(
        &files
            .iter()
            .map(|(p, t)| (p.as_str(), t.clone()))
            .collect::<Vec<_>>(),
    );
    for (path, tags) in images {
        for tag in *tags {
            world
                .pusher()
                .image(path, Some(tag), INITIAL, "linux", "amd64")
                .await;
        }
    }
    world.rules(&promotions.replace("REGISTRY", &world.registry.addr));
    let (engine, _cache) = world.engine().await;
    for h in hours {
        let p = engine
            .pass(now() + jiff::SignedDuration::from_hours(*h))
            .await;
        for e in &p.environments {
            assert!(
                !matches!(e.state(p.now), tagpromoter::engine::State::Failing { .. }),
                "{name}: {e:?}"
            );
        }
    }
    let initial = git(&world.bare, &["rev-list", "--max-parents=0", "main"]);
    let diff = git(&world.bare, &["diff", "--no-color", initial.trim(), "main"])
        .replace(&world.registry.addr, "REGISTRY");
    let log = git(&world.bare, &["log", "--reverse", "--format=%s", "main"]);
    (format!("{log}\n{diff}"), world)
}

/// `kubectl kustomize` builds the overlay at `dir` of the branch's tip.
pub(crate) fn builds(world: &World, dirs: &[&str]) -> Vec<String> {
    let work = tempfile::tempdir().unwrap();
    git(
        work.path(),
        &["clone", "-q", world.bare.to_str().unwrap(), "w"],
    );
    dirs.iter()
        .map(|dir| crate::support::kustomize_build(&work.path().join("w").join(dir)))
        .collect()
}

/// kustomize's hello-world layout: qa, staging and regional prods; numeric tags; prod-eu had
/// no `images:`, prod-us pins a digest. Byte-exact diffs, and every overlay still builds.
#[tokio::test(flavor = "multi_thread")]
async fn real_layout_kustomize_overlays() {
    let env = |name: &str, extra: &str| {
        format!(
            "    - {{ name: {name}, {extra}policy: {{ numerical: asc }}, target: {{ kustomize: {{ file: overlays/{name}/kustomization.yaml, name: monopole/hello }} }} }}\n"
        )
    };
    let rules = format!(
        "apiVersion: tagpromoter.io/v1alpha1\nkind: Promotion\nmetadata: {{ name: hello }}\nspec:\n  image: REGISTRY/monopole/hello\n  environments:\n{}{}{}{}",
        env("qa", ""),
        env("staging", "from: qa, soak: 1h, "),
        env("prod-eu", "from: staging, soak: 1h, "),
        env("prod-us", "from: staging, soak: 1h, pinDigest: true, "),
    );
    let (history, world) = promote_through(
        "overlays",
        &[("monopole/hello", &["1", "2"])],
        &rules,
        &[0, 2, 4],
    )
    .await;
    insta::assert_snapshot!("real_layout_kustomize_overlays", history);
    for rendered in builds(
        &world,
        &[
            "overlays/qa",
            "overlays/staging",
            "overlays/prod-eu",
            "overlays/prod-us",
        ],
    ) {
        assert!(rendered.contains("image: monopole/hello:2"), "{rendered}");
    }
}

/// Argo CD's example apps: helm-guestbook values (a tag YAML reads as a number), its
/// production values, and kustomize-guestbook, which has no `images:`.
#[tokio::test(flavor = "multi_thread")]
async fn real_layout_argocd_example_apps() {
    let rules = "apiVersion: tagpromoter.io/v1alpha1\nkind: Promotion\nmetadata: { name: guestbook }\nspec:\n  image: REGISTRY/heptio-images/ks-guestbook-demo\n  environments:\n    - { name: dev, policy: { semver: { range: '>=0.1', loose: true } }, target: { helm: { file: helm-guestbook/values.yaml, tag: image.tag, name: gcr.io/heptio-images/ks-guestbook-demo } } }\n    - { name: kustomize, policy: { semver: { range: '>=0.1', loose: true } }, target: { kustomize: { file: kustomize-guestbook/kustomization.yaml, name: gcr.io/heptio-images/ks-guestbook-demo } } }\n    - { name: prod, from: dev, soak: 1h, policy: { semver: { range: '>=0.1', loose: true } }, target: { helm: { file: helm-guestbook/values-production.yaml, tag: image.tag, name: gcr.io/heptio-images/ks-guestbook-demo } } }\n";
    let (history, world) = promote_through(
        "argocd",
        &[("heptio-images/ks-guestbook-demo", &["0.1", "0.2"])],
        rules,
        &[0, 2],
    )
    .await;
    insta::assert_snapshot!("real_layout_argocd_example_apps", history);
    let rendered = builds(&world, &["kustomize-guestbook"]);
    assert!(
        rendered[0].contains("image: gcr.io/heptio-images/ks-guestbook-demo:0.2"),
        "{}",
        rendered[0]
    );
}

/// Flux's kustomize-helm example: HelmRelease values with `$imagepolicy` markers per
/// environment (staging, then production), and the base release's redis tag.
#[tokio::test(flavor = "multi_thread")]
async fn real_layout_flux_kustomize_helm() {
    let rules = "apiVersion: tagpromoter.io/v1alpha1\nkind: Promotion\nmetadata: { name: podinfo }\nspec:\n  image: REGISTRY/stefanprodan/podinfo\n  environments:\n    - { name: staging, policy: { semver: '>=6.0.0' }, target: { marker: { file: apps/staging/podinfo-values.yaml, policy: flux-system:podinfo-staging, name: ghcr.io/stefanprodan/podinfo } } }\n    - { name: production, from: staging, soak: 1h, policy: { semver: '>=6.0.0' }, target: { marker: { file: apps/production/podinfo-values.yaml, policy: flux-system:podinfo, name: ghcr.io/stefanprodan/podinfo } } }\n---\napiVersion: tagpromoter.io/v1alpha1\nkind: Promotion\nmetadata: { name: redis }\nspec:\n  image: REGISTRY/docker/library/redis\n  environments:\n    - { name: base, policy: { semver: '~7.0.0' }, target: { helm: { file: apps/base/podinfo/release.yaml, tag: spec.values.redis.tag, name: public.ecr.aws/docker/library/redis } } }\n";
    let (history, _) = promote_through(
        "flux",
        &[
            ("stefanprodan/podinfo", &["6.5.0", "6.5.1"]),
            ("docker/library/redis", &["7.0.6", "7.0.15", "7.2.4"]),
        ],
        rules,
        &[0, 2],
    )
    .await;
    insta::assert_snapshot!("real_layout_flux_kustomize_helm", history);
}

/// Several targets per environment (issue 17): prod spans three regional overlays; a bump
/// writes all three in one commit. Regions that disagree are refused, not overwritten; and
/// when a person changed one region between the decision and the commit, none is written.
#[tokio::test(flavor = "multi_thread")]
async fn one_environment_across_three_regions_in_one_commit() {
    let world = World::new(&[("README.md", "deploys\n".into())]);
    let image = world.push("acme/app", &["1.0.0", "1.1.0"]).await;
    let regions = ["eu", "us", "ap"];
    let overlays: Vec<(String, String)> = regions
        .iter()
        .map(|r| {
            (
                format!("apps/prod-{r}/kustomization.yaml"),
                kustomization(&image, "1.0.0"),
            )
        })
        .collect();
    let refs: Vec<(&str, String)> = overlays
        .iter()
        .map(|(p, t)| (p.as_str(), t.clone()))
        .collect();
    commit_files(&world, &refs);
    let targets: Vec<String> = regions
        .iter()
        .map(|r| format!("{{ kustomize: {{ file: apps/prod-{r}/kustomization.yaml }} }}"))
        .collect();
    world.promotion(
        "app",
        &image,
        &format!(
            "    - {{ name: prod, policy: {{ semver: '^1.0.0' }}, targets: [{}] }}\n",
            targets.join(", ")
        ),
    );
    // Disagreeing regions: refused, each file as it was.
    commit_files(
        &world,
        &[(
            "apps/prod-us/kustomization.yaml",
            kustomization(&image, "1.0.1"),
        )],
    );
    let p = world.pass(now()).await;
    assert!(
        matches!(p.environments[0].state(p.now), tagpromoter::engine::State::Failing { ref error, .. } if error.contains("must agree")),
        "{:?}",
        p.environments[0].state(p.now)
    );
    commit_files(
        &world,
        &[(
            "apps/prod-us/kustomization.yaml",
            kustomization(&image, "1.0.0"),
        )],
    );
    let before = git(&world.bare, &["rev-parse", "main"]);
    let p = world.pass(now()).await;
    assert_landed(&p);
    assert_eq!(
        git(
            &world.bare,
            &["rev-list", "--count", &format!("{}..main", before.trim())]
        )
        .trim(),
        "1",
        "one commit for the three regions"
    );
    let changed = git(&world.bare, &["show", "--name-only", "--format=", "main"]);
    for r in regions {
        assert!(
            world
                .file(&format!("apps/prod-{r}/kustomization.yaml"))
                .contains("newTag: 1.1.0"),
            "{r}"
        );
        assert!(
            changed.contains(&format!("apps/prod-{r}/kustomization.yaml")),
            "{changed}"
        );
    }
}

/// A person who removes the environment's `images:` entry made a change the bot must not
/// undo (DESIGN's invariants): it holds, saying so, instead of writing the entry back.
#[tokio::test(flavor = "multi_thread")]
async fn an_entry_a_person_removed_is_not_written_back() {
    let world = World::new(&[("README.md", "deploys\n".into())]);
    let image = world.push("acme/app", &["1.0.0", "1.1.0"]).await;
    let without = "resources:\n  - ../../base\n".to_string();
    commit_files(
        &world,
        &[(
            "apps/prod/kustomization.yaml",
            format!("{without}images:\n  - name: {image}\n    newTag: 1.0.0\n"),
        )],
    );
    world.promotion(
        "app",
        &image,
        "    - { name: prod, policy: { semver: '^1.0.0' }, target: { kustomize: { file: apps/prod/kustomization.yaml } } }\n",
    );
    commit_files(&world, &[("apps/prod/kustomization.yaml", without.clone())]);
    let p = world.pass(now()).await;
    assert_eq!(world.file("apps/prod/kustomization.yaml"), without);
    assert!(
        matches!(p.environments[0].state(p.now), tagpromoter::engine::State::Held(ref h) if h.reason.as_deref().is_some_and(|r| r.contains("removed by hand"))),
        "{:?}",
        p.environments[0].state(p.now)
    );
}

//! A bump changes what runs, or it is refused (issue 27). Each test is one class of edit
//! that once landed while the cluster would still run the old image (or an invalid
//! reference): a real registry, a real repository, a pass, and then what the renderer makes
//! of the branch — `kubectl kustomize` for overlays, the chart's own composition for Helm
//! values — not the bytes the edit replaced.

use crate::engine::INITIAL;
use crate::real_repos::{World, builds, commit_files, now};
use tagpromoter::engine::{Applied, PassReport};

/// The image a rendered Deployment runs, per container, in document order.
fn images(rendered: &str) -> Vec<String> {
    rendered
        .lines()
        .filter_map(|l| l.trim().trim_start_matches("- ").strip_prefix("image: "))
        .map(|s| s.trim_matches('"').to_string())
        .collect()
}

fn deployment(image: &str) -> String {
    format!(
        "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: app\nspec:\n  template:\n    spec:\n      containers:\n        - name: app\n          image: {image}\n"
    )
}

/// Commit a base (one Deployment running `image`) and the prod overlay `overlay` over it.
fn commit_overlay(world: &World, image: &str, overlay: &str) {
    commit_files(
        world,
        &[
            ("apps/base/deployment.yaml", deployment(image)),
            (
                "apps/base/kustomization.yaml",
                "resources: [deployment.yaml]\n".into(),
            ),
            ("apps/prod/kustomization.yaml", overlay.into()),
        ],
    );
}

fn landed(p: &PassReport) -> bool {
    p.environments
        .iter()
        .all(|e| matches!(e.applied, Applied::Landed { .. }))
}

fn failure(p: &PassReport) -> String {
    p.environments
        .iter()
        .find_map(|e| match &e.applied {
            Applied::Failed(f) => Some(f.to_string()),
            _ => None,
        })
        .unwrap_or_else(|| format!("no failure: {:?}", p.environments))
}

/// A Kustomize entry that pins `digest:` beside `newTag:` (as `kustomize edit set image
/// app:1.0.0@sha256:…` writes it): the digest is what runs, so the bump moves it with the
/// tag — to the digest the registry gives the new tag — though `pinDigest` is not set.
#[tokio::test(flavor = "multi_thread")]
async fn a_digest_pinned_beside_the_tag_moves_with_it() {
    let world = World::new(&[("README.md", "deploys\n".into())]);
    let image = world.image("acme/app");
    let pusher = world.pusher();
    let old = pusher
        .image("acme/app", Some("1.0.0"), INITIAL, "linux", "amd64")
        .await;
    let new = pusher
        .image("acme/app", Some("1.1.0"), INITIAL, "linux", "arm64")
        .await;
    let overlay = format!(
        "resources:\n  - ../base\nimages:\n  - name: {image}\n    newTag: 1.0.0\n    digest: {}\n",
        old.digest
    );
    commit_overlay(&world, &format!("{image}:0.9.0"), &overlay);
    world.promotion(
        "app",
        &image,
        "    - { name: prod, policy: { semver: '^1.0.0' }, target: { kustomize: { file: apps/prod/kustomization.yaml } } }\n",
    );
    assert_eq!(
        images(&builds(&world, &["apps/prod"])[0]),
        [format!("{image}:1.0.0@{}", old.digest)]
    );
    let p = world.pass(now()).await;
    assert!(landed(&p), "{:?}", p.environments);
    assert_eq!(
        images(&builds(&world, &["apps/prod"])[0]),
        [format!("{image}:1.1.0@{}", new.digest)],
        "the rendered Deployment runs the new tag's digest"
    );
}

/// Helm values in kube-prometheus-stack's layout (`registry`, `repository`, `tag`, and a
/// bare-hex `sha` that the chart renders as `@sha256:{{ sha }}`): the new digest is written
/// as bare hex — with `digest:` named and `pinDigest`, and also when the target names only
/// the tag and the values pin a `sha` (which would otherwise keep running the old image).
#[tokio::test(flavor = "multi_thread")]
async fn a_bare_hex_sha_is_written_as_bare_hex_and_never_left_behind() {
    let world = World::new(&[("README.md", "deploys\n".into())]);
    let image = world.image("prometheus/prometheus");
    let pusher = world.pusher();
    let old = pusher
        .image(
            "prometheus/prometheus",
            Some("v2.50.0"),
            INITIAL,
            "linux",
            "amd64",
        )
        .await;
    let new = pusher
        .image(
            "prometheus/prometheus",
            Some("v2.51.0"),
            INITIAL,
            "linux",
            "arm64",
        )
        .await;
    let hex = |d: &str| d.trim_start_matches("sha256:").to_string();
    let values = |tag: &str, sha: &str| {
        format!(
            "prometheus:\n  prometheusSpec:\n    image:\n      registry: {}\n      repository: prometheus/prometheus\n      tag: {tag}\n      sha: \"{sha}\"\n",
            world.registry.addr
        )
    };
    commit_files(
        &world,
        &[
            ("apps/dev/values.yaml", values("v2.50.0", &hex(&old.digest))),
            (
                "apps/prod/values.yaml",
                values("v2.50.0", &hex(&old.digest)),
            ),
        ],
    );
    world.promotion(
        "prometheus",
        &image,
        "    - { name: dev, policy: { semver: '^2.0.0' }, target: { helm: { file: apps/dev/values.yaml, tag: prometheus.prometheusSpec.image.tag } } }\n    - { name: prod, pinDigest: true, policy: { semver: '^2.0.0' }, target: { helm: { file: apps/prod/values.yaml, tag: prometheus.prometheusSpec.image.tag, digest: prometheus.prometheusSpec.image.sha } } }\n",
    );
    let p = world.pass(now()).await;
    assert!(landed(&p), "{:?}", p.environments);
    for env in ["dev", "prod"] {
        assert_eq!(
            world.file(&format!("apps/{env}/values.yaml")),
            values("v2.51.0", &hex(&new.digest)),
            "{env}"
        );
    }
}

/// Docker Hub's short names: the overlay's entry says `nginx` (as the base's containers
/// do), the target names `docker.io/library/nginx`, and tags are read from a mirror. The
/// existing entry is the one edited; no second entry that matches no container appears.
#[tokio::test(flavor = "multi_thread")]
async fn a_short_docker_hub_entry_is_the_entry_of_its_long_name() {
    let world = World::new(&[("README.md", "deploys\n".into())]);
    let mirror = world.push("library/nginx", &["1.25.0", "1.27.0"]).await;
    let overlay = "resources:\n  - ../base\nimages:\n  - name: nginx\n    newTag: 1.25.0\n";
    commit_overlay(&world, "nginx:1.24.0", overlay);
    world.promotion(
        "nginx",
        &mirror,
        "    - { name: prod, policy: { semver: '^1.0.0' }, target: { kustomize: { file: apps/prod/kustomization.yaml, name: docker.io/library/nginx } } }\n",
    );
    let p = world.pass(now()).await;
    assert!(landed(&p), "{:?}", p.environments);
    assert_eq!(
        world.file("apps/prod/kustomization.yaml"),
        overlay.replace("1.25.0", "1.27.0")
    );
    assert_eq!(images(&builds(&world, &["apps/prod"])[0]), ["nginx:1.27.0"]);
}

/// `newName:` says where the cluster pulls from; tags read from a mirror never rewrite it.
#[tokio::test(flavor = "multi_thread")]
async fn new_name_is_never_rewritten_to_the_registry_tags_are_read_from() {
    let world = World::new(&[("README.md", "deploys\n".into())]);
    let mirror = world.push("acme/app", &["1.0.0", "1.1.0"]).await;
    let overlay = "resources:\n  - ../base\nimages:\n  - name: ghcr.io/acme/app\n    newName: registry.internal:5000/acme/app\n    newTag: 1.0.0\n";
    commit_overlay(&world, "ghcr.io/acme/app:0.1.0", overlay);
    world.promotion(
        "app",
        &mirror,
        "    - { name: prod, policy: { semver: '^1.0.0' }, target: { kustomize: { file: apps/prod/kustomization.yaml, name: ghcr.io/acme/app } } }\n",
    );
    let p = world.pass(now()).await;
    assert!(landed(&p), "{:?}", p.environments);
    assert_eq!(
        images(&builds(&world, &["apps/prod"])[0]),
        ["registry.internal:5000/acme/app:1.1.0"]
    );
}

/// Helm's `repository:` path names where the chart pulls from: read and checked against
/// the image (`name:` when tags come from a mirror), never overwritten with the mirror.
#[tokio::test(flavor = "multi_thread")]
async fn a_helm_repository_is_checked_not_rewritten() {
    let world = World::new(&[("README.md", "deploys\n".into())]);
    let mirror = world.push("acme/app", &["1.0.0", "1.1.0"]).await;
    let values = "image:\n  repository: ghcr.io/acme/app\n  tag: 1.0.0\n";
    commit_files(&world, &[("apps/prod/values.yaml", values.into())]);
    let rules = |name: &str| {
        world.promotion(
            "app",
            &mirror,
            &format!("    - {{ name: prod, policy: {{ semver: '^1.0.0' }}, target: {{ helm: {{ file: apps/prod/values.yaml, tag: image.tag, repository: image.repository{name} }} }} }}\n"),
        )
    };
    rules("");
    let p = world.pass(now()).await;
    let why = failure(&p);
    assert!(
        why.contains("ghcr.io/acme/app") && why.contains("name: ghcr.io/acme/app"),
        "refused, saying what the file names and what to set: {why}"
    );
    assert_eq!(world.file("apps/prod/values.yaml"), values, "left alone");
    rules(", name: ghcr.io/acme/app");
    let p = world.pass(now()).await;
    assert!(landed(&p), "{:?}", p.environments);
    assert_eq!(
        world.file("apps/prod/values.yaml"),
        values.replace("tag: 1.0.0", "tag: 1.1.0")
    );
}

/// Argo CD Image Updater's write-back entry names the image as the cluster pulls it; with
/// tags read from a mirror, `name:` says which entry is the image's, as on other kinds.
#[tokio::test(flavor = "multi_thread")]
async fn an_argocd_source_entry_is_found_by_the_name_the_file_uses() {
    let world = World::new(&[("README.md", "deploys\n".into())]);
    let mirror = world.push("acme/app", &["1.0.0", "1.1.0"]).await;
    let source = "kustomize:\n  images:\n  - ghcr.io/acme/app:1.0.0\n";
    commit_files(
        &world,
        &[("apps/prod/.argocd-source-app.yaml", source.into())],
    );
    world.promotion(
        "app",
        &mirror,
        "    - { name: prod, policy: { semver: '^1.0.0' }, target: { argocdSource: { file: apps/prod/.argocd-source-app.yaml, name: ghcr.io/acme/app } } }\n",
    );
    let p = world.pass(now()).await;
    assert!(landed(&p), "{:?}", p.environments);
    assert_eq!(
        world.file("apps/prod/.argocd-source-app.yaml"),
        source.replace("1.0.0", "1.1.0")
    );
}

/// A new `images:` entry the containers do not match (they write `nginx`, the entry would
/// say `docker.io/library/nginx`) changes nothing the renderer makes: refused, saying so,
/// and the branch is left alone.
#[tokio::test(flavor = "multi_thread")]
async fn an_entry_the_renderer_would_not_apply_is_refused() {
    let world = World::new(&[("README.md", "deploys\n".into())]);
    let mirror = world.push("library/nginx", &["1.25.0", "1.27.0"]).await;
    let overlay = "resources:\n  - ../base\n";
    commit_overlay(&world, "nginx:1.25.0", overlay);
    world.promotion(
        "nginx",
        &mirror,
        "    - { name: prod, policy: { semver: '^1.0.0' }, target: { kustomize: { file: apps/prod/kustomization.yaml, name: docker.io/library/nginx } } }\n",
    );
    let p = world.pass(now()).await;
    let why = failure(&p);
    assert!(
        why.contains("nginx:1.25.0") && why.contains("kustomize"),
        "says what would still run: {why}"
    );
    assert_eq!(world.file("apps/prod/kustomization.yaml"), overlay);
}

/// `tagpromoter ARGS…` on the world's rules, with `cache` as its cache: exit code, stdout
/// and stderr.
fn cli(world: &World, cache: &std::path::Path, args: &[&str]) -> (Option<i32>, String, String) {
    let out = assert_cmd::Command::cargo_bin("tagpromoter")
        .unwrap()
        .env_remove("TAGPROMOTER_RULES")
        .arg("--rules")
        .arg(world.rules_dir())
        .arg("--cache-dir")
        .arg(cache)
        .args(["--log-format", "text"])
        .args(args)
        .output()
        .unwrap();
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// What `once` would refuse, `plan` shows refused — with the same reason — rather than
/// "promote" and no diff.
#[tokio::test(flavor = "multi_thread")]
async fn plan_says_refused_where_once_refuses() {
    let world = World::new(&[("README.md", "deploys\n".into())]);
    let image = world.push("acme/app", &["1.0.0", "1.1.0"]).await;
    // A flow-style entry without newTag: a key cannot be added line by line.
    let overlay = format!("images: [{{name: {image}, newName: {image}}}]\n");
    commit_files(&world, &[("apps/prod/kustomization.yaml", overlay.clone())]);
    world.promotion(
        "app",
        &image,
        "    - { name: prod, policy: { semver: '^1.0.0' }, target: { kustomize: { file: apps/prod/kustomization.yaml } } }\n",
    );
    let cache = tempfile::tempdir().unwrap();
    let (_, plan, _) = cli(&world, cache.path(), &["plan"]);
    let (code, once, _) = cli(&world, cache.path(), &["once"]);
    assert_eq!(code, Some(1), "{once}");
    assert!(once.contains("flow style"), "{once}");
    let line = plan
        .lines()
        .find(|l| l.starts_with("app/prod:"))
        .unwrap_or_default();
    assert!(
        line.contains("refused") && line.contains("flow style"),
        "plan: {plan}"
    );
    assert_eq!(world.file("apps/prod/kustomization.yaml"), overlay);
}

/// An entry added to a kustomization shows in `plan` as the lines added, with context —
/// not the whole file removed and written again — and `once` commits exactly that.
#[tokio::test(flavor = "multi_thread")]
async fn plan_shows_the_lines_an_insertion_adds() {
    let world = World::new(&[("README.md", "deploys\n".into())]);
    let image = world.push("acme/app", &["1.0.0"]).await;
    let overlay = "apiVersion: kustomize.config.k8s.io/v1beta1\nkind: Kustomization\nnamespace: prod\nresources:\n  - ../base\n  - service.yaml\n  - ingress.yaml\n";
    commit_files(&world, &[("apps/prod/kustomization.yaml", overlay.into())]);
    world.promotion(
        "app",
        &image,
        "    - { name: prod, policy: { semver: '^1.0.0' }, target: { kustomize: { file: apps/prod/kustomization.yaml } } }\n",
    );
    let cache = tempfile::tempdir().unwrap();
    let (_, plan, _) = cli(&world, cache.path(), &["plan"]);
    let expected = format!(
        "--- a/apps/prod/kustomization.yaml\n+++ b/apps/prod/kustomization.yaml\n@@ -5,3 +5,6 @@\n   - ../base\n   - service.yaml\n   - ingress.yaml\n+images:\n+  - name: {image}\n+    newTag: 1.0.0\n"
    );
    assert!(plan.starts_with(&expected), "plan:\n{plan}");
    let (code, _, _) = cli(&world, cache.path(), &["once"]);
    assert_eq!(code, Some(0));
    let committed = crate::support::git::git(
        &world.bare,
        &[
            "show",
            "--format=",
            "--unified=3",
            "main",
            "--",
            "apps/prod/kustomization.yaml",
        ],
    );
    assert!(committed.contains("+images:\n+  - name: "), "{committed}");
}

/// A person rolled prod back to a value that carries its digest (`1.0.0@sha256:…`, as Helm
/// values written for charts that compose `repo:tag` often do): `status` says held and how
/// to lift it, and `release` lifts it.
#[tokio::test(flavor = "multi_thread")]
async fn a_hold_on_a_value_with_its_digest_can_be_released() {
    let world = World::new(&[("README.md", "deploys\n".into())]);
    let image = world.image("acme/app");
    let pusher = world.pusher();
    let old = pusher
        .image("acme/app", Some("1.0.0"), INITIAL, "linux", "amd64")
        .await;
    let new = pusher
        .image("acme/app", Some("1.1.0"), INITIAL, "linux", "arm64")
        .await;
    let values = |v: &str| format!("image:\n  repository: {image}\n  tag: \"{v}\"\n");
    commit_files(
        &world,
        &[(
            "apps/prod/values.yaml",
            values(&format!("1.1.0@{}", new.digest)),
        )],
    );
    commit_files(
        &world,
        &[(
            "apps/prod/values.yaml",
            values(&format!("1.0.0@{}", old.digest)),
        )],
    );
    world.promotion(
        "app",
        &image,
        "    - { name: prod, policy: { semver: '^1.0.0' }, target: { helm: { file: apps/prod/values.yaml, tag: image.tag } } }\n",
    );
    let cache = tempfile::tempdir().unwrap();
    let (_, status, _) = cli(&world, cache.path(), &["status"]);
    assert!(status.contains("held"), "{status}");
    assert!(
        status.contains("tagpromoter release app --env prod"),
        "the state says which command lifts it: {status}"
    );
    let (code, out, err) = cli(&world, cache.path(), &["release", "app", "--env", "prod"]);
    assert_eq!(code, Some(0), "{out}{err}");
    let (code, _, _) = cli(&world, cache.path(), &["once"]);
    assert_eq!(code, Some(0));
    assert_eq!(
        world.file("apps/prod/values.yaml"),
        values(&format!("1.1.0@{}", new.digest))
    );
}

/// An environment that does not move lists, in text, the nearest tags it turned down and
/// why — not just "no tag is eligible".
#[tokio::test(flavor = "multi_thread")]
async fn text_plan_lists_the_tags_it_turned_down() {
    let world = World::new(&[("README.md", "deploys\n".into())]);
    let image = world
        .push("acme/app", &["2.0.0", "2.1.0", "3.0.0-rc.1"])
        .await;
    commit_files(
        &world,
        &[("apps/prod/values.yaml", "image:\n  tag: 1.0.0\n".into())],
    );
    world.promotion(
        "app",
        &image,
        "    - { name: prod, policy: { semver: '^1.0.0' }, target: { helm: { file: apps/prod/values.yaml, tag: image.tag } } }\n",
    );
    let cache = tempfile::tempdir().unwrap();
    let (_, plan, _) = cli(&world, cache.path(), &["plan"]);
    assert!(
        plan.contains(
            "turned down 2.1.0: outside the range: 2.1.0 does not have same major version as 1.0.0"
        ),
        "{plan}"
    );
    assert!(
        plan.contains("turned down 3.0.0-rc.1: outside the range"),
        "{plan}"
    );
}

/// An environment written in two files, one pinning the digest and one not, at one tag:
/// they agree (a digest only one pins is no disagreement), and both move — the pinned
/// digest with the tag.
#[tokio::test(flavor = "multi_thread")]
async fn targets_that_pin_and_do_not_pin_the_digest_move_together() {
    let world = World::new(&[("README.md", "deploys\n".into())]);
    let image = world.image("acme/app");
    let pusher = world.pusher();
    let old = pusher
        .image("acme/app", Some("1.0.0"), INITIAL, "linux", "amd64")
        .await;
    let new = pusher
        .image("acme/app", Some("1.1.0"), INITIAL, "linux", "arm64")
        .await;
    let values = |tag: &str, digest: &str| {
        format!("image:\n  repository: {image}\n  tag: {tag}\n  digest: {digest}\n")
    };
    let overlay = |tag: &str| format!("images:\n- name: {image}\n  newTag: {tag}\n");
    commit_files(
        &world,
        &[
            ("eu/values.yaml", values("1.0.0", &old.digest)),
            ("us/kustomization.yaml", overlay("1.0.0")),
        ],
    );
    world.promotion(
        "app",
        &image,
        "    - { name: prod, policy: { semver: '^1.0.0' }, targets: [ { helm: { file: eu/values.yaml, tag: image.tag } }, { kustomize: { file: us/kustomization.yaml } } ] }\n",
    );
    let p = world.pass(now()).await;
    assert!(landed(&p), "{:?}", p.environments);
    assert_eq!(world.file("eu/values.yaml"), values("1.1.0", &new.digest));
    assert_eq!(world.file("us/kustomization.yaml"), overlay("1.1.0"));
}

/// A tag moved by hand without its digest (`newTag: 1.1.0` beside 1.0.0's digest, what the
/// bot itself once left behind): up to date by its tag, and yet the pinned digest runs —
/// `status` says so rather than nothing.
#[tokio::test(flavor = "multi_thread")]
async fn a_pinned_digest_of_another_tag_is_said() {
    let world = World::new(&[("README.md", "deploys\n".into())]);
    let image = world.image("acme/app");
    let pusher = world.pusher();
    let old = pusher
        .image("acme/app", Some("1.0.0"), INITIAL, "linux", "amd64")
        .await;
    let new = pusher
        .image("acme/app", Some("1.1.0"), INITIAL, "linux", "arm64")
        .await;
    commit_files(
        &world,
        &[(
            "prod/kustomization.yaml",
            format!(
                "images:\n- name: {image}\n  newTag: 1.1.0\n  digest: {}\n",
                old.digest
            ),
        )],
    );
    world.promotion(
        "app",
        &image,
        "    - { name: prod, policy: { semver: '^1.0.0' }, target: { kustomize: { file: prod/kustomization.yaml } } }\n",
    );
    let cache = tempfile::tempdir().unwrap();
    let (_, status, _) = cli(&world, cache.path(), &["status"]);
    assert!(
        status.contains(&format!(
            "the file pins {} beside 1.1.0, and the registry's 1.1.0 is {}",
            old.digest, new.digest
        )),
        "{status}"
    );
}

/// An entry that matches none of the build's containers, in a build of other images (the
/// base names the image through a mirror): the edit would change nothing — refused,
/// naming what the containers run.
#[tokio::test(flavor = "multi_thread")]
async fn an_entry_matching_none_of_the_builds_containers_is_refused() {
    let world = World::new(&[("README.md", "deploys\n".into())]);
    let image = world.push("acme/app", &["1.0.0", "1.1.0"]).await;
    commit_overlay(
        &world,
        "mirror.example.com/acme/app:0.1.0",
        &format!("resources:\n  - ../base\nimages:\n  - name: {image}\n    newTag: 1.0.0\n"),
    );
    world.promotion(
        "app",
        &image,
        "    - { name: prod, policy: { semver: '^1.0.0' }, target: { kustomize: { file: apps/prod/kustomization.yaml } } }\n",
    );
    let p = world.pass(now()).await;
    let why = failure(&p);
    assert!(
        why.contains("no container runs")
            && why.contains("container app runs mirror.example.com/acme/app:0.1.0"),
        "{why}"
    );
}

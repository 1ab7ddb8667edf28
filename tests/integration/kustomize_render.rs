//! Edited Kustomize overlays still build: `kubectl kustomize` (kustomize v5) renders them,
//! with the new tag and digest in the Deployment. Needs `kubectl` on PATH (see README); a
//! missing kubectl fails the test rather than skipping it.

use std::path::Path;

use tagpromoter::image::{Digest, Repository, Tag};
use tagpromoter::manifest::{self, Outcome, Target, Wanted};

const BASE: &str = "apiVersion: apps/v1
kind: Deployment
metadata:
  name: podinfo
spec:
  selector:
    matchLabels: {app: podinfo}
  template:
    metadata:
      labels: {app: podinfo}
    spec:
      containers:
        - name: podinfo
          image: ghcr.io/stefanprodan/podinfo:6.5.3
";

const OVERLAY: &str = "# prod overlay: managed by tagpromoter, comments stay
apiVersion: kustomize.config.k8s.io/v1beta1
kind: Kustomization
resources:
  - ../../base   # the shared base

images:
  - name: ghcr.io/stefanprodan/podinfo
    newTag: \"6.5.3\"   # bumped by tagpromoter
    digest: sha256:0000000000000000000000000000000000000000000000000000000000000000
";

fn render(dir: &Path) -> String {
    crate::support::kustomize_build(dir)
}

#[test]
fn edited_overlay_renders_with_the_new_tag_and_digest() {
    let root = tempfile::tempdir().unwrap();
    let base = root.path().join("base");
    let overlay = root.path().join("overlays/prod");
    std::fs::create_dir_all(&base).unwrap();
    std::fs::create_dir_all(&overlay).unwrap();
    std::fs::write(base.join("deployment.yaml"), BASE).unwrap();
    std::fs::write(
        base.join("kustomization.yaml"),
        "resources:\n  - deployment.yaml\n",
    )
    .unwrap();
    std::fs::write(overlay.join("kustomization.yaml"), OVERLAY).unwrap();
    assert!(render(&overlay).contains("image: ghcr.io/stefanprodan/podinfo:6.5.3@sha256:0000"));

    let digest = format!("sha256:{}", "4".repeat(64));
    let wanted = Wanted {
        repository: Repository::new("ghcr.io/stefanprodan/podinfo").unwrap(),
        tag: Tag::new("6.5.4").unwrap(),
        digest: Some(Digest::new(&digest).unwrap()),
        pin: true,
    };
    let target = Target::Kustomize {
        name: "ghcr.io/stefanprodan/podinfo".into(),
    };
    let Outcome::Changed(edited) = manifest::apply(OVERLAY, &target, &wanted).unwrap() else {
        panic!("expected a change");
    };
    std::fs::write(overlay.join("kustomization.yaml"), &edited).unwrap();
    let rendered = render(&overlay);
    assert!(
        rendered.contains(&format!(
            "image: ghcr.io/stefanprodan/podinfo:6.5.4@{digest}"
        )),
        "{rendered}"
    );

    // Only the two scalars changed: every other line is as it was.
    let changed: Vec<(&str, &str)> = OVERLAY
        .lines()
        .zip(edited.lines())
        .filter(|(a, b)| a != b)
        .collect();
    assert_eq!(
        changed,
        vec![
            (
                "    newTag: \"6.5.3\"   # bumped by tagpromoter",
                "    newTag: \"6.5.4\"   # bumped by tagpromoter"
            ),
            (
                "    digest: sha256:0000000000000000000000000000000000000000000000000000000000000000",
                "    digest: sha256:4444444444444444444444444444444444444444444444444444444444444444"
            ),
        ]
    );
}

/// An overlay that had no `images:` gets one (issue 17), and kustomize renders the new tag.
#[test]
fn an_overlay_without_images_gets_an_entry_that_renders() {
    let root = tempfile::tempdir().unwrap();
    let base = root.path().join("base");
    let overlay = root.path().join("overlays/prod");
    std::fs::create_dir_all(&base).unwrap();
    std::fs::create_dir_all(&overlay).unwrap();
    std::fs::write(base.join("deployment.yaml"), BASE).unwrap();
    std::fs::write(
        base.join("kustomization.yaml"),
        "resources:\n  - deployment.yaml\n",
    )
    .unwrap();
    let bare = "apiVersion: kustomize.config.k8s.io/v1beta1\nkind: Kustomization\nresources:\n  - ../../base   # the shared base\nnamePrefix: prod-\n";
    let wanted = Wanted {
        repository: Repository::new("ghcr.io/stefanprodan/podinfo").unwrap(),
        tag: Tag::new("6.5.4").unwrap(),
        digest: None,
        pin: false,
    };
    let target = Target::Kustomize {
        name: "ghcr.io/stefanprodan/podinfo".into(),
    };
    let Outcome::Changed(edited) = manifest::apply(bare, &target, &wanted).unwrap() else {
        panic!("expected a change");
    };
    assert!(edited.starts_with(bare), "{edited}");
    std::fs::write(overlay.join("kustomization.yaml"), &edited).unwrap();
    let rendered = render(&overlay);
    assert!(
        rendered.contains("image: ghcr.io/stefanprodan/podinfo:6.5.4"),
        "{rendered}"
    );
}

#[test]
fn conformance_kustomize_outputs_render() {
    // Every kustomize case of the corpus whose expected output is a complete overlay builds.
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/data/conformance/yaml_rewrites/37-comment-spacing-kept");
    let root = tempfile::tempdir().unwrap();
    let overlay = root.path();
    std::fs::write(
        overlay.join("kustomization.yaml"),
        std::fs::read_to_string(dir.join("expected.yaml")).unwrap()
            + "resources:\n  - deployment.yaml\n",
    )
    .unwrap();
    std::fs::write(
        overlay.join("deployment.yaml"),
        BASE.replace(
            "ghcr.io/stefanprodan/podinfo:6.5.3",
            "ghcr.io/org/app:1.0.0",
        ),
    )
    .unwrap();
    assert!(render(overlay).contains("image: ghcr.io/org/app:1.2.10"));
}

/// The differential test of issue 27: 1,200 generated kustomizations (Docker Hub short and
/// long names, registries with ports, tags and digests, init containers, entries with and
/// without `newName`/`newTag`/`digest`/`tagSuffix`), each rendered by `kubectl kustomize`
/// before and after tagpromoter's bump. Every container's image must be what
/// tagpromoter's model of the image transformer says, and a container that names the
/// image as its entry does must run the effective reference tagpromoter computes. Fails
/// when a kind of case was never generated. (`cargo bench --bench kustomize_oracle` runs
/// 100,000.)
#[test]
fn generated_kustomizations_render_as_tagpromoter_computes() {
    use crate::support::kustomize_cases::{Coverage, generate, judge};
    let mut cov = Coverage::default();
    for (batch, seed) in [27u64, 270, 2700].into_iter().enumerate() {
        let dir = tempfile::tempdir().unwrap();
        judge(dir.path(), &generate(400, seed + batch as u64), &mut cov);
    }
    eprintln!(
        "kustomize oracle: {} cases, {} container images compared; {:?}",
        cov.cases, cov.images, cov.counts
    );
    assert!(
        cov.failures.is_empty(),
        "{} disagreements with kubectl kustomize, the first:\n{}",
        cov.failures.len(),
        cov.failures[0]
    );
    assert!(
        cov.missing().is_empty(),
        "never generated: {:?}",
        cov.missing()
    );
    assert!(cov.cases >= 1000);
}

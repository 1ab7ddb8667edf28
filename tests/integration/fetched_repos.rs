//! Files fetched from public GitOps repositories and charts (issue 27), kept byte for byte
//! under `tests/data/real-repos/fetched/<case>/` with their source in `SOURCE.md`: for each,
//! `case.yaml` names the target as rules would, the image, what runs today (`before`), the
//! bump, and what must run after it (`after`) — read off `kubectl kustomize` for Kustomize
//! cases, off the chart's own templates for Helm values. tagpromoter's edit of the file
//! must render exactly `after`; Kustomize cases are rendered for real before and after,
//! and the edit judged by the renderer's check as a pass would.

use std::path::{Path, PathBuf};

use tagpromoter::image::{Digest, ImageRef, Tag};
use tagpromoter::manifest::{self, Outcome};
use tagpromoter::yaml::{self, Node};

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/real-repos/fetched")
}

/// A case as `case.yaml` says it.
struct Case {
    name: String,
    dir: PathBuf,
    /// The `target:` mapping as written (flow style), for the rules.
    target: String,
    image: String,
    render: Option<String>,
    before: String,
    tag: String,
    digest: String,
    after: String,
}

fn case(dir: &Path) -> Case {
    let text = std::fs::read_to_string(dir.join("case.yaml")).unwrap();
    let docs = yaml::parse(&text).unwrap();
    let root = &docs[0].root;
    let get = |path: &[&str]| {
        path.iter()
            .try_fold(root, |n: &Node, k| n.get(k))
            .and_then(Node::as_scalar)
            .map(|s| s.value.clone())
    };
    let target = text
        .lines()
        .find_map(|l| l.strip_prefix("target: "))
        .unwrap_or_else(|| panic!("{}: a one-line target", dir.display()))
        .to_string();
    Case {
        name: dir.file_name().unwrap().to_string_lossy().into_owned(),
        dir: dir.to_path_buf(),
        target,
        image: get(&["image"]).unwrap(),
        render: get(&["render"]),
        before: get(&["before"]).unwrap(),
        tag: get(&["bump", "tag"]).unwrap(),
        digest: get(&["bump", "digest"]).unwrap(),
        after: get(&["after"]).unwrap(),
    }
}

/// Whether `rendered` (what tagpromoter computes) is the reference `expected`: the same
/// repository as Docker reads names (where the file names one), tag and digest.
fn same(rendered: &manifest::reference::Rendered, expected: &str) -> bool {
    // (A reference no registry accepts — a short digest in an example — as written.)
    let Ok(e) = ImageRef::parse(expected) else {
        return rendered.to_string() == expected;
    };
    let repository_ok = match &rendered.repository {
        Some(r) => tagpromoter::image::Repository::new(r).is_ok_and(|r| r.same_as(&e.repository)),
        None => true,
    };
    repository_ok
        && rendered.tag.as_deref() == e.tag.as_ref().map(Tag::as_str)
        && rendered.digest.as_deref() == e.digest.as_ref().map(Digest::as_str)
}

/// Every file of the case's tree, but its own `case.yaml` and `SOURCE.md`.
fn copy_tree(from: &Path, to: &Path) {
    for entry in std::fs::read_dir(from).unwrap().flatten() {
        let (path, name) = (entry.path(), entry.file_name());
        if name == "case.yaml" || name == "SOURCE.md" {
            continue;
        }
        let dest = to.join(&name);
        if path.is_dir() {
            std::fs::create_dir_all(&dest).unwrap();
            copy_tree(&path, &dest);
        } else {
            std::fs::copy(&path, &dest).unwrap();
        }
    }
}

/// One case: the bump made as a pass makes it, and what it renders.
fn check(c: &Case) -> Result<(), String> {
    let rules = tempfile::tempdir().unwrap();
    std::fs::write(
        rules.path().join("rules.yaml"),
        format!(
            "apiVersion: tagpromoter.io/v1alpha1\nkind: Settings\nspec:\n  git: {{ url: 'file:///nowhere' }}\n---\napiVersion: tagpromoter.io/v1alpha1\nkind: Promotion\nmetadata: {{ name: app }}\nspec:\n  image: {}\n  environments:\n    - name: prod\n      policy: {{ semver: {{ range: '>=0', loose: true }} }}\n      target: {}\n",
            c.image, c.target
        ),
    )
    .unwrap();
    let rules = tagpromoter::rules::load_dir(rules.path()).map_err(|e| format!("{e:?}"))?;
    let p = &rules.promotions[0];
    let env = &p.environments[0];
    let tag = Tag::new(&c.tag).unwrap();
    let digest = Digest::new(&c.digest).unwrap();
    let edits = tagpromoter::engine::bump::edits(p, env, None, &tag, Some(&digest));
    let work = tempfile::tempdir().unwrap();
    copy_tree(&c.dir, work.path());
    for edit in &edits {
        let path = work.path().join(&edit.file);
        let text =
            std::fs::read_to_string(&path).map_err(|e| format!("{}: {e}", edit.file.display()))?;
        let before = manifest::rendered(&text, &edit.target).map_err(|e| e.to_string())?;
        let Outcome::Changed(new) = manifest::apply(&text, &edit.target, &edit.wanted)
            .map_err(|e| format!("refused: {e}"))?
        else {
            return Err("the bump left the file as it was".into());
        };
        // Only the value's lines moved.
        let changed = text
            .lines()
            .zip(new.lines())
            .filter(|(a, b)| a != b)
            .count();
        if changed == 0 || changed > 2 {
            return Err(format!("{changed} lines changed"));
        }
        let after = manifest::rendered(&new, &edit.target).map_err(|e| e.to_string())?;
        if !after.iter().all(|(r, _)| same(r, &c.after)) {
            return Err(format!(
                "tagpromoter renders {} after the bump, not {}",
                after[0].0, c.after
            ));
        }
        // What it renders before is today's, where the file says it (a tag left to the
        // chart is the chart's to say).
        if !before
            .iter()
            .all(|(r, _)| r.inherited || same(r, &c.before))
        {
            return Err(format!(
                "tagpromoter reads {} before the bump, not {}",
                before[0].0, c.before
            ));
        }
        if let Some(dir) = &c.render {
            let before_build = crate::support::kustomize_build(&work.path().join(dir));
            if !before_build.contains(&format!("image: {}\n", c.before)) {
                return Err(format!("{dir} does not render {} today", c.before));
            }
            std::fs::write(&path, &new).unwrap();
            let after_build = crate::support::kustomize_build(&work.path().join(dir));
            if !after_build.contains(&format!("image: {}\n", c.after)) {
                return Err(format!("{dir} does not render {} after the bump", c.after));
            }
            // The renderer's check as a pass makes it of a Kustomize target: exactly the
            // intended change.
            if !matches!(edit.target, manifest::Target::Kustomize { .. }) {
                continue;
            }
            let manifest::Target::Kustomize { name } = &edit.target else {
                continue;
            };
            let intent = tagpromoter::render::images::Intent::of_edit(&new, name, &edit.wanted)
                .ok_or("no intent")?;
            tagpromoter::render::images::judge(&before_build, &after_build, &intent)
                .map_err(|e| format!("the renderer's check: {e}"))?;
        }
    }
    Ok(())
}

/// Every fetched case is bumped to exactly what its renderer must run.
#[test]
fn fetched_repositories_bump_to_what_their_renderer_runs() {
    let mut dirs: Vec<PathBuf> = std::fs::read_dir(root())
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.join("case.yaml").is_file())
        .collect();
    dirs.sort();
    assert!(dirs.len() >= 10, "at least ten fetched repositories");
    let mut failures = Vec::new();
    let mut rendered = 0;
    for dir in &dirs {
        let c = case(dir);
        rendered += usize::from(c.render.is_some());
        if let Err(e) = check(&c) {
            failures.push(format!("{}: {e}", c.name));
        }
    }
    assert!(rendered >= 3, "Kustomize cases are rendered for real");
    assert!(
        failures.is_empty(),
        "{} of {} cases:\n{}",
        failures.len(),
        dirs.len(),
        failures.join("\n")
    );
}

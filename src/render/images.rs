//! What a rendered build says about an edit: the images of every container (and init
//! container) before and after, and the verdict — the edit changed image references
//! exactly as intended, on every container of the image, and nothing else. Pure.

use crate::image::{ImageRef, Repository};
use crate::yaml::{self, Node, NodeKind};

/// One container's image in a rendered build.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImageUse {
    /// `Kind/name` of the object.
    pub object: String,
    /// The container's name.
    pub container: String,
    /// The image as rendered.
    pub image: String,
}

impl std::fmt::Display for ImageUse {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} container {} runs {}",
            self.object, self.container, self.image
        )
    }
}

/// The image of every item of every `containers` and `initContainers` list in the
/// rendered YAML (kustomize's own reach), in document order.
pub fn uses(rendered: &str) -> Result<Vec<ImageUse>, String> {
    let docs = yaml::parse(rendered).map_err(|e| format!("the build is not YAML: {e}"))?;
    let mut out = Vec::new();
    for doc in &docs {
        let text = |n: Option<&Node>| {
            n.and_then(Node::as_scalar)
                .map_or_else(String::new, |s| s.value.clone())
        };
        let object = format!(
            "{}/{}",
            text(doc.root.get("kind")),
            text(doc.root.get("metadata").and_then(|m| m.get("name")))
        );
        collect(&doc.root, &object, &mut out);
    }
    Ok(out)
}

fn collect(node: &Node, object: &str, out: &mut Vec<ImageUse>) {
    match &node.kind {
        NodeKind::Mapping(entries) => {
            for (k, v) in entries {
                let key = k.as_scalar().map(|s| s.value.as_str());
                if matches!(key, Some("containers" | "initContainers"))
                    && let NodeKind::Sequence(items) = &v.kind
                {
                    for item in items {
                        if let Some(image) = item.get("image").and_then(Node::as_scalar) {
                            let container = item
                                .get("name")
                                .and_then(Node::as_scalar)
                                .map_or_else(String::new, |s| s.value.clone());
                            out.push(ImageUse {
                                object: object.to_string(),
                                container,
                                image: image.value.clone(),
                            });
                        }
                    }
                }
                collect(v, object, out);
            }
        }
        NodeKind::Sequence(items) => items.iter().for_each(|i| collect(i, object, out)),
        _ => {}
    }
}

/// What an edit is meant to do to the build.
#[derive(Debug, Clone)]
pub struct Intent {
    /// The names the image goes by in the build, as Docker reads names: the target's
    /// (`spec.image` or its `name:`), and the one its entry renders (its `newName`).
    pub repositories: Vec<Repository>,
    /// The `images:` entry's name as the kustomization writes it (what it matches).
    pub entry: String,
    /// The tag every container of the image must run after the edit.
    pub tag: String,
    /// The digest it must run with (`None`: no digest).
    pub digest: Option<String>,
}

impl Intent {
    /// What the edited kustomization `after` means for the image of the entry `name`
    /// (`wanted`: what the bump writes): the reference tagpromoter's model says it renders.
    pub fn of_edit(after: &str, name: &str, wanted: &crate::manifest::Wanted) -> Option<Self> {
        let docs = crate::yaml::parse(after).ok()?;
        let rendered = crate::manifest::kustomize::rendered(&docs, name).ok()?;
        let entry = crate::manifest::kustomize::written_name(&docs, name).ok()?;
        let mut repositories = vec![wanted.repository.clone()];
        repositories.extend(
            rendered
                .repository
                .as_deref()
                .and_then(|r| Repository::new(r).ok()),
        );
        Some(Self {
            repositories,
            entry,
            tag: wanted.tag.to_string(),
            digest: rendered.digest,
        })
    }

    /// Whether `image` (as a container names it) is of the image.
    fn ours(&self, image: &str) -> bool {
        let name = crate::manifest::kustomize::split(image).0;
        Repository::new(name).is_ok_and(|r| self.repositories.iter().any(|o| o.same_as(&r)))
    }
}

/// How an edit changed a build, when it is what was intended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Changed {
    /// Containers whose image changed, with what they ran before; empty when the build
    /// runs no container of the image at all (then it cannot judge the edit).
    pub containers: Vec<(ImageUse, String)>,
}

/// The verdict on an edit from the builds before and after it: `Err` says what is wrong
/// (what still runs, what else changed), in words a person can act on.
pub fn judge(before: &str, after: &str, intent: &Intent) -> Result<Changed, String> {
    let old = uses(before)?;
    let new = uses(after)?;
    let image_line = |l: &str| {
        let t = l.trim_start();
        let t = t.strip_prefix("- ").unwrap_or(t);
        t.starts_with("image:")
    };
    let (a, b): (Vec<&str>, Vec<&str>) = (before.lines().collect(), after.lines().collect());
    if a.len() != b.len() || old.len() != new.len() {
        return Err("the edit changed the build beyond image references (its line count)".into());
    }
    if let Some((x, y)) = a
        .iter()
        .zip(&b)
        .find(|(x, y)| x != y && !(image_line(x) && image_line(y)))
    {
        return Err(format!(
            "the edit changed the build beyond image references: {:?} became {:?}",
            x.trim(),
            y.trim()
        ));
    }
    let runs_intended = |r: &ImageRef| {
        r.tag.as_ref().map(|t| t.as_str()) == Some(intent.tag.as_str())
            && r.digest.as_ref().map(|d| d.as_str()) == intent.digest.as_deref()
    };
    let mut changed = Vec::new();
    for (o, n) in old.iter().zip(&new) {
        if o.image == n.image {
            continue;
        }
        // Another image moved with it (a value shared through an anchor, say).
        if !intent.ours(&o.image) {
            return Err(format!(
                "the edit also changes {} container {}, another image: {} would become {}",
                n.object, n.container, o.image, n.image
            ));
        }
        let r = ImageRef::parse(&n.image).map_err(|e| {
            format!(
                "{} container {} would run {}, not a valid reference: {e}",
                n.object, n.container, n.image
            )
        })?;
        // The name as kustomize splits it (what it ran may be no valid reference).
        let before_name = crate::manifest::kustomize::split(&o.image).0;
        if !runs_intended(&r) || before_name != r.repository.as_str() {
            return Err(format!(
                "{} container {} would run {} (it ran {}), not {before_name}:{}{}",
                n.object,
                n.container,
                n.image,
                o.image,
                intent.tag,
                intent
                    .digest
                    .as_deref()
                    .map(|d| format!("@{d}"))
                    .unwrap_or_default()
            ));
        }
        changed.push((n.clone(), o.image.clone()));
    }
    // Every container of the image must run it after the edit: one the entry does not
    // match (the image written another way) would go on running the old one.
    let left: Vec<&ImageUse> = new
        .iter()
        .filter(|u| {
            intent.ours(&u.image) && ImageRef::parse(&u.image).is_ok_and(|r| !runs_intended(&r))
        })
        .collect();
    let listed = |uses: &[&ImageUse]| {
        uses.iter()
            .take(5)
            .map(|u| u.to_string())
            .collect::<Vec<_>>()
            .join("; ")
    };
    let any_ours = new.iter().any(|u| intent.ours(&u.image));
    match (changed.is_empty(), left.is_empty()) {
        // Every container of the image moved to it.
        (false, true) => {
            return Ok(Changed {
                containers: changed,
            });
        }
        // Every container of the image already runs it; or nothing is built at all (a
        // kustomization that only sets images, for a parent to include): nothing to judge.
        (true, true) if any_ours || new.is_empty() => {
            return Ok(Changed {
                containers: changed,
            });
        }
        // Other images only: the entry matches none of the containers.
        (true, true) => return Err(no_container(intent, &new)),
        _ => {}
    }
    let written = |u: &&ImageUse| crate::manifest::kustomize::split(&u.image).0.to_string();
    let as_entry = left.iter().any(|u| written(u) == intent.entry);
    let advice = match as_entry {
        true => "the entry names the image as these containers do, and yet they do not move: a later step sets their image (a later images: entry, replacements:, a patch, a component)".to_string(),
        false => format!(
            "the entry {} matches no such container (kustomize matches names literally, as written); set the target's name to {}",
            intent.entry,
            left.first().map(written).unwrap_or_default()
        ),
    };
    if changed.is_empty() {
        return Err(format!(
            "the build is the same before and after the edit ({}): {advice}",
            listed(&left)
        ));
    }
    Err(format!("after the edit {} still: {advice}", listed(&left)))
}

/// Why an edit that changed nothing in a build of other images is refused.
fn no_container(intent: &Intent, uses: &[ImageUse]) -> String {
    let running: Vec<String> = uses.iter().take(5).map(ToString::to_string).collect();
    format!(
        "the build is the same before and after the edit, and no container runs {} ({}): the entry {} matches none of them; set the target's name to the name a container uses",
        intent
            .repositories
            .first()
            .map(ToString::to_string)
            .unwrap_or_default(),
        running.join("; "),
        intent.entry
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn build(images: &[(&str, &str)]) -> String {
        let mut out = String::from(
            "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: app\nspec:\n  template:\n    spec:\n      containers:\n",
        );
        for (name, image) in images {
            out.push_str(&format!("      - image: {image}\n        name: {name}\n"));
        }
        out
    }

    #[test]
    fn the_verdict_names_what_still_runs_and_what_else_moved() {
        let repo = Repository::new("docker.io/library/nginx").unwrap();
        let intent = Intent {
            repositories: vec![repo],
            entry: "nginx".into(),
            tag: "1.27.0".into(),
            digest: None,
        };
        let before = build(&[("web", "nginx:1.25.0"), ("side", "busybox:1")]);
        let good = build(&[("web", "nginx:1.27.0"), ("side", "busybox:1")]);
        assert_eq!(judge(&before, &good, &intent).unwrap().containers.len(), 1);
        let same = judge(&before, &before, &intent).unwrap_err();
        assert!(
            same.contains("Deployment/app container web runs nginx:1.25.0"),
            "{same}"
        );
        let half = build(&[
            ("web", "nginx:1.27.0"),
            ("old", "docker.io/library/nginx:1.25.0"),
        ]);
        let before2 = build(&[
            ("web", "nginx:1.25.0"),
            ("old", "docker.io/library/nginx:1.25.0"),
        ]);
        let e = judge(&before2, &half, &intent).unwrap_err();
        assert!(
            e.contains("container old runs docker.io/library/nginx:1.25.0 still"),
            "{e}"
        );
        let already = build(&[("web", "nginx:1.27.0"), ("side", "busybox:1")]);
        assert!(
            judge(&already, &already, &intent)
                .unwrap()
                .containers
                .is_empty()
        );
        // An entry that matches nothing in a build of other images changes nothing.
        let unrelated = build(&[("side", "busybox:1")]);
        let e = judge(&unrelated, &unrelated, &intent).unwrap_err();
        assert!(
            e.contains("no container runs docker.io/library/nginx"),
            "{e}"
        );
        // Nothing built at all: nothing to judge.
        assert!(judge("", "", &intent).unwrap().containers.is_empty());
        // Another image moved with it (a value shared through an anchor).
        let both = build(&[("web", "nginx:1.27.0"), ("side", "busybox:1.27.0")]);
        let e = judge(&before, &both, &intent).unwrap_err();
        assert!(
            e.contains("also changes Deployment/app container side, another image"),
            "{e}"
        );
        let other = good.replace("name: app", "name: app2");
        assert!(
            judge(&before, &other, &intent)
                .unwrap_err()
                .contains("beyond image")
        );
        let wrong = build(&[("web", "nginx:1.26.0"), ("side", "busybox:1")]);
        assert!(
            judge(&before, &wrong, &intent)
                .unwrap_err()
                .contains("not nginx:1.27.0")
        );
    }
}

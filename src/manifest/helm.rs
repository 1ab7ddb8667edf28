//! Helm values at a dotted path with `[index]` (`image.tag`, `images[0].tag`). A key that
//! literally contains dots (`image.tag:` at the root) is matched as written when no nested
//! path exists. Paths that run through an alias or a merge key are refused: the value lives
//! elsewhere, and the target should name that place. A value may hold a tag, or a whole
//! reference (`image: ghcr.io/acme/app:1.2.3`), whose tag and digest are rewritten inside
//! the one string with the repository kept as written.

use std::fmt;
use std::str::FromStr;

use crate::yaml::{Document, Node, NodeKind, Position};

use super::patch::{Replacement, editable_scalar};
use super::reference::{Rendered, digest_to_write};
use super::{Current, EditError, Wanted};
use crate::image::ImageRef;

/// One step of a path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Segment {
    /// A mapping key.
    Key(String),
    /// A list index.
    Index(usize),
}

/// A parsed Helm values path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HelmPath {
    segments: Vec<Segment>,
    text: String,
}

/// Why a path does not parse.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid values path {text:?}: {why} (write keys separated by dots, indexes as [0])")]
pub struct PathError {
    /// The path as written.
    pub text: String,
    /// What is wrong.
    pub why: &'static str,
}

impl FromStr for HelmPath {
    type Err = PathError;

    fn from_str(text: &str) -> Result<Self, PathError> {
        let err = |why| PathError {
            text: text.to_string(),
            why,
        };
        let mut segments = Vec::new();
        for part in text.split('.') {
            let (key, mut rest) = match part.find('[') {
                Some(i) => (&part[..i], &part[i..]),
                None => (part, ""),
            };
            if key.is_empty() && (segments.is_empty() || rest.is_empty()) {
                return Err(err("empty key"));
            }
            if key.contains(']') {
                return Err(err("unbalanced ]"));
            }
            if !key.is_empty() {
                segments.push(Segment::Key(key.to_string()));
            }
            while !rest.is_empty() {
                let Some(close) = rest.find(']') else {
                    return Err(err("unbalanced ["));
                };
                let index = rest[1..close]
                    .parse()
                    .map_err(|_| err("an index is not a number"))?;
                segments.push(Segment::Index(index));
                rest = &rest[close + 1..];
                if !rest.is_empty() && !rest.starts_with('[') {
                    return Err(err("text after ]"));
                }
            }
        }
        Ok(Self {
            segments,
            text: text.to_string(),
        })
    }
}

impl fmt::Display for HelmPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

impl HelmPath {
    /// The steps of the path.
    pub fn segments(&self) -> &[Segment] {
        &self.segments
    }
}

/// Find the node at `path` in the first document that has it.
pub fn resolve<'d>(docs: &'d [Document], path: &HelmPath) -> Result<&'d Node, EditError> {
    let mut first_error = None;
    for doc in docs {
        match walk(&doc.root, path.segments(), path) {
            Ok(node) => return Ok(node),
            Err(e) => {
                first_error.get_or_insert(e);
            }
        }
    }
    Err(first_error.unwrap_or_else(|| not_found(path, "the file has no documents")))
}

fn not_found(path: &HelmPath, detail: &str) -> EditError {
    EditError::NotFound {
        what: format!("values path {path}"),
        hint: format!("; {detail}"),
    }
}

fn walk<'d>(node: &'d Node, rest: &[Segment], path: &HelmPath) -> Result<&'d Node, EditError> {
    let Some(step) = rest.first() else {
        return Ok(node);
    };
    if let NodeKind::Alias(_) = node.kind {
        return Err(EditError::Alias {
            at: node.position,
            what: format!("a step of {path}"),
        });
    }
    match (step, &node.kind) {
        (Segment::Index(i), NodeKind::Sequence(items)) => match items.get(*i) {
            Some(item) => walk(item, &rest[1..], path),
            None => Err(not_found(
                path,
                &format!("the list at {} has {} items", node.position, items.len()),
            )),
        },
        (Segment::Key(key), NodeKind::Mapping(entries)) => {
            let lookup = |k: &str| {
                entries
                    .iter()
                    .find(|(n, _)| n.as_scalar().is_some_and(|s| s.value == k))
                    .map(|(_, v)| v)
            };
            if let Some(Ok(found)) = lookup(key).map(|child| walk(child, &rest[1..], path)) {
                return Ok(found);
            }
            // A key that literally contains dots: `image.tag:` for the path image.tag.
            let keys: Vec<&str> = rest
                .iter()
                .map_while(|s| match s {
                    Segment::Key(k) => Some(k.as_str()),
                    Segment::Index(_) => None,
                })
                .collect();
            for n in (2..=keys.len()).rev() {
                if let Some(child) = lookup(&keys[..n].join(".")) {
                    return walk(child, &rest[n..], path);
                }
            }
            match lookup(key) {
                Some(child) => walk(child, &rest[1..], path),
                None if lookup("<<").is_some() => Err(EditError::Invalid {
                    at: node.position,
                    why: format!(
                        "{key} of {path} would come from a merge key (<<); point the target at the anchored mapping's own path"
                    ),
                }),
                None => Err(not_found(
                    path,
                    &format!("the mapping at {} has no key {key:?}", node.position),
                )),
            }
        }
        (Segment::Index(_), _) => Err(not_found(
            path,
            &format!("{} at {} is not a list", node.kind_name(), node.position),
        )),
        (Segment::Key(key), _) => Err(not_found(
            path,
            &format!(
                "{} at {} is not a mapping with {key:?}",
                node.kind_name(),
                node.position
            ),
        )),
    }
}

/// The replacements for several `(path, value)` pairs.
pub fn replacements(
    docs: &[Document],
    edits: &[(HelmPath, String)],
) -> Result<Vec<Replacement>, EditError> {
    edits
        .iter()
        .map(|(path, value)| {
            let node = resolve(docs, path)?;
            Replacement::of(node, &format!("the value at {path}"), value)
        })
        .collect()
}

/// A Helm tag value and the values a chart composes the image from around it: the
/// `registry`, `repository` (or `image`) and `digest` (or bare-hex `sha`) beside the tag —
/// or at the paths the target names — and the chart-wide registry: `global.imageRegistry`,
/// which charts with a `registry` key let override it (Bitnami's `common.images.image`,
/// kube-prometheus-stack, Grafana), or `global.image.registry`, which stands in for a
/// missing one (ingress-nginx merges `global.image` under each image).
struct Layout<'d> {
    tag: &'d Node,
    tag_path: String,
    registry: Option<&'d Node>,
    global_registry: Option<&'d Node>,
    repository: Option<&'d Node>,
    /// The digest's node, where it is, and how it is written.
    digest: Option<(&'d Node, String, Form)>,
}

/// How a values file writes a digest.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Form {
    /// `sha256:<hex>`.
    Full,
    /// `<hex>` (a `sha:` key the chart prefixes with `@sha256:`).
    Bare,
    /// `@sha256:<hex>` (a chart that appends the value as written).
    At,
}

impl Form {
    /// How the value `value` at a key named `key` is written.
    fn of(key: Option<&str>, value: Option<&str>) -> Self {
        match value {
            Some(v) if v.starts_with('@') => Self::At,
            Some(v) if is_hex(v) => Self::Bare,
            Some(v) if v.contains(':') => Self::Full,
            _ if key == Some("sha") => Self::Bare,
            _ => Self::Full,
        }
    }

    /// `digest` (`sha256:<hex>`) as this form writes it.
    fn write(self, digest: &str) -> String {
        match self {
            Self::Full => digest.to_string(),
            Self::Bare => digest.trim_start_matches("sha256:").to_string(),
            Self::At => format!("@{digest}"),
        }
    }

    /// The written `value` as `sha256:<hex>`.
    fn read(self, value: &str) -> String {
        match self {
            Self::Full => value.to_string(),
            Self::Bare => format!("sha256:{value}"),
            Self::At => value.trim_start_matches('@').to_string(),
        }
    }
}

/// The non-empty text of a scalar node.
fn text(node: Option<&Node>) -> Option<&str> {
    node.and_then(Node::as_scalar)
        .filter(|s| !crate::yaml::is_null(s) && !s.value.is_empty())
        .map(|s| s.value.as_str())
}

fn is_hex(s: &str) -> bool {
    s.len() == 64 && s.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
}

/// The mapping that holds the tag (its path without the last key), when the path ends in
/// a key of a mapping (not a literally dotted key at the root).
fn parent<'d>(docs: &'d [Document], tag: &HelmPath) -> Option<&'d Node> {
    let (Segment::Key(last), prefix) = tag.segments().split_last()? else {
        return None;
    };
    docs.iter().find_map(|doc| {
        let node = walk(&doc.root, prefix, tag).ok()?;
        node.get(last).is_some().then_some(node)
    })
}

fn layout<'d>(
    docs: &'d [Document],
    tag: &HelmPath,
    repository: Option<&HelmPath>,
    digest: Option<&HelmPath>,
) -> Result<Layout<'d>, EditError> {
    let node = resolve(docs, tag)?;
    editable_scalar(node, &format!("the value at {tag}"))?;
    let beside = parent(docs, tag);
    let sibling = |key: &str| beside.and_then(|p| p.get(key));
    let repository = match repository {
        Some(path) => Some(resolve(docs, path)?),
        None => sibling("repository")
            .or_else(|| sibling("image").filter(|n| n.as_scalar().is_some()))
            .or_else(|| sibling("name").filter(|n| n.as_scalar().is_some())),
    };
    let digest = match digest {
        Some(path) => {
            let d = resolve(docs, path)?;
            let key = match path.segments().last() {
                Some(Segment::Key(k)) => Some(k.as_str()),
                _ => None,
            };
            Some((d, path.to_string(), Form::of(key, text(Some(d)))))
        }
        None => ["digest", "sha"].iter().find_map(|key| {
            let d = sibling(key)?;
            d.as_scalar()?;
            let path = match tag.to_string().rsplit_once('.') {
                Some((prefix, _)) => format!("{prefix}.{key}"),
                None => key.to_string(),
            };
            Some((d, path, Form::of(Some(key), text(Some(d)))))
        }),
    };
    let registry = sibling("registry");
    let global = |path: &[&str]| {
        docs.iter().find_map(|d| {
            path.iter()
                .try_fold(&d.root, |node, key| node.get(key))
                .filter(|n| text(Some(n)).is_some())
        })
    };
    let global_registry = match registry {
        Some(_) => global(&["global", "imageRegistry"]),
        None => global(&["global", "image", "registry"]),
    };
    Ok(Layout {
        tag: node,
        tag_path: tag.to_string(),
        registry,
        global_registry,
        repository,
        digest,
    })
}

impl Layout<'_> {
    /// The tag value, split from a digest it carries (`1.2.3@sha256:…`).
    fn tag_value(&self) -> (&str, Option<&str>) {
        let value = self.tag.as_scalar().map_or("", |s| s.value.as_str());
        match value.split_once('@') {
            Some((t, d)) => (t, Some(d)),
            None => (value, None),
        }
    }

    /// The digest value beside the tag, as `algorithm:hex`.
    fn digest_value(&self) -> Option<String> {
        let (node, _, form) = self.digest.as_ref()?;
        Some(form.read(text(Some(node))?))
    }

    /// What the chart renders: `[registry/]repository[:tag][@digest]`.
    fn rendered(&self) -> Rendered {
        let registry = text(self.global_registry).or_else(|| text(self.registry));
        let repository = text(self.repository).map(|repo| match registry {
            Some(r) => format!("{}/{repo}", r.trim_end_matches('/')),
            None => repo.to_string(),
        });
        let (tag, in_tag) = self.tag_value();
        Rendered {
            repository,
            tag: (!tag.is_empty()).then(|| tag.to_string()),
            digest: self.digest_value().or_else(|| in_tag.map(str::to_string)),
            inherited: tag.is_empty(),
        }
    }
}

/// The current tag (and digest) at the given paths and beside them.
pub fn current(
    docs: &[Document],
    tag: &HelmPath,
    digest: Option<&HelmPath>,
) -> Result<Current, EditError> {
    let l = layout(docs, tag, None, digest)?;
    if let Some((node, path, _)) = &l.digest {
        editable_scalar(node, &format!("the value at {path}"))?;
    }
    let (value, in_tag) = l.tag_value();
    Ok(Current {
        tag: Some(value.to_string()),
        digest: l.digest_value().or_else(|| in_tag.map(str::to_string)),
        at: l.tag.position,
    })
}

/// What the chart renders from the values around `tag`, and where the tag is.
pub fn rendered(
    docs: &[Document],
    tag: &HelmPath,
    repository: Option<&HelmPath>,
    digest: Option<&HelmPath>,
) -> Result<(Rendered, Position), EditError> {
    let l = layout(docs, tag, repository, digest)?;
    Ok((l.rendered(), l.tag.position))
}

/// The replacements that make the values around `tag` render `wanted`: the tag; the digest
/// (in the form its place holds: bare hex for a `sha`) where one is pinned — beside the
/// tag, inside it, or asked for by `pin`. The repository and registry are never written.
pub fn tag_replacements(
    docs: &[Document],
    tag: &HelmPath,
    repository: Option<&HelmPath>,
    digest: Option<&HelmPath>,
    wanted: &Wanted,
) -> Result<Vec<Replacement>, EditError> {
    let l = layout(docs, tag, repository, digest)?;
    let (_, in_tag) = l.tag_value();
    let pinned = in_tag.is_some() || l.digest_value().is_some();
    let what = format!("the value at {}", l.tag_path);
    let d = digest_to_write(pinned, wanted, l.tag.position, &what)?;
    let mut out = Vec::new();
    let tag_text = match (in_tag, d) {
        (Some(_), Some(d)) => format!("{}@{d}", wanted.tag),
        _ => wanted.tag.to_string(),
    };
    out.push(Replacement::of(l.tag, &what, &tag_text)?);
    match (&l.digest, d) {
        (Some((node, path, form)), Some(d)) => {
            let value = form.write(d.as_str());
            out.push(Replacement::of(
                node,
                &format!("the value at {path}"),
                &value,
            )?);
        }
        (None, Some(_)) if in_tag.is_none() => {
            return Err(EditError::Invalid {
                at: l.tag.position,
                why: format!(
                    "pinDigest is set, and there is no digest beside {} to write; name it with target.helm.digest",
                    l.tag_path
                ),
            });
        }
        _ => {}
    }
    Ok(out)
}

/// The reference held at `path`, and its node.
fn reference<'d>(docs: &'d [Document], path: &HelmPath) -> Result<(&'d Node, ImageRef), EditError> {
    let node = resolve(docs, path)?;
    let value = &editable_scalar(node, &format!("the value at {path}"))?.value;
    let reference = ImageRef::parse(value).map_err(|e| EditError::Invalid {
        at: node.position,
        why: format!("the value at {path} is not an image reference ({e}); point image: at a value like ghcr.io/acme/app:1.2.3, or use tag: for a tag alone"),
    })?;
    Ok((node, reference))
}

/// The tag (and digest) inside the reference at `path`.
pub fn image_current(docs: &[Document], path: &HelmPath) -> Result<Current, EditError> {
    let (node, r) = reference(docs, path)?;
    Ok(Current {
        tag: r.tag.map(|t| t.to_string()),
        digest: r.digest.map(|d| d.to_string()),
        at: node.position,
    })
}

/// The reference at `path` as it renders.
pub fn image_rendered(
    docs: &[Document],
    path: &HelmPath,
) -> Result<(Rendered, Position), EditError> {
    let (node, r) = reference(docs, path)?;
    Ok((
        Rendered::of_reference(&r.to_string()).unwrap_or_default(),
        node.position,
    ))
}

/// The reference at `path` with `wanted`'s tag, and its digest where the value pins one
/// (or `pin` asks), its repository as written.
pub fn image_replacement(
    docs: &[Document],
    path: &HelmPath,
    wanted: &Wanted,
) -> Result<Replacement, EditError> {
    let (node, current) = reference(docs, path)?;
    let what = format!("the value at {path}");
    let digest = digest_to_write(current.digest.is_some(), wanted, node.position, &what)?;
    let new = ImageRef {
        repository: current.repository,
        tag: Some(wanted.tag.clone()),
        digest: digest.cloned(),
    };
    Replacement::of(node, &what, &new.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_parse_keys_and_indexes() {
        let p: HelmPath = "images[0].tag".parse().unwrap();
        assert_eq!(
            p.segments(),
            &[
                Segment::Key("images".into()),
                Segment::Index(0),
                Segment::Key("tag".into())
            ]
        );
        let p: HelmPath = "a[1][2]".parse().unwrap();
        assert_eq!(p.segments().len(), 3);
        for bad in ["", "a..b", "a[x]", "a[0", "a]", "a[0]b"] {
            assert!(bad.parse::<HelmPath>().is_err(), "{bad}");
        }
    }
}

//! Helm values at a dotted path with `[index]` (`image.tag`, `images[0].tag`). A key that
//! literally contains dots (`image.tag:` at the root) is matched as written when no nested
//! path exists. Paths that run through an alias or a merge key are refused: the value lives
//! elsewhere, and the target should name that place. A value may hold a tag, or a whole
//! reference (`image: ghcr.io/acme/app:1.2.3`), whose tag and digest are rewritten inside
//! the one string with the repository kept as written.

use std::fmt;
use std::str::FromStr;

use crate::yaml::{Document, Node, NodeKind};

use super::patch::{Replacement, editable_scalar};
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

/// The current tag (and digest) at the given paths.
pub fn current(
    docs: &[Document],
    tag: &HelmPath,
    digest: Option<&HelmPath>,
) -> Result<Current, EditError> {
    let node = resolve(docs, tag)?;
    let value = editable_scalar(node, &format!("the value at {tag}"))?
        .value
        .clone();
    let digest = match digest {
        None => None,
        Some(path) => {
            let d = resolve(docs, path)?;
            Some(
                editable_scalar(d, &format!("the value at {path}"))?
                    .value
                    .clone(),
            )
        }
    };
    Ok(Current {
        tag: Some(value),
        digest,
        at: node.position,
    })
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

/// The reference at `path` with `wanted`'s tag (and digest), its repository as written.
pub fn image_replacement(
    docs: &[Document],
    path: &HelmPath,
    wanted: &Wanted,
) -> Result<Replacement, EditError> {
    let (node, current) = reference(docs, path)?;
    if current.digest.is_some() && wanted.digest.is_none() {
        return Err(EditError::Invalid {
            at: node.position,
            why: format!(
                "{current} is pinned by digest, and no digest is known for {}; enable pinDigest or drop the digest",
                wanted.tag
            ),
        });
    }
    let new = ImageRef {
        repository: current.repository,
        tag: Some(wanted.tag.clone()),
        digest: wanted.digest.clone(),
    };
    Replacement::of(node, &format!("the value at {path}"), &new.to_string())
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

//! Flux-style setter markers: a scalar followed on its line by
//! `# {"$imagepolicy": "<a>:<b>[:tag|:name|:digest]"}` is rewritten to the policy's full
//! reference, or to its tag, repository or digest. Unmarked scalars and markers of policies
//! not asked about are left alone, so repositories prepared for Flux work unchanged.

use crate::image::ImageRef;
use crate::yaml::{Document, Node, NodeKind, Position, line_around};

use super::patch::{Replacement, editable_scalar};
use super::reference::{Rendered, digest_to_write};
use super::{Current, EditError, Wanted, walk};

/// Which part of a reference a marker asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Field {
    /// The full reference `repository:tag[@digest]`.
    Reference,
    /// `:tag`.
    Tag,
    /// `:name`, the repository.
    Name,
    /// `:digest`.
    Digest,
}

/// A marker found after a scalar: the policy id and the field.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Marker {
    /// `<a>:<b>`.
    pub policy: String,
    /// Which part.
    pub field: Field,
}

/// The marker in the comment that follows the scalar `node` on its line, if any.
pub fn marker_after(src: &str, node: &Node) -> Option<Marker> {
    let scalar = node.as_scalar()?;
    let line = line_around(src, scalar.token.start);
    let after = src.get(scalar.token.end..line.end)?;
    let comment = after.trim_start().strip_prefix('#')?;
    let start = comment.find('{')?;
    let end = comment.rfind('}')?;
    let json: serde_json::Value = serde_json::from_str(comment.get(start..=end)?).ok()?;
    let id = json.get("$imagepolicy")?.as_str()?;
    let mut parts = id.split(':');
    let (a, b) = (parts.next()?, parts.next()?);
    let field = match parts.next() {
        None => Field::Reference,
        Some("tag") => Field::Tag,
        Some("name") => Field::Name,
        Some("digest") => Field::Digest,
        Some(_) => return None,
    };
    if parts.next().is_some() || a.is_empty() || b.is_empty() {
        return None;
    }
    Some(Marker {
        policy: format!("{a}:{b}"),
        field,
    })
}

fn marked<'d>(src: &str, docs: &'d [Document]) -> Vec<(&'d Node, Marker)> {
    let mut out = Vec::new();
    for doc in docs {
        walk(&doc.root, None, &mut |_, node| {
            if let Some(m) = marker_after(src, node) {
                out.push((node, m));
            }
        });
    }
    out
}

/// The mapping that holds `node` as a value, if one does.
fn parent_of<'d>(docs: &'d [Document], node: &Node) -> Option<&'d Node> {
    fn find<'d>(at: &'d Node, node: &Node) -> Option<&'d Node> {
        match &at.kind {
            NodeKind::Mapping(entries) => entries.iter().find_map(|(_, v)| {
                if std::ptr::eq(v, node) {
                    Some(at)
                } else {
                    find(v, node)
                }
            }),
            NodeKind::Sequence(items) => items.iter().find_map(|i| find(i, node)),
            _ => None,
        }
    }
    docs.iter().find_map(|d| find(&d.root, node))
}

/// A digest pinned beside a `:tag` marker that no `:digest` marker of the policy marks
/// (`digest: sha256:…` or a bare-hex `sha:` in the same mapping, as in a Kustomize entry
/// or Helm values): it runs, so it moves with the tag. The node, and whether it is bare hex.
fn digest_beside<'d>(
    src: &str,
    docs: &'d [Document],
    tag: &Node,
    policy: &str,
) -> Option<(&'d Node, bool)> {
    let parent = parent_of(docs, tag)?;
    ["digest", "sha"].iter().find_map(|key| {
        let node = parent.get(key)?;
        let value = node.as_scalar().filter(|s| !crate::yaml::is_null(s))?;
        if value.value.is_empty() || marker_after(src, node).is_some_and(|m| m.policy == policy) {
            return None;
        }
        let bare = !value.value.contains(':');
        Some((node, bare))
    })
}

/// What to say when no marker matches: the policies the file's markers do name (a Flux
/// file names `flux-system:<policy>`; `target.marker.policy` takes that id).
fn carried(src: &str, docs: &[Document]) -> String {
    let mut ids: Vec<String> = marked(src, docs)
        .into_iter()
        .map(|(_, m)| m.policy)
        .collect();
    ids.sort();
    ids.dedup();
    if ids.is_empty() {
        "; the file carries no $imagepolicy markers".into()
    } else {
        format!(
            "; the file's markers name {}: set target.marker.policy to one of them",
            ids.join(", ")
        )
    }
}

/// Replacements for every marker naming one of `policies` (policy id, reference).
pub fn replacements(
    src: &str,
    docs: &[Document],
    policies: &[(String, ImageRef)],
) -> Result<Vec<Replacement>, EditError> {
    let mut out = Vec::new();
    for (node, marker) in marked(src, docs) {
        let Some((_, reference)) = policies.iter().find(|(id, _)| *id == marker.policy) else {
            continue;
        };
        let value = match marker.field {
            Field::Reference => reference.to_string(),
            Field::Name => reference.repository.to_string(),
            Field::Tag => match &reference.tag {
                Some(t) => t.to_string(),
                None => continue,
            },
            Field::Digest => match &reference.digest {
                Some(d) => d.to_string(),
                None => {
                    return Err(EditError::Invalid {
                        at: node.position,
                        why: format!(
                            "the marker asks for the digest of {}, and none is known; enable pinDigest or mark the tag instead",
                            marker.policy
                        ),
                    });
                }
            },
        };
        out.push(Replacement::of(node, "the marked value", &value)?);
    }
    Ok(out)
}

/// Replacements that make the markers of `policy` run `wanted`: `:tag` markers get the
/// tag, `:digest` markers the digest, a full reference its tag (and digest where it pins
/// one, or `pin` asks) with its repository as written; `:name` markers are never
/// rewritten (the repository a file names stays).
pub fn bump(
    src: &str,
    docs: &[Document],
    policy: &str,
    wanted: &Wanted,
) -> Result<Vec<Replacement>, EditError> {
    let mut out = Vec::new();
    for (node, marker) in marked(src, docs) {
        if marker.policy != policy {
            continue;
        }
        let what = format!("the value marked {{\"$imagepolicy\": \"{policy}\"}}");
        let value = editable_scalar(node, &what)?.value.clone();
        let new = match marker.field {
            Field::Name => continue,
            Field::Tag => {
                // A digest the tag carries (`1.2@sha256:…`) or that sits beside it runs.
                let beside = digest_beside(src, docs, node, policy);
                let pinned = value.contains('@') || beside.is_some();
                let digest = digest_to_write(pinned, wanted, node.position, &what)?;
                if let (Some((at, bare)), Some(d)) = (beside, digest) {
                    let text = match bare {
                        true => d.as_str().trim_start_matches("sha256:").to_string(),
                        false => d.to_string(),
                    };
                    out.push(Replacement::of(
                        at,
                        "the digest beside the marked tag",
                        &text,
                    )?);
                }
                match (value.contains('@'), digest) {
                    (true, Some(d)) => format!("{}@{d}", wanted.tag),
                    _ => wanted.tag.to_string(),
                }
            }
            Field::Digest => match digest_to_write(true, wanted, node.position, &what)? {
                Some(d) => d.to_string(),
                None => continue,
            },
            Field::Reference => {
                let r = reference(node, &value, policy)?;
                let digest = digest_to_write(r.digest.is_some(), wanted, node.position, &what)?;
                ImageRef {
                    repository: r.repository,
                    tag: Some(wanted.tag.clone()),
                    digest: digest.cloned(),
                }
                .to_string()
            }
        };
        out.push(Replacement::of(node, &what, &new)?);
    }
    if out.is_empty() {
        return Err(EditError::NotFound {
            what: format!("a {{\"$imagepolicy\": \"{policy}\"}} marker"),
            hint: format!(
                "; add the comment # {{\"$imagepolicy\": \"{policy}:tag\"}} after the tag"
            ),
        });
    }
    Ok(out)
}

/// The whole reference a marker without a field marks; one that holds no tag or digest
/// (`newTag: 1.0.0 # {"$imagepolicy": "ns:policy"}`) is a tag marked as a reference.
fn reference(node: &Node, value: &str, policy: &str) -> Result<ImageRef, EditError> {
    let r = ImageRef::parse(value).map_err(|e| EditError::Invalid {
        at: node.position,
        why: e.to_string(),
    })?;
    if r.tag.is_none() && r.digest.is_none() {
        return Err(EditError::Invalid {
            at: node.position,
            why: format!(
                "{value:?} is marked as a whole reference ({{\"$imagepolicy\": \"{policy}\"}}) and holds no tag; a tag alone is marked {{\"$imagepolicy\": \"{policy}:tag\"}}"
            ),
        });
    }
    Ok(r)
}

/// What the markers of `policy` render together: the repository of a full reference or a
/// `:name` marker, the tag, the digest; and where the first of them is.
pub fn rendered(
    src: &str,
    docs: &[Document],
    policy: &str,
) -> Result<(Rendered, Position), EditError> {
    let mut out = Rendered::default();
    let mut at = None;
    for (node, marker) in marked(src, docs) {
        if marker.policy != policy {
            continue;
        }
        let Some(value) = node.as_scalar().map(|s| s.value.clone()) else {
            continue;
        };
        at.get_or_insert(node.position);
        match marker.field {
            Field::Name => out.repository = Some(value),
            Field::Tag => {
                let (tag, in_tag) = match value.split_once('@') {
                    Some((t, d)) => (t.to_string(), Some(d.to_string())),
                    None => (value, None),
                };
                out.tag = Some(tag);
                let beside = digest_beside(src, docs, node, policy).and_then(|(n, bare)| {
                    let v = n.as_scalar()?.value.clone();
                    Some(if bare { format!("sha256:{v}") } else { v })
                });
                if let Some(d) = beside.or(in_tag) {
                    out.digest = Some(d);
                }
            }
            Field::Digest => out.digest = Some(value),
            Field::Reference => {
                reference(node, &value, policy)?;
                if let Some(r) = Rendered::of_reference(&value) {
                    out.repository = r.repository;
                    out.tag = r.tag;
                    out.digest = r.digest.or(out.digest);
                }
            }
        }
    }
    let at = at.ok_or_else(|| EditError::NotFound {
        what: format!("a {{\"$imagepolicy\": \"{policy}\"}} marker"),
        hint: carried(src, docs),
    })?;
    Ok((out, at))
}

/// The current tag (and digest) held by the markers of `policy`.
pub fn current(src: &str, docs: &[Document], policy: &str) -> Result<Current, EditError> {
    let mut tag: Option<(Position, String)> = None;
    let mut digest: Option<(Position, String)> = None;
    let mut at = None;
    // Every marked place is rewritten together, so all must agree on what they hold.
    let agree = |seen: &mut Option<(Position, String)>, at: Position, value: String| match seen {
        Some((first, held)) if *held != value => Err(EditError::Disagree {
            what: format!("the values marked {{\"$imagepolicy\": \"{policy}\"}}"),
            first: *first,
            first_value: held.clone(),
            other: at,
            other_value: value,
        }),
        Some(_) => Ok(()),
        None => {
            *seen = Some((at, value));
            Ok(())
        }
    };
    for (node, marker) in marked(src, docs) {
        if marker.policy != policy {
            continue;
        }
        let value = editable_scalar(node, "the marked value")?.value.clone();
        at.get_or_insert(node.position);
        match marker.field {
            Field::Tag => match value.split_once('@') {
                Some((t, d)) => {
                    agree(&mut tag, node.position, t.to_string())?;
                    agree(&mut digest, node.position, d.to_string())?;
                }
                None => agree(&mut tag, node.position, value)?,
            },
            Field::Digest => agree(&mut digest, node.position, value)?,
            Field::Name => {}
            Field::Reference => {
                let r = ImageRef::parse(&value).map_err(|e| EditError::Invalid {
                    at: node.position,
                    why: e.to_string(),
                })?;
                if let Some(t) = r.tag {
                    agree(&mut tag, node.position, t.to_string())?;
                }
                if let Some(d) = r.digest {
                    agree(&mut digest, node.position, d.to_string())?;
                }
            }
        }
    }
    let (tag, digest) = (tag.map(|(_, t)| t), digest.map(|(_, d)| d));
    match at {
        Some(at) => Ok(Current { tag, digest, at }),
        None => Err(EditError::NotFound {
            what: format!("a {{\"$imagepolicy\": \"{policy}\"}} marker"),
            hint: carried(src, docs),
        }),
    }
}

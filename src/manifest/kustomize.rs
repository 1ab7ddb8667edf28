//! Kustomize `images:` entries: matched by `name` (never by `newName`), rewriting `newTag`,
//! `newName` and `digest` in place.

use crate::image::{Digest, Repository, Tag};
use crate::yaml::{Document, Node, NodeKind, Position};

use super::patch::{Replacement, editable_scalar};
use super::{Current, EditError};

/// The fields to set on an entry; `None` leaves a field alone.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Change {
    /// `newTag`.
    pub new_tag: Option<Tag>,
    /// `newName`.
    pub new_name: Option<Repository>,
    /// `digest`.
    pub digest: Option<Digest>,
    /// Write `newName` only where the entry already has one.
    pub new_name_if_present: bool,
}

/// The one `images:` entry named `name`, across all documents.
fn entry<'d>(docs: &'d [Document], name: &str) -> Result<&'d Node, EditError> {
    let mut found: Option<&Node> = None;
    for doc in docs {
        let Some(images) = doc.root.get("images") else {
            continue;
        };
        let NodeKind::Sequence(items) = &images.kind else {
            return Err(EditError::Invalid {
                at: images.position,
                why: format!(
                    "images is {}, expected a list of entries",
                    images.kind_name()
                ),
            });
        };
        for item in items {
            let named = item
                .get("name")
                .and_then(Node::as_scalar)
                .is_some_and(|s| s.value == name);
            if !named {
                continue;
            }
            if let Some(first) = found {
                return Err(EditError::Ambiguous {
                    what: format!("images entry {name:?}"),
                    first: first.position,
                    second: item.position,
                });
            }
            found = Some(item);
        }
    }
    found.ok_or_else(|| EditError::NotFound {
        what: format!("an images entry with name: {name}"),
        hint: format!("; add `- name: {name}` with `newTag: <tag>` under images:"),
    })
}

fn field<'d>(entry: &'d Node, key: &str, name: &str) -> Result<&'d Node, EditError> {
    entry.get(key).ok_or_else(|| EditError::NotFound {
        what: format!("{key} in the images entry {name:?} at {}", entry.position),
        hint: format!("; add `{key}:` to that entry (only existing values are rewritten)"),
    })
}

/// The replacements that set `change` on the entry named `name`.
pub fn replacements(
    docs: &[Document],
    name: &str,
    change: &Change,
) -> Result<Vec<Replacement>, EditError> {
    let entry = entry(docs, name)?;
    let mut out = Vec::new();
    let fields = [
        ("newTag", change.new_tag.as_ref().map(Tag::as_str)),
        ("newName", change.new_name.as_ref().map(Repository::as_str)),
        ("digest", change.digest.as_ref().map(Digest::as_str)),
    ];
    for (key, value) in fields {
        let Some(value) = value else { continue };
        // `newName` is kept in step when the entry has one; it is never added.
        if key == "newName" && change.new_name_if_present && entry.get(key).is_none() {
            continue;
        }
        let node = field(entry, key, name)?;
        out.push(Replacement::of(node, key, value)?);
    }
    Ok(out)
}

/// The current `newTag` (and `digest`) of the entry named `name`.
pub fn current(docs: &[Document], name: &str) -> Result<Current, EditError> {
    let entry = entry(docs, name)?;
    let read = |key: &str| -> Result<Option<(String, Position)>, EditError> {
        match entry.get(key) {
            None => Ok(None),
            Some(node) => {
                let s = editable_scalar(node, key)?;
                Ok(Some((s.value.clone(), node.position)))
            }
        }
    };
    let tag = read("newTag")?;
    let digest = read("digest")?;
    if tag.is_none() && digest.is_none() {
        return Err(field(entry, "newTag", name)
            .err()
            .unwrap_or(EditError::NotFound {
                what: "newTag".into(),
                hint: String::new(),
            }));
    }
    let at = tag
        .as_ref()
        .or(digest.as_ref())
        .map_or(entry.position, |(_, p)| *p);
    Ok(Current {
        tag: tag.map(|(t, _)| t),
        digest: digest.map(|(d, _)| d),
        at,
    })
}

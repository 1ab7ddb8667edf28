//! Kustomize `images:` entries: matched by `name` (never by `newName`), rewriting `newTag`,
//! `newName` and `digest` in place. What is missing is added as `kustomize edit set image`
//! adds it, in the file's own style: an entry for the name (at the head of `images:`, or a
//! new `images:` at the end of the file), a `newTag:` or `digest:` key in an entry.

use crate::image::{Digest, Repository, Tag};
use crate::yaml::{Document, Node, NodeKind, Position};

use super::patch::{Insertion, Replacement, editable_scalar, reads_as_string};
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

/// The one `images:` entry named `name`, across all documents; `None` when there is none.
fn entry<'d>(docs: &'d [Document], name: &str) -> Result<Option<&'d Node>, EditError> {
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
    Ok(found)
}

/// How a value is written as a new plain scalar: quoted when plain would read otherwise.
fn scalar(value: &str) -> String {
    if reads_as_string(value) {
        value.to_string()
    } else {
        format!("\"{value}\"")
    }
}

/// The line break the file uses.
fn newline(src: &str) -> &'static str {
    if src.contains("\r\n") { "\r\n" } else { "\n" }
}

/// The edits that set `change` on the entry named `name`: replacements of what it has, and
/// insertions of what it (or the file) lacks.
pub fn edits(
    src: &str,
    docs: &[Document],
    name: &str,
    change: &Change,
) -> Result<(Vec<Replacement>, Vec<Insertion>), EditError> {
    let Some(entry) = entry(docs, name)? else {
        return new_entry(src, docs, name, change).map(|i| (Vec::new(), vec![i]));
    };
    let nl = newline(src);
    let mut out = Vec::new();
    let mut added = String::new();
    let fields = [
        ("newTag", change.new_tag.as_ref().map(Tag::as_str)),
        ("newName", change.new_name.as_ref().map(Repository::as_str)),
        ("digest", change.digest.as_ref().map(Digest::as_str)),
    ];
    for (key, value) in fields {
        let Some(value) = value else { continue };
        match entry.get(key) {
            Some(node) => out.push(Replacement::of(node, key, value)?),
            // `newName` is kept in step when the entry has one; it is never added.
            None if key == "newName" && change.new_name_if_present => {}
            None => added.push_str(&format!("{{indent}}{key}: {}{nl}", scalar(value))),
        }
    }
    if added.is_empty() {
        return Ok((out, Vec::new()));
    }
    // New keys go below the entry's last one-line value, at its keys' indentation.
    let NodeKind::Mapping(keys) = &entry.kind else {
        return Err(EditError::Invalid {
            at: entry.position,
            why: format!("the images entry {name:?} is not a mapping"),
        });
    };
    let line = crate::yaml::line_around(src, entry.offset);
    let flow = src[entry.offset..].starts_with('{');
    let first_line_is_whole = !flow && src[line.end..].starts_with(['\r', '\n']);
    if !first_line_is_whole {
        return Err(EditError::NotEditable {
            at: entry.position,
            what: format!("the images entry {name:?}"),
            why: "it is written in flow style ({…}), where a key cannot be added line by line",
        });
    }
    let indent = " ".repeat(entry.position.column.saturating_sub(1));
    let last = keys
        .last()
        .filter(|(_, v)| v.as_scalar().is_some_and(|s| !s.value.contains('\n')))
        .map_or(line.clone(), |(_, v)| {
            crate::yaml::line_around(src, v.offset)
        });
    let after = last.end + src[last.end..].find('\n').map_or(0, |i| i + 1);
    Ok((
        out,
        vec![Insertion {
            position: entry.position,
            at: after,
            text: added.replace("{indent}", &indent),
        }],
    ))
}

/// A new entry `- name: NAME` with the change, in the file's style: at the head of an
/// existing block `images:` list, or as a new `images:` at the end of a one-document file.
fn new_entry(
    src: &str,
    docs: &[Document],
    name: &str,
    change: &Change,
) -> Result<Insertion, EditError> {
    let nl = newline(src);
    let lacks = |why: &str| EditError::NotFound {
        what: format!("an images entry with name: {name}"),
        hint: format!("; {why}: add `- name: {name}` with `newTag: <tag>` under images:"),
    };
    let body = |dash: &str| {
        let indent = " ".repeat(dash.chars().count());
        let mut text = format!("{dash}name: {}{nl}", scalar(name));
        if let Some(t) = &change.new_tag {
            text.push_str(&format!("{indent}newTag: {}{nl}", scalar(t.as_str())));
        }
        if let Some(d) = &change.digest {
            text.push_str(&format!("{indent}digest: {}{nl}", scalar(d.as_str())));
        }
        text
    };
    let [doc] = docs else {
        return Err(lacks("the file has several documents"));
    };
    let NodeKind::Mapping(root) = &doc.root.kind else {
        return Err(lacks("the file is not a mapping"));
    };
    if src[doc.root.offset..].starts_with('{') {
        return Err(lacks("the file is written in flow style"));
    }
    // The dash of a block list item, as the file writes it (`- ` or `  - `).
    let dash_of = |item: &Node| {
        let line = crate::yaml::line_around(src, item.offset);
        let prefix = &src[line.start..item.offset];
        let trimmed = prefix.trim_start_matches(' ');
        (trimmed.starts_with('-') && trimmed[1..].chars().all(|c| c == ' ') && trimmed.len() > 1)
            .then(|| (line.start, prefix.to_string()))
    };
    if let Some(images) = doc.root.get("images") {
        return match &images.kind {
            NodeKind::Sequence(items) => {
                let Some((at, dash)) = items.first().and_then(dash_of) else {
                    return Err(lacks("its images: list is not a block list"));
                };
                Ok(Insertion {
                    position: images.position,
                    at,
                    text: body(&dash),
                })
            }
            _ => Err(lacks("its images: is not a block list")),
        };
    }
    // No `images:`: one at the end, its dashes as the file's other lists write them.
    let dash = root
        .iter()
        .find_map(|(_, v)| match &v.kind {
            NodeKind::Sequence(items) => items.first().and_then(dash_of),
            _ => None,
        })
        .map_or_else(|| "- ".to_string(), |(_, d)| d);
    let lead = if src.is_empty() || src.ends_with('\n') {
        ""
    } else {
        nl
    };
    Ok(Insertion {
        position: doc.root.position,
        at: src.len(),
        text: format!("{lead}images:{nl}{}", body(&dash)),
    })
}

/// The current `newTag` (and `digest`) of the entry named `name`.
pub fn current(docs: &[Document], name: &str) -> Result<Current, EditError> {
    // No entry yet: nothing is set, and the edit adds one.
    let Some(entry) = entry(docs, name)? else {
        let at = docs.first().map(|d| d.root.position).unwrap_or_default();
        return Ok(Current {
            tag: None,
            digest: None,
            at,
        });
    };
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

//! Kustomize `images:` entries, and what kustomize's image transformer renders from them.
//!
//! The entry of an image is found as Docker reads names (`nginx` is
//! `docker.io/library/nginx`), by its `name` or, failing that, its `newName`; `newTag` and
//! `digest` are rewritten in place and `newName` never (it says where the cluster pulls
//! from). A digest the entry pins moves with the tag. What is missing is added as
//! `kustomize edit set image` adds it, in the file's own style: an entry for the name (at
//! the head of `images:`, or a new `images:` at the end of the file), a `newTag:` or
//! `digest:` key in an entry.
//!
//! [`transform`] is kustomize's own rule for one container image (its `IsImageMatched`,
//! `Split` and image tag updater, v5): the name is matched literally — as a regular
//! expression — followed by an optional tag and `@sha256:` digest; each matching entry in
//! turn sets the name, and a new tag or digest replaces both the tag and the digest.

use crate::image::{Digest, Repository, Tag};
use crate::yaml::{Document, Node, NodeKind, Position};

use super::patch::{Insertion, Replacement, editable_scalar, reads_as_string};
use super::reference::Rendered;
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
    /// The entry's `newTag` carries the digest itself (`1.2.3@sha256:…`): write the digest
    /// there, as `tag@digest`, not in a `digest:` key (kustomize would render both).
    pub tag_carries_digest: bool,
}

/// One `images:` entry as kustomize reads it (absent and empty fields are alike).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ImageEntry {
    /// `name`: what it matches.
    pub name: String,
    /// `newName`.
    pub new_name: String,
    /// `newTag`.
    pub new_tag: String,
    /// `digest`.
    pub digest: String,
    /// `tagSuffix`: appended to the tag when neither `newTag` nor `digest` is set.
    pub tag_suffix: String,
}

/// Kustomize's split of an image into name, tag and digest (empty when absent): the tag
/// is after the first `:` and the digest after the first `@` past the first `/`.
pub fn split(image: &str) -> (&str, &str, &str) {
    let from = match image.find('/') {
        Some(i) if i > 0 => i,
        _ => 0,
    };
    let search = &image[from..];
    let at = search.find('@').map(|i| i + from);
    let colon = search.find(':').map(|i| i + from);
    match (colon, at) {
        (None, None) => (image, "", ""),
        (c, Some(a)) if c.is_none_or(|c| a < c) => (&image[..a], "", &image[a + 1..]),
        (Some(c), Some(a)) => (&image[..c], &image[c + 1..a], &image[a + 1..]),
        (Some(c), None) => (&image[..c], &image[c + 1..], ""),
        (None, Some(_)) => unreachable!("covered by the digest-only arm"),
    }
}

/// Whether kustomize applies the entry named `name` to `image`: `name` as a regular
/// expression, then an optional `:tag` and `@sha256:digest`, and nothing else.
pub fn matches(image: &str, name: &str) -> bool {
    let pattern = format!("^{name}(:[a-zA-Z0-9_.{{}}-]*)?(@sha256:[a-zA-Z0-9_.{{}}-]*)?$");
    regex::Regex::new(&pattern).is_ok_and(|re| re.is_match(image))
}

/// The image kustomize renders for a container of a built-in workload (a Deployment's or
/// a Pod's `containers` and `initContainers`) that names `image`, after `entries` (one
/// kustomization's `images:`, in order). Kustomize applies each entry twice to such a
/// container — its legacy filter and its field specs both reach it — which only a
/// `tagSuffix` shows.
pub fn transform(entries: &[ImageEntry], image: &str) -> String {
    let mut image = image.to_string();
    for e in entries {
        for _ in 0..2 {
            image = update(e, &image);
        }
    }
    image
}

/// One application of `e` to `image` (kustomize's image tag updater).
fn update(e: &ImageEntry, image: &str) -> String {
    if !matches(image, &e.name) {
        return image.to_string();
    }
    let (name, tag, digest) = split(image);
    let name = if e.new_name.is_empty() {
        name
    } else {
        &e.new_name
    };
    let suffixed;
    let (tag, digest) = match (e.new_tag.is_empty(), e.digest.is_empty()) {
        (false, false) => (e.new_tag.as_str(), e.digest.as_str()),
        (false, true) => (e.new_tag.as_str(), ""),
        (true, false) => ("", e.digest.as_str()),
        (true, true) if !e.tag_suffix.is_empty() => {
            suffixed = format!("{tag}{}", e.tag_suffix);
            (suffixed.as_str(), "")
        }
        (true, true) => (tag, digest),
    };
    let mut out = name.to_string();
    if !tag.is_empty() {
        out.push(':');
        out.push_str(tag);
    }
    if !digest.is_empty() {
        out.push('@');
        out.push_str(digest);
    }
    out
}

/// Every `images:` entry of the file, in order, as kustomize reads them.
pub fn image_entries(docs: &[Document]) -> Result<Vec<ImageEntry>, EditError> {
    Ok(entries(docs)?.into_iter().map(|(e, _)| e).collect())
}

/// Every `images:` entry of the file, in order, with its node. Kustomize reads a
/// kustomization's first document only: entries in later ones do nothing.
fn entries(docs: &[Document]) -> Result<Vec<(ImageEntry, &Node)>, EditError> {
    let mut out = Vec::new();
    for doc in docs.iter().take(1) {
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
            let field = |key: &str| {
                item.get(key)
                    .and_then(Node::as_scalar)
                    .filter(|s| !crate::yaml::is_null(s))
                    .map_or_else(String::new, |s| s.value.clone())
            };
            let entry = ImageEntry {
                name: field("name"),
                new_name: field("newName"),
                new_tag: field("newTag"),
                digest: field("digest"),
                tag_suffix: field("tagSuffix"),
            };
            out.push((entry, item));
        }
    }
    Ok(out)
}

/// Whether the text `written` names the repository `name`, as Docker reads names (an
/// entry's `name` may carry a tag, `app:1.0`, and then matches only containers that do).
fn names(written: &str, name: &str) -> bool {
    let repository = |text: &str| {
        Repository::new(text).ok().or_else(|| {
            crate::image::ImageRef::parse(text)
                .ok()
                .map(|r| r.repository)
        })
    };
    !written.is_empty()
        && (written == name
            || matches!((repository(written), repository(name)), (Some(a), Some(b)) if a.same_as(&b)))
}

/// The entry of `name` across all documents: the one whose `name` is `name` as written,
/// else the one whose `name` names it as Docker reads names (`nginx` for
/// `docker.io/library/nginx`), else the one whose `newName` does; `None` when there is
/// none. Two that qualify at the same step are ambiguous.
fn entry<'d>(docs: &'d [Document], name: &str) -> Result<Option<&'d Node>, EditError> {
    let all = entries(docs)?;
    let steps: [&dyn Fn(&ImageEntry) -> bool; 3] =
        [&|e| e.name == name, &|e| names(&e.name, name), &|e| {
            names(&e.new_name, name)
        }];
    for step in steps {
        let mut found: Option<&Node> = None;
        for (e, node) in &all {
            if !step(e) {
                continue;
            }
            if let Some(first) = found {
                return Err(EditError::Ambiguous {
                    what: format!("images entry {name:?}"),
                    first: first.position,
                    second: node.position,
                });
            }
            found = Some(node);
        }
        if found.is_some() {
            return Ok(found);
        }
    }
    Ok(None)
}

/// What kustomize renders, from this file's `images:`, for a container that names the
/// image as the entry of `name` does (its base's tag unknown): the entry's `newName`,
/// `newTag` and `digest`, and any entry after it that matches the result. Without an
/// entry, the container's image as it is.
pub fn rendered(docs: &[Document], name: &str) -> Result<Rendered, EditError> {
    // A tag kustomize can match but no registry has: it marks the base's own.
    const BASE_TAG: &str = "{base}";
    let written = written_name(docs, name)?;
    let list = image_entries(docs)?;
    // A name with its tag (`app:1.0`) matches containers written so, whose tag it is.
    let input = match split(&written) {
        (_, "", "") => format!("{written}:{BASE_TAG}"),
        _ => written.clone(),
    };
    let out = transform(&list, &input);
    let (repository, tag, digest) = split(&out);
    // The base's tag, kept (or suffixed by `tagSuffix`): not this file's to say.
    let inherited = tag.contains(BASE_TAG);
    Ok(Rendered {
        repository: Some(repository.to_string()),
        tag: (!tag.is_empty() && !inherited).then(|| tag.to_string()),
        digest: (!digest.is_empty()).then(|| digest.to_string()),
        inherited,
    })
}

/// The name containers are taken to write the image with: the `name` of its entry, else
/// `name` itself (what a new entry would match).
pub fn written_name(docs: &[Document], name: &str) -> Result<String, EditError> {
    let all = entries(docs)?;
    Ok(match entry(docs, name)? {
        Some(node) => all
            .iter()
            .find(|(_, n)| std::ptr::eq(*n, node))
            .map_or_else(|| name.to_string(), |(e, _)| e.name.clone()),
        None => name.to_string(),
    })
}

/// The fields a bump sets on the entry of `name`: the tag, and the digest where the entry
/// pins one (or `pin` asks); never `newName`.
pub fn change_for(
    docs: &[Document],
    name: &str,
    wanted: &super::Wanted,
) -> Result<Change, EditError> {
    let has = |node: &Node, key: &str, part: &dyn Fn(&str) -> bool| {
        node.get(key)
            .and_then(Node::as_scalar)
            .is_some_and(|s| !crate::yaml::is_null(s) && part(&s.value))
    };
    let (pinned, in_tag, at) = match entry(docs, name)? {
        Some(node) => (
            has(node, "digest", &|v| !v.is_empty()),
            has(node, "newTag", &|v| v.contains('@')),
            node.position,
        ),
        None => (
            false,
            false,
            docs.first().map(|d| d.root.position).unwrap_or_default(),
        ),
    };
    // An entry below that renames other names to this image applies after it: containers
    // written that other way would keep their own tag.
    // (Without an entry, the one that renames to it is the image's: see `entry`.)
    let all = entries(docs)?;
    let below = match entry(docs, name)? {
        Some(ours) => all
            .iter()
            .skip_while(|(_, n)| !std::ptr::eq(*n, ours))
            .skip(1)
            .collect(),
        None => Vec::new(),
    };
    if let Some((e, node)) = below
        .into_iter()
        .find(|(e, _)| names(&e.new_name, name) && !names(&e.name, name))
    {
        return Err(EditError::Invalid {
            at: node.position,
            why: format!(
                "the images entry {:?} renames its containers to {name} after the entry of {name} applies, so they would keep their own tag; give that entry the newTag (set the target's name to {:?}), or move it above",
                e.name, e.name
            ),
        });
    }
    let what = format!("the images entry {name:?}");
    let digest = super::reference::digest_to_write(pinned || in_tag, wanted, at, &what)?;
    Ok(Change {
        new_tag: Some(wanted.tag.clone()),
        new_name: None,
        digest: digest.cloned(),
        tag_carries_digest: in_tag && !pinned,
    })
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
    let tag_with_digest = match (&change.new_tag, &change.digest) {
        (Some(t), Some(d)) if change.tag_carries_digest => Some(format!("{t}@{d}")),
        _ => None,
    };
    let fields = [
        (
            "newTag",
            tag_with_digest
                .as_deref()
                .or(change.new_tag.as_ref().map(Tag::as_str)),
        ),
        ("newName", change.new_name.as_ref().map(Repository::as_str)),
        (
            "digest",
            change
                .digest
                .as_ref()
                .map(Digest::as_str)
                .filter(|_| tag_with_digest.is_none()),
        ),
    ];
    for (key, value) in fields {
        let Some(value) = value else { continue };
        match entry.get(key) {
            Some(node) => out.push(Replacement::of(node, key, value)?),
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
        let keys: Vec<&str> = added
            .lines()
            .map(|l| l.trim_start_matches("{indent}").trim())
            .collect();
        return Err(EditError::Invalid {
            at: entry.position,
            why: format!(
                "the images entry {name:?} is written in flow style ({{…}}), where a key cannot be added line by line; add {} to it by hand, or write it as a block mapping",
                keys.join(", ")
            ),
        });
    }
    let indent = " ".repeat(entry.position.column.saturating_sub(1));
    let last = keys
        .last()
        .filter(|(_, v)| v.as_scalar().is_some_and(|s| !s.value.contains('\n')))
        .map_or(line.clone(), |(_, v)| {
            crate::yaml::line_around(src, v.offset)
        });
    let text = added.replace("{indent}", &indent);
    // After the line's break; at the end of a file without a final one, before the new
    // lines (and the file still ends without one).
    let (after, text) = match src[last.end..].find('\n') {
        Some(i) => (last.end + i + 1, text),
        None => (
            src.len(),
            format!("{nl}{}", text.trim_end_matches(['\r', '\n'])),
        ),
    };
    Ok((
        out,
        vec![Insertion {
            position: entry.position,
            at: after,
            text,
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
        return Err(lacks(
            "the file has several documents (kustomize reads only the first)",
        ));
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
                // `newTag: ~` sets nothing, as kustomize reads it.
                if crate::yaml::is_null(s) {
                    return Ok(None);
                }
                Ok(Some((s.value.clone(), node.position)))
            }
        }
    };
    let tag = read("newTag")?;
    let digest = read("digest")?;
    // A `newTag` that carries its digest (`1.2.3@sha256:…`) renders both.
    let (tag, digest) = match tag {
        Some((t, at)) if t.contains('@') => {
            let (t, d) = t
                .split_once('@')
                .map(|(t, d)| (t.to_string(), d.to_string()))
                .unwrap_or_default();
            (Some((t, at)), digest.or(Some((d, at))))
        }
        other => (other, digest),
    };
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

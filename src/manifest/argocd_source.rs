//! Argo CD's parameter override files, `.argocd-source-<app>.yaml`, as Argo CD Image
//! Updater's Git write-back leaves them: `kustomize.images` entries written like
//! `kustomize edit set image` takes them (`[name=]repository:tag[@digest]`), or
//! `helm.parameters` entries (`{name: image.tag, value: 1.2.3}`). The entry for the image is
//! rewritten in place, so repositories that used it move over unchanged.

use crate::image::{ImageRef, Repository};
use crate::yaml::{Document, Node, NodeKind, Position};

use super::patch::{Replacement, editable_scalar};
use super::reference::{Rendered, digest_to_write};
use super::{Current, EditError, Wanted};

/// Where the tag is, once found.
enum Found<'d> {
    /// A `kustomize.images` string: its node, the `name=` part if any, and the reference.
    Image(&'d Node, Option<String>, ImageRef),
    /// A `helm.parameters` entry's `value`.
    Parameter(&'d Node),
}

fn sequence<'d>(doc: &'d Document, outer: &str, inner: &str) -> Option<&'d [Node]> {
    match &doc.root.get(outer)?.get(inner)?.kind {
        NodeKind::Sequence(items) => Some(items),
        _ => None,
    }
}

/// The entry for `repository` (kustomize) or the parameter `parameter` (helm).
fn find<'d>(
    docs: &'d [Document],
    repository: &Repository,
    parameter: &str,
) -> Result<Found<'d>, EditError> {
    for doc in docs {
        for item in sequence(doc, "kustomize", "images").unwrap_or_default() {
            let Some(text) = item.as_scalar().map(|s| s.value.as_str()) else {
                continue;
            };
            let (name, reference) = match text.split_once('=') {
                Some((name, rest)) => (Some(name.to_string()), rest),
                None => (None, text),
            };
            let Ok(r) = ImageRef::parse(reference) else {
                continue;
            };
            let matched = match &name {
                Some(n) => Repository::new(n).is_ok_and(|n| n.same_as(repository)),
                None => r.repository.same_as(repository),
            };
            if matched {
                return Ok(Found::Image(item, name, r));
            }
        }
        for item in sequence(doc, "helm", "parameters").unwrap_or_default() {
            let named = item
                .get("name")
                .and_then(Node::as_scalar)
                .is_some_and(|s| s.value == parameter);
            if named && let Some(value) = item.get("value") {
                return Ok(Found::Parameter(value));
            }
        }
    }
    Err(EditError::NotFound {
        what: format!(
            "a kustomize.images entry for {repository} or a helm.parameters entry named {parameter}"
        ),
        hint: "; the file is Argo CD's .argocd-source-<app>.yaml: check spec.image, or set target.argocdSource.parameter".into(),
    })
}

/// The tag (and digest) the file sets for the image.
pub fn current(
    docs: &[Document],
    repository: &Repository,
    parameter: &str,
) -> Result<Current, EditError> {
    match find(docs, repository, parameter)? {
        Found::Image(node, _, r) => Ok(Current {
            tag: r.tag.map(|t| t.to_string()),
            digest: r.digest.map(|d| d.to_string()),
            at: node.position,
        }),
        Found::Parameter(node) => Ok(Current {
            tag: Some(editable_scalar(node, parameter)?.value.clone()),
            digest: None,
            at: node.position,
        }),
    }
}

/// What the file makes Argo CD render for the image (the repository as the entry names it;
/// none for a Helm parameter, which the chart composes), and where.
pub fn rendered(
    docs: &[Document],
    repository: &Repository,
    parameter: &str,
) -> Result<(Rendered, Position), EditError> {
    match find(docs, repository, parameter)? {
        Found::Image(node, _, r) => Ok((
            Rendered::of_reference(&r.to_string()).unwrap_or_default(),
            node.position,
        )),
        Found::Parameter(node) => {
            let tag = editable_scalar(node, parameter)?.value.clone();
            Ok((
                Rendered {
                    inherited: tag.is_empty(),
                    tag: (!tag.is_empty()).then_some(tag),
                    ..Rendered::default()
                },
                node.position,
            ))
        }
    }
}

/// The replacement that makes the file set `wanted` for the image: the entry's tag, and
/// its digest where it pins one (or `pin` asks), its names as written.
pub fn replacement(
    docs: &[Document],
    repository: &Repository,
    parameter: &str,
    wanted: &Wanted,
) -> Result<Replacement, EditError> {
    match find(docs, repository, parameter)? {
        Found::Image(node, name, r) => {
            let what = "the kustomize.images entry";
            let digest = digest_to_write(r.digest.is_some(), wanted, node.position, what)?;
            let new = ImageRef {
                repository: r.repository,
                tag: Some(wanted.tag.clone()),
                digest: digest.cloned(),
            };
            let text = match name {
                Some(name) => format!("{name}={new}"),
                None => new.to_string(),
            };
            Replacement::of(node, what, &text)
        }
        Found::Parameter(node) => {
            if wanted.pin {
                return Err(EditError::Invalid {
                    at: node.position,
                    why: format!(
                        "pinDigest is set, and the parameter {parameter} holds only the tag; pin digests in the chart's values instead"
                    ),
                });
            }
            Replacement::of(node, parameter, wanted.tag.as_str())
        }
    }
}

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
    /// A `helm.parameters` entry's `value`, with the values of the parameters beside it
    /// that name the repository (`<prefix>.name` or `.repository`, as Argo CD Image
    /// Updater writes them) and the digest (`<prefix>.digest`).
    Parameter {
        tag: &'d Node,
        repository: Option<&'d Node>,
        digest: Option<&'d Node>,
    },
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
        let parameters = sequence(doc, "helm", "parameters").unwrap_or_default();
        let value_of = |name: &str| {
            parameters.iter().find_map(|item| {
                let named = item
                    .get("name")
                    .and_then(Node::as_scalar)
                    .is_some_and(|s| s.value == name);
                named.then(|| item.get("value")).flatten()
            })
        };
        if let Some(tag) = value_of(parameter) {
            let prefix = parameter.rsplit_once('.').map_or("", |(p, _)| p);
            let beside = |key: &str| match prefix {
                "" => value_of(key),
                p => value_of(&format!("{p}.{key}")),
            };
            return Ok(Found::Parameter {
                tag,
                repository: beside("name").or_else(|| beside("repository")),
                digest: beside("digest"),
            });
        }
    }
    Err(EditError::NotFound {
        what: format!(
            "a kustomize.images entry for {repository} or a helm.parameters entry named {parameter}"
        ),
        hint: "; the file is Argo CD's .argocd-source-<app>.yaml: check spec.image, or set target.argocdSource.parameter".into(),
    })
}

/// The non-empty text of a parameter's value.
fn text(node: Option<&Node>) -> Option<String> {
    node.and_then(Node::as_scalar)
        .filter(|s| !s.value.is_empty() && !crate::yaml::is_null(s))
        .map(|s| s.value.clone())
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
        Found::Parameter { tag, digest, .. } => Ok(Current {
            tag: Some(editable_scalar(tag, parameter)?.value.clone()),
            digest: text(digest),
            at: tag.position,
        }),
    }
}

/// What the file makes Argo CD render for the image (the repository as the entry names it;
/// for Helm parameters, the repository and digest parameters beside the tag's, when
/// there are: else the chart composes it), and where.
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
        Found::Parameter {
            tag,
            repository,
            digest,
        } => {
            let value = editable_scalar(tag, parameter)?.value.clone();
            Ok((
                Rendered {
                    repository: text(repository),
                    inherited: value.is_empty(),
                    tag: (!value.is_empty()).then_some(value),
                    digest: text(digest),
                },
                tag.position,
            ))
        }
    }
}

/// The replacements that make the file set `wanted` for the image: the entry's tag, and
/// its digest where it pins one (or `pin` asks), its names as written.
pub fn replacements(
    docs: &[Document],
    repository: &Repository,
    parameter: &str,
    wanted: &Wanted,
) -> Result<Vec<Replacement>, EditError> {
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
            Ok(vec![Replacement::of(node, what, &text)?])
        }
        Found::Parameter { tag, digest, .. } => {
            let pinned = text(digest).is_some();
            let d = digest_to_write(pinned, wanted, tag.position, parameter)?;
            let mut out = vec![Replacement::of(tag, parameter, wanted.tag.as_str())?];
            match (digest, d) {
                (Some(node), Some(d)) => {
                    out.push(Replacement::of(node, "the digest parameter", d.as_str())?)
                }
                (None, Some(_)) => {
                    return Err(EditError::Invalid {
                        at: tag.position,
                        why: format!(
                            "pinDigest is set, and there is no digest parameter beside {parameter}; pin digests in the chart's values instead"
                        ),
                    });
                }
                _ => {}
            }
            Ok(out)
        }
    }
}

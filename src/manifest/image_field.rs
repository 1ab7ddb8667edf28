//! The `image:` fields of plain Kubernetes manifests (containers, initContainers, any
//! document): every one whose repository is the target's, as Docker reads names (`redis`
//! is `docker.io/library/redis`), gets the new tag; the repository stays as written.

use crate::image::{Digest, ImageRef, Repository, Tag};
use crate::yaml::{Document, Node, Position};

use super::patch::Replacement;
use super::reference::{Rendered, digest_to_write};
use super::{Current, EditError, Wanted, walk};

/// Every `image:` scalar of `repository`, with its parsed reference.
fn fields<'d>(docs: &'d [Document], repository: &Repository) -> Vec<(&'d Node, ImageRef)> {
    let mut out = Vec::new();
    for doc in docs {
        walk(&doc.root, None, &mut |key, node| {
            if key != Some("image") {
                return;
            }
            let Some(s) = node.as_scalar() else { return };
            if let Ok(r) = ImageRef::parse(&s.value)
                && r.repository.same_as(repository)
            {
                out.push((node, r));
            }
        });
    }
    out
}

/// Replacements that point every `image:` of `repository` at `tag` (and `digest`).
pub fn replacements(
    docs: &[Document],
    repository: &Repository,
    tag: &Tag,
    digest: Option<&Digest>,
) -> Result<Vec<Replacement>, EditError> {
    rewrite(docs, repository, &mut |node, current| {
        if current.digest.is_some() && digest.is_none() {
            return Err(EditError::Invalid {
                at: node.position,
                why: format!(
                    "{current} is pinned by digest, and no digest is known for {tag}; enable pinDigest or drop the digest"
                ),
            });
        }
        Ok((tag.clone(), digest.cloned()))
    })
}

/// Replacements that make every `image:` of `repository` run `wanted`: its tag, and its
/// digest where the field pins one (or `pin` asks).
pub fn bump(
    docs: &[Document],
    repository: &Repository,
    wanted: &Wanted,
) -> Result<Vec<Replacement>, EditError> {
    rewrite(docs, repository, &mut |node, current| {
        let what = format!("the image {current}");
        let digest = digest_to_write(current.digest.is_some(), wanted, node.position, &what)?;
        Ok((wanted.tag.clone(), digest.cloned()))
    })
}

/// What each `image:` of `repository` renders, and where.
pub fn rendered(docs: &[Document], repository: &Repository) -> Vec<(Rendered, Position)> {
    fields(docs, repository)
        .into_iter()
        .map(|(node, r)| {
            let rendered = Rendered::of_reference(&r.to_string()).unwrap_or_default();
            (rendered, node.position)
        })
        .collect()
}

/// What a field is rewritten to, given its node and what it holds.
type Choose<'c> = dyn FnMut(&Node, &ImageRef) -> Result<(Tag, Option<Digest>), EditError> + 'c;

/// Every `image:` of `repository` rewritten to the tag and digest `choose` gives it, its
/// repository as the file writes it (`redis`, not `docker.io/library/redis`).
fn rewrite(
    docs: &[Document],
    repository: &Repository,
    choose: &mut Choose<'_>,
) -> Result<Vec<Replacement>, EditError> {
    let found = fields(docs, repository);
    if found.is_empty() {
        return Err(EditError::NotFound {
            what: format!("an image: field with repository {repository}"),
            hint: "; check spec.image against the manifests".into(),
        });
    }
    let mut out = Vec::new();
    for (node, current) in found {
        let (tag, digest) = choose(node, &current)?;
        let reference = ImageRef {
            repository: current.repository.clone(),
            tag: Some(tag),
            digest,
        };
        out.push(Replacement::of(node, "the image", &reference.to_string())?);
    }
    Ok(out)
}

/// The tag of the first `image:` of `repository`.
pub fn current(docs: &[Document], repository: &Repository) -> Result<Current, EditError> {
    let found = fields(docs, repository);
    let Some((node, first)) = found.first() else {
        return Err(EditError::NotFound {
            what: format!("an image: field with repository {repository}"),
            hint: String::new(),
        });
    };
    let text = |r: &ImageRef| r.to_string();
    if let Some((other, r)) = found
        .iter()
        .find(|(_, r)| r.tag != first.tag || r.digest != first.digest)
    {
        return Err(EditError::Disagree {
            what: format!("the image: fields with repository {repository}"),
            first: node.position,
            first_value: text(first),
            other: other.position,
            other_value: text(r),
        });
    }
    Ok(Current {
        tag: first.tag.as_ref().map(Tag::to_string),
        digest: first.digest.as_ref().map(Digest::to_string),
        at: node.position,
    })
}

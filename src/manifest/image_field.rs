//! The `image:` fields of plain Kubernetes manifests (containers, initContainers, any
//! document): every one whose repository is the target's, as Docker reads names (`redis`
//! is `docker.io/library/redis`), gets the new tag; the repository stays as written.

use crate::image::{Digest, ImageRef, Repository, Tag};
use crate::yaml::{Document, Node};

use super::patch::Replacement;
use super::{Current, EditError, walk};

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
    let found = fields(docs, repository);
    if found.is_empty() {
        return Err(EditError::NotFound {
            what: format!("an image: field with repository {repository}"),
            hint: "; check spec.image against the manifests".into(),
        });
    }
    let mut out = Vec::new();
    for (node, current) in found {
        if current.digest.is_some() && digest.is_none() {
            return Err(EditError::Invalid {
                at: node.position,
                why: format!(
                    "{current} is pinned by digest, and no digest is known for {tag}; enable pinDigest or drop the digest"
                ),
            });
        }
        // The repository stays as the file writes it (`redis`, not `docker.io/library/redis`).
        let reference = ImageRef {
            repository: current.repository.clone(),
            tag: Some(tag.clone()),
            digest: digest.cloned(),
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

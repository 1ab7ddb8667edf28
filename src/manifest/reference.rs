//! What a target makes the cluster run, and the one rule every edit is held to.
//!
//! Each target kind composes an image reference from the file the way its renderer does:
//! Kustomize's image transformer over `images:` ([`super::kustomize::transform`]), a chart
//! from its values' layout (`registry`/`repository`/`tag`/`digest`, a bare-hex `sha`,
//! `global.imageRegistry`), a manifest's `image:`, a marker's scalars, Argo CD's parameter
//! overrides. [`Rendered`] is that reference, and [`check`] is the rule: after an edit it is
//! exactly the intended one — the repository as the file wrote it, the wanted tag, and the
//! wanted digest where one is pinned (in the file, or by `pinDigest`). An edit that leaves
//! the old digest running, composes an invalid reference or moves the repository is
//! refused, saying what the file says, what it would render and what to change.
//!
//! Pure: it reads parsed files, never the repository or the renderer itself (that check,
//! with the real `kustomize`, is `crate::render`'s).

use std::fmt;

use crate::image::{Digest, ImageRef, Repository, Tag};
use crate::yaml::Position;

use super::{EditError, Wanted};

/// An image reference as a target's renderer composes it from the file. Parts are the
/// file's text (a composition may be invalid: finding that is the point).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Rendered {
    /// The repository pulled from; `None` where the file does not say (a Helm value that
    /// holds only the tag, a `:tag` marker): the chart or the manifest it feeds does.
    pub repository: Option<String>,
    /// The tag; `None` when none is rendered or it comes from elsewhere (`inherited`).
    pub tag: Option<String>,
    /// The digest, `algorithm:hex`, when one is rendered (what a runtime then pulls).
    pub digest: Option<String>,
    /// The tag is not set here: the base's container keeps its own, the chart uses its
    /// `appVersion`.
    pub inherited: bool,
}

impl fmt::Display for Rendered {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.repository.as_deref().unwrap_or("<repository>"))?;
        match (&self.tag, self.inherited) {
            (Some(t), _) => write!(f, ":{t}")?,
            (None, true) => f.write_str(":<tag from elsewhere>")?,
            (None, false) => {}
        }
        if let Some(d) = &self.digest {
            write!(f, "@{d}")?;
        }
        Ok(())
    }
}

impl Rendered {
    /// A whole reference as written (`repo:tag@digest`), split as Docker reads it; `None`
    /// when it is not one.
    pub fn of_reference(text: &str) -> Option<Self> {
        let r = ImageRef::parse(text).ok()?;
        Some(Self {
            repository: Some(r.repository.to_string()),
            tag: r.tag.map(|t| t.to_string()),
            digest: r.digest.map(|d| d.to_string()),
            inherited: false,
        })
    }

    /// Why this reference is not one a runtime can pull, if it is not.
    fn invalid(&self) -> Option<String> {
        if let Some(repo) = &self.repository
            && let Err(e) = Repository::new(repo)
        {
            return Some(e.to_string());
        }
        if let Some(tag) = &self.tag
            && let Err(e) = Tag::new(tag)
        {
            return Some(e.to_string());
        }
        if let Some(digest) = &self.digest
            && let Err(e) = Digest::new(digest)
        {
            return Some(e.to_string());
        }
        None
    }
}

/// The digest a bump must leave rendered: the wanted one where the file pins a digest (or
/// `pinDigest` asks for one), none otherwise. `Err` when one is needed and none is known.
pub fn digest_to_write<'w>(
    pinned: bool,
    wanted: &'w Wanted,
    at: Position,
    what: &str,
) -> Result<Option<&'w Digest>, EditError> {
    if !pinned && !wanted.pin {
        return Ok(None);
    }
    match &wanted.digest {
        Some(d) => Ok(Some(d)),
        None => Err(EditError::Invalid {
            at,
            why: format!(
                "{what} pins a digest, and the digest of {} is not known (the registry did not give one); the bump is left for the next pass",
                wanted.tag
            ),
        }),
    }
}

/// The rule: `after` (what the edited file renders) is the intended reference — the
/// repository of `before`, the wanted tag, the wanted digest where one is rendered — and a
/// valid one. `what` says what the file holds (for the refusal), `at` where.
pub fn check(
    before: &Rendered,
    after: &Rendered,
    wanted: &Wanted,
    what: &str,
    at: Position,
) -> Result<(), EditError> {
    let pinned = before.digest.is_some() || wanted.pin;
    let intended = Rendered {
        repository: before.repository.clone(),
        tag: Some(wanted.tag.to_string()),
        digest: pinned
            .then(|| wanted.digest.as_ref().map(ToString::to_string))
            .flatten(),
        inherited: false,
    };
    let refuse = |hint: String| {
        Err(EditError::Renders {
            at,
            what: what.to_string(),
            renders: after.to_string(),
            intended: intended.to_string(),
            hint,
        })
    };
    if let Some(why) = after.invalid() {
        return refuse(format!("that is not a valid reference ({why})"));
    }
    if after.repository != before.repository {
        return refuse("tagpromoter never rewrites the repository a file names".into());
    }
    if after.tag.as_deref() != Some(wanted.tag.as_str()) {
        return refuse("the tag would not be the one written".into());
    }
    if after.digest != intended.digest {
        let hint = match (&after.digest, &intended.digest) {
            (Some(_), None) => {
                "a digest is rendered and is what runs; enable pinDigest, or drop the digest from the file"
            }
            (None, Some(_)) => {
                "pinDigest is set and the file has no digest to write; name the digest's place in the target"
            }
            _ => "the digest rendered is not the new tag's",
        };
        return refuse(hint.into());
    }
    Ok(())
}

/// The claim every bump starts from: the reference the file renders names the image the
/// environment runs (`expected`: the target's `name:`, else `spec.image`), as Docker reads
/// names. Files that do not say which repository (a tag-only value) pass.
pub fn claims(
    before: &Rendered,
    expected: &Repository,
    what: &str,
    at: Position,
    field: &str,
) -> Result<(), EditError> {
    let Some(repo) = &before.repository else {
        return Ok(());
    };
    let named = match Repository::new(repo) {
        Ok(r) if r.same_as(expected) => return Ok(()),
        Ok(r) => r,
        Err(e) => {
            return Err(EditError::Invalid {
                at,
                why: format!(
                    "{what} names {repo:?} as its repository, which is not one ({e}); write the repository alone there"
                ),
            });
        }
    };
    Err(EditError::Invalid {
        at,
        why: format!(
            "{what} names {named}, not {expected}; if tags are read from a mirror of it, set {field}: {named} on the target (tagpromoter never rewrites the repository a file names)"
        ),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn wanted(tag: &str, digest: Option<&str>, pin: bool) -> Wanted {
        Wanted {
            repository: Repository::new("ghcr.io/acme/app").unwrap(),
            tag: Tag::new(tag).unwrap(),
            digest: digest.map(|d| Digest::new(d).unwrap()),
            pin,
        }
    }

    fn r(text: &str) -> Rendered {
        Rendered::of_reference(text).unwrap()
    }

    const D1: &str = "sha256:1111111111111111111111111111111111111111111111111111111111111111";
    const D2: &str = "sha256:2222222222222222222222222222222222222222222222222222222222222222";

    #[test]
    fn the_intended_reference_keeps_the_repository_and_moves_tag_and_pinned_digest() {
        let at = Position::default();
        let cases: &[(&str, Rendered, bool, Result<(), &str>)] = &[
            (
                "ghcr.io/acme/app:1.0",
                r("ghcr.io/acme/app:2.0"),
                false,
                Ok(()),
            ),
            (
                "ghcr.io/acme/app:1.0",
                r("mirror.local/acme/app:2.0"),
                false,
                Err("never rewrites the repository"),
            ),
            (
                &format!("ghcr.io/acme/app:1.0@{D1}"),
                r(&format!("ghcr.io/acme/app:2.0@{D1}")),
                false,
                Err("not the new tag's"),
            ),
            (
                &format!("ghcr.io/acme/app:1.0@{D1}"),
                r(&format!("ghcr.io/acme/app:2.0@{D2}")),
                false,
                Ok(()),
            ),
            (
                "ghcr.io/acme/app:1.0",
                r("ghcr.io/acme/app:2.0"),
                true,
                Err("pinDigest is set"),
            ),
            (
                "ghcr.io/acme/app:1.0",
                r("ghcr.io/acme/app:1.0"),
                false,
                Err("the tag would not"),
            ),
        ];
        for (before, after, pin, expected) in cases {
            let got = check(&r(before), after, &wanted("2.0", Some(D2), *pin), "x", at);
            match (got, expected) {
                (Ok(()), Ok(())) => {}
                (Err(e), Err(part)) => assert!(e.to_string().contains(part), "{before}: {e}"),
                (got, _) => panic!("{before} -> {after}: {got:?}, expected {expected:?}"),
            }
        }
        let invalid = Rendered {
            digest: Some(format!("sha256:{D2}")),
            ..r("ghcr.io/acme/app:2.0")
        };
        let e = check(
            &r(&format!("ghcr.io/acme/app:1.0@{D1}")),
            &invalid,
            &wanted("2.0", Some(D2), false),
            "x",
            at,
        )
        .unwrap_err();
        assert!(e.to_string().contains("not a valid reference"), "{e}");
    }
}

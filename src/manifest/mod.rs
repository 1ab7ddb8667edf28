//! Surgical edits of GitOps files: read the current tag of a target, and rewrite it by
//! replacing only the bytes of the scalars concerned.
//!
//! Five target kinds: Kustomize `images:` entries ([`kustomize`]), Helm values at a dotted
//! path ([`helm`]), Flux-style `$imagepolicy` setter markers ([`marker`]), the `image:`
//! fields of plain manifests ([`image_field`]) and Argo CD's parameter override files
//! ([`argocd_source`]). Each finds [`patch::Replacement`]s; [`patch`]
//! applies them and proves by parsing again that nothing else moved. Comments, blank lines,
//! quoting, anchors, CRLF, a missing final newline and other documents are kept because they
//! are never touched.
//!
//! Pure: text in, text out. It must not read files or know where they live; callers add the
//! file name to errors.

pub mod argocd_source;
pub mod helm;
pub mod image_field;
pub mod kustomize;
pub mod marker;
pub mod patch;
pub mod reference;

use crate::image::{Digest, Repository, Tag};
use crate::yaml::{self, Document, Position};

pub use helm::HelmPath;

/// Why a file cannot be read or edited. The file is left exactly as it was.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum EditError {
    /// The file is not valid YAML.
    #[error("not valid YAML at {0}")]
    Syntax(#[from] yaml::SyntaxError),
    /// The place to edit does not exist.
    #[error("{what} not found{hint}")]
    NotFound {
        /// What was looked for.
        what: String,
        /// What to do about it (starts with "; " when present).
        hint: String,
    },
    /// The value is an alias of an anchor elsewhere.
    #[error("{at}: {what} is an alias (*name); point the target at the anchored value itself")]
    Alias {
        /// Where.
        at: Position,
        /// What it is.
        what: String,
    },
    /// The value is a mapping or a list.
    #[error("{at}: {what} is {found}, not a scalar")]
    NotScalar {
        /// Where.
        at: Position,
        /// What it is.
        what: String,
        /// What was found.
        found: &'static str,
    },
    /// The scalar cannot be rewritten byte for byte.
    #[error("{at}: {what} cannot be rewritten in place: {why}; write it as a one-line scalar")]
    NotEditable {
        /// Where.
        at: Position,
        /// What it is.
        what: String,
        /// Why.
        why: &'static str,
    },
    /// Two edits would touch the same bytes with different values.
    #[error("{at}: two edits disagree about the same value")]
    Conflict {
        /// Where.
        at: Position,
    },
    /// More than one place matches where exactly one is expected.
    #[error("{what} is ambiguous: found at {first} and {second}")]
    Ambiguous {
        /// What was looked for.
        what: String,
        /// The first match.
        first: Position,
        /// Another match.
        second: Position,
    },
    /// The places a target rewrites together hold different values: one was edited by
    /// hand. Rewriting all would overwrite that edit, and reading one would be a guess.
    #[error(
        "{what} disagree: {first} holds {first_value:?}, {other} holds {other_value:?}; make them equal (tagpromoter rewrites them together)"
    )]
    Disagree {
        /// What they are.
        what: String,
        /// The first place.
        first: Position,
        /// Its value.
        first_value: String,
        /// A place that holds something else.
        other: Position,
        /// Its value.
        other_value: String,
    },
    /// The value present is not what the target kind needs (e.g. a digest is pinned but none
    /// is known).
    #[error("{at}: {why}")]
    Invalid {
        /// Where.
        at: Position,
        /// What is wrong and what to do.
        why: String,
    },
    /// After the edit the file would not render the intended reference: the old digest
    /// would still run, the reference would be invalid, or its repository would move.
    #[error("{at}: {what} would render {renders}, not {intended}: {hint}")]
    Renders {
        /// Where.
        at: Position,
        /// What the file holds there.
        what: String,
        /// What the edited file would render.
        renders: String,
        /// What the bump intends to run.
        intended: String,
        /// Why that is refused, and what to change.
        hint: String,
    },
    /// The edit would have changed more than the scalar (a safety net; never expected).
    #[error("{at}: refusing an edit that would change more than the value: {why}")]
    Unsafe {
        /// Where.
        at: Position,
        /// What would have changed.
        why: String,
    },
}

/// Where in a file a promotion writes its tag.
#[derive(Debug, Clone, PartialEq)]
pub enum Target {
    /// A Kustomize `images:` entry, matched by `name`.
    Kustomize {
        /// The `images[].name` to match.
        name: String,
    },
    /// Helm values at dotted paths.
    Helm {
        /// Path of the tag.
        tag: HelmPath,
        /// Path of the repository, written when the wanted state names one.
        repository: Option<HelmPath>,
        /// Path of the digest, written when the wanted state carries one.
        digest: Option<HelmPath>,
    },
    /// Every scalar marked `# {"$imagepolicy": "<policy>[:tag|:name|:digest]"}`.
    Marker {
        /// The policy id, `<promotion>:<environment>`.
        policy: String,
    },
    /// A Helm value holding the whole reference (`repo:tag[@digest]`): its tag and digest
    /// are rewritten inside the one string, its repository kept as written.
    HelmImage {
        /// Path of the value.
        path: HelmPath,
    },
    /// Argo CD's `.argocd-source-<app>.yaml`: the `kustomize.images` entry for `repository`,
    /// or the `helm.parameters` entry named `parameter`.
    ArgocdSource {
        /// The repository its `kustomize.images` entry names.
        repository: Repository,
        /// The Helm parameter that holds the tag.
        parameter: String,
    },
    /// Every `image:` field of plain manifests whose repository is this one.
    ImageField {
        /// The repository to match.
        repository: Repository,
    },
}

/// What a target should hold after the edit.
#[derive(Debug, Clone, PartialEq)]
pub struct Wanted {
    /// The repository the file is expected to name (the target's `name:`, else
    /// `spec.image`): checked, never written.
    pub repository: Repository,
    /// The tag.
    pub tag: Tag,
    /// The tag's digest, when known: written wherever the file pins a digest, and
    /// everywhere a digest can go when `pin` is set.
    pub digest: Option<Digest>,
    /// `pinDigest`: the digest is to be written even where the file pins none yet.
    pub pin: bool,
}

/// What a target holds now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Current {
    /// The tag (absent when the target names none, e.g. a digest-only reference).
    pub tag: Option<String>,
    /// The digest, when one is pinned.
    pub digest: Option<String>,
    /// Where the tag is.
    pub at: Position,
}

/// The result of an edit.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// Everything was already in place; the file must not be rewritten.
    Unchanged,
    /// The new text of the file.
    Changed(String),
}

/// Read the current value of `target` in `src`.
pub fn read(src: &str, target: &Target) -> Result<Current, EditError> {
    current(src, &yaml::parse(src)?, target)
}

fn current(src: &str, docs: &[Document], target: &Target) -> Result<Current, EditError> {
    match target {
        Target::Kustomize { name } => kustomize::current(docs, name),
        Target::Helm { tag, digest, .. } => helm::current(docs, tag, digest.as_ref()),
        Target::HelmImage { path } => helm::image_current(docs, path),
        Target::ArgocdSource {
            repository,
            parameter,
        } => argocd_source::current(docs, repository, parameter),
        Target::Marker { policy } => marker::current(src, docs, policy),
        Target::ImageField { repository } => image_field::current(docs, repository),
    }
}

/// Rewrite `target` in `src` to hold `wanted`, and prove it means what it should: before
/// the edit the file renders a reference of the expected repository, after it exactly the
/// intended one ([`reference::check`]). Anything else is refused and the file left alone.
pub fn apply(src: &str, target: &Target, wanted: &Wanted) -> Result<Outcome, EditError> {
    let docs = yaml::parse(src)?;
    // What is edited is what was read: places that disagree are refused, not overwritten.
    current(src, &docs, target)?;
    let before = rendered_in(src, &docs, target)?;
    if !matches!(target, Target::Kustomize { .. }) {
        for (r, at) in &before {
            reference::claims(
                r,
                &wanted.repository,
                &describe(target),
                *at,
                name_field(target),
            )?;
        }
    }
    let (replacements, insertions) = edits(src, &docs, target, wanted)?;
    // A value shared through an anchor (`newTag: &v 1.0` … `newTag: *v`) would move every
    // place that uses it, another image's included.
    for r in replacements.iter().filter(|r| r.old != r.new) {
        if let Some(used) = r.anchor.and_then(|id| alias_of(&docs, id)) {
            return Err(EditError::Invalid {
                at: r.position,
                why: format!(
                    "the value {:?} is anchored (&) and used again at {used} (*): rewriting it would change that place too; give each place its own value",
                    r.old
                ),
            });
        }
    }
    let Some(text) = patch::apply_all(src, &replacements, &insertions)? else {
        return Ok(Outcome::Unchanged);
    };
    // The edited file must read as wanted, through the same reading as every pass…
    let after_docs = yaml::parse(&text)?;
    let read_back = current(&text, &after_docs, target)?;
    if read_back.tag.as_deref() != Some(wanted.tag.as_str()) {
        return Err(EditError::Unsafe {
            at: read_back.at,
            why: format!(
                "the edited file would read {} instead of {}",
                read_back.tag.as_deref().unwrap_or("no tag"),
                wanted.tag
            ),
        });
    }
    // …and render the intended reference wherever it rendered one before.
    let after = rendered_in(&text, &after_docs, target)?;
    if after.len() != before.len() {
        return Err(EditError::Unsafe {
            at: read_back.at,
            why: format!(
                "{} places rendered the image before the edit, {} after",
                before.len(),
                after.len()
            ),
        });
    }
    for ((b, at), (a, _)) in before.iter().zip(&after) {
        reference::check(b, a, wanted, &format!("{} ({b})", describe(target)), *at)?;
    }
    Ok(Outcome::Changed(text))
}

/// What `target` in `src` renders, at each place it is written (several `image:` fields,
/// one for the other kinds), with where.
pub fn rendered(
    src: &str,
    target: &Target,
) -> Result<Vec<(reference::Rendered, Position)>, EditError> {
    rendered_in(src, &yaml::parse(src)?, target)
}

fn rendered_in(
    src: &str,
    docs: &[Document],
    target: &Target,
) -> Result<Vec<(reference::Rendered, Position)>, EditError> {
    let one = |r: Result<(reference::Rendered, Position), EditError>| r.map(|r| vec![r]);
    match target {
        Target::Kustomize { name } => {
            let at = kustomize::current(docs, name)?.at;
            Ok(vec![(kustomize::rendered(docs, name)?, at)])
        }
        Target::Helm {
            tag,
            repository,
            digest,
        } => one(helm::rendered(
            docs,
            tag,
            repository.as_ref(),
            digest.as_ref(),
        )),
        Target::HelmImage { path } => one(helm::image_rendered(docs, path)),
        Target::ArgocdSource {
            repository,
            parameter,
        } => one(argocd_source::rendered(docs, repository, parameter)),
        Target::Marker { policy } => one(marker::rendered(src, docs, policy)),
        Target::ImageField { repository } => Ok(image_field::rendered(docs, repository)),
    }
}

/// How a refusal names the place a target writes.
fn describe(target: &Target) -> String {
    match target {
        Target::Kustomize { name } => format!("the images entry {name}"),
        Target::Helm { tag, .. } => format!("the values around {tag}"),
        Target::HelmImage { path } => format!("the value at {path}"),
        Target::ArgocdSource { .. } => "the Argo CD source override".into(),
        Target::Marker { policy } => {
            format!("the values marked {{\"$imagepolicy\": \"{policy}\"}}")
        }
        Target::ImageField { repository } => format!("the image: fields of {repository}"),
    }
}

/// The rules' key that says which repository the file names, per target kind.
fn name_field(target: &Target) -> &'static str {
    match target {
        Target::Kustomize { .. } => "target.kustomize.name",
        Target::Helm { .. } | Target::HelmImage { .. } => "target.helm.name",
        Target::ArgocdSource { .. } => "target.argocdSource.name",
        Target::Marker { .. } => "target.marker.name",
        Target::ImageField { .. } => "target.manifest.name",
    }
}

/// The edits that make `target` hold `wanted`: scalars replaced, and (for Kustomize) what
/// the file lacks inserted. Names the file writes are never among them.
fn edits(
    src: &str,
    docs: &[Document],
    target: &Target,
    wanted: &Wanted,
) -> Result<(Vec<patch::Replacement>, Vec<patch::Insertion>), EditError> {
    let replaced = match target {
        Target::Kustomize { name } => {
            let change = kustomize::change_for(docs, name, wanted)?;
            return kustomize::edits(src, docs, name, &change);
        }
        Target::Helm {
            tag,
            repository,
            digest,
        } => helm::tag_replacements(docs, tag, repository.as_ref(), digest.as_ref(), wanted),
        Target::Marker { policy } => marker::bump(src, docs, policy, wanted),
        Target::HelmImage { path } => helm::image_replacement(docs, path, wanted).map(|r| vec![r]),
        Target::ArgocdSource {
            repository,
            parameter,
        } => argocd_source::replacements(docs, repository, parameter, wanted),
        Target::ImageField { repository } => image_field::bump(docs, repository, wanted),
    }?;
    Ok((replaced, Vec::new()))
}

/// Where an alias of anchor `id` is, if one is.
fn alias_of(docs: &[Document], id: usize) -> Option<Position> {
    let mut found = None;
    for doc in docs {
        walk(&doc.root, None, &mut |_, node| {
            if matches!(node.kind, yaml::NodeKind::Alias(a) if a == id) && found.is_none() {
                found = Some(node.position);
            }
        });
    }
    found
}

/// Every scalar value in a document, with the key it belongs to (if any), in document order.
/// Aliases are not followed.
pub(crate) fn walk<'d>(
    node: &'d yaml::Node,
    key: Option<&'d str>,
    f: &mut dyn FnMut(Option<&'d str>, &'d yaml::Node),
) {
    match &node.kind {
        yaml::NodeKind::Mapping(entries) => {
            for (k, v) in entries {
                let name = k.as_scalar().map(|s| s.value.as_str());
                walk(v, name, f);
            }
        }
        yaml::NodeKind::Sequence(items) => {
            for item in items {
                walk(item, None, f);
            }
        }
        _ => f(key, node),
    }
}

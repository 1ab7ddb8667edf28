//! Generated kustomizations judged by the real renderer (issue 27): workloads whose
//! containers and init containers name images in every spelling (Docker Hub short and long
//! names, registries with ports, tags, digests, both), `images:` entries with and without
//! `newName`, `newTag`, `digest` and `tagSuffix`, and a bump by tagpromoter of one image.
//! `kubectl kustomize` renders every case before and after the bump; tagpromoter's model
//! (`manifest::kustomize::transform`, the effective reference of `manifest::rendered`)
//! must say exactly what it renders. Cases are built by proptest strategies and rendered
//! in batches (one `kubectl kustomize` over many case directories), so that a long run
//! stays cheap. Shared by the integration test and the `kustomize_oracle` bench.

use std::collections::BTreeMap;
use std::fmt::Write;
use std::path::Path;

use proptest::prelude::*;
use proptest::strategy::ValueTree;
use proptest::test_runner::TestRunner;
use tagpromoter::image::{Digest, Repository, Tag};
use tagpromoter::manifest::kustomize::{ImageEntry, transform};
use tagpromoter::manifest::{self, EditError, Outcome, Target, Wanted};

/// Names as files write them: one image in several spellings, and others.
const NAMES: &[&str] = &[
    "nginx",
    "docker.io/library/nginx",
    "library/nginx",
    "index.docker.io/library/nginx",
    "ghcr.io/acme/app",
    "localhost:5000/acme/app",
    "registry.example.com:8443/team/app",
    "acme/app",
    "quay.io/org/app-x",
];
const TAGS: &[&str] = &["1.0.0", "v2", "latest", "1.2.3-rc.1", "2024.01.01", "7"];

/// One container of a generated workload.
#[derive(Debug, Clone)]
pub struct Container {
    /// Its image as the base writes it.
    pub image: String,
    /// An init container.
    pub init: bool,
}

/// One generated case: a workload and a kustomization, and the bump tagpromoter makes.
#[derive(Debug, Clone)]
pub struct Case {
    /// The workload's kind (`Deployment`, `Pod`, `StatefulSet`).
    pub kind: &'static str,
    /// Its containers.
    pub containers: Vec<Container>,
    /// The kustomization's `images:` entries.
    pub entries: Vec<ImageEntry>,
    /// The target's `name` (the image tagpromoter bumps).
    pub target: String,
    /// The tag to write.
    pub tag: String,
    /// The digest of that tag.
    pub digest: String,
    /// `pinDigest`.
    pub pin: bool,
}

fn hex() -> impl Strategy<Value = String> {
    proptest::collection::vec(0u8..16, 64).prop_map(|v| {
        v.into_iter()
            .map(|d| char::from_digit(u32::from(d), 16).unwrap_or('0'))
            .collect()
    })
}

fn image() -> impl Strategy<Value = String> {
    (
        proptest::sample::select(NAMES),
        proptest::option::weighted(0.8, proptest::sample::select(TAGS)),
        proptest::option::weighted(0.25, hex()),
    )
        .prop_map(|(n, t, d)| {
            let mut s = n.to_string();
            if let Some(t) = t {
                let _ = write!(s, ":{t}");
            }
            if let Some(d) = d {
                let _ = write!(s, "@sha256:{d}");
            }
            s
        })
}

fn entry() -> impl Strategy<Value = ImageEntry> {
    (
        proptest::sample::select(NAMES),
        proptest::option::weighted(0.3, proptest::sample::select(NAMES)),
        proptest::option::weighted(0.7, proptest::sample::select(TAGS)),
        proptest::option::weighted(0.3, hex()),
        proptest::option::weighted(0.05, Just("-suffix")),
    )
        .prop_map(|(name, new_name, new_tag, digest, suffix)| ImageEntry {
            name: name.into(),
            new_name: new_name.unwrap_or_default().into(),
            new_tag: new_tag.unwrap_or_default().into(),
            digest: digest.map(|d| format!("sha256:{d}")).unwrap_or_default(),
            tag_suffix: suffix.unwrap_or_default().into(),
        })
}

/// The strategy of one case.
pub fn case() -> impl Strategy<Value = Case> {
    (
        proptest::sample::select(&["Deployment", "Pod", "StatefulSet"][..]),
        proptest::collection::vec((image(), proptest::bool::weighted(0.3)), 1..5),
        proptest::collection::vec(entry(), 0..4),
        proptest::sample::select(NAMES),
        (proptest::sample::select(TAGS), proptest::bool::ANY),
        hex(),
        proptest::bool::weighted(0.3),
    )
        .prop_map(
            |(kind, containers, entries, target, (tag, next), digest, pin)| Case {
                kind,
                containers: containers
                    .into_iter()
                    .map(|(image, init)| Container { image, init })
                    .collect(),
                entries,
                target: target.into(),
                // A tag the file may already hold, or a new one.
                tag: if next {
                    format!("{tag}-next")
                } else {
                    tag.to_string()
                },
                digest: format!("sha256:{digest}"),
                pin,
            },
        )
}

/// `n` cases from `seed`.
pub fn generate(n: usize, seed: u64) -> Vec<Case> {
    let config = proptest::test_runner::Config::default();
    let mut runner = TestRunner::new_with_rng(
        config,
        proptest::test_runner::TestRng::from_seed(proptest::test_runner::RngAlgorithm::ChaCha, &{
            let mut s = [0u8; 32];
            s[..8].copy_from_slice(&seed.to_le_bytes());
            s
        }),
    );
    let strategy = case();
    (0..n)
        .map(|_| {
            strategy
                .new_tree(&mut runner)
                .map(|t| t.current())
                .expect("the strategy generates")
        })
        .collect()
}

impl Case {
    /// The kustomization's text (values quoted: `2024.01.01` is not a number to kustomize).
    pub fn kustomization(&self) -> String {
        let mut s = String::from("resources:\n- workload.yaml\n");
        if !self.entries.is_empty() {
            s.push_str("images:\n");
        }
        for e in &self.entries {
            let _ = writeln!(s, "- name: {}", e.name);
            for (key, value) in [
                ("newName", &e.new_name),
                ("newTag", &e.new_tag),
                ("digest", &e.digest),
                ("tagSuffix", &e.tag_suffix),
            ] {
                if !value.is_empty() {
                    let _ = writeln!(s, "  {key}: \"{value}\"");
                }
            }
        }
        s
    }

    /// The workload named `name`.
    pub fn workload(&self, name: &str) -> String {
        let list = |init: bool| {
            let mut s = String::new();
            for (i, c) in self
                .containers
                .iter()
                .enumerate()
                .filter(|(_, c)| c.init == init)
            {
                let _ = write!(s, "\n  - name: c{i}\n    image: \"{}\"", c.image);
            }
            s
        };
        let spec = format!(
            "containers:{}{}",
            list(false),
            match list(true) {
                l if l.is_empty() => String::new(),
                l => format!("\ninitContainers:{l}"),
            }
        );
        let indent = |text: &str, n: usize| text.replace('\n', &format!("\n{}", " ".repeat(n)));
        match self.kind {
            "Pod" => format!(
                "apiVersion: v1\nkind: Pod\nmetadata:\n  name: {name}\nspec:\n  {}\n",
                indent(&spec, 2)
            ),
            kind => format!(
                "apiVersion: apps/v1\nkind: {kind}\nmetadata:\n  name: {name}\nspec:\n  selector:\n    matchLabels: {{app: {name}}}\n  template:\n    metadata:\n      labels: {{app: {name}}}\n    spec:\n      {}\n",
                indent(&spec, 6)
            ),
        }
    }

    fn target(&self) -> Target {
        Target::Kustomize {
            name: self.target.clone(),
        }
    }

    fn wanted(&self) -> Wanted {
        Wanted {
            repository: Repository::new(&self.target).expect("the pool holds valid names"),
            tag: Tag::new(&self.tag).expect("the pool holds valid tags"),
            digest: Some(Digest::new(&self.digest).expect("generated digests are valid")),
            pin: self.pin,
        }
    }

    /// tagpromoter's bump of the kustomization: the new text, or why it is refused.
    pub fn bump(&self) -> Result<Option<String>, EditError> {
        match manifest::apply(&self.kustomization(), &self.target(), &self.wanted())? {
            Outcome::Unchanged => Ok(None),
            Outcome::Changed(text) => Ok(Some(text)),
        }
    }
}

/// What a run covered, by kind of case and outcome.
#[derive(Debug, Default)]
pub struct Coverage {
    /// Counts by kind.
    pub counts: BTreeMap<&'static str, usize>,
    /// Cases judged.
    pub cases: usize,
    /// Container images compared with the renderer.
    pub images: usize,
    /// What disagreed with the renderer.
    pub failures: Vec<String>,
}

impl Coverage {
    fn count(&mut self, kind: &'static str) {
        *self.counts.entry(kind).or_default() += 1;
    }

    /// The kinds never reached, of those every long enough run must reach.
    pub fn missing(&self) -> Vec<&'static str> {
        [
            "entry with newName",
            "entry with digest",
            "entry with newTag and digest",
            "entry with tagSuffix",
            "container with tag and digest",
            "init container",
            "short Docker Hub name",
            "registry with a port",
            "bump changed the file",
            "bump added lines",
            "bump refused",
            "bump left the file as it was",
            "entry found by another spelling",
        ]
        .into_iter()
        .filter(|k| !self.counts.contains_key(k))
        .collect()
    }
}

/// Render `cases` (before and after their bumps) with `kubectl kustomize` in `dir`, and
/// compare every container's image with what tagpromoter's model says; add to `cov`.
pub fn judge(dir: &Path, cases: &[Case], cov: &mut Coverage) {
    let bumps: Vec<Result<Option<String>, EditError>> = cases.iter().map(Case::bump).collect();
    let mut root = String::from("resources:\n");
    for (i, case) in cases.iter().enumerate() {
        for (side, text) in [
            ("b", Some(case.kustomization())),
            ("a", bumps[i].clone().ok().flatten()),
        ] {
            let Some(text) = text else { continue };
            let d = dir.join(format!("{side}{i}"));
            std::fs::create_dir_all(&d).unwrap();
            std::fs::write(d.join("kustomization.yaml"), text).unwrap();
            std::fs::write(
                d.join("workload.yaml"),
                case.workload(&format!("{side}{i}")),
            )
            .unwrap();
            let _ = writeln!(root, "- {side}{i}");
        }
    }
    std::fs::write(dir.join("kustomization.yaml"), root).unwrap();
    let rendered = super::kustomize_build(dir);
    let mut by_object: BTreeMap<(String, String), String> = BTreeMap::new();
    for u in tagpromoter::render::images::uses(&rendered).unwrap() {
        let name = u.object.split_once('/').map_or("", |(_, n)| n).to_string();
        by_object.insert((name, u.container), u.image);
    }
    for (i, case) in cases.iter().enumerate() {
        cov.cases += 1;
        tally(case, &bumps[i], cov);
        let mut sides = vec![("b", case.kustomization())];
        if let Ok(Some(text)) = &bumps[i] {
            sides.push(("a", text.clone()));
        }
        for (side, text) in &sides {
            let docs = tagpromoter::yaml::parse(text).unwrap();
            let entries = manifest::kustomize::image_entries(&docs).unwrap();
            // Two entries of one image at the same rank: the model refuses to choose (and
            // so does the bump); the transformer is still compared.
            let chosen = manifest::kustomize::written_name(&docs, &case.target)
                .and_then(|w| Ok((w, manifest::rendered(text, &case.target())?)));
            let (written, effective) = match chosen {
                Ok((w, model)) => (Some(w), model[0].0.clone()),
                Err(_) => {
                    cov.count("two entries of the image at one rank");
                    (None, Default::default())
                }
            };
            for (k, c) in case.containers.iter().enumerate() {
                cov.images += 1;
                let key = (format!("{side}{i}"), format!("c{k}"));
                let actual = by_object.get(&key).cloned().unwrap_or_default();
                let expected = transform(&entries, &c.image);
                let mut wrong = Vec::new();
                if actual != expected {
                    wrong.push(format!("the transformer model says {expected}"));
                }
                // A container that writes the image as its entry does runs the effective
                // reference tagpromoter computes for the target.
                // (Where the file leaves the tag to the base, the repository is the model's
                // to say, and the rest the transformer's, compared above.)
                let (name, ..) = manifest::kustomize::split(&c.image);
                if written.as_deref() == Some(name) {
                    let (r, t, d) = manifest::kustomize::split(&actual);
                    let same = match effective.inherited {
                        true => Some(r) == effective.repository.as_deref(),
                        false => {
                            Some(r) == effective.repository.as_deref()
                                && Some(t).filter(|t| !t.is_empty()) == effective.tag.as_deref()
                                && Some(d).filter(|d| !d.is_empty()) == effective.digest.as_deref()
                        }
                    };
                    if !same {
                        wrong.push(format!("the effective reference is {effective}"));
                    }
                }
                if !wrong.is_empty() {
                    cov.failures.push(format!(
                        "case {i} ({side}): container {} renders {actual}; {}\n{}\n{}",
                        c.image,
                        wrong.join("; "),
                        text,
                        case.workload("x")
                    ));
                }
            }
        }
    }
}

fn tally(case: &Case, bump: &Result<Option<String>, EditError>, cov: &mut Coverage) {
    for e in &case.entries {
        if !e.new_name.is_empty() {
            cov.count("entry with newName");
        }
        if !e.digest.is_empty() {
            cov.count("entry with digest");
            if !e.new_tag.is_empty() {
                cov.count("entry with newTag and digest");
            }
        }
        if !e.tag_suffix.is_empty() {
            cov.count("entry with tagSuffix");
        }
        if e.name != case.target
            && Repository::new(&e.name)
                .ok()
                .zip(Repository::new(&case.target).ok())
                .is_some_and(|(a, b)| a.same_as(&b))
        {
            cov.count("entry found by another spelling");
        }
    }
    for c in &case.containers {
        let (name, tag, digest) = manifest::kustomize::split(&c.image);
        if !tag.is_empty() && !digest.is_empty() {
            cov.count("container with tag and digest");
        }
        if c.init {
            cov.count("init container");
        }
        if name == "nginx" {
            cov.count("short Docker Hub name");
        }
        if name.contains(':') {
            cov.count("registry with a port");
        }
    }
    match bump {
        Ok(Some(text)) if text.lines().count() > case.kustomization().lines().count() => {
            cov.count("bump added lines");
        }
        Ok(Some(_)) => cov.count("bump changed the file"),
        Ok(None) => cov.count("bump left the file as it was"),
        Err(_) => cov.count("bump refused"),
    }
}

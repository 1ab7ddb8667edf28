//! Decoding `Promotion` documents: image, tag filters, and the chain of environments.

use jiff::SignedDuration;

use crate::image::Repository;
use crate::policy::FreezeWindow;
use crate::rules::diagnostic::did_you_mean;
use crate::rules::model::*;
use crate::yaml::{Node, NodeKind, Position, is_null};

use super::Decoder;
use super::text::{is_name, template_groups};

impl<'a> Decoder<'a> {
    pub(super) fn promotion(
        &mut self,
        name: String,
        spec: &'a Node,
        position: Position,
    ) -> Option<Promotion> {
        let f = self.fields(
            spec,
            "Promotion spec",
            &["image", "tags", "repository", "environments"],
        )?;
        let image = self.required(&f, "image", "Promotion spec").and_then(|n| {
            let text = self.string(n, "image")?;
            if text.contains('@') || text.rsplit('/').next().is_some_and(|last| last.contains(':')) {
                self.error(n.position, format!("image {text:?} must be a repository without a tag or digest (tagpromoter chooses the tag)"));
                return None;
            }
            match Repository::new(&text) {
                Ok(r) => Some(r),
                Err(e) => {
                    self.error(n.position, format!("image: {e}"));
                    None
                }
            }
        });
        let tags = match f.get("tags") {
            None => Some(TagRules::default()),
            Some(n) => self.tag_rules(n),
        };
        let repository = match f.get("repository") {
            None => Some(None),
            Some(n) => self.string(n, "repository").map(Some),
        };
        let environments = self
            .required(&f, "environments", "Promotion spec")
            .and_then(|n| self.environments(n));
        Some(Promotion {
            name,
            image: image?,
            tags: tags?,
            repository: repository?,
            environments: environments?,
            source: Source {
                file: self.file.to_path_buf(),
                position,
            },
        })
    }

    fn tag_rules(&mut self, node: &'a Node) -> Option<TagRules> {
        let f = self.fields(node, "tags", &["exclude", "filter"])?;
        let exclude = match f.get("exclude") {
            None => Some(TagRules::default().exclude),
            Some(n) => {
                let items = self.strings(n, "tags.exclude");
                let all = items.len();
                let compiled: Vec<SharedRegex> = items
                    .into_iter()
                    .filter_map(|(s, at)| self.regex_text(&s, at, "tags.exclude"))
                    .collect();
                (compiled.len() == all).then_some(compiled)
            }
        };
        let filter = match f.get("filter") {
            None => Some(None),
            Some(n) => {
                let ff = self.fields(n, "tags.filter", &["pattern", "extract"])?;
                let pattern = self
                    .required(&ff, "pattern", "tags.filter")
                    .and_then(|p| self.regex(p, "tags.filter.pattern"));
                let extract = ff.get("extract").and_then(|e| {
                    self.string(e, "tags.filter.extract")
                        .map(|s| (s, e.position))
                });
                if let (Some(re), Some((template, at))) = (&pattern, &extract) {
                    for group in template_groups(template) {
                        let known = group.parse::<usize>().map_or_else(
                            |_| re.capture_names().flatten().any(|n| n == group),
                            |i| i < re.captures_len(),
                        );
                        if !known {
                            self.error(*at, format!("tags.filter.extract refers to ${group}, which the pattern does not capture"));
                        }
                    }
                }
                pattern.map(|pattern| {
                    Some(TagFilter {
                        pattern,
                        extract: extract.map(|(s, _)| s),
                    })
                })
            }
        };
        Some(TagRules {
            exclude: exclude?,
            filter: filter?,
        })
    }

    fn environments(&mut self, node: &'a Node) -> Option<Vec<Environment>> {
        let items = self.list(node, "environments")?;
        if items.is_empty() {
            self.error(node.position, "environments is empty; list at least one");
            return None;
        }
        self.check_chain(&items);
        let decoded: Vec<Option<Environment>> = items
            .into_iter()
            .map(|item| self.environment(item))
            .collect();
        decoded.into_iter().collect()
    }

    /// Names unique, and each `from` naming an earlier environment: the chain runs in list
    /// order. Checked on the raw entries so that it is reported even when an entry has other
    /// problems.
    fn check_chain(&mut self, items: &[&'a Node]) {
        let mut seen: Vec<(String, Position)> = Vec::new();
        let mut froms: Vec<(usize, String, Position)> = Vec::new();
        for item in items {
            let Some(node) = self.resolve(item) else {
                continue;
            };
            let text = |key: &str| {
                node.get(key).and_then(Node::as_scalar).map(|s| {
                    (
                        s.value.clone(),
                        node.get(key).map_or(node.position, |n| n.position),
                    )
                })
            };
            let Some((name, at)) = text("name") else {
                continue;
            };
            if let Some((_, first)) = seen.iter().find(|(n, _)| *n == name) {
                let first = *first;
                self.error(
                    at,
                    format!("environment {name:?} is declared twice (first at {first})"),
                );
            }
            if let Some((from, from_at)) = text("from") {
                froms.push((seen.len(), from, from_at));
            }
            seen.push((name, at));
        }
        for (index, from, at) in froms {
            let (name, _) = &seen[index];
            if seen[..index].iter().any(|(n, _)| *n == from) {
                continue;
            }
            let msg = if from == *name {
                format!("environment {name:?} cannot take tags from itself")
            } else if seen[index..].iter().any(|(n, _)| *n == from) {
                format!("`from: {from}` names a later environment; list {from:?} before {name:?}")
            } else {
                let names: Vec<&str> = seen[..index].iter().map(|(n, _)| n.as_str()).collect();
                let hint = did_you_mean(&from, &names)
                    .map_or(String::new(), |s| format!("; did you mean `{s}`?"));
                format!("`from: {from}` names no earlier environment of this promotion{hint}")
            };
            self.error(at, msg);
        }
    }

    fn environment(&mut self, node: &'a Node) -> Option<Environment> {
        const KEYS: [&str; 15] = [
            "name",
            "from",
            "soak",
            "policy",
            "minAge",
            "target",
            "targets",
            "write",
            "freeze",
            "platforms",
            "pinDigest",
            "stallAfter",
            "repository",
            "branch",
            "verify",
        ];
        let f = self.fields(node, "an environment", &KEYS)?;
        let position = f.position;
        let name = self.required(&f, "name", "an environment").and_then(|n| {
            let name = self.string(n, "environment name")?;
            if !is_name(&name) {
                self.error(
                    n.position,
                    format!("environment name {name:?} must be lowercase letters, digits and '-'"),
                );
                return None;
            }
            Some(name)
        });
        let from = f.get("from").and_then(|n| self.string(n, "from"));
        let soak = match f.get("soak") {
            None => Some(SignedDuration::ZERO),
            Some(n) => {
                if from.is_none() && f.get("from").is_none() {
                    self.error(n.position, "soak needs `from`: it is how long the upstream environment must have run a tag");
                }
                self.duration(n, "soak")
            }
        };
        let policy = self
            .required(&f, "policy", "an environment")
            .and_then(|n| self.policy(n));
        let min_age = match f.get("minAge") {
            None => Some(None),
            Some(n) => self.duration(n, "minAge").map(Some),
        };
        let targets = match (f.get("target"), f.get("targets")) {
            (Some(n), None) => self.target(n).map(|t| vec![t]),
            (None, Some(n)) => self.list(n, "targets").and_then(|items| {
                let targets: Vec<Option<Target>> = items.iter().map(|t| self.target(t)).collect();
                if items.is_empty() {
                    self.error(
                        n.position,
                        "targets is empty; list where the tag is written",
                    );
                    return None;
                }
                targets.into_iter().collect::<Option<Vec<_>>>()
            }),
            (Some(_), Some(n)) => {
                self.error(
                    n.position,
                    "an environment takes target (one place) or targets (several), not both",
                );
                None
            }
            (None, None) => {
                self.error(position, "an environment needs target: (where its tag is written), or targets: [ … ] for several places");
                None
            }
        };
        let (target, also) = match targets {
            Some(mut t) => {
                let first = t.remove(0);
                (Some(first), t)
            }
            None => (None, Vec::new()),
        };
        let repository = match f.get("repository") {
            None => Some(None),
            Some(n) => self.string(n, "repository").map(Some),
        };
        let branch = match f.get("branch") {
            None => Some(None),
            Some(n) => self.string(n, "branch").map(Some),
        };
        let write = match f.get("write") {
            None => Some(WriteMode::Push),
            Some(n) => match self.string(n, "write").as_deref() {
                Some("push") => Some(WriteMode::Push),
                Some("pull-request") => Some(WriteMode::PullRequest),
                Some(other) => {
                    self.error(
                        n.position,
                        format!("write {other:?} is not supported; use push or pull-request"),
                    );
                    None
                }
                None => None,
            },
        };
        let freeze = match f.get("freeze") {
            None => Some(Vec::new()),
            Some(n) => self.freezes(n),
        };
        let platforms = match f.get("platforms") {
            None => Some(Vec::new()),
            Some(n) => {
                let items = self.strings(n, "platforms");
                let mut good = Vec::new();
                for (p, at) in items {
                    let parts: Vec<&str> = p.split('/').collect();
                    let valid = (2..=3).contains(&parts.len())
                        && parts.iter().all(|s| {
                            !s.is_empty()
                                && s.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')
                        });
                    if valid {
                        good.push(p);
                    } else {
                        self.error(at, format!("platform {p:?} must be os/arch or os/arch/variant, e.g. linux/arm64"));
                    }
                }
                Some(good)
            }
        };
        let pin_digest = f
            .get("pinDigest")
            .map_or(Some(false), |n| self.bool(n, "pinDigest"));
        let stall_after = match f.get("stallAfter") {
            None => Some(SignedDuration::from_hours(1)),
            Some(n) => self.positive_duration(n, "stallAfter"),
        };
        let verify = match f.get("verify") {
            None => Some(None),
            Some(n) => self.verify(n).map(Some),
        };
        if let (
            Some(Target::Helm {
                digest: None,
                value: HelmValue::Tag(_),
                ..
            }),
            Some(true),
        ) = (&target, pin_digest)
        {
            self.error(position, "pinDigest with a helm target needs target.helm.digest: the values path to write the digest to");
        }
        Some(Environment {
            name: name?,
            from,
            soak: soak?,
            policy: policy?,
            min_age: min_age?,
            target: target?,
            also,
            repository: repository?,
            branch: branch?,
            // Resolved once every document (the Settings too) is read.
            destination: Destination::default(),
            write: write?,
            freeze: freeze?,
            platforms: platforms?,
            pin_digest: pin_digest?,
            stall_after: stall_after?,
            verify: verify?,
            position,
        })
    }

    fn policy(&mut self, node: &'a Node) -> Option<Policy> {
        const KINDS: [&str; 4] = ["semver", "alphabetical", "numerical", "newestBuild"];
        let (kind, value) = self.one_of(node, "policy", &KINDS)?;
        let order = |d: &mut Self| -> Option<SortOrder> {
            let v = d.string(value, kind)?;
            match v.as_str() {
                "asc" => Some(SortOrder::Asc),
                "desc" => Some(SortOrder::Desc),
                _ => {
                    d.error(
                        value.position,
                        format!("{kind} must be asc or desc, not {v:?}"),
                    );
                    None
                }
            }
        };
        match kind {
            "semver" => self.semver(value).map(Policy::Semver),
            "alphabetical" => order(self).map(Policy::Alphabetical),
            "numerical" => order(self).map(Policy::Numerical),
            _ => {
                let nb = self.resolve(value)?;
                let empty = matches!(&nb.kind, NodeKind::Mapping(e) if e.is_empty())
                    || nb.as_scalar().is_some_and(is_null);
                if !empty {
                    self.error(
                        nb.position,
                        "newestBuild takes no options; write `newestBuild: {}`",
                    );
                    return None;
                }
                Some(Policy::NewestBuild(NewestBuild {}))
            }
        }
    }

    /// `semver: RANGE` or `semver: { range: RANGE, loose: BOOL }`.
    fn semver(&mut self, value: &'a Node) -> Option<SemverPolicy> {
        let node = self.resolve(value)?;
        let (range_node, loose) = match &node.kind {
            NodeKind::Mapping(_) => {
                let f = self.fields(node, "policy.semver", &["range", "loose"])?;
                let range = self.required(&f, "range", "policy.semver")?;
                let loose = match f.get("loose") {
                    None => false,
                    Some(n) => self.bool(n, "policy.semver.loose")?,
                };
                (range, loose)
            }
            _ => (value, false),
        };
        let text = self.string(range_node, "semver")?;
        match Self::constraint(&text) {
            Ok(range) => Some(SemverPolicy { range, loose }),
            Err(e) => {
                self.error(range_node.position, format!("{e}; write a Masterminds range such as ^6.0.0, ~1.2, >=1.0.0 <2 or >=1.0.0-0 for prereleases"));
                None
            }
        }
    }

    fn target(&mut self, node: &'a Node) -> Option<Target> {
        const KINDS: [&str; 5] = ["kustomize", "helm", "marker", "manifest", "argocdSource"];
        let (kind, value) = self.one_of(node, "target", &KINDS)?;
        let what = format!("target.{kind}");
        match kind {
            "kustomize" => {
                let t = self.fields(value, &what, &["file", "name"])?;
                let file = self
                    .required(&t, "file", &what)
                    .and_then(|n| self.repo_path(n, "target file"));
                let name = t
                    .get("name")
                    .and_then(|n| self.string(n, "target.kustomize.name"));
                Some(Target::Kustomize { file: file?, name })
            }
            "helm" => {
                let t = self.fields(
                    value,
                    &what,
                    &["file", "tag", "image", "repository", "digest", "name"],
                )?;
                let file = self
                    .required(&t, "file", &what)
                    .and_then(|n| self.repo_path(n, "target file"));
                let tag = match (t.get("tag"), t.get("image")) {
                    (Some(n), None) => self.helm_path(n, "target.helm.tag").map(HelmValue::Tag),
                    (None, Some(n)) => self.helm_path(n, "target.helm.image").map(HelmValue::Image),
                    (Some(_), Some(n)) => {
                        self.error(n.position, "target.helm takes tag (the path of the tag) or image (the path of a whole reference), not both");
                        None
                    }
                    (None, None) => {
                        self.error(value.position, "target.helm needs tag: (the values path of the tag, e.g. image.tag) or image: (the path of a value holding repo:tag)");
                        None
                    }
                };
                let repository = match t.get("repository") {
                    None => Some(None),
                    Some(n) => self.helm_path(n, "target.helm.repository").map(Some),
                };
                let digest = match t.get("digest") {
                    None => Some(None),
                    Some(n) => self.helm_path(n, "target.helm.digest").map(Some),
                };
                let name = self.repository_name(&t, &what);
                Some(Target::Helm {
                    file: file?,
                    value: tag?,
                    repository: repository?,
                    digest: digest?,
                    name: name?,
                })
            }
            "marker" => {
                let t = self.fields(value, &what, &["file", "policy", "name"])?;
                let file = self
                    .required(&t, "file", &what)
                    .and_then(|n| self.repo_path(n, "target file"));
                let policy = match t.get("policy") {
                    None => Some(None),
                    Some(n) => self.string(n, "target.marker.policy").map(Some),
                };
                let name = self.repository_name(&t, &what);
                Some(Target::Marker {
                    file: file?,
                    policy: policy?,
                    name: name?,
                })
            }
            "argocdSource" => {
                let t = self.fields(value, &what, &["file", "parameter", "name"])?;
                let file = self
                    .required(&t, "file", &what)
                    .and_then(|n| self.repo_path(n, "target file"));
                let parameter = match t.get("parameter") {
                    None => Some(None),
                    Some(n) => self.string(n, "target.argocdSource.parameter").map(Some),
                };
                let name = self.repository_name(&t, &what);
                Some(Target::ArgocdSource {
                    file: file?,
                    parameter: parameter?,
                    name: name?,
                })
            }
            _ => {
                let t = self.fields(value, &what, &["file", "name"])?;
                let file = self
                    .required(&t, "file", &what)
                    .and_then(|n| self.repo_path(n, "target file"));
                let name = self.repository_name(&t, &what);
                Some(Target::Manifest {
                    file: file?,
                    name: name?,
                })
            }
        }
    }

    /// A target's optional `name:`, the repository its files write.
    fn repository_name(&mut self, t: &super::Fields<'a>, what: &str) -> Option<Option<Repository>> {
        let Some(n) = t.get("name") else {
            return Some(None);
        };
        let text = self.string(n, &format!("{what}.name"))?;
        match Repository::new(&text) {
            Ok(r) => Some(Some(r)),
            Err(e) => {
                self.error(n.position, format!("{what}.name: {e}"));
                None
            }
        }
    }

    fn freezes(&mut self, node: &'a Node) -> Option<Vec<Freeze>> {
        let items = self.list(node, "freeze")?;
        let mut out = Vec::new();
        let mut ok = true;
        for item in items {
            let Some(f) = self.fields(item, "a freeze window", &["from", "to", "timeZone"]) else {
                ok = false;
                continue;
            };
            let from = self
                .required(&f, "from", "a freeze window")
                .and_then(|n| self.string(n, "freeze from"));
            let to = self
                .required(&f, "to", "a freeze window")
                .and_then(|n| self.string(n, "freeze to"));
            let tz = f.get("timeZone").and_then(|n| self.string(n, "timeZone"));
            let (Some(from), Some(to)) = (from, to) else {
                ok = false;
                continue;
            };
            match FreezeWindow::parse(&from, &to, tz.as_deref().unwrap_or("UTC")) {
                Ok(window) => out.push(Freeze {
                    from,
                    to,
                    time_zone: tz,
                    window,
                }),
                Err(e) => {
                    let at = if e.0.contains("time zone") {
                        f.get("timeZone").map_or(f.position, |n| n.position)
                    } else {
                        f.position
                    };
                    self.error(at, format!("freeze window: {e}"));
                    ok = false;
                }
            }
        }
        ok.then_some(out)
    }
}

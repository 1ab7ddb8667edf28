//! Decoding positioned YAML into the rules model, collecting every problem instead of
//! stopping at the first (serde would stop at the first, and lose the position).
//!
//! Each document is decoded field by field through a [`Decoder`], which records a
//! [`Diagnostic`] for each unknown key, wrong type or bad value and carries on. Aliases are
//! followed on a [`Budget`], so a hostile rules file fails fast.

use std::path::{Component, Path, PathBuf};

use jiff::SignedDuration;
use regex::Regex;

use crate::image::Repository;
use crate::manifest::HelmPath;
use crate::policy::{Constraint, FreezeWindow};
use crate::yaml::{Budget, Document, Node, NodeKind, Position, Style, is_null};

use super::diagnostic::{Diagnostic, did_you_mean};
use super::model::*;

/// Alias visits allowed per document: generous for real rules, tiny next to a billion laughs.
const ALIAS_BUDGET: usize = 10_000;

/// What one document turned out to be.
pub enum Decoded {
    /// A `Settings` document (`None` when invalid, already reported).
    Settings(Option<Box<Settings>>, Position),
    /// A `Promotion` document: its name when readable, and the promotion when valid.
    Promotion(Option<String>, Position, Option<Box<Promotion>>),
    /// Not a rules document, or empty (already reported).
    Invalid,
}

/// Decodes one document, recording problems.
pub struct Decoder<'a> {
    file: &'a Path,
    doc: &'a Document,
    diags: &'a mut Vec<Diagnostic>,
    budget: Budget,
}

/// The entries of a mapping, checked against the keys allowed there.
struct Fields<'a> {
    entries: Vec<(&'a str, &'a Node, &'a Node)>,
    position: Position,
}

impl<'a> Fields<'a> {
    fn get(&self, key: &str) -> Option<&'a Node> {
        self.entries
            .iter()
            .find(|(k, _, _)| *k == key)
            .map(|(_, _, v)| *v)
    }
}

impl<'a> Decoder<'a> {
    /// A decoder for `doc` of `file`, recording into `diags`.
    pub fn new(file: &'a Path, doc: &'a Document, diags: &'a mut Vec<Diagnostic>) -> Self {
        Self {
            file,
            doc,
            diags,
            budget: Budget::new(ALIAS_BUDGET),
        }
    }

    fn error(&mut self, at: Position, message: impl Into<String>) {
        self.diags.push(Diagnostic {
            file: self.file.to_path_buf(),
            position: Some(at),
            message: message.into(),
        });
    }

    /// The node itself, or the anchored node an alias names.
    fn resolve(&mut self, node: &'a Node) -> Option<&'a Node> {
        let NodeKind::Alias(id) = node.kind else {
            return Some(node);
        };
        if !self.budget.spend() {
            self.error(
                node.position,
                "too many aliases to expand; write the rules out without anchors",
            );
            return None;
        }
        let found = self.doc.anchored(id);
        if found.is_none() {
            self.error(node.position, "alias to an unknown anchor");
        }
        found
    }

    fn fields(&mut self, node: &'a Node, what: &str, allowed: &[&str]) -> Option<Fields<'a>> {
        let node = self.resolve(node)?;
        let NodeKind::Mapping(entries) = &node.kind else {
            self.error(
                node.position,
                format!("{what} must be a mapping, found {}", node.kind_name()),
            );
            return None;
        };
        let mut fields = Fields {
            entries: Vec::new(),
            position: node.position,
        };
        for (k, v) in entries {
            let Some(key) = k.as_scalar().map(|s| s.value.as_str()) else {
                self.error(k.position, format!("keys of {what} must be plain words"));
                continue;
            };
            if !allowed.contains(&key) {
                let hint = match did_you_mean(key, allowed) {
                    Some(s) => format!("; did you mean `{s}`?"),
                    None => format!("; allowed here: {}", allowed.join(", ")),
                };
                self.error(k.position, format!("unknown key `{key}` in {what}{hint}"));
                continue;
            }
            if fields.get(key).is_some() {
                self.error(k.position, format!("`{key}` appears twice in {what}"));
                continue;
            }
            fields.entries.push((key, k, v));
        }
        Some(fields)
    }

    fn required(&mut self, fields: &Fields<'a>, key: &str, what: &str) -> Option<&'a Node> {
        let node = fields.get(key);
        if node.is_none() {
            self.error(fields.position, format!("{what} needs `{key}`"));
        }
        node
    }

    fn string(&mut self, node: &'a Node, what: &str) -> Option<String> {
        let node = self.resolve(node)?;
        match &node.kind {
            NodeKind::Scalar(s) if !is_null(s) || s.style != Style::Plain => Some(s.value.clone()),
            _ => {
                self.error(
                    node.position,
                    format!("{what} must be a string, found {}", node.kind_name()),
                );
                None
            }
        }
    }

    fn bool(&mut self, node: &'a Node, what: &str) -> Option<bool> {
        let node = self.resolve(node)?;
        match node.as_scalar().map(|s| (s.style, s.value.as_str())) {
            Some((Style::Plain, "true")) => Some(true),
            Some((Style::Plain, "false")) => Some(false),
            _ => {
                self.error(node.position, format!("{what} must be true or false"));
                None
            }
        }
    }

    fn list(&mut self, node: &'a Node, what: &str) -> Option<Vec<&'a Node>> {
        let node = self.resolve(node)?;
        match &node.kind {
            NodeKind::Sequence(items) => Some(items.iter().collect()),
            _ => {
                self.error(
                    node.position,
                    format!("{what} must be a list, found {}", node.kind_name()),
                );
                None
            }
        }
    }

    fn strings(&mut self, node: &'a Node, what: &str) -> Vec<(String, Position)> {
        let items = self.list(node, what).unwrap_or_default();
        items
            .into_iter()
            .filter_map(|n| {
                self.string(n, &format!("an item of {what}"))
                    .map(|s| (s, n.position))
            })
            .collect()
    }

    fn duration(&mut self, node: &'a Node, what: &str) -> Option<SignedDuration> {
        let text = self.string(node, what)?;
        match parse_duration(&text) {
            Some(d) => Some(d),
            None => {
                self.error(
                    node.position,
                    format!("{what}: {text:?} is not a duration; write a number and a unit, e.g. 30s, 15m, 2h, 1d or 1h30m"),
                );
                None
            }
        }
    }

    fn regex(&mut self, node: &'a Node, what: &str) -> Option<Regex> {
        let text = self.string(node, what)?;
        self.regex_text(&text, node.position, what)
    }

    fn regex_text(&mut self, text: &str, at: Position, what: &str) -> Option<Regex> {
        match regex::RegexBuilder::new(text).size_limit(1 << 20).build() {
            Ok(re) => Some(re),
            Err(e) => {
                let first = e
                    .to_string()
                    .lines()
                    .last()
                    .unwrap_or_default()
                    .trim()
                    .trim_start_matches("error: ")
                    .to_string();
                self.error(
                    at,
                    format!("{what}: {text:?} is not a valid regex: {first}"),
                );
                None
            }
        }
    }

    fn repo_path(&mut self, node: &'a Node, what: &str) -> Option<PathBuf> {
        let text = self.string(node, what)?;
        match check_repo_path(&text) {
            Ok(p) => Some(p),
            Err(why) => {
                self.error(node.position, format!("{what} {text:?} {why}"));
                None
            }
        }
    }

    /// Check the header (`apiVersion`, `kind`) and decode the document.
    pub fn document(mut self) -> Decoded {
        let root = &self.doc.root;
        if root.as_scalar().is_some_and(is_null) {
            // An empty document (a trailing `---`) is allowed and means nothing.
            return Decoded::Invalid;
        }
        let Some(fields) = self.fields(
            root,
            "a rules document",
            &["apiVersion", "kind", "metadata", "spec"],
        ) else {
            return Decoded::Invalid;
        };
        let position = fields.position;
        match self
            .required(&fields, "apiVersion", "a rules document")
            .and_then(|n| self.string(n, "apiVersion").map(|s| (s, n)))
        {
            Some((v, _)) if v == API_VERSION => {}
            Some((v, n)) => self.error(
                n.position,
                format!("apiVersion {v:?} is not supported; use {API_VERSION}"),
            ),
            None => {}
        }
        let kind_node = self.required(&fields, "kind", "a rules document");
        let kind = kind_node.and_then(|n| self.string(n, "kind"));
        let spec = self.required(&fields, "spec", "a rules document");
        match (kind.as_deref(), spec) {
            (Some("Settings"), Some(spec)) => {
                if let Some(m) = fields.get("metadata") {
                    self.fields(m, "metadata", &["name"]);
                }
                Decoded::Settings(self.settings(spec).map(Box::new), position)
            }
            (Some("Settings"), None) => Decoded::Settings(None, position),
            (Some("Promotion"), spec) => {
                let name = self.metadata_name(&fields);
                let promotion = match (&name, spec) {
                    (Some(name), Some(spec)) => {
                        self.promotion(name.clone(), spec, position).map(Box::new)
                    }
                    _ => None,
                };
                Decoded::Promotion(name, position, promotion)
            }
            (Some(other), _) => {
                let at = kind_node.map_or(position, |n| n.position);
                let hint = did_you_mean(other, &["Settings", "Promotion"]).map_or_else(
                    || "; use Settings or Promotion".to_string(),
                    |s| format!("; did you mean `{s}`?"),
                );
                self.error(at, format!("unknown kind {other:?}{hint}"));
                Decoded::Invalid
            }
            _ => Decoded::Invalid,
        }
    }

    fn metadata_name(&mut self, fields: &Fields<'a>) -> Option<String> {
        let meta = self.required(fields, "metadata", "a Promotion")?;
        let m = self.fields(meta, "metadata", &["name"])?;
        let node = self.required(&m, "name", "metadata")?;
        let name = self.string(node, "metadata.name")?;
        if !is_name(&name) {
            self.error(node.position, format!("promotion name {name:?} must be lowercase letters, digits and '-' (it appears in commit trailers and markers)"));
            return None;
        }
        Some(name)
    }

    fn settings(&mut self, spec: &'a Node) -> Option<Settings> {
        let f = self.fields(
            spec,
            "Settings spec",
            &["git", "registries", "alerts", "interval"],
        )?;
        let git = self
            .required(&f, "git", "Settings spec")
            .and_then(|n| self.git(n));
        let registries = f
            .get("registries")
            .map(|n| self.registries(n))
            .unwrap_or_default();
        let alerts = f
            .get("alerts")
            .map_or(Some(Alerts::default()), |n| self.alerts(n));
        let interval = match f.get("interval") {
            None => Some(SignedDuration::from_mins(2)),
            Some(n) => self.positive_duration(n, "interval"),
        };
        Some(Settings {
            git: git?,
            registries,
            alerts: alerts?,
            interval: interval?,
        })
    }

    fn positive_duration(&mut self, node: &'a Node, what: &str) -> Option<SignedDuration> {
        let d = self.duration(node, what)?;
        if d.is_zero() {
            self.error(node.position, format!("{what} must be longer than 0"));
            return None;
        }
        Some(d)
    }

    fn git(&mut self, node: &'a Node) -> Option<Git> {
        let f = self.fields(node, "git", &["url", "branch", "auth", "author", "forge"])?;
        let url = self.required(&f, "url", "git").and_then(|n| {
            let url = self.string(n, "git.url")?;
            let ok = ["https://", "http://", "ssh://", "file://"].iter().any(|p| url.starts_with(p))
                || (url.contains('@') && url.contains(':'));
            if !ok {
                self.error(n.position, format!("git.url {url:?} is not a repository URL; use https://, ssh://, git@host:path or file://"));
                return None;
            }
            Some(url)
        });
        let branch = match f.get("branch") {
            None => Some(default_branch()),
            Some(n) => self.string(n, "git.branch"),
        };
        let auth = match f.get("auth") {
            None => Some(None),
            Some(n) => self.git_auth(n).map(Some),
        };
        let author = match f.get("author") {
            None => Some(Author::default()),
            Some(n) => self.author(n),
        };
        let forge = match f.get("forge") {
            None => Some(None),
            Some(n) => self.forge(n).map(Some),
        };
        Some(Git {
            url: url?,
            branch: branch?,
            auth: auth?,
            author: author?,
            forge: forge?,
        })
    }

    fn git_auth(&mut self, node: &'a Node) -> Option<GitAuth> {
        let f = self.fields(
            node,
            "git.auth",
            &[
                "tokenFile",
                "username",
                "passwordFile",
                "sshKeyFile",
                "knownHostsFile",
            ],
        )?;
        let path = |d: &mut Self, key: &str| {
            f.get(key)
                .and_then(|n| d.string(n, &format!("git.auth.{key}")))
                .map(PathBuf::from)
        };
        let kinds = ["tokenFile", "passwordFile", "sshKeyFile"]
            .iter()
            .filter(|k| f.get(k).is_some())
            .count();
        if kinds != 1 {
            self.error(
                f.position,
                "git.auth needs exactly one of tokenFile, username + passwordFile, or sshKeyFile",
            );
            return None;
        }
        if let Some(token_file) = path(self, "tokenFile") {
            return Some(GitAuth::Token { token_file });
        }
        if let Some(password_file) = path(self, "passwordFile") {
            let username = self
                .required(&f, "username", "git.auth with passwordFile")
                .and_then(|n| self.string(n, "git.auth.username"))?;
            return Some(GitAuth::Password {
                username,
                password_file,
            });
        }
        let ssh_key_file = path(self, "sshKeyFile")?;
        Some(GitAuth::SshKey {
            ssh_key_file,
            known_hosts_file: path(self, "knownHostsFile"),
        })
    }

    fn author(&mut self, node: &'a Node) -> Option<Author> {
        let f = self.fields(node, "git.author", &["name", "email"])?;
        let default = Author::default();
        let name = f
            .get("name")
            .map_or(Some(default.name), |n| self.string(n, "git.author.name"));
        let email = f
            .get("email")
            .map_or(Some(default.email), |n| self.string(n, "git.author.email"));
        Some(Author {
            name: name?,
            email: email?,
        })
    }

    fn forge(&mut self, node: &'a Node) -> Option<Forge> {
        let f = self.fields(
            node,
            "git.forge",
            &["kind", "apiUrl", "tokenFile", "project"],
        )?;
        let kind = self.required(&f, "kind", "git.forge").and_then(|n| {
            let k = self.string(n, "git.forge.kind")?;
            match k.as_str() {
                "github" => Some(ForgeKind::Github),
                "gitlab" => Some(ForgeKind::Gitlab),
                "gitea" => Some(ForgeKind::Gitea),
                _ => {
                    self.error(
                        n.position,
                        format!(
                            "git.forge.kind {k:?} is not supported; use github, gitlab or gitea"
                        ),
                    );
                    None
                }
            }
        });
        let api_url = self
            .required(&f, "apiUrl", "git.forge")
            .and_then(|n| self.url(n, "git.forge.apiUrl"));
        let token_file = self
            .required(&f, "tokenFile", "git.forge")
            .and_then(|n| self.string(n, "git.forge.tokenFile"));
        let project = match f.get("project") {
            None => Some(None),
            Some(n) => self.string(n, "git.forge.project").map(Some),
        };
        Some(Forge {
            kind: kind?,
            api_url: api_url?,
            token_file: PathBuf::from(token_file?),
            project: project?,
        })
    }

    fn url(&mut self, node: &'a Node, what: &str) -> Option<String> {
        let url = self.string(node, what)?;
        if !(url.starts_with("http://") || url.starts_with("https://"))
            || url.contains(char::is_whitespace)
        {
            self.error(
                node.position,
                format!("{what} {url:?} must be an http:// or https:// URL"),
            );
            return None;
        }
        Some(url)
    }

    fn registries(&mut self, node: &'a Node) -> Vec<Registry> {
        let mut out: Vec<Registry> = Vec::new();
        for item in self.list(node, "registries").unwrap_or_default() {
            let Some(f) = self.fields(
                item,
                "a registry",
                &[
                    "host",
                    "dockerConfig",
                    "username",
                    "passwordFile",
                    "insecure",
                    "requestsPerSecond",
                ],
            ) else {
                continue;
            };
            let Some(host_node) = self.required(&f, "host", "a registry") else {
                continue;
            };
            let Some(host) = self.string(host_node, "registries[].host") else {
                continue;
            };
            if host.contains('/') || host.contains(char::is_whitespace) || host.is_empty() {
                self.error(host_node.position, format!("registry host {host:?} must be a host name with an optional port, without a scheme or path"));
                continue;
            }
            if out.iter().any(|r| r.host == host) {
                self.error(
                    host_node.position,
                    format!("registry host {host:?} is listed twice"),
                );
                continue;
            }
            let path = |d: &mut Self, key: &str| {
                f.get(key)
                    .and_then(|n| d.string(n, &format!("registries[].{key}")))
                    .map(PathBuf::from)
            };
            let docker_config = path(self, "dockerConfig");
            let password_file = path(self, "passwordFile");
            let username = f
                .get("username")
                .and_then(|n| self.string(n, "registries[].username"));
            if username.is_some() != password_file.is_some() {
                self.error(f.position, "username and passwordFile go together");
            }
            let insecure = f
                .get("insecure")
                .and_then(|n| self.bool(n, "insecure"))
                .unwrap_or(false);
            let requests_per_second = f.get("requestsPerSecond").and_then(|n| {
                let text = self.string(n, "requestsPerSecond")?;
                match text.parse::<f64>() {
                    Ok(v) if v > 0.0 && v.is_finite() => Some(v),
                    _ => {
                        self.error(
                            n.position,
                            format!("requestsPerSecond {text:?} must be a number above 0"),
                        );
                        None
                    }
                }
            });
            out.push(Registry {
                host,
                docker_config,
                username,
                password_file,
                insecure,
                requests_per_second,
            });
        }
        out
    }

    fn alerts(&mut self, node: &'a Node) -> Option<Alerts> {
        let f = self.fields(
            node,
            "alerts",
            &["alertmanager", "webhooks", "holdAlertAfter"],
        )?;
        let alertmanager = match f.get("alertmanager") {
            None => None,
            Some(n) => {
                let am = self.fields(n, "alerts.alertmanager", &["url"])?;
                let url = self
                    .required(&am, "url", "alerts.alertmanager")
                    .and_then(|u| self.url(u, "alerts.alertmanager.url"))?;
                Some(Alertmanager { url })
            }
        };
        let mut webhooks = Vec::new();
        if let Some(list) = f.get("webhooks") {
            for item in self.list(list, "alerts.webhooks").unwrap_or_default() {
                let Some(w) = self.fields(item, "a webhook", &["url", "format", "secretFile"])
                else {
                    continue;
                };
                let url = self
                    .required(&w, "url", "a webhook")
                    .and_then(|u| self.url(u, "webhook url"));
                let format = match w.get("format") {
                    None => Some(WebhookFormat::Json),
                    Some(n) => {
                        match self.string(n, "webhook format").as_deref() {
                            Some("json") => Some(WebhookFormat::Json),
                            Some("slack") => Some(WebhookFormat::Slack),
                            Some(other) => {
                                self.error(n.position, format!("webhook format {other:?} is not supported; use json or slack"));
                                None
                            }
                            None => None,
                        }
                    }
                };
                let secret_file = w
                    .get("secretFile")
                    .and_then(|n| self.string(n, "webhook secretFile"))
                    .map(PathBuf::from);
                if secret_file.is_some() && format == Some(WebhookFormat::Slack) {
                    self.error(
                        w.position,
                        "secretFile signs json webhooks only; Slack does not check signatures",
                    );
                }
                if let (Some(url), Some(format)) = (url, format) {
                    webhooks.push(Webhook {
                        url,
                        format,
                        secret_file,
                    });
                }
            }
        }
        let hold_alert_after = match f.get("holdAlertAfter") {
            None => Some(Alerts::default().hold_alert_after),
            Some(n) => self.positive_duration(n, "holdAlertAfter"),
        };
        Some(Alerts {
            alertmanager,
            webhooks,
            hold_alert_after: hold_alert_after?,
        })
    }

    fn promotion(&mut self, name: String, spec: &'a Node, position: Position) -> Option<Promotion> {
        let f = self.fields(spec, "Promotion spec", &["image", "tags", "environments"])?;
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
        let environments = self
            .required(&f, "environments", "Promotion spec")
            .and_then(|n| self.environments(n));
        Some(Promotion {
            name,
            image: image?,
            tags: tags?,
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
                let compiled: Vec<Regex> = items
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
        const KEYS: [&str; 11] = [
            "name",
            "from",
            "soak",
            "policy",
            "minAge",
            "target",
            "write",
            "freeze",
            "platforms",
            "pinDigest",
            "stallAfter",
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
        let target = self
            .required(&f, "target", "an environment")
            .and_then(|n| self.target(n));
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
        if let (Some(Target::Helm { digest: None, .. }), Some(true)) = (&target, pin_digest) {
            self.error(position, "pinDigest with a helm target needs target.helm.digest: the values path to write the digest to");
        }
        Some(Environment {
            name: name?,
            from,
            soak: soak?,
            policy: policy?,
            min_age: min_age?,
            target: target?,
            write: write?,
            freeze: freeze?,
            platforms: platforms?,
            pin_digest: pin_digest?,
            stall_after: stall_after?,
            position,
        })
    }

    fn policy(&mut self, node: &'a Node) -> Option<Policy> {
        const KINDS: [&str; 4] = ["semver", "alphabetical", "numerical", "newestBuild"];
        let f = self.fields(node, "policy", &KINDS)?;
        if f.entries.len() != 1 {
            self.error(
                f.position,
                "policy needs exactly one of semver, alphabetical, numerical or newestBuild",
            );
            return None;
        }
        let (kind, _, value) = f.entries[0];
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
            "semver" => {
                let text = self.string(value, "semver")?;
                match Constraint::parse(&text) {
                    Ok(c) => Some(Policy::Semver(c)),
                    Err(e) => {
                        self.error(value.position, format!("{e}; write a Masterminds range such as ^6.0.0, ~1.2, >=1.0.0 <2 or >=1.0.0-0 for prereleases"));
                        None
                    }
                }
            }
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

    fn target(&mut self, node: &'a Node) -> Option<Target> {
        const KINDS: [&str; 4] = ["kustomize", "helm", "marker", "manifest"];
        let f = self.fields(node, "target", &KINDS)?;
        if f.entries.len() != 1 {
            self.error(
                f.position,
                "target needs exactly one of kustomize, helm, marker or manifest",
            );
            return None;
        }
        let (kind, _, value) = f.entries[0];
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
                let t = self.fields(value, &what, &["file", "tag", "repository", "digest"])?;
                let file = self
                    .required(&t, "file", &what)
                    .and_then(|n| self.repo_path(n, "target file"));
                let tag = self
                    .required(&t, "tag", &what)
                    .and_then(|n| self.helm_path(n, "target.helm.tag"));
                let repository = match t.get("repository") {
                    None => Some(None),
                    Some(n) => self.helm_path(n, "target.helm.repository").map(Some),
                };
                let digest = match t.get("digest") {
                    None => Some(None),
                    Some(n) => self.helm_path(n, "target.helm.digest").map(Some),
                };
                Some(Target::Helm {
                    file: file?,
                    tag: tag?,
                    repository: repository?,
                    digest: digest?,
                })
            }
            "marker" => {
                let t = self.fields(value, &what, &["file"])?;
                let file = self
                    .required(&t, "file", &what)
                    .and_then(|n| self.repo_path(n, "target file"))?;
                Some(Target::Marker { file })
            }
            _ => {
                let t = self.fields(value, &what, &["file"])?;
                let file = self
                    .required(&t, "file", &what)
                    .and_then(|n| self.repo_path(n, "target file"))?;
                Some(Target::Manifest { file })
            }
        }
    }

    fn helm_path(&mut self, node: &'a Node, what: &str) -> Option<HelmPath> {
        let text = self.string(node, what)?;
        match text.parse::<HelmPath>() {
            Ok(p) => Some(p),
            Err(e) => {
                self.error(node.position, format!("{what}: {e}"));
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

/// Names used in trailers and markers: `[a-z0-9]([a-z0-9-]*[a-z0-9])?`, up to 63 characters.
fn is_name(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 63
        && s.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !s.starts_with('-')
        && !s.ends_with('-')
}

/// The group names and numbers a template such as `$1`, `$name` or `${name}` refers to.
fn template_groups(template: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut rest = template;
    while let Some(i) = rest.find('$') {
        rest = &rest[i + 1..];
        if let Some(stripped) = rest.strip_prefix('$') {
            rest = stripped;
            continue;
        }
        let (name, after) = if let Some(braced) = rest.strip_prefix('{') {
            match braced.find('}') {
                Some(end) => (&braced[..end], &braced[end + 1..]),
                None => break,
            }
        } else {
            let end = rest
                .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
                .unwrap_or(rest.len());
            (&rest[..end], &rest[end..])
        };
        if !name.is_empty() {
            out.push(name.to_string());
        }
        rest = after;
    }
    out
}

/// A repository-relative path: not absolute, no `..`, not empty.
fn check_repo_path(text: &str) -> Result<PathBuf, &'static str> {
    let path = Path::new(text);
    if text.is_empty() {
        return Err("is empty");
    }
    if text.contains('\\') || text.contains('\0') {
        return Err("must use / as separator");
    }
    for c in path.components() {
        match c {
            Component::RootDir | Component::Prefix(_) => {
                return Err("is absolute; give a path relative to the repository root");
            }
            Component::ParentDir => {
                return Err("leaves the repository (..); give a path inside it");
            }
            _ => {}
        }
    }
    let clean: PathBuf = path
        .components()
        .filter(|c| !matches!(c, Component::CurDir))
        .collect();
    if clean.as_os_str().is_empty() {
        return Err("names the repository root, not a file");
    }
    Ok(clean)
}

/// `1h30m`, `90s`, `15m`, `2d`, `1w`, `500ms`: numbers with units, summed.
pub fn parse_duration(text: &str) -> Option<SignedDuration> {
    let mut total = SignedDuration::ZERO;
    let mut rest = text.trim();
    if rest.is_empty() {
        return None;
    }
    if rest == "0" {
        return Some(total);
    }
    while !rest.is_empty() {
        let digits = rest
            .find(|c: char| !c.is_ascii_digit())
            .unwrap_or(rest.len());
        if digits == 0 {
            return None;
        }
        let n: i64 = rest[..digits].parse().ok()?;
        rest = &rest[digits..];
        let unit_len = rest
            .find(|c: char| c.is_ascii_digit())
            .unwrap_or(rest.len());
        let seconds: i64 = match &rest[..unit_len] {
            "ms" => {
                total = total.checked_add(SignedDuration::from_millis(n))?;
                rest = &rest[unit_len..];
                continue;
            }
            "s" => 1,
            "m" => 60,
            "h" => 3600,
            "d" => 86_400,
            "w" => 604_800,
            _ => return None,
        };
        total = total.checked_add(SignedDuration::from_secs(n.checked_mul(seconds)?))?;
        rest = &rest[unit_len..];
    }
    Some(total)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        assert_eq!(parse_duration("1h30m"), Some(SignedDuration::from_mins(90)));
        assert_eq!(parse_duration("2d"), Some(SignedDuration::from_hours(48)));
        assert_eq!(
            parse_duration("500ms"),
            Some(SignedDuration::from_millis(500))
        );
        assert_eq!(parse_duration("0"), Some(SignedDuration::ZERO));
        for bad in ["", "1", "h", "1x", "1.5h", "-1h", "99999999999999999999h"] {
            assert_eq!(parse_duration(bad), None, "{bad}");
        }
    }

    #[test]
    fn repo_paths_stay_inside() {
        assert_eq!(
            check_repo_path("./apps/x.yaml").unwrap(),
            PathBuf::from("apps/x.yaml")
        );
        for bad in ["/etc/passwd", "../x", "apps/../../x", "", ".", "a\\b"] {
            assert!(check_repo_path(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn template_group_names() {
        assert_eq!(template_groups("$1-${name}$$x$ts"), vec!["1", "name", "ts"]);
    }
}

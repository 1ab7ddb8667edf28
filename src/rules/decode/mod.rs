//! Decoding positioned YAML into the rules model, collecting every problem instead of
//! stopping at the first (serde would stop at the first, and lose the position).
//!
//! Each document is decoded field by field through a [`Decoder`], which records a
//! [`Diagnostic`] for each unknown key, wrong type or bad value and carries on. Aliases are
//! followed on a [`Budget`], so a hostile rules file fails fast. The decoding of `Settings`
//! lives in `settings`, of `Promotion` in `promotion`, the value grammars in [`text`].

use std::path::{Path, PathBuf};

use jiff::SignedDuration;
use regex::Regex;

use crate::manifest::HelmPath;
use crate::policy::constraint::{Constraint, ConstraintError};
use crate::yaml::{Budget, Document, Node, NodeKind, Position, Style, is_null};

mod promotion;
mod settings;
pub mod text;
mod verify;

pub use text::parse_duration;

use super::diagnostic::{Diagnostic, did_you_mean};
use super::model::*;
use text::{check_repo_path, is_name};

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
    pub(super) file: &'a Path,
    doc: &'a Document,
    diags: &'a mut Vec<Diagnostic>,
    budget: Budget,
}

/// The entries of a mapping, checked against the keys allowed there.
pub(super) struct Fields<'a> {
    pub(super) entries: Vec<(&'a str, &'a Node, &'a Node)>,
    pub(super) position: Position,
}

impl<'a> Fields<'a> {
    pub(super) fn get(&self, key: &str) -> Option<&'a Node> {
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

    pub(super) fn error(&mut self, at: Position, message: impl Into<String>) {
        self.diags.push(Diagnostic {
            file: self.file.to_path_buf(),
            position: Some(at),
            message: message.into(),
        });
    }

    /// The node itself, or the anchored node an alias names.
    pub(super) fn resolve(&mut self, node: &'a Node) -> Option<&'a Node> {
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

    pub(super) fn fields(
        &mut self,
        node: &'a Node,
        what: &str,
        allowed: &[&str],
    ) -> Option<Fields<'a>> {
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

    /// The one entry of a mapping that must hold exactly one of `kinds` (`policy`, `target`).
    pub(super) fn one_of(
        &mut self,
        node: &'a Node,
        what: &str,
        kinds: &[&str],
    ) -> Option<(&'a str, &'a Node)> {
        let f = self.fields(node, what, kinds)?;
        let written = matches!(&self.resolve(node)?.kind, NodeKind::Mapping(e) if !e.is_empty());
        match f.entries.as_slice() {
            [(kind, _, value)] => Some((kind, value)),
            // Only unknown keys, each already reported with a suggestion.
            [] if written => None,
            _ => {
                let kinds = kinds.join(", ");
                self.error(f.position, format!("{what} needs exactly one of {kinds}"));
                None
            }
        }
    }

    pub(super) fn required(
        &mut self,
        fields: &Fields<'a>,
        key: &str,
        what: &str,
    ) -> Option<&'a Node> {
        let node = fields.get(key);
        if node.is_none() {
            self.error(fields.position, format!("{what} needs `{key}`"));
        }
        node
    }

    pub(super) fn string(&mut self, node: &'a Node, what: &str) -> Option<String> {
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

    pub(super) fn bool(&mut self, node: &'a Node, what: &str) -> Option<bool> {
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

    pub(super) fn list(&mut self, node: &'a Node, what: &str) -> Option<Vec<&'a Node>> {
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

    pub(super) fn strings(&mut self, node: &'a Node, what: &str) -> Vec<(String, Position)> {
        let items = self.list(node, what).unwrap_or_default();
        items
            .into_iter()
            .filter_map(|n| {
                self.string(n, &format!("an item of {what}"))
                    .map(|s| (s, n.position))
            })
            .collect()
    }

    pub(super) fn duration(&mut self, node: &'a Node, what: &str) -> Option<SignedDuration> {
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

    pub(super) fn regex(&mut self, node: &'a Node, what: &str) -> Option<SharedRegex> {
        let text = self.string(node, what)?;
        self.regex_text(&text, node.position, what)
    }

    /// The range `text`, or the one parsed before for the same text (shared, as regexes
    /// are: 30,000 environments writing `>=1.0.0` hold one).
    pub(super) fn constraint(text: &str) -> Result<Constraint, ConstraintError> {
        static PARSED: std::sync::LazyLock<
            std::sync::Mutex<std::collections::HashMap<String, Constraint>>,
        > = std::sync::LazyLock::new(Default::default);
        if let Some(c) = PARSED.lock().ok().and_then(|p| p.get(text).cloned()) {
            return Ok(c);
        }
        let parsed = Constraint::parse(text)?;
        if let Ok(mut p) = PARSED.lock() {
            // Ranges are few and small; a set of rules with very many is not kept whole.
            if p.len() >= 4096 {
                p.clear();
            }
            p.insert(text.to_string(), parsed.clone());
        }
        Ok(parsed)
    }

    /// `text` compiled, or the one compiled before for the same text (see [`SharedRegex`]).
    pub(super) fn regex_text(
        &mut self,
        text: &str,
        at: Position,
        what: &str,
    ) -> Option<SharedRegex> {
        static COMPILED: std::sync::LazyLock<
            std::sync::Mutex<std::collections::HashMap<String, std::sync::Weak<Regex>>>,
        > = std::sync::LazyLock::new(Default::default);
        if let Some(re) = COMPILED
            .lock()
            .ok()
            .and_then(|c| c.get(text).and_then(std::sync::Weak::upgrade))
        {
            return Some(re);
        }
        match regex::RegexBuilder::new(text).size_limit(1 << 20).build() {
            Ok(re) => {
                let re = std::sync::Arc::new(re);
                if let Ok(mut c) = COMPILED.lock() {
                    // Forget patterns no rules hold any more, now and then.
                    if c.len().is_power_of_two() {
                        c.retain(|_, w| w.strong_count() > 0);
                    }
                    c.insert(text.to_string(), std::sync::Arc::downgrade(&re));
                }
                Some(re)
            }
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

    pub(super) fn repo_path(&mut self, node: &'a Node, what: &str) -> Option<PathBuf> {
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
                // The spec is read even under a bad name, so that its own problems are
                // reported in the same run.
                let promotion = spec
                    .and_then(|spec| {
                        self.promotion(name.clone().unwrap_or_default(), spec, position)
                    })
                    .filter(|_| name.is_some())
                    .map(Box::new);
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

    pub(super) fn metadata_name(&mut self, fields: &Fields<'a>) -> Option<String> {
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

    pub(super) fn positive_duration(
        &mut self,
        node: &'a Node,
        what: &str,
    ) -> Option<SignedDuration> {
        let d = self.duration(node, what)?;
        if d.is_zero() {
            self.error(node.position, format!("{what} must be longer than 0"));
            return None;
        }
        Some(d)
    }

    pub(super) fn url(&mut self, node: &'a Node, what: &str) -> Option<String> {
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

    pub(super) fn helm_path(&mut self, node: &'a Node, what: &str) -> Option<HelmPath> {
        let text = self.string(node, what)?;
        match text.parse::<HelmPath>() {
            Ok(p) => Some(p),
            Err(e) => {
                self.error(node.position, format!("{what}: {e}"));
                None
            }
        }
    }
}

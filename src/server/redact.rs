//! What the worker's unauthenticated pages (`/status`, the board) must not show: the paths
//! of secret files the rules name (replaced by `[secret file]`; the setting that names it
//! stays in the message), and in URLs any user info and query string (where tokens ride).
//! Hosts, repositories and the rest of an error stay: that is what makes the pages useful.
//!
//! It must not decide what is shown: it only rewrites text that is about to be served.

use crate::rules::Settings;

/// The redaction for the rules in force.
#[derive(Debug, Clone, Default)]
pub struct Redaction {
    secret_paths: Vec<String>,
}

impl Redaction {
    /// What `settings` make secret.
    pub fn of(settings: &Settings) -> Self {
        let mut secret_paths: Vec<String> = settings
            .secret_files()
            .into_iter()
            .map(|p| p.display().to_string())
            .filter(|p| !p.is_empty())
            .collect();
        // The longest first, so that a path is never half replaced by a shorter one.
        secret_paths.sort_by_key(|p| std::cmp::Reverse(p.len()));
        secret_paths.dedup();
        Self { secret_paths }
    }

    /// `text` as it may be served.
    pub fn apply(&self, text: &str) -> String {
        let mut out = redact_urls(text);
        for path in &self.secret_paths {
            if out.contains(path.as_str()) {
                out = out.replace(path.as_str(), "[secret file]");
            }
        }
        out
    }
}

/// URLs without user info (`***@`) and without query strings (`?…`).
fn redact_urls(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(i) = rest.find("://") {
        let (head, tail) = rest.split_at(i + 3);
        out.push_str(head);
        let end = tail
            .find(|c: char| c.is_whitespace() || matches!(c, '\'' | '"' | '<' | '>' | ')'))
            .unwrap_or(tail.len());
        let url = &tail[..end];
        let authority_end = url.find(['/', '?', '#']).unwrap_or(url.len());
        let (authority, path) = url.split_at(authority_end);
        match authority.rsplit_once('@') {
            Some((_, host)) => {
                out.push_str("***@");
                out.push_str(host);
            }
            None => out.push_str(authority),
        }
        match path.split_once('?') {
            Some((before, _)) => {
                out.push_str(before);
                out.push_str("?…");
            }
            None => out.push_str(path),
        }
        rest = &tail[end..];
    }
    out.push_str(rest);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_go_and_what_helps_stays() {
        let r = Redaction {
            secret_paths: vec!["/run/secrets/git/password".into()],
        };
        assert_eq!(
            r.apply("git.auth.passwordFile: cannot read /run/secrets/git/password: No such file"),
            "git.auth.passwordFile: cannot read [secret file]: No such file"
        );
        assert_eq!(
            r.apply("fetching from https://bot:tok@git.internal:8443/acme/d.git?private_token=abc failed"),
            "fetching from https://***@git.internal:8443/acme/d.git?… failed"
        );
        assert_eq!(
            r.apply("<a href=\"https://github.com/acme/d/pull/7\">#7</a>"),
            "<a href=\"https://github.com/acme/d/pull/7\">#7</a>"
        );
    }
}

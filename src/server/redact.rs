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
        let text = crate::secret::redact(text);
        let mut out = crate::gitops::git::redact_urls_and_queries(&text);
        for path in &self.secret_paths {
            if out.contains(path.as_str()) {
                out = out.replace(path.as_str(), "[secret file]");
            }
        }
        out
    }
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

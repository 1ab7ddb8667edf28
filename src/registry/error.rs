//! Registry errors, classified so that callers (and alerts) can tell a bad token from an
//! outage, and worded to say which registry, which step, and what to check.

use std::fmt;

/// The class of a registry failure.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorKind {
    /// 401/403, or credentials that cannot be read or used.
    Auth,
    /// 404: no such repository, tag or blob.
    NotFound,
    /// 429 that outlasted the retries.
    RateLimited,
    /// 5xx, timeouts, connection failures, truncated bodies (after retries).
    Unavailable,
    /// The registry answered something the API does not allow (bad JSON, loops, too big).
    Invalid,
}

impl ErrorKind {
    /// The label used in messages, metrics and alerts.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Auth => "auth",
            Self::NotFound => "not-found",
            Self::RateLimited => "rate-limited",
            Self::Unavailable => "unavailable",
            Self::Invalid => "invalid",
        }
    }

    fn hint(self) -> &'static str {
        match self {
            Self::Auth => {
                "check the credentials for this host (registries[].dockerConfig, or username and passwordFile) and that they may pull this repository"
            }
            Self::NotFound => {
                "check the image name (spec.image) and that the tag or repository exists"
            }
            Self::RateLimited => {
                "the registry asks for fewer requests; lower registries[].requestsPerSecond or raise interval"
            }
            Self::Unavailable => {
                "the registry or the network failed; it is retried on the next pass"
            }
            Self::Invalid => "the registry's answer does not follow the distribution API",
        }
    }
}

/// A failed registry operation. Never carries a credential: messages are built from
/// status codes, registry error codes and our own words only.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub struct RegistryError {
    /// The class.
    pub kind: ErrorKind,
    /// The registry host.
    pub registry: String,
    /// What was being done ("listing tags of acme/app").
    pub step: String,
    /// What went wrong.
    pub detail: String,
}

impl RegistryError {
    /// A new error.
    pub fn new(kind: ErrorKind, registry: &str, step: &str, detail: impl Into<String>) -> Self {
        Self {
            kind,
            registry: registry.to_string(),
            step: step.to_string(),
            detail: detail.into(),
        }
    }

    /// `image` did not answer within `limit` (the pass's deadline, `--registry-timeout`).
    pub fn timed_out(image: &crate::image::Repository, step: &str, limit: &str) -> Self {
        Self::new(
            ErrorKind::Unavailable,
            image.split().0,
            &format!("{step} {image}"),
            format!("no answer within {limit}"),
        )
    }

    /// Whether trying again soon may help.
    pub fn is_transient(&self) -> bool {
        matches!(self.kind, ErrorKind::RateLimited | ErrorKind::Unavailable)
    }
}

impl fmt::Display for RegistryError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "registry {}: {}: {} ({}); {}",
            self.registry,
            self.step,
            self.detail,
            self.kind.as_str(),
            self.kind.hint()
        )
    }
}

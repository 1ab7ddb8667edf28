//! How each sender proves it knows the receiver's secret, checked the way that sender signs:
//! an HMAC of the body where the sender can compute one (GitHub, Gitea), else the secret
//! itself in a header its settings can set (distribution's endpoint `headers`, Harbor's auth
//! header, GitLab's secret token), else in the URL where that is all the sender allows
//! (Docker Hub, Quay). Comparisons take constant time; nothing here logs or returns a secret.

use axum::http::HeaderMap;

use crate::rules::ReceiverKind;
use crate::secret;

/// Why a request is refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// The sender presented nothing where it should sign.
    Missing(&'static str),
    /// What it presented does not match.
    Mismatch(&'static str),
}

impl std::fmt::Display for Refusal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Missing(what) => write!(f, "no {what}"),
            Self::Mismatch(what) => write!(f, "the {what} does not match the receiver's secret"),
        }
    }
}

/// Where a sender puts its proof.
enum Scheme {
    /// `sha256=<hex>` HMAC of the body in this header (`prefixed`: with the `sha256=`).
    Hmac {
        header: &'static str,
        prefixed: bool,
    },
    /// `Authorization: Bearer <secret>` (or the bare secret, as Harbor sends it).
    Authorization,
    /// The secret in this header.
    Header(&'static str),
    /// `?token=<secret>`.
    Query,
}

fn scheme(kind: ReceiverKind) -> Scheme {
    match kind {
        ReceiverKind::Github => Scheme::Hmac {
            header: "x-hub-signature-256",
            prefixed: true,
        },
        ReceiverKind::Gitea => Scheme::Hmac {
            header: "x-gitea-signature",
            prefixed: false,
        },
        ReceiverKind::Distribution | ReceiverKind::Harbor | ReceiverKind::Generic => {
            Scheme::Authorization
        }
        ReceiverKind::Gitlab => Scheme::Header("x-gitlab-token"),
        ReceiverKind::Dockerhub | ReceiverKind::Quay => Scheme::Query,
    }
}

/// Check a request to the receiver of `kind` against `secret`.
pub fn check(
    kind: ReceiverKind,
    secret: &[u8],
    headers: &HeaderMap,
    token: Option<&str>,
    body: &[u8],
) -> Result<(), Refusal> {
    let header = |name: &'static str| headers.get(name).map(|v| v.as_bytes());
    match scheme(kind) {
        Scheme::Hmac {
            header: name,
            prefixed,
        } => {
            let given = header(name).ok_or(Refusal::Missing("signature header"))?;
            let expected = secret::sign(secret, body).ok_or(Refusal::Mismatch("signature"))?;
            let expected = if prefixed {
                expected.as_bytes()
            } else {
                &expected.as_bytes()["sha256=".len()..]
            };
            let given = given.to_ascii_lowercase();
            secret::same(&given, expected)
                .then_some(())
                .ok_or(Refusal::Mismatch("signature"))
        }
        Scheme::Authorization => {
            let given = header("authorization").ok_or(Refusal::Missing("Authorization header"))?;
            let given = given
                .strip_prefix(b"Bearer ")
                .or_else(|| given.strip_prefix(b"bearer "))
                .unwrap_or(given);
            secret::same(given, secret)
                .then_some(())
                .ok_or(Refusal::Mismatch("Authorization header"))
        }
        Scheme::Header(name) => {
            let given = header(name).ok_or(Refusal::Missing("token header"))?;
            secret::same(given, secret)
                .then_some(())
                .ok_or(Refusal::Mismatch("token header"))
        }
        Scheme::Query => {
            let given = token.ok_or(Refusal::Missing("token in the URL (?token=)"))?;
            secret::same(given.as_bytes(), secret)
                .then_some(())
                .ok_or(Refusal::Mismatch("token in the URL"))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.insert(*k, v.parse().unwrap());
        }
        h
    }

    #[test]
    fn github_signs_with_the_prefix_and_gitea_without() {
        let body = br#"{"action":"published"}"#;
        let sig = secret::sign(b"k", body).unwrap();
        let gh = headers(&[("x-hub-signature-256", &sig)]);
        assert_eq!(check(ReceiverKind::Github, b"k", &gh, None, body), Ok(()));
        assert!(check(ReceiverKind::Github, b"other", &gh, None, body).is_err());
        assert!(check(ReceiverKind::Github, b"k", &gh, None, b"{}").is_err());
        let gitea = headers(&[("x-gitea-signature", &sig["sha256=".len()..])]);
        assert_eq!(check(ReceiverKind::Gitea, b"k", &gitea, None, body), Ok(()));
        assert_eq!(
            check(ReceiverKind::Gitea, b"k", &HeaderMap::new(), None, body),
            Err(Refusal::Missing("signature header"))
        );
    }

    #[test]
    fn tokens_are_compared_whole() {
        let h = headers(&[("authorization", "Bearer s3cret")]);
        assert_eq!(
            check(ReceiverKind::Distribution, b"s3cret", &h, None, b""),
            Ok(())
        );
        assert!(check(ReceiverKind::Distribution, b"s3cre", &h, None, b"").is_err());
        let bare = headers(&[("authorization", "s3cret")]);
        assert_eq!(
            check(ReceiverKind::Harbor, b"s3cret", &bare, None, b""),
            Ok(())
        );
        let gl = headers(&[("x-gitlab-token", "s3cret")]);
        assert_eq!(
            check(ReceiverKind::Gitlab, b"s3cret", &gl, None, b""),
            Ok(())
        );
        assert_eq!(
            check(ReceiverKind::Quay, b"s3cret", &h, Some("s3cret"), b""),
            Ok(())
        );
        assert!(check(ReceiverKind::Dockerhub, b"s3cret", &h, None, b"").is_err());
    }
}

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
            Self::Missing(what) => write!(
                f,
                "no {what}; the sender must present the secret in this receiver's secretFile"
            ),
            Self::Mismatch(what) => write!(
                f,
                "the {what} does not match this receiver's secretFile; give the sender the same secret"
            ),
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

/// What can be checked before a byte of the body is read: all of it for senders that
/// present the secret itself; for those that sign the body, that a signature of the right
/// form is there. A request refused here costs no more than its head.
pub fn check_head(
    kind: ReceiverKind,
    secret: &[u8],
    headers: &HeaderMap,
    token: Option<&str>,
) -> Result<(), Refusal> {
    match scheme(kind) {
        Scheme::Hmac { header, prefixed } => {
            let given = headers
                .get(header)
                .ok_or(Refusal::Missing(header))?
                .as_bytes();
            let hex = if prefixed {
                given.strip_prefix(b"sha256=").unwrap_or_default()
            } else {
                given
            };
            if hex.len() == 64 && hex.iter().all(u8::is_ascii_hexdigit) {
                Ok(())
            } else {
                Err(Refusal::Mismatch(header))
            }
        }
        _ => check(kind, secret, headers, token, b""),
    }
}

/// Check a request to the receiver of `kind` against `secret` (never empty: the caller
/// refuses an empty secret file).
pub fn check(
    kind: ReceiverKind,
    secret: &[u8],
    headers: &HeaderMap,
    token: Option<&str>,
    body: &[u8],
) -> Result<(), Refusal> {
    let header = |name: &str| headers.get(name).map(|v| v.as_bytes().to_vec());
    let signature;
    // What the sender presents, and what it must equal.
    let (what, given, expected): (&'static str, Option<Vec<u8>>, &[u8]) = match scheme(kind) {
        Scheme::Hmac {
            header: name,
            prefixed,
        } => {
            signature = secret::sign(secret, body).ok_or(Refusal::Mismatch(name))?;
            let expected = if prefixed {
                signature.as_str()
            } else {
                signature.trim_start_matches("sha256=")
            };
            let given = header(name).map(|g| g.to_ascii_lowercase());
            (name, given, expected.as_bytes())
        }
        Scheme::Authorization => {
            let given = header("authorization").map(|g| {
                let token = g
                    .strip_prefix(b"Bearer ")
                    .or_else(|| g.strip_prefix(b"bearer "))
                    .unwrap_or(&g);
                token.to_vec()
            });
            ("Authorization header", given, secret)
        }
        Scheme::Header(name) => (name, header(name), secret),
        Scheme::Query => (
            "token in the URL (?token=)",
            token.map(|t| t.as_bytes().to_vec()),
            secret,
        ),
    };
    let given = given.ok_or(Refusal::Missing(what))?;
    if !expected.is_empty() && secret::same(&given, expected) {
        Ok(())
    } else {
        Err(Refusal::Mismatch(what))
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
            Err(Refusal::Missing("x-gitea-signature"))
        );
    }

    #[test]
    fn what_the_head_shows_is_checked_before_the_body() {
        let gh = headers(&[("x-hub-signature-256", "sha256=nothex")]);
        assert_eq!(
            check_head(ReceiverKind::Github, b"k", &gh, None),
            Err(Refusal::Mismatch("x-hub-signature-256"))
        );
        let sig = secret::sign(b"k", b"{}").unwrap();
        let gh = headers(&[("x-hub-signature-256", &sig)]);
        assert_eq!(check_head(ReceiverKind::Github, b"k", &gh, None), Ok(()));
        let gl = headers(&[("x-gitlab-token", "wrong")]);
        assert!(check_head(ReceiverKind::Gitlab, b"s3cret", &gl, None).is_err());
        assert_eq!(
            check_head(
                ReceiverKind::Quay,
                b"s3cret",
                &HeaderMap::new(),
                Some("s3cret")
            ),
            Ok(())
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

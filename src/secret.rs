//! Secrets: reading one from its mounted file (git passwords, forge tokens, webhook keys
//! in and out), the HMAC-SHA256 signature in the `sha256=<hex>` form that GitHub, Gitea
//! and our own outgoing webhooks use, and a constant-time comparison for checking what a
//! sender presents. It never logs or formats a secret.
//!
//! It is also the one redaction point for secret *values*: every secret the process reads
//! (here, and registry passwords, kubeconfig tokens and keys, an exec plugin's token) is
//! [`remember`]ed, and every text that leaves the process for people — the log, `/status`,
//! the board, alerts — passes through [`redact`], which replaces each with `[secret]`, so a
//! server that echoes a token into an error message cannot make us show it.

use std::path::Path;
use std::sync::RwLock;

/// The secret values read so far, longest first (a secret is never half replaced by a
/// shorter one it contains).
static KNOWN: RwLock<Vec<String>> = RwLock::new(Vec::new());

/// Secrets shorter than this are not redacted as text: they would blank ordinary words
/// (and are too short to be worth stealing from a log).
const SHORTEST: usize = 6;

/// Remember `value` as a secret: from now on [`redact`] hides it, and the forms a server
/// may echo it in — URL-encoded, and base64 (standard or URL-safe, padded or not).
pub fn remember(value: &str) {
    use base64::Engine as _;
    use base64::engine::general_purpose::{STANDARD, STANDARD_NO_PAD, URL_SAFE, URL_SAFE_NO_PAD};
    let value = value.trim();
    if value.len() < SHORTEST {
        return;
    }
    let url_encoded: String = value
        .bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect();
    let forms = [
        value.to_string(),
        url_encoded,
        STANDARD.encode(value),
        STANDARD_NO_PAD.encode(value),
        URL_SAFE.encode(value),
        URL_SAFE_NO_PAD.encode(value),
    ];
    let mut known = KNOWN.write().unwrap_or_else(|p| p.into_inner());
    for form in forms {
        if !known.contains(&form) {
            known.push(form);
        }
    }
    known.sort_by_key(|k| std::cmp::Reverse(k.len()));
}

/// `text` with every remembered secret replaced by `[secret]`.
pub fn redact(text: &str) -> std::borrow::Cow<'_, str> {
    let known = KNOWN.read().unwrap_or_else(|p| p.into_inner());
    if !known.iter().any(|k| text.contains(k.as_str())) {
        return std::borrow::Cow::Borrowed(text);
    }
    let mut out = text.to_string();
    for k in known.iter() {
        if out.contains(k.as_str()) {
            out = out.replace(k.as_str(), "[secret]");
        }
    }
    std::borrow::Cow::Owned(out)
}

use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha256;

/// `sha256=<hex>` of `body` under `key` (`None` only if the MAC refused the key, which
/// HMAC never does).
pub fn sign(key: &[u8], body: &[u8]) -> Option<String> {
    let mut mac = <Hmac<Sha256> as KeyInit>::new_from_slice(key).ok()?;
    mac.update(body);
    let hex: String = mac
        .finalize()
        .into_bytes()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    Some(format!("sha256={hex}"))
}

/// Whether `a` and `b` are equal, in time that depends on their lengths only (so a guess
/// learns nothing from how fast it is refused).
pub fn same(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// The secret in `file` (read at each use, so a rotated secret applies at once), without
/// the trailing newline editors and `kubectl create secret --from-file` leave. The error
/// names the file, never its content; callers say which setting named it.
pub fn read(file: &Path) -> Result<String, String> {
    let text = std::fs::read_to_string(file)
        .map_err(|e| format!("cannot read {}: {e}", file.display()))?;
    let secret = text.trim_end_matches(['\r', '\n']).to_string();
    remember(&secret);
    Ok(secret)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signatures_match_rfc_4231_case_2() {
        assert_eq!(
            sign(b"Jefe", b"what do ya want for nothing?").as_deref(),
            Some("sha256=5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843")
        );
    }

    #[test]
    fn a_secret_is_read_without_its_trailing_newline() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("token");
        std::fs::write(&file, "s3cret \r\n").unwrap();
        assert_eq!(read(&file).unwrap(), "s3cret ");
        let missing = read(&dir.path().join("none")).unwrap_err();
        assert!(
            missing.starts_with("cannot read ") && missing.contains("none"),
            "{missing}"
        );
    }

    #[test]
    fn remembered_secrets_are_redacted_longest_first() {
        remember("tok-12345678");
        remember("tok-12345678-and-more");
        remember("abc");
        assert_eq!(
            redact("a tok-12345678-and-more and tok-12345678, abc"),
            "a [secret] and [secret], abc"
        );
        assert!(matches!(
            redact("nothing here"),
            std::borrow::Cow::Borrowed(_)
        ));
        // As a server may echo it: URL-encoded, base64.
        remember("p@ss/w0rd+x");
        assert_eq!(
            redact("got p%40ss%2Fw0rd%2Bx and cEBzcy93MHJkK3g= and cEBzcy93MHJkK3g"),
            "got [secret] and [secret] and [secret]"
        );
    }

    #[test]
    fn same_needs_equal_bytes_and_lengths() {
        assert!(same(b"s3cret", b"s3cret"));
        assert!(!same(b"s3cret", b"s3creT"));
        assert!(!same(b"s3cret", b"s3cret2"));
        assert!(!same(b"", b"x"));
    }
}

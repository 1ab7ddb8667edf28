//! Secrets: reading one from its mounted file (git passwords, forge tokens, webhook keys
//! in and out), the HMAC-SHA256 signature in the `sha256=<hex>` form that GitHub, Gitea
//! and our own outgoing webhooks use, and a constant-time comparison for checking what a
//! sender presents. It never logs or formats a secret.

use std::path::Path;

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
    Ok(text.trim_end_matches(['\r', '\n']).to_string())
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
    fn same_needs_equal_bytes_and_lengths() {
        assert!(same(b"s3cret", b"s3cret"));
        assert!(!same(b"s3cret", b"s3creT"));
        assert!(!same(b"s3cret", b"s3cret2"));
        assert!(!same(b"", b"x"));
    }
}

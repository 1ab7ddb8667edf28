//! Semantic versions as Masterminds/semver v3 reads them, with its three parsers:
//! lenient (`v` prefix, `1` and `1.2` coerced), strict (exactly `X.Y.Z`), and the image-tag
//! parser (strict after an optional leading `v`, as Flux reads tags).

use std::cmp::Ordering;
use std::fmt;

/// A parsed semantic version. Build metadata is kept for display but ignored in comparisons.
#[derive(Debug, Clone)]
pub struct Version {
    /// Major number.
    pub major: u64,
    /// Minor number.
    pub minor: u64,
    /// Patch number.
    pub patch: u64,
    /// Prerelease identifiers joined by dots; empty for a release.
    pub pre: String,
    /// Build metadata; empty when absent.
    pub metadata: String,
}

/// Why a string is not a version.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{input:?} is not a semantic version: {reason}")]
pub struct VersionError {
    /// The rejected text.
    pub input: String,
    /// What is wrong with it.
    pub reason: &'static str,
}

impl Version {
    /// Masterminds `NewVersion`: an optional `v`, one to three numeric parts (missing ones are
    /// zero), then an optional prerelease and build metadata.
    pub fn parse_lenient(s: &str) -> Result<Self, VersionError> {
        let body = s.strip_prefix('v').unwrap_or(s);
        parse(s, body, false)
    }

    /// Masterminds `StrictNewVersion`: exactly `X.Y.Z` with no prefix and no leading zeros.
    pub fn parse_strict(s: &str) -> Result<Self, VersionError> {
        parse(s, s, true)
    }

    /// The image-tag parser: strict, after an optional leading `v` (`v1.2.3`, `1.2.3-rc.1`).
    pub fn parse_tag(s: &str) -> Result<Self, VersionError> {
        let body = s.strip_prefix('v').unwrap_or(s);
        parse(s, body, true)
    }

    /// Whether this is a prerelease.
    pub fn is_prerelease(&self) -> bool {
        !self.pre.is_empty()
    }

    fn core(&self) -> (u64, u64, u64) {
        (self.major, self.minor, self.patch)
    }
}

fn parse(input: &str, body: &str, strict: bool) -> Result<Version, VersionError> {
    let err = |reason| VersionError {
        input: input.to_string(),
        reason,
    };
    let (rest, metadata) = match body.split_once('+') {
        Some((r, m)) => (r, Some(m)),
        None => (body, None),
    };
    let (core, pre) = match rest.split_once('-') {
        Some((c, p)) => (c, Some(p)),
        None => (rest, None),
    };
    let parts: Vec<&str> = core.split('.').collect();
    if parts.len() > 3 {
        return Err(err("more than three numeric parts"));
    }
    if strict && parts.len() != 3 {
        return Err(err("expected exactly MAJOR.MINOR.PATCH"));
    }
    let mut nums = [0u64; 3];
    for (slot, part) in nums.iter_mut().zip(&parts) {
        if part.is_empty() || !part.bytes().all(|b| b.is_ascii_digit()) {
            return Err(err("a numeric part is not a number"));
        }
        if strict && part.len() > 1 && part.starts_with('0') {
            return Err(err("a numeric part has a leading zero"));
        }
        *slot = part
            .parse()
            .map_err(|_| err("a numeric part is too large"))?;
    }
    if let Some(pre) = pre {
        check_identifiers(pre, true).map_err(err)?;
    }
    if let Some(meta) = metadata {
        check_identifiers(meta, false).map_err(err)?;
    }
    Ok(Version {
        major: nums[0],
        minor: nums[1],
        patch: nums[2],
        pre: pre.unwrap_or_default().to_string(),
        metadata: metadata.unwrap_or_default().to_string(),
    })
}

/// Dot-separated identifiers of `[0-9A-Za-z-]`; numeric prerelease identifiers may not have a
/// leading zero.
fn check_identifiers(s: &str, prerelease: bool) -> Result<(), &'static str> {
    for id in s.split('.') {
        if id.is_empty() {
            return Err("an empty prerelease or metadata identifier");
        }
        if !id.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-') {
            return Err("prerelease and metadata may only hold [0-9A-Za-z-] and dots");
        }
        if prerelease
            && id.len() > 1
            && id.starts_with('0')
            && id.bytes().all(|b| b.is_ascii_digit())
        {
            return Err("a numeric prerelease identifier has a leading zero");
        }
    }
    Ok(())
}

/// Semver precedence of prerelease strings: a release (empty) outranks any prerelease;
/// numeric identifiers compare as numbers and rank below alphanumeric ones.
pub fn compare_prerelease(a: &str, b: &str) -> Ordering {
    match (a.is_empty(), b.is_empty()) {
        (true, true) => return Ordering::Equal,
        (true, false) => return Ordering::Greater,
        (false, true) => return Ordering::Less,
        _ => {}
    }
    let mut left = a.split('.');
    let mut right = b.split('.');
    loop {
        match (left.next(), right.next()) {
            (None, None) => return Ordering::Equal,
            (None, Some(_)) => return Ordering::Less,
            (Some(_), None) => return Ordering::Greater,
            (Some(x), Some(y)) => {
                let ord = compare_identifier(x, y);
                if ord != Ordering::Equal {
                    return ord;
                }
            }
        }
    }
}

fn compare_identifier(x: &str, y: &str) -> Ordering {
    let numeric = |s: &str| s.bytes().all(|b| b.is_ascii_digit());
    match (numeric(x), numeric(y)) {
        // Compare digit strings by length first so that huge numbers never overflow.
        (true, true) => {
            let (x, y) = (x.trim_start_matches('0'), y.trim_start_matches('0'));
            x.len().cmp(&y.len()).then_with(|| x.cmp(y))
        }
        (true, false) => Ordering::Less,
        (false, true) => Ordering::Greater,
        (false, false) => x.cmp(y),
    }
}

impl Ord for Version {
    fn cmp(&self, other: &Self) -> Ordering {
        self.core()
            .cmp(&other.core())
            .then_with(|| compare_prerelease(&self.pre, &other.pre))
    }
}

impl PartialOrd for Version {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl PartialEq for Version {
    fn eq(&self, other: &Self) -> bool {
        self.cmp(other) == Ordering::Equal
    }
}

impl Eq for Version {}

impl fmt::Display for Version {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}.{}", self.major, self.minor, self.patch)?;
        if !self.pre.is_empty() {
            write!(f, "-{}", self.pre)?;
        }
        if !self.metadata.is_empty() {
            write!(f, "+{}", self.metadata)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ordering_follows_semver_precedence() {
        let order = [
            "1.0.0-alpha",
            "1.0.0-alpha.1",
            "1.0.0-alpha.beta",
            "1.0.0-beta",
            "1.0.0-beta.2",
            "1.0.0-beta.11",
            "1.0.0-rc.1",
            "1.0.0",
            "1.0.1",
            "1.10.0",
        ];
        for pair in order.windows(2) {
            let a = Version::parse_strict(pair[0]).unwrap();
            let b = Version::parse_strict(pair[1]).unwrap();
            assert!(a < b, "{a} < {b}");
        }
    }

    #[test]
    fn metadata_is_ignored_in_comparisons() {
        let a = Version::parse_strict("1.2.3+a").unwrap();
        let b = Version::parse_strict("1.2.3+b").unwrap();
        assert_eq!(a, b);
    }

    #[test]
    fn tag_parser_accepts_only_full_versions() {
        assert!(Version::parse_tag("v1.2.3").is_ok());
        assert!(Version::parse_tag("1.2").is_err());
        assert!(Version::parse_tag("01.2.3").is_err());
        assert!(Version::parse_tag("latest").is_err());
        assert!(Version::parse_tag("1.2.3.4").is_err());
    }
}

//! Validated names of the OCI world: [`Tag`], [`Digest`], [`Repository`] and [`ImageRef`].
//!
//! Registries and GitOps repositories are untrusted, and these values end up written into
//! YAML: each type can only hold text of its grammar (which contains no blank, quote, `#`,
//! `:` followed by a blank, or line break), so writing one can never change a document's
//! structure. Pure; no I/O.

use std::fmt;
use std::str::FromStr;

/// Why a name was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{value:?} is not a valid {what}: {rule}")]
pub struct NameError {
    /// What was expected ("tag", "digest", …).
    pub what: &'static str,
    /// The refused text (cut short when long).
    pub value: String,
    /// The grammar it breaks.
    pub rule: &'static str,
}

fn refuse(what: &'static str, value: &str, rule: &'static str) -> NameError {
    let mut value = value.to_string();
    if value.len() > 80 {
        let cut = (0..=80)
            .rev()
            .find(|&i| value.is_char_boundary(i))
            .unwrap_or(0);
        value.truncate(cut);
        value.push('…');
    }
    NameError { what, value, rule }
}

/// An OCI tag: `[A-Za-z0-9_][A-Za-z0-9._-]{0,127}`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Tag(String);

impl Tag {
    /// Validate a tag.
    pub fn new(s: &str) -> Result<Self, NameError> {
        const RULE: &str = "a tag is 1 to 128 of [A-Za-z0-9_.-], not starting with '.' or '-'";
        let bytes = s.as_bytes();
        let first_ok = bytes
            .first()
            .is_some_and(|b| b.is_ascii_alphanumeric() || *b == b'_');
        let rest_ok = bytes
            .iter()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-'));
        if !first_ok || !rest_ok || bytes.len() > 128 {
            return Err(refuse("tag", s, RULE));
        }
        Ok(Self(s.to_string()))
    }

    /// The tag's text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// A content digest: `algorithm:encoded`, e.g. `sha256:<64 hex>`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Digest(String);

impl Digest {
    /// Validate a digest (`sha256` and `sha512` must have their exact hex lengths).
    pub fn new(s: &str) -> Result<Self, NameError> {
        const RULE: &str = "a digest is ALGORITHM:HEX, e.g. sha256: and 64 lowercase hex digits";
        let Some((alg, enc)) = s.split_once(':') else {
            return Err(refuse("digest", s, RULE));
        };
        let alg_ok = !alg.is_empty()
            && alg.split(['+', '.', '_', '-']).all(|c| {
                !c.is_empty()
                    && c.bytes()
                        .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
            });
        let enc_ok = !enc.is_empty()
            && enc
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'=' | b'_' | b'-'));
        let hex = |n: usize| {
            enc.len() == n && enc.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
        };
        let len_ok = match alg {
            "sha256" => hex(64),
            "sha512" => hex(128),
            _ => true,
        };
        if !alg_ok || !enc_ok || !len_ok {
            return Err(refuse("digest", s, RULE));
        }
        Ok(Self(s.to_string()))
    }

    /// The digest's text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// A repository name, with an optional registry host (and port): `ghcr.io/acme/app`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Repository(String);

impl Repository {
    /// Validate a repository name (distribution's reference grammar).
    pub fn new(s: &str) -> Result<Self, NameError> {
        const RULE: &str =
            "a repository is [HOST[:PORT]/]PATH with lowercase path components of [a-z0-9._-]";
        if s.is_empty() || s.len() > 255 {
            return Err(refuse("repository", s, RULE));
        }
        let mut parts: Vec<&str> = s.split('/').collect();
        let first = parts[0];
        let has_host = parts.len() > 1
            && (looks_like_host(first) || first.bytes().any(|b| b.is_ascii_uppercase()));
        if has_host {
            if !valid_host(first) {
                return Err(refuse("repository", s, RULE));
            }
            parts.remove(0);
        }
        if parts.is_empty() || !parts.iter().all(|p| valid_path_component(p)) {
            return Err(refuse("repository", s, RULE));
        }
        Ok(Self(s.to_string()))
    }

    /// The repository's text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl Repository {
    /// The registry host and the repository path on it. Names without a host are Docker
    /// Hub's (`docker.io`), where one-component names live under `library/`.
    pub fn split(&self) -> (&str, String) {
        match self.host() {
            Some(host) => (host, self.0[host.len() + 1..].to_string()),
            None if self.0.contains('/') => ("docker.io", self.0.clone()),
            None => ("docker.io", format!("library/{}", self.0)),
        }
    }

    /// The name as Docker reads it, host and path in full: `redis`,
    /// `docker.io/library/redis` and `index.docker.io/library/redis` are all
    /// `docker.io/library/redis`.
    pub fn canonical(&self) -> String {
        let (host, path) = self.split();
        let host = match host {
            "index.docker.io" | "registry-1.docker.io" | "registry.hub.docker.com" => "docker.io",
            h => h,
        };
        if host == "docker.io" && !path.contains('/') {
            format!("docker.io/library/{path}")
        } else {
            format!("{host}/{path}")
        }
    }

    /// Whether `other` names the same repository, as Docker reads names.
    pub fn same_as(&self, other: &Repository) -> bool {
        self == other || self.canonical() == other.canonical()
    }

    /// The registry host (and port) as the name writes it; `None` when it names none.
    pub fn host(&self) -> Option<&str> {
        self.0
            .split_once('/')
            .map(|(first, _)| first)
            .filter(|first| looks_like_host(first))
    }
}

fn looks_like_host(first: &str) -> bool {
    first.contains('.') || first.contains(':') || first == "localhost"
}

fn valid_host(h: &str) -> bool {
    let (name, port) = match h.rsplit_once(':') {
        Some((n, p)) => (n, Some(p)),
        None => (h, None),
    };
    let port_ok =
        port.is_none_or(|p| !p.is_empty() && p.len() <= 5 && p.bytes().all(|b| b.is_ascii_digit()));
    let name_ok = !name.is_empty()
        && name.split('.').all(|l| {
            !l.is_empty()
                && l.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
                && !l.starts_with('-')
                && !l.ends_with('-')
        });
    port_ok && name_ok
}

fn valid_path_component(p: &str) -> bool {
    // [a-z0-9]+ separated by '.', '_', '__' or runs of '-'.
    let b = p.as_bytes();
    let alnum = |c: u8| c.is_ascii_lowercase() || c.is_ascii_digit();
    if b.is_empty() || !alnum(b[0]) || !alnum(b[b.len() - 1]) {
        return false;
    }
    let mut i = 0;
    while i < b.len() {
        if alnum(b[i]) {
            i += 1;
            continue;
        }
        let start = i;
        while i < b.len() && !alnum(b[i]) {
            i += 1;
        }
        let sep = &p[start..i];
        if !(sep == "." || sep == "_" || sep == "__" || sep.bytes().all(|c| c == b'-')) {
            return false;
        }
    }
    true
}

/// A full image reference: `repository[:tag][@digest]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImageRef {
    /// The repository.
    pub repository: Repository,
    /// The tag, if any.
    pub tag: Option<Tag>,
    /// The digest, if any.
    pub digest: Option<Digest>,
}

impl ImageRef {
    /// Parse `repository[:tag][@digest]`.
    pub fn parse(s: &str) -> Result<Self, NameError> {
        let (rest, digest) = match s.split_once('@') {
            Some((r, d)) => (r, Some(Digest::new(d)?)),
            None => (s, None),
        };
        // The tag is after the last ':' that follows the last '/' (a port's ':' comes before it).
        let last_slash = rest.rfind('/').map_or(0, |i| i + 1);
        let (repo, tag) = match rest[last_slash..].rfind(':') {
            Some(i) => {
                let at = last_slash + i;
                (&rest[..at], Some(Tag::new(&rest[at + 1..])?))
            }
            None => (rest, None),
        };
        Ok(Self {
            repository: Repository::new(repo)?,
            tag,
            digest,
        })
    }
}

impl fmt::Display for ImageRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.repository.as_str())?;
        if let Some(t) = &self.tag {
            write!(f, ":{}", t.as_str())?;
        }
        if let Some(d) = &self.digest {
            write!(f, "@{}", d.as_str())?;
        }
        Ok(())
    }
}

/// What is known about the image a tag points at: the one facts type, from the registry to
/// the gates. A plain (single-platform) image lists its one platform, read from its config;
/// an index lists every child's platform.
#[derive(Debug, Clone, PartialEq)]
pub struct ImageFacts {
    /// The digest the tag resolved to.
    pub digest: Digest,
    /// `os/arch[/variant]` of each image; empty when the registry says nothing about it.
    pub platforms: Vec<String>,
    /// The config's `created` (of the linux/amd64 image for an index, else the first).
    pub created: Option<jiff::Timestamp>,
    /// The image's `org.opencontainers.image.{source,revision,created}` labels, when set.
    pub labels: std::collections::BTreeMap<String, String>,
    /// How much was read: the digest alone (a HEAD: all the tag to write needs), with
    /// `platforms`, `created` and `labels` empty; or the manifest and config too — read
    /// only where a gate, `newestBuild` or a pull request needs them.
    pub depth: Depth,
}

impl ImageFacts {
    /// What a HEAD of the tag tells: its digest, nothing else.
    pub fn digest_only(digest: Digest) -> Self {
        Self {
            digest,
            platforms: Vec::new(),
            created: None,
            labels: Default::default(),
            depth: Depth::Digest,
        }
    }
}

/// How much of an image's facts is read, or wanted: its digest, or everything (deeper is
/// greater).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Depth {
    /// The digest only: the tag to write, a digest to compare with what ran.
    Digest,
    /// Platforms, creation time and labels too (a manifest and a config read).
    Whole,
}

macro_rules! text_type {
    ($t:ty) => {
        impl fmt::Display for $t {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }
        impl FromStr for $t {
            type Err = NameError;
            fn from_str(s: &str) -> Result<Self, NameError> {
                Self::new(s)
            }
        }
        // As its text; read back through `new`, so that a stored value is validated again.
        impl serde::Serialize for $t {
            fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.serialize_str(&self.0)
            }
        }
        impl<'de> serde::Deserialize<'de> for $t {
            fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                let text = String::deserialize(d)?;
                Self::new(&text).map_err(serde::de::Error::custom)
            }
        }
    };
}
text_type!(Tag);

impl AsRef<str> for Tag {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

// Tags hash and compare as their text, so maps keyed by Tag can be looked up by &str.
impl std::borrow::Borrow<str> for Tag {
    fn borrow(&self) -> &str {
        &self.0
    }
}

/// The creation time of `tag`'s image, when its facts are known.
pub fn created_of(
    facts: &std::collections::HashMap<Tag, ImageFacts>,
    tag: &str,
) -> Option<jiff::Timestamp> {
    facts.get(tag).and_then(|f| f.created)
}
text_type!(Digest);
text_type!(Repository);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tags_follow_the_oci_grammar() {
        for ok in ["v1.2.3", "latest", "_x", "1.0.0-rc.1", &"a".repeat(128)] {
            assert!(Tag::new(ok).is_ok(), "{ok}");
        }
        for bad in [
            "",
            ".x",
            "-x",
            "a b",
            "a:b",
            "a\nb",
            "x'",
            "x\"",
            "#x",
            &"a".repeat(129),
        ] {
            assert!(Tag::new(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn digests_need_the_right_length() {
        let good = format!("sha256:{}", "a".repeat(64));
        assert!(Digest::new(&good).is_ok());
        assert!(Digest::new("sha256:abc").is_err());
        assert!(Digest::new("sha256:ABC").is_err());
        assert!(Digest::new("nope").is_err());
        assert!(Digest::new(&format!("sha256:{} #", "a".repeat(64))).is_err());
    }

    #[test]
    fn references_split_port_tag_and_digest() {
        let r = ImageRef::parse("localhost:5000/acme/app:1.2.3").unwrap();
        assert_eq!(r.repository.as_str(), "localhost:5000/acme/app");
        assert_eq!(r.tag.unwrap().as_str(), "1.2.3");
        let d = format!("ghcr.io/acme/app:v1@sha256:{}", "0".repeat(64));
        let r = ImageRef::parse(&d).unwrap();
        assert!(r.digest.is_some());
        assert_eq!(r.to_string(), d);
        assert!(ImageRef::parse("ghcr.io/Acme/app:1").is_err());
        assert!(Repository::new("app").is_ok());
        assert!(Repository::new("a b").is_err());
    }

    #[test]
    fn a_repository_names_its_host_or_is_docker_hubs() {
        let r = |s: &str| Repository::new(s).unwrap();
        assert_eq!(r("localhost:5000/acme/app").host(), Some("localhost:5000"));
        assert_eq!(
            r("localhost:5000/acme/app").split(),
            ("localhost:5000", "acme/app".into())
        );
        assert_eq!(r("acme/app").host(), None);
        assert_eq!(r("acme/app").split(), ("docker.io", "acme/app".into()));
        assert_eq!(r("nginx").split(), ("docker.io", "library/nginx".into()));
    }
}

//! Choosing a tag from a registry's tag list: exclusions, a filter with `extract`, and an
//! ordering. The result ranks every candidate best first and says why each other tag lost,
//! so that `plan` and `status` can answer "why not 6.5.4?".

use std::cmp::Ordering;
use std::fmt;

use jiff::Timestamp;
use regex::Regex;

use super::constraint::Constraint;
use super::version::Version;

/// The patterns dropped unless the rules say otherwise: signatures, attestations and SBOMs
/// that cosign and friends push as tags.
pub const DEFAULT_EXCLUDES: [&str; 3] = [r"\.sig$", r"\.att$", r"\.sbom$"];

/// Which way an alphabetical or numerical ordering prefers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Direction {
    /// The last after an ascending sort wins (the highest).
    Asc,
    /// The first after an ascending sort wins (the lowest).
    Desc,
}

/// How candidates are ranked.
#[derive(Debug, Clone)]
pub enum Order {
    /// Tags parsed as versions, within `range`; highest wins. Strictly (an optional `v`,
    /// then exactly `X.Y.Z`), or with `loose` as Masterminds' `NewVersion` reads them
    /// (`1.0` and `v5` are 1.0.0 and 5.0.0; so is a date tag `20240101` a major version).
    Semver {
        /// The range a candidate must be in.
        range: Constraint,
        /// Whether `1`, `1.2` and `v1.2` are versions too.
        loose: bool,
    },
    /// Byte-wise string order.
    Alphabetical(Direction),
    /// Tags parsed as numbers; a tag that is not one is no candidate (rejected, with why).
    Numerical(Direction),
    /// The image whose config says it was created last wins.
    NewestBuild,
}

/// `filter: {pattern, extract}`: a tag must match `pattern`; `extract` (`$1`, `$name`,
/// `${name}`) builds the text that is ordered instead of the tag.
#[derive(Debug, Clone)]
pub struct Filter {
    /// Unanchored regex a tag must match.
    pub pattern: std::sync::Arc<Regex>,
    /// Expansion template; the whole tag when absent.
    pub extract: Option<String>,
}

/// Everything that turns a tag list into a ranking.
#[derive(Debug, Clone)]
pub struct TagPolicy {
    /// Tags matching any of these are dropped first.
    pub exclude: Vec<std::sync::Arc<Regex>>,
    /// Optional filter and extraction.
    pub filter: Option<Filter>,
    /// The ordering.
    pub order: Order,
}

/// Why a tag did not win.
#[derive(Debug, Clone, PartialEq)]
pub enum Rejection {
    /// Matched an `exclude` pattern.
    Excluded {
        /// The pattern.
        pattern: String,
    },
    /// Did not match the filter's pattern.
    FilteredOut {
        /// The pattern.
        pattern: String,
    },
    /// Not a version (`X.Y.Z` with an optional `v`).
    NotAVersion {
        /// The text that was parsed (after extraction).
        text: String,
    },
    /// A version outside the range.
    OutOfRange {
        /// Masterminds' explanation, e.g. "1.2.3 is less than 2".
        why: String,
    },
    /// Not a number (numerical).
    NotANumber {
        /// The text that was parsed (after extraction).
        text: String,
    },
    /// No creation time known (newestBuild).
    NoCreationTime,
    /// A valid candidate, ranked below the winner.
    Older {
        /// The tag that ranks higher.
        than: String,
    },
}

/// What a policy ranks: the registry's [`crate::image::Tag`]s in the product, any text in
/// the conformance corpus (which holds names such as `-62` that no registry accepts).
pub trait TagName: AsRef<str> + Clone + PartialEq + fmt::Debug {}
impl<T: AsRef<str> + Clone + PartialEq + fmt::Debug> TagName for T {}

impl fmt::Display for Rejection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Excluded { pattern } => write!(f, "excluded by {pattern:?}"),
            Self::FilteredOut { pattern } => write!(f, "does not match the filter {pattern:?}"),
            Self::NotAVersion { text } => write!(f, "{text:?} is not a version X.Y.Z"),
            Self::OutOfRange { why } => write!(f, "outside the range: {why}"),
            Self::NotANumber { text } => write!(f, "{text:?} is not a number"),
            Self::NoCreationTime => f.write_str("the image has no creation time"),
            Self::Older { than } => write!(f, "ranks below {than}"),
        }
    }
}

/// A tag that qualifies, with the key it was ranked by.
#[derive(Debug, Clone)]
pub struct Candidate<T> {
    /// The original tag.
    pub tag: T,
    key: Key,
}

#[derive(Debug, Clone)]
enum Key {
    Version(Version),
    Text(String),
    Number(f64),
    Time(Timestamp),
}

/// The outcome of ranking a tag list.
#[derive(Debug, Clone)]
pub struct Selection<T> {
    /// Qualifying tags, best first.
    pub candidates: Vec<Candidate<T>>,
    /// Tags that do not qualify, each with its reason (in the order of the input).
    pub rejected: Vec<(T, Rejection)>,
}

impl<T> Default for Selection<T> {
    fn default() -> Self {
        Self {
            candidates: Vec::new(),
            rejected: Vec::new(),
        }
    }
}

impl<T: TagName> Selection<T> {
    /// The best tag, if any qualifies.
    pub fn winner(&self) -> Option<&T> {
        self.candidates.first().map(|c| &c.tag)
    }

    /// Why `tag` did not win, or `None` when it is the winner or unknown.
    pub fn why_not(&self, tag: &str) -> Option<Rejection> {
        if let Some((_, r)) = self.rejected.iter().find(|(t, _)| t.as_ref() == tag) {
            return Some(r.clone());
        }
        let winner = self.winner()?.as_ref();
        (winner != tag && self.candidates.iter().any(|c| c.tag.as_ref() == tag)).then(|| {
            Rejection::Older {
                than: winner.to_string(),
            }
        })
    }
}

/// Why a tag has no place in a policy's order (whatever its range or filter).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Unranked {
    /// `semver`: not a version.
    NotAVersion,
    /// `numerical`: not a number.
    NotANumber,
    /// `newestBuild`: its creation time is not known (not inspected, unreadable, deleted).
    NoCreationTime,
}

/// Two tags that a policy's order cannot compare, and which of them is at fault.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{tag} {why}")]
pub struct Unordered {
    /// The tag without a place in the order.
    pub tag: String,
    /// Why it has none.
    pub why: Unranked,
}

impl fmt::Display for Unranked {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::NotAVersion => "is not a version X.Y.Z",
            Self::NotANumber => "is not a number",
            Self::NoCreationTime => "has no known creation time",
        })
    }
}

impl TagPolicy {
    /// Rank `tags`. `created` looks up an image's creation time in data the caller already
    /// holds (only `newestBuild` asks).
    pub fn select<T: TagName>(
        &self,
        tags: &[T],
        created: &dyn Fn(&str) -> Option<Timestamp>,
    ) -> Selection<T> {
        let mut selection = Selection::default();
        for tag in tags {
            match self.key(tag.as_ref(), created) {
                Ok(key) => selection.candidates.push(Candidate {
                    tag: tag.clone(),
                    key,
                }),
                Err(r) => selection.rejected.push((tag.clone(), r)),
            }
        }
        selection.candidates.sort_by(|a, b| {
            self.better(&b.key, &a.key)
                .then_with(|| b.tag.as_ref().cmp(a.tag.as_ref()))
        });
        selection
    }

    /// Compare two tags by this policy's order alone: `Greater` when `a` ranks above `b`.
    /// The range, filter and exclusions do not matter here (a person's hotfix outside the
    /// range still has a version, and 7.0.0 is above 1.1.0 whatever `^1.0.0` says); a tag
    /// the order cannot place at all is the error. This is the order every "is it lower?"
    /// question asks: the downgrade gate, hold detection and `promote`.
    pub fn order(
        &self,
        a: &str,
        b: &str,
        created: &dyn Fn(&str) -> Option<Timestamp>,
    ) -> Result<Ordering, Unordered> {
        let ka = self.rank(a, created)?;
        let kb = self.rank(b, created)?;
        Ok(self.better(&ka, &kb))
    }

    /// Whether the order can place `tag` at all.
    pub fn ranks(
        &self,
        tag: &str,
        created: &dyn Fn(&str) -> Option<Timestamp>,
    ) -> Result<(), Unordered> {
        self.rank(tag, created).map(|_| ())
    }

    /// `tag`'s place in the order: the filter's extraction when its pattern matches (that
    /// is what the order was written for), else the tag itself.
    fn rank(
        &self,
        tag: &str,
        created: &dyn Fn(&str) -> Option<Timestamp>,
    ) -> Result<Key, Unordered> {
        let extracted = self.filter.as_ref().and_then(|f| self.extract(f, tag).ok());
        let texts: Vec<&str> = match &extracted {
            Some(text) if text != tag => vec![text.as_str(), tag],
            _ => vec![tag],
        };
        self.place(&texts, tag, created).map_err(|why| Unordered {
            tag: tag.to_string(),
            why,
        })
    }

    /// The key the order gives `tag`, read from the first of `texts` that it can read
    /// (`created` for `newestBuild`). The one dispatch on the kind of order: candidates
    /// ([`Self::key`]) and "is it lower?" ([`Self::order`]) both come here.
    fn place(
        &self,
        texts: &[&str],
        tag: &str,
        created: &dyn Fn(&str) -> Option<Timestamp>,
    ) -> Result<Key, Unranked> {
        match &self.order {
            Order::Semver { loose, .. } => texts
                .iter()
                .find_map(|t| {
                    if *loose {
                        Version::parse_lenient(t).ok()
                    } else {
                        Version::parse_tag(t).ok()
                    }
                })
                .map(Key::Version)
                .ok_or(Unranked::NotAVersion),
            Order::Alphabetical(_) => Ok(Key::Text(texts.first().unwrap_or(&tag).to_string())),
            Order::Numerical(_) => texts
                .iter()
                .find_map(|t| number(t))
                .map(Key::Number)
                .ok_or(Unranked::NotANumber),
            Order::NewestBuild => created(tag).map(Key::Time).ok_or(Unranked::NoCreationTime),
        }
    }

    /// The text a filter extracts from `tag`, or why the tag does not pass it.
    fn extract(&self, f: &Filter, tag: &str) -> Result<String, Rejection> {
        let caps = f
            .pattern
            .captures(tag)
            .ok_or_else(|| Rejection::FilteredOut {
                pattern: f.pattern.as_str().to_string(),
            })?;
        Ok(match &f.extract {
            None => tag.to_string(),
            Some(template) => {
                let mut out = String::new();
                caps.expand(template, &mut out);
                out
            }
        })
    }

    /// A candidate's key, or why the tag is no candidate.
    fn key(
        &self,
        tag: &str,
        created: &dyn Fn(&str) -> Option<Timestamp>,
    ) -> Result<Key, Rejection> {
        if let Some(re) = self.exclude.iter().find(|re| re.is_match(tag)) {
            return Err(Rejection::Excluded {
                pattern: re.as_str().to_string(),
            });
        }
        let text = match &self.filter {
            None => tag.to_string(),
            Some(f) => self.extract(f, tag)?,
        };
        let key = self
            .place(&[&text], tag, created)
            .map_err(|why| match why {
                Unranked::NotAVersion => Rejection::NotAVersion { text: text.clone() },
                Unranked::NotANumber => Rejection::NotANumber { text: text.clone() },
                Unranked::NoCreationTime => Rejection::NoCreationTime,
            })?;
        // Only a candidate must be in the range.
        if let (Order::Semver { range, .. }, Key::Version(v)) = (&self.order, &key) {
            range
                .explain(v)
                .map_err(|why| Rejection::OutOfRange { why: why.0 })?;
        }
        Ok(key)
    }

    /// `Greater` when `a` ranks above `b`.
    fn better(&self, a: &Key, b: &Key) -> Ordering {
        let natural = match (a, b) {
            (Key::Version(x), Key::Version(y)) => x.cmp(y),
            (Key::Text(x), Key::Text(y)) => x.as_bytes().cmp(y.as_bytes()),
            (Key::Number(x), Key::Number(y)) => x.total_cmp(y),
            (Key::Time(x), Key::Time(y)) => x.cmp(y),
            _ => Ordering::Equal,
        };
        match self.order {
            Order::Alphabetical(Direction::Desc) | Order::Numerical(Direction::Desc) => {
                natural.reverse()
            }
            _ => natural,
        }
    }
}

/// A finite number, as `numerical` reads tags.
fn number(text: &str) -> Option<f64> {
    text.parse::<f64>().ok().filter(|n| n.is_finite())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tags(list: &[&str]) -> Vec<String> {
        list.iter().map(|s| s.to_string()).collect()
    }

    fn semver(range: &str) -> TagPolicy {
        TagPolicy {
            exclude: DEFAULT_EXCLUDES
                .iter()
                .map(|p| std::sync::Arc::new(Regex::new(p).unwrap()))
                .collect(),
            filter: None,
            order: Order::Semver {
                range: Constraint::parse(range).unwrap(),
                loose: false,
            },
        }
    }

    #[test]
    fn every_loser_has_a_reason() {
        let p = semver("^6.0.0");
        let list = tags(&[
            "6.5.3",
            "6.5.4",
            "7.0.0",
            "latest",
            "sha256-abc.sig",
            "6.6.0-rc.1",
        ]);
        let s = p.select(&list, &|_| None);
        assert_eq!(s.winner().map(String::as_str), Some("6.5.4"));
        assert_eq!(
            s.why_not("6.5.3"),
            Some(Rejection::Older {
                than: "6.5.4".into()
            })
        );
        assert!(matches!(
            s.why_not("7.0.0"),
            Some(Rejection::OutOfRange { .. })
        ));
        assert!(matches!(
            s.why_not("latest"),
            Some(Rejection::NotAVersion { .. })
        ));
        assert!(matches!(
            s.why_not("sha256-abc.sig"),
            Some(Rejection::Excluded { .. })
        ));
        let pre = s.why_not("6.6.0-rc.1").unwrap().to_string();
        assert!(pre.contains("prerelease"), "{pre}");
        assert_eq!(s.why_not("6.5.4"), None);
    }

    #[test]
    fn newest_build_ranks_by_creation_time() {
        let p = TagPolicy {
            exclude: vec![],
            filter: None,
            order: Order::NewestBuild,
        };
        let t = |s: &str| s.parse::<Timestamp>().ok();
        let created = |tag: &str| match tag {
            "main-aaa" => t("2026-01-02T00:00:00Z"),
            "main-bbb" => t("2026-01-01T00:00:00Z"),
            _ => None,
        };
        let s = p.select(&tags(&["main-bbb", "main-aaa", "main-ccc"]), &created);
        assert_eq!(s.winner().map(String::as_str), Some("main-aaa"));
        assert_eq!(s.why_not("main-ccc"), Some(Rejection::NoCreationTime));
    }

    #[test]
    fn the_order_ignores_range_filter_and_exclusions() {
        let p = semver("^1.0.0");
        let none = |_: &str| None;
        assert_eq!(p.order("1.2.0", "1.10.0", &none), Ok(Ordering::Less));
        assert_eq!(p.order("v1.2.0", "1.2.0", &none), Ok(Ordering::Equal));
        // Outside the range, still ordered: a person's 7.0.0 is above the policy's best,
        // and a forced hotfix below it.
        assert_eq!(p.order("1.1.0", "7.0.0", &none), Ok(Ordering::Less));
        assert_eq!(
            p.order("1.0.1-hotfix.1", "1.1.0", &none),
            Ok(Ordering::Less)
        );
        assert_eq!(
            p.order("latest", "1.2.0", &none),
            Err(Unordered {
                tag: "latest".into(),
                why: Unranked::NotAVersion
            })
        );
        let filtered = TagPolicy {
            filter: Some(Filter {
                pattern: std::sync::Arc::new(Regex::new(r"^build-(?P<n>\d+)$").unwrap()),
                extract: Some("$n".into()),
            }),
            ..TagPolicy {
                exclude: vec![],
                filter: None,
                order: Order::Numerical(Direction::Asc),
            }
        };
        assert_eq!(
            filtered.order("build-9", "build-12", &none),
            Ok(Ordering::Less)
        );
        // A tag the filter does not match is read as it is.
        assert_eq!(
            filtered.order("13", "build-12", &none),
            Ok(Ordering::Greater)
        );
        assert!(filtered.order("hotfix", "build-12", &none).is_err());
    }

    #[test]
    fn numerical_rejects_what_is_not_a_number_instead_of_failing() {
        let p = TagPolicy {
            exclude: vec![],
            filter: None,
            order: Order::Numerical(Direction::Asc),
        };
        let s = p.select(&tags(&["3", "latest", "12"]), &|_| None);
        assert_eq!(s.winner().map(String::as_str), Some("12"));
        assert_eq!(
            s.why_not("latest"),
            Some(Rejection::NotANumber {
                text: "latest".into()
            })
        );
    }

    #[test]
    fn newest_build_cannot_order_a_tag_without_a_creation_time() {
        let p = TagPolicy {
            exclude: vec![],
            filter: None,
            order: Order::NewestBuild,
        };
        let created = |tag: &str| (tag == "a").then(|| "2026-01-01T00:00:00Z".parse().unwrap());
        assert_eq!(
            p.order("a", "gone", &created).map_err(|u| u.why),
            Err(Unranked::NoCreationTime)
        );
    }
}

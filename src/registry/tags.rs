//! Listing a repository's tags: pages of bounded size (`n`, falling back when refused),
//! followed by `Link: <…>; rel="next"` (relative or absolute) or `last=`, with caps on pages
//! and tags, loop detection, and tags that are not valid OCI tags dropped with a warning.

use std::collections::HashSet;

use reqwest::Method;
use serde::Deserialize;

use super::error::{ErrorKind, RegistryError};
use super::transport::{Request, Transport};
use crate::image::Tag;

/// Page sizes tried in turn when a registry refuses one (`None`: no `n` at all).
const PAGE_SIZES: [Option<usize>; 3] = [Some(1000), Some(100), None];
/// The most tags a repository may list.
pub const MAX_TAGS: usize = 100_000;
/// The most pages followed.
const MAX_PAGES: usize = 2_000;
/// The largest page body.
const MAX_PAGE_BYTES: usize = 8 * 1024 * 1024;

/// A repository's tags.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TagList {
    /// Valid tags, in the registry's order, without duplicates.
    pub tags: Vec<Tag>,
    /// Names the registry listed that are not valid OCI tags (never written anywhere).
    pub dropped: Vec<String>,
}

impl FromIterator<Tag> for TagList {
    /// A list of exactly these tags (tests, fixtures).
    fn from_iter<I: IntoIterator<Item = Tag>>(tags: I) -> Self {
        Self {
            tags: tags.into_iter().collect(),
            dropped: Vec::new(),
        }
    }
}

#[derive(Deserialize)]
struct Page {
    #[serde(default)]
    tags: Option<Vec<String>>,
}

/// List every tag of `path` on `host`.
pub async fn list(t: &Transport, host: &str, path: &str) -> Result<TagList, RegistryError> {
    let scope = format!("repository:{path}:pull");
    let step = format!("listing tags of {path}");
    let invalid = |detail: String| RegistryError::new(ErrorKind::Invalid, host, &step, detail);
    let first = |size: Option<usize>| match size {
        Some(n) => format!("/v2/{path}/tags/list?n={n}"),
        None => format!("/v2/{path}/tags/list"),
    };
    let mut size_index = 0;
    let mut target = first(PAGE_SIZES[0]);
    let mut visited = HashSet::new();
    let mut seen = HashSet::new();
    let mut list = TagList::default();
    let mut pages = 0;
    loop {
        pages += 1;
        if pages > MAX_PAGES {
            return Err(invalid(format!("more than {MAX_PAGES} pages of tags")));
        }
        if !visited.insert(target.clone()) {
            return Err(invalid(
                "the pagination Link points back to a page already read".into(),
            ));
        }
        let resp = t
            .send(&Request {
                method: Method::GET,
                host,
                target: &target,
                accept: Some("application/json"),
                scope: &scope,
                step: &step,
                limit: MAX_PAGE_BYTES,
            })
            .await?;
        let status = resp.status.as_u16();
        if (status == 400 || status == 422) && pages == 1 && size_index + 1 < PAGE_SIZES.len() {
            // A registry that refuses our page size: try a smaller one, then none.
            size_index += 1;
            pages = 0;
            visited.clear();
            target = first(PAGE_SIZES[size_index]);
            tracing::debug!(
                registry = host,
                repository = path,
                "page size refused; trying {:?}",
                PAGE_SIZES[size_index]
            );
            continue;
        }
        if !resp.status.is_success() {
            return Err(invalid(format!("unexpected status {}", resp.status)));
        }
        let page: Page = serde_json::from_slice(&resp.body)
            .map_err(|_| invalid("the tag list is not the JSON the API promises".into()))?;
        let names = page.tags.unwrap_or_default();
        let page_len = names.len();
        let mut added = 0;
        for name in names {
            if !seen.insert(name.clone()) {
                continue;
            }
            added += 1;
            match Tag::new(&name) {
                Ok(tag) => list.tags.push(tag),
                Err(_) => {
                    tracing::warn!(registry = host, repository = path, tag = %name.escape_debug(), "dropping a tag that is not a valid OCI tag");
                    list.dropped.push(name);
                }
            }
            if seen.len() > MAX_TAGS {
                return Err(invalid(format!(
                    "more than {MAX_TAGS} tags; narrow the repository or ask for a cap raise"
                )));
            }
        }
        let link = resp
            .headers
            .get_all(reqwest::header::LINK)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .find_map(next_link);
        target = match link {
            Some(next) => next,
            // No Link, but a full page of new tags: ask for what follows the last one.
            None => match PAGE_SIZES[size_index] {
                Some(n) if page_len == n && added > 0 => {
                    let last = list
                        .tags
                        .last()
                        .map(Tag::to_string)
                        .or_else(|| list.dropped.last().cloned())
                        .unwrap_or_default();
                    format!("/v2/{path}/tags/list?n={n}&last={}", encode_query(&last))
                }
                _ => return Ok(list),
            },
        };
    }
}

/// `s` safe in a query string (every byte but the unreserved ones percent-encoded).
pub fn encode_query(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// The target of `rel="next"` in a `Link` header value.
pub fn next_link(header: &str) -> Option<String> {
    header.split(',').find_map(|part| {
        let (url, params) = part.trim().split_once(';')?;
        let url = url.trim().strip_prefix('<')?.strip_suffix('>')?;
        let is_next = params.split(';').any(|p| {
            let p = p.trim();
            p.eq_ignore_ascii_case("rel=\"next\"") || p.eq_ignore_ascii_case("rel=next")
        });
        is_next.then(|| url.to_string())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn link_headers() {
        assert_eq!(
            next_link(r#"</v2/a/tags/list?n=100&last=x>; rel="next""#),
            Some("/v2/a/tags/list?n=100&last=x".into())
        );
        assert_eq!(
            next_link(
                r#"<https://r.example/v2/a/tags/list?last=y>; rel="prev", <https://r.example/v2/a/tags/list?last=z>; rel=next"#
            ),
            Some("https://r.example/v2/a/tags/list?last=z".into())
        );
        assert_eq!(next_link("garbage"), None);
    }

    #[test]
    fn queries_are_encoded() {
        assert_eq!(encode_query("v1.0+x"), "v1.0%2Bx");
    }
}

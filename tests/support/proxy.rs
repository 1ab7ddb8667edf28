//! A fault-injecting proxy in front of the real registry: it paginates tag lists (distribution
//! 2.8 does not), and on demand answers 429 with `Retry-After`, 500, slow or truncated
//! responses, refuses large page sizes, loops or leaks `Link`s, and adds bad tag names. It
//! logs every request it sees, with its arrival time and whether it carried credentials.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use super::http::{self, Req, Resp};

/// A fault for the next request whose path contains a pattern.
#[derive(Debug, Clone)]
pub enum Fault {
    /// Answer this status (with `Retry-After` when given) without forwarding.
    Status(u16, Option<String>),
    /// Forward, but answer after this delay.
    Slow(Duration),
    /// Forward, and send half the body.
    Truncate,
    /// Answer 307 to this URL (a blob store's pre-signed URL, say).
    Redirect(String),
    /// Answer 200 with this body instead of forwarding.
    Body(Vec<u8>),
}

/// How `Link` headers of paginated tag lists look.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Links {
    /// Alternately relative and absolute, pointing to the next page.
    Normal,
    /// Always pointing to the first page.
    Loop,
    /// Pointing to another host.
    Elsewhere,
}

/// One request the proxy saw.
#[derive(Debug, Clone)]
pub struct Seen {
    pub at: Instant,
    pub method: String,
    pub target: String,
    pub authorization: Option<String>,
}

#[derive(Default)]
struct Settings {
    faults: VecDeque<(String, Fault)>,
    page_size: Option<usize>,
    max_n: Option<usize>,
    links: Option<Links>,
    extra_tags: Vec<String>,
    elsewhere: String,
    inject_authorization: Option<String>,
}

pub struct Proxy {
    /// `127.0.0.1:PORT`.
    pub addr: String,
    settings: Arc<Mutex<Settings>>,
    log: Arc<Mutex<Vec<Seen>>>,
}

impl Proxy {
    /// A proxy to `upstream` (`127.0.0.1:PORT`).
    pub async fn start(upstream: &str) -> Self {
        let settings = Arc::new(Mutex::new(Settings::default()));
        let log = Arc::new(Mutex::new(Vec::new()));
        let client = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .expect("client");
        let upstream = upstream.to_string();
        let addr_cell: Arc<Mutex<String>> = Arc::default();
        let (s, l, a) = (
            Arc::clone(&settings),
            Arc::clone(&log),
            Arc::clone(&addr_cell),
        );
        let handler: http::Handler = Arc::new(move |req: Req| {
            let (s, l, a, client, upstream) = (
                Arc::clone(&s),
                Arc::clone(&l),
                Arc::clone(&a),
                client.clone(),
                upstream.clone(),
            );
            Box::pin(async move {
                l.lock().unwrap().push(Seen {
                    at: Instant::now(),
                    method: req.method.clone(),
                    target: req.target.clone(),
                    authorization: req.header("authorization").map(str::to_string),
                });
                let fault = {
                    let mut st = s.lock().unwrap();
                    let i = st
                        .faults
                        .iter()
                        .position(|(p, _)| req.target.contains(p.as_str()));
                    i.and_then(|i| st.faults.remove(i)).map(|(_, f)| f)
                };
                if let Some(Fault::Body(body)) = &fault {
                    return Resp::json(200, body.clone());
                }
                if let Some(Fault::Redirect(location)) = &fault {
                    return Resp::new(307).header("Location", location);
                }
                if let Some(Fault::Status(code, retry_after)) = &fault {
                    let mut r = Resp::json(*code, r#"{"errors":[{"code":"TOOMANYREQUESTS"}]}"#);
                    if let Some(ra) = retry_after {
                        r = r.header("Retry-After", ra);
                    }
                    return r;
                }
                let is_tag_list = req.path().ends_with("/tags/list");
                let (page_size, max_n, links, extra, elsewhere, inject) = {
                    let st = s.lock().unwrap();
                    (
                        st.page_size,
                        st.max_n,
                        st.links,
                        st.extra_tags.clone(),
                        st.elsewhere.clone(),
                        st.inject_authorization.clone(),
                    )
                };
                let n: Option<usize> = req.query("n").and_then(|v| v.parse().ok());
                if is_tag_list && max_n.is_some_and(|m| n.is_some_and(|n| n > m)) {
                    return Resp::json(400, r#"{"errors":[{"code":"PAGINATION_NUMBER_INVALID"}]}"#);
                }
                let upstream_target = if is_tag_list {
                    req.path().to_string()
                } else {
                    req.target.clone()
                };
                let mut builder = client.request(
                    req.method.parse().unwrap(),
                    format!("http://{upstream}{upstream_target}"),
                );
                for h in ["accept", "authorization"] {
                    if let Some(v) = req.header(h) {
                        builder = builder.header(h, v);
                    }
                }
                if let Some(a) = &inject {
                    builder = builder.header("authorization", a);
                }
                let Ok(up) = builder.send().await else {
                    return Resp::new(502);
                };
                let mut resp = Resp::new(up.status().as_u16());
                for h in [
                    "content-type",
                    "docker-content-digest",
                    "www-authenticate",
                    "location",
                    "retry-after",
                ] {
                    if let Some(v) = up.headers().get(h).and_then(|v| v.to_str().ok()) {
                        resp = resp.header(h, v);
                    }
                }
                resp.body = up.bytes().await.map(|b| b.to_vec()).unwrap_or_default();
                if is_tag_list && resp.status == 200 {
                    let mut v: serde_json::Value =
                        serde_json::from_slice(&resp.body).unwrap_or_default();
                    let mut tags: Vec<String> = v["tags"]
                        .as_array()
                        .map(|a| {
                            a.iter()
                                .filter_map(|t| t.as_str().map(str::to_string))
                                .collect()
                        })
                        .unwrap_or_default();
                    tags.extend(extra.iter().cloned());
                    tags.sort();
                    if let Some(size) = page_size {
                        let size = n.map_or(size, |n| n.min(size));
                        let last = req.query("last");
                        let start = last
                            .as_ref()
                            .map_or(0, |l| tags.iter().position(|t| t > l).unwrap_or(tags.len()));
                        let end = (start + size).min(tags.len());
                        let page = tags[start..end].to_vec();
                        if end < tags.len() {
                            let repo = req
                                .path()
                                .trim_start_matches("/v2/")
                                .trim_end_matches("/tags/list");
                            let rel = format!(
                                "/v2/{repo}/tags/list?n={size}&last={}",
                                page.last().cloned().unwrap_or_default()
                            );
                            let page_no = start / size.max(1);
                            let self_addr = a.lock().unwrap().clone();
                            let url = match links.unwrap_or(Links::Normal) {
                                Links::Normal if page_no.is_multiple_of(2) => rel,
                                Links::Normal => format!("http://{self_addr}{rel}"),
                                Links::Loop => format!("/v2/{repo}/tags/list?n={size}"),
                                Links::Elsewhere => format!("http://{elsewhere}{rel}"),
                            };
                            resp = resp.header("Link", &format!("<{url}>; rel=\"next\""));
                        }
                        tags = page;
                    }
                    v["tags"] = serde_json::json!(tags);
                    resp.body = v.to_string().into_bytes();
                }
                match fault {
                    Some(Fault::Slow(d)) => resp.delay = d,
                    Some(Fault::Truncate) => resp.truncate = true,
                    _ => {}
                }
                resp
            })
        });
        let addr = http::serve(handler).await;
        *addr_cell.lock().unwrap() = addr.clone();
        Self {
            addr,
            settings,
            log,
        }
    }

    /// Queue a fault for the next request whose target contains `pattern`.
    pub fn fault(&self, pattern: &str, fault: Fault) {
        self.settings
            .lock()
            .unwrap()
            .faults
            .push_back((pattern.to_string(), fault));
    }

    /// Paginate tag lists at most `size` per page.
    pub fn paginate(&self, size: usize, links: Links) {
        let mut s = self.settings.lock().unwrap();
        s.page_size = Some(size);
        s.links = Some(links);
    }

    /// Where `Links::Elsewhere` points.
    pub fn elsewhere(&self, addr: &str) {
        self.settings.lock().unwrap().elsewhere = addr.to_string();
    }

    /// Forward with this Authorization of the proxy's own (like a pre-signed URL).
    pub fn inject_authorization(&self, value: &str) {
        self.settings.lock().unwrap().inject_authorization = Some(value.to_string());
    }

    /// Answer 400 to tag lists asking for more than `n` per page.
    pub fn max_page_size(&self, n: usize) {
        self.settings.lock().unwrap().max_n = Some(n);
    }

    /// Add names to every tag list.
    pub fn extra_tags(&self, tags: &[&str]) {
        self.settings.lock().unwrap().extra_tags = tags.iter().map(|t| t.to_string()).collect();
    }

    /// The requests seen so far.
    pub fn seen(&self) -> Vec<Seen> {
        self.log.lock().unwrap().clone()
    }

    /// Forget the requests seen so far, and drop the faults not yet used.
    pub fn clear(&self) {
        self.log.lock().unwrap().clear();
        self.settings.lock().unwrap().faults.clear();
    }
}

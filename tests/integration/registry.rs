//! The registry client against Debian's real `docker-registry` (distribution 2.8), started
//! by the tests on 127.0.0.1: anonymous, htpasswd basic auth, bearer tokens from a token
//! server, Docker config files, a two-platform index, creation times, 1,000+ tags, and
//! faults injected by a proxy in front of the real registry.

use crate::support;

use std::collections::HashMap;
use std::path::Path;
use std::time::{Duration, Instant};

use crate::support::oci::Pusher;
use crate::support::proxy::{Fault, Links, Proxy};
use crate::support::token::TokenServer;
use crate::support::{Auth, DockerRegistry};
use base64::Engine;
use tagpromoter::image::{Repository, Tag};
use tagpromoter::registry::credentials::CredentialSource;
use tagpromoter::registry::{ErrorKind, HostConfig, Registry, RetryPolicy};

fn retry() -> RetryPolicy {
    RetryPolicy {
        max_retries: 3,
        min_delay: Duration::from_millis(50),
        max_delay: Duration::from_secs(5),
        timeout: Duration::from_secs(2),
    }
}

fn host(credentials: CredentialSource) -> HostConfig {
    HostConfig {
        insecure: true,
        requests_per_second: 1000.0,
        concurrency: 8,
        credentials,
    }
}

fn client(addr: &str, config: HostConfig) -> Registry {
    Registry::new(HashMap::from([(addr.to_string(), config)]), retry()).expect("client")
}

/// A client whose credentials come from a Docker config file holding `json`.
fn with_docker_config(addr: &str, dir: &Path, json: &str) -> Registry {
    let config = dir.join("config.json");
    std::fs::write(&config, json).expect("write docker config");
    client(
        addr,
        host(CredentialSource {
            docker_config: Some(config),
            ..Default::default()
        }),
    )
}

fn repo(addr: &str, path: &str) -> Repository {
    Repository::new(&format!("{addr}/{path}")).expect("repository")
}

fn tag(t: &str) -> Tag {
    Tag::new(t).expect("tag")
}

fn names(list: &tagpromoter::registry::TagList) -> Vec<String> {
    let mut v: Vec<String> = list.tags.iter().map(|t| t.to_string()).collect();
    v.sort();
    v
}

fn password_file(dir: &Path, password: &str) -> CredentialSource {
    let file = dir.join("password");
    std::fs::write(&file, format!("{password}\n")).expect("write password");
    CredentialSource {
        username: Some("alice".into()),
        password_file: Some(file),
        docker_config: None,
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn anonymous_tags_digests_created_times_and_caching() {
    let reg = DockerRegistry::start(Auth::None);
    let pusher = Pusher::new(&reg.addr);
    let first = pusher
        .image(
            "acme/app",
            Some("1.0.0"),
            "2026-01-01T00:00:00Z",
            "linux",
            "amd64",
        )
        .await;
    pusher
        .image(
            "acme/app",
            Some("1.1.0"),
            "2026-02-01T10:00:00Z",
            "linux",
            "amd64",
        )
        .await;
    let c = client(&reg.addr, host(CredentialSource::default()));
    let image = repo(&reg.addr, "acme/app");

    assert_eq!(names(&c.tags(&image).await.unwrap()), ["1.0.0", "1.1.0"]);
    let facts = c.facts(&image, &tag("1.0.0")).await.unwrap();
    assert_eq!(facts.digest.as_str(), first.digest);
    assert_eq!(facts.created, Some("2026-01-01T00:00:00Z".parse().unwrap()));
    assert_eq!(facts.platforms, ["linux/amd64"]);

    // A tag is resolved once per pass; in the next pass, metadata is cached by digest and
    // asking again costs only the HEAD that resolves the tag.
    let before = c.request_count();
    c.facts(&image, &tag("1.0.0")).await.unwrap();
    assert_eq!(c.request_count() - before, 0);
    c.new_pass().await;
    c.tags(&image).await.unwrap();
    c.facts(&image, &tag("1.0.0")).await.unwrap();
    assert_eq!(c.request_count() - before, 2, "the listing and one HEAD");

    // One listing per image per pass, however many ask (at once or later).
    let before = c.request_count();
    let (a, b) = tokio::join!(c.tags(&image), c.tags(&image));
    assert_eq!(a.unwrap(), b.unwrap());
    assert_eq!(c.request_count(), before);
    c.new_pass().await;
    let (a, b, d) = tokio::join!(c.tags(&image), c.tags(&image), c.tags(&image));
    assert!(a.is_ok() && b.is_ok() && d.is_ok());
    assert_eq!(c.request_count() - before, 1);

    let err = c.tags(&repo(&reg.addr, "acme/missing")).await.unwrap_err();
    assert_eq!(err.kind, ErrorKind::NotFound);
    assert!(
        err.to_string().contains("listing tags of acme/missing"),
        "{err}"
    );
    assert!(err.to_string().contains(&reg.addr), "{err}");
}

#[tokio::test(flavor = "multi_thread")]
async fn an_index_with_two_platforms() {
    let reg = DockerRegistry::start(Auth::None);
    let pusher = Pusher::new(&reg.addr);
    let amd = pusher
        .image("acme/multi", None, "2026-03-01T00:00:00Z", "linux", "amd64")
        .await;
    let arm = pusher
        .image("acme/multi", None, "2026-03-01T00:05:00Z", "linux", "arm64")
        .await;
    let index = pusher
        .index(
            "acme/multi",
            "2.0.0",
            &[(amd, "linux", "amd64"), (arm, "linux", "arm64")],
        )
        .await;
    let c = client(&reg.addr, host(CredentialSource::default()));
    let facts = c
        .facts(&repo(&reg.addr, "acme/multi"), &tag("2.0.0"))
        .await
        .unwrap();
    assert_eq!(facts.digest.as_str(), index.digest);
    assert_eq!(facts.platforms, ["linux/amd64", "linux/arm64"]);
    assert_eq!(facts.created, Some("2026-03-01T00:00:00Z".parse().unwrap()));
}

#[tokio::test(flavor = "multi_thread")]
async fn a_repository_whose_tags_were_deleted_lists_nothing() {
    let reg = DockerRegistry::start(Auth::None);
    let pusher = Pusher::new(&reg.addr);
    let pushed = pusher
        .image(
            "acme/gone",
            Some("1.0.0"),
            "2026-01-01T00:00:00Z",
            "linux",
            "amd64",
        )
        .await;
    pusher.delete("acme/gone", &pushed.digest).await;
    let c = client(&reg.addr, host(CredentialSource::default()));
    let list = c.tags(&repo(&reg.addr, "acme/gone")).await.unwrap();
    assert!(list.tags.is_empty());
}

#[tokio::test(flavor = "multi_thread")]
async fn htpasswd_basic_auth_and_rotated_passwords() {
    let reg = DockerRegistry::start(Auth::Htpasswd("alice", "wonderland-1"));
    Pusher::new(&reg.addr)
        .basic("alice", "wonderland-1")
        .image(
            "acme/private",
            Some("3.0.0"),
            "2026-01-01T00:00:00Z",
            "linux",
            "amd64",
        )
        .await;
    let image = repo(&reg.addr, "acme/private");

    let anonymous = client(&reg.addr, host(CredentialSource::default()));
    let err = anonymous.tags(&image).await.unwrap_err();
    assert_eq!(err.kind, ErrorKind::Auth);
    assert!(err.to_string().contains("requires credentials"), "{err}");

    let dir = tempfile::tempdir().unwrap();
    let source = password_file(dir.path(), "wrong-password");
    let c = client(&reg.addr, host(source));
    let err = c.tags(&image).await.unwrap_err();
    assert_eq!(err.kind, ErrorKind::Auth, "{err}");
    // The secret is rotated in place: the next pass reads it again, no restart.
    password_file(dir.path(), "wonderland-1");
    c.new_pass().await;
    assert_eq!(names(&c.tags(&image).await.unwrap()), ["3.0.0"]);
    let facts = c.facts(&image, &tag("3.0.0")).await.unwrap();
    assert!(facts.created.is_some());
}

#[tokio::test(flavor = "multi_thread")]
async fn docker_config_file_with_basic_auth() {
    let reg = DockerRegistry::start(Auth::Htpasswd("alice", "wonderland-2"));
    Pusher::new(&reg.addr)
        .basic("alice", "wonderland-2")
        .image(
            "acme/cfg",
            Some("1.0.0"),
            "2026-01-01T00:00:00Z",
            "linux",
            "amd64",
        )
        .await;
    let dir = tempfile::tempdir().unwrap();
    let auth = base64::engine::general_purpose::STANDARD.encode("alice:wonderland-2");
    let c = with_docker_config(
        &reg.addr,
        dir.path(),
        &format!(
            r#"{{"auths": {{"http://{}": {{"auth": "{auth}"}}}}}}"#,
            reg.addr
        ),
    );
    assert_eq!(
        names(&c.tags(&repo(&reg.addr, "acme/cfg")).await.unwrap()),
        ["1.0.0"]
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn bearer_tokens_are_fetched_once_per_scope_and_cached() {
    let tokens = TokenServer::start("bob", "token-pass-9").await;
    let reg = DockerRegistry::start(Auth::Token(tokens.realm.clone(), tokens.cert.clone()));
    let push = tokens.push_token("bob", "token-pass-9", "acme/tok").await;
    let pusher = Pusher::new(&reg.addr).bearer(&push);
    pusher
        .image(
            "acme/tok",
            Some("1.0.0"),
            "2026-01-01T00:00:00Z",
            "linux",
            "amd64",
        )
        .await;
    pusher
        .image(
            "acme/tok",
            Some("1.0.1"),
            "2026-01-02T00:00:00Z",
            "linux",
            "amd64",
        )
        .await;
    let issued_for_seeding = tokens.issued.load(std::sync::atomic::Ordering::SeqCst);

    let dir = tempfile::tempdir().unwrap();
    let c = with_docker_config(
        &reg.addr,
        dir.path(),
        &format!(
            r#"{{"auths": {{"{}": {{"username": "bob", "password": "token-pass-9"}}}}}}"#,
            reg.addr
        ),
    );
    let image = repo(&reg.addr, "acme/tok");
    assert_eq!(names(&c.tags(&image).await.unwrap()), ["1.0.0", "1.0.1"]);
    c.facts(&image, &tag("1.0.0")).await.unwrap();
    c.facts(&image, &tag("1.0.1")).await.unwrap();
    let issued = tokens.issued.load(std::sync::atomic::Ordering::SeqCst) - issued_for_seeding;
    assert_eq!(
        issued, 1,
        "one token for the repository's pull scope, reused until it expires"
    );

    let c = with_docker_config(
        &reg.addr,
        dir.path(),
        &format!(
            r#"{{"auths": {{"{}": {{"username": "bob", "password": "nope"}}}}}}"#,
            reg.addr
        ),
    );
    let err = c.tags(&image).await.unwrap_err();
    assert_eq!(err.kind, ErrorKind::Auth);
    assert!(err.to_string().contains("token server refused"), "{err}");
}

/// A real registry with 1,100 tags, listed directly (2.8 ignores `n`) and through the
/// proxy's pages of 100 with relative and absolute `Link`s.
#[tokio::test(flavor = "multi_thread")]
async fn more_than_a_thousand_tags_directly_and_paginated() {
    let reg = DockerRegistry::start(Auth::None);
    let pusher = Pusher::new(&reg.addr);
    pusher
        .image(
            "acme/many",
            Some("seed"),
            "2026-01-01T00:00:00Z",
            "linux",
            "amd64",
        )
        .await;
    let body = pusher.get_manifest("acme/many", "seed").await;
    let tags: Vec<String> = (0..1100).map(|i| format!("1.0.{i}")).collect();
    pusher
        .retag("acme/many", &tags, &body, support::oci::OCI_MANIFEST)
        .await;

    let direct = client(&reg.addr, host(CredentialSource::default()));
    assert_eq!(
        direct
            .tags(&repo(&reg.addr, "acme/many"))
            .await
            .unwrap()
            .tags
            .len(),
        1101
    );

    let proxy = Proxy::start(&reg.addr).await;
    proxy.paginate(100, Links::Normal);
    let c = client(&proxy.addr, host(CredentialSource::default()));
    let list = c.tags(&repo(&proxy.addr, "acme/many")).await.unwrap();
    assert_eq!(list.tags.len(), 1101);
    let pages = proxy
        .seen()
        .iter()
        .filter(|s| s.target.contains("/tags/list"))
        .count();
    assert_eq!(pages, 12);
}

async fn proxied(repo_path: &str) -> (DockerRegistry, Proxy, Registry, Repository) {
    let reg = DockerRegistry::start(Auth::None);
    Pusher::new(&reg.addr)
        .image(
            repo_path,
            Some("1.0.0"),
            "2026-01-01T00:00:00Z",
            "linux",
            "amd64",
        )
        .await;
    let proxy = Proxy::start(&reg.addr).await;
    let c = client(&proxy.addr, host(CredentialSource::default()));
    let image = repo(&proxy.addr, repo_path);
    (reg, proxy, c, image)
}

fn tag_list_requests(proxy: &Proxy) -> Vec<Instant> {
    proxy
        .seen()
        .iter()
        .filter(|s| s.target.contains("/tags/list"))
        .map(|s| s.at)
        .collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn a_429_is_retried_only_after_retry_after() {
    let (_reg, proxy, c, image) = proxied("acme/limited").await;
    proxy.fault("/tags/list", Fault::Status(429, Some("1".into())));
    assert_eq!(names(&c.tags(&image).await.unwrap()), ["1.0.0"]);
    let times = tag_list_requests(&proxy);
    assert_eq!(times.len(), 2);
    assert!(
        times[1] - times[0] >= Duration::from_secs(1),
        "retried after {:?}",
        times[1] - times[0]
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_429_pauses_every_request_to_that_host() {
    let (reg, proxy, c, image) = proxied("acme/one").await;
    Pusher::new(&reg.addr)
        .image(
            "acme/two",
            Some("2.0.0"),
            "2026-01-01T00:00:00Z",
            "linux",
            "amd64",
        )
        .await;
    proxy.fault("acme/one/tags/list", Fault::Status(429, Some("2".into())));
    let other = repo(&proxy.addr, "acme/two");
    let first = c.tags(&image);
    let second = async {
        // Ask for the other repository only once the 429 has been answered.
        while !proxy.seen().iter().any(|s| s.target.contains("acme/one")) {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
        c.tags(&other).await
    };
    let (a, b) = tokio::join!(first, second);
    assert!(a.is_ok() && b.is_ok());
    let seen = proxy.seen();
    let limited = seen
        .iter()
        .find(|s| s.target.contains("acme/one"))
        .unwrap()
        .at;
    let two = seen
        .iter()
        .find(|s| s.target.contains("acme/two/tags/list"))
        .expect("the other repository was listed through the proxy");
    assert!(
        two.at > limited && two.at - limited >= Duration::from_millis(1900),
        "the other repository's request came {:?} after the 429 (Retry-After: 2)",
        two.at.checked_duration_since(limited)
    );
    for s in seen.iter().filter(|s| s.at > limited) {
        assert!(
            s.at - limited >= Duration::from_millis(1900),
            "{} came {:?} after the 429",
            s.target,
            s.at - limited
        );
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn server_errors_slow_and_truncated_responses_are_retried() {
    let (_reg, proxy, c, image) = proxied("acme/flaky").await;
    proxy.fault("/tags/list", Fault::Status(500, None));
    proxy.fault("/tags/list", Fault::Slow(Duration::from_secs(3)));
    proxy.fault("/tags/list", Fault::Truncate);
    assert_eq!(names(&c.tags(&image).await.unwrap()), ["1.0.0"]);
    assert_eq!(tag_list_requests(&proxy).len(), 4);
}

#[tokio::test(flavor = "multi_thread")]
async fn persistent_failures_are_classified() {
    let (_reg, proxy, c, image) = proxied("acme/down").await;
    for _ in 0..10 {
        proxy.fault("/tags/list", Fault::Status(503, None));
    }
    let err = c.tags(&image).await.unwrap_err();
    assert_eq!(err.kind, ErrorKind::Unavailable);
    assert_eq!(
        tag_list_requests(&proxy).len(),
        4,
        "one try and three retries"
    );

    proxy.clear();
    c.new_pass().await;
    let err = c.tags(&repo(&proxy.addr, "acme/absent")).await.unwrap_err();
    assert_eq!(err.kind, ErrorKind::NotFound);
    assert_eq!(tag_list_requests(&proxy).len(), 1, "404 is not retried");

    proxy.clear();
    for _ in 0..10 {
        proxy.fault("/tags/list", Fault::Status(429, Some("0".into())));
    }
    c.new_pass().await;
    let err = c.tags(&image).await.unwrap_err();
    assert_eq!(err.kind, ErrorKind::RateLimited);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_refused_page_size_falls_back() {
    let (_reg, proxy, c, image) = proxied("acme/small-pages").await;
    proxy.max_page_size(100);
    proxy.paginate(100, Links::Normal);
    assert_eq!(names(&c.tags(&image).await.unwrap()), ["1.0.0"]);
    let targets: Vec<String> = proxy.seen().iter().map(|s| s.target.clone()).collect();
    assert!(
        targets[0].ends_with("n=1000") && targets[1].ends_with("n=100"),
        "{targets:?}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn looping_and_foreign_links_are_refused() {
    let (reg, proxy, c, image) = proxied("acme/links").await;
    let pusher = Pusher::new(&reg.addr);
    let body = pusher.get_manifest("acme/links", "1.0.0").await;
    pusher
        .retag(
            "acme/links",
            &["1.0.1".to_string(), "1.0.2".to_string()],
            &body,
            support::oci::OCI_MANIFEST,
        )
        .await;
    proxy.paginate(1, Links::Loop);
    let err = c.tags(&image).await.unwrap_err();
    assert_eq!(err.kind, ErrorKind::Invalid);
    assert!(err.to_string().contains("points back"), "{err}");

    let elsewhere = Proxy::start(&reg.addr).await;
    proxy.elsewhere(&elsewhere.addr);
    proxy.paginate(1, Links::Elsewhere);
    c.new_pass().await;
    let err = c.tags(&image).await.unwrap_err();
    assert_eq!(err.kind, ErrorKind::Invalid);
    assert!(err.to_string().contains("another origin"), "{err}");
    assert!(
        elsewhere.seen().is_empty(),
        "nothing may be sent to a host a Link names"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn names_that_are_not_tags_are_dropped() {
    let (_reg, proxy, c, image) = proxied("acme/odd").await;
    proxy.extra_tags(&["bad tag", "-dash", "x\ny: 1", "ok_extra"]);
    let list = c.tags(&image).await.unwrap();
    assert_eq!(names(&list), ["1.0.0", "ok_extra"]);
    assert_eq!(list.dropped.len(), 3);
}

#[tokio::test(flavor = "multi_thread")]
async fn requests_per_second_is_respected() {
    let (_reg, proxy, _, image) = proxied("acme/paced").await;
    let mut config = host(CredentialSource::default());
    config.requests_per_second = 10.0;
    let c = client(&proxy.addr, config);
    let started = Instant::now();
    for _ in 0..11 {
        c.new_pass().await;
        c.tags(&image).await.unwrap();
    }
    assert!(
        started.elapsed() >= Duration::from_millis(1000),
        "{:?}",
        started.elapsed()
    );
    // Request k starts at least k-1 intervals after the first arrived (which may be late).
    let times = tag_list_requests(&proxy);
    for (k, t) in times.iter().enumerate().skip(1) {
        let since_first = *t - times[0];
        assert!(
            since_first >= Duration::from_millis(100) * (k as u32 - 1),
            "request {k} came {since_first:?} after the first"
        );
    }
}

/// A blob redirect to another origin (a blob store) is followed without our credentials.
#[tokio::test(flavor = "multi_thread")]
async fn redirects_to_another_origin_carry_no_credentials() {
    let reg = DockerRegistry::start(Auth::Htpasswd("alice", "redirect-pass-5"));
    Pusher::new(&reg.addr)
        .basic("alice", "redirect-pass-5")
        .image(
            "acme/redir",
            Some("1.0.0"),
            "2026-06-01T00:00:00Z",
            "linux",
            "amd64",
        )
        .await;
    let front = Proxy::start(&reg.addr).await;
    let store = Proxy::start(&reg.addr).await;
    let b64 = base64::engine::general_purpose::STANDARD.encode("alice:redirect-pass-5");
    store.inject_authorization(&format!("Basic {b64}"));
    let dir = tempfile::tempdir().unwrap();
    let c = client(
        &front.addr,
        host(password_file(dir.path(), "redirect-pass-5")),
    );
    let image = repo(&front.addr, "acme/redir");
    // The config blob is served from "elsewhere" by a redirect.
    let manifest: serde_json::Value = serde_json::from_slice(
        &Pusher::new(&reg.addr)
            .basic("alice", "redirect-pass-5")
            .get_manifest("acme/redir", "1.0.0")
            .await,
    )
    .unwrap();
    let config = manifest["config"]["digest"].as_str().unwrap().to_string();
    front.fault(
        "/blobs/",
        Fault::Redirect(format!(
            "http://{}/v2/acme/redir/blobs/{config}",
            store.addr
        )),
    );
    let facts = c.facts(&image, &tag("1.0.0")).await.unwrap();
    assert_eq!(facts.created, Some("2026-06-01T00:00:00Z".parse().unwrap()));
    let at_store = store.seen();
    assert_eq!(at_store.len(), 1);
    assert_eq!(
        at_store[0].authorization, None,
        "credentials must not follow a redirect to another origin"
    );
    assert!(front.seen().iter().any(|s| s.authorization.is_some()));
}

/// A Docker config `identitytoken` is exchanged at the realm as an OAuth2 refresh token.
#[tokio::test(flavor = "multi_thread")]
async fn identity_tokens_are_exchanged_for_bearer_tokens() {
    let tokens = TokenServer::start("carol", "refresh-me-6").await;
    let reg = DockerRegistry::start(Auth::Token(tokens.realm.clone(), tokens.cert.clone()));
    let push = tokens.push_token("carol", "refresh-me-6", "acme/idt").await;
    Pusher::new(&reg.addr)
        .bearer(&push)
        .image(
            "acme/idt",
            Some("1.0.0"),
            "2026-01-01T00:00:00Z",
            "linux",
            "amd64",
        )
        .await;
    let dir = tempfile::tempdir().unwrap();
    let c = with_docker_config(
        &reg.addr,
        dir.path(),
        &format!(
            r#"{{"auths": {{"{}": {{"identitytoken": "refresh-me-6"}}}}}}"#,
            reg.addr
        ),
    );
    assert_eq!(
        names(&c.tags(&repo(&reg.addr, "acme/idt")).await.unwrap()),
        ["1.0.0"]
    );

    let c = with_docker_config(
        &reg.addr,
        dir.path(),
        &format!(
            r#"{{"auths": {{"{}": {{"identitytoken": "stale"}}}}}}"#,
            reg.addr
        ),
    );
    assert_eq!(
        c.tags(&repo(&reg.addr, "acme/idt")).await.unwrap_err().kind,
        ErrorKind::Auth
    );
}

/// Bodies that are too big or not what the API promises are errors naming the registry and
/// the request, not retried, never a panic.
#[tokio::test(flavor = "multi_thread")]
async fn oversized_and_malformed_bodies_are_refused() {
    let (reg, proxy, c, image) = proxied("acme/bodies").await;
    let huge = format!("{{\"tags\": [\"{}\"]}}", "a".repeat(9 * 1024 * 1024));
    proxy.fault("/tags/list", Fault::Body(huge.into_bytes()));
    let err = c.tags(&image).await.unwrap_err();
    assert_eq!(err.kind, ErrorKind::Invalid);
    assert!(err.to_string().contains("larger than"), "{err}");
    assert_eq!(tag_list_requests(&proxy).len(), 1, "not retried");

    for body in [
        &b"<html>maintenance</html>"[..],
        br#"{"tags": "1.0.0"}"#,
        br#"{"tags": [1, 2]}"#,
    ] {
        proxy.clear();
        c.new_pass().await;
        proxy.fault("/tags/list", Fault::Body(body.to_vec()));
        let err = c.tags(&image).await.unwrap_err();
        assert_eq!(err.kind, ErrorKind::Invalid, "{err}");
        assert!(
            err.to_string().contains(&format!(
                "registry {}: listing tags of acme/bodies",
                proxy.addr
            )),
            "{err}"
        );
    }

    // A manifest read by tag (nothing about the tag cached yet) that is not one.
    proxy.clear();
    proxy.fault(
        "/manifests/1.0.0",
        Fault::Body(b"{\"not\": \"the manifest\"}".to_vec()),
    );
    let err = c.facts(&image, &tag("1.0.0")).await.unwrap_err();
    assert_eq!(err.kind, ErrorKind::Invalid, "{err}");
    assert!(err.to_string().contains("the API promises"), "{err}");

    // A manifest fetched by digest (the tag was resolved before, and re-pushed since)
    // that is not the content of that digest.
    proxy.clear();
    c.new_pass().await;
    c.facts(&image, &tag("1.0.0")).await.unwrap();
    Pusher::new(&reg.addr)
        .image(
            "acme/bodies",
            Some("1.0.0"),
            "2026-02-01T00:00:00Z",
            "linux",
            "amd64",
        )
        .await;
    c.new_pass().await;
    proxy.fault(
        "/manifests/sha256:",
        Fault::Body(b"{\"not\": \"the manifest\"}".to_vec()),
    );
    let err = c.facts(&image, &tag("1.0.0")).await.unwrap_err();
    assert_eq!(err.kind, ErrorKind::Invalid, "{err}");
    assert!(
        err.to_string().contains("does not match its digest"),
        "{err}"
    );
}

/// Image metadata cached on disk by digest serves the next process without fetching.
#[tokio::test(flavor = "multi_thread")]
async fn metadata_cached_on_disk_serves_the_next_run() {
    let (_reg, proxy, _, image) = proxied("acme/cached").await;
    let cache = tempfile::tempdir().unwrap();
    let first = client(&proxy.addr, host(CredentialSource::default())).with_cache_dir(cache.path());
    let facts = first.facts(&image, &tag("1.0.0")).await.unwrap();
    // Nothing known of the tag: its manifest is read by tag (no HEAD first), then its
    // config: two requests, not three.
    let methods: Vec<String> = proxy
        .seen()
        .iter()
        .map(|s| {
            format!(
                "{} {}",
                s.method,
                s.target.split("sha256:").next().unwrap_or_default()
            )
        })
        .collect();
    assert_eq!(
        methods,
        [
            "GET /v2/acme/cached/manifests/1.0.0",
            "GET /v2/acme/cached/blobs/"
        ],
        "a fresh cache reads a tag's manifest by tag"
    );
    proxy.clear();
    let second =
        client(&proxy.addr, host(CredentialSource::default())).with_cache_dir(cache.path());
    assert_eq!(second.facts(&image, &tag("1.0.0")).await.unwrap(), facts);
    let seen: Vec<String> = proxy
        .seen()
        .iter()
        .map(|s| format!("{} {}", s.method, s.target))
        .collect();
    assert_eq!(
        seen,
        ["HEAD /v2/acme/cached/manifests/1.0.0".to_string()],
        "only the tag is resolved again"
    );
}

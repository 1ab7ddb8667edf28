//! Incoming webhooks, `POST /webhooks/<type>`: a registry telling of a push, or the forge
//! telling of a push to the GitOps repository. Each request is bounded in size, checked
//! against its receiver's secret the way its sender signs ([`auth`]; what the head can
//! settle before the body is read), refused when its delivery was seen before, read for hints
//! ([`payload`]), and — when a promotion watches what it names — rings the worker's bell for
//! a pass. It never decides or writes anything itself: the pass lists the tags from the
//! registry, so a webhook cannot make tagpromoter write a tag the registry does not have.

pub mod auth;
pub mod payload;

use std::sync::Arc;

use axum::body::{Body, Bytes};
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde_json::json;

use super::Shared;
use crate::engine::Scope;
use crate::rules::ReceiverKind;
use payload::Hint;

/// The largest body accepted: registries' events are a few KiB, and GitHub's push events
/// (at most 20 commits) stay well below.
pub const BODY_LIMIT: usize = 256 << 10;

/// How long a body may take to arrive.
pub const BODY_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);

/// Bodies read at once: with [`BODY_LIMIT`], what a flood of signed-looking requests can
/// make the worker hold. More wait up to [`BODY_TIMEOUT`], then are told to retry.
const BODIES_AT_ONCE: usize = 16;

static READING: tokio::sync::Semaphore = tokio::sync::Semaphore::const_new(BODIES_AT_ONCE);

/// The query string: Docker Hub and Quay present the secret there.
#[derive(Debug, Deserialize)]
pub struct TokenQuery {
    token: Option<String>,
}

/// `POST /webhooks/{receiver}`. Everything the method, path and headers can settle (the
/// type, whether its receiver is on, a secret sent as such) is settled before a byte of the
/// body is read; a body is read only up to [`BODY_LIMIT`], within [`BODY_TIMEOUT`], a few at
/// a time.
pub async fn receive(
    State(shared): State<Arc<Shared>>,
    Path(name): Path<String>,
    Query(query): Query<TokenQuery>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let Some(kind) = ReceiverKind::parse(&name) else {
        return answer(
            StatusCode::NOT_FOUND,
            format!("there is no receiver type {name:?}"),
        );
    };
    let watching = shared.watching();
    let Some(receiver) = watching.receiver(kind) else {
        return answer(
            StatusCode::NOT_FOUND,
            format!(
                "the {name} receiver is not enabled; add {{ type: {name}, secretFile: FILE }} to Settings.receivers"
            ),
        );
    };
    let count = |result: &str| shared.metrics.webhooks.received(kind.as_str(), result);
    let secret = match crate::secret::read(&receiver.secret_file).and_then(|s| {
        if s.is_empty() {
            Err(format!("{} is empty", receiver.secret_file.display()))
        } else {
            Ok(s)
        }
    }) {
        Ok(s) => s,
        Err(why) => {
            count("error");
            tracing::error!(
                receiver = kind.as_str(),
                "webhook not checked: receivers[].secretFile: {why}"
            );
            return answer(
                StatusCode::INTERNAL_SERVER_ERROR,
                "the receiver's secret cannot be read; see the worker's log".into(),
            );
        }
    };
    let refused = |refusal: auth::Refusal| {
        count("unauthorized");
        tracing::warn!(receiver = kind.as_str(), why = %refusal, "webhook refused");
        answer(StatusCode::UNAUTHORIZED, format!("refused: {refusal}"))
    };
    if let Err(refusal) =
        auth::check_head(kind, secret.as_bytes(), &headers, query.token.as_deref())
    {
        return refused(refusal);
    }
    let body = match read_body(body).await {
        Ok(body) => body,
        Err((status, why)) => {
            count(if status == StatusCode::PAYLOAD_TOO_LARGE {
                "too-large"
            } else {
                "malformed"
            });
            tracing::warn!(receiver = kind.as_str(), %why, "webhook refused");
            return answer(status, why);
        }
    };
    if let Err(refusal) = auth::check(
        kind,
        secret.as_bytes(),
        &headers,
        query.token.as_deref(),
        &body,
    ) {
        return refused(refusal);
    }
    if let Some(id) = payload::delivery(kind, &headers, &body)
        && !shared.first_delivery(kind, &id)
    {
        count("replayed");
        tracing::warn!(receiver = kind.as_str(), delivery = %id, "webhook delivery seen before; no pass");
        return (
            StatusCode::OK,
            axum::Json(json!({ "pass": false, "seen": id })),
        )
            .into_response();
    }
    let hints = match payload::hints(kind, &headers, &body) {
        Ok(h) => h,
        Err(why) => {
            count("malformed");
            tracing::warn!(receiver = kind.as_str(), %why, "webhook not understood");
            return answer(
                StatusCode::BAD_REQUEST,
                format!("not a {name} payload: {why}"),
            );
        }
    };
    // A pass over the promotions watching the images named; over everything when the
    // GitOps branch moved (a merged pull request, a person's rollback).
    let mut scope: Option<Scope> = None;
    let (mut watched, mut other) = (Vec::new(), Vec::new());
    for hint in &hints {
        match watching.scope_of(hint) {
            Some(c) => {
                scope = Some(match scope.take() {
                    Some(s) => s.union(c),
                    None => c,
                });
                watched.push(describe(hint));
            }
            None => other.push(describe(hint)),
        }
    }
    // In a sharded fleet, the promotions of other shards are theirs: the request goes to
    // each owner as it came (they check it as we did), once — a forwarded one stops here.
    let forwarded = headers.contains_key(FORWARDED);
    let (scope, owners) = match scope {
        Some(scope) => shared.split(scope),
        None => (None, Default::default()),
    };
    let owners: Vec<usize> = if forwarded {
        Vec::new()
    } else {
        owners.into_iter().collect()
    };
    if !owners.is_empty() {
        forward(
            &shared,
            &name,
            query.token.as_deref(),
            &headers,
            &body,
            &owners,
        );
    }
    let Some(scope) = scope else {
        if !owners.is_empty() {
            count("forwarded");
            return (
                StatusCode::ACCEPTED,
                axum::Json(json!({ "pass": false, "forwarded": owners, "watched": watched })),
            )
                .into_response();
        }
        count("ignored");
        tracing::debug!(receiver = kind.as_str(), hints = ?other, "webhook names nothing watched");
        return (
            StatusCode::OK,
            axum::Json(json!({ "pass": false, "ignored": other })),
        )
            .into_response();
    };
    count("accepted");
    tracing::info!(receiver = kind.as_str(), hints = ?watched, %scope, "webhook: a pass is due");
    shared.wake(scope);
    (
        StatusCode::ACCEPTED,
        axum::Json(
            json!({ "pass": true, "watched": watched, "ignored": other, "forwarded": owners }),
        ),
    )
        .into_response()
}

/// The header that marks a request one shard forwarded to another.
const FORWARDED: &str = "x-tagpromoter-forwarded";

/// How long a forward may take; an owner that does not answer passes on its interval.
const FORWARD_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(5);

/// Send the request to each shard in `owners` as it came (headers, query token, body),
/// marked forwarded, without waiting: the sender is answered at once.
fn forward(
    shared: &Shared,
    receiver: &str,
    token: Option<&str>,
    headers: &HeaderMap,
    body: &Bytes,
    owners: &[usize],
) {
    let hop_by_hop = [
        "host",
        "content-length",
        "connection",
        "transfer-encoding",
        "keep-alive",
    ];
    let mut sent = reqwest::header::HeaderMap::new();
    for (k, v) in headers {
        if hop_by_hop.contains(&k.as_str()) {
            continue;
        }
        if let (Ok(k), Ok(v)) = (
            reqwest::header::HeaderName::from_bytes(k.as_str().as_bytes()),
            reqwest::header::HeaderValue::from_bytes(v.as_bytes()),
        ) {
            sent.append(k, v);
        }
    }
    sent.insert(FORWARDED, reqwest::header::HeaderValue::from_static("1"));
    for &owner in owners {
        let Some(peer) = shared.fleet.peer(owner) else {
            tracing::warn!(
                shard = owner,
                "a webhook names promotions of another shard, and --peer-url is not set: they pass on their interval"
            );
            continue;
        };
        let metrics = shared.metrics.clone();
        let (headers, body) = (sent.clone(), body.clone());
        let mut url = format!("{peer}/webhooks/{receiver}");
        if let Some(t) = token {
            url.push_str("?token=");
            url.push_str(&crate::registry::tags::encode_query(t));
        }
        tokio::spawn(async move {
            let sent = async {
                reqwest::Client::builder()
                    .timeout(FORWARD_TIMEOUT)
                    .build()?
                    .post(&url)
                    .headers(headers)
                    .body(body)
                    .send()
                    .await?
                    .error_for_status()
            };
            match sent.await {
                Ok(_) => metrics.webhooks.received("forward", "ok"),
                Err(e) => {
                    metrics.webhooks.received("forward", "failed");
                    // The URL may carry a query token: say only which shard.
                    tracing::warn!(shard = owner, error = %e.without_url(), "forwarding a webhook to its owner failed; it passes on its interval");
                }
            }
        });
    }
}

fn describe(hint: &Hint) -> String {
    match hint {
        Hint::Pushed { host, path, tag } => format!(
            "{}{path}{}",
            host.as_deref().map(|h| format!("{h}/")).unwrap_or_default(),
            tag.as_deref().map(|t| format!(":{t}")).unwrap_or_default()
        ),
        Hint::Branch { repository, branch } => format!("{repository}@{branch}"),
    }
}

/// The body, read a few at a time, bounded in size and time.
async fn read_body(body: Body) -> Result<Bytes, (StatusCode, String)> {
    let busy = || {
        (
            StatusCode::SERVICE_UNAVAILABLE,
            "too many webhooks at once; retry".to_string(),
        )
    };
    let _turn = tokio::time::timeout(BODY_TIMEOUT, READING.acquire())
        .await
        .map_err(|_| busy())?
        .map_err(|_| busy())?;
    match tokio::time::timeout(BODY_TIMEOUT, axum::body::to_bytes(body, BODY_LIMIT)).await {
        Err(_) => Err((
            StatusCode::REQUEST_TIMEOUT,
            format!("the body did not arrive within {}s", BODY_TIMEOUT.as_secs()),
        )),
        Ok(Ok(bytes)) => Ok(bytes),
        Ok(Err(e)) if is_too_large(&e) => Err((
            StatusCode::PAYLOAD_TOO_LARGE,
            format!("the body is larger than {BODY_LIMIT} bytes"),
        )),
        Ok(Err(e)) => Err((
            StatusCode::BAD_REQUEST,
            format!("cannot read the body: {e}"),
        )),
    }
}

/// Whether reading stopped at the size limit.
fn is_too_large(e: &axum::Error) -> bool {
    let mut source: Option<&(dyn std::error::Error + 'static)> = Some(e);
    while let Some(s) = source {
        if s.is::<http_body_util::LengthLimitError>() {
            return true;
        }
        source = s.source();
    }
    false
}

fn answer(status: StatusCode, text: String) -> Response {
    (status, format!("{text}\n")).into_response()
}

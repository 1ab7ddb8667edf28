//! Incoming webhooks, `POST /webhooks/<type>`: a registry telling of a push, or the forge
//! telling of a push to the GitOps repository. Each request is bounded in size, checked
//! against its receiver's secret the way its sender signs ([`auth`]), read for hints
//! ([`payload`]), and — when a promotion watches what it names — rings the worker's bell for
//! a pass. It never decides or writes anything itself: the pass lists the tags from the
//! registry, so a webhook cannot make tagpromoter write a tag the registry does not have.

pub mod auth;
pub mod payload;

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde_json::json;

use super::Shared;
use crate::engine::Scope;
use crate::rules::ReceiverKind;
use payload::Hint;

/// The largest body accepted (GitHub's push events with many commits stay well below).
pub const BODY_LIMIT: usize = 1 << 20;

/// The query string: Docker Hub and Quay present the secret there.
#[derive(Debug, Deserialize)]
pub struct TokenQuery {
    token: Option<String>,
}

/// `POST /webhooks/{receiver}`.
pub async fn receive(
    State(shared): State<Arc<Shared>>,
    Path(name): Path<String>,
    Query(query): Query<TokenQuery>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
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
    let count = |result: &str| shared.metrics.webhook(kind.as_str(), result);
    let body = match body {
        Ok(body) => body,
        Err(rejection) if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE => {
            count("too-large");
            tracing::warn!(
                receiver = kind.as_str(),
                limit = BODY_LIMIT,
                "webhook refused: the body is too large"
            );
            return answer(
                StatusCode::PAYLOAD_TOO_LARGE,
                format!("the body is larger than {BODY_LIMIT} bytes"),
            );
        }
        Err(rejection) => {
            count("malformed");
            return answer(rejection.status(), rejection.body_text());
        }
    };
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
    if let Err(refusal) = auth::check(
        kind,
        secret.as_bytes(),
        &headers,
        query.token.as_deref(),
        &body,
    ) {
        count("unauthorized");
        tracing::warn!(receiver = kind.as_str(), why = %refusal, "webhook refused");
        return answer(StatusCode::UNAUTHORIZED, format!("refused: {refusal}"));
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
    let Some(scope) = scope else {
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
        axum::Json(json!({ "pass": true, "watched": watched, "ignored": other })),
    )
        .into_response()
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

fn answer(status: StatusCode, text: String) -> Response {
    (status, format!("{text}\n")).into_response()
}

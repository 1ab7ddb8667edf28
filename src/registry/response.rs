//! Reading registry responses: bodies within a size limit, transport errors in words
//! (never with the URL, which could carry secrets in a query), `Retry-After`, and the error
//! codes of distribution's error bodies (codes only, never their free text).

use std::time::Duration;

/// Read at most `limit` bytes of a body; `Err((detail, retryable))`.
pub(super) async fn read_limited(
    mut resp: reqwest::Response,
    limit: usize,
) -> Result<Vec<u8>, (String, bool)> {
    if resp.content_length().is_some_and(|n| n > limit as u64) {
        return Err((format!("the response is larger than {limit} bytes"), false));
    }
    let mut body = Vec::new();
    loop {
        match resp.chunk().await {
            Ok(Some(chunk)) => {
                if body.len() + chunk.len() > limit {
                    return Err((format!("the response is larger than {limit} bytes"), false));
                }
                body.extend_from_slice(&chunk);
            }
            Ok(None) => return Ok(body),
            Err(e) => {
                return Err((
                    format!(
                        "reading the response failed: {}",
                        describe_transport_error(&e)
                    ),
                    true,
                ));
            }
        }
    }
}

/// A transport error in words, without the URL (which could carry a query with secrets).
pub(super) fn describe_transport_error(e: &reqwest::Error) -> String {
    if e.is_timeout() {
        "timed out".into()
    } else if e.is_connect() {
        "cannot connect".into()
    } else if e.is_body() || e.is_decode() {
        "the connection broke off in the middle of the response".into()
    } else {
        let mut source: Option<&dyn std::error::Error> = std::error::Error::source(e);
        let mut last = None;
        while let Some(s) = source {
            last = Some(s.to_string());
            source = s.source();
        }
        last.unwrap_or_else(|| "request failed".into())
    }
}

/// `Retry-After`: seconds, or an HTTP date.
pub fn parse_retry_after(value: &str) -> Option<Duration> {
    let value = value.trim();
    if let Ok(secs) = value.parse::<u64>() {
        return Some(Duration::from_secs(secs));
    }
    let when = jiff::fmt::rfc2822::parse(value).ok()?.timestamp();
    let now = jiff::Timestamp::now();
    Some(if when > now {
        Duration::try_from(when.duration_since(now)).unwrap_or_default()
    } else {
        Duration::ZERO
    })
}

/// `: CODE` from a distribution error body (`{"errors":[{"code":"NAME_UNKNOWN"}]}`).
pub(super) fn registry_error_code(body: &[u8]) -> String {
    let Ok(v) = serde_json::from_slice::<serde_json::Value>(body) else {
        return String::new();
    };
    let code = v["errors"][0]["code"].as_str().unwrap_or_default();
    if !code.is_empty()
        && code.len() < 64
        && code.bytes().all(|b| b.is_ascii_uppercase() || b == b'_')
    {
        format!(": {code}")
    } else {
        String::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retry_after_seconds_and_dates() {
        assert_eq!(parse_retry_after("7"), Some(Duration::from_secs(7)));
        assert_eq!(
            parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT"),
            Some(Duration::ZERO)
        );
        let later = jiff::Timestamp::now() + jiff::SignedDuration::from_secs(120);
        let text = jiff::fmt::rfc2822::DateTimePrinter::new()
            .timestamp_to_rfc9110_string(&later)
            .unwrap();
        let d = parse_retry_after(&text).unwrap();
        assert!(
            d > Duration::from_secs(100) && d <= Duration::from_secs(120),
            "{d:?}"
        );
        assert_eq!(parse_retry_after("soon"), None);
    }

    #[test]
    fn error_codes_are_read_but_never_free_text() {
        assert_eq!(
            registry_error_code(br#"{"errors":[{"code":"NAME_UNKNOWN","message":"x"}]}"#),
            ": NAME_UNKNOWN"
        );
        assert_eq!(
            registry_error_code(br#"{"errors":[{"code":"<script>"}]}"#),
            ""
        );
    }
}

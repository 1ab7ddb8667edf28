//! Slack incoming webhooks (and chat tools that take their format): one message per batch
//! of notifications, a line each. What the alert quotes (a hook's message, an error) is
//! escaped as Slack asks, so that it is shown, never read as a mention or a link.

use serde_json::json;

use super::{Batch, Sending, Sink, label, post};
use crate::alert::Event;

/// `&`, `<` and `>` as Slack's control sequences need them escaped.
fn escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

/// A Slack-format webhook.
pub struct Slack {
    http: reqwest::Client,
    url: String,
    name: String,
}

impl Slack {
    /// A Slack webhook at `url` (the URL is a secret: it is never logged).
    pub fn new(http: reqwest::Client, url: &str) -> Self {
        Self {
            http,
            url: url.to_string(),
            name: label("slack", url),
        }
    }
}

impl Sink for Slack {
    fn kind(&self) -> &'static str {
        "slack"
    }

    fn send<'a>(&'a self, batch: &'a Batch) -> Sending<'a> {
        Box::pin(async move {
            if batch.notifications.is_empty() {
                return Ok(());
            }
            let lines: Vec<String> = batch
                .notifications
                .iter()
                .map(|n| {
                    let (mark, word) = match n.event {
                        Event::Firing => (":rotating_light:", "FIRING"),
                        Event::Reminder => (":hourglass:", "STILL FIRING"),
                        Event::Resolved => (":white_check_mark:", "RESOLVED"),
                    };
                    format!(
                        "{mark} *{word}* {} (since {})",
                        escape(&n.alert.summary()),
                        n.alert.since
                    )
                })
                .collect();
            let body = super::redacted(
                serde_json::to_vec(&json!({ "text": lines.join("\n") })).unwrap_or_default(),
            );
            post(&self.http, &self.name, &self.url, body, &[]).await
        })
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn control_sequences_are_shown_not_obeyed() {
        assert_eq!(
            super::escape("<!channel> <https://evil|x> & 1 -> 2"),
            "&lt;!channel&gt; &lt;https://evil|x&gt; &amp; 1 -&gt; 2"
        );
    }
}

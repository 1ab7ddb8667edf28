//! A real headless browser: Debian's `chromium`, driven through `chromedriver`'s WebDriver
//! API (plain HTTP + JSON, so no client crate is needed).

use std::process::{Command, Stdio};
use std::time::Duration;

use serde_json::{Value, json};

use super::{Process, free_port, require, wait_for_http};

/// A chromedriver with one headless Chromium session.
pub struct Browser {
    http: reqwest::Client,
    session: String,
    _profile: tempfile::TempDir,
    _driver: Process,
}

impl Browser {
    /// Start chromedriver and a headless Chromium with a fresh profile, `width`×`height`.
    pub async fn start(width: u32, height: u32) -> Self {
        let chromium = require("chromium");
        let driver = require("chromedriver");
        let port = free_port();
        let child = Command::new(driver)
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("chromedriver starts");
        let driver = Process { child };
        let addr = format!("127.0.0.1:{port}");
        wait_for_http(&addr, "/status");
        let profile = tempfile::tempdir().expect("profile dir");
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(60))
            .build()
            .unwrap();
        let caps = json!({"capabilities": {"alwaysMatch": {
            "browserName": "chrome",
            "goog:chromeOptions": {
                "binary": chromium,
                "args": [
                    "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                    "--disable-component-update", "--no-first-run",
                    format!("--user-data-dir={}", profile.path().display()),
                    format!("--window-size={width},{height}"),
                ],
            },
            "goog:loggingPrefs": {"browser": "ALL"},
        }}});
        let answer = post(&http, &format!("http://{addr}/session"), &caps).await;
        let session = answer["value"]["sessionId"]
            .as_str()
            .unwrap_or_else(|| panic!("no session: {answer}"))
            .to_string();
        Self {
            http,
            session: format!("http://{addr}/session/{session}"),
            _profile: profile,
            _driver: driver,
        }
    }

    async fn call(&self, path: &str, body: Value) -> Value {
        let answer = post(&self.http, &format!("{}/{path}", self.session), &body).await;
        assert!(answer["value"].get("error").is_none(), "{path}: {answer}");
        answer["value"].clone()
    }

    /// Open `url`.
    pub async fn open(&self, url: &str) {
        self.call("url", json!({ "url": url })).await;
    }

    /// Run `script` (a function body) in the page and return what it returns.
    pub async fn eval(&self, script: &str) -> Value {
        self.call("execute/sync", json!({ "script": script, "args": [] }))
            .await
    }

    /// A PNG of the viewport.
    pub async fn screenshot(&self) -> Vec<u8> {
        let answer: Value = serde_json::from_slice(
            &self
                .http
                .get(format!("{}/screenshot", self.session))
                .send()
                .await
                .unwrap()
                .bytes()
                .await
                .unwrap(),
        )
        .unwrap();
        use base64::Engine;
        base64::engine::general_purpose::STANDARD
            .decode(answer["value"].as_str().unwrap_or_default())
            .unwrap()
    }

    /// The console messages since the last call, as (level, message).
    pub async fn console(&self) -> Vec<(String, String)> {
        let value = self.call("se/log", json!({ "type": "browser" })).await;
        value
            .as_array()
            .into_iter()
            .flatten()
            .map(|e| {
                (
                    e["level"].as_str().unwrap_or_default().to_string(),
                    e["message"].as_str().unwrap_or_default().to_string(),
                )
            })
            .collect()
    }
}

async fn post(http: &reqwest::Client, url: &str, body: &Value) -> Value {
    let bytes = http
        .post(url)
        .header("content-type", "application/json")
        .body(serde_json::to_vec(body).unwrap())
        .send()
        .await
        .unwrap()
        .bytes()
        .await
        .unwrap();
    serde_json::from_slice(&bytes).unwrap()
}

impl Drop for Browser {
    fn drop(&mut self) {
        // Close the session so Chromium exits before its driver is killed.
        use std::io::{Read, Write};
        let Some(rest) = self.session.strip_prefix("http://") else {
            return;
        };
        let Some((addr, path)) = rest.split_once('/') else {
            return;
        };
        if let Ok(mut s) = std::net::TcpStream::connect(addr) {
            let _ = s.set_read_timeout(Some(Duration::from_secs(10)));
            let _ = write!(
                s,
                "DELETE /{path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\nContent-Length: 0\r\n\r\n"
            );
            let _ = s.read_to_end(&mut Vec::new());
        }
    }
}

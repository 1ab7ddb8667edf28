//! A webhook receiver for tests: an HTTP server on 127.0.0.1 that records every request
//! (path, headers, body) and answers 200.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

/// One request received.
#[derive(Debug, Clone)]
pub struct Received {
    /// The path.
    pub path: String,
    /// Headers, lowercase names.
    pub headers: HashMap<String, String>,
    /// The body.
    pub body: Vec<u8>,
}

impl Received {
    /// The body as JSON.
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body).expect("a JSON body")
    }
}

/// A running receiver.
pub struct Receiver {
    /// `http://127.0.0.1:PORT`.
    pub url: String,
    seen: Arc<Mutex<Vec<Received>>>,
}

impl Receiver {
    /// Start it on the current runtime.
    pub async fn start() -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let seen: Arc<Mutex<Vec<Received>>> = Arc::default();
        let record = Arc::clone(&seen);
        let app = axum::Router::new().fallback(
            move |uri: axum::http::Uri, headers: axum::http::HeaderMap, body: axum::body::Bytes| {
                let record = Arc::clone(&record);
                async move {
                    let headers = headers
                        .iter()
                        .map(|(k, v)| {
                            (
                                k.as_str().to_string(),
                                v.to_str().unwrap_or_default().to_string(),
                            )
                        })
                        .collect();
                    record.lock().unwrap().push(Received {
                        path: uri.path().to_string(),
                        headers,
                        body: body.to_vec(),
                    });
                    "ok"
                }
            },
        );
        tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Self { url, seen }
    }

    /// Everything received so far.
    pub fn seen(&self) -> Vec<Received> {
        self.seen.lock().unwrap().clone()
    }

    /// Wait (up to `secs`) until `pred` holds for what was received; what was received.
    pub async fn wait_for(&self, secs: u64, pred: impl Fn(&[Received]) -> bool) -> Vec<Received> {
        for _ in 0..secs * 20 {
            let seen = self.seen();
            if pred(&seen) {
                return seen;
            }
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
        panic!(
            "the receiver never got what was expected; it got: {:#?}",
            self.seen()
        );
    }
}

//! A worker run in the test's own process (`tagpromoter::worker::Worker` with its server),
//! on a fresh cache, over the rules in a directory, so that a test can read what it shows
//! (`Shared`) while it runs and ring it from outside (webhooks, controllers).

use std::path::Path;
use std::sync::Arc;

use tagpromoter::engine::{Engine, Options};
use tagpromoter::server::Shared;

/// A worker running in process, and its server on 127.0.0.1.
pub struct InProcessWorker {
    /// What it shows: the last pass's report, the rules.
    pub shared: Arc<Shared>,
    /// Its server: `http://127.0.0.1:PORT`.
    pub base: String,
    stop: tokio::sync::watch::Sender<bool>,
    worker: tokio::task::JoinHandle<()>,
    server: tokio::task::JoinHandle<std::io::Result<()>>,
    _cache: tempfile::TempDir,
}

impl InProcessWorker {
    /// Start a worker over the rules in `rules_dir` (read again before every pass).
    pub async fn start(rules_dir: &Path) -> Self {
        let rules = tagpromoter::rules::load_dir(rules_dir).expect("valid rules");
        let cache = tempfile::tempdir().expect("a cache directory");
        let metrics = Arc::new(tagpromoter::metrics::Metrics::new());
        let engine = Engine::open_with_metrics(
            rules.clone(),
            cache.path(),
            Options::default(),
            Arc::clone(&metrics),
        )
        .await
        .expect("the engine opens");
        let alerting = tagpromoter::alert::Alerting::start(
            &rules.settings,
            cache.path(),
            metrics.alerts.clone(),
        )
        .expect("alerting starts");
        let shared = Arc::new(Shared::new(Arc::clone(&metrics), &rules));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let base = format!("http://{}", listener.local_addr().expect("an address"));
        let (stop, stopped) = tokio::sync::watch::channel(false);
        let mut server_stop = stopped.clone();
        let server = tokio::spawn(tagpromoter::server::serve(
            listener,
            Arc::clone(&shared),
            async move {
                let _ = server_stop.wait_for(|s| *s).await;
            },
        ));
        let worker = tokio::spawn(
            tagpromoter::worker::Worker {
                engine,
                alerting,
                shared: Arc::clone(&shared),
                rules_dir: Some(rules_dir.to_path_buf()),
                shard: tagpromoter::shard::Shard::ALONE,
            }
            .run(stopped),
        );
        Self {
            shared,
            base,
            stop,
            worker,
            server,
            _cache: cache,
        }
    }

    /// Wait up to `seconds` for the last pass's report to satisfy `done`; panics saying
    /// `what` did not happen.
    pub async fn wait_for(
        &self,
        seconds: u64,
        what: &str,
        done: impl Fn(&tagpromoter::engine::PassReport) -> bool,
    ) -> Arc<tagpromoter::engine::PassReport> {
        let by = tokio::time::Instant::now() + std::time::Duration::from_secs(seconds);
        loop {
            if let Some((report, _)) = self.shared.last()
                && done(&report)
            {
                return report;
            }
            assert!(tokio::time::Instant::now() < by, "{what} within {seconds}s");
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
    }

    /// Stop it after the pass in flight, and its server.
    pub async fn stop(self) {
        let _ = self.stop.send(true);
        self.worker.await.expect("the worker ends");
        self.server
            .await
            .expect("the server ends")
            .expect("the server served");
    }
}

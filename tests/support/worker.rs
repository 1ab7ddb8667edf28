//! `tagpromoter run` itself, as a server the tests and benchmarks talk to: started in a
//! subprocess on a port, ready once its first pass finished, its log kept in a file.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use super::sigterm;

/// A `tagpromoter run` in a subprocess, its log kept in a file.
pub struct Worker {
    child: Child,
    /// `http://127.0.0.1:PORT`.
    pub base: String,
    log: PathBuf,
}

impl Worker {
    /// Start `tagpromoter run` on `port` and wait until its first pass finished.
    pub async fn start(rules: &Path, cache: &Path, port: u16, extra: &[&str]) -> Self {
        Self::start_with(rules, cache, port, extra, &[]).await
    }

    /// [`Worker::start`] with `run`'s own arguments `run_args` after `--listen`.
    pub async fn start_with(
        rules: &Path,
        cache: &Path,
        port: u16,
        extra: &[&str],
        run_args: &[&str],
    ) -> Self {
        let log = cache.join("worker.log");
        let child = Command::new(env!("CARGO_BIN_EXE_tagpromoter"))
            .arg("--rules")
            .arg(rules)
            .arg("--cache-dir")
            .arg(cache)
            .args(extra)
            .args(["run", "--listen", &format!("127.0.0.1:{port}")])
            .args(run_args)
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .unwrap();
        let worker = Self {
            child,
            base: format!("http://127.0.0.1:{port}"),
            log,
        };
        let started = Instant::now();
        while http()
            .get(format!("{}/readyz", worker.base))
            .send()
            .await
            .map(|r| r.status().as_u16())
            .ok()
            != Some(200)
        {
            assert!(
                started.elapsed() < Duration::from_secs(60),
                "no pass within 60s:\n{}",
                worker.log()
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        worker
    }

    /// What it logged so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// The value of the series `name` (exact text before the value), summed over its lines.
    pub async fn metric(&self, name: &str) -> f64 {
        let text = http()
            .get(format!("{}/metrics", self.base))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        text.lines()
            .filter(|l| l.starts_with(name))
            .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
            .sum()
    }

    /// Its memory from `/proc`: (resident now, peak resident), in KiB.
    pub fn memory_kib(&self) -> (u64, u64) {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.child.id()))
            .unwrap_or_default();
        let field = |name: &str| {
            status
                .lines()
                .find_map(|l| l.strip_prefix(name))
                .and_then(|v| v.split_whitespace().next()?.parse().ok())
                .unwrap_or(0)
        };
        (field("VmRSS:"), field("VmHWM:"))
    }

    /// Passes finished so far.
    pub async fn passes(&self) -> f64 {
        self.metric("tagpromoter_passes_total{").await
    }

    /// SIGTERM, and its exit status must be 0.
    pub fn stop(mut self) -> String {
        sigterm(&self.child);
        let status = self.child.wait().unwrap();
        assert!(status.success(), "run exited {status}:\n{}", self.log());
        self.log()
    }
}

impl Drop for Worker {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn http() -> reqwest::Client {
    reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()
        .unwrap()
}

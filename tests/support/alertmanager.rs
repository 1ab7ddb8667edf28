//! Debian's `prometheus-alertmanager` on 127.0.0.1, notifying a webhook receiver (TESTBED.md).

use std::process::{Command, Stdio};

use super::{Process, free_port, require, wait_for_http};

/// A running Alertmanager.
pub struct Alertmanager {
    /// `http://127.0.0.1:PORT`.
    pub url: String,
    _dir: tempfile::TempDir,
    _process: Process,
}

impl Alertmanager {
    /// Start one that sends every group (resolved ones too) to `webhook` at once.
    pub fn start(webhook: &str) -> Self {
        let bin = require("prometheus-alertmanager");
        let dir = tempfile::tempdir().expect("temp dir");
        let port = free_port();
        let config = dir.path().join("am.yml");
        std::fs::write(
            &config,
            format!(
                "route: {{receiver: hook, group_by: [alertname, promotion, environment], group_wait: 0s, group_interval: 1s, repeat_interval: 1h}}\nreceivers:\n  - name: hook\n    webhook_configs: [{{url: '{webhook}', send_resolved: true}}]\n"
            ),
        )
        .expect("write config");
        let log = std::fs::File::create(dir.path().join("am.log")).expect("log");
        let child = Command::new(bin)
            .arg(format!("--config.file={}", config.display()))
            .arg(format!(
                "--storage.path={}",
                dir.path().join("data").display()
            ))
            .arg(format!("--web.listen-address=127.0.0.1:{port}"))
            .arg("--cluster.listen-address=")
            .arg("--log.level=warn")
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("log"))
            .stderr(log)
            .spawn()
            .expect("alertmanager starts");
        let process = Process { child };
        let addr = format!("127.0.0.1:{port}");
        wait_for_http(&addr, "/-/ready");
        Self {
            url: format!("http://{addr}"),
            _dir: dir,
            _process: process,
        }
    }
}

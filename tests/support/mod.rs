//! Real servers for integration tests, started on 127.0.0.1 by the tests themselves:
//! Debian's `docker-registry` (distribution 2.8), a bearer-token server, and a
//! fault-injecting HTTP proxy. A missing server binary fails the test (never skips it).

#![allow(dead_code)]

pub mod alertmanager;
pub mod browser;
pub mod forge;
pub mod git;
pub mod http;
pub mod in_process;
pub mod kube_api;
pub mod kustomize_cases;
pub mod oci;
pub mod proxy;
pub mod receiver;
pub mod token;
pub mod worker;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

/// What `kubectl kustomize DIR` builds (kubectl carries kustomize v5); panics with
/// kustomize's own words when the build fails, or when kubectl is missing.
pub fn kustomize_build(dir: &Path) -> String {
    let out = Command::new(require("kubectl"))
        .arg("kustomize")
        .arg(dir)
        .output()
        .expect("kubectl runs");
    assert!(
        out.status.success(),
        "kubectl kustomize {}: {}",
        dir.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).expect("the build is UTF-8")
}

/// The path of a required program; panics with what to install when it is missing.
pub fn require(program: &str) -> PathBuf {
    for dir in std::env::var("PATH")
        .unwrap_or_default()
        .split(':')
        .chain(["/usr/sbin", "/usr/bin"])
    {
        let p = Path::new(dir).join(program);
        if p.is_file() {
            return p;
        }
    }
    panic!(
        "{program} is required by this test and is not installed; run .ci/run or see the README's set-up"
    );
}

/// A free TCP port on 127.0.0.1.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

/// A child process killed when dropped: a test that fails part-way leaves no process
/// behind.
pub struct Process {
    child: Child,
}

impl Process {
    /// Start `command`, to be killed when dropped.
    pub fn spawn(command: &mut Command) -> Self {
        Self {
            child: command.spawn().expect("the command starts"),
        }
    }
}

impl std::ops::Deref for Process {
    type Target = Child;

    fn deref(&self) -> &Child {
        &self.child
    }
}

impl std::ops::DerefMut for Process {
    fn deref_mut(&mut self) -> &mut Child {
        &mut self.child
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A server that accepts connections and never answers: a hung registry.
pub struct HungServer {
    /// `127.0.0.1:PORT`.
    pub addr: String,
}

impl HungServer {
    /// Start it; its connections stay open, unanswered, for the life of the test process.
    pub fn start() -> Self {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        let addr = listener.local_addr().expect("address").to_string();
        std::thread::spawn(move || {
            let mut held = Vec::new();
            for stream in listener.incoming().flatten() {
                held.push(stream);
            }
        });
        Self { addr }
    }
}

/// Send SIGTERM to `child` (as Kubernetes does to stop a pod).
pub fn sigterm(child: &Child) {
    let status = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .expect("kill runs");
    assert!(status.success(), "kill -TERM {} failed", child.id());
}

/// How the test registry authenticates.
pub enum Auth {
    /// Anonymous.
    None,
    /// htpasswd basic auth with this user and password.
    Htpasswd(&'static str, &'static str),
    /// Bearer tokens from this token server.
    Token(String, PathBuf),
}

/// A running `docker-registry` with in-memory storage.
pub struct DockerRegistry {
    /// `127.0.0.1:PORT`.
    pub addr: String,
    _dir: tempfile::TempDir,
    _process: Process,
}

impl DockerRegistry {
    /// The CPU time the registry process has used so far, in seconds (from
    /// `/proc/PID/stat`, whose times are in USER_HZ, 100 per second on Linux): what serving
    /// a run cost the registry itself.
    pub fn cpu_seconds(&self) -> f64 {
        let stat = std::fs::read_to_string(format!("/proc/{}/stat", self._process.child.id()))
            .expect("the registry is running");
        // The fields after the command name, which is in parentheses and may hold spaces.
        let fields: Vec<&str> = stat
            .rsplit_once(')')
            .map_or("", |(_, rest)| rest)
            .split_whitespace()
            .collect();
        let ticks = |i: usize| {
            fields
                .get(i)
                .and_then(|f| f.parse::<u64>().ok())
                .unwrap_or(0)
        };
        // utime and stime are fields 14 and 15 of the line, 12 and 13 after the name.
        (ticks(11) + ticks(12)) as f64 / 100.0
    }

    /// Start a registry and wait until it answers.
    pub fn start(auth: Auth) -> Self {
        Self::launch(auth, "")
    }

    /// Start a registry that notifies `url` of every push, presenting `Authorization:
    /// Bearer <secret>` (distribution's endpoint `headers`), as TESTBED.md describes.
    pub fn notifying(url: &str, secret: &str) -> Self {
        Self::launch(
            Auth::None,
            &format!(
                "notifications:\n  endpoints:\n    - {{name: tp, url: '{url}', timeout: 2s, threshold: 3, backoff: 1s, headers: {{Authorization: ['Bearer {secret}']}}}}\n"
            ),
        )
    }

    fn launch(auth: Auth, extra_yaml: &str) -> Self {
        let bin = require("docker-registry");
        let dir = tempfile::tempdir().expect("temp dir");
        let port = free_port();
        let addr = format!("127.0.0.1:{port}");
        let auth_yaml = match &auth {
            Auth::None => String::new(),
            Auth::Htpasswd(user, pass) => {
                let file = dir.path().join("htpasswd");
                let status = Command::new(require("htpasswd"))
                    .args(["-Bbc"])
                    .arg(&file)
                    .args([user, pass])
                    .stdout(Stdio::null())
                    .stderr(Stdio::null())
                    .status()
                    .expect("htpasswd runs");
                assert!(status.success());
                format!(
                    "auth: {{htpasswd: {{realm: test, path: {}}}}}\n",
                    file.display()
                )
            }
            Auth::Token(realm, cert) => format!(
                "auth: {{token: {{realm: \"{realm}\", service: test-registry, issuer: test-issuer, rootcertbundle: {}}}}}\n",
                cert.display()
            ),
        };
        let config = format!(
            "version: 0.1\nlog: {{level: warn, accesslog: {{disabled: true}}}}\nstorage: {{inmemory: {{}}, delete: {{enabled: true}}, maintenance: {{uploadpurging: {{enabled: false}}}}}}\nhttp: {{addr: {addr}, secret: fixed-test-secret}}\n{auth_yaml}{extra_yaml}"
        );
        let config_path = dir.path().join("config.yml");
        std::fs::write(&config_path, config).expect("write config");
        let log = std::fs::File::create(dir.path().join("registry.log")).expect("log file");
        let child = Command::new(bin)
            .arg("serve")
            .arg(&config_path)
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("log"))
            .stderr(log)
            .spawn()
            .expect("docker-registry starts");
        let process = Process { child };
        wait_for_http(&addr, "/v2/");
        Self {
            addr,
            _dir: dir,
            _process: process,
        }
    }
}

/// Poll until `path` on `addr` answers any HTTP status.
pub fn wait_for_http(addr: &str, path: &str) {
    use std::io::{Read, Write};
    for _ in 0..200 {
        if let Ok(mut s) = std::net::TcpStream::connect(addr) {
            let _ = s.set_read_timeout(Some(Duration::from_millis(500)));
            let _ = write!(
                s,
                "GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
            );
            let mut buf = [0u8; 12];
            if s.read_exact(&mut buf).is_ok() && buf.starts_with(b"HTTP/1.") {
                return;
            }
        }
        std::thread::sleep(Duration::from_millis(25));
    }
    panic!("no HTTP server came up on {addr}");
}

/// A number from the environment (benchmark sizes), or `default`.
pub fn env(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// This process's peak resident memory, in KiB (`VmHWM`).
pub fn peak_rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmHWM:"))
                .map(str::to_string)
        })
        .and_then(|l| l.split_whitespace().nth(1).and_then(|n| n.parse().ok()))
        .unwrap_or(0)
}

/// Run the tagpromoter binary with `args` (stderr discarded) and watch its own peak
/// resident memory (`VmHWM` from `/proc`, polled until it exits: not the git processes
/// it starts). Returns its stdout and the peak in KiB.
pub async fn run_watching_memory(args: &[&std::ffi::OsStr]) -> (String, u64) {
    let child = Command::new(env!("CARGO_BIN_EXE_tagpromoter"))
        .args(args)
        .env("TAGPROMOTER_LOG", "error")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("the binary runs");
    let pid = child.id();
    let peak = tokio::task::spawn_blocking(move || {
        let mut peak = 0u64;
        while let Ok(status) = std::fs::read_to_string(format!("/proc/{pid}/status")) {
            if status.contains("State:\tZ") {
                break;
            }
            if let Some(kib) = status
                .lines()
                .find_map(|l| l.strip_prefix("VmHWM:"))
                .and_then(|v| v.split_whitespace().next()?.parse::<u64>().ok())
            {
                peak = peak.max(kib);
            }
            std::thread::sleep(std::time::Duration::from_millis(5));
        }
        peak
    });
    let out = tokio::task::spawn_blocking(move || child.wait_with_output().expect("it exits"))
        .await
        .expect("joined");
    let peak = peak.await.expect("joined");
    (String::from_utf8_lossy(&out.stdout).into_owned(), peak)
}

/// What one run of the tagpromoter binary printed and cost.
pub struct Measured {
    /// Its stdout.
    pub out: String,
    /// Its peak RSS in KiB.
    pub rss_kib: u64,
    /// Its wall time in seconds, from spawn to exit (the measuring wrapper's own start-up
    /// is not in it).
    pub wall: f64,
    /// The CPU time it (and the git processes it ran) used, user and system, in seconds.
    pub cpu: f64,
}

/// Run the tagpromoter binary and measure it (through Python's `getrusage`, so that
/// nothing but python3 is needed).
pub fn run_measured(args: &[&str]) -> Measured {
    let out = std::process::Command::new("python3")
        .args([
            "-c",
            "import resource, subprocess, sys, time\n\
             before = resource.getrusage(resource.RUSAGE_CHILDREN)\n\
             started = time.monotonic()\n\
             r = subprocess.run(sys.argv[1:], stdout=subprocess.PIPE)\n\
             wall = time.monotonic() - started\n\
             sys.stdout.write(r.stdout.decode())\n\
             u = resource.getrusage(resource.RUSAGE_CHILDREN)\n\
             cpu = u.ru_utime + u.ru_stime - before.ru_utime - before.ru_stime\n\
             print(wall, u.ru_maxrss, cpu)",
            env!("CARGO_BIN_EXE_tagpromoter"),
        ])
        .args(args)
        .env("TAGPROMOTER_LOG", "error")
        .output()
        .expect("python3 runs");
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let mut lines: Vec<&str> = text.lines().collect();
    let figures = lines.pop().unwrap_or_default().to_string();
    let mut figures = figures.split_whitespace();
    let wall = figures.next().and_then(|w| w.parse().ok()).unwrap_or(0.0);
    let rss_kib = figures.next().and_then(|r| r.parse().ok()).unwrap_or(0);
    let cpu = figures.next().and_then(|c| c.parse().ok()).unwrap_or(0.0);
    Measured {
        out: lines.join("\n"),
        rss_kib,
        wall,
        cpu,
    }
}

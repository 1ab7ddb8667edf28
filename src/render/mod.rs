//! The real renderer: `kustomize build` (or `kubectl kustomize`) of a directory, and what
//! its output says about an edit ([`images`]).
//!
//! A bump to a Kustomize target is checked twice: against tagpromoter's own model of the
//! image transformer (`crate::manifest::reference`, pure), and — when a renderer is on the
//! machine — against what kustomize itself builds from the environment's directory before
//! and after the edit, so that what the base's containers say (which the kustomization
//! alone does not show) is taken into account.
//!
//! It runs a program and reads its output; it does not know where directories come from
//! (`crate::gitops` exports a commit's tree for it) or decide what to do with a refusal.

pub mod images;

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

pub use crate::rules::RenderMode;

/// Why a directory could not be rendered.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct RenderError(pub String);

/// A renderer found on the machine: the program and the arguments before the directory.
#[derive(Debug, Clone)]
pub struct Renderer {
    program: PathBuf,
    args: Vec<&'static str>,
    timeout: Duration,
    max_output: usize,
}

/// The longest one build may take (a remote base is fetched by kustomize itself).
const TIMEOUT: Duration = Duration::from_secs(60);
/// The most output one build may write; more is refused (a directory that renders more
/// than this is not checked, and says so).
const MAX_OUTPUT: usize = 64 << 20;

impl Renderer {
    /// The renderer `mode` asks for: `kustomize` on the PATH, else `kubectl` (which carries
    /// kustomize); `None` when `mode` is `Never` or neither is found.
    pub fn find(mode: RenderMode) -> Option<Self> {
        if mode == RenderMode::Never {
            return None;
        }
        let path = std::env::var_os("PATH")?;
        let on_path = |name: &str| {
            std::env::split_paths(&path)
                .map(|dir| dir.join(name))
                .find(|p| p.is_file())
        };
        let (program, args) = match on_path("kustomize") {
            Some(p) => (p, vec!["build"]),
            None => (on_path("kubectl")?, vec!["kustomize"]),
        };
        Some(Self {
            program,
            args,
            timeout: TIMEOUT,
            max_output: MAX_OUTPUT,
        })
    }

    /// What it is, for messages (`kubectl kustomize`).
    pub fn name(&self) -> String {
        let program = self
            .program
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        format!("{program} {}", self.args.join(" "))
    }

    /// The rendered YAML of the kustomization in `dir`. Runs with an empty environment
    /// (only `PATH`, and `HOME` set to `home`), a time limit and an output limit; blocks.
    pub fn build(&self, dir: &Path, home: &Path) -> Result<String, RenderError> {
        let mut child = Command::new(&self.program)
            .args(&self.args)
            .arg(dir)
            .env_clear()
            .env("PATH", std::env::var_os("PATH").unwrap_or_default())
            .env("HOME", home)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|e| RenderError(format!("cannot run {}: {e}", self.name())))?;
        let limit = self.max_output as u64;
        let read = |pipe: Option<Box<dyn Read + Send>>| {
            std::thread::spawn(move || {
                let mut out = Vec::new();
                if let Some(pipe) = pipe {
                    let _ = pipe.take(limit + 1).read_to_end(&mut out);
                }
                out
            })
        };
        let stdout = read(
            child
                .stdout
                .take()
                .map(|p| Box::new(p) as Box<dyn Read + Send>),
        );
        let stderr = read(
            child
                .stderr
                .take()
                .map(|p| Box::new(p) as Box<dyn Read + Send>),
        );
        let started = Instant::now();
        let status = loop {
            match child.try_wait() {
                Ok(Some(status)) => break status,
                Ok(None) if started.elapsed() > self.timeout => {
                    let _ = child.kill();
                    let _ = child.wait();
                    return Err(RenderError(format!(
                        "{} took longer than {}s",
                        self.name(),
                        self.timeout.as_secs()
                    )));
                }
                Ok(None) => std::thread::sleep(Duration::from_millis(5)),
                Err(e) => return Err(RenderError(format!("waiting for {}: {e}", self.name()))),
            }
        };
        let out = stdout.join().unwrap_or_default();
        let err = stderr.join().unwrap_or_default();
        if out.len() > self.max_output {
            return Err(RenderError(format!(
                "{} wrote more than {} MiB",
                self.name(),
                self.max_output >> 20
            )));
        }
        if !status.success() {
            let err = String::from_utf8_lossy(&err);
            let first = err.lines().find(|l| !l.trim().is_empty()).unwrap_or("");
            let first: String = first.chars().take(300).collect();
            return Err(RenderError(format!("{} failed: {first}", self.name())));
        }
        String::from_utf8(out).map_err(|_| RenderError(format!("{} wrote no UTF-8", self.name())))
    }
}

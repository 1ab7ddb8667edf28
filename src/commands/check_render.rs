//! `tagpromoter check --repo [DIR] --render`: every target bumped on trial, as a pass would
//! bump it — the same bump, edits and checks (`engine::bump`, `Repo::prepare`), Kustomize
//! targets rendered before and after with the renderer — and nothing committed. A target
//! whose bump would be refused is reported at its environment in the rules.
//!
//! A local checkout is committed into a scratch repository first (every file in it, as
//! the directory holds it), so that it is judged by the one mechanism as a branch is.

use std::path::{Path, PathBuf};

use crate::engine::bump;
use crate::gitops::message::Actor;
use crate::gitops::{Outcome, Repo, RepoConfig};
use crate::image::{Digest, Tag};
use crate::manifest;
use crate::rules::{Diagnostic, RenderMode, Rules};

/// The tag written on trial; no registry needs to hold it.
const PROBE: &str = "tagpromoter-check";

/// What the trial bumps found: the problems, and how many targets were rendered.
pub struct Trial {
    /// One per refused bump.
    pub problems: Vec<Diagnostic>,
    /// Kustomize targets the renderer checked.
    pub rendered: usize,
}

/// Bump every target on trial, on each destination's branch (`checkout`: that local
/// checkout instead).
pub fn run(rules: &Rules, cache_dir: &Path, checkout: Option<&Path>) -> Result<Trial, String> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .map_err(|e| format!("cannot start the async runtime: {e}"))?;
    if crate::render::Renderer::find(RenderMode::Always).is_none() {
        return Err(
            "--render needs kustomize or kubectl on the PATH; neither was found".to_string(),
        );
    }
    let scratch = tempfile_dir(cache_dir)?;
    let mut trial = Trial {
        problems: Vec::new(),
        rendered: 0,
    };
    for destination in rules.destinations() {
        let Some(mut config) =
            RepoConfig::for_destination(&rules.settings, &destination, cache_dir)
        else {
            continue;
        };
        config.render = RenderMode::Always;
        if let Some(dir) = checkout {
            config.url = format!("file://{}", commit_checkout(dir, &scratch.0)?.display());
            config.branch = "main".into();
            config.cache_dir = scratch.0.join("cache");
        }
        runtime.block_on(async {
            let repo = Repo::open(config).await.map_err(|e| e.to_string())?;
            let tip = repo.fetch().await.map_err(|e| e.to_string())?;
            for p in &rules.promotions {
                for env in p
                    .environments
                    .iter()
                    .filter(|e| e.destination == destination)
                {
                    let text = repo
                        .read(env.target.file())
                        .ok()
                        .flatten()
                        .unwrap_or_default();
                    let current = manifest::read(&text, &p.manifest_target(env))
                        .ok()
                        .and_then(|c| c.tag);
                    let record = crate::gitops::message::Record {
                        digest: Some(probe_digest()),
                        ..bump::record(
                            &rules.settings,
                            p,
                            env,
                            Some(probe_tag()),
                            Actor::Person("tagpromoter check".into()),
                        )
                    };
                    let b = bump::with_record(p, env, record, current);
                    trial.rendered += b
                        .edits
                        .iter()
                        .filter(|e| matches!(e.target, manifest::Target::Kustomize { .. }))
                        .count();
                    let prepared = repo.prepare(tip, &[b]).await.map_err(|e| e.to_string())?;
                    let why = match prepared.steps.into_iter().next() {
                        Some(Err(Outcome::Failed(e))) => Some(format!("{}: {}", e.step, e.detail)),
                        Some(Err(Outcome::Superseded { found })) => Some(format!(
                            "its targets do not agree (one holds {})",
                            found.as_deref().unwrap_or("nothing")
                        )),
                        _ => None,
                    };
                    if let Some(why) = why {
                        trial.problems.push(Diagnostic {
                            file: p.source.file.clone(),
                            position: Some(env.position),
                            message: format!(
                                "{}/{}: a bump would be refused: {why}",
                                p.name, env.name
                            ),
                        });
                    }
                }
            }
            Ok::<_, String>(())
        })?;
    }
    Ok(trial)
}

fn probe_tag() -> Tag {
    Tag::new(PROBE).unwrap_or_else(|_| unreachable!("the probe is a valid tag"))
}

fn probe_digest() -> Digest {
    use sha2::Digest as _;
    let hex: String = sha2::Sha256::digest(PROBE.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    Digest::new(&format!("sha256:{hex}")).unwrap_or_else(|_| unreachable!("a sha256 digest"))
}

/// A scratch directory under the cache, removed on drop.
struct Scratch(PathBuf);

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn tempfile_dir(cache_dir: &Path) -> Result<Scratch, String> {
    let dir = cache_dir.join(format!("check-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    // Absolute: it is reached through a file:// URL.
    let dir = dir
        .canonicalize()
        .map_err(|e| format!("{}: {e}", dir.display()))?;
    Ok(Scratch(dir))
}

/// Every file of the checkout `dir`, committed on `main` of a new bare repository under
/// `scratch` (the checkout itself is left alone).
fn commit_checkout(dir: &Path, scratch: &Path) -> Result<PathBuf, String> {
    let bare = scratch.join("checkout.git");
    let git = |args: &[&str]| {
        let mut command = std::process::Command::new("git");
        if args[0] != "init" {
            command
                .arg("--git-dir")
                .arg(&bare)
                .arg("--work-tree")
                .arg(dir);
        }
        let out = command
            .args([
                "-c",
                "user.name=tagpromoter",
                "-c",
                "user.email=check@tagpromoter",
            ])
            .args(args)
            .output()
            .map_err(|e| format!("cannot run git: {e}"))?;
        match out.status.success() {
            true => Ok(()),
            false => Err(format!(
                "git {}: {}",
                args.first().unwrap_or(&""),
                String::from_utf8_lossy(&out.stderr).trim()
            )),
        }
    };
    let at = bare.to_string_lossy().into_owned();
    git(&["init", "--quiet", "--bare", "--initial-branch=main", &at])?;
    git(&["add", "--all", "."])?;
    git(&[
        "commit",
        "--quiet",
        "--allow-empty",
        "-m",
        "the checkout, for check --render",
    ])?;
    Ok(bare)
}

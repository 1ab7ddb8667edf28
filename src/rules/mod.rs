//! The rules: what to watch, how to decide, where to write.
//!
//! Owns the model ([`model`]), loading every `*.yaml` of a directory, validation that reports
//! every problem with its position ([`diagnostic`]), and the JSON Schema ([`schema`]). It
//! reads the rules files and nothing else; it never touches registries or the GitOps repo.

pub mod decode;
pub mod diagnostic;
pub mod model;
pub mod schema;

use std::collections::HashMap;
use std::path::{Path, PathBuf};

pub use diagnostic::Diagnostic;
use diagnostic::did_you_mean;
pub use model::*;

use crate::yaml;
use decode::{Decoded, Decoder};

/// The largest rules file read.
const MAX_RULES_FILE: u64 = 1024 * 1024;

/// Load and validate every `*.yaml` file in `dir`. All problems are returned, sorted by file
/// and position.
pub fn load_dir(dir: &Path) -> Result<Rules, Vec<Diagnostic>> {
    let whole = |message: String| {
        vec![Diagnostic {
            file: dir.to_path_buf(),
            position: None,
            message,
        }]
    };
    let entries = std::fs::read_dir(dir).map_err(|e| {
        whole(format!(
            "cannot read the rules directory: {e}; pass --rules DIR or set TAGPROMOTER_RULES"
        ))
    })?;
    let mut files: Vec<PathBuf> = entries
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "yaml") && p.is_file())
        .collect();
    files.sort();
    let mut sources = Vec::new();
    let mut diags = Vec::new();
    for file in files {
        match read_limited(&file) {
            Ok(text) => sources.push((file, text)),
            Err(message) => diags.push(Diagnostic {
                file,
                position: None,
                message,
            }),
        }
    }
    let result = parse_sources(dir, &sources);
    match result {
        Ok(mut rules) if diags.is_empty() => {
            // A relative local path names a repository beside the rules, wherever we run.
            let base = std::path::absolute(dir).unwrap_or_else(|_| dir.to_path_buf());
            let settings = &mut rules.settings;
            let gits = std::iter::once(&mut settings.git)
                .chain(settings.repositories.iter_mut().map(|r| &mut r.git));
            for git in gits {
                if git.url.starts_with("./") || git.url.starts_with("../") {
                    git.url = base.join(&git.url).display().to_string();
                }
            }
            Ok(rules)
        }
        Ok(_) => Err(diags),
        Err(mut more) => {
            diags.append(&mut more);
            diags.sort();
            Err(diags)
        }
    }
}

fn read_limited(file: &Path) -> Result<String, String> {
    let meta = std::fs::metadata(file).map_err(|e| format!("cannot read: {e}"))?;
    if meta.len() > MAX_RULES_FILE {
        return Err(format!(
            "{} bytes is more than the {MAX_RULES_FILE} bytes a rules file may have",
            meta.len()
        ));
    }
    let bytes = std::fs::read(file).map_err(|e| format!("cannot read: {e}"))?;
    String::from_utf8(bytes).map_err(|_| "is not UTF-8 text".to_string())
}

/// What is wrong with where `p`'s environments write: a repository not in the settings, or
/// pull requests on a repository without a forge.
fn destination_problems(settings: &model::Settings, p: &Promotion) -> Vec<Diagnostic> {
    let mut diags = Vec::new();
    let known: Vec<&str> = settings.repositories().map(|(name, _)| name).collect();
    let unknown = |name: &str| {
        format!(
            "repository {name:?} is not in Settings; add it to spec.repositories or use one of: {}",
            known.join(", ")
        )
    };
    if let Some(name) = &p.repository
        && settings.repository(name).is_none()
    {
        diags.push(Diagnostic {
            file: p.source.file.clone(),
            position: Some(p.source.position),
            message: format!("promotion {:?}: {}", p.name, unknown(name)),
        });
        return diags;
    }
    for env in &p.environments {
        let name = env
            .repository
            .as_deref()
            .or(p.repository.as_deref())
            .unwrap_or(model::DEFAULT_REPOSITORY);
        let Some(git) = settings.repository(name) else {
            diags.push(Diagnostic {
                file: p.source.file.clone(),
                position: Some(env.position),
                message: format!("environment {:?}: {}", env.name, unknown(name)),
            });
            continue;
        };
        if let Some(name) = env.verify.as_ref().and_then(|v| v.cluster.as_deref())
            && !settings.clusters.iter().any(|c| c.name == name)
        {
            let known: Vec<&str> = settings.clusters.iter().map(|c| c.name.as_str()).collect();
            let hint = match did_you_mean(name, &known) {
                Some(s) => format!("did you mean `{s}`? "),
                None => String::new(),
            };
            diags.push(Diagnostic {
                file: p.source.file.clone(),
                position: Some(env.position),
                message: format!(
                    "environment {:?}: verify.cluster {name:?} is not in Settings; {hint}add it to spec.clusters (name, kubeconfig), or leave cluster: out to read the cluster the worker runs in",
                    env.name
                ),
            });
        }
        if env.write == WriteMode::PullRequest && git.forge.is_none() {
            let place = if name == model::DEFAULT_REPOSITORY {
                "spec.git.forge".to_string()
            } else {
                format!("a forge to repository {name:?}")
            };
            diags.push(Diagnostic {
                file: p.source.file.clone(),
                position: Some(env.position),
                message: format!(
                    "environment {:?} writes by pull-request, and its repository {name:?} has no forge to open it on; add {place} or use write: push",
                    env.name
                ),
            });
        }
    }
    diags
}

/// Validate rules given as (file name, text) pairs; `dir` names the set in messages about
/// the whole of it (a missing `Settings`). Pure: no I/O.
pub fn parse_sources(dir: &Path, sources: &[(PathBuf, String)]) -> Result<Rules, Vec<Diagnostic>> {
    let mut diags = Vec::new();
    // Every Settings document seen (valid or not), and the valid one.
    let mut settings_seen: Vec<(PathBuf, yaml::Position)> = Vec::new();
    let mut settings: Option<model::Settings> = None;
    // Where each promotion name was first declared (a map: fleets declare thousands).
    let mut names: HashMap<String, (PathBuf, yaml::Position)> = HashMap::new();
    let mut promotions: Vec<Promotion> = Vec::new();
    for (file, text) in sources {
        let docs = match yaml::parse(text) {
            Ok(d) => d,
            Err(e) => {
                diags.push(Diagnostic {
                    file: file.clone(),
                    position: Some(e.position),
                    message: format!("not valid YAML: {}", e.message),
                });
                continue;
            }
        };
        for doc in &docs {
            match Decoder::new(file, doc, &mut diags).document() {
                Decoded::Settings(s, at) => {
                    if let Some((first_file, first_at)) = settings_seen.first() {
                        diags.push(Diagnostic {
                            file: file.clone(),
                            position: Some(at),
                            message: format!(
                                "a second Settings document; there must be exactly one (the first is at {}:{first_at})",
                                first_file.display()
                            ),
                        });
                    } else {
                        settings = s.map(|s| *s);
                    }
                    settings_seen.push((file.clone(), at));
                }
                Decoded::Promotion(name, at, p) => {
                    if let Some(name) = name {
                        if let Some((first_file, first_at)) = names.get(&name) {
                            diags.push(Diagnostic {
                                file: file.clone(),
                                position: Some(at),
                                message: format!(
                                    "promotion {name:?} is declared twice (first at {}:{first_at})",
                                    first_file.display()
                                ),
                            });
                        } else {
                            names.insert(name, (file.clone(), at));
                        }
                    }
                    promotions.extend(p.map(|p| *p));
                }
                Decoded::Invalid => {}
            }
        }
    }
    if settings_seen.is_empty() {
        diags.push(Diagnostic {
            file: dir.to_path_buf(),
            position: None,
            message: "no Settings document in any *.yaml file here; add one (kind: Settings) with at least spec.git.url".into(),
        });
    }
    if let Some(settings) = &settings {
        for p in &promotions {
            diags.extend(destination_problems(settings, p));
        }
    }
    diags.sort();
    diags.dedup();
    if let Some(settings) = &settings {
        for p in &mut promotions {
            let resolved: Vec<model::Destination> = p
                .environments
                .iter()
                .map(|env| model::Destination::of(settings, p, env))
                .collect();
            for (env, d) in p.environments.iter_mut().zip(resolved) {
                env.destination = d;
            }
        }
    }
    match settings {
        Some(settings) if diags.is_empty() => Ok(Rules {
            settings,
            promotions,
        }),
        _ => Err(diags),
    }
}

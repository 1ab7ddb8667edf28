//! The rules: what to watch, how to decide, where to write.
//!
//! Owns the model ([`model`]), loading every `*.yaml` of a directory, validation that reports
//! every problem with its position ([`diagnostic`]), and the JSON Schema ([`schema`]). It
//! reads the rules files and nothing else; it never touches registries or the GitOps repo.

pub mod decode;
pub mod diagnostic;
pub mod model;
pub mod schema;

use std::path::{Path, PathBuf};

pub use diagnostic::Diagnostic;
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
            let url = &rules.settings.git.url;
            if url.starts_with("./") || url.starts_with("../") {
                let base = std::path::absolute(dir).unwrap_or_else(|_| dir.to_path_buf());
                rules.settings.git.url = base.join(url).display().to_string();
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

/// Validate rules given as (file name, text) pairs; `dir` names the set in messages about
/// the whole of it (a missing `Settings`). Pure: no I/O.
pub fn parse_sources(dir: &Path, sources: &[(PathBuf, String)]) -> Result<Rules, Vec<Diagnostic>> {
    let mut diags = Vec::new();
    // Every Settings document seen (valid or not), and the valid one.
    let mut settings_seen: Vec<(PathBuf, yaml::Position)> = Vec::new();
    let mut settings: Option<model::Settings> = None;
    let mut names: Vec<(String, PathBuf, yaml::Position)> = Vec::new();
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
                        if let Some((_, first_file, first_at)) =
                            names.iter().find(|(n, _, _)| *n == name)
                        {
                            diags.push(Diagnostic {
                                file: file.clone(),
                                position: Some(at),
                                message: format!(
                                    "promotion {name:?} is declared twice (first at {}:{first_at})",
                                    first_file.display()
                                ),
                            });
                        }
                        names.push((name, file.clone(), at));
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
    let forge = settings.as_ref().map(|s| s.git.forge.is_some());
    for p in &promotions {
        for env in &p.environments {
            if env.write == WriteMode::PullRequest && forge == Some(false) {
                diags.push(Diagnostic {
                    file: p.source.file.clone(),
                    position: Some(env.position),
                    message: format!(
                        "environment {:?} writes by pull-request, and Settings has no git.forge to open it on; add spec.git.forge or use write: push",
                        env.name
                    ),
                });
            }
        }
    }
    diags.sort();
    diags.dedup();
    match settings {
        Some(settings) if diags.is_empty() => Ok(Rules {
            settings,
            promotions,
        }),
        _ => Err(diags),
    }
}

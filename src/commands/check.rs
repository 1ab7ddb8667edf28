//! `tagpromoter check [--repo [DIR]]`: validate the rules and, with `--repo`, that every
//! target file exists in the GitOps repository it writes to (each repository and branch
//! fetched; or one local checkout) and holds the value the target names.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Component, Path, PathBuf};
use std::process::ExitCode;

use crate::cli::{CheckArgs, Cli};
use crate::gitops::{Repo, RepoConfig};
use crate::manifest;
use crate::rules::{self, Destination, Diagnostic, Rules};

use super::EXIT_FAILED;

/// Print "valid" with a summary (exit 0), or every problem (exit 2).
pub fn run(cli: &Cli, args: &CheckArgs) -> ExitCode {
    let rules = match rules::load_dir(&cli.rules) {
        Ok(r) => r,
        Err(diags) => return super::report_invalid(cli, &diags),
    };
    let refused = kubeconfig_refusals(&rules);
    if !refused.is_empty() {
        return super::report_invalid(cli, &refused);
    }
    let mut checked = String::new();
    if let Some(repo) = &args.repo {
        let destinations = rules.destinations();
        let files = match repo {
            None => remote_files(cli, &rules),
            Some(dir) if !dir.is_dir() => Err(format!(
                "{} is not a directory; give the root of a checkout of the GitOps repository, or no value to check the branch of Settings.git",
                dir.display()
            )),
            Some(_) if destinations.len() > 1 => Err(format!(
                "--repo DIR checks one checkout, and these rules write to {} repositories and branches ({}); give --repo no value to fetch and check each",
                destinations.len(),
                destinations
                    .iter()
                    .map(ToString::to_string)
                    .collect::<Vec<_>>()
                    .join(", ")
            )),
            Some(dir) => Ok(destinations
                .into_iter()
                .map(|d| (d, local_files(dir, &rules)))
                .collect()),
        };
        let files = match files {
            Ok(f) => f,
            Err(message) => {
                let _ = writeln!(std::io::stderr(), "{message}");
                return ExitCode::from(EXIT_FAILED);
            }
        };
        let problems = check_targets(&rules, &files);
        if !problems.is_empty() {
            return super::report_invalid(cli, &problems);
        }
        let places: Vec<&str> = files.values().map(|f| f.place.as_str()).collect();
        checked = match places.is_empty() {
            true => "; no targets to look for".to_string(),
            false => format!("; every target found in {}", places.join(", ")),
        };
        if args.render {
            let checkout = repo.as_deref();
            match super::check_render::run(&rules, &cli.cache_dir(), checkout) {
                Ok(trial) if trial.problems.is_empty() => {
                    checked.push_str(&format!(
                        "; every target bumped on trial as intended ({} rendered before and after)",
                        trial.rendered
                    ));
                }
                Ok(trial) => return super::report_invalid(cli, &trial.problems),
                Err(message) => {
                    let _ = writeln!(std::io::stderr(), "{message}");
                    return ExitCode::from(EXIT_FAILED);
                }
            }
        }
    }
    if !cli.quiet {
        let envs: usize = rules.promotions.iter().map(|p| p.environments.len()).sum();
        let _ = writeln!(
            std::io::stdout(),
            "{}: valid ({} promotions, {} environments){checked}",
            cli.rules.display(),
            rules.promotions.len(),
            envs
        );
    }
    ExitCode::SUCCESS
}

/// What each cluster's kubeconfig asks that its settings do not allow (a command to run,
/// TLS verification skipped, a proxy), at its line.
fn kubeconfig_refusals(rules: &Rules) -> Vec<Diagnostic> {
    let mut problems = Vec::new();
    for cluster in &rules.settings.clusters {
        let path = &cluster.kubeconfig;
        match crate::deploy::cluster::read_kubeconfig(path) {
            Ok((file, text)) => {
                for refusal in crate::deploy::kubeconfig::vet(&file, &text, cluster) {
                    problems.push(Diagnostic {
                        file: path.clone(),
                        position: refusal
                            .line
                            .map(|line| crate::yaml::Position { line, column: 1 }),
                        message: format!("cluster {:?}: {}", cluster.name, refusal.message),
                    });
                }
            }
            // (Not mounted where `check` runs: nothing to say of it here.)
            Err(_) if !path.exists() => {}
            Err(why) => problems.push(Diagnostic {
                file: path.clone(),
                position: None,
                message: format!(
                    "cluster {:?}: cannot read its kubeconfig: {why}",
                    cluster.name
                ),
            }),
        }
    }
    problems
}

/// The target files' texts (or why each cannot be read), and where they were read.
struct Files {
    place: String,
    texts: Vec<(PathBuf, Result<Option<String>, String>)>,
}

impl Files {
    fn get(&self, path: &Path) -> Option<&Result<Option<String>, String>> {
        self.texts.iter().find(|(p, _)| p == path).map(|(_, t)| t)
    }
}

/// Read from a local checkout, refusing symlinks on the way (as the writer does).
fn local_files(root: &Path, rules: &Rules) -> Files {
    let texts = rules
        .target_files()
        .into_iter()
        .map(|path| {
            let text = read_local(root, &path);
            (path, text)
        })
        .collect();
    Files {
        place: root.display().to_string(),
        texts,
    }
}

fn read_local(root: &Path, path: &Path) -> Result<Option<String>, String> {
    let mut at = root.to_path_buf();
    for c in path.components() {
        let Component::Normal(part) = c else {
            return Err("is not a plain relative path".into());
        };
        at.push(part);
        match std::fs::symlink_metadata(&at) {
            Err(_) => return Ok(None),
            Ok(m) if m.file_type().is_symlink() => {
                return Err(format!(
                    "{} is a symbolic link; tagpromoter will not follow it",
                    at.display()
                ));
            }
            Ok(_) => {}
        }
    }
    if at.is_dir() {
        return Err("is a directory, not a file".into());
    }
    std::fs::read_to_string(&at)
        .map(Some)
        .map_err(|e| format!("cannot be read: {e}"))
}

/// Fetch every destination's branch into the cache and read its targets' files at its tip.
fn remote_files(cli: &Cli, rules: &Rules) -> Result<BTreeMap<Destination, Files>, String> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| format!("cannot start the async runtime: {e}"))?;
    let mut all = BTreeMap::new();
    for destination in rules.destinations() {
        let Some(config) =
            RepoConfig::for_destination(&rules.settings, &destination, &cli.cache_dir())
        else {
            continue;
        };
        let place = format!("{} ({})", config.url, config.branch);
        let paths: Vec<PathBuf> = rules
            .promotions
            .iter()
            .flat_map(|p| p.environments.iter().map(move |e| (p, e)))
            .filter(|(_, e)| e.destination == destination)
            .flat_map(|(_, e)| e.targets().map(|t| t.file().to_path_buf()))
            .collect();
        let files = runtime.block_on(async {
            let repo = Repo::open(config).await.map_err(|e| e.to_string())?;
            repo.fetch().await.map_err(|e| e.to_string())?;
            let texts = paths
                .into_iter()
                .map(|path| {
                    let text = repo.read(&path).map_err(|e| e.detail);
                    (path, text)
                })
                .collect();
            Ok::<_, String>(Files {
                place: crate::gitops::git::redact_urls(&place),
                texts,
            })
        })?;
        all.insert(destination, files);
    }
    Ok(all)
}

/// One diagnostic per target that cannot be read (in the files of the destination it
/// writes to), at its environment's place in the rules.
fn check_targets(rules: &Rules, all: &BTreeMap<Destination, Files>) -> Vec<Diagnostic> {
    let mut out = Vec::new();
    for p in &rules.promotions {
        for (env, target) in p
            .environments
            .iter()
            .flat_map(|env| env.targets().map(move |t| (env, t)))
        {
            let file = target.file();
            let Some(files) = all.get(&env.destination) else {
                continue;
            };
            let problem = match files.get(file) {
                None | Some(Ok(None)) => Some(format!("does not exist in {}", files.place)),
                Some(Err(why)) => Some(why.clone()),
                Some(Ok(Some(text))) => manifest::read(text, &p.manifest_target_of(env, target))
                    .err()
                    .map(|e| e.to_string()),
            };
            if let Some(problem) = problem {
                out.push(Diagnostic {
                    file: p.source.file.clone(),
                    position: Some(env.position),
                    message: format!(
                        "{}/{}: target {}: {problem}",
                        p.name,
                        env.name,
                        file.display()
                    ),
                });
            }
        }
    }
    out
}

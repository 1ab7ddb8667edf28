//! `plan`, `once` and `status`: one pass's decisions, shown (plan, status) or written
//! (once). They share the engine's pass and differ only in what they do with it.

use std::collections::BTreeMap;
use std::io::Write;
use std::process::ExitCode;
use std::time::Instant;

use jiff::Timestamp;

use super::{EXIT_FAILED, diff, open_engine, render, runtime};
use crate::cli::{Cli, OutputArgs, OutputFormat};
use crate::engine::apply::bump_of;
use crate::engine::{Applied, Engine, EnvReport, PassReport, Plan};
use crate::manifest;

fn print(text: &str) {
    let _ = std::io::stdout().lock().write_all(text.as_bytes());
}

/// The decisions of a plan as a report in which nothing was written.
async fn planned(engine: &Engine, now: Timestamp) -> (PassReport, Option<Plan>) {
    let started = Instant::now();
    let requests = engine.registry_requests();
    let mut report = PassReport {
        now,
        duration: Default::default(),
        tip: None,
        environments: Vec::new(),
        error: None,
        registry_requests: 0,
        pushes: 0,
    };
    let plan = match engine.plan(now).await {
        Ok(plan) => {
            report.tip = Some(plan.observed.tip.to_string());
            report.environments = plan
                .decisions
                .iter()
                .map(|d| EnvReport {
                    decision: d.clone(),
                    applied: match (d.promotes_to(), d.write) {
                        (Some(_), crate::rules::WriteMode::PullRequest) => Applied::Skipped {
                            why: "write: pull-request is not built yet; use write: push".into(),
                        },
                        _ => Applied::Nothing,
                    },
                })
                .collect();
            Some(plan)
        }
        Err(e) => {
            report.error = Some(e);
            None
        }
    };
    report.registry_requests = engine.registry_requests() - requests;
    report.duration = started.elapsed();
    (report, plan)
}

/// The diff of every file the plan would change, bumps applied in order (several
/// environments may share a file).
pub fn planned_diff(engine: &Engine, plan: &Plan) -> String {
    let mut texts: BTreeMap<std::path::PathBuf, (String, String)> = BTreeMap::new();
    for d in &plan.decisions {
        if d.write != crate::rules::WriteMode::Push {
            continue;
        }
        let Some(edit) = bump_of(engine.rules(), d).and_then(|b| b.edit) else {
            continue;
        };
        let Some(Some(original)) = plan.observed.files.get(&edit.file) else {
            continue;
        };
        let entry = texts
            .entry(edit.file.clone())
            .or_insert_with(|| (original.clone(), original.clone()));
        if let Ok(manifest::Outcome::Changed(new)) =
            manifest::apply(&entry.1, &edit.target, &edit.wanted)
        {
            entry.1 = new;
        }
    }
    texts
        .iter()
        .map(|(path, (old, new))| diff::unified(&path.display().to_string(), old, new))
        .collect()
}

/// `tagpromoter plan`.
pub fn plan(cli: &Cli, args: &OutputArgs) -> ExitCode {
    let rt = match runtime() {
        Ok(rt) => rt,
        Err(code) => return code,
    };
    rt.block_on(async {
        let engine = match open_engine(cli).await {
            Ok(e) => e,
            Err(code) => return code,
        };
        let (report, plan) = planned(&engine, Timestamp::now()).await;
        let diff = plan
            .as_ref()
            .map(|p| planned_diff(&engine, p))
            .unwrap_or_default();
        match args.output {
            OutputFormat::Json => print(&format!("{}\n", render::json(&report, Some(&diff)))),
            OutputFormat::Text => {
                print(&diff);
                if !diff.is_empty() {
                    print("\n");
                }
                print(&render::plan_text(&report));
            }
        }
        exit(&report)
    })
}

/// `tagpromoter status`.
pub fn status(cli: &Cli, args: &OutputArgs) -> ExitCode {
    let rt = match runtime() {
        Ok(rt) => rt,
        Err(code) => return code,
    };
    rt.block_on(async {
        let engine = match open_engine(cli).await {
            Ok(e) => e,
            Err(code) => return code,
        };
        let (report, _) = planned(&engine, Timestamp::now()).await;
        match args.output {
            OutputFormat::Json => print(&format!("{}\n", render::json(&report, None))),
            OutputFormat::Text => print(&render::status_table(&report)),
        }
        ExitCode::SUCCESS
    })
}

/// `tagpromoter once`.
pub fn once(cli: &Cli, args: &OutputArgs) -> ExitCode {
    let rt = match runtime() {
        Ok(rt) => rt,
        Err(code) => return code,
    };
    rt.block_on(async {
        let engine = match open_engine(cli).await {
            Ok(e) => e,
            Err(code) => return code,
        };
        let report = engine.pass(Timestamp::now()).await;
        match args.output {
            OutputFormat::Json => print(&format!("{}\n", render::json(&report, None))),
            OutputFormat::Text => print(&render::once_text(&report)),
        }
        exit(&report)
    })
}

fn exit(report: &PassReport) -> ExitCode {
    if report.failed() {
        ExitCode::from(EXIT_FAILED)
    } else {
        ExitCode::SUCCESS
    }
}

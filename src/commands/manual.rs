//! `promote` and `release`: a person's requests, with their name (`--actor`, else the local
//! git user) and reason in the commit's trailers.

use std::io::Write;
use std::process::ExitCode;

use super::{EXIT_FAILED, EXIT_INVALID, with_engine};
use crate::cli::{Cli, PromoteArgs, ReleaseArgs};
use crate::engine::manual::{ManualError, ManualOutcome, PromoteRequest};
use crate::image::Tag;

/// Who asks: `--actor`, else `git config user.name`, else `$USER`.
fn actor(given: Option<&str>) -> String {
    if let Some(a) = given.filter(|a| !a.trim().is_empty()) {
        return a.trim().to_string();
    }
    let from_git = std::process::Command::new("git")
        .args(["config", "--get", "user.name"])
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        .filter(|n| !n.is_empty());
    from_git
        .or_else(|| std::env::var("USER").ok().filter(|u| !u.is_empty()))
        .unwrap_or_else(|| "unknown".into())
}

fn finish(result: Result<ManualOutcome, ManualError>) -> ExitCode {
    match result {
        Ok(ManualOutcome::Landed { record, commit }) => {
            let _ = writeln!(
                std::io::stdout(),
                "{}/{}: {} -> {} ({})",
                record.promotion,
                record.environment,
                record.from.as_ref().map_or("(none)", Tag::as_str),
                record.to_text(),
                &commit[..commit.len().min(12)]
            );
            ExitCode::SUCCESS
        }
        Ok(ManualOutcome::Nothing(why)) => {
            let _ = writeln!(std::io::stdout(), "{why}; nothing to do");
            ExitCode::SUCCESS
        }
        Err(ManualError::Refused(why)) => {
            let _ = writeln!(std::io::stderr(), "refused: {why}");
            ExitCode::from(EXIT_INVALID)
        }
        Err(ManualError::Failed(why)) => {
            let _ = writeln!(std::io::stderr(), "failed: {why}");
            ExitCode::from(EXIT_FAILED)
        }
    }
}

/// `tagpromoter promote NAME --env ENV [--tag TAG] [--reason TEXT] [--force] [--hold-for D]`.
pub fn promote(cli: &Cli, args: &PromoteArgs) -> ExitCode {
    // An empty --tag (a Job template's unset parameter) means the best eligible tag.
    let given = args.tag.as_deref().filter(|t| !t.trim().is_empty());
    let tag = match given.map(Tag::new).transpose() {
        Ok(t) => t,
        Err(e) => return finish(Err(ManualError::Refused(e.to_string()))),
    };
    let request = PromoteRequest {
        promotion: args.name.clone(),
        environment: args.env.clone(),
        tag,
        reason: args.reason.clone().filter(|r| !r.trim().is_empty()),
        force: args.force,
        hold_for: args.hold_for,
        actor: actor(args.actor.as_deref()),
    };
    with_engine(cli, false, |engine| async move {
        finish(engine.promote(&request, crate::engine::now()).await)
    })
}

/// `tagpromoter release NAME --env ENV`.
pub fn release(cli: &Cli, args: &ReleaseArgs) -> ExitCode {
    let who = actor(args.actor.as_deref());
    with_engine(cli, false, |engine| async move {
        finish(
            engine
                .release(
                    &args.name,
                    &args.env,
                    &who,
                    args.reason.clone(),
                    crate::engine::now(),
                )
                .await,
        )
    })
}

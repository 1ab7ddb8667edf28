//! The long-running loop of `tagpromoter run`: a pass over every promotion every
//! `interval` plus up to 10% jitter, and — when a webhook names a watched image — a pass
//! over the promotions watching it, about a second later (rings meanwhile are gathered
//! into it; a push to the GitOps branch asks for a full pass) — and likewise when a
//! controller's report of a verified rollout changes (`deploy::watch`). The rules are read again
//! before each pass (the last good ones stay in force when they turn invalid, and the
//! error is logged); alerts are detected after each pass and delivered beside the next.
//! When told to stop, the pass in flight finishes (its push included) and alerts get a
//! few seconds.
//!
//! It owns the loop, not the process: the command binds the listeners, serves the
//! [`Shared`] state and turns signals into `stop`, so that tests run a worker in-process.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;

use crate::alert::Alerting;
use crate::deploy::watch::{Ring, Watches};
use crate::engine::{Engine, PassReport, Scope};
use crate::rules::{self, Rules};
use crate::server::Shared;
use crate::shard::Shard;

/// How long a webhook's pass waits for the webhooks that come with it.
const WEBHOOK_GATHER: Duration = Duration::from_secs(1);

/// How long alerts in flight may take to leave once the worker stops.
const ALERT_FLUSH: Duration = Duration::from_secs(5);

/// A worker: the engine, its alerting, the state the server shows, and where to read the
/// rules again.
pub struct Worker {
    /// Decides and writes.
    pub engine: Engine,
    /// Turns reports into notifications.
    pub alerting: Alerting,
    /// What the server shows and the webhooks ring.
    pub shared: Arc<Shared>,
    /// The rules directory, read again before every pass; `None` keeps the rules as opened.
    pub rules_dir: Option<PathBuf>,
    /// Its shard of the fleet: the engine gets only the promotions it owns.
    pub shard: Shard,
}

/// The promotions of `rules` that `shard` owns (all of them, alone).
pub fn owned(mut rules: Rules, shard: Shard) -> Rules {
    rules.promotions.retain(|p| shard.owns(&p.name));
    rules
}

impl Worker {
    /// Pass until `stop` turns true, then deliver what alerts it can.
    pub async fn run(mut self, mut stop: watch::Receiver<bool>) {
        let mut wakes = self.shared.wakes();
        // The interval's passes cover every promotion; a webhook's covers the promotions
        // watching what it named, and is laid over the last report.
        let mut next_full = tokio::time::Instant::now();
        let mut last: Option<Arc<PassReport>> = None;
        // What the rules directory looked like when last read (the rules opened with are
        // read anew at the first pass).
        let mut read: Option<Fingerprint> = None;
        // Rollouts watched between passes ring for the promotions they verify.
        let mut watches = Watches::default();
        let shared = Arc::clone(&self.shared);
        let ring: Ring = Arc::new(move |names| shared.wake(Scope::Promotions(names)));
        loop {
            // Rings until now are answered by this pass; later ones ask for another.
            wakes.borrow_and_update();
            let due = self.shared.take_due();
            let scope = if tokio::time::Instant::now() >= next_full {
                Some(Scope::All)
            } else {
                due
            };
            if let Some(scope) = scope {
                let report = self.pass(&scope, last.as_deref(), &mut read).await;
                if scope == Scope::All {
                    let interval = interval_of(self.engine.rules());
                    self.shared.metrics.passes.interval(interval.as_secs());
                    next_full = tokio::time::Instant::now() + interval + jitter(interval);
                }
                last = Some(report);
                watches.follow(self.engine.clusters(), self.engine.rules(), &ring);
            }
            if *stop.borrow() {
                break;
            }
            tokio::select! {
                _ = tokio::time::sleep_until(next_full) => {},
                _ = wakes.changed() => {
                    // Gather what else arrives with it (a multi-arch push rings for every
                    // manifest), then pass once.
                    tokio::select! {
                        _ = tokio::time::sleep(WEBHOOK_GATHER) => {},
                        _ = stop.changed() => break,
                    }
                }
                _ = stop.changed() => break,
            }
        }
        if !self.alerting.flush(ALERT_FLUSH).await {
            tracing::warn!("some alerts were not delivered before shutdown");
        }
    }

    /// One pass over `scope`: rules read again, the report logged, laid over `last`,
    /// alerted on and published.
    async fn pass(
        &mut self,
        scope: &Scope,
        last: Option<&PassReport>,
        read: &mut Option<Fingerprint>,
    ) -> Arc<PassReport> {
        self.reload_rules(read).await;
        let report = self.engine.pass_within(scope, crate::engine::now()).await;
        for line in crate::view::once_text(&report).lines() {
            tracing::info!("{line}");
        }
        let report = match last {
            Some(previous) => report.laid_over(previous),
            None => report,
        };
        self.alerting
            .after_pass(&report, &self.engine.rules().settings);
        let report = Arc::new(report);
        self.shared.finished(Arc::clone(&report));
        report
    }

    /// Read the rules again when their files changed since `read` (10,000 promotions take
    /// most of a second to load); the last valid ones stay in force when they turned
    /// invalid. Secrets they name are read where they are used, so they need no reload.
    async fn reload_rules(&mut self, read: &mut Option<Fingerprint>) {
        let Some(dir) = &self.rules_dir else {
            return;
        };
        let now = fingerprint(dir);
        if now.is_some() && *read == now {
            return;
        }
        *read = now;
        match rules::load_dir(dir) {
            Ok(new) => {
                // The server watches every promotion (to forward what is not ours); the
                // engine decides ours.
                let shared_rules = new.clone();
                match self.engine.set_rules(owned(new, self.shard)).await {
                    Ok(()) => self.shared.set_rules(&shared_rules),
                    Err(e) => {
                        tracing::error!(error = %e, "the new rules' registry, repository or forge settings cannot be used; the last rules stay in force")
                    }
                }
            }
            Err(diags) => {
                let problems: Vec<String> = diags.iter().map(|d| d.to_string()).collect();
                tracing::error!(problems = %problems.join("; "), "the rules are invalid; the last valid rules stay in force");
            }
        }
    }
}

/// Up to a tenth of `interval`, different on every call (from the clock's nanoseconds:
/// spreading workers apart needs no better randomness).
fn jitter(interval: Duration) -> Duration {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or_default();
    interval.mul_f64(f64::from(nanos % 1000) / 10_000.0)
}

/// The `*.yaml` files of a rules directory, with their sizes and modification times
/// (`None`: the directory cannot be listed, so it is read every time and says why).
type Fingerprint = Vec<(PathBuf, u64, Option<std::time::SystemTime>)>;

fn fingerprint(dir: &std::path::Path) -> Option<Fingerprint> {
    let mut files: Fingerprint = std::fs::read_dir(dir)
        .ok()?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "yaml"))
        .map(|p| {
            // Followed through symbolic links: a mounted ConfigMap swaps its target.
            let meta = std::fs::metadata(&p).ok();
            let size = meta.as_ref().map_or(0, std::fs::Metadata::len);
            let modified = meta.and_then(|m| m.modified().ok());
            (p, size, modified)
        })
        .collect();
    files.sort();
    Some(files)
}

fn interval_of(rules: &rules::Rules) -> Duration {
    Duration::try_from(rules.settings.interval).unwrap_or(Duration::from_secs(120))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The rules are read again only when a file changed, came or went.
    #[test]
    fn the_rules_fingerprint_changes_with_their_files_only() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("rules.yaml"), "a: 1\n").unwrap();
        std::fs::write(dir.path().join("notes.txt"), "not rules\n").unwrap();
        let first = fingerprint(dir.path());
        assert!(first.is_some());
        assert_eq!(fingerprint(dir.path()), first, "nothing changed");
        std::fs::write(dir.path().join("notes.txt"), "still not rules\n").unwrap();
        assert_eq!(fingerprint(dir.path()), first, "only rules files count");
        std::fs::write(dir.path().join("rules.yaml"), "a: 12\n").unwrap();
        let edited = fingerprint(dir.path());
        assert_ne!(edited, first);
        std::fs::write(dir.path().join("more.yaml"), "b: 1\n").unwrap();
        assert_ne!(fingerprint(dir.path()), edited);
        assert_eq!(fingerprint(&dir.path().join("gone")), None);
    }
}

//! Commit messages of bumps: the subject `promote(<env>): <promotion> <from> -> <to>` and the
//! `Tagpromoter-*` trailers that are the audit log and the bot's only memory. Pure.

use jiff::Timestamp;

use crate::image::{Digest, Repository, Tag};

/// Who asked for a bump.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum Actor {
    /// The bot's own decision.
    Bot,
    /// A person (`promote`, `release`).
    Person(String),
}

/// A hold change carried by a commit.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum HoldChange {
    /// A rollback put the environment on hold (until a time, or until released).
    Set {
        /// When it expires by itself.
        until: Option<Timestamp>,
    },
    /// A person released it.
    Released,
}

/// What one bump commit records.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Record {
    /// The promotion's name.
    pub promotion: String,
    /// The environment.
    pub environment: String,
    /// The image repository.
    pub image: Repository,
    /// The tag before (absent when there was none, or it was not a valid tag).
    pub from: Option<Tag>,
    /// The tag written; `None` only for a release of a value that names no tag (a digest
    /// alone, a tag left to the chart).
    pub to: Option<Tag>,
    /// The digest written or known.
    pub digest: Option<Digest>,
    /// Who asked.
    pub actor: Actor,
    /// Why (manual promotions).
    pub reason: Option<String>,
    /// Break-glass: gates bypassed.
    pub forced: bool,
    /// A hold set or released.
    pub hold: Option<HoldChange>,
    /// What the commit changed: `<file>#<where in it>` (`Tagpromoter-Target`), so that
    /// history keeps its meaning when a promotion or environment is renamed. Absent in
    /// commits written before the trailer existed.
    pub target: Option<String>,
    /// The repository and branch of the environment it was written for
    /// (`Tagpromoter-Repository`, `Tagpromoter-Branch`): a record merged or copied from
    /// another branch or repository counts for nothing there. Absent in commits written
    /// before these trailers existed.
    #[serde(default)]
    pub identity: Option<crate::rules::Identity>,
}

const PREFIX: &str = "Tagpromoter-";

/// Trailer values are one line of printable text; anything else is cut at the line break
/// and stripped of control characters (a reason comes from a person's command line).
fn one_line(s: &str) -> String {
    s.lines()
        .next()
        .unwrap_or_default()
        .chars()
        .filter(|c| !c.is_control())
        .collect::<String>()
        .trim()
        .to_string()
}

impl Record {
    /// The tag written, as the subject and trailer say it (`(none)`).
    pub fn to_text(&self) -> &str {
        self.to.as_ref().map_or("(none)", Tag::as_str)
    }

    /// The full commit message.
    pub fn message(&self) -> String {
        format!("{}\n\n{}", self.subject(), self.trailers())
    }

    /// The subject: `promote(<env>): <promotion> <from> -> <to>`.
    pub fn subject(&self) -> String {
        if self.hold == Some(HoldChange::Released) {
            return format!(
                "release({}): {} may move on from {}",
                self.environment,
                self.promotion,
                self.to_text()
            );
        }
        let from = self.from.as_ref().map_or("(none)", Tag::as_str);
        format!(
            "promote({}): {} {from} -> {}",
            self.environment,
            self.promotion,
            self.to_text()
        )
    }

    /// The `Tagpromoter-*` trailers, a line each.
    pub fn trailers(&self) -> String {
        let from = self.from.as_ref().map_or("(none)", Tag::as_str);
        let mut m = String::new();
        let mut trailer = |k: &str, v: &str| {
            m.push_str(&format!("{PREFIX}{k}: {}\n", one_line(v)));
        };
        trailer("Promotion", &self.promotion);
        trailer("Environment", &self.environment);
        trailer("Image", self.image.as_str());
        trailer("From", from);
        trailer("To", self.to_text());
        if let Some(d) = &self.digest {
            trailer("Digest", d.as_str());
        }
        match &self.actor {
            Actor::Bot => trailer("Actor", "tagpromoter"),
            Actor::Person(who) => trailer("Actor", &format!("{} (manual)", one_line(who))),
        }
        if let Some(r) = &self.reason {
            trailer("Reason", r);
        }
        if self.forced {
            trailer("Forced", "true");
        }
        match &self.hold {
            Some(HoldChange::Set { until }) => {
                trailer("Hold", "set");
                if let Some(u) = until {
                    trailer("Hold-Until", &u.to_string());
                }
            }
            Some(HoldChange::Released) => trailer("Hold", "released"),
            None => {}
        }
        if let Some(t) = &self.target {
            trailer("Target", t);
        }
        if let Some(id) = &self.identity {
            trailer("Repository", &id.repository);
            trailer("Branch", &id.branch);
        }
        m
    }

    /// Read a commit message back; `None` when it is not one of ours (or names values that
    /// are not valid tags and repositories: trailers are text anyone can write).
    pub fn parse(message: &str) -> Option<Self> {
        let mut get = std::collections::HashMap::new();
        for line in message.lines() {
            if let Some(rest) = line.strip_prefix(PREFIX)
                && let Some((k, v)) = rest.split_once(": ")
            {
                get.entry(k.to_string())
                    .or_insert_with(|| v.trim().to_string());
            }
        }
        let field = |k: &str| get.get(k).cloned();
        let actor = match field("Actor") {
            Some(a) if a != "tagpromoter" => {
                Actor::Person(a.trim_end_matches(" (manual)").to_string())
            }
            _ => Actor::Bot,
        };
        let hold = match field("Hold").as_deref() {
            Some("set") => Some(HoldChange::Set {
                until: field("Hold-Until").and_then(|u| u.parse().ok()),
            }),
            Some("released") => Some(HoldChange::Released),
            _ => None,
        };
        // Only a release may name no tag.
        let to = match field("To") {
            Some(t) if t == "(none)" && hold == Some(HoldChange::Released) => None,
            t => Some(Tag::new(&t?).ok()?),
        };
        Some(Self {
            promotion: field("Promotion")?,
            environment: field("Environment")?,
            image: Repository::new(&field("Image")?).ok()?,
            from: field("From").and_then(|f| Tag::new(&f).ok()),
            to,
            digest: field("Digest").and_then(|d| Digest::new(&d).ok()),
            actor,
            reason: field("Reason"),
            forced: field("Forced").as_deref() == Some("true"),
            hold,
            target: field("Target"),
            identity: match (field("Repository"), field("Branch")) {
                (Some(repository), Some(branch)) => {
                    Some(crate::rules::Identity { repository, branch })
                }
                _ => None,
            },
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record() -> Record {
        Record {
            promotion: "podinfo".into(),
            environment: "prod".into(),
            image: Repository::new("ghcr.io/stefanprodan/podinfo").unwrap(),
            from: Some(Tag::new("6.5.3").unwrap()),
            to: Some(Tag::new("6.5.4").unwrap()),
            digest: Some(Digest::new(&format!("sha256:{}", "a".repeat(64))).unwrap()),
            actor: Actor::Bot,
            reason: None,
            forced: false,
            hold: None,
            target: Some("apps/podinfo/prod/kustomization.yaml#images[name=podinfo]".into()),
            identity: Some(crate::rules::Identity {
                repository: "github.com/acme/gitops".into(),
                branch: "main".into(),
            }),
        }
    }

    #[test]
    fn message_has_the_subject_and_trailers_of_the_design() {
        let m = record().message();
        assert!(m.starts_with("promote(prod): podinfo 6.5.3 -> 6.5.4\n\n"));
        assert!(m.contains("\nTagpromoter-Actor: tagpromoter\n"));
        assert_eq!(Record::parse(&m), Some(record()));
    }

    #[test]
    fn manual_rollbacks_round_trip_and_reasons_stay_on_one_line() {
        let mut r = record();
        r.actor = Actor::Person("alice".into());
        r.reason = Some("incident 42\nTagpromoter-Forced: true".into());
        r.hold = Some(HoldChange::Set {
            until: Some("2026-11-22T10:00:00Z".parse().unwrap()),
        });
        let m = r.message();
        assert!(m.contains("Tagpromoter-Actor: alice (manual)\n"));
        assert!(!m.contains("Forced"));
        let back = Record::parse(&m).unwrap();
        assert_eq!(back.reason.as_deref(), Some("incident 42"));
        assert_eq!(back.hold, r.hold);
        assert!(Record::parse("fix: a person's commit").is_none());
    }
}

//! The bot's sightings ledger on the remote (`refs/tagpromoter/sightings/<branch>`): read
//! from the mirror (it is fetched with the branch), written as a commit on the one fetched
//! and pushed fast-forward only (not counted with the bumps' pushes) — a ledger moved by another worker meanwhile is left alone
//! (its changes are seen again next pass, later, which can only make a soak longer).

use jiff::Timestamp;

use super::mirror::lock;
use super::{Pushed, Repo};
use crate::gitops::error::GitError;
use crate::gitops::sightings::{self, Sightings};

/// Every branch's ledger, fetched into the same names (a glob: there may be none yet);
/// with `--prune`, one deleted on the remote goes here too, so a warm mirror knows what a
/// fresh one does.
pub(super) const REFSPEC: &str = "+refs/tagpromoter/sightings/*:refs/tagpromoter/sightings/*";

impl Repo {
    /// Fetch the ledgers again (another worker moved this branch's meanwhile), and read
    /// this branch's.
    pub async fn refetch_sightings(&self) -> Result<(Sightings, Option<gix::ObjectId>), GitError> {
        let _lock = lock(&self.dir, self.config.lock_timeout).await?;
        let step = format!("fetching the sightings from {}", self.url());
        self.fetch_refs(&[REFSPEC], &["--prune"], &step).await?;
        self.sightings()
    }

    /// The ledger of this branch as fetched last (empty when there is none yet), and the
    /// commit it was read from.
    pub fn sightings(&self) -> Result<(Sightings, Option<gix::ObjectId>), GitError> {
        let reference = sightings::ref_of(&self.config.branch);
        let Some(tip) = self.store.resolve(&reference)? else {
            return Ok((Sightings::default(), None));
        };
        let text = self
            .store
            .read(tip, std::path::Path::new(sightings::FILE))?
            .map(|f| String::from_utf8_lossy(&f.content).into_owned())
            .unwrap_or_default();
        Ok((Sightings::parse(&text), Some(tip)))
    }

    /// Write `ledger` over the one read from `base` and push it; whether it landed.
    pub async fn write_sightings(
        &self,
        ledger: &Sightings,
        base: Option<gix::ObjectId>,
        now: Timestamp,
    ) -> Result<bool, GitError> {
        let message = format!(
            "tagpromoter: {} sightings\n\nWhen tagpromoter first saw each upstream change on {}; soaks count from these.\n",
            ledger.len(),
            self.config.branch
        );
        let commit = self.store.commit_one_file(
            base,
            sightings::FILE,
            ledger.text().as_bytes(),
            &message,
            &self.config.author,
            now,
        )?;
        let reference = sightings::ref_of(&self.config.branch);
        Ok(match self.push_once(commit, &reference, None).await? {
            Pushed::Done | Pushed::AlreadyThere => true,
            Pushed::Behind => false,
            Pushed::Rejected(e) => return Err(e),
        })
    }
}

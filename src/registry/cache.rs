//! Image facts cached by digest: in memory for the life of the process, and on disk in the
//! cache directory so that a CronJob (`once`) does not fetch them again on every run. A
//! digest names immutable content, so entries never go stale and processes may share them;
//! files are written whole (temporary file, then rename) or not at all.

use std::collections::HashMap;
use std::path::PathBuf;

use tokio::sync::Mutex;

use crate::image::{Digest, ImageFacts};

/// Facts by digest, and which tags were ever resolved.
#[derive(Debug, Default)]
pub struct FactsCache {
    memory: Mutex<HashMap<Digest, ImageFacts>>,
    seen: Mutex<std::collections::HashSet<String>>,
    dir: Option<PathBuf>,
}

#[derive(serde::Serialize, serde::Deserialize)]
struct Stored {
    platforms: Vec<String>,
    created: Option<jiff::Timestamp>,
    #[serde(default)]
    labels: std::collections::BTreeMap<String, String>,
}

impl FactsCache {
    /// A cache kept on disk under `dir` too.
    pub fn on_disk(dir: PathBuf) -> Self {
        Self {
            memory: Mutex::default(),
            seen: Mutex::default(),
            dir: Some(dir),
        }
    }

    fn seen_path(&self, tag: &str) -> Option<PathBuf> {
        use sha2::Digest as _;
        let hash = sha2::Sha256::digest(tag.as_bytes());
        let hex: String = hash.iter().map(|b| format!("{b:02x}")).collect();
        Some(self.dir.as_ref()?.join("seen").join(hex))
    }

    /// Whether `reference` (`repository:tag`) was resolved before, here or by another run
    /// sharing the cache: then its facts are likely cached and a HEAD is the cheap way to
    /// check; otherwise reading its manifest by tag saves a request.
    pub async fn seen(&self, reference: &str) -> bool {
        if self.seen.lock().await.contains(reference) {
            return true;
        }
        self.seen_path(reference).is_some_and(|p| p.is_file())
    }

    /// Remember that `reference` was resolved (best effort, like the facts).
    pub async fn saw(&self, reference: &str) {
        self.seen.lock().await.insert(reference.to_string());
        let Some(path) = self.seen_path(reference) else {
            return;
        };
        let write = async {
            if let Some(dir) = path.parent() {
                tokio::fs::create_dir_all(dir).await?;
            }
            tokio::fs::write(&path, b"").await
        };
        if let Err(e) = write.await {
            tracing::warn!(path = %path.display(), error = %e, "cannot cache image metadata on disk");
        }
    }

    fn path(&self, digest: &Digest) -> Option<PathBuf> {
        let (alg, hex) = digest.as_str().split_once(':')?;
        Some(self.dir.as_ref()?.join(alg).join(format!("{hex}.json")))
    }

    /// The facts of `digest`, if known here or on disk.
    pub async fn get(&self, digest: &Digest) -> Option<ImageFacts> {
        if let Some(f) = self.memory.lock().await.get(digest) {
            return Some(f.clone());
        }
        let text = tokio::fs::read(self.path(digest)?).await.ok()?;
        // A damaged entry is simply fetched again.
        let stored: Stored = serde_json::from_slice(&text).ok()?;
        let facts = ImageFacts {
            digest: digest.clone(),
            platforms: stored.platforms,
            created: stored.created,
            labels: stored.labels,
            depth: crate::image::Depth::Whole,
        };
        self.memory
            .lock()
            .await
            .insert(digest.clone(), facts.clone());
        Some(facts)
    }

    /// Remember the facts of `digest`. A disk that refuses the write only costs a fetch
    /// later, so it is logged, not raised.
    pub async fn put(&self, digest: &Digest, facts: &ImageFacts) {
        self.memory
            .lock()
            .await
            .insert(digest.clone(), facts.clone());
        let Some(path) = self.path(digest) else {
            return;
        };
        let stored = Stored {
            platforms: facts.platforms.clone(),
            created: facts.created,
            labels: facts.labels.clone(),
        };
        if let Err(e) = write_whole(&path, &stored).await {
            tracing::warn!(path = %path.display(), error = %e, "cannot cache image metadata on disk");
        }
    }
}

async fn write_whole(path: &std::path::Path, stored: &Stored) -> std::io::Result<()> {
    let dir = path
        .parent()
        .ok_or_else(|| std::io::Error::other("no parent directory"))?;
    tokio::fs::create_dir_all(dir).await?;
    // Unique per write, not only per process: two images sharing a digest are written at
    // once in one pass.
    static WRITES: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let n = WRITES.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let tmp = path.with_extension(format!("tmp.{}.{n}", std::process::id()));
    tokio::fs::write(
        &tmp,
        serde_json::to_vec(stored).map_err(std::io::Error::other)?,
    )
    .await?;
    tokio::fs::rename(&tmp, path).await
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Many writes of one digest at once (images sharing it, in one pass) all succeed.
    #[tokio::test(flavor = "multi_thread")]
    async fn concurrent_writes_of_one_digest_do_not_collide() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sha256").join("ab.json");
        let stored = || Stored {
            platforms: vec!["linux/amd64".into()],
            created: None,
            labels: Default::default(),
        };
        let mut writes = tokio::task::JoinSet::new();
        for _ in 0..32 {
            let path = path.clone();
            let stored = stored();
            writes.spawn(async move { write_whole(&path, &stored).await });
        }
        while let Some(done) = writes.join_next().await {
            assert!(done.unwrap().is_ok());
        }
        assert!(path.is_file());
    }
}

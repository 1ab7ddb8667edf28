//! The last [`Snapshot`] of a mirror, kept on disk beside it, so that a new process (every
//! `once`, a worker after a restart) whose branch did not move reads no history again: at
//! 10,000 promotions that read is most of a quiet pass's CPU.
//!
//! A snapshot is a function of the tip and of what was asked: the file is keyed by what was
//! asked (and by this program's version, whose reading may differ) and holds its tip, for
//! the caller to take, grow ([`super::grow`]) or set aside. A file that is missing,
//! damaged or keyed otherwise is simply not used; one that cannot be written only costs the
//! next process a read. It stores and loads; it must not decide whether a snapshot is deep
//! enough (the caller's `enough` does).

use std::path::Path;
use std::sync::Arc;

use sha2::Digest as _;

use super::snapshot::{Snapshot, TargetQuery};

/// What a kept snapshot answers: this program and `queries` (its tip is in it: the caller
/// takes it as it is, grows it, or reads afresh).
pub fn key(queries: &[TargetQuery]) -> String {
    let mut hash = sha2::Sha256::new();
    hash.update(env!("CARGO_PKG_VERSION"));
    // Every field of every query, as this build formats them.
    hash.update(format!("{queries:?}"));
    hash.finalize().iter().map(|b| format!("{b:02x}")).collect()
}

/// The snapshot kept at `path` under `key`, if there is one. A file kept for other queries
/// is not read past its first line.
pub async fn load(path: &Path, key: &str) -> Option<Snapshot> {
    let (at, key) = (path.to_path_buf(), key.to_string());
    let parsed = tokio::task::spawn_blocking(move || {
        use std::io::{BufRead as _, Read as _};
        let mut file = std::io::BufReader::new(std::fs::File::open(&at).ok()?);
        let mut kept_key = String::new();
        file.read_line(&mut kept_key).ok()?;
        if kept_key.trim_end() != key {
            return None;
        }
        let mut body = Vec::new();
        file.read_to_end(&mut body).ok()?;
        Some(serde_json::from_slice::<Snapshot>(&body))
    })
    .await
    .ok()??;
    match parsed {
        Ok(snapshot) => Some(snapshot),
        Err(e) => {
            tracing::warn!(path = %path.display(), error = %e, "a kept snapshot is damaged; reading the history again");
            None
        }
    }
}

/// Keep `snapshot` at `path` under `key`: written whole (a temporary file, then renamed) or
/// not at all.
pub async fn store(path: &Path, key: &str, snapshot: Arc<Snapshot>) {
    let (at, key) = (path.to_path_buf(), key.to_string());
    let written = tokio::task::spawn_blocking(move || write(&at, &key, &snapshot))
        .await
        .unwrap_or_else(|e| Err(std::io::Error::other(e)));
    if let Err(e) = written {
        tracing::warn!(path = %path.display(), error = %e, "cannot keep the snapshot on disk; the next process reads the history again");
    }
}

fn write(path: &Path, key: &str, snapshot: &Snapshot) -> std::io::Result<()> {
    use std::io::Write as _;
    let tmp = path.with_extension(format!("snapshot.{}", std::process::id()));
    let result = (|| {
        let mut out = std::io::BufWriter::new(std::fs::File::create(&tmp)?);
        out.write_all(key.as_bytes())?;
        out.write_all(b"\n")?;
        serde_json::to_writer(&mut out, snapshot).map_err(std::io::Error::other)?;
        // Not synced: a file a crash leaves short is damaged, and damaged means read again.
        out.flush()?;
        drop(out);
        std::fs::rename(&tmp, path)
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result
}

/// An object id as its hex text.
pub mod object_id {
    use gix::ObjectId;
    use serde::{Deserialize, Deserializer, Serializer};

    /// Write `id` as hex.
    pub fn serialize<S: Serializer>(id: &ObjectId, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&id.to_hex().to_string())
    }

    /// Read an id written by [`serialize`].
    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<ObjectId, D::Error> {
        let text = String::deserialize(d)?;
        ObjectId::from_hex(text.as_bytes()).map_err(serde::de::Error::custom)
    }
}

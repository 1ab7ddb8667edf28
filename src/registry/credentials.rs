//! Registry credentials: a password file, or a Docker `config.json` / `.dockerconfigjson`
//! (`auths` with `auth`, `username`/`password` or `identitytoken`; `credHelpers` and
//! `credsStore`, run as `docker-credential-<name> get`).
//!
//! Files are re-read when they change (by modification time and size), so a rotated
//! Kubernetes secret needs no restart. Secrets live in [`Secret`], which never prints.

use std::collections::HashMap;
use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::SystemTime;

use base64::Engine;
use serde::Deserialize;
use tokio::io::AsyncWriteExt;

/// A secret string: no `Display`, and `Debug` shows `***`.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    /// Wrap a secret (remembered, so that no text the process shows can hold it).
    pub fn new(s: impl Into<String>) -> Self {
        let s = s.into();
        crate::secret::remember(&s);
        Self(s)
    }

    /// The secret itself, for the one place that sends it.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("***")
    }
}

/// What to authenticate with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Credential {
    /// A user name and password (or personal token).
    Basic {
        /// User name.
        username: String,
        /// Password or token.
        password: Secret,
    },
    /// An OAuth2 refresh token (`identitytoken`), exchanged at the token realm.
    IdentityToken(Secret),
}

/// Where one host's credentials come from (from `Settings.registries`).
#[derive(Debug, Clone, Default)]
pub struct CredentialSource {
    /// A Docker config file.
    pub docker_config: Option<PathBuf>,
    /// A user name, with `password_file`.
    pub username: Option<String>,
    /// A file holding the password.
    pub password_file: Option<PathBuf>,
}

/// Reads credentials, re-reading files that changed.
#[derive(Debug, Default)]
pub struct CredentialStore {
    files: Mutex<HashMap<PathBuf, Cached>>,
    helpers: Mutex<HashMap<(String, String), (Credential, std::time::Instant)>>,
}

/// How long a credential helper's answer is reused (a helper is a process to start; a pass
/// makes many requests).
const HELPER_TTL: std::time::Duration = std::time::Duration::from_secs(60);

#[derive(Debug, Clone)]
struct Cached {
    stamp: (Option<SystemTime>, u64),
    text: String,
}

#[derive(Debug, Deserialize, Default)]
struct DockerConfig {
    #[serde(default)]
    auths: HashMap<String, DockerAuth>,
    #[serde(default, rename = "credHelpers")]
    cred_helpers: HashMap<String, String>,
    #[serde(default, rename = "credsStore")]
    creds_store: Option<String>,
}

#[derive(Debug, Deserialize, Default)]
struct DockerAuth {
    #[serde(default)]
    auth: Option<String>,
    #[serde(default)]
    username: Option<String>,
    #[serde(default)]
    password: Option<String>,
    #[serde(default)]
    identitytoken: Option<String>,
}

#[derive(Deserialize)]
struct HelperAnswer {
    #[serde(rename = "Username", default)]
    username: String,
    #[serde(rename = "Secret")]
    secret: String,
}

impl CredentialStore {
    /// The credential for `host` from `source`; `Ok(None)` for anonymous access. Errors say
    /// which file or helper failed and never include a secret.
    pub async fn lookup(
        &self,
        host: &str,
        source: &CredentialSource,
    ) -> Result<Option<Credential>, String> {
        let host = normalize_host(host);
        if let (Some(username), Some(file)) = (&source.username, &source.password_file) {
            let text = self.read(file)?;
            let password = text.trim_end_matches(['\n', '\r']).to_string();
            return Ok(Some(Credential::Basic {
                username: username.clone(),
                password: Secret::new(password),
            }));
        }
        let Some(path) = &source.docker_config else {
            return Ok(None);
        };
        let text = self.read(path)?;
        let config: DockerConfig = serde_json::from_str(&text).map_err(|e| {
            format!(
                "{} is not a Docker config (JSON with \"auths\"): {}",
                path.display(),
                e.classify_message()
            )
        })?;
        if let Some(helper) = config.cred_helpers.get(host) {
            return self.helper(helper, host).await.map(Some);
        }
        if let Some(auth) = config
            .auths
            .iter()
            .find(|(k, _)| normalize_host(k) == host)
            .map(|(_, v)| v)
        {
            return decode_auth(auth, path).map(Some);
        }
        match &config.creds_store {
            Some(store) => self.helper(store, host).await.map(Some),
            None => Ok(None),
        }
    }

    async fn helper(&self, name: &str, host: &str) -> Result<Credential, String> {
        let key = (name.to_string(), host.to_string());
        let cached = {
            let helpers = self.helpers.lock().unwrap_or_else(|p| p.into_inner());
            helpers
                .get(&key)
                .filter(|(_, at)| at.elapsed() < HELPER_TTL)
                .map(|(c, _)| c.clone())
        };
        if let Some(c) = cached {
            return Ok(c);
        }
        let credential = run_helper(name, host).await?;
        self.helpers
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(key, (credential.clone(), std::time::Instant::now()));
        Ok(credential)
    }

    fn read(&self, path: &Path) -> Result<String, String> {
        let meta = std::fs::metadata(path)
            .map_err(|e| format!("cannot read credentials file {}: {e}", path.display()))?;
        let stamp = (meta.modified().ok(), meta.len());
        let mut files = self.files.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(c) = files.get(path).filter(|c| c.stamp == stamp) {
            return Ok(c.text.clone());
        }
        if meta.len() > 1024 * 1024 {
            return Err(format!(
                "credentials file {} is larger than 1 MiB",
                path.display()
            ));
        }
        let text = std::fs::read_to_string(path)
            .map_err(|e| format!("cannot read credentials file {}: {e}", path.display()))?;
        files.insert(
            path.to_path_buf(),
            Cached {
                stamp,
                text: text.clone(),
            },
        );
        Ok(text)
    }
}

trait ClassifyMessage {
    fn classify_message(&self) -> String;
}

impl ClassifyMessage for serde_json::Error {
    /// The error's class and place only: its text may quote the file, which holds secrets.
    fn classify_message(&self) -> String {
        format!(
            "{:?} error at line {} column {}",
            self.classify(),
            self.line(),
            self.column()
        )
    }
}

/// `https://index.docker.io/v1/` and `https://ghcr.io` name the hosts `docker.io` and
/// `ghcr.io`.
fn normalize_host(key: &str) -> &str {
    let rest = key
        .strip_prefix("https://")
        .or_else(|| key.strip_prefix("http://"))
        .unwrap_or(key);
    let host = rest.split('/').next().unwrap_or(rest);
    match host {
        "index.docker.io" | "registry-1.docker.io" => "docker.io",
        h => h,
    }
}

fn decode_auth(auth: &DockerAuth, path: &Path) -> Result<Credential, String> {
    if let Some(token) = auth.identitytoken.as_deref().filter(|t| !t.is_empty()) {
        return Ok(Credential::IdentityToken(Secret::new(token)));
    }
    if let (Some(u), Some(p)) = (&auth.username, &auth.password) {
        return Ok(Credential::Basic {
            username: u.clone(),
            password: Secret::new(p.clone()),
        });
    }
    let bad = || {
        format!(
            "the \"auth\" entry in {} is not base64 of user:password",
            path.display()
        )
    };
    let encoded = auth.auth.as_deref().ok_or_else(bad)?;
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(encoded.trim())
        .map_err(|_| bad())?;
    let text = String::from_utf8(bytes).map_err(|_| bad())?;
    let (u, p) = text.split_once(':').ok_or_else(bad)?;
    Ok(Credential::Basic {
        username: u.to_string(),
        password: Secret::new(p),
    })
}

/// Ask `docker-credential-<name> get` for `host`'s credentials (the host on stdin, JSON out).
async fn run_helper(name: &str, host: &str) -> Result<Credential, String> {
    if !name
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
    {
        return Err(format!(
            "credential helper name {name:?} is not a plain name"
        ));
    }
    let program = format!("docker-credential-{name}");
    let mut child = tokio::process::Command::new(&program)
        .arg("get")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .map_err(|e| format!("cannot run {program}: {e}"))?;
    if let Some(mut stdin) = child.stdin.take() {
        stdin
            .write_all(host.as_bytes())
            .await
            .map_err(|e| format!("{program}: {e}"))?;
    }
    let out = tokio::time::timeout(std::time::Duration::from_secs(30), child.wait_with_output())
        .await
        .map_err(|_| format!("{program} did not answer within 30s"))?
        .map_err(|e| format!("{program}: {e}"))?;
    if !out.status.success() {
        return Err(format!("{program} get failed for {host} ({})", out.status));
    }
    let answer: HelperAnswer = serde_json::from_slice(&out.stdout)
        .map_err(|_| format!("{program} answered something that is not its JSON"))?;
    Ok(if answer.username == "<token>" {
        Credential::IdentityToken(Secret::new(answer.secret))
    } else {
        Credential::Basic {
            username: answer.username,
            password: Secret::new(answer.secret),
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_do_not_print() {
        let c = Credential::Basic {
            username: "u".into(),
            password: Secret::new("hunter2"),
        };
        assert!(!format!("{c:?}").contains("hunter2"));
    }

    #[test]
    fn docker_config_keys_name_hosts() {
        assert_eq!(normalize_host("https://index.docker.io/v1/"), "docker.io");
        assert_eq!(normalize_host("ghcr.io"), "ghcr.io");
        assert_eq!(normalize_host("http://127.0.0.1:5000"), "127.0.0.1:5000");
    }

    #[tokio::test]
    async fn docker_config_forms_and_rotation() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("config.json");
        let b64 = base64::engine::general_purpose::STANDARD.encode("alice:s3cret");
        std::fs::write(&path, format!(r#"{{"auths": {{"https://reg.example": {{"auth": "{b64}"}}, "tok.example": {{"identitytoken": "refresh"}}}}}}"#)).unwrap();
        let store = CredentialStore::default();
        let src = CredentialSource {
            docker_config: Some(path.clone()),
            ..Default::default()
        };
        let c = store.lookup("reg.example", &src).await.unwrap();
        assert_eq!(
            c,
            Some(Credential::Basic {
                username: "alice".into(),
                password: Secret::new("s3cret")
            })
        );
        assert_eq!(
            store.lookup("tok.example", &src).await.unwrap(),
            Some(Credential::IdentityToken(Secret::new("refresh")))
        );
        assert_eq!(store.lookup("other.example", &src).await.unwrap(), None);
        // A rotated file is read again (size differs, so no mtime granularity issue).
        std::fs::write(
            &path,
            r#"{"auths": {"reg.example": {"username": "bob", "password": "n3w-password"}}}"#,
        )
        .unwrap();
        let c = store.lookup("reg.example", &src).await.unwrap();
        assert!(matches!(c, Some(Credential::Basic { ref username, .. }) if username == "bob"));
        // A broken file's error never quotes it.
        std::fs::write(
            &path,
            r#"{"auths": {"reg.example": {"auth": "hunter2-not-json"#,
        )
        .unwrap();
        let err = store.lookup("reg.example", &src).await.unwrap_err();
        assert!(!err.contains("hunter2"), "{err}");
    }
}

//! Running the `git` command for the network (fetch, push, ls-remote): one mechanism that
//! carries credentials, through the environment only. A small askpass script answers git's
//! prompts from `TAGPROMOTER_GIT_USERNAME`/`TAGPROMOTER_GIT_PASSWORD`, read from the secret
//! files at each call (so rotated secrets apply at once), and only for the remote's own
//! origin (a redirect elsewhere gets nothing); ssh gets its key and known_hosts by path. Nothing secret is ever in an argument, a URL, a log line or an error.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use super::error::{GitError, GitErrorKind};

/// How to authenticate to the remote.
#[derive(Debug, Clone, Default)]
pub enum RemoteAuth {
    /// No credentials (file://, git://, public https).
    #[default]
    None,
    /// A user name and a file holding the password or token.
    Password {
        /// User name.
        username: String,
        /// File holding the password.
        password_file: PathBuf,
    },
    /// An ssh key file, optionally with a known_hosts file.
    Ssh {
        /// Private key.
        key_file: PathBuf,
        /// known_hosts to verify the server.
        known_hosts: Option<PathBuf>,
    },
}

impl RemoteAuth {
    /// The setting that supplies these credentials, as the rules name it.
    pub fn describe(&self) -> &'static str {
        match self {
            Self::None => {
                "no git.auth: add a tokenFile, a username and passwordFile, or an sshKeyFile"
            }
            Self::Password { username, .. } if username == TOKEN_USER => "git.auth.tokenFile",
            Self::Password { .. } => "git.auth.username and passwordFile",
            Self::Ssh { .. } => "git.auth.sshKeyFile",
        }
    }
}

/// The user name a token is sent with (forges accept any; GitHub wants this one).
pub const TOKEN_USER: &str = "x-access-token";

/// The `git` command with our environment.
#[derive(Debug, Clone)]
pub struct Git {
    askpass: PathBuf,
    auth: RemoteAuth,
    timeout: Duration,
    /// `scheme://host[:port]` of the remote: the only origin credentials are sent to.
    origin: Option<String>,
}

/// `scheme://host[:port]` of an http(s) URL, without any user info.
fn origin_of(url: &str) -> Option<String> {
    let (scheme, rest) = url.split_once("://")?;
    if !scheme.eq_ignore_ascii_case("http") && !scheme.eq_ignore_ascii_case("https") {
        return None;
    }
    let authority = rest.split(['/', '?', '#']).next()?;
    let host = authority.rsplit_once('@').map_or(authority, |(_, h)| h);
    Some(format!("{scheme}://{host}"))
}

/// What `git` printed.
#[derive(Debug)]
pub struct Output {
    /// Standard output.
    pub stdout: String,
    /// Standard error.
    pub stderr: String,
}

/// Answers git's credential prompts (`Username for 'URL': `, `Password for 'URL': `) from
/// the environment, for `git.url`'s own origin only: a redirect to another origin that
/// asks for credentials gets none. Holds no secret itself.
const ASKPASS: &str = r#"#!/bin/sh
# Answers git's credential prompts from the environment, for git.url's origin only; holds no secret itself.
url=${1#*\'}
url=${url%\'*}
scheme=${url%%://*}
host=${url#*://}
host=${host#*@}
if [ "$scheme://$host" != "$TAGPROMOTER_GIT_ORIGIN" ]; then
  echo "error: tagpromoter sends git.url's credentials only to $TAGPROMOTER_GIT_ORIGIN, and $scheme://$host asked for them (a redirect to another origin?)" >&2
  exit 1
fi
case "$1" in
  Username*) printf '%s\n' "$TAGPROMOTER_GIT_USERNAME" ;;
  *) printf '%s\n' "$TAGPROMOTER_GIT_PASSWORD" ;;
esac
"#;

impl Git {
    /// A runner for the remote `url` whose askpass script lives in `dir`; a command running
    /// longer than `timeout` is killed and reported as a network failure.
    pub fn new(
        dir: &Path,
        url: &str,
        auth: RemoteAuth,
        timeout: Duration,
    ) -> Result<Self, GitError> {
        let askpass = dir.join("askpass.sh");
        let io = |e: std::io::Error| {
            GitError::new(
                GitErrorKind::Local,
                "preparing the git credential prompt",
                e.to_string(),
            )
        };
        if std::fs::read_to_string(&askpass).ok().as_deref() != Some(ASKPASS) {
            let tmp = dir.join(format!("askpass.sh.{}", std::process::id()));
            std::fs::write(&tmp, ASKPASS).map_err(io)?;
            set_executable(&tmp).map_err(io)?;
            std::fs::rename(&tmp, &askpass).map_err(io)?;
        }
        Ok(Self {
            askpass,
            auth,
            timeout,
            origin: origin_of(url),
        })
    }

    /// Run `git args…` in `dir`; an error (classified from git's own words) when it fails.
    pub async fn run(&self, dir: &Path, args: &[&str], step: &str) -> Result<Output, GitError> {
        let out = self.spawn(dir, args, step).await?;
        if out.0 {
            Ok(out.1)
        } else {
            Err(self.classify(step, &out.1.stderr))
        }
    }

    /// A failure classified from git's words; a refused authentication names the kind of
    /// credentials the rules gave, so that the fix is the right one.
    pub fn classify(&self, step: &str, stderr: &str) -> GitError {
        let mut e = classify(step, stderr);
        if e.kind == GitErrorKind::Auth {
            e.detail = format!(
                "{} (authenticating with {})",
                e.detail,
                self.auth.describe()
            );
        }
        e
    }

    /// Run `git args…`; `(succeeded, output)`, for callers that read failures themselves.
    pub async fn spawn(
        &self,
        dir: &Path,
        args: &[&str],
        step: &str,
    ) -> Result<(bool, Output), GitError> {
        let mut cmd = tokio::process::Command::new("git");
        cmd.current_dir(dir)
            // No credential helper of the machine's own, no prompts on a terminal.
            .args(["-c", "credential.helper=", "-c", "core.askPass="])
            // Prompts name the origin only, which the askpass compares.
            .args(["-c", "credential.useHttpPath=false"])
            .args(args)
            .env("GIT_TERMINAL_PROMPT", "0")
            .env("GIT_ASKPASS", &self.askpass)
            .env("LC_ALL", "C")
            .env_remove("GIT_DIR")
            .env_remove("GIT_WORK_TREE")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true);
        match &self.auth {
            RemoteAuth::None => {}
            RemoteAuth::Password {
                username,
                password_file,
            } => {
                let password = crate::secret::read(password_file).map_err(|e| {
                    GitError::new(
                        GitErrorKind::Auth,
                        step,
                        format!("git.auth.passwordFile: {e}"),
                    )
                })?;
                cmd.env("TAGPROMOTER_GIT_USERNAME", username);
                cmd.env("TAGPROMOTER_GIT_PASSWORD", password);
                if let Some(origin) = &self.origin {
                    cmd.env("TAGPROMOTER_GIT_ORIGIN", origin);
                }
            }
            RemoteAuth::Ssh {
                key_file,
                known_hosts,
            } => {
                // git runs GIT_SSH_COMMAND through the shell: quote the paths for it.
                let mut ssh = format!(
                    "ssh -i {} -o IdentitiesOnly=yes -o BatchMode=yes",
                    shell_quote(&key_file.display().to_string())
                );
                if let Some(kh) = known_hosts {
                    ssh.push_str(&format!(
                        " -o UserKnownHostsFile={} -o StrictHostKeyChecking=yes",
                        shell_quote(&kh.display().to_string())
                    ));
                }
                cmd.env("GIT_SSH_COMMAND", ssh);
            }
        }
        // kill_on_drop: when the timeout drops the future, the child goes with it.
        let out = tokio::time::timeout(self.timeout, cmd.output())
            .await
            .map_err(|_| {
                GitError::new(
                    GitErrorKind::Network,
                    step,
                    format!(
                        "git did not finish within {}s and was stopped",
                        self.timeout.as_secs()
                    ),
                )
            })?
            .map_err(|e| {
                GitError::new(
                    GitErrorKind::Local,
                    step,
                    format!("cannot run git: {e}; is git installed?"),
                )
            })?;
        Ok((
            out.status.success(),
            Output {
                stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
                stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
            },
        ))
    }
}

/// `'text'` for a POSIX shell, with embedded single quotes escaped.
fn shell_quote(text: &str) -> String {
    format!("'{}'", text.replace('\'', "'\\''"))
}

#[cfg(unix)]
fn set_executable(p: &Path) -> std::io::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(p, std::fs::Permissions::from_mode(0o700))
}

#[cfg(not(unix))]
fn set_executable(_: &Path) -> std::io::Result<()> {
    Ok(())
}

/// The `remote:` lines git relayed (a hook's or a forge's message), without the prefix.
pub fn remote_lines(stderr: &str) -> String {
    stderr
        .lines()
        .filter_map(|l| l.strip_prefix("remote:"))
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .collect::<Vec<_>>()
        .join(" / ")
}

/// Classify a failed git command by what it printed.
pub fn classify(step: &str, stderr: &str) -> GitError {
    let lower = stderr.to_ascii_lowercase();
    let has = |words: &[&str]| words.iter().any(|w| lower.contains(w));
    let kind = if has(&[
        "authentication failed",
        "could not read username",
        "could not read password",
        "terminal prompts disabled",
        "permission denied (publickey",
        "access denied",
        "returned error: 401",
        "returned error: 403",
        "host key verification failed",
    ]) {
        GitErrorKind::Auth
    } else if has(&[
        "not found",
        "does not appear to be a git repository",
        "couldn't find remote ref",
        "no such repository",
        "not a git repository",
    ]) {
        GitErrorKind::NotFound
    } else if has(&[
        "[remote rejected]",
        "pre-receive hook declined",
        "protected branch",
    ]) {
        GitErrorKind::Rejected
    } else {
        GitErrorKind::Network
    };
    let detail = last_meaningful_line(stderr);
    let remote = remote_lines(stderr);
    let detail = if remote.is_empty() || kind != GitErrorKind::Rejected {
        detail
    } else {
        format!("{detail} (remote said: {remote})")
    };
    GitError::new(kind, step, redact_urls(&detail))
}

fn last_meaningful_line(stderr: &str) -> String {
    stderr
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with("hint:"))
        .find(|l| l.starts_with("fatal:") || l.starts_with("error:"))
        .or_else(|| stderr.lines().rev().map(str::trim).find(|l| !l.is_empty()))
        .unwrap_or("git failed without a message")
        .to_string()
}

/// Remove `user:password@` from any URL in a message.
pub fn redact_urls(s: &str) -> String {
    rewrite_urls(s, false)
}

/// Remove user info and query strings (where tokens ride) from any URL in a message: for
/// what unauthenticated readers see.
pub fn redact_urls_and_queries(s: &str) -> String {
    rewrite_urls(s, true)
}

/// Every URL in `s` with its user info replaced by `***@`, and its query string by `?…`
/// when `queries`.
fn rewrite_urls(s: &str, queries: bool) -> String {
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    while let Some(i) = rest.find("://") {
        let (head, tail) = rest.split_at(i + 3);
        out.push_str(head);
        let end = tail
            .find(|c: char| c.is_whitespace() || matches!(c, '\'' | '"' | '<' | '>' | ')'))
            .unwrap_or(tail.len());
        let url = &tail[..end];
        let authority_end = url.find(['/', '?', '#']).unwrap_or(url.len());
        let (authority, path) = url.split_at(authority_end);
        match authority.rsplit_once('@') {
            Some((_, host)) => {
                out.push_str("***@");
                out.push_str(host);
            }
            None => out.push_str(authority),
        }
        match path.split_once('?').filter(|_| queries) {
            Some((before, _)) => {
                out.push_str(before);
                out.push_str("?…");
            }
            None => out.push_str(path),
        }
        rest = &tail[end..];
    }
    out.push_str(rest);
    out
}

/// One ref's result in `git push --porcelain` output.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PushedRef {
    /// The flag: ' ' fast-forward, '*' new, '=' up to date, '!' rejected, '+' forced.
    pub flag: char,
    /// The remote ref.
    pub remote_ref: String,
    /// The summary (`[rejected]`, `[remote rejected]`, `abc..def`).
    pub summary: String,
}

/// Parse the per-ref lines of `git push --porcelain`.
pub fn parse_porcelain(stdout: &str) -> Vec<PushedRef> {
    stdout
        .lines()
        .filter_map(|line| {
            let mut parts = line.splitn(3, '\t');
            let flag = parts.next()?.chars().next()?;
            let refs = parts.next()?;
            let summary = parts.next()?.to_string();
            let remote_ref = refs.split_once(':').map_or(refs, |(_, r)| r).to_string();
            Some(PushedRef {
                flag,
                remote_ref,
                summary,
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shell_quoting() {
        assert_eq!(shell_quote("/k/id"), "'/k/id'");
        assert_eq!(shell_quote("/k/it's"), "'/k/it'\\''s'");
    }

    #[test]
    fn porcelain_lines() {
        let out = "To http://127.0.0.1/git/r.git\n!\trefs/heads/x:refs/heads/main\t[rejected] (non-fast-forward)\nDone\n";
        let refs = parse_porcelain(out);
        assert_eq!(refs.len(), 1);
        assert_eq!(refs[0].flag, '!');
        assert_eq!(refs[0].remote_ref, "refs/heads/main");
        assert!(refs[0].summary.contains("non-fast-forward"));
        let ok = parse_porcelain("To x\n \tabc:refs/heads/main\t1111111..2222222\nDone\n");
        assert_eq!(ok[0].flag, ' ');
    }

    #[test]
    fn credentials_go_to_the_remotes_origin_only() {
        assert_eq!(
            origin_of("https://user@git.example.com:8443/acme/deploys.git").as_deref(),
            Some("https://git.example.com:8443")
        );
        assert_eq!(
            origin_of("http://127.0.0.1:9/git/d.git").as_deref(),
            Some("http://127.0.0.1:9")
        );
        assert_eq!(origin_of("git@github.com:acme/deploys.git"), None);
        assert_eq!(origin_of("file:///srv/deploys.git"), None);
    }

    #[test]
    fn classification_and_redaction() {
        let e = classify(
            "pushing",
            "fatal: Authentication failed for 'https://bob:s3cret@git.example/x.git/'\n",
        );
        assert_eq!(e.kind, GitErrorKind::Auth);
        assert!(!e.to_string().contains("s3cret"), "{e}");
        let e = classify(
            "pushing",
            "remote: prod is protected\nTo x\n ! [remote rejected] main -> main (pre-receive hook declined)\nerror: failed to push some refs\n",
        );
        assert_eq!(e.kind, GitErrorKind::Rejected);
        assert!(e.to_string().contains("prod is protected"), "{e}");
        let e = classify(
            "fetching",
            "fatal: unable to access 'http://127.0.0.1:1/x/': Failed to connect\n",
        );
        assert_eq!(e.kind, GitErrorKind::Network);
        let e = classify(
            "fetching",
            "fatal: repository 'http://h/x.git/' not found\n",
        );
        assert_eq!(e.kind, GitErrorKind::NotFound);
    }
}

//! Real git servers for tests: `git daemon` with receive-pack, and `git http-backend` behind
//! nginx + fcgiwrap with basic auth. Plus helpers to make and inspect bare repositories.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use super::{Process, free_port, require, wait_for_http};

/// Run git in `dir`; panics with its stderr on failure; returns stdout.
pub fn git(dir: &Path, args: &[&str]) -> String {
    let out = Command::new("git")
        .current_dir(dir)
        .args([
            "-c",
            "user.name=A Person",
            "-c",
            "user.email=person@example.com",
            "-c",
            "init.defaultBranch=main",
        ])
        .args(args)
        .env("GIT_TERMINAL_PROMPT", "0")
        .output()
        .expect("git runs");
    assert!(
        out.status.success(),
        "git {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// A bare repository `name.git` under `base`, whose `main` holds `files`.
pub fn bare_repo(base: &Path, name: &str, files: &[(&str, &str)]) -> PathBuf {
    bare_repo_at(base, name, files, None)
}

/// [`bare_repo`], its one commit made at `date` (RFC 3339) when given.
pub fn bare_repo_at(
    base: &Path,
    name: &str,
    files: &[(&str, &str)],
    date: Option<&str>,
) -> PathBuf {
    let work = tempfile::tempdir().expect("temp dir");
    git(work.path(), &["init", "-q", "-b", "main"]);
    for (path, text) in files {
        let p = work.path().join(path);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, text).unwrap();
    }
    git(work.path(), &["add", "-A"]);
    commit_at(work.path(), &["-m", "initial"], date);
    let bare = base.join(format!("{name}.git"));
    git(
        base,
        &[
            "clone",
            "-q",
            "--bare",
            work.path().to_str().unwrap(),
            bare.to_str().unwrap(),
        ],
    );
    // Let http-backend accept pushes without a per-repo switch.
    git(&bare, &["config", "http.receivepack", "true"]);
    bare
}

/// `git commit -q ARGS` in `dir` as A Person, dated `date` (RFC 3339) when given.
pub fn commit_at(dir: &Path, args: &[&str], date: Option<&str>) {
    let mut commit = Command::new("git");
    commit
        .current_dir(dir)
        .args([
            "-c",
            "user.name=A Person",
            "-c",
            "user.email=person@example.com",
            "commit",
            "-q",
        ])
        .args(args);
    if let Some(date) = date {
        commit
            .env("GIT_AUTHOR_DATE", date)
            .env("GIT_COMMITTER_DATE", date);
    }
    let out = commit.output().expect("git runs");
    assert!(
        out.status.success(),
        "git commit {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Install a `pre-receive` hook that rejects commits touching `*/prod/*`.
pub fn protect_prod(bare: &Path) {
    let hook = bare.join("hooks/pre-receive");
    std::fs::write(
        &hook,
        "#!/bin/sh\nwhile read old new ref; do\n  if git diff --name-only \"$old\" \"$new\" 2>/dev/null | grep -q '/prod/'; then\n    echo \"prod is protected: open a pull request <!channel> <https://evil.example/|details> & more\" >&2\n    exit 1\n  fi\ndone\n",
    )
    .unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&hook, std::fs::Permissions::from_mode(0o755)).unwrap();
}

fn install_hook(bare: &Path, name: &str, body: &str) {
    let hook = bare.join("hooks").join(name);
    std::fs::write(&hook, body).unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&hook, std::fs::Permissions::from_mode(0o755)).unwrap();
}

/// The shell lines of a `pre-receive` hook that commits, as a person, `file` = `content` on
/// top of the branch being pushed to, moving it before the push's own update (which then
/// fails as a non-fast-forward: someone pushed between the pusher's fetch and push).
fn person_commit_lines(file: &str, content: &str, message: &str) -> String {
    r#"unset GIT_QUARANTINE_PATH GIT_OBJECT_DIRECTORY GIT_ALTERNATE_OBJECT_DIRECTORIES
read old new ref
export GIT_INDEX_FILE="$(mktemp -u)"
git read-tree "$old"
blob=$(printf '%s' '@@CONTENT@@' | git hash-object -w --stdin)
git update-index --cacheinfo "100644,$blob,@@FILE@@"
tree=$(git write-tree)
rm -f "$GIT_INDEX_FILE"
c=$(echo '@@MESSAGE@@' | GIT_AUTHOR_NAME='A Person' GIT_AUTHOR_EMAIL=person@example.com GIT_COMMITTER_NAME='A Person' GIT_COMMITTER_EMAIL=person@example.com git commit-tree "$tree" -p "$old")
git update-ref "$ref" "$c" "$old"
"#
    .replace("@@CONTENT@@", content)
    .replace("@@FILE@@", file)
    .replace("@@MESSAGE@@", message)
}

/// A `pre-receive` hook that, on the first push only, lands a person's commit setting
/// `file` to `content` just before the push updates the branch.
pub fn person_pushes_first_once(bare: &Path, file: &str, content: &str, message: &str) {
    let guard = bare.join("person-pushed");
    let once = format!(
        "[ -e '{0}' ] && exit 0\ntouch '{0}'\n{1}",
        guard.display(),
        person_commit_lines(file, content, message)
    );
    install_hook(
        bare,
        "pre-receive",
        &format!("#!/bin/sh\nset -e\n{once}exit 0\n"),
    );
}

/// A `pre-receive` hook under which a person always pushes first: the branch never stops
/// moving.
pub fn person_always_pushes_first(bare: &Path, file: &str) {
    let lines = person_commit_lines(file, "busy\n", "busy");
    install_hook(
        bare,
        "pre-receive",
        &format!("#!/bin/sh\nset -e\n{lines}exit 0\n"),
    );
}

/// `git daemon` serving every repository under `base`, pushes enabled.
pub struct GitDaemon {
    /// `git://127.0.0.1:PORT/`.
    pub url: String,
    _process: Process,
}

impl GitDaemon {
    pub fn start(base: &Path) -> Self {
        require("git");
        let exec = git(base, &["--exec-path"]).trim().to_string();
        let daemon = Path::new(&exec).join("git-daemon");
        assert!(daemon.is_file(), "git-daemon is missing from {exec}");
        let port = free_port();
        let child = Command::new(daemon)
            .args([
                "--reuseaddr",
                "--listen=127.0.0.1",
                &format!("--port={port}"),
            ])
            .arg(format!("--base-path={}", base.display()))
            .args([
                "--export-all",
                "--enable=receive-pack",
                "--informative-errors",
            ])
            .arg(base)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("git daemon starts");
        let process = Process { child };
        for _ in 0..200 {
            if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
                break;
            }
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
        Self {
            url: format!("git://127.0.0.1:{port}/"),
            _process: process,
        }
    }
}

/// nginx + fcgiwrap + git http-backend with basic auth, serving repositories under `base`.
pub struct GitHttp {
    /// `http://127.0.0.1:PORT/git/`.
    pub url: String,
    nginx: Option<std::process::Child>,
    fcgiwrap: Option<std::process::Child>,
    _dir: tempfile::TempDir,
}

impl GitHttp {
    pub fn start(base: &Path, user: &str, password: &str) -> Self {
        let nginx_bin = require("nginx");
        let fcgiwrap_bin = require("fcgiwrap");
        let htpasswd = require("htpasswd");
        let exec = git(base, &["--exec-path"]).trim().to_string();
        let dir = tempfile::tempdir().expect("temp dir");
        let w = dir.path();
        for sub in ["body", "proxy", "fcgi", "uwsgi", "scgi"] {
            std::fs::create_dir_all(w.join("tmp").join(sub)).unwrap();
        }
        let status = Command::new(htpasswd)
            .arg("-bc")
            .arg(w.join("htpasswd"))
            .args([user, password])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .unwrap();
        assert!(status.success());
        let sock = w.join("fcgiwrap.sock");
        let fcgiwrap = Command::new(fcgiwrap_bin)
            .args(["-c", "4", "-s", &format!("unix:{}", sock.display())])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("fcgiwrap starts");
        let port = free_port();
        let conf = format!(
            r#"daemon off;
user root;
worker_processes 1;
error_log {w}/err.log;
pid {w}/nginx.pid;
events {{ worker_connections 64; }}
http {{
  access_log off;
  client_body_temp_path {w}/tmp/body;
  proxy_temp_path {w}/tmp/proxy;
  fastcgi_temp_path {w}/tmp/fcgi;
  uwsgi_temp_path {w}/tmp/uwsgi;
  scgi_temp_path {w}/tmp/scgi;
  server {{
    listen 127.0.0.1:{port};
    location ~ ^/git(?<git_path>/.*)$ {{
      auth_basic "git";
      auth_basic_user_file {w}/htpasswd;
      client_max_body_size 0;
      fastcgi_pass unix:{sock};
      fastcgi_param SCRIPT_FILENAME {exec}/git-http-backend;
      fastcgi_param GIT_PROJECT_ROOT {base};
      fastcgi_param GIT_HTTP_EXPORT_ALL "";
      fastcgi_param PATH_INFO $git_path;
      fastcgi_param REMOTE_USER $remote_user;
      fastcgi_param QUERY_STRING $query_string;
      fastcgi_param REQUEST_METHOD $request_method;
      fastcgi_param CONTENT_TYPE $content_type;
      fastcgi_param CONTENT_LENGTH $content_length;
    }}
  }}
}}
"#,
            w = w.display(),
            sock = sock.display(),
            base = base.display(),
        );
        std::fs::write(w.join("nginx.conf"), conf).unwrap();
        for _ in 0..200 {
            if sock.exists() {
                break;
            }
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
        let nginx = Command::new(nginx_bin)
            .arg("-e")
            .arg(w.join("err.log"))
            .arg("-c")
            .arg(w.join("nginx.conf"))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("nginx starts");
        let addr = format!("127.0.0.1:{port}");
        wait_for_http(&addr, "/git/");
        Self {
            url: format!("http://{addr}/git/"),
            nginx: Some(nginx),
            fcgiwrap: Some(fcgiwrap),
            _dir: dir,
        }
    }
}

impl Drop for GitHttp {
    fn drop(&mut self) {
        if let Some(mut n) = self.nginx.take() {
            let _ = Command::new("kill")
                .args(["-TERM", &n.id().to_string()])
                .status();
            let _ = n.wait();
        }
        if let Some(mut f) = self.fcgiwrap.take() {
            // fcgiwrap's children survive SIGTERM to their parent.
            let _ = Command::new("pkill")
                .args(["-TERM", "-P", &f.id().to_string()])
                .status();
            let _ = f.kill();
            let _ = f.wait();
        }
    }
}

/// `sshd` on 127.0.0.1 that lets `root` in with a generated key (git over ssh).
pub struct SshServer {
    /// Port.
    pub port: u16,
    /// The client's private key.
    pub client_key: PathBuf,
    /// A known_hosts file that trusts this server.
    pub known_hosts: PathBuf,
    dir: tempfile::TempDir,
    _process: Process,
}

impl SshServer {
    pub fn start() -> Self {
        let sshd = require("sshd");
        let keygen = require("ssh-keygen");
        let dir = tempfile::tempdir().expect("temp dir");
        let d = dir.path();
        for key in ["host_key", "client_key"] {
            let status = Command::new(&keygen)
                .args(["-q", "-t", "ed25519", "-N", "", "-f"])
                .arg(d.join(key))
                .status()
                .unwrap();
            assert!(status.success());
        }
        std::fs::copy(d.join("client_key.pub"), d.join("authorized_keys")).unwrap();
        // sshd insists on its privilege separation directory.
        let _ = std::fs::create_dir_all("/run/sshd");
        let port = free_port();
        std::fs::write(
            d.join("sshd_config"),
            format!(
                "Port {port}\nListenAddress 127.0.0.1\nHostKey {d}/host_key\nPidFile {d}/sshd.pid\nAuthorizedKeysFile {d}/authorized_keys\nStrictModes no\nPasswordAuthentication no\nKbdInteractiveAuthentication no\nPubkeyAuthentication yes\nPermitRootLogin prohibit-password\nUsePAM no\nLogLevel ERROR\n",
                d = d.display()
            ),
        )
        .unwrap();
        let child = Command::new(sshd)
            .args(["-D", "-e", "-f"])
            .arg(d.join("sshd_config"))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("sshd starts");
        let process = Process { child };
        for _ in 0..200 {
            if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
                break;
            }
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
        let host_pub = std::fs::read_to_string(d.join("host_key.pub")).unwrap();
        let known_hosts = d.join("known_hosts");
        std::fs::write(&known_hosts, format!("[127.0.0.1]:{port} {host_pub}")).unwrap();
        Self {
            port,
            client_key: d.join("client_key"),
            known_hosts,
            dir,
            _process: process,
        }
    }

    /// Another key, not authorized.
    pub fn stranger_key(&self) -> PathBuf {
        let key = self.dir.path().join("stranger_key");
        if !key.exists() {
            let status = Command::new("ssh-keygen")
                .args(["-q", "-t", "ed25519", "-N", "", "-f"])
                .arg(&key)
                .status()
                .unwrap();
            assert!(status.success());
        }
        key
    }
}

/// Append `n` commits to `main` of the bare repository `bare` that touch only
/// `notes/log.txt`, one a minute from `first` (Unix seconds): hundreds of unrelated commits
/// in one `git fast-import`, as a busy repository has them between two bumps.
pub fn append_commits(bare: &Path, n: usize, first: i64) {
    let tip = git(bare, &["rev-parse", "main"]);
    let mut stream = String::new();
    for i in 0..n {
        let when = first + 60 * i as i64;
        let content = format!("{i}\n");
        let msg = format!("docs: note {i}\n");
        stream.push_str(&format!(
            "commit refs/heads/main\ncommitter A Person <person@example.com> {when} +0000\ndata {}\n{msg}",
            msg.len()
        ));
        if i == 0 {
            stream.push_str(&format!("from {}\n", tip.trim()));
        }
        stream.push_str(&format!(
            "M 100644 inline notes/log.txt\ndata {}\n{content}\n",
            content.len()
        ));
    }
    let mut child = Command::new("git")
        .current_dir(bare)
        .args(["fast-import", "--quiet"])
        .stdin(Stdio::piped())
        .spawn()
        .expect("git fast-import runs");
    use std::io::Write;
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(stream.as_bytes())
        .expect("stream written");
    assert!(child.wait().expect("fast-import ends").success());
}

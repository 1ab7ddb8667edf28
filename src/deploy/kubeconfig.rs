//! What a cluster's kubeconfig may make tagpromoter do, decided before it is used. By
//! default only a token, a token file or a client certificate (or, with no kubeconfig, the
//! service account the worker runs as): a command the kubeconfig names (`exec`,
//! `auth-provider`) would run beside the git, registry and forge credentials, skipping TLS
//! verification lets anyone on the path read the token, and a proxy sends it elsewhere — each
//! only where the cluster in Settings allows it (`allowExecPlugins`,
//! `allowInsecureSkipTlsVerify`, `allowProxyUrl`).
//!
//! [`vet`] is pure (the parsed file and its text, for lines); [`run_exec`] runs an allowed
//! plugin: within [`EXEC_TIMEOUT`], with only `PATH`, `HOME` and what the kubeconfig's
//! `env:` sets, its output bounded, and its failure told without its output.

use std::time::Duration;

use kube::config::{AuthInfo, ExecConfig, Kubeconfig};

use crate::rules::Cluster;

/// How long an allowed exec plugin may run.
pub const EXEC_TIMEOUT: Duration = Duration::from_secs(10);

/// The most an exec plugin may print.
const MAX_EXEC_OUTPUT: usize = 1 << 20;

/// Something the kubeconfig asks that its cluster's settings do not allow.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal {
    /// Its line in the kubeconfig (1-based), where found.
    pub line: Option<usize>,
    /// What it asks, and how to allow it.
    pub message: String,
}

/// The user and cluster entries the kubeconfig's context (`cluster.context`, else its
/// `current-context`) uses, by name.
pub fn context_of(file: &Kubeconfig, cluster: &Cluster) -> Option<(String, String)> {
    let name = cluster
        .context
        .clone()
        .or_else(|| file.current_context.clone())?;
    let context = file
        .contexts
        .iter()
        .find(|c| c.name == name)?
        .context
        .as_ref()?;
    Some((
        context.user.clone().unwrap_or_default(),
        context.cluster.clone(),
    ))
}

/// What the kubeconfig (parsed `file`, its `text`) of `cluster` asks that the cluster's
/// settings do not allow.
pub fn vet(file: &Kubeconfig, text: &str, cluster: &Cluster) -> Vec<Refusal> {
    let mut refusals = Vec::new();
    let Some((user, server)) = context_of(file, cluster) else {
        return refusals;
    };
    let auth = file
        .auth_infos
        .iter()
        .find(|a| a.name == user)
        .and_then(|a| a.auth_info.as_ref());
    if let Some(auth) = auth {
        if let (Some(exec), false) = (&auth.exec, cluster.allow_exec_plugins) {
            refusals.push(Refusal {
                line: line_of(text, &user, "exec:"),
                message: format!(
                    "user {user:?} gets its credentials by running a command ({}); tagpromoter runs none unless the cluster {:?} in Settings sets allowExecPlugins: true (then within {}s, with only PATH, HOME and the env: it sets), or use a token or client certificate",
                    exec.command.as_deref().unwrap_or("no command"),
                    cluster.name,
                    EXEC_TIMEOUT.as_secs()
                ),
            });
        }
        if auth.auth_provider.is_some() {
            refusals.push(Refusal {
                line: line_of(text, &user, "auth-provider:"),
                message: format!(
                    "user {user:?} uses an auth-provider plugin, which tagpromoter does not run; use a token, a client certificate, or an exec plugin with allowExecPlugins: true"
                ),
            });
        }
    }
    let entry = file
        .clusters
        .iter()
        .find(|c| c.name == server)
        .and_then(|c| c.cluster.as_ref());
    if let Some(entry) = entry {
        if entry.insecure_skip_tls_verify == Some(true) && !cluster.allow_insecure_skip_tls_verify {
            refusals.push(Refusal {
                line: line_of(text, &server, "insecure-skip-tls-verify:"),
                message: format!(
                    "cluster {server:?} skips TLS verification: anyone on the way could read the credentials; give its certificate-authority, or set allowInsecureSkipTlsVerify: true on the cluster {:?} in Settings",
                    cluster.name
                ),
            });
        }
        if entry.proxy_url.is_some() && !cluster.allow_proxy_url {
            refusals.push(Refusal {
                line: line_of(text, &server, "proxy-url:"),
                message: format!(
                    "cluster {server:?} is reached through a proxy, which would see the credentials; remove proxy-url, or set allowProxyUrl: true on the cluster {:?} in Settings",
                    cluster.name
                ),
            });
        }
    }
    refusals
}

/// The line (1-based) of the first `key` after the entry named `name`.
fn line_of(text: &str, name: &str, key: &str) -> Option<usize> {
    let lines: Vec<&str> = text.lines().collect();
    let named = lines.iter().position(|l| {
        let l = l.trim().trim_start_matches("- ").trim();
        l.strip_prefix("name:")
            .is_some_and(|v| v.trim().trim_matches(|c| c == '"' || c == '\'') == name)
    });
    let after = named.unwrap_or(0);
    lines
        .iter()
        .enumerate()
        .skip(after)
        .find(|(_, l)| l.trim().trim_start_matches("- ").starts_with(key))
        .or_else(|| {
            lines
                .iter()
                .enumerate()
                .find(|(_, l)| l.trim().trim_start_matches("- ").starts_with(key))
        })
        .map(|(i, _)| i + 1)
}

/// What an exec plugin printed: the credentials, and until when they hold.
#[derive(Debug)]
pub struct Credential {
    /// `auth_info` with the plugin's credentials in place of the plugin.
    pub auth_info: AuthInfo,
    /// When they expire, if the plugin says.
    pub expires: Option<jiff::Timestamp>,
}

/// Run the exec plugin of `auth_info` (allowed by its cluster's settings): within
/// [`EXEC_TIMEOUT`], with only `PATH`, `HOME`, `KUBERNETES_EXEC_INFO` and the `env:` the
/// kubeconfig sets; its output read up to 1 MiB. A failure says what failed, never what
/// the plugin printed (it may be a secret).
pub async fn run_exec(auth_info: &AuthInfo) -> Result<Credential, String> {
    let Some(exec) = &auth_info.exec else {
        return Err("no exec plugin".into());
    };
    let output = run(exec).await?;
    let credential: serde_json::Value = serde_json::from_slice(&output)
        .map_err(|_| "it did not print an ExecCredential (JSON)".to_string())?;
    let status = credential
        .get("status")
        .ok_or("its ExecCredential has no status")?;
    let text = |key: &str| status.get(key).and_then(|v| v.as_str()).map(str::to_string);
    let mut with = auth_info.clone();
    with.exec = None;
    for secret in [text("token"), text("clientKeyData")].into_iter().flatten() {
        crate::secret::remember(&secret);
    }
    match (
        text("token"),
        text("clientCertificateData"),
        text("clientKeyData"),
    ) {
        (Some(token), _, _) => with.token = Some(secrecy::SecretString::from(token)),
        (None, Some(certificate), Some(key)) => {
            use base64::Engine as _;
            let encode = |s: String| base64::engine::general_purpose::STANDARD.encode(s);
            with.client_certificate_data = Some(encode(certificate));
            with.client_key_data = Some(secrecy::SecretString::from(encode(key)));
        }
        _ => return Err("its ExecCredential holds no token and no client certificate".into()),
    }
    let expires = text("expirationTimestamp").and_then(|t| t.parse().ok());
    Ok(Credential {
        auth_info: with,
        expires,
    })
}

/// The plugin's standard output, if it exited 0 in time.
async fn run(exec: &ExecConfig) -> Result<Vec<u8>, String> {
    use tokio::io::AsyncReadExt as _;
    let command = exec
        .command
        .as_deref()
        .ok_or("the exec plugin names no command")?;
    let mut cmd = tokio::process::Command::new(command);
    cmd.args(exec.args.iter().flatten())
        .env_clear()
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .kill_on_drop(true)
        // Its own process group: what it starts goes with it.
        .process_group(0);
    for name in ["PATH", "HOME"] {
        if let Some(value) = std::env::var_os(name) {
            cmd.env(name, value);
        }
    }
    let api_version = exec
        .api_version
        .as_deref()
        .unwrap_or("client.authentication.k8s.io/v1");
    cmd.env(
        "KUBERNETES_EXEC_INFO",
        serde_json::json!({
            "apiVersion": api_version,
            "kind": "ExecCredential",
            "spec": { "interactive": false }
        })
        .to_string(),
    );
    for pair in exec.env.iter().flatten() {
        if let (Some(name), Some(value)) = (pair.get("name"), pair.get("value")) {
            cmd.env(name, value);
        }
    }
    let mut child = cmd
        .spawn()
        .map_err(|e| format!("its command {command:?} cannot be started ({})", e.kind()))?;
    let mut stdout = child.stdout.take().ok_or("no output")?;
    let pid = child.id();
    let ran = async {
        let mut output = Vec::new();
        let mut limited = (&mut stdout).take(MAX_EXEC_OUTPUT as u64 + 1);
        limited
            .read_to_end(&mut output)
            .await
            .map_err(|e| format!("its output could not be read ({})", e.kind()))?;
        if output.len() > MAX_EXEC_OUTPUT {
            return Err("it printed more than 1 MiB".to_string());
        }
        let status = child
            .wait()
            .await
            .map_err(|e| format!("it could not be waited for ({})", e.kind()))?;
        match status.success() {
            true => Ok(output),
            false => Err(format!("its command {command:?} failed ({status})")),
        }
    };
    let result = tokio::time::timeout(EXEC_TIMEOUT, ran).await;
    // Whatever it left running (a child still holding its output) is stopped too.
    if let Some(pid) = pid {
        kill_group(pid);
    }
    result.map_err(|_| {
        format!(
            "its command {command:?} did not finish within {}s",
            EXEC_TIMEOUT.as_secs()
        )
    })?
}

/// Stop every process of the group `pid` leads.
fn kill_group(pid: u32) {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    if let Ok(pid) = i32::try_from(pid) {
        // SAFETY: kill(2) with a negative pid signals that process group; it touches no
        // memory of ours. A group already gone is an error we ignore.
        unsafe {
            libc::kill(-pid, libc::SIGKILL);
        }
    }
    #[cfg(not(all(target_os = "linux", target_env = "gnu")))]
    let _ = pid;
}

//! Decoding `Settings` documents: the GitOps repository, registries, alerts.

use std::path::PathBuf;

use jiff::SignedDuration;

use crate::rules::model::*;
use crate::yaml::Node;

use super::Decoder;

impl<'a> Decoder<'a> {
    pub(super) fn settings(&mut self, spec: &'a Node) -> Option<Settings> {
        let f = self.fields(
            spec,
            "Settings spec",
            &[
                "git",
                "repositories",
                "registries",
                "alerts",
                "interval",
                "receivers",
                "clusters",
                "render",
            ],
        )?;
        let git = self
            .required(&f, "git", "Settings spec")
            .and_then(|n| self.git(n, "git", &[]));
        let repositories = f
            .get("repositories")
            .map(|n| self.repositories(n))
            .unwrap_or_default();
        let registries = f
            .get("registries")
            .map(|n| self.registries(n))
            .unwrap_or_default();
        let alerts = f
            .get("alerts")
            .map_or(Some(Alerts::default()), |n| self.alerts(n));
        let interval = match f.get("interval") {
            None => Some(SignedDuration::from_mins(2)),
            Some(n) => self.positive_duration(n, "interval"),
        };
        let receivers = f
            .get("receivers")
            .map(|n| self.receivers(n))
            .unwrap_or_default();
        let clusters = f
            .get("clusters")
            .map(|n| self.clusters(n))
            .unwrap_or_default();
        let render = match f.get("render") {
            None => Some(RenderMode::Auto),
            Some(n) => match self.string(n, "render").as_deref() {
                Some("auto") => Some(RenderMode::Auto),
                Some("always") => Some(RenderMode::Always),
                Some("never") => Some(RenderMode::Never),
                Some(other) => {
                    self.error(
                        n.position,
                        format!("render {other:?} is not supported; use auto, always or never"),
                    );
                    None
                }
                None => None,
            },
        };
        Some(Settings {
            render: render?,
            clusters,
            git: git?,
            repositories,
            registries,
            alerts: alerts?,
            interval: interval?,
            receivers,
        })
    }

    /// A repository's `url`, `branch`, `auth`, `author` and `forge` (and the `extra` keys
    /// its caller reads), named `at` in messages.
    fn git(&mut self, node: &'a Node, at: &str, extra: &[&str]) -> Option<Git> {
        let mut keys = vec!["url", "branch", "auth", "author", "forge"];
        keys.extend_from_slice(extra);
        let f = self.fields(node, at, &keys)?;
        let url = self.required(&f, "url", at).and_then(|n| {
            let url = self.string(n, &format!("{at}.url"))?;
            if let Some(why) = credentials_in(&url) {
                self.error(n.position, format!("{at}.url holds {why}, which would reach git's arguments and logs; remove it from the URL, put the secret in a file and name it in {at}.auth (tokenFile, or username and passwordFile)"));
                return None;
            }
            let ok = ["https://", "http://", "ssh://", "file://", "git://", "/", "./", "../"].iter().any(|p| url.starts_with(p))
                || (url.contains('@') && url.contains(':'));
            if !ok {
                self.error(n.position, format!("{at}.url {url:?} is not a repository URL; use https://, ssh://, git://, git@host:path, file:// or a local path (/srv/git/deploys.git, ./deploys.git)"));
                return None;
            }
            Some(url)
        });
        let branch = match f.get("branch") {
            None => Some(default_branch()),
            Some(n) => self.string(n, &format!("{at}.branch")),
        };
        let auth = match f.get("auth") {
            None => Some(None),
            Some(n) => self.git_auth(n, at).map(Some),
        };
        let author = match f.get("author") {
            None => Some(Author::default()),
            Some(n) => self.author(n, at),
        };
        let forge = match f.get("forge") {
            None => Some(None),
            Some(n) => self.forge(n, at).map(Some),
        };
        Some(Git {
            url: url?,
            branch: branch?,
            auth: auth?,
            author: author?,
            forge: forge?,
        })
    }

    fn git_auth(&mut self, node: &'a Node, at: &str) -> Option<GitAuth> {
        let f = self.fields(
            node,
            &format!("{at}.auth"),
            &[
                "tokenFile",
                "username",
                "passwordFile",
                "sshKeyFile",
                "knownHostsFile",
            ],
        )?;
        let path = |d: &mut Self, key: &str| {
            f.get(key)
                .and_then(|n| d.string(n, &format!("{at}.auth.{key}")))
                .map(PathBuf::from)
        };
        let kinds = ["tokenFile", "passwordFile", "sshKeyFile"]
            .iter()
            .filter(|k| f.get(k).is_some())
            .count();
        if kinds != 1 {
            self.error(
                f.position,
                format!("{at}.auth needs exactly one of tokenFile, username + passwordFile, or sshKeyFile"),
            );
            return None;
        }
        if let Some(token_file) = path(self, "tokenFile") {
            return Some(GitAuth::Token { token_file });
        }
        if let Some(password_file) = path(self, "passwordFile") {
            let username = self
                .required(&f, "username", &format!("{at}.auth with passwordFile"))
                .and_then(|n| self.string(n, &format!("{at}.auth.username")))?;
            return Some(GitAuth::Password {
                username,
                password_file,
            });
        }
        let ssh_key_file = path(self, "sshKeyFile")?;
        Some(GitAuth::SshKey {
            ssh_key_file,
            known_hosts_file: path(self, "knownHostsFile"),
        })
    }

    fn author(&mut self, node: &'a Node, at: &str) -> Option<Author> {
        let f = self.fields(node, &format!("{at}.author"), &["name", "email"])?;
        let default = Author::default();
        let name = f.get("name").map_or(Some(default.name), |n| {
            self.string(n, &format!("{at}.author.name"))
        });
        let email = f.get("email").map_or(Some(default.email), |n| {
            self.string(n, &format!("{at}.author.email"))
        });
        Some(Author {
            name: name?,
            email: email?,
        })
    }

    fn forge(&mut self, node: &'a Node, at: &str) -> Option<Forge> {
        let f = self.fields(
            node,
            &format!("{at}.forge"),
            &["kind", "apiUrl", "tokenFile", "project"],
        )?;
        let kind = self
            .required(&f, "kind", &format!("{at}.forge"))
            .and_then(|n| {
                let k = self.string(n, &format!("{at}.forge.kind"))?;
                match k.as_str() {
                    "github" => Some(ForgeKind::Github),
                    "gitlab" => Some(ForgeKind::Gitlab),
                    "gitea" => Some(ForgeKind::Gitea),
                    _ => {
                        self.error(
                        n.position,
                        format!(
                            "{at}.forge.kind {k:?} is not supported; use github, gitlab or gitea"
                        ),
                    );
                        None
                    }
                }
            });
        let api_url = self
            .required(&f, "apiUrl", &format!("{at}.forge"))
            .and_then(|n| self.url(n, &format!("{at}.forge.apiUrl")));
        let token_file = self
            .required(&f, "tokenFile", &format!("{at}.forge"))
            .and_then(|n| self.string(n, &format!("{at}.forge.tokenFile")));
        let project = match f.get("project") {
            None => Some(None),
            Some(n) => self.string(n, &format!("{at}.forge.project")).map(Some),
        };
        Some(Forge {
            kind: kind?,
            api_url: api_url?,
            token_file: PathBuf::from(token_file?),
            project: project?,
        })
    }

    /// `repositories: [{ name, url, branch, auth, author, forge }]`: more GitOps
    /// repositories, each named once (and never `default`, which is `git`).
    fn repositories(&mut self, node: &'a Node) -> Vec<NamedRepository> {
        let mut named: Vec<NamedRepository> = Vec::new();
        for item in self.list(node, "repositories").unwrap_or_default() {
            let Some(item) = self.resolve(item) else {
                continue;
            };
            let Some(name_node) = item.get("name") else {
                self.error(
                    item.position,
                    "a repository needs a name: (what promotions and environments choose it by)",
                );
                continue;
            };
            let Some(name) = self.string(name_node, "repositories[].name") else {
                continue;
            };
            if !super::text::is_name(&name) || name == DEFAULT_REPOSITORY {
                self.error(
                    name_node.position,
                    format!("repository name {name:?} must be lowercase letters, digits and '-', and not {DEFAULT_REPOSITORY:?} (the name of git:)"),
                );
                continue;
            }
            if named.iter().any(|r| r.name == name) {
                self.error(
                    name_node.position,
                    format!("repository {name:?} is named twice; give each its own name"),
                );
                continue;
            }
            let at = format!("repositories[{name}]");
            if let Some(git) = self.git(item, &at, &["name"]) {
                named.push(NamedRepository { name, git });
            }
        }
        named
    }

    fn registries(&mut self, node: &'a Node) -> Vec<Registry> {
        let mut out: Vec<Registry> = Vec::new();
        for item in self.list(node, "registries").unwrap_or_default() {
            let Some(f) = self.fields(
                item,
                "a registry",
                &[
                    "host",
                    "dockerConfig",
                    "username",
                    "passwordFile",
                    "insecure",
                    "requestsPerSecond",
                    "concurrency",
                ],
            ) else {
                continue;
            };
            let Some(host_node) = self.required(&f, "host", "a registry") else {
                continue;
            };
            let Some(host) = self.string(host_node, "registries[].host") else {
                continue;
            };
            if host.contains('/') || host.contains(char::is_whitespace) || host.is_empty() {
                self.error(host_node.position, format!("registry host {host:?} must be a host name with an optional port, without a scheme or path"));
                continue;
            }
            if out.iter().any(|r| r.host == host) {
                self.error(
                    host_node.position,
                    format!("registry host {host:?} is listed twice"),
                );
                continue;
            }
            let path = |d: &mut Self, key: &str| {
                f.get(key)
                    .and_then(|n| d.string(n, &format!("registries[].{key}")))
                    .map(PathBuf::from)
            };
            let docker_config = path(self, "dockerConfig");
            let password_file = path(self, "passwordFile");
            let username = f
                .get("username")
                .and_then(|n| self.string(n, "registries[].username"));
            if username.is_some() != password_file.is_some() {
                self.error(f.position, "username and passwordFile go together");
            }
            let insecure = f
                .get("insecure")
                .and_then(|n| self.bool(n, "insecure"))
                .unwrap_or(false);
            let requests_per_second = f.get("requestsPerSecond").and_then(|n| {
                let text = self.string(n, "requestsPerSecond")?;
                match text.parse::<f64>() {
                    Ok(v) if v > 0.0 && v.is_finite() => Some(v),
                    _ => {
                        self.error(
                            n.position,
                            format!("requestsPerSecond {text:?} must be a number above 0"),
                        );
                        None
                    }
                }
            });
            let concurrency = f.get("concurrency").and_then(|n| {
                let text = self.string(n, "concurrency")?;
                match text.parse::<usize>() {
                    Ok(v) if (1..=256).contains(&v) => Some(v),
                    _ => {
                        self.error(
                            n.position,
                            format!("concurrency {text:?} must be a whole number from 1 to 256"),
                        );
                        None
                    }
                }
            });
            out.push(Registry {
                host,
                docker_config,
                username,
                password_file,
                insecure,
                requests_per_second,
                concurrency,
            });
        }
        out
    }

    fn receivers(&mut self, node: &'a Node) -> Vec<Receiver> {
        let mut out: Vec<Receiver> = Vec::new();
        for item in self.list(node, "receivers").unwrap_or_default() {
            let Some(f) = self.fields(item, "a receiver", &["type", "secretFile"]) else {
                continue;
            };
            let kind = self.required(&f, "type", "a receiver").and_then(|n| {
                let name = self.string(n, "receivers[].type")?;
                let Some(kind) = ReceiverKind::parse(&name) else {
                    let known: Vec<&str> = ReceiverKind::ALL.iter().map(|k| k.as_str()).collect();
                    self.error(
                        n.position,
                        format!("receiver type {name:?} is not supported; use one of {}", known.join(", ")),
                    );
                    return None;
                };
                if out.iter().any(|r| r.kind == kind) {
                    self.error(
                        n.position,
                        format!("receiver type {name:?} is listed twice; one receiver per type (its path is /webhooks/{name})"),
                    );
                    return None;
                }
                Some(kind)
            });
            let secret_file = self
                .required(&f, "secretFile", "a receiver")
                .and_then(|n| self.string(n, "receivers[].secretFile"))
                .map(PathBuf::from);
            if let (Some(kind), Some(secret_file)) = (kind, secret_file) {
                out.push(Receiver { kind, secret_file });
            }
        }
        out
    }

    fn alerts(&mut self, node: &'a Node) -> Option<Alerts> {
        let f = self.fields(
            node,
            "alerts",
            &["alertmanager", "webhooks", "holdAlertAfter"],
        )?;
        let alertmanager = match f.get("alertmanager") {
            None => None,
            Some(n) => {
                let am = self.fields(n, "alerts.alertmanager", &["url"])?;
                let url = self
                    .required(&am, "url", "alerts.alertmanager")
                    .and_then(|u| self.url(u, "alerts.alertmanager.url"))?;
                Some(Alertmanager { url })
            }
        };
        let mut webhooks = Vec::new();
        if let Some(list) = f.get("webhooks") {
            for item in self.list(list, "alerts.webhooks").unwrap_or_default() {
                let Some(w) = self.fields(item, "a webhook", &["url", "format", "secretFile"])
                else {
                    continue;
                };
                let url = self
                    .required(&w, "url", "a webhook")
                    .and_then(|u| self.url(u, "webhook url"));
                let format = match w.get("format") {
                    None => Some(WebhookFormat::Json),
                    Some(n) => {
                        match self.string(n, "webhook format").as_deref() {
                            Some("json") => Some(WebhookFormat::Json),
                            Some("slack") => Some(WebhookFormat::Slack),
                            Some(other) => {
                                self.error(n.position, format!("webhook format {other:?} is not supported; use json or slack"));
                                None
                            }
                            None => None,
                        }
                    }
                };
                let secret_file = w
                    .get("secretFile")
                    .and_then(|n| self.string(n, "webhook secretFile"))
                    .map(PathBuf::from);
                if secret_file.is_some() && format == Some(WebhookFormat::Slack) {
                    self.error(
                        w.position,
                        "secretFile signs json webhooks only; Slack does not check signatures",
                    );
                }
                if let (Some(url), Some(format)) = (url, format) {
                    webhooks.push(Webhook {
                        url,
                        format,
                        secret_file,
                    });
                }
            }
        }
        let hold_alert_after = match f.get("holdAlertAfter") {
            None => Some(Alerts::default().hold_alert_after),
            Some(n) => self.positive_duration(n, "holdAlertAfter"),
        };
        Some(Alerts {
            alertmanager,
            webhooks,
            hold_alert_after: hold_alert_after?,
        })
    }
}

/// What secret a repository URL carries in its user info, if any: over http(s) any user
/// info (`https://TOKEN@host/…` is how tokens leak), elsewhere a password (`ssh://git@host`
/// names a user, which is fine).
fn credentials_in(url: &str) -> Option<&'static str> {
    let (scheme, rest) = url.split_once("://")?;
    let authority = rest.split(['/', '?', '#']).next()?;
    let (user, _) = authority.rsplit_once('@')?;
    if scheme.eq_ignore_ascii_case("http") || scheme.eq_ignore_ascii_case("https") {
        Some("user info (a user name or token before @)")
    } else if user.contains(':') {
        Some("a password")
    } else {
        None
    }
}

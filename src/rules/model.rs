//! The rules model: what `Settings` and `Promotion` documents mean once validated.
//!
//! Every value here has already been checked (regexes compiled, ranges parsed, paths kept
//! inside the repository), so the rest of the program never re-validates. The same types
//! describe the JSON Schema (`tagpromoter schema`), so the schema cannot drift from what the
//! loader accepts.

use std::path::{Path, PathBuf};

use jiff::SignedDuration;
use regex::Regex;
use schemars::JsonSchema;

use crate::image::Repository;
use crate::manifest::HelmPath;
use crate::policy::{self, Constraint, FreezeWindow};
use crate::yaml::Position;

/// The API version every rules document carries.
pub const API_VERSION: &str = "tagpromoter.io/v1alpha1";

/// Global settings: the GitOps repository, registries, alerts.
#[derive(Debug, Clone, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Settings {
    /// The GitOps repository that tagpromoter writes to (named `default`).
    pub git: Git,
    /// More GitOps repositories, by name: a promotion chooses one with `repository:`, an
    /// environment with its own `repository:` (and `branch:`).
    #[serde(default)]
    pub repositories: Vec<NamedRepository>,
    /// Registry credentials and pacing; hosts not listed are accessed anonymously.
    #[serde(default)]
    pub registries: Vec<Registry>,
    /// Where alerts go.
    #[serde(default)]
    pub alerts: Alerts,
    /// Time between passes of `tagpromoter run` (up to 10% jitter is added). Default 2m.
    #[schemars(with = "DurationText")]
    pub interval: SignedDuration,
    /// Incoming webhooks that trigger a pass, at `POST /webhooks/<type>` of `run`'s server.
    #[serde(default)]
    pub receivers: Vec<Receiver>,
    /// Clusters whose controllers report rollouts, by name (`verify.cluster`); without
    /// one, `verify` reads the cluster the worker runs in.
    #[serde(default)]
    pub clusters: Vec<Cluster>,
    /// Whether a Kustomize bump is also checked by rendering the environment's directory
    /// before and after it (`auto`: when `kustomize` or `kubectl` is on the PATH).
    #[serde(default)]
    pub render: RenderMode,
}

/// Whether bumps are checked with a renderer (`Settings.render`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum RenderMode {
    /// When `kustomize` or `kubectl` is on the PATH (the default).
    #[default]
    Auto,
    /// Always: a Kustomize bump fails when no renderer can be found.
    Always,
    /// Never: only tagpromoter's own model of the image transformer checks edits.
    Never,
}

impl Settings {
    /// The repository named `name` (`default`: `git`).
    pub fn repository(&self, name: &str) -> Option<&Git> {
        if name == DEFAULT_REPOSITORY {
            return Some(&self.git);
        }
        self.repositories
            .iter()
            .find(|r| r.name == name)
            .map(|r| &r.git)
    }

    /// Every repository, by name, `default` first.
    pub fn repositories(&self) -> impl Iterator<Item = (&str, &Git)> {
        std::iter::once((DEFAULT_REPOSITORY, &self.git))
            .chain(self.repositories.iter().map(|r| (r.name.as_str(), &r.git)))
    }

    /// Every file the settings name that holds a secret (or says where one is): what must
    /// never be shown to whoever can read the worker's unauthenticated pages.
    pub fn secret_files(&self) -> Vec<&Path> {
        let mut files: Vec<&Path> = Vec::new();
        for (_, git) in self.repositories() {
            match &git.auth {
                Some(GitAuth::Token { token_file }) => files.push(token_file),
                Some(GitAuth::Password { password_file, .. }) => files.push(password_file),
                Some(GitAuth::SshKey { ssh_key_file, .. }) => files.push(ssh_key_file),
                None => {}
            }
            if let Some(f) = &git.forge {
                files.push(&f.token_file);
            }
        }
        for r in &self.registries {
            files.extend(r.docker_config.as_deref());
            files.extend(r.password_file.as_deref());
        }
        files.extend(self.receivers.iter().map(|r| r.secret_file.as_path()));
        files.extend(self.clusters.iter().map(|c| c.kubeconfig.as_path()));
        files.extend(
            self.alerts
                .webhooks
                .iter()
                .filter_map(|w| w.secret_file.as_deref()),
        );
        files
    }
}

/// An incoming webhook (named after Flux's `Receiver`): a registry announcing a push, or
/// the forge announcing a push to the GitOps repository. Its payload is only a hint; the
/// pass it triggers lists the tags from the registry as usual.
#[derive(Debug, Clone, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Receiver {
    /// Who sends it; also the last segment of its path.
    #[serde(rename = "type")]
    pub kind: ReceiverKind,
    /// A file holding the secret the sender signs with or presents.
    pub secret_file: PathBuf,
}

/// The senders tagpromoter understands, each checked the way it signs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum ReceiverKind {
    /// CNCF distribution's notifications (`docker-registry`, GitLab's registry):
    /// `Authorization: Bearer <secret>`, set in the endpoint's `headers`.
    Distribution,
    /// Docker Hub (cannot sign): `?token=<secret>` in the URL.
    Dockerhub,
    /// GitHub `package`, `registry_package` and `push` events: `X-Hub-Signature-256`.
    Github,
    /// Gitea and Forgejo `package` and `push` events: `X-Gitea-Signature` (HMAC-SHA256).
    Gitea,
    /// GitLab push events: `X-Gitlab-Token`.
    Gitlab,
    /// Harbor (its policy's auth header): `Authorization: <secret>` or `Bearer <secret>`.
    Harbor,
    /// Quay (cannot sign): `?token=<secret>` in the URL.
    Quay,
    /// Anything that can POST `{"image": ..., "tag": ...}`: `Authorization: Bearer <secret>`.
    Generic,
}

impl ReceiverKind {
    /// Every kind, in the order the docs list them.
    pub const ALL: [ReceiverKind; 8] = [
        Self::Distribution,
        Self::Dockerhub,
        Self::Github,
        Self::Gitea,
        Self::Gitlab,
        Self::Harbor,
        Self::Quay,
        Self::Generic,
    ];

    /// The name in rules, in the path and in metrics.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Distribution => "distribution",
            Self::Dockerhub => "dockerhub",
            Self::Github => "github",
            Self::Gitea => "gitea",
            Self::Gitlab => "gitlab",
            Self::Harbor => "harbor",
            Self::Quay => "quay",
            Self::Generic => "generic",
        }
    }

    /// The kind named `name`.
    pub fn parse(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|k| k.as_str() == name)
    }
}

/// A duration such as `90s`, `15m`, `2h`, `1d` or `1h30m`.
#[derive(JsonSchema)]
#[schemars(transparent)]
pub struct DurationText(
    #[schemars(pattern(r"^([0-9]+(ms|s|m|h|d|w))+$"))]
    #[allow(dead_code)]
    String,
);

/// The GitOps repository.
#[derive(Debug, Clone, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Git {
    /// `https://`, `ssh://`, `git@host:path` or `file://` URL.
    pub url: String,
    /// The branch to read and push.
    #[serde(default = "default_branch")]
    pub branch: String,
    /// Credentials, read from files (mounted secrets).
    #[serde(default)]
    pub auth: Option<GitAuth>,
    /// The commits' author.
    #[serde(default)]
    pub author: Author,
    /// The forge API, needed by environments with `write: pull-request`.
    #[serde(default)]
    pub forge: Option<Forge>,
}

/// The name of `Settings.git` among the repositories.
pub const DEFAULT_REPOSITORY: &str = "default";

/// A Kubernetes cluster, read (never written) to see whether a bump was rolled out.
#[derive(Debug, Clone, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Cluster {
    /// What environments choose it by (`verify.cluster: NAME`).
    pub name: String,
    /// A kubeconfig file (token or client certificate); it holds credentials.
    pub kubeconfig: PathBuf,
    /// Its context to use. Default: the file's `current-context`.
    #[serde(default)]
    pub context: Option<String>,
    /// Run the command its kubeconfig names to get credentials (`exec:`), within 10 s, with
    /// only `PATH`, `HOME` and the `env:` it sets. Default: refused.
    #[serde(default)]
    pub allow_exec_plugins: bool,
    /// Accept its kubeconfig's `insecure-skip-tls-verify: true`. Default: refused.
    #[serde(default)]
    pub allow_insecure_skip_tls_verify: bool,
    /// Accept its kubeconfig's `proxy-url`. Default: refused.
    #[serde(default)]
    pub allow_proxy_url: bool,
}

/// Where an environment's rollout is read, so that it counts as running (and soaks) from
/// when its controller reports the bump synced and healthy, not from the commit.
#[derive(Debug, Clone, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Verify {
    /// The controller and the object that deploys this environment.
    #[serde(flatten)]
    pub controller: Controller,
    /// The cluster, by name (`Settings.clusters`). Default: the one the worker runs in.
    #[serde(default)]
    pub cluster: Option<String>,
    /// How long after the bump's commit a rollout may take before the environment is
    /// reported stalled (`reason: not deployed`). Default 15m.
    #[schemars(with = "Option<DurationText>")]
    pub deploy_timeout: SignedDuration,
}

/// The object a GitOps controller deploys an environment with.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, JsonSchema)]
#[serde(
    rename_all = "camelCase",
    rename_all_fields = "camelCase",
    deny_unknown_fields
)]
pub enum Controller {
    /// An Argo CD `Application` (single- or multi-source).
    Argocd {
        /// The Application's name.
        application: String,
        /// Its namespace. Default `argocd`.
        #[schemars(with = "Option<String>")]
        namespace: String,
    },
    /// A Flux `Kustomization`, and the `HelmRelease` it applies when the tag is a Helm
    /// value.
    Flux {
        /// The Kustomization's name.
        kustomization: String,
        /// Its namespace (and the HelmRelease's). Default `flux-system`.
        #[schemars(with = "Option<String>")]
        namespace: String,
        /// A HelmRelease that must be Ready at its current generation too.
        #[serde(default)]
        helm_release: Option<String>,
    },
}

/// A GitOps repository besides `git`, by name.
#[derive(Debug, Clone, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct NamedRepository {
    /// What promotions and environments choose it by (`repository: NAME`).
    pub name: String,
    /// Where it is and how to write to it, as `git:`.
    #[serde(flatten)]
    pub git: Git,
}

/// Where an environment's bumps land: a repository (by name) and a branch of it. Each has
/// its own mirror, its own push per pass and its own failures.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Destination {
    /// The repository's name (`default` for `git`).
    pub repository: String,
    /// The branch.
    pub branch: String,
}

impl Destination {
    /// Where `env` of `p` writes under `settings`: its own `repository:` and `branch:`,
    /// else the promotion's repository and that repository's branch.
    pub fn of(settings: &Settings, p: &Promotion, env: &Environment) -> Self {
        let repository = env
            .repository
            .as_deref()
            .or(p.repository.as_deref())
            .unwrap_or(DEFAULT_REPOSITORY);
        let branch = env.branch.clone().unwrap_or_else(|| {
            settings
                .repository(repository)
                .map_or_else(default_branch, |g| g.branch.clone())
        });
        Self {
            repository: repository.to_string(),
            branch,
        }
    }
}

/// Whose a record is beyond its target: the repository (as [`repository_key`] names it,
/// whatever the URL's scheme or credentials) and the branch the environment lives on. A
/// record merged, cherry-picked or copied from another branch or repository carries
/// theirs, and counts for nothing here.
#[derive(
    Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, serde::Deserialize,
)]
pub struct Identity {
    /// The repository, `host/path`.
    pub repository: String,
    /// The branch.
    pub branch: String,
}

/// What names a repository in a URL: `host/path`, without the scheme, user info, port or
/// `.git` (`https://tok@github.com/acme/gitops.git`, `git@github.com:acme/gitops` and
/// `ssh://git@github.com:22/acme/gitops` are all `github.com/acme/gitops`); a local path
/// as written, without `.git`.
pub fn repository_key(url: &str) -> String {
    let (authority, path) = match url.split_once("://") {
        Some(("file", rest)) => ("", rest),
        Some((_, rest)) => rest.split_once('/').unwrap_or((rest, "")),
        None => match url.split_once(':') {
            // `user@host:path` (scp-like), not a local path such as `./x` or `/srv/x`.
            Some((host, path)) if !host.contains('/') && !url.starts_with('.') => (host, path),
            _ => ("", url),
        },
    };
    let host = authority.rsplit('@').next().unwrap_or("");
    let host = host.split(':').next().unwrap_or("").to_ascii_lowercase();
    let path = path.trim_end_matches('/');
    let path = path.strip_suffix(".git").unwrap_or(path);
    match host.is_empty() {
        true => path.to_string(),
        false => format!("{host}/{}", path.trim_start_matches('/')),
    }
}

impl Settings {
    /// The identity of the records written for environments that live at `destination`.
    pub fn identity(&self, destination: &Destination) -> Option<Identity> {
        let git = self.repository(&destination.repository)?;
        Some(Identity {
            repository: repository_key(&git.url),
            branch: destination.branch.clone(),
        })
    }
}

impl std::fmt::Display for Destination {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}@{}", self.repository, self.branch)
    }
}

pub(crate) fn default_branch() -> String {
    "main".into()
}

/// How to authenticate to the GitOps repository.
#[derive(Debug, Clone, PartialEq, JsonSchema)]
#[serde(untagged)]
pub enum GitAuth {
    /// A token read from a file (https).
    Token {
        /// File holding the token.
        #[serde(rename = "tokenFile")]
        token_file: PathBuf,
    },
    /// A user name and a password read from a file (https).
    Password {
        /// The user name.
        username: String,
        /// File holding the password.
        #[serde(rename = "passwordFile")]
        password_file: PathBuf,
    },
    /// An ssh private key (ssh).
    SshKey {
        /// File holding the private key.
        #[serde(rename = "sshKeyFile")]
        ssh_key_file: PathBuf,
        /// A known_hosts file to verify the server with.
        #[serde(rename = "knownHostsFile")]
        known_hosts_file: Option<PathBuf>,
    },
}

/// A commit author.
#[derive(Debug, Clone, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Author {
    /// Name. Default `tagpromoter`.
    pub name: String,
    /// Email. Default `tagpromoter@localhost`.
    pub email: String,
}

impl Default for Author {
    fn default() -> Self {
        Self {
            name: "tagpromoter".into(),
            email: "tagpromoter@localhost".into(),
        }
    }
}

/// The forge that pull requests are opened on.
#[derive(Debug, Clone, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Forge {
    /// Which forge.
    pub kind: ForgeKind,
    /// Its API base URL.
    pub api_url: String,
    /// File holding the API token.
    pub token_file: PathBuf,
    /// `owner/name`; default: the path of `git.url` without `.git`.
    #[serde(default)]
    pub project: Option<String>,
}

/// Supported forges.
#[derive(Debug, Clone, Copy, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum ForgeKind {
    /// GitHub or GitHub Enterprise.
    Github,
    /// GitLab.
    Gitlab,
    /// Gitea or Forgejo.
    Gitea,
}

/// Access to one registry host.
#[derive(Debug, Clone, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Registry {
    /// Host (and port), e.g. `ghcr.io` or `registry.local:5000`.
    pub host: String,
    /// A Docker `config.json` / `.dockerconfigjson` with credentials.
    #[serde(default)]
    pub docker_config: Option<PathBuf>,
    /// A user name (with `passwordFile`).
    #[serde(default)]
    pub username: Option<String>,
    /// File holding the password or token.
    #[serde(default)]
    pub password_file: Option<PathBuf>,
    /// Plain http for this host only.
    #[serde(default)]
    pub insecure: bool,
    /// Requests per second to this host. Default 10.
    #[serde(default)]
    pub requests_per_second: Option<f64>,
    /// Requests in flight at once to this host. Default 4.
    #[serde(default)]
    pub concurrency: Option<usize>,
}

/// Alert delivery.
#[derive(Debug, Clone, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Alerts {
    /// An Alertmanager to post alerts to.
    #[serde(default)]
    pub alertmanager: Option<Alertmanager>,
    /// Webhooks to notify.
    #[serde(default)]
    pub webhooks: Vec<Webhook>,
    /// Raise `PromotionHeld` when a hold blocks newer tags for longer than this. Default 24h.
    #[schemars(with = "Option<DurationText>")]
    pub hold_alert_after: SignedDuration,
}

impl Default for Alerts {
    fn default() -> Self {
        Self {
            alertmanager: None,
            webhooks: Vec::new(),
            hold_alert_after: SignedDuration::from_hours(24),
        }
    }
}

/// An Alertmanager endpoint.
#[derive(Debug, Clone, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Alertmanager {
    /// Base URL, e.g. `http://alertmanager.monitoring:9093`.
    pub url: String,
}

/// A webhook endpoint.
#[derive(Debug, Clone, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Webhook {
    /// URL to POST to.
    pub url: String,
    /// Body format. Default `json`.
    #[serde(default)]
    pub format: WebhookFormat,
    /// For `json`: a file holding the HMAC-SHA256 key that signs the body.
    #[serde(default)]
    pub secret_file: Option<PathBuf>,
}

/// Webhook body formats.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum WebhookFormat {
    /// tagpromoter's own JSON.
    #[default]
    Json,
    /// A Slack incoming-webhook message.
    Slack,
}

/// One image promoted through a chain of environments.
#[derive(Debug, Clone, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Promotion {
    /// The promotion's name (`metadata.name`).
    #[schemars(skip)]
    pub name: String,
    /// The image repository, e.g. `ghcr.io/stefanprodan/podinfo`.
    #[schemars(with = "String")]
    pub image: Repository,
    /// Tag filters for every environment.
    #[serde(default)]
    pub tags: TagRules,
    /// The repository its environments write to, by name (`Settings.repositories`);
    /// default `default` (`Settings.git`).
    #[serde(default)]
    pub repository: Option<String>,
    /// The environments, in promotion order.
    pub environments: Vec<Environment>,
    /// Where the document is, for messages.
    #[schemars(skip)]
    pub source: Source,
}

/// Where a document came from.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Source {
    /// The rules file.
    pub file: PathBuf,
    /// Where the document starts.
    pub position: Position,
}

/// Tag filters.
#[derive(Debug, Clone, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct TagRules {
    /// Regexes; matching tags are dropped. Default: `\.sig$`, `\.att$`, `\.sbom$`.
    #[serde(default)]
    #[schemars(with = "Vec<String>")]
    pub exclude: Vec<SharedRegex>,
    /// A regex tags must match, and what to extract from it.
    #[serde(default)]
    pub filter: Option<TagFilter>,
}

/// A compiled regex shared by every promotion that names the same pattern. A `Regex` clone
/// shares the program but gets caches of its own (some KiB each, kept for its life), so
/// 10,000 promotions cloning three excludes would hold 30,000 sets of them; shared, they
/// hold one.
pub type SharedRegex = std::sync::Arc<Regex>;

/// The default excludes, compiled once.
static DEFAULT_EXCLUDES: std::sync::LazyLock<Vec<SharedRegex>> = std::sync::LazyLock::new(|| {
    policy::select::DEFAULT_EXCLUDES
        .iter()
        .filter_map(|p| Regex::new(p).ok().map(std::sync::Arc::new))
        .collect()
});

impl Default for TagRules {
    fn default() -> Self {
        Self {
            exclude: DEFAULT_EXCLUDES.clone(),
            filter: None,
        }
    }
}

/// `filter: {pattern, extract}`.
#[derive(Debug, Clone, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct TagFilter {
    /// Regex (unanchored) a tag must match.
    #[schemars(with = "String")]
    pub pattern: SharedRegex,
    /// Template (`$1`, `$name`, `${name}`) of what is ordered instead of the tag.
    #[serde(default)]
    pub extract: Option<String>,
}

/// One environment of a promotion.
#[derive(Debug, Clone, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Environment {
    /// Its name, unique in the promotion.
    pub name: String,
    /// Only tags this (earlier) environment has run qualify.
    #[serde(default)]
    pub from: Option<String>,
    /// How long `from` must have run a tag. Default 0.
    #[schemars(with = "Option<DurationText>")]
    pub soak: SignedDuration,
    /// How tags are ranked.
    pub policy: Policy,
    /// The image must be at least this old (by its config's `created`).
    #[schemars(with = "Option<DurationText>")]
    pub min_age: Option<SignedDuration>,
    /// Where the tag is written (with `targets:`, the first of them: its history is the
    /// environment's).
    #[schemars(with = "Option<Target>")]
    pub target: Target,
    /// `targets: [ … ]` instead of `target:`, for an environment written in several places
    /// (regional copies, a Deployment and its CronJob): every bump edits them all in one
    /// commit, or none; they must hold the same tag. (In the model: the places after the
    /// first.)
    #[serde(default, rename = "targets")]
    #[schemars(with = "Option<Vec<Target>>")]
    pub also: Vec<Target>,
    /// The repository it writes to, by name, when not the promotion's.
    #[serde(default)]
    pub repository: Option<String>,
    /// The branch it writes to, when not its repository's (branch-per-environment layouts).
    #[serde(default)]
    pub branch: Option<String>,
    /// Where it writes, as the loader resolved `repository:` and `branch:`.
    #[schemars(skip)]
    pub destination: Destination,
    /// Push to the branch, or open a pull request. Default `push`.
    #[serde(default)]
    pub write: WriteMode,
    /// Windows without automatic promotion.
    #[serde(default)]
    pub freeze: Vec<Freeze>,
    /// Platforms an image index must have, e.g. `linux/arm64`.
    #[serde(default)]
    pub platforms: Vec<String>,
    /// Also write the digest.
    #[serde(default)]
    pub pin_digest: bool,
    /// Alert when an eligible tag has waited this long. Default 1h.
    #[schemars(with = "Option<DurationText>")]
    pub stall_after: SignedDuration,
    /// Where its rollout is read; without it, a landed bump counts as running.
    #[serde(default)]
    pub verify: Option<Verify>,
    /// Where the environment is declared, for messages.
    #[schemars(skip)]
    pub position: Position,
}

/// How tags are ranked.
#[derive(Debug, Clone, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub enum Policy {
    /// A Masterminds semver range, e.g. `^6.0.0` or `>=1.0.0-0`; or `{ range, loose: true }`
    /// to read tags as Masterminds' loose parser does (`1.0` and `v5` are versions).
    Semver(#[schemars(with = "SemverSchema")] SemverPolicy),
    /// Byte-wise order; `asc` picks the highest.
    Alphabetical(SortOrder),
    /// Numeric order; `asc` picks the highest.
    Numerical(SortOrder),
    /// The most recently built image.
    NewestBuild(NewestBuild),
}

/// A semver policy: the range, and how tags are read.
#[derive(Debug, Clone)]
pub struct SemverPolicy {
    /// The range a tag must be in.
    pub range: Constraint,
    /// Read `1`, `1.2`, `v1.2` as versions (Masterminds' `NewVersion`), not only `X.Y.Z`.
    pub loose: bool,
}

/// How `semver:` is written (for the schema): a range, or a range with options.
#[derive(JsonSchema)]
#[serde(untagged)]
#[allow(dead_code)]
enum SemverSchema {
    /// A Masterminds range.
    Range(String),
    /// A range, with `loose: true` to read `1.0` and `v5` as versions too (a date tag such
    /// as `20240101` then reads as a huge major version: pair it with a range).
    Options {
        /// A Masterminds range.
        range: String,
        /// Masterminds' loose parsing.
        #[serde(default)]
        loose: bool,
    },
}

/// `newestBuild: {}`.
#[derive(Debug, Clone, PartialEq, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct NewestBuild {}

/// Sort direction.
#[derive(Debug, Clone, Copy, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum SortOrder {
    /// Highest wins.
    Asc,
    /// Lowest wins.
    Desc,
}

/// Where an environment's tag is written.
#[derive(Debug, Clone, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub enum Target {
    /// A Kustomize `images:` entry.
    Kustomize {
        /// Path in the repository.
        file: PathBuf,
        /// The `images[].name` to match; default `spec.image`.
        #[serde(default)]
        name: Option<String>,
    },
    /// Helm values: the tag at one path (`tag:`), or the whole reference in one string
    /// (`image:`, as charts with `image: ghcr.io/acme/app:1.2.3` write it).
    Helm {
        /// Path in the repository.
        file: PathBuf,
        /// Where the tag is.
        #[serde(flatten)]
        value: HelmValue,
        /// Dotted path of the repository, when it is not beside the tag (`repository:` or
        /// `image:` there): read to check the values name the image, never written.
        #[serde(default)]
        #[schemars(with = "Option<String>")]
        repository: Option<HelmPath>,
        /// Dotted path of the digest, when it is not beside the tag (`digest:`, or a bare-hex
        /// `sha:`): written with the tag wherever it pins one, and with `pinDigest`.
        #[serde(default)]
        #[schemars(with = "Option<String>")]
        digest: Option<HelmPath>,
        /// The repository the values name (with their `registry`); default `spec.image`
        /// (set it when tags are read from a mirror the values do not name).
        #[serde(default)]
        #[schemars(with = "Option<String>")]
        name: Option<Repository>,
    },
    /// Scalars marked `# {"$imagepolicy": "<policy>[:tag|:name|:digest]"}`.
    Marker {
        /// Path in the repository.
        file: PathBuf,
        /// The marker's policy id as the file writes it, e.g. Flux's `flux-system:podinfo`;
        /// default `<promotion>:<environment>`.
        #[serde(default)]
        policy: Option<String>,
        /// The repository `:name` markers write; default `spec.image`.
        #[serde(default)]
        #[schemars(with = "Option<String>")]
        name: Option<Repository>,
    },
    /// Argo CD's `.argocd-source-<app>.yaml`, as Argo CD Image Updater's Git write-back
    /// leaves it: its `kustomize.images` entry for `spec.image` (`repo:tag`), or its
    /// `helm.parameters` entry named `parameter`.
    ArgocdSource {
        /// Path in the repository.
        file: PathBuf,
        /// The Helm parameter holding the tag; default `image.tag`.
        #[serde(default)]
        parameter: Option<String>,
        /// The repository its `kustomize.images` entry names; default `spec.image` (set it
        /// when tags are read from a mirror the file does not name).
        #[serde(default)]
        #[schemars(with = "Option<String>")]
        name: Option<Repository>,
    },
    /// Every `image:` field of plain manifests whose repository is `name`, as Docker reads
    /// names (`redis` is `docker.io/library/redis`); the repository stays as written.
    Manifest {
        /// Path in the repository.
        file: PathBuf,
        /// The repository the files name; default `spec.image` (set it when tags are read
        /// from a mirror the files do not name).
        #[serde(default)]
        #[schemars(with = "Option<String>")]
        name: Option<Repository>,
    },
}

/// Where a Helm target's tag is.
#[derive(Debug, Clone, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub enum HelmValue {
    /// Dotted path of the tag, e.g. `image.tag`.
    Tag(#[schemars(with = "String")] HelmPath),
    /// Dotted path of a value holding the whole reference (`repo:tag[@digest]`): its tag
    /// (and with `pinDigest` its digest) is rewritten, its repository kept as written.
    Image(#[schemars(with = "String")] HelmPath),
}

impl Environment {
    /// Every target of the environment, the first one first.
    pub fn targets(&self) -> impl Iterator<Item = &Target> {
        std::iter::once(&self.target).chain(&self.also)
    }
}

impl Target {
    /// The file the target edits, relative to the repository root.
    pub fn file(&self) -> &std::path::Path {
        match self {
            Self::Kustomize { file, .. }
            | Self::Helm { file, .. }
            | Self::Marker { file, .. }
            | Self::ArgocdSource { file, .. }
            | Self::Manifest { file, .. } => file,
        }
    }
}

/// How a bump is written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub enum WriteMode {
    /// Commit and push to the branch.
    #[default]
    Push,
    /// Open a pull request.
    PullRequest,
}

/// A freeze window.
#[derive(Debug, Clone, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Freeze {
    /// Start: `Fri 16:00` (weekly) or `2026-12-20T00:00:00` (absolute).
    pub from: String,
    /// End, of the same kind as `from`.
    pub to: String,
    /// IANA time zone. Default UTC.
    #[serde(default)]
    pub time_zone: Option<String>,
    /// The parsed window.
    #[schemars(skip)]
    pub window: FreezeWindow,
}

/// A validated set of rules.
#[derive(Debug, Clone)]
pub struct Rules {
    /// The settings.
    pub settings: Settings,
    /// The promotions, in file order.
    pub promotions: Vec<Promotion>,
}

impl Rules {
    /// Every destination some environment writes to, each once, in order.
    pub fn destinations(&self) -> std::collections::BTreeSet<Destination> {
        self.promotions
            .iter()
            .flat_map(|p| p.environments.iter().map(|e| e.destination.clone()))
            .collect()
    }

    /// The promotion `promotion` and its environment `environment`, if both exist.
    pub fn environment(
        &self,
        promotion: &str,
        environment: &str,
    ) -> Option<(&Promotion, &Environment)> {
        let p = self.promotions.iter().find(|p| p.name == promotion)?;
        let env = p.environments.iter().find(|e| e.name == environment)?;
        Some((p, env))
    }

    /// Every file some target edits, sorted, each once.
    pub fn target_files(&self) -> Vec<PathBuf> {
        let mut paths: Vec<PathBuf> = self
            .promotions
            .iter()
            .flat_map(|p| p.environments.iter().flat_map(Environment::targets))
            .map(|t| t.file().to_path_buf())
            .collect();
        paths.sort();
        paths.dedup();
        paths
    }
}

impl Policy {
    /// The ordering this policy ranks tags by.
    pub fn order(&self) -> policy::Order {
        let dir = |o: &SortOrder| match o {
            SortOrder::Asc => policy::Direction::Asc,
            SortOrder::Desc => policy::Direction::Desc,
        };
        match self {
            Self::Semver(s) => policy::Order::Semver {
                range: s.range.clone(),
                loose: s.loose,
            },
            Self::Alphabetical(o) => policy::Order::Alphabetical(dir(o)),
            Self::Numerical(o) => policy::Order::Numerical(dir(o)),
            Self::NewestBuild(_) => policy::Order::NewestBuild,
        }
    }
}

impl Promotion {
    /// The environment `env` takes its tags from (`from:`), if any.
    pub fn upstream_of(&self, env: &Environment) -> Option<&Environment> {
        let from = env.from.as_ref()?;
        self.environments.iter().find(|e| e.name == *from)
    }

    /// The tag policy of one environment (the promotion's filters plus its ordering).
    pub fn tag_policy(&self, env: &Environment) -> policy::TagPolicy {
        policy::TagPolicy {
            exclude: self.tags.exclude.clone(),
            filter: self.tags.filter.as_ref().map(|f| policy::Filter {
                pattern: f.pattern.clone(),
                extract: f.extract.clone(),
            }),
            order: env.policy.order(),
        }
    }

    /// What one environment's target is, as `Tagpromoter-Target` records it: the file and
    /// where in it, without the promotion's or environment's names.
    pub fn target_id(&self, env: &Environment) -> String {
        let file = env.target.file().display();
        match &env.target {
            Target::Kustomize { name, .. } => format!(
                "{file}#images[name={}]",
                name.clone().unwrap_or_else(|| self.image.to_string())
            ),
            Target::Helm {
                value: HelmValue::Tag(path) | HelmValue::Image(path),
                ..
            } => format!("{file}#{path}"),
            Target::Marker { .. } => format!("{file}#$imagepolicy"),
            Target::Manifest { .. } => format!("{file}#image={}", self.written_repository(env)),
            Target::ArgocdSource { .. } => format!("{file}#argocd-source={}", self.image),
        }
    }

    /// The repository the files name for `env`'s image: its target's `name`, else
    /// `spec.image` (written by `:name` markers, Helm's `repository`, `image:` fields).
    pub fn written_repository(&self, env: &Environment) -> Repository {
        self.written_repository_of(&env.target)
    }

    /// The repository `target`'s files name: its `name`, else `spec.image`. (A Kustomize
    /// target's `name` is the `images[].name` to match, which need not be one.)
    pub fn written_repository_of(&self, target: &Target) -> Repository {
        match target {
            Target::Marker {
                name: Some(name), ..
            }
            | Target::Manifest {
                name: Some(name), ..
            }
            | Target::Helm {
                name: Some(name), ..
            }
            | Target::ArgocdSource {
                name: Some(name), ..
            } => name.clone(),
            Target::Kustomize {
                name: Some(name), ..
            } => Repository::new(name).unwrap_or_else(|_| self.image.clone()),
            _ => self.image.clone(),
        }
    }

    /// Where, inside its file, one environment's tag is written (its first target).
    pub fn manifest_target(&self, env: &Environment) -> crate::manifest::Target {
        self.manifest_target_of(env, &env.target)
    }

    /// Where, inside its file, `target` of `env` writes the tag.
    pub fn manifest_target_of(
        &self,
        env: &Environment,
        target: &Target,
    ) -> crate::manifest::Target {
        use crate::manifest::Target as T;
        match target {
            Target::Kustomize { name, .. } => T::Kustomize {
                name: name.clone().unwrap_or_else(|| self.image.to_string()),
            },
            Target::Helm {
                value: HelmValue::Tag(tag),
                repository,
                digest,
                ..
            } => T::Helm {
                tag: tag.clone(),
                repository: repository.clone(),
                digest: digest.clone(),
            },
            Target::Helm {
                value: HelmValue::Image(path),
                ..
            } => T::HelmImage { path: path.clone() },
            Target::Marker { policy, .. } => T::Marker {
                policy: policy
                    .clone()
                    .unwrap_or_else(|| format!("{}:{}", self.name, env.name)),
            },
            Target::Manifest { .. } => T::ImageField {
                repository: self.written_repository_of(target),
            },
            Target::ArgocdSource { parameter, .. } => T::ArgocdSource {
                repository: self.written_repository_of(target),
                parameter: parameter.clone().unwrap_or_else(|| "image.tag".into()),
            },
        }
    }

    /// The gates of one environment.
    pub fn gates(&self, env: &Environment) -> policy::Gates {
        policy::Gates {
            from: env.from.clone(),
            soak: env.soak,
            min_age: env.min_age,
            platforms: env.platforms.clone(),
            freeze: env.freeze.iter().map(|f| f.window.clone()).collect(),
            pin_digest: env.pin_digest,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_repository_is_named_alike_whatever_its_url() {
        for url in [
            "https://github.com/acme/gitops.git",
            "https://x-access-token:secret@GitHub.com/acme/gitops",
            "git@github.com:acme/gitops.git",
            "ssh://git@github.com:22/acme/gitops.git/",
            "git://github.com/acme/gitops",
        ] {
            assert_eq!(repository_key(url), "github.com/acme/gitops", "{url}");
        }
        assert_eq!(
            repository_key("file:///srv/git/deploys.git"),
            "/srv/git/deploys"
        );
        assert_eq!(repository_key("/srv/git/deploys.git"), "/srv/git/deploys");
        assert_eq!(repository_key("./deploys.git"), "./deploys");
        assert_ne!(
            repository_key("https://github.com/acme/gitops"),
            repository_key("https://github.com/acme/other")
        );
    }
}

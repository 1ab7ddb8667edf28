//! The command line: clap definitions only. What each command does lives in
//! [`crate::commands`].

use std::path::PathBuf;

use clap::{Parser, Subcommand, ValueEnum};

/// Exit codes and environment variables, for `--help`.
const AFTER_HELP: &str = "\
Exit codes:
  0  done (once: also when nothing changed; status always)
  1  failed: a bump, a registry, the repository, or a forge (the message says which)
  2  invalid rules or input, or a promote refused as asked (the message says why)

Environment:
  TAGPROMOTER_RULES             --rules
  TAGPROMOTER_CACHE_DIR         --cache-dir
  TAGPROMOTER_REGISTRY_TIMEOUT  --registry-timeout
  TAGPROMOTER_LOG_FORMAT        --log-format
  TAGPROMOTER_QUIET             --quiet
  TAGPROMOTER_LOG               a full log filter (e.g. tagpromoter=debug)
  TAGPROMOTER_LISTEN            run --listen
  TAGPROMOTER_LISTEN_BOARD      run --listen-board
  TAGPROMOTER_LISTEN_PROBES     run --listen-probes
  TAGPROMOTER_EXTERNAL_URL      run --external-url
  TAGPROMOTER_SHARDS            run --shards
  TAGPROMOTER_SHARD             run --shard
  TAGPROMOTER_PEER_URL          run --peer-url
  TAGPROMOTER_ACTOR             promote/release --actor";

/// tagpromoter: promote image tags through GitOps environments, editing only the tag's bytes.
#[derive(Debug, Parser)]
#[command(name = "tagpromoter", version, about, long_about = None, after_help = AFTER_HELP)]
pub struct Cli {
    /// Directory of rules (*.yaml: one Settings, any number of Promotions).
    #[arg(
        long,
        global = true,
        env = "TAGPROMOTER_RULES",
        default_value = "rules"
    )]
    pub rules: PathBuf,

    /// Cache of the GitOps mirror and registry metadata [default: $XDG_CACHE_HOME/tagpromoter
    /// or ~/.cache/tagpromoter]. Processes may share it.
    #[arg(long, global = true, env = "TAGPROMOTER_CACHE_DIR")]
    pub cache_dir: Option<PathBuf>,

    /// Log format: text (default on a terminal) or json.
    #[arg(long, global = true, env = "TAGPROMOTER_LOG_FORMAT")]
    pub log_format: Option<LogFormat>,

    /// More output (repeat for more).
    #[arg(short, long, global = true, action = clap::ArgAction::Count)]
    pub verbose: u8,

    /// Less output.
    #[arg(short, long, global = true, env = "TAGPROMOTER_QUIET")]
    pub quiet: bool,

    /// The longest a pass waits for registries (e.g. 30s, 2m); images not listed by then
    /// fail alone, the others go on.
    #[arg(
        long,
        global = true,
        env = "TAGPROMOTER_REGISTRY_TIMEOUT",
        default_value = "60s",
        value_parser = parse_duration
    )]
    pub registry_timeout: jiff::SignedDuration,

    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

impl Cli {
    /// The cache directory: `--cache-dir`, else `$XDG_CACHE_HOME/tagpromoter`, else
    /// `~/.cache/tagpromoter`, else `.tagpromoter-cache` in the current directory.
    pub fn cache_dir(&self) -> PathBuf {
        if let Some(dir) = &self.cache_dir {
            return dir.clone();
        }
        let from_env = |k: &str| {
            std::env::var_os(k)
                .filter(|v| !v.is_empty())
                .map(PathBuf::from)
        };
        from_env("XDG_CACHE_HOME")
            .or_else(|| from_env("HOME").map(|h| h.join(".cache")))
            .map(|d| d.join("tagpromoter"))
            .unwrap_or_else(|| PathBuf::from(".tagpromoter-cache"))
    }
}

/// A duration such as `90s`, `15m`, `2h` or `1h30m`.
pub fn parse_duration(text: &str) -> Result<jiff::SignedDuration, String> {
    crate::rules::decode::text::parse_duration(text)
        .filter(|d| d.is_positive())
        .ok_or_else(|| format!("{text:?} is not a duration such as 90s, 15m, 2h or 1h30m"))
}

/// Log formats.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    /// Human-readable lines.
    Text,
    /// One JSON object per line.
    Json,
}

/// The commands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Validate the rules; print every problem as file:line:column: message. Exit 0 when
    /// valid, 2 when not.
    Check(CheckArgs),
    /// Print the JSON Schema of rules documents (for editors).
    Schema,
    /// List an image's tags as tagpromoter sees them (same credentials as --rules).
    Tags(TagsArgs),
    /// Compute every decision and print the diff it would commit; writes nothing. Exit 0,
    /// 1 when an environment cannot be decided, 2 for invalid rules.
    Plan(OutputArgs),
    /// One full pass: decide, commit, push. Exit 0 when all is well (also when nothing
    /// changed), 1 when a bump or a registry failed, 2 for invalid rules.
    Once(OutputArgs),
    /// The worker: a pass every `interval` (with up to 10% jitter) and one a second after a
    /// webhook names a watched image, rules reloaded when they change, alerts delivered;
    /// serves the board, metrics, health, status and webhook receivers on --listen.
    /// SIGTERM finishes the pass in flight and exits 0.
    Run(RunArgs),
    /// A person's promotion: the given (or best eligible) tag now. A tag older than the
    /// current one is a rollback and holds the environment until `release` or --hold-for.
    /// Exit 0, 1 failed, 2 refused.
    Promote(PromoteArgs),
    /// Lift the hold on an environment. Exit 0, 1 failed.
    Release(ReleaseArgs),
    /// Per promotion and environment: current tag, best eligible tag, state. Exit 0.
    Status(OutputArgs),
    /// Print shell completions (bash, zsh, fish, elvish, powershell), e.g.
    /// `tagpromoter completions bash > /etc/bash_completion.d/tagpromoter`.
    Completions {
        /// The shell.
        shell: clap_complete::Shell,
    },
}

/// Arguments of `run`.
#[derive(Debug, clap::Args)]
pub struct RunArgs {
    /// Where to serve the board (/), /metrics, /healthz, /readyz, /status and /webhooks/<type>.
    #[arg(long, env = "TAGPROMOTER_LISTEN", default_value = "0.0.0.0:9090")]
    pub listen: std::net::SocketAddr,
    /// Serve the board (/) and /status here instead (e.g. 127.0.0.1:9092, for
    /// `kubectl port-forward`): --listen then serves only /healthz, /readyz, /metrics and
    /// the webhook receivers.
    #[arg(long, env = "TAGPROMOTER_LISTEN_BOARD")]
    pub listen_board: Option<std::net::SocketAddr>,
    /// Serve /healthz, /readyz and /metrics here too (e.g. 0.0.0.0:9091), with connections
    /// of their own: a flood of --listen (the webhook port) cannot fail the probes.
    #[arg(long, env = "TAGPROMOTER_LISTEN_PROBES")]
    pub listen_probes: Option<std::net::SocketAddr>,
    /// How people reach this worker (e.g. http://tagpromoter.gitops:9090); alerts link to
    /// its /status.
    #[arg(long, env = "TAGPROMOTER_EXTERNAL_URL")]
    pub external_url: Option<String>,
    /// How many workers share the fleet (a StatefulSet's replicas): each decides and writes
    /// only the promotions that rendezvous hashing of their names gives it.
    #[arg(long, env = "TAGPROMOTER_SHARDS", default_value_t = 1)]
    pub shards: usize,
    /// This worker's shard, 0 to --shards minus 1; default: the ordinal at the end of a
    /// StatefulSet pod's host name (tagpromoter-2 is 2).
    #[arg(long, env = "TAGPROMOTER_SHARD")]
    pub shard: Option<usize>,
    /// How to reach a peer, `{shard}` standing for its index (through the StatefulSet's
    /// headless Service: http://tagpromoter-{shard}.tagpromoter:9090): webhooks for its
    /// promotions are forwarded there, and the board asks each peer's /status.
    #[arg(long, env = "TAGPROMOTER_PEER_URL")]
    pub peer_url: Option<String>,
}

/// `--output` for the commands that print decisions.
#[derive(Debug, clap::Args)]
pub struct OutputArgs {
    /// Output format.
    #[arg(long, value_enum, default_value = "text")]
    pub output: OutputFormat,
}

/// Arguments of `promote`.
#[derive(Debug, clap::Args)]
pub struct PromoteArgs {
    /// The promotion (metadata.name).
    pub name: String,
    /// The environment.
    #[arg(long = "env")]
    pub env: String,
    /// The tag; the best eligible one when absent.
    #[arg(long)]
    pub tag: Option<String>,
    /// Why; recorded in the commit. Required with --force.
    #[arg(long)]
    pub reason: Option<String>,
    /// Break glass: bypass soak, freeze and `from`.
    #[arg(long)]
    pub force: bool,
    /// Hold the environment for this long (e.g. 4h), then let the bot move it again.
    #[arg(long, value_parser = parse_duration)]
    pub hold_for: Option<jiff::SignedDuration>,
    /// Who asks [default: git config user.name, else $USER].
    #[arg(long, env = "TAGPROMOTER_ACTOR")]
    pub actor: Option<String>,
}

/// Arguments of `release`.
#[derive(Debug, clap::Args)]
pub struct ReleaseArgs {
    /// The promotion (metadata.name).
    pub name: String,
    /// The environment.
    #[arg(long = "env")]
    pub env: String,
    /// Why; recorded in the commit.
    #[arg(long)]
    pub reason: Option<String>,
    /// Who asks [default: git config user.name, else $USER].
    #[arg(long, env = "TAGPROMOTER_ACTOR")]
    pub actor: Option<String>,
}

/// Arguments of `check`.
#[derive(Debug, clap::Args)]
pub struct CheckArgs {
    /// Also check that every target file and value exists: in this local checkout of the
    /// GitOps repository, or (with no value) on the branch of Settings.git.
    #[arg(long, value_name = "DIR", num_args = 0..=1)]
    pub repo: Option<Option<PathBuf>>,
    /// With --repo: also bump every target on trial, as a pass would (nothing is
    /// committed), rendering Kustomize targets before and after with kustomize or kubectl.
    #[arg(long, requires = "repo")]
    pub render: bool,
}

/// Arguments of `tags`.
#[derive(Debug, clap::Args)]
pub struct TagsArgs {
    /// The image repository, e.g. ghcr.io/stefanprodan/podinfo.
    pub image: String,
    /// Show each tag's digest.
    #[arg(long)]
    pub digests: bool,
    /// Show each image's creation time.
    #[arg(long)]
    pub created: bool,
    /// Show each image's platforms.
    #[arg(long)]
    pub platforms: bool,
    /// Output format.
    #[arg(long, value_enum, default_value = "text")]
    pub output: OutputFormat,
}

/// Output formats.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum OutputFormat {
    /// Lines for people.
    Text,
    /// JSON for programs.
    Json,
}

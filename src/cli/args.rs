//! The command line, as clap types. Nothing here does work; `cli::run` does. These types
//! never leave `cli/`: `settings` turns them into typed values once, and nothing changes them
//! at run time.

use clap::{Args, Parser, Subcommand, ValueEnum};

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    Text,
    Json,
}

#[derive(Debug, Parser)]
#[command(
    name = "dockhand",
    version = crate::VERSION,
    about = "Declarative, GitOps-style reconciler for plain Docker hosts",
    long_about = "dockhand keeps a Docker host in the state described by YAML in a git repository: \
it reads the desired state at a commit, observes the Engine, shows a plan, and converges by \
creating, recreating, starting and removing only the containers it owns (labelled dockhand.managed=true).",
    after_help = "Typical use:\n  dockhand validate\n  dockhand plan\n  dockhand apply --yes\n  dockhand status"
)]
pub struct Cli {
    /// More log output (-v debug, -vv trace); RUST_LOG overrides.
    #[arg(short, long, global = true, action = clap::ArgAction::Count)]
    pub verbose: u8,
    /// Where dockhand keeps its deploy record (SQLite) and apply lock.
    #[arg(long, global = true, env = "DOCKHAND_STATE_DIR", default_value = crate::history::DEFAULT_STATE_DIR)]
    pub state_dir: std::path::PathBuf,
    /// Log lines (stderr) as text or as one JSON object per line (for log shippers).
    #[arg(long, global = true, value_enum, default_value_t = LogFormat::Text, env = "DOCKHAND_LOG_FORMAT")]
    pub log_format: LogFormat,
    /// The host's notification sinks (YAML; see README, "Notifications"): deploys, drift
    /// corrections, degraded services and rollback holds are sent there by the agent and by
    /// apply, rollback and resume. Default: /etc/dockhand/notify.yaml when it exists, else none.
    /// Kept on the host, so a commit cannot silence or redirect it.
    #[arg(long, global = true, env = "DOCKHAND_NOTIFY", value_name = "FILE")]
    pub notify: Option<std::path::PathBuf>,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Check the desired state: YAML, schema and meaning. Touches nothing, needs no Docker.
    #[command(
        after_help = "Example:\n  dockhand validate --source . --ref main --path desired-state"
    )]
    Validate(ValidateArgs),
    /// Show what apply would change, without changing anything.
    #[command(
        after_help = "Exit codes with --detailed-exitcode: 0 no changes, 2 changes, 1 error.\n\nExample:\n  dockhand plan --detailed-exitcode || echo \"host differs from git\""
    )]
    Plan(PlanArgs),
    /// The plan with the full field-by-field diff of every container to recreate.
    #[command(after_help = "Example:\n  dockhand diff --ref HEAD~1")]
    Diff(DiffArgs),
    /// Show the plan, then converge the host to it.
    #[command(
        after_help = "On a terminal apply asks before changing anything; elsewhere it refuses without --yes.\n\nExample:\n  dockhand apply --yes"
    )]
    Apply(ApplyArgs),
    /// Per service: running, stopped, missing or drifted, with image digest, commit and the
    /// deploy that put it there; quarantined revisions.
    #[command(
        after_help = "Exit codes: 0 in sync and healthy; 2 not in sync (the plan has changes or conflicts, or a container with the desired spec is `unhealthy` or still `starting` past its start period); 3 in sync but something else is unhealthy (a service not running, a job that exited non-zero); 1 error. Not in sync (2) takes precedence over unhealthy (3).\n\nExample:\n  dockhand status --json | jq '.services[] | select(.state != \"running\")'"
    )]
    Status(StatusArgs),
    /// The deploy record, newest first: trigger, revision, outcome, duration, and per deploy
    /// (--id) every step with its duration and hook output.
    #[command(
        after_help = "Examples:\n  dockhand history -n 5\n  dockhand history --stack shop --json\n  dockhand history --id 12"
    )]
    History(HistoryArgs),
    /// Run as an agent: keep the host converged to the source. Every change of the source
    /// (polled), every change of a managed container (Docker events) and a periodic resync
    /// queue a reconcile; each one plans from scratch and applies as a recorded deploy.
    #[command(
        after_help = "Drift (a managed container stopped, removed or replaced by hand) is corrected as soon as the Engine reports it. A revision whose release rolled back is quarantined and not retried until the source moves. SIGTERM/SIGINT stop the agent after the step in flight; SIGHUP queues a reconcile. A plain folder (or --worktree) is watched for edits. A stack with `drift: report` has its drift reported, not corrected.\n\nExamples:\n  dockhand run --source https://git.example.com/ops/desired.git --ref main --git-token-file /etc/dockhand/git.token\n  dockhand run --source git@git.example.com:ops/desired.git --ssh-key /etc/dockhand/deploy_key\n  dockhand run --source /srv/desired-state-repo --ref main --poll 15s"
    )]
    Run(RunArgs),
    /// Deploy an earlier revision and hold there: the agent does not undo it until a new
    /// commit arrives on the source, or `dockhand resume`.
    #[command(
        after_help = "Without --to: the revision of the last successful deploy before the one now running.\n\nExamples:\n  dockhand rollback --yes                 # back to the previous good revision\n  dockhand rollback --to 41 --yes         # the revision deploy #41 applied\n  dockhand rollback --to 3f9c2e1 --yes    # a commit"
    )]
    Rollback(RollbackArgs),
    /// End a rollback hold: the next reconcile deploys the source's head again.
    Resume(ResumeArgs),
    /// Resolve image tags to the digests their registry serves now and write them into the
    /// stack files in place (only the image values change; comments and layout stay).
    #[command(
        after_help = "Reads and writes the files on disk (commit the result). Images already pinned keep their digest unless --update is given; a tag that moved is reported either way.

Examples:
  dockhand pin                      # pin every unpinned image
  dockhand pin --stack shop --update   # follow the tags of one stack
  dockhand pin --check              # exit 2 if anything is unpinned or a tag moved"
    )]
    Pin(PinArgs),
    /// Show the logs of a service's live container: under blue/green the serving color's, for
    /// a job its last run (found by dockhand's labels, not by name).
    #[command(
        after_help = "The container's stdout goes to stdout and its stderr to stderr.\n\nExamples:\n  dockhand logs shop/web -f --tail 100\n  dockhand logs shop/migrate --since 1h\n  dockhand logs web --project shop-prod --json | jq -r 'select(.stream == \"stderr\") | .line'"
    )]
    Logs(super::ops_args::LogsArgs),
    /// Run a command in a service's live container (the serving color under blue/green);
    /// exits with the command's exit code.
    #[command(
        after_help = "As with docker exec, -i forwards standard input and -t gives the command a terminal; use -it for a shell.\n\nExamples:\n  dockhand exec -it shop/web -- sh\n  dockhand exec shop/web -- python manage.py showmigrations\n  echo 'select 1' | dockhand exec -i shop/db -- psql -U app"
    )]
    Exec(super::ops_args::ExecArgs),
    /// Decommission the project on this host: remove every container and network it owns
    /// (by label; nothing of another project, nothing unowned), keep its volumes unless
    /// --volumes; shown as a plan first, applied under the apply lock and recorded.
    #[command(
        after_help = "Refused while an agent runs on the same state directory: it would deploy the project again. With an agent, decommission through the repository instead: delete every stack file and commit (volumes are kept).\n\nExamples:\n  dockhand down                          # the source's project, asks first\n  dockhand down --project shop --yes     # without a source\n  dockhand down --volumes --yes          # and delete its data"
    )]
    Down(super::ops_args::DownArgs),
    /// Write the JSON Schemas of dockhand.yaml and stack files into a directory.
    #[command(after_help = "Example:\n  dockhand schema --out schemas")]
    Schema {
        /// Directory to write dockhand.schema.json and stack.schema.json into.
        #[arg(long, default_value = "schemas")]
        out: std::path::PathBuf,
        #[command(flatten)]
        json: Json,
    },
    /// Print a shell completion script to stdout.
    #[command(
        after_help = "Examples:\n  dockhand completions bash > /etc/bash_completion.d/dockhand\n  dockhand completions zsh > \"${fpath[1]}/_dockhand\"\n  dockhand completions fish > ~/.config/fish/completions/dockhand.fish"
    )]
    Completions {
        #[arg(value_enum)]
        shell: clap_complete::Shell,
    },
    /// Print the manual page (roff) to stdout, or write one page per verb into a directory.
    #[command(
        after_help = "Examples:\n  dockhand man | man -l -\n  dockhand man --dir /usr/local/share/man/man1"
    )]
    Man {
        /// Write dockhand.1 and one dockhand-VERB.1 per verb into this directory instead.
        #[arg(long)]
        dir: Option<std::path::PathBuf>,
    },
}

/// `--json`: the verb's result as one JSON document on stdout (its shape and `version` are in
/// README's "JSON outputs"); an error is a JSON error object on stdout too.
#[derive(Debug, Clone, Copy, Default, Args)]
pub struct Json {
    /// Print the result as one JSON document (with a `version` field) on stdout; errors too.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct ValidateArgs {
    #[command(flatten)]
    pub source: SourceArgs,
    #[command(flatten)]
    pub json: Json,
}

#[derive(Debug, Args)]
pub struct DiffArgs {
    #[command(flatten)]
    pub source: SourceArgs,
    #[command(flatten)]
    pub json: Json,
}

#[derive(Debug, Args)]
pub struct ResumeArgs {
    #[command(flatten)]
    pub source: SourceArgs,
    #[command(flatten)]
    pub json: Json,
}

impl Cli {
    /// The verb was asked for JSON (`--json`): its errors are JSON too.
    pub fn json(&self) -> bool {
        match &self.command {
            Command::Validate(ValidateArgs { json, .. })
            | Command::Diff(DiffArgs { json, .. })
            | Command::Resume(ResumeArgs { json, .. })
            | Command::Schema { json, .. } => json.json,
            Command::Plan(a) => a.json.json,
            Command::Apply(a) => a.json.json,
            Command::Status(a) => a.json.json,
            Command::History(a) => a.json.json,
            Command::Pin(a) => a.json.json,
            Command::Rollback(a) => a.json.json,
            Command::Logs(a) => a.json,
            Command::Down(a) => a.json,
            Command::Run(_)
            | Command::Exec(_)
            | Command::Completions { .. }
            | Command::Man { .. } => false,
        }
    }
}

/// Where the desired state is read from.
#[derive(Debug, Clone, Args)]
pub struct SourceArgs {
    /// A git repository (a local path, or a remote URL: https://, ssh://, git@host:path,
    /// file://) or a plain directory. A remote is mirrored under --state-dir and its branch
    /// (--ref, default the remote's default branch) followed fast-forward only. Default: the
    /// git repository containing the current directory, else the current directory.
    #[arg(long, env = "DOCKHAND_SOURCE")]
    pub source: Option<String>,
    /// Git ref to read (branch, tag or commit; for a remote, the branch to follow, or a commit
    /// already fetched). Default: HEAD.
    #[arg(long = "ref", env = "DOCKHAND_REF")]
    pub reference: Option<String>,
    /// Folder inside the source that holds dockhand.yaml and stacks/.
    #[arg(long, default_value = "desired-state", env = "DOCKHAND_PATH")]
    pub path: String,
    /// Read the files on disk instead of a git commit (uncommitted edits included).
    #[arg(long, conflicts_with = "reference")]
    pub worktree: bool,
    /// For a remote source: file holding an access token for https (sent as the password).
    #[arg(long, env = "DOCKHAND_GIT_TOKEN_FILE")]
    pub git_token_file: Option<std::path::PathBuf>,
    /// For a remote source over ssh: the private key (default: ask ssh-agent). The host key
    /// must be in the user's ~/.ssh/known_hosts.
    #[arg(long, env = "DOCKHAND_SSH_KEY")]
    pub ssh_key: Option<std::path::PathBuf>,
    /// For a remote source: follow the branch when its new head does not descend from the
    /// commit followed before (a force-push). By default that is reported and not followed.
    #[arg(long, env = "DOCKHAND_ALLOW_FORCE_PUSH")]
    pub allow_force_push: bool,
    /// Deploy only commits with an SSH signature by a key in this allowed-signers file (the
    /// format of git's gpg.ssh.allowedSignersFile). Kept on the host, so a commit cannot change it.
    #[arg(long, env = "DOCKHAND_ALLOWED_SIGNERS")]
    pub allowed_signers: Option<std::path::PathBuf>,
    /// The host's own policy (YAML; schema in schemas/policy.schema.json): what any commit
    /// may do on this host. A repository's `policy:` may only narrow it. Default:
    /// /etc/dockhand/policy.yaml when it exists, else built-in defaults (no host powers,
    /// protected host paths refused).
    #[arg(long, env = "DOCKHAND_POLICY")]
    pub policy: Option<std::path::PathBuf>,
    /// Registry logins, a docker CLI config.json (`auths`, `credsStore`, `credHelpers`), for
    /// pulls and digest checks. Default: $DOCKER_CONFIG/config.json, else
    /// ~/.docker/config.json (what `docker login` wrote), read afresh for each image.
    #[arg(long, env = "DOCKHAND_REGISTRY_AUTH")]
    pub registry_auth: Option<std::path::PathBuf>,
}

#[derive(Debug, Args)]
pub struct PlanArgs {
    #[command(flatten)]
    pub source: SourceArgs,
    #[command(flatten)]
    pub json: Json,
    /// Exit 0 when there is nothing to change, 2 when there are changes apply would make, 1 on
    /// error or when conflicts block apply (apply would refuse).
    #[arg(long)]
    pub detailed_exitcode: bool,
}

#[derive(Debug, Args)]
pub struct ApplyArgs {
    #[command(flatten)]
    pub source: SourceArgs,
    /// Do not ask; required when standard input is not a terminal.
    #[arg(long, short = 'y')]
    pub yes: bool,
    /// Run the preflight checks (images, bind sources, env files, ports, disk), then stop.
    #[arg(long)]
    pub preflight_only: bool,
    /// Apply a revision that is quarantined because its release failed before.
    #[arg(long)]
    pub retry: bool,
    #[command(flatten)]
    pub json: Json,
}

#[derive(Debug, Args)]
pub struct HistoryArgs {
    #[command(flatten)]
    pub source: SourceArgs,
    /// Only deploys that changed this stack.
    #[arg(long)]
    pub stack: Option<String>,
    /// How many deploys to show.
    #[arg(short = 'n', long, default_value_t = 20)]
    pub limit: usize,
    /// Show one deploy in full: services, steps, hook output.
    #[arg(long)]
    pub id: Option<i64>,
    #[command(flatten)]
    pub json: Json,
}

#[derive(Debug, Args)]
pub struct StatusArgs {
    #[command(flatten)]
    pub source: SourceArgs,
    #[command(flatten)]
    pub json: Json,
    /// Do not ask the registries whether pinned tags moved.
    #[arg(long)]
    pub offline: bool,
}

#[derive(Debug, Args)]
pub struct PinArgs {
    /// The repository or directory holding the desired state (default: the git repository
    /// containing the current directory, else the current directory). Files on disk are used.
    #[arg(long, env = "DOCKHAND_SOURCE")]
    pub source: Option<String>,
    /// Folder inside the source that holds dockhand.yaml and stacks/.
    #[arg(long, default_value = "desired-state", env = "DOCKHAND_PATH")]
    pub path: String,
    /// Only this stack.
    #[arg(long)]
    pub stack: Option<String>,
    /// Also move pins whose tag now points to another digest.
    #[arg(long)]
    pub update: bool,
    /// Change nothing; exit 2 if an image is unpinned or a pinned tag moved.
    #[arg(long)]
    pub check: bool,
    /// Registry logins, as for apply (default: the docker CLI's config.json).
    #[arg(long, env = "DOCKHAND_REGISTRY_AUTH")]
    pub registry_auth: Option<std::path::PathBuf>,
    #[command(flatten)]
    pub json: Json,
}

#[derive(Debug, Args)]
pub struct RunArgs {
    #[command(flatten)]
    pub source: SourceArgs,
    /// How often the source is checked for a new revision.
    #[arg(long, default_value = "15s", env = "DOCKHAND_POLL")]
    pub poll: String,
    /// How often a full reconcile runs even without a trigger (covers missed events).
    #[arg(long, default_value = "60s", env = "DOCKHAND_RESYNC")]
    pub resync: String,
    /// Address of the agent's HTTP port (/healthz, /status, /metrics, POST /webhook), or `off`.
    #[arg(long, default_value = "127.0.0.1:9587", env = "DOCKHAND_LISTEN")]
    pub listen: String,
    /// File holding the webhook secret (GitHub/Gitea/Forgejo HMAC, GitLab token); without it
    /// POST /webhook is refused.
    #[arg(long, env = "DOCKHAND_WEBHOOK_SECRET_FILE")]
    pub webhook_secret_file: Option<std::path::PathBuf>,
}

#[derive(Debug, Args)]
pub struct RollbackArgs {
    #[command(flatten)]
    pub source: SourceArgs,
    /// A deploy id (from `dockhand history`) or a commit.
    #[arg(long)]
    pub to: Option<String>,
    /// Do not ask; required when standard input is not a terminal.
    #[arg(long, short = 'y')]
    pub yes: bool,
    #[command(flatten)]
    pub json: Json,
}

//! The command line, as clap types: what `kingpin` accepts, with the help
//! text of every command.

use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, Parser, Subcommand, ValueEnum};
use clap_complete::Shell;

use crate::health_checks::CheckSpec;

/// The exit-code table, shown at the end of `kingpin --help`.
const EXIT_CODES: &str = "\
Exit codes:
  0  success
  1  other failure (a backend error)
  2  usage error (bad flags or arguments)
  3  not found (config, version, key, decider, metaconfig or dependency)
  4  conflict (--if-version mismatch, already exists, not empty)
  5  unavailable: the coordinator or blob store cannot be reached; try again
  6  invalid input (bad name, bad item for --type, bad JSON, too large)
  7  unauthorized

`kingpin lock` and `kingpin elect` exit with their command's status (see
their --help).

Errors go to stderr as `kingpin: <kind>: <message>`; with --json as
{\"error\":{\"kind\":\"not_found\",\"message\":\"...\"}}. Names and values are
checked before anything is opened or written.";

const LONG_ABOUT: &str = "\
Administer kingpin configs, managed data, deciders and metaconfig, and
register service instances in serversets.

Backends are chosen, first match wins, by --coordinator/--blobstore,
KINGPIN_COORDINATOR/KINGPIN_BLOBSTORE, the config file (--config,
KINGPIN_CONFIG, else $XDG_CONFIG_HOME/kingpin/config.toml or
~/.config/kingpin/config.toml; keys coordinator, blobstore, author), and
otherwise the embedded stack in $KINGPIN_HOME/.kingpin/ or ./.kingpin/
(SQLite coordinator, local blob directory). `kingpin backends` shows the
choice.";

/// kingpin: dynamic configuration and service discovery, administered.
#[derive(Debug, Parser)]
#[command(
    name = "kingpin",
    version,
    about = "Administer kingpin configs, managed data, deciders and metaconfig",
    long_about = LONG_ABOUT,
    after_help = EXIT_CODES
)]
pub struct Cli {
    /// Options every command takes.
    #[command(flatten)]
    pub global: GlobalArgs,
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// Options every command takes: backends, author and output format.
#[derive(Debug, Args)]
#[command(next_help_heading = "Global options")]
pub struct GlobalArgs {
    /// Coordinator URL: zk://h:2181/chroot, etcd://h:2379/prefix,
    /// sqlite:///path/kingpin.db or memory://.
    #[arg(
        long,
        global = true,
        value_name = "URL",
        env = "KINGPIN_COORDINATOR",
        hide_env_values = true
    )]
    pub coordinator: Option<String>,
    /// Blob store URL: s3://bucket/prefix?endpoint=..., file:///dir or
    /// memory://. Credentials come from the environment, never the URL.
    #[arg(
        long,
        global = true,
        value_name = "URL",
        env = "KINGPIN_BLOBSTORE",
        hide_env_values = true
    )]
    pub blobstore: Option<String>,
    /// TOML file with `coordinator`, `blobstore` and `author`.
    #[arg(
        long,
        global = true,
        value_name = "FILE",
        env = "KINGPIN_CONFIG",
        hide_env_values = true
    )]
    pub config: Option<PathBuf>,
    /// Who makes the change (default: the config file's author, else $USER).
    #[arg(
        long,
        global = true,
        value_name = "NAME",
        env = "KINGPIN_AUTHOR",
        hide_env_values = true
    )]
    pub author: Option<String>,
    /// Machine-readable output: JSON on stdout, JSON errors on stderr.
    #[arg(long, global = true)]
    pub json: bool,
    /// Print nothing on success but the data asked for.
    #[arg(short, long, global = true)]
    pub quiet: bool,
    /// Log more to stderr (-v, -vv, -vvv); RUST_LOG overrides.
    #[arg(short, long, global = true, action = clap::ArgAction::Count)]
    pub verbose: u8,
}

/// `kingpin console`: serve, or hash a password.
#[derive(Debug, Args)]
pub struct ConsoleArgs {
    /// The console's TOML settings: listen, users_file or proxy_header with
    /// trusted_proxies, grants, approvals, session_key_file.
    #[arg(long, value_name = "FILE", env = "KINGPIN_CONSOLE_SETTINGS")]
    pub settings: Option<PathBuf>,
    /// Listen here instead of the settings' address.
    #[arg(long, value_name = "ADDR")]
    pub listen: Option<std::net::SocketAddr>,
    /// Hash a password instead of serving.
    #[command(subcommand)]
    pub command: Option<ConsoleCommand>,
}

/// What `kingpin console` does besides serving.
#[derive(Debug, Subcommand)]
pub enum ConsoleCommand {
    /// Read a password from stdin and print its argon2id hash, for a line
    /// `name:hash` of the console's users file.
    HashPassword,
}

/// The top-level commands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Versioned configs: get, set, history, rollback, diff, gc.
    #[command(subcommand)]
    Config(ConfigCommand),
    /// A managed list of distinct items (a JSON array).
    #[command(subcommand)]
    List(ListCommand),
    /// A managed map of string keys to values (a JSON object, sorted keys).
    #[command(subcommand)]
    Map(MapCommand),
    /// A managed map of string keys to lists of distinct items.
    #[command(subcommand)]
    MappedList(MappedListCommand),
    /// A managed JSON document.
    #[command(subcommand)]
    Json(JsonCommand),
    /// Decider values in [0, 100] (config.manageddata.admin.decider).
    #[command(subcommand)]
    Decider(DeciderCommand),
    /// Metaconfigs: which configs and serversets monitors sync.
    #[command(subcommand)]
    Metaconfig(MetaconfigCommand),
    /// Dependencies (`*.dep`): groups of metaconfigs hosts subscribe to.
    #[command(subcommand)]
    Dep(DepCommand),
    /// Environments: a service's tree of JSON configs (/, /prod,
    /// /prod/us-east), each inheriting its parents' values, and which host
    /// reads which environment's view.
    #[command(subcommand, name = "env")]
    Env(crate::commands::environment::EnvCommand),
    /// Least privilege on the coordinator: set up and check which identities
    /// read, register and write.
    #[command(subcommand, long_about = ACL_ABOUT)]
    Acl(AclCommand),
    /// A serverset's members, and accepting an update monitors refuse
    /// (when a service is retired on purpose).
    #[command(subcommand)]
    Serverset(ServersetCommand),
    /// Register a service instance in serverset discovery.SERVICE.ENV while
    /// its health check passes; leave on SIGTERM or SIGINT.
    #[command(long_about = REGISTER_ABOUT)]
    Register(RegisterArgs),
    /// Run a command while holding a lock (like zk-flock or etcdctl lock).
    #[command(long_about = LOCK_ABOUT)]
    Lock(LockArgs),
    /// Run a command only while this process leads an election; stop it
    /// when leadership is lost.
    #[command(long_about = ELECT_ABOUT)]
    Elect(ElectArgs),
    /// Show the coordinator, blob store and author in use, and where each
    /// setting came from (URL options are never shown).
    Backends,
    /// Write every config (with every version), metaconfig, dependency and
    /// environment tree to one archive file (format kingpin-backup/1).
    #[command(long_about = BACKUP_ABOUT)]
    Backup {
        /// The archive to write (`-` for stdout). Written beside it first
        /// and renamed when complete.
        file: PathBuf,
    },
    /// Recreate an archive's contents, history included, in an empty
    /// namespace on any backend pair.
    #[command(long_about = RESTORE_ABOUT)]
    Restore {
        /// The archive to read (`-` for stdin).
        file: PathBuf,
        /// Restore into a namespace that is not empty: add only what is
        /// missing and leave everything that exists as it is.
        #[arg(long)]
        allow_non_empty: bool,
        /// Check the archive and the target and say what would be done,
        /// without writing.
        #[arg(long)]
        dry_run: bool,
    },
    /// Run the embedded stack in the foreground: the SQLite coordinator and
    /// local blobs under .kingpin/, a monitor subscribed to dev.dep writing
    /// files under .kingpin/var/ and reporting its status, the admin port,
    /// and the web console signed in as the local user.
    Dev {
        /// Where the monitor's admin HTTP server listens.
        #[arg(long, default_value = "127.0.0.1:9898", value_name = "ADDR")]
        admin_addr: std::net::SocketAddr,
        /// Where the web console listens ("off" for none).
        #[arg(long, default_value = "127.0.0.1:9900", value_name = "ADDR")]
        console_addr: String,
    },
    /// Serve the web console (127.0.0.1:9900 unless its settings say
    /// otherwise), or hash a password for its users file.
    Console(ConsoleArgs),
    /// Print a shell completion script.
    Completions {
        /// The shell.
        #[arg(value_enum)]
        shell: Shell,
    },
    /// Write the man pages, kingpin(1) and one per command
    /// (kingpin-config(1), kingpin-config-get(1), …), into DIR: for
    /// packaging.
    #[command(hide = true)]
    ManPages {
        /// An existing directory.
        dir: std::path::PathBuf,
    },
}

const ACL_ABOUT: &str = "\
Least privilege on the coordinator. An access policy (a TOML file) names
three kinds of identity:

  readers     the monitor: read everything; create, update and delete
              their own ephemeral status node under /status
  registrars  kingpin register, Thrift servers: read everything; join and
              leave serversets under /discovery
  writers     the CLI, the console: everything

  anonymous = \"none\"          # or \"read\" (ZooKeeper only)
  readers = [\"digest:monitor:<digest>\"]
  registrars = [\"digest:registrar:<digest>\"]
  writers = [\"digest:admin:<digest>\"]

On ZooKeeper identities are ids (digest:USER:DIGEST from `kingpin acl
digest USER`, sasl:USER, x509:DN, ip:CIDR) and `setup` gives every node
its ACL and stores the policy at /acl, which every process follows when it
creates nodes; it runs as a writer (KINGPIN_ZK_DIGEST=user:password). On
etcd identities are user names and `setup` creates one role per kind with
key-range permissions and grants it; it runs as root
(KINGPIN_ETCD_USER/KINGPIN_ETCD_PASSWORD) on a server with auth enabled.
SQLite has no access control: file permissions decide.";

const BACKUP_ABOUT: &str = "\
Write every config (plain, managed data, the decider, environments'
contents and views) with every version's record and content, every
metaconfig, dependency and environment tree with its host associations,
to one archive file: JSON lines in format kingpin-backup/1 (see
docs/operations.md). Serverset members (ephemeral) are not part of it.
Every version's content is checked against its sha256 on the way.

Example:
  kingpin --coordinator zk://zk1:2181/kingpin --blobstore s3://configs/kingpin \\
      backup kingpin-$(date +%F).backup";

const RESTORE_ABOUT: &str = "\
Recreate what an archive holds (see `kingpin backup`) exactly: version
numbers, authors, messages, timestamps, view sources and pins. The whole
archive is checked first (every line, name and record, every content's
sha256): a corrupt or cut-short archive is refused (exit 6) before
anything is written. The target must be empty (exit 4 otherwise) unless
--allow-non-empty, which adds only what is missing and lists what it left.
The target can be any backend pair, so this is also how a namespace moves
from ZooKeeper + S3 to etcd + GCS.

Example:
  kingpin --coordinator etcd://etcd1:2379/kingpin --blobstore gs://configs/kingpin \\
      restore kingpin-2026-01-31.backup";

const REGISTER_ABOUT: &str = "\
Register a service instance in serverset discovery.SERVICE.ENV (the node
/discovery/SERVICE/ENV/member_NNNNNNNNNN, Finagle serverset JSON) while its
health check passes, and leave on SIGTERM or SIGINT (exit code 0).

The first check runs at once and the first pass registers. Once
registered, FALL failed checks in a row deregister it; after that RISE
passes in a row register it again. A check that takes longer than
--timeout fails. Registration is kept through coordinator reconnects,
restarts and session expiry; joins that fail while the coordinator is
unreachable are retried. Transitions are logged to stderr (RUST_LOG sets
the level).

Checks:
  http://HOST:PORT/PATH   GET; a 2xx answer is healthy (redirects are not
                          followed; https is not supported)
  tcp                     connect to --host:--port
  tcp:HOST:PORT           connect to HOST:PORT
  cmd -- COMMAND [ARG]... run COMMAND (no shell); exit status 0 is healthy;
                          killed with its process group at --timeout
  (no --check)            registered for as long as kingpin runs

Example:
  kingpin register --service api --env prod --port 8080 \\
      --check http://127.0.0.1:8080/health --interval 2s --fall 2";

/// `kingpin register`'s options.
#[derive(Debug, Args)]
pub struct RegisterArgs {
    /// Service name (one name component: a-z, 0-9, `_`, `-`).
    #[arg(long)]
    pub service: String,
    /// Environment, e.g. prod.
    #[arg(long)]
    pub env: String,
    /// The port clients connect to.
    #[arg(long, value_parser = clap::value_parser!(u16).range(1..))]
    pub port: u16,
    /// The host clients connect to: a host name or IP address (default:
    /// this machine's host name).
    #[arg(long)]
    pub host: Option<String>,
    /// The shard this instance serves.
    #[arg(long, value_name = "N")]
    pub shard: Option<i32>,
    /// Health check: http://HOST:PORT/PATH, tcp, tcp:HOST:PORT or cmd
    /// (with the command after `--`). Without it: registered while kingpin
    /// runs.
    #[arg(long, value_name = "CHECK", value_parser = CheckSpec::parse)]
    pub check: Option<CheckSpec>,
    /// Time between the starts of two checks (e.g. 5s, 500ms).
    #[arg(long, value_name = "DURATION", default_value = "5s", value_parser = duration)]
    pub interval: Duration,
    /// How long a check may take before it fails; at most --interval.
    #[arg(long, value_name = "DURATION", default_value = "2s", value_parser = duration)]
    pub timeout: Duration,
    /// Passes in a row that register a deregistered instance again.
    #[arg(long, value_name = "N", default_value_t = 2, value_parser = at_least_one())]
    pub rise: u32,
    /// Failures in a row that deregister a registered instance.
    #[arg(long, value_name = "N", default_value_t = 3, value_parser = at_least_one())]
    pub fall: u32,
    /// With `--check cmd`: the command and its arguments, after `--`.
    #[arg(last = true, value_name = "COMMAND")]
    pub command: Vec<String>,
}

const LOCK_ABOUT: &str = "\
Take the lock NAME (the node /locks/NAME, or an absolute node path), run
COMMAND (no shell) while holding it, then release it. Waiters are served
first come, first served; kazoo's Lock on the same path takes part.

The command gets the lock's fencing token in KINGPIN_FENCING_TOKEN (it
grows with every new holder: hand it to what the command writes to), and
KINGPIN_LOCK_PATH and KINGPIN_LOCK_NODE. If the coordinator connection is
lost while it runs (another process may then take the lock), the command
gets SIGTERM, then SIGKILL after --grace, and kingpin exits with 5.
SIGTERM and SIGINT are passed on to the command.

Exit status: the command's (128+N if killed by signal N); 4 if the lock
was not taken within --timeout; kingpin's own codes otherwise.

Example:
  kingpin lock nightly-report -- ./report.sh --date today";

const ELECT_ABOUT: &str = "\
Campaign in the election NAME (the node /elections/NAME, or an absolute
node path; kazoo's Election on the same path takes part), run COMMAND (no
shell) once elected, and resign when it exits.

The command gets the leadership's fencing token in KINGPIN_FENCING_TOKEN,
and KINGPIN_ELECTION_PATH and KINGPIN_LEADER_NODE. As soon as leadership is
in doubt (the connection is lost) or lost (the session expired), the
command gets SIGTERM, then SIGKILL after --grace, and kingpin exits with
5: run it under a supervisor that starts it again. SIGTERM and SIGINT are
passed on to the command.

Exit status: the command's (128+N if killed by signal N); 5 when
leadership was lost; kingpin's own codes otherwise.

Example:
  kingpin elect scheduler -- ./scheduler --leader";

/// `kingpin lock`'s options.
#[derive(Debug, Args)]
pub struct LockArgs {
    /// The lock: a name (the node /locks/NAME) or an absolute node path.
    pub name: String,
    /// Give up (exit 4) when the lock is not taken within this long.
    #[arg(long, value_name = "DURATION", value_parser = duration)]
    pub timeout: Option<Duration>,
    /// What the lock's contender node shows (default: host:pid).
    #[arg(long, value_name = "ID")]
    pub identifier: Option<String>,
    /// How long the command has to exit after SIGTERM before SIGKILL.
    #[arg(long, value_name = "DURATION", default_value = "10s", value_parser = duration)]
    pub grace: Duration,
    /// The command and its arguments, after `--`.
    #[arg(last = true, required = true, value_name = "COMMAND")]
    pub command: Vec<String>,
}

/// `kingpin elect`'s options.
#[derive(Debug, Args)]
pub struct ElectArgs {
    /// The election: a name (the node /elections/NAME) or an absolute node
    /// path.
    pub name: String,
    /// What this candidate shows as (default: host:pid).
    #[arg(long, value_name = "ID")]
    pub identifier: Option<String>,
    /// How long the command has to exit after SIGTERM before SIGKILL.
    #[arg(long, value_name = "DURATION", default_value = "10s", value_parser = duration)]
    pub grace: Duration,
    /// The command and its arguments, after `--`.
    #[arg(last = true, required = true, value_name = "COMMAND")]
    pub command: Vec<String>,
}

/// A duration such as `5s`, `500ms` or `1m 30s`.
fn duration(text: &str) -> Result<Duration, humantime::DurationError> {
    humantime::parse_duration(text)
}

/// A count of at least 1.
fn at_least_one() -> clap::builder::RangedI64ValueParser<u32> {
    clap::value_parser!(u32).range(1..)
}

/// `kingpin serverset` commands.
#[derive(Debug, Subcommand)]
pub enum ServersetCommand {
    /// The alive members (`host:port`, sorted) and any acceptance.
    Show {
        /// Serverset name: discovery.SERVICE.ENV.
        name: String,
    },
    /// Let monitors write the next update of a serverset that their guard
    /// refuses (one that empties it, or shrinks it past
    /// serverset_max_shrink), for a while: when the service is retired on
    /// purpose. Without it, every host keeps the last members and reports
    /// the refusal.
    AcceptNext {
        /// Serverset name: discovery.SERVICE.ENV.
        name: String,
        /// How long monitors honour the acceptance (at most 7 days).
        #[arg(long = "for", value_name = "DURATION", default_value = "1h", value_parser = duration)]
        valid_for: Duration,
        /// Why (shown by monitors and `serverset show`).
        #[arg(short, long)]
        message: Option<String>,
    },
    /// Remove an acceptance: monitors refuse again.
    CancelAccept {
        /// Serverset name: discovery.SERVICE.ENV.
        name: String,
    },
}

/// Where new content comes from: `--file`, `--value`, or else stdin.
#[derive(Debug, Args)]
pub struct ContentArgs {
    /// Read the content from FILE (`-` for stdin).
    #[arg(short, long, value_name = "FILE", conflicts_with = "value")]
    pub file: Option<PathBuf>,
    /// Use TEXT as the content.
    #[arg(long, value_name = "TEXT")]
    pub value: Option<String>,
}

/// Access policy commands.
#[derive(Debug, Subcommand)]
pub enum AclCommand {
    /// Set up a policy on the namespace: store it, create /discovery and
    /// /status, and give every node (ZooKeeper) or role and user (etcd)
    /// what the policy says. Exit code 1 if something could not be changed.
    Setup {
        /// The policy, a TOML file (see `kingpin acl --help`).
        #[arg(long, value_name = "FILE")]
        policy: PathBuf,
        /// Report what would change, and change nothing.
        #[arg(long)]
        dry_run: bool,
    },
    /// Report every node (ZooKeeper) or role and user (etcd) that does not
    /// match the policy: the stored one, or --policy. Exit code 1 if any.
    Check {
        /// Compare with this policy file instead of the stored policy.
        #[arg(long, value_name = "FILE")]
        policy: Option<PathBuf>,
    },
    /// Print the policy stored in the namespace (TOML; JSON with --json).
    Show,
    /// Print the ZooKeeper digest identity (digest:USER:DIGEST) of USER,
    /// the password read from the first line of stdin, for a policy file.
    Digest {
        /// The digest user name.
        user: String,
    },
}

/// Versioned config commands.
#[derive(Debug, Subcommand)]
pub enum ConfigCommand {
    /// Print a config's content, exactly as stored (`--json`: the record
    /// with the content as a string).
    Get {
        /// Config name, e.g. config.manageddata.spam.blacklist.
        name: String,
        /// An older version instead of the current one.
        #[arg(long, value_name = "V")]
        version: Option<u64>,
    },
    /// Write a new version from --file, --value or stdin; prints the new
    /// version number.
    Set {
        /// Config name.
        name: String,
        #[command(flatten)]
        content: ContentArgs,
        /// Compare-and-set: write only if the current version is V (0: only
        /// if the config does not exist yet); exit code 4 otherwise.
        #[arg(long, value_name = "V")]
        if_version: Option<u64>,
        /// Why (recorded with the version).
        #[arg(short, long)]
        message: Option<String>,
    },
    /// List versions, newest first: version, time, author, size, sha256
    /// prefix, message.
    History {
        /// Config name.
        name: String,
        /// Show only the newest N versions.
        #[arg(long, value_name = "N")]
        limit: Option<usize>,
    },
    /// Write version V's content as a new version.
    Rollback {
        /// Config name.
        name: String,
        /// The version to restore.
        #[arg(long, value_name = "V")]
        to: u64,
        /// Why (recorded with the version).
        #[arg(short, long)]
        message: Option<String>,
    },
    /// Unified diff between two versions (default: the previous version and
    /// the current one). Exits 0 whether or not they differ.
    Diff {
        /// Config name.
        name: String,
        /// The old version (default: the one before --to).
        #[arg(long, value_name = "V1")]
        from: Option<u64>,
        /// The new version (default: the current one).
        #[arg(long, value_name = "V2")]
        to: Option<u64>,
    },
    /// Delete the content and history of all but the newest versions, and
    /// orphan blobs of lost races.
    Gc {
        /// Config name.
        name: String,
        /// How many versions to keep.
        #[arg(long, value_name = "N", default_value_t = 100)]
        keep: usize,
    },
}

/// How items and values given on the command line are parsed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ItemType {
    /// As given.
    String,
    /// A 64-bit integer.
    Int,
    /// A finite number.
    Float,
    /// `true` or `false`.
    Bool,
    /// Any JSON value.
    Json,
}

/// `--type` for commands that take items or values (default: string).
#[derive(Debug, Clone, Copy, Args)]
pub struct TypeArg {
    /// How ITEMS/VALUEs parse; a bad one is exit code 6, nothing written.
    #[arg(long = "type", value_enum, default_value_t = ItemType::String)]
    pub item_type: ItemType,
}

/// `--type` for reading commands: without it anything is printed, with it
/// every item must be of that type.
#[derive(Debug, Clone, Copy, Args)]
pub struct CheckTypeArg {
    /// Check that every item is of this type (default: print any JSON).
    #[arg(long = "type", value_enum)]
    pub item_type: Option<ItemType>,
}

/// Managed list commands.
#[derive(Debug, Subcommand)]
pub enum ListCommand {
    /// Print the items, one per line (strings raw, others as JSON).
    Get {
        /// Config name.
        name: String,
        #[command(flatten)]
        check: CheckTypeArg,
    },
    /// Append items not already there, in one version; prints how many.
    Add {
        /// Config name.
        name: String,
        /// Items to add.
        #[arg(required = true, allow_negative_numbers = true)]
        items: Vec<String>,
        #[command(flatten)]
        ty: TypeArg,
    },
    /// Remove items, in one version; prints how many were there.
    Remove {
        /// Config name.
        name: String,
        /// Items to remove.
        #[arg(required = true, allow_negative_numbers = true)]
        items: Vec<String>,
        #[command(flatten)]
        ty: TypeArg,
    },
    /// Print `true` or `false` (exit code 0 either way).
    Contains {
        /// Config name.
        name: String,
        /// The item to look for.
        #[arg(allow_negative_numbers = true)]
        item: String,
        #[command(flatten)]
        ty: TypeArg,
    },
    /// Replace the whole list (no ITEMS: an empty list).
    Set {
        /// Config name.
        name: String,
        /// The new items.
        #[arg(allow_negative_numbers = true)]
        items: Vec<String>,
        #[command(flatten)]
        ty: TypeArg,
    },
    /// Empty the list.
    Clear {
        /// Config name.
        name: String,
    },
}

/// Managed map commands.
#[derive(Debug, Subcommand)]
pub enum MapCommand {
    /// Print KEY's value, or every `key<TAB>value` line (strings raw,
    /// others as JSON). A missing KEY is exit code 3.
    Get {
        /// Config name.
        name: String,
        /// One key.
        key: Option<String>,
        #[command(flatten)]
        check: CheckTypeArg,
    },
    /// Set keys to values, in one version; prints how many changed.
    Set {
        /// Config name.
        name: String,
        /// KEY VALUE pairs.
        #[arg(
            required = true,
            value_names = ["KEY", "VALUE"],
            allow_negative_numbers = true
        )]
        entries: Vec<String>,
        #[command(flatten)]
        ty: TypeArg,
    },
    /// Remove keys, in one version; prints how many were there.
    Remove {
        /// Config name.
        name: String,
        /// Keys to remove.
        #[arg(required = true)]
        keys: Vec<String>,
    },
    /// Print the keys, sorted.
    Keys {
        /// Config name.
        name: String,
    },
    /// Empty the map.
    Clear {
        /// Config name.
        name: String,
    },
}

/// Managed mapped-list commands.
#[derive(Debug, Subcommand)]
pub enum MappedListCommand {
    /// Print KEY's items one per line, or every `key<TAB>[items]` line.
    Get {
        /// Config name.
        name: String,
        /// One key.
        key: Option<String>,
        #[command(flatten)]
        check: CheckTypeArg,
    },
    /// Append items to KEY's list, in one version; prints how many.
    Add {
        /// Config name.
        name: String,
        /// The key.
        key: String,
        /// Items to add.
        #[arg(required = true, allow_negative_numbers = true)]
        items: Vec<String>,
        #[command(flatten)]
        ty: TypeArg,
    },
    /// Remove items from KEY's list, in one version; prints how many.
    Remove {
        /// Config name.
        name: String,
        /// The key.
        key: String,
        /// Items to remove.
        #[arg(required = true, allow_negative_numbers = true)]
        items: Vec<String>,
        #[command(flatten)]
        ty: TypeArg,
    },
    /// Replace KEY's list (duplicates dropped).
    Set {
        /// Config name.
        name: String,
        /// The key.
        key: String,
        /// The new items.
        #[arg(allow_negative_numbers = true)]
        items: Vec<String>,
        #[command(flatten)]
        ty: TypeArg,
    },
    /// Remove KEY and its list.
    RemoveKey {
        /// Config name.
        name: String,
        /// The key.
        key: String,
    },
    /// Print the keys, sorted.
    Keys {
        /// Config name.
        name: String,
    },
    /// Remove every key.
    Clear {
        /// Config name.
        name: String,
    },
}

/// Managed JSON document commands.
#[derive(Debug, Subcommand)]
pub enum JsonCommand {
    /// Print the document, pretty. No document is exit code 3.
    Get {
        /// Config name.
        name: String,
    },
    /// Replace the document with JSON from --file, --value or stdin; text
    /// that is not JSON is exit code 6 and nothing is written.
    Set {
        /// Config name.
        name: String,
        #[command(flatten)]
        content: ContentArgs,
    },
}

/// Decider commands.
#[derive(Debug, Subcommand)]
pub enum DeciderCommand {
    /// Print a decider's value. Not set is exit code 3.
    Get {
        /// Decider name (lower case).
        name: String,
    },
    /// Set a decider to a value in [0, 100] (fractions allowed).
    Set {
        /// Decider name (lower case, no spaces).
        name: String,
        /// The value, in [0, 100].
        #[arg(allow_negative_numbers = true)]
        value: String,
    },
    /// Print every `name<TAB>value`.
    List,
    /// Remove a decider (exit code 0 whether or not it was set).
    Remove {
        /// Decider name.
        name: String,
    },
}

/// Metaconfig commands.
#[derive(Debug, Subcommand)]
pub enum MetaconfigCommand {
    /// Create the metaconfig of a config (idempotent with the same settings).
    CreateConfig {
        /// Config name.
        name: String,
        /// Longest random delay before a host fetches a change.
        #[arg(long, value_name = "N", default_value_t = 0)]
        max_random_delay_ms: u64,
    },
    /// Create the metaconfig of SERVICE's environments
    /// (environments.SERVICE): each subscribed host's monitor writes the
    /// view of the environment the host is associated with.
    CreateEnvironment {
        /// Service name.
        service: String,
        /// Longest random delay before a host fetches a change.
        #[arg(long, value_name = "N", default_value_t = 0)]
        max_random_delay_ms: u64,
    },
    /// Create the metaconfig of serverset discovery.SERVICE.ENV (and its
    /// node).
    CreateServerset {
        /// Service name.
        service: String,
        /// Environment, e.g. prod.
        env: String,
        /// Longest random delay before a host fetches a change.
        #[arg(long, value_name = "N", default_value_t = 0)]
        max_random_delay_ms: u64,
    },
    /// Print a metaconfig. Missing is exit code 3.
    Show {
        /// Config or serverset name.
        name: String,
    },
    /// Print every metaconfig name.
    List,
    /// Remove a metaconfig and its membership in every dependency.
    Remove {
        /// Config or serverset name.
        name: String,
    },
}

/// Dependency commands.
#[derive(Debug, Subcommand)]
pub enum DepCommand {
    /// Create an empty dependency (idempotent).
    Create {
        /// Dependency name, ending in .dep.
        dep: String,
    },
    /// Add metaconfigs or dependencies to a dependency; all must exist.
    Add {
        /// Dependency name.
        dep: String,
        /// Metaconfig or dependency names.
        #[arg(required = true)]
        members: Vec<String>,
    },
    /// Remove members from a dependency.
    Remove {
        /// Dependency name.
        dep: String,
        /// Member names.
        #[arg(required = true)]
        members: Vec<String>,
    },
    /// Print a dependency's direct members, or with --resolved everything a
    /// subscription reaches.
    Show {
        /// Dependency name.
        dep: String,
        /// Resolve recursively (plus base.dep): metaconfigs, dependencies
        /// visited, and members that are missing.
        #[arg(long)]
        resolved: bool,
    },
    /// Print every dependency name.
    List,
    /// Delete a dependency, its members list and its membership elsewhere.
    Delete {
        /// Dependency name.
        dep: String,
    },
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn the_command_line_is_consistent() {
        Cli::command().debug_assert();
    }
}

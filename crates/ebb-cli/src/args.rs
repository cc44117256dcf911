//! The command line: BITSAdmin's verbs, spelled for a Unix shell.

use std::path::PathBuf;
use std::time::Duration;

use clap::builder::BoolishValueParser;
use clap::{Args, Parser, Subcommand};
use ebb::settings::EngineSettings;
use ebb::{JobType, Limit, Priority};

#[derive(Debug, Parser)]
#[command(
    name = "ebb",
    version,
    about = "Background transfers with the BITS job model",
    long_about = "Background transfers with the BITS job model: jobs of files that survive \
                  crashes, resume with range requests, run by priority, and appear at their \
                  final names only on `complete`.\n\nVerbs go to the per-user daemon `ebbd` \
                  (started on demand). With --embedded the engine runs in this process instead: \
                  then `resume --wait`, `wait` and `transfer` move bytes and other verbs only \
                  change the queue."
)]
pub struct Cli {
    #[command(flatten)]
    pub engine: EngineArgs,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Args)]
pub struct EngineArgs {
    /// Run the engine in this process instead of talking to ebbd.
    #[arg(long, global = true, env = "EBB_EMBEDDED", value_parser = BoolishValueParser::new())]
    pub embedded: bool,
    /// Do not start ebbd if none answers.
    #[arg(long, global = true, env = "EBB_NO_AUTOSTART", value_parser = BoolishValueParser::new())]
    pub no_autostart: bool,
    /// The daemon's socket (default: <runtime dir>/ebb/ebbd.sock).
    #[arg(long, global = true, env = "EBB_SOCKET", value_name = "PATH")]
    pub socket: Option<PathBuf>,
    /// Where the queue lives (default: the per-user data directory).
    #[arg(long, global = true, env = "EBB_DATA_DIR", value_name = "DIR")]
    pub data_dir: Option<PathBuf>,
    /// The engine's settings. Embedded, they win over the configuration file's `[engine]`;
    /// to the daemon, they go to an ebbd this call starts, and one already running with other
    /// settings refuses the call.
    #[command(flatten)]
    pub settings: EngineSettings,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Create a job (Suspended); prints its id alone.
    Create {
        #[arg(long = "type", default_value = "download", value_parser = parse_type)]
        job_type: JobType,
        #[arg(long, value_parser = parse_priority)]
        priority: Option<Priority>,
        name: String,
    },
    /// Add a file to a job.
    AddFile {
        job: String,
        url: String,
        path: PathBuf,
        /// Only these byte ranges, e.g. `0:100,2000:eof` (the file holds them in order).
        #[arg(long)]
        ranges: Option<String>,
        /// The SHA-256 the file must have (64 hex digits; `URL#sha256=HEX` says the same).
        #[arg(long, value_name = "HEX", value_parser = parse_sha256)]
        sha256: Option<ebb::Sha256Digest>,
    },
    /// Queue a job; with --wait, run the engine until it leaves the active states.
    Resume {
        job: String,
        #[arg(long)]
        wait: bool,
    },
    /// Stop a job, keeping its progress.
    Suspend { job: String },
    /// Make a job's transferred files appear at their final names.
    Complete { job: String },
    /// Drop a job and its temporary files.
    Cancel { job: String },
    /// Show a job.
    Info {
        job: String,
        #[arg(long)]
        json: bool,
    },
    /// List jobs (Acknowledged and Cancelled ones only with --all).
    List {
        #[arg(long)]
        json: bool,
        /// Acknowledged and Cancelled jobs too.
        #[arg(long)]
        all: bool,
        /// Every user's jobs (for a system-wide daemon; a per-user daemon has only yours).
        #[arg(long)]
        all_users: bool,
    },
    /// List a job's files.
    Files {
        job: String,
        #[arg(long)]
        json: bool,
    },
    /// An upload-reply job's reply: its file and progress, or with --data its bytes (at most
    /// 1 MiB) on stdout, or with --file its file name alone.
    Reply {
        job: String,
        /// The reply's bytes, raw, on stdout.
        #[arg(long, conflicts_with_all = ["file", "json"])]
        data: bool,
        /// The reply file's name alone.
        #[arg(long, conflicts_with = "json")]
        file: bool,
        #[arg(long)]
        json: bool,
    },
    /// Show a job's last error.
    Error {
        job: String,
        #[arg(long)]
        json: bool,
    },
    /// Change a job's properties.
    Set(SetArgs),
    /// Run the engine until the job leaves the active states (exit 0 if it is Transferred).
    Wait {
        job: String,
        /// Give up waiting after this long: seconds, or e.g. `2m`.
        #[arg(long, value_parser = ebb::settings::parse_duration)]
        timeout: Option<Duration>,
    },
    /// Download URL to PATH (pairs may repeat), or with --upload send FILE to URL: create,
    /// add, resume, wait, complete.
    Transfer {
        #[arg(long, value_parser = parse_priority)]
        priority: Option<Priority>,
        /// Upload FILE to URL (one pair) over the BITS upload protocol, e.g. to `ebb-server`.
        #[arg(long, conflicts_with = "upload_reply")]
        upload: bool,
        /// Upload FILE to URL and fetch the server application's reply.
        #[arg(long)]
        upload_reply: bool,
        /// Where the reply goes (--upload-reply; default: beside FILE, named after it).
        #[arg(long, value_name = "PATH", requires = "upload_reply")]
        reply_file: Option<PathBuf>,
        /// Display name of the job.
        #[arg(long, default_value = "ebb transfer")]
        name: String,
        /// URL PATH [URL PATH ...] (for an upload: URL FILE)
        #[arg(required = true, num_args = 2.., value_name = "URL PATH")]
        pairs: Vec<String>,
    },
    /// A live table of jobs, refreshed until Ctrl-C (like `bitsadmin /monitor`).
    Monitor {
        /// Seconds between refreshes, or e.g. `500ms`.
        #[arg(long, default_value = "5", value_parser = ebb::settings::parse_duration)]
        refresh: Duration,
    },
    /// BITSAdmin's command line and output (also when `ebb` runs under the name `bitsadmin`).
    Bitsadmin {
        #[arg(
            trailing_var_arg = true,
            allow_hyphen_values = true,
            value_name = "ARGS"
        )]
        args: Vec<String>,
    },
    /// Run `ebbd` (the one beside this program, else the one on PATH) with these arguments.
    #[command(hide = true)]
    Daemon {
        #[arg(
            trailing_var_arg = true,
            allow_hyphen_values = true,
            value_name = "ARGS"
        )]
        args: Vec<std::ffi::OsString>,
    },
    /// Rewrite the start of every remote name of a job (repair after a server move).
    ReplaceRemotePrefix {
        job: String,
        old: String,
        new: String,
    },
    /// Change one file's remote name.
    SetRemoteName {
        job: String,
        index: usize,
        url: String,
    },
    /// Bandwidth for background jobs: what limits it now, and run-time caps.
    #[command(subcommand)]
    Bandwidth(BandwidthCommand),
}

#[derive(Debug, Subcommand)]
pub enum BandwidthCommand {
    /// The current target rate, the estimated foreground traffic, and why.
    Show {
        #[arg(long)]
        json: bool,
    },
    /// Change a cap or the idle estimation now (kept until `ebb bandwidth reset`).
    #[command(group(clap::ArgGroup::new("what").required(true).multiple(true).args(["max_rate", "idle"])))]
    Set {
        /// 10MiB/s, 500KB/s, 80mbit, 0 (pause) or unlimited.
        #[arg(long, value_parser = parse_limit, value_name = "RATE")]
        max_rate: Option<Limit>,
        /// Cap only this background priority (high, normal, low); default: all together.
        #[arg(long, value_parser = parse_priority, requires = "max_rate")]
        priority: Option<Priority>,
        /// Use only the network's idle capacity.
        #[arg(long, value_parser = parse_on_off, value_name = "on|off")]
        idle: Option<bool>,
    },
    /// Drop run-time changes: back to the configuration file.
    Reset,
}

#[derive(Debug, Args)]
pub struct SetArgs {
    pub job: String,
    #[arg(long, value_parser = parse_priority)]
    pub priority: Option<Priority>,
    #[arg(long)]
    pub display_name: Option<String>,
    #[arg(long)]
    pub description: Option<String>,
    /// Seconds (at least 5).
    #[arg(long, value_name = "SECONDS")]
    pub min_retry_delay: Option<u32>,
    /// Seconds; 0 makes every error final.
    #[arg(long, value_name = "SECONDS")]
    pub no_progress_timeout: Option<u32>,
    #[arg(long, value_name = "SECONDS")]
    pub max_download_time: Option<u32>,
    /// Program and arguments run on Transferred/Error (no shell); `none` clears.
    #[arg(long, value_name = "COMMAND")]
    pub notify_cmd: Option<String>,
    /// BG_NOTIFY_* bits, decimal or 0x hex.
    #[arg(long, value_parser = parse_u32, value_name = "FLAGS")]
    pub notify_flags: Option<u32>,
    /// `Name: value`, repeatable; replaces the job's headers. `--header none` clears them.
    #[arg(long = "header", value_name = "HEADER")]
    pub headers: Vec<String>,
    /// preconfig | no_proxy | autodetect | override:PROXY[,PROXY][;BYPASS[,BYPASS]]
    #[arg(long)]
    pub proxy: Option<String>,
    /// server|proxy:USER:PASSWORD (Basic), or server|proxy:none to remove. On a command line
    /// the password is visible to other processes: prefer --credentials-from.
    #[arg(long, value_name = "TARGET:USER:PASSWORD")]
    pub credentials: Vec<String>,
    /// Read TARGET:USER:PASSWORD lines from a file, or from stdin with `-`.
    #[arg(long, value_name = "FILE")]
    pub credentials_from: Option<PathBuf>,
    /// allow | report | disallow
    #[arg(long)]
    pub redirect_policy: Option<String>,
    /// Allow a redirect from HTTPS to HTTP (true/false).
    #[arg(long)]
    pub allow_https_to_http: Option<bool>,
    /// Raw BG_SSL_* and redirect bits, decimal or 0x hex.
    #[arg(long, value_parser = parse_u32, value_name = "FLAGS")]
    pub security_flags: Option<u32>,
    /// This job's own cap: 10MiB/s, 500KB/s, 80mbit, 0 (pause) or unlimited.
    #[arg(long, value_parser = parse_limit, value_name = "RATE")]
    pub max_rate: Option<Limit>,
    /// Let server credentials answer a challenge from another origin after a redirect (on/off;
    /// off by default: they go only to the origin of the file's URL).
    #[arg(long, value_parser = parse_on_off, value_name = "on|off")]
    pub credentials_across_origins: Option<bool>,
    /// Where an upload-reply job's reply goes (before its reply is fetched).
    #[arg(long, value_name = "PATH")]
    pub reply_file: Option<PathBuf>,
}

fn parse_limit(s: &str) -> Result<Limit, String> {
    s.parse().map_err(|e: ebb::ParseLimitError| e.to_string())
}

fn parse_on_off(s: &str) -> Result<bool, String> {
    match s.to_ascii_lowercase().as_str() {
        "on" | "true" | "yes" | "1" => Ok(true),
        "off" | "false" | "no" | "0" => Ok(false),
        _ => Err(format!("expected on or off, not {s:?}")),
    }
}

fn parse_sha256(s: &str) -> Result<ebb::Sha256Digest, String> {
    s.parse()
}

fn parse_type(s: &str) -> Result<JobType, String> {
    s.parse()
}

fn parse_priority(s: &str) -> Result<Priority, String> {
    s.parse()
}

/// Seconds (`30`) or a duration with units (`1m30s`, `250ms`).
pub fn parse_u32(s: &str) -> Result<u32, String> {
    let t = s.trim();
    let parsed = match t.strip_prefix("0x").or_else(|| t.strip_prefix("0X")) {
        Some(hex) => u32::from_str_radix(hex, 16),
        None => t.parse(),
    };
    parsed.map_err(|_| format!("{s:?} is not a number"))
}

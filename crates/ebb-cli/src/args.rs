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
                  change the queue.",
    after_help = EXAMPLES
)]
pub struct Cli {
    #[command(flatten)]
    pub engine: EngineArgs,
    #[command(subcommand)]
    pub command: Command,
}

const EXAMPLES: &str = "Examples:
  ebb transfer https://example.com/big.iso      download to ./big.iso, with a progress bar
  ebb list                                      every job, and why each one waits
  ebb info JOB                                  one job in full (JOB: its id or its name)
  ebb create nightly && ebb add-file nightly URL PATH && ebb resume nightly
  ebb completions bash > ~/.local/share/bash-completion/completions/ebb
  ebb bitsadmin /transfer myjob URL PATH        BITSAdmin's syntax and output

Exit codes: 0 done, 1 failed (the message says why), 2 bad usage, 124 a --timeout passed,
130/143 interrupted.";

#[derive(Debug, Args)]
pub struct EngineArgs {
    /// Run the engine in this process instead of talking to ebbd.
    #[arg(long, global = true, env = "EBB_EMBEDDED", value_parser = BoolishValueParser::new(), help_heading = "Where the engine runs")]
    pub embedded: bool,
    /// Do not start ebbd if none answers.
    #[arg(long, global = true, env = "EBB_NO_AUTOSTART", value_parser = BoolishValueParser::new(), help_heading = "Where the engine runs")]
    pub no_autostart: bool,
    /// The daemon's socket (default: <runtime dir>/ebb/ebbd.sock).
    #[arg(
        long,
        global = true,
        env = "EBB_SOCKET",
        value_name = "PATH",
        help_heading = "Where the engine runs"
    )]
    pub socket: Option<PathBuf>,
    /// Where the queue lives (default: the per-user data directory).
    #[arg(
        long,
        global = true,
        env = "EBB_DATA_DIR",
        value_name = "DIR",
        help_heading = "Where the engine runs"
    )]
    pub data_dir: Option<PathBuf>,
    /// The engine's settings. Embedded, they win over the configuration file's `[engine]`;
    /// to the daemon, they go to an ebbd this call starts, and one already running with other
    /// settings refuses the call.
    #[command(
        flatten,
        next_help_heading = "Engine settings (for an ebbd this call starts, or --embedded)"
    )]
    pub settings: EngineSettings,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Create a job (Suspended); prints its id alone.
    Create {
        /// download, upload or upload-reply.
        #[arg(long = "type", default_value = "download", value_parser = parse_type)]
        job_type: JobType,
        /// foreground, high, normal (the default) or low.
        #[arg(long, value_parser = parse_priority)]
        priority: Option<Priority>,
        /// The job's display name (other verbs accept it in place of the id).
        name: String,
    },
    /// Add a file to a job.
    AddFile {
        /// The job: its id, or its display name when no other job has it.
        job: String,
        /// Where the file comes from (http, https or file; for an upload, where it goes).
        url: String,
        /// Where it goes on this machine (for an upload, the file sent).
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
        /// The job: its id, or its display name when no other job has it.
        job: String,
        /// Then wait until it leaves the active states (and, embedded, run the engine).
        #[arg(long)]
        wait: bool,
    },
    /// Stop a job, keeping its progress.
    Suspend {
        /// The job: its id, or its display name when no other job has it.
        job: String,
    },
    /// Make a job's transferred files appear at their final names.
    Complete {
        /// The job: its id, or its display name when no other job has it.
        job: String,
    },
    /// Drop a job and its temporary files.
    Cancel {
        /// The job: its id, or its display name when no other job has it.
        job: String,
    },
    /// Show a job.
    Info {
        /// The job: its id, or its display name when no other job has it.
        job: String,
        /// One JSON document (the model's names, snake_case), for scripts.
        #[arg(long)]
        json: bool,
    },
    /// List jobs (Acknowledged and Cancelled ones only with --all).
    List {
        /// One JSON document (the model's names, snake_case), for scripts.
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
        /// The job: its id, or its display name when no other job has it.
        job: String,
        /// One JSON document (the model's names, snake_case), for scripts.
        #[arg(long)]
        json: bool,
    },
    /// An upload-reply job's reply: its file and progress, its bytes, or its file name.
    ///
    /// With --data the reply's bytes (at most 1 MiB) go raw to stdout; with --file its file
    /// name alone.
    Reply {
        /// The job: its id, or its display name when no other job has it.
        job: String,
        /// The reply's bytes, raw, on stdout.
        #[arg(long, conflicts_with_all = ["file", "json"])]
        data: bool,
        /// The reply file's name alone.
        #[arg(long, conflicts_with = "json")]
        file: bool,
        /// One JSON document (the model's names, snake_case), for scripts.
        #[arg(long)]
        json: bool,
    },
    /// Show a job's last error.
    Error {
        /// The job: its id, or its display name when no other job has it.
        job: String,
        /// One JSON document (the model's names, snake_case), for scripts.
        #[arg(long)]
        json: bool,
    },
    /// Change a job's properties.
    Set(SetArgs),
    /// Run the engine until the job leaves the active states (exit 0 if it is Transferred).
    Wait {
        /// The job: its id, or its display name when no other job has it.
        job: String,
        /// Give up waiting after this long (seconds, or e.g. `2m`): exit 124, the job goes on.
        #[arg(long, value_parser = ebb::settings::parse_duration, value_name = "DURATION")]
        timeout: Option<Duration>,
    },
    /// Download URLs (or upload a file) in one job, with a progress bar, until done.
    ///
    /// Each URL goes to the PATH after it, else to a file named after it. It creates, adds,
    /// resumes, waits and completes. Run again after Ctrl-C, the same command goes on with the
    /// job it started, from its last checkpoint.
    #[command(after_help = TRANSFER_EXAMPLES)]
    Transfer(TransferArgs),
    /// A live table of jobs, refreshed until Ctrl-C (like `bitsadmin /monitor`).
    Monitor {
        /// Seconds between refreshes, or e.g. `500ms`.
        #[arg(long, default_value = "5", value_parser = ebb::settings::parse_duration)]
        refresh: Duration,
    },
    /// BITSAdmin's command line and output (also when `ebb` runs under the name `bitsadmin`).
    Bitsadmin {
        /// BITSAdmin's words, e.g. `/transfer myjob URL PATH` or `/?`.
        #[arg(
            trailing_var_arg = true,
            allow_hyphen_values = true,
            value_name = "ARGS"
        )]
        args: Vec<String>,
    },
    /// Stop the running ebbd (`ebb daemon stop`), or run ebbd with ARGS.
    ///
    /// `stop` checkpoints each running job (they go on at the next start) and waits until the
    /// daemon has let go of its data directory. Any other ARGS go to the `ebbd` beside this
    /// program, else the one on PATH, e.g. `ebb daemon --foreground`.
    Daemon {
        /// `stop`, or ebbd's own arguments.
        #[arg(
            trailing_var_arg = true,
            allow_hyphen_values = true,
            value_name = "ARGS"
        )]
        args: Vec<std::ffi::OsString>,
    },
    /// Rewrite the start of every remote name of a job (repair after a server move).
    ReplaceRemotePrefix {
        /// The job: its id, or its display name when no other job has it.
        job: String,
        /// The start of the remote names to change, e.g. `https://old.example.com/`.
        old: String,
        /// What it becomes.
        new: String,
    },
    /// Change one file's remote name.
    SetRemoteName {
        /// The job: its id, or its display name when no other job has it.
        job: String,
        /// The file's index, as `ebb files` shows it (from 0).
        index: usize,
        /// Its new remote name (only while the file is not yet transferred).
        url: String,
    },
    /// Bandwidth for background jobs: what limits it now, and run-time caps.
    #[command(subcommand)]
    Bandwidth(BandwidthCommand),
    /// Print a completion script for SHELL (bash, zsh, fish, powershell, elvish) on stdout.
    #[command(after_help = "Install, e.g.:
  bash: ebb completions bash > ~/.local/share/bash-completion/completions/ebb
  zsh:  ebb completions zsh > ~/.zfunc/_ebb   (with fpath+=~/.zfunc before compinit)
  fish: ebb completions fish > ~/.config/fish/completions/ebb.fish")]
    Completions {
        /// The shell.
        shell: clap_complete::Shell,
    },
    /// Print ebb's man page (roff) on stdout, or write one page per verb into DIR.
    Man {
        /// Write ebb.1 and ebb-VERB.1 for every verb into this directory.
        #[arg(long, value_name = "DIR")]
        dir: Option<PathBuf>,
    },
}

const TRANSFER_EXAMPLES: &str = "Examples:
  ebb transfer https://example.com/big.iso                  # to ./big.iso
  ebb transfer https://example.com/a.zip /tmp/a.zip         # URL PATH pairs may repeat
  ebb transfer -d ~/Downloads URL1 URL2                     # named after each URL
  ebb transfer --timeout 10m --priority foreground URL      # give up after 10 minutes
  ebb transfer --upload https://host/uploads/r.log r.log    # to ebb-server or IIS";

/// `ebb transfer`'s options and targets.
#[derive(Debug, Args)]
pub struct TransferArgs {
    /// foreground, high, normal (the default) or low; background priorities use only what
    /// the network leaves idle.
    #[arg(long, value_parser = parse_priority)]
    pub priority: Option<Priority>,
    /// Connections per file for a large file on a long or lossy path (as `aria2c -x`): 1 to
    /// 16, or 0 to let ebb split a slow file over 4. More than one makes the job foreground
    /// (a background job splits a file only when one connection is short of an idle link).
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u8).range(0..=16))]
    pub connections: Option<u8>,
    /// Upload FILE to URL (one pair) over the BITS upload protocol, e.g. to `ebb-server`.
    #[arg(long, conflicts_with = "upload_reply")]
    pub upload: bool,
    /// Upload FILE to URL and fetch the server application's reply.
    #[arg(long)]
    pub upload_reply: bool,
    /// Where the reply goes (--upload-reply; default: beside FILE, named after it).
    #[arg(long, value_name = "PATH", requires = "upload_reply")]
    pub reply_file: Option<PathBuf>,
    /// Save the one URL given as FILE.
    #[arg(short = 'o', long, value_name = "FILE", conflicts_with = "output_dir")]
    pub output: Option<PathBuf>,
    /// Save files named after their URLs in DIR (default: the current directory).
    #[arg(short = 'd', long, value_name = "DIR")]
    pub output_dir: Option<PathBuf>,
    /// Create missing directories of the destinations.
    #[arg(long)]
    pub create_dirs: bool,
    /// Replace a destination that already exists (otherwise ebb refuses, and says so).
    #[arg(long)]
    pub overwrite: bool,
    /// No progress bar and no notes: only errors.
    #[arg(short, long)]
    pub quiet: bool,
    /// Display name of the job.
    #[arg(long, default_value = "ebb transfer")]
    pub name: String,
    /// Trust the CA certificates in this PEM file besides the system's (a private CA, or a
    /// server's own self-signed certificate).
    #[arg(long, value_name = "FILE")]
    pub ca_file: Option<PathBuf>,
    /// Accept any server certificate (self-signed, expired, another name): the job's
    /// BG_SSL_IGNORE_* security flags (0x1e).
    #[arg(long)]
    pub insecure: bool,
    /// Give up after this long (seconds, or e.g. `10m`): the job is cancelled and the
    /// command exits 124.
    #[arg(long, value_parser = ebb::settings::parse_duration, value_name = "DURATION")]
    pub timeout: Option<Duration>,
    /// URL [PATH] ...: each URL, followed by where it goes unless it is named after the URL.
    /// For an upload: URL FILE.
    #[arg(required = true, num_args = 1.., value_name = "URL [PATH]")]
    pub targets: Vec<String>,
}

#[derive(Debug, Subcommand)]
pub enum BandwidthCommand {
    /// The current target rate, the estimated foreground traffic, and why.
    Show {
        /// One JSON document (the model's names, snake_case), for scripts.
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
    /// The job: its id, or its display name when no other job has it.
    pub job: String,
    /// foreground, high, normal or low.
    #[arg(long, value_parser = parse_priority)]
    pub priority: Option<Priority>,
    /// The name lists show (and other verbs accept in place of the id).
    #[arg(long)]
    pub display_name: Option<String>,
    /// Free text kept with the job.
    #[arg(long)]
    pub description: Option<String>,
    /// Wait at least this long before retrying after a transient error: seconds, or e.g.
    /// `10m` (at least 5 s).
    #[arg(long, value_name = "DURATION", value_parser = parse_secs)]
    pub min_retry_delay: Option<u32>,
    /// Give up (Error) after this long without progress: seconds, or e.g. `1h`; 0 makes every
    /// error final.
    #[arg(long, value_name = "DURATION", value_parser = parse_secs)]
    pub no_progress_timeout: Option<u32>,
    /// Fail the job once it has been transferring this long: seconds, or e.g. `10m`.
    #[arg(long, value_name = "DURATION", value_parser = parse_secs)]
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
    /// preconfig (the system's), no-proxy, autodetect, or
    /// override:PROXY[,PROXY][;BYPASS[,BYPASS]].
    #[arg(long, value_name = "PROXY")]
    pub proxy: Option<String>,
    /// server|proxy:USER:PASSWORD (Basic), or server|proxy:none to remove. On a command line
    /// the password is visible to other processes: prefer --credentials-from.
    #[arg(long, value_name = "TARGET:USER:PASSWORD")]
    pub credentials: Vec<String>,
    /// Read TARGET:USER:PASSWORD lines from a file, or from stdin with `-`.
    #[arg(long, value_name = "FILE")]
    pub credentials_from: Option<PathBuf>,
    /// What a redirect does: allow (silently), report (allowed, and `files` shows where it
    /// went) or disallow (the job's error).
    #[arg(long, value_name = "POLICY")]
    pub redirect_policy: Option<String>,
    /// Allow a redirect from HTTPS to HTTP (on/off).
    #[arg(long, value_parser = parse_on_off, value_name = "on|off")]
    pub allow_https_to_http: Option<bool>,
    /// Raw BG_SSL_* and redirect bits, decimal or 0x hex.
    #[arg(long, value_parser = parse_u32, value_name = "FLAGS")]
    pub security_flags: Option<u32>,
    /// Trust the CA certificates in this PEM file besides the system's (a private CA, or a
    /// server's own self-signed certificate); `none` drops it.
    #[arg(long, value_name = "FILE")]
    pub ca_file: Option<PathBuf>,
    /// Accept any server certificate (on/off): sets or clears every BG_SSL_IGNORE_* bit of the
    /// security flags (0x1e).
    #[arg(long, value_parser = parse_on_off, value_name = "on|off")]
    pub insecure: Option<bool>,
    /// This job's own cap: 10MiB/s, 500KB/s, 80mbit, 0 (pause) or unlimited.
    #[arg(long, value_parser = parse_limit, value_name = "RATE")]
    pub max_rate: Option<Limit>,
    /// Connections per file of a foreground job: 1 to 16, or 0 to let ebb choose.
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u8).range(0..=16))]
    pub connections: Option<u8>,
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

/// A duration in whole seconds, spelled as every duration flag takes it: `30`, `10m`, `1h30m`.
fn parse_secs(s: &str) -> Result<u32, String> {
    let d = ebb::settings::parse_duration(s)?;
    u32::try_from(d.as_secs()).map_err(|_| format!("{s:?} is too long (at most 136 years)"))
}

/// A number, decimal or `0x` hex.
pub fn parse_u32(s: &str) -> Result<u32, String> {
    let t = s.trim();
    let parsed = match t.strip_prefix("0x").or_else(|| t.strip_prefix("0X")) {
        Some(hex) => u32::from_str_radix(hex, 16),
        None => t.parse(),
    };
    parsed.map_err(|_| format!("{s:?} is not a number"))
}

#[cfg(test)]
mod tests {
    use clap::CommandFactory;

    use super::Cli;

    /// Every argument of every verb has a line in `--help`, and every verb a description.
    #[test]
    fn every_argument_says_what_it_is() {
        fn walk(cmd: &clap::Command, path: &str, missing: &mut Vec<String>) {
            if cmd.get_about().is_none() && !path.is_empty() {
                missing.push(format!("{path}: the verb"));
            }
            for arg in cmd.get_arguments() {
                let id = arg.get_id().as_str();
                if arg.get_help().is_none() && !["help", "version"].contains(&id) {
                    missing.push(format!("{path} {id}"));
                }
            }
            for sub in cmd.get_subcommands().filter(|s| s.get_name() != "help") {
                walk(sub, &format!("{path} {}", sub.get_name()), missing);
            }
        }
        let mut missing = Vec::new();
        walk(&Cli::command(), "", &mut missing);
        assert!(missing.is_empty(), "no help for: {missing:?}");
        Cli::command().debug_assert();
    }
}

//! `ebb`: BITS-style background transfers from a shell.
//!
//! Exit codes: 0 success, 1 the operation failed (the message says why), 2 bad usage.

mod args;
mod bitsadmin;
mod conn;
mod output;
mod watch;

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Context, anyhow, bail};
use clap::Parser;
use ebb::{
    BasicCredentials, ByteRange, CredentialTarget, CustomHeader, JobId, JobType, NewFile,
    NotifyCommandLine, NotifyFlags, PropertyChange, ProxySettings, RedirectPolicy, SecurityFlags,
};

use args::{BandwidthCommand, Cli, Command, EngineArgs, SetArgs};
use conn::Conn;

fn main() -> ExitCode {
    // Under the name `bitsadmin` (a symlink), every argument is BITSAdmin's.
    let mut argv: Vec<std::ffi::OsString> = std::env::args_os().collect();
    let invoked = argv.first().and_then(|a| {
        Path::new(a)
            .file_stem()
            .map(std::ffi::OsStr::to_ascii_lowercase)
    });
    if invoked.as_deref() == Some(std::ffi::OsStr::new("bitsadmin")) {
        argv.insert(1, "bitsadmin".into());
        argv.insert(2, "--".into());
    }
    let cli = Cli::parse_from(argv);
    if let Command::Daemon { args } = &cli.command {
        return daemon(&cli.engine, args);
    }
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("EBB_LOG")
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn")),
        )
        .init();
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("ebb: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(cli)) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("ebb: {e:#}");
            ExitCode::FAILURE
        }
    }
}

/// `ebb daemon ARGS`: becomes `ebbd ARGS`, with this call's engine settings.
fn daemon(engine: &EngineArgs, args: &[std::ffi::OsString]) -> ExitCode {
    let error = conn::exec_ebbd(engine, args);
    eprintln!("ebb daemon: {error:#}");
    ExitCode::FAILURE
}

/// A local name as the engine wants it: relative names are taken from the current directory.
fn absolute(path: &Path) -> anyhow::Result<PathBuf> {
    std::path::absolute(path)
        .with_context(|| format!("{}: cannot make the path absolute", path.display()))
}

/// Open the backend, run `f` on the job named `job`, close.
async fn on_job<T, F, Fut>(args: &EngineArgs, job: &str, f: F) -> anyhow::Result<T>
where
    F: FnOnce(Conn, JobId) -> Fut,
    Fut: Future<Output = anyhow::Result<(Conn, T)>>,
{
    let conn = Conn::open(args, false).await?;
    let id = conn.backend().find(job).await?;
    let (conn, out) = f(conn, id).await?;
    conn.close().await;
    Ok(out)
}

async fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    let args = &cli.engine;
    match cli.command {
        Command::Create {
            job_type,
            priority,
            name,
        } => {
            let conn = Conn::open(args, false).await?;
            let b = conn.backend();
            let id = b.create_job(&name, job_type).await?;
            if let Some(p) = priority {
                b.set_property(id, PropertyChange::Priority(p)).await?;
            }
            println!("{id}");
            conn.close().await;
        }
        Command::AddFile {
            job,
            url,
            path,
            ranges,
            sha256,
        } => {
            let mut file = new_file(&url, &path)?;
            if let Some(r) = ranges {
                file = file.with_ranges(ByteRange::parse_list(&r)?);
            }
            if let Some(d) = sha256 {
                file = file.with_sha256(d);
            }
            on_job(args, &job, |c, id| async move {
                c.backend().add_files(id, vec![file]).await?;
                Ok((c, ()))
            })
            .await?;
        }
        Command::Resume { job, wait } => {
            let conn = Conn::open(args, wait).await?;
            let id = conn.backend().find(&job).await?;
            let outcome = conn.backend().resume(id).await?;
            if wait {
                return watch::until_settled(&conn, id, None, false).await;
            }
            if outcome == ebb::ResumeOutcome::Queued && !conn.is_daemon() {
                eprintln!(
                    "job {id} is queued; `ebb wait {id}` (or `ebb resume {id} --wait`) runs the transfer"
                );
            }
            conn.close().await;
        }
        Command::Suspend { job } => {
            on_job(args, &job, |c, id| async move {
                c.backend().suspend(id).await?;
                Ok((c, ()))
            })
            .await?;
        }
        Command::Cancel { job } => {
            on_job(args, &job, |c, id| async move {
                c.backend().cancel(id).await?;
                Ok((c, ()))
            })
            .await?;
        }
        Command::Complete { job } => {
            let done = on_job(args, &job, |c, id| async move {
                let done = c.backend().complete(id).await?;
                Ok((c, done))
            })
            .await?;
            if done.files_dropped > 0 {
                eprintln!(
                    "partial complete ({}): kept {} file(s), dropped {} not transferred",
                    done.code, done.files_kept, done.files_dropped
                );
            }
        }
        Command::Info { job, json } => {
            let j = conn::read_one(args, &job).await?;
            print!(
                "{}",
                if json {
                    output::json(&j)? + "\n"
                } else {
                    output::info(&j)
                }
            );
        }
        Command::List {
            json,
            all,
            all_users,
        } => {
            let me = ebb::Owner::current().uid;
            let jobs: Vec<_> = conn::all_jobs(args)
                .await?
                .into_iter()
                .filter(|j| all || !j.state.is_final())
                .filter(|j| all_users || j.owner_uid == me)
                .collect();
            if json {
                println!("{}", output::json(&jobs)?);
            } else {
                for j in &jobs {
                    println!("{}", output::list_line(j));
                }
            }
        }
        Command::Files { job, json } => {
            let j = conn::read_one(args, &job).await?;
            print!(
                "{}",
                if json {
                    output::json(&j.files)? + "\n"
                } else {
                    output::files(&j.files)
                }
            );
        }
        Command::Error { job, json } => {
            let j = conn::read_one(args, &job).await?;
            if json {
                println!("{}", output::json(&j.error)?);
            } else {
                match &j.error {
                    Some(err) => print!("{}", output::error(err)),
                    None => println!("no error"),
                }
            }
        }
        Command::Set(set) => {
            on_job(args, &set.job.clone(), |c, id| async move {
                let current = c.backend().job(id).await?.properties.security_flags;
                let changes = changes(&set, current)?;
                if changes.is_empty() {
                    bail!("nothing to set: give at least one property");
                }
                for change in changes {
                    c.backend().set_property(id, change).await?;
                }
                Ok((c, ()))
            })
            .await?;
        }
        Command::Wait { job, timeout } => {
            let conn = Conn::open(args, true).await?;
            let id = conn.backend().find(&job).await?;
            return watch::until_settled(&conn, id, timeout, false).await;
        }
        Command::Transfer {
            priority,
            name,
            pairs,
        } => return transfer(args, priority, &name, &pairs).await,
        Command::Monitor { refresh } => return watch::monitor(args, refresh).await,
        Command::Bitsadmin { args: words } => return bitsadmin::run(args, &words).await,
        Command::Daemon { .. } => unreachable!("handled before the runtime starts"),
        Command::ReplaceRemotePrefix { job, old, new } => {
            let n = on_job(args, &job, |c, id| async move {
                let n = c.backend().replace_remote_prefix(id, &old, &new).await?;
                Ok((c, n))
            })
            .await?;
            eprintln!("{n} file(s) changed");
        }
        Command::SetRemoteName { job, index, url } => {
            on_job(args, &job, |c, id| async move {
                c.backend().set_remote_name(id, index, &url).await?;
                Ok((c, ()))
            })
            .await?;
        }
        Command::Bandwidth(verb) => bandwidth(args, verb).await?,
    }
    Ok(ExitCode::SUCCESS)
}

async fn bandwidth(args: &EngineArgs, verb: BandwidthCommand) -> anyhow::Result<()> {
    let c = Conn::open(args, false).await?;
    let result = async {
        let (status, json) = match verb {
            BandwidthCommand::Show { json } => (c.backend().bandwidth().await?, json),
            BandwidthCommand::Set {
                max_rate,
                priority,
                idle,
            } => {
                let change = ebb::BandwidthChange {
                    max_rate,
                    priority,
                    idle,
                    reset: false,
                };
                (c.backend().set_bandwidth(change).await?, false)
            }
            BandwidthCommand::Reset => {
                let change = ebb::BandwidthChange {
                    reset: true,
                    ..ebb::BandwidthChange::default()
                };
                (c.backend().set_bandwidth(change).await?, false)
            }
        };
        if json {
            println!("{}", output::json(&status)?);
        } else {
            print!("{}", output::bandwidth(&status, c.is_daemon()));
        }
        anyhow::Ok(())
    }
    .await;
    c.close().await;
    result
}

/// `--credentials-from`: one `server|proxy:USER:PASSWORD` per line, from a file or stdin
/// (`-`), so that a password never sits on a command line (where `ps` shows it).
fn credential_lines(from: &Path) -> anyhow::Result<Vec<String>> {
    let text = if from == Path::new("-") {
        std::io::read_to_string(std::io::stdin()).context("cannot read credentials from stdin")?
    } else {
        std::fs::read_to_string(from)
            .with_context(|| format!("{}: cannot read credentials", from.display()))?
    };
    Ok(text
        .lines()
        .map(|l| l.strip_suffix('\r').unwrap_or(l).to_owned())
        .filter(|l| !l.trim().is_empty())
        .collect())
}

/// A file from the command line: `URL#sha256=HEX` carries the digest the file must have (the
/// fragment is never sent to the server).
fn new_file(url: &str, path: &Path) -> anyhow::Result<NewFile> {
    let local = absolute(path)?;
    match url.split_once("#sha256=") {
        Some((url, hex)) => {
            let digest: ebb::Sha256Digest = hex.parse().map_err(|e: String| anyhow!(e))?;
            Ok(NewFile::new(url, local).with_sha256(digest))
        }
        None => Ok(NewFile::new(url, local)),
    }
}

async fn transfer(
    args: &EngineArgs,
    priority: Option<ebb::Priority>,
    name: &str,
    pairs: &[String],
) -> anyhow::Result<ExitCode> {
    if !pairs.len().is_multiple_of(2) {
        eprintln!(
            "ebb transfer: URL and PATH come in pairs ({} arguments given)",
            pairs.len()
        );
        return Ok(ExitCode::from(2));
    }
    let files = pairs
        .chunks(2)
        .map(|p| new_file(&p[0], Path::new(&p[1])))
        .collect::<anyhow::Result<Vec<_>>>()?;
    let conn = Conn::open(args, true).await?;
    let b = conn.backend();
    let id = b.create_job(name, JobType::Download).await?;
    let setup = async {
        if let Some(p) = priority {
            b.set_property(id, PropertyChange::Priority(p)).await?;
        }
        b.add_files(id, files).await?;
        b.resume(id).await?;
        Ok::<(), ebb::Error>(())
    };
    if let Err(err) = setup.await {
        // Nothing was transferred: leave no job behind.
        let _ = b.cancel(id).await;
        conn.close().await;
        return Err(anyhow::Error::from(err));
    }
    watch::until_settled(&conn, id, None, true).await
}

fn changes(set: &SetArgs, current: SecurityFlags) -> anyhow::Result<Vec<PropertyChange>> {
    let mut out = Vec::new();
    if let Some(p) = set.priority {
        out.push(PropertyChange::Priority(p));
    }
    if let Some(n) = &set.display_name {
        out.push(PropertyChange::DisplayName(n.clone()));
    }
    if let Some(d) = &set.description {
        out.push(PropertyChange::Description(d.clone()));
    }
    if let Some(s) = set.min_retry_delay {
        out.push(PropertyChange::MinimumRetryDelay(s));
    }
    if let Some(s) = set.no_progress_timeout {
        out.push(PropertyChange::NoProgressTimeout(s));
    }
    if let Some(s) = set.max_download_time {
        out.push(PropertyChange::MaximumDownloadTime(s));
    }
    if let Some(c) = &set.notify_cmd {
        let line = if c.trim().is_empty() || c.eq_ignore_ascii_case("none") {
            None
        } else {
            Some(NotifyCommandLine::parse(c)?)
        };
        out.push(PropertyChange::NotifyCommandLine(line));
    }
    if let Some(f) = set.notify_flags {
        out.push(PropertyChange::NotifyFlags(NotifyFlags::new(f)?));
    }
    if !set.headers.is_empty() {
        let headers = if set.headers.len() == 1 && set.headers[0].eq_ignore_ascii_case("none") {
            Vec::new()
        } else {
            set.headers
                .iter()
                .map(|h| CustomHeader::parse(h))
                .collect::<ebb::Result<_>>()?
        };
        out.push(PropertyChange::CustomHeaders(headers));
    }
    if let Some(p) = &set.proxy {
        out.push(PropertyChange::Proxy(ProxySettings::parse(p)?));
    }
    let mut specs = set.credentials.clone();
    if let Some(from) = &set.credentials_from {
        specs.extend(credential_lines(from)?);
    }
    for c in &specs {
        let (target, rest) = c
            .split_once(':')
            .ok_or_else(|| anyhow!("credentials must be server|proxy:USER:PASSWORD"))?;
        let target = match target.to_ascii_lowercase().as_str() {
            "server" => CredentialTarget::Server,
            "proxy" => CredentialTarget::Proxy,
            other => bail!("credential target {other:?}: use server or proxy"),
        };
        let creds = if rest.eq_ignore_ascii_case("none") {
            None
        } else {
            Some(BasicCredentials::parse(rest)?)
        };
        out.push(PropertyChange::Credentials(target, creds));
    }
    let mut flags = set.security_flags.map(SecurityFlags::new).transpose()?;
    if let Some(policy) = &set.redirect_policy {
        let policy = match policy.to_ascii_lowercase().as_str() {
            "allow" | "allow_silent" => RedirectPolicy::AllowSilent,
            "report" | "allow_report" => RedirectPolicy::AllowReport,
            "disallow" => RedirectPolicy::Disallow,
            other => bail!("redirect policy {other:?}: use allow, report or disallow"),
        };
        flags = Some(flags.unwrap_or(current).with_redirect_policy(policy));
    }
    if let Some(allow) = set.allow_https_to_http {
        let f = flags.unwrap_or(current).0;
        let bit = SecurityFlags::ALLOW_HTTPS_TO_HTTP;
        flags = Some(SecurityFlags::new(if allow { f | bit } else { f & !bit })?);
    }
    if let Some(f) = flags {
        out.push(PropertyChange::SecurityFlags(f));
    }
    if let Some(r) = set.max_rate {
        out.push(PropertyChange::MaxRate(r));
    }
    if let Some(b) = set.credentials_across_origins {
        out.push(PropertyChange::CredentialsAcrossOrigins(b));
    }
    Ok(out)
}

//! `ebb`: BITS-style background transfers from a shell.
//!
//! Exit codes: 0 success, 1 the operation failed (the message says why), 2 bad usage.

mod args;
mod output;
mod watch;

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Context, anyhow, bail};
use clap::Parser;
use ebb::{
    BasicCredentials, ByteRange, CheckpointPolicy, CredentialTarget, CustomHeader, Engine,
    EngineConfig, JobId, JobState, JobType, NewFile, NotifyCommandLine, NotifyFlags,
    PropertyChange, ProxySettings, RedirectPolicy, SecurityFlags,
};

use args::{Cli, Command, EngineArgs, SetArgs};

fn main() -> ExitCode {
    let cli = Cli::parse();
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

fn data_dir(args: &EngineArgs) -> anyhow::Result<PathBuf> {
    if let Some(d) = &args.data_dir {
        return Ok(d.clone());
    }
    dirs::data_local_dir()
        .map(|d| d.join("ebb"))
        .ok_or_else(|| anyhow!("no per-user data directory: set EBB_DATA_DIR"))
}

fn config(args: &EngineArgs, scheduling: bool) -> anyhow::Result<EngineConfig> {
    let mut c = EngineConfig::new(data_dir(args)?).with_scheduling(scheduling);
    let defaults = CheckpointPolicy::default();
    c.checkpoint = CheckpointPolicy {
        bytes: args.checkpoint_bytes.unwrap_or(defaults.bytes),
        interval: args.checkpoint_interval.unwrap_or(defaults.interval),
    };
    if let Some(n) = args.max_background_jobs {
        c = c.with_max_background_jobs(n);
    }
    if let Some(t) = args.time_slice {
        c = c.with_time_slice(t);
    }
    if let Some(t) = args.inactivity_timeout {
        c = c.with_job_inactivity_timeout(t);
    }
    if let Some(t) = args.chunk_timeout {
        c.http.chunk_timeout = t;
    }
    if let Some(t) = args.connect_timeout {
        c.http.connect_timeout = t;
    }
    Ok(c)
}

/// Open the engine; `scheduling` says whether this process moves bytes.
async fn engine(args: &EngineArgs, scheduling: bool) -> anyhow::Result<Engine> {
    Ok(Engine::open(config(args, scheduling)?).await?)
}

/// A local name as the engine wants it: relative names are taken from the current directory.
fn absolute(path: &Path) -> anyhow::Result<PathBuf> {
    std::path::absolute(path)
        .with_context(|| format!("{}: cannot make the path absolute", path.display()))
}

async fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    let args = &cli.engine;
    match cli.command {
        Command::Create {
            job_type,
            priority,
            name,
        } => {
            let e = engine(args, false).await?;
            let id = e.create_job(&name, job_type).await?;
            if let Some(p) = priority {
                e.set_property(id, PropertyChange::Priority(p)).await?;
            }
            println!("{id}");
            e.shutdown().await;
        }
        Command::AddFile {
            job,
            url,
            path,
            ranges,
        } => {
            let e = engine(args, false).await?;
            let id = e.find(&job).await?;
            let mut file = NewFile::new(url, absolute(&path)?);
            if let Some(r) = ranges {
                file = file.with_ranges(ByteRange::parse_list(&r)?);
            }
            e.add_files(id, vec![file]).await?;
            e.shutdown().await;
        }
        Command::Resume { job, wait } => {
            let e = engine(args, wait).await?;
            let id = e.find(&job).await?;
            let outcome = e.resume(id).await?;
            if wait {
                return watch::until_settled(&e, id, None, false).await;
            }
            if outcome == ebb::ResumeOutcome::Queued {
                eprintln!(
                    "job {id} is queued; `ebb wait {id}` (or `ebb resume {id} --wait`) runs the transfer"
                );
            }
            e.shutdown().await;
        }
        Command::Suspend { job } => {
            with_job(args, &job, |e, id| async move { e.suspend(id).await }).await?;
        }
        Command::Cancel { job } => {
            with_job(args, &job, |e, id| async move { e.cancel(id).await }).await?;
        }
        Command::Complete { job } => {
            let e = engine(args, false).await?;
            let id = e.find(&job).await?;
            let done = e.complete(id).await?;
            if done.files_dropped > 0 {
                eprintln!(
                    "partial complete ({}): kept {} file(s), dropped {} not transferred",
                    done.code, done.files_kept, done.files_dropped
                );
            }
            e.shutdown().await;
        }
        Command::Info { job, json } => {
            let j = read_one(args, &job)?;
            print!(
                "{}",
                if json {
                    output::json(&j)? + "\n"
                } else {
                    output::info(&j)
                }
            );
        }
        Command::List { json, all } => {
            let jobs: Vec<_> = ebb::read_jobs(&data_dir(args)?)?
                .into_iter()
                .filter(|j| all || !j.state.is_final())
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
            let j = read_one(args, &job)?;
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
            let j = read_one(args, &job)?;
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
            let e = engine(args, false).await?;
            let id = e.find(&set.job).await?;
            let current = e.job(id).await?.properties.security_flags;
            let changes = changes(&set, current)?;
            if changes.is_empty() {
                bail!("nothing to set: give at least one property");
            }
            for change in changes {
                e.set_property(id, change).await?;
            }
            e.shutdown().await;
        }
        Command::Wait { job, timeout } => {
            let e = engine(args, true).await?;
            let id = e.find(&job).await?;
            return watch::until_settled(&e, id, timeout, false).await;
        }
        Command::Transfer {
            priority,
            name,
            pairs,
        } => return transfer(args, priority, &name, &pairs).await,
        Command::ReplaceRemotePrefix { job, old, new } => {
            let e = engine(args, false).await?;
            let id = e.find(&job).await?;
            let n = e.replace_remote_prefix(id, &old, &new).await?;
            eprintln!("{n} file(s) changed");
            e.shutdown().await;
        }
        Command::SetRemoteName { job, index, url } => {
            let e = engine(args, false).await?;
            let id = e.find(&job).await?;
            e.set_remote_name(id, index, &url).await?;
            e.shutdown().await;
        }
    }
    Ok(ExitCode::SUCCESS)
}

async fn with_job<F, Fut>(args: &EngineArgs, job: &str, f: F) -> anyhow::Result<()>
where
    F: FnOnce(Engine, JobId) -> Fut,
    Fut: Future<Output = ebb::Result<()>>,
{
    let e = engine(args, false).await?;
    let id = e.find(job).await?;
    f(e.clone(), id).await?;
    e.shutdown().await;
    Ok(())
}

/// Read one job without taking the engine (works while another process runs it).
fn read_one(args: &EngineArgs, job: &str) -> anyhow::Result<ebb::JobInfo> {
    let jobs = ebb::read_jobs(&data_dir(args)?)?;
    let refs: Vec<(JobId, String, JobState)> = jobs
        .iter()
        .map(|j| (j.id, j.display_name.clone(), j.state))
        .collect();
    let id = ebb::resolve(&refs, job)?;
    jobs.into_iter()
        .find(|j| j.id == id)
        .ok_or_else(|| anyhow!("job {job} not found"))
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
        .map(|p| Ok(NewFile::new(p[0].clone(), absolute(Path::new(&p[1]))?)))
        .collect::<anyhow::Result<Vec<_>>>()?;
    let e = engine(args, true).await?;
    let id = e.create_job(name, JobType::Download).await?;
    let setup = async {
        if let Some(p) = priority {
            e.set_property(id, PropertyChange::Priority(p)).await?;
        }
        e.add_files(id, files).await?;
        e.resume(id).await?;
        Ok::<(), ebb::Error>(())
    };
    if let Err(err) = setup.await {
        // Nothing was transferred: leave no job behind.
        let _ = e.cancel(id).await;
        e.shutdown().await;
        return Err(anyhow::Error::from(err));
    }
    watch::until_settled(&e, id, None, true).await
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
    for c in &set.credentials {
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
    Ok(out)
}

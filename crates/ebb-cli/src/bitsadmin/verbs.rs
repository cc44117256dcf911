//! BITSAdmin's commands, one function each, on the backend.

use std::process::ExitCode;

use anyhow::{anyhow, bail};
use ebb::{Backend, JobId, JobInfo, JobState, JobType, NewFile, Priority, PropertyChange};

use super::Out;
use super::format::{bytes, getter, info_verbose, list_line, priority_word, state_word};
use super::parse::{file_set, need, number, setter, take_type};
use crate::args::EngineArgs;
use crate::conn::Conn;
use crate::output;

type Verb = anyhow::Result<ExitCode>;

/// Run one command. `/MONITOR` runs until interrupted; every other command is one call on the
/// backend, closed after it.
pub(super) async fn dispatch(
    args: &EngineArgs,
    command: &str,
    rest: &[&str],
    out: &mut Out,
) -> Verb {
    if command == "/MONITOR" {
        return monitor(args, rest, out).await;
    }
    // /TRANSFER waits for its job: the CLI's own engine must run it.
    let conn = Conn::open(args, command == "/TRANSFER").await?;
    let result = verb(conn.backend(), command, rest, out).await;
    conn.close().await;
    result
}

async fn verb(b: &dyn Backend, command: &str, rest: &[&str], out: &mut Out) -> Verb {
    match command {
        "/CREATE" => create(b, rest, out).await,
        "/ADDFILE" => add_file(b, rest, out).await,
        "/ADDFILESET" => add_file_set(b, rest, out).await,
        "/ADDFILEWITHRANGES" => add_file_with_ranges(b, rest, out).await,
        "/LISTFILES" => list_files(b, rest, out).await,
        "/REMOVECREDENTIALS" => remove_credentials(b, rest, out).await,
        "/RESUME" | "/SUSPEND" | "/CANCEL" | "/COMPLETE" => {
            change_state(b, command, rest, out).await
        }
        "/LIST" => list(b, rest, out).await,
        "/INFO" => info(b, rest, out).await,
        "/RESET" => reset(b, out).await,
        "/TRANSFER" => transfer(b, rest, out).await,
        "/GETREPLYDATA" => reply_data(b, rest, out).await,
        c if c.starts_with("/GET") => get(b, c, rest, out).await,
        "/REPLACEREMOTEPREFIX" => replace_remote_prefix(b, rest, out).await,
        c if c.starts_with("/SET") => set(b, c, rest, out).await,
        other => bail!("unknown command {other}; see bitsadmin /?"),
    }
}

async fn create(b: &dyn Backend, rest: &[&str], out: &mut Out) -> Verb {
    let (job_type, rest) = take_type(rest);
    let name = need(rest, 1, "/CREATE [/DOWNLOAD|/UPLOAD|/UPLOAD-REPLY] name")?[0];
    let id = b.create_job(name, job_type).await?;
    if out.raw {
        out.value(id.braced_upper());
    } else {
        out.line(format!("Created job {}.", id.braced_upper()));
    }
    Ok(ExitCode::SUCCESS)
}

async fn add_file(b: &dyn Backend, rest: &[&str], out: &mut Out) -> Verb {
    let r = need(rest, 3, "/ADDFILE job remote_url local_name")?;
    let id = b.find(r[0]).await?;
    b.add_files(id, vec![NewFile::new(r[1], r[2])]).await?;
    out.line(format!("Added {} -> {} to job.", r[1], r[2]));
    Ok(ExitCode::SUCCESS)
}

async fn add_file_set(b: &dyn Backend, rest: &[&str], out: &mut Out) -> Verb {
    let r = need(rest, 2, "/ADDFILESET job textfile")?;
    let id = b.find(r[0]).await?;
    let text = std::fs::read_to_string(r[1]).map_err(|e| anyhow!("{}: {e}", r[1]))?;
    let files = file_set(&text)?;
    let n = files.len();
    b.add_files(id, files).await?;
    out.line(format!("Added {n} file(s) to job."));
    Ok(ExitCode::SUCCESS)
}

async fn add_file_with_ranges(b: &dyn Backend, rest: &[&str], out: &mut Out) -> Verb {
    let r = need(
        rest,
        4,
        "/ADDFILEWITHRANGES job remote_url local_name range_list",
    )?;
    let id = b.find(r[0]).await?;
    let ranges = ebb::ByteRange::parse_list(r[3])?;
    b.add_files(id, vec![NewFile::new(r[1], r[2]).with_ranges(ranges)])
        .await?;
    out.line(format!("Added {} -> {} to job.", r[1], r[2]));
    Ok(ExitCode::SUCCESS)
}

async fn list_files(b: &dyn Backend, rest: &[&str], out: &mut Out) -> Verb {
    let id = b.find(need(rest, 1, "/LISTFILES job")?[0]).await?;
    let j = b.job(id).await?;
    for f in &j.files {
        out.line(output::file_line(f));
    }
    out.line("");
    out.line(format!("Listed {} file(s).", j.files.len()));
    Ok(ExitCode::SUCCESS)
}

/// `/MONITOR [/REFRESH seconds]`: the live table until interrupted.
async fn monitor(args: &EngineArgs, rest: &[&str], out: &mut Out) -> Verb {
    let refresh = rest
        .iter()
        .position(|a| a.eq_ignore_ascii_case("/REFRESH"))
        .and_then(|i| rest.get(i + 1))
        .map_or(Ok(5), |s| number(s))?;
    say!("{}", std::mem::take(&mut out.text))?;
    crate::monitor::run(
        args,
        std::time::Duration::from_secs(u64::from(refresh.max(1))),
        crate::monitor::Style::Bitsadmin,
    )
    .await
}

async fn remove_credentials(b: &dyn Backend, rest: &[&str], out: &mut Out) -> Verb {
    let r = need(rest, 2, "/REMOVECREDENTIALS job SERVER|PROXY [scheme]")?;
    let id = b.find(r[0]).await?;
    let target = match r[1].to_ascii_uppercase().as_str() {
        "SERVER" => ebb::CredentialTarget::Server,
        "PROXY" => ebb::CredentialTarget::Proxy,
        other => bail!("credential target {other}: SERVER or PROXY"),
    };
    b.set_property(id, PropertyChange::Credentials(target, None))
        .await?;
    out.line("Credentials removed.");
    Ok(ExitCode::SUCCESS)
}

/// `/RESUME`, `/SUSPEND`, `/CANCEL` and `/COMPLETE`.
async fn change_state(b: &dyn Backend, command: &str, rest: &[&str], out: &mut Out) -> Verb {
    let id = b.find(need(rest, 1, "job")?[0]).await?;
    let done = match command {
        "/RESUME" => b.resume(id).await.map(|_| "Job resumed.".to_owned()),
        "/SUSPEND" => b.suspend(id).await.map(|()| "Job suspended.".to_owned()),
        "/CANCEL" => b.cancel(id).await.map(|()| "Job canceled.".to_owned()),
        _ => b.complete(id).await.map(|c| {
            if c.files_dropped > 0 {
                format!(
                    "Job partially completed: {} of {} files.",
                    c.files_kept,
                    c.files_kept + c.files_dropped
                )
            } else {
                "Job completed.".to_owned()
            }
        }),
    }?;
    out.line(done);
    Ok(ExitCode::SUCCESS)
}

async fn list(b: &dyn Backend, rest: &[&str], out: &mut Out) -> Verb {
    let all = rest.iter().any(|a| a.eq_ignore_ascii_case("/ALLUSERS"));
    let verbose = rest.iter().any(|a| a.eq_ignore_ascii_case("/VERBOSE"));
    let filter = ebb::JobFilter {
        final_jobs: false,
        all_users: all,
    };
    let jobs: Vec<JobInfo> = b.list(filter).await?;
    for j in &jobs {
        out.line(if verbose {
            info_verbose(j)
        } else {
            list_line(j)
        });
    }
    out.line("");
    out.line(format!("Listed {} job(s).", jobs.len()));
    Ok(ExitCode::SUCCESS)
}

async fn info(b: &dyn Backend, rest: &[&str], out: &mut Out) -> Verb {
    let id = b.find(need(rest, 1, "/INFO job [/VERBOSE]")?[0]).await?;
    let j = b.job(id).await?;
    if rest
        .iter()
        .skip(1)
        .any(|a| a.eq_ignore_ascii_case("/VERBOSE"))
    {
        out.line(info_verbose(&j).trim_end());
    } else {
        out.line(list_line(&j));
    }
    Ok(ExitCode::SUCCESS)
}

async fn reset(b: &dyn Backend, out: &mut Out) -> Verb {
    let jobs = b.jobs().await?;
    let mut cancelled = 0;
    for j in &jobs {
        if b.cancel(j.id).await.is_ok() {
            cancelled += 1;
            out.line(format!("{} canceled.", j.id.braced_upper()));
        }
    }
    out.line(format!("{cancelled} out of {} jobs canceled.", jobs.len()));
    Ok(ExitCode::SUCCESS)
}

async fn get(b: &dyn Backend, command: &str, rest: &[&str], out: &mut Out) -> Verb {
    let id = b.find(need(rest, 1, "job")?[0]).await?;
    let j = b.job(id).await?;
    out.value(getter(command, &j)?);
    Ok(ExitCode::SUCCESS)
}

/// `/GETREPLYDATA job`: the reply's bytes as a hex dump.
async fn reply_data(b: &dyn Backend, rest: &[&str], out: &mut Out) -> Verb {
    let id = b.find(need(rest, 1, "job")?[0]).await?;
    let data = b.reply_data(id).await?;
    out.line(format!("Reply data: {} byte(s)", data.len()));
    for line in super::format::hex_dump(&data).lines() {
        out.line(line.to_owned());
    }
    Ok(ExitCode::SUCCESS)
}

async fn replace_remote_prefix(b: &dyn Backend, rest: &[&str], out: &mut Out) -> Verb {
    let r = need(rest, 3, "/REPLACEREMOTEPREFIX job old new")?;
    let id = b.find(r[0]).await?;
    let n = b.replace_remote_prefix(id, r[1], r[2]).await?;
    out.line(format!("{n} file(s) changed."));
    Ok(ExitCode::SUCCESS)
}

async fn set(b: &dyn Backend, command: &str, rest: &[&str], out: &mut Out) -> Verb {
    let id = b.find(need(rest, 1, "job")?[0]).await?;
    let change = setter(command, &rest[1..])?;
    b.set_property(id, change).await?;
    out.line(format!("{} set.", &command[4..].to_ascii_lowercase()));
    Ok(ExitCode::SUCCESS)
}

/// `/TRANSFER name [/DOWNLOAD | /UPLOAD] [/PRIORITY p] [/DYNAMIC] remote local [remote local
/// ...]`: completes on success, cancels on a permanent error, goes on through transient ones.
async fn transfer(b: &dyn Backend, rest: &[&str], out: &mut Out) -> Verb {
    let (name, mut rest) = rest
        .split_first()
        .ok_or_else(|| anyhow!("usage: /TRANSFER name remote local"))?;
    let mut priority = Priority::Normal;
    let mut job_type = JobType::Download;
    while let Some(flag) = rest.first().filter(|f| f.starts_with('/')) {
        match flag.to_ascii_uppercase().as_str() {
            "/DOWNLOAD" | "/DYNAMIC" => rest = &rest[1..],
            "/UPLOAD" => {
                job_type = JobType::Upload;
                rest = &rest[1..];
            }
            "/UPLOAD-REPLY" => {
                job_type = JobType::UploadReply;
                rest = &rest[1..];
            }
            "/PRIORITY" => {
                let p = rest
                    .get(1)
                    .ok_or_else(|| anyhow!("/PRIORITY needs a value"))?;
                priority = p.parse().map_err(|e: String| anyhow!(e))?;
                rest = &rest[2..];
            }
            other => bail!("unknown /TRANSFER switch {other}"),
        }
    }
    if rest.is_empty() || rest.len() % 2 != 0 {
        bail!("usage: /TRANSFER name [/PRIORITY p] remote local [remote local ...]");
    }
    if job_type != JobType::Download && rest.len() != 2 {
        bail!("usage: /TRANSFER name /UPLOAD remote local (an upload job has one file)");
    }
    let id: JobId = b.create_job(name, job_type).await?;
    b.set_property(id, PropertyChange::Priority(priority))
        .await?;
    let files = rest.chunks(2).map(|p| NewFile::new(p[0], p[1])).collect();
    if let Err(e) = b.add_files(id, files).await {
        let _ = b.cancel(id).await;
        return Err(e.into());
    }
    b.resume(id).await?;
    out.line(format!(
        "DISPLAY: '{name}' TYPE: {} STATE: QUEUED PRIORITY: {}",
        job_type.as_str().to_ascii_uppercase().replace('_', "-"),
        priority_word(priority)
    ));
    let state = b.wait(id, None).await?;
    let j = b.job(id).await?;
    if state == JobState::Transferred {
        b.complete(id).await?;
        out.line(format!(
            "Transfer complete. {} / {} bytes.",
            j.bytes_transferred,
            bytes(j.bytes_total)
        ));
        if let Some(reply) = &j.reply_file_name {
            out.line(format!("Reply file: {}", reply.display()));
        }
        return Ok(ExitCode::SUCCESS);
    }
    if let Some(e) = &j.error {
        out.line(format!("ERROR CODE:    {} - {}", e.code, e.description));
    }
    b.cancel(id).await?;
    out.line(format!(
        "Transfer canceled: the job is {}.",
        state_word(state)
    ));
    Ok(ExitCode::FAILURE)
}

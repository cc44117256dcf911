//! `ebb bitsadmin ...` (and `ebb` run under the name `bitsadmin`): BITSAdmin's syntax and text
//! output, so that scripts written for Windows keep working. Switches are case-insensitive; jobs
//! are named by display name or `{GUID}`; local names are this platform's absolute paths.

use std::fmt::Write as _;
use std::process::ExitCode;

use anyhow::{anyhow, bail};
use ebb::{
    Backend, CustomHeader, JobId, JobInfo, JobState, JobType, NewFile, NotifyCommandLine,
    NotifyFlags, Priority, PropertyChange, SecurityFlags, Timestamp,
};

use crate::args::EngineArgs;
use crate::conn::Conn;
use crate::output;

const BANNER: &str =
    "\nBITSADMIN version 3.0\nBITS administration utility.\n(C) Copyright Microsoft Corp.\n\n";

/// Switches of BITSAdmin that ebb has no feature for: refused clearly, never ignored.
const UNSUPPORTED: &[&str] = &[
    "/UTIL",
    "/CACHE",
    "/PEERS",
    "/PEERCACHING",
    "/SETPEERCACHINGFLAGS",
    "/GETPEERCACHINGFLAGS",
    "/GETPEERSTATS",
    "/SETHELPERTOKEN",
    "/SETHELPERTOKENFLAGS",
    "/GETHELPERTOKENSID",
    "/GETHELPERTOKENFLAGS",
    "/TAKEOWNERSHIP",
    "/SETACLFLAGS",
    "/GETACLFLAGS",
    "/SETCLIENTCERTIFICATEBYID",
    "/SETCLIENTCERTIFICATEBYNAME",
    "/REMOVECLIENTCERTIFICATE",
    "/GETCLIENTCERTIFICATE",
    "/SETVALIDATIONSTATE",
    "/GETVALIDATIONSTATE",
    "/SETHTTPMETHOD",
    "/MAKECUSTOMHEADERSWRITEONLY",
    "/GETREPLYFILENAME",
    "/SETREPLYFILENAME",
    "/GETREPLYPROGRESS",
    "/GETREPLYDATA",
    "/GETNOTIFYINTERFACE",
];

/// The state word BITSAdmin prints.
fn state_word(s: JobState) -> String {
    s.bits_name()
}

fn bytes(n: Option<u64>) -> String {
    n.map_or_else(|| "UNKNOWN".to_owned(), |n| n.to_string())
}

/// One `/LIST` line.
pub fn list_line(j: &JobInfo) -> String {
    format!(
        "{} '{}' {} {} / {} {} / {}",
        j.id.braced_upper(),
        j.display_name,
        state_word(j.state),
        j.files_transferred,
        j.files_total,
        j.bytes_transferred,
        bytes(j.bytes_total)
    )
}

/// `M/D/YYYY h:mm:ss AM|PM` in local time, as BITSAdmin prints times.
fn bits_time(t: Timestamp) -> String {
    use chrono::TimeZone;
    match chrono::Local.timestamp_millis_opt(t.as_millis()) {
        chrono::LocalResult::Single(local) | chrono::LocalResult::Ambiguous(local, _) => {
            local.format("%-m/%-d/%Y %-I:%M:%S %p").to_string()
        }
        chrono::LocalResult::None => "UNKNOWN".to_owned(),
    }
}

fn priority_word(p: Priority) -> String {
    p.as_str().to_ascii_uppercase()
}

fn proxy_lines(p: &ebb::ProxySettings) -> (String, String, String) {
    match p {
        ebb::ProxySettings::Preconfig => ("PRECONFIG".into(), "NULL".into(), "NULL".into()),
        ebb::ProxySettings::NoProxy => ("NO_PROXY".into(), "NULL".into(), "NULL".into()),
        ebb::ProxySettings::AutoDetect => ("AUTODETECT".into(), "NULL".into(), "NULL".into()),
        ebb::ProxySettings::Override {
            proxy_list,
            bypass_list,
        } => {
            let or_null = |l: &[String]| {
                if l.is_empty() {
                    "NULL".to_owned()
                } else {
                    l.join(" ")
                }
            };
            ("OVERRIDE".into(), or_null(proxy_list), or_null(bypass_list))
        }
    }
}

/// `/INFO job /VERBOSE`.
pub fn info_verbose(j: &JobInfo) -> String {
    let p = &j.properties;
    let mut s = String::new();
    let _ = writeln!(
        s,
        "GUID: {} DISPLAY: {}",
        j.id.braced_upper(),
        j.display_name
    );
    let _ = writeln!(
        s,
        "TYPE: {} STATE: {} OWNER: {}",
        j.job_type.as_str().to_ascii_uppercase().replace('_', "-"),
        state_word(j.state),
        j.owner
    );
    let _ = writeln!(
        s,
        "PRIORITY: {} FILES: {} / {} BYTES: {} / {}",
        priority_word(p.priority),
        j.files_transferred,
        j.files_total,
        j.bytes_transferred,
        bytes(j.bytes_total)
    );
    let _ = writeln!(
        s,
        "CREATION TIME: {} MODIFICATION TIME: {}",
        bits_time(j.created_at),
        bits_time(j.modified_at)
    );
    let _ = writeln!(
        s,
        "COMPLETION TIME: {}",
        j.completed_at
            .map_or_else(|| "UNKNOWN".to_owned(), bits_time)
    );
    let _ = writeln!(
        s,
        "NOTIFY INTERFACE: UNREGISTERED NOTIFICATION FLAGS: {}",
        p.notify_flags.0
    );
    let _ = writeln!(
        s,
        "RETRY DELAY: {} NO PROGRESS TIMEOUT: {} ERROR COUNT: {}",
        p.minimum_retry_delay, p.no_progress_timeout, j.error_count
    );
    let (usage, list, bypass) = proxy_lines(&p.proxy);
    let _ = writeln!(
        s,
        "PROXY USAGE: {usage} PROXY LIST: {list} PROXY BYPASS LIST: {bypass}"
    );
    if let Some(e) = &j.error {
        s.push_str(&output::error(e));
    }
    let _ = writeln!(s, "DESCRIPTION: {}", j.description);
    let _ = writeln!(s, "JOB FILES:");
    for f in &j.files {
        let _ = writeln!(s, "{}", output::file_line(f));
    }
    let _ = writeln!(
        s,
        "NOTIFICATION COMMAND LINE: {}",
        output::notify_line(p.notify_command_line.as_ref())
    );
    s
}

/// What one invocation prints, and its exit code.
struct Out {
    raw: bool,
    text: String,
}

impl Out {
    /// A line of output; with /RAWRETURN, the bare value without a newline.
    fn value(&mut self, v: impl std::fmt::Display) {
        if self.raw {
            let _ = write!(self.text, "{v}");
        } else {
            let _ = writeln!(self.text, "{v}");
        }
    }

    fn line(&mut self, v: impl std::fmt::Display) {
        let _ = writeln!(self.text, "{v}");
    }
}

/// Run BITSAdmin's command line `argv` (without the program name).
pub async fn run(args: &EngineArgs, words: &[String]) -> anyhow::Result<ExitCode> {
    let mut rest: Vec<&str> = words.iter().map(String::as_str).collect();
    let mut raw = false;
    while let Some(first) = rest.first() {
        match first.to_ascii_uppercase().as_str() {
            "/RAWRETURN" => raw = true,
            "/WRAP" | "/NOWRAP" => {}
            _ => break,
        }
        rest.remove(0);
    }
    if !raw {
        print!("{BANNER}");
    }
    let Some((command, rest)) = rest.split_first() else {
        eprintln!("Unable to perform the operation: no command given. See bitsadmin /? for help.");
        return Ok(ExitCode::from(2));
    };
    let command = command.to_ascii_uppercase();
    if UNSUPPORTED.contains(&command.as_str()) {
        eprintln!("{command} is not supported by ebb (no such feature on this platform).");
        return Ok(ExitCode::FAILURE);
    }
    let mut out = Out {
        raw,
        text: String::new(),
    };
    let result = dispatch(args, &command, rest, &mut out).await;
    print!("{}", out.text);
    match result {
        Ok(code) => Ok(code),
        Err(e) => {
            eprintln!("Unable to complete {command}: {e:#}");
            Ok(ExitCode::FAILURE)
        }
    }
}

fn need<'a>(rest: &'a [&'a str], n: usize, usage: &str) -> anyhow::Result<&'a [&'a str]> {
    if rest.len() < n {
        bail!("usage: {usage}");
    }
    Ok(rest)
}

async fn dispatch(
    args: &EngineArgs,
    command: &str,
    rest: &[&str],
    out: &mut Out,
) -> anyhow::Result<ExitCode> {
    let conn = Conn::open(args, false).await?;
    let b = conn.backend();
    let code = match command {
        "/CREATE" => {
            let (job_type, rest) = take_type(rest);
            let name = need(rest, 1, "/CREATE [/DOWNLOAD|/UPLOAD|/UPLOAD-REPLY] name")?[0];
            let id = b.create_job(name, job_type).await?;
            if out.raw {
                out.value(id.braced_upper());
            } else {
                out.line(format!("Created job {}.", id.braced_upper()));
            }
            ExitCode::SUCCESS
        }
        "/ADDFILE" => {
            let r = need(rest, 3, "/ADDFILE job remote_url local_name")?;
            let id = b.find(r[0]).await?;
            b.add_files(id, vec![NewFile::new(r[1], r[2])]).await?;
            out.line(format!("Added {} -> {} to job.", r[1], r[2]));
            ExitCode::SUCCESS
        }
        "/ADDFILESET" => {
            let r = need(rest, 2, "/ADDFILESET job textfile")?;
            let id = b.find(r[0]).await?;
            let text = std::fs::read_to_string(r[1]).map_err(|e| anyhow!("{}: {e}", r[1]))?;
            let files = file_set(&text)?;
            let n = files.len();
            b.add_files(id, files).await?;
            out.line(format!("Added {n} file(s) to job."));
            ExitCode::SUCCESS
        }
        "/ADDFILEWITHRANGES" => {
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
            ExitCode::SUCCESS
        }
        "/LISTFILES" => {
            let id = b.find(need(rest, 1, "/LISTFILES job")?[0]).await?;
            let j = b.job(id).await?;
            for f in &j.files {
                out.line(output::file_line(f));
            }
            out.line("");
            out.line(format!("Listed {} file(s).", j.files.len()));
            ExitCode::SUCCESS
        }
        "/MONITOR" => {
            let refresh = rest
                .iter()
                .position(|a| a.eq_ignore_ascii_case("/REFRESH"))
                .and_then(|i| rest.get(i + 1))
                .map_or(Ok(5), |s| number(s))?;
            print!("{}", std::mem::take(&mut out.text));
            conn.close().await;
            return crate::watch::monitor(
                args,
                std::time::Duration::from_secs(u64::from(refresh.max(1))),
            )
            .await;
        }
        "/REMOVECREDENTIALS" => {
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
            ExitCode::SUCCESS
        }
        "/RESUME" | "/SUSPEND" | "/CANCEL" | "/COMPLETE" => {
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
            ExitCode::SUCCESS
        }
        "/LIST" => {
            let all = rest.iter().any(|a| a.eq_ignore_ascii_case("/ALLUSERS"));
            let verbose = rest.iter().any(|a| a.eq_ignore_ascii_case("/VERBOSE"));
            let me = ebb::Owner::current().uid;
            let jobs: Vec<JobInfo> = b
                .jobs()
                .await?
                .into_iter()
                .filter(|j| all || j.owner_uid == me)
                .collect();
            for j in &jobs {
                out.line(if verbose {
                    info_verbose(j)
                } else {
                    list_line(j)
                });
            }
            out.line("");
            out.line(format!("Listed {} job(s).", jobs.len()));
            ExitCode::SUCCESS
        }
        "/INFO" => {
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
            ExitCode::SUCCESS
        }
        "/RESET" => {
            let jobs = b.jobs().await?;
            let mut cancelled = 0;
            for j in &jobs {
                if b.cancel(j.id).await.is_ok() {
                    cancelled += 1;
                    out.line(format!("{} canceled.", j.id.braced_upper()));
                }
            }
            out.line(format!("{cancelled} out of {} jobs canceled.", jobs.len()));
            ExitCode::SUCCESS
        }
        "/TRANSFER" => transfer(b, rest, out).await?,
        c if c.starts_with("/GET") => {
            let id = b.find(need(rest, 1, "job")?[0]).await?;
            let j = b.job(id).await?;
            out.value(getter(c, &j)?);
            ExitCode::SUCCESS
        }
        c if c.starts_with("/SET") || c == "/REPLACEREMOTEPREFIX" => {
            let id = b.find(need(rest, 1, "job")?[0]).await?;
            if c == "/REPLACEREMOTEPREFIX" {
                let r = need(rest, 3, "/REPLACEREMOTEPREFIX job old new")?;
                let n = b.replace_remote_prefix(id, r[1], r[2]).await?;
                out.line(format!("{n} file(s) changed."));
            } else {
                let change = setter(c, &rest[1..])?;
                b.set_property(id, change).await?;
                out.line(format!("{} set.", &c[4..].to_ascii_lowercase()));
            }
            ExitCode::SUCCESS
        }
        other => {
            conn.close().await;
            bail!("unknown command {other}; see bitsadmin /?")
        }
    };
    conn.close().await;
    Ok(code)
}

/// `/ADDFILESET`'s file: one `remote local` pair per line; `#` starts a comment line.
fn file_set(text: &str) -> anyhow::Result<Vec<NewFile>> {
    text.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .map(|l| {
            let mut words = l.split_whitespace();
            match (words.next(), words.next(), words.next()) {
                (Some(remote), Some(local), None) => Ok(NewFile::new(remote, local)),
                _ => Err(anyhow!("file set line {l:?} is not `remote local`")),
            }
        })
        .collect()
}

fn take_type<'a>(rest: &'a [&'a str]) -> (JobType, &'a [&'a str]) {
    match rest.first().map(|s| s.to_ascii_uppercase()) {
        Some(t) if t == "/DOWNLOAD" => (JobType::Download, &rest[1..]),
        Some(t) if t == "/UPLOAD" => (JobType::Upload, &rest[1..]),
        Some(t) if t == "/UPLOAD-REPLY" => (JobType::UploadReply, &rest[1..]),
        _ => (JobType::Download, rest),
    }
}

fn getter(command: &str, j: &JobInfo) -> anyhow::Result<String> {
    let p = &j.properties;
    Ok(match command {
        "/GETSTATE" => state_word(j.state),
        "/GETTYPE" => j.job_type.as_str().to_ascii_uppercase().replace('_', "-"),
        "/GETBYTESTOTAL" => bytes(j.bytes_total),
        "/GETBYTESTRANSFERRED" => j.bytes_transferred.to_string(),
        "/GETFILESTOTAL" => j.files_total.to_string(),
        "/GETFILESTRANSFERRED" => j.files_transferred.to_string(),
        "/GETCREATIONTIME" => bits_time(j.created_at),
        "/GETMODIFICATIONTIME" => bits_time(j.modified_at),
        "/GETCOMPLETIONTIME" => j
            .completed_at
            .map_or_else(|| "UNKNOWN".to_owned(), bits_time),
        "/GETOWNER" => j.owner.clone(),
        "/GETDISPLAYNAME" => j.display_name.clone(),
        "/GETDESCRIPTION" => j.description.clone(),
        "/GETPRIORITY" => priority_word(p.priority),
        "/GETNOTIFYFLAGS" => p.notify_flags.0.to_string(),
        "/GETMINRETRYDELAY" => p.minimum_retry_delay.to_string(),
        "/GETNOPROGRESSTIMEOUT" => p.no_progress_timeout.to_string(),
        "/GETMAXDOWNLOADTIME" => p.maximum_download_time.to_string(),
        "/GETERRORCOUNT" => j.error_count.to_string(),
        "/GETPROXYUSAGE" => proxy_lines(&p.proxy).0,
        "/GETPROXYLIST" => proxy_lines(&p.proxy).1,
        "/GETPROXYBYPASSLIST" => proxy_lines(&p.proxy).2,
        "/GETSECURITYFLAGS" => format!("0x{:x}", p.security_flags.0),
        "/GETCUSTOMHEADERS" => p
            .custom_headers
            .iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>()
            .join("\n"),
        "/GETNOTIFYCMDLINE" => output::notify_line(p.notify_command_line.as_ref()),
        "/GETERROR" => j.error.as_ref().map_or_else(
            || "no error".to_owned(),
            |e| output::error(e).trim_end().to_owned(),
        ),
        other => bail!("unknown command {other}"),
    })
}

fn number(text: &str) -> anyhow::Result<u32> {
    crate::args::parse_u32(text).map_err(|e| anyhow!(e))
}

fn null(text: &str) -> Option<&str> {
    (!text.eq_ignore_ascii_case("NULL") && !text.is_empty()).then_some(text)
}

fn setter(command: &str, a: &[&str]) -> anyhow::Result<PropertyChange> {
    let one = |usage: &str| {
        a.first()
            .copied()
            .ok_or_else(|| anyhow!("usage: {command} job {usage}"))
    };
    Ok(match command {
        "/SETDISPLAYNAME" => PropertyChange::DisplayName(one("name")?.to_owned()),
        "/SETDESCRIPTION" => PropertyChange::Description(one("text")?.to_owned()),
        "/SETPRIORITY" => {
            PropertyChange::Priority(one("priority")?.parse().map_err(|e: String| anyhow!(e))?)
        }
        "/SETMINRETRYDELAY" => PropertyChange::MinimumRetryDelay(number(one("seconds")?)?),
        "/SETNOPROGRESSTIMEOUT" => PropertyChange::NoProgressTimeout(number(one("seconds")?)?),
        "/SETMAXDOWNLOADTIME" => PropertyChange::MaximumDownloadTime(number(one("seconds")?)?),
        "/SETNOTIFYFLAGS" => PropertyChange::NotifyFlags(NotifyFlags::new(number(one("flags")?)?)?),
        "/SETSECURITYFLAGS" => {
            PropertyChange::SecurityFlags(SecurityFlags::new(number(one("flags")?)?)?)
        }
        "/SETNOTIFYCMDLINE" => {
            let program = null(one("program [parameters]")?);
            let params = a.get(1).copied().and_then(null).map(str::to_owned);
            PropertyChange::NotifyCommandLine(match program {
                None => None,
                Some(p) => Some(NotifyCommandLine::new(p, params)?),
            })
        }
        "/SETCUSTOMHEADERS" => PropertyChange::CustomHeaders(
            a.iter()
                .map(|h| CustomHeader::parse(h))
                .collect::<ebb::Result<_>>()?,
        ),
        "/SETPROXYSETTINGS" => {
            let usage = one("PRECONFIG|AUTODETECT|NO_PROXY|OVERRIDE [list bypass]")?;
            let settings = if usage.eq_ignore_ascii_case("OVERRIDE") {
                let split = |s: Option<&&str>| -> Vec<String> {
                    s.and_then(|s| null(s))
                        .map(|s| {
                            s.split([',', ' '])
                                .filter(|p| !p.is_empty())
                                .map(str::to_owned)
                                .collect()
                        })
                        .unwrap_or_default()
                };
                ebb::ProxySettings::overriding(split(a.get(1)), split(a.get(2)))?
            } else {
                ebb::ProxySettings::parse(usage)?
            };
            PropertyChange::Proxy(settings)
        }
        "/SETCREDENTIALS" => {
            if a.len() < 4 {
                bail!("usage: /SETCREDENTIALS job SERVER|PROXY BASIC user password");
            }
            if !a[1].eq_ignore_ascii_case("BASIC") {
                bail!("only BASIC credentials are supported by ebb, not {}", a[1]);
            }
            let target = match a[0].to_ascii_uppercase().as_str() {
                "SERVER" => ebb::CredentialTarget::Server,
                "PROXY" => ebb::CredentialTarget::Proxy,
                other => bail!("credential target {other}: SERVER or PROXY"),
            };
            PropertyChange::Credentials(target, Some(ebb::BasicCredentials::new(a[2], a[3])?))
        }
        other => bail!("unknown command {other}"),
    })
}

/// `/TRANSFER name [/DOWNLOAD] [/PRIORITY p] [/DYNAMIC] remote local [remote local ...]`:
/// completes on success, cancels on a permanent error, goes on through transient ones.
async fn transfer(b: &dyn Backend, rest: &[&str], out: &mut Out) -> anyhow::Result<ExitCode> {
    let (name, mut rest) = rest
        .split_first()
        .ok_or_else(|| anyhow!("usage: /TRANSFER name remote local"))?;
    let mut priority = Priority::Normal;
    while let Some(flag) = rest.first().filter(|f| f.starts_with('/')) {
        match flag.to_ascii_uppercase().as_str() {
            "/DOWNLOAD" | "/DYNAMIC" => rest = &rest[1..],
            "/PRIORITY" => {
                let p = rest
                    .get(1)
                    .ok_or_else(|| anyhow!("/PRIORITY needs a value"))?;
                priority = p.parse().map_err(|e: String| anyhow!(e))?;
                rest = &rest[2..];
            }
            "/UPLOAD" => bail!("upload transfers are not supported yet"),
            other => bail!("unknown /TRANSFER switch {other}"),
        }
    }
    if rest.is_empty() || rest.len() % 2 != 0 {
        bail!("usage: /TRANSFER name [/PRIORITY p] remote local [remote local ...]");
    }
    let id: JobId = b.create_job(name, JobType::Download).await?;
    b.set_property(id, PropertyChange::Priority(priority))
        .await?;
    let files = rest.chunks(2).map(|p| NewFile::new(p[0], p[1])).collect();
    if let Err(e) = b.add_files(id, files).await {
        let _ = b.cancel(id).await;
        return Err(e.into());
    }
    b.resume(id).await?;
    out.line(format!(
        "DISPLAY: '{name}' TYPE: DOWNLOAD STATE: QUEUED PRIORITY: {}",
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

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> JobInfo {
        let mut job = ebb::Job::new(
            "myDownloadJob",
            JobType::Download,
            ebb::Owner {
                uid: 1000,
                name: "ann".into(),
            },
            Timestamp::from_millis(0),
        )
        .unwrap();
        job.files.push(
            serde_json::from_value(serde_json::json!({
                "remote_url": "https://downloadsrv/10mb.zip",
                "local_path": "/tmp/10mb.zip",
                "temp_path": "/tmp/.ebb-x-0.tmp",
                "bytes_total": null,
                "bytes_transferred": 0,
                "completed": false
            }))
            .unwrap(),
        );
        job.info()
    }

    #[test]
    fn list_line_is_bitsadmins() {
        let j = sample();
        assert_eq!(
            list_line(&j),
            format!(
                "{} 'myDownloadJob' SUSPENDED 0 / 1 0 / UNKNOWN",
                j.id.braced_upper()
            )
        );
    }

    #[test]
    fn verbose_info_keeps_the_key_value_layout() {
        let j = sample();
        let text = info_verbose(&j);
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(
            lines[0],
            format!("GUID: {} DISPLAY: myDownloadJob", j.id.braced_upper())
        );
        assert_eq!(lines[1], "TYPE: DOWNLOAD STATE: SUSPENDED OWNER: ann");
        assert_eq!(lines[2], "PRIORITY: NORMAL FILES: 0 / 1 BYTES: 0 / UNKNOWN");
        assert!(
            lines[3].starts_with("CREATION TIME: ") && lines[3].contains(" MODIFICATION TIME: ")
        );
        assert_eq!(lines[4], "COMPLETION TIME: UNKNOWN");
        assert_eq!(
            lines[5],
            "NOTIFY INTERFACE: UNREGISTERED NOTIFICATION FLAGS: 3"
        );
        assert_eq!(
            lines[6],
            "RETRY DELAY: 600 NO PROGRESS TIMEOUT: 1209600 ERROR COUNT: 0"
        );
        assert_eq!(
            lines[7],
            "PROXY USAGE: PRECONFIG PROXY LIST: NULL PROXY BYPASS LIST: NULL"
        );
        assert_eq!(lines[8], "DESCRIPTION: ");
        assert_eq!(lines[9], "JOB FILES:");
        assert_eq!(
            lines[10],
            "0 / UNKNOWN WORKING https://downloadsrv/10mb.zip -> /tmp/10mb.zip"
        );
        assert_eq!(lines[11], "NOTIFICATION COMMAND LINE: none");
    }

    #[test]
    fn file_sets_are_pairs_with_comments() {
        let set = file_set("# comment\nhttp://h/a /tmp/a\n\n  http://h/b /tmp/b  \n").unwrap();
        assert_eq!(
            set,
            vec![
                NewFile::new("http://h/a", "/tmp/a"),
                NewFile::new("http://h/b", "/tmp/b")
            ]
        );
        assert!(file_set("http://h/a").is_err());
        assert!(file_set("a b c").is_err());
    }

    #[test]
    fn times_print_as_bitsadmin_does() {
        let t = bits_time(Timestamp::from_millis(1_795_000_000_000));
        let re_ok = t.split(' ').count() == 3 && (t.ends_with(" AM") || t.ends_with(" PM"));
        assert!(re_ok && t.contains("/2026 "), "{t}");
    }
}

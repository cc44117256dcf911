//! What the read verbs print: one JSON document with `--json`, aligned text otherwise.

use std::fmt::Write as _;

use ebb::{BandwidthStatus, LimitReason, PriorityLimits};
use ebb::{JobErrorInfo, JobFile, JobInfo, Limit};

fn bytes(n: Option<u64>) -> String {
    n.map_or_else(|| "UNKNOWN".to_owned(), |n| n.to_string())
}

/// stdout's reader went away (`ebb list | head`): the command ends quietly, as `cat` would.
#[derive(Debug, thiserror::Error)]
#[error("stdout is closed")]
pub struct StdoutGone;

/// Write to stdout (what [`say!`] expands to). A closed pipe is [`StdoutGone`], not a panic.
pub fn emit(text: std::fmt::Arguments<'_>) -> anyhow::Result<()> {
    use std::io::Write as _;
    let mut out = std::io::stdout().lock();
    match out.write_fmt(text).and_then(|()| out.flush()) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Err(StdoutGone.into()),
        Err(e) => Err(anyhow::Error::new(e).context("cannot write to stdout")),
    }
}

pub fn json<T: serde::Serialize>(value: &T) -> anyhow::Result<String> {
    Ok(serde_json::to_string_pretty(value)?)
}

/// A value as every text output spells it, and as flags take it: lower case, words joined by
/// `-` (`transient-error`, `upload-reply`). JSON keeps the model's snake_case.
pub fn word(value: &impl std::fmt::Display) -> String {
    value.to_string().replace('_', "-")
}

/// A measured rate, spelled as the rate flags take one (`4.8MiB/s`, `512B/s`): binary units,
/// one decimal.
pub fn rate_of(bytes_per_sec: f64) -> String {
    const UNITS: [&str; 4] = ["KiB/s", "MiB/s", "GiB/s", "TiB/s"];
    let mut v = bytes_per_sec.max(0.0);
    if v < 1024.0 {
        return format!("{v:.0}B/s");
    }
    let mut unit = UNITS[0];
    for next in UNITS {
        v /= 1024.0;
        unit = next;
        if v < 1024.0 {
            break;
        }
    }
    format!("{v:.1}{unit}")
}

/// A duration as flags take it: `10m`, `14days`, `0s`.
pub fn duration(secs: u32) -> String {
    humantime::format_duration(std::time::Duration::from_secs(u64::from(secs))).to_string()
}

/// The header of [`list_line`]'s table.
pub fn list_header() -> String {
    format!(
        "{:<36}  {:<16} {:<11} {:<10} {:<21} NAME (WHY IT WAITS)",
        "ID", "STATE", "PRIORITY", "FILES", "BYTES"
    )
}

/// One line per job: id, state, priority, files, bytes, name, and why it waits.
pub fn list_line(j: &JobInfo) -> String {
    let mut line = format!(
        "{}  {:<16} {:<11} {:<10} {:<21} {:?}",
        j.id,
        word(&j.state),
        word(&j.properties.priority),
        format!("{}/{}", j.files_transferred, j.files_total),
        format!("{}/{}", j.bytes_transferred, bytes(j.bytes_total)),
        j.display_name
    );
    if let Some(r) = &j.reason {
        let _ = write!(line, "  ({r})");
    }
    line
}

/// An upload-reply job's reply: where it goes and how much of it came.
pub fn reply(name: Option<&std::path::Path>, p: ebb::ReplyProgress) -> String {
    let name = name.map_or_else(|| "(not known yet)".to_owned(), |n| n.display().to_string());
    format!(
        "{:<22} {name}\n{:<22} {} / {}\n",
        "reply file:",
        "reply bytes:",
        p.bytes_transferred,
        bytes(p.bytes_total)
    )
}

pub fn info(j: &JobInfo) -> String {
    let p = &j.properties;
    let mut s = String::new();
    let mut kv = |k: &str, v: &dyn std::fmt::Display| {
        let _ = writeln!(s, "{k:<22} {v}");
    };
    kv("id:", &j.id);
    kv("display name:", &j.display_name);
    kv("description:", &j.description);
    kv("type:", &word(&j.job_type));
    kv("state:", &word(&j.state));
    if let Some(r) = &j.reason {
        kv("waiting:", r);
    }
    kv("priority:", &word(&p.priority));
    kv("owner:", &format!("{} (uid {})", j.owner, j.owner_uid));
    for (i, f) in j.files.iter().enumerate() {
        if let Some(note) = digest_note(f) {
            kv(&format!("file {i} digest:"), &note);
        }
    }
    kv(
        "files:",
        &format!("{} / {}", j.files_transferred, j.files_total),
    );
    kv(
        "bytes:",
        &format!("{} / {}", j.bytes_transferred, bytes(j.bytes_total)),
    );
    if let Some(p) = j.reply_progress {
        let name = j.reply_file_name.as_ref().map(|n| n.display().to_string());
        kv("reply file:", &name.as_deref().unwrap_or("(not known yet)"));
        kv(
            "reply bytes:",
            &format!("{} / {}", p.bytes_transferred, bytes(p.bytes_total)),
        );
    }
    kv("created:", &j.created_at);
    kv("modified:", &j.modified_at);
    kv(
        "completed:",
        &j.completed_at
            .map_or_else(|| "UNKNOWN".to_owned(), |t| t.to_string()),
    );
    kv("error count:", &j.error_count);
    kv("min retry delay:", &duration(p.minimum_retry_delay));
    kv("no progress timeout:", &duration(p.no_progress_timeout));
    kv("max download time:", &duration(p.maximum_download_time));
    kv("notify flags:", &format!("0x{:x}", p.notify_flags.0));
    kv(
        "notify command line:",
        &notify_line(p.notify_command_line.as_ref()),
    );
    kv("proxy:", &p.proxy);
    kv("security flags:", &format!("0x{:x}", p.security_flags.0));
    if let Some(ca) = &p.ca_file {
        kv("ca file:", &ca.display());
    }
    kv("max rate:", &rate(p.max_rate));
    if p.connections != 0 {
        kv("connections:", &p.connections);
    }
    if p.credentials_across_origins {
        kv("credentials:", &"sent to other origins after a redirect");
    }
    for h in &p.custom_headers {
        kv("header:", h);
    }
    if let Some(e) = &j.error {
        s.push_str(&error(e));
    }
    s
}

/// A limit as the flags take it (`10MiB/s`, `500KB/s`, `unlimited`); 0 says it pauses.
fn rate(l: Limit) -> String {
    match l {
        Limit::BytesPerSec(0) => "0 (paused)".to_owned(),
        l => l.to_string(),
    }
}

fn limits(l: &PriorityLimits) -> String {
    format!(
        "all {}, high {}, normal {}, low {}",
        rate(l.all),
        rate(l.high),
        rate(l.normal),
        rate(l.low)
    )
}

/// `ebb bandwidth show`.
pub fn bandwidth(b: &BandwidthStatus, daemon: bool) -> String {
    let mut s = String::new();
    let mut kv = |k: &str, v: &dyn std::fmt::Display| {
        let _ = writeln!(s, "{k:<18} {v}");
    };
    let why = match b.reason {
        LimitReason::Idle => format!("{} ({})", b.reason, b.idle.reason),
        LimitReason::Policy => match &b.policy {
            Some(p) => format!("policy ({})", p.period),
            None => b.reason.to_string(),
        },
        r => r.to_string(),
    };
    kv("target rate:", &format!("{} - {why}", rate(b.target_rate)));
    let i = &b.idle;
    let onoff = |on: bool| if on { "on" } else { "off" };
    kv(
        "idle estimation:",
        &format!(
            "{} (counters {}, delay {}){}",
            onoff(i.enabled),
            onoff(i.counters),
            onoff(i.delay),
            if i.active { ", estimating" } else { "" }
        ),
    );
    if i.active {
        kv("idle limit:", &format!("{} - {}", rate(i.rate), i.reason));
    }
    if let Some(fg) = i.foreground_rate {
        let on = i.interface.as_deref().unwrap_or("?");
        kv("foreground:", &format!("{} on {on}", rate_of(fg as f64)));
    }
    if let Some(c) = i.capacity {
        kv("capacity seen:", &rate_of(c as f64));
    }
    if let Some(d) = i.queue_delay_ms {
        let to = i.probe_target.as_deref().unwrap_or("?");
        let mut line = format!("{d:.1} ms");
        if let Some(t) = i.target_delay_ms {
            let _ = write!(line, " (target {t:.1} ms");
            if let Some(b) = i.base_delay_ms {
                let _ = write!(line, ", base delay {b:.1} ms");
            }
            line.push(')');
        }
        let _ = write!(line, ", probing {to}");
        kv("queue delay:", &line);
    }
    if let Some(rtt) = i.connection_rtt_ms {
        kv("connection rtt:", &format!("{rtt:.1} ms"));
    }
    if let Some(cc) = &i.congestion {
        kv("uploads use:", &format!("{cc} congestion control"));
    }
    kv("background now:", &rate_of(b.background_rate as f64));
    kv(
        "caps:",
        &format!(
            "{}{}",
            limits(&b.caps),
            if b.overridden {
                " (set at run time)"
            } else {
                ""
            }
        ),
    );
    if let Some(p) = &b.policy {
        kv("policy:", &format!("{}: {}", p.period, limits(&p.limits)));
    }
    if !b.blocked.is_empty() {
        let names: Vec<&str> = b.blocked.iter().map(|p| p.as_str()).collect();
        kv("blocked:", &names.join(", "));
    }
    if !daemon {
        s.push_str("(embedded engine: live estimates come from the engine that runs the jobs)\n");
    }
    s
}

/// The notify command line as BITS shows it, or `none`.
pub fn notify_line(c: Option<&ebb::NotifyCommandLine>) -> String {
    c.map_or_else(|| "none".to_owned(), ToString::to_string)
}

/// One file as BITSAdmin lists it: `done / total STATUS remote -> local`.
pub fn file_line(f: &JobFile) -> String {
    format!(
        "{} / {} {} {} -> {}",
        f.bytes_transferred,
        bytes(f.bytes_total),
        if f.completed { "COMPLETED" } else { "WORKING" },
        f.remote_url,
        f.local_path.display()
    )
}

pub fn files(files: &[JobFile]) -> String {
    let mut s = String::new();
    for (i, f) in files.iter().enumerate() {
        let _ = writeln!(s, "{i:>4}  {}", file_line(f));
        if let Some(note) = digest_note(f) {
            let _ = writeln!(s, "      {note}");
        }
    }
    s
}

/// A file's digest as shown: the one its bytes were verified against, else the one expected.
fn digest_note(f: &JobFile) -> Option<String> {
    f.verified_sha256
        .map(|d| format!("sha256 {d} (verified)"))
        .or_else(|| f.expected_sha256.map(|d| format!("sha256 {d} (expected)")))
}

/// A job's error, in BITSAdmin's `ERROR FILE/CODE/CONTEXT` lines.
pub fn error(e: &JobErrorInfo) -> String {
    let mut s = String::new();
    if let Some(f) = &e.file {
        let _ = writeln!(
            s,
            "ERROR FILE:    {} -> {}",
            f.remote_url,
            f.local_path.display()
        );
    }
    let _ = writeln!(s, "ERROR CODE:    {} - {}", e.code, e.description);
    let _ = writeln!(
        s,
        "ERROR CONTEXT: 0x{:08x} - {}",
        e.context.number(),
        e.context.description()
    );
    if is_certificate_error(e.code) {
        s.push_str(
            "(to trust its CA or its own certificate: `--ca-file FILE` on `ebb transfer` or `ebb set`, \
             or SSL_CERT_FILE where the engine starts; to accept any certificate: `--insecure` (`ebb set JOB --insecure on`))\n",
        );
    }
    s
}

fn is_certificate_error(code: ebb::ErrorCode) -> bool {
    use ebb::ErrorCode as C;
    [
        C::SECURE_INVALID_CA,
        C::SECURE_CERT_CN_INVALID,
        C::SECURE_CERT_DATE_INVALID,
        C::SECURE_CERT_WRONG_USAGE,
        C::SECURE_FAILURE,
    ]
    .contains(&code)
}

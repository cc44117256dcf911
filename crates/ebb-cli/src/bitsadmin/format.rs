//! What BITSAdmin prints: state words, times, `/LIST` lines, `/INFO /VERBOSE`, `/GET*` values.

use std::fmt::Write as _;

use anyhow::bail;
use ebb::{JobInfo, JobState, Priority, Timestamp};

use crate::output;

/// The state word BITSAdmin prints.
pub(super) fn state_word(s: JobState) -> String {
    s.bits_name()
}

pub(super) fn bytes(n: Option<u64>) -> String {
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

pub(super) fn priority_word(p: Priority) -> String {
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

/// BITSAdmin's dump of reply data: offset, sixteen bytes in hex, and the printable ones.
pub(super) fn hex_dump(data: &[u8]) -> String {
    let mut s = String::new();
    for (i, row) in data.chunks(16).enumerate() {
        let hex: Vec<String> = row.iter().map(|b| format!("{b:02x}")).collect();
        let text: String = row
            .iter()
            .map(|&b| {
                if b.is_ascii_graphic() || b == b' ' {
                    b as char
                } else {
                    '.'
                }
            })
            .collect();
        let _ = writeln!(s, "{:08x}  {:<47}  {text}", i * 16, hex.join(" "));
    }
    s
}

/// The value a `/GET*` command prints.
pub(super) fn getter(command: &str, j: &JobInfo) -> anyhow::Result<String> {
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
        "/GETREPLYFILENAME" => {
            j.reply_progress()?;
            j.reply_file_name
                .as_ref()
                .map_or_else(|| "(null)".to_owned(), |n| n.display().to_string())
        }
        "/GETREPLYPROGRESS" => {
            let p = j.reply_progress()?;
            format!("{} / {}", p.bytes_transferred, bytes(p.bytes_total))
        }
        "/GETERROR" => j.error.as_ref().map_or_else(
            || "no error".to_owned(),
            |e| output::error(e).trim_end().to_owned(),
        ),
        other => bail!("unknown command {other}"),
    })
}

#[cfg(test)]
mod tests {
    use ebb::{JobType, Timestamp};

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
    fn times_print_as_bitsadmin_does() {
        let t = bits_time(Timestamp::from_millis(1_795_000_000_000));
        let re_ok = t.split(' ').count() == 3 && (t.ends_with(" AM") || t.ends_with(" PM"));
        assert!(re_ok && t.contains("/2026 "), "{t}");
    }
}

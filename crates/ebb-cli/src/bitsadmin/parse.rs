//! BITSAdmin's arguments: job types, file sets, numbers, `NULL`, and `/SET*` properties.

use anyhow::{anyhow, bail};
use ebb::{
    CustomHeader, JobType, NewFile, NotifyCommandLine, NotifyFlags, PropertyChange, SecurityFlags,
};

/// The arguments after the command, at least `n` of them.
pub(super) fn need<'a>(
    rest: &'a [&'a str],
    n: usize,
    usage: &str,
) -> anyhow::Result<&'a [&'a str]> {
    if rest.len() < n {
        bail!("usage: {usage}");
    }
    Ok(rest)
}

/// `/ADDFILESET`'s file: one `remote local` pair per line; `#` starts a comment line.
pub(super) fn file_set(text: &str) -> anyhow::Result<Vec<NewFile>> {
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

pub(super) fn take_type<'a>(rest: &'a [&'a str]) -> (JobType, &'a [&'a str]) {
    match rest.first().map(|s| s.to_ascii_uppercase()) {
        Some(t) if t == "/DOWNLOAD" => (JobType::Download, &rest[1..]),
        Some(t) if t == "/UPLOAD" => (JobType::Upload, &rest[1..]),
        Some(t) if t == "/UPLOAD-REPLY" => (JobType::UploadReply, &rest[1..]),
        _ => (JobType::Download, rest),
    }
}

pub(super) fn number(text: &str) -> anyhow::Result<u32> {
    crate::args::parse_u32(text).map_err(|e| anyhow!(e))
}

fn null(text: &str) -> Option<&str> {
    (!text.eq_ignore_ascii_case("NULL") && !text.is_empty()).then_some(text)
}

/// The change a `/SET*` command asks for.
pub(super) fn setter(command: &str, a: &[&str]) -> anyhow::Result<PropertyChange> {
    let one = |usage: &str| {
        a.first()
            .copied()
            .ok_or_else(|| anyhow!("usage: {command} job {usage}"))
    };
    Ok(match command {
        "/SETDISPLAYNAME" => PropertyChange::DisplayName(one("name")?.to_owned()),
        "/SETREPLYFILENAME" => PropertyChange::ReplyFileName(Some(
            std::path::absolute(one("path")?).map_err(|e| anyhow::anyhow!("{e}"))?,
        )),
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

#[cfg(test)]
mod tests {
    use super::*;

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
}

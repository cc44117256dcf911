//! `ebb set JOB --property value ...`: each property given becomes one change.

use std::path::Path;

use anyhow::Context;
use ebb::{
    BasicCredentials, CredentialTarget, CustomHeader, NotifyCommandLine, NotifyFlags,
    PropertyChange, ProxySettings, RedirectPolicy, SecurityFlags,
};

use super::on_job;
use crate::args::{EngineArgs, SetArgs};

pub async fn run(args: &EngineArgs, set: SetArgs) -> anyhow::Result<()> {
    on_job(args, &set.job.clone(), |c, id| async move {
        let current = c.backend().job(id).await?.properties.security_flags;
        let changes = changes(&set, current)?;
        if changes.is_empty() {
            return Err(crate::exit::usage(
                "nothing to set: give at least one property (see `ebb set --help`)",
            ));
        }
        for change in changes {
            c.backend().set_property(id, change).await?;
        }
        Ok((c, ()))
    })
    .await
}

/// `--ca-file FILE|none`: an absolute path to a file that holds a PEM certificate (checked here,
/// where a mistake can still be said as bad usage).
pub fn ca_file(path: &Path) -> anyhow::Result<Option<std::path::PathBuf>> {
    if path.as_os_str().eq_ignore_ascii_case("none") {
        return Ok(None);
    }
    let text = std::fs::read_to_string(path).map_err(|e| {
        crate::exit::usage(format!("--ca-file {}: cannot read it: {e}", path.display()))
    })?;
    if !text.contains("-----BEGIN CERTIFICATE-----") {
        return Err(crate::exit::usage(format!(
            "--ca-file {}: no PEM certificate in it",
            path.display()
        )));
    }
    Ok(Some(crate::absolute(path)?))
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

/// The changes `set` asks for, in a fixed order; `current` are the job's security flags, which
/// the redirect and HTTPS-to-HTTP switches change bits of.
fn changes(set: &SetArgs, current: SecurityFlags) -> anyhow::Result<Vec<PropertyChange>> {
    let mut out = plain_changes(set)?;
    out.extend(credential_changes(set)?);
    out.extend(security_flags(set, current)?.map(PropertyChange::SecurityFlags));
    if let Some(r) = set.max_rate {
        out.push(PropertyChange::MaxRate(r));
    }
    if let Some(n) = set.connections {
        out.push(PropertyChange::Connections(n));
    }
    if let Some(b) = set.credentials_across_origins {
        out.push(PropertyChange::CredentialsAcrossOrigins(b));
    }
    if let Some(path) = &set.ca_file {
        out.push(PropertyChange::CaFile(ca_file(path)?));
    }
    if let Some(path) = &set.reply_file {
        out.push(PropertyChange::ReplyFileName(Some(crate::absolute(path)?)));
    }
    Ok(out)
}

/// The properties set as they are given.
fn plain_changes(set: &SetArgs) -> anyhow::Result<Vec<PropertyChange>> {
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
    Ok(out)
}

/// `--credentials server|proxy:USER:PASSWORD|none` and the lines of `--credentials-from`.
fn credential_changes(set: &SetArgs) -> anyhow::Result<Vec<PropertyChange>> {
    let mut out = Vec::new();
    let mut specs = set.credentials.clone();
    if let Some(from) = &set.credentials_from {
        specs.extend(credential_lines(from)?);
    }
    for c in &specs {
        let (target, rest) = c
            .split_once(':')
            .ok_or_else(|| crate::exit::usage("credentials must be server|proxy:USER:PASSWORD"))?;
        let target = match target.to_ascii_lowercase().as_str() {
            "server" => CredentialTarget::Server,
            "proxy" => CredentialTarget::Proxy,
            other => {
                return Err(crate::exit::usage(format!(
                    "credential target {other:?}: use server or proxy"
                )));
            }
        };
        let creds = if rest.eq_ignore_ascii_case("none") {
            None
        } else {
            Some(BasicCredentials::parse(rest)?)
        };
        out.push(PropertyChange::Credentials(target, creds));
    }
    Ok(out)
}

/// `--security-flags`, with `--redirect-policy` and `--allow-https-to-http` changing their bits
/// (of the job's `current` flags when no `--security-flags` is given).
fn security_flags(set: &SetArgs, current: SecurityFlags) -> anyhow::Result<Option<SecurityFlags>> {
    let mut flags = set.security_flags.map(SecurityFlags::new).transpose()?;
    if let Some(policy) = &set.redirect_policy {
        let policy = match policy.to_ascii_lowercase().as_str() {
            "allow" | "allow_silent" => RedirectPolicy::AllowSilent,
            "report" | "allow_report" => RedirectPolicy::AllowReport,
            "disallow" => RedirectPolicy::Disallow,
            other => {
                return Err(crate::exit::usage(format!(
                    "redirect policy {other:?}: use allow, report or disallow"
                )));
            }
        };
        flags = Some(flags.unwrap_or(current).with_redirect_policy(policy));
    }
    for (on, bits) in [
        (set.allow_https_to_http, SecurityFlags::ALLOW_HTTPS_TO_HTTP),
        (set.insecure, SecurityFlags::INSECURE),
    ] {
        if let Some(on) = on {
            let f = flags.unwrap_or(current).0;
            flags = Some(SecurityFlags::new(if on { f | bits } else { f & !bits })?);
        }
    }
    Ok(flags)
}

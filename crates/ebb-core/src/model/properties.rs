use std::fmt;

use serde::{Deserialize, Serialize};

use super::Limit;
use super::Priority;
use super::credentials::{BasicCredentials, CredentialTarget};
use crate::error::{Error, ErrorCode, Result};

/// The settable properties of a job, with BITS's defaults.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct JobProperties {
    pub priority: Priority,
    /// Seconds to wait before retrying after a transient error (default 600, floor 5).
    pub minimum_retry_delay: u32,
    /// Seconds without progress after a transient error before the job goes to Error
    /// (default 1,209,600 = 14 days; 0 makes every error final).
    pub no_progress_timeout: u32,
    /// Seconds of Connecting/Transferring time allowed in all (default 7,776,000 = 90 days).
    pub maximum_download_time: u32,
    pub notify_flags: NotifyFlags,
    pub notify_command_line: Option<NotifyCommandLine>,
    pub custom_headers: Vec<CustomHeader>,
    pub proxy: ProxySettings,
    pub security_flags: SecurityFlags,
    /// This job's own cap (ebb's addition; BITS has none). Applies to foreground jobs too.
    pub max_rate: Limit,
    /// Whether server credentials may answer a challenge from an origin other than the file's
    /// own, after a redirect (ebb's addition; off by default).
    pub credentials_across_origins: bool,
    /// A PEM file of CA certificates this job trusts besides the system's roots (ebb's
    /// addition, as `curl --cacert`): a private CA, or a server's own self-signed certificate.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ca_file: Option<std::path::PathBuf>,
    /// How many connections one file of a foreground job may use at once (ebb's addition, as
    /// `aria2c -x`): 0 (the default) splits a large file over up to 4 once one connection
    /// proves slow, 1 never splits, N splits at once into up to N. A background job's large
    /// file is split (into up to 16) only when the idle-capacity control finds one connection
    /// short of the idle link, as on a lossy path, and never with 1; its rate limit holds all
    /// its connections together.
    #[serde(skip_serializing_if = "is_zero")]
    pub connections: u8,
}

#[allow(clippy::trivially_copy_pass_by_ref)] // serde's skip_serializing_if passes a reference
fn is_zero(n: &u8) -> bool {
    *n == 0
}

impl JobProperties {
    pub const MIN_RETRY_DELAY_FLOOR: u32 = 5;
    pub const DEFAULT_MIN_RETRY_DELAY: u32 = 600;
    pub const DEFAULT_NO_PROGRESS_TIMEOUT: u32 = 1_209_600;
    pub const DEFAULT_MAX_DOWNLOAD_TIME: u32 = 7_776_000;
    /// The most connections one file may use.
    pub const MAX_CONNECTIONS: u8 = 16;
}

impl Default for JobProperties {
    fn default() -> Self {
        Self {
            priority: Priority::Normal,
            minimum_retry_delay: Self::DEFAULT_MIN_RETRY_DELAY,
            no_progress_timeout: Self::DEFAULT_NO_PROGRESS_TIMEOUT,
            maximum_download_time: Self::DEFAULT_MAX_DOWNLOAD_TIME,
            notify_flags: NotifyFlags::default(),
            notify_command_line: None,
            custom_headers: Vec::new(),
            proxy: ProxySettings::Preconfig,
            security_flags: SecurityFlags::default(),
            max_rate: Limit::Unlimited,
            credentials_across_origins: false,
            ca_file: None,
            connections: 0,
        }
    }
}

/// `BG_NOTIFY_*` flags; default `TRANSFERRED | ERROR` (0x3).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct NotifyFlags(pub u32);

impl NotifyFlags {
    pub const JOB_TRANSFERRED: u32 = 0x01;
    pub const JOB_ERROR: u32 = 0x02;
    pub const DISABLE: u32 = 0x04;
    pub const JOB_MODIFICATION: u32 = 0x08;
    pub const FILE_TRANSFERRED: u32 = 0x10;
    pub const FILE_RANGES_TRANSFERRED: u32 = 0x20;
    const KNOWN: u32 = 0x3F;

    pub fn new(bits: u32) -> Result<Self> {
        if bits & !Self::KNOWN != 0 {
            return Err(Error::InvalidArgument(format!(
                "notify flags 0x{bits:x} contain unknown bits (known: 0x{:x})",
                Self::KNOWN
            )));
        }
        Ok(Self(bits))
    }

    /// Whether an event with this flag should be announced.
    pub fn wants(self, flag: u32) -> bool {
        self.0 & Self::DISABLE == 0 && self.0 & flag != 0
    }
}

impl Default for NotifyFlags {
    fn default() -> Self {
        Self(Self::JOB_TRANSFERRED | Self::JOB_ERROR)
    }
}

/// The program BITS runs on Transferred and Error: a program and, optionally, its parameters,
/// whose first token names the program again (as in `SetNotifyCmdLine`). No shell is involved.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct NotifyCommandLine {
    pub program: String,
    pub parameters: Option<String>,
}

impl NotifyCommandLine {
    pub fn new(program: impl Into<String>, parameters: Option<String>) -> Result<Self> {
        let program = program.into();
        if program.trim().is_empty() {
            return Err(Error::InvalidArgument("the notify program is empty".into()));
        }
        let line = Self {
            program,
            parameters,
        };
        line.argv()?;
        Ok(line)
    }

    /// Parse one command-line string (`"/usr/bin/prog arg1 'arg 2'"`): the first word is the
    /// program, the whole line its parameters.
    pub fn parse(line: &str) -> Result<Self> {
        let words = split_words(line)?;
        let Some(program) = words.first() else {
            return Err(Error::InvalidArgument(
                "the notify command line is empty".into(),
            ));
        };
        Self::new(program.clone(), Some(line.to_owned()))
    }

    /// The arguments to pass after the program (without argv\[0\]).
    pub fn argv(&self) -> Result<Vec<String>> {
        match &self.parameters {
            None => Ok(Vec::new()),
            Some(p) => Ok(split_words(p)?.into_iter().skip(1).collect()),
        }
    }
}

/// As BITS shows it: the parameters (which name the program first), else the program alone.
impl fmt::Display for NotifyCommandLine {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.parameters.as_deref().unwrap_or(&self.program))
    }
}

fn split_words(line: &str) -> Result<Vec<String>> {
    shell_words::split(line)
        .map_err(|e| Error::InvalidArgument(format!("cannot parse command line {line:?}: {e}")))
}

/// One custom HTTP header sent on every request of the job.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CustomHeader {
    pub name: String,
    pub value: String,
}

impl CustomHeader {
    /// Total size BITS accepts for all headers of a job (`BG_E_STRING_TOO_LONG` above).
    pub const MAX_TOTAL_LEN: usize = 16_383;

    /// Parse `Name: value`, refusing CR, LF and anything HTTP would not carry.
    pub fn parse(line: &str) -> Result<Self> {
        let Some((name, value)) = line.split_once(':') else {
            return Err(Error::InvalidArgument(format!(
                "header {line:?} is not of the form 'Name: value'"
            )));
        };
        Self::new(name.trim(), value.trim())
    }

    pub fn new(name: &str, value: &str) -> Result<Self> {
        let token = |c: char| c.is_ascii_alphanumeric() || "!#$%&'*+-.^_`|~".contains(c);
        if name.is_empty() || !name.chars().all(token) {
            return Err(Error::InvalidArgument(format!(
                "header name {name:?} is not a valid HTTP token"
            )));
        }
        if value.chars().any(|c| c == '\r' || c == '\n' || c == '\0') {
            return Err(Error::InvalidArgument(format!(
                "header {name:?} contains CR, LF or NUL: refused (header injection)"
            )));
        }
        Ok(Self {
            name: name.to_owned(),
            value: value.to_owned(),
        })
    }

    pub(crate) fn check_total(headers: &[Self]) -> Result<()> {
        let total: usize = headers
            .iter()
            .map(|h| h.name.len() + h.value.len() + 4)
            .sum();
        if total > Self::MAX_TOTAL_LEN {
            return Err(Error::TooLarge {
                code: ErrorCode::BG_E_STRING_TOO_LONG,
                message: format!(
                    "custom headers are {total} bytes; at most {}",
                    Self::MAX_TOTAL_LEN
                ),
            });
        }
        Ok(())
    }
}

impl fmt::Display for CustomHeader {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.name, self.value)
    }
}

/// Proxy usage (`BG_JOB_PROXY_USAGE`).
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "usage")]
pub enum ProxySettings {
    /// The system's settings (on Unix: `http_proxy`, `https_proxy`, `no_proxy`).
    #[default]
    Preconfig,
    NoProxy,
    Override {
        proxy_list: Vec<String>,
        bypass_list: Vec<String>,
    },
    /// Web proxy auto-discovery. ebb has no WPAD client: this behaves as `Preconfig`.
    AutoDetect,
}

/// The form [`ProxySettings::parse`] reads back: `preconfig`, `no-proxy`, `autodetect`,
/// `override:PROXY[,PROXY][;BYPASS[,BYPASS]]`.
impl fmt::Display for ProxySettings {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Preconfig => f.write_str("preconfig"),
            Self::NoProxy => f.write_str("no-proxy"),
            Self::AutoDetect => f.write_str("autodetect"),
            Self::Override {
                proxy_list,
                bypass_list,
            } => {
                write!(f, "override:{}", proxy_list.join(","))?;
                if bypass_list.is_empty() {
                    Ok(())
                } else {
                    write!(f, ";{}", bypass_list.join(","))
                }
            }
        }
    }
}

impl ProxySettings {
    const MAX_LIST_LEN: usize = 32_768;

    /// Parse the CLI form: `preconfig`, `no_proxy`, `autodetect`, or
    /// `override:PROXY[,PROXY...][;BYPASS[,BYPASS...]]`.
    pub fn parse(text: &str) -> Result<Self> {
        let lower = text.to_ascii_lowercase();
        match lower.as_str() {
            "preconfig" => return Ok(Self::Preconfig),
            "no_proxy" | "noproxy" | "no-proxy" => return Ok(Self::NoProxy),
            "autodetect" | "auto_detect" => return Ok(Self::AutoDetect),
            _ => {}
        }
        let Some(rest) = lower
            .strip_prefix("override:")
            .map(|_| &text["override:".len()..])
        else {
            return Err(Error::InvalidArgument(format!(
                "proxy {text:?}: expected preconfig, no_proxy, autodetect or override:LIST[;BYPASS]"
            )));
        };
        let (list, bypass) = rest.split_once(';').unwrap_or((rest, ""));
        let split = |s: &str| -> Vec<String> {
            s.split([',', ' '])
                .map(str::trim)
                .filter(|p| !p.is_empty())
                .map(str::to_owned)
                .collect()
        };
        Self::overriding(split(list), split(bypass))
    }

    pub fn overriding(proxy_list: Vec<String>, bypass_list: Vec<String>) -> Result<Self> {
        if proxy_list.is_empty() {
            return Err(Error::InvalidArgument(
                "proxy override needs at least one proxy".into(),
            ));
        }
        for (list, code) in [
            (&proxy_list, ErrorCode::BG_E_PROXY_LIST_TOO_LARGE),
            (&bypass_list, ErrorCode::BG_E_PROXY_BYPASS_LIST_TOO_LARGE),
        ] {
            let len: usize = list.iter().map(|s| s.len() + 1).sum();
            if len > Self::MAX_LIST_LEN {
                return Err(Error::TooLarge {
                    code,
                    message: format!("proxy list is {len} bytes; at most {}", Self::MAX_LIST_LEN),
                });
            }
        }
        for p in &proxy_list {
            if p.chars().any(char::is_control) {
                return Err(Error::InvalidArgument(format!(
                    "proxy {p:?} contains control characters"
                )));
            }
        }
        Ok(Self::Override {
            proxy_list,
            bypass_list,
        })
    }
}

/// `BG_SSL_*` and redirect-policy flags (`SetSecurityFlags`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct SecurityFlags(pub u32);

/// What a job does when the server redirects (`BG_HTTP_REDIRECT_POLICY_*`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RedirectPolicy {
    /// Follow silently (the default).
    AllowSilent,
    /// Follow and record the final URL as the file's remote name.
    AllowReport,
    /// Treat a redirect as a permanent error.
    Disallow,
}

impl SecurityFlags {
    pub const ENABLE_CRL_CHECK: u32 = 0x1;
    pub const IGNORE_CERT_CN_INVALID: u32 = 0x2;
    pub const IGNORE_CERT_DATE_INVALID: u32 = 0x4;
    pub const IGNORE_UNKNOWN_CA: u32 = 0x8;
    pub const IGNORE_CERT_WRONG_USAGE: u32 = 0x10;
    /// Every `BG_SSL_IGNORE_*` bit: what `--insecure` sets (the handshake still proves the
    /// server holds its certificate's key; nothing else about the certificate is checked).
    pub const INSECURE: u32 = Self::IGNORE_CERT_CN_INVALID
        | Self::IGNORE_CERT_DATE_INVALID
        | Self::IGNORE_UNKNOWN_CA
        | Self::IGNORE_CERT_WRONG_USAGE;
    pub const REDIRECT_POLICY_MASK: u32 = 0x700;
    pub const REDIRECT_ALLOW_REPORT: u32 = 0x100;
    pub const REDIRECT_DISALLOW: u32 = 0x200;
    pub const ALLOW_HTTPS_TO_HTTP: u32 = 0x800;
    const KNOWN: u32 = 0xF1F;

    pub fn new(bits: u32) -> Result<Self> {
        let policy = bits & Self::REDIRECT_POLICY_MASK;
        if bits & !Self::KNOWN != 0 || policy > Self::REDIRECT_DISALLOW {
            return Err(Error::InvalidArgument(format!(
                "security flags 0x{bits:x} are not valid"
            )));
        }
        Ok(Self(bits))
    }

    pub fn redirect_policy(self) -> RedirectPolicy {
        match self.0 & Self::REDIRECT_POLICY_MASK {
            Self::REDIRECT_ALLOW_REPORT => RedirectPolicy::AllowReport,
            Self::REDIRECT_DISALLOW => RedirectPolicy::Disallow,
            _ => RedirectPolicy::AllowSilent,
        }
    }

    #[must_use]
    pub fn with_redirect_policy(self, policy: RedirectPolicy) -> Self {
        let bits = match policy {
            RedirectPolicy::AllowSilent => 0,
            RedirectPolicy::AllowReport => Self::REDIRECT_ALLOW_REPORT,
            RedirectPolicy::Disallow => Self::REDIRECT_DISALLOW,
        };
        Self((self.0 & !Self::REDIRECT_POLICY_MASK) | bits)
    }

    pub fn allows_https_to_http(self) -> bool {
        self.0 & Self::ALLOW_HTTPS_TO_HTTP != 0
    }

    /// The flags that change certificate checks (`ENABLE_CRL_CHECK` and the `IGNORE_*` bits),
    /// without the redirect policy. Each relaxes (or, for revocation, adds) exactly its check.
    #[must_use]
    pub fn certificate_checks(self) -> Self {
        Self(
            self.0
                & (Self::ENABLE_CRL_CHECK
                    | Self::IGNORE_CERT_CN_INVALID
                    | Self::IGNORE_CERT_DATE_INVALID
                    | Self::IGNORE_UNKNOWN_CA
                    | Self::IGNORE_CERT_WRONG_USAGE),
        )
    }
}

/// One change to a job's properties (the `Set*` calls of BITS).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "property", content = "value")]
pub enum PropertyChange {
    DisplayName(String),
    Description(String),
    Priority(Priority),
    MinimumRetryDelay(u32),
    NoProgressTimeout(u32),
    MaximumDownloadTime(u32),
    NotifyFlags(NotifyFlags),
    NotifyCommandLine(Option<NotifyCommandLine>),
    CustomHeaders(Vec<CustomHeader>),
    Proxy(ProxySettings),
    Credentials(CredentialTarget, Option<BasicCredentials>),
    SecurityFlags(SecurityFlags),
    MaxRate(Limit),
    CredentialsAcrossOrigins(bool),
    /// `SetReplyFileName` (upload-reply jobs); `None` lets the engine choose.
    ReplyFileName(Option<std::path::PathBuf>),
    /// CA certificates this job trusts besides the system's (an absolute path to a PEM file);
    /// `None` trusts only the system's.
    CaFile(Option<std::path::PathBuf>),
    /// How many connections one file of a foreground job may use (0 chooses; 1 to 16).
    Connections(u8),
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_injection_is_refused() {
        assert!(CustomHeader::parse("X-Ok: fine").is_ok());
        assert!(CustomHeader::parse("X-Bad: a\r\nHost: evil").is_err());
        assert!(CustomHeader::parse("Bad Name: x").is_err());
        assert!(CustomHeader::parse("no colon").is_err());
    }

    #[test]
    fn redirect_policy_lives_in_bits_8_to_10() {
        let flags = SecurityFlags::default();
        assert_eq!(flags.redirect_policy(), RedirectPolicy::AllowSilent);
        let d = flags.with_redirect_policy(RedirectPolicy::Disallow);
        assert_eq!(d.0, 0x200);
        assert_eq!(d.redirect_policy(), RedirectPolicy::Disallow);
        assert!(SecurityFlags::new(0x300).is_err());
        assert!(SecurityFlags::new(0x801).unwrap().allows_https_to_http());
    }

    #[test]
    fn proxy_forms() {
        assert_eq!(
            ProxySettings::parse("NO_PROXY").unwrap(),
            ProxySettings::NoProxy
        );
        assert_eq!(
            ProxySettings::parse("override:http://p:3128,q:8080;<local>,*.lan").unwrap(),
            ProxySettings::Override {
                proxy_list: vec!["http://p:3128".into(), "q:8080".into()],
                bypass_list: vec!["<local>".into(), "*.lan".into()],
            }
        );
        assert!(ProxySettings::parse("override:").is_err());
        assert!(ProxySettings::parse("sometimes").is_err());
        // What is shown reads back as the same setting.
        for text in [
            "preconfig",
            "no-proxy",
            "autodetect",
            "override:a:1,b:2;<local>",
        ] {
            let p = ProxySettings::parse(text).unwrap();
            assert_eq!(p.to_string(), text);
            assert_eq!(ProxySettings::parse(&p.to_string()).unwrap(), p);
        }
    }

    #[test]
    fn notify_command_line_splits_without_a_shell() {
        let line = NotifyCommandLine::parse("/bin/echo 'a b' c").unwrap();
        assert_eq!(line.program, "/bin/echo");
        assert_eq!(line.argv().unwrap(), vec!["a b", "c"]);
        assert!(NotifyCommandLine::parse("").is_err());
        assert!(NotifyCommandLine::parse("'unterminated").is_err());
    }

    #[test]
    fn notify_flags_validate() {
        assert!(NotifyFlags::new(0x40).is_err());
        let f = NotifyFlags::new(0x3).unwrap();
        assert!(f.wants(NotifyFlags::JOB_ERROR));
        assert!(!NotifyFlags::new(0x7).unwrap().wants(NotifyFlags::JOB_ERROR));
    }
}

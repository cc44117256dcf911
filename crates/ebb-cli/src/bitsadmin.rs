//! `ebb bitsadmin ...` (and `ebb` run under the name `bitsadmin`): BITSAdmin's syntax and text
//! output, so that scripts written for Windows keep working. Switches are case-insensitive; jobs
//! are named by display name or `{GUID}`; local names are this platform's absolute paths.
//!
//! `parse` reads arguments, `verbs` acts on the backend, `format` prints as BITSAdmin does.

mod format;
mod help;
mod parse;
mod verbs;

pub use format::list_line;

use std::fmt::Write as _;
use std::process::ExitCode;

use crate::args::EngineArgs;

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
    "/GETNOTIFYINTERFACE",
];

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
        say!("{BANNER}")?;
    }
    let Some((command, rest)) = rest.split_first() else {
        say!("{}", help::USAGE)?;
        return Ok(ExitCode::from(2));
    };
    let command = command.to_ascii_uppercase();
    if matches!(command.as_str(), "/?" | "/HELP" | "-?" | "/H") {
        say!("{}", help::USAGE)?;
        return Ok(ExitCode::SUCCESS);
    }
    if UNSUPPORTED.contains(&command.as_str()) {
        eprintln!("{command} is not supported by ebb (no such feature on this platform).");
        return Ok(ExitCode::FAILURE);
    }
    let mut out = Out {
        raw,
        text: String::new(),
    };
    let result = verbs::dispatch(args, &command, rest, &mut out).await;
    say!("{}", out.text)?;
    match result {
        Ok(code) => Ok(code),
        Err(e) => {
            eprintln!("Unable to complete {command}: {e:#}");
            Ok(ExitCode::FAILURE)
        }
    }
}

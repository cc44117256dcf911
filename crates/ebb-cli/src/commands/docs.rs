//! `ebb completions SHELL` and `ebb man`: generated from the same definitions as `--help`
//! (`clap_complete`, `clap_mangen`), so they never drift from the flags.

use std::path::Path;

use anyhow::Context;
use clap::CommandFactory;

use crate::args::Cli;

pub fn completions(shell: clap_complete::Shell) -> anyhow::Result<()> {
    let mut cmd = Cli::command();
    let mut script = Vec::new();
    clap_complete::generate(shell, &mut cmd, "ebb", &mut script);
    say!("{}", String::from_utf8_lossy(&script))
}

/// The man page of `ebb` on stdout, or with `dir` one page per verb (`ebb-transfer.1`, ...).
pub fn man(dir: Option<&Path>) -> anyhow::Result<()> {
    let cmd = Cli::command();
    match dir {
        None => {
            let mut page = Vec::new();
            clap_mangen::Man::new(cmd)
                .render(&mut page)
                .context("cannot render the man page")?;
            say!("{}", String::from_utf8_lossy(&page))
        }
        Some(dir) => {
            std::fs::create_dir_all(dir)
                .with_context(|| format!("{}: cannot create the directory", dir.display()))?;
            clap_mangen::generate_to(cmd, dir)
                .with_context(|| format!("{}: cannot write the man pages", dir.display()))
        }
    }
}

//! `ebb reply JOB [--data | --file] [--json]`: an upload-reply job's reply (`GetReplyData`,
//! `GetReplyFileName`, `GetReplyProgress`).

use std::io::Write;

use anyhow::Context;

use super::on_job;
use crate::args::EngineArgs;
use crate::output;

/// What to show of the reply.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Show {
    /// File name and progress.
    Summary { json: bool },
    /// The bytes, raw.
    Data,
    /// The file name alone.
    File,
}

impl Show {
    pub fn of(data: bool, file: bool, json: bool) -> Self {
        if data {
            Self::Data
        } else if file {
            Self::File
        } else {
            Self::Summary { json }
        }
    }
}

pub async fn run(args: &EngineArgs, job: &str, show: Show) -> anyhow::Result<()> {
    on_job(args, job, |c, id| async move {
        let b = c.backend();
        match show {
            Show::Data => {
                let data = b.reply_data(id).await?;
                let mut out = std::io::stdout().lock();
                out.write_all(&data)
                    .and_then(|()| out.flush())
                    .context("cannot write the reply to stdout")?;
            }
            Show::File => {
                let name = b.reply_file_name(id).await?;
                say!(
                    "{}\n",
                    name.map(|p| p.display().to_string()).unwrap_or_default()
                )?;
            }
            Show::Summary { json } => {
                let progress = b.reply_progress(id).await?;
                let name = b.reply_file_name(id).await?;
                if json {
                    let value = serde_json::json!({
                        "reply_file_name": name,
                        "bytes_total": progress.bytes_total,
                        "bytes_transferred": progress.bytes_transferred,
                    });
                    say!("{}\n", output::json(&value)?)?;
                } else {
                    say!("{}", output::reply(name.as_deref(), progress))?;
                }
            }
        }
        Ok((c, ()))
    })
    .await
}

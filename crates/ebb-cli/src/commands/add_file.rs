//! `ebb add-file JOB URL PATH [--ranges R] [--sha256 HEX]`.

use std::path::Path;

use ebb::{ByteRange, Sha256Digest};

use super::on_job;
use crate::args::EngineArgs;

pub async fn run(
    args: &EngineArgs,
    job: &str,
    url: &str,
    path: &Path,
    ranges: Option<&str>,
    sha256: Option<Sha256Digest>,
) -> anyhow::Result<()> {
    let mut file = crate::new_file(url, path)?;
    if let Some(r) = ranges {
        file = file.with_ranges(ByteRange::parse_list(r)?);
    }
    if let Some(d) = sha256 {
        file = file.with_sha256(d);
    }
    on_job(args, job, |c, id| async move {
        c.backend().add_files(id, vec![file]).await?;
        Ok((c, ()))
    })
    .await
}

//! `ebb list [--all] [--all-users] [--json]`.

use ebb::JobFilter;

use crate::args::EngineArgs;
use crate::conn::Conn;
use crate::output;

pub async fn run(args: &EngineArgs, json: bool, all: bool, all_users: bool) -> anyhow::Result<()> {
    let filter = JobFilter {
        final_jobs: all,
        all_users,
    };
    let jobs = Conn::reader(args).await?.backend().list(filter).await?;
    if json {
        say!("{}\n", output::json(&jobs)?)?;
    } else {
        if !jobs.is_empty() {
            say!("{}\n", output::list_header())?;
        }
        for j in &jobs {
            say!("{}\n", output::list_line(j))?;
        }
    }
    Ok(())
}

//! `ebb list [--all] [--all-users] [--json]`.

use crate::args::EngineArgs;
use crate::{conn, output};

pub async fn run(args: &EngineArgs, json: bool, all: bool, all_users: bool) -> anyhow::Result<()> {
    let me = ebb::Owner::current().uid;
    let jobs: Vec<_> = conn::all_jobs(args)
        .await?
        .into_iter()
        .filter(|j| all || !j.state.is_final())
        .filter(|j| all_users || j.owner_uid == me)
        .collect();
    if json {
        println!("{}", output::json(&jobs)?);
    } else {
        for j in &jobs {
            println!("{}", output::list_line(j));
        }
    }
    Ok(())
}

//! `ebb create [--type T] [--priority P] NAME`: prints the new job's id alone.

use ebb::{JobType, Priority, PropertyChange};

use crate::args::EngineArgs;
use crate::conn::Conn;

pub async fn run(
    args: &EngineArgs,
    job_type: JobType,
    priority: Option<Priority>,
    name: &str,
) -> anyhow::Result<()> {
    let conn = Conn::open(args, false).await?;
    let b = conn.backend();
    let id = b.create_job(name, job_type).await?;
    if let Some(p) = priority {
        b.set_property(id, PropertyChange::Priority(p)).await?;
    }
    say!("{id}\n")?;
    conn.close().await;
    Ok(())
}

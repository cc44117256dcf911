//! One file per verb of `ebb` (as pueue's `client/commands/`): each opens the backend, does
//! its work, and closes it.

pub mod add_file;
pub mod bandwidth;
pub mod cancel;
pub mod complete;
pub mod create;
pub mod docs;
pub mod info;
pub mod list;
pub mod repair;
pub mod reply;
pub mod resume;
pub mod set;
pub mod suspend;
pub mod transfer;
pub mod wait;

use ebb::JobId;

use crate::args::EngineArgs;
use crate::conn::Conn;

/// Open the backend, run `f` on the job named `job`, close.
async fn on_job<T, F, Fut>(args: &EngineArgs, job: &str, f: F) -> anyhow::Result<T>
where
    F: FnOnce(Conn, JobId) -> Fut,
    Fut: Future<Output = anyhow::Result<(Conn, T)>>,
{
    let conn = Conn::open(args, false).await?;
    let id = conn.backend().find(job).await?;
    let (conn, out) = f(conn, id).await?;
    conn.close().await;
    Ok(out)
}

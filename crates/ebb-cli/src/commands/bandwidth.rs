//! `ebb bandwidth show|set|reset`.

use crate::args::{BandwidthCommand, EngineArgs};
use crate::conn::Conn;
use crate::output;

pub async fn run(args: &EngineArgs, verb: BandwidthCommand) -> anyhow::Result<()> {
    let c = Conn::open(args, false).await?;
    let result = async {
        let (status, json) = match verb {
            BandwidthCommand::Show { json } => (c.backend().bandwidth().await?, json),
            BandwidthCommand::Set {
                max_rate,
                priority,
                idle,
            } => {
                let change = ebb::BandwidthChange {
                    max_rate,
                    priority,
                    idle,
                    reset: false,
                };
                (c.backend().set_bandwidth(change).await?, false)
            }
            BandwidthCommand::Reset => {
                let change = ebb::BandwidthChange {
                    reset: true,
                    ..ebb::BandwidthChange::default()
                };
                (c.backend().set_bandwidth(change).await?, false)
            }
        };
        if json {
            say!("{}\n", output::json(&status)?)?;
        } else {
            say!("{}", output::bandwidth(&status, c.is_daemon()))?;
        }
        anyhow::Ok(())
    }
    .await;
    c.close().await;
    result
}

//! The notify command line: a program BITS starts when a job is Transferred or in Error.

use std::process::Stdio;

use crate::model::{Job, NotifyFlags};

/// Start the job's notify program if its flags ask for `flag` (no shell; stdio closed). The
/// process is reaped in the background; a program that cannot start is logged, not fatal.
pub(crate) fn run(job: &Job, flag: u32) {
    let props = &job.properties;
    if !props.notify_flags.wants(flag)
        || flag & (NotifyFlags::JOB_TRANSFERRED | NotifyFlags::JOB_ERROR) == 0
    {
        return;
    }
    let Some(line) = &props.notify_command_line else {
        return;
    };
    let args = match line.argv() {
        Ok(a) => a,
        Err(e) => {
            tracing::warn!(job_id = %job.id, error = %e, "notify command line cannot be parsed");
            return;
        }
    };
    let spawned = tokio::process::Command::new(&line.program)
        .args(&args)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn();
    match spawned {
        Ok(mut child) => {
            let job_id = job.id;
            let program = line.program.clone();
            tokio::spawn(async move {
                match child.wait().await {
                    Ok(status) => {
                        tracing::debug!(%job_id, %program, %status, "notify program exited");
                    }
                    Err(e) => tracing::warn!(%job_id, %program, error = %e, "notify program"),
                }
            });
        }
        Err(e) => {
            tracing::warn!(job_id = %job.id, program = %line.program, error = %e, "cannot start notify program");
        }
    }
}

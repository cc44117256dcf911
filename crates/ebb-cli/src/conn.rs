//! Where the CLI's verbs go: the per-user daemon (the default, started on demand) or an engine in
//! this process (`--embedded`).

use std::path::PathBuf;
#[cfg(not(windows))]
use std::process::{Command, Stdio};
#[cfg(not(windows))]
use std::time::{Duration, Instant};

use anyhow::anyhow;
#[cfg(not(windows))]
use anyhow::{Context, bail};
#[cfg(not(windows))]
use ebb::Client;
use ebb::{Backend, CheckpointPolicy, Engine, EngineConfig, JobId, JobInfo, JobState};

use crate::args::EngineArgs;

/// A backend the CLI talks to.
pub enum Conn {
    Embedded(Engine),
    #[cfg(not(windows))]
    Daemon(Client),
    /// Windows: the system's BITS service.
    #[cfg(windows)]
    Native(ebb::Bits),
}

impl Conn {
    /// Open the backend. `scheduling` matters only in embedded mode: whether this process moves
    /// bytes (the daemon always does).
    pub async fn open(args: &EngineArgs, scheduling: bool) -> anyhow::Result<Self> {
        if args.embedded {
            return Ok(Self::Embedded(
                Engine::open(config(args, scheduling)?).await?,
            ));
        }
        #[cfg(windows)]
        {
            Ok(Self::Native(ebb::Bits::connect().await?))
        }
        #[cfg(not(windows))]
        {
            Ok(Self::Daemon(daemon(args).await?))
        }
    }

    pub fn backend(&self) -> &dyn Backend {
        match self {
            Self::Embedded(e) => e,
            #[cfg(not(windows))]
            Self::Daemon(c) => c,
            #[cfg(windows)]
            Self::Native(b) => b,
        }
    }

    /// Whether a service (ebbd, or BITS on Windows) moves the bytes, not this process.
    pub fn is_daemon(&self) -> bool {
        !matches!(self, Self::Embedded(_))
    }

    /// Stop an embedded engine (with a final checkpoint); the daemon goes on.
    pub async fn close(&self) {
        if let Self::Embedded(e) = self {
            e.shutdown().await;
        }
    }
}

/// Where read verbs read: the daemon, or (embedded) the store itself, without taking the
/// engine, so that reading works while another process runs one.
pub enum Reader {
    Store(PathBuf),
    #[cfg(not(windows))]
    Daemon(Client),
    #[cfg(windows)]
    Native(ebb::Bits),
}

impl Reader {
    pub async fn open(args: &EngineArgs) -> anyhow::Result<Self> {
        if args.embedded {
            return Ok(Self::Store(data_dir(args)?));
        }
        #[cfg(windows)]
        {
            Ok(Self::Native(ebb::Bits::connect().await?))
        }
        #[cfg(not(windows))]
        {
            Ok(Self::Daemon(daemon(args).await?))
        }
    }

    /// Every job, final ones included.
    pub async fn all_jobs(&self) -> anyhow::Result<Vec<JobInfo>> {
        Ok(match self {
            Self::Store(dir) => ebb::read_jobs(dir)?,
            #[cfg(not(windows))]
            Self::Daemon(c) => c.all_jobs().await?,
            // BITS forgets Acknowledged and Cancelled jobs: its list is all there is.
            #[cfg(windows)]
            Self::Native(b) => Backend::jobs(b).await?,
        })
    }
}

/// Every job, final ones included.
pub async fn all_jobs(args: &EngineArgs) -> anyhow::Result<Vec<JobInfo>> {
    Reader::open(args).await?.all_jobs().await
}

/// One job by id or unique display name, read as `all_jobs` reads.
pub async fn read_one(args: &EngineArgs, job: &str) -> anyhow::Result<JobInfo> {
    let jobs = all_jobs(args).await?;
    let refs: Vec<(JobId, String, JobState)> = jobs
        .iter()
        .map(|j| (j.id, j.display_name.clone(), j.state))
        .collect();
    let id = ebb::resolve(&refs, job)?;
    jobs.into_iter()
        .find(|j| j.id == id)
        .ok_or_else(|| anyhow!("job {job} not found"))
}

pub fn data_dir(args: &EngineArgs) -> anyhow::Result<PathBuf> {
    args.data_dir
        .clone()
        .or_else(ebb::config::default_data_dir)
        .ok_or_else(|| anyhow!("no per-user data directory: set EBB_DATA_DIR"))
}

#[cfg(not(windows))]
fn socket(args: &EngineArgs) -> anyhow::Result<PathBuf> {
    args.socket
        .clone()
        .or_else(ebb::config::default_socket)
        .ok_or_else(|| anyhow!("no per-user runtime directory: set EBB_SOCKET"))
}

fn config(args: &EngineArgs, scheduling: bool) -> anyhow::Result<EngineConfig> {
    let mut c = EngineConfig::new(data_dir(args)?).with_scheduling(scheduling);
    let defaults = CheckpointPolicy::default();
    c.checkpoint = CheckpointPolicy {
        bytes: args.checkpoint_bytes.unwrap_or(defaults.bytes),
        interval: args.checkpoint_interval.unwrap_or(defaults.interval),
    };
    if let Some(n) = args.max_background_jobs {
        c = c.with_max_background_jobs(n);
    }
    if let Some(t) = args.time_slice {
        c = c.with_time_slice(t);
    }
    if let Some(t) = args.inactivity_timeout {
        c = c.with_job_inactivity_timeout(t);
    }
    if let Some(t) = args.chunk_timeout {
        c.http.chunk_timeout = t;
    }
    if let Some(t) = args.connect_timeout {
        c.http.connect_timeout = t;
    }
    // An embedded engine keeps to the same bandwidth caps and schedules as the daemon would.
    if let Some(path) = ebb_daemon::config::default_path() {
        c.bandwidth = ebb_daemon::config::DaemonConfig::load(&path, false)?.bandwidth;
    }
    Ok(c)
}

/// Connect to the daemon, starting one if none answers (unless `--no-autostart`).
#[cfg(not(windows))]
async fn daemon(args: &EngineArgs) -> anyhow::Result<Client> {
    let socket = socket(args)?;
    let first = match Client::connect(&socket).await {
        Ok(c) => return Ok(c),
        Err(e) => e,
    };
    if args.no_autostart {
        bail!(
            "no ebbd answers on {}: {first} (start `ebbd`, or use --embedded)",
            socket.display()
        );
    }
    let pid = start_daemon(args, &socket)?;
    eprintln!("ebb: started ebbd (pid {pid}) on {}", socket.display());
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        match Client::connect(&socket).await {
            Ok(c) => return Ok(c),
            Err(e) if Instant::now() >= deadline => {
                bail!(
                    "ebbd (pid {pid}) did not answer on {}: {e}",
                    socket.display()
                )
            }
            Err(_) => tokio::time::sleep(Duration::from_millis(50)).await,
        }
    }
}

/// `ebbd` beside this binary, else this binary as `ebb daemon` (same version either way);
/// detached from our terminal's process group so that Ctrl-C here does not stop it.
#[cfg(not(windows))]
fn start_daemon(args: &EngineArgs, socket: &std::path::Path) -> anyhow::Result<u32> {
    use std::os::unix::process::CommandExt;
    let exe = std::env::current_exe().context("cannot find this program to start the daemon")?;
    let beside = exe.parent().map(|d| d.join("ebbd")).filter(|p| p.exists());
    let (program, verb) = match beside {
        Some(ebbd) => (ebbd, None),
        None => (exe, Some("daemon")),
    };
    let mut cmd = Command::new(&program);
    cmd.args(verb);
    cmd.env("EBB_SOCKET", socket)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .process_group(0);
    if let Some(d) = &args.data_dir {
        cmd.env("EBB_DATA_DIR", d);
    }
    let child = cmd
        .spawn()
        .with_context(|| format!("cannot start {}", program.display()))?;
    Ok(child.id())
}

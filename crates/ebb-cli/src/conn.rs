//! Where the CLI's verbs go: the per-user daemon (the default, started on demand) or an engine in
//! this process (`--embedded`).

use std::path::PathBuf;
#[cfg(not(windows))]
use std::process::{Command, Stdio};
#[cfg(not(windows))]
use std::time::{Duration, Instant};

#[cfg(windows)]
use anyhow::anyhow;
#[cfg(not(windows))]
use anyhow::{Context, bail};
use ebb::settings::SettingsFile;
use ebb::{Backend, Choice, EngineConfig, JobInfo};

use crate::args::EngineArgs;

/// The backend the CLI talks to, through the [`Backend`] trait only.
pub struct Conn {
    backend: Box<dyn Backend>,
    /// A service (ebbd, or BITS on Windows) moves the bytes, not this process.
    daemon: bool,
}

impl Conn {
    /// Open the backend. `scheduling` matters only in embedded mode: whether this process moves
    /// bytes (the daemon always does).
    pub async fn open(args: &EngineArgs, scheduling: bool) -> anyhow::Result<Self> {
        if args.embedded {
            let config = Box::new(config(args, scheduling)?);
            return Ok(Self {
                backend: ebb::open(Choice::Engine(config)).await?,
                daemon: false,
            });
        }
        Self::service(args).await
    }

    /// For verbs that only read: embedded, the queue is read without taking its engine, so that
    /// reading works while another process runs one.
    pub async fn reader(args: &EngineArgs) -> anyhow::Result<Self> {
        if args.embedded {
            return Ok(Self {
                backend: ebb::open(Choice::Reader(data_dir(args)?)).await?,
                daemon: false,
            });
        }
        Self::service(args).await
    }

    #[cfg(windows)]
    async fn service(_args: &EngineArgs) -> anyhow::Result<Self> {
        Ok(Self {
            backend: ebb::open(Choice::Native).await?,
            daemon: true,
        })
    }

    #[cfg(not(windows))]
    async fn service(args: &EngineArgs) -> anyhow::Result<Self> {
        Ok(Self {
            backend: daemon(args).await?,
            daemon: true,
        })
    }

    pub fn backend(&self) -> &dyn Backend {
        self.backend.as_ref()
    }

    /// Whether a service (ebbd, or BITS on Windows) moves the bytes, not this process.
    pub fn is_daemon(&self) -> bool {
        self.daemon
    }

    /// Done: an embedded engine stops with a final checkpoint; the daemon goes on.
    pub async fn close(&self) {
        self.backend.close().await;
    }
}

/// One job by id or unique display name, final ones too, read as read verbs read.
pub async fn read_one(args: &EngineArgs, job: &str) -> anyhow::Result<JobInfo> {
    let conn = Conn::reader(args).await?;
    let b = conn.backend();
    Ok(b.job(b.find(job).await?).await?)
}

pub fn data_dir(args: &EngineArgs) -> anyhow::Result<PathBuf> {
    Ok(SettingsFile::load_given_or_default(None)?.data_dir(args.data_dir.as_deref())?)
}

#[cfg(not(windows))]
fn socket(args: &EngineArgs) -> anyhow::Result<PathBuf> {
    Ok(SettingsFile::load_given_or_default(None)?.socket(args.socket.as_deref())?)
}

/// An embedded engine's configuration: the same layers as the daemon's (defaults, the
/// configuration file, the environment and the flags), so it keeps to the same caps and
/// schedules.
fn config(args: &EngineArgs, scheduling: bool) -> anyhow::Result<EngineConfig> {
    let file = SettingsFile::load_given_or_default(None)?;
    let data_dir = file.data_dir(args.data_dir.as_deref())?;
    Ok(file
        .engine_config(data_dir, &args.settings)
        .with_scheduling(scheduling))
}

/// A daemon that runs with other settings than this call asks for refuses the call: its
/// settings were fixed when it started, and they are not silently ignored.
#[cfg(not(windows))]
fn check_settings(args: &EngineArgs, daemon: &dyn Backend) -> anyhow::Result<()> {
    let Some(running) = daemon.settings() else {
        return Ok(());
    };
    let differ = args.settings.differences(&running);
    if differ.is_empty() {
        return Ok(());
    }
    bail!(
        "ebbd is already running with other settings than asked for: {}. Engine settings \
         apply when ebbd starts: stop it (it starts again with these on the next call), put \
         them in its configuration file, or use --embedded",
        differ.join(", ")
    )
}

/// Connect to the daemon, starting one if none answers (unless `--no-autostart`). A daemon
/// that fails to start is reported at once, in its own words and with its exit code.
#[cfg(not(windows))]
async fn daemon(args: &EngineArgs) -> anyhow::Result<Box<dyn Backend>> {
    let socket = socket(args)?;
    let connect = || ebb::open(Choice::Daemon(socket.clone()));
    let first = match connect().await {
        Ok(c) => {
            check_settings(args, c.as_ref())?;
            return Ok(c);
        }
        Err(e) => e,
    };
    if let Some(refusal) = not_ours(&socket) {
        bail!("{refusal}");
    }
    if args.no_autostart {
        bail!(
            "no ebbd answers on {}: {first} (start `ebbd`, or use --embedded)",
            socket.display()
        );
    }
    let mut started = start_daemon(args, &socket)?;
    let pid = started.child.id();
    eprintln!("ebb: started ebbd (pid {pid}) on {}", socket.display());
    let deadline = Instant::now() + Duration::from_secs(10);
    // Ours found the data directory in use: most likely another command started an ebbd at
    // the same moment. That one has 2 s to answer before ours's words stand.
    let mut lost_race_at = None;
    loop {
        match connect().await {
            Ok(c) => {
                started.answered();
                check_settings(args, c.as_ref())?;
                return Ok(c);
            }
            Err(e) => {
                if let Some(failed) = started.failed()? {
                    let in_use = failed.message.contains("in use by another engine");
                    let since = *lost_race_at.get_or_insert_with(Instant::now);
                    if !in_use || since.elapsed() >= Duration::from_secs(2) {
                        return Err(failed.into());
                    }
                } else if Instant::now() >= deadline {
                    bail!(
                        "ebbd (pid {pid}) did not answer on {} within 10 s: {e} (its log: \
                         ebbd.log in the data directory)",
                        socket.display()
                    );
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
    }
}

/// `ebb daemon stop`: ask the running ebbd to stop and wait (30 s at most) until it has: its
/// socket is gone and its data directory free, so that the next command may start another.
/// None running (or a stale socket nothing answers on) is not an error: it is stopped.
#[cfg(not(windows))]
pub async fn stop_daemon(args: &EngineArgs) -> anyhow::Result<()> {
    let socket = socket(args)?;
    if let Some(refusal) = not_ours(&socket) {
        bail!("{refusal}");
    }
    let client = match ebb::Client::connect(&socket).await {
        Ok(c) => c,
        Err(e) => {
            eprintln!("ebb: no ebbd answers on {} ({e})", socket.display());
            return Ok(());
        }
    };
    // The answer may be cut off by the very stop it asks for: what counts is what follows.
    let asked = client.shutdown_daemon().await;
    let data_dir = data_dir(args)?;
    let deadline = Instant::now() + Duration::from_secs(30);
    while socket.exists() || ebb::engine_running(&data_dir) {
        if Instant::now() >= deadline {
            let why = asked.err().map(|e| format!(": {e}")).unwrap_or_default();
            bail!(
                "ebbd on {} has not stopped within 30 s{why}",
                socket.display()
            );
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    eprintln!("ebb: ebbd stopped ({})", socket.display());
    Ok(())
}

#[cfg(windows)]
pub async fn stop_daemon(_args: &EngineArgs) -> anyhow::Result<()> {
    anyhow::bail!("there is no ebbd on Windows: ebb uses the system's BITS service")
}

/// A socket that belongs to another user: said as the refusal it is.
#[cfg(not(windows))]
fn not_ours(socket: &std::path::Path) -> Option<String> {
    use std::os::unix::fs::MetadataExt;
    let owner = std::fs::symlink_metadata(socket).ok()?.uid();
    let me = ebb::Owner::current().uid;
    (owner != me).then(|| {
        format!(
            "permission denied: the socket {} belongs to uid {owner}, not to you (uid {me}); \
             each user has their own ebbd: use your own --socket (or EBB_SOCKET)",
            socket.display()
        )
    })
}

/// An ebbd this call started, and where its stderr goes until it answers.
#[cfg(not(windows))]
struct Started {
    child: std::process::Child,
    stderr: PathBuf,
    /// What it said when it exited, read once (its file is gone after).
    said: Option<String>,
}

#[cfg(not(windows))]
impl Started {
    /// It answers: its stderr file becomes `ebbd.stderr` beside the socket (where anything it
    /// says later, such as a panic, can be read), replacing an earlier daemon's.
    fn answered(&self) {
        if let Some(dir) = self.stderr.parent() {
            let _ = std::fs::rename(&self.stderr, dir.join("ebbd.stderr"));
        }
    }

    /// The daemon's own failure, if it has exited.
    fn failed(&mut self) -> anyhow::Result<Option<crate::exit::Failed>> {
        let Some(status) = self.child.try_wait()? else {
            return Ok(None);
        };
        let said = self.said.get_or_insert_with(|| {
            let said = std::fs::read_to_string(&self.stderr).unwrap_or_default();
            let _ = std::fs::remove_file(&self.stderr);
            said
        });
        let said = said.trim();
        let said = said.strip_prefix("ebbd: ").unwrap_or(said);
        let message = if said.is_empty() {
            format!("ebbd exited at once ({status}) and said nothing")
        } else {
            format!("ebbd could not start: {said}")
        };
        let code = status
            .code()
            .and_then(|c| u8::try_from(c).ok())
            .filter(|c| *c != 0)
            .unwrap_or(crate::exit::FAILED);
        Ok(Some(crate::exit::Failed { code, message }))
    }
}

/// The `ebbd` beside this program (the same build), else the first on PATH.
#[cfg(not(windows))]
fn ebbd_program() -> anyhow::Result<PathBuf> {
    let exe = std::env::current_exe().context("cannot find this program to start the daemon")?;
    let beside = exe.parent().map(|d| d.join("ebbd")).filter(|p| p.is_file());
    let on_path = || {
        std::env::var_os("PATH").and_then(|path| {
            std::env::split_paths(&path)
                .map(|d| d.join("ebbd"))
                .find(|p| p.is_file())
        })
    };
    beside.or_else(on_path).with_context(|| {
        format!(
            "no ebbd beside {} or on PATH: install ebbd, or use --embedded",
            exe.display()
        )
    })
}

/// An `ebbd` command with this call's data directory and engine settings (flags too).
#[cfg(not(windows))]
fn ebbd_command(args: &EngineArgs) -> anyhow::Result<Command> {
    let mut cmd = Command::new(ebbd_program()?);
    if let Some(d) = &args.data_dir {
        cmd.env("EBB_DATA_DIR", d);
    }
    if let Some(s) = &args.socket {
        cmd.env("EBB_SOCKET", s);
    }
    for s in args.settings.settings() {
        cmd.env(s.env, s.value);
    }
    Ok(cmd)
}

/// `ebb daemon ARGS`: this process becomes `ebbd ARGS`; returns only on failure.
#[cfg(not(windows))]
pub fn exec_ebbd(args: &EngineArgs, ebbd_args: &[std::ffi::OsString]) -> anyhow::Error {
    use std::os::unix::process::CommandExt;
    match ebbd_command(args) {
        Ok(mut cmd) => anyhow::Error::from(cmd.args(ebbd_args).exec()).context("cannot run ebbd"),
        Err(e) => e,
    }
}

#[cfg(windows)]
pub fn exec_ebbd(_args: &EngineArgs, _ebbd_args: &[std::ffi::OsString]) -> anyhow::Error {
    anyhow!("ebbd serves a Unix socket; on Windows ebb uses the system's BITS service")
}

/// Start `ebbd` detached from our terminal's process group, so that Ctrl-C here does not
/// stop it. Its stderr goes to a file of this start beside the socket, where a failure to
/// start is read back.
#[cfg(not(windows))]
fn start_daemon(args: &EngineArgs, socket: &std::path::Path) -> anyhow::Result<Started> {
    use std::os::unix::process::CommandExt;
    let dir = socket.parent().unwrap_or(std::path::Path::new("."));
    ebb::private_dir::create(dir)?;
    // One file per start: two commands starting ebbd at once do not share one.
    let stderr = dir.join(format!("ebbd-start-{}.stderr", std::process::id()));
    let file = ebb::private_dir::open_file(&stderr, false)?;
    file.set_len(0)
        .with_context(|| format!("{}: cannot empty it", stderr.display()))?;
    let mut cmd = ebbd_command(args)?;
    cmd.env("EBB_SOCKET", socket)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(file)
        .process_group(0);
    let child = cmd
        .spawn()
        .with_context(|| format!("cannot start {}", cmd.get_program().display()))?;
    Ok(Started {
        child,
        stderr,
        said: None,
    })
}

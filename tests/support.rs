//! What the integration tests stand on: real servers on 127.0.0.1 (our origin, nginx), engines
//! in temp dirs, and the real `ebb` binary.

pub mod certs;
#[allow(dead_code)]
#[path = "../crates/ebb-server/tests/support/moto.rs"]
pub mod moto;
pub mod nginx;
pub mod origin;
#[allow(dead_code)]
#[path = "../crates/ebb-server/tests/support/postgres.rs"]
pub mod postgres;
pub mod pty;
pub mod tusd;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use ebb::{CheckpointPolicy, Engine, EngineConfig, JobId, JobInfo, JobState};

/// Deterministic bytes that are not all alike.
pub fn data(n: usize, seed: u8) -> Vec<u8> {
    let mut x = u64::from(seed) + 0x9E37_79B9_7F4A_7C15;
    (0..n)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect()
}

/// Small checkpoints and short timeouts so that tests see them happen.
pub fn config(dir: &Path) -> EngineConfig {
    let mut c = EngineConfig::new(dir.join("data")).with_checkpoint(CheckpointPolicy {
        bytes: 64 * 1024,
        interval: Duration::from_millis(100),
    });
    c.http.chunk_timeout = Duration::from_secs(2);
    c.http.connect_timeout = Duration::from_secs(2);
    c.secret_key = dir.join("secret.key");
    c.platform_secret_store = false;
    c
}

pub async fn engine(dir: &Path) -> Engine {
    Engine::open(config(dir)).await.unwrap()
}

/// Poll until `pred` holds; panics with the job's last snapshot after `secs`.
pub async fn wait_for(
    e: &Engine,
    id: JobId,
    secs: u64,
    pred: impl Fn(&JobInfo) -> bool,
) -> JobInfo {
    let deadline = Instant::now() + Duration::from_secs(secs);
    loop {
        let info = e.job(id).await.unwrap();
        if pred(&info) {
            return info;
        }
        assert!(
            Instant::now() < deadline,
            "condition not reached in {secs}s; job: {info:#?}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

pub async fn wait_state(e: &Engine, id: JobId, state: JobState, secs: u64) -> JobInfo {
    wait_for(e, id, secs, |j| j.state == state).await
}

/// A download job of one file, resumed.
pub async fn start_job(e: &Engine, url: String, dest: &Path) -> JobId {
    let id = e.create_job("test", ebb::JobType::Download).await.unwrap();
    e.add_files(id, vec![ebb::NewFile::new(url, dest)])
        .await
        .unwrap();
    e.resume(id).await.unwrap();
    id
}

/// Suspend once more than `bytes` have arrived; returns the bytes kept.
pub async fn suspend_after(e: &Engine, id: JobId, bytes: u64) -> u64 {
    wait_for(e, id, 20, |j| j.bytes_transferred > bytes).await;
    e.suspend(id).await.unwrap();
    e.job(id).await.unwrap().bytes_transferred
}

/// Resume, wait for Transferred, Complete.
pub async fn finish(e: &Engine, id: JobId) {
    e.resume(id).await.unwrap();
    wait_state(e, id, JobState::Transferred, 30).await;
    e.complete(id).await.unwrap();
}

/// The `ebb` binary built beside this test binary.
pub fn ebb_bin() -> PathBuf {
    let exe = std::env::current_exe().unwrap();
    let dir = exe.parent().and_then(Path::parent).unwrap();
    let bin = dir.join("ebb");
    assert!(
        bin.exists(),
        "{} is missing: run ./scripts/test.sh (it builds the binary first)",
        bin.display()
    );
    bin
}

/// The CLI on one data directory: embedded (the engine in the CLI process), or talking to a
/// daemon on its own socket.
pub struct Cli {
    pub data_dir: PathBuf,
    pub socket: PathBuf,
    embedded: bool,
}

impl Cli {
    pub fn new(dir: &Path) -> Self {
        Self {
            data_dir: dir.join("cli-data"),
            socket: dir.join("run").join("ebbd.sock"),
            embedded: true,
        }
    }

    /// The default mode: verbs go to `ebbd`, started on demand.
    pub fn daemon(dir: &Path) -> Self {
        Self {
            embedded: false,
            ..Self::new(dir)
        }
    }

    pub fn command(&self, args: &[&str]) -> Command {
        let mut c = Command::new(ebb_bin());
        c.args(args);
        self.apply_env(&mut c);
        c
    }

    /// `sh -c script` in a private mount namespace (no root needed where user namespaces are
    /// enabled), with this CLI's environment, `$EBB` naming the binary, and `env`.
    pub fn in_mount_namespace(&self, script: &str, env: &[(&str, &std::ffi::OsStr)]) -> Output {
        let mut unshare = Command::new("unshare");
        unshare.args(["--map-root-user", "--mount", "sh", "-c", script]);
        self.apply_env(&mut unshare);
        unshare.env("EBB", ebb_bin()).envs(env.iter().copied());
        unshare.output().unwrap()
    }

    /// The environment every `ebb` of this CLI runs with (also for wrappers such as `unshare`).
    pub fn apply_env(&self, c: &mut Command) {
        if self.embedded {
            c.env("EBB_EMBEDDED", "1");
        } else {
            c.env_remove("EBB_EMBEDDED");
        }
        c.env("EBB_DATA_DIR", &self.data_dir)
            .env("EBB_SOCKET", &self.socket)
            .env("EBB_SECRET_KEY", self.data_dir.with_extension("key"))
            .env("EBB_SECRET_STORE", "file")
            .env_remove("EBB_NO_AUTOSTART")
            .env("EBB_CHECKPOINT_BYTES", "65536")
            .env("EBB_CHECKPOINT_INTERVAL", "100ms")
            .env("EBB_CHUNK_TIMEOUT", "5s")
            .env_remove("EBB_LOG");
    }

    pub fn run(&self, args: &[&str]) -> Output {
        self.command(args).output().unwrap()
    }

    /// Run, expect success, return stdout.
    pub fn ok(&self, args: &[&str]) -> String {
        let out = self.run(args);
        assert!(
            out.status.success(),
            "ebb {args:?} failed: {}\nstderr: {}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    }

    pub fn json(&self, args: &[&str]) -> serde_json::Value {
        serde_json::from_str(&self.ok(args)).unwrap()
    }

    /// Poll `ebb info JOB --json` until `pred` holds (20 s at most); returns that document.
    /// Blocks the calling thread: use from multi-threaded tests only.
    pub fn poll_info(
        &self,
        job: &str,
        pred: impl Fn(&serde_json::Value) -> bool,
    ) -> serde_json::Value {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let j = self.json(&["info", job, "--json"]);
            if pred(&j) {
                return j;
            }
            assert!(Instant::now() < deadline, "condition not reached: {j}");
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

/// What a finished command said on stderr.
pub fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// The hidden temporary files in `dir`.
pub fn temp_files(dir: &Path) -> Vec<PathBuf> {
    std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| {
            p.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.starts_with(".ebb-"))
        })
        .collect()
}

/// The PID in the CLI's `started ebbd (pid N)` notice.
pub fn started_pid(stderr: &str) -> Option<u32> {
    let rest = stderr.split("started ebbd (pid ").nth(1)?;
    rest.split(')').next()?.parse().ok()
}

/// The autostarted daemon, stopped by PID when the test ends, however it ends.
pub struct Started(pub u32);

impl Drop for Started {
    fn drop(&mut self) {
        if Path::new(&format!("/proc/{}", self.0)).exists() {
            let _ = Command::new("kill")
                .args(["-KILL", &self.0.to_string()])
                .status();
        }
    }
}

/// SIGTERM the daemon and wait until it is gone.
pub fn stop_daemon(pid: u32) {
    let status = Command::new("kill")
        .args(["-TERM", &pid.to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let deadline = Instant::now() + Duration::from_secs(10);
    while Path::new(&format!("/proc/{pid}")).exists() {
        assert!(Instant::now() < deadline, "ebbd {pid} did not stop");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// A daemon this test started, killed (by its PID) when the test ends, however it ends.
pub struct Reaped(pub std::process::Child);

impl Drop for Reaped {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// The real `ebbd`, on its own socket and data directory, logging to `ebbd.log` there.
pub fn spawn_ebbd(dir: &Path, args: &[&str]) -> Reaped {
    let bin = ebb_bin().with_file_name("ebbd");
    let log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(dir.join("ebbd.log"))
        .unwrap();
    let child = Command::new(bin)
        .arg("--foreground")
        .args(args)
        .env("EBB_DATA_DIR", dir.join("data"))
        .env("EBB_SOCKET", dir.join("run/ebbd.sock"))
        .env("EBB_SECRET_STORE", "file")
        .env("EBB_CHECKPOINT_BYTES", "65536")
        .env("EBB_CHECKPOINT_INTERVAL", "100ms")
        .env("EBB_LOG", "warn")
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(log)
        .spawn()
        .unwrap();
    let child = Reaped(child);
    let deadline = Instant::now() + Duration::from_secs(10);
    while std::os::unix::net::UnixStream::connect(dir.join("run/ebbd.sock")).is_err() {
        assert!(Instant::now() < deadline, "ebbd did not come up");
        std::thread::sleep(Duration::from_millis(20));
    }
    child
}

//! A private PostgreSQL server for a test: `initdb` in a temporary directory, then `postgres`
//! itself as this process's child (not `pg_ctl`, which would leave it to no one), on a free
//! port of 127.0.0.1 and a private socket directory; stopped by its PID when dropped. As root
//! (CI) both run as the `postgres` user, which PostgreSQL requires. `.ci/run` installs it.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub struct Postgres {
    child: Child,
    pub port: u16,
    dir: tempfile::TempDir,
    bin: PathBuf,
    as_root: bool,
    /// `-c name=value` settings of the server.
    settings: Vec<String>,
}

impl Postgres {
    pub async fn start() -> Self {
        Self::start_with(None).await
    }

    /// A server that also speaks TLS, with this certificate and key (PEM).
    pub async fn start_tls(cert_pem: &str, key_pem: &str) -> Self {
        Self::start_with(Some((cert_pem, key_pem))).await
    }

    async fn start_with(tls: Option<(&str, &str)>) -> Self {
        let bin = binaries();
        let dir = tempfile::tempdir().unwrap();
        let (data, sock) = (dir.path().join("data"), dir.path().join("sock"));
        std::fs::create_dir(&sock).unwrap();
        let as_root = running_as_root();
        if as_root {
            for p in [dir.path(), &sock] {
                chown_to_postgres(p);
            }
        }
        let initdb = run_as(as_root, &bin.join("initdb"))
            .args([
                "-D",
                path(&data),
                "-U",
                "ebb",
                "--auth=trust",
                "-E",
                "UTF8",
                "--no-sync",
            ])
            .stdout(Stdio::null())
            .output()
            .unwrap();
        assert!(
            initdb.status.success(),
            "initdb: {}",
            String::from_utf8_lossy(&initdb.stderr)
        );
        let port = free_port();
        let mut settings = vec![
            "listen_addresses=127.0.0.1".to_owned(),
            "fsync=off".to_owned(),
        ];
        if let Some((cert, key)) = tls {
            let (cert_file, key_file) =
                (dir.path().join("server.crt"), dir.path().join("server.key"));
            std::fs::write(&cert_file, cert).unwrap();
            std::fs::write(&key_file, key).unwrap();
            // PostgreSQL takes only a key its own user alone may read.
            std::fs::set_permissions(
                &key_file,
                std::os::unix::fs::PermissionsExt::from_mode(0o600),
            )
            .unwrap();
            if as_root {
                chown_to_postgres(&cert_file);
                chown_to_postgres(&key_file);
            }
            settings.push("ssl=on".to_owned());
            settings.push(format!("ssl_cert_file={}", path(&cert_file)));
            settings.push(format!("ssl_key_file={}", path(&key_file)));
        }
        let child = spawn(&bin, as_root, dir.path(), port, &settings);
        let pg = Self {
            child,
            port,
            dir,
            bin,
            as_root,
            settings,
        };
        pg.wait_ready().await;
        pg
    }

    /// Stop the server (a fast shutdown: its clients' connections are closed) and start it
    /// again on the same data and port, as a restart or a failover would.
    pub async fn restart(&mut self) {
        self.stop();
        self.child = spawn(
            &self.bin,
            self.as_root,
            self.dir.path(),
            self.port,
            &self.settings,
        );
        self.wait_ready().await;
    }

    /// Connection parameters for database `db` (created by [`Postgres::create_db`]).
    pub fn params(&self, db: &str) -> String {
        format!("host=127.0.0.1 port={} user=ebb dbname={db}", self.port)
    }

    pub async fn create_db(&self, db: &str) {
        let client = self.connect("postgres").await.unwrap();
        client
            .batch_execute(&format!("CREATE DATABASE {db}"))
            .await
            .unwrap();
    }

    async fn connect(&self, db: &str) -> Result<tokio_postgres::Client, tokio_postgres::Error> {
        let (client, connection) =
            tokio_postgres::connect(&self.params(db), tokio_postgres::NoTls).await?;
        tokio::spawn(connection);
        Ok(client)
    }

    async fn wait_ready(&self) {
        let start = Instant::now();
        loop {
            match self.connect("postgres").await {
                Ok(c) if c.simple_query("SELECT 1").await.is_ok() => return,
                _ if start.elapsed() > Duration::from_secs(60) => panic!(
                    "PostgreSQL did not start: {}",
                    std::fs::read_to_string(self.dir.path().join("postgres.log"))
                        .unwrap_or_default()
                ),
                _ => tokio::time::sleep(Duration::from_millis(100)).await,
            }
        }
    }
}

impl Drop for Postgres {
    fn drop(&mut self) {
        self.stop();
    }
}

impl Postgres {
    /// A fast shutdown of our own server, by its PID.
    fn stop(&mut self) {
        let _ = Command::new("kill")
            .args(["-INT", &self.child.id().to_string()])
            .status();
        let start = Instant::now();
        while start.elapsed() < Duration::from_secs(10) {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `postgres` on the data of `dir`, as our child, logging to `postgres.log` there.
fn spawn(bin: &Path, as_root: bool, dir: &Path, port: u16, settings: &[String]) -> Child {
    let log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(dir.join("postgres.log"))
        .unwrap();
    let (data, sock) = (dir.join("data"), dir.join("sock"));
    run_as(as_root, &bin.join("postgres"))
        .args([
            "-D",
            path(&data),
            "-k",
            path(&sock),
            "-p",
            &port.to_string(),
        ])
        .args(settings.iter().flat_map(|s| ["-c", s.as_str()]))
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .unwrap()
}

/// The newest PostgreSQL's programs, as Debian installs them.
fn binaries() -> PathBuf {
    let mut found: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
        .map(|d| {
            d.filter_map(|e| e.ok().map(|e| e.path().join("bin")))
                .collect()
        })
        .unwrap_or_default();
    found.retain(|b| b.join("initdb").exists() && b.join("postgres").exists());
    found.sort_by_key(|b| {
        b.parent()
            .and_then(|v| v.file_name()?.to_str()?.parse::<u32>().ok())
            .unwrap_or(0)
    });
    found.pop().unwrap_or_else(|| {
        panic!("PostgreSQL is not installed (Debian's postgresql): `.ci/run` installs it")
    })
}

fn run_as(as_root: bool, program: &Path) -> Command {
    if as_root {
        let mut c = Command::new("setpriv");
        c.args(["--reuid=postgres", "--regid=postgres", "--clear-groups"])
            .arg(program);
        c
    } else {
        Command::new(program)
    }
}

fn running_as_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
}

fn chown_to_postgres(p: &Path) {
    let status = Command::new("chown")
        .args(["postgres:postgres", path(p)])
        .status()
        .unwrap();
    assert!(status.success(), "chown {}", p.display());
}

pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn path(p: &Path) -> &str {
    p.to_str().unwrap()
}

//! The reference tus server for a test: `@tus/server` over `@tus/file-store` on Node.js
//! (`tests/tools/tus`, pinned by its lockfile, installed by `scripts/test.sh`), as this
//! process's child on a free port of 127.0.0.1, storing into a temporary directory; stopped by
//! its PID when dropped.

use std::io::BufRead;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use super::Reaped;

pub struct Tusd {
    _child: Reaped,
    pub port: u16,
    pub dir: tempfile::TempDir,
}

impl Tusd {
    pub fn start() -> Self {
        let tools = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/tools/tus");
        assert!(
            tools.join("node_modules/@tus/server").is_dir(),
            "@tus/server is not installed in {}: scripts/test.sh (which .ci/run calls) installs it",
            tools.display()
        );
        let dir = tempfile::tempdir().unwrap();
        let mut child = Command::new("node")
            .arg(tools.join("server.mjs"))
            .arg(dir.path())
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("node: scripts/test.sh installs it");
        let stdout = child.stdout.take().unwrap();
        let child = Reaped(child);
        let mut line = String::new();
        std::io::BufReader::new(stdout)
            .read_line(&mut line)
            .unwrap();
        let port = line
            .trim()
            .strip_prefix("listening ")
            .and_then(|p| p.parse().ok())
            .unwrap_or_else(|| panic!("@tus/server said {line:?}"));
        Self {
            _child: child,
            port,
            dir,
        }
    }

    /// The endpoint ebb uploads to.
    pub fn url(&self) -> String {
        format!("tus+http://127.0.0.1:{}/files/", self.port)
    }

    /// The uploads the server holds (each file's bytes; its `.json` info files left out).
    pub fn uploads(&self) -> Vec<PathBuf> {
        std::fs::read_dir(self.dir.path())
            .unwrap()
            .map(|e| e.unwrap().path())
            .filter(|p| p.extension().is_none())
            .collect()
    }
}

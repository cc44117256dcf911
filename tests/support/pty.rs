//! `ebb` under a pseudo-terminal (util-linux's `script`), as a person at a terminal runs it:
//! what it draws there, and Ctrl-C typed on that terminal (the line discipline turns it into
//! SIGINT for the foreground process group, as a real terminal does).

use std::io::{Read, Write};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use super::{Cli, ebb_bin};

pub struct Pty {
    child: Child,
    stdin: ChildStdin,
    seen: Arc<Mutex<Vec<u8>>>,
}

/// One word for `sh -c`, quoted.
fn quote(word: &str) -> String {
    format!("'{}'", word.replace('\'', r"'\''"))
}

impl Pty {
    /// Run `ebb ARGS` with `cli`'s environment on a fresh terminal, 120 columns wide.
    pub fn spawn(cli: &Cli, args: &[&str]) -> Self {
        let ebb = ebb_bin();
        let words: Vec<String> = std::iter::once(ebb.to_str().unwrap())
            .chain(args.iter().copied())
            .map(quote)
            .collect();
        let line = format!("stty cols 120 rows 40; exec {}", words.join(" "));
        let mut c = Command::new("script");
        c.args(["-qfec", &line, "/dev/null"]);
        cli.apply_env(&mut c);
        c.env("TERM", "xterm-256color")
            .env("SHELL", "/bin/sh")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null());
        let mut child = c.spawn().expect("script(1) from util-linux runs");
        let stdin = child.stdin.take().unwrap();
        let mut stdout = child.stdout.take().unwrap();
        let seen = Arc::new(Mutex::new(Vec::new()));
        let sink = seen.clone();
        std::thread::spawn(move || {
            let mut buf = [0u8; 4096];
            while let Ok(n) = stdout.read(&mut buf) {
                if n == 0 {
                    break;
                }
                sink.lock().unwrap().extend_from_slice(&buf[..n]);
            }
        });
        Self { child, stdin, seen }
    }

    /// Everything drawn so far, as text.
    pub fn screen(&self) -> String {
        String::from_utf8_lossy(&self.seen.lock().unwrap()).into_owned()
    }

    /// Wait (20 s at most) until the terminal shows something `pred` accepts.
    pub fn wait_for(&self, what: &str, pred: impl Fn(&str) -> bool) -> String {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let screen = self.screen();
            if pred(&screen) {
                return screen;
            }
            assert!(
                Instant::now() < deadline,
                "the terminal never showed {what}:\n{screen}"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Type Ctrl-C on the terminal.
    pub fn ctrl_c(&mut self) {
        self.stdin.write_all(b"\x03").unwrap();
        self.stdin.flush().unwrap();
    }

    /// Wait (20 s at most) for the program to end: its exit code and all it drew.
    pub fn finish(mut self) -> (Option<i32>, String) {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                // Let the reader drain what is left.
                std::thread::sleep(Duration::from_millis(100));
                return (status.code(), self.screen());
            }
            if Instant::now() >= deadline {
                let _ = self.child.kill();
                panic!("still running after 20 s:\n{}", self.screen());
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

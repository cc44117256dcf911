//! A small HTTP/1.1 file server on 127.0.0.1 for the backend suite: GET and HEAD, byte ranges,
//! 404 for unknown paths, an optional pace, and a log of every request's headers. Plain threads,
//! so that it runs the same on Linux and under Wine.

use std::collections::HashMap;
use std::fmt::Write as _;
use std::io::{BufRead, BufReader, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::{Arc, Mutex};
use std::time::Duration;

#[derive(Clone)]
struct Resource {
    body: Arc<Vec<u8>>,
    /// Bytes per second, if paced.
    rate: Option<usize>,
}

#[derive(Default)]
struct Shared {
    files: HashMap<String, Resource>,
    /// (path, lower-cased header name, value) of every request.
    seen: Vec<(String, String, String)>,
}

pub struct Server {
    port: u16,
    shared: Arc<Mutex<Shared>>,
}

impl Server {
    pub fn start() -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let shared = Arc::new(Mutex::new(Shared::default()));
        let s = shared.clone();
        std::thread::spawn(move || {
            for stream in listener.incoming().flatten() {
                let s = s.clone();
                std::thread::spawn(move || {
                    let _ = serve(stream, &s);
                });
            }
        });
        Self { port, shared }
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }

    pub fn put(&self, path: &str, body: Vec<u8>) {
        self.insert(path, body, None);
    }

    pub fn put_slow(&self, path: &str, body: Vec<u8>, bytes_per_sec: usize) {
        self.insert(path, body, Some(bytes_per_sec));
    }

    fn insert(&self, path: &str, body: Vec<u8>, rate: Option<usize>) {
        self.shared.lock().unwrap().files.insert(
            path.to_owned(),
            Resource {
                body: Arc::new(body),
                rate,
            },
        );
    }

    /// Values of header `name` (lower case) in requests for `path`.
    pub fn header_values(&self, path: &str, name: &str) -> Vec<String> {
        self.shared
            .lock()
            .unwrap()
            .seen
            .iter()
            .filter(|(p, n, _)| p == path && n == name)
            .map(|(_, _, v)| v.clone())
            .collect()
    }
}

fn serve(stream: TcpStream, shared: &Mutex<Shared>) -> std::io::Result<()> {
    let mut reader = BufReader::new(stream.try_clone()?);
    let mut out = stream;
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line)? == 0 {
            return Ok(());
        }
        let mut words = line.split_whitespace();
        let (method, path) = (
            words.next().unwrap_or("").to_owned(),
            words.next().unwrap_or("").to_owned(),
        );
        let mut range = None;
        loop {
            let mut h = String::new();
            if reader.read_line(&mut h)? == 0 || h.trim().is_empty() {
                break;
            }
            if let Some((n, v)) = h.split_once(':') {
                let (n, v) = (n.trim().to_ascii_lowercase(), v.trim().to_owned());
                if n == "range" {
                    range = Some(v.clone());
                }
                shared.lock().unwrap().seen.push((path.clone(), n, v));
            }
        }
        let resource = shared.lock().unwrap().files.get(&path).cloned();
        let Some(r) = resource else {
            out.write_all(b"HTTP/1.1 404 Not Found\r\ncontent-length: 0\r\n\r\n")?;
            continue;
        };
        let total = r.body.len();
        let (start, end, status) = match range.as_deref().and_then(parse_range) {
            Some((a, b)) if a < total => (a, b.map_or(total, |b| (b + 1).min(total)), 206),
            _ => (0, total, 200),
        };
        let mut head = format!(
            "HTTP/1.1 {status} {}\r\ncontent-length: {}\r\naccept-ranges: bytes\r\nlast-modified: Tue, 24 Nov 2026 00:00:00 GMT\r\netag: \"e{total}\"\r\n",
            if status == 206 {
                "Partial Content"
            } else {
                "OK"
            },
            end - start
        );
        if status == 206 {
            let _ = write!(head, "content-range: bytes {start}-{}/{total}\r\n", end - 1);
        }
        head.push_str("\r\n");
        out.write_all(head.as_bytes())?;
        if method == "HEAD" {
            continue;
        }
        let slice = &r.body[start..end];
        match r.rate {
            None => out.write_all(slice)?,
            Some(rate) => {
                let piece = (rate / 10).max(1);
                for chunk in slice.chunks(piece) {
                    out.write_all(chunk)?;
                    std::thread::sleep(Duration::from_millis(100));
                }
            }
        }
    }
}

/// `bytes=A-` or `bytes=A-B`.
fn parse_range(v: &str) -> Option<(usize, Option<usize>)> {
    let (a, b) = v.strip_prefix("bytes=")?.split_once('-')?;
    Some((a.parse().ok()?, b.parse().ok()))
}

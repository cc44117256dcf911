//! The harness of ebb-server's tests: a server in this process or the binary, and raw
//! HTTP/1.1 requests written by hand, one connection each.
#![allow(dead_code)]

pub mod farm;
pub mod moto;
pub mod postgres;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use ebb_server::{App, ServerConfig};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

pub const GUID: &str = "{7df0354d-249b-430f-820d-3d2a9bef4931}";

/// A server in this process, on a free port.
pub struct Server {
    pub peer: Peer,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    task: tokio::task::JoinHandle<()>,
}

/// Where packets go.
pub struct Peer {
    pub addr: SocketAddr,
    /// Speak HTTPS, trusting this configuration's roots.
    pub tls: Option<Arc<rustls::ClientConfig>>,
}

impl std::ops::Deref for Server {
    type Target = Peer;
    fn deref(&self) -> &Peer {
        &self.peer
    }
}

impl Server {
    pub async fn start(config: ServerConfig) -> Self {
        let app = App::open(config).await.unwrap();
        Self::on(app).await
    }

    pub async fn on(app: Arc<App>) -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let task = tokio::spawn(async move {
            app.serve(listener, async {
                let _ = stopped.await;
            })
            .await
            .unwrap();
        });
        Self {
            peer: Peer { addr, tls: None },
            stop: Some(stop),
            task,
        }
    }

    pub async fn stop(mut self) {
        let _ = self.stop.take().map(|s| s.send(()));
        let _ = (&mut self.task).await;
    }
}

impl Peer {
    /// One raw request; returns the status, headers (lower-case names) and body.
    pub async fn raw(&self, request: &[u8]) -> Reply {
        let mut s = tokio::net::TcpStream::connect(self.addr).await.unwrap();
        let mut bytes = Vec::new();
        if let Some(config) = &self.tls {
            let name = rustls::pki_types::ServerName::from(self.addr.ip());
            let connector = tokio_rustls::TlsConnector::from(config.clone());
            let mut s = connector.connect(name, s).await.unwrap();
            s.write_all(request).await.unwrap();
            // The server closes without a TLS close_notify at times; what came is enough.
            let _ = s.read_to_end(&mut bytes).await;
        } else {
            s.write_all(request).await.unwrap();
            s.read_to_end(&mut bytes).await.unwrap();
        }
        Reply::parse(&bytes)
    }

    /// A `BITS_POST` of `packet` to `path`, with extra header lines and a body.
    pub async fn post(&self, path: &str, packet: &str, extra: &[&str], body: &[u8]) -> Reply {
        let mut head = format!(
            "BITS_POST {path} HTTP/1.1\r\nHost: {}\r\nConnection: close\r\nBITS-Packet-Type: {packet}\r\nContent-Length: {}\r\n",
            self.addr,
            body.len()
        );
        for line in extra {
            head.push_str(line);
            head.push_str("\r\n");
        }
        head.push_str("\r\n");
        let mut request = head.into_bytes();
        request.extend_from_slice(body);
        self.raw(&request).await
    }

    pub async fn create(&self, path: &str) -> String {
        let r = self
            .post(
                path,
                "Create-Session",
                &[
                    &format!("BITS-Supported-Protocols: {GUID}"),
                    "Content-Name: x",
                ],
                b"",
            )
            .await;
        assert_eq!(r.status, 200, "{r:?}");
        r.header("bits-session-id").unwrap().to_owned()
    }

    pub async fn close(&self, path: &str, id: &str) -> Reply {
        self.post(
            path,
            "Close-Session",
            &[&format!("BITS-Session-Id: {id}")],
            b"",
        )
        .await
    }

    pub async fn fragment(
        &self,
        path: &str,
        id: &str,
        first: u64,
        data: &[u8],
        total: u64,
    ) -> Reply {
        let last = first + data.len() as u64 - 1;
        self.post(
            path,
            "Fragment",
            &[
                &format!("BITS-Session-Id: {id}"),
                &format!("Content-Range: bytes {first}-{last}/{total}"),
            ],
            data,
        )
        .await
    }
}

#[derive(Debug)]
pub struct Reply {
    pub status: u16,
    pub headers: HashMap<String, String>,
    pub body: Vec<u8>,
}

impl Reply {
    pub fn parse(bytes: &[u8]) -> Self {
        let end = bytes
            .windows(4)
            .position(|w| w == b"\r\n\r\n")
            .expect("a complete response head");
        let head = String::from_utf8_lossy(&bytes[..end]);
        let mut lines = head.split("\r\n");
        let status = lines
            .next()
            .unwrap()
            .split(' ')
            .nth(1)
            .unwrap()
            .parse()
            .unwrap();
        let headers = lines
            .filter_map(|l| l.split_once(':'))
            .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_owned()))
            .collect();
        Self {
            status,
            headers,
            body: bytes[end + 4..].to_vec(),
        }
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).map(String::as_str)
    }

    /// An Ack of `status` with this BITS error code under both names, from the server (0x5).
    pub fn assert_error(&self, status: u16, code: &str) {
        assert_eq!(self.status, status, "{self:?}");
        assert_eq!(self.header("bits-packet-type"), Some("Ack"), "{self:?}");
        assert_eq!(self.header("bits-error-code"), Some(code), "{self:?}");
        assert_eq!(self.header("bits-error"), Some(code), "{self:?}");
        assert_eq!(self.header("bits-error-context"), Some("0x5"), "{self:?}");
    }
}

pub fn data(n: usize, seed: u8) -> Vec<u8> {
    (0..n)
        .map(|i| (i as u8).wrapping_mul(31).wrapping_add(seed))
        .collect()
}

pub fn root(dir: &Path) -> PathBuf {
    let root = dir.join("root");
    std::fs::create_dir_all(root.join("up")).unwrap();
    root
}

pub fn config(root: &Path) -> ServerConfig {
    ServerConfig::root(root, "127.0.0.1:0".parse().unwrap())
}

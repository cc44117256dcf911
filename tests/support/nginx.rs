//! A private nginx on 127.0.0.1 (`.ci/run` installs it). Runs as our child, single process, so
//! that we stop exactly the process we started.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub struct Nginx {
    pub port: u16,
    scheme: &'static str,
    pub root: PathBuf,
    log: PathBuf,
    child: Child,
    _dir: tempfile::TempDir,
}

fn nginx_binary() -> PathBuf {
    for candidate in ["/usr/sbin/nginx", "/usr/local/sbin/nginx", "/usr/bin/nginx"] {
        if Path::new(candidate).exists() {
            return candidate.into();
        }
    }
    panic!("nginx is not installed: `.ci/run` installs it (apt-get install nginx)");
}

impl Nginx {
    pub fn start() -> Self {
        Self::start_with(None)
    }

    /// Over HTTPS with HTTP/2 offered (ALPN), presenting this certificate and key (PEM).
    pub fn start_tls(cert_pem: &str, key_pem: &str) -> Self {
        Self::start_with(Some((cert_pem, key_pem)))
    }

    fn start_with(tls: Option<(&str, &str)>) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let listen = match tls {
            None => String::new(),
            Some((cert, key)) => {
                let (c, k) = (dir.path().join("cert.pem"), dir.path().join("key.pem"));
                std::fs::write(&c, cert).unwrap();
                std::fs::write(&k, key).unwrap();
                format!(
                    " ssl http2;\n        ssl_certificate {};\n        ssl_certificate_key {}",
                    c.display(),
                    k.display()
                )
            }
        };
        let scheme = if tls.is_some() { "https" } else { "http" };
        let root = dir.path().join("www");
        std::fs::create_dir_all(&root).unwrap();
        let log = dir.path().join("access.log");
        for _ in 0..20 {
            let port = std::net::TcpListener::bind("127.0.0.1:0")
                .unwrap()
                .local_addr()
                .unwrap()
                .port();
            let conf = dir.path().join("nginx.conf");
            std::fs::write(&conf, config(dir.path(), port, &listen, &log, &root)).unwrap();
            let mut child = Command::new(nginx_binary())
                .arg("-c")
                .arg(&conf)
                .arg("-p")
                .arg(dir.path())
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .unwrap();
            let deadline = Instant::now() + Duration::from_secs(5);
            while Instant::now() < deadline {
                if let Ok(Some(_)) = child.try_wait() {
                    break; // port taken: try another
                }
                if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
                    return Self {
                        port,
                        scheme,
                        root,
                        log,
                        child,
                        _dir: dir,
                    };
                }
                std::thread::sleep(Duration::from_millis(20));
            }
            let _ = child.kill();
            let _ = child.wait();
        }
        panic!("nginx did not start");
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}://127.0.0.1:{}{path}", self.scheme, self.port)
    }

    /// Access-log lines for `uri`: `uri status range="..." ifrange="..." body=N proto=P conn=C`.
    pub fn log(&self, uri: &str) -> Vec<String> {
        std::fs::read_to_string(&self.log)
            .unwrap_or_default()
            .lines()
            .filter(|l| l.split(' ').next() == Some(uri))
            .map(str::to_owned)
            .collect()
    }
}

impl Drop for Nginx {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The configuration of one private nginx on `port`.
fn config(d: &Path, port: u16, listen: &str, log: &Path, root: &Path) -> String {
    format!(
        r#"daemon off;
master_process off;
worker_processes 1;
pid {d}/nginx.pid;
error_log {d}/error.log warn;
events {{ worker_connections 128; }}
http {{
    default_type application/octet-stream;
    log_format xfer '$uri $status range="$http_range" ifrange="$http_if_range" body=$body_bytes_sent proto=$server_protocol conn=$connection';
    access_log {log} xfer;
    client_body_temp_path {d}/body;
    proxy_temp_path {d}/proxy;
    fastcgi_temp_path {d}/fastcgi;
    uwsgi_temp_path {d}/uwsgi;
    scgi_temp_path {d}/scgi;
    server {{
        listen 127.0.0.1:{port}{listen};
        root {root};
        location /slow/ {{ alias {root}/; limit_rate 2m; }}
    }}
}}
"#,
        d = d.display(),
        log = log.display(),
        root = root.display(),
    )
}

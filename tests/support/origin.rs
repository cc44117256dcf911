//! An HTTP/1.1 origin we control byte by byte: Range, If-Range, ETag, and every way a server can
//! misbehave (ignore ranges, lie in Content-Range, compress a 206, error statuses, stall, reset,
//! truncate). Hand-written on tokio so that a fault can land at an exact byte.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// A connection the origin serves: plain TCP or TLS over TCP.
pub trait Conn: AsyncRead + AsyncWrite + Unpin + Send {
    /// Make the next close a reset (RST) instead of a FIN.
    fn reset_on_close(&self);
}

impl Conn for TcpStream {
    fn reset_on_close(&self) {
        let _ = socket2::SockRef::from(self).set_linger(Some(Duration::ZERO));
    }
}

impl Conn for tokio_rustls::server::TlsStream<TcpStream> {
    fn reset_on_close(&self) {
        self.get_ref().0.reset_on_close();
    }
}

/// A way to misbehave.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Fault {
    /// Answer with this status (and `Retry-After`, if given) instead of the file.
    Status(u16, Option<String>),
    /// Send this many body bytes, then nothing while the connection stays open.
    StallAfter(u64),
    /// Send this many body bytes, then reset the connection (RST).
    ResetAfter(u64),
    /// Send this many body bytes, then close cleanly (short of Content-Length).
    TruncateAfter(u64),
    /// Answer a ranged request with 200 and the whole file.
    IgnoreRange,
    /// Answer a ranged request with a 206 whose Content-Range starts 7 bytes later than asked.
    LieContentRange,
    /// Mark a 206 as `Content-Encoding: gzip`.
    Gzip206,
    /// Answer 416 to a ranged request.
    Refuse416,
    /// A 206 whose Content-Range gives the total as unknown (`bytes a-b/*`).
    UnknownTotal206,
    /// A 206 whose headers name the asked-for range but whose body starts at byte 0.
    ShiftedBody206,
}

#[derive(Clone, Debug, Default)]
pub struct Resource {
    pub body: Vec<u8>,
    pub etag: Option<String>,
    pub last_modified: Option<String>,
    /// Applied to the next `fault_times` requests (0 = every request).
    pub fault: Option<Fault>,
    pub fault_times: u32,
    /// Send without Content-Length (chunked).
    pub chunked: bool,
    /// Bytes per second for the body.
    pub rate: Option<u64>,
    /// Answer 302 to this location.
    pub redirect_to: Option<String>,
    /// `user:password` the request must carry as Basic credentials.
    pub basic_auth: Option<String>,
    /// Send `Repr-Digest: sha-256=:...:` of the body.
    pub repr_digest: bool,
    /// Send no Content-Length: the body ends when the connection closes.
    pub close_delimited: bool,
}

impl Resource {
    pub fn new(body: Vec<u8>) -> Self {
        let etag = Some(format!("\"{:x}-{}\"", checksum(&body), body.len()));
        Self {
            body,
            etag,
            last_modified: Some("Tue, 24 Nov 2026 01:00:00 GMT".into()),
            ..Self::default()
        }
    }

    pub fn rate(mut self, bytes_per_sec: u64) -> Self {
        self.rate = Some(bytes_per_sec);
        self
    }

    pub fn fault(mut self, fault: Fault, times: u32) -> Self {
        self.fault = Some(fault);
        self.fault_times = times;
        self
    }
}

fn checksum(b: &[u8]) -> u64 {
    b.iter().fold(0xcbf2_9ce4_8422_2325_u64, |h, &x| {
        (h ^ u64::from(x)).wrapping_mul(0x100_0000_01b3)
    })
}

/// One request as the origin saw it.
#[derive(Clone, Debug)]
pub struct Logged {
    pub path: String,
    pub range: Option<String>,
    pub if_range: Option<String>,
    pub headers: HashMap<String, String>,
    pub status: u16,
    pub at: Instant,
}

#[derive(Default)]
struct State {
    files: HashMap<String, Resource>,
    log: Vec<Logged>,
}

pub struct Origin {
    pub addr: SocketAddr,
    scheme: &'static str,
    state: Arc<Mutex<State>>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Origin {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl Origin {
    pub async fn start() -> Self {
        Self::listen(None).await
    }

    /// The same origin over HTTPS, with a self-signed certificate for 127.0.0.1.
    pub async fn start_tls() -> Self {
        let cert = rcgen::generate_simple_self_signed(vec!["127.0.0.1".to_owned()]).unwrap();
        let key = rustls::pki_types::PrivateKeyDer::Pkcs8(cert.signing_key.serialize_der().into());
        Self::start_tls_with(vec![cert.cert.der().clone()], key).await
    }

    /// The same origin over HTTPS, presenting this chain (leaf first).
    pub async fn start_tls_with(
        chain: Vec<rustls::pki_types::CertificateDer<'static>>,
        key: rustls::pki_types::PrivateKeyDer<'static>,
    ) -> Self {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let config = rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_no_client_auth()
            .with_single_cert(chain, key)
            .unwrap();
        Self::listen(Some(tokio_rustls::TlsAcceptor::from(Arc::new(config)))).await
    }

    async fn listen(tls: Option<tokio_rustls::TlsAcceptor>) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let state = Arc::new(Mutex::new(State::default()));
        let shared = state.clone();
        let scheme = if tls.is_some() { "https" } else { "http" };
        let task = tokio::spawn(async move {
            loop {
                let Ok((sock, _)) = listener.accept().await else {
                    return;
                };
                let shared = shared.clone();
                match tls.clone() {
                    None => {
                        tokio::spawn(serve(sock, shared));
                    }
                    Some(acceptor) => {
                        tokio::spawn(async move {
                            if let Ok(stream) = acceptor.accept(sock).await {
                                serve(stream, shared).await;
                            }
                        });
                    }
                }
            }
        });
        Self {
            addr,
            scheme,
            state,
            task,
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}://{}{path}", self.scheme, self.addr)
    }

    pub fn put(&self, path: &str, r: Resource) {
        self.state.lock().unwrap().files.insert(path.to_owned(), r);
    }

    pub fn update(&self, path: &str, f: impl FnOnce(&mut Resource)) {
        f(self.state.lock().unwrap().files.get_mut(path).unwrap());
    }

    pub fn log(&self, path: &str) -> Vec<Logged> {
        self.state
            .lock()
            .unwrap()
            .log
            .iter()
            .filter(|l| l.path == path)
            .cloned()
            .collect()
    }
}

async fn read_head<S: Conn>(sock: &mut S, buf: &mut Vec<u8>) -> Option<String> {
    loop {
        if let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            let head = String::from_utf8_lossy(&buf[..end]).into_owned();
            buf.drain(..end + 4);
            return Some(head);
        }
        let mut chunk = [0u8; 4096];
        let n = sock.read(&mut chunk).await.ok()?;
        if n == 0 {
            return None;
        }
        buf.extend_from_slice(&chunk[..n]);
    }
}

async fn serve<S: Conn>(mut sock: S, state: Arc<Mutex<State>>) {
    let mut buf = Vec::new();
    while let Some(head) = read_head(&mut sock, &mut buf).await {
        let mut lines = head.split("\r\n");
        let request = lines.next().unwrap_or_default().to_owned();
        let path = request
            .split(' ')
            .nth(1)
            .unwrap_or("/")
            .split('?')
            .next()
            .unwrap_or("/")
            .to_owned();
        let headers: HashMap<String, String> = lines
            .filter_map(|l| l.split_once(':'))
            .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_owned()))
            .collect();
        if !respond(&mut sock, &state, path, headers).await {
            return;
        }
    }
}

fn parse_range(h: &str, len: u64) -> Option<(u64, u64)> {
    let spec = h.strip_prefix("bytes=")?;
    let (a, b) = spec.split_once('-')?;
    let start: u64 = a.parse().ok()?;
    let end = if b.is_empty() {
        len.checked_sub(1)?
    } else {
        b.parse::<u64>().ok()?.min(len.checked_sub(1)?)
    };
    (start <= end).then_some((start, end))
}

/// Answer one request; `false` when the connection must end.
async fn respond<S: Conn>(
    sock: &mut S,
    state: &Mutex<State>,
    path: String,
    headers: HashMap<String, String>,
) -> bool {
    let (res, fault) = take_fault(state, &path);
    let range = headers.get("range").cloned();
    let if_range = headers.get("if-range").cloned();
    let log = |status: u16| {
        state.lock().unwrap().log.push(Logged {
            path: path.clone(),
            range: range.clone(),
            if_range: if_range.clone(),
            headers: headers.clone(),
            status,
            at: Instant::now(),
        });
    };
    let Some(res) = res else {
        log(404);
        return send_simple(sock, 404, "", b"not found").await;
    };
    if let Some((status, extra, body)) = refusal(&res, fault.as_ref(), &headers) {
        log(status);
        return send_simple(sock, status, &extra, body).await;
    }
    let len = res.body.len() as u64;
    let validators_match = if_range
        .as_ref()
        .is_none_or(|v| Some(v) == res.etag.as_ref() || Some(v) == res.last_modified.as_ref());
    let wanted = range
        .as_deref()
        .filter(|_| validators_match && fault != Some(Fault::IgnoreRange));
    let mut extra = validator_headers(&res);
    let Some((status, start, end)) = span(wanted, len, fault.as_ref(), &mut extra) else {
        log(416);
        return send_simple(sock, 416, &format!("Content-Range: bytes */{len}\r\n"), b"").await;
    };
    log(status);
    let body = if fault == Some(Fault::ShiftedBody206) {
        &res.body[..(end - start) as usize]
    } else {
        &res.body[start as usize..end as usize]
    };
    send_body(sock, &res, status, &extra, body, fault.as_ref()).await
}

/// The resource at `path` and the fault for this request (counting it down).
fn take_fault(state: &Mutex<State>, path: &str) -> (Option<Resource>, Option<Fault>) {
    let mut st = state.lock().unwrap();
    let fault = st.files.get_mut(path).and_then(|r| {
        let f = r.fault.clone()?;
        if r.fault_times > 0 {
            r.fault_times -= 1;
            if r.fault_times == 0 {
                r.fault = None;
            }
        }
        Some(f)
    });
    (st.files.get(path).cloned(), fault)
}

/// An answer that is not the file: a challenge, a redirect, or a faulty status.
fn refusal(
    res: &Resource,
    fault: Option<&Fault>,
    headers: &HashMap<String, String>,
) -> Option<(u16, String, &'static [u8])> {
    if let Some(expected) = &res.basic_auth {
        let want = format!("Basic {}", base64_encode(expected.as_bytes()));
        if headers.get("authorization") != Some(&want) {
            let challenge = "WWW-Authenticate: Basic realm=\"ebb\"\r\n".to_owned();
            return Some((401, challenge, b"who are you"));
        }
    }
    if let Some(to) = &res.redirect_to {
        return Some((302, format!("Location: {to}\r\n"), b""));
    }
    if let Some(Fault::Status(code, retry_after)) = fault {
        let extra = retry_after
            .as_ref()
            .map(|r| format!("Retry-After: {r}\r\n"))
            .unwrap_or_default();
        return Some((*code, extra, b"fault"));
    }
    None
}

/// ETag, Last-Modified, Accept-Ranges and (if asked) Repr-Digest.
fn validator_headers(res: &Resource) -> String {
    let mut extra = String::new();
    if let Some(e) = &res.etag {
        extra += &format!("ETag: {e}\r\n");
    }
    if let Some(m) = &res.last_modified {
        extra += &format!("Last-Modified: {m}\r\n");
    }
    extra += "Accept-Ranges: bytes\r\n";
    if res.repr_digest {
        use sha2::Digest as _;
        let digest = base64_encode(&sha2::Sha256::digest(&res.body));
        extra += &format!("Repr-Digest: sha-256=:{digest}:\r\n");
    }
    extra
}

/// The status and the `[start, end)` of the body to send for the range `wanted` (with its
/// Content-Range added to `extra`), or `None` for a 416.
fn span(
    wanted: Option<&str>,
    len: u64,
    fault: Option<&Fault>,
    extra: &mut String,
) -> Option<(u16, u64, u64)> {
    let Some(h) = wanted else {
        return Some((200, 0, len));
    };
    if fault == Some(&Fault::Refuse416) {
        return None;
    }
    let (a, b) = parse_range(h, len)?;
    let a = if fault == Some(&Fault::LieContentRange) {
        (a + 7).min(b)
    } else {
        a
    };
    let total = if fault == Some(&Fault::UnknownTotal206) {
        "*".to_owned()
    } else {
        len.to_string()
    };
    *extra += &format!("Content-Range: bytes {a}-{b}/{total}\r\n");
    if fault == Some(&Fault::Gzip206) {
        *extra += "Content-Encoding: gzip\r\n";
    }
    Some((206, a, b + 1))
}

/// Send the head and `body` as the resource frames it, at its rate, ending as the fault says;
/// `false` when the connection must end.
async fn send_body<S: Conn>(
    sock: &mut S,
    res: &Resource,
    status: u16,
    extra: &str,
    body: &[u8],
    fault: Option<&Fault>,
) -> bool {
    let framing = if res.chunked {
        "Transfer-Encoding: chunked\r\n".to_owned()
    } else if res.close_delimited {
        "Connection: close\r\n".to_owned()
    } else {
        format!("Content-Length: {}\r\n", body.len())
    };
    let head = format!(
        "HTTP/1.1 {status} {}\r\n{extra}{framing}\r\n",
        reason(status)
    );
    if sock.write_all(head.as_bytes()).await.is_err() {
        return false;
    }
    let limit = match fault {
        Some(Fault::StallAfter(n) | Fault::ResetAfter(n) | Fault::TruncateAfter(n)) => {
            (*n as usize).min(body.len())
        }
        _ => body.len(),
    };
    if !send_paced(sock, res, &body[..limit]).await {
        return false;
    }
    match fault {
        Some(Fault::StallAfter(_)) => {
            tokio::time::sleep(Duration::from_secs(3600)).await;
            false
        }
        Some(Fault::ResetAfter(_)) => {
            sock.reset_on_close();
            false
        }
        Some(Fault::TruncateAfter(_)) => false,
        _ if res.close_delimited => false,
        _ => !res.chunked || sock.write_all(b"0\r\n\r\n").await.is_ok(),
    }
}

/// The body in 16 KiB pieces (chunk-framed if the resource is chunked), at its rate.
async fn send_paced<S: Conn>(sock: &mut S, res: &Resource, body: &[u8]) -> bool {
    let started = Instant::now();
    let mut sent = 0usize;
    while sent < body.len() {
        let n = (body.len() - sent).min(16 * 1024);
        let piece = &body[sent..sent + n];
        let ok = if res.chunked {
            let mut framed = format!("{n:x}\r\n").into_bytes();
            framed.extend_from_slice(piece);
            framed.extend_from_slice(b"\r\n");
            sock.write_all(&framed).await.is_ok()
        } else {
            sock.write_all(piece).await.is_ok()
        };
        if !ok {
            return false;
        }
        sent += n;
        if let Some(rate) = res.rate {
            let due = Duration::from_secs_f64(sent as f64 / rate as f64);
            if let Some(wait) = due.checked_sub(started.elapsed()) {
                tokio::time::sleep(wait).await;
            }
        }
    }
    true
}

async fn send_simple<S: Conn>(sock: &mut S, status: u16, extra: &str, body: &[u8]) -> bool {
    let head = format!(
        "HTTP/1.1 {status} {}\r\n{extra}Content-Length: {}\r\n\r\n",
        reason(status),
        body.len()
    );
    sock.write_all(head.as_bytes()).await.is_ok() && sock.write_all(body).await.is_ok()
}

fn reason(status: u16) -> &'static str {
    match status {
        200 => "OK",
        206 => "Partial Content",
        302 => "Found",
        401 => "Unauthorized",
        403 => "Forbidden",
        404 => "Not Found",
        416 => "Range Not Satisfiable",
        429 => "Too Many Requests",
        500 => "Internal Server Error",
        503 => "Service Unavailable",
        _ => "Status",
    }
}

fn base64_encode(data: &[u8]) -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::STANDARD.encode(data)
}

//! The HTTP clients: one per distinct proxy and TLS setting, shared by every job that uses it.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use rustls::RootCertStore;
use rustls::pki_types::CertificateDer;
use rustls::pki_types::pem::PemObject;

use super::super::Failure;
use super::super::tls::{self, BitsVerifier, CrlCache};
use super::failure::error_chain;
use crate::error::{Error, ErrorCode, ErrorContext, Result, Status};
use crate::model::{BasicCredentials, Credentials, JobProperties, ProxySettings, SecurityFlags};

/// Timeouts and identity of the HTTP client.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HttpConfig {
    pub connect_timeout: Duration,
    /// A body that delivers nothing for this long is abandoned (a transient error). Measured per
    /// chunk, so that throttling, which only delays reads, never trips it.
    pub chunk_timeout: Duration,
    /// A wait for bandwidth this long (a pause, a very low cap) ends the response; the rest is
    /// requested again with a range, because servers drop connections left unread (nginx's
    /// `send_timeout` is 60 s).
    pub throttle_reconnect: Duration,
    pub user_agent: String,
    /// PEM files of CA certificates trusted besides the system's roots.
    pub ca_certificates: Vec<PathBuf>,
}

impl Default for HttpConfig {
    fn default() -> Self {
        Self {
            connect_timeout: Duration::from_secs(30),
            chunk_timeout: Duration::from_secs(60),
            throttle_reconnect: Duration::from_secs(20),
            user_agent: format!("ebb/{}", env!("CARGO_PKG_VERSION")),
            ca_certificates: Vec::new(),
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Hash)]
struct ClientKey {
    proxy: ProxySettings,
    proxy_credentials: Option<BasicCredentials>,
    /// The certificate bits of the job's security flags.
    tls: SecurityFlags,
    /// The job's own CA file, and its modification time and length when the client was made:
    /// a file changed at the same path makes a new client.
    ca_file: Option<(PathBuf, Option<(std::time::SystemTime, u64)>)>,
}

/// One `reqwest::Client` (and so one connection pool) per distinct proxy/TLS setting, shared by
/// all jobs that use it, so that many small files reuse keep-alive connections.
#[derive(Debug)]
pub(crate) struct HttpClients {
    config: HttpConfig,
    clients: Mutex<HashMap<ClientKey, reqwest::Client>>,
    extra_roots: Vec<CertificateDer<'static>>,
    /// The system's roots and the extra ones, read once, when a client first needs them.
    roots: OnceLock<Arc<RootCertStore>>,
    crls: Arc<CrlCache>,
}

/// The certificates of a PEM file; one without any is an error.
fn read_ca_file(path: &Path) -> std::io::Result<Vec<CertificateDer<'static>>> {
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(path)
        .and_then(Iterator::collect)
        .map_err(|e| match e {
            rustls::pki_types::pem::Error::Io(io) => io,
            other => std::io::Error::other(other.to_string()),
        })?;
    if certs.is_empty() {
        return Err(std::io::Error::other("no PEM certificate in the file"));
    }
    Ok(certs)
}

impl HttpClients {
    /// Fails if a configured CA file cannot be read or holds no certificate.
    pub(crate) fn new(config: HttpConfig) -> Result<Self> {
        crate::install_crypto_provider();
        let mut extra_roots = Vec::new();
        for path in &config.ca_certificates {
            extra_roots.extend(read_ca_file(path).map_err(|e| Error::io(path, e))?);
        }
        Ok(Self {
            config,
            clients: Mutex::new(HashMap::new()),
            extra_roots,
            roots: OnceLock::new(),
            crls: Arc::new(CrlCache::default()),
        })
    }

    /// Fetch the CRLs a verifier wanted (over `client`, so the job's proxy applies). A CRL that
    /// cannot be fetched means the revocation status is unknown. Each fetch is bounded in size
    /// (16 MiB) and time (the connect timeout plus the chunk timeout), and ends when `stop` does.
    pub(in crate::transfer) async fn fetch_crls(
        &self,
        client: &reqwest::Client,
        stop: &tokio_util::sync::CancellationToken,
    ) -> Result<(), Failure> {
        for url in self.crls.take_wanted() {
            tracing::debug!(%url, "fetching a certificate revocation list");
            let deadline = self.config.connect_timeout + self.config.chunk_timeout;
            let body = tokio::select! {
                () = stop.cancelled() => return Ok(()),
                r = tokio::time::timeout(deadline, fetch_capped(client, &url)) => {
                    r.unwrap_or_else(|_| Err(format!("no answer within {deadline:?}")))
                }
            };
            let fetched = body.and_then(|b| self.crls.insert(&url, &b));
            fetched.map_err(|why| {
                Failure::new(
                    Status::Transient,
                    ErrorContext::GeneralTransport,
                    ErrorCode::SECURE_CERT_REV_FAILED,
                    format!("(certificate revocation list {url}: {why})"),
                )
            })?;
        }
        Ok(())
    }

    pub(crate) fn chunk_timeout(&self) -> Duration {
        self.config.chunk_timeout
    }

    pub(crate) fn throttle_reconnect(&self) -> Duration {
        self.config.throttle_reconnect
    }

    pub(in crate::transfer) fn client(
        &self,
        props: &JobProperties,
        creds: &Credentials,
    ) -> Result<reqwest::Client, Failure> {
        let key = ClientKey {
            proxy: props.proxy.clone(),
            proxy_credentials: creds.proxy.clone(),
            tls: props.security_flags.certificate_checks(),
            ca_file: props.ca_file.as_ref().map(|p| {
                let stamp = std::fs::metadata(p)
                    .ok()
                    .and_then(|m| Some((m.modified().ok()?, m.len())));
                (p.clone(), stamp)
            }),
        };
        let clients = || {
            self.clients.lock().map_err(|_| {
                Failure::new(
                    Status::Transient,
                    ErrorContext::GeneralTransport,
                    ErrorCode::E_FAIL,
                    String::new(),
                )
            })
        };
        if let Some(c) = clients()?.get(&key) {
            return Ok(c.clone());
        }
        // Built (a CA file read) without the lock; of two built at once, the first stays.
        let client = self.build(&key)?;
        let mut map = clients()?;
        // A CA file changed at its path: the client of its old version goes.
        if let Some((path, _)) = &key.ca_file {
            map.retain(|k, _| {
                let same_file = k.ca_file.as_ref().is_some_and(|(p, _)| p == path);
                let same_rest = k.proxy == key.proxy
                    && k.proxy_credentials == key.proxy_credentials
                    && k.tls == key.tls;
                !(same_file && same_rest)
            });
        }
        Ok(map.entry(key).or_insert(client).clone())
    }

    fn build(&self, key: &ClientKey) -> Result<reqwest::Client, Failure> {
        let mut b = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .connect_timeout(self.config.connect_timeout)
            .user_agent(self.config.user_agent.clone())
            .tcp_nodelay(true)
            .pool_idle_timeout(Duration::from_secs(30));
        match &key.proxy {
            ProxySettings::Preconfig | ProxySettings::AutoDetect => {}
            ProxySettings::NoProxy => b = b.no_proxy(),
            ProxySettings::Override {
                proxy_list,
                bypass_list,
            } => {
                for proxy in proxies(proxy_list, bypass_list, key.proxy_credentials.as_ref())? {
                    b = b.proxy(proxy);
                }
            }
        }
        if self.own_verifier(key.tls) || key.ca_file.is_some() {
            let ca_file = key.ca_file.as_ref().map(|(p, _)| p.as_path());
            b = b.tls_backend_preconfigured(self.tls_config(key.tls, ca_file)?);
        }
        b.build().map_err(|e| {
            Failure::new(
                Status::Permanent,
                ErrorContext::GeneralTransport,
                ErrorCode::BG_E_INVALID_PROXY_INFO,
                format!("(cannot build the HTTP client: {})", error_chain(&e)),
            )
        })
    }
}

impl HttpClients {
    /// The platform's verifier (Windows' and macOS's own trust) serves jobs without certificate
    /// flags; every other case is checked by [`BitsVerifier`], one check per flag.
    fn own_verifier(&self, flags: SecurityFlags) -> bool {
        flags.0 != 0 || !self.extra_roots.is_empty() || !cfg!(any(windows, target_os = "macos"))
    }

    fn tls_config(
        &self,
        flags: SecurityFlags,
        ca_file: Option<&Path>,
    ) -> Result<rustls::ClientConfig, Failure> {
        let provider = rustls::crypto::CryptoProvider::get_default()
            .cloned()
            .unwrap_or_else(|| Arc::new(rustls::crypto::ring::default_provider()));
        let mut roots = self
            .roots
            .get_or_init(|| Arc::new(tls::root_store(&self.extra_roots)))
            .clone();
        if let Some(path) = ca_file {
            let certs = read_ca_file(path).map_err(|e| {
                Failure::new(
                    Status::Permanent,
                    ErrorContext::LocalFile,
                    crate::error::io_code(&e),
                    format!("(CA file {}: {e})", path.display()),
                )
            })?;
            let mut own = (*roots).clone();
            own.add_parsable_certificates(certs);
            roots = Arc::new(own);
        }
        let verifier = BitsVerifier::new(flags, roots, &provider, self.crls.clone());
        let mut config = rustls::ClientConfig::builder_with_provider(provider)
            .with_protocol_versions(rustls::ALL_VERSIONS)
            .map_err(|e| {
                Failure::new(
                    Status::Permanent,
                    ErrorContext::GeneralTransport,
                    ErrorCode::SECURE_FAILURE,
                    format!("(TLS setup: {e})"),
                )
            })?
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(verifier))
            .with_no_client_auth();
        // HTTP/2 where the server offers it: a job's files fetched at once share a connection.
        config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
        Ok(config)
    }
}

/// A body of at most 16 MiB, read as it arrives.
async fn fetch_capped(client: &reqwest::Client, url: &str) -> Result<Vec<u8>, String> {
    const MAX: usize = 16 << 20;
    let mut response = client
        .get(url)
        .send()
        .await
        .and_then(reqwest::Response::error_for_status)
        .map_err(|e| error_chain(&e))?;
    let mut body = Vec::new();
    while let Some(chunk) = response.chunk().await.map_err(|e| error_chain(&e))? {
        if body.len() + chunk.len() > MAX {
            return Err("larger than 16 MiB".into());
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body)
}

/// BITS's proxy list (`[proto=][proto://]server[:port]`) as reqwest proxies.
fn proxies(
    list: &[String],
    bypass: &[String],
    creds: Option<&BasicCredentials>,
) -> Result<Vec<reqwest::Proxy>, Failure> {
    let bypass: Vec<&str> = bypass
        .iter()
        .map(|b| {
            if b == "<local>" {
                "localhost,127.0.0.1,::1"
            } else {
                b.as_str()
            }
        })
        .collect();
    let no_proxy = reqwest::NoProxy::from_string(&bypass.join(","));
    list.iter()
        .map(|entry| {
            let (scheme, target) = match entry.split_once('=') {
                Some((s, t)) => (Some(s.to_ascii_lowercase()), t),
                None => (None, entry.as_str()),
            };
            let target = if target.contains("://") {
                target.to_owned()
            } else {
                format!("http://{target}")
            };
            let proxy = match scheme.as_deref() {
                Some("http") => reqwest::Proxy::http(&target),
                Some("https") => reqwest::Proxy::https(&target),
                _ => reqwest::Proxy::all(&target),
            }
            .map_err(|e| {
                Failure::new(
                    Status::Permanent,
                    ErrorContext::GeneralTransport,
                    ErrorCode::BG_E_INVALID_PROXY_INFO,
                    format!("(proxy {entry:?}: {e})"),
                )
            })?;
            let proxy = match creds {
                Some(c) => proxy.basic_auth(&c.user_name, &c.password),
                None => proxy,
            };
            Ok(proxy.no_proxy(no_proxy.clone()))
        })
        .collect()
}

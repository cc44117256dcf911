//! The daemon client: the [`Backend`] trait over `ebbd`'s HTTP/JSON API on its
//! Unix socket. An app switches from the in-process engine to the shared daemon by
//! configuration: both implement the same trait.

use std::path::{Path, PathBuf};
use std::time::Duration;

use async_trait::async_trait;
use ebb_core::settings::EngineSettings;
use ebb_core::{
    Backend, Completion, Error, ErrorCode, Event, JobFilter, JobId, JobInfo, JobPage, JobState,
    JobType, NewFile, PageCursor, PropertyChange, Result, ResumeOutcome, Status,
};
use ebb_core::{BandwidthChange, BandwidthStatus};
use reqwest::Method;
use serde::Serialize;
use serde::de::DeserializeOwned;
use tokio::sync::broadcast;

use crate::error::ErrorBody;
use crate::routes::{self, path};
use crate::wire::{API_VERSION, AddFiles, CreateJob, RemoteUrl, ReplacePrefix, Value, VersionInfo};

/// A connection to `ebbd`.
#[derive(Clone, Debug)]
pub struct Client {
    http: reqwest::Client,
    socket: PathBuf,
    settings: Option<EngineSettings>,
}

fn unreachable(socket: &Path, e: &reqwest::Error) -> Error {
    Error::Remote {
        code: ErrorCode::BG_E_CONNECT_FAILURE,
        status: Status::Transient,
        message: format!("cannot reach ebbd at {}: {e}", socket.display()),
    }
}

/// An HTTP client whose every connection goes to the daemon's socket.
#[cfg(unix)]
fn http_client(socket: &Path) -> Result<reqwest::Client> {
    reqwest::Client::builder()
        .unix_socket(socket)
        .build()
        .map_err(|e| unreachable(socket, &e))
}

#[cfg(not(unix))]
fn http_client(_socket: &Path) -> Result<reqwest::Client> {
    Err(Error::NotSupported(
        "the ebbd daemon (it serves a Unix socket; on Windows use native BITS)".into(),
    ))
}

impl Client {
    /// Ask the daemon to stop (as SIGTERM does: a final checkpoint for every running job).
    /// It answers at once; the socket goes away when it has stopped.
    pub async fn shutdown_daemon(&self) -> Result<()> {
        self.call(Method::POST, &path(routes::SHUTDOWN, &[]), None::<&()>)
            .await
    }

    /// Connect to the daemon on `socket` and check that it speaks this client's API version.
    pub async fn connect(socket: impl Into<PathBuf>) -> Result<Self> {
        ebb_core::install_crypto_provider();
        let socket = socket.into();
        let http = http_client(&socket)?;
        let mut client = Self {
            http,
            socket,
            settings: None,
        };
        let version: VersionInfo = client
            .call(Method::GET, &path(routes::VERSION, &[]), None::<&()>)
            .await?;
        if version.api != API_VERSION {
            return Err(Error::Remote {
                code: ErrorCode::E_NOTIMPL,
                status: Status::Permanent,
                message: format!(
                    "ebbd {} at {} speaks API v{}; this client speaks v{API_VERSION}",
                    version.ebbd,
                    client.socket.display(),
                    version.api
                ),
            });
        }
        client.settings = version.settings;
        Ok(client)
    }

    /// A route's path (see [`routes::path`]) as a URL: the host is ignored on a Unix socket.
    fn url(path: &str) -> String {
        format!("http://ebbd{path}")
    }

    async fn call<T: DeserializeOwned>(
        &self,
        method: Method,
        path: &str,
        body: Option<&impl Serialize>,
    ) -> Result<T> {
        let mut req = self.http.request(method, Self::url(path));
        if let Some(b) = body {
            let bytes = serde_json::to_vec(b).map_err(|e| Error::InvalidArgument(e.to_string()))?;
            req = req
                .header(reqwest::header::CONTENT_TYPE, "application/json")
                .body(bytes);
        }
        let resp = req
            .send()
            .await
            .map_err(|e| unreachable(&self.socket, &e))?;
        let status = resp.status();
        let bytes = resp
            .bytes()
            .await
            .map_err(|e| unreachable(&self.socket, &e))?;
        if status.is_success() {
            return serde_json::from_slice(&bytes).map_err(|e| Error::Remote {
                code: ErrorCode::E_FAIL,
                status: Status::Permanent,
                message: format!("ebbd answered {path} with something unexpected: {e}"),
            });
        }
        Err(match serde_json::from_slice::<ErrorBody>(&bytes) {
            Ok(body) => body.into(),
            Err(_) => Error::Remote {
                code: ErrorCode::E_INVALIDARG,
                status: Status::Permanent,
                message: format!("ebbd: {status}: {}", String::from_utf8_lossy(&bytes)),
            },
        })
    }

    async fn post<T: DeserializeOwned>(&self, route: &str, job: JobId) -> Result<T> {
        let p = path(route, &[&job.to_string()]);
        self.call(Method::POST, &p, None::<&()>).await
    }
}

#[async_trait]
impl Backend for Client {
    async fn create_job(&self, display_name: &str, job_type: JobType) -> Result<JobId> {
        let req = CreateJob {
            display_name: display_name.to_owned(),
            job_type,
        };
        let v: Value<JobId> = self
            .call(Method::POST, &path(routes::JOBS, &[]), Some(&req))
            .await?;
        Ok(v.value)
    }
    async fn add_files(&self, job: JobId, files: Vec<NewFile>) -> Result<()> {
        let p = path(routes::FILES, &[&job.to_string()]);
        self.call(Method::POST, &p, Some(&AddFiles { files })).await
    }
    async fn resume(&self, job: JobId) -> Result<ResumeOutcome> {
        let v: Value<ResumeOutcome> = self.post(routes::RESUME, job).await?;
        Ok(v.value)
    }
    async fn suspend(&self, job: JobId) -> Result<()> {
        self.post(routes::SUSPEND, job).await
    }
    async fn complete(&self, job: JobId) -> Result<Completion> {
        self.post(routes::COMPLETE, job).await
    }
    async fn cancel(&self, job: JobId) -> Result<()> {
        self.post(routes::CANCEL, job).await
    }
    async fn set_property(&self, job: JobId, change: PropertyChange) -> Result<()> {
        let p = path(routes::JOB, &[&job.to_string()]);
        self.call(Method::PATCH, &p, Some(&change)).await
    }
    async fn replace_remote_prefix(&self, job: JobId, old: &str, new: &str) -> Result<usize> {
        let req = ReplacePrefix {
            old: old.to_owned(),
            new: new.to_owned(),
        };
        let p = path(routes::REPLACE_PREFIX, &[&job.to_string()]);
        let v: Value<usize> = self.call(Method::POST, &p, Some(&req)).await?;
        Ok(v.value)
    }
    async fn set_remote_name(&self, job: JobId, file_index: usize, url: &str) -> Result<()> {
        let p = path(
            routes::REMOTE_URL,
            &[&job.to_string(), &file_index.to_string()],
        );
        let req = RemoteUrl {
            url: url.to_owned(),
        };
        self.call(Method::PUT, &p, Some(&req)).await
    }
    async fn job(&self, job: JobId) -> Result<JobInfo> {
        let p = path(routes::JOB, &[&job.to_string()]);
        self.call(Method::GET, &p, None::<&()>).await
    }
    async fn list(&self, filter: JobFilter) -> Result<Vec<JobInfo>> {
        let p = format!(
            "{}?all={}&all_users={}",
            path(routes::JOBS, &[]),
            filter.final_jobs,
            filter.all_users
        );
        self.call(Method::GET, &p, None::<&()>).await
    }
    /// One request, one page: the daemon reads just that page.
    async fn list_page(
        &self,
        filter: JobFilter,
        after: Option<PageCursor>,
        limit: usize,
    ) -> Result<JobPage> {
        let mut p = format!(
            "{}?all={}&all_users={}&limit={limit}",
            path(routes::JOBS_PAGE, &[]),
            filter.final_jobs,
            filter.all_users
        );
        if let Some(after) = after {
            // Digits, a dot, hex digits and hyphens: nothing to escape.
            p.push_str("&after=");
            p.push_str(&after.to_string());
        }
        self.call(Method::GET, &p, None::<&()>).await
    }
    /// The daemon's engine resolves the name: one request, all the user's jobs.
    async fn find(&self, id_or_name: &str) -> Result<JobId> {
        let p = path(routes::FIND, &[id_or_name]);
        let v: Value<JobId> = self.call(Method::GET, &p, None::<&()>).await?;
        Ok(v.value)
    }
    /// The daemon's engine waits (the shared [`Backend::wait`]): one request, no event stream.
    async fn wait(&self, job: JobId, timeout: Option<Duration>) -> Result<JobState> {
        let query = timeout.map_or_else(String::new, |t| format!("?timeout_ms={}", t.as_millis()));
        let p = format!("{}{query}", path(routes::WAIT, &[&job.to_string()]));
        let v: Value<JobState> = self.call(Method::GET, &p, None::<&()>).await?;
        Ok(v.value)
    }
    /// Events arrive over one streaming request (NDJSON), which ends when the daemon goes away
    /// or no receiver is left (looked at every second, so that an idle stream does not keep a
    /// connection of the daemon's). Must be called within a tokio runtime.
    fn subscribe(&self) -> broadcast::Receiver<Event> {
        let (tx, rx) = broadcast::channel(4096);
        let req = self.http.get(Self::url(&path(routes::EVENTS, &[])));
        tokio::spawn(async move {
            let Ok(mut resp) = req.send().await else {
                return;
            };
            let mut pending = Vec::new();
            let mut look = tokio::time::interval(Duration::from_secs(1));
            loop {
                let chunk = tokio::select! {
                    chunk = resp.chunk() => chunk,
                    _ = look.tick() => {
                        if tx.receiver_count() == 0 {
                            return;
                        }
                        continue;
                    }
                };
                let Ok(Some(chunk)) = chunk else {
                    return;
                };
                pending.extend_from_slice(&chunk);
                while let Some(end) = pending.iter().position(|&b| b == b'\n') {
                    let line: Vec<u8> = pending.drain(..=end).collect();
                    if let Ok(ev) = serde_json::from_slice::<Event>(&line)
                        && tx.send(ev).is_err()
                    {
                        return; // nobody listens any more
                    }
                }
            }
        });
        rx
    }
    /// The settings the daemon's engine runs with (`None` from an ebbd too old to say).
    fn settings(&self) -> Option<EngineSettings> {
        self.settings.clone()
    }
    async fn bandwidth(&self) -> Result<BandwidthStatus> {
        self.call(Method::GET, &path(routes::BANDWIDTH, &[]), None::<&()>)
            .await
    }
    async fn set_bandwidth(&self, change: BandwidthChange) -> Result<BandwidthStatus> {
        self.call(Method::PATCH, &path(routes::BANDWIDTH, &[]), Some(&change))
            .await
    }
}

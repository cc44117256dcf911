//! Upload-reply: once a session's last byte is in, the server application is told, and its
//! answer becomes the reply the client downloads before Close-Session ([MC-BUP] §3.2.5.2.6;
//! Microsoft's "notification protocol for server applications").
//!
//! - By reference: `POST` to the application with `BITS-Original-Request-URL`,
//!   `BITS-Request-DataFile-Name` (the uploaded file) and `BITS-Response-DataFile-Name` (where
//!   the application writes the reply), and an empty body. On object storage these name
//!   objects (`s3://bucket/key`), and `BITS-Request-DataFile-URL` and
//!   `BITS-Response-DataFile-URL` are pre-signed URLs to read the upload and write the reply.
//! - By value: the upload is the `POST`'s body, and the response's body is the reply.
//!
//! The application may answer `BITS-Static-Response-URL` (the reply is that URL) and
//! `BITS-Copy-File-To-Destination` (keep the upload at its name too; by default, with a
//! notification, it is not kept). Its failure reaches the client with its HTTP status and
//! context 0x7, the server application.

use std::path::{Path, PathBuf};
use std::time::Duration;

use axum::http::StatusCode;
use futures_util::StreamExt;
use serde::Deserialize;
use tokio::io::AsyncWriteExt;

use crate::ack::{Code, Refusal};

/// How a directory's server application hears of uploads.
#[derive(Clone, Debug, Deserialize)]
#[serde(tag = "type", rename_all = "kebab-case", deny_unknown_fields)]
pub enum Notification {
    ByReference { url: String },
    ByValue { url: String },
}

/// An application has 5 minutes to answer.
const TIMEOUT: Duration = Duration::from_secs(300);

/// What the application answered.
#[derive(Debug)]
pub struct Answer {
    /// `Some` when the reply is another URL.
    pub static_url: Option<String>,
    /// Keep the upload at its name as well.
    pub keep: bool,
    /// By value, without a static URL: the response, whose body is the reply.
    pub reply: Option<reqwest::Response>,
}

/// What the application is told of an upload.
#[derive(Debug)]
pub struct Upload<'a> {
    /// The client's upload URL, in full.
    pub url: &'a str,
    /// By reference: the headers that say where the upload is and where the reply goes.
    pub names: Vec<(&'static str, String)>,
    /// By value: the upload.
    pub body: Option<reqwest::Body>,
}

/// Tell the application.
pub async fn notify(how: &Notification, upload: Upload<'_>) -> Result<Answer, Refusal> {
    let client = reqwest::Client::builder()
        .timeout(TIMEOUT)
        .build()
        .map_err(|e| failed(&e.to_string()))?;
    let (Notification::ByReference { url } | Notification::ByValue { url }) = how;
    let mut request = client
        .post(target(url, upload.url))
        .header("BITS-Original-Request-URL", upload.url);
    for (name, value) in upload.names {
        request = request.header(name, value);
    }
    request = match upload.body {
        Some(body) => request.body(body),
        None => request.header(reqwest::header::CONTENT_LENGTH, "0"),
    };
    let response = request.send().await.map_err(|e| {
        if e.is_timeout() {
            application(
                StatusCode::REQUEST_TIMEOUT,
                Code::APPLICATION_TIMEOUT,
                "the application did not answer in 5 minutes",
            )
        } else {
            failed(&format!("cannot reach the server application: {e}"))
        }
    })?;
    let status = response.status();
    if !status.is_success() {
        let code = Code(0x8019_0000 | u32::from(status.as_u16()));
        // Statuses that mean something else to a BITS client (credentials, fragment sizes,
        // ranges) are not passed on as they are.
        let relayed = match status.as_u16() {
            401 | 407 | 413 | 416 => StatusCode::INTERNAL_SERVER_ERROR,
            _ => status,
        };
        return Err(application(
            relayed,
            code,
            "the server application refused the upload",
        ));
    }
    let header = |name: &str| {
        response
            .headers()
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned)
    };
    let static_url = header("BITS-Static-Response-URL");
    let by_value = matches!(how, Notification::ByValue { .. });
    Ok(Answer {
        keep: header("BITS-Copy-File-To-Destination").is_some(),
        reply: (by_value && static_url.is_none()).then_some(response),
        static_url,
    })
}

/// The application's URL (absolute, from the configuration: never from the request's `Host`)
/// with the upload's query string, as IIS appends it.
fn target(app: &str, upload: &str) -> String {
    let query = upload.split_once('?').map(|(_, q)| q);
    match reqwest::Url::parse(app) {
        Ok(mut url) => {
            if url.query().is_none() {
                url.set_query(query);
            }
            url.into()
        }
        Err(_) => app.to_owned(),
    }
}

impl Notification {
    /// The application's URL must be absolute HTTP(S).
    pub fn check(&self) -> Result<(), String> {
        let (Self::ByReference { url } | Self::ByValue { url }) = self;
        match reqwest::Url::parse(url) {
            Ok(u) if matches!(u.scheme(), "http" | "https") => Ok(()),
            _ => Err(format!(
                "notification url {url:?} is not an absolute http(s) URL"
            )),
        }
    }
}

/// Write a by-value reply to `path`, durably.
pub async fn save_body(response: reqwest::Response, path: &Path) -> Result<(), Refusal> {
    let io = |e: std::io::Error| failed(&format!("{}: {e}", path.display()));
    let mut file = tokio::fs::File::create(path).await.map_err(io)?;
    let mut body = response.bytes_stream();
    while let Some(chunk) = body.next().await {
        let chunk =
            chunk.map_err(|e| failed(&format!("the application's reply broke off: {e}")))?;
        file.write_all(&chunk).await.map_err(io)?;
    }
    file.flush().await.map_err(io)?;
    file.sync_data().await.map_err(io)
}

pub fn failed(why: &str) -> Refusal {
    Refusal::new(StatusCode::INTERNAL_SERVER_ERROR, Code::FAIL).because(why)
}

fn application(status: StatusCode, code: Code, why: &str) -> Refusal {
    let mut r = Refusal::new(status, code).because(why);
    r.application = true;
    r
}

/// Where a session's reply file lives.
pub fn reply_path(state_dir: &Path, key: &str) -> PathBuf {
    state_dir.join("replies").join(key)
}

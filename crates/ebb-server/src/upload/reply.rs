//! Upload-reply: once the last byte is in, the server application is told (see
//! [`crate::notify`]) and its answer becomes the reply, asked for once (a re-sent last
//! fragment gets the same URL). A file session's upload and reply are files of this node; an
//! object session's are staged objects of the bucket, which any node serves.

use axum::http::Method;

use super::{object, store_refusal};
use crate::App;
use crate::ack::Refusal;
use crate::notify::{self, Answer, Notification, Upload};
use crate::sessions::{Session, Target};

/// The reply's URL for the client.
pub async fn reply(
    app: &App,
    how: &Notification,
    s: &mut Session,
    full_url: &str,
) -> Result<String, Refusal> {
    if let Some(url) = &s.reply {
        return Ok(url.clone());
    }
    let answer = match &s.target {
        Target::File { temp, .. } => {
            let temp = temp.clone();
            by_file(app, how, &s.key(), &temp, full_url).await?
        }
        Target::Object(_) => by_object(app, how, s, full_url).await?,
    };
    tracing::info!(session = %s.id, static_url = ?answer.static_url, keep = answer.keep, "the server application answered");
    let url = answer
        .static_url
        .unwrap_or_else(|| format!("BITS-Sessions\\Replies\\{}\\responsefile.bin", s.key()));
    (s.reply, s.keep) = (Some(url.clone()), answer.keep);
    if let Err(e) = app.sessions.update(s).await {
        (s.reply, s.keep) = (None, false);
        return Err(store_refusal(&e));
    }
    Ok(url)
}

async fn by_file(
    app: &App,
    how: &Notification,
    key: &str,
    temp: &std::path::Path,
    full_url: &str,
) -> Result<Answer, Refusal> {
    let reply = notify::reply_path(&app.config.state_dir(), key);
    let upload = match how {
        Notification::ByReference { .. } => Upload {
            url: full_url,
            names: vec![
                (REQUEST_NAME, temp.to_string_lossy().into_owned()),
                (RESPONSE_NAME, reply.to_string_lossy().into_owned()),
            ],
            body: None,
        },
        Notification::ByValue { .. } => {
            let file = tokio::fs::File::open(temp)
                .await
                .map_err(|e| notify::failed(&format!("{}: {e}", temp.display())))?;
            Upload {
                url: full_url,
                names: Vec::new(),
                body: Some(reqwest::Body::from(file)),
            }
        }
    };
    let mut answer = notify::notify(how, upload).await?;
    if let Some(response) = answer.reply.take() {
        notify::save_body(response, &reply).await?;
    } else if answer.static_url.is_none() && !tokio::fs::try_exists(&reply).await.unwrap_or(false) {
        // By reference, the application writes the reply; none written is an empty reply.
        tokio::fs::write(&reply, b"")
            .await
            .map_err(|e| notify::failed(&format!("{}: {e}", reply.display())))?;
    }
    Ok(answer)
}

async fn by_object(
    app: &App,
    how: &Notification,
    s: &mut Session,
    full_url: &str,
) -> Result<Answer, Refusal> {
    // The application reads a whole object: the staged upload is completed first.
    object::seal(app, s).await?;
    let objects = object::objects(app)?;
    let name = s.key();
    let (request, reply) = (
        objects.staged(&name, "request"),
        objects.staged(&name, "reply"),
    );
    let upload = match how {
        Notification::ByReference { .. } => {
            let mut names = vec![
                (REQUEST_NAME, objects.object_name(&request)),
                (RESPONSE_NAME, objects.object_name(&reply)),
            ];
            if let Some(url) = objects.signed_url(Method::GET, &request).await? {
                names.push((REQUEST_URL, url));
            }
            if let Some(url) = objects.signed_url(Method::PUT, &reply).await? {
                names.push((RESPONSE_URL, url));
            }
            Upload {
                url: full_url,
                names,
                body: None,
            }
        }
        Notification::ByValue { .. } => Upload {
            url: full_url,
            names: Vec::new(),
            body: Some(objects.body(&request).await?),
        },
    };
    let mut answer = notify::notify(how, upload).await?;
    if let Some(response) = answer.reply.take() {
        objects.put_stream(&reply, response.bytes_stream()).await?;
    } else if answer.static_url.is_none() && !objects.exists(&reply).await? {
        objects.put(&reply, axum::body::Bytes::new()).await?;
    }
    Ok(answer)
}

const REQUEST_NAME: &str = "BITS-Request-DataFile-Name";
const RESPONSE_NAME: &str = "BITS-Response-DataFile-Name";
/// ebb-server's own, on object storage: pre-signed URLs of the upload and of the reply.
const REQUEST_URL: &str = "BITS-Request-DataFile-URL";
const RESPONSE_URL: &str = "BITS-Response-DataFile-URL";

//! Upload-reply: once the last fragment's Ack named the reply (`BITS-Reply-URL`), the reply is
//! fetched with the download path, ranged and checkpointed like any download, into its
//! temporary file beside the reply file; and only then is the session closed (the server
//! drops the reply at Close-Session). The reply appears at its name at Complete.

use std::path::{Path, PathBuf};

use url::Url;

use super::super::checkpoint::Checkpointer;
use super::super::{Failure, Fetched, FileCx};
use crate::error::{ErrorCode, ErrorContext, Status};
use crate::model::{Credentials, Job, JobFile, JobId, NewFile};

/// A run's hold on its job's reply.
#[derive(Debug)]
pub(crate) struct ReplySlot {
    pub job: JobId,
    /// The name the app set, if it did.
    pub name: Option<PathBuf>,
    /// The reply as the store has it (a run that fetched part of it goes on).
    pub file: Option<JobFile>,
}

/// The reply URL as the server sent it: relative with backslashes (IIS) or absolute, resolved
/// against the URL the last fragment went to.
pub(super) fn resolve(base: &Url, sent: &str) -> Result<Url, Failure> {
    let bad = |why: String| {
        Failure::new(
            Status::Transient,
            ErrorContext::RemoteFile,
            ErrorCode::BG_E_INVALID_SERVER_RESPONSE,
            format!("({base}: the reply URL {sent:?} {why})"),
        )
    };
    let url = base
        .join(&sent.replace('\\', "/"))
        .map_err(|e| bad(format!("is not a URL: {e}")))?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err(bad("is not http or https".into()));
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err(bad("carries a user name or password".into()));
    }
    Ok(url)
}

/// The reply's name when the app set none: beside the upload file, named after it and the job.
pub(super) fn generated_name(job: JobId, upload: &Path) -> PathBuf {
    let name = upload
        .file_name()
        .map_or_else(|| "upload".into(), |n| n.to_string_lossy().into_owned());
    let short: String = job.simple().chars().take(8).collect();
    upload
        .parent()
        .map_or_else(PathBuf::new, Path::to_path_buf)
        .join(format!("{name}.reply-{short}"))
}

/// Fetch the reply at `url` into its temporary file, and record it completed.
pub(super) async fn fetch(
    cx: &FileCx<'_>,
    slot: &mut ReplySlot,
    upload: &JobFile,
    url: &Url,
    ckpt: &Checkpointer,
) -> Result<Fetched, Failure> {
    if slot
        .file
        .as_ref()
        .is_none_or(|f| f.remote_url != url.as_str())
    {
        // A new reply (a first one, or one of a new session): from byte 0.
        let name = slot
            .name
            .clone()
            .unwrap_or_else(|| generated_name(slot.job, &upload.local_path));
        slot.file = Some(JobFile::new(
            slot.job,
            Job::REPLY_INDEX,
            NewFile::new(url.as_str(), name),
        ));
    }
    let Some(reply) = slot.file.as_mut() else {
        return Ok(Fetched::Completed);
    };
    if reply.completed {
        return Ok(Fetched::Completed);
    }
    tracing::info!(%url, path = %reply.local_path.display(), "fetching the reply");
    // The server names the reply's URL: the job's server credentials go there only if it is
    // the upload's own origin (or the job lets credentials cross origins).
    let upload_origin = Url::parse(&upload.remote_url).map(|u| u.origin()).ok();
    let same_origin = upload_origin.is_some_and(|o| o == url.origin());
    let credentials = if same_origin || cx.properties.credentials_across_origins {
        cx.credentials.clone()
    } else {
        Credentials {
            server: None,
            proxy: cx.credentials.proxy.clone(),
        }
    };
    let rcx = FileCx {
        index: Job::REPLY_INDEX,
        properties: cx.properties,
        credentials: &credentials,
        live: cx.live,
        stop: cx.stop,
        clients: cx.clients,
        throttle: cx.throttle,
        connected: cx.connected,
    };
    let fetched = super::super::fetch(&rcx, reply, ckpt).await?;
    if fetched == Fetched::Completed {
        // The reply is durable and recorded before the session (and the server's copy) ends.
        ckpt.flush(None).await?;
    }
    Ok(fetched)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reply_urls_as_servers_send_them() {
        let base = Url::parse("https://h:8443/up/dir/a.bin?x=1").unwrap();
        assert_eq!(
            resolve(&base, "BITS-Sessions\\Replies\\{K}\\responsefile.bin")
                .unwrap()
                .as_str(),
            "https://h:8443/up/dir/BITS-Sessions/Replies/%7BK%7D/responsefile.bin"
        );
        assert_eq!(
            resolve(&base, "/replies/1").unwrap().as_str(),
            "https://h:8443/replies/1"
        );
        assert_eq!(
            resolve(&base, "http://app.example/r?id=2")
                .unwrap()
                .as_str(),
            "http://app.example/r?id=2"
        );
        assert!(resolve(&base, "file:///etc/passwd").is_err());
        assert!(resolve(&base, "http://u:p@h/r").is_err());
    }

    #[test]
    fn a_generated_name_sits_beside_the_upload() {
        let job: JobId = "8a277940-c498-4113-b544-bc56a4b3544b".parse().unwrap();
        assert_eq!(
            generated_name(job, Path::new("/data/report.csv")),
            Path::new("/data/report.csv.reply-8a277940")
        );
    }
}

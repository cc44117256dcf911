//! `BITS-Host-Id`: a server on a web farm pins a session to one node; packets go there until
//! they have failed to connect for the fallback timeout, then to the URL's own host again.

use std::time::Duration;

use url::Url;

use crate::model::{JobFile, Timestamp, UploadSession};

/// Where packets go: the upload URL, on the host the server pinned the session to if it did.
pub(super) fn target(url: &Url, session: Option<&UploadSession>) -> Url {
    let Some(host) = session.and_then(|s| s.host.as_deref()) else {
        return url.clone();
    };
    let mut pinned = url.clone();
    let parsed = Url::parse(&format!("{}://{host}/", url.scheme()));
    match parsed {
        Ok(p) if p.host_str().is_some() && pinned.set_host(p.host_str()).is_ok() => {
            if p.port().is_some() {
                let _ = pinned.set_port(p.port());
            }
            pinned
        }
        _ => {
            tracing::warn!(
                host,
                "the server's BITS-Host-Id is no host name; ignoring it"
            );
            url.clone()
        }
    }
}

/// A packet to the pinned host could not connect: `true` if its fallback timeout has passed
/// (the host is forgotten, and the URL's own host is tried).
pub(super) fn host_failed(file: &mut JobFile) -> bool {
    let Some(s) = file.upload.as_mut().and_then(|u| u.session.as_mut()) else {
        return false;
    };
    let now = Timestamp::now();
    let since = *s.host_failing_since.get_or_insert(now);
    // Without a fallback timeout the session stays on its host for good ([MC-BUP] §3.1.2.3).
    let Some(limit) = s.host_fallback_secs.map(Duration::from_secs) else {
        return false;
    };
    if since.elapsed_until(now) < limit {
        return false;
    }
    tracing::info!(host = ?s.host, "the session's host cannot be reached: falling back to the URL's host");
    s.host = None;
    s.host_failing_since = None;
    true
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::UploadSession;

    #[test]
    fn packets_go_to_the_pinned_host() {
        let url = Url::parse("https://farm.example:8443/up/a.bin?x=1").unwrap();
        assert_eq!(target(&url, None), url);
        let mut s = UploadSession::new("id".into());
        s.host = Some("node7".into());
        assert_eq!(
            target(&url, Some(&s)).as_str(),
            "https://node7:8443/up/a.bin?x=1"
        );
        s.host = Some("10.0.0.7:9000".into());
        assert_eq!(
            target(&url, Some(&s)).as_str(),
            "https://10.0.0.7:9000/up/a.bin?x=1"
        );
        s.host = Some("bad host/".into());
        assert_eq!(target(&url, Some(&s)), url);
    }
}

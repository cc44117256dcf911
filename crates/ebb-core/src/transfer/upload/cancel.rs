//! Cancel-Session when a job is cancelled: the server's session (and its bytes) end too.

use std::time::Duration;

use url::Url;

use super::hosts::target;
use super::packet::Packet;
use super::session;
use crate::model::{Credentials, JobFile, JobProperties};
use crate::transfer::HttpClients;

/// Cancel-Session for the upload of a cancelled job, if it has a session: best effort (the
/// server sweeps an abandoned session anyway), with the job's credentials on a challenge.
pub(crate) async fn cancel_session(
    clients: &HttpClients,
    properties: &JobProperties,
    credentials: &Credentials,
    file: &JobFile,
) {
    if let Ok(client) = clients.client(properties, credentials)
        && super::tus::cancel(&client, file, properties, credentials).await
    {
        return;
    }
    let Some(s) = session(file) else {
        return;
    };
    let Ok(url) = Url::parse(&file.remote_url) else {
        return;
    };
    let Ok(client) = clients.client(properties, credentials) else {
        return;
    };
    let target = target(&url, Some(s));
    let packet = Packet::CancelSession { session: &s.id };
    let same_origin = target.origin() == url.origin() || properties.credentials_across_origins;
    let mut auth = None;
    loop {
        let req = packet
            .request(&client, &target, &properties.custom_headers, auth)
            .timeout(Duration::from_secs(30));
        match req.send().await {
            Ok(r) if r.status() == 401 && auth.is_none() && same_origin => {
                auth = credentials.server.as_ref();
                if auth.is_none() {
                    return;
                }
            }
            Ok(r) => {
                tracing::info!(session = %s.id, status = r.status().as_u16(), "upload session cancelled");
                return;
            }
            Err(e) => {
                tracing::info!(session = %s.id, error = %crate::transfer::http::error_chain(&e), "could not cancel the upload session");
                return;
            }
        }
    }
}

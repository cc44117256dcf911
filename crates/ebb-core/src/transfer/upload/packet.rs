//! The packets a client sends ([MC-BUP] §2.2.2): each a `BITS_POST` with `BITS-Packet-Type`,
//! the job's custom headers and, once the server challenged, the job's credentials. A fragment's
//! body admits its bytes through the job's bandwidth buckets as it is sent.

use reqwest::header::{CONTENT_LENGTH, CONTENT_RANGE, HeaderValue};
use reqwest::{Method, RequestBuilder};
use url::Url;

use super::ack::{PROTOCOL, names};
use super::source::Source;
use crate::bandwidth::Gate;
use crate::model::{BasicCredentials, CustomHeader};

/// One packet, with what it carries.
#[derive(Debug, Clone)]
pub(super) enum Packet<'a> {
    Ping,
    CreateSession {
        name: &'a str,
    },
    Fragment {
        session: &'a str,
        name: &'a str,
        /// The first byte, how many from there, and the source they are read from.
        first: u64,
        len: u64,
        source: Source,
        total: u64,
        /// The job's buckets, and how many bytes they admit at a time.
        gate: Gate,
        piece: usize,
    },
    CloseSession {
        session: &'a str,
    },
    CancelSession {
        session: &'a str,
    },
}

impl Packet<'_> {
    /// The name on the wire, as Windows spells it.
    pub(super) fn name(&self) -> &'static str {
        match self {
            Self::Ping => "Ping",
            Self::CreateSession { .. } => "Create-Session",
            Self::Fragment { .. } => "Fragment",
            Self::CloseSession { .. } => "Close-Session",
            Self::CancelSession { .. } => "Cancel-Session",
        }
    }

    /// The request for this packet to `url`, with the job's headers, and its credentials if
    /// given.
    pub(super) fn request(
        &self,
        client: &reqwest::Client,
        url: &Url,
        headers: &[CustomHeader],
        auth: Option<&BasicCredentials>,
    ) -> RequestBuilder {
        let method = Method::from_bytes(b"BITS_POST").unwrap_or(Method::POST);
        let mut req = client
            .request(method, url.clone())
            .header(names::PACKET_TYPE, self.name());
        for h in headers {
            req = req.header(h.name.as_str(), h.value.as_str());
        }
        if let Some(c) = auth {
            req = req.basic_auth(&c.user_name, Some(&c.password));
        }
        req = match self {
            Self::Ping => req.header(CONTENT_LENGTH, 0),
            Self::CreateSession { name } => req
                .header(names::SUPPORTED_PROTOCOLS, PROTOCOL)
                .header(names::CONTENT_NAME, header_text(name))
                .header(CONTENT_LENGTH, 0),
            Self::Fragment {
                session,
                name,
                first,
                len,
                source,
                total,
                gate,
                piece,
            } => {
                let last = first + len - 1;
                req.header(names::SESSION_ID, *session)
                    .header(names::CONTENT_NAME, header_text(name))
                    .header(CONTENT_RANGE, format!("bytes {first}-{last}/{total}"))
                    .header(CONTENT_LENGTH, *len)
                    .body(source.body((*first, *len), gate.clone(), *piece))
            }
            Self::CloseSession { session } | Self::CancelSession { session } => req
                .header(names::SESSION_ID, *session)
                .header(CONTENT_LENGTH, 0),
        };
        tracing::debug!(%url, packet = self.name(), "packet");
        req
    }
}

/// A file name as a header value: its bytes as they are (UTF-8 is obs-text to HTTP); one that
/// cannot be a header value (it has no control characters: the path was checked) becomes
/// empty.
fn header_text(text: &str) -> HeaderValue {
    HeaderValue::from_bytes(text.as_bytes()).unwrap_or(HeaderValue::from_static(""))
}

//! Reading a `BITS_POST` request into a [`Packet`], with nothing but its headers: the pure half
//! of the BITS upload protocol's server side ([MC-BUP] §2.2, §3.2.5). What a request gets wrong
//! becomes a [`Refusal`] that says the status and BITS code to answer with.

use axum::http::{HeaderMap, StatusCode};

use crate::ack::{Code, Refusal};

/// The one protocol: "BITS 1.5 Upload Protocol".
pub const PROTOCOL: &str = "{7df0354d-249b-430f-820d-3d2a9bef4931}";

/// Header values are bounded ([MC-BUP] §2.2: SHOULD be at most 4 KB).
pub const MAX_HEADER: usize = 4096;

/// A Windows client offers at most 100 protocols ([MC-BUP] §3.1.2).
const MAX_PROTOCOLS: usize = 100;

/// Session ids are at most 100 characters ([MC-BUP] §2.2.2.2).
const MAX_SESSION_ID: usize = 100;

/// A request of the BITS upload protocol.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Packet {
    Ping,
    CreateSession,
    Fragment {
        session: String,
        range: FragmentRange,
    },
    CloseSession {
        session: String,
    },
    CancelSession {
        session: String,
    },
}

/// `Content-Range: bytes first-last/total` of a fragment (inclusive, 0-based).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FragmentRange {
    pub first: u64,
    pub last: u64,
    pub total: u64,
}

impl FragmentRange {
    pub fn len(&self) -> u64 {
        self.last - self.first + 1
    }
}

/// Read a request's packet from its headers.
pub fn read(headers: &HeaderMap) -> Result<Packet, Refusal> {
    for value in headers.values() {
        if value.len() > MAX_HEADER {
            return Err(Refusal::bad("a header is longer than 4 KB"));
        }
    }
    let kind =
        text(headers, "bits-packet-type")?.ok_or_else(|| Refusal::bad("no BITS-Packet-Type"))?;
    match kind.to_ascii_lowercase().as_str() {
        "ping" => Ok(Packet::Ping),
        "create-session" => {
            let offered = text(headers, "bits-supported-protocols")?
                .ok_or_else(|| Refusal::bad("no BITS-Supported-Protocols"))?;
            check_protocols(offered)?;
            Ok(Packet::CreateSession)
        }
        "fragment" => {
            let session = session(headers)?;
            let range = text(headers, "content-range")?
                .ok_or_else(|| Refusal::bad("a fragment without Content-Range"))
                .and_then(content_range)?;
            if let Some(enc) = text(headers, "content-encoding")?
                && !enc.eq_ignore_ascii_case("identity")
            {
                return Err(Refusal::bad(
                    "only the identity Content-Encoding is accepted",
                ));
            }
            let length = text(headers, "content-length")?
                .ok_or_else(|| Refusal::bad("a fragment without Content-Length"))?;
            if length.trim().parse::<u64>().ok() != Some(range.len()) {
                return Err(Refusal::bad(
                    "the Content-Length is not the length of the Content-Range",
                ));
            }
            Ok(Packet::Fragment { session, range })
        }
        "close-session" => Ok(Packet::CloseSession {
            session: session(headers)?,
        }),
        "cancel-session" => Ok(Packet::CancelSession {
            session: session(headers)?,
        }),
        _ => Err(Refusal::bad("unknown BITS-Packet-Type")),
    }
}

/// A header as text; a value that is not visible ASCII is refused.
fn text<'h>(headers: &'h HeaderMap, name: &str) -> Result<Option<&'h str>, Refusal> {
    let mut values = headers.get_all(name).iter();
    let Some(value) = values.next() else {
        return Ok(None);
    };
    if values.next().is_some() {
        return Err(Refusal::bad("a header is repeated"));
    }
    value
        .to_str()
        .map(Some)
        .map_err(|_| Refusal::bad("a header is not ASCII"))
}

/// The GUIDs offered, separated by spaces or commas: ours must be among them.
fn check_protocols(offered: &str) -> Result<(), Refusal> {
    let guids: Vec<&str> = offered
        .split([' ', ',', '\t'])
        .filter(|g| !g.is_empty())
        .collect();
    if guids.is_empty() || guids.len() > MAX_PROTOCOLS {
        return Err(Refusal::bad("BITS-Supported-Protocols offers no protocol"));
    }
    if guids.iter().any(|g| g.eq_ignore_ascii_case(PROTOCOL)) {
        Ok(())
    } else {
        Err(Refusal::bad("no protocol in common"))
    }
}

fn session(headers: &HeaderMap) -> Result<String, Refusal> {
    let id = text(headers, "bits-session-id")?.ok_or_else(|| Refusal::bad("no BITS-Session-Id"))?;
    if id.is_empty() || id.len() > MAX_SESSION_ID {
        // An id this server could not have made names no session of its.
        return Err(Refusal::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            Code::SESSION_NOT_FOUND,
        ));
    }
    Ok(id.to_owned())
}

/// `bytes first-last/total`, with `first <= last < total`.
fn content_range(value: &str) -> Result<FragmentRange, Refusal> {
    let bad = || Refusal::bad("a malformed Content-Range");
    let rest = value
        .trim()
        .strip_prefix("bytes")
        .ok_or_else(bad)?
        .trim_start();
    let (span, total) = rest.split_once('/').ok_or_else(bad)?;
    let (first, last) = span.split_once('-').ok_or_else(bad)?;
    let number = |s: &str| {
        let s = s.trim();
        if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
            return Err(bad());
        }
        s.parse::<u64>().map_err(|_| bad())
    };
    let (first, last, total) = (number(first)?, number(last)?, number(total)?);
    if first > last || last >= total {
        return Err(bad());
    }
    Ok(FragmentRange { first, last, total })
}

#[cfg(test)]
mod tests;

//! Every route of API version 1, written once: the server registers these patterns (axum's
//! `{param}` syntax) under [`API_PREFIX`], and the client fills their parameters in with
//! [`path`].

use crate::wire::API_PREFIX;

pub const VERSION: &str = "/version";
pub const JOBS: &str = "/jobs";
/// `GET`: one page of the jobs, after a cursor ([`ListPageQuery`](crate::wire::ListPageQuery)).
pub const JOBS_PAGE: &str = "/jobs/page";
pub const FIND: &str = "/find/{name}";
pub const JOB: &str = "/jobs/{id}";
pub const FILES: &str = "/jobs/{id}/files";
pub const RESUME: &str = "/jobs/{id}/resume";
pub const SUSPEND: &str = "/jobs/{id}/suspend";
pub const CANCEL: &str = "/jobs/{id}/cancel";
pub const COMPLETE: &str = "/jobs/{id}/complete";
pub const REPLACE_PREFIX: &str = "/jobs/{id}/replace-remote-prefix";
pub const REMOTE_URL: &str = "/jobs/{id}/files/{index}/remote-url";
pub const WAIT: &str = "/jobs/{id}/wait";
pub const EVENTS: &str = "/events";
pub const BANDWIDTH: &str = "/bandwidth";
/// `POST`: the daemon stops (a final checkpoint for every running job), as on SIGTERM.
pub const SHUTDOWN: &str = "/shutdown";

/// The pattern the server registers for `route`.
pub fn pattern(route: &str) -> String {
    format!("{API_PREFIX}{route}")
}

/// The path of `route` with its `{param}`s replaced, in order, by `args`, each escaped as one
/// path segment: `path(JOB, &[&id.to_string()])` is `/v1/jobs/<id>`.
pub fn path(route: &str, args: &[&str]) -> String {
    let mut out = String::from(API_PREFIX);
    let mut args = args.iter();
    let mut rest = route;
    while let Some(open) = rest.find('{') {
        out.push_str(&rest[..open]);
        let close = rest[open..].find('}').map_or(rest.len(), |c| open + c + 1);
        if let Some(arg) = args.next() {
            out.push_str(&segment(arg));
        }
        rest = &rest[close..];
    }
    out.push_str(rest);
    out
}

/// Job ids, display names and indices as one path segment: what a path cannot carry is escaped.
fn segment(text: &str) -> String {
    text.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_fill_parameters_in_order_and_escape_them() {
        assert_eq!(path(JOBS, &[]), "/v1/jobs");
        assert_eq!(path(JOB, &["abc"]), "/v1/jobs/abc");
        assert_eq!(
            path(REMOTE_URL, &["abc", "3"]),
            "/v1/jobs/abc/files/3/remote-url"
        );
        assert_eq!(path(FIND, &["a b/c?"]), "/v1/find/a%20b%2Fc%3F");
        assert_eq!(pattern(JOB), "/v1/jobs/{id}");
    }
}

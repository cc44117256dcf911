//! What `ebb transfer`'s targets name: `URL [PATH] ...`, each URL followed by where it goes
//! unless it is named after the URL (in `--output-dir`, else here), or `-o FILE` for one URL.

use std::path::{Path, PathBuf};

use crate::args::TransferArgs;
use crate::exit::usage;

/// Whether an argument is a URL (`scheme://...`), not a local path.
fn is_url(s: &str) -> bool {
    s.split_once("://").is_some_and(|(scheme, _)| {
        !scheme.is_empty()
            && scheme.starts_with(|c: char| c.is_ascii_alphabetic())
            && scheme
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "+-.".contains(c))
    })
}

/// The file name a URL gives, as wget and `curl -O` take it: the last segment of its path,
/// decoded; `index.html` when there is none. Never a path of its own: a decoded `/` is `_`.
pub fn name_of(url: &str) -> String {
    let url = url.split_once('#').map_or(url, |(u, _)| u);
    let path = url
        .split_once("://")
        .map_or(url, |(_, rest)| rest.find('/').map_or("", |i| &rest[i..]));
    let path = path.split(['?']).next().unwrap_or("");
    let last = path.rsplit('/').next().unwrap_or("");
    let name: String = percent_encoding::percent_decode_str(last)
        .decode_utf8_lossy()
        .chars()
        .map(|c| {
            if c == '/' || c == '\\' || c.is_control() {
                '_'
            } else {
                c
            }
        })
        .collect();
    match name.as_str() {
        "" | "." | ".." => "index.html".to_owned(),
        _ => name,
    }
}

/// (URL, local path) pairs from the command line: for an upload exactly `URL FILE`.
pub fn pairs(t: &TransferArgs, upload: bool) -> anyhow::Result<Vec<(String, PathBuf)>> {
    if upload {
        return match t.targets.as_slice() {
            [url, file] if t.output.is_none() && t.output_dir.is_none() => {
                Ok(vec![(url.clone(), PathBuf::from(file))])
            }
            _ => Err(usage(format!(
                "an upload sends one FILE to one URL: `ebb transfer --upload URL FILE` ({} \
                 arguments given)",
                t.targets.len()
            ))),
        };
    }
    let dir = t.output_dir.as_deref().unwrap_or(Path::new("."));
    let mut out = Vec::new();
    let mut args = t.targets.iter().peekable();
    while let Some(url) = args.next() {
        if !is_url(url) {
            return Err(usage(format!(
                "{url:?} is not a URL: give URL [PATH] ..., each URL with a scheme \
                 (http://, https://, file://)"
            )));
        }
        let path = match args.next_if(|next| !is_url(next)) {
            Some(path) if t.output.is_some() || t.output_dir.is_some() => {
                return Err(usage(format!(
                    "{path:?}: with -o or --output-dir, give URLs only"
                )));
            }
            Some(path) => PathBuf::from(path),
            None => t.output.clone().unwrap_or_else(|| dir.join(name_of(url))),
        };
        out.push((url.clone(), path));
    }
    if t.output.is_some() && out.len() != 1 {
        return Err(usage(
            "-o names the file of one URL: use --output-dir for several",
        ));
    }
    Ok(out)
}

/// Make each destination ready for a new job: missing directories created (`--create-dirs`),
/// and an existing file refused unless `--overwrite` says to replace it.
pub fn prepare(paths: &[&Path], create_dirs: bool, overwrite: bool) -> anyhow::Result<()> {
    for path in paths {
        if create_dirs && let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(|e| {
                anyhow::anyhow!("{}: cannot create the directory: {e}", dir.display())
            })?;
        }
        if !overwrite && std::fs::symlink_metadata(path).is_ok() {
            return Err(usage(format!(
                "{} already exists: --overwrite replaces it (when the transfer completes)",
                path.display()
            )));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_come_from_the_last_segment() {
        assert_eq!(
            name_of("https://h/a/b/big%20file.iso?x=1#f"),
            "big file.iso"
        );
        assert_eq!(name_of("https://h/a/"), "index.html");
        assert_eq!(name_of("https://h"), "index.html");
        assert_eq!(
            name_of("https://h/a/..%2F..%2Fetc%2Fpasswd"),
            ".._.._etc_passwd"
        );
        assert_eq!(name_of("https://h/%2e%2e"), "index.html");
        assert_eq!(name_of("file:///tmp/src.bin#sha256=ab"), "src.bin");
    }

    #[test]
    fn urls_and_paths_pair_up() {
        assert!(is_url("http://h/x") && is_url("file:///x") && is_url("ftp://h/x"));
        assert!(!is_url("out.bin") && !is_url("./a://b") && !is_url("://x"));
    }
}

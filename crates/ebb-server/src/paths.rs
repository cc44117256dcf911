//! From a request's URL path to a file under an upload directory's root, never outside it.
//!
//! The path is taken as the client sent it (still percent-encoded), the directory's URL prefix
//! is stripped, and each segment is decoded on its own. A segment that is empty, `.` or `..`,
//! that decodes to a separator (`/`, `\`) or a NUL, or that starts with a dot (the server's own
//! files are hidden ones) is refused; so is a symbolic link anywhere under the root.

use std::path::{Path, PathBuf};

use percent_encoding::percent_decode_str;

/// Why a path is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PathError {
    #[error("the path is not under this directory's URL prefix")]
    NotHere,
    #[error("the path names no file")]
    NoFile,
    #[error("the path has a segment that is not allowed: {0:?}")]
    Segment(String),
    #[error("the path goes through a symbolic link: {}", .0.display())]
    Link(PathBuf),
    #[error("{path}: {error}", path = .0.display(), error = .1)]
    Io(PathBuf, String),
}

/// The relative file path a URL path names under `prefix` (e.g. `/upload/`), segment by
/// segment; nothing is looked up on disk.
pub fn relative(prefix: &str, url_path: &str) -> Result<PathBuf, PathError> {
    let prefix = prefix.trim_end_matches('/');
    let rest = url_path
        .strip_prefix(prefix)
        .filter(|r| r.starts_with('/'))
        .ok_or(PathError::NotHere)?;
    let mut out = PathBuf::new();
    for raw in rest[1..].split('/') {
        let segment = percent_decode_str(raw)
            .decode_utf8()
            .map_err(|_| PathError::Segment(raw.to_owned()))?;
        let refused = segment.is_empty()
            || segment.starts_with('.')
            || segment.contains(['/', '\\', '\0'])
            || segment.chars().any(char::is_control)
            || (cfg!(windows) && !windows_name(&segment));
        if refused {
            return Err(PathError::Segment(raw.to_owned()));
        }
        out.push(segment.as_ref());
    }
    if out.as_os_str().is_empty() {
        return Err(PathError::NoFile);
    }
    Ok(out)
}

/// Whether a segment is an ordinary file name on Windows: no drive or stream (`:`), no short
/// 8.3 alias (`~`, which could name a hidden file by another name), no trailing dot or space
/// (Windows drops them), no device name.
fn windows_name(segment: &str) -> bool {
    const DEVICES: [&str; 4] = ["CON", "PRN", "AUX", "NUL"];
    let stem = segment
        .split('.')
        .next()
        .unwrap_or(segment)
        .trim_end()
        .to_ascii_uppercase();
    let device = DEVICES.contains(&stem.as_str())
        || ((stem.starts_with("COM") || stem.starts_with("LPT"))
            && stem.len() == 4
            && stem.as_bytes()[3].is_ascii_digit());
    !segment.contains([':', '~', '<', '>', '"', '|', '?', '*'])
        && !segment.ends_with(['.', ' '])
        && !device
}

/// `root` joined with `relative`, once no directory on the way is a symbolic link or missing;
/// the file itself may not exist, and if it does it must not be a link.
pub fn under_root(root: &Path, relative: &Path) -> Result<PathBuf, PathError> {
    let mut at = root.to_path_buf();
    let parts: Vec<_> = relative.components().collect();
    for (i, part) in parts.iter().enumerate() {
        at.push(part);
        match std::fs::symlink_metadata(&at) {
            Ok(m) if m.file_type().is_symlink() => return Err(PathError::Link(at)),
            Ok(m) if i + 1 < parts.len() && !m.is_dir() => {
                return Err(PathError::Io(at, "is not a directory".into()));
            }
            Ok(_) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound && i + 1 == parts.len() => {}
            Err(e) => return Err(PathError::Io(at, e.to_string())),
        }
    }
    Ok(at)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn segments_are_decoded_one_by_one_and_escapes_refused() {
        assert_eq!(
            relative("/upload/", "/upload/a/b%20c.txt").unwrap(),
            PathBuf::from("a/b c.txt")
        );
        assert_eq!(relative("/", "/x.bin").unwrap(), PathBuf::from("x.bin"));
        for bad in [
            "/upload/../etc/passwd",
            "/upload/a/%2e%2e/b",
            "/upload/a%2fb",
            "/upload/a%5cb",
            "/upload/a%00b",
            "/upload/.hidden",
            "/upload//x",
            "/upload/x/",
            "/upload/%ff",
        ] {
            assert!(relative("/upload", bad).is_err(), "{bad}");
        }
        assert_eq!(relative("/upload", "/uploads/x"), Err(PathError::NotHere));
        assert_eq!(relative("/upload", "/upload"), Err(PathError::NotHere));
    }

    #[test]
    fn windows_names_that_mean_something_else_are_refused() {
        for bad in [
            "C:", "x:stream", "EBB-SE~1", "name.", "name ", "CON", "nul.txt", "COM1", "lpt9.log",
        ] {
            assert!(!windows_name(bad), "{bad}");
        }
        for good in ["report.pdf", "console.txt", "COM10", "a b.c"] {
            assert!(windows_name(good), "{good}");
        }
    }

    #[cfg(unix)]
    #[test]
    fn a_link_under_the_root_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("root");
        std::fs::create_dir_all(root.join("real")).unwrap();
        std::os::unix::fs::symlink(dir.path(), root.join("out")).unwrap();
        std::os::unix::fs::symlink("/etc/passwd", root.join("real/pw")).unwrap();
        assert!(under_root(&root, Path::new("real/new.bin")).is_ok());
        assert!(matches!(
            under_root(&root, Path::new("out/x")),
            Err(PathError::Link(_))
        ));
        assert!(matches!(
            under_root(&root, Path::new("real/pw")),
            Err(PathError::Link(_))
        ));
        assert!(under_root(&root, Path::new("missing/x")).is_err());
    }
}

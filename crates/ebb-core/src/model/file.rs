use std::collections::HashSet;
use std::path::{Component, Path, PathBuf};

use serde::{Deserialize, Serialize};
use url::Url;

use super::{JobId, Sha256Digest, UploadState};
use crate::error::{Error, ErrorCode, Result};

/// One byte range of a remote file (`BG_FILE_RANGE`); `length: None` reads to the end of the file
/// (`BG_LENGTH_TO_EOF`). The local file holds the ranges' bytes one after another, in the order
/// given.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ByteRange {
    pub offset: u64,
    pub length: Option<u64>,
}

impl ByteRange {
    /// BITS's limit on ranges per file (`MaxRangesPerFile`).
    pub const MAX_PER_FILE: usize = 500;
    /// The largest end offset a range may have.
    pub const MAX_END: u64 = i64::MAX as u64;

    /// Parse `OFFSET:LENGTH[,OFFSET:LENGTH...]`, where LENGTH may be `eof`.
    pub fn parse_list(text: &str) -> Result<Vec<Self>> {
        text.split(',')
            .map(|item| {
                let item = item.trim();
                let bad = || Error::InvalidArgument(format!("range {item:?} is not OFFSET:LENGTH"));
                let (off, len) = item.split_once(':').ok_or_else(bad)?;
                let offset = off.trim().parse().map_err(|_| bad())?;
                let length = if len.trim().eq_ignore_ascii_case("eof") {
                    None
                } else {
                    Some(len.trim().parse().map_err(|_| bad())?)
                };
                Ok(Self { offset, length })
            })
            .collect()
    }

    /// The exclusive end, if the length is known.
    pub fn end(self) -> Option<u64> {
        self.length.map(|l| self.offset.saturating_add(l))
    }

    /// Check a file's ranges as `AddFileWithRanges` does.
    pub fn validate_list(ranges: &[Self]) -> Result<()> {
        if ranges.len() > Self::MAX_PER_FILE {
            return Err(Error::TooLarge {
                code: ErrorCode::BG_E_TOO_MANY_RANGES_IN_FILE,
                message: format!(
                    "{} ranges; at most {} per file",
                    ranges.len(),
                    Self::MAX_PER_FILE
                ),
            });
        }
        let mut sorted: Vec<Self> = ranges.to_vec();
        sorted.sort_by_key(|r| (r.offset, r.length.is_some(), r.length));
        for pair in sorted.windows(2) {
            let (a, b) = (pair[0], pair[1]);
            let overlaps = match a.end() {
                None => true,
                Some(end) => b.offset < end || b.offset == a.offset,
            };
            if overlaps {
                return Err(Error::InvalidRange {
                    code: ErrorCode::BG_E_OVERLAPPING_RANGES,
                    message: format!(
                        "ranges {}:{} and {}:{} overlap",
                        a.offset,
                        fmt_len(a.length),
                        b.offset,
                        fmt_len(b.length)
                    ),
                });
            }
        }
        // Offsets are stored as SQLite integers and sent in `Range`: a range must end by 2^63.
        if let Some(r) = ranges.iter().find(|r| {
            r.offset > Self::MAX_END
                || r.length
                    .is_some_and(|l| r.offset.checked_add(l).is_none_or(|e| e > Self::MAX_END))
        }) {
            return Err(Error::InvalidRange {
                code: ErrorCode::BG_E_INVALID_RANGE,
                message: format!(
                    "range {}:{} ends past 2^63 bytes",
                    r.offset,
                    fmt_len(r.length)
                ),
            });
        }
        if let Some(r) = ranges.iter().find(|r| r.length == Some(0)) {
            return Err(Error::InvalidRange {
                code: ErrorCode::BG_E_INVALID_RANGE,
                message: format!("range at offset {} has length 0", r.offset),
            });
        }
        Ok(())
    }
}

fn fmt_len(l: Option<u64>) -> String {
    l.map_or_else(|| "eof".to_owned(), |l| l.to_string())
}

/// What the server told us about the remote file, to resume only the same content.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Validators {
    /// A strong entity tag (weak ones cannot be used with `If-Range`).
    pub etag: Option<String>,
    /// `Last-Modified`, as the server sent it.
    pub last_modified: Option<String>,
    /// The SHA-256 the server claims for the whole file (`Repr-Digest`, `Content-Digest` of a
    /// whole body, or `Digest`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sha256: Option<Sha256Digest>,
}

impl Validators {
    /// The value to send in `If-Range`: a strong ETag, else Last-Modified.
    pub fn if_range(&self) -> Option<&str> {
        self.etag.as_deref().or(self.last_modified.as_deref())
    }
}

/// A file to add to a job.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct NewFile {
    pub remote_url: String,
    pub local_path: PathBuf,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub ranges: Vec<ByteRange>,
    /// The SHA-256 the file's bytes must have: a file that does not match is never Transferred.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sha256: Option<Sha256Digest>,
}

impl NewFile {
    pub fn new(remote_url: impl Into<String>, local_path: impl Into<PathBuf>) -> Self {
        Self {
            remote_url: remote_url.into(),
            local_path: local_path.into(),
            ranges: Vec::new(),
            sha256: None,
        }
    }

    #[must_use]
    pub fn with_sha256(mut self, digest: Sha256Digest) -> Self {
        self.sha256 = Some(digest);
        self
    }

    #[must_use]
    pub fn with_ranges(mut self, ranges: Vec<ByteRange>) -> Self {
        self.ranges = ranges;
        self
    }

    /// Check the remote URL, the local path and the ranges; nothing is created. `dirs_ok`
    /// remembers directories already checked, so that a batch checks each once.
    pub(crate) fn validate(&self, dirs_ok: &mut HashSet<PathBuf>) -> Result<Url> {
        let url = validate_remote_url(&self.remote_url)?;
        check_local_path(&self.local_path, dirs_ok)?;
        ByteRange::validate_list(&self.ranges)?;
        Ok(url)
    }
}

impl NewFile {
    /// An upload's local file must be there, a regular file this user can read.
    pub(crate) fn validate_source(&self) -> Result<()> {
        let shown = self.local_path.display();
        let meta = std::fs::metadata(&self.local_path).map_err(|e| {
            Error::InvalidArgument(format!("local file {shown:?} cannot be uploaded: {e}"))
        })?;
        if !meta.is_file() {
            return Err(Error::InvalidArgument(format!(
                "local file {shown:?} cannot be uploaded: it is not a regular file"
            )));
        }
        let mut o = std::fs::OpenOptions::new();
        o.read(true);
        #[cfg(unix)]
        {
            use std::os::unix::fs::OpenOptionsExt;
            o.custom_flags(libc::O_NONBLOCK);
        }
        o.open(&self.local_path).map(drop).map_err(|e| {
            Error::InvalidArgument(format!("local file {shown:?} cannot be uploaded: {e}"))
        })
    }
}

/// Parse and check a remote name: `http`, `https` or `file`, no control characters.
pub fn validate_remote_url(text: &str) -> Result<Url> {
    if text.chars().any(char::is_control) {
        return Err(Error::InvalidArgument(format!(
            "remote URL {text:?} contains control characters"
        )));
    }
    let url = Url::parse(text)
        .map_err(|e| Error::InvalidArgument(format!("remote URL {text:?} is not valid: {e}")))?;
    match url.scheme() {
        "http" | "https" | "tus+http" | "tus+https" => {
            if url.host_str().is_none_or(str::is_empty) {
                return Err(Error::InvalidArgument(format!(
                    "remote URL {text:?} has no host"
                )));
            }
            // A password in the URL would be stored, logged and shown with it.
            if !url.username().is_empty() || url.password().is_some() {
                return Err(Error::InvalidArgument(format!(
                    "remote URL of host {} carries a user name or password: give them as the \
                     job's credentials (ebb set JOB --credentials-from -), not in the URL",
                    url.host_str().unwrap_or_default()
                )));
            }
        }
        "file" => {
            let path = url.to_file_path().map_err(|()| {
                Error::InvalidArgument(format!("remote URL {text:?} is not a local file path"))
            })?;
            if path.components().any(|c| c == Component::ParentDir) {
                return Err(Error::InvalidArgument(format!(
                    "remote URL {text:?} contains '..'"
                )));
            }
        }
        other => {
            return Err(Error::InvalidArgument(format!(
                "remote URL {text:?} has scheme {other:?}: only http, https and file are supported"
            )));
        }
    }
    Ok(url)
}

/// The longest file name and path the common file systems take (`NAME_MAX`, `PATH_MAX` - 1).
const MAX_NAME_BYTES: usize = 255;
const MAX_PATH_BYTES: usize = 4095;
/// `.ebb-<32 hex digits>-<index>.tmp`, with room for any index.
const MAX_TEMP_NAME: usize = ".ebb-".len() + 32 + 1 + 20 + ".tmp".len();

/// A local name must be absolute, free of `..`, not a directory, and its directory must exist.
pub fn validate_local_path(path: &Path) -> Result<()> {
    check_local_path(path, &mut HashSet::new())
}

fn check_local_path(path: &Path, dirs_ok: &mut HashSet<PathBuf>) -> Result<()> {
    check_path_text(path)?;
    check_path_on_disk(path, dirs_ok)
}

/// What the path says by itself: absolute, no `.` or `..`, printable, and short enough.
fn check_path_text(path: &Path) -> Result<()> {
    let shown = path.display();
    if !path.is_absolute() {
        return Err(Error::InvalidArgument(format!(
            "local path {shown:?} is relative: give an absolute path"
        )));
    }
    if path
        .components()
        .any(|c| matches!(c, Component::ParentDir | Component::CurDir))
    {
        return Err(Error::InvalidArgument(format!(
            "local path {shown:?} contains '.' or '..'"
        )));
    }
    if path
        .to_str()
        .is_none_or(|s| s.chars().any(char::is_control))
    {
        return Err(Error::InvalidArgument(format!(
            "local path {shown:?} is not valid UTF-8 or contains control characters"
        )));
    }
    // Refused now, not after the whole file has downloaded and Complete cannot rename it. The
    // hidden temporary file beside it must fit too.
    let dir_len = path.parent().map_or(0, |p| p.as_os_str().len());
    let longest = path.as_os_str().len().max(dir_len + 1 + MAX_TEMP_NAME);
    if longest > MAX_PATH_BYTES {
        return Err(Error::InvalidArgument(format!(
            "local path {shown:?} is {} bytes long (its temporary file's {}); at most \
             {MAX_PATH_BYTES}",
            path.as_os_str().len(),
            dir_len + 1 + MAX_TEMP_NAME
        )));
    }
    if let Some(long) = path
        .components()
        .find(|c| c.as_os_str().len() > MAX_NAME_BYTES)
    {
        return Err(Error::InvalidArgument(format!(
            "local path {shown:?}: the name {:?}... is {} bytes long; at most {MAX_NAME_BYTES}",
            long.as_os_str()
                .to_string_lossy()
                .chars()
                .take(40)
                .collect::<String>(),
            long.as_os_str().len()
        )));
    }
    Ok(())
}

/// What the file system says: the directory exists, and the name is no directory or device.
fn check_path_on_disk(path: &Path, dirs_ok: &mut HashSet<PathBuf>) -> Result<()> {
    let shown = path.display();
    let (Some(parent), Some(_)) = (path.parent(), path.file_name()) else {
        return Err(Error::InvalidArgument(format!(
            "local path {shown:?} names no file"
        )));
    };
    let checked = dirs_ok.contains(parent);
    match (!checked).then(|| std::fs::metadata(parent)) {
        None => {}
        Some(Ok(m)) if m.is_dir() => {
            dirs_ok.insert(parent.to_path_buf());
        }
        Some(Ok(_)) => {
            return Err(Error::InvalidArgument(format!(
                "local path {shown:?}: {} is not a directory",
                parent.display()
            )));
        }
        Some(Err(e)) => {
            return Err(Error::InvalidArgument(format!(
                "local path {shown:?}: directory {} cannot be used: {e}",
                parent.display()
            )));
        }
    }
    if let Ok(meta) = std::fs::symlink_metadata(path) {
        if meta.is_dir() {
            return Err(Error::InvalidArgument(format!(
                "local path {shown:?} is a directory"
            )));
        }
        // Complete renames over the final name: never over a device, socket or pipe.
        if !meta.is_file() && !meta.file_type().is_symlink() {
            return Err(Error::InvalidArgument(format!(
                "local path {shown:?} exists and is not a regular file"
            )));
        }
    }
    Ok(())
}

/// A file of a job, as stored and as reported.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct JobFile {
    pub remote_url: String,
    pub local_path: PathBuf,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub ranges: Vec<ByteRange>,
    /// The hidden file in the destination directory that receives the bytes until Complete.
    pub temp_path: PathBuf,
    /// Total size (the sum of the ranges, for a ranged file); `None` while unknown.
    pub bytes_total: Option<u64>,
    pub bytes_transferred: u64,
    pub completed: bool,
    #[serde(default)]
    pub validators: Validators,
    /// The SHA-256 the app expects of the file's bytes.
    #[serde(default)]
    pub expected_sha256: Option<Sha256Digest>,
    /// The SHA-256 the transferred bytes were checked against (the app's or the server's).
    #[serde(default)]
    pub verified_sha256: Option<Sha256Digest>,
    /// The running hash of the bytes so far, as of the durable progress (not on the wire).
    #[serde(skip)]
    pub(crate) hash_state: Option<Vec<u8>>,
    /// An upload file's session with the server (not on the wire: the session id is a
    /// capability).
    #[serde(skip)]
    pub(crate) upload: Option<UploadState>,
    /// A file fetched over several connections at once: each connection's part and how far it
    /// is (not on the wire). Empty for a file fetched over one connection.
    #[serde(skip)]
    pub(crate) splits: Vec<Split>,
}

/// A part of a file fetched over its own connection: bytes `[start, next)` are on disk,
/// `[next, end)` are still to come.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Split {
    pub start: u64,
    pub next: u64,
    pub end: u64,
}

impl JobFile {
    /// A file as another backend reports it (native BITS keeps its own temporary files, so
    /// `temp_path` is empty and there are no validators).
    pub fn reported(
        remote_url: String,
        local_path: PathBuf,
        bytes_total: Option<u64>,
        bytes_transferred: u64,
        completed: bool,
    ) -> Self {
        Self {
            remote_url,
            local_path,
            ranges: Vec::new(),
            temp_path: PathBuf::new(),
            bytes_total,
            bytes_transferred,
            completed,
            validators: Validators::default(),
            expected_sha256: None,
            verified_sha256: None,
            hash_state: None,
            upload: None,
            splits: Vec::new(),
        }
    }

    pub(crate) fn new(job: JobId, index: usize, file: NewFile) -> Self {
        let temp_path = temp_path_for(job, index, &file.local_path);
        Self {
            remote_url: file.remote_url,
            local_path: file.local_path,
            ranges: file.ranges,
            temp_path,
            bytes_total: None,
            bytes_transferred: 0,
            completed: false,
            validators: Validators::default(),
            expected_sha256: file.sha256,
            verified_sha256: None,
            hash_state: None,
            upload: None,
            splits: Vec::new(),
        }
    }

    /// The digest the file's bytes must match, if any: the app's, and for a whole file the
    /// server's claim.
    pub(crate) fn digests_to_check(&self) -> [Option<Sha256Digest>; 2] {
        let server = self
            .ranges
            .is_empty()
            .then_some(self.validators.sha256)
            .flatten();
        [self.expected_sha256, server]
    }
}

/// `.ebb-<job>-<index>.tmp` beside the final file: hidden, unique to the job, and computable
/// after a crash without any record of its creation.
pub(crate) fn temp_path_for(job: JobId, index: usize, local: &Path) -> PathBuf {
    let name = format!(".ebb-{}-{index}.tmp", job.simple());
    local
        .parent()
        .map_or_else(|| PathBuf::from(&name), |dir| dir.join(&name))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges_parse_and_validate() {
        let r = ByteRange::parse_list("0:100,2000:100,5000:eof").unwrap();
        assert_eq!(
            r[2],
            ByteRange {
                offset: 5000,
                length: None
            }
        );
        assert!(ByteRange::validate_list(&r).is_ok());
        let overlap = ByteRange::parse_list("0:100,50:10").unwrap();
        let err = ByteRange::validate_list(&overlap).unwrap_err();
        assert_eq!(err.code(), ErrorCode::BG_E_OVERLAPPING_RANGES);
        let after_eof = ByteRange::parse_list("100:eof,200:5").unwrap();
        assert!(ByteRange::validate_list(&after_eof).is_err());
        for huge in [
            "18446744073709551000:1000",
            "9223372036854775807:1",
            "18446744073709551615:eof",
        ] {
            let r = ByteRange::parse_list(huge).unwrap();
            let err = ByteRange::validate_list(&r).unwrap_err();
            assert_eq!(err.code(), ErrorCode::BG_E_INVALID_RANGE, "{huge}");
        }
        assert!(
            ByteRange::validate_list(&ByteRange::parse_list("9223372036854775806:1").unwrap())
                .is_ok()
        );
        let zero_first = ByteRange::parse_list("10:0,10:5").unwrap();
        assert_eq!(
            ByteRange::validate_list(&zero_first).unwrap_err().code(),
            ErrorCode::BG_E_OVERLAPPING_RANGES
        );
        assert!(ByteRange::parse_list("x:1").is_err());
    }

    #[test]
    fn remote_urls() {
        assert!(validate_remote_url("http://127.0.0.1:80/a").is_ok());
        assert!(validate_remote_url("file:///etc/hostname").is_ok());
        assert!(validate_remote_url("ftp://h/x").is_err());
        assert!(validate_remote_url("http://h/a\r\nX: y").is_err());
        assert!(validate_remote_url("not a url").is_err());
        let err = validate_remote_url("https://ann:s3cret@h/x").unwrap_err();
        assert!(!err.to_string().contains("s3cret"), "{err}");
        assert!(validate_remote_url("https://ann@h/x").is_err());
    }

    #[test]
    fn local_paths() {
        let dir = tempfile::tempdir().unwrap();
        let ok = dir.path().join("f.bin");
        assert!(validate_local_path(&ok).is_ok());
        assert!(validate_local_path(Path::new("rel/f.bin")).is_err());
        assert!(validate_local_path(&dir.path().join("a/../f.bin")).is_err());
        assert!(validate_local_path(dir.path()).is_err());
        assert!(validate_local_path(&dir.path().join("missing/f.bin")).is_err());
        let err = validate_local_path(Path::new("/dev/null")).unwrap_err();
        assert!(err.to_string().contains("not a regular file"), "{err}");
        let long_name = dir.path().join("n".repeat(256));
        let err = validate_local_path(&long_name).unwrap_err();
        assert!(err.to_string().contains("256 bytes long"), "{err}");
        assert!(validate_local_path(&dir.path().join("n".repeat(255))).is_ok());
        let deep: PathBuf = std::iter::once(dir.path().to_path_buf())
            .chain((0..20).map(|_| PathBuf::from("d".repeat(250))))
            .collect();
        let err = validate_local_path(&deep.join("f")).unwrap_err();
        assert!(err.to_string().contains("at most 4095"), "{err}");
    }
}

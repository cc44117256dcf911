//! A node's spool: the part each of its object sessions is filling, one file per part
//! (`<session>.<part>`), until it is full and put to the bucket. The spool is emptied when the
//! node starts: a tail is not the store's, and a client whose tail is lost sends it again.

use std::path::{Path, PathBuf};

use axum::body::Bytes;
use tokio::io::{AsyncSeekExt, AsyncWriteExt};

use crate::ack::Refusal;
use crate::error::{Error, Result};
use crate::upload::body::NewBytes;
use crate::upload::file::io_refusal;

#[derive(Debug)]
pub struct Spool {
    dir: PathBuf,
}

impl Spool {
    /// The spool at `dir`, created, and emptied of the parts an earlier run left (only files
    /// named as parts are: the directory may be shared with anything).
    pub fn open(dir: &Path) -> Result<Self> {
        std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
        for entry in std::fs::read_dir(dir).map_err(|e| Error::io(dir, e))? {
            let path = entry.map_err(|e| Error::io(dir, e))?.path();
            let name = path.file_name().map(|n| n.to_string_lossy().into_owned());
            if name.as_deref().is_some_and(is_part) && path.is_file() {
                std::fs::remove_file(&path).map_err(|e| Error::io(&path, e))?;
            }
        }
        Ok(Self {
            dir: dir.to_path_buf(),
        })
    }

    fn file(&self, name: &str, index: usize) -> PathBuf {
        self.dir.join(format!("{name}.{index}"))
    }

    /// Write a fragment's new bytes, the upload's bytes from `offset`, into the parts of
    /// `part_size` bytes they fall in.
    pub async fn write(
        &self,
        name: &str,
        part_size: u64,
        offset: u64,
        mut body: NewBytes,
    ) -> Result<(), Refusal> {
        let mut at = offset;
        let mut part: Option<(usize, PathBuf, tokio::fs::File)> = None;
        while let Some(mut chunk) = body.next().await? {
            while !chunk.is_empty() {
                let index = usize::try_from(at / part_size).unwrap_or(usize::MAX);
                let within = at % part_size;
                if part.as_ref().is_none_or(|(i, ..)| *i != index) {
                    if let Some((_, path, file)) = part.take() {
                        flush(&path, file).await?;
                    }
                    let path = self.file(name, index);
                    part = Some((index, path.clone(), open_at(&path, within).await?));
                }
                let Some((_, path, file)) = part.as_mut() else {
                    break;
                };
                let room = usize::try_from(part_size - within).unwrap_or(usize::MAX);
                let now = chunk.split_to(room.min(chunk.len()));
                file.write_all(&now)
                    .await
                    .map_err(|e| io_refusal(path, &e))?;
                at += now.len() as u64;
            }
        }
        if let Some((_, path, file)) = part {
            flush(&path, file).await?;
        }
        Ok(())
    }

    /// Whether the spool still holds session `name`'s bytes from the start of the part that
    /// `offset` falls in up to `offset` (nothing removed them behind the node's back).
    pub async fn holds(&self, name: &str, part_size: u64, offset: u64) -> bool {
        let within = offset % part_size;
        if within == 0 {
            return true;
        }
        let index = usize::try_from(offset / part_size).unwrap_or(usize::MAX);
        tokio::fs::metadata(self.file(name, index))
            .await
            .is_ok_and(|m| m.len() >= within)
    }

    /// The first `len` bytes of part `index` of session `name`.
    pub async fn read(&self, name: &str, index: usize, len: u64) -> Result<Bytes, Refusal> {
        let path = self.file(name, index);
        let mut bytes = tokio::fs::read(&path)
            .await
            .map_err(|e| io_refusal(&path, &e))?;
        if (bytes.len() as u64) < len {
            return Err(io_refusal(
                &path,
                &std::io::Error::other(format!("{} bytes where {len} were held", bytes.len())),
            ));
        }
        bytes.truncate(usize::try_from(len).unwrap_or(usize::MAX));
        Ok(Bytes::from(bytes))
    }

    /// Delete part `index` of session `name`, put to the bucket.
    pub async fn remove(&self, name: &str, index: usize) {
        let _ = tokio::fs::remove_file(self.file(name, index)).await;
    }

    /// Delete every part of session `name`.
    pub async fn forget(&self, name: &str) {
        let Ok(mut entries) = tokio::fs::read_dir(&self.dir).await else {
            return;
        };
        let prefix = format!("{name}.");
        while let Ok(Some(entry)) = entries.next_entry().await {
            if entry.file_name().to_string_lossy().starts_with(&prefix) {
                let _ = tokio::fs::remove_file(entry.path()).await;
            }
        }
    }
}

/// Whether a file name is a part's: `<session key>.<index>`, the key 32 hex digits.
fn is_part(name: &str) -> bool {
    name.split_once('.').is_some_and(|(key, index)| {
        key.len() == 32
            && key.bytes().all(|b| b.is_ascii_hexdigit())
            && !index.is_empty()
            && index.bytes().all(|b| b.is_ascii_digit())
    })
}

/// A part's file, cut to `at` bytes (what was past them is stale) and positioned there.
async fn open_at(path: &Path, at: u64) -> Result<tokio::fs::File, Refusal> {
    let io = |e: std::io::Error| io_refusal(path, &e);
    let mut file = tokio::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(false)
        .open(path)
        .await
        .map_err(io)?;
    file.set_len(at).await.map_err(io)?;
    file.seek(std::io::SeekFrom::Start(at)).await.map_err(io)?;
    Ok(file)
}

/// The tail is acknowledged once written, not synced: a node's crash loses its tails anyway
/// (the spool is emptied at start), and the client sends them again.
async fn flush(path: &Path, mut file: tokio::fs::File) -> Result<(), Refusal> {
    file.flush().await.map_err(|e| io_refusal(path, &e))
}

//! One attempt at one file: its open temporary file, whether the job was told it connected,
//! and the running hash of its bytes when a digest is to be checked.
//!
//! The hash covers the file's bytes from the first; its state is saved into the file (and so
//! into every checkpoint) together with the byte count it covers, so that a resume continues it
//! only when the count is the durable progress. Otherwise the file is read once at the end.

use super::checkpoint::Checkpointer;
use super::digest::{FileHash, hash_file};
use super::{Failure, Fetched, FileCx, temp_file};
use crate::error::{ErrorCode, ErrorContext, Status};
use crate::model::{JobFile, Validators};

/// One attempt at one file.
/// Invariant: `file.bytes_transferred == temp.len()` whenever control leaves a method, unless
/// the file is split (then every split's bytes `[start, next)` are in `temp`).
#[derive(Debug)]
pub(crate) struct Attempt {
    temp: temp_file::TempFile,
    announced: bool,
    /// The hash of bytes `0..file.bytes_transferred`, when a digest is to be checked and the
    /// hash is known from the first byte.
    hash: Option<FileHash>,
    /// Where the kernel was last asked to start writing the file out (see `WRITEBACK`).
    written_back: u64,
}

/// Every this many bytes of a file, the kernel is asked to start writing them out, so that the
/// disk works while the bytes arrive and a checkpoint's sync has little left to wait for.
const WRITEBACK: u64 = 8 << 20;

impl Attempt {
    /// Open the temporary file at the durable progress, or start the file over if the bytes
    /// the store counts are not there.
    pub(super) async fn new(
        cx: &FileCx<'_>,
        file: &mut JobFile,
        ckpt: &Checkpointer,
    ) -> Result<Self, Failure> {
        // A split file's durable bytes end at its furthest split.
        let durable = if file.splits.is_empty() {
            file.bytes_transferred
        } else {
            super::http::high_water(&file.splits)
        };
        let reopened = if file.bytes_transferred > 0 {
            temp_file::TempFile::reopen(&file.temp_path, durable)?
        } else {
            None
        };
        let temp = if let Some(t) = reopened {
            t
        } else {
            if file.bytes_transferred > 0 {
                tracing::warn!(path = %file.temp_path.display(), "temporary file lost; starting the file over");
            }
            reset(file);
            temp_file::TempFile::create(&file.temp_path)?
        };
        ckpt.lock().await.opened(&temp)?;
        cx.live.show(cx.index, file);
        let hash = saved_hash(file);
        let written_back = temp.len();
        let mut attempt = Self {
            temp,
            announced: false,
            hash,
            written_back,
        };
        attempt.begin_hash(file);
        Ok(attempt)
    }

    /// Throw the bytes away and start the file over.
    pub(super) fn restart(&mut self, cx: &FileCx<'_>, file: &mut JobFile) -> Result<(), Failure> {
        self.temp.truncate_to(0)?;
        self.written_back = 0;
        reset(file);
        self.hash = None;
        self.begin_hash(file);
        cx.live.show(cx.index, file);
        Ok(())
    }

    /// Start hashing at the first byte if a digest is to be checked (the app's, or one the
    /// server just named).
    pub(super) fn begin_hash(&mut self, file: &JobFile) {
        if self.hash.is_none()
            && file.bytes_transferred == 0
            && file.splits.is_empty()
            && file.digests_to_check().iter().any(Option::is_some)
        {
            self.hash = Some(FileHash::default());
        }
    }

    /// Tell the job it is transferring (Connecting -> Transferring), once.
    pub(super) fn announce(&mut self, cx: &FileCx<'_>) {
        if !self.announced {
            self.announced = true;
            (cx.connected)();
        }
    }

    pub(super) async fn write(
        &mut self,
        cx: &FileCx<'_>,
        file: &mut JobFile,
        ckpt: &Checkpointer,
        data: &[u8],
    ) -> Result<(), Failure> {
        self.temp.write(data)?;
        if let Some(h) = &mut self.hash {
            h.update(data);
        }
        let n = data.len() as u64;
        file.bytes_transferred += n;
        debug_assert_eq!(file.bytes_transferred, self.temp.len());
        if self.temp.len() >= self.written_back + WRITEBACK {
            self.temp
                .start_writeback(self.written_back, self.temp.len() - self.written_back);
            self.written_back = self.temp.len();
        }
        cx.live.show(cx.index, file);
        cx.live.add_moved(n);
        let mut ckpt = ckpt.lock().await;
        ckpt.add(cx.index, n);
        let due = ckpt.due(Some(cx.index));
        if due {
            self.save_hash(file);
        }
        ckpt.tick_if(due, Some((&self.temp, cx.index, file))).await
    }

    /// Write the next bytes of split `split` at its place (see `http::split`); the split counts
    /// them only once they are written. No running hash: a split file's digest is checked by
    /// reading it once at the end.
    pub(super) async fn write_split(
        &mut self,
        cx: &FileCx<'_>,
        file: &mut JobFile,
        ckpt: &Checkpointer,
        split: usize,
        data: &[u8],
    ) -> Result<(), Failure> {
        let Some(s) = file.splits.get_mut(split) else {
            return Ok(());
        };
        self.temp.write_at(s.next, data)?;
        let n = data.len() as u64;
        s.next += n;
        file.bytes_transferred += n;
        cx.live.show(cx.index, file);
        cx.live.add_moved(n);
        debug_assert_eq!(
            file.bytes_transferred,
            file.splits.iter().map(|s| s.next - s.start).sum::<u64>(),
            "{:?}",
            file.splits
        );
        let mut ckpt = ckpt.lock().await;
        ckpt.add(cx.index, n);
        let due = ckpt.due(Some(cx.index));
        ckpt.tick_if(due, Some((&self.temp, cx.index, file))).await
    }

    /// The file is about to be split: its bytes no longer arrive in order, so no running hash.
    pub(super) fn split(&mut self, file: &mut JobFile) {
        self.hash = None;
        file.hash_state = None;
    }

    /// Put the hash state into the file, so that the next checkpoint stores it.
    fn save_hash(&self, file: &mut JobFile) {
        file.hash_state = self.hash.as_ref().map(|h| {
            let mut state = file.bytes_transferred.to_le_bytes().to_vec();
            state.extend(h.save());
            state
        });
    }

    /// Settle the attempt: a finished file is checked against its digests, then joins the next
    /// checkpoint's batch (it is completed once that checkpoint is durable, not before); a
    /// stopped or failed one is checkpointed now, so that the next attempt resumes where this
    /// one ended.
    pub(super) async fn finish(
        mut self,
        cx: &FileCx<'_>,
        file: &mut JobFile,
        ckpt: &Checkpointer,
        result: Result<Fetched, Failure>,
    ) -> Result<Fetched, Failure> {
        let result = match result {
            Ok(Fetched::Completed) => self.verify(cx, file).await,
            other => other,
        };
        match result {
            Ok(Fetched::Completed) => {
                file.bytes_total = Some(file.bytes_total.unwrap_or(file.bytes_transferred));
                file.hash_state = None;
                file.splits.clear();
                let identity = self.temp.identity();
                // A finished file's last bytes go to disk now rather than at the batch's sync;
                // a small file's few wait for it (one request for many small files is cheaper
                // than one each).
                if self.temp.len() - self.written_back >= WRITEBACK / 32 {
                    self.temp.start_writeback(self.written_back, 0);
                }
                drop(self.temp);
                let mut ckpt = ckpt.lock().await;
                ckpt.file_done(cx.index, file.clone(), identity).await?;
                cx.live.show(cx.index, file);
                ckpt.tick().await?;
                Ok(Fetched::Completed)
            }
            Ok(Fetched::Stopped) => {
                self.save_hash(file);
                ckpt.flush(Some((&self.temp, cx.index, file))).await?;
                Ok(Fetched::Stopped)
            }
            Err(failure) => {
                self.save_hash(file);
                if let Err(e) = ckpt.flush(Some((&self.temp, cx.index, file))).await {
                    tracing::warn!(error = %e.error.description, "could not checkpoint after a failure");
                }
                Err(failure)
            }
        }
    }

    /// Check the finished bytes against the app's digest and the server's: `Completed`, or
    /// `Stopped` if told to stop while reading the file for its hash. A mismatch throws the
    /// bytes away (the file starts over) and is an error.
    async fn verify(&mut self, cx: &FileCx<'_>, file: &mut JobFile) -> Result<Fetched, Failure> {
        let wanted = file.digests_to_check();
        if wanted.iter().all(Option::is_none) {
            return Ok(Fetched::Completed);
        }
        let got = if let Some(h) = self.hash.take() {
            h.finish()
        } else {
            // The hash did not start at the first byte: read the file once.
            let (path, stop) = (file.temp_path.clone(), cx.stop.clone());
            let hashed = tokio::task::spawn_blocking(move || hash_file(&path, &stop))
                .await
                .map_err(|e| Failure::local_io(&file.temp_path, &std::io::Error::other(e)))??;
            let Some(got) = hashed else {
                return Ok(Fetched::Stopped);
            };
            got
        };
        let Some(want) = wanted.into_iter().flatten().find(|&w| w != got) else {
            tracing::debug!(sha256 = %got, "digest verified");
            file.verified_sha256 = Some(got);
            return Ok(Fetched::Completed);
        };
        let whose = if file.expected_sha256 == Some(want) {
            "the expected"
        } else {
            "the server's"
        };
        let url = file.remote_url.clone();
        self.temp.truncate_to(0)?;
        reset(file);
        cx.live.show(cx.index, file);
        Err(Failure::new(
            Status::Permanent,
            ErrorContext::RemoteFile,
            ErrorCode::E_DIGEST_MISMATCH,
            format!("({url}: the bytes have SHA-256 {got}, not {whose} {want})"),
        ))
    }
}

/// The hash state saved with the durable progress, if it covers exactly that progress.
fn saved_hash(file: &JobFile) -> Option<FileHash> {
    if file.bytes_transferred == 0 {
        return None;
    }
    let state = file.hash_state.as_deref()?;
    let (count, saved) = state.split_at_checked(8)?;
    let count = u64::from_le_bytes(count.try_into().ok()?);
    (count == file.bytes_transferred)
        .then(|| FileHash::restore(saved))
        .flatten()
}

fn reset(file: &mut JobFile) {
    file.bytes_transferred = 0;
    file.splits.clear();
    file.validators = Validators::default();
    file.bytes_total = None;
    file.hash_state = None;
    file.verified_sha256 = None;
}

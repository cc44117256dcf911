//! The SHA-256 of a file, computed as its bytes are written and carried across checkpoints.
//!
//! The running state is saved with each checkpoint (RustCrypto's serializable hash state), so a
//! resumed file goes on hashing from where its durable bytes end instead of reading the file
//! again. A state that cannot be restored (say, from another version of the hash crate) is not
//! an error: the file is then read once at the end.

use std::io::Read;
use std::path::Path;

use sha2::digest::common::hazmat::{SerializableState, SerializedState};
use sha2::{Digest, Sha256};

use super::Failure;
use crate::model::Sha256Digest;

/// A running SHA-256.
#[derive(Clone, Debug, Default)]
pub(crate) struct FileHash(Sha256);

impl FileHash {
    pub(crate) fn update(&mut self, data: &[u8]) {
        self.0.update(data);
    }

    pub(crate) fn finish(self) -> Sha256Digest {
        Sha256Digest(self.0.finalize().into())
    }

    /// The state, to be stored with a checkpoint.
    pub(crate) fn save(&self) -> Vec<u8> {
        self.0.serialize().to_vec()
    }

    /// A saved state, or `None` if it cannot be restored.
    pub(crate) fn restore(saved: &[u8]) -> Option<Self> {
        let state = SerializedState::<Sha256>::try_from(saved).ok()?;
        Sha256::deserialize(&state).ok().map(Self)
    }
}

/// Hash a whole file (a resumed file whose running state was lost); `None` if `stop` is
/// cancelled first. Blocking: call it from a blocking thread.
pub(crate) fn hash_file(
    path: &Path,
    stop: &tokio_util::sync::CancellationToken,
) -> Result<Option<Sha256Digest>, Failure> {
    let mut o = std::fs::OpenOptions::new();
    let mut file = super::temp_file::nonblocking(o.read(true))
        .open(path)
        .map_err(|e| Failure::local_io(path, &e))?;
    let mut hash = FileHash::default();
    let mut buf = vec![0u8; 1 << 20];
    loop {
        if stop.is_cancelled() {
            return Ok(None);
        }
        let n = file
            .read(&mut buf)
            .map_err(|e| Failure::local_io(path, &e))?;
        if n == 0 {
            return Ok(Some(hash.finish()));
        }
        hash.update(&buf[..n]);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_saved_state_goes_on_where_it_stopped() {
        let data: Vec<u8> = (0..100_000u32).map(|i| (i * 7 + i / 13) as u8).collect();
        let mut whole = FileHash::default();
        whole.update(&data);
        let want = whole.finish();
        // Stopped at an odd offset (inside a block), saved, restored, finished.
        let mut first = FileHash::default();
        first.update(&data[..33_333]);
        let saved = first.save();
        let mut second = FileHash::restore(&saved).unwrap();
        second.update(&data[33_333..]);
        assert_eq!(second.finish(), want);
        assert!(FileHash::restore(b"not a state").is_none());
        // Empty input: the well-known digest.
        assert_eq!(
            FileHash::default().finish().to_string(),
            "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
        );
    }

    #[test]
    fn a_file_is_hashed_from_disk() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f");
        std::fs::write(&path, b"abc").unwrap();
        let stop = tokio_util::sync::CancellationToken::new();
        assert_eq!(
            hash_file(&path, &stop).unwrap().unwrap().to_string(),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
        stop.cancel();
        assert_eq!(hash_file(&path, &stop).unwrap(), None);
    }
}

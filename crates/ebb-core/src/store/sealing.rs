//! Passwords at rest: sealed with ChaCha20-Poly1305 under the user's queue key (see
//! `secret_key`), bound to their job and field, padded so that their length does not show.
//!
//! A sealed value is stored as `ebk1:` and the hex of nonce, ciphertext and tag. A value without
//! that prefix is plaintext from an older ebb: it is read as it is and sealed at the next open.

use std::fmt::Write as _;

use ring::aead::{Aad, CHACHA20_POLY1305, LessSafeKey, NONCE_LEN, Nonce, UnboundKey};
use ring::rand::{SecureRandom, SystemRandom};

use crate::model::JobId;

const PREFIX: &str = "ebk1:";
/// Sealed passwords take a multiple of this many bytes, whatever their length.
const PAD: usize = 32;

/// Seals and opens passwords with one key.
pub(crate) struct Sealer {
    key: LessSafeKey,
    rng: SystemRandom,
    fingerprint: String,
    /// Drop passwords sealed under another key instead of refusing to open the queue.
    forget_others: bool,
}

impl std::fmt::Debug for Sealer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Sealer(<key>)")
    }
}

/// What a stored password turned out to be.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Opened {
    Sealed(String),
    /// Stored by an older ebb, unsealed: to be sealed now.
    Plain(String),
    /// Sealed under another key (the key was lost or replaced), or damaged.
    Unreadable,
}

fn aad(job: JobId, field: &str) -> String {
    format!("ebb/{}/{field}", job.simple())
}

impl Sealer {
    /// `None` only if the key were not a ChaCha20-Poly1305 key (it always is: 32 bytes).
    pub(crate) fn new(key: &[u8; 32], forget_others: bool) -> Option<Self> {
        let unbound = UnboundKey::new(&CHACHA20_POLY1305, key).ok()?;
        Some(Self {
            key: LessSafeKey::new(unbound),
            rng: SystemRandom::new(),
            fingerprint: crate::secret_key::fingerprint(key),
            forget_others,
        })
    }

    /// Names the key without revealing it (the start of its SHA-256).
    pub(crate) fn fingerprint(&self) -> &str {
        &self.fingerprint
    }

    pub(crate) fn forgets_others(&self) -> bool {
        self.forget_others
    }

    /// Seal a password; `None` if the system's random source fails (a nonce must never repeat).
    pub(crate) fn seal(&self, job: JobId, field: &str, password: &str) -> Option<String> {
        let mut buf = (password.len() as u32).to_le_bytes().to_vec();
        buf.extend_from_slice(password.as_bytes());
        buf.resize(buf.len().div_ceil(PAD) * PAD, 0);
        let mut nonce = [0u8; NONCE_LEN];
        self.rng.fill(&mut nonce).ok()?;
        self.key
            .seal_in_place_append_tag(
                Nonce::assume_unique_for_key(nonce),
                Aad::from(aad(job, field).as_bytes()),
                &mut buf,
            )
            .ok()?;
        let mut out = String::with_capacity(PREFIX.len() + 2 * (NONCE_LEN + buf.len()));
        out.push_str(PREFIX);
        for b in nonce.iter().chain(&buf) {
            let _ = write!(out, "{b:02x}");
        }
        Some(out)
    }

    pub(crate) fn open(&self, job: JobId, field: &str, stored: &str) -> Opened {
        let Some(hex) = stored.strip_prefix(PREFIX) else {
            return Opened::Plain(stored.to_owned());
        };
        let Some(bytes) = unhex(hex) else {
            return Opened::Unreadable;
        };
        if bytes.len() < NONCE_LEN + CHACHA20_POLY1305.tag_len() {
            return Opened::Unreadable;
        }
        let (nonce, sealed) = bytes.split_at(NONCE_LEN);
        let Ok(nonce) = Nonce::try_assume_unique_for_key(nonce) else {
            return Opened::Unreadable;
        };
        let mut buf = sealed.to_vec();
        let Ok(plain) =
            self.key
                .open_in_place(nonce, Aad::from(aad(job, field).as_bytes()), &mut buf)
        else {
            return Opened::Unreadable;
        };
        let Some((len, rest)) = plain.split_first_chunk::<4>() else {
            return Opened::Unreadable;
        };
        let len = u32::from_le_bytes(*len) as usize;
        rest.get(..len)
            .and_then(|p| String::from_utf8(p.to_vec()).ok())
            .map_or(Opened::Unreadable, Opened::Sealed)
    }
}

fn unhex(text: &str) -> Option<Vec<u8>> {
    if !text.len().is_multiple_of(2) || !text.is_ascii() {
        return None;
    }
    (0..text.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&text[i..i + 2], 16).ok())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sealed_passwords_open_only_for_their_job_field_and_key() {
        let s = Sealer::new(&[7; 32], false).unwrap();
        let (job, other) = (JobId::new(), JobId::new());
        let sealed = s.seal(job, "server", "s3cret").unwrap();
        assert!(sealed.starts_with(PREFIX) && !sealed.contains("s3cret"));
        assert_eq!(
            s.open(job, "server", &sealed),
            Opened::Sealed("s3cret".into())
        );
        assert_eq!(s.open(job, "proxy", &sealed), Opened::Unreadable);
        assert_eq!(s.open(other, "server", &sealed), Opened::Unreadable);
        assert_eq!(
            Sealer::new(&[8; 32], false)
                .unwrap()
                .open(job, "server", &sealed),
            Opened::Unreadable
        );
        // Two seals of one password differ (random nonce); lengths do not show.
        assert_ne!(Some(&sealed), s.seal(job, "server", "s3cret").as_ref());
        assert_eq!(sealed.len(), s.seal(job, "server", "a").unwrap().len());
        assert_eq!(
            s.open(job, "server", "legacy"),
            Opened::Plain("legacy".into())
        );
        assert_eq!(s.open(job, "server", "ebk1:zz"), Opened::Unreadable);
    }
}

//! Object storage (S3 or compatible, through the `object_store` crate): each session is one
//! multipart upload, completed at Close-Session and aborted when the session is cancelled or
//! expires.
//!
//! Parts have one size per session (S3 wants every part but the last at least 5 MiB; some
//! stores want them equal), while fragments are whatever the client sends. So the node that
//! takes a session's fragments keeps the part being filled, its *tail*, in a spool file of its
//! own and acknowledges it from there; each full part is put to the bucket and then committed
//! to the session's row by a compare-and-set. No database round trip per fragment, one per
//! part. A node that dies takes its tail with it: another node answers from the committed
//! offset (416), and the client sends that part again.

mod serve;
mod spool;

use std::collections::BTreeMap;
use std::path::Path;
use std::str::FromStr;
use std::sync::Arc;

use axum::http::StatusCode;
use object_store::aws::{AmazonS3Builder, AmazonS3ConfigKey};
use object_store::multipart::{MultipartStore, PartId};
use object_store::path::Path as Key;
use object_store::signer::Signer;
use object_store::{ObjectStore, ObjectStoreExt, PutPayload};

use crate::ack::{Code, Refusal};
use crate::error::{Error, Result};
use crate::sessions::ObjectUpload;
pub use spool::Spool;

/// A bucket: objects, and multipart uploads that outlive a process.
pub trait Bucket: ObjectStore + MultipartStore {}

impl<T: ObjectStore + MultipartStore> Bucket for T {}

/// S3 takes at most 10,000 parts.
const MAX_PARTS: u64 = 10_000;

/// How many parts one node puts at once (each is read into memory whole).
const PUTS_AT_ONCE: usize = 8;

/// The smallest part S3 takes (but for the last).
pub const MIN_PART_SIZE: u64 = 5 << 20;

/// The bucket uploads go to.
pub struct Objects {
    bucket: Arc<dyn Bucket>,
    /// Pre-signed URLs for server applications (upload-reply), where the store makes them.
    signer: Option<Arc<dyn Signer>>,
    /// What the bucket is, for messages: `s3://name/prefix`.
    name: String,
    /// `s3://name`: an object's name for a server application is this and its key.
    bucket_url: String,
    /// Every key starts with this.
    prefix: Key,
    part_size: u64,
    pub spool: Spool,
    puts: tokio::sync::Semaphore,
}

impl std::fmt::Debug for Objects {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Objects")
            .field("bucket", &self.name)
            .field("part_size", &self.part_size)
            .finish_non_exhaustive()
    }
}

impl Objects {
    /// The S3 bucket at `url` (`s3://bucket[/prefix]`), with `options` (object_store's
    /// `AmazonS3ConfigKey` names: `endpoint`, `region`, `allow_http`, ...) over the `AWS_*`
    /// environment; the spool at `spool`, emptied.
    pub fn s3(
        url: &str,
        options: &BTreeMap<String, String>,
        part_size: u64,
        spool: &Path,
    ) -> Result<Self> {
        let mut builder = AmazonS3Builder::from_env().with_url(url);
        for (key, value) in options {
            let key = AmazonS3ConfigKey::from_str(key)
                .map_err(|e| Error::Config(format!("storage option {key:?}: {e}")))?;
            builder = builder.with_config(key, value);
        }
        let bucket = builder
            .build()
            .map_err(|e| Error::Config(format!("storage {url}: {e}")))?;
        let prefix = url
            .split_once("://")
            .and_then(|(_, rest)| rest.split_once('/'))
            .map_or("", |(_, path)| path);
        let prefix = Key::parse(prefix).map_err(|e| Error::Config(format!("{url}: {e}")))?;
        let bucket = Arc::new(bucket);
        let mut objects = Self::over(bucket.clone(), url, prefix, part_size, spool)?;
        objects.signer = Some(bucket);
        Ok(objects)
    }

    /// Any bucket (tests use object_store's in-memory one).
    pub fn over(
        bucket: Arc<dyn Bucket>,
        name: &str,
        prefix: Key,
        part_size: u64,
        spool: &Path,
    ) -> Result<Self> {
        let bucket_url = match name.split_once("://") {
            Some((scheme, rest)) => format!("{scheme}://{}", rest.split('/').next().unwrap_or("")),
            None => name.to_owned(),
        };
        Ok(Self {
            bucket,
            signer: None,
            name: name.to_owned(),
            bucket_url,
            prefix,
            part_size: part_size.max(MIN_PART_SIZE),
            spool: Spool::open(spool)?,
            puts: tokio::sync::Semaphore::new(PUTS_AT_ONCE),
        })
    }

    /// The key of the file `relative` names in the directory answering under `url_prefix`.
    pub fn key(&self, url_prefix: &str, relative: &Path) -> String {
        let dir = url_prefix.split('/').filter(|s| !s.is_empty());
        let file = relative.iter().map(|s| s.to_string_lossy().into_owned());
        let mut key = self.prefix.clone();
        for part in dir.map(str::to_owned).chain(file) {
            key = key.join(part.as_str());
        }
        key.to_string()
    }

    /// The key of session `name`'s staged object `what` (`request`, `reply`): hidden from the
    /// directory's own keys.
    pub fn staged(&self, name: &str, what: &str) -> String {
        self.prefix
            .clone()
            .join(".ebb-sessions")
            .join(name)
            .join(what)
            .to_string()
    }

    /// Where `o`'s multipart upload goes: its key, or session `name`'s staged request.
    pub fn upload_key(&self, name: &str, o: &ObjectUpload) -> String {
        if o.staged {
            self.staged(name, "request")
        } else {
            o.key.clone()
        }
    }

    /// An object's name for a server application: `s3://bucket/key`.
    pub fn object_name(&self, key: &str) -> String {
        format!("{}/{key}", self.bucket_url)
    }

    /// A URL that lets its holder `method` the object at `key` for an hour, where the store
    /// makes them.
    pub async fn signed_url(
        &self,
        method: axum::http::Method,
        key: &str,
    ) -> Result<Option<String>, Refusal> {
        let Some(signer) = &self.signer else {
            return Ok(None);
        };
        let hour = std::time::Duration::from_secs(3600);
        signer
            .signed_url(method, &Key::from(key), hour)
            .await
            .map(|u| Some(u.to_string()))
            .map_err(|e| self.failed(key, &e))
    }

    /// The object at `key`, streamed (a server application's by-value upload).
    pub async fn body(&self, key: &str) -> Result<reqwest::Body, Refusal> {
        let got = self
            .bucket
            .get(&Key::from(key))
            .await
            .map_err(|e| self.failed(key, &e))?;
        Ok(reqwest::Body::wrap_stream(got.into_stream()))
    }

    /// Put `bytes` at `key`.
    pub async fn put(&self, key: &str, bytes: axum::body::Bytes) -> Result<(), Refusal> {
        self.bucket
            .put(&Key::from(key), PutPayload::from(bytes))
            .await
            .map(drop)
            .map_err(|e| self.failed(key, &e))
    }

    /// Put a stream at `key` (a by-value reply), in parts as it comes.
    pub async fn put_stream(
        &self,
        key: &str,
        mut body: impl futures_util::Stream<Item = reqwest::Result<axum::body::Bytes>> + Unpin,
    ) -> Result<(), Refusal> {
        use futures_util::StreamExt;
        let upload = self
            .bucket
            .put_multipart(&Key::from(key))
            .await
            .map_err(|e| self.failed(key, &e))?;
        let mut writer = object_store::WriteMultipart::new(upload);
        while let Some(chunk) = body.next().await {
            match chunk {
                Ok(chunk) => {
                    writer
                        .wait_for_capacity(2)
                        .await
                        .map_err(|e| self.failed(key, &e))?;
                    writer.put(chunk);
                }
                Err(e) => {
                    let _ = writer.abort().await;
                    return Err(Refusal::new(StatusCode::INTERNAL_SERVER_ERROR, Code::FAIL)
                        .because(format!("the application's reply broke off: {e}")));
                }
            }
        }
        writer
            .finish()
            .await
            .map(drop)
            .map_err(|e| self.failed(key, &e))
    }

    /// Put session `name`'s staged upload at `o`'s key, then delete what was staged.
    pub async fn place_staged(&self, name: &str, o: &ObjectUpload) -> Result<(), Refusal> {
        let request = self.staged(name, "request");
        match self
            .bucket
            .copy(&Key::from(request.as_str()), &Key::from(o.key.as_str()))
            .await
        {
            Ok(()) => {}
            // Copied before a crash, and the staged objects deleted already.
            Err(object_store::Error::NotFound { .. }) if self.exists(&o.key).await? => {
                tracing::warn!(key = o.key, "the upload is at its name already");
            }
            Err(e) => return Err(self.failed(&o.key, &e)),
        }
        self.drop_staged(name).await;
        Ok(())
    }

    /// Delete session `name`'s staged objects.
    pub async fn drop_staged(&self, name: &str) {
        for what in ["request", "reply"] {
            let key = self.staged(name, what);
            match self.bucket.delete(&Key::from(key.as_str())).await {
                Ok(()) | Err(object_store::Error::NotFound { .. }) => {}
                Err(e) => {
                    tracing::warn!(bucket = self.name, key, error = %e, "cannot delete a staged object");
                }
            }
        }
    }

    /// The part size of an upload of `total` bytes: the configured one, or more when the
    /// upload would take over 10,000 parts, rounded up to a MiB.
    pub fn part_size_for(&self, total: u64) -> u64 {
        let least = total.div_ceil(MAX_PARTS).div_ceil(1 << 20) << 20;
        self.part_size.max(least)
    }

    /// Whether an object is at `key`.
    pub async fn exists(&self, key: &str) -> Result<bool, Refusal> {
        match self.bucket.head(&Key::from(key)).await {
            Ok(_) => Ok(true),
            Err(object_store::Error::NotFound { .. }) => Ok(false),
            Err(e) => Err(self.failed(key, &e)),
        }
    }

    /// The size of the object at `key`, if there is one.
    async fn size(&self, key: &str) -> Option<u64> {
        self.bucket.head(&Key::from(key)).await.ok().map(|m| m.size)
    }

    /// A new multipart upload to `key`, or (`staged`) to session `name`'s staged request.
    pub async fn create(
        &self,
        key: String,
        name: &str,
        staged: bool,
    ) -> Result<ObjectUpload, Refusal> {
        let mut o = ObjectUpload {
            key,
            upload_id: String::new(),
            part_size: 0,
            parts: Vec::new(),
            completing: false,
            staged,
            tail: 0,
        };
        let at = self.upload_key(name, &o);
        o.upload_id = self
            .bucket
            .create_multipart(&Key::from(at.as_str()))
            .await
            .map_err(|e| self.failed(&at, &e))?;
        Ok(o)
    }

    /// Put part `index` of `o`, its `len` bytes read from the spool of session `name`; its id.
    pub async fn put_part(
        &self,
        name: &str,
        o: &ObjectUpload,
        index: usize,
        len: u64,
    ) -> Result<String, Refusal> {
        let bytes = self.spool.read(name, index, len).await?;
        let _permit = self.puts.acquire().await;
        let at = self.upload_key(name, o);
        let part = self
            .bucket
            .put_part(
                &Key::from(at.as_str()),
                &o.upload_id,
                index,
                PutPayload::from(bytes),
            )
            .await
            .map_err(|e| self.failed(&at, &e))?;
        Ok(part.content_id)
    }

    /// Make `o`'s committed parts the object at its upload key. A Close-Session re-sent after
    /// a crash that came after the store completed it finds the upload gone and the object
    /// there.
    pub async fn complete(&self, name: &str, o: &ObjectUpload, total: u64) -> Result<(), Refusal> {
        let parts = o
            .parts
            .iter()
            .map(|p| PartId {
                content_id: p.clone(),
            })
            .collect();
        let at = self.upload_key(name, o);
        match self
            .bucket
            .complete_multipart(&Key::from(at.as_str()), &o.upload_id, parts)
            .await
        {
            Ok(_) => Ok(()),
            Err(e) if o.completing && self.size(&at).await == Some(total) => {
                tracing::warn!(key = at, error = %e, "the upload is at its name already");
                Ok(())
            }
            Err(e) => Err(self.failed(&at, &e)),
        }
    }

    /// Abort `o`, delete what was staged and forget session `name`'s tail: nothing of it is
    /// left in the bucket.
    pub async fn abort(&self, name: &str, o: &ObjectUpload) {
        self.spool.forget(name).await;
        if o.staged {
            self.drop_staged(name).await;
        }
        if o.upload_id.is_empty() {
            return;
        }
        let at = self.upload_key(name, o);
        match self
            .bucket
            .abort_multipart(&Key::from(at.as_str()), &o.upload_id)
            .await
        {
            Ok(()) | Err(object_store::Error::NotFound { .. }) => {}
            Err(e) => {
                tracing::warn!(bucket = self.name, key = at, error = %e, "cannot abort a multipart upload: the bucket's lifecycle rule will");
            }
        }
    }

    fn failed(&self, key: &str, e: &object_store::Error) -> Refusal {
        Refusal::new(StatusCode::INTERNAL_SERVER_ERROR, Code::FAIL)
            .because(format!("{}: {key}: {e}", self.name))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::upload::body::NewBytes;

    fn objects(spool: &Path) -> Objects {
        let bucket = Arc::new(object_store::memory::InMemory::new());
        Objects::over(bucket, "memory", Key::from("farm"), 8 << 20, spool).unwrap()
    }

    #[test]
    fn parts_are_fixed_and_never_over_ten_thousand() {
        let dir = tempfile::tempdir().unwrap();
        let o = objects(dir.path());
        assert_eq!(o.part_size_for(1), 8 << 20);
        assert_eq!(o.part_size_for(80_000 << 20), 8 << 20);
        // 200 GiB: 20.48 MiB a part at least, so 21 MiB.
        assert_eq!(o.part_size_for(200 << 30), 21 << 20);
        assert!((200u64 << 30).div_ceil(o.part_size_for(200 << 30)) <= MAX_PARTS);
        let small = Objects::over(
            Arc::new(object_store::memory::InMemory::new()),
            "memory",
            Key::from(""),
            1,
            dir.path(),
        )
        .unwrap();
        assert_eq!(
            small.part_size_for(1),
            MIN_PART_SIZE,
            "never under S3's least"
        );
    }

    #[test]
    fn keys_are_the_bucket_prefix_the_directory_and_the_path() {
        let dir = tempfile::tempdir().unwrap();
        let o = objects(dir.path());
        assert_eq!(o.key("/up/", Path::new("d/a b.bin")), "farm/up/d/a b.bin");
        assert_eq!(o.key("/", Path::new("a.bin")), "farm/a.bin");
    }

    #[tokio::test]
    async fn a_fragment_across_parts_fills_each_from_where_it_was() {
        let dir = tempfile::tempdir().unwrap();
        let spool = Spool::open(dir.path()).unwrap();
        let first = NewBytes::new(axum::body::Body::from(vec![1u8, 2]), 0, 2);
        spool.write("s", 4, 0, first).await.unwrap();
        // Bytes 0..2 are held; a fragment of 0..9 brings 7 new bytes, across two boundaries.
        let body: Vec<u8> = (1..=9).collect();
        let next = NewBytes::new(axum::body::Body::from(body), 2, 9);
        spool.write("s", 4, 2, next).await.unwrap();
        assert_eq!(spool.read("s", 0, 4).await.unwrap().as_ref(), [1, 2, 3, 4]);
        assert_eq!(spool.read("s", 1, 4).await.unwrap().as_ref(), [5, 6, 7, 8]);
        assert_eq!(spool.read("s", 2, 1).await.unwrap().as_ref(), [9]);
        assert!(
            spool.read("s", 2, 2).await.is_err(),
            "not more than it holds"
        );
        spool.forget("s").await;
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
    }
}

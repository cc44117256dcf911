//! A bucket that fails a part's put: the tail is dropped, so that bytes acknowledged but not
//! stored are never acknowledged again (a client that heard them all would close an upload
//! whose last part is not in the bucket).

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use async_trait::async_trait;
use futures_util::stream::BoxStream;
use object_store::memory::InMemory;
use object_store::multipart::{MultipartStore, PartId};
use object_store::path::Path as Key;
use object_store::{
    CopyOptions, GetOptions, GetResult, ListResult, MultipartId, MultipartUpload, ObjectMeta,
    ObjectStore, PutMultipartOptions, PutOptions, PutPayload, PutResult,
};

use crate::objects::Objects;
use crate::packet::FragmentRange;
use crate::sessions::{Sessions, SqliteSessions};
use crate::upload::body::NewBytes;
use crate::{App, ServerConfig, StorageAt};

/// object_store's in-memory bucket, whose part puts fail while `fail` is set.
#[derive(Debug, Default)]
struct Flaky {
    inner: InMemory,
    fail: AtomicBool,
}

impl std::fmt::Display for Flaky {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Flaky")
    }
}

#[async_trait]
impl ObjectStore for Flaky {
    async fn put_opts(
        &self,
        at: &Key,
        payload: PutPayload,
        opts: PutOptions,
    ) -> object_store::Result<PutResult> {
        self.inner.put_opts(at, payload, opts).await
    }
    async fn put_multipart_opts(
        &self,
        at: &Key,
        opts: PutMultipartOptions,
    ) -> object_store::Result<Box<dyn MultipartUpload>> {
        self.inner.put_multipart_opts(at, opts).await
    }
    async fn get_opts(&self, at: &Key, options: GetOptions) -> object_store::Result<GetResult> {
        self.inner.get_opts(at, options).await
    }
    fn delete_stream(
        &self,
        keys: BoxStream<'static, object_store::Result<Key>>,
    ) -> BoxStream<'static, object_store::Result<Key>> {
        self.inner.delete_stream(keys)
    }
    fn list(&self, prefix: Option<&Key>) -> BoxStream<'static, object_store::Result<ObjectMeta>> {
        self.inner.list(prefix)
    }
    async fn list_with_delimiter(&self, prefix: Option<&Key>) -> object_store::Result<ListResult> {
        self.inner.list_with_delimiter(prefix).await
    }
    async fn copy_opts(&self, from: &Key, to: &Key, o: CopyOptions) -> object_store::Result<()> {
        self.inner.copy_opts(from, to, o).await
    }
}

#[async_trait]
impl MultipartStore for Flaky {
    async fn create_multipart(&self, at: &Key) -> object_store::Result<MultipartId> {
        self.inner.create_multipart(at).await
    }
    async fn put_part(
        &self,
        at: &Key,
        id: &MultipartId,
        index: usize,
        data: PutPayload,
    ) -> object_store::Result<PartId> {
        if self.fail.load(Ordering::SeqCst) {
            return Err(object_store::Error::Generic {
                store: "Flaky",
                source: "the bucket is away".into(),
            });
        }
        self.inner.put_part(at, id, index, data).await
    }
    async fn complete_multipart(
        &self,
        at: &Key,
        id: &MultipartId,
        parts: Vec<PartId>,
    ) -> object_store::Result<PutResult> {
        self.inner.complete_multipart(at, id, parts).await
    }
    async fn abort_multipart(&self, at: &Key, id: &MultipartId) -> object_store::Result<()> {
        self.inner.abort_multipart(at, id).await
    }
}

#[tokio::test]
async fn a_part_the_bucket_refused_is_not_acknowledged_again() {
    let dir = tempfile::tempdir().unwrap();
    let bucket = Arc::new(Flaky::default());
    let objects = Objects::over(bucket.clone(), "flaky", Key::from(""), 0, dir.path()).unwrap();
    let mut config = ServerConfig::root(std::path::PathBuf::new(), "127.0.0.1:0".parse().unwrap());
    config.directories[0].root = None;
    config.storage = StorageAt::S3 {
        url: "s3://flaky".into(),
        options: std::collections::BTreeMap::new(),
        part_size: 5 << 20,
        spool_dir: None,
    };
    let store = SqliteSessions::open(&dir.path().join("sessions.db"))
        .await
        .unwrap();
    let app = App {
        config,
        sessions: Sessions::open(Box::new(store)).await.unwrap(),
        objects: Some(objects),
    };
    let directory = app.config.directories[0].clone();
    let s = crate::upload::open_session(&app, &directory, "/a.bin", None, None)
        .await
        .unwrap();
    let open = app.sessions.find(&s.id).await.unwrap().unwrap();
    let mut s = open.lock().await;
    let total = 6 << 20;
    let body = vec![7u8; total as usize];
    let take = |first: u64, last: u64| {
        let bytes = axum::body::Body::from(body[first as usize..=last as usize].to_vec());
        (
            FragmentRange { first, last, total },
            NewBytes::new(bytes, 0, last - first + 1),
        )
    };
    // The first part fills, and the bucket refuses it.
    bucket.fail.store(true, Ordering::SeqCst);
    let (range, bytes) = take(0, (5 << 20) - 1);
    assert!(
        crate::upload::take(&app, &mut s, range, bytes)
            .await
            .is_err()
    );
    assert_eq!(s.held(), 0, "nothing past the committed count is held");
    // The bucket is back: the client, answered from the count, sends the bytes again.
    bucket.fail.store(false, Ordering::SeqCst);
    let (range, bytes) = take(0, total - 1);
    let moved = crate::upload::take(&app, &mut s, range, bytes)
        .await
        .unwrap();
    assert_eq!(moved, crate::upload::Committed::Done);
    assert_eq!((s.received, s.held()), (total, total));
}

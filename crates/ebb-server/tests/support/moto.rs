//! A private S3 server for a test: moto's `moto_server` (PyPI `moto[server]`, pinned in
//! `tests/tools/moto-requirements.txt` and installed by `scripts/test.sh` into
//! `target/test-tools/moto`) as this process's child on a free port of 127.0.0.1, stopped by its
//! PID when dropped; one bucket.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub struct Moto {
    child: Child,
    pub port: u16,
    pub bucket: String,
    http: reqwest::Client,
}

/// Where `scripts/test.sh` installs moto, or `EBB_TEST_MOTO`.
fn binary() -> PathBuf {
    if let Some(path) = std::env::var_os("EBB_TEST_MOTO") {
        return path.into();
    }
    // The workspace's `target/`, from whichever of its packages this test is in.
    let tail = "target/test-tools/moto/bin/moto_server";
    let manifest = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let found = manifest
        .ancestors()
        .map(|dir| dir.join(tail))
        .find(|path| path.exists());
    found.unwrap_or_else(|| {
        panic!(
            "moto_server is not installed at {tail} above {}: scripts/test.sh (which .ci/run calls) installs it",
            manifest.display()
        )
    })
}

impl Moto {
    pub async fn start() -> Self {
        let _ = rustls::crypto::ring::default_provider().install_default();
        // Everything that could panic comes before the child, which then has an owner.
        let http = reqwest::Client::new();
        let port = super::postgres::free_port();
        let child = Command::new(binary())
            .args(["-H", "127.0.0.1", "-p", &port.to_string()])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let moto = Self {
            child,
            port,
            bucket: "uploads".into(),
            http,
        };
        let deadline = Instant::now() + Duration::from_secs(30);
        while tokio::net::TcpStream::connect(("127.0.0.1", port))
            .await
            .is_err()
        {
            assert!(Instant::now() < deadline, "moto_server did not come up");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let made = moto.http.put(moto.url("")).send().await.unwrap();
        assert!(made.status().is_success(), "{made:?}");
        moto
    }

    /// `http://127.0.0.1:port/bucket/key`.
    pub fn url(&self, key: &str) -> String {
        format!("http://127.0.0.1:{}/{}/{key}", self.port, self.bucket)
    }

    /// The server's storage settings for this bucket.
    pub fn storage(&self, part_size: u64) -> ebb_server::StorageAt {
        let options: BTreeMap<String, String> = [
            ("endpoint", format!("http://127.0.0.1:{}", self.port)),
            ("region", "us-east-1".into()),
            ("allow_http", "true".into()),
            ("access_key_id", "test".into()),
            ("secret_access_key", "test".into()),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v))
        .collect();
        ebb_server::StorageAt::S3 {
            url: format!("s3://{}", self.bucket),
            options,
            part_size,
            spool_dir: None,
        }
    }

    /// The bucket, through signed requests as the server makes them (moto refuses some
    /// unsigned reads).
    fn client(&self) -> object_store::aws::AmazonS3 {
        object_store::aws::AmazonS3Builder::new()
            .with_bucket_name(&self.bucket)
            .with_endpoint(format!("http://127.0.0.1:{}", self.port))
            .with_region("us-east-1")
            .with_allow_http(true)
            .with_access_key_id("test")
            .with_secret_access_key("test")
            .build()
            .unwrap()
    }

    /// The object at `key`, if there is one.
    pub async fn object(&self, key: &str) -> Option<Vec<u8>> {
        use object_store::ObjectStoreExt;
        match self.client().get(&key.into()).await {
            Ok(got) => Some(got.bytes().await.unwrap().to_vec()),
            Err(object_store::Error::NotFound { .. }) => None,
            Err(e) => panic!("{key}: {e}"),
        }
    }

    /// Put an object at `key`.
    pub async fn put(&self, key: &str, body: &[u8]) {
        use object_store::ObjectStoreExt;
        self.client()
            .put(&key.into(), body.to_vec().into())
            .await
            .unwrap();
    }

    /// Delete the object at `key`.
    pub async fn delete(&self, key: &str) {
        use object_store::ObjectStoreExt;
        self.client().delete(&key.into()).await.unwrap();
    }

    /// How many multipart uploads the bucket has open (neither completed nor aborted).
    pub async fn open_uploads(&self) -> usize {
        let r = self.http.get(self.url("?uploads")).send().await.unwrap();
        assert!(r.status().is_success(), "{r:?}");
        r.text().await.unwrap().matches("<Upload>").count()
    }
}

impl Drop for Moto {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

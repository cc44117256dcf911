//! The Unix socket: private, owner-only, peers of another uid refused (`SO_PEERCRED`), and
//! guarded against abuse: a cap on connections, a deadline for each request's headers (which
//! is also the idle timeout between requests), and accept errors backed off and logged once per
//! interval, so that descriptor exhaustion neither spins a core nor floods the log.

mod limits;

use std::os::unix::fs::{FileTypeExt, PermissionsExt};
use std::path::Path;
use std::sync::Arc;

use ebb_api::ErrorBody;
use ebb_core::{Engine, Error, Result};
use hyper_util::rt::TokioIo;
use hyper_util::service::TowerToHyperService;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{UnixListener, UnixStream};
use tokio_util::sync::CancellationToken;

use limits::AcceptBackoff;
pub use limits::ConnectionLimits;

/// Bind the socket: refuse if a daemon answers there, replace a stale socket file, and make it
/// readable and writable by its owner only.
pub fn bind(path: &Path) -> Result<UnixListener> {
    let failed = |what: &str, at: &Path, e: std::io::Error| Error::Io {
        path: at.to_path_buf(),
        source: std::io::Error::new(e.kind(), format!("{what}: {e}")),
    };
    if let Some(dir) = path.parent() {
        let mut b = std::fs::DirBuilder::new();
        std::os::unix::fs::DirBuilderExt::mode(&mut b, 0o700);
        b.recursive(true)
            .create(dir)
            .map_err(|e| failed("cannot create the socket directory", dir, e))?;
    }
    if let Ok(meta) = std::fs::symlink_metadata(path) {
        // Only a stale socket of ours is replaced: never a file someone named by mistake.
        if !meta.file_type().is_socket() {
            return Err(Error::InvalidArgument(format!(
                "{} exists and is not a socket: refusing to replace it (check EBB_SOCKET)",
                path.display()
            )));
        }
        if std::os::unix::net::UnixStream::connect(path).is_ok() {
            let in_use = std::io::Error::from(std::io::ErrorKind::AddrInUse);
            return Err(failed("another ebbd answers on this socket", path, in_use));
        }
        std::fs::remove_file(path)
            .map_err(|e| failed("cannot remove the stale socket", path, e))?;
    }
    let listener = UnixListener::bind(path).map_err(|e| failed("cannot bind", path, e))?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))
        .map_err(|e| failed("cannot set mode 0600", path, e))?;
    Ok(listener)
}

/// Serve `engine` on `listener` until `stop` is cancelled, with the default limits.
pub async fn serve(engine: Engine, listener: UnixListener, stop: CancellationToken) {
    serve_with(engine, listener, stop, ConnectionLimits::default()).await;
}

/// Serve `engine` on `listener` until `stop` is cancelled.
pub async fn serve_with(
    engine: Engine,
    listener: UnixListener,
    stop: CancellationToken,
    limits: ConnectionLimits,
) {
    let router = crate::router(engine);
    let me = ebb_core::Owner::current_uid();
    let slots = Arc::new(tokio::sync::Semaphore::new(limits.max_connections));
    let mut backoff = AcceptBackoff::default();
    loop {
        // At the cap, wait for a connection to end before taking the next one: further peers
        // wait in the listen backlog instead of costing memory.
        let slot = tokio::select! {
            () = stop.cancelled() => break,
            slot = slots.clone().acquire_owned() => match slot {
                Ok(slot) => slot,
                Err(_) => break,
            },
        };
        let stream = tokio::select! {
            () = stop.cancelled() => break,
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => {
                    backoff.succeeded();
                    stream
                }
                Err(e) => {
                    backoff.failed(&e).await;
                    continue;
                }
            },
        };
        match stream.peer_cred() {
            Ok(cred) if cred.uid() == me => {
                let service = TowerToHyperService::new(router.clone());
                let stop = stop.clone();
                let header_timeout = limits.header_timeout;
                tokio::spawn(async move {
                    let _slot = slot;
                    let conn = hyper::server::conn::http1::Builder::new()
                        .timer(hyper_util::rt::TokioTimer::new())
                        .header_read_timeout(header_timeout)
                        .serve_connection(TokioIo::new(stream), service);
                    tokio::select! {
                        r = conn => if let Err(e) = r {
                            tracing::debug!(error = %e, "connection ended with an error");
                        },
                        () = stop.cancelled() => {}
                    }
                });
            }
            Ok(cred) => {
                tracing::warn!(peer_uid = cred.uid(), "refused a peer of another user");
                tokio::spawn(async move {
                    let _slot = slot;
                    refuse(stream, cred.uid(), me).await;
                });
            }
            Err(e) => tracing::warn!(error = %e, "cannot read the peer's credentials; refused"),
        }
    }
}

/// Tell a peer of another user why it is refused, then close. The request is read first (a
/// little, for a second at most): a reply sent before it would look to the client like a failed
/// connection rather than a refusal.
async fn refuse(mut stream: UnixStream, peer: u32, me: u32) {
    let mut head = Vec::new();
    let mut buf = [0u8; 1024];
    let _ = tokio::time::timeout(std::time::Duration::from_secs(1), async {
        while head.len() < 16 * 1024 && !head.windows(4).any(|w| w == b"\r\n\r\n") {
            match stream.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => head.extend_from_slice(&buf[..n]),
            }
        }
    })
    .await;
    let body = serde_json::to_string(&ErrorBody {
        code: ebb_core::ErrorCode::E_ACCESSDENIED,
        status: ebb_core::Status::Permanent,
        message: format!("ebbd of uid {me} serves only its own user, not uid {peer}"),
        detail: ebb_core::ErrorDetail::Remote,
    })
    .unwrap_or_default();
    let reply = format!(
        "HTTP/1.1 403 Forbidden\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
        body.len()
    );
    let _ = stream.write_all(reply.as_bytes()).await;
    let _ = stream.shutdown().await;
}

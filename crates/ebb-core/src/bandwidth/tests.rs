//! The monitor as the engine runs it, on tokio's paused clock.

use super::*;
use crate::store::{Sealer, Store};

async fn open(dir: &std::path::Path) -> Arc<Bandwidth> {
    let sealer = Sealer::new(&[7; 32], false).unwrap();
    let (store, _) = Store::open(&dir.join("ebb.db"), sealer, |_| ())
        .await
        .unwrap();
    let config = BandwidthConfig::default();
    Bandwidth::open(config, WallClock::System, store, Arc::new(Notify::new()))
        .await
        .unwrap()
}

/// Without a background job the monitor ticks once a second; a job that starts must not run
/// unlimited until then (on a fast link its slow start fills the queue, and the first delay
/// probes take that queue for the base delay).
#[tokio::test]
async fn the_monitor_looks_at_a_new_background_job_at_once() {
    let dir = tempfile::tempdir().unwrap();
    let bw = open(dir.path()).await;
    tokio::time::pause();
    let stop = CancellationToken::new();
    let monitor = tokio::spawn(bw.clone().monitor(stop.clone()));
    // The monitor is asleep for its idle second.
    for _ in 0..10 {
        tokio::task::yield_now().await;
    }
    let url = url::Url::parse("http://127.0.0.1:8080/file").unwrap();
    bw.note_server(JobId::new(), &url, Direction::Down);
    tokio::time::advance(Duration::from_millis(10)).await;
    for _ in 0..10 {
        tokio::task::yield_now().await;
    }
    assert_eq!(
        bw.status().idle.probe_target.as_deref(),
        Some("127.0.0.1:8080")
    );
    stop.cancel();
    monitor.await.unwrap();
}

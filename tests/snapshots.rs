//! Wire formats are pinned: the JSON of errors (as the daemon sends them), events and the
//! bandwidth status, compared with files under `tests/fixtures/snapshots/`. A change that
//! alters one fails here until the file is rewritten on purpose (`EBB_WRITE_FIXTURES=1`).
//! Job info is pinned by `formats.rs`'s `jobs.json`, BITSAdmin's lines by its unit tests.

use std::path::Path;

use ebb::{
    BandwidthConfig, ErrorCode, ErrorContext, Event, JobError, JobId, JobState, Limit, LocalTime,
    Period, Priority, PriorityLimits, Schedule, WallClock, Weekday,
};
use ebb_api::ErrorBody;

use crate::support;

/// Compare `value`'s JSON with the snapshot `name`, or write it under `EBB_WRITE_FIXTURES`.
fn snapshot(name: &str, value: &impl serde::Serialize) {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/snapshots")
        .join(format!("{name}.json"));
    let json = serde_json::to_string_pretty(value).unwrap() + "\n";
    if std::env::var_os("EBB_WRITE_FIXTURES").is_some() {
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, &json).unwrap();
    }
    let pinned = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("{}: {e} (EBB_WRITE_FIXTURES=1 writes it)", path.display()));
    assert_eq!(json, pinned, "{name}'s JSON changed");
}

fn job() -> JobId {
    JobId::from_u128(0x0123_4567_89ab_cdef_0123_4567_89ab_cdef)
}

#[test]
fn errors_as_the_daemon_sends_them() {
    let errors = ebb::internals::one_error_of_each_kind();
    let bodies: Vec<ErrorBody> = errors.iter().map(ErrorBody::from).collect();
    snapshot("errors", &bodies);
}

#[test]
fn events() {
    let error = JobError {
        context: ErrorContext::RemoteFile,
        code: ErrorCode::http(404),
        description: "HTTP status 404: The requested URL does not exist on the server.".into(),
        file_index: Some(0),
    };
    let events = [
        Event::JobModified {
            job_id: job(),
            state: JobState::Transferring,
        },
        Event::FileTransferred {
            job_id: job(),
            file_index: 3,
        },
        Event::JobTransferred { job_id: job() },
        Event::JobError {
            job_id: job(),
            state: JobState::Error,
            error,
        },
    ];
    snapshot("events", &events);
}

/// A fresh engine's status under caps and a schedule, at a set time, with idle estimation off
/// (nothing in it depends on traffic).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bandwidth_status() {
    let dir = tempfile::tempdir().unwrap();
    let schedule: Schedule = toml::from_str(
        "work_hours = { days = [\"mon-fri\"], hours = \"08:00-17:00\" }\n\
         work = { normal = \"2MiB/s\", low = \"0\" }\n",
    )
    .unwrap();
    let bandwidth = BandwidthConfig {
        idle: false,
        max_rate: PriorityLimits {
            all: Limit::BytesPerSec(50_000_000),
            low: Limit::BytesPerSec(1 << 20),
            ..PriorityLimits::default()
        },
        schedule: Some(schedule),
        ..BandwidthConfig::default()
    };
    let at = LocalTime::new(Weekday::from_monday0(2), 10, 0);
    let config = support::config(dir.path())
        .with_bandwidth(bandwidth)
        .with_wall_clock(WallClock::manual(at));
    let e = ebb::Engine::open(config).await.unwrap();
    let status = e.bandwidth();
    assert_eq!(status.policy.as_ref().map(|p| p.period), Some(Period::Work));
    assert_eq!(status.blocked, [Priority::Low]);
    snapshot("bandwidth-status", &status);
    e.shutdown().await;
}

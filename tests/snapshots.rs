//! Wire formats are pinned: the JSON of errors (as the daemon sends them), events and the
//! bandwidth status, compared with files under `tests/fixtures/snapshots/`. A change that
//! alters one fails here until the file is rewritten on purpose (`EBB_WRITE_FIXTURES=1`).
//! Job info is pinned by `formats.rs`'s `jobs.json`, BITSAdmin's lines by its unit tests.

use std::path::Path;

use ebb::{
    BandwidthConfig, Error, ErrorCode, ErrorContext, Event, JobError, JobId, JobState, Limit,
    LocalTime, Period, Priority, PriorityLimits, Schedule, Status, WallClock, Weekday,
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
    let errors = [
        Error::NotFound("nightly".into()),
        Error::InvalidState {
            job: job(),
            state: JobState::Acknowledged,
            action: "resume".into(),
        },
        Error::Empty(job()),
        Error::TooManyFiles,
        Error::InvalidArgument("no files to add".into()),
        Error::InvalidRange {
            code: ErrorCode::BG_E_OVERLAPPING_RANGES,
            message: "ranges 0:10 and 5:10 overlap".into(),
        },
        Error::TooLarge {
            code: ErrorCode::BG_E_STRING_TOO_LONG,
            message: "display name is longer than 256 characters".into(),
        },
        Error::NotSupported("uploads".into()),
        Error::Locked {
            dir: "/data".into(),
            holder: "pid 7 (ebbd)".into(),
        },
        Error::Store {
            path: "/data/ebb.db".into(),
            source: rusqlite::Error::SqliteFailure(
                rusqlite::ffi::Error::new(rusqlite::ffi::SQLITE_FULL),
                Some("database or disk is full".into()),
            ),
        },
        Error::Corrupt {
            path: "/data/ebb.db".into(),
            message: "a row says state 42".into(),
        },
        Error::io(
            "/out/a.bin",
            std::io::Error::new(std::io::ErrorKind::StorageFull, "no space left on device"),
        ),
        Error::ShutDown,
        Error::Remote {
            code: ErrorCode::BG_E_CONNECT_FAILURE,
            status: Status::Transient,
            message: "cannot reach ebbd".into(),
        },
    ];
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

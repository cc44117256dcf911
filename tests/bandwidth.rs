//! Bandwidth: policy windows (with a clock the test sets), caps changed at run time, per-job
//! caps, and the CLI verbs, over real HTTP on 127.0.0.1.

use std::time::{Duration, Instant};

use ebb::{
    BandwidthChange, BandwidthConfig, Limit, LimitReason, LocalTime, Period, Schedule, WallClock,
    Weekday,
};
use ebb::{Engine, ErrorCode, JobState, Priority, PropertyChange, WaitReason};

use crate::support::origin::{Origin, Resource};
use crate::support::{self, Cli, Started, data, start_job, started_pid, wait_for, wait_state};

const WEDNESDAY: u8 = 2;

fn at(hour: u16, minute: u16) -> LocalTime {
    LocalTime::new(Weekday::from_monday0(WEDNESDAY), hour, minute)
}

/// Work hours Monday to Friday 08:00-17:00 in which Normal jobs may not transfer.
fn schedule() -> Schedule {
    toml::from_str(
        r#"
        work_hours = { days = ["mon-fri"], hours = "08:00-17:00" }
        work = { normal = "0", low = "1MiB/s" }
        "#,
    )
    .unwrap()
}

/// The origin saw a request for `path` that resumed past the start.
fn assert_resumed_with_a_range(origin: &Origin, path: &str) {
    let log = origin.log(path);
    let resumed = log
        .iter()
        .filter_map(|l| l.range.as_deref())
        .any(|r| r.starts_with("bytes=") && !r.starts_with("bytes=0-"));
    assert!(resumed, "{log:?}");
}

async fn engine_at(dir: &std::path::Path, clock: &WallClock) -> Engine {
    let config = support::config(dir)
        .with_bandwidth(BandwidthConfig {
            schedule: Some(schedule()),
            ..BandwidthConfig::default()
        })
        .with_wall_clock(clock.clone());
    Engine::open(config).await.unwrap()
}

#[tokio::test]
async fn a_zero_window_blocks_background_jobs_until_it_ends() {
    let dir = tempfile::tempdir().unwrap();
    let origin = Origin::start().await;
    let body = data(300_000, 7);
    origin.put("/f", Resource::new(body.clone()));
    let clock = WallClock::manual(at(12, 0));
    let e = engine_at(dir.path(), &clock).await;

    let status = e.bandwidth();
    assert_eq!(status.blocked, vec![Priority::Normal]);
    assert_eq!(status.policy.as_ref().map(|p| p.period), Some(Period::Work));

    let blocked = start_job(&e, origin.url("/f"), &dir.path().join("normal")).await;
    let info = wait_state(&e, blocked, JobState::TransientError, 10).await;
    let err = info.error.expect("a blocked job has an error");
    assert_eq!(err.code, ErrorCode::BG_E_BLOCKED_BY_POLICY);
    assert_eq!(err.code.0, 0x8020_003E);
    assert!(
        err.description.contains("work hours"),
        "{}",
        err.description
    );
    assert_eq!(
        info.error_count, 0,
        "a policy block is not a transfer error"
    );
    // It says why it waits, and until when: five hours on (17:00 at the test clock's 12:00).
    let info = wait_for(&e, blocked, 10, |j| {
        matches!(j.reason, Some(WaitReason::Policy { until: Some(_), .. }))
    })
    .await;
    let Some(WaitReason::Policy {
        period,
        until: Some(until),
    }) = info.reason
    else {
        unreachable!()
    };
    assert_eq!(period, Some(Period::Work));
    let ahead = until.as_millis() - ebb::Timestamp::now().as_millis();
    assert!(
        // Wider than five hours by one: a change of daylight saving time may fall in between.
        (4 * 3_600_000..=6 * 3_600_000 + 60_000).contains(&ahead),
        "{ahead} ms"
    );

    // Foreground and Low jobs are not blocked by Normal's window.
    let fg = start_job(&e, origin.url("/f"), &dir.path().join("fg")).await;
    e.set_property(fg, PropertyChange::Priority(Priority::Foreground))
        .await
        .unwrap();
    wait_state(&e, fg, JobState::Transferred, 20).await;
    let low = start_job(&e, origin.url("/f"), &dir.path().join("low")).await;
    e.set_property(low, PropertyChange::Priority(Priority::Low))
        .await
        .unwrap();
    wait_state(&e, low, JobState::Transferred, 20).await;

    // Still blocked, however long it waits: the retry timer does not apply.
    assert_eq!(
        e.job(blocked).await.unwrap().state,
        JobState::TransientError
    );
    // The window ends: queued again, transferred, identical.
    clock.set(at(17, 0));
    wait_state(&e, blocked, JobState::Transferred, 20).await;
    e.complete(blocked).await.unwrap();
    assert_eq!(std::fs::read(dir.path().join("normal")).unwrap(), body);
    assert!(e.bandwidth().blocked.is_empty());
    e.shutdown().await;
}

#[tokio::test]
async fn a_window_that_opens_mid_transfer_stops_the_job_and_keeps_its_progress() {
    let dir = tempfile::tempdir().unwrap();
    let origin = Origin::start().await;
    let body = data(1_500_000, 9);
    origin.put("/slow", Resource::new(body.clone()).rate(500_000));
    let clock = WallClock::manual(at(7, 59));
    let e = engine_at(dir.path(), &clock).await;
    let id = start_job(&e, origin.url("/slow"), &dir.path().join("slow")).await;
    wait_for(&e, id, 20, |j| j.bytes_transferred > 200_000).await;

    clock.set(at(8, 0));
    let info = wait_state(&e, id, JobState::TransientError, 10).await;
    assert_eq!(
        info.error.map(|e| e.code),
        Some(ErrorCode::BG_E_BLOCKED_BY_POLICY)
    );
    let kept = info.bytes_transferred;
    assert!(kept > 0, "progress is kept");

    clock.set(at(17, 30));
    wait_state(&e, id, JobState::Transferred, 30).await;
    e.complete(id).await.unwrap();
    assert_eq!(std::fs::read(dir.path().join("slow")).unwrap(), body);
    // It resumed with a range from what it had, not from zero.
    assert_resumed_with_a_range(&origin, "/slow");
    e.shutdown().await;
}

#[tokio::test]
async fn caps_change_at_run_time_and_persist() {
    let dir = tempfile::tempdir().unwrap();
    let origin = Origin::start().await;
    let body = data(2_000_000, 3);
    origin.put("/f", Resource::new(body.clone()));
    let e = support::engine(dir.path()).await;

    // 0 pauses every background job: nothing is written.
    let status = e
        .set_bandwidth(BandwidthChange {
            max_rate: Some(Limit::PAUSED),
            ..BandwidthChange::default()
        })
        .await
        .unwrap();
    assert_eq!(status.target_rate, Limit::PAUSED);
    assert_eq!(status.reason, LimitReason::Cap);
    assert!(status.overridden);
    let id = start_job(&e, origin.url("/f"), &dir.path().join("f")).await;
    wait_for(&e, id, 10, |j| j.state == JobState::Transferring).await;
    tokio::time::sleep(Duration::from_millis(700)).await;
    let paused = e.job(id).await.unwrap();
    assert_eq!(paused.bytes_transferred, 0);
    // And it says why.
    let paused = wait_for(&e, id, 10, |j| j.reason.is_some()).await;
    assert_eq!(
        paused.reason,
        Some(WaitReason::Paused {
            by: ebb::PausedBy::Background
        })
    );

    // Lifting the cap lets it finish.
    e.set_bandwidth(BandwidthChange {
        max_rate: Some(Limit::Unlimited),
        ..BandwidthChange::default()
    })
    .await
    .unwrap();
    wait_state(&e, id, JobState::Transferred, 20).await;
    e.complete(id).await.unwrap();
    assert_eq!(std::fs::read(dir.path().join("f")).unwrap(), body);

    // A per-priority cap and idle off survive a restart; reset returns to the config.
    e.set_bandwidth(BandwidthChange {
        max_rate: Some(Limit::BytesPerSec(1 << 20)),
        priority: Some(Priority::Low),
        idle: Some(false),
        reset: false,
    })
    .await
    .unwrap();
    e.shutdown().await;
    drop(e);
    let e = support::engine(dir.path()).await;
    let s = e.bandwidth();
    assert_eq!(s.caps.low, Limit::BytesPerSec(1 << 20));
    assert_eq!(s.effective.low, Limit::BytesPerSec(1 << 20));
    assert_eq!(s.caps.all, Limit::Unlimited);
    assert!(!s.idle.enabled);
    let s = e
        .set_bandwidth(BandwidthChange {
            reset: true,
            ..BandwidthChange::default()
        })
        .await
        .unwrap();
    assert_eq!(s.caps.low, Limit::Unlimited);
    assert!(s.idle.enabled && !s.overridden);
    e.shutdown().await;
}

#[tokio::test]
async fn a_job_cap_limits_that_job_and_changes_while_it_runs() {
    let dir = tempfile::tempdir().unwrap();
    let origin = Origin::start().await;
    let body = data(600_000, 5);
    origin.put("/f", Resource::new(body.clone()));
    let e = support::engine(dir.path()).await;
    let id = e
        .create_job("capped", ebb::JobType::Download)
        .await
        .unwrap();
    e.add_files(
        id,
        vec![ebb::NewFile::new(origin.url("/f"), dir.path().join("f"))],
    )
    .await
    .unwrap();
    // Foreground: no shared limit applies, only the job's own cap.
    e.set_property(id, PropertyChange::Priority(Priority::Foreground))
        .await
        .unwrap();
    e.set_property(id, PropertyChange::MaxRate(Limit::BytesPerSec(200_000)))
        .await
        .unwrap();
    let started = Instant::now();
    e.resume(id).await.unwrap();
    wait_state(&e, id, JobState::Transferred, 30).await;
    // 600 kB at 200 kB/s cannot take less than ~3 s (a lower bound: a slow machine only adds).
    assert!(
        started.elapsed() >= Duration::from_millis(2500),
        "{:?}",
        started.elapsed()
    );
    e.complete(id).await.unwrap();
    assert_eq!(std::fs::read(dir.path().join("f")).unwrap(), body);

    // A cap of 0 set while the job runs stops its bytes at once; lifting it finishes the job.
    origin.put("/g", Resource::new(body.clone()));
    let id = start_job(&e, origin.url("/g"), &dir.path().join("g")).await;
    e.set_property(id, PropertyChange::MaxRate(Limit::BytesPerSec(50_000)))
        .await
        .unwrap();
    wait_for(&e, id, 20, |j| j.bytes_transferred > 0).await;
    e.set_property(id, PropertyChange::MaxRate(Limit::PAUSED))
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(200)).await;
    let paused_at = e.job(id).await.unwrap().bytes_transferred;
    tokio::time::sleep(Duration::from_millis(700)).await;
    assert_eq!(e.job(id).await.unwrap().bytes_transferred, paused_at);
    e.set_property(id, PropertyChange::MaxRate(Limit::Unlimited))
        .await
        .unwrap();
    wait_state(&e, id, JobState::Transferred, 20).await;
    assert_eq!(
        e.job(id).await.unwrap().properties.max_rate,
        Limit::Unlimited
    );
    e.shutdown().await;
}

#[tokio::test]
async fn a_long_pause_reconnects_with_a_range_instead_of_failing() {
    let dir = tempfile::tempdir().unwrap();
    let origin = Origin::start().await;
    let body = data(1_000_000, 11);
    origin.put("/f", Resource::new(body.clone()));
    let mut config = support::config(dir.path());
    config.http.throttle_reconnect = Duration::from_millis(500);
    let e = Engine::open(config).await.unwrap();
    // Capped before it starts: on a busy machine an uncapped start could finish the file first.
    let id = e.create_job("pause", ebb::JobType::Download).await.unwrap();
    e.add_files(
        id,
        vec![ebb::NewFile::new(origin.url("/f"), dir.path().join("f"))],
    )
    .await
    .unwrap();
    e.set_property(id, PropertyChange::MaxRate(Limit::BytesPerSec(100_000)))
        .await
        .unwrap();
    e.resume(id).await.unwrap();
    wait_for(&e, id, 20, |j| j.bytes_transferred > 0).await;
    e.set_property(id, PropertyChange::MaxRate(Limit::PAUSED))
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(1500)).await;
    e.set_property(id, PropertyChange::MaxRate(Limit::Unlimited))
        .await
        .unwrap();
    let info = wait_state(&e, id, JobState::Transferred, 20).await;
    assert_eq!(info.error_count, 0, "the pause was not an error");
    e.complete(id).await.unwrap();
    assert_eq!(std::fs::read(dir.path().join("f")).unwrap(), body);
    assert_resumed_with_a_range(&origin, "/f");
    e.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cli_bandwidth_verbs_through_the_daemon() {
    let dir = tempfile::tempdir().unwrap();
    let cli = Cli::daemon(dir.path());
    let out = cli.run(&[
        "bandwidth",
        "set",
        "--max-rate",
        "10MiB/s",
        "--priority",
        "low",
    ]);
    let said = String::from_utf8_lossy(&out.stderr).into_owned();
    let _daemon = Started(started_pid(&said).unwrap_or_else(|| panic!("{said}")));
    assert!(out.status.success(), "{said}");
    let set = String::from_utf8(out.stdout).unwrap();
    assert!(set.contains("low 10MiB/s"), "{set}");
    let show = cli.json(&["bandwidth", "show", "--json"]);
    assert_eq!(show["caps"]["low"], "10MiB/s");
    assert_eq!(show["caps"]["all"], "unlimited");
    assert_eq!(show["overridden"], true);
    assert!(show["target_rate"].is_string());
    assert!(show["idle"]["enabled"].as_bool().unwrap());

    cli.ok(&["bandwidth", "set", "--idle", "off", "--max-rate", "80mbit"]);
    let show = cli.json(&["bandwidth", "show", "--json"]);
    assert_eq!(show["caps"]["all"], "10MB/s");
    assert_eq!(show["idle"]["enabled"], false);
    let text = cli.ok(&["bandwidth", "show"]);
    assert!(
        text.contains("target rate:") && text.contains("10MB/s - cap"),
        "{text}"
    );

    // Bad input: a clear error, exit 2, nothing changed.
    for bad in [
        vec!["bandwidth", "set", "--max-rate", "fast"],
        vec!["bandwidth", "set"],
        vec!["bandwidth", "set", "--idle", "maybe"],
        vec!["bandwidth", "set", "--priority", "low"],
    ] {
        let out = cli.run(&bad);
        assert_eq!(out.status.code(), Some(2), "{bad:?}");
    }
    let out = cli.run(&["bandwidth", "set", "--max-rate", "fast"]);
    assert!(String::from_utf8_lossy(&out.stderr).contains("bad rate"));

    // Per job.
    let id = cli.ok(&["create", "capped"]).trim().to_owned();
    cli.ok(&["set", &id, "--max-rate", "500KB/s"]);
    let info = cli.json(&["info", &id, "--json"]);
    assert_eq!(info["max_rate"], "500KB/s");
    assert!(
        cli.ok(&["info", &id])
            .contains("max rate:              500KB/s")
    );

    cli.ok(&["bandwidth", "reset"]);
    let show = cli.json(&["bandwidth", "show", "--json"]);
    assert_eq!(show["caps"]["low"], "unlimited");
    assert_eq!(show["overridden"], false);
}

//! Priorities with preemption, round-robin time slices, concurrent foreground jobs.

use std::time::Duration;

use ebb::{Engine, Event, JobId, JobState, JobType, NewFile, Priority, PropertyChange, WaitReason};
use tokio::sync::broadcast;

use crate::support::origin::{Origin, Resource};
use crate::support::{self, data, wait_for, wait_state};

async fn job(e: &Engine, origin: &Origin, dir: &std::path::Path, name: &str, p: Priority) -> JobId {
    origin.put(
        &format!("/{name}"),
        Resource::new(data(600_000, name.len() as u8)).rate(600_000),
    );
    let id = e.create_job(name, JobType::Download).await.unwrap();
    e.add_files(
        id,
        vec![NewFile::new(
            origin.url(&format!("/{name}")),
            dir.join(name),
        )],
    )
    .await
    .unwrap();
    e.set_property(id, PropertyChange::Priority(p))
        .await
        .unwrap();
    id
}

/// Collect events until every job in `ids` is Transferred.
async fn events_until_transferred(
    rx: &mut broadcast::Receiver<Event>,
    ids: &[JobId],
) -> Vec<Event> {
    let mut seen = Vec::new();
    let mut left: Vec<JobId> = ids.to_vec();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    while !left.is_empty() {
        let ev = tokio::time::timeout_at(deadline, rx.recv())
            .await
            .expect("jobs did not finish")
            .unwrap();
        if let Event::JobTransferred { job_id } = &ev {
            left.retain(|j| j != job_id);
        }
        seen.push(ev);
    }
    seen
}

#[tokio::test]
async fn background_jobs_run_by_strict_priority_with_preemption() {
    let dir = tempfile::tempdir().unwrap();
    let origin = Origin::start().await;
    let e = support::engine(dir.path()).await;
    let mut rx = e.subscribe();
    let low = job(&e, &origin, dir.path(), "low", Priority::Low).await;
    let normal = job(&e, &origin, dir.path(), "normal", Priority::Normal).await;
    let high = job(&e, &origin, dir.path(), "high", Priority::High).await;
    e.resume(low).await.unwrap();
    wait_for(&e, low, 10, |j| j.bytes_transferred > 0).await;
    e.resume(normal).await.unwrap();
    e.resume(high).await.unwrap();
    // Once High runs, the others say who is ahead of them.
    wait_for(&e, high, 10, |j| j.state.is_running()).await;
    let queued = wait_for(&e, low, 10, |j| {
        j.reason == Some(WaitReason::HigherPriority { ahead: 2 })
    })
    .await;
    assert_eq!(queued.state, JobState::Queued);
    let normal_waits = e.job(normal).await.unwrap().reason;
    assert!(
        matches!(normal_waits, Some(WaitReason::HigherPriority { ahead: 1 })),
        "{normal_waits:?}"
    );
    let seen = events_until_transferred(&mut rx, &[low, normal, high]).await;
    let done: Vec<JobId> = seen
        .iter()
        .filter_map(|ev| match ev {
            Event::JobTransferred { job_id } => Some(*job_id),
            _ => None,
        })
        .collect();
    assert_eq!(done, vec![high, normal, low]);
    // Low was preempted: it went back to Queued after it had started.
    let low_states: Vec<JobState> = seen
        .iter()
        .filter_map(|ev| match ev {
            Event::JobModified { job_id, state } if *job_id == low => Some(*state),
            _ => None,
        })
        .collect();
    assert!(low_states.contains(&JobState::Queued), "{low_states:?}");
    e.shutdown().await;
}

#[tokio::test]
async fn jobs_of_one_priority_take_turns() {
    let dir = tempfile::tempdir().unwrap();
    let origin = Origin::start().await;
    let mut c = support::config(dir.path());
    c.time_slice = Duration::from_millis(300);
    let e = Engine::open(c).await.unwrap();
    let mut rx = e.subscribe();
    let a = job(&e, &origin, dir.path(), "a", Priority::Normal).await;
    let b = job(&e, &origin, dir.path(), "bb", Priority::Normal).await;
    e.resume(a).await.unwrap();
    e.resume(b).await.unwrap();
    // One of them waits for its turn behind the other.
    let turn = Some(WaitReason::Turn {
        ahead: 1,
        priority: Priority::Normal,
    });
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while ![
        e.job(a).await.unwrap().reason,
        e.job(b).await.unwrap().reason,
    ]
    .contains(&turn)
    {
        assert!(
            tokio::time::Instant::now() < deadline,
            "no job waited for its turn"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let seen = events_until_transferred(&mut rx, &[a, b]).await;
    let mut turns: Vec<JobId> = Vec::new();
    for ev in &seen {
        if let Event::JobModified {
            job_id,
            state: JobState::Connecting,
        } = ev
            && turns.last() != Some(job_id)
        {
            turns.push(*job_id);
        }
    }
    assert!(
        turns.len() >= 3 && turns[..3] == [a, b, a],
        "turns: {turns:?}"
    );
    for (id, name) in [(a, "a"), (b, "bb")] {
        e.complete(id).await.unwrap();
        assert_eq!(
            std::fs::read(dir.path().join(name)).unwrap(),
            data(600_000, name.len() as u8)
        );
    }
    e.shutdown().await;
}

#[tokio::test]
async fn foreground_jobs_run_at_once_beside_one_background_job() {
    let dir = tempfile::tempdir().unwrap();
    let origin = Origin::start().await;
    let e = support::engine(dir.path()).await;
    let ids = [
        job(&e, &origin, dir.path(), "f1", Priority::Foreground).await,
        job(&e, &origin, dir.path(), "f22", Priority::Foreground).await,
        job(&e, &origin, dir.path(), "n333", Priority::Normal).await,
        job(&e, &origin, dir.path(), "n4444", Priority::Normal).await,
    ];
    for id in ids {
        e.resume(id).await.unwrap();
    }
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        let states: Vec<JobState> = futures_states(&e, &ids).await;
        let running = states.iter().filter(|s| s.is_running()).count();
        if states[..3].iter().all(|s| s.is_running()) {
            assert_eq!(running, 3, "only one background job at a time: {states:?}");
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "never all running: {states:?}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    for id in ids {
        wait_state(&e, id, JobState::Transferred, 30).await;
    }
    e.shutdown().await;
}

async fn futures_states(e: &Engine, ids: &[JobId]) -> Vec<JobState> {
    let mut out = Vec::new();
    for id in ids {
        out.push(e.job(*id).await.unwrap().state);
    }
    out
}

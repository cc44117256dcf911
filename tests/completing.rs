//! Complete, called by many at once: the engine takes the waiting completions as one group
//! (one sync per directory, one store commit), and still answers each as if it were alone.

use ebb::{ErrorCode, JobState, JobType, NewFile};

use crate::support::origin::{Origin, Resource};
use crate::support::{self, data, wait_state};

#[tokio::test]
async fn completions_at_once_are_each_answered_as_if_alone() {
    let dir = tempfile::tempdir().unwrap();
    let origin = Origin::start().await;
    let e = support::engine(dir.path()).await;
    let mut jobs = Vec::new();
    for i in 0..24u8 {
        origin.put(&format!("/{i}"), Resource::new(data(4096, i)));
        let id = e.create_job("group", JobType::Download).await.unwrap();
        let dest = dir.path().join(format!("f{i}"));
        e.add_files(id, vec![NewFile::new(origin.url(&format!("/{i}")), &dest)])
            .await
            .unwrap();
        e.resume(id).await.unwrap();
        jobs.push((id, dest, i));
    }
    for (id, ..) in &jobs {
        wait_state(&e, *id, JobState::Transferred, 20).await;
    }
    // One job's final name is taken by a directory: its rename fails, the others' do not.
    let (blocked, blocked_dest, _) = jobs[7].clone();
    std::fs::create_dir(&blocked_dest).unwrap();
    std::fs::write(blocked_dest.join("inside"), b"x").unwrap();
    let mut calls = tokio::task::JoinSet::new();
    for (id, ..) in &jobs {
        let (e, id) = (e.clone(), *id);
        calls.spawn(async move { (id, e.complete(id).await) });
    }
    let mut answers = std::collections::HashMap::new();
    while let Some(done) = calls.join_next().await {
        let (id, answer) = done.unwrap();
        answers.insert(id, answer);
    }
    for (id, dest, i) in &jobs {
        let answer = answers.remove(id).unwrap();
        if *id == blocked {
            let err = answer.unwrap_err();
            assert!(
                err.to_string().contains(&dest.display().to_string()),
                "{err}"
            );
            assert_eq!(e.job(*id).await.unwrap().state, JobState::Transferred);
        } else {
            assert_eq!(answer.unwrap().code, ErrorCode::S_OK);
            assert_eq!(std::fs::read(dest).unwrap(), data(4096, *i));
            assert_eq!(e.job(*id).await.unwrap().state, JobState::Acknowledged);
        }
    }
    // The group's commit is durable: a new engine sees the same states.
    e.shutdown().await;
    drop(e);
    let e = support::engine(dir.path()).await;
    for (id, ..) in &jobs {
        let expected = if *id == blocked {
            JobState::Transferred
        } else {
            JobState::Acknowledged
        };
        assert_eq!(e.job(*id).await.unwrap().state, expected);
    }
    std::fs::remove_dir_all(&blocked_dest).unwrap();
    e.complete(blocked).await.unwrap();
    assert_eq!(std::fs::read(&blocked_dest).unwrap(), data(4096, 7));
    e.shutdown().await;
}

#[tokio::test]
async fn the_same_job_completed_twice_at_once_completes_once() {
    let dir = tempfile::tempdir().unwrap();
    let origin = Origin::start().await;
    origin.put("/x", Resource::new(data(1000, 3)));
    let e = support::engine(dir.path()).await;
    let dest = dir.path().join("x");
    let id = e.create_job("twice", JobType::Download).await.unwrap();
    e.add_files(id, vec![NewFile::new(origin.url("/x"), &dest)])
        .await
        .unwrap();
    e.resume(id).await.unwrap();
    wait_state(&e, id, JobState::Transferred, 20).await;
    // Both calls are in the engine's mailbox before it takes either.
    let (first, second) = tokio::join!(e.complete(id), e.complete(id));
    assert_eq!(first.unwrap().code, ErrorCode::S_OK);
    assert_eq!(second.unwrap_err().code(), ErrorCode::BG_E_INVALID_STATE);
    assert_eq!(std::fs::read(&dest).unwrap(), data(1000, 3));
    e.shutdown().await;
}

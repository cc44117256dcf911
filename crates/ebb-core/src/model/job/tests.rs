use super::*;
use crate::model::{NewFile, Priority};

fn job() -> Job {
    Job::new(
        "j",
        JobType::Download,
        Owner::current(),
        Timestamp::from_millis(0),
    )
    .unwrap()
}

fn with_file(mut j: Job) -> Job {
    let f = NewFile::new("http://127.0.0.1/x", "/tmp/x");
    j.files.push(JobFile::new(j.id, 0, f));
    j
}

fn err(status_code: u16) -> JobError {
    JobError {
        context: ErrorContext::RemoteFile,
        code: ErrorCode::http(status_code),
        description: String::new(),
        file_index: Some(0),
    }
}

const T0: Timestamp = Timestamp::from_millis(1_000);

#[test]
fn new_job_is_suspended_with_bits_defaults() {
    let j = job();
    assert_eq!(j.state(), JobState::Suspended);
    assert_eq!(j.properties.priority, Priority::Normal);
    assert_eq!(j.properties.minimum_retry_delay, 600);
    assert_eq!(j.properties.no_progress_timeout, 1_209_600);
    assert_eq!(j.properties.maximum_download_time, 7_776_000);
    assert_eq!(j.properties.notify_flags.0, 0x3);
    assert_eq!(j.info().bytes_transferred, 0);
}

#[test]
fn resume_without_files_is_empty_and_stays_suspended() {
    let mut j = job();
    let e = j.resume(T0, 1).unwrap_err();
    assert_eq!(e.code(), ErrorCode::BG_E_EMPTY);
    assert_eq!(j.state(), JobState::Suspended);
}

#[test]
fn resume_suspend_and_final_states() {
    let mut j = with_file(job());
    assert_eq!(j.resume(T0, 1).unwrap(), ResumeOutcome::Queued);
    assert_eq!(j.resume(T0, 2).unwrap(), ResumeOutcome::AlreadyActive);
    assert!(j.suspend(T0).unwrap());
    assert!(!j.suspend(T0).unwrap());
    j.cancel(T0).unwrap();
    for e in [
        j.resume(T0, 3).unwrap_err(),
        j.suspend(T0).unwrap_err(),
        j.cancel(T0).unwrap_err(),
        j.apply(PropertyChange::Priority(Priority::High), T0)
            .unwrap_err(),
        j.acknowledge(T0).unwrap_err(),
    ] {
        assert_eq!(e.code(), ErrorCode::BG_E_INVALID_STATE);
    }
}

#[test]
fn scheduler_path_to_transferred_and_acknowledged() {
    let mut j = with_file(job());
    j.resume(T0, 1).unwrap();
    assert!(j.start_connecting(T0));
    assert!(j.connected(T0));
    assert!(j.requeue(T0, 5));
    assert_eq!(j.state(), JobState::Queued);
    assert_eq!(j.schedule.queue_seq, 5);
    assert!(j.start_connecting(T0));
    j.files[0].completed = true;
    assert!(j.transferred(T0));
    assert_eq!(j.resume(T0, 6).unwrap(), ResumeOutcome::AlreadyTransferred);
    j.acknowledge(T0).unwrap();
    assert_eq!(j.state(), JobState::Acknowledged);
}

#[test]
fn transient_then_permanent_errors() {
    let mut j = with_file(job());
    j.properties.minimum_retry_delay = 5;
    j.properties.no_progress_timeout = 10;
    j.resume(T0, 1).unwrap();
    j.start_connecting(T0);
    assert_eq!(
        j.fail(err(503), Status::Transient, T0),
        Some(JobState::TransientError)
    );
    assert_eq!(j.error_count, 1);
    assert!(j.retry(T0));
    j.start_connecting(T0);
    let later = T0.plus(std::time::Duration::from_secs(11));
    assert_eq!(
        j.fail(err(503), Status::Transient, later),
        Some(JobState::Error)
    );
    assert_eq!(j.error_count, 2);
    // Error can be resumed.
    assert_eq!(j.resume(later, 2).unwrap(), ResumeOutcome::Queued);
    j.start_connecting(later);
    assert_eq!(
        j.fail(err(404), Status::Permanent, later),
        Some(JobState::Error)
    );
}

#[test]
fn zero_no_progress_timeout_makes_every_error_final() {
    let mut j = with_file(job());
    j.properties.no_progress_timeout = 0;
    j.resume(T0, 1).unwrap();
    assert_eq!(
        j.fail(err(503), Status::Transient, T0),
        Some(JobState::Error)
    );
    let mut k = with_file(job());
    k.properties.minimum_retry_delay = 100;
    k.properties.no_progress_timeout = 50;
    k.resume(T0, 1).unwrap();
    assert_eq!(
        k.fail(err(503), Status::Transient, T0),
        Some(JobState::Error)
    );
}

#[test]
fn min_retry_delay_has_a_floor_of_five_seconds() {
    let mut j = job();
    j.apply(PropertyChange::MinimumRetryDelay(1), T0).unwrap();
    assert_eq!(j.properties.minimum_retry_delay, 5);
}

#[test]
fn upload_complete_only_when_transferred() {
    let mut j = Job::new("u", JobType::Upload, Owner::current(), T0).unwrap();
    assert_eq!(
        j.acknowledge(T0).unwrap_err().code(),
        ErrorCode::BG_E_INVALID_STATE
    );
}

#[test]
fn repair_remote_names() {
    let mut j = with_file(job());
    assert_eq!(
        j.replace_remote_prefix("http://127.0.0.1", "http://localhost:8", T0)
            .unwrap(),
        1
    );
    assert_eq!(j.files[0].remote_url, "http://localhost:8/x");
    assert_eq!(
        j.replace_remote_prefix("https://", "http://", T0).unwrap(),
        0
    );
    assert!(j.replace_remote_prefix("http://", "gopher://", T0).is_err());
    j.set_remote_name(0, "http://h/y", T0).unwrap();
    assert!(j.set_remote_name(3, "http://h/y", T0).is_err());
    // A file already transferred keeps the name its bytes came from.
    j.files[0].completed = true;
    let e = j.set_remote_name(0, "http://h/w", T0).unwrap_err();
    assert_eq!(e.code(), ErrorCode::BG_E_INVALID_STATE);
    assert!(
        e.to_string()
            .contains("already transferred from http://h/y"),
        "{e}"
    );
    assert_eq!(
        j.replace_remote_prefix("http://h/", "http://g/", T0)
            .unwrap(),
        0
    );
    assert_eq!(j.files[0].remote_url, "http://h/y");
    j.files[0].completed = false;
    j.resume(T0, 1).unwrap();
    j.start_connecting(T0);
    assert!(j.set_remote_name(0, "http://h/z", T0).is_err());
}

#[test]
fn ids_parse_with_braces() {
    let id = JobId::new();
    assert_eq!(id.braced_upper().parse::<JobId>(), Ok(id));
    assert!("nope".parse::<JobId>().is_err());
}

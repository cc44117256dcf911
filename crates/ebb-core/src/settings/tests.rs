use std::time::Duration;

use super::*;

#[test]
fn a_settings_file_sets_the_engine() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("ebbd.toml");
    std::fs::write(
        &path,
        "socket = \"/tmp/s.sock\"\n[engine]\ncheckpoint_bytes = 1024\ncheckpoint_interval = \"250ms\"\nmax_background_jobs = 3\ntime_slice = \"2s\"\nchunk_timeout = \"9s\"\ninactivity_timeout = \"1day\"\n",
    )
    .unwrap();
    let f = SettingsFile::load(&path, true).unwrap();
    assert_eq!(f.socket(None).unwrap(), Path::new("/tmp/s.sock"));
    assert_eq!(f.socket(Some(Path::new("/x"))).unwrap(), Path::new("/x"));
    let e = f.engine_config("/tmp/d".into(), &EngineSettings::default());
    assert_eq!(e.checkpoint.bytes, 1024);
    assert_eq!(e.checkpoint.interval, Duration::from_millis(250));
    assert_eq!(e.max_background_jobs, 3);
    assert_eq!(e.time_slice, Duration::from_secs(2));
    assert_eq!(e.http.chunk_timeout, Duration::from_secs(9));
    assert_eq!(e.job_inactivity_timeout, Duration::from_secs(86_400));
    // The environment and flags win over the file.
    let over = EngineSettings {
        time_slice: Some(Duration::from_secs(5)),
        ..EngineSettings::default()
    };
    let e = f.engine_config("/tmp/d".into(), &over);
    assert_eq!(e.time_slice, Duration::from_secs(5));
    assert_eq!(e.checkpoint.bytes, 1024);
}

#[test]
fn bad_files_are_errors_that_name_the_file_and_key() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("ebbd.toml");
    std::fs::write(&path, "[engine]\nbogus = 1\n").unwrap();
    assert!(SettingsFile::load(&path, true).is_err());
    std::fs::write(&path, "[engine]\ntime_slice = \"soon\"\n").unwrap();
    let err = SettingsFile::load(&path, true).unwrap_err().to_string();
    assert!(
        err.contains("time_slice") && err.contains("ebbd.toml"),
        "{err}"
    );
    std::fs::write(
        &path,
        "[bandwidth]\nidle_delay = false\nmax_rate = { low = \"1MiB/s\" }\n[bandwidth.schedule]\nwork_hours = { days = [\"mon-fri\"], hours = \"08:00-17:00\" }\nwork = { low = \"0\" }\n",
    )
    .unwrap();
    let e = SettingsFile::load(&path, true)
        .unwrap()
        .engine_config("/tmp/d".into(), &EngineSettings::default());
    assert!(e.bandwidth.idle && !e.bandwidth.idle_delay);
    assert_eq!(
        e.bandwidth.max_rate.low,
        crate::model::Limit::BytesPerSec(1 << 20)
    );
    assert!(e.bandwidth.schedule.is_some());
    std::fs::write(&path, "[bandwidth]\nmax_rate = { all = \"fast\" }\n").unwrap();
    let err = SettingsFile::load(&path, true).unwrap_err().to_string();
    assert!(err.contains("bad rate"), "{err}");
    // No file at the default place: the defaults; at a place asked for: an error.
    assert!(SettingsFile::load(&dir.path().join("none.toml"), false).is_ok());
    assert!(SettingsFile::load(&dir.path().join("none.toml"), true).is_err());
}

#[test]
fn settings_say_how_they_differ_from_a_running_engine() {
    let running = EngineSettings::of(&EngineConfig::new("/tmp/d"));
    let asked = EngineSettings {
        time_slice: Some(Duration::from_secs(2)),
        max_background_jobs: Some(1),
        ..EngineSettings::default()
    };
    assert_eq!(
        asked.differences(&running),
        ["--time-slice 2s (it runs with 1m)"]
    );
    assert!(EngineSettings::default().differences(&running).is_empty());
    // Compared as the engine takes them: 0 background jobs runs as 1.
    let zero = EngineSettings {
        max_background_jobs: Some(0),
        ..EngineSettings::default()
    };
    assert!(zero.differences(&running).is_empty());
    // What crosses the wire comes back the same.
    let json = serde_json::to_string(&running).unwrap();
    assert_eq!(
        serde_json::from_str::<EngineSettings>(&json).unwrap(),
        running
    );
    assert!(json.contains("\"time_slice\":\"1m\""), "{json}");
}

#[cfg(feature = "cli")]
#[test]
fn each_flag_reads_the_variable_its_setting_names() {
    use clap::Args;
    let all = EngineSettings {
        checkpoint_bytes: Some(1),
        checkpoint_interval: Some(Duration::from_secs(1)),
        max_background_jobs: Some(1),
        time_slice: Some(Duration::from_secs(1)),
        chunk_timeout: Some(Duration::from_secs(1)),
        connect_timeout: Some(Duration::from_secs(1)),
        inactivity_timeout: Some(Duration::from_secs(1)),
    };
    let cmd = EngineSettings::augment_args(clap::Command::new("t"));
    let settings = all.settings();
    assert_eq!(settings.len(), cmd.get_arguments().count());
    for s in settings {
        let arg = cmd
            .get_arguments()
            .find(|a| a.get_long() == Some(&s.key.replace('_', "-")))
            .unwrap_or_else(|| panic!("no flag for {}", s.key));
        assert_eq!(arg.get_env().and_then(|e| e.to_str()), Some(s.env));
    }
}

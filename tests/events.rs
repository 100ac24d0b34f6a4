//! The library's events reach an embedding program's own `tracing`
//! subscriber: recovery, snapshots, a journal that cannot write and its
//! healing, each with its figures as fields.

use std::io::Write;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures::executor::block_on;
use numpool::{Engine, EngineConfig, FsyncPolicy, JournalConfig, NewProfile, PhoneNumber};
use serde_json::Value;

/// What the subscriber wrote: one JSON object a line.
#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Captured {
    fn events(&self) -> Vec<Value> {
        String::from_utf8_lossy(&self.0.lock().unwrap())
            .lines()
            .filter_map(|l| serde_json::from_str(l).ok())
            .collect()
    }

    /// The first event from the `from`th on at `level` whose message
    /// starts with `message`, waiting (at most 10 s) for it.
    fn wait_for(&self, from: usize, level: &str, message: &str) -> Value {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let found = self.events().into_iter().skip(from).find(|e| {
                e["level"] == level
                    && e["fields"]["message"]
                        .as_str()
                        .is_some_and(|m| m.starts_with(message))
            });
            if let Some(e) = found {
                return e;
            }
            assert!(Instant::now() < deadline, "no {level} {message:?} event");
            std::thread::sleep(Duration::from_millis(10));
        }
    }
}

#[test]
fn an_embedders_subscriber_receives_recovery_snapshot_failure_and_healing() {
    let captured = Captured::default();
    let writer = captured.clone();
    tracing_subscriber::fmt()
        .json()
        .with_writer(move || writer.clone())
        .init();
    let dir = tempfile::Builder::new()
        .prefix("numpool-events-")
        .tempdir()
        .unwrap();
    let fault: PathBuf = dir.path().join("FAULT");
    // Test support: every journal write fails while this file exists.
    std::env::set_var("NUMPOOL_FAULT_JOURNAL", &fault);
    let config = EngineConfig {
        journal: Some(JournalConfig {
            dir: dir.path().to_path_buf(),
            fsync: FsyncPolicy::Always,
            snapshot_every: None,
        }),
        ..EngineConfig::default()
    };
    let engine = Engine::start(config.clone()).unwrap();
    let p = block_on(engine.create_profile(NewProfile {
        name: "events".into(),
        ..Default::default()
    }))
    .unwrap()
    .id;
    block_on(engine.snapshot_now()).unwrap();
    let snapshot = captured.wait_for(0, "INFO", "journal: snapshot taken");
    assert!(
        snapshot["fields"]["bytes"].as_u64().unwrap() > 0,
        "{snapshot}"
    );
    // A journal that cannot write: the change is refused and an event
    // says why; once it can, another says it writes again.
    std::fs::write(&fault, b"").unwrap();
    let number = PhoneNumber::parse_e164("+13125550001").unwrap();
    assert!(block_on(engine.assign_number(number, Some(p))).is_err());
    let failed = captured.wait_for(0, "WARN", "journal:");
    assert!(failed["fields"]["error"].is_string(), "{failed}");
    std::fs::remove_file(&fault).unwrap();
    captured.wait_for(0, "INFO", "journal: writing again");
    block_on(engine.shutdown());
    // A restart: what it recovered, and how long that took.
    let before = captured.events().len();
    let engine = Engine::start(config).unwrap();
    let recovered = captured.wait_for(before, "INFO", "journal: recovered");
    assert_eq!(recovered["fields"]["profiles"], 1, "{recovered}");
    assert!(recovered["fields"]["took_ms"].is_u64(), "{recovered}");
    assert!(recovered["target"]
        .as_str()
        .unwrap()
        .starts_with("numpool::"));
    block_on(engine.shutdown());
}

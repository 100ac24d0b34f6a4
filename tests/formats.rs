//! Every build reads the data directories that earlier builds wrote. Each
//! `tests/fixtures/format-N` holds a data directory written by the last
//! build of journal format version N (`scripts/make-format-fixture`: a
//! snapshot, then a log with changes after it, then SIGKILL), and what the
//! API showed just before the kill. The engine starts on a copy of it with
//! its clock at that moment and must show the same: profiles, settings,
//! mappings (pinned ones too, a broken one gone), opt-outs, numbers with
//! their rates and health.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use futures::executor::block_on;
use numpool::test_util::ManualClock;
use numpool::{Engine, EngineConfig, JournalConfig, PhoneNumber, ProfileId, Timestamp};
use serde_json::Value;

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        std::fs::copy(entry.path(), to.join(entry.file_name())).unwrap();
    }
}

fn fixture(version: u32) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(format!("tests/fixtures/format-{version}"))
}

fn sorted(mut v: Vec<String>) -> Vec<String> {
    v.sort_unstable();
    v
}

fn reads_as_written(version: u32) {
    let dir = fixture(version);
    let expected: Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("expected.json")).unwrap()).unwrap();
    let data = tempfile::Builder::new()
        .prefix(&format!("numpool-format-{version}-"))
        .tempdir()
        .unwrap();
    copy_dir(&dir.join("data"), data.path());
    let now = expected["now"]
        .as_str()
        .unwrap()
        .parse::<jiff::Timestamp>()
        .unwrap()
        .as_millisecond() as u64;
    let clock = Arc::new(ManualClock::new(Timestamp::from_millis(now)));
    let config = EngineConfig {
        journal: Some(JournalConfig::new(data.path())),
        ..EngineConfig::default()
    };
    let engine = Engine::start_with_clock(config, clock).unwrap();
    let profiles = expected["profiles"].as_object().unwrap();
    assert_eq!(profiles.len(), 2);
    for (id, want) in profiles {
        let p = ProfileId::parse(id).unwrap();
        let record = engine.profile(p).unwrap();
        assert_eq!(record.name, want["profile"]["name"].as_str().unwrap());
        let settings = serde_json::to_value(&record.number_pool_settings).unwrap();
        for field in [
            "sticky_sender",
            "geomatch",
            "long_code_weight",
            "toll_free_weight",
        ] {
            assert_eq!(
                settings[field]
                    .as_f64()
                    .or(settings[field].as_bool().map(f64::from)),
                want["profile"]["number_pool_settings"][field]
                    .as_f64()
                    .or(want["profile"]["number_pool_settings"][field]
                        .as_bool()
                        .map(f64::from)),
                "format {version}: {field} of {}",
                record.name
            );
        }
        let mappings: Vec<String> = block_on(engine.mappings(p))
            .unwrap()
            .iter()
            .map(|m| format!("{} {} {}", m.to, m.from, m.pinned))
            .collect();
        let want_mappings: Vec<String> = want["mappings"]
            .as_array()
            .unwrap()
            .iter()
            .map(|m| {
                format!(
                    "{} {} {}",
                    m["to"].as_str().unwrap(),
                    m["from"].as_str().unwrap(),
                    m["pinned"]
                )
            })
            .collect();
        assert!(!want_mappings.is_empty());
        assert_eq!(
            sorted(mappings),
            sorted(want_mappings),
            "format {version}: mappings"
        );
        let opt_outs: Vec<String> = block_on(engine.opt_outs_page(p, None, 1000))
            .unwrap()
            .opt_outs
            .iter()
            .map(|o| o.to.to_string())
            .collect();
        let want_opt_outs: Vec<String> = want["opt_outs"]
            .as_array()
            .unwrap()
            .iter()
            .map(|o| o["to"].as_str().unwrap().to_string())
            .collect();
        assert_eq!(
            sorted(opt_outs),
            sorted(want_opt_outs),
            "format {version}: opt-outs"
        );
        for n in want["numbers"].as_array().unwrap() {
            let number = PhoneNumber::parse_e164(n["phone_number"].as_str().unwrap()).unwrap();
            let status = block_on(engine.number(number)).unwrap();
            assert_eq!(status.record.profile, Some(p));
            assert_eq!(
                status.record.messages_per_second,
                n["messages_per_second"].as_f64(),
                "format {version}: rate of {number}"
            );
            assert_eq!(
                u64::from(status.health.finalized),
                n["health"]["message_count"].as_u64().unwrap(),
                "format {version}: health of {number}"
            );
        }
    }
    // It goes on writing in the current format, and reads that back too.
    let p = ProfileId::parse(profiles.keys().next().unwrap()).unwrap();
    let to = PhoneNumber::parse_e164("+13125558888").unwrap();
    let sent = block_on(engine.send(p, to)).unwrap();
    block_on(engine.shutdown());
    let engine = Engine::start(EngineConfig {
        journal: Some(JournalConfig::new(data.path())),
        ..EngineConfig::default()
    })
    .unwrap();
    assert_eq!(
        block_on(engine.mapping(p, to)).unwrap().map(|m| m.from),
        Some(sent.sender)
    );
    block_on(engine.shutdown());
}

#[test]
fn a_data_directory_of_format_2_reads_as_written() {
    reads_as_written(2);
}

#[test]
fn a_data_directory_of_format_3_reads_as_written() {
    reads_as_written(3);
}

#[test]
fn a_data_directory_of_format_4_reads_as_written() {
    reads_as_written(4);
}

#[test]
fn a_data_directory_of_format_5_reads_as_written() {
    // Its snapshot and its log each hold a `MappingsSet` record (the
    // mappings of a snapshot's profile; an import after it).
    reads_as_written(5);
}

/// The format version this build writes, read from the header of a log it
/// wrote (bytes 8 to 12).
fn current_version() -> u32 {
    let data = tempfile::Builder::new()
        .prefix("numpool-format-now-")
        .tempdir()
        .unwrap();
    let engine = Engine::start(EngineConfig {
        journal: Some(JournalConfig::new(data.path())),
        ..EngineConfig::default()
    })
    .unwrap();
    block_on(engine.shutdown());
    let log = std::fs::read_dir(data.path())
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| p.extension().is_some_and(|e| e == "seg"))
        .unwrap();
    let bytes = std::fs::read(log).unwrap();
    u32::from_le_bytes(bytes[8..12].try_into().unwrap())
}

#[test]
fn every_format_this_build_reads_has_a_fixture() {
    // The oldest version this build reads (`OLDEST_READABLE` in
    // src/journal/format.rs); a new version needs its fixture and a test above.
    let oldest = 2;
    let current = current_version();
    assert!(current >= 4);
    for version in oldest..=current {
        assert!(
            fixture(version).join("expected.json").is_file(),
            "no data directory of format {version} in tests/fixtures"
        );
    }
}

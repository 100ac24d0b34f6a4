//! `serve`'s settings: defaults, refusals, and precedence.

use super::*;

#[test]
fn defaults_and_refusals() {
    let c = ServeArgs::default().resolve().unwrap();
    assert_eq!(c.listen.to_string(), "127.0.0.1:8080");
    assert_eq!(c.engine.sticky_ttl_secs, 8 * 86_400);
    assert_eq!(c.storage, Storage::DataDir(PathBuf::from("./numpool-data")));
    let journal = c.engine.journal.clone().unwrap();
    assert_eq!(
        journal.fsync,
        FsyncPolicy::Interval(Duration::from_millis(10))
    );
    let ephemeral = ServeArgs {
        ephemeral: true,
        ..Default::default()
    };
    assert!(ephemeral.resolve().unwrap().engine.journal.is_none());
    let bad_fsync = ServeArgs {
        fsync: Some("sometimes".into()),
        ..Default::default()
    };
    assert!(bad_fsync.resolve().is_err());
    let open = ServeArgs {
        listen: Some("0.0.0.0:8080".parse().unwrap()),
        ..Default::default()
    };
    assert!(matches!(
        open.resolve(),
        Err(ConfigError::UnauthenticatedOnNetwork(_))
    ));
    let bad = ServeArgs {
        sticky_ttl: Some("0s".into()),
        ..Default::default()
    };
    assert!(bad.resolve().is_err());
}

#[test]
fn flags_win_over_the_file() {
    let dir = tempfile::Builder::new()
        .prefix("numpool-cli-")
        .tempdir()
        .unwrap();
    let path = dir.path().join("numpool.toml");
    std::fs::write(
        &path,
        "sticky_ttl = \"2s\"\nlisten = \"127.0.0.1:9000\"\napi_keys = [\"k1\"]\n",
    )
    .unwrap();
    let args = ServeArgs {
        config: Some(path),
        listen: Some("127.0.0.1:7000".parse().unwrap()),
        ..Default::default()
    };
    let c = args.resolve().unwrap();
    assert_eq!(c.listen.port(), 7000);
    assert_eq!(c.engine.sticky_ttl_secs, 2);
    assert!(!c.http.keys.is_empty());
    let banner = c.describe();
    assert!(banner.contains("1 configured"), "{banner}");
    assert!(!banner.contains("k1"), "{banner}");
}

/// `ServeArgs` as the command line parses it.
#[derive(clap::Parser)]
struct Serve {
    #[command(flatten)]
    args: ServeArgs,
}

/// Environment variables are the process's: one test at a time sets them.
static ENV: std::sync::Mutex<()> = std::sync::Mutex::new(());

/// Resolves `flags` with `env` set (every other `NUMPOOL_*` variable and
/// `RUST_LOG` unset) and `file` as the TOML file.
fn resolve_with(
    flags: &[&str],
    env: &[(&str, &str)],
    file: &str,
) -> Result<ServeConfig, ConfigError> {
    use clap::Parser;
    let _one = ENV.lock().unwrap_or_else(|e| e.into_inner());
    let dir = tempfile::Builder::new()
        .prefix("numpool-precedence-")
        .tempdir()
        .unwrap();
    let path = dir.path().join("numpool.toml");
    std::fs::write(&path, file).unwrap();
    let saved: Vec<(String, String)> = std::env::vars()
        .filter(|(k, _)| k.starts_with("NUMPOOL_") || k == "RUST_LOG")
        .collect();
    // SAFETY (edition 2021: safe fns): the ENV lock keeps other tests of
    // this module from reading the environment meanwhile.
    for (k, _) in &saved {
        std::env::remove_var(k);
    }
    for (k, v) in env {
        std::env::set_var(k, v);
    }
    let config = path.to_str().unwrap().to_string();
    let mut argv = vec!["serve", "--config", &config];
    argv.extend_from_slice(flags);
    // Resolved with the environment still set: some settings (etcd's
    // password, RUST_LOG) are read from it then.
    let resolved = Serve::try_parse_from(argv)
        .map(|s| s.args.resolve())
        .map_err(|e| e.to_string());
    for (k, _) in env {
        std::env::remove_var(k);
    }
    for (k, v) in &saved {
        std::env::set_var(k, v);
    }
    resolved.expect("the flags parse")
}

/// One setting: its flag, variable and file key, three values to tell the
/// sources apart, and what the resolved configuration says of it.
struct Setting {
    flag: &'static str,
    env: &'static str,
    key: &'static str,
    values: [&'static str; 3],
    default: &'static str,
    read: fn(&ServeConfig) -> String,
}

fn toml_value(v: &str) -> String {
    if v.parse::<f64>().is_ok() || v.parse::<bool>().is_ok() {
        v.to_string()
    } else {
        format!("{v:?}")
    }
}

#[test]
fn each_setting_takes_the_flag_over_the_environment_over_the_file_over_the_default() {
    let settings = [
        Setting {
            flag: "--listen",
            env: "NUMPOOL_LISTEN",
            key: "listen",
            values: ["127.0.0.1:7001", "127.0.0.1:7002", "127.0.0.1:7003"],
            default: "127.0.0.1:8080",
            read: |c| c.listen.to_string(),
        },
        Setting {
            flag: "--sticky-ttl",
            env: "NUMPOOL_STICKY_TTL",
            key: "sticky_ttl",
            values: ["1s", "2s", "3s"],
            default: "691200",
            read: |c| c.engine.sticky_ttl_secs.to_string(),
        },
        Setting {
            flag: "--fsync",
            env: "NUMPOOL_FSYNC",
            key: "fsync",
            values: ["always", "never", "interval:5ms"],
            default: "interval:10ms",
            read: |c| c.engine.journal.as_ref().unwrap().fsync.to_string(),
        },
        Setting {
            flag: "--snapshot-every",
            env: "NUMPOOL_SNAPSHOT_EVERY",
            key: "snapshot_every",
            values: ["1m", "2m", "3m"],
            default: "600",
            read: |c| {
                c.engine
                    .journal
                    .as_ref()
                    .unwrap()
                    .snapshot_every
                    .unwrap()
                    .as_secs()
                    .to_string()
            },
        },
        Setting {
            flag: "--health-min-samples",
            env: "NUMPOOL_HEALTH_MIN_SAMPLES",
            key: "health_min_samples",
            values: ["1", "2", "3"],
            default: "20",
            read: |c| c.engine.health.min_samples.to_string(),
        },
        Setting {
            flag: "--mailbox-bound",
            env: "NUMPOOL_MAILBOX_BOUND",
            key: "mailbox_bound",
            values: ["11", "12", "13"],
            default: "1024",
            read: |c| c.engine.mailbox_bound.to_string(),
        },
        Setting {
            flag: "--body-limit",
            env: "NUMPOOL_BODY_LIMIT",
            key: "body_limit",
            values: ["2001", "2002", "2003"],
            default: "262144",
            read: |c| c.http.body_limit.to_string(),
        },
        Setting {
            flag: "--long-code-mps",
            env: "NUMPOOL_LONG_CODE_MPS",
            key: "long_code_mps",
            values: ["5", "6", "7"],
            default: "1",
            read: |c| c.engine.capacity.rates.long_code.to_string(),
        },
        Setting {
            flag: "--log-format",
            env: "NUMPOOL_LOG_FORMAT",
            key: "log_format",
            values: ["json", "text", "json"],
            default: "false",
            read: |c| c.log.json.to_string(),
        },
        Setting {
            flag: "--log-level",
            env: "NUMPOOL_LOG_LEVEL",
            key: "log_level",
            values: ["warn", "debug", "error"],
            default: "info",
            read: |c| c.log.filter.clone(),
        },
        Setting {
            flag: "--access-log",
            env: "NUMPOOL_ACCESS_LOG",
            key: "access_log",
            values: ["true", "false", "true"],
            default: "false",
            read: |c| c.http.access_log.to_string(),
        },
        Setting {
            flag: "--data-dir",
            env: "NUMPOOL_DATA_DIR",
            key: "data_dir",
            values: ["/tmp/a", "/tmp/b", "/tmp/c"],
            default: "./numpool-data",
            read: |c| match &c.storage {
                Storage::DataDir(d) => d.display().to_string(),
                Storage::Ephemeral => "ephemeral".into(),
            },
        },
    ];
    for s in &settings {
        let [flag, env, file] = s.values;
        let file_line = format!("{} = {}\n", s.key, toml_value(file));
        let flag_arg = format!("{}={flag}", s.flag);
        let cases = [
            (vec![], vec![], String::new(), s.default),
            (vec![], vec![], file_line.clone(), file),
            (vec![], vec![(s.env, env)], file_line.clone(), env),
            (
                vec![flag_arg.as_str()],
                vec![(s.env, env)],
                file_line.clone(),
                flag,
            ),
            (vec![flag_arg.as_str()], vec![], file_line.clone(), flag),
        ];
        for (flags, vars, toml, want) in cases {
            let got = (s.read)(&resolve_with(&flags, &vars, &toml).unwrap());
            let want = match (s.key, want) {
                ("sticky_ttl", v) => v.trim_end_matches('s').to_string(),
                ("snapshot_every", v) if v.ends_with('m') => {
                    (v.trim_end_matches('m').parse::<u64>().unwrap() * 60).to_string()
                }
                ("fsync", "interval:5ms") => "interval:5ms".to_string(),
                ("log_format", v) => (v == "json").to_string(),
                (_, v) => v.to_string(),
            };
            assert_eq!(
                got, want,
                "{}: flags {flags:?}, env {vars:?}, file {toml:?}",
                s.key
            );
        }
    }
}

#[test]
fn where_state_is_kept_is_one_setting_and_the_command_line_wins() {
    // The bug this guards: `ephemeral = true` in the file beat --data-dir.
    let c = resolve_with(&["--data-dir=/tmp/kept"], &[], "ephemeral = true\n").unwrap();
    assert_eq!(c.storage, Storage::DataDir("/tmp/kept".into()));
    let c = resolve_with(
        &[],
        &[("NUMPOOL_DATA_DIR", "/tmp/env")],
        "ephemeral = true\n",
    )
    .unwrap();
    assert_eq!(c.storage, Storage::DataDir("/tmp/env".into()));
    let c = resolve_with(&["--ephemeral"], &[], "data_dir = \"/tmp/file\"\n").unwrap();
    assert_eq!(c.storage, Storage::Ephemeral);
    let c = resolve_with(&[], &[], "ephemeral = true\n").unwrap();
    assert_eq!(c.storage, Storage::Ephemeral);
    assert!(resolve_with(&[], &[], "ephemeral = true\ndata_dir = \"/tmp/x\"\n").is_err());
}

#[test]
fn api_keys_come_from_flags_a_file_or_the_environment_and_are_never_shown() {
    let dir = tempfile::Builder::new()
        .prefix("numpool-keys-")
        .tempdir()
        .unwrap();
    let keys = dir.path().join("keys");
    std::fs::write(&keys, "from-file-1\n\nfrom-file-2\n").unwrap();
    let key_file = format!("--api-key-file={}", keys.display());
    let c = resolve_with(
        &[&key_file, "--api-key=from-flag"],
        &[],
        "api_key = [\"from-toml\"]\n",
    )
    .unwrap();
    assert_eq!(c.http.keys.len(), 3);
    let c = resolve_with(
        &[],
        &[("NUMPOOL_API_KEYS", "e1,e2")],
        "api_key = [\"from-toml\"]\n",
    )
    .unwrap();
    assert_eq!(c.http.keys.len(), 2);
    // The file's key is read as `api_key` (the flag's name) or `api_keys`.
    let c = resolve_with(&[], &[], "api_key = [\"from-toml\"]\n").unwrap();
    assert_eq!(c.http.keys.len(), 1);
    let banner = c.describe();
    assert!(!banner.contains("from-toml"), "{banner}");
    let missing = resolve_with(&["--api-key-file=/no/such/keys"], &[], "");
    assert!(matches!(
        missing,
        Err(ConfigError::Invalid {
            setting: "api-key-file",
            ..
        })
    ));
}

#[test]
fn etcd_tls_and_authentication_are_checked_and_the_password_read_from_a_file_or_the_environment() {
    let dir = tempfile::Builder::new()
        .prefix("numpool-etcd-cfg-")
        .tempdir()
        .unwrap();
    let password = dir.path().join("password");
    std::fs::write(&password, "s3cret\n").unwrap();
    let base = [
        "--cluster=c",
        "--etcd=https://127.0.0.1:2379",
        "--data-dir=/tmp/node",
    ];
    let pw = format!("--etcd-password-file={}", password.display());
    let mut flags = base.to_vec();
    flags.extend([
        "--etcd-ca=/ca.pem",
        "--etcd-cert=/c.pem",
        "--etcd-key=/k.pem",
        "--etcd-user=numpool",
        &pw,
    ]);
    let c = resolve_with(&flags, &[], "").unwrap();
    let etcd = &c.cluster.as_ref().unwrap().etcd;
    assert_eq!(
        etcd.tls.as_ref().unwrap().cert.as_deref(),
        Some(std::path::Path::new("/c.pem"))
    );
    assert_eq!(etcd.auth.as_ref().unwrap().password, "s3cret");
    assert!(!c.describe().contains("s3cret"));
    let mut from_env = base.to_vec();
    from_env.push("--etcd-user=numpool");
    let c = resolve_with(&from_env, &[("NUMPOOL_ETCD_PASSWORD", "from-env")], "").unwrap();
    assert_eq!(c.cluster.unwrap().etcd.auth.unwrap().password, "from-env");
    // A user without a password, a certificate without its key or CA: refused, named.
    assert!(matches!(
        resolve_with(&from_env, &[], ""),
        Err(ConfigError::Invalid {
            setting: "etcd-user",
            ..
        })
    ));
    let mut half = base.to_vec();
    half.extend(["--etcd-ca=/ca.pem", "--etcd-cert=/c.pem"]);
    assert!(matches!(
        resolve_with(&half, &[], ""),
        Err(ConfigError::Invalid {
            setting: "etcd-cert",
            ..
        })
    ));
    let mut no_ca = base.to_vec();
    no_ca.extend(["--etcd-cert=/c.pem", "--etcd-key=/k.pem"]);
    assert!(matches!(
        resolve_with(&no_ca, &[], ""),
        Err(ConfigError::Invalid {
            setting: "etcd-ca",
            ..
        })
    ));
}

//! A throwaway single-node etcd on free loopback ports for the tests, plain
//! or secure: TLS with a CA made by the test (rcgen; nothing committed),
//! client-certificate authentication, and etcd's user authentication
//! enabled through `etcdctl` (Debian's `etcd-client`; `scripts/etcd-install`
//! installs both).

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use tempfile::TempDir;

/// Certificates made for one test: a CA, a server certificate for
/// `127.0.0.1`/`localhost`, and client certificates, as PEM files.
pub struct Certs {
    pub dir: PathBuf,
    pub ca: PathBuf,
    pub server_cert: PathBuf,
    pub server_key: PathBuf,
    pub client_cert: PathBuf,
    pub client_key: PathBuf,
    /// A client certificate with a CommonName (`root`).
    pub named_client_cert: PathBuf,
    pub named_client_key: PathBuf,
}

impl Certs {
    /// Makes them in `dir`; the server certificate valid from `not_before`
    /// to `not_after` (offsets from now, in days).
    pub fn make_valid(dir: &Path, not_before: i64, not_after: i64) -> Certs {
        use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, KeyPair};
        std::fs::create_dir_all(dir).unwrap();
        let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
        ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        ca_params
            .distinguished_name
            .push(DnType::CommonName, "numpool test CA");
        let ca_key = KeyPair::generate().unwrap();
        let ca = ca_params.self_signed(&ca_key).unwrap();
        let now = time::OffsetDateTime::now_utc();
        let mut server =
            CertificateParams::new(vec!["localhost".into(), "127.0.0.1".into()]).unwrap();
        server.not_before = now + time::Duration::days(not_before);
        server.not_after = now + time::Duration::days(not_after);
        let server_key = KeyPair::generate().unwrap();
        let server_cert = server.signed_by(&server_key, &ca, &ca_key).unwrap();
        // No CommonName: with authentication on, etcd's JSON gateway refuses
        // a client certificate that has one (CVE-2018-16886).
        let mut client = CertificateParams::new(Vec::<String>::new()).unwrap();
        client.distinguished_name = rcgen::DistinguishedName::new();
        let client_key = KeyPair::generate().unwrap();
        let client_cert = client.signed_by(&client_key, &ca, &ca_key).unwrap();
        let mut named = CertificateParams::new(Vec::<String>::new()).unwrap();
        named.distinguished_name.push(DnType::CommonName, "root");
        let named_key = KeyPair::generate().unwrap();
        let named_cert = named.signed_by(&named_key, &ca, &ca_key).unwrap();
        let write = |name: &str, text: String| {
            let path = dir.join(name);
            std::fs::write(&path, text).unwrap();
            path
        };
        Certs {
            dir: dir.to_path_buf(),
            ca: write("ca.pem", ca.pem()),
            server_cert: write("server.pem", server_cert.pem()),
            server_key: write("server-key.pem", server_key.serialize_pem()),
            client_cert: write("client.pem", client_cert.pem()),
            client_key: write("client-key.pem", client_key.serialize_pem()),
            named_client_cert: write("named-client.pem", named_cert.pem()),
            named_client_key: write("named-client-key.pem", named_key.serialize_pem()),
        }
    }

    /// Certificates valid from yesterday for a year.
    pub fn make(dir: &Path) -> Certs {
        Certs::make_valid(dir, -1, 365)
    }
}

/// The password of etcd's `root` user in a secure etcd.
pub const ROOT_PASSWORD: &str = "etcd-root-password";

/// A throwaway single-node etcd.
pub struct Etcd {
    child: Option<Child>,
    /// Its data, log and certificates; removed when the field drops, after
    /// `drop` has stopped etcd.
    pub dir: TempDir,
    pub url: String,
    /// Set for a secure etcd: its certificates.
    pub certs: Option<Certs>,
    /// The `root` user's password, once authentication is on.
    password: Mutex<Option<String>>,
}

/// The directory of the etcd a test calls `name`, removed when dropped.
fn scratch_dir(name: &str) -> TempDir {
    tempfile::Builder::new()
        .prefix(&format!("numpool-etcd-{name}-"))
        .tempdir()
        .unwrap()
}

pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Whether `etcdctl` is on PATH (a secure etcd needs it).
pub fn has_etcdctl() -> bool {
    Command::new("etcdctl")
        .arg("version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

impl Etcd {
    /// A plain etcd, or a secure one when `NUMPOOL_TEST_SECURE_ETCD=1` (the
    /// same tests then run over TLS with authentication).
    pub fn start(name: &str) -> Etcd {
        if std::env::var("NUMPOOL_TEST_SECURE_ETCD").as_deref() == Ok("1") {
            Etcd::start_secure(name)
        } else {
            Etcd::start_plain(name)
        }
    }

    pub fn start_plain(name: &str) -> Etcd {
        Etcd::launch(scratch_dir(name), None)
    }

    /// An etcd serving TLS with the test's CA, asking clients for a
    /// certificate, with user authentication on (`root`, [`ROOT_PASSWORD`]).
    pub fn start_secure(name: &str) -> Etcd {
        let etcd = Etcd::start_tls(name, Certs::make);
        etcd.enable_auth();
        etcd
    }

    /// An etcd serving TLS with the certificates `make` makes in the
    /// directory given, asking clients for a certificate; no user
    /// authentication.
    pub fn start_tls(name: &str, make: impl FnOnce(&Path) -> Certs) -> Etcd {
        let dir = scratch_dir(name);
        let certs = make(&dir.path().join("certs"));
        Etcd::launch(dir, Some(certs))
    }

    fn launch(dir: TempDir, certs: Option<Certs>) -> Etcd {
        let (client, peer) = (free_port(), free_port());
        let scheme = if certs.is_some() { "https" } else { "http" };
        let url = format!("{scheme}://127.0.0.1:{client}");
        let peer_url = format!("http://127.0.0.1:{peer}");
        let log = std::fs::File::create(dir.path().join("etcd.log")).unwrap();
        let mut command = Command::new("etcd");
        command
            .args(["--name", "t", "--data-dir"])
            .arg(dir.path().join("data"))
            .args([
                "--listen-client-urls",
                &url,
                "--advertise-client-urls",
                &url,
            ])
            .args([
                "--listen-peer-urls",
                &peer_url,
                "--initial-advertise-peer-urls",
                &peer_url,
            ])
            .args(["--initial-cluster", &format!("t={peer_url}")])
            .args(["--heartbeat-interval", "10", "--election-timeout", "100"])
            .args(["--logger", "zap", "--log-outputs", "stderr"]);
        if let Some(c) = &certs {
            command
                .arg("--cert-file")
                .arg(&c.server_cert)
                .arg("--key-file")
                .arg(&c.server_key)
                .arg("--trusted-ca-file")
                .arg(&c.ca)
                .arg("--client-cert-auth");
        }
        let child = command
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("the etcd binary is on PATH (scripts/etcd-install installs it)");
        let etcd = Etcd {
            child: Some(child),
            dir,
            url,
            certs,
            password: Mutex::new(None),
        };
        etcd.wait_healthy();
        etcd
    }

    /// `etcdctl` against this etcd (with the client certificate, and as
    /// root once authentication is on), not yet run.
    fn etcdctl_command(&self, as_root: bool) -> Command {
        let mut command = Command::new("etcdctl");
        command
            .env("ETCDCTL_API", "3")
            .arg("--endpoints")
            .arg(&self.url);
        if let Some(c) = &self.certs {
            command
                .arg("--cacert")
                .arg(&c.ca)
                .arg("--cert")
                .arg(&c.client_cert)
                .arg("--key")
                .arg(&c.client_key);
        }
        if let Some(password) = self.password.lock().unwrap().as_ref().filter(|_| as_root) {
            command.arg("--user").arg(format!("root:{password}"));
        }
        command
    }

    /// Runs `etcdctl ARGS` against this etcd.
    pub fn etcdctl(&self, args: &[&str], as_root: bool) -> std::process::Output {
        self.etcdctl_command(as_root)
            .args(args)
            .output()
            .expect("etcdctl runs")
    }

    /// Changes the `root` user's password (etcd then takes none of the
    /// tokens it gave before).
    pub fn set_root_password(&self, new: &str) {
        use std::io::Write;
        let mut child = self
            .etcdctl_command(true)
            .args(["user", "passwd", "root", "--interactive=false"])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("etcdctl runs");
        writeln!(child.stdin.take().unwrap(), "{new}").unwrap();
        let out = child.wait_with_output().unwrap();
        assert!(
            out.status.success(),
            "etcdctl user passwd: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        *self.password.lock().unwrap() = Some(new.into());
    }

    fn enable_auth(&self) {
        let user = format!("root:{ROOT_PASSWORD}");
        for args in [
            &["user", "add", &user][..],
            &["user", "grant-role", "root", "root"],
            &["auth", "enable"],
        ] {
            let out = self.etcdctl(args, false);
            assert!(
                out.status.success(),
                "etcdctl {args:?}: {}{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            );
        }
        *self.password.lock().unwrap() = Some(ROOT_PASSWORD.into());
    }

    /// The flags a node needs for this etcd (TLS and the password file).
    pub fn node_flags(&self) -> Vec<String> {
        let Some(c) = &self.certs else {
            return Vec::new();
        };
        let mut flags = vec![
            format!("--etcd-ca={}", c.ca.display()),
            format!("--etcd-cert={}", c.client_cert.display()),
            format!("--etcd-key={}", c.client_key.display()),
        ];
        if let Some(password) = self.password.lock().unwrap().as_ref() {
            let file = self.dir.path().join("password");
            std::fs::write(&file, format!("{password}\n")).unwrap();
            flags.push("--etcd-user=root".into());
            flags.push(format!("--etcd-password-file={}", file.display()));
        }
        flags
    }

    pub fn addr(&self) -> std::net::SocketAddr {
        self.url
            .trim_start_matches("http://")
            .trim_start_matches("https://")
            .parse()
            .unwrap()
    }

    fn wait_healthy(&self) {
        // Generous: on 2 busy cores (the suite runs two tests at once, each
        // with its own etcd and nodes) etcd has been seen to need over 10 s.
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let out = self.etcdctl_health();
            if out {
                return;
            }
            assert!(Instant::now() < deadline, "etcd did not become healthy");
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Whether etcd answers its health check (over TLS when secure; its
    /// certificate not checked, as a test may give it an expired one).
    fn etcdctl_health(&self) -> bool {
        if self.certs.is_none() {
            return super::try_request(self.addr(), "GET", "/health", "", None, &[])
                .is_ok_and(|r| r.body["health"] == "true");
        }
        let out = self.etcdctl(&["--insecure-skip-tls-verify", "endpoint", "health"], false);
        out.status.success()
    }

    pub fn signal(&self, signal: &str) {
        let pid = self.child.as_ref().unwrap().id().to_string();
        Command::new("kill").args([signal, &pid]).status().unwrap();
    }
}

impl Drop for Etcd {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

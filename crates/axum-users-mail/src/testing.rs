//! Test support (feature `testing`): a real SMTP server on loopback (`tests/smtp/server.py`,
//! aiosmtpd) and a throw-away CA made with the `openssl` command.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// Whether the SMTP harness can run here. When it cannot, prints a `SKIPPED` line for `test`
/// and returns `false`, unless `SMTP_HARNESS_REQUIRED=1` (CI), where it panics.
pub fn smtp_harness_available(test: &str) -> bool {
    let python = Command::new("python3")
        .args(["-c", "import aiosmtpd"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    let openssl = Command::new("openssl")
        .arg("version")
        .stdout(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if python && openssl {
        return true;
    }
    assert!(
        std::env::var("SMTP_HARNESS_REQUIRED").as_deref() != Ok("1"),
        "SMTP_HARNESS_REQUIRED=1 but python3 with aiosmtpd (pip install aiosmtpd) or openssl is missing"
    );
    eprintln!("SKIPPED {test}: python3 with aiosmtpd or openssl missing (pip install aiosmtpd)");
    false
}

/// A CA and a server certificate for `localhost` and `127.0.0.1` that it signed, in a
/// temporary folder.
#[derive(Debug)]
pub struct TestCa {
    dir: tempfile::TempDir,
}

impl TestCa {
    /// Makes the CA and the server certificate with `openssl`.
    ///
    /// # Panics
    /// When `openssl` fails.
    pub fn generate() -> Self {
        let dir = tempfile::tempdir().expect("temp dir");
        let run = |args: &[&str]| {
            let out = Command::new("openssl")
                .args(args)
                .current_dir(dir.path())
                .output()
                .expect("openssl runs");
            assert!(
                out.status.success(),
                "openssl {args:?}: {}",
                String::from_utf8_lossy(&out.stderr)
            );
        };
        let ec = [
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
            "-nodes",
        ];
        run(&[
            &["req", "-x509"][..],
            &ec,
            &[
                "-keyout",
                "ca.key",
                "-out",
                "ca.pem",
                "-days",
                "2",
                "-subj",
                "/CN=axum-users test CA",
                "-addext",
                "basicConstraints=critical,CA:TRUE",
                "-addext",
                "keyUsage=critical,keyCertSign",
            ],
        ]
        .concat());
        run(&[
            &["req"][..],
            &ec,
            &[
                "-keyout",
                "server.key",
                "-out",
                "server.csr",
                "-subj",
                "/CN=localhost",
            ],
        ]
        .concat());
        std::fs::write(
            dir.path().join("ext.cnf"),
            "subjectAltName=DNS:localhost,IP:127.0.0.1\nbasicConstraints=CA:FALSE\nextendedKeyUsage=serverAuth\n",
        )
        .expect("write ext.cnf");
        run(&[
            "x509",
            "-req",
            "-in",
            "server.csr",
            "-CA",
            "ca.pem",
            "-CAkey",
            "ca.key",
            "-CAcreateserial",
            "-out",
            "server.pem",
            "-days",
            "2",
            "-extfile",
            "ext.cnf",
        ]);
        Self { dir }
    }

    /// The CA certificate (PEM): what a client trusts.
    pub fn ca_pem(&self) -> PathBuf {
        self.dir.path().join("ca.pem")
    }

    fn server_files(&self) -> (PathBuf, PathBuf) {
        (
            self.dir.path().join("server.pem"),
            self.dir.path().join("server.key"),
        )
    }
}

/// How the harness listens.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum HarnessTls {
    /// No TLS.
    Plain,
    /// STARTTLS, required before mail (and before AUTH).
    StartTls,
    /// TLS from the first byte.
    Implicit,
}

/// The harness's options.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct HarnessOptions {
    /// TLS mode.
    pub tls: HarnessTls,
    /// `user:password` that AUTH requires, if any.
    pub auth: Option<String>,
    /// The port; 0 for a free one.
    pub port: u16,
    /// Answer 451 to this many messages first.
    pub reject_first: u32,
}

impl Default for HarnessOptions {
    fn default() -> Self {
        Self {
            tls: HarnessTls::Plain,
            auth: None,
            port: 0,
            reject_first: 0,
        }
    }
}

/// One message the harness accepted.
#[derive(Debug, Clone)]
pub struct Received {
    /// The bytes as they arrived.
    pub raw: Vec<u8>,
    /// Envelope and session: `mail_from`, `rcpt_tos`, `tls`, `authenticated`.
    pub meta: serde_json::Value,
}

impl Received {
    /// The raw message as text.
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.raw).into_owned()
    }
}

/// A running `tests/smtp/server.py`; killed on drop. Messages land in [`SmtpHarness::dir`],
/// which may be shared by a harness restarted on the same port.
#[derive(Debug)]
pub struct SmtpHarness {
    child: Child,
    port: u16,
    dir: PathBuf,
}

impl SmtpHarness {
    /// Starts the server writing to `dir`, with `ca` for the TLS modes.
    ///
    /// # Panics
    /// When the server does not come up in 15 s.
    pub fn start(dir: &Path, options: &HarnessOptions, ca: Option<&TestCa>) -> Self {
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/smtp/server.py");
        let mut command = Command::new("python3");
        command
            .arg(script)
            .args(["--port", &options.port.to_string()])
            .arg("--dir")
            .arg(dir)
            .args(["--reject-first", &options.reject_first.to_string()]);
        let mode = match options.tls {
            HarnessTls::Plain => "plain",
            HarnessTls::StartTls => "starttls",
            HarnessTls::Implicit => "implicit",
        };
        command.args(["--tls", mode]);
        if options.tls != HarnessTls::Plain {
            let (cert, key) = ca.expect("a TLS harness needs a TestCa").server_files();
            command.arg("--cert").arg(cert).arg("--key").arg(key);
        }
        if let Some(auth) = &options.auth {
            command.args(["--auth", auth]);
        }
        let mut child = command
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("python3 starts");
        let stdout = child.stdout.take().expect("stdout");
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if let Some(port) = line.strip_prefix("ready ") {
                    let _ = tx.send(port.trim().parse::<u16>().ok());
                }
            }
        });
        let Ok(Some(port)) = rx.recv_timeout(Duration::from_secs(15)) else {
            let _ = child.kill();
            panic!("the SMTP harness did not start");
        };
        Self {
            child,
            port,
            dir: dir.to_path_buf(),
        }
    }

    /// The port it listens on.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The folder it records to.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The messages recorded so far in its folder, oldest first.
    pub fn received(&self) -> Vec<Received> {
        received_in(&self.dir)
    }

    /// Waits until the folder holds at least `n` messages, up to `timeout`.
    ///
    /// # Panics
    /// When it does not.
    pub async fn wait_for(&self, n: usize, timeout: Duration) -> Vec<Received> {
        let deadline = Instant::now() + timeout;
        loop {
            let got = self.received();
            if got.len() >= n {
                return got;
            }
            assert!(
                Instant::now() < deadline,
                "{} of {n} messages after {timeout:?}",
                got.len()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Stops it (the port is free again).
    pub fn stop(mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for SmtpHarness {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The messages recorded in `dir`, oldest first.
pub fn received_in(dir: &Path) -> Vec<Received> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut names: Vec<PathBuf> = entries
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == "eml"))
        .collect();
    names.sort_by_key(|p| {
        (
            std::fs::metadata(p).and_then(|m| m.modified()).ok(),
            p.clone(),
        )
    });
    names
        .into_iter()
        .filter_map(|p| {
            let raw = std::fs::read(&p).ok()?;
            let meta = std::fs::read_to_string(p.with_extension("json"))
                .ok()
                .and_then(|t| serde_json::from_str(&t).ok())
                .unwrap_or_default();
            Some(Received { raw, meta })
        })
        .collect()
}

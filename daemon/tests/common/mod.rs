//! Shared by the veild integration tests: a real veild process on a temp
//! socket and database, veilctl runs, raw and framed requests.
#![allow(dead_code)]

use std::io::{Read, Write};
use std::os::unix::fs::PermissionsExt;
use std::os::unix::net::UnixStream;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use veil_proto::{Reply, Request, encode_request};

pub const SECRET_B32: &str = "GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ";
pub const PASSWORD: &str = "Tr0ub4dor&3-correct";

pub struct Daemon {
    pub dir: tempfile::TempDir,
    pub child: Option<Child>,
}

impl Daemon {
    pub fn start(extra: &str) -> Daemon {
        let dir = tempfile::tempdir().unwrap();
        std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
        // `extra` may set failure_delay_ms itself (a top-level key, so first).
        let delay = if extra.contains("failure_delay_ms") {
            ""
        } else {
            "failure_delay_ms = 20\n"
        };
        let config = format!(
            "socket = \"{0}/veild.sock\"\ndatabase = \"{0}/veil.db\"\n{delay}{extra}\n\
             [argon2]\nm_cost_kib = 256\nt_cost = 1\np_cost = 1\n",
            dir.path().display()
        );
        std::fs::write(dir.path().join("veild.toml"), config).unwrap();
        let mut d = Daemon { dir, child: None };
        d.spawn();
        d
    }

    pub fn spawn(&mut self) {
        let stderr = std::fs::File::create(self.dir.path().join("veild.log")).unwrap();
        let child = Command::new(env!("CARGO_BIN_EXE_veild"))
            .args(["--log-stderr", "--config"])
            .arg(self.config())
            .stderr(stderr)
            .spawn()
            .unwrap();
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(10);
        while UnixStream::connect(self.socket()).is_err() {
            assert!(
                Instant::now() < deadline,
                "veild did not start: {}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    pub fn config(&self) -> PathBuf {
        self.dir.path().join("veild.toml")
    }

    pub fn socket(&self) -> PathBuf {
        self.dir.path().join("veild.sock")
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("veild.log")).unwrap_or_default()
    }

    /// The log once it has `lines` attempt lines: audit lines are written
    /// by their own thread, just after the answer may have left.
    pub fn log_with(&self, lines: usize) -> String {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let log = self.log();
            let n = log
                .lines()
                .filter(|l| l.contains("event=attempt") || l.contains("event=malformed"))
                .count();
            if n >= lines || Instant::now() > deadline {
                return log;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    pub fn veilctl(&self, args: &[&str], stdin: &str) -> (i32, String, String) {
        let mut child = Command::new(env!("CARGO_BIN_EXE_veilctl"))
            .arg("--config")
            .arg(self.config())
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        // veilctl may exit before reading (a refused name): a broken pipe is fine.
        let _ = child.stdin.take().unwrap().write_all(stdin.as_bytes());
        let out = child.wait_with_output().unwrap();
        (
            out.status.code().unwrap_or(-1),
            String::from_utf8_lossy(&out.stdout).into(),
            String::from_utf8_lossy(&out.stderr).into(),
        )
    }

    pub fn enrol(&self, user: &str, totp: bool) {
        let (rc, _, err) = self.veilctl(
            &["user", "add", user, "--password-stdin"],
            &format!("{PASSWORD}\n"),
        );
        assert_eq!(rc, 0, "{err}");
        if totp {
            let (rc, _, err) = self.veilctl(
                &["totp", "enroll", user, "--secret-stdin", "--no-confirm"],
                SECRET_B32,
            );
            assert_eq!(rc, 0, "{err}");
        }
    }

    /// Sends raw bytes, half-closes, returns every byte the daemon sent
    /// (nothing when no daemon listens).
    pub fn raw(&self, bytes: &[u8]) -> Vec<u8> {
        let Ok(mut s) = UnixStream::connect(self.socket()) else {
            return Vec::new();
        };
        s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        let _ = s.write_all(bytes);
        let _ = s.shutdown(std::net::Shutdown::Write);
        let mut out = Vec::new();
        let _ = s.read_to_end(&mut out);
        out
    }

    pub fn ask(&self, user: &str, password: &str, code: &str) -> Vec<u8> {
        self.ask_from(user, password, code, "")
    }

    pub fn ask_from(&self, user: &str, password: &str, code: &str, rhost: &str) -> Vec<u8> {
        let mut req = Request::new(user, Reply::from(password), Reply::from(code));
        req.service = "veil-test".into();
        req.rhost = rhost.into();
        self.raw(&encode_request(&req))
    }

    pub fn stop(&mut self) -> std::process::ExitStatus {
        let mut child = self.child.take().unwrap();
        nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(child.id() as i32),
            nix::sys::signal::SIGTERM,
        )
        .unwrap();
        child.wait().unwrap()
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

pub fn code_now() -> String {
    code_at(0)
}

pub fn code_at(offset_steps: i64) -> String {
    let secret = veil_daemon::common::totp::from_base32(SECRET_B32).unwrap();
    let now = veil_daemon::common::clock::unix_now();
    veil_daemon::common::totp::code_at(
        &secret,
        veil_daemon::common::totp::step_of(now) + offset_steps,
    )
    .to_string()
}

/// A code that is certainly not one of the accepted ones right now.
pub fn wrong_code() -> String {
    code_at(5)
}

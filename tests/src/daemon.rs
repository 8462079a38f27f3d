//! A real `veild` on a temp socket and a temp SQLite file, and `veilctl`
//! against the same config.
#![forbid(unsafe_code)]

use std::fs::File;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use tempfile::TempDir;

use crate::paths;

/// The settings a test varies; everything else is veild's default. The
/// default argon2 parameters here are cheap (tests, not production).
#[derive(Debug, Clone)]
pub struct DaemonConfig {
    pub failure_delay_ms: u64,
    /// `[lockout] deny`.
    pub deny: u32,
    /// `"source"` or `"user"`.
    pub scope: &'static str,
    /// `"required"` or `"if-enrolled"`.
    pub totp_policy: &'static str,
    /// `[argon2] m_cost_kib` and `t_cost` for new hashes (tests use cheap ones).
    pub argon2_m_cost_kib: u32,
    pub argon2_t_cost: u32,
    /// More `[lockout]` lines, e.g. `"user_deny = 10\n"`.
    pub lockout_extra: String,
    /// More `[limits]` lines, e.g. `"queue = 32\n"`.
    pub limits_extra: String,
}

impl Default for DaemonConfig {
    fn default() -> DaemonConfig {
        DaemonConfig {
            failure_delay_ms: 50,
            deny: 3,
            scope: "source",
            totp_policy: "required",
            argon2_m_cost_kib: 1024,
            argon2_t_cost: 1,
            lockout_extra: String::new(),
            limits_extra: String::new(),
        }
    }
}

impl DaemonConfig {
    fn toml(&self, socket: &Path, database: &Path) -> String {
        format!(
            "socket = {socket:?}\n\
             database = {database:?}\n\
             failure_delay_ms = {delay}\n\
             \n[lockout]\nscope = {scope:?}\ndeny = {deny}\n{lockout_extra}\
             \n[totp]\npolicy = {policy:?}\n\
             \n[argon2]\nm_cost_kib = {m_cost}\nt_cost = {t_cost}\np_cost = 1\n\
             \n[limits]\n{limits_extra}",
            delay = self.failure_delay_ms,
            scope = self.scope,
            deny = self.deny,
            policy = self.totp_policy,
            m_cost = self.argon2_m_cost_kib,
            t_cost = self.argon2_t_cost,
            lockout_extra = self.lockout_extra,
            limits_extra = self.limits_extra,
        )
    }
}

/// A running veild. Dropping it kills the process and removes its files.
#[derive(Debug)]
pub struct Veild {
    child: Option<Child>,
    dir: TempDir,
    pub config: DaemonConfig,
}

impl Veild {
    /// Starts `veild --config <temp>/veild.toml --log-stderr` and waits
    /// until its socket is listening.
    pub fn start(config: DaemonConfig) -> Veild {
        let dir = tempfile::Builder::new()
            .prefix("veil-d-")
            .tempdir()
            .expect("temp daemon dir");
        let mut veild = Veild {
            child: None,
            dir,
            config,
        };
        std::fs::write(
            veild.config_path(),
            veild.config.toml(&veild.socket(), &veild.database()),
        )
        .expect("write veild.toml");
        let stderr = File::create(veild.stderr_path()).expect("create the stderr file");
        let mut command = Command::new(paths::veild());
        crate::ffi::kill_with_parent(&mut command);
        let child = command
            .arg("--config")
            .arg(veild.config_path())
            .arg("--log-stderr")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(stderr)
            .spawn()
            .expect("spawn veild");
        veild.child = Some(child);
        veild.wait_listening(Duration::from_secs(20));
        veild
    }

    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    pub fn socket(&self) -> PathBuf {
        self.dir().join("veild.sock")
    }

    pub fn database(&self) -> PathBuf {
        self.dir().join("veil.db")
    }

    pub fn config_path(&self) -> PathBuf {
        self.dir().join("veild.toml")
    }

    pub fn stderr_path(&self) -> PathBuf {
        self.dir().join("veild.stderr")
    }

    /// Everything veild wrote to stderr so far.
    pub fn stderr(&self) -> String {
        std::fs::read_to_string(self.stderr_path()).unwrap_or_default()
    }

    /// Waits (up to `timeout`) for a stderr line that contains every one of
    /// `parts`, and returns it. Audit lines are written by a separate thread
    /// in veild, so they can trail the answer by a moment.
    pub fn wait_for_line(&self, parts: &[&str], timeout: Duration) -> Option<String> {
        let deadline = Instant::now() + timeout;
        loop {
            let found = self
                .stderr()
                .lines()
                .find(|line| parts.iter().all(|p| line.contains(p)))
                .map(str::to_owned);
            if found.is_some() || Instant::now() >= deadline {
                return found;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// veild's process id while it runs (for signals and /proc).
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// Kills veild, leaving its socket file behind (a crashed daemon).
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Runs `veilctl --config <temp> <args>` with `stdin`; panics on failure.
    pub fn veilctl(&self, args: &[&str], stdin: &str) -> Output {
        let mut child = Command::new(paths::veilctl())
            .arg("--config")
            .arg(self.config_path())
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn veilctl");
        if let Some(mut input) = child.stdin.take() {
            input
                .write_all(stdin.as_bytes())
                .expect("write veilctl's stdin");
        }
        let out = child.wait_with_output().expect("wait for veilctl");
        assert!(
            out.status.success(),
            "veilctl {args:?} failed: {}\n{}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        );
        out
    }

    /// `veilctl user add NAME --password-stdin`.
    pub fn add_user(&self, name: &str, password: &str) {
        self.veilctl(
            &["user", "add", name, "--password-stdin"],
            &format!("{password}\n"),
        );
    }

    /// `veilctl totp enroll NAME --secret-stdin --no-confirm --no-qr`.
    pub fn enroll_totp(&self, name: &str, secret_base32: &str) {
        self.veilctl(
            &[
                "totp",
                "enroll",
                name,
                "--secret-stdin",
                "--no-confirm",
                "--no-qr",
            ],
            &format!("{secret_base32}\n"),
        );
    }

    /// `veilctl unlock NAME`.
    pub fn unlock(&self, name: &str) {
        self.veilctl(&["unlock", name], "");
    }

    fn wait_listening(&mut self, timeout: Duration) {
        let deadline = Instant::now() + timeout;
        let socket = self.socket();
        loop {
            if is_listening(&socket) {
                return;
            }
            if let Some(Ok(Some(status))) = self.child.as_mut().map(Child::try_wait) {
                panic!(
                    "veild exited with {status} before listening:\n{}",
                    self.stderr()
                );
            }
            assert!(
                Instant::now() < deadline,
                "veild did not listen within {timeout:?}:\n{}",
                self.stderr()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Veild {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Whether a Unix socket bound at `path` is listening, read from
/// `/proc/net/unix` (flag `__SO_ACCEPTCON`), so the check sends no request
/// that veild would count or log.
pub fn is_listening(path: &Path) -> bool {
    let Ok(table) = std::fs::read_to_string("/proc/net/unix") else {
        return false;
    };
    let wanted = path.to_string_lossy();
    table.lines().skip(1).any(|line| {
        let fields: Vec<&str> = line.split_whitespace().collect();
        fields.len() >= 8
            && fields[7] == wanted
            && u32::from_str_radix(fields[3], 16).is_ok_and(|flags| flags & 0x0001_0000 != 0)
    })
}

//! The one veild harness: a real `veild` on a temp socket and a temp
//! SQLite file, its config written by serialising `Config`, and `veilctl`
//! against the same config.
#![forbid(unsafe_code)]

use std::fs::File;
use std::io::Write;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::time::{Duration, Instant};

use tempfile::TempDir;
use veil_daemon::common::config::Config;
use veil_proto::{Reply, Request, encode_request};

use crate::paths;

/// The settings most PAM-level tests vary; everything else is veild's
/// default, but for cheap argon2 parameters (tests, not production).
#[derive(Debug, Clone)]
pub struct DaemonConfig {
    pub failure_delay_ms: u64,
    /// `[lockout] deny`.
    pub deny: u32,
    /// `"source"` or `"user"`.
    pub scope: &'static str,
    /// `"required"` or `"if-enrolled"`.
    pub totp_policy: &'static str,
    /// `[argon2] m_cost_kib` and `t_cost` for new hashes.
    pub argon2_m_cost_kib: u32,
    pub argon2_t_cost: u32,
    /// More `[lockout]` keys, as TOML lines, e.g. `"user_deny = 10\n"`.
    pub lockout_extra: String,
    /// More `[limits]` keys, as TOML lines, e.g. `"queue = 32\n"`.
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
    /// As TOML that [`with_toml`] merges over veild's defaults.
    fn toml(&self) -> String {
        format!(
            "failure_delay_ms = {delay}\n\
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

/// veild's defaults with what makes a socket-level test quick: a 20 ms
/// failure delay and argon2 at 256 KiB, one pass.
pub fn quick_config() -> Config {
    let mut config = Config {
        failure_delay_ms: 20,
        ..Config::default()
    };
    config.argon2.m_cost_kib = 256;
    config.argon2.t_cost = 1;
    config.argon2.p_cost = 1;
    config
}

/// `base` with the keys of the TOML text `extra` laid over it, table by
/// table, then validated as veild would (a typo fails the test here).
pub fn with_toml(base: Config, extra: &str) -> Config {
    fn merge(into: &mut toml::Table, from: toml::Table) {
        for (key, value) in from {
            match (into.get_mut(&key), value) {
                (Some(toml::Value::Table(mine)), toml::Value::Table(theirs)) => merge(mine, theirs),
                (_, value) => {
                    into.insert(key, value);
                }
            }
        }
    }
    let mut table = toml::Table::try_from(&base).expect("a Config serialises");
    let extra: toml::Table = extra
        .parse()
        .unwrap_or_else(|e| panic!("test TOML: {e}\n{extra}"));
    merge(&mut table, extra);
    let text = toml::to_string(&table).expect("a table serialises");
    Config::parse(&text, Path::new("test config")).unwrap_or_else(|e| panic!("{e}\n{text}"))
}

/// A running veild on a temp socket and database, with the config it was
/// given written to `dir/veild.toml`. Dropping it kills the process and
/// removes its files.
#[derive(Debug)]
pub struct Veild {
    pub child: Option<Child>,
    pub dir: TempDir,
    /// Extra environment for veild (kept across restarts), e.g. libfaketime's.
    pub env: Vec<(String, String)>,
    /// Where this veild's `veild` and `veilctl` are when not the tree's
    /// (an earlier release: see [`crate::pinned`]).
    pub bin_dir: Option<PathBuf>,
}

impl Veild {
    /// veild with the typed settings of `config` (PAM-level tests).
    pub fn start(config: DaemonConfig) -> Veild {
        Veild::launch(with_toml(Config::default(), &config.toml()))
    }

    /// veild with [`quick_config`] and `extra` TOML over it (socket-level tests).
    pub fn from_toml(extra: &str) -> Veild {
        Veild::launch(with_toml(quick_config(), extra))
    }

    /// veild with exactly `config` (its socket and database are set to the
    /// temp dir's).
    pub fn launch(config: Config) -> Veild {
        let dir = tempfile::Builder::new()
            .prefix("veil-d-")
            .tempdir()
            .expect("temp daemon dir");
        // Others must be able to reach the socket (tests switch uid), never write.
        std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755))
            .expect("chmod the temp dir");
        let mut veild = Veild {
            child: None,
            dir,
            env: Vec::new(),
            bin_dir: None,
        };
        veild.write_config(Config {
            socket: veild.socket(),
            database: veild.database(),
            ..config
        });
        veild.spawn();
        veild
    }

    /// veild with exactly `config`, its `database` included (a store
    /// shared with other veild, e.g. PostgreSQL); only the socket is the
    /// temp dir's.
    pub fn launch_shared(config: Config) -> Veild {
        Veild::launch_shared_with_env(config, &[])
    }

    /// [`Veild::launch_shared`] with more environment for veild.
    pub fn launch_shared_with_env(config: Config, env: &[(&str, &str)]) -> Veild {
        Veild::launch_shared_from(config, env, None)
    }

    /// [`Veild::launch_shared_with_env`] running the `veild` in `bin_dir`
    /// (another build that reads this tree's config) if given.
    pub fn launch_shared_from(
        config: Config,
        env: &[(&str, &str)],
        bin_dir: Option<PathBuf>,
    ) -> Veild {
        let dir = tempfile::Builder::new()
            .prefix("veil-d-")
            .tempdir()
            .expect("temp daemon dir");
        std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755))
            .expect("chmod the temp dir");
        let mut veild = Veild {
            child: None,
            dir,
            env: Vec::new(),
            bin_dir,
        };
        veild.write_config(Config {
            socket: veild.socket(),
            ..config
        });
        veild.env = env
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        veild.spawn();
        veild
    }

    /// Writes `config` as veild.toml, by serialising it.
    pub fn write_config(&self, mut config: Config) {
        // A test's veild never writes the host's node_exporter file:
        // metrics only where the test names a file of its own.
        if config.metrics.file.is_none() {
            config.metrics.interval_s = 0;
        }
        let text = toml::to_string(&config).expect("a Config serialises");
        std::fs::write(self.config_path(), text).expect("write veild.toml");
    }

    /// The config as written.
    pub fn config(&self) -> Config {
        Config::load(&self.config_path()).expect("the test's own config")
    }

    /// Starts veild on the written config and waits until it listens with
    /// its workers running.
    pub fn spawn(&mut self) {
        self.spawn_via(&[]);
    }

    /// [`Veild::spawn`] with `veild` and its arguments run by the command
    /// `prefix` (e.g. `unshare ... sh -c '... exec "$@"' sh`): veild in a
    /// namespace or as another user. Empty: veild itself.
    pub fn spawn_via(&mut self, prefix: &[&std::ffi::OsStr]) {
        let stderr = File::create(self.stderr_path()).expect("create the stderr file");
        let veild = self.binary("veild");
        let mut command = match prefix.split_first() {
            Some((program, args)) => {
                let mut c = Command::new(program);
                c.args(args).arg(&veild);
                c
            }
            None => Command::new(&veild),
        };
        crate::ffi::kill_with_parent(&mut command);
        let child = command
            .arg("--config")
            .arg(self.config_path())
            .arg("--log-stderr")
            .envs(self.env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(stderr)
            .spawn()
            .expect("spawn veild");
        self.child = Some(child);
        self.wait_listening(Duration::from_secs(20));
    }

    /// SIGTERM, then waits: veild finishes what it holds and removes its socket.
    pub fn stop(&mut self) -> ExitStatus {
        let mut child = self.child.take().expect("veild is running");
        nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(child.id() as i32),
            nix::sys::signal::SIGTERM,
        )
        .expect("signal veild");
        child.wait().expect("wait for veild")
    }

    /// Stops veild, writes `config` (as it is: start from [`Veild::config`])
    /// and starts veild again.
    pub fn restart(&mut self, config: Config) {
        if self.child.is_some() {
            self.stop();
        }
        self.write_config(config);
        self.spawn();
    }

    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// The path of `veild` or `veilctl` that this veild runs.
    pub fn binary(&self, name: &str) -> PathBuf {
        match (&self.bin_dir, name) {
            (Some(dir), _) => dir.join(name),
            (None, "veild") => paths::veild(),
            (None, "veilctl") => paths::veilctl(),
            (None, other) => panic!("veild runs no binary {other}"),
        }
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

    /// Everything veild wrote to stderr so far (its audit lines).
    pub fn stderr(&self) -> String {
        std::fs::read_to_string(self.stderr_path()).unwrap_or_default()
    }

    /// The audit log once it holds `lines` request lines (attempt or
    /// malformed): they are written by their own thread, just after the
    /// answer may have left.
    pub fn log_with(&self, lines: usize) -> String {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let log = self.stderr();
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

    /// Runs `veilctl --config <temp> <args>` with `stdin` to completion.
    fn run_veilctl(&self, args: &[&str], stdin: &str) -> Output {
        self.run_veilctl_env(args, stdin, &[])
    }

    /// Likewise, with `env` added to veilctl's environment.
    fn run_veilctl_env(&self, args: &[&str], stdin: &str, env: &[(&str, &str)]) -> Output {
        let mut child = Command::new(self.binary("veilctl"))
            .arg("--config")
            .arg(self.config_path())
            .args(args)
            .envs(env.iter().copied())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn veilctl");
        // veilctl may exit before reading (a refused name): a broken pipe is fine.
        if let Some(mut input) = child.stdin.take() {
            let _ = input.write_all(stdin.as_bytes());
        }
        child.wait_with_output().expect("wait for veilctl")
    }

    /// Runs veilctl; panics unless it succeeds.
    pub fn veilctl(&self, args: &[&str], stdin: &str) -> Output {
        let out = self.run_veilctl(args, stdin);
        assert!(
            out.status.success(),
            "veilctl {args:?} failed: {}\n{}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        );
        out
    }

    /// Runs veilctl and returns (exit status, stdout, stderr), whatever it is.
    pub fn ctl(&self, args: &[&str], stdin: &str) -> (i32, String, String) {
        let out = self.run_veilctl(args, stdin);
        (
            out.status.code().unwrap_or(-1),
            String::from_utf8_lossy(&out.stdout).into(),
            String::from_utf8_lossy(&out.stderr).into(),
        )
    }

    /// [`Veild::ctl`] with `env` added to veilctl's environment.
    pub fn ctl_env(
        &self,
        args: &[&str],
        stdin: &str,
        env: &[(&str, &str)],
    ) -> (i32, String, String) {
        let out = self.run_veilctl_env(args, stdin, env);
        (
            out.status.code().unwrap_or(-1),
            String::from_utf8_lossy(&out.stdout).into(),
            String::from_utf8_lossy(&out.stderr).into(),
        )
    }

    /// A user with [`wire::PASSWORD`](crate::wire::PASSWORD) and, with
    /// `totp`, the secret [`wire::SECRET_B32`](crate::wire::SECRET_B32).
    pub fn enrol(&self, user: &str, totp: bool) {
        self.add_user(user, crate::wire::PASSWORD);
        if totp {
            self.enroll_totp(user, crate::wire::SECRET_B32);
        }
    }

    /// Sends raw bytes, half-closes, returns every byte veild sent
    /// (nothing when no veild listens).
    pub fn raw(&self, bytes: &[u8]) -> Vec<u8> {
        crate::wire::raw(&self.socket(), bytes)
    }

    /// One framed request as the console would send it; the bytes back.
    pub fn ask(&self, user: &str, password: &str, code: &str) -> Vec<u8> {
        self.ask_from(user, password, code, "")
    }

    /// One framed request with PAM_RHOST `rhost` (from root: real uid 0);
    /// the bytes back. Without a host it is the console's: service `login`.
    pub fn ask_from(&self, user: &str, password: &str, code: &str, rhost: &str) -> Vec<u8> {
        let mut req = Request::new(user, Reply::from(password), Reply::from(code));
        req.service = if rhost.is_empty() {
            "login"
        } else {
            "veil-test"
        }
        .into();
        req.rhost = rhost.into();
        self.raw(&encode_request(&req))
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
            // veild binds before it starts its threads and logs `start`
            // once they run: tests that count its threads need that point.
            if is_listening(&socket) && self.stderr().lines().any(|l| l.contains("event=start ")) {
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

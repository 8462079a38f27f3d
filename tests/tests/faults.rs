//! pam_veil.so through real libpam when veild fails under it: killed in
//! the middle of a request, stopped with SIGSTOP (with its listen backlog
//! full, too), fed hostile user names. `pam_authenticate` must return
//! `PAM_AUTH_ERR` within the module's `timeout`, and the host process (this
//! test) must carry on and log in once veild is back.
//!
//! The last test runs every other test of this file again inside a private
//! mount namespace whose `/dev/log` is a socket the test reads, so it sees
//! everything veild and the module send to syslog, and checks that no
//! password, code or TOTP secret used in those runs appears in it.
//!
//! Build first: `cargo build -p pam-veil -p veil-daemon` (see pam_module.rs).

#![forbid(unsafe_code)]

use std::io::{ErrorKind, Write};
use std::ops::{Deref, DerefMut};
use std::os::unix::net::{UnixDatagram, UnixStream};
use std::path::Path;
use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use veil_tests::pam::{self, PAM_AUTH_ERR, PAM_SUCCESS, socket_args};
use veil_tests::totp::{DEMO_SECRET, code_now, wrong_code};
use veil_tests::{Attempt, DaemonConfig, PamRun, PamStack, Veild};

const PASSWORD: &str = "Fault-t0lerant horse battery";
const WRONG_PASSWORDS: [&str; 2] = ["guess-Kq7-not-it", "hunter2-Zx9-nope"];
const AUDIT_WAIT: Duration = Duration::from_secs(5);

/// Records a password or code this run typed, for the log scan of
/// `no_secret_reaches_any_log_in_a_full_run` (a no-op otherwise).
fn typed(secret: &str) -> String {
    if let Some(path) = std::env::var_os("VEIL_FAULTS_SECRETS") {
        let mut f = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
            .unwrap();
        writeln!(f, "{secret}").unwrap();
    }
    secret.to_owned()
}

/// A veild whose stderr is kept in `VEIL_FAULTS_LOGS` when the log scan
/// runs (the harness deletes its temp dir on drop), even after a panic.
struct Kept(Veild);

impl Deref for Kept {
    type Target = Veild;
    fn deref(&self) -> &Veild {
        &self.0
    }
}

impl DerefMut for Kept {
    fn deref_mut(&mut self) -> &mut Veild {
        &mut self.0
    }
}

impl Drop for Kept {
    fn drop(&mut self) {
        if let Some(dir) = std::env::var_os("VEIL_FAULTS_LOGS") {
            let name = format!("veild-{}.log", self.0.pid().unwrap_or(0));
            let _ = std::fs::write(Path::new(&dir).join(name), self.0.stderr());
        }
    }
}

fn start(config: DaemonConfig) -> Kept {
    let veild = Kept(Veild::start(config));
    for user in ["alice", "bob"] {
        veild.add_user(user, PASSWORD);
        veild.enroll_totp(user, DEMO_SECRET);
    }
    veild
}

fn login(stack: &PamStack, user: &str, password: &str, code: &str) -> PamRun {
    pam::authenticate(
        stack,
        &Attempt::new(user, &[&typed(password), &typed(code)]),
    )
}

fn signal(veild: &Veild, name: &str) {
    let pid = veild.pid().expect("veild runs").to_string();
    let status = Command::new("kill")
        .args([&format!("-{name}"), &pid])
        .status()
        .unwrap();
    assert!(status.success(), "kill -{name} {pid}");
}

/// Logs in with fresh right answers until veild allows (it may still be
/// draining a backlog), at most 15 s.
fn log_in_once_recovered(stack: &PamStack, user: &str) -> (PamRun, usize) {
    let deadline = Instant::now() + Duration::from_secs(15);
    let mut tries = 0;
    loop {
        tries += 1;
        let run = login(stack, user, PASSWORD, &code_now(DEMO_SECRET));
        if run.code == PAM_SUCCESS || Instant::now() > deadline {
            return (run, tries);
        }
        assert_eq!(run.code, PAM_AUTH_ERR);
        // The next code step: a denied attempt never consumed this one, but
        // a success from a drained backlog might have.
        std::thread::sleep(Duration::from_millis(500));
    }
}

#[test]
fn veild_killed_mid_request_gives_pam_auth_err_at_once_and_the_host_carries_on() {
    // A 4 s failure delay holds the denial in veild: killing it then is
    // killing it between the request and the answer.
    let mut veild = start(DaemonConfig {
        failure_delay_ms: 4000,
        ..DaemonConfig::default()
    });
    let stack = PamStack::veil(&socket_args(&veild.socket(), "10"));
    let pending = std::thread::scope(|s| {
        let stack = &stack;
        let pending =
            s.spawn(move || login(stack, "alice", WRONG_PASSWORDS[0], &wrong_code(DEMO_SECRET)));
        assert!(
            veild
                .wait_for_line(&["user=alice", "reason=wrong-password"], AUDIT_WAIT)
                .is_some(),
            "{}",
            veild.stderr()
        );
        veild.kill();
        pending.join().unwrap()
    });
    assert_eq!(pending.code_name(), "PAM_AUTH_ERR");
    assert!(
        pending.elapsed < Duration::from_secs(4),
        "returned on the kill, not on a timer: {:?}",
        pending.elapsed
    );
    eprintln!(
        "veild killed mid-request: PAM_AUTH_ERR after {:?} (timeout=10, failure delay 4 s)",
        pending.elapsed
    );
    // The same process, a new veild: logins work again.
    let fresh = start(DaemonConfig::default());
    let stack = PamStack::veil(&socket_args(&fresh.socket(), "5"));
    let (run, _) = log_in_once_recovered(&stack, "bob");
    assert_eq!(run.code_name(), "PAM_SUCCESS", "{}", fresh.stderr());
}

/// Connects to `socket` until a connect blocks (the listen backlog of a
/// stopped veild is full) and holds every connection until `stop`.
fn fill_backlog(socket: &Path, stop: &AtomicBool, count: &AtomicUsize) {
    let mut held = Vec::new();
    while !stop.load(Ordering::SeqCst) {
        match UnixStream::connect(socket) {
            Ok(s) => {
                held.push(s);
                count.fetch_add(1, Ordering::SeqCst);
            }
            Err(e) if e.kind() == ErrorKind::Interrupted => {}
            Err(_) => break,
        }
    }
}

#[test]
fn a_stopped_veild_gives_pam_auth_err_within_the_timeout_even_with_its_backlog_full() {
    let limit = veil_tests::raise_fd_limit().unwrap();
    let somaxconn: usize = std::fs::read_to_string("/proc/sys/net/core/somaxconn")
        .ok()
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(4096);
    assert!(
        limit as usize > somaxconn + 100,
        "RLIMIT_NOFILE {limit} cannot fill a backlog of {somaxconn}"
    );
    let veild = start(DaemonConfig::default());
    let stack = PamStack::veil(&socket_args(&veild.socket(), "1"));
    signal(&veild, "STOP");

    // Backlog not yet full: the connect succeeds, the answer never comes.
    let code = code_now(DEMO_SECRET);
    let queued = login(&stack, "alice", PASSWORD, &code);
    assert_eq!(queued.code_name(), "PAM_AUTH_ERR");
    assert!(
        queued.elapsed < Duration::from_millis(2000),
        "{:?}",
        queued.elapsed
    );

    let stop = Arc::new(AtomicBool::new(false));
    let count = Arc::new(AtomicUsize::new(0));
    let filler = {
        let (socket, stop, count) = (veild.socket(), Arc::clone(&stop), Arc::clone(&count));
        std::thread::spawn(move || fill_backlog(&socket, &stop, &count))
    };
    // Full once the filler has been stuck in connect for a while.
    let mut last = usize::MAX;
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        std::thread::sleep(Duration::from_millis(500));
        let now = count.load(Ordering::SeqCst);
        if now == last {
            break;
        }
        last = now;
        assert!(Instant::now() < deadline, "the backlog never filled");
    }
    // Backlog full: a blocking connect would hang; the module's does not.
    let blocked = login(&stack, "alice", PASSWORD, &code);
    assert_eq!(blocked.code_name(), "PAM_AUTH_ERR");
    assert!(
        blocked.elapsed < Duration::from_millis(2000),
        "{:?}",
        blocked.elapsed
    );
    eprintln!(
        "veild stopped: PAM_AUTH_ERR after {:?} (queued) and {:?} (backlog of {last} full), timeout=1",
        queued.elapsed, blocked.elapsed
    );

    signal(&veild, "CONT");
    stop.store(true, Ordering::SeqCst);
    filler.join().unwrap();
    let (run, tries) =
        log_in_once_recovered(&PamStack::veil(&socket_args(&veild.socket(), "5")), "bob");
    assert_eq!(run.code_name(), "PAM_SUCCESS", "{}", veild.stderr());
    eprintln!("SIGCONT: logged in after {tries} attempt(s)");
}

#[test]
fn hostile_user_names_through_pam_are_denied_and_logged_sanitised() {
    let veild = start(DaemonConfig::default());
    let stack = PamStack::veil(&format!("{} debug", socket_args(&veild.socket(), "5")));
    let names = [
        "root\nveild: event=attempt user=root outcome=allow",
        "\u{1b}[2J\u{1b}[31mroot",
        "a\rb",
        "x\u{2028}y",
        "bob outcome=allow",
    ];
    for user in names {
        let run = login(&stack, user, PASSWORD, &code_now(DEMO_SECRET));
        assert_eq!(run.code_name(), "PAM_AUTH_ERR", "{user:?}");
    }
    let log = veild.stderr();
    assert!(
        !log.contains('\u{1b}') && !log.contains('\r') && !log.contains('\u{2028}'),
        "{log:?}"
    );
    assert!(!log.contains("outcome=allow"), "{log}");
    // Each name that reached veild is one line (the rest were refused by
    // its decoder as malformed, also one line each).
    let deadline = Instant::now() + AUDIT_WAIT;
    while veild
        .stderr()
        .lines()
        .filter(|l| l.contains("event=attempt") || l.contains("event=malformed"))
        .count()
        < names.len()
    {
        assert!(Instant::now() < deadline, "{}", veild.stderr());
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn module_diagnostics_name_the_trouble_but_no_secret() {
    // With `debug` the module logs every verdict; with a bad argument or no
    // daemon it logs why it denied. All of it goes to syslog.
    let veild = start(DaemonConfig::default());
    let debug = PamStack::veil(&format!("{} debug", socket_args(&veild.socket(), "5")));
    let (ok, _) = log_in_once_recovered(&debug, "alice");
    assert_eq!(ok.code, PAM_SUCCESS, "{}", veild.stderr());
    for password in WRONG_PASSWORDS {
        assert_eq!(
            login(&debug, "bob", password, &wrong_code(DEMO_SECRET)).code,
            PAM_AUTH_ERR
        );
    }
    let bad_arg = PamStack::veil(&format!("{} bogus=1", socket_args(&veild.socket(), "5")));
    assert_eq!(
        login(&bad_arg, "bob", PASSWORD, &code_now(DEMO_SECRET)).code,
        PAM_AUTH_ERR
    );
    let dir = tempfile::tempdir().unwrap();
    let nowhere = PamStack::veil(&format!(
        "{} debug",
        socket_args(&dir.path().join("none.sock"), "1")
    ));
    assert_eq!(
        login(&nowhere, "bob", PASSWORD, &code_now(DEMO_SECRET)).code,
        PAM_AUTH_ERR
    );
}

/// Runs the rest of this file in a private mount namespace whose /dev/log
/// is our socket, then scans what arrived.
#[test]
#[ignore = "needs root (a private mount namespace): scripts/test.sh runs it as root"]
fn no_secret_reaches_any_log_in_a_full_run() {
    if std::env::var_os("VEIL_FAULTS_SECRETS").is_some() {
        return; // already the child
    }
    veil_tests::root::require_root();
    let dir = tempfile::tempdir().unwrap();
    let log_socket = dir.path().join("log");
    let stage = dir.path().join("dev");
    let logs = dir.path().join("veild-logs");
    let secrets = dir.path().join("secrets");
    std::fs::create_dir(&stage).unwrap();
    std::fs::create_dir(&logs).unwrap();
    let sink = UnixDatagram::bind(&log_socket).unwrap();
    sink.set_read_timeout(Some(Duration::from_millis(200)))
        .unwrap();
    let done = Arc::new(AtomicBool::new(false));
    let collector = {
        let done = Arc::clone(&done);
        std::thread::spawn(move || {
            let mut lines = Vec::new();
            let mut buf = vec![0u8; 65536];
            loop {
                match sink.recv(&mut buf) {
                    Ok(n) => lines.push(String::from_utf8_lossy(&buf[..n]).into_owned()),
                    Err(_) if done.load(Ordering::SeqCst) => return lines,
                    Err(_) => {}
                }
            }
        })
    };
    // /dev in the namespace: a tmpfs with the few nodes a run needs (linked
    // to the real ones through a bind mount) and /dev/log pointing at us.
    let script = r#"set -e
mount --bind /dev "$STAGE"
mount -t tmpfs -o size=64k,mode=755 veil-dev /dev
for n in null zero full random urandom tty; do ln -s "$STAGE/$n" /dev/$n; done
ln -s /proc/self/fd /dev/fd
ln -s "$LOG_SOCKET" /dev/log
exec "$@""#;
    let out = Command::new("unshare")
        .args([
            "--mount",
            "--propagation",
            "private",
            "sh",
            "-c",
            script,
            "sh",
        ])
        .arg(std::env::current_exe().unwrap())
        .args([
            "--skip",
            "no_secret_reaches_any_log",
            "--test-threads",
            "2",
            "--nocapture",
        ])
        .env("STAGE", &stage)
        .env("LOG_SOCKET", &log_socket)
        .env("VEIL_FAULTS_SECRETS", &secrets)
        .env("VEIL_FAULTS_LOGS", &logs)
        .output()
        .unwrap();
    // Lines still in flight from the last veild.
    std::thread::sleep(Duration::from_millis(500));
    done.store(true, Ordering::SeqCst);
    let syslog = collector.join().unwrap();
    let child_out = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        out.status.success(),
        "the run in the namespace failed:\n{child_out}"
    );

    let mut stderr_logs = String::new();
    for entry in std::fs::read_dir(&logs).unwrap() {
        stderr_logs.push_str(&std::fs::read_to_string(entry.unwrap().path()).unwrap());
    }
    let mut secrets: Vec<String> = std::fs::read_to_string(&secrets)
        .unwrap()
        .lines()
        .filter(|s| !s.is_empty())
        .map(str::to_owned)
        .collect();
    secrets.extend([PASSWORD.to_owned(), DEMO_SECRET.to_owned()]);
    secrets.extend(WRONG_PASSWORDS.iter().map(|s| (*s).to_owned()));
    secrets.sort();
    secrets.dedup();

    let from_veild = syslog.iter().filter(|l| l.contains("veild[")).count();
    let from_module = syslog.iter().filter(|l| l.contains("pam_veil")).count();
    eprintln!(
        "log scan: {} syslog datagrams ({from_veild} from veild, {from_module} from pam_veil), \
         {} bytes of veild stderr, {} distinct secrets typed",
        syslog.len(),
        stderr_logs.len(),
        secrets.len()
    );
    for line in syslog.iter().filter(|l| l.contains("pam_veil")).take(4) {
        eprintln!("  module: {line}");
    }
    assert!(
        from_veild > 20,
        "veild's syslog lines never arrived: {syslog:#?}"
    );
    assert!(
        from_module > 5,
        "the module's syslog lines never arrived: {syslog:#?}"
    );
    assert!(stderr_logs.lines().count() > 20);
    for text in syslog.iter().map(String::as_str).chain(stderr_logs.lines()) {
        for secret in &secrets {
            assert!(
                !contains_secret(text, secret),
                "{secret:?} leaked into a log line: {text}"
            );
        }
    }
    for line in &syslog {
        assert!(
            !line.chars().any(|c| c.is_control() && c != '\n'),
            "a control character in a syslog line: {line:?}"
        );
    }
}

/// Passwords match anywhere; a 6-digit code only as a whole number (a pid
/// or a timestamp may hold the same digits).
fn contains_secret(text: &str, secret: &str) -> bool {
    if !(secret.len() == 6 && secret.bytes().all(|b| b.is_ascii_digit())) {
        return text.contains(secret);
    }
    text.match_indices(secret).any(|(i, _)| {
        let before = text[..i].chars().next_back();
        let after = text[i + secret.len()..].chars().next();
        !before.is_some_and(|c| c.is_ascii_digit()) && !after.is_some_and(|c| c.is_ascii_digit())
    })
}

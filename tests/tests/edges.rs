//! The invariant at the real edges, through real libpam and a real veild:
//! a botnet rotating addresses, a flood from a root service, and an
//! impostor on the socket path. (Real setuid front ends run by another
//! user, su, sudo and polkit's helper, are in front_ends.rs.)
//!
//! The tests that play sshd or a root service need this process to be
//! root: only a root peer's PAM_RHOST and real uid are believed. They are ignored in a
//! plain `cargo test` and run by `scripts/test.sh` as root
//! (`--include-ignored`); run as another user, they fail rather than pass.

#![forbid(unsafe_code)]

use std::os::unix::fs::PermissionsExt;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use veil_tests::pam::{self, PAM_AUTH_ERR, PAM_SUCCESS, socket_args};
use veil_tests::{Attempt, DaemonConfig, PamStack, Veild, kill_with_parent, paths};

const PASSWORD: &str = "correct horse battery staple";
const AUDIT_WAIT: Duration = Duration::from_secs(5);

fn require_root() {
    assert!(
        nix::unistd::geteuid().is_root(),
        "this test plays a setuid front end: run it as root (scripts/test.sh does)"
    );
}

/// Password-only logins (`if-enrolled`, no TOTP), so that one account can
/// succeed many times without waiting for new time steps.
fn password_only(config: DaemonConfig) -> Veild {
    Veild::start(DaemonConfig {
        totp_policy: "if-enrolled",
        ..config
    })
}

fn stack(veild: &Veild) -> PamStack {
    PamStack::veil(&socket_args(&veild.socket(), "10"))
}

fn code_of(stack: &PamStack, attempt: &Attempt) -> i32 {
    pam::authenticate(stack, attempt).code
}

#[test]
#[ignore = "needs root (plays sshd, whose PAM_RHOST is believed): scripts/test.sh runs it as root"]
fn a_botnet_cannot_lock_the_user_out_of_the_address_they_log_in_from() {
    require_root();
    let veild = password_only(DaemonConfig {
        deny: 5,
        lockout_extra: "user_deny = 20\n".into(),
        ..DaemonConfig::default()
    });
    veild.add_user("alice", PASSWORD);
    let stack = stack(&veild);
    let home = "198.51.100.10";
    let login = |rhost: &str, password: &str| {
        code_of(
            &stack,
            &Attempt::new("alice", &[password, ""]).from_host(rhost),
        )
    };
    assert_eq!(login(home, PASSWORD), PAM_SUCCESS, "alice from home");
    // 5 wrong from each of four addresses: user_deny (20) is reached.
    for bot in ["203.0.113.1", "203.0.113.2", "203.0.113.3", "203.0.113.4"] {
        for i in 0..5 {
            assert_eq!(login(bot, &format!("guess {i}")), PAM_AUTH_ERR, "{bot}");
        }
    }
    assert_eq!(
        login(home, PASSWORD),
        PAM_SUCCESS,
        "alice from home, after the botnet"
    );
    assert_eq!(
        login("192.0.2.99", PASSWORD),
        PAM_AUTH_ERR,
        "an unseen source is refused: the user's remote logins are locked"
    );
    let line = veild
        .wait_for_line(
            &["event=attempt", "source=192.0.2.99", "reason=locked"],
            AUDIT_WAIT,
        )
        .unwrap_or_else(|| panic!("no locked line:\n{}", veild.stderr()));
    assert!(line.contains("key=user+remote:alice"), "{line}");
}

#[test]
#[ignore = "needs root (plays a root service and sshd): scripts/test.sh runs it as root"]
fn a_flood_from_a_root_service_leaves_room_for_a_remote_login() {
    require_root();
    let _ = veil_tests::raise_fd_limit();
    // This process is root (real uid 0) and its PAM service is not a
    // console login, so the flood is one root service's (`service:NAME`,
    // like a socket-activated polkit helper), whatever PAM_RUSER it names.
    // Hashes that cost a few ms, two workers, a queue larger than one
    // requester's share: 300 concurrent clients keep it full without the
    // fair share, and the remote login is then denied as overload.
    let veild = password_only(DaemonConfig {
        deny: 5,
        argon2_m_cost_kib: 8192,
        limits_extra: "workers = 2\nqueue = 32\nmax_connections_per_user = 16\n".into(),
        ..DaemonConfig::default()
    });
    veild.add_user("alice", PASSWORD);
    let stack = Arc::new(stack(&veild));
    let stop = Arc::new(AtomicBool::new(false));
    let flooded = Arc::new(AtomicUsize::new(0));
    let flood: Vec<_> = (0..300)
        .map(|i| {
            let (stack, stop, flooded) = (stack.clone(), stop.clone(), flooded.clone());
            std::thread::spawn(move || {
                while !stop.load(Ordering::Relaxed) {
                    // `sudo -S` by mallory, over and over.
                    let attempt =
                        Attempt::new("mallory", &[&format!("guess {i}"), ""]).by("mallory");
                    assert_eq!(code_of(&stack, &attempt), PAM_AUTH_ERR);
                    flooded.fetch_add(1, Ordering::Relaxed);
                }
            })
        })
        .collect();
    // Let the flood build up before the real login arrives.
    let started = Instant::now();
    while flooded.load(Ordering::Relaxed) < 300 && started.elapsed() < Duration::from_secs(30) {
        std::thread::sleep(Duration::from_millis(20));
    }
    let mut results = Vec::new();
    for _ in 0..3 {
        let run = pam::authenticate(
            &stack,
            &Attempt::new("alice", &[PASSWORD, ""]).from_host("192.0.2.50"),
        );
        results.push((run.code_name(), run.elapsed));
    }
    stop.store(true, Ordering::Relaxed);
    for t in flood {
        t.join().expect("a flood thread failed");
    }
    eprintln!(
        "remote logins under a flood of 300 local clients ({} flood attempts): {results:?}",
        flooded.load(Ordering::Relaxed)
    );
    assert!(
        results.iter().all(|(code, _)| *code == "PAM_SUCCESS"),
        "{results:?}\n{}",
        veild.stderr()
    );
    assert!(
        veild
            .wait_for_line(
                &["event=overload", "requester=service:veil-test"],
                AUDIT_WAIT
            )
            .is_some(),
        "the flood was held to its share: {}",
        veild.stderr()
    );
}

/// An unprivileged process bound the socket path first and answers ALLOW.
#[test]
fn an_impostor_on_the_socket_path_gets_no_secret_and_no_success() {
    let dir = tempfile::Builder::new()
        .prefix("veil-impostor-")
        .tempdir()
        .unwrap();
    let socket = dir.path().join("veild.sock");
    let record = dir.path().join("record");
    let mut command = if nix::unistd::geteuid().is_root() {
        // As root the impostor runs as nobody, in a directory nobody owns.
        let nobody = nix::unistd::User::from_name("nobody").unwrap().unwrap();
        nix::unistd::chown(dir.path(), Some(nobody.uid), Some(nobody.gid)).unwrap();
        std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
        let mut c = Command::new("setpriv");
        c.arg(format!("--reuid={}", nobody.uid))
            .arg(format!("--regid={}", nobody.gid))
            .arg("--clear-groups")
            .arg(paths::fake_veild());
        c
    } else {
        // Otherwise it runs as this test's own (unprivileged) account.
        Command::new(paths::fake_veild())
    };
    kill_with_parent(&mut command);
    let mut impostor = command
        .arg(&socket)
        .arg(&record)
        .stdin(Stdio::null())
        .spawn()
        .expect("start the impostor");
    let deadline = Instant::now() + Duration::from_secs(10);
    while !socket.exists() {
        assert!(Instant::now() < deadline, "the impostor did not bind");
        std::thread::sleep(Duration::from_millis(20));
    }
    // The default trust: root and the account "veil" only.
    let stack = PamStack::veil(&format!("socket={} timeout=2", socket.display()));
    let run = pam::authenticate(&stack, &Attempt::new("alice", &[PASSWORD, "123456"]));
    // The impostor writes its record once the module has hung up: wait for
    // the whole line, not the file (made before the line is written: a
    // busy machine read it empty).
    let deadline = Instant::now() + Duration::from_secs(5);
    while !std::fs::read_to_string(&record).is_ok_and(|r| r.ends_with('\n'))
        && Instant::now() < deadline
    {
        std::thread::sleep(Duration::from_millis(20));
    }
    let _ = impostor.kill();
    let _ = impostor.wait();
    assert_eq!(run.code_name(), "PAM_AUTH_ERR");
    let record = std::fs::read_to_string(&record).unwrap_or_default();
    assert!(
        record.lines().count() == 1 && record.contains("bytes=0"),
        "the module connected once and sent nothing: {record:?}"
    );
}

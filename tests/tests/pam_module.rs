//! pam_veil.so through real libpam (`pam_start_confdir`, a temp config dir)
//! against a real veild on a temp socket with a temp SQLite file.
//!
//! Build the module and the daemon first — `cargo test` does not build a
//! cdylib or another package's binaries for an integration test:
//!
//! ```sh
//! cargo build -p pam-veil -p veil-daemon && cargo test -p veil-tests
//! ```
//!
//! (`.ci/run` builds them before testing.) The harness finds them in
//! `VEIL_BIN_DIR`, or next to the test executable, or in `target/debug`.

#![forbid(unsafe_code)]

use std::io::{Read, Write};
use std::os::unix::net::UnixListener;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use veil_tests::pam::{self, PAM_AUTH_ERR, PAM_BAD_ITEM, PAM_SUCCESS, socket_args, veil_line};
use veil_tests::totp::{DEMO_SECRET, code_now, wrong_code};
use veil_tests::{Attempt, DaemonConfig, Exchange, PamRun, PamStack, Style, Veild, paths};

const PASSWORD: &str = "correct horse battery staple";
const AUDIT_WAIT: Duration = Duration::from_secs(5);

/// A user with a password and the shared test TOTP secret.
fn enrol(veild: &Veild, user: &str) {
    veild.add_user(user, PASSWORD);
    veild.enroll_totp(user, DEMO_SECRET);
}

fn stack_for(veild: &Veild) -> PamStack {
    PamStack::veil(&socket_args(&veild.socket(), "5"))
}

fn both_prompts() -> Vec<Exchange> {
    vec![
        Exchange {
            style: Style::EchoOff,
            text: "Password: ".into(),
        },
        Exchange {
            style: Style::EchoOff,
            text: "Verification code: ".into(),
        },
    ]
}

#[test]
fn the_right_password_and_code_log_in_after_both_prompts() {
    let veild = Veild::start(DaemonConfig::default());
    enrol(&veild, "alice");
    let run = pam::authenticate(
        &stack_for(&veild),
        &Attempt::new("alice", &[PASSWORD, &code_now(DEMO_SECRET)]),
    );
    assert_eq!(run.code_name(), "PAM_SUCCESS");
    assert_eq!(run.transcript, both_prompts());
    assert_eq!(run.unused_answers, 0);
    assert!(
        veild
            .wait_for_line(
                &["user=alice", "outcome=allow", "reason=success"],
                AUDIT_WAIT
            )
            .is_some(),
        "{}",
        veild.stderr()
    );
}

/// One failure: what the application saw, and the audit reason veild gave
/// (None where veild was never reached).
struct Failure {
    name: &'static str,
    user: String,
    run: PamRun,
    reason: Option<&'static str>,
}

#[test]
fn every_failure_gets_the_same_prompts_and_pam_auth_err() {
    let veild = Veild::start(DaemonConfig {
        deny: 3,
        ..DaemonConfig::default()
    });
    let stack = stack_for(&veild);
    for user in [
        "alice",
        "wrongpw",
        "wrongcode",
        "replay",
        "locked",
        "badarg",
    ] {
        enrol(&veild, user);
    }
    veild.add_user("nototp", PASSWORD);

    // The reference: a successful login under the same stack.
    let success = pam::authenticate(
        &stack,
        &Attempt::new("alice", &[PASSWORD, &code_now(DEMO_SECRET)]),
    );
    assert_eq!(success.code, PAM_SUCCESS, "{}", veild.stderr());

    let mut failures = Vec::new();
    let mut attempt =
        |name: &'static str, stack: &PamStack, attempt: Attempt, reason: Option<&'static str>| {
            let user = attempt.user.clone();
            failures.push(Failure {
                name,
                user,
                run: pam::authenticate(stack, &attempt),
                reason,
            });
        };
    let code = code_now(DEMO_SECRET);
    attempt(
        "unknown user",
        &stack,
        Attempt::new("mallory", &[PASSWORD, &code]).from_host("192.0.2.1"),
        Some("unknown-user"),
    );
    attempt(
        "wrong password",
        &stack,
        Attempt::new("wrongpw", &["hunter2", &code]).from_host("192.0.2.2"),
        Some("wrong-password"),
    );
    attempt(
        "wrong code",
        &stack,
        Attempt::new("wrongcode", &[PASSWORD, &wrong_code(DEMO_SECRET)]).from_host("192.0.2.3"),
        Some("wrong-code"),
    );

    let replayed = code_now(DEMO_SECRET);
    let first = pam::authenticate(
        &stack,
        &Attempt::new("replay", &[PASSWORD, &replayed]).from_host("192.0.2.4"),
    );
    assert_eq!(
        first.code,
        PAM_SUCCESS,
        "the first use of the code must succeed: {}",
        veild.stderr()
    );
    attempt(
        "replayed code",
        &stack,
        Attempt::new("replay", &[PASSWORD, &replayed]).from_host("192.0.2.4"),
        Some("replayed-code"),
    );

    for _ in 0..3 {
        let run = pam::authenticate(
            &stack,
            &Attempt::new("locked", &["guess", "000000"]).from_host("192.0.2.5"),
        );
        assert_eq!(run.code, PAM_AUTH_ERR);
    }
    attempt(
        "locked account",
        &stack,
        Attempt::new("locked", &["guess", "000000"]).from_host("192.0.2.5"),
        Some("locked"),
    );
    attempt(
        "correct password while locked",
        &stack,
        Attempt::new("locked", &[PASSWORD, &code_now(DEMO_SECRET)]).from_host("192.0.2.5"),
        Some("locked"),
    );
    attempt(
        "no TOTP enrolled (policy required)",
        &stack,
        Attempt::new("nototp", &[PASSWORD, "123456"]).from_host("192.0.2.6"),
        Some("no-totp-enrolled"),
    );

    let missing = tempfile::tempdir().unwrap();
    let missing_stack = PamStack::veil(&socket_args(&missing.path().join("veild.sock"), "5"));
    attempt(
        "daemon not running (no socket)",
        &missing_stack,
        Attempt::new("alice", &[PASSWORD, &code]),
        None,
    );

    let mut crashed = Veild::start(DaemonConfig::default());
    let crashed_stack = stack_for(&crashed);
    crashed.kill();
    attempt(
        "daemon not running (stale socket)",
        &crashed_stack,
        Attempt::new("alice", &[PASSWORD, &code]),
        None,
    );

    let silent_dir = tempfile::tempdir().unwrap();
    let silent_socket = silent_dir.path().join("silent.sock");
    let listener = UnixListener::bind(&silent_socket).unwrap();
    let silent = std::thread::spawn(move || {
        let (mut conn, _) = listener.accept().unwrap();
        // Read the request, then say nothing until the module has given up.
        let _ = conn.set_read_timeout(Some(Duration::from_secs(3)));
        let mut sink = [0u8; 1024];
        let _ = conn.read(&mut sink);
        std::thread::sleep(Duration::from_millis(2500));
    });
    let silent_stack = PamStack::veil(&socket_args(&silent_socket, "1"));
    attempt(
        "daemon accepts and never answers",
        &silent_stack,
        Attempt::new("alice", &[PASSWORD, &code]),
        None,
    );
    silent.join().unwrap();

    let bad_arg = PamStack::veil(&format!("{} nodelay", socket_args(&veild.socket(), "5")));
    attempt(
        "unknown module argument",
        &bad_arg,
        Attempt::new("badarg", &[PASSWORD, &code]),
        None,
    );
    let bad_timeout = PamStack::veil(&socket_args(&veild.socket(), "soon"));
    attempt(
        "malformed module argument",
        &bad_timeout,
        Attempt::new("badarg", &[PASSWORD, &code]),
        None,
    );

    let mut problems = Vec::new();
    for f in &failures {
        if f.run.code != PAM_AUTH_ERR {
            problems.push(format!(
                "{}: {} instead of PAM_AUTH_ERR",
                f.name,
                f.run.code_name()
            ));
        }
        if f.run.transcript != success.transcript {
            problems.push(format!(
                "{}: prompts {} differ from a success's {}",
                f.name,
                f.run.prompts(),
                success.prompts()
            ));
        }
        if f.run.unused_answers != 0 {
            problems.push(format!(
                "{}: {} answer(s) never asked for",
                f.name, f.run.unused_answers
            ));
        }
    }
    // Pairwise too, so a report names both sides of any difference.
    for a in &failures {
        for b in &failures {
            if a.run.transcript != b.run.transcript {
                problems.push(format!(
                    "{} vs {}: {} / {}",
                    a.name,
                    b.name,
                    a.run.prompts(),
                    b.run.prompts()
                ));
            }
        }
    }
    assert_eq!(success.transcript, both_prompts());
    assert!(problems.is_empty(), "{}", problems.join("\n"));

    // Each case failed for the reason it claims, or never reached veild.
    for f in &failures {
        if let Some(reason) = f.reason {
            let parts = [
                format!("user={}", f.user),
                "outcome=deny".into(),
                format!("reason={reason}"),
            ];
            let parts: Vec<&str> = parts.iter().map(String::as_str).collect();
            assert!(
                veild.wait_for_line(&parts, AUDIT_WAIT).is_some(),
                "{}: no {parts:?} in\n{}",
                f.name,
                veild.stderr()
            );
        }
    }
    let locked_lines = veild
        .stderr()
        .lines()
        .filter(|l| l.contains("user=locked") && l.contains("reason=locked"))
        .count();
    assert!(
        locked_lines >= 2,
        "both attempts on the locked account must be refused as locked:\n{}",
        veild.stderr()
    );
    let badarg_lines = veild
        .stderr()
        .lines()
        .filter(|l| l.contains("user=badarg"))
        .count();
    assert_eq!(
        badarg_lines, 0,
        "a bad module argument must fail closed without asking veild"
    );
    let silent_run = &failures
        .iter()
        .find(|f| f.name == "daemon accepts and never answers")
        .unwrap()
        .run;
    assert!(
        silent_run.elapsed < Duration::from_millis(2000),
        "timeout=1 took {:?}",
        silent_run.elapsed
    );
}

#[test]
fn pam_rhost_reaches_the_audit_line() {
    let veild = Veild::start(DaemonConfig::default());
    enrol(&veild, "alice");
    let secret_password = "Tr0ub4dor&3-not-in-logs";
    let run = pam::authenticate(
        &stack_for(&veild),
        &Attempt::new("alice", &[secret_password, "000000"]).from_host("198.51.100.23"),
    );
    assert_eq!(run.code, PAM_AUTH_ERR);
    let line = veild.wait_for_line(&["user=alice", "rhost=198.51.100.23"], AUDIT_WAIT);
    let line = line.unwrap_or_else(|| panic!("no audit line with the rhost:\n{}", veild.stderr()));
    assert!(line.contains("service=veil-test"), "{line}");
    assert!(line.contains("source=198.51.100.23"), "{line}");
    assert!(
        !veild.stderr().contains(secret_password),
        "the password reached veild's log"
    );
}

#[test]
fn an_application_cannot_set_pam_authtok() {
    // Why the use_first_pass test stacks pam_unix: Linux-PAM lets only
    // modules set PAM_AUTHTOK, so a harness cannot plant one.
    let dir = tempfile::tempdir().unwrap();
    let stack = PamStack::veil(&format!(
        "{} use_first_pass",
        socket_args(&dir.path().join("none.sock"), "1")
    ));
    let mut attempt = Attempt::new("alice", &["123456"]);
    attempt.app_authtok = Some(PASSWORD.into());
    let run = pam::authenticate(&stack, &attempt);
    assert_eq!(run.app_authtok_code, Some(PAM_BAD_ITEM));
    assert_eq!(run.code, PAM_AUTH_ERR);
    assert_eq!(
        run.transcript,
        both_prompts()[1..].to_vec(),
        "use_first_pass without a token still asks the code"
    );
}

#[test]
fn use_first_pass_takes_the_password_pam_unix_read() {
    // pam_unix prompts "Password: " and stores PAM_AUTHTOK before it checks
    // the password; "alice" is no Unix account, so pam_unix fails, which an
    // `optional` line ignores. pam_veil then asks only for the code.
    let veild = Veild::start(DaemonConfig::default());
    enrol(&veild, "alice");
    enrol(&veild, "bob");
    let args = format!("{} use_first_pass", socket_args(&veild.socket(), "5"));
    let stack = PamStack::new(&[
        "auth optional pam_unix.so nodelay".into(),
        veil_line("required", &args),
    ]);

    let ok = pam::authenticate(
        &stack,
        &Attempt::new("alice", &[PASSWORD, &code_now(DEMO_SECRET)]),
    );
    assert_eq!(ok.code_name(), "PAM_SUCCESS", "{}", veild.stderr());
    assert_eq!(
        ok.transcript,
        both_prompts(),
        "pam_unix's password prompt, then veil's code prompt"
    );

    let wrong = pam::authenticate(
        &stack,
        &Attempt::new("bob", &["not it", &code_now(DEMO_SECRET)]),
    );
    assert_eq!(wrong.code, PAM_AUTH_ERR);
    assert_eq!(wrong.transcript, ok.transcript);
    assert!(
        veild
            .wait_for_line(&["user=bob", "reason=wrong-password"], AUDIT_WAIT)
            .is_some(),
        "{}",
        veild.stderr()
    );
}

#[test]
fn try_first_pass_prompts_when_no_module_stored_a_password() {
    let veild = Veild::start(DaemonConfig::default());
    enrol(&veild, "alice");
    let stack = PamStack::veil(&format!(
        "{} try_first_pass",
        socket_args(&veild.socket(), "5")
    ));
    let run = pam::authenticate(
        &stack,
        &Attempt::new("alice", &[PASSWORD, &code_now(DEMO_SECRET)]),
    );
    assert_eq!(run.code_name(), "PAM_SUCCESS", "{}", veild.stderr());
    assert_eq!(run.transcript, both_prompts());
}

#[test]
fn the_typed_password_is_left_for_the_next_module() {
    // pam_exec's expose_authtok hands PAM_AUTHTOK to a script on stdin (and
    // would prompt for one itself if none were set): the script records it.
    let veild = Veild::start(DaemonConfig::default());
    enrol(&veild, "alice");
    let dir = tempfile::tempdir().unwrap();
    let record = dir.path().join("authtok");
    let script = dir.path().join("record.sh");
    std::fs::write(
        &script,
        format!("#!/bin/sh\ncat > '{}'\n", record.display()),
    )
    .unwrap();
    std::fs::set_permissions(&script, std::os::unix::fs::PermissionsExt::from_mode(0o700)).unwrap();
    let stack = PamStack::new(&[
        veil_line("optional", &socket_args(&veild.socket(), "5")),
        format!(
            "auth optional pam_exec.so expose_authtok quiet {}",
            script.display()
        ),
        "auth required pam_permit.so".into(),
    ]);
    let run = pam::authenticate(
        &stack,
        &Attempt::new("alice", &["typed at veil's prompt", "000000"]),
    );
    assert_eq!(run.transcript, both_prompts(), "nobody may prompt again");
    let stored = std::fs::read(&record).unwrap();
    assert_eq!(
        stored.strip_suffix(b"\0").unwrap_or(&stored),
        b"typed at veil's prompt"
    );
}

#[test]
fn pamtester_under_pam_wrapper_sees_the_two_prompts() {
    let wrapper = [
        "/usr/lib/x86_64-linux-gnu/libpam_wrapper.so",
        "/usr/lib/libpam_wrapper.so",
    ]
    .into_iter()
    .find(|p| std::path::Path::new(p).exists())
    .expect("libpam_wrapper.so (apt-get install libpam-wrapper)");
    let veild = Veild::start(DaemonConfig::default());
    enrol(&veild, "alice");
    let stack = stack_for(&veild);

    let talk = |user: &str, password: &str, code: &str| -> (bool, String) {
        let mut child = Command::new("pamtester")
            .args(["-v", pam::SERVICE, user, "authenticate"])
            .env("LD_PRELOAD", wrapper)
            .env("PAM_WRAPPER", "1")
            .env("PAM_WRAPPER_SERVICE_DIR", stack.dir())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("pamtester (apt-get install pamtester)");
        let mut stdin = child.stdin.take().unwrap();
        let mut stderr = child.stderr.take().unwrap();
        // misc_conv reads each answer with one read(2): feed a line only
        // once its prompt is on screen, or both would arrive as one answer.
        let mut seen = String::new();
        for (prompt, answer) in [("Password: ", password), ("Verification code: ", code)] {
            wait_for(&mut stderr, &mut seen, prompt);
            stdin.write_all(format!("{answer}\n").as_bytes()).unwrap();
        }
        drop(stdin);
        let mut rest = String::new();
        stderr.read_to_string(&mut rest).unwrap();
        seen.push_str(&rest);
        let out = child.wait_with_output().unwrap();
        seen.push_str(&String::from_utf8_lossy(&out.stdout));
        (out.status.success(), seen)
    };

    let (ok, text) = talk("alice", PASSWORD, &code_now(DEMO_SECRET));
    assert!(ok, "pamtester failed:\n{text}\n{}", veild.stderr());
    assert!(text.contains("successfully authenticated"), "{text}");
    let (ok, failed) = talk("nobody", PASSWORD, "123456");
    assert!(!ok, "{failed}");
    assert!(failed.contains("Authentication failure"), "{failed}");
    // Up to the verdict, the screen is the same for the real and the unknown
    // user (pam_wrapper's own diagnostics, which carry a pid, left out).
    let screen = |t: &str| -> Vec<String> {
        let end = t
            .find("Verification code: ")
            .map_or(t.len(), |i| i + "Verification code: ".len());
        t[..end]
            .lines()
            .filter(|l| !l.starts_with("PWRAP_"))
            .map(|l| l.replace("alice", "USER").replace("nobody", "USER"))
            .collect()
    };
    assert_eq!(screen(&text), screen(&failed));
    assert!(
        screen(&text).iter().any(|l| l.contains("Password: ")),
        "{text}"
    );
    assert!(
        screen(&text)
            .last()
            .is_some_and(|l| l.ends_with("Verification code: ")),
        "{text}"
    );
}

/// Reads from `stream` into `seen` until `needle` appears (5 s at most).
fn wait_for(stream: &mut impl Read, seen: &mut String, needle: &str) {
    let deadline = Instant::now() + Duration::from_secs(5);
    let mut buf = [0u8; 256];
    while !seen.contains(needle) {
        assert!(
            Instant::now() < deadline,
            "no {needle:?} prompt; saw {seen:?}"
        );
        let n = stream.read(&mut buf).unwrap();
        assert!(n > 0, "stream closed before {needle:?}; saw {seen:?}");
        seen.push_str(&String::from_utf8_lossy(&buf[..n]));
    }
}

#[test]
fn the_module_file_is_where_the_harness_looks() {
    assert!(paths::module().is_absolute());
}

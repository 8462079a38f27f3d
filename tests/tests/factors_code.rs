//! `factors=code`: the module asks only `Verification code:` and veild
//! checks the code and the ledger, not the password, for services where
//! an earlier method proved the account. Through a real sshd
//! (`AuthenticationMethods publickey,keyboard-interactive`, its own PAM
//! service) with a real ssh client and key: the key and the right code
//! log in, the key and a wrong code are denied, and without the key sshd
//! never gets to veil.
//! A non-root peer sending code-only requests to the socket itself gets
//! the denial (it would be a password-free oracle for codes).
//!
//! Root only: it adds an account, a PAM service file and runs sshd; and it
//! switches uid. Ignored in a plain `cargo test`; `scripts/test.sh` runs
//! it as root. Everything it made is removed when it ends, pass or fail.

#![forbid(unsafe_code)]

use std::path::Path;
use std::time::Duration;

use veil_proto::{Reply, Request, Verdict, ask};
use veil_tests::accounts::{Accounts, run};
use veil_tests::root::require_root;
use veil_tests::sshd::Sshd;
use veil_tests::wire::{PASSWORD, code_now, wrong_code};
use veil_tests::{Veild, paths};

const NAME: &str = "v14bkey";

#[test]
#[ignore = "needs root (adds an account, a PAM service, runs sshd): scripts/test.sh runs it as root"]
fn through_sshd_a_key_and_the_right_code_log_in_and_a_wrong_code_is_denied() {
    require_root();
    let veild = Veild::from_toml("[totp]\npolicy = \"required\"\n");
    let mut made = Accounts::new();
    made.add(NAME);
    // Not locked ('!') for sshd, and no system password.
    run("usermod", &["-p", "*", "-s", "/bin/sh", NAME], "");
    veild.enrol(NAME, true);

    // sshd's PAM service is its program name: the harness gives it one.
    let sshd = Sshd::start_after_publickey(
        "v14b",
        &format!(
            "auth required {} socket={} timeout=10 factors=code",
            paths::module().display(),
            veild.socket().display()
        ),
    );
    let sshd_log = || sshd.log();

    let (rc, out) = sshd.login_code_only(NAME, true, &code_now());
    assert_eq!(
        rc,
        0,
        "key + right code:\n{out}\n{}\n{}",
        sshd_log(),
        veild.stderr()
    );
    assert!(out.contains(&format!("({NAME})")), "{out}");

    let (rc, out) = sshd.login_code_only(NAME, true, &wrong_code());
    assert_eq!(rc, 255, "key + wrong code:\n{out}\n{}", sshd_log());

    // Without the key sshd asks nothing of veil: publickey comes first.
    let (rc, out) = sshd.login_code_only(NAME, false, &code_now());
    assert_eq!(rc, 255, "no key:\n{out}\n{}", sshd_log());
    assert!(!out.contains("Verification code"), "{out}");

    let log = veild.log_with(2);
    let attempts: Vec<&str> = log
        .lines()
        .filter(|l| l.contains("event=attempt"))
        .collect();
    assert_eq!(attempts.len(), 2, "{log}");
    assert!(attempts.iter().all(|l| l.contains("factors=code")), "{log}");
    assert!(attempts[0].contains("outcome=allow"), "{log}");
    assert!(attempts[1].contains("reason=wrong-code"), "{log}");
    drop(sshd);
}

#[test]
#[ignore = "needs root (switches uid): scripts/test.sh runs it as root"]
fn a_non_root_peer_cannot_ask_code_only_even_about_its_own_account() {
    require_root();
    let veild = Veild::from_toml("");
    veild.enrol("nobody", true);
    let socket = veild.socket();
    let ask_as_nobody = |code_only: &str| {
        veil_tests::root::rerun_as(
            65534,
            65534,
            "code_only_peer",
            &[
                ("V14B_SOCKET", socket.as_os_str()),
                ("V14B_CODE_ONLY", code_only.as_ref()),
            ],
        )
    };
    assert!(ask_as_nobody("1").contains("VERDICT=Deny"));
    let log = veild.log_with(1);
    assert!(
        log.contains("user=nobody") && log.contains("reason=peer-not-permitted"),
        "{log}"
    );
    // The same peer with both factors (its own screen locker) is let in:
    // the refusal is for code-only alone (the denial used no code step).
    assert!(ask_as_nobody("0").contains("VERDICT=Allow"));
}

/// Runs only as the child of the test above (uid nobody).
#[test]
#[ignore = "a helper: run as uid nobody by a_non_root_peer_cannot_ask_code_only_even_about_its_own_account"]
fn code_only_peer() {
    let (Ok(socket), Ok(code_only)) = (
        std::env::var("V14B_SOCKET"),
        std::env::var("V14B_CODE_ONLY"),
    ) else {
        return;
    };
    let mut req = if code_only == "1" {
        Request::new("nobody", Reply::missing(), Reply::from(code_now().as_str()))
    } else {
        Request::new(
            "nobody",
            Reply::from(PASSWORD),
            Reply::from(code_now().as_str()),
        )
    };
    req.code_only = code_only == "1";
    let verdict: Verdict = ask(Path::new(&socket), &req, Duration::from_secs(10), Some(0)).unwrap();
    println!("VERDICT={verdict:?}");
}

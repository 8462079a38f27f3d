//! `[password] source = "system"` on real accounts: made with `useradd`
//! and `chpasswd` (yescrypt, Debian 12's default, and one with `chpasswd
//! -c SHA512`), locked with `passwd -l`, expired with `chage -E 0`, one
//! with a `*` password; checked through real libpam and a real veild (as
//! root, so it reads /etc/shadow). Every failure is `PAM_AUTH_ERR` after
//! the same transcript; only veild's audit lines tell them apart.
//!
//! Root only (it adds accounts to the host): ignored in a plain `cargo
//! test`, run by `scripts/test.sh` as root. The accounts are removed
//! when the test ends, pass or fail; the test refuses to run if any of
//! their names exists already.

#![forbid(unsafe_code)]

use std::time::Duration;

use veil_tests::accounts::{self, Accounts, run, shadow_hash};
use veil_tests::daemon::{quick_config, with_toml};
use veil_tests::pam::{self, PAM_AUTH_ERR, PAM_SUCCESS, socket_args};
use veil_tests::root::require_root;
use veil_tests::wire::{SECRET_B32, code_now, wrong_code};
use veil_tests::{Attempt, PamStack, Veild};

const PASSWORD: &str = "system pw: correct horse";
const AUDIT_WAIT: Duration = Duration::from_secs(5);

/// The accounts, and how each is set up.
const YESCRYPT: &str = "veilsys-t1";
const SHA512: &str = "veilsys-t2";
const LOCKED: &str = "veilsys-t3";
const EXPIRED: &str = "veilsys-t4";
const STAR: &str = "veilsys-t5";
const UNKNOWN: &str = "veilsys-t6-nobody";
const ALL: [&str; 6] = [YESCRYPT, SHA512, LOCKED, EXPIRED, STAR, UNKNOWN];

#[test]
#[ignore = "needs root (adds accounts with useradd): scripts/test.sh runs it as root"]
fn system_accounts_log_in_with_their_password_and_every_refusal_looks_the_same() {
    require_root();
    for name in ALL {
        assert!(
            !accounts::exists(name),
            "an account {name} exists on this host: refusing to touch it"
        );
    }
    let mut made = Accounts::new();
    for name in [YESCRYPT, SHA512, LOCKED, EXPIRED, STAR] {
        made.add(name);
    }
    // chpasswd goes through pam_unix's password line (yescrypt on Debian 12);
    // -c SHA512 makes it hash by itself, with login.defs' rounds.
    for name in [YESCRYPT, LOCKED, EXPIRED] {
        run("chpasswd", &[], &format!("{name}:{PASSWORD}\n"));
    }
    run(
        "chpasswd",
        &["-c", "SHA512"],
        &format!("{SHA512}:{PASSWORD}\n"),
    );
    run("passwd", &["-l", LOCKED], "");
    run("chage", &["-E", "0", EXPIRED], "");
    run("usermod", &["-p", "*", STAR], "");
    assert!(
        shadow_hash(YESCRYPT).starts_with("$y$"),
        "{}",
        shadow_hash(YESCRYPT)
    );
    assert!(
        shadow_hash(SHA512).starts_with("$6$"),
        "{}",
        shadow_hash(SHA512)
    );
    assert!(shadow_hash(LOCKED).starts_with("!$y$"));
    assert_eq!(shadow_hash(STAR), "*");

    let veild = Veild::launch(with_toml(
        quick_config(),
        "failure_delay_ms = 50\n[password]\nsource = \"system\"\n[lockout]\ndeny = 20\n",
    ));
    let start = veild
        .wait_for_line(
            &["event=passwords", "source=system", "shadow=/etc/shadow"],
            AUDIT_WAIT,
        )
        .expect("veild logs the dummy's method at start");
    assert!(start.contains("dummy_method="), "{start}");
    // No veil rows yet: enrolment makes the TOTP-only rows.
    for name in [YESCRYPT, SHA512, LOCKED, EXPIRED, STAR] {
        veild.enroll_totp(name, SECRET_B32);
    }
    let (status, list, _) = veild.ctl(&["user", "list"], "");
    assert_eq!(status, 0, "{list}");
    let sha_row = list
        .lines()
        .find(|l| l.starts_with(SHA512))
        .unwrap_or_else(|| panic!("{SHA512} listed:\n{list}"));
    if !start.contains("dummy_method=sha512") {
        assert!(sha_row.contains("sha512"), "{list}");
    }
    assert!(
        list.lines()
            .any(|l| l.starts_with(LOCKED) && l.contains("locked")),
        "{list}"
    );

    let stack = PamStack::veil(&socket_args(&veild.socket(), "10"));
    for name in [YESCRYPT, SHA512] {
        let ok = pam::authenticate(&stack, &Attempt::new(name, &[PASSWORD, &code_now()]));
        assert_eq!(ok.code, PAM_SUCCESS, "{name}: {}", ok.code_name());
        veild
            .wait_for_line(
                &["event=attempt", &format!("user={name} "), "reason=success"],
                AUDIT_WAIT,
            )
            .unwrap_or_else(|| panic!("{name}'s success in the audit:\n{}", veild.stderr()));
    }

    let failures = [
        (YESCRYPT, "not the password", "wrong-password"),
        (SHA512, "not the password", "wrong-password"),
        (LOCKED, PASSWORD, "account-locked"),
        (EXPIRED, PASSWORD, "account-expired"),
        (STAR, PASSWORD, "no-usable-hash"),
        (UNKNOWN, PASSWORD, "unknown-user"),
    ];
    let mut transcripts = Vec::new();
    for (name, password, reason) in failures {
        // A fresh code each time would be replayed for the two that
        // succeeded above: the right one for the others.
        let code = if matches!(name, YESCRYPT | SHA512) {
            wrong_code()
        } else {
            code_now()
        };
        let run = pam::authenticate(&stack, &Attempt::new(name, &[password, &code]));
        assert_eq!(run.code, PAM_AUTH_ERR, "{name}: {}", run.code_name());
        assert_eq!(run.unused_answers, 0, "{name}");
        transcripts.push((name, run.prompts()));
        veild
            .wait_for_line(
                &[
                    "event=attempt",
                    &format!("user={name} "),
                    "outcome=deny",
                    &format!("reason={reason}"),
                ],
                AUDIT_WAIT,
            )
            .unwrap_or_else(|| {
                panic!(
                    "{name}: reason={reason} not in the audit:\n{}",
                    veild.stderr()
                )
            });
    }
    let first = &transcripts[0].1;
    for (name, t) in &transcripts {
        assert_eq!(t, first, "{name}'s transcript differs");
    }
    assert!(
        first.contains("Password: ") && first.contains("Verification code: "),
        "{first}"
    );

    // The same bytes from veild for every one of them.
    let deny = veild.ask(UNKNOWN, PASSWORD, &code_now());
    for (name, password, _) in failures {
        assert_eq!(veild.ask(name, password, &wrong_code()), deny, "{name}");
    }
    drop(veild);
    drop(made);
    for name in ALL {
        assert!(!accounts::exists(name), "{name} was removed");
    }
}

//! Issue 19: the first steps as a new admin types them, on a real account
//! made by `useradd -m` (shadow `!`: Debian's default, "no password
//! yet"), through a real veild with `[password] source = "veil"` (the
//! default; it reads the real /etc/shadow) and real libpam; then the same
//! account locked with `usermod -L`, which veilctl warns about and veild
//! denies.
//!
//! Root only (it adds an account to the host): ignored in a plain `cargo
//! test`, run by `scripts/test.sh` as root. The account and its home are
//! removed when the test ends, pass or fail; the test refuses to run if
//! the name exists already.

#![forbid(unsafe_code)]

use std::time::Duration;

use veil_tests::accounts::{Accounts, run, shadow_hash};
use veil_tests::daemon::{quick_config, with_toml};
use veil_tests::pam::{self, PAM_AUTH_ERR, PAM_SUCCESS, socket_args};
use veil_tests::root::require_root;
use veil_tests::wire::{SECRET_B32, code_now};
use veil_tests::{Attempt, PamStack, Veild};

const NAME: &str = "v19-useradd";
const PASSWORD: &str = "veil's own: correct horse";
const AUDIT_WAIT: Duration = Duration::from_secs(5);

/// Fails on the old main: veild denied the fresh account as
/// `account-locked` (a bare `!` counted as `passwd -l`), and `veilctl
/// user add` said nothing about it.
#[test]
#[ignore = "needs root (adds an account with useradd -m; veild reads /etc/shadow): scripts/test.sh runs it as root"]
fn a_useradd_account_logs_in_with_its_veil_password_and_a_later_expiry_or_lock_is_warned_about() {
    require_root();
    let mut made = Accounts::with_homes();
    made.add(NAME);
    assert_eq!(shadow_hash(NAME), "!", "useradd's default on this host");

    let veild = Veild::launch(with_toml(quick_config(), "failure_delay_ms = 50\n"));
    let (status, _, err) = veild.ctl(
        &["user", "add", NAME, "--password-stdin"],
        &format!("{PASSWORD}\n"),
    );
    assert_eq!(status, 0, "{err}");
    assert!(!err.contains("warning"), "nothing would deny {NAME}: {err}");
    veild.enroll_totp(NAME, SECRET_B32);

    let stack = PamStack::veil(&socket_args(&veild.socket(), "10"));
    let ok = pam::authenticate(&stack, &Attempt::new(NAME, &[PASSWORD, &code_now()]));
    assert_eq!(
        ok.code,
        PAM_SUCCESS,
        "{}: {}",
        ok.code_name(),
        veild.stderr()
    );
    veild
        .wait_for_line(
            &["event=attempt", &format!("user={NAME} "), "reason=success"],
            AUDIT_WAIT,
        )
        .unwrap_or_else(|| panic!("the success in the audit:\n{}", veild.stderr()));

    // On a bare `!`, `usermod -L` and `passwd -l` change nothing; the
    // tools' way to stop an account is `usermod -e 1` (see usermod(8)):
    // expired, warned about (status and user list) and denied.
    run("usermod", &["-L", NAME], "");
    assert_eq!(shadow_hash(NAME), "!", "usermod -L leaves a bare '!' alone");
    run("usermod", &["-e", "1", NAME], "");
    let expired = format!("warning: {NAME}'s system account expired on 1970-01-02");
    warned(&veild, &expired, "reason=account-expired", "chage -E -1");
    denied(&veild, &stack, "reason=account-expired");

    // `usermod -L` on `*` ("!*"): a lock, warned about and denied.
    run("usermod", &["-e", "", "-p", "*", NAME], "");
    run("usermod", &["-L", NAME], "");
    assert_eq!(shadow_hash(NAME), "!*");
    let locked = format!("warning: {NAME}'s system account is locked");
    warned(&veild, &locked, "reason=account-locked", "usermod -U");
    denied(&veild, &stack, "reason=account-locked");
}

/// `veilctl status NAME` and `veilctl user list` both say `what`, with the
/// audit reason and the fix, on stderr.
fn warned(veild: &Veild, what: &str, reason: &str, fix: &str) {
    for args in [&["status", NAME][..], &["user", "list"][..]] {
        let (status, _, err) = veild.ctl(args, "");
        assert_eq!(status, 0, "{args:?}: {err}");
        assert!(err.contains(what), "{args:?}: {err}");
        assert!(err.contains(reason), "{args:?}: {err}");
        assert!(err.contains(&format!("{fix} {NAME}")), "{args:?}: {err}");
    }
}

/// A login with the right password and code is denied, for `reason`.
fn denied(veild: &Veild, stack: &PamStack, reason: &str) {
    let run = pam::authenticate(stack, &Attempt::new(NAME, &[PASSWORD, &code_now()]));
    assert_eq!(run.code, PAM_AUTH_ERR, "{}", run.code_name());
    veild
        .wait_for_line(
            &["event=attempt", &format!("user={NAME} "), reason],
            AUDIT_WAIT,
        )
        .unwrap_or_else(|| panic!("{reason} in the audit:\n{}", veild.stderr()));
}

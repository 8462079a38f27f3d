//! The fresh-code window's process fields between releases, with
//! PROTOCOL_VERSION kept at 4 (the pinned release, scripts/build-pinned.sh:
//! 0.3.0's veild, veilctl and pam_veil.so). The fields (`audit_session`,
//! `boot_id`, `ppid`) are optional, so:
//!
//! - 0.3.0's module, which sends none (a screen locker still holding it
//!   after the upgrade), logs in through the tree's veild as before; it
//!   would fail if the fields were required or the version bumped;
//! - the tree's module, which always sends `ppid`, is refused by 0.3.0's
//!   veild (`deny_unknown_fields`) as any malformed request: denied,
//!   logged `event=malformed`, no attempt charged. That is the usual
//!   denial between the package's unpack and veild's restart.
#![forbid(unsafe_code)]

use veil_tests::pam::{self, PAM_AUTH_ERR, PAM_SUCCESS};
use veil_tests::totp::{DEMO_SECRET, code_now};
use veil_tests::{Attempt, PamStack, Veild, paths, pinned};

const PASSWORD: &str = "versions-pass-1";

fn stack(veild: &Veild, module: &std::path::Path) -> PamStack {
    let args = pam::socket_args(&veild.socket(), "5");
    PamStack::new(&[format!("auth required {} {args}", module.display())])
}

#[test]
#[ignore = "needs the pinned release's binaries: VEIL_PINNED_BIN_DIR=$(scripts/build-pinned.sh) (scripts/test.sh)"]
fn the_pinned_module_logs_in_through_the_trees_veild() {
    let module = pinned::module();
    let veild = Veild::from_toml("");
    veild.add_user("olduser", PASSWORD);
    veild.enroll_totp("olduser", DEMO_SECRET);
    let attempt = Attempt::new("olduser", &[PASSWORD, &code_now(DEMO_SECRET)]);
    let got = pam::authenticate(&stack(&veild, &module), &attempt).code;
    assert_eq!(got, PAM_SUCCESS, "{}", veild.stderr());
    let line = veild.wait_for_line(
        &["event=attempt", "user=olduser", "outcome=allow"],
        std::time::Duration::from_secs(5),
    );
    assert!(line.is_some(), "{}", veild.stderr());
}

#[test]
#[ignore = "needs the pinned release's binaries: VEIL_PINNED_BIN_DIR=$(scripts/build-pinned.sh) (scripts/test.sh)"]
fn the_pinned_veild_denies_the_trees_module_as_malformed_and_charges_no_one() {
    let store = tempfile::tempdir().unwrap();
    let database = toml::Value::String(store.path().join("veil.db").display().to_string());
    let veild = pinned::launch(&format!(
        "database = {database}\nfailure_delay_ms = 20\n\
         [argon2]\nm_cost_kib = 256\nt_cost = 1\np_cost = 1\n\
         [metrics]\ninterval_s = 0\n"
    ));
    veild.add_user("newmod", PASSWORD);
    veild.enroll_totp("newmod", DEMO_SECRET);
    let attempt = Attempt::new("newmod", &[PASSWORD, &code_now(DEMO_SECRET)]);
    let got = pam::authenticate(&stack(&veild, &paths::module()), &attempt).code;
    assert_eq!(got, PAM_AUTH_ERR, "{}", veild.stderr());
    let line = veild.wait_for_line(&["event=malformed"], std::time::Duration::from_secs(5));
    assert!(line.is_some(), "no malformed line: {}", veild.stderr());
    assert!(
        !veild.stderr().contains("event=attempt"),
        "{}",
        veild.stderr()
    );
}

//! Issue 21 part 4: `veilctl enable sshd` refuses or warns about sshd
//! settings under which sshd itself tells a real account from an unknown
//! name, or undoes veil's limits. The real veilctl, the real `sshd -T`
//! (Debian 12's OpenSSH 9.2: it knows UseDNS, PasswordAuthentication and
//! Match blocks; it rejects `invalid-user`, `RefuseConnection` and
//! `PerSourcePenalties`, and there enable reads the files, which the last
//! test checks). Each fails on the old main, which had none of these
//! checks: it enabled veil under every one of these configs with no word.
//!
//! Root only (sshd -T reads the host keys): ignored in a plain `cargo
//! test`, run by `scripts/test.sh` as root with `--include-ignored`.

#![forbid(unsafe_code)]

use std::fs;
use std::process::Command;

use veil_tests::root::require_root;
use veil_tests::totp::DEMO_SECRET;
use veil_tests::{DaemonConfig, Veild};

const PASSWORD: &str = "correct horse battery staple";
const SSHD_PAM: &str = include_str!("../../packaging/testdata/pam.d-sshd");
/// What veil needs of sshd, first (sshd takes the first value).
const READY: &str = "KbdInteractiveAuthentication yes\n";

/// sshd -T refuses to run without its privilege separation directory,
/// which sshd.service creates (RuntimeDirectory=sshd); so does this test.
fn sshd_ready() {
    require_root();
    fs::create_dir_all("/run/sshd").unwrap();
    let out = Command::new("/usr/sbin/sshd")
        .arg("-V")
        .output()
        .expect("/usr/sbin/sshd (scripts/deps.sh test installs openssh-server)");
    assert!(!String::from_utf8_lossy(&out.stderr).is_empty());
}

/// `veilctl enable sshd` on Debian's PAM file and the config above:
/// (exit code, report, the PAM file afterwards).
fn enable_sshd(veild: &Veild, extra: &str, matches: &str) -> (i32, String, String) {
    let dir = tempfile::Builder::new()
        .prefix("veil-oracle-")
        .tempdir()
        .unwrap();
    fs::write(dir.path().join("sshd"), SSHD_PAM).unwrap();
    let config = veil_tests::sshd::debian_sshd_config(dir.path(), extra, matches);
    let backup = dir.path().join("backup");
    let (code, out, err) = veild.ctl(
        &[
            "enable",
            "sshd",
            "--sshd-config",
            config.to_str().unwrap(),
            "--pam-dir",
            dir.path().to_str().unwrap(),
            "--backup-dir",
            backup.to_str().unwrap(),
        ],
        "",
    );
    let text = fs::read_to_string(dir.path().join("sshd")).unwrap();
    (code, format!("{out}{err}"), text)
}

fn enrolled(name: &str) -> Veild {
    let veild = Veild::start(DaemonConfig::default());
    veild.add_user(name, PASSWORD);
    veild.enroll_totp(name, DEMO_SECRET);
    veild
}

#[test]
#[ignore = "needs root (sshd -T reads the host keys): scripts/test.sh runs it as root"]
fn use_dns_yes_from_sshd_t_is_warned_about_with_the_fix() {
    sshd_ready();
    let veild = enrolled("v21dns");
    let (code, report, text) = enable_sshd(&veild, &format!("{READY}UseDNS yes\n"), "");
    assert_eq!(code, 0, "{report}");
    assert!(!report.contains("could not run sshd -T"), "{report}");
    assert!(report.contains("warning: UseDNS yes"), "{report}");
    assert!(report.contains("one source `names`"), "{report}");
    assert!(report.contains("fix: UseDNS no"), "{report}");
    assert!(text.contains("pam_veil.so"), "{text}");
    // Debian's default (UseDNS no) says nothing of it.
    let (code, report, _) = enable_sshd(&veild, READY, "");
    assert_eq!(code, 0, "{report}");
    assert!(!report.contains("UseDNS"), "{report}");
}

#[test]
#[ignore = "needs root (sshd -T reads the host keys): scripts/test.sh runs it as root"]
fn password_authentication_yes_is_advised_against_with_what_each_try_costs() {
    sshd_ready();
    let veild = enrolled("v21dpw");
    // Debian leaves PasswordAuthentication at its default, yes.
    let (code, report, _) = enable_sshd(&veild, READY, "");
    assert_eq!(code, 0, "{report}");
    assert!(!report.contains("could not run sshd -T"), "{report}");
    assert!(report.contains("PasswordAuthentication no"), "{report}");
    assert!(report.contains("counts as a failure"), "{report}");
    // And names the mode that serves the password method.
    assert!(
        report.contains("veilctl enable sshd --one-prompt"),
        "{report}"
    );
    let (code, report, _) = enable_sshd(&veild, &format!("{READY}PasswordAuthentication no\n"), "");
    assert_eq!(code, 0, "{report}");
    assert!(!report.contains("PasswordAuthentication"), "{report}");
}

#[test]
#[ignore = "needs root (sshd -T reads the host keys): scripts/test.sh runs it as root"]
fn settings_this_sshd_cannot_read_are_refused_from_the_files() {
    sshd_ready();
    let veild = enrolled("v21dinv");
    let cases = [
        (
            "",
            "Match invalid-user\n    RefuseConnection yes\n",
            ": Match invalid-user: sshd applies this block only to names that are not accounts",
        ),
        (
            "",
            "Match Group v21dnone\n    RefuseConnection yes\n",
            "RefuseConnection yes in \"Match Group v21dnone\" at ",
        ),
        (
            "PerSourcePenalties authfail:30s\n",
            "",
            "PerSourcePenalties invaliduser:5s but authfail:30s",
        ),
    ];
    for (extra, matches, expected) in cases {
        let (code, report, text) = enable_sshd(&veild, &format!("{READY}{extra}"), matches);
        assert_eq!(code, 6, "{report}");
        assert!(report.contains(expected), "{report}");
        assert!(report.contains("nothing changed"), "{report}");
        assert_eq!(text, SSHD_PAM);
    }
    // A Match block on the user that only tightens something is no oracle
    // veil can see (sshd 9.2 reads it): enable goes ahead.
    let (code, report, _) = enable_sshd(&veild, READY, "Match User v21dinv\n    MaxAuthTries 3\n");
    assert_eq!(code, 0, "{report}");
}

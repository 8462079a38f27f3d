//! The checker against the real libpwquality (and cracklib's dictionary)
//! of this host, and a real breached-list file.

use std::io::Write;
use std::path::{Path, PathBuf};

use super::breached::{contains, sha1_hex};
use super::{BREACHED, Checker, Quality, QualityError};
use crate::common::config::Password;

const GOOD: &str = "Tr0ub4dor&3-correct";

fn checker(settings: Option<PathBuf>, list: Option<PathBuf>) -> Checker {
    Checker::new(&Password {
        quality_config: settings,
        breached_list: list,
        ..Password::default()
    })
}

fn why(quality: Quality) -> String {
    match quality {
        Quality::Weak(w) => w.why,
        Quality::Good => panic!("accepted"),
    }
}

/// A settings file of its own, so the host's pwquality.conf cannot loosen
/// the defaults the assertions rely on.
fn settings(dir: &Path, text: &str) -> PathBuf {
    let path = dir.join("pwquality.conf");
    std::fs::write(&path, text).unwrap();
    path
}

#[test]
fn a_short_password_is_refused_with_libpwquality_s_own_reason() {
    let dir = tempfile::tempdir().unwrap();
    let c = checker(Some(settings(dir.path(), "")), None);
    let got = why(c.check(b"Xy7!", None, "alice").unwrap());
    assert_eq!(got, "The password is shorter than 8 characters");
    // The host's own file (libpwquality's default path) refuses it too:
    // its minlen cannot go below 6.
    let host = checker(None, None);
    assert!(matches!(
        host.check(b"Xy7!", None, "alice").unwrap(),
        Quality::Weak(_)
    ));
}

#[test]
fn a_good_password_is_accepted_and_a_dictionary_word_is_not() {
    let dir = tempfile::tempdir().unwrap();
    let c = checker(Some(settings(dir.path(), "")), None);
    assert_eq!(
        c.check(GOOD.as_bytes(), None, "alice").unwrap(),
        Quality::Good
    );
    let got = why(c.check(b"password123", None, "alice").unwrap());
    assert!(got.contains("dictionary"), "{got}");
    let got = why(c.check(b"alice-Xy7!-2026", None, "alice").unwrap());
    assert!(got.contains("user name"), "{got}");
}

#[test]
fn the_settings_file_s_minlen_is_honoured() {
    let dir = tempfile::tempdir().unwrap();
    let strict = checker(Some(settings(dir.path(), "minlen = 24\n")), None);
    let got = why(strict.check(GOOD.as_bytes(), None, "alice").unwrap());
    assert_eq!(got, "The password is shorter than 24 characters");
}

#[test]
fn a_named_settings_file_that_is_missing_is_an_error_not_a_pass() {
    let c = checker(Some(PathBuf::from("/nonexistent/pwquality.conf")), None);
    assert!(matches!(
        c.check(GOOD.as_bytes(), None, "alice"),
        Err(QualityError::Settings(_))
    ));
}

#[test]
fn the_old_password_counts_for_difok() {
    let dir = tempfile::tempdir().unwrap();
    let c = checker(Some(settings(dir.path(), "difok = 5\n")), None);
    let got = why(c
        .check(b"Tr0ub4dor&3-correcT", Some(GOOD.as_bytes()), "alice")
        .unwrap());
    assert!(
        got.contains("case changes") || got.contains("similar"),
        "{got}"
    );
}

/// A sorted list in HIBP's format (upper-case hex, `:COUNT`), with the
/// hashes of `passwords` among filler lines around them.
fn list(dir: &Path, passwords: &[&str]) -> PathBuf {
    let mut lines: Vec<String> = (0..5000u32)
        .map(|i| format!("{}:{}", sha1_hex(format!("filler {i}").as_bytes()), i + 1))
        .collect();
    lines.extend(
        passwords
            .iter()
            .map(|p| format!("{}:7", sha1_hex(p.as_bytes()))),
    );
    lines.sort();
    let path = dir.join("breached.txt");
    let mut file = std::fs::File::create(&path).unwrap();
    for line in lines {
        write!(file, "{line}\r\n").unwrap();
    }
    path
}

#[test]
fn a_password_in_the_breached_list_is_refused_and_others_are_not() {
    let dir = tempfile::tempdir().unwrap();
    let breached = "Horse-Battery-Staple-9";
    let path = list(dir.path(), &[breached]);
    let c = checker(Some(settings(dir.path(), "")), Some(path.clone()));
    assert_eq!(
        why(c.check(breached.as_bytes(), None, "bob").unwrap()),
        BREACHED
    );
    assert_eq!(
        c.check(GOOD.as_bytes(), None, "bob").unwrap(),
        Quality::Good
    );
    // Every line is found by the bisection (first, last, all between),
    // and lower-case input finds upper-case lines.
    for i in 0..5000u32 {
        let hex = sha1_hex(format!("filler {i}").as_bytes()).to_ascii_lowercase();
        assert!(contains(&path, &hex).unwrap(), "filler {i}");
    }
    assert!(!contains(&path, &"0".repeat(40)).unwrap());
    assert!(!contains(&path, &"F".repeat(40)).unwrap());
}

#[test]
fn the_breached_list_applies_with_libpwquality_turned_off() {
    let dir = tempfile::tempdir().unwrap();
    let path = list(dir.path(), &["abc"]);
    let c = Checker::new(&Password {
        quality: false,
        breached_list: Some(path),
        ..Password::default()
    });
    assert_eq!(c.check(b"x", None, "bob").unwrap(), Quality::Good);
    assert_eq!(why(c.check(b"abc", None, "bob").unwrap()), BREACHED);
}

#[test]
fn a_list_not_in_the_format_or_missing_is_an_error_not_a_pass() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("plain.txt");
    std::fs::write(&path, "123456\npassword\nqwerty\n").unwrap();
    let c = Checker::new(&Password {
        quality: false,
        breached_list: Some(path),
        ..Password::default()
    });
    assert!(matches!(
        c.check(b"qwerty", None, "bob"),
        Err(QualityError::Breached { .. })
    ));
    let missing = Checker::new(&Password {
        quality: false,
        breached_list: Some(dir.path().join("none")),
        ..Password::default()
    });
    assert!(missing.check(b"qwerty", None, "bob").is_err());
}

#[test]
fn sha1_is_hibp_s_hex() {
    // HIBP's well-known first entry for "password".
    assert_eq!(
        sha1_hex(b"password"),
        "5BAA61E4C9B93F3F0682250B6CF8331B7EE68FD8"
    );
}

#[test]
fn the_probe_finds_an_unreadable_list_and_passes_a_good_setup() {
    let dir = tempfile::tempdir().unwrap();
    let good = checker(Some(settings(dir.path(), "")), Some(list(dir.path(), &[])));
    good.probe().unwrap();
    let missing = checker(None, Some(dir.path().join("none")));
    let e = missing.probe().unwrap_err();
    assert!(e.to_string().starts_with("password.breached_list"), "{e}");
}

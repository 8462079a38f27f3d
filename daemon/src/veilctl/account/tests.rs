//! Every shadow state, with both sources: a warning exactly when veild
//! denies (the same rule), naming the reason and the fix, never the hash.

use super::*;

const TODAY: i64 = 20_000;
const YES: &str = "$y$j9T$F5Jx5fExrKuPp53xLKQ..1$X3DX6M94c7o.9agCG9G317fhZg9SqC.5i5rd.RhAtQ7";

fn said(fields: &str, system: bool) -> Option<String> {
    let e = shadow::parse_line(&format!("alice:{fields}")).unwrap();
    warning("alice", Some(&e), TODAY, system, Path::new("/etc/shadow"))
}

/// Issue 19. The bare `!` lines fail on the old main, where `!` alone was
/// a lock (`account-locked`) with source veil too.
#[test]
fn each_state_warns_exactly_when_veild_denies() {
    let old = TODAY - 100;
    let expired = TODAY - 1;
    // (fields after the name, with source veil, with source system: a part of the warning)
    let table: [(String, Option<&str>, Option<&str>); 11] = [
        (format!("{YES}:19700:0:99999:7:::"), None, None),
        (
            "!:19700:0:99999:7:::".into(),
            None,
            Some("reason=no-usable-hash"),
        ),
        (
            "*:19700:0:99999:7:::".into(),
            None,
            Some("set one: passwd alice"),
        ),
        (
            ":19700:0:99999:7:::".into(),
            None,
            Some("has no system password"),
        ),
        (
            "!*:19700:0:99999:7:::".into(),
            Some("is \"!*\""),
            Some("reason=account-locked"),
        ),
        (
            "!!:19700:0:99999:7:::".into(),
            Some("is \"!!\""),
            Some("usermod -U alice"),
        ),
        (
            format!("!{YES}:19700:0:99999:7:::"),
            Some("'!' before its hash"),
            Some("reason=account-locked"),
        ),
        (
            format!("{YES}:19700:0:99999:7::{expired}:"),
            Some("expired on 2024-10-03 (chage -E)"),
            Some("chage -E -1 alice"),
        ),
        (
            format!("!:19700:0:99999:7::{expired}:"),
            Some("reason=account-expired"),
            Some("reason=account-expired"),
        ),
        (
            format!("{YES}:{old}:0:60:7:10::"),
            Some("chage -M -1 alice"),
            Some("chage -I -1 alice"),
        ),
        (format!("{YES}:0:0:99999:7:::"), None, None),
    ];
    for (fields, veil, system) in &table {
        for (source_system, want) in [(false, veil), (true, system)] {
            let got = said(fields, source_system);
            match (want, &got) {
                (None, None) => {}
                (Some(part), Some(w)) => {
                    assert!(w.contains(part), "{fields} (system {source_system}): {w}");
                    assert!(w.starts_with("warning: alice"), "{w}");
                    assert!(!w.contains("$y$"), "no hash in a warning: {w}");
                }
                _ => panic!("{fields} (system {source_system}): {got:?}, wanted {want:?}"),
            }
        }
    }
}

#[test]
fn no_shadow_line_matters_only_to_the_system_source() {
    let p = Path::new("/etc/shadow");
    assert!(warning("bob", None, TODAY, false, p).is_none());
    let w = warning("bob", None, TODAY, true, p).unwrap();
    assert!(w.contains("reason=no-system-account"), "{w}");
    assert!(w.contains("useradd bob"), "{w}");
}

#[test]
fn days_print_as_dates() {
    assert_eq!(date(0), "1970-01-01");
    assert_eq!(date(19_999), "2024-10-03");
    assert_eq!(date(-1), "1969-12-31");
    assert_eq!(date(11_016), "2000-02-29");
}

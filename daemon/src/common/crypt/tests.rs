//! libxcrypt through the ffi module: hashes made by another implementation
//! (OpenSSL's `openssl passwd`) verify, fresh hashes round-trip, markers
//! are unusable, and settings compare by cost.

use super::*;

/// `openssl passwd -6 -salt veilsalt 'correct horse'`, and `-5`, `-1`.
const SHA512: &str = "$6$veilsalt$EHR2GGBjYtiYtaM3Vn.05v7EgleJoai48CCzbFeoQO7fCCOFuD17pDCDwmn7BcpAyFB9C4iZaNNpCfucGNMEd.";
const SHA256: &str = "$5$veilsalt$slarEBgMTQWxnWZ3FwkVWivj9YttZ56RhJ2ezHipM/4";
const MD5: &str = "$1$veilsalt$3Wjkq4r4/CIrDKGvMrnkq1";

#[test]
fn hashes_made_by_openssl_verify_and_wrong_passwords_do_not() {
    let mut s = Scratch::default();
    for hash in [SHA512, SHA256, MD5] {
        assert!(verify(&mut s, hash, b"correct horse"), "{hash}");
        assert!(!verify(&mut s, hash, b"correct horsf"), "{hash}");
        assert!(!verify(&mut s, hash, b""), "{hash}");
    }
}

#[test]
fn a_password_with_a_nul_never_matches_even_if_its_prefix_would() {
    let mut s = Scratch::default();
    assert!(!verify(&mut s, SHA256, b"correct horse\0junk"));
}

#[test]
fn fresh_hashes_of_every_method_round_trip_with_their_cost() {
    let mut s = Scratch::default();
    for (kind, cost, settings) in [
        (Kind::Yescrypt, None, "$y$j9T"),
        (Kind::Yescrypt, Some(3), "$y$j7T"),
        (Kind::GostYescrypt, None, "$gy$j9T"),
        (Kind::Sha512, Some(10_000), "$6$rounds=10000"),
        (Kind::Sha256, None, "$5$"),
        (Kind::Bcrypt, Some(5), "$2b$05"),
    ] {
        let method = Method {
            kind,
            cost,
            from: "test".into(),
        };
        let h = hash(&method, b"pw").unwrap();
        assert!(usable(&h), "{h}");
        assert!(verify(&mut s, &h, b"pw"), "{h}");
        assert!(!verify(&mut s, &h, b"pW"), "{h}");
        assert_eq!(settings_of(&h), settings, "{h}");
        assert_eq!(Kind::of_hash(&h), Some(kind), "{h}");
    }
}

#[test]
fn the_dummy_is_a_usable_hash_of_the_hosts_method_that_no_password_matches() {
    let method = Method {
        kind: Kind::Yescrypt,
        cost: None,
        from: "test".into(),
    };
    let d = dummy(&method).unwrap();
    assert!(d.starts_with("$y$j9T$") && usable(&d), "{d}");
    assert!(!verify(&mut Scratch::default(), &d, b""));
    assert_ne!(
        d,
        dummy(&method).unwrap(),
        "a fresh secret and salt each time"
    );
}

#[test]
fn lock_and_no_login_markers_and_garbage_are_unusable() {
    for h in ["", "!", "!*", "*", "!$y$j9T$abc$def", "x", "$9$nope"] {
        assert!(!usable(h), "{h:?}");
    }
    assert!(usable(SHA512));
}

#[test]
fn descriptions_name_the_method_and_cost() {
    assert_eq!(describe(SHA512), "sha512 rounds=5000");
    assert_eq!(describe("$y$j9T$salt$hash"), "yescrypt j9T");
    assert_eq!(settings_of("$6$rounds=5000$salt$hash"), "$6$");
}

//! A pair's known hash in the pipeline (`known.rs`): after a success the
//! pair's next login verifies its password while the store reserves, and
//! that one verify decides; the answer never outruns the ledger, a changed
//! or deleted row is verified as read, and no other pair takes the path.

use super::*;
use crate::common::password::VERIFIES;
use veil_proto::Reply;

const NOW: u64 = 1_700_000_000;
const ROOT: Peer = Peer { uid: 0, pid: 1 };
const HOME: &str = "198.51.100.7";

struct Fixture {
    _dir: tempfile::TempDir,
    verifier: Verifier,
    hasher: Hasher,
}

/// A veil user `nototp` with password "right" (no code asked), deny = 3.
fn fixture() -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let text = format!(
        "database = {:?}\n[argon2]\nm_cost_kib = 64\nt_cost = 1\n[lockout]\ndeny = 3\n\
         [totp]\npolicy = \"if-enrolled\"\n",
        dir.path().join("v.db")
    );
    let config = Config::parse(&text, std::path::Path::new("veild.toml")).unwrap();
    let hasher = Hasher::new(&config.argon2).unwrap();
    let mut store = store::open(&Location::of(&config), OpenMode::CreateIfMissing).unwrap();
    store
        .add_user("nototp", &hasher.hash(b"right").unwrap(), 0)
        .unwrap();
    let dummy = dummy_record(&hasher).unwrap();
    let mut verifier = Verifier::new(&config, hasher.clone(), dummy, SystemAccounts::default());
    verifier.start_reserver();
    Fixture {
        _dir: dir,
        verifier,
        hasher,
    }
}

fn request(user: &str, password: &str, rhost: &str) -> Request {
    let mut req = Request::new(user, Reply::from(password), Reply::from(""));
    req.service = "sshd".into();
    req.rhost = rhost.into();
    req
}

/// The decision, and the password verifies it made on this thread.
fn ask(f: &mut Fixture, req: &Request) -> (Decision, usize) {
    let before = VERIFIES.with(|n| n.get());
    let d = f.verifier.decide(req, ROOT, NOW);
    (d, VERIFIES.with(|n| n.get()) - before)
}

/// Whether the read of `req` verified its password during the reservation.
fn verified_early(f: &mut Fixture, req: &Request) -> Option<bool> {
    let read = f.verifier.read(req, ROOT, true, NOW, None);
    read.early.map(|e| e.matched)
}

#[test]
fn a_pairs_next_login_is_verified_once_while_the_store_reserves() {
    let mut f = fixture();
    let home = request("nototp", "right", HOME);
    assert_eq!(verified_early(&mut f, &home), None, "no success yet");
    let (first, verifies) = ask(&mut f, &home);
    assert_eq!((first.reason, verifies), (Reason::Success, 1));

    assert_eq!(verified_early(&mut f, &home), Some(true));
    let (again, verifies) = ask(&mut f, &home);
    assert_eq!(
        (again.reason, verifies),
        (Reason::Success, 1),
        "the early verify decides; it is not made twice"
    );
    let wrong = request("nototp", "wrong", HOME);
    assert_eq!(verified_early(&mut f, &wrong), Some(false));
    assert_eq!(ask(&mut f, &wrong).0.reason, Reason::WrongPassword);

    // Another source, another name, a local peer's charge: not this pair.
    let elsewhere = request("nototp", "right", "203.0.113.9");
    assert_eq!(verified_early(&mut f, &elsewhere), None);
    assert_eq!(
        verified_early(&mut f, &request("ghost", "right", HOME)),
        None
    );
    let read = f
        .verifier
        .read(&home, Peer { uid: 1000, pid: 9 }, false, NOW, None);
    assert!(read.early.is_none(), "a refused peer's charge");
}

#[test]
fn a_known_pairs_right_password_still_counts_and_locks_first() {
    let mut f = fixture();
    let home = request("nototp", "right", HOME);
    assert_eq!(ask(&mut f, &home).0.reason, Reason::Success);
    for _ in 0..3 {
        assert_eq!(
            ask(&mut f, &request("nototp", "wrong", HOME)).0.reason,
            Reason::WrongPassword
        );
    }
    assert_eq!(verified_early(&mut f, &home), Some(true));
    let (d, _) = ask(&mut f, &home);
    assert!(matches!(d.reason, Reason::Locked(_)), "{:?}", d.reason);
    assert_eq!(d.verdict, Verdict::Deny);
}

#[test]
fn a_changed_or_deleted_row_is_verified_as_read_and_forgotten() {
    let mut f = fixture();
    let home = request("nototp", "right", HOME);
    assert_eq!(ask(&mut f, &home).0.reason, Reason::Success);

    let new_hash = f.hasher.hash(b"new").unwrap();
    f.verifier
        .store()
        .unwrap()
        .set_password("nototp", &new_hash, 0)
        .unwrap();
    // The kept hash matches "right", the row's does not: the row decides.
    let (d, verifies) = ask(&mut f, &home);
    assert_eq!((d.reason, verifies), (Reason::WrongPassword, 2));
    assert_eq!(verified_early(&mut f, &home), None, "forgotten");
    let renewed = request("nototp", "new", HOME);
    assert_eq!(ask(&mut f, &renewed).0.reason, Reason::Success);
    assert_eq!(verified_early(&mut f, &renewed), Some(true));

    f.verifier.store().unwrap().delete_user("nototp").unwrap();
    let (d, verifies) = ask(&mut f, &renewed);
    assert_eq!((d.reason, verifies), (Reason::UnknownUser, 2));
    assert_eq!(verified_early(&mut f, &renewed), None, "forgotten");
}

#[test]
fn workers_share_the_pairs() {
    let mut f = fixture();
    let mut other = fixture();
    // The same database for both verifiers, as veild's workers have.
    other.verifier.share_database(&f.verifier.database.clone());
    other.verifier.share_known(f.verifier.known.clone());
    let home = request("nototp", "right", HOME);
    assert_eq!(ask(&mut f, &home).0.reason, Reason::Success);
    assert_eq!(verified_early(&mut other, &home), Some(true));
}

#[test]
fn no_early_verify_where_it_would_show_or_the_rows_hash_is_not_checked() {
    let home = request("nototp", "right", HOME);
    // failure_delay_ms = 0: a denial leaves when decided.
    let mut f = fixture();
    f.verifier.early_verify = false;
    assert_eq!(ask(&mut f, &home).0.reason, Reason::Success);
    assert_eq!(verified_early(&mut f, &home), None, "delay 0");

    // No thread of its own (veilctl; a start that could have none): in turn.
    let mut f = fixture();
    f.verifier.reserver = None;
    assert_eq!(ask(&mut f, &home).0.reason, Reason::Success);
    assert_eq!(verified_early(&mut f, &home), None, "no reserver");
    let (d, verifies) = ask(&mut f, &home);
    assert_eq!((d.reason, verifies), (Reason::Success, 1));

    let mut f = fixture();
    assert_eq!(ask(&mut f, &home).0.reason, Reason::Success);
    // Code only: the password is verified against the dummy.
    let mut code_only = home.clone();
    code_only.code_only = true;
    assert_eq!(verified_early(&mut f, &code_only), None, "code only");
    // System passwords: the shadow file's hash, not the row's.
    f.verifier.system.crypt_dummy = Some("$5$rounds=1000$x$y".into());
    assert_eq!(verified_early(&mut f, &home), None, "system passwords");
}

#[test]
fn a_store_that_fails_keeps_the_pair() {
    let mut f = fixture();
    let home = request("nototp", "right", HOME);
    assert_eq!(ask(&mut f, &home).0.reason, Reason::Success);
    // The reservation fails on its thread, after the verify started, and
    // the row cannot be read either.
    let other = rusqlite::Connection::open(f._dir.path().join("v.db")).unwrap();
    other
        .execute_batch(
            "ALTER TABLE ledger RENAME TO ledger_away; ALTER TABLE users RENAME TO users_away",
        )
        .unwrap();
    let (d, _) = ask(&mut f, &home);
    assert!(matches!(d.reason, Reason::Store(_)), "{:?}", d.reason);
    other
        .execute_batch(
            "ALTER TABLE ledger_away RENAME TO ledger; ALTER TABLE users_away RENAME TO users",
        )
        .unwrap();
    assert_eq!(verified_early(&mut f, &home), Some(true), "kept");
}

#[test]
fn veilds_delay_decides_the_early_verify() {
    let dir = tempfile::tempdir().unwrap();
    for (delay, early) in [(0, false), (1, true), (2000, true)] {
        let text = format!(
            "database = {:?}\nfailure_delay_ms = {delay}\n",
            dir.path().join("v.db")
        );
        let config = Config::parse(&text, std::path::Path::new("veild.toml")).unwrap();
        let hasher = Hasher::new(&config.argon2).unwrap();
        let v = Verifier::new(
            &config,
            hasher.clone(),
            dummy_record(&hasher).unwrap(),
            SystemAccounts::default(),
        );
        assert_eq!(v.early_verify, early, "failure_delay_ms = {delay}");
    }
}

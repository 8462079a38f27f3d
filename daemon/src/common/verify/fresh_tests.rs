//! The fresh-code window in the pipeline: a login with password and code
//! binds its session, then the windowed service takes an empty code in
//! that session only, within the window only; failures count as ever.

use super::*;
use veil_proto::Reply;
use veil_proto::process::ProcessFacts;
use veil_proto::session::{SessionNote, SessionOp};

const NOW: u64 = 1_700_000_000;
/// sshd's auth child (ruid 0), forked by its monitor, pid 100.
const SSHD_AUTH: Peer = Peer { uid: 0, pid: 101 };
const SSHD_MONITOR: Peer = Peer { uid: 0, pid: 100 };
/// sudo in the same login session, and sudo in another one.
const SUDO_SAME: Peer = Peer { uid: 0, pid: 200 };
const SUDO_OTHER: Peer = Peer { uid: 0, pid: 300 };

const BOOT: &str = "6f1c6a2e-3b8d-4c1e-9f0a-2d5b7c9e1a34";

/// What each process's module sends, as the kernel told it: pid 300 is in
/// audit session 8, every other in 7; each process's parent is the pid
/// below it.
fn facts(peer: Peer) -> ProcessFacts {
    ProcessFacts {
        session: Some(if peer.pid == 300 { 8 } else { 7 }),
        boot_id: Some(BOOT.into()),
        ppid: Some(peer.pid as u32 - 1),
    }
}

struct Fixture {
    user: &'static str,
    _dir: tempfile::TempDir,
    verifier: Verifier,
    secret: Vec<u8>,
}

fn fixture(window: Option<u64>) -> Fixture {
    fixture_for("alice", window)
}

/// A veil user `user` with password "right" and a code; `window`: sudo's.
fn fixture_for(user: &'static str, window: Option<u64>) -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let mut text = format!(
        "database = {:?}\n[argon2]\nm_cost_kib = 64\nt_cost = 1\n[lockout]\ndeny = 3\n",
        dir.path().join("v.db")
    );
    if let Some(n) = window {
        text.push_str(&format!("[service.sudo]\nfresh_code_window_s = {n}\n"));
    }
    let config = Config::parse(&text, std::path::Path::new("veild.toml")).unwrap();
    let hasher = Hasher::new(&config.argon2).unwrap();
    let mut store = store::open(&Location::of(&config), OpenMode::CreateIfMissing).unwrap();
    let secret = totp::new_secret().unwrap().to_vec();
    store
        .add_user(user, &hasher.hash(b"right").unwrap(), 0)
        .unwrap();
    store.set_totp_pending(user, &secret, 0).unwrap();
    store.activate_totp(user, -1, 0).unwrap();
    let dummy = dummy_record(&hasher).unwrap();
    let verifier = Verifier::new(&config, hasher, dummy, SystemAccounts::default());
    Fixture {
        user,
        _dir: dir,
        verifier,
        secret,
    }
}

fn ask(
    f: &mut Fixture,
    service: &str,
    peer: Peer,
    ruid: u32,
    pw: &str,
    code: &str,
    now: u64,
) -> Decision {
    let mut request = Request::new(f.user, Reply::from(pw), Reply::from(code));
    request.service = service.into();
    request.ruid = ruid;
    request.set_process(&facts(peer));
    f.verifier.decide(&request, peer, now)
}

/// An ssh login with password and code, then its session phase's note.
fn ssh_login_and_bind(f: &mut Fixture) -> fresh::NoteOutcome {
    let code = totp::code_at(&f.secret, totp::step_of(NOW)).to_string();
    let d = ask(f, "sshd", SSHD_AUTH, 0, "right", &code, NOW);
    assert_eq!(d.reason, Reason::Success);
    let note = SessionNote::new(SessionOp::Open, f.user, "sshd").with_process(&facts(SSHD_MONITOR));
    f.verifier
        .session_note(&note, SSHD_MONITOR, NOW + 1)
        .unwrap()
}

#[test]
fn after_the_bind_the_password_alone_passes_in_the_same_session_only() {
    let mut f = fixture(Some(300));
    assert_eq!(
        ssh_login_and_bind(&mut f),
        fresh::NoteOutcome::Bound { session: 7 }
    );
    let d = ask(&mut f, "sudo", SUDO_SAME, 1000, "right", "", NOW + 10);
    assert_eq!((d.verdict, d.reason), (Verdict::Allow, Reason::FreshWindow));
    // Another audit session of the same user.
    let d = ask(&mut f, "sudo", SUDO_OTHER, 1000, "right", "", NOW + 10);
    assert_eq!((d.verdict, d.reason), (Verdict::Deny, Reason::WrongCode));
    // A service without a window.
    let d = ask(&mut f, "su", SUDO_SAME, 1000, "right", "", NOW + 10);
    assert_eq!(d.reason, Reason::WrongCode);
    // A code typed anyway is checked as always.
    let d = ask(
        &mut f,
        "sudo",
        SUDO_SAME,
        1000,
        "right",
        "000000",
        NOW + 300 - 1,
    );
    assert_eq!(d.reason, Reason::WrongCode);
}

#[test]
fn the_window_ends_after_its_length() {
    let mut f = fixture(Some(300));
    ssh_login_and_bind(&mut f);
    // Bound at NOW + 1: open through NOW + 300, shut at NOW + 301.
    let d = ask(&mut f, "sudo", SUDO_SAME, 1000, "right", "", NOW + 300);
    assert_eq!(d.reason, Reason::FreshWindow);
    let d = ask(&mut f, "sudo", SUDO_SAME, 1000, "right", "", NOW + 301);
    assert_eq!((d.verdict, d.reason), (Verdict::Deny, Reason::WrongCode));
}

#[test]
fn without_a_window_nothing_binds_and_the_code_is_needed() {
    let mut f = fixture(None);
    assert_eq!(
        ssh_login_and_bind(&mut f),
        fresh::NoteOutcome::Ignored("no-window-configured")
    );
    let d = ask(&mut f, "sudo", SUDO_SAME, 1000, "right", "", NOW + 10);
    assert_eq!((d.verdict, d.reason), (Verdict::Deny, Reason::WrongCode));
}

#[test]
fn a_setuid_front_ends_login_binds_nothing() {
    // su's or sudo's own success (ruid of the user) is no login to bind.
    let mut f = fixture(Some(300));
    let code = totp::code_at(&f.secret, totp::step_of(NOW)).to_string();
    let d = ask(&mut f, "sshd", SSHD_AUTH, 1000, "right", &code, NOW);
    assert_eq!(d.reason, Reason::Success);
    let note =
        SessionNote::new(SessionOp::Open, "alice", "sshd").with_process(&facts(SSHD_MONITOR));
    let got = f
        .verifier
        .session_note(&note, SSHD_MONITOR, NOW + 1)
        .unwrap();
    assert_eq!(got, fresh::NoteOutcome::Ignored("no-fresh-login"));
}

#[test]
fn a_wrong_password_inside_the_window_is_denied_and_counted() {
    let mut f = fixture(Some(300));
    ssh_login_and_bind(&mut f);
    for i in 0..3 {
        let d = ask(&mut f, "sudo", SUDO_SAME, 1000, "wrong", "", NOW + 10 + i);
        assert_eq!(d.reason, Reason::WrongPassword);
    }
    // deny = 3: the key is locked now, the right password included.
    let d = ask(&mut f, "sudo", SUDO_SAME, 1000, "right", "", NOW + 20);
    assert!(matches!(d.reason, Reason::Locked(_)), "{:?}", d.reason);
}

#[test]
fn a_closed_session_has_no_window() {
    let mut f = fixture(Some(300));
    ssh_login_and_bind(&mut f);
    let close =
        SessionNote::new(SessionOp::Close, "alice", "sshd").with_process(&facts(SSHD_MONITOR));
    let got = f
        .verifier
        .session_note(&close, SSHD_MONITOR, NOW + 5)
        .unwrap();
    assert_eq!(
        got,
        fresh::NoteOutcome::Closed {
            session: 7,
            rows: 1
        }
    );
    let d = ask(&mut f, "sudo", SUDO_SAME, 1000, "right", "", NOW + 10);
    assert_eq!(d.reason, Reason::WrongCode);
}

/// A process that is not root (a screen locker run by the user: peer
/// uid = the account's) names the session bound by its user's ssh login:
/// veild takes no claim of its, so no window opens, nor can it bind one.
/// Two guards hold this (windows are root peers' only, and [`Claimed`]
/// drops a non-root peer's claims); fresh/tests.rs checks the second alone.
#[test]
fn a_non_root_peers_claimed_session_opens_no_window() {
    let nobody = nix::unistd::User::from_name("nobody").unwrap().unwrap();
    let mut f = fixture_for("nobody", Some(300));
    ssh_login_and_bind(&mut f);
    // Root in that session: the window is open.
    let d = ask(&mut f, "sudo", SUDO_SAME, 0, "right", "", NOW + 10);
    assert_eq!(d.reason, Reason::FreshWindow);
    let locker = Peer {
        uid: nobody.uid.as_raw(),
        pid: 200,
    };
    let d = ask(&mut f, "sudo", locker, locker.uid, "right", "", NOW + 11);
    assert_eq!((d.verdict, d.reason), (Verdict::Deny, Reason::WrongCode));
    let note = SessionNote::new(SessionOp::Open, "nobody", "sshd").with_process(&facts(locker));
    let got = f.verifier.session_note(&note, locker, NOW + 1).unwrap();
    assert_eq!(got, fresh::NoteOutcome::Ignored("peer-not-root"));
}

/// An older module sends no session id: no window, the code is needed.
#[test]
fn a_request_without_a_session_id_gets_no_window() {
    let mut f = fixture(Some(300));
    ssh_login_and_bind(&mut f);
    let mut request = Request::new(f.user, Reply::from("right"), Reply::from(""));
    request.service = "sudo".into();
    request.ruid = 1000;
    let d = f.verifier.decide(&request, SUDO_SAME, NOW + 10);
    assert_eq!((d.verdict, d.reason), (Verdict::Deny, Reason::WrongCode));
}

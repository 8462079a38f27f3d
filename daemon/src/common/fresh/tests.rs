//! The binding and window rules, with injected clocks and what modules
//! claim of their processes, on a real SQLite store.

use super::*;
use crate::common::store::{self, Location, OpenMode};

const NOW: u64 = 1_700_000_000;
const ROOT_AUTH: Peer = Peer { uid: 0, pid: 101 };
/// sshd's session phase runs in the process that forked the auth child.
const ROOT_MONITOR: Peer = Peer { uid: 0, pid: 100 };
const HOST: &str = "h1";
const BOOT: &str = "6f1c6a2e-3b8d-4c1e-9f0a-2d5b7c9e1a34";

fn key(session: u32, user: &str) -> SessionKey<'_> {
    SessionKey {
        host: HOST,
        boot: BOOT,
        session,
        user,
    }
}

/// A note from a process in audit session `session` (`None`: unset).
fn note(op: SessionOp, user: &str, session: Option<u32>) -> SessionNote {
    let mut note = SessionNote::new(op, user, "sshd");
    note.audit_session = session;
    note.boot_id = Some(BOOT.into());
    note
}

/// veild read no /proc of its own: a non-root peer's claims are nothing,
/// so it cannot name a session (another user's, or another login of its
/// own user) to borrow that session's window.
#[test]
fn only_a_root_peers_claims_count() {
    let mut open = note(SessionOp::Open, "alice", Some(7));
    let user_peer = Peer {
        uid: 1000,
        pid: 100,
    };
    assert_eq!(Claimed::of_note(&open, user_peer), Claimed::default());
    let root = Claimed::of_note(&open, ROOT_MONITOR);
    assert_eq!((root.session, root.boot), (Some(7), Some(BOOT)));
    assert_eq!(root.key(HOST, "alice"), Some(key(7, "alice")));
    // A session without a boot keys nothing.
    open.boot_id = None;
    assert_eq!(
        Claimed::of_note(&open, ROOT_MONITOR).key(HOST, "alice"),
        None
    );
    let mut request = Request::new("alice", "pw".into(), "".into());
    request.audit_session = Some(7);
    request.boot_id = Some(BOOT.into());
    request.ppid = Some(100);
    assert_eq!(Claimed::of_request(&request, user_peer), Claimed::default());
    assert_eq!(
        Claimed::of_request(&request, user_peer).key(HOST, "alice"),
        None
    );
    let root = Claimed::of_request(&request, ROOT_AUTH);
    assert_eq!(root.ppid, Some(100));
    assert_eq!(root.key(HOST, "alice"), Some(key(7, "alice")));
}

#[test]
fn a_login_binds_only_from_its_own_process_or_its_parent_and_once() {
    let mut recent = Recent::default();
    recent.record("alice", "sshd", ROOT_AUTH.pid, Some(ROOT_MONITOR.pid), NOW);
    // Another connection's process (a key-only login at the same moment).
    assert!(!recent.claim("alice", "sshd", 555, NOW + 1));
    // Another user, another service.
    assert!(!recent.claim("bob", "sshd", ROOT_MONITOR.pid, NOW + 1));
    assert!(!recent.claim("alice", "login", ROOT_MONITOR.pid, NOW + 1));
    // The parent (sshd's monitor), once.
    assert!(recent.claim("alice", "sshd", ROOT_MONITOR.pid, NOW + 1));
    assert!(!recent.claim("alice", "sshd", ROOT_MONITOR.pid, NOW + 2));
    // login runs auth and session in one process.
    recent.record("carol", "login", 300, Some(1), NOW);
    assert!(recent.claim("carol", "login", 300, NOW));
}

#[test]
fn a_login_older_than_the_bind_limit_binds_nothing() {
    let mut recent = Recent::default();
    recent.record("alice", "sshd", 101, Some(100), NOW);
    assert!(!recent.claim("alice", "sshd", 100, NOW + BIND_WITHIN_S + 1));
    recent.record("alice", "sshd", 101, Some(100), NOW);
    assert!(recent.claim("alice", "sshd", 100, NOW + BIND_WITHIN_S));
    // A clock that went back binds nothing either.
    recent.record("alice", "sshd", 101, Some(100), NOW);
    assert!(!recent.claim("alice", "sshd", 100, NOW - 1));
}

#[test]
fn the_window_holds_from_the_bind_for_exactly_its_length() {
    let at = NOW as i64;
    assert!(window_open(Some(at), 300, at));
    assert!(window_open(Some(at), 300, at + 299));
    assert!(!window_open(Some(at), 300, at + 300));
    assert!(!window_open(Some(at), 0, at));
    assert!(!window_open(None, 300, at));
    assert!(!window_open(Some(at), 300, at - 1));
}

fn sqlite() -> (tempfile::TempDir, Box<dyn Store>) {
    let dir = tempfile::tempdir().unwrap();
    let store = store::open(
        &Location::Sqlite(dir.path().join("v.db")),
        OpenMode::CreateIfMissing,
    )
    .unwrap();
    (dir, store)
}

#[test]
fn a_note_binds_the_peers_session_only_after_its_login() {
    let (_dir, mut store) = sqlite();
    let mut recent = Recent::default();
    let apply = |store: &mut Box<dyn Store>, recent: &mut Recent, peer, note, window| {
        apply_note(store.as_mut(), recent, HOST, &note, peer, window, NOW).unwrap()
    };
    let in_7 = || note(SessionOp::Open, "alice", Some(7));
    // No login to bind.
    let got = apply(&mut store, &mut recent, ROOT_MONITOR, in_7(), true);
    assert_eq!(got, NoteOutcome::Ignored("no-fresh-login"));
    recent.record("alice", "sshd", ROOT_AUTH.pid, Some(ROOT_MONITOR.pid), NOW);
    // A peer that is not root, one without an audit session or boot id,
    // a host without any window: nothing bound, and the login still waits.
    let user_peer = Peer {
        uid: 1000,
        pid: 100,
    };
    let got = apply(&mut store, &mut recent, user_peer, in_7(), true);
    assert_eq!(got, NoteOutcome::Ignored("peer-not-root"));
    let unset = note(SessionOp::Open, "alice", None);
    let got = apply(&mut store, &mut recent, ROOT_MONITOR, unset, true);
    assert_eq!(got, NoteOutcome::Ignored("no-audit-session"));
    assert!(got.hint().unwrap().contains("pam_loginuid"));
    let mut no_boot = in_7();
    no_boot.boot_id = None;
    let got = apply(&mut store, &mut recent, ROOT_MONITOR, no_boot, true);
    assert_eq!(got, NoteOutcome::Ignored("no-boot-id"));
    let got = apply(&mut store, &mut recent, ROOT_MONITOR, in_7(), false);
    assert_eq!(got, NoteOutcome::Ignored("no-window-configured"));
    assert_eq!(store.fresh_bound_at(&key(7, "alice")).unwrap(), None);
    let got = apply(&mut store, &mut recent, ROOT_MONITOR, in_7(), true);
    assert_eq!(got, NoteOutcome::Bound { session: 7 });
    assert_eq!(
        store.fresh_bound_at(&key(7, "alice")).unwrap(),
        Some(NOW as i64)
    );
    // Keyed by host, boot, session and user.
    assert_eq!(store.fresh_bound_at(&key(8, "alice")).unwrap(), None);
    assert_eq!(store.fresh_bound_at(&key(7, "bob")).unwrap(), None);
    let rebooted = SessionKey {
        boot: "00000000-3b8d-4c1e-9f0a-2d5b7c9e1a34",
        ..key(7, "alice")
    };
    assert_eq!(store.fresh_bound_at(&rebooted).unwrap(), None);
}

#[test]
fn closing_the_session_ends_its_binding_and_prune_takes_old_ones() {
    let (_dir, mut store) = sqlite();
    store.fresh_bind(&key(7, "alice"), NOW as i64).unwrap();
    store
        .fresh_bind(&key(9, "alice"), NOW as i64 - 4000)
        .unwrap();
    let close = note(SessionOp::Close, "alice", Some(7));
    let got = apply_note(
        store.as_mut(),
        &mut Recent::default(),
        HOST,
        &close,
        ROOT_MONITOR,
        true,
        NOW,
    )
    .unwrap();
    assert_eq!(
        got,
        NoteOutcome::Closed {
            session: 7,
            rows: 1
        }
    );
    assert_eq!(store.fresh_bound_at(&key(7, "alice")).unwrap(), None);
    assert_eq!(
        store.fresh_prune(NOW as i64 - MAX_WINDOW_S as i64).unwrap(),
        1
    );
    assert_eq!(store.fresh_bound_at(&key(9, "alice")).unwrap(), None);
}

#[test]
fn a_peer_pid_of_zero_takes_no_login() {
    // SO_PEERCRED says 0 for a peer outside veild's pid namespace; two
    // such peers must not pass for one process.
    let mut recent = Recent::default();
    recent.record("alice", "sshd", 0, None, NOW);
    assert!(!recent.claim("alice", "sshd", 0, NOW));
}

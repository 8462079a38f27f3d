//! The binding and window rules, with injected clocks and /proc readings,
//! on a real SQLite store.

use super::*;
use crate::common::store::{self, Location, OpenMode};

const NOW: u64 = 1_700_000_000;
const ROOT_AUTH: Peer = Peer { uid: 0, pid: 101 };
/// sshd's session phase runs in the process that forked the auth child.
const ROOT_MONITOR: Peer = Peer { uid: 0, pid: 100 };

fn host() -> HostKey {
    HostKey {
        host: "h1".into(),
        boot: "b1".into(),
    }
}

fn open_note(user: &str) -> SessionNote {
    SessionNote::new(SessionOp::Open, user, "sshd")
}

fn in_session(session: u32) -> ProcInfo {
    ProcInfo {
        session: Some(session),
        ppid: Some(1),
    }
}

#[test]
fn proc_files_parse_as_the_kernel_writes_them() {
    assert_eq!(parse_session("4294967295"), None);
    assert_eq!(parse_session("12\n"), Some(12));
    assert_eq!(parse_session(""), None);
    // A command name with spaces and parentheses does not shift the fields.
    let stat = "4242 (sshd: a) (b) S 4100 4242 4242 0 -1 4194560 0";
    assert_eq!(parse_ppid(stat), Some(4100));
    assert_eq!(parse_ppid("garbage"), None);
    // This process: a parent exists, whatever its session.
    assert!(read_proc(std::process::id() as i32).ppid.is_some());
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
    let host = host();
    let mut recent = Recent::default();
    let apply = |store: &mut Box<dyn Store>, recent: &mut Recent, peer, proc, window| {
        apply_note(
            store.as_mut(),
            recent,
            &host,
            &open_note("alice"),
            (peer, proc),
            window,
            NOW,
        )
        .unwrap()
    };
    // No login to bind.
    let got = apply(&mut store, &mut recent, ROOT_MONITOR, in_session(7), true);
    assert_eq!(got, NoteOutcome::Ignored("no-fresh-login"));
    recent.record("alice", "sshd", ROOT_AUTH.pid, Some(ROOT_MONITOR.pid), NOW);
    // A peer that is not root, one without an audit session, a host
    // without any window: nothing bound, and the login still waits.
    let user_peer = Peer {
        uid: 1000,
        pid: 100,
    };
    let got = apply(&mut store, &mut recent, user_peer, in_session(7), true);
    assert_eq!(got, NoteOutcome::Ignored("peer-not-root"));
    let got = apply(
        &mut store,
        &mut recent,
        ROOT_MONITOR,
        ProcInfo::default(),
        true,
    );
    assert_eq!(got, NoteOutcome::Ignored("no-audit-session"));
    let got = apply(&mut store, &mut recent, ROOT_MONITOR, in_session(7), false);
    assert_eq!(got, NoteOutcome::Ignored("no-window-configured"));
    assert_eq!(store.fresh_bound_at(&host.key(7, "alice")).unwrap(), None);
    let got = apply(&mut store, &mut recent, ROOT_MONITOR, in_session(7), true);
    assert_eq!(got, NoteOutcome::Bound { session: 7 });
    assert_eq!(
        store.fresh_bound_at(&host.key(7, "alice")).unwrap(),
        Some(NOW as i64)
    );
    // Keyed by host, boot, session and user.
    assert_eq!(store.fresh_bound_at(&host.key(8, "alice")).unwrap(), None);
    assert_eq!(store.fresh_bound_at(&host.key(7, "bob")).unwrap(), None);
    let rebooted = HostKey {
        boot: "b2".into(),
        ..host.clone()
    };
    assert_eq!(
        store.fresh_bound_at(&rebooted.key(7, "alice")).unwrap(),
        None
    );
}

#[test]
fn closing_the_session_ends_its_binding_and_prune_takes_old_ones() {
    let (_dir, mut store) = sqlite();
    let host = host();
    store.fresh_bind(&host.key(7, "alice"), NOW as i64).unwrap();
    store
        .fresh_bind(&host.key(9, "alice"), NOW as i64 - 4000)
        .unwrap();
    let close = SessionNote::new(SessionOp::Close, "alice", "sshd");
    let got = apply_note(
        store.as_mut(),
        &mut Recent::default(),
        &host,
        &close,
        (ROOT_MONITOR, in_session(7)),
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
    assert_eq!(store.fresh_bound_at(&host.key(7, "alice")).unwrap(), None);
    assert_eq!(
        store.fresh_prune(NOW as i64 - MAX_WINDOW_S as i64).unwrap(),
        1
    );
    assert_eq!(store.fresh_bound_at(&host.key(9, "alice")).unwrap(), None);
}

#[test]
fn without_a_boot_id_nothing_binds_and_the_cause_is_named() {
    let (_dir, mut store) = sqlite();
    let no_boot = HostKey {
        host: "h1".into(),
        boot: String::new(),
    };
    assert!(proc_problem(&no_boot).unwrap().contains("boot_id"));
    let mut recent = Recent::default();
    recent.record("alice", "sshd", ROOT_AUTH.pid, Some(ROOT_MONITOR.pid), NOW);
    let got = apply_note(
        store.as_mut(),
        &mut recent,
        &no_boot,
        &open_note("alice"),
        (ROOT_MONITOR, in_session(7)),
        true,
        NOW,
    )
    .unwrap();
    assert_eq!(got, NoteOutcome::Ignored("no-boot-id"));
}

use super::*;

fn slots(max_connections: usize, max_per_user: usize, subuid: &str) -> (tempfile::TempDir, Slots) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("subuid");
    std::fs::write(&path, subuid).unwrap();
    let s = Slots::new(
        Limits {
            max_connections,
            max_per_user,
        },
        &path,
    );
    (dir, s)
}

/// One local user's flood through a root front end: over its share, each
/// request waits for its deadline without an active slot, so a remote
/// login still gets one. Fails on the old main, where a denial waiting for
/// its deadline kept its slot (40 slots, share 4: 36 held, the next
/// connection refused with limit=max_connections).
#[test]
fn over_share_requests_wait_without_holding_active_slots() {
    let (_d, mut s) = slots(40, 4, "");
    let mut working = Vec::new();
    let mut waiting = Vec::new();
    for _ in 0..1100 {
        let mut held = s.accept(0).expect("an active slot");
        match s.start(&mut held, "uid:1000", true) {
            Ok(()) => working.push(held),
            Err(full) => {
                assert_eq!(full, Full::PerUser);
                if s.wait(&mut held) {
                    waiting.push(held);
                }
            }
        }
    }
    assert_eq!(working.len(), 4);
    assert_eq!(
        waiting.len(),
        80,
        "the waiting pool is twice max_connections"
    );
    assert_eq!(s.counts(), (4, 80, 4));
    let mut remote = s.accept(0).expect("sshd's connection");
    s.start(&mut remote, "rhost:192.0.2.1", false)
        .expect("a remote login is served");
    for mut h in working.into_iter().chain(waiting).chain([remote]) {
        s.release(&mut h);
    }
    assert_eq!(s.counts(), (0, 0, 0));
}

/// Fails on the old main, which capped non-root peers per uid only: each
/// of a user's subordinate uids had a share of its own.
#[test]
fn subordinate_uids_share_their_owners_share_and_locals_keep_to_half() {
    let (_d, mut s) = slots(40, 4, "1000:100000:65536\n");
    let mut held = Vec::new();
    let mut refused = Vec::new();
    for uid in 100_000..100_100 {
        match s.accept(uid) {
            Ok(h) => held.push(h),
            Err(e) => refused.push(e),
        }
    }
    assert_eq!(held.len(), 4, "the owner's share, whatever the uid");
    assert!(refused.iter().all(|e| *e == (Full::PerUser, Some(1000))));
    // The owner's own sudo draws on the same share.
    let mut sudo = s.accept(0).unwrap();
    assert_eq!(s.start(&mut sudo, "uid:1000", true), Err(Full::PerUser));
    s.release(&mut sudo);
    // Many local users together hold at most half of the slots.
    for uid in 2000..2100 {
        if let Ok(h) = s.accept(uid) {
            held.push(h);
        }
    }
    assert_eq!(s.counts().2, 20);
    assert_eq!(s.accept(3000).unwrap_err(), (Full::Local, Some(3000)));
    let mut remote = s.accept(0).expect("room for root peers");
    s.start(&mut remote, "rhost:192.0.2.1", false).unwrap();
    let mut local_root = s.accept(0).unwrap();
    assert_eq!(
        s.start(&mut local_root, "service:polkit-1", true),
        Err(Full::Local)
    );
}

#[test]
fn a_full_waiting_pool_answers_at_once_and_release_is_idempotent() {
    let (_d, mut s) = slots(1, 1, "");
    let mut a = s.accept(0).unwrap();
    assert_eq!(s.accept(0).unwrap_err(), (Full::Connections, None));
    assert!(s.wait(&mut a));
    assert!(s.wait(&mut a), "already waiting");
    let mut b = s.accept(0).unwrap();
    assert!(s.wait(&mut b));
    let mut c = s.accept(0).unwrap();
    assert!(!s.wait(&mut c), "the pool of 2 is full");
    let mut d = s.accept(0).unwrap();
    assert_eq!(s.counts(), (1, 2, 0));
    for h in [&mut a, &mut b, &mut c, &mut d] {
        s.release(h);
    }
    s.release(&mut a);
    assert_eq!(s.counts(), (0, 0, 0));
}

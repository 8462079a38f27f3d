//! The statements a login sends, counted in the server's own log
//! (`log_statement = all`), on a host's login role: a pair's first login
//! reserves in one (the checked write of the plan from nothing stored,
//! with the user's row in it), a repeated one in one (the write, from what
//! the host remembers), and a success in one. Neither guess ever costs a
//! count: another host's failures are seen (two statements then) and the
//! lock holds. Fails on 0.4.0, whose logins read the user's row on its own
//! and read the ledger before every write (four statements per success),
//! and on 0.4.1, whose first logins read before they wrote (three).

use std::path::Path;

use super::scratch::Cluster;
use super::*;
use crate::common::config::{Lockout, Postgres};
use crate::common::ledger::{Origin, charge_for};

fn store(url: &str, mode: OpenMode) -> PgStore {
    PgStore::open(&PgSettings::new(Path::new(url), &Postgres::default()), mode).unwrap()
}

/// The statements the server ran since `from` (a length of its log).
fn statements_since(cluster: &Cluster, from: usize) -> Vec<String> {
    let log = std::fs::read_to_string(cluster.dir().join("log")).unwrap();
    // An entry runs on to the next line that starts with a timestamp.
    let mut entries: Vec<String> = Vec::new();
    for line in log[from..].lines() {
        match entries.last_mut() {
            Some(entry) if !line.starts_with("20") => {
                entry.push('\n');
                entry.push_str(line);
            }
            _ => entries.push(line.to_owned()),
        }
    }
    entries.retain(|e| e.contains("LOG:  execute") || e.contains("LOG:  statement:"));
    entries
}

fn log_len(cluster: &Cluster) -> usize {
    std::fs::metadata(cluster.dir().join("log")).unwrap().len() as usize
}

#[test]
fn a_repeated_login_reserves_in_one_statement_and_a_stale_memory_counts() {
    let cluster = Cluster::start();
    let url = cluster.database("trips");
    let mut admin = store(&url, OpenMode::CreateIfMissing);
    admin.add_user("alice", "$argon2id$alice", 1).unwrap();
    admin.put_dummy(&super::tests::dummy_record(), 1).unwrap();
    cluster.sql("postgres", "CREATE ROLE host1 LOGIN IN ROLE veil_login");
    cluster.sql("trips", "ALTER DATABASE trips SET log_statement = 'all'");
    let mut host = store(&url.replacen("veil@", "host1@", 1), OpenMode::MustExist);

    let limits = Limits::from(&Lockout::default());
    let origin = Origin::from_root("198.51.100.7", 0, "sshd");
    let charge = || charge_for(&limits, "alice", &origin);
    let mut now = 1_000;
    let login = |host: &mut PgStore, now: i64| {
        let from = log_len(&cluster);
        let reserved = host
            .reserve_and_look_up(&limits, charge(), "alice", now)
            .unwrap();
        let reserve = statements_since(&cluster, from);
        assert!(reserved.reservation.refused.is_none());
        let (row, found) = reserved.row.unwrap().unwrap();
        assert!(found && row.phc == "$argon2id$alice");
        let from = log_len(&cluster);
        let success = Success {
            user: "alice",
            step: None,
            reservation: &reserved.reservation,
            new_hash: None,
            recovery: None,
            now,
        };
        assert!(host.commit_success(&limits, &success).unwrap());
        (reserve, statements_since(&cluster, from))
    };
    let (first, success) = login(&mut host, now);
    assert_eq!(
        first.len(),
        1,
        "a first login: the write, planned from nothing stored\n{first:#?}"
    );
    assert!(first[0].contains("veil_reserve"), "{first:#?}");
    assert_eq!(success.len(), 1, "{success:#?}");
    for _ in 0..3 {
        now += 60;
        let (again, success) = login(&mut host, now);
        assert_eq!(again.len(), 1, "a repeated login: the write\n{again:#?}");
        assert!(again[0].contains("veil_reserve"), "{again:#?}");
        assert_eq!(success.len(), 1, "{success:#?}");
    }

    // Another host (its own memory) fails the pair up to its limit: this
    // host's memory is stale, and its next attempt is refused all the same.
    let mut other = store(&url, OpenMode::MustExist);
    let deny = limits.limit(crate::common::ledger::KeyKind::UserSource);
    for _ in 0..deny {
        now += 1;
        let r = other.reserve(&limits, charge(), now).unwrap();
        assert!(r.refused.is_none());
    }
    now += 1;
    let from = log_len(&cluster);
    let refused = host
        .reserve_and_look_up(&limits, charge(), "alice", now)
        .unwrap();
    assert!(
        refused.reservation.refused.is_some(),
        "the other host's failures hold through a stale memory"
    );
    assert!(
        refused.row.unwrap().unwrap().1,
        "the user's row all the same"
    );
    assert!(statements_since(&cluster, from).len() >= 2);

    // A pair this host never saw, that another host failed up to one short
    // of its limit: the plan from nothing stored is refused, the next is
    // made from the other host's counts, and this attempt locks the key.
    let elsewhere = Origin::from_root("203.0.113.9", 0, "sshd");
    let charge = || charge_for(&limits, "alice", &elsewhere);
    for _ in 0..deny - 1 {
        now += 1;
        let r = other.reserve(&limits, charge(), now).unwrap();
        assert!(r.refused.is_none() && r.locking.is_empty());
    }
    now += 1;
    let from = log_len(&cluster);
    let counted = host
        .reserve_and_look_up(&limits, charge(), "alice", now)
        .unwrap();
    assert!(counted.reservation.refused.is_none());
    assert!(
        !counted.reservation.locking.is_empty(),
        "the other host's {} failures and this one lock the key",
        deny - 1
    );
    assert_eq!(
        statements_since(&cluster, from).len(),
        2,
        "the refused guess, the write from what was there"
    );
}

//! Least privilege on a real server (schema 4): a host whose role is a
//! member of `veil_login` runs the whole login path and cannot change a
//! credential; the self-service functions (role `veil_self_service`)
//! refuse what veild would. Every case fails on the old main, where there
//! were no such roles (`CREATE ROLE ... IN ROLE veil_login` errs) and the
//! one role could write everything.

use std::path::Path;

use super::scratch::Cluster;
use super::*;
use crate::common::config::{Lockout, Postgres};
use crate::common::ledger::{Origin, charge_for};
use crate::common::recovery;
use crate::common::store::SYSTEM_ONLY_PHC;

const SECRET: &[u8] = b"0123456789abcdefghij";

fn open_as(url: &str, role: &str) -> PgStore {
    let url = url.replacen("veil@", &format!("{role}@"), 1);
    PgStore::open(
        &PgSettings::new(Path::new(&url), &Postgres::default()),
        OpenMode::MustExist,
    )
    .unwrap_or_else(|e| panic!("open as {role}: {e}"))
}

/// Raw SQL as `role`: its error's SQLSTATE, if any.
fn sql_as(cluster: &Cluster, database: &str, role: &str, sql: &str) -> Option<String> {
    let url = cluster
        .url(database)
        .replacen("veil@", &format!("{role}@"), 1);
    let mut c = postgres::Client::connect(&url, postgres::NoTls).unwrap();
    c.batch_execute(sql)
        .err()
        .map(|e| e.code().map_or(e.to_string(), |c| c.code().to_owned()))
}

fn denied<T: std::fmt::Debug>(what: &str, r: Result<T, StoreError>) {
    match r {
        // The store's answer, not its silence: `outage = "local"` never
        // decides such a login on a host's copy.
        Err(e) if e.is_pg_permission_denied() && !e.is_outage() => {}
        other => panic!("{what}: want permission denied, got {other:?}"),
    }
}

fn success(step: i64, reservation: &Reservation) -> Success<'_> {
    Success {
        user: "alice",
        step: Some(step),
        reservation,
        new_hash: Some("$argon2id$rehashed"),
        recovery: None,
        now: 10,
    }
}

#[test]
fn a_login_role_logs_users_in_and_cannot_change_credentials() {
    let cluster = Cluster::start();
    let url = cluster.database("least");
    // The owner (the admin) makes the schema, the roles and the users.
    let mut admin = PgStore::open(
        &PgSettings::new(Path::new(&url), &Postgres::default()),
        OpenMode::CreateIfMissing,
    )
    .unwrap();
    cluster.sql(
        "postgres",
        "CREATE ROLE host1 LOGIN IN ROLE veil_login;
         CREATE ROLE host2 LOGIN IN ROLE veil_login, veil_self_service",
    );
    admin.add_user("alice", "$argon2id$old", 1).unwrap();
    admin.set_totp_pending("alice", SECRET, 1).unwrap();
    admin.activate_totp("alice", 5, 1).unwrap();
    admin.add_user("sam", SYSTEM_ONLY_PHC, 1).unwrap();
    admin.add_user("nora", "$argon2id$nora", 1).unwrap();

    let mut host = open_as(&url, "host1");
    let limits = Limits::from(&Lockout {
        deny: 3,
        ..Lockout::default()
    });
    let dummy = UserRecord {
        phc: "$argon2id$dummy".into(),
        totp_secret: Some(Zeroizing::new(vec![7; 20])),
        totp_last_step: -1,
        recovery: None,
    };
    host.put_dummy(&dummy, 1).unwrap();
    assert!(!host.user_or_dummy("ghost").unwrap().unwrap().1);
    let (rec, found) = host.user_or_dummy("alice").unwrap().unwrap();
    assert!(found && rec.phc == "$argon2id$old" && rec.totp_secret.is_some());

    // A success with a code's step (and a rehash, which this role skips).
    let charge = || charge_for(&limits, "alice", &Origin::Console);
    let reservation = host.reserve(&limits, charge(), 10).unwrap();
    assert!(reservation.refused.is_none());
    assert!(
        host.commit_success(&limits, &success(100, &reservation))
            .unwrap()
    );
    // The same code again: a replay, refused by the compare-and-set.
    let again = host.reserve(&limits, charge(), 11).unwrap();
    assert!(!host.commit_success(&limits, &success(100, &again)).unwrap());
    let rec = admin.user("alice").unwrap().unwrap();
    assert_eq!(rec.totp_last_step, 100);
    assert_eq!(rec.phc, "$argon2id$old", "a login role does not rehash");
    // Failures lock (deny = 3): the replay's reservation and two more
    // count, the fourth is refused.
    for now in 12..14 {
        assert!(
            host.reserve(&limits, charge(), now)
                .unwrap()
                .refused
                .is_none()
        );
    }
    assert!(
        host.reserve(&limits, charge(), 14)
            .unwrap()
            .refused
            .is_some()
    );
    host.prune(&limits, 15).unwrap();
    // What `veilctl enable` reads on a host: who could log in.
    let listed = host.list_users().unwrap();
    assert_eq!(listed.len(), 3);
    assert!(listed[0].name == "alice" && listed[0].totp && !listed[0].totp_pending);
    host.fleet_now(15).unwrap();

    // No credential write, through the store or in raw SQL.
    denied("add_user", host.add_user("mallory", "$argon2id$m", 1));
    denied("set_password", host.set_password("alice", "$argon2id$m", 1));
    denied("delete_user", host.delete_user("nora"));
    denied(
        "set_totp_pending",
        host.set_totp_pending("alice", SECRET, 1),
    );
    denied("activate_totp", host.activate_totp("alice", 1, 1));
    denied("disable_totp", host.disable_totp("alice", 1));
    denied("set_recovery", host.set_recovery("alice", None, 1));
    denied(
        "self_passwd",
        host.self_passwd("nora", "$argon2id$nora", "$argon2id$m", 1),
    );
    for sql in [
        "UPDATE users SET phc = 'x' WHERE name = 'alice'",
        "UPDATE users SET totp_secret = 'x' WHERE name = 'alice'",
        "INSERT INTO users (name, phc, totp_secret, created_at, updated_at)
             VALUES ('mallory', 'x', 'secret', 0, 0)",
        "DELETE FROM users WHERE name = 'alice'",
        "SELECT totp_pending FROM users",
        "SELECT veil_self_passwd('nora', '$argon2id$nora', '$argon2id$m', 1)",
        "SELECT veil_grant_roles()",
    ] {
        assert_eq!(
            sql_as(&cluster, "least", "host1", sql).as_deref(),
            Some("42501"),
            "{sql}"
        );
    }
    assert_eq!(admin.user("nora").unwrap().unwrap().phc, "$argon2id$nora");

    // Self-service, for a host granted it: only what veild would do.
    let mut selfs = open_as(&url, "host2");
    assert!(
        !selfs
            .self_passwd("nora", "$argon2id$stale", "$argon2id$m", 2)
            .unwrap(),
        "names a hash that is not the current one"
    );
    assert!(
        !selfs
            .self_passwd("nora", "$argon2id$nora", "plain", 2)
            .unwrap(),
        "not an argon2id hash"
    );
    assert!(
        !selfs
            .self_passwd("sam", SYSTEM_ONLY_PHC, "$argon2id$m", 2)
            .unwrap(),
        "a system account's password is the system's"
    );
    assert!(
        !selfs
            .self_passwd("", "$argon2id$dummy", "$argon2id$m", 2)
            .unwrap(),
        "the dummy"
    );
    assert!(
        selfs
            .self_passwd("nora", "$argon2id$nora", "$argon2id$new", 2)
            .unwrap()
    );
    assert_eq!(admin.user("nora").unwrap().unwrap().phc, "$argon2id$new");

    assert!(
        matches!(
            selfs.self_enrol("mallory", SECRET, 3, false, 3),
            Err(StoreError::NoSuchUser(_))
        ),
        "no row is made for a veil-password user"
    );
    assert!(admin.user("mallory").unwrap().is_none());
    assert!(
        selfs.self_enrol("nora", b"short", 3, false, 3).is_err(),
        "a secret of under 16 bytes"
    );
    selfs.self_enrol("carl", SECRET, 3, true, 3).unwrap();
    let carl = admin.user("carl").unwrap().unwrap();
    assert_eq!(
        carl.phc, SYSTEM_ONLY_PHC,
        "a system account's row: no password"
    );
    assert_eq!(carl.totp_last_step, 3);

    let codes = recovery::generate().unwrap();
    assert!(
        !selfs.self_recovery("nora", &codes.set, 4).unwrap(),
        "no active secret"
    );
    assert!(selfs.self_recovery("carl", &codes.set, 4).unwrap());
    assert!(admin.user("carl").unwrap().unwrap().recovery.is_some());
    // The dummy's function writes the dummy's row, and only it.
    selfs
        .put_dummy(
            &UserRecord {
                phc: "$argon2id$other$".into(),
                ..dummy
            },
            5,
        )
        .unwrap();
    assert_eq!(admin.user("alice").unwrap().unwrap().phc, "$argon2id$old");
}

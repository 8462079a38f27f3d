//! The PostgreSQL back end on a throwaway cluster: schema, users, TOTP
//! state, the step's compare-and-set, a failed server and its return,
//! and what may never show (passwords in URLs, a readable password file).
//! One cluster for all cases (initdb costs seconds), a database per case.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use super::connect::{read_password_file_owned, tls_builder};
use super::schema::{MIGRATIONS, READERS_FROM};

use super::scratch::Cluster;
use super::*;
use crate::common::config::{Lockout, Postgres};
use crate::common::ledger::{KeyKind, Origin, charge_for};

fn settings(url: &str) -> PgSettings {
    PgSettings::new(Path::new(url), &Postgres::default())
}

/// A dummy row's record (its hash is no real hash: nothing verifies it here).
pub(super) fn dummy_record() -> UserRecord {
    UserRecord {
        phc: "$argon2id$dummy".into(),
        totp_secret: Some(Zeroizing::new(vec![7; 20])),
        totp_last_step: -1,
        recovery: None,
    }
}

fn open(url: &str) -> PgStore {
    PgStore::open(&settings(url), OpenMode::CreateIfMissing).unwrap()
}

fn schema_is_made_once_and_refused_when_missing_or_newer(cluster: &Cluster) {
    let url = cluster.database("schema");
    assert!(matches!(
        PgStore::open(&settings(&url), OpenMode::MustExist),
        Err(StoreError::Missing { .. })
    ));
    let store = open(&url);
    assert_eq!(schema_version(&store).unwrap(), MIGRATIONS.len() as i64);
    drop(store);
    PgStore::open(&settings(&url), OpenMode::MustExist).unwrap();
    // A store left at version 1 gets the later migrations.
    cluster.sql(
        "schema",
        "DROP FUNCTION veil_lock_read; DROP FUNCTION veil_reserve; DROP FUNCTION veil_success;
         DROP FUNCTION veil_put_dummy; DROP FUNCTION veil_self_passwd;
         DROP FUNCTION veil_self_enrol; DROP FUNCTION veil_self_recovery;
         DROP FUNCTION veil_grant_roles; DROP FUNCTION veil_list_users;
         DROP TABLE fresh_code_sessions;
         ALTER TABLE users DROP COLUMN recovery_key, DROP COLUMN recovery_hashes,
                           DROP COLUMN recovery_used;
         ALTER TABLE veil_schema DROP COLUMN functions_generation,
                                 DROP COLUMN functions_sha256;
         UPDATE veil_schema SET version = 1",
    );
    let mut store = PgStore::open(&settings(&url), OpenMode::MustExist).unwrap();
    assert_eq!(schema_version(&store).unwrap(), MIGRATIONS.len() as i64);
    let limits = Limits::from(&Lockout::default());
    store
        .reserve(&limits, charge_for(&limits, "alice", &Origin::Console), 1)
        .unwrap();
    drop(store);
    cluster.sql(
        "schema",
        "UPDATE veil_schema SET version = 99, readers_from = 99",
    );
    assert!(matches!(
        PgStore::open(&settings(&url), OpenMode::MustExist),
        Err(StoreError::TooNew { found: 99, .. })
    ));
    rolling_upgrade_readers(cluster);
    let foreign = cluster.database("other");
    cluster.sql("other", "CREATE TABLE users (x int)");
    assert!(matches!(
        PgStore::open(&settings(&foreign), OpenMode::CreateIfMissing),
        Err(StoreError::Corrupt { .. })
    ));
}

/// A newer veil's migration that older hosts can still run on leaves them
/// serving logins (a rolling upgrade); one that they cannot is refused. A
/// store made before 0.2.0 (no `readers_from`) gets it on open. Fails on
/// the old main, which refused every newer schema.
fn rolling_upgrade_readers(cluster: &Cluster) {
    let url = cluster.database("rolling");
    drop(open(&url));
    let supported = MIGRATIONS.len() as i64;
    let readers = || -> i64 {
        let mut c = postgres::Client::connect(&cluster.url("rolling"), postgres::NoTls).unwrap();
        i64::from(
            c.query_one("SELECT readers_from FROM veil_schema", &[])
                .unwrap()
                .get::<_, i32>(0),
        )
    };
    // Schema 4 (roles, grants, functions) is additive: schema-3 hosts run on it.
    let oldest = READERS_FROM.iter().copied().max().unwrap();
    assert_eq!(oldest, 3);
    assert_eq!(readers(), oldest);
    // A store from before 0.2.0: the column is added, and set.
    cluster.sql(
        "rolling",
        "ALTER TABLE veil_schema DROP COLUMN readers_from",
    );
    drop(PgStore::open(&settings(&url), OpenMode::MustExist).unwrap());
    assert_eq!(readers(), oldest);
    // A later release migrated, and says this one may still run on it.
    cluster.sql(
        "rolling",
        &format!("UPDATE veil_schema SET version = {}", supported + 1),
    );
    let mut store = PgStore::open(&settings(&url), OpenMode::MustExist).unwrap();
    let limits = Limits::from(&Lockout::default());
    assert!(
        store
            .reserve(&limits, charge_for(&limits, "alice", &Origin::Console), 1)
            .unwrap()
            .refused
            .is_none()
    );
    assert_eq!(
        schema_version(&store).unwrap(),
        supported + 1,
        "not migrated back"
    );
    drop(store);
    // One that it cannot run on.
    cluster.sql(
        "rolling",
        &format!("UPDATE veil_schema SET readers_from = {}", supported + 1),
    );
    assert!(matches!(
        PgStore::open(&settings(&url), OpenMode::MustExist),
        Err(StoreError::TooNew { .. })
    ));
}

fn users_dummy_and_totp(cluster: &Cluster) {
    let mut store = open(&cluster.database("users"));
    store.add_user("alice", "$argon2id$x", 1).unwrap();
    assert!(matches!(
        store.add_user("alice", "$argon2id$y", 2),
        Err(StoreError::UserExists(_))
    ));
    store.set_password("alice", "$argon2id$z", 3).unwrap();
    assert_eq!(store.user("alice").unwrap().unwrap().phc, "$argon2id$z");
    assert!(matches!(
        store.set_password("bob", "x", 3),
        Err(StoreError::NoSuchUser(_))
    ));
    assert!(
        store.user_or_dummy("ghost").unwrap().is_none(),
        "no dummy yet"
    );
    let dummy = dummy_record();
    store.put_dummy(&dummy, 1).unwrap();
    store.put_dummy(&dummy, 2).unwrap();
    let (row, found) = store.user_or_dummy("ghost").unwrap().unwrap();
    assert!(!found);
    assert_eq!(row.phc, "$argon2id$dummy");
    let (row, found) = store.user_or_dummy("alice").unwrap().unwrap();
    assert!(found);
    assert_eq!(row.phc, "$argon2id$z");
    assert!(store.user("").unwrap().is_none());
    assert_eq!(store.list_users().unwrap().len(), 1, "the dummy is no user");

    store
        .set_totp_pending("alice", b"0123456789abcdefghij", 2)
        .unwrap();
    assert!(store.user("alice").unwrap().unwrap().totp_secret.is_none());
    assert_eq!(
        store
            .totp_pending("alice")
            .unwrap()
            .as_deref()
            .map(Vec::as_slice),
        Some(&b"0123456789abcdefghij"[..])
    );
    store.activate_totp("alice", 100, 3).unwrap();
    let rec = store.user("alice").unwrap().unwrap();
    assert_eq!(rec.totp_last_step, 100);
    assert!(store.activate_totp("alice", 101, 4).is_err());
    let listed = &store.list_users().unwrap()[0];
    assert!(listed.totp && !listed.totp_pending);
    store.disable_totp("alice", 5).unwrap();
    assert!(store.user("alice").unwrap().unwrap().totp_secret.is_none());
    store.delete_user("alice").unwrap();
    assert!(store.user("alice").unwrap().is_none());
    assert!(store.still_usable());
}

/// The login's reservation reads the user's row (or the dummy's) in its
/// first statement: the same record `user_or_dummy` gives, the same
/// reservation `reserve` makes, and no row when the dummy is missing.
fn the_reservations_read_carries_the_users_row(cluster: &Cluster) {
    let mut store = open(&cluster.database("reserve_look_up"));
    let limits = Limits::from(&Lockout::default());
    let origin = Origin::from_root("198.51.100.7", 0, "sshd");
    let charge = |user: &str| charge_for(&limits, user, &origin);
    let no_dummy = store
        .reserve_and_look_up(&limits, charge("ghost"), "ghost", 10)
        .unwrap();
    assert!(no_dummy.row.unwrap().is_none(), "no dummy row yet");
    assert!(no_dummy.reservation.refused.is_none());
    store.add_user("alice", "$argon2id$alice", 1).unwrap();
    store.set_totp_pending("alice", &[5; 20], 1).unwrap();
    store.activate_totp("alice", 77, 1).unwrap();
    let codes = crate::common::recovery::generate().unwrap();
    store.set_recovery("alice", Some(&codes.set), 1).unwrap();
    let dummy = dummy_record();
    store.put_dummy(&dummy, 1).unwrap();
    for (name, own) in [("alice", true), ("ghost", false)] {
        let (alone, found) = store.user_or_dummy(name).unwrap().unwrap();
        let both = store
            .reserve_and_look_up(&limits, charge(name), name, 20)
            .unwrap();
        let (row, row_found) = both.row.unwrap().unwrap();
        assert_eq!((row_found, found), (own, own), "{name}");
        assert_eq!(row.phc, alone.phc, "{name}");
        assert_eq!(row.totp_secret, alone.totp_secret, "{name}");
        assert_eq!(row.totp_last_step, alone.totp_last_step, "{name}");
        assert_eq!(
            row.recovery.map(|r| r.hashes_blob()),
            alone.recovery.map(|r| r.hashes_blob()),
            "{name}"
        );
        // The same reservation as reserve's on a fresh twin of the keys.
        let twin = store
            .reserve(&limits, charge(&format!("{name}2")), 20)
            .unwrap();
        assert_eq!(
            (
                both.reservation.refused.is_none(),
                both.reservation.keys.len()
            ),
            (twin.refused.is_none(), twin.keys.len()),
            "{name}"
        );
    }
    // Counted like any reservation: the limit still holds through it.
    let refused = (0..limits.limit(KeyKind::UserSource) + 1)
        .map(|i| {
            store
                .reserve_and_look_up(&limits, charge("ghost"), "ghost", 30 + i)
                .unwrap()
                .reservation
        })
        .last()
        .unwrap();
    assert!(
        refused.refused.is_some(),
        "the key locked through reserve_and_look_up"
    );
}

/// Two connections (two hosts) racing one code: it is taken once.
fn a_time_step_is_accepted_once_across_connections(cluster: &Cluster) {
    let url = cluster.database("steps");
    let mut a = open(&url);
    let mut b = open(&url);
    a.add_user("alice", "x", 1).unwrap();
    let limits = Limits::from(&Lockout::default());
    let reservation = a
        .reserve(&limits, charge_for(&limits, "alice", &Origin::Console), 1)
        .unwrap();
    let success = |step| Success {
        user: "alice",
        step: Some(step),
        reservation: &reservation,
        new_hash: None,
        recovery: None,
        now: 1,
    };
    assert!(a.commit_success(&limits, &success(10)).unwrap());
    assert!(!b.commit_success(&limits, &success(10)).unwrap());
    assert!(!b.commit_success(&limits, &success(9)).unwrap());
    assert!(b.commit_success(&limits, &success(11)).unwrap());
    assert!(!a.commit_success(&limits, &success(11)).unwrap());
}

fn a_stopped_server_fails_quickly_and_a_new_connection_recovers(cluster: &mut Cluster) {
    let url = cluster.database("outage");
    let mut store = open(&url);
    store.add_user("alice", "x", 1).unwrap();
    cluster.stop();
    let limits = Limits::from(&Lockout::default());
    let started = std::time::Instant::now();
    let err = store
        .reserve(&limits, charge_for(&limits, "alice", &Origin::Console), 1)
        .unwrap_err();
    assert!(matches!(err, StoreError::Postgres { .. }), "{err}");
    // `outage = "local"` decides on the host's copy for these only.
    assert!(err.is_outage(), "{err}");
    assert!(!store.still_usable(), "an error drops the connection");
    let reopen = PgStore::open(&settings(&url), OpenMode::MustExist).unwrap_err();
    assert!(started.elapsed() < std::time::Duration::from_secs(3));
    assert!(
        reopen.to_string().contains("PostgreSQL postgresql://"),
        "{reopen}"
    );
    assert!(reopen.is_outage(), "{reopen}");
    cluster.start_again();
    let mut store = PgStore::open(&settings(&url), OpenMode::MustExist).unwrap();
    store
        .reserve(&limits, charge_for(&limits, "alice", &Origin::Console), 2)
        .unwrap();
    assert!(store.still_usable());
}

fn a_read_only_server_denies_with_the_error_named(cluster: &Cluster) {
    let url = cluster.database("standby");
    let mut store = open(&url);
    cluster.sql(
        "postgres",
        "ALTER DATABASE standby SET default_transaction_read_only = on",
    );
    let mut store2 = PgStore::open(&settings(&url), OpenMode::MustExist).unwrap();
    let limits = Limits::from(&Lockout::default());
    let err = store2
        .reserve(&limits, charge_for(&limits, "alice", &Origin::Console), 1)
        .unwrap_err();
    assert!(err.to_string().contains("read-only"), "{err}");
    // The connection opened before keeps working until it fails too.
    store
        .reserve(&limits, charge_for(&limits, "alice", &Origin::Console), 1)
        .unwrap();
}

fn a_recovery_slot_is_taken_once_and_only_in_the_set_that_was_checked(cluster: &Cluster) {
    use crate::common::recovery;
    use crate::common::store::RecoveryUse;
    let url = cluster.database("recovery");
    let mut store = open(&url);
    let mut other_host = open(&url);
    store.add_user("alice", "x", 1).unwrap();
    assert!(store.user("alice").unwrap().unwrap().recovery.is_none());
    let new = recovery::generate().unwrap();
    store.set_recovery("alice", Some(&new.set), 2).unwrap();
    let stored = store.user("alice").unwrap().unwrap().recovery.unwrap();
    assert_eq!(stored.left(), 10);
    assert_eq!(stored.hashes, new.set.hashes);
    let limits = Limits::from(&Lockout::default());
    let reservation = store
        .reserve(&limits, charge_for(&limits, "alice", &Origin::Console), 1)
        .unwrap();
    let other_key = recovery::generate().unwrap().set.key;
    let success = |slot, key| Success {
        user: "alice",
        step: None,
        reservation: &reservation,
        new_hash: None,
        recovery: Some(RecoveryUse { slot, key }),
        now: 3,
    };
    assert!(
        store
            .commit_success(&limits, &success(3, &new.set.key))
            .unwrap()
    );
    assert!(
        !other_host
            .commit_success(&limits, &success(3, &new.set.key))
            .unwrap(),
        "a slot is taken once, fleet-wide"
    );
    assert!(
        !store
            .commit_success(&limits, &success(4, &other_key))
            .unwrap()
    );
    assert!(
        other_host
            .commit_success(&limits, &success(4, &new.set.key))
            .unwrap()
    );
    let stored = store.user("alice").unwrap().unwrap().recovery.unwrap();
    assert_eq!((stored.left(), stored.used), (8, 0b11000));
    let (row, found) = {
        store
            .put_dummy(
                &UserRecord {
                    phc: "d".into(),
                    totp_secret: None,
                    totp_last_step: -1,
                    recovery: Some(recovery::dummy().unwrap()),
                },
                4,
            )
            .unwrap();
        store.user_or_dummy("ghost").unwrap().unwrap()
    };
    assert!(!found && row.recovery.is_some(), "the dummy has a set too");
    store.set_recovery("alice", None, 4).unwrap();
    assert!(store.user("alice").unwrap().unwrap().recovery.is_none());
    assert!(matches!(
        store.set_recovery("ghost", Some(&new.set), 5),
        Err(StoreError::NoSuchUser(_))
    ));
    assert!(matches!(
        store.set_recovery("", Some(&new.set), 5),
        Err(StoreError::NoSuchUser(_))
    ));
}

/// The path a reservation falls back to when its optimistic tries keep
/// being overtaken (lock, then read): alone, it too never evaluates more
/// than `deny` of many concurrent guesses.
fn the_locked_reservation_keeps_the_limit(cluster: &Cluster) {
    let url = cluster.database("locked_path");
    drop(open(&url));
    let limits = Limits::from(&Lockout {
        deny: 3,
        ..Lockout::default()
    });
    let evaluated = std::sync::atomic::AtomicUsize::new(0);
    std::thread::scope(|scope| {
        for _ in 0..8 {
            scope.spawn(|| {
                let store = open(&url);
                for _ in 0..5 {
                    let charge = charge_for(
                        &limits,
                        "target",
                        &Origin::from_root("192.0.2.1", 0, "sshd"),
                    );
                    let r = store
                        .with(|c, st| reserve::reserve_locked(c, st, &limits, charge, 1000))
                        .unwrap();
                    if r.refused.is_none() {
                        evaluated.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                    }
                }
            });
        }
    });
    assert_eq!(evaluated.into_inner(), 3);
}

/// A flood of a user's name from many sources holds the wide keys' locks;
/// the user's login from a known-good source takes only its own key's lock,
/// so it is not held up (on both paths), while a pair that is not
/// known-good waits for the wide keys until `lock_timeout`.
fn a_known_good_pair_does_not_wait_for_the_wide_keys(cluster: &Cluster) {
    let url = cluster.database("known_good_locks");
    let mut store = open(&url);
    let limits = Limits::from(&Lockout::default());
    let now = 1_000_000;
    let charge = |user: &str| charge_for(&limits, user, &Origin::from_root("192.0.2.7", 0, "sshd"));
    store
        .client
        .borrow_mut()
        .execute(
            "INSERT INTO known_good (username, source, last_success)
             VALUES ('alice', '192.0.2.7', $1)",
            &[&(now - 60)],
        )
        .unwrap();
    // Another host, mid-attempt, holding the wide keys of alice and of bob.
    let wide: Vec<_> = [charge("alice"), charge("bob")]
        .into_iter()
        .flat_map(|c| c.keys)
        .filter(|k| matches!(k.kind, KeyKind::UserRemote | KeyKind::Source))
        .collect();
    assert!(!wide.is_empty(), "a remote charge has wide keys");
    let (kinds, users, sources) = (
        wide.iter().map(|k| k.kind.as_str()).collect::<Vec<_>>(),
        wide.iter().map(|k| k.user.clone()).collect::<Vec<_>>(),
        wide.iter().map(|k| k.source.clone()).collect::<Vec<_>>(),
    );
    let mut other = postgres::Client::connect(&url, postgres::NoTls).unwrap();
    let mut tx = other.transaction().unwrap();
    tx.query(
        "SELECT * FROM veil_lock_read($1::text[], $2::text[], $3::text[], '', '')",
        &[&kinds, &users, &sources],
    )
    .unwrap();
    let r = store.reserve(&limits, charge("alice"), now).unwrap();
    assert!(r.refused.is_none());
    let r = store
        .with(|c, st| reserve::reserve_locked(c, st, &limits, charge("alice"), now))
        .unwrap();
    assert!(r.refused.is_none());
    let err = store
        .reserve(&limits, charge("bob"), now)
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("55P03") || err.contains("57014"),
        "lock or statement timeout: {err}"
    );
    tx.commit().unwrap();
    let mut store = open(&url);
    assert!(
        store
            .reserve(&limits, charge("bob"), now)
            .unwrap()
            .refused
            .is_none()
    );
}

#[test]
fn the_postgresql_store_on_a_real_server() {
    let mut cluster = Cluster::start();
    schema_is_made_once_and_refused_when_missing_or_newer(&cluster);
    users_dummy_and_totp(&cluster);
    the_reservations_read_carries_the_users_row(&cluster);
    a_time_step_is_accepted_once_across_connections(&cluster);
    a_recovery_slot_is_taken_once_and_only_in_the_set_that_was_checked(&cluster);
    the_locked_reservation_keeps_the_limit(&cluster);
    a_known_good_pair_does_not_wait_for_the_wide_keys(&cluster);
    a_read_only_server_denies_with_the_error_named(&cluster);
    a_password_file_logs_in_a_role_that_needs_one(&cluster);
    a_roles_other_isolation_and_durability_are_overridden(&cluster);
    the_shared_dummy_is_rewritten_only_for_other_parameters(&cluster);
    a_copy_takes_the_logins_key_locks_and_keeps_the_window_of_its_failures(&cluster);
    a_stopped_server_fails_quickly_and_a_new_connection_recovers(&mut cluster);
}

/// verify-full for real: TLS on loopback with a certificate for
/// `localhost`; the wrong CA and the wrong name are both refused.
#[test]
fn tls_verify_full_checks_the_ca_and_the_name() {
    let mut cluster = Cluster::start();
    let (port, ca) = cluster.serve_tls();
    let pg = Postgres {
        ca_file: Some(ca.clone()),
        ..Postgres::default()
    };
    let url = format!("postgresql://veil@localhost:{port}/veil");
    check_config(Path::new(&url), &pg).unwrap();
    let store = PgStore::open(
        &PgSettings::new(Path::new(&url), &pg),
        OpenMode::CreateIfMissing,
    )
    .unwrap();
    let ssl: bool = store
        .client
        .borrow_mut()
        .query_one(
            "SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()",
            &[],
        )
        .unwrap()
        .get(0);
    assert!(ssl, "the connection is TLS");
    // Over TCP the server probes a silent veild within seconds too.
    let probes: Vec<String> = [
        "tcp_keepalives_idle",
        "tcp_keepalives_interval",
        "tcp_keepalives_count",
    ]
    .iter()
    .map(|name| {
        store
            .client
            .borrow_mut()
            .query_one(&format!("SHOW {name}"), &[])
            .unwrap()
            .get(0)
    })
    .collect();
    assert_eq!(probes, ["5", "2", "3"]);
    // The right certificate, but not for this name.
    let by_address = format!("postgresql://veil@127.0.0.1:{port}/veil");
    let err = PgStore::open(
        &PgSettings::new(Path::new(&by_address), &pg),
        OpenMode::MustExist,
    )
    .unwrap_err();
    assert!(err.to_string().contains("certificate"), "{err}");
    // Another CA.
    let other = cluster.dir().join("other-ca.pem");
    let out = std::process::Command::new("openssl")
        .args(["req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout"])
        .arg(cluster.dir().join("other-ca.key"))
        .arg("-out")
        .arg(&other)
        .args(["-days", "2", "-subj", "/CN=someone else"])
        .output()
        .unwrap();
    assert!(out.status.success());
    let wrong = Postgres {
        ca_file: Some(other),
        ..Postgres::default()
    };
    let err = PgStore::open(
        &PgSettings::new(Path::new(&url), &wrong),
        OpenMode::MustExist,
    )
    .unwrap_err();
    assert!(err.to_string().contains("certificate"), "{err}");
    // A role with a password: SCRAM bound to the channel is used; a
    // server asking for the password in cleartext or md5 is refused.
    cluster.sql(
        "postgres",
        "CREATE ROLE veiltls SUPERUSER LOGIN PASSWORD 'Tls-s3cret-4';
         CREATE ROLE veilclear SUPERUSER LOGIN PASSWORD 'Tls-s3cret-4'",
    );
    let hba = cluster.dir().join("data/pg_hba.conf");
    let text = std::fs::read_to_string(&hba).unwrap();
    std::fs::write(
        &hba,
        format!(
            "hostssl all veiltls 127.0.0.1/32 scram-sha-256\n\
             hostssl all veilclear 127.0.0.1/32 password\n{text}"
        ),
    )
    .unwrap();
    cluster.sql("postgres", "SELECT pg_reload_conf()");
    let file = cluster.dir().join("tlspass");
    std::fs::write(&file, "Tls-s3cret-4\n").unwrap();
    std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o600)).unwrap();
    let with_password = Postgres {
        ca_file: Some(ca.clone()),
        password_file: Some(file),
        ..Postgres::default()
    };
    let as_role = |role: &str| {
        PgStore::open(
            &PgSettings::new(
                Path::new(&format!("postgresql://{role}@localhost:{port}/veil")),
                &with_password,
            ),
            OpenMode::MustExist,
        )
    };
    assert!(as_role("veiltls").unwrap().still_usable());
    let err = as_role("veilclear").unwrap_err();
    assert!(err.to_string().contains("channel binding"), "{err}");
    // No TLS at all is refused by the server (hostssl only).
    let plain = Postgres {
        sslmode: crate::common::config::PgSslMode::Disable,
        ..Postgres::default()
    };
    assert!(
        PgStore::open(
            &PgSettings::new(Path::new(&url), &plain),
            OpenMode::MustExist
        )
        .is_err()
    );
}

#[test]
fn passwords_in_urls_are_redacted_and_refused() {
    assert_eq!(
        redact("postgresql://veil:s3cret@db.example:5432/veil?application_name=x"),
        "postgresql://veil:***@db.example:5432/veil?application_name=x"
    );
    assert_eq!(
        redact("postgresql://db.example/veil?user=veil&password=s3cret"),
        "postgresql://db.example/veil?user=veil&password=***"
    );
    assert_eq!(
        redact("postgresql://veil@db.example/veil"),
        "postgresql://veil@db.example/veil"
    );
    let pg = Postgres {
        ca_file: Some("/etc/veil/ca.pem".into()),
        ..Postgres::default()
    };
    let crate::common::config::Invalid { key, message } =
        check_config(Path::new("postgresql://veil:s3cret@db.example/veil"), &pg).unwrap_err();
    assert_eq!(key, "database");
    assert!(!message.contains("s3cret"), "{message}");
    let settings = PgSettings::new(Path::new("postgresql://veil:s3cret@db.example/veil"), &pg);
    assert!(!format!("{settings:?}").contains("s3cret"));
    assert!(!settings.target().contains("s3cret"));
}

#[test]
fn tls_settings_are_checked_and_used() {
    let tcp = Path::new("postgresql://veil@db.example:5432/veil");
    let crate::common::config::Invalid { key, .. } =
        check_config(tcp, &Postgres::default()).unwrap_err();
    assert_eq!(
        key, "postgres.ca_file",
        "verify-full is the default and needs a CA"
    );
    let crate::common::config::Invalid { key, .. } = check_config(
        Path::new("postgresql://veil@db.example/veil?sslmode=require"),
        &Postgres::default(),
    )
    .unwrap_err();
    assert_eq!(key, "database");
    // A Unix socket needs no TLS.
    check_config(
        Path::new("postgresql://veil@%2Frun%2Fpostgresql/veil"),
        &Postgres::default(),
    )
    .unwrap();
    // The CA file is really loaded: a missing one fails before connecting.
    let pg = Postgres {
        ca_file: Some("/nonexistent/veil-ca.pem".into()),
        connect_timeout_ms: 200,
        ..Postgres::default()
    };
    check_config(tcp, &pg).unwrap();
    let err = PgStore::open(&PgSettings::new(tcp, &pg), OpenMode::MustExist).unwrap_err();
    assert!(
        err.to_string().contains("/nonexistent/veil-ca.pem"),
        "{err}"
    );
}

/// A role or database set to serializable and asynchronous commit: the
/// sessions are read committed and commit synchronously all the same, and
/// reservations are made (serializable would fail them under contention).
fn a_roles_other_isolation_and_durability_are_overridden(cluster: &Cluster) {
    let url = cluster.database("iso");
    cluster.sql(
        "postgres",
        "ALTER ROLE veil IN DATABASE iso SET default_transaction_isolation = 'serializable';
         ALTER ROLE veil IN DATABASE iso SET synchronous_commit = off",
    );
    let mut store = open(&url);
    let settings: Vec<String> = {
        let mut client = store.client.borrow_mut();
        let mut tx = client.transaction().unwrap();
        let row = tx
            .query_one(
                "SELECT current_setting('transaction_isolation'),
                        current_setting('synchronous_commit')",
                &[],
            )
            .unwrap();
        let got = vec![row.get(0), row.get(1)];
        tx.rollback().unwrap();
        got
    };
    assert_eq!(settings, ["read committed", "on"]);
    let limits = Limits::from(&Lockout::default());
    store
        .reserve(&limits, charge_for(&limits, "alice", &Origin::Console), 1)
        .unwrap();
    // The role's own defaults are still there for other clients.
    let mut raw = postgres::Client::connect(&url, postgres::NoTls).unwrap();
    let iso: String = raw
        .query_one("SHOW default_transaction_isolation", &[])
        .unwrap()
        .get(0);
    assert_eq!(iso, "serializable", "the setting under test took effect");
}

/// `veilctl store copy` waits for a login holding a copied key (and keeps
/// that key's window with the failures it takes).
fn a_copy_takes_the_logins_key_locks_and_keeps_the_window_of_its_failures(cluster: &Cluster) {
    use crate::common::store::{Export, LedgerRow};
    let url = cluster.database("copy");
    let mut store = open(&url);
    let row = |failures, window_start| LedgerRow {
        kind: "user+source".into(),
        user: "alice".into(),
        source: "198.51.100.7".into(),
        failures,
        window_start,
        locked_until: 0,
        last_seen: window_start,
        locks: 0,
        locks_remembered_until: 0,
    };
    let export = |r: LedgerRow| Export {
        users: vec![],
        ledger: vec![r],
        known_good: vec![],
    };
    // A login on that key, mid-transaction on another host.
    let mut login = postgres::Client::connect(&url, postgres::NoTls).unwrap();
    let mut tx = login.transaction().unwrap();
    tx.query(
        "SELECT * FROM veil_lock_read(ARRAY['user+source'], ARRAY['alice'],
                                      ARRAY['198.51.100.7'], 'alice', '198.51.100.7')",
        &[],
    )
    .unwrap();
    let err = store.import(&export(row(5, 100))).unwrap_err();
    // It waited for the login's lock, until a timeout ended the wait.
    let text = err.to_string();
    assert!(
        text.contains("55P03") || text.contains("57014"),
        "lock or statement timeout: {err}"
    );
    tx.commit().unwrap();
    let mut store = open(&url);
    store.import(&export(row(5, 100))).unwrap();
    let window = |store: &PgStore| -> (i64, i64) {
        let r = store
            .client
            .borrow_mut()
            .query_one("SELECT failures, window_start FROM ledger", &[])
            .unwrap();
        (r.get(0), r.get(1))
    };
    store.import(&export(row(2, 50))).unwrap();
    assert_eq!(window(&store), (5, 100), "fewer failures: the window stays");
    store.import(&export(row(7, 30))).unwrap();
    assert_eq!(window(&store), (7, 30), "more failures bring their window");
}

/// Hosts with the same parameters leave the fleet's dummy row as the
/// first wrote it; a host with others rewrites it.
fn the_shared_dummy_is_rewritten_only_for_other_parameters(cluster: &Cluster) {
    let mut store = open(&cluster.database("dummy"));
    let dummy = |phc: &str| UserRecord {
        phc: phc.into(),
        totp_secret: Some(Zeroizing::new(vec![7; 20])),
        totp_last_step: -1,
        recovery: None,
    };
    let first = "$argon2id$v=19$m=256,t=1,p=1$c2FsdEE$aGFzaEE";
    store.put_dummy(&dummy(first), 1).unwrap();
    assert_eq!(store.dummy_phc().unwrap().as_deref(), Some(first));
    store
        .put_dummy(&dummy("$argon2id$v=19$m=256,t=1,p=1$c2FsdEI$aGFzaEI"), 2)
        .unwrap();
    assert_eq!(
        store.dummy_phc().unwrap().as_deref(),
        Some(first),
        "same parameters"
    );
    let other = "$argon2id$v=19$m=256,t=1,p=12$c2FsdEM$aGFzaEM";
    store.put_dummy(&dummy(other), 3).unwrap();
    assert_eq!(
        store.dummy_phc().unwrap().as_deref(),
        Some(other),
        "p=12 is not p=1"
    );
    assert_eq!(phc_params(other), "$argon2id$v=19$m=256,t=1,p=12$");
}

/// A role that needs its password gets it from the file, and from
/// nowhere else; no message shows it.
fn a_password_file_logs_in_a_role_that_needs_one(cluster: &Cluster) {
    cluster.database("withpw");
    cluster.sql(
        "postgres",
        "CREATE ROLE veilpw LOGIN PASSWORD 'Pw-s3cret-9'; GRANT ALL ON DATABASE withpw TO veilpw;
         ALTER DATABASE withpw OWNER TO veilpw",
    );
    let hba = cluster.dir().join("data/pg_hba.conf");
    let text = std::fs::read_to_string(&hba).unwrap();
    std::fs::write(&hba, format!("local all veilpw scram-sha-256\n{text}")).unwrap();
    cluster.sql("postgres", "SELECT pg_reload_conf()");
    let url = cluster.url("withpw").replacen("veil@", "veilpw@", 1);
    let file = cluster.dir().join("pgpass");
    std::fs::write(&file, "Pw-s3cret-9\n").unwrap();
    std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o600)).unwrap();
    let with = |password_file: Option<PathBuf>| {
        PgStore::open(
            &PgSettings::new(
                Path::new(&url),
                &Postgres {
                    password_file,
                    ..Postgres::default()
                },
            ),
            OpenMode::CreateIfMissing,
        )
    };
    let err = with(None).unwrap_err();
    assert!(err.to_string().contains("password"), "{err}");
    let store = with(Some(file.clone())).unwrap();
    assert!(store.still_usable());
    std::fs::write(&file, "wrong\n").unwrap();
    let err = with(Some(file.clone())).unwrap_err().to_string();
    assert!(
        !err.contains("Pw-s3cret-9") && !err.contains("wrong\n"),
        "{err}"
    );
    assert!(!format!("{store:?}").contains("Pw-s3cret-9"));
}

#[test]
fn a_password_file_must_be_private() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("pgpass");
    std::fs::write(&path, "s3cret\nignored\n").unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o640)).unwrap();
    let err = read_password_file(&path).unwrap_err().to_string();
    assert!(
        err.contains("chmod 600") && !err.contains("s3cret"),
        "{err}"
    );
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
    assert_eq!(read_password_file(&path).unwrap().as_str(), "s3cret");
}

/// Only ca_file's certificates are trusted: not the system's CAs (nor
/// `SSL_CERT_FILE`/`SSL_CERT_DIR`), which OpenSSL's default store loads.
#[test]
fn the_tls_store_holds_only_the_ca_file() {
    let dir = tempfile::tempdir().unwrap();
    let ca = dir.path().join("ca.pem");
    let out = std::process::Command::new("openssl")
        .args(["req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout"])
        .arg(dir.path().join("ca.key"))
        .arg("-out")
        .arg(&ca)
        .args(["-days", "2", "-subj", "/CN=veil only CA"])
        .output()
        .unwrap();
    assert!(out.status.success());
    let system = std::path::Path::new("/etc/ssl/certs/ca-certificates.crt");
    assert!(
        system.exists(),
        "the system CA bundle (package ca-certificates) is what this test keeps out"
    );
    let connector = tls_builder(&ca).unwrap().build();
    let trusted = connector.context().cert_store().all_certificates();
    let names: Vec<String> = trusted
        .iter()
        .map(|c| format!("{:?}", c.subject_name()))
        .collect();
    assert_eq!(trusted.len(), 1, "{names:?}");
    assert!(names[0].contains("veil only CA"), "{names:?}");
    let empty = dir.path().join("empty.pem");
    std::fs::write(&empty, "").unwrap();
    assert!(tls_builder(&empty).is_err());
}

#[test]
fn a_password_file_is_not_followed_through_a_symlink() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("pgpass");
    std::fs::write(&path, "s3cret\n").unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
    let link = dir.path().join("link");
    std::os::unix::fs::symlink(&path, &link).unwrap();
    let err = read_password_file(&link).unwrap_err().to_string();
    assert!(err.contains("symlink") && !err.contains("s3cret"), "{err}");
    assert!(read_password_file(dir.path()).is_err(), "a directory");
    let fifo = dir.path().join("fifo");
    nix::unistd::mkfifo(&fifo, nix::sys::stat::Mode::from_bits_truncate(0o600)).unwrap();
    let err = read_password_file(&fifo).unwrap_err().to_string();
    assert!(
        err.contains("not a file"),
        "a FIFO, refused without waiting: {err}"
    );
}

/// veild (the daemon's account) and veilctl (root) read one file: owned
/// by either it is accepted, by anyone else refused.
#[test]
#[ignore = "needs root (hands a file to another uid): scripts/test.sh runs it as root"]
fn a_password_file_owned_by_the_daemon_user_or_root_is_read() {
    assert!(nix::unistd::geteuid().is_root(), "run as root");
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("pgpass");
    std::fs::write(&path, "s3cret\n").unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
    assert_eq!(
        read_password_file_owned(&path, "v15bnone")
            .unwrap()
            .as_str(),
        "s3cret",
        "root's"
    );
    // `nobody` stands for the daemon's account here.
    let nobody = nix::unistd::User::from_name("nobody").unwrap().unwrap();
    nix::unistd::chown(&path, Some(nobody.uid), None).unwrap();
    assert_eq!(
        read_password_file_owned(&path, "nobody").unwrap().as_str(),
        "s3cret"
    );
    let err = read_password_file_owned(&path, "v15bnone")
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("owned by uid") && err.contains("chown v15bnone"),
        "{err}"
    );
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o640)).unwrap();
    assert!(read_password_file_owned(&path, "nobody").is_err());
}

/// The client probes a silent server within seconds, and gives up on
/// unacknowledged data after the timeouts.
#[test]
fn a_silent_server_is_noticed_in_seconds() {
    let config = settings("postgresql://veil@db.example/veil")
        .client_config()
        .unwrap();
    assert!(config.get_keepalives());
    assert_eq!(config.get_keepalives_idle(), Duration::from_secs(5));
    assert_eq!(
        config.get_keepalives_interval(),
        Some(Duration::from_secs(2))
    );
    assert_eq!(config.get_keepalives_retries(), Some(3));
    assert!(
        config
            .get_tcp_user_timeout()
            .is_some_and(|t| t.as_secs() <= 60)
    );
}

#[test]
fn a_clock_within_the_dead_band_keeps_its_own_time() {
    use super::fleet_offset;
    assert_eq!(fleet_offset(1_000.9, 1_000), 0);
    assert_eq!(fleet_offset(1_002.5, 1_000), 0);
    assert_eq!(fleet_offset(998.0, 1_000), 0);
    assert_eq!(fleet_offset(1_003.0, 1_000), 3);
    // A host a day fast is set back a day.
    assert_eq!(fleet_offset(1_000.0, 1_000 + 86_400), -86_400);
}

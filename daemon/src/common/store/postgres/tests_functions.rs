//! The functions file (`functions.sql`) on a real server: a fresh database
//! gets it; a database a 0.3.0 host left at schema 4 gets it in place of
//! migrations 2 to 4's functions, and both 0.3.0 hosts and this release's
//! keep logging users in; a higher generation is applied, a lower one
//! never over it, and the same one once. Every case fails on the old main,
//! which had no functions file nor `veil_schema.functions_generation`.

use std::path::Path;

use super::functions::{FUNCTIONS, Functions};
use super::schema::{MIGRATIONS, READERS_FROM, Release, THIS_RELEASE};
use super::scratch::Cluster;
use super::*;
use crate::common::config::{Lockout, Postgres};
use crate::common::ledger::{Origin, charge_for};

/// What a 0.3.0 host brings: the first four migrations, no functions file.
const RELEASE_0_3_0: Release<'static> = Release {
    migrations: MIGRATIONS.split_at(4).0,
    readers_from: READERS_FROM.split_at(4).0,
    functions: None,
};

fn open_as(url: &str, role: &str, release: &Release) -> Result<PgStore, StoreError> {
    let url = url.replacen("veil@", &format!("{role}@"), 1);
    let settings = PgSettings::new(Path::new(&url), &Postgres::default());
    PgStore::open_release(&settings, OpenMode::CreateIfMissing, release)
}

fn client(cluster: &Cluster, database: &str) -> postgres::Client {
    postgres::Client::connect(&cluster.url(database), postgres::NoTls).unwrap()
}

/// The database's schema version, functions generation and SHA-256.
fn recorded(cluster: &Cluster, database: &str) -> (i32, i32, Option<String>) {
    let row = client(cluster, database)
        .query_one(
            "SELECT version, functions_generation, functions_sha256 FROM veil_schema",
            &[],
        )
        .unwrap();
    (row.get(0), row.get(1), row.get(2))
}

/// Every veil function as a host sees it: signature, result, body (runs
/// of white space as one), definer, volatility, settings, owner, grants.
fn functions_of(cluster: &Cluster, database: &str) -> Vec<String> {
    client(cluster, database)
        .query(
            "SELECT concat_ws(' | ', p.oid::regprocedure::text, pg_get_function_result(p.oid),
                 regexp_replace(p.prosrc, '\\s+', ' ', 'g'), p.prosecdef, p.provolatile,
                 p.proconfig::text, pg_get_userbyid(p.proowner), p.proacl::text)
             FROM pg_proc p
             WHERE p.pronamespace = current_schema()::regnamespace AND p.proname LIKE 'veil\\_%'
             ORDER BY 1",
            &[],
        )
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect()
}

/// A function's body as stored, and its row's version (`xmin` changes
/// whenever `CREATE OR REPLACE` rewrites it).
fn body(cluster: &Cluster, database: &str, name: &str) -> (String, String) {
    let row = client(cluster, database)
        .query_one(
            "SELECT prosrc, xmin::text FROM pg_proc
             WHERE proname = $1 AND pronamespace = current_schema()::regnamespace",
            &[&name],
        )
        .unwrap();
    (row.get(0), row.get(1))
}

/// A login, failed then successful, through the store's login path.
fn logs_in(store: &mut PgStore, now: i64) {
    let limits = Limits::from(&Lockout::default());
    let charge = || charge_for(&limits, "alice", &Origin::Console);
    assert!(store.user_or_dummy("alice").unwrap().unwrap().1);
    let failed = store.reserve(&limits, charge(), now).unwrap();
    assert!(failed.refused.is_none());
    let reservation = store.reserve(&limits, charge(), now + 1).unwrap();
    let success = Success {
        user: "alice",
        step: None,
        reservation: &reservation,
        new_hash: None,
        recovery: None,
        now: now + 1,
    };
    assert!(store.commit_success(&limits, &success).unwrap());
}

/// A fresh database gets the file: recorded, and its bodies are the
/// file's (the login functions' differ from the migrations' in indent).
fn a_fresh_database_gets_the_functions(cluster: &Cluster) {
    let url = cluster.database("fresh");
    drop(open_as(&url, "veil", &THIS_RELEASE).unwrap());
    assert_eq!(
        recorded(cluster, "fresh"),
        (
            MIGRATIONS.len() as i32,
            FUNCTIONS.generation,
            Some(FUNCTIONS.sha256())
        )
    );
    let functions = functions_of(cluster, "fresh");
    assert_eq!(functions.len(), 9, "{functions:#?}");
    for name in ["veil_lock_read", "veil_reserve", "veil_success"] {
        let (src, _) = body(cluster, "fresh", name);
        assert!(FUNCTIONS.sql.contains(&src), "{name} is not the file's");
    }
}

/// 0.3.0 left the database at schema 4; this release migrates it and
/// replaces its functions with the same ones (the grants and the definer
/// functions' search path kept), and hosts of both keep logging in.
fn a_0_3_0_database_is_migrated_and_both_releases_log_in(cluster: &Cluster) {
    let url = cluster.database("old");
    let mut owner = open_as(&url, "veil", &RELEASE_0_3_0).unwrap();
    owner.add_user("alice", "$argon2id$alice", 1).unwrap();
    drop(owner);
    cluster.sql("postgres", "CREATE ROLE host1 LOGIN IN ROLE veil_login");
    let before = functions_of(cluster, "old");
    let (old_src, _) = body(cluster, "old", "veil_lock_read");
    assert!(!FUNCTIONS.sql.contains(&old_src), "0.3.0's indent");
    assert_eq!(
        client(cluster, "old")
            .query("SELECT functions_generation FROM veil_schema", &[])
            .map_err(|e| e.code().cloned())
            .err(),
        Some(Some(postgres::error::SqlState::UNDEFINED_COLUMN)),
        "schema 4 as 0.3.0 leaves it"
    );

    drop(open_as(&url, "veil", &THIS_RELEASE).unwrap());
    assert_eq!(
        recorded(cluster, "old"),
        (
            MIGRATIONS.len() as i32,
            FUNCTIONS.generation,
            Some(FUNCTIONS.sha256())
        )
    );
    let (new_src, _) = body(cluster, "old", "veil_lock_read");
    assert!(FUNCTIONS.sql.contains(&new_src), "replaced by the file's");
    let after = functions_of(cluster, "old");
    assert_eq!(after.len(), before.len());
    for (a, b) in after.iter().zip(&before) {
        assert_eq!(a, b, "what 0.3.0 hosts call");
    }

    // A host of this release on the login role (which may not replace a
    // function: the file is not applied again), and 0.3.0 hosts on the
    // owner's role and on the login role.
    logs_in(&mut open_as(&url, "host1", &THIS_RELEASE).unwrap(), 10);
    logs_in(&mut open_as(&url, "veil", &RELEASE_0_3_0).unwrap(), 20);
    logs_in(&mut open_as(&url, "host1", &RELEASE_0_3_0).unwrap(), 30);
    assert_eq!(
        recorded(cluster, "old").0,
        MIGRATIONS.len() as i32,
        "not migrated back"
    );
}

/// A later release's file (a higher generation) is applied; this one's is
/// then not put back over it, nor applied twice; a login role that would
/// have to apply one is told to run `veilctl store init`.
fn only_a_higher_generation_is_applied(cluster: &Cluster) {
    let url = cluster.database("gens");
    drop(open_as(&url, "veil", &THIS_RELEASE).unwrap());
    let (_, once) = body(cluster, "gens", "veil_lock_read");
    drop(open_as(&url, "veil", &THIS_RELEASE).unwrap());
    assert_eq!(
        body(cluster, "gens", "veil_lock_read").1,
        once,
        "the same file again: not replaced"
    );

    let marked = |mark: &str| {
        let sql = FUNCTIONS.sql.replacen(
            "-- The known-good pair first",
            &format!("-- {mark}\n    -- The known-good pair first"),
            1,
        );
        assert_ne!(sql, FUNCTIONS.sql);
        sql
    };
    let next = marked("generation two");
    let release = |sql: &'static str, generation| Release {
        migrations: MIGRATIONS,
        readers_from: &READERS_FROM,
        functions: Some(Functions { sql, generation }),
    };
    let two = release(next.leak(), FUNCTIONS.generation + 1);
    drop(open_as(&url, "veil", &two).unwrap());
    let applied = |c: &Cluster| body(c, "gens", "veil_lock_read").0;
    assert!(applied(cluster).contains("generation two"));
    assert_eq!(recorded(cluster, "gens").1, FUNCTIONS.generation + 1);

    // An older host (this release) starts: its file is older.
    drop(open_as(&url, "veil", &THIS_RELEASE).unwrap());
    assert!(applied(cluster).contains("generation two"), "put back");
    assert_eq!(recorded(cluster, "gens").1, FUNCTIONS.generation + 1);
    let sha = recorded(cluster, "gens").2;

    // A development build of the same generation with another text.
    let other = release(marked("two, edited").leak(), FUNCTIONS.generation + 1);
    drop(open_as(&url, "veil", &other).unwrap());
    assert!(applied(cluster).contains("two, edited"));
    assert_ne!(recorded(cluster, "gens").2, sha);

    cluster.sql("postgres", "CREATE ROLE host2 LOGIN IN ROLE veil_login");
    let three = release(marked("generation three").leak(), FUNCTIONS.generation + 2);
    let err = open_as(&url, "host2", &three).unwrap_err().to_string();
    assert!(
        err.contains("role host2 may not replace veil's functions")
            && err.contains("veilctl store init"),
        "{err}"
    );
    assert!(applied(cluster).contains("two, edited"), "rolled back");
}

#[test]
fn the_functions_file_on_a_real_server() {
    let cluster = Cluster::start();
    a_fresh_database_gets_the_functions(&cluster);
    a_0_3_0_database_is_migrated_and_both_releases_log_in(&cluster);
    only_a_higher_generation_is_applied(&cluster);
}

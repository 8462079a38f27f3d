//! What the real binaries say about versions: `--version` names the
//! package, the wire protocol and both database schemas; a database
//! written by a newer veil (a downgrade) is refused by veild and veilctl
//! with both schema versions and what to install, on SQLite and PostgreSQL.

use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use veil_daemon::common::store::{PgStore, SqliteStore};
use veil_proto::PROTOCOL_VERSION;
use veil_tests::postgres::{Cluster, host_config};
use veil_tests::{Veild, paths};

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// The refusal's text for a database at `found` when this veil speaks `supported`.
fn too_new(supported: i64, found: i64) -> String {
    format!(
        "this veil ({}) speaks schema {supported}; the database is at schema {found}, \
         written by a newer veil: install that release or newer",
        env!("CARGO_PKG_VERSION")
    )
}

/// Starts veild on `config` and waits for it to exit (it must refuse to
/// start); returns its status and stderr. Killed if it is still up after a
/// generous bound, so a veild that starts fails the test instead of hanging.
fn veild_refuses(config: &Path) -> Output {
    let mut child = Command::new(paths::veild())
        .arg("--config")
        .arg(config)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn veild");
    let deadline = Instant::now() + Duration::from_secs(30);
    while child.try_wait().expect("poll veild").is_none() {
        if Instant::now() > deadline {
            let _ = child.kill();
            break;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let out = child.wait_with_output().expect("wait for veild");
    assert!(
        !out.status.success() && out.status.code().is_some(),
        "veild did not refuse the newer database: {} {}",
        out.status,
        stderr(&out)
    );
    out
}

// Fails on the old main: veild called itself "veil-daemon", and neither
// binary printed more than the package version.
#[test]
fn version_flags_name_the_package_the_protocol_and_both_schemas() {
    for (binary, name) in [(paths::veild(), "veild"), (paths::veilctl(), "veilctl")] {
        for flag in ["--version", "-V"] {
            let out = Command::new(&binary).arg(flag).output().expect("run");
            assert!(out.status.success(), "{name} {flag}: {}", stderr(&out));
            assert_eq!(
                String::from_utf8_lossy(&out.stdout),
                format!(
                    "{name} {} (protocol {PROTOCOL_VERSION}, database schema: SQLite {}, PostgreSQL {})\n",
                    env!("CARGO_PKG_VERSION"),
                    SqliteStore::SCHEMA_VERSION,
                    PgStore::SCHEMA_VERSION,
                ),
                "{name} {flag}"
            );
        }
    }
    // The numbers are the real ones: a store made by this veild is at
    // the SQLite schema that --version names.
    let mut veild = Veild::from_toml("");
    veild.stop();
    let db = rusqlite::Connection::open(veild.database()).unwrap();
    let at: i64 = db
        .pragma_query_value(None, "user_version", |r| r.get(0))
        .unwrap();
    assert_eq!(at, SqliteStore::SCHEMA_VERSION);
}

// Fails on the old main: the refusal said only "has schema version 6,
// newer than this veil (5)", with no release and nothing to do.
#[test]
fn a_sqlite_database_from_a_newer_veil_is_refused_naming_both_schemas_and_the_fix() {
    let mut veild = Veild::from_toml("");
    veild.add_user("alice", veil_tests::wire::PASSWORD);
    veild.stop();
    let newer = SqliteStore::SCHEMA_VERSION + 1;
    let db = rusqlite::Connection::open(veild.database()).unwrap();
    db.pragma_update(None, "user_version", newer).unwrap();
    drop(db);
    let want = too_new(SqliteStore::SCHEMA_VERSION, newer);

    let (code, _, err) = veild.ctl(&["user", "list"], "");
    assert_eq!(code, 1, "{err}");
    assert!(err.contains(&want), "veilctl said: {err}");

    let out = veild_refuses(&veild.config_path());
    assert!(stderr(&out).contains(&want), "veild said: {}", stderr(&out));
    assert!(
        stderr(&out).contains("refusing to start"),
        "{}",
        stderr(&out)
    );

    // Refused as it was: the newer veil's data and version stay.
    let db = rusqlite::Connection::open(veild.database()).unwrap();
    let at: i64 = db
        .pragma_query_value(None, "user_version", |r| r.get(0))
        .unwrap();
    assert_eq!(at, newer);
    let users: i64 = db
        .query_row("SELECT count(*) FROM users WHERE name = 'alice'", [], |r| {
            r.get(0)
        })
        .unwrap();
    assert_eq!(users, 1);
}

// Fails on the old main: as above, for a fleet's PostgreSQL store.
#[test]
fn a_postgresql_database_from_a_newer_veil_is_refused_naming_both_schemas_and_the_fix() {
    let cluster = Cluster::start();
    let url = cluster.database("newer");
    let mut veild = Veild::launch_shared(host_config(&url, ""));
    veild.stop();
    let newer = PgStore::SCHEMA_VERSION + 1;
    // A newer veil whose migration this one cannot run on (readers_from).
    cluster.sql(
        "newer",
        &format!("UPDATE veil_schema SET version = {newer}, readers_from = {newer}"),
    );
    let want = too_new(PgStore::SCHEMA_VERSION, newer);

    let (code, _, err) = veild.ctl(&["user", "list"], "");
    assert_eq!(code, 1, "{err}");
    assert!(err.contains(&want), "veilctl said: {err}");

    let out = veild_refuses(&veild.config_path());
    assert!(stderr(&out).contains(&want), "veild said: {}", stderr(&out));
}

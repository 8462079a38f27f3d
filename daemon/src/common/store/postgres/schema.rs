//! The PostgreSQL schema: numbered migrations (the SQL is in
//! `migrations/`), run once under an advisory lock, then the functions
//! (`functions.sql`, see `functions.rs`), and which older releases may
//! still run on the result (rolling upgrades).

use std::path::PathBuf;

use postgres::Client;

use super::super::{OpenMode, StoreError};
use super::functions::{FUNCTIONS, Functions};
use super::{PgSettings, PgStore, locks};

/// Numbered migrations; `veil_schema.version` records how many have run.
/// Text columns use the C collation: names compare byte for byte, on every
/// host alike, whatever the cluster's locale.
pub(super) const MIGRATIONS: &[&str] = &[
    // 1: users, the ledger and the known-good pairs.
    include_str!("migrations/0001_tables.sql"),
    // 2: the login path's statements as functions, one round trip each.
    include_str!("migrations/0002_login_functions.sql"),
    // 3: recovery codes, in the user's row.
    include_str!("migrations/0003_recovery_codes.sql"),
    // 4: least privilege: the login, admin and self-service roles.
    include_str!("migrations/0004_roles.sql"),
    // 5: the functions' generation (the functions are in functions.sql).
    include_str!("migrations/0005_functions_generation.sql"),
    // 6: the fresh-code window's session bindings.
    include_str!("migrations/0006_fresh_code_sessions.sql"),
];

/// For each migration, the oldest schema a veil may speak and still run
/// on the database once it has run: the migration's own number when older
/// hosts cannot (a changed function, a column they must write), lower when
/// it only adds what they do not use. Recorded in `veil_schema.readers_from`
/// (the highest over the migrations run), so that during a rolling upgrade
/// hosts still on the older release keep serving logins after the first
/// host migrates, as long as every migration since allows it.
/// 4 only adds functions, roles and grants (the owner keeps every
/// privilege, so a schema-3 host on the owner's role runs as before).
/// 5 only adds columns to `veil_schema` that older hosts do not read, and
/// functions.sql's generation 1 keeps their functions as they were.
/// The functions file keeps what every host admitted here calls.
/// 6 only adds a table older hosts never touch (fresh-code bindings).
pub(super) const READERS_FROM: [i64; 6] = [1, 2, 3, 3, 3, 3];
const _: () = assert!(READERS_FROM.len() == MIGRATIONS.len());

/// What a build brings to a database: its migrations, the oldest schema
/// each lets run on it, and its functions file (`None` for a release
/// before migration 5, such as 0.3.0: tests play one with the first four).
pub(super) struct Release<'a> {
    pub migrations: &'a [&'a str],
    pub readers_from: &'a [i64],
    pub functions: Option<Functions<'a>>,
}

/// This build's.
pub(super) const THIS_RELEASE: Release<'static> = Release {
    migrations: MIGRATIONS,
    readers_from: &READERS_FROM,
    functions: Some(FUNCTIONS),
};

/// Migrates to `release` in one transaction under the migration lock:
/// its missing migrations, then its functions if the database's are older.
pub(super) fn migrate_to(
    client: &mut Client,
    settings: &PgSettings,
    mode: OpenMode,
    release: &Release,
) -> Result<(), StoreError> {
    let err = |e| settings.pg_error(e);
    let mut tx = client.transaction().map_err(err)?;
    locks::lock_store(&mut tx, locks::MIGRATE).map_err(err)?;
    let exists: bool = tx
        .query_one("SELECT to_regclass('veil_schema') IS NOT NULL", &[])
        .map_err(err)?
        .get(0);
    if !exists {
        if mode == OpenMode::MustExist {
            return Err(StoreError::Missing {
                path: PathBuf::from(&settings.target),
            });
        }
        let foreign: bool = tx
            .query_one(
                "SELECT to_regclass('users') IS NOT NULL OR to_regclass('ledger') IS NOT NULL",
                &[],
            )
            .map_err(err)?
            .get(0);
        if foreign {
            return Err(StoreError::Corrupt {
                path: PathBuf::from(&settings.target),
                message: "its schema holds users or ledger tables but no veil_schema version"
                    .into(),
            });
        }
        tx.batch_execute(
            "CREATE TABLE veil_schema (version integer NOT NULL);
             INSERT INTO veil_schema (version) VALUES (0);",
        )
        .map_err(|e| not_the_owner(settings, e, migrating(0, release)))?;
    }
    // `readers_from` read without naming it: a store made before 0.2.0
    // has no such column yet.
    let row = tx
        .query_one(
            "SELECT version, (to_jsonb(s) ->> 'readers_from')::integer,
                 to_jsonb(s) ? 'readers_from'
             FROM veil_schema s",
            &[],
        )
        .map_err(err)?;
    let version: i32 = row.get(0);
    let readers_from: Option<i32> = row.get(1);
    let has_readers_from: bool = row.get(2);
    let supported = release.migrations.len() as i64;
    if i64::from(version) > supported {
        // A newer veil migrated; this one runs on it only if every
        // migration since said older readers may.
        if readers_from.is_some_and(|from| i64::from(from) <= supported) {
            return tx.commit().map_err(err);
        }
        return Err(StoreError::TooNew {
            path: PathBuf::from(&settings.target),
            found: i64::from(version),
            supported,
        });
    }
    for (i, sql) in release.migrations.iter().enumerate().skip(version as usize) {
        tx.batch_execute(sql)
            .map_err(|e| not_the_owner(settings, e, migrating(version, release)))?;
        tx.execute("UPDATE veil_schema SET version = $1", &[&((i + 1) as i32)])
            .map_err(err)?;
    }
    if !has_readers_from {
        // Not a migration: a release before 0.2.0 reads only `version`.
        tx.batch_execute("ALTER TABLE veil_schema ADD COLUMN readers_from integer")
            .map_err(err)?;
    }
    let from = release.readers_from.iter().copied().max().unwrap_or(1) as i32;
    if readers_from.is_none_or(|r| r < from) {
        tx.execute("UPDATE veil_schema SET readers_from = $1", &[&from])
            .map_err(err)?;
    }
    if let Some(functions) = &release.functions {
        let what = format!(
            "replace veil's functions (with functions.sql generation {})",
            functions.generation
        );
        functions
            .apply(&mut tx)
            .map_err(|e| not_the_owner(settings, e, what))?;
    }
    tx.commit().map_err(err)
}

fn migrating(version: i32, release: &Release) -> String {
    format!(
        "migrate the schema (from {version} to {})",
        release.migrations.len()
    )
}

/// A migration refused for want of privilege: a host on a login role
/// cannot migrate; the owner (veilctl store init with the admin URL) can.
fn not_the_owner(settings: &PgSettings, e: postgres::Error, what: String) -> StoreError {
    if e.code() != Some(&postgres::error::SqlState::INSUFFICIENT_PRIVILEGE) {
        return settings.pg_error(e);
    }
    let message = format!(
        "role {} may not {what}: \
         run `veilctl store init` once with the admin URL (VEIL_ADMIN_URL)",
        settings.user(),
    );
    settings.pg_error_with(e, message)
}

/// Creates the roles that are missing (if this role may) and grants them
/// their privileges again; returns what it could not do ("" when all).
pub fn grant_roles(store: &PgStore) -> Result<String, StoreError> {
    store.with(|c, _| {
        let missing = c.query_one("SELECT veil_grant_roles()", &[])?.try_get(0)?;
        // The fresh-code table came after veil_grant_roles: its grants
        // are given again here, for roles a superuser made since.
        c.batch_execute(FRESH_GRANTS)?;
        Ok(missing)
    })
}

/// The fresh-code table's grants (as its migration gives them).
const FRESH_GRANTS: &str = "DO $$
BEGIN
    IF EXISTS (SELECT FROM pg_roles WHERE rolname = 'veil_login') THEN
        GRANT SELECT, INSERT, UPDATE, DELETE ON fresh_code_sessions TO veil_login;
    END IF;
    IF EXISTS (SELECT FROM pg_roles WHERE rolname = 'veil_admin') THEN
        GRANT SELECT, INSERT, UPDATE, DELETE ON fresh_code_sessions TO veil_admin;
    END IF;
END $$;";

/// The schema version a store has, for `veilctl store init`.
pub fn schema_version(store: &PgStore) -> Result<i64, StoreError> {
    store.with(|c, _| {
        let v: i32 = c.query_one("SELECT version FROM veil_schema", &[])?.get(0);
        Ok(i64::from(v))
    })
}

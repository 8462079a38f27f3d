//! The fresh-code window's session bindings in SQLite (one row per host,
//! boot, session and user). Their own file: a table of their own that
//! nothing else in the back end reads.

use rusqlite::{Connection, OptionalExtension, named_params};

use crate::common::store::SessionKey;

pub(super) fn bind(conn: &Connection, key: &SessionKey, now: i64) -> rusqlite::Result<()> {
    conn.prepare_cached(
        "INSERT INTO fresh_code_sessions (host, boot, session, user, bound_at)
         VALUES (:host, :boot, :session, :user, :now)
         ON CONFLICT (host, boot, session, user) DO UPDATE SET bound_at = excluded.bound_at",
    )?
    .execute(named_params! {
        ":host": key.host, ":boot": key.boot, ":session": i64::from(key.session),
        ":user": key.user, ":now": now,
    })?;
    Ok(())
}

pub(super) fn bound_at(conn: &Connection, key: &SessionKey) -> rusqlite::Result<Option<i64>> {
    conn.prepare_cached(
        "SELECT bound_at FROM fresh_code_sessions
         WHERE host = :host AND boot = :boot AND session = :session AND user = :user",
    )?
    .query_row(
        named_params! {
            ":host": key.host, ":boot": key.boot, ":session": i64::from(key.session),
            ":user": key.user,
        },
        |r| r.get(0),
    )
    .optional()
}

pub(super) fn unbind(conn: &Connection, key: &SessionKey) -> rusqlite::Result<usize> {
    conn.prepare_cached(
        "DELETE FROM fresh_code_sessions
         WHERE host = :host AND boot = :boot AND session = :session AND user = :user",
    )?
    .execute(named_params! {
        ":host": key.host, ":boot": key.boot, ":session": i64::from(key.session),
        ":user": key.user,
    })
}

pub(super) fn prune(conn: &Connection, before: i64) -> rusqlite::Result<usize> {
    conn.prepare_cached("DELETE FROM fresh_code_sessions WHERE bound_at < :before")?
        .execute(named_params! {":before": before})
}

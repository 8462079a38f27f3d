//! The fresh-code window's session bindings on PostgreSQL (one row per
//! host, boot, session and user). Their own file: a table of their own
//! that nothing else in the back end reads.

use postgres::Client;

use crate::common::store::SessionKey;

pub(super) fn bind(c: &mut Client, key: &SessionKey, now: i64) -> Result<u64, postgres::Error> {
    c.execute(
        "INSERT INTO fresh_code_sessions (host, boot, session, username, bound_at)
         VALUES ($1, $2, $3, $4, $5)
         ON CONFLICT (host, boot, session, username)
         DO UPDATE SET bound_at = excluded.bound_at",
        &[
            &key.host,
            &key.boot,
            &i64::from(key.session),
            &key.user,
            &now,
        ],
    )
}

pub(super) fn bound_at(c: &mut Client, key: &SessionKey) -> Result<Option<i64>, postgres::Error> {
    Ok(c.query_opt(
        "SELECT bound_at FROM fresh_code_sessions
         WHERE host = $1 AND boot = $2 AND session = $3 AND username = $4",
        &[&key.host, &key.boot, &i64::from(key.session), &key.user],
    )?
    .map(|row| row.get(0)))
}

pub(super) fn unbind(c: &mut Client, key: &SessionKey) -> Result<usize, postgres::Error> {
    Ok(c.execute(
        "DELETE FROM fresh_code_sessions
         WHERE host = $1 AND boot = $2 AND session = $3 AND username = $4",
        &[&key.host, &key.boot, &i64::from(key.session), &key.user],
    )? as usize)
}

pub(super) fn prune(c: &mut Client, before: i64) -> Result<usize, postgres::Error> {
    Ok(c.execute(
        "DELETE FROM fresh_code_sessions WHERE bound_at < $1",
        &[&before],
    )? as usize)
}

//! The advisory locks, written once for the Rust side: the store-wide
//! locks (migrations, pruning) and the per-key locks of the login path.
//!
//! The login functions (`veil_lock_read`, `veil_reserve`, `veil_success`,
//! now in `functions.sql`; as history in migrations 2 and 3) take the key
//! locks with their own copy of [`LOCK_KEYS`]' expression. A change to the
//! key locks changes them in `functions.sql` (a new generation; a new name
//! if hosts still admitted would lock otherwise), and the test below keeps
//! the copies equal.

use postgres::{Client, Transaction};

/// Store-wide lock ids: "veil" and a number. The keys' own lock ids are
/// hashes of the key, so they do not collide with these in practice.
pub(super) const MIGRATE: i64 = 0x7665_696c_0000_0001;
pub(super) const PRUNE: i64 = 0x7665_696c_0000_0002;

/// One lock per key (kinds `$1`, users `$2`, sources `$3`), held to the
/// end of the transaction, taken in the order of its id: attempts on the
/// same keys queue and never deadlock, and a key without a row is locked
/// too. The id hashes the key's parts joined by a character no name holds.
const LOCK_KEYS: &str = "SELECT count(pg_advisory_xact_lock(h)) FROM (
     SELECT DISTINCT hashtextextended(k || chr(31) || u || chr(31) || s, 0) AS h
     FROM unnest($1::text[], $2::text[], $3::text[]) AS t(k, u, s) ORDER BY h) AS sorted";

/// Takes the keys' locks as the login functions do (see [`LOCK_KEYS`]).
pub(super) fn lock_keys(
    tx: &mut Transaction,
    kinds: &[&str],
    users: &[&str],
    sources: &[&str],
) -> Result<(), postgres::Error> {
    tx.execute(LOCK_KEYS, &[&kinds, &users, &sources])?;
    Ok(())
}

/// Takes a store-wide lock to the end of the transaction (waits for it).
pub(super) fn lock_store(tx: &mut Transaction, id: i64) -> Result<(), postgres::Error> {
    tx.execute("SELECT pg_advisory_xact_lock($1)", &[&id])?;
    Ok(())
}

/// Takes a store-wide lock for the session if no one holds it.
pub(super) fn try_lock_session(client: &mut Client, id: i64) -> Result<bool, postgres::Error> {
    client
        .query_one("SELECT pg_try_advisory_lock($1)", &[&id])?
        .try_get(0)
}

/// Releases a lock taken by [`try_lock_session`].
pub(super) fn unlock_session(client: &mut Client, id: i64) -> Result<(), postgres::Error> {
    client.execute("SELECT pg_advisory_unlock($1)", &[&id])?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::super::functions::FUNCTIONS;
    use super::super::schema::MIGRATIONS;
    use super::LOCK_KEYS;

    /// Whitespace folded to single spaces.
    fn fold(sql: &str) -> String {
        sql.split_whitespace().collect::<Vec<_>>().join(" ")
    }

    /// `veilctl store copy` and the login functions must take the same
    /// locks in the same order, else a copy and a login on one key do not
    /// exclude each other (or deadlock): each copy of the expression in
    /// the functions file and in the migrations (the functions 0.3.0
    /// hosts still run), with its arguments named, is the Rust one.
    #[test]
    fn the_login_functions_lock_keys_as_the_rust_side_does() {
        let rust = fold(LOCK_KEYS).replacen("SELECT ", "PERFORM ", 1).replace(
            "unnest($1::text[], $2::text[], $3::text[])",
            "unnest(p_kinds, p_users, p_sources)",
        );
        let mut copies = 0;
        let sources = MIGRATIONS.iter().chain([&FUNCTIONS.sql]);
        for sql in sources.map(|m| fold(m)) {
            for (at, _) in sql.match_indices("PERFORM count(pg_advisory_xact_lock(") {
                assert!(
                    sql[at..].starts_with(&rust),
                    "a function locks keys otherwise than LOCK_KEYS:\n{}",
                    &sql[at..(at + rust.len() + 40).min(sql.len())]
                );
                copies += 1;
            }
        }
        // veil_lock_read, veil_reserve, veil_success (2) and veil_success
        // (3); the same three in functions.sql.
        assert_eq!(copies, 7, "the copies this test knows of");
    }
}

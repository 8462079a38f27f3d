//! The versions a build speaks, as `veild --version` and `veilctl --version`
//! print them: an admin comparing two hosts, or a database and a binary,
//! sees at once whether they can work together.

use std::sync::OnceLock;

use veil_proto::PROTOCOL_VERSION;

use crate::common::store::{PgStore, SqliteStore};

/// The package version, then the wire protocol and the database schemas
/// this build speaks, e.g. `0.2.0 (protocol 2, database schema: SQLite 9,
/// PostgreSQL 5)`.
pub fn text() -> &'static str {
    static TEXT: OnceLock<String> = OnceLock::new();
    TEXT.get_or_init(|| {
        format!(
            "{} (protocol {PROTOCOL_VERSION}, database schema: SQLite {}, PostgreSQL {})",
            env!("CARGO_PKG_VERSION"),
            SqliteStore::SCHEMA_VERSION,
            PgStore::SCHEMA_VERSION,
        )
    })
}

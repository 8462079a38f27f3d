//! The PostgreSQL functions (`functions.sql`): every current definition in
//! one file, applied with `CREATE OR REPLACE` after the migrations, in their
//! transaction and under their lock, when it differs from what the
//! database has. A generation that only goes up decides, so that during a
//! rolling upgrade a host of an older release never puts its older
//! functions back over a newer host's.

use postgres::Transaction;
use sha2::{Digest, Sha256};

/// A functions file and its generation.
#[derive(Clone, Copy)]
pub(super) struct Functions<'a> {
    pub sql: &'a str,
    pub generation: i32,
}

/// This build's: raise the generation with every change to the file (the
/// test below holds each generation's SHA-256 and fails until
/// then).
pub(super) const FUNCTIONS: Functions<'static> = Functions {
    sql: include_str!("functions.sql"),
    generation: 1,
};

impl Functions<'_> {
    pub fn sha256(&self) -> String {
        data_encoding::HEXLOWER.encode(&Sha256::digest(self.sql.as_bytes()))
    }

    /// Applies the file unless the database has a higher generation, or
    /// this one with the same text; records what it applied. Returns
    /// whether it applied. Needs migration 5's columns.
    pub fn apply(&self, tx: &mut Transaction) -> Result<bool, postgres::Error> {
        let row = tx.query_one(
            "SELECT functions_generation, functions_sha256 FROM veil_schema",
            &[],
        )?;
        let generation: i32 = row.get(0);
        let sha256: Option<String> = row.get(1);
        let ours = self.sha256();
        // Equal generations with other texts: a development build (a
        // release's text is pinned by its generation's test).
        if generation > self.generation
            || (generation == self.generation && sha256.as_deref() == Some(ours.as_str()))
        {
            return Ok(false);
        }
        tx.batch_execute(self.sql)?;
        tx.execute(
            "UPDATE veil_schema SET functions_generation = $1, functions_sha256 = $2",
            &[&self.generation, &ours],
        )?;
        Ok(true)
    }
}

#[cfg(test)]
mod tests {
    use super::FUNCTIONS;

    /// The SHA-256 of `functions.sql` at each generation, the first at 1.
    /// A change to the file fails this test until its hash is appended
    /// here and `FUNCTIONS.generation` raised to match: two builds of one
    /// generation with other functions would replace each other's at each
    /// start. Never edit a line already released.
    const GENERATIONS: &[&str] =
        &["48a2da007aa297fe30bc3b8804a68734056749e92b3e78ba2cacfa986d854faf"];

    #[test]
    fn each_functions_file_has_its_own_generation() {
        assert_eq!(
            GENERATIONS.len(),
            FUNCTIONS.generation as usize,
            "one hash per generation"
        );
        assert_eq!(
            GENERATIONS.last().copied(),
            Some(FUNCTIONS.sha256().as_str()),
            "functions.sql changed: raise FUNCTIONS.generation and append its SHA-256"
        );
    }
}

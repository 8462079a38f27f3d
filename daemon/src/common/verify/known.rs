//! The hash a (user, source) pair last logged in with, so that the pair's
//! next login can start its argon2 verify while the store reserves (the
//! reservation is a round trip and a durable commit; on PostgreSQL the
//! larger part of what the store adds to a login). The verify's answer is
//! used only once the reservation has committed, and only if the row the
//! store returned carries the same hash; otherwise the password is
//! verified again against the row. Only pairs that logged in are kept,
//! keyed by the source too (an address block, a local uid or a service),
//! so a name alone never takes this path. A known pair's denial is decided
//! sooner than a stranger's: the path is off at `failure_delay_ms = 0`,
//! where a denial leaves as soon as it is decided. Shared by veild's
//! workers.

use zeroize::Zeroizing;

use crate::common::pairs::Pairs;

#[derive(Clone, Debug, Default)]
pub struct KnownHashes(Pairs<Zeroizing<String>>);

impl KnownHashes {
    /// The hash the pair last logged in with, if it is kept.
    pub fn get(&self, user: &str, source: &str) -> Option<Zeroizing<String>> {
        self.0.get(user, source)
    }

    /// The pair logged in with `phc`.
    pub fn remember(&self, user: &str, source: &str, phc: &str) {
        self.0.insert(user, source, Zeroizing::new(phc.to_owned()));
    }

    /// The pair's hash changed, or its row is gone.
    pub fn forget(&self, user: &str, source: &str) {
        self.0.remove(user, source);
    }
}

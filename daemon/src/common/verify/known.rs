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

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use zeroize::Zeroizing;

/// Pairs kept at most: past it the map starts again (a pair not kept
/// verifies after the reservation, as every first login does).
const MAX_PAIRS: usize = 4096;

type Pair = (String, String);

#[derive(Clone, Default)]
pub struct KnownHashes(Arc<Mutex<HashMap<Pair, Zeroizing<String>>>>);

impl std::fmt::Debug for KnownHashes {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KnownHashes").finish_non_exhaustive()
    }
}

impl KnownHashes {
    /// The hash the pair last logged in with, if it is kept.
    pub fn get(&self, user: &str, source: &str) -> Option<Zeroizing<String>> {
        let pairs = self.0.lock().unwrap_or_else(|p| p.into_inner());
        pairs.get(&(user.to_owned(), source.to_owned())).cloned()
    }

    /// The pair logged in with `phc`.
    pub fn remember(&self, user: &str, source: &str, phc: &str) {
        let mut pairs = self.0.lock().unwrap_or_else(|p| p.into_inner());
        let pair = (user.to_owned(), source.to_owned());
        if pairs.len() >= MAX_PAIRS && !pairs.contains_key(&pair) {
            pairs.clear();
        }
        pairs.insert(pair, Zeroizing::new(phc.to_owned()));
    }

    /// The pair's hash changed, or its row is gone.
    pub fn forget(&self, user: &str, source: &str) {
        let mut pairs = self.0.lock().unwrap_or_else(|p| p.into_inner());
        pairs.remove(&(user.to_owned(), source.to_owned()));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_pair_is_kept_forgotten_and_the_map_stays_bounded() {
        let known = KnownHashes::default();
        let shared = known.clone();
        known.remember("alice", "ssh:198.51.100.7", "$argon2id$a");
        assert_eq!(
            shared
                .get("alice", "ssh:198.51.100.7")
                .as_deref()
                .map(String::as_str),
            Some("$argon2id$a")
        );
        assert!(shared.get("alice", "ssh:198.51.100.8").is_none());
        assert!(shared.get("bob", "ssh:198.51.100.7").is_none());
        known.forget("alice", "ssh:198.51.100.7");
        assert!(shared.get("alice", "ssh:198.51.100.7").is_none());
        for i in 0..MAX_PAIRS + 10 {
            known.remember(&format!("u{i}"), "s", "h");
        }
        assert!(known.0.lock().unwrap().len() <= MAX_PAIRS);
        assert!(known.get(&format!("u{}", MAX_PAIRS + 9), "s").is_some());
    }
}

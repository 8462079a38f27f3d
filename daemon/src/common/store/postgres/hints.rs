//! What this process last saw of (user, source) pairs' known-good state,
//! so that a pair's next login can reserve without reading first: the plan
//! is made from the remembered state (the pair known-good since that
//! success, its own keys without rows, as `veil_success` leaves them) and
//! `veil_reserve` writes it only if the database still holds exactly that
//! (its compare-and-set), else writes nothing and answers with what is
//! there. A stale or wrong entry costs the round trip it meant to save,
//! never a wrong count. Shared by the connections made from one
//! [`PgSettings`](super::PgSettings) (veild's workers).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

/// Pairs remembered at most: past it the map starts again (a host with
/// more pairs than this logging in by turns reads first, as without it).
const MAX_PAIRS: usize = 4096;

#[derive(Clone, Default)]
pub struct Hints(Arc<Mutex<HashMap<(String, String), i64>>>);

impl std::fmt::Debug for Hints {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Hints").finish_non_exhaustive()
    }
}

impl Hints {
    /// The pair's last success as this process last saw it.
    pub fn last_success(&self, user: &str, source: &str) -> Option<i64> {
        let pairs = self.0.lock().unwrap_or_else(|p| p.into_inner());
        pairs.get(&(user.to_owned(), source.to_owned())).copied()
    }

    /// Remembers the pair's last success (`None`: it has none).
    pub fn saw(&self, user: &str, source: &str, last_success: Option<i64>) {
        let mut pairs = self.0.lock().unwrap_or_else(|p| p.into_inner());
        let pair = (user.to_owned(), source.to_owned());
        match last_success {
            None => {
                pairs.remove(&pair);
            }
            Some(last) => {
                if pairs.len() >= MAX_PAIRS && !pairs.contains_key(&pair) {
                    pairs.clear();
                }
                pairs.insert(pair, last);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_pair_is_remembered_forgotten_and_the_map_stays_bounded() {
        let hints = Hints::default();
        let shared = hints.clone();
        hints.saw("alice", "ssh:198.51.100.7", Some(100));
        assert_eq!(shared.last_success("alice", "ssh:198.51.100.7"), Some(100));
        assert_eq!(shared.last_success("alice", "ssh:198.51.100.8"), None);
        hints.saw("alice", "ssh:198.51.100.7", None);
        assert_eq!(shared.last_success("alice", "ssh:198.51.100.7"), None);
        for i in 0..MAX_PAIRS + 10 {
            hints.saw(&format!("u{i}"), "s", Some(1));
        }
        assert!(hints.0.lock().unwrap().len() <= MAX_PAIRS);
        assert_eq!(
            hints.last_success(&format!("u{}", MAX_PAIRS + 9), "s"),
            Some(1)
        );
    }
}

//! What this process last saw of (user, source) pairs' known-good state,
//! so that a pair's next login can reserve without reading first: the plan
//! is made from the remembered state (the pair known-good since that
//! success, its own keys without rows, as `veil_success` leaves them) and
//! `veil_reserve` writes it only if the database still holds exactly that
//! (its compare-and-set), else writes nothing and answers with what is
//! there. A stale or wrong entry costs the round trip it meant to save,
//! never a wrong count. Shared by the connections made from one
//! [`PgSettings`](super::PgSettings) (veild's workers).

use crate::common::pairs::Pairs;

#[derive(Clone, Debug, Default)]
pub struct Hints(Pairs<i64>);

impl Hints {
    /// The pair's last success as this process last saw it.
    pub fn last_success(&self, user: &str, source: &str) -> Option<i64> {
        self.0.get(user, source)
    }

    /// Remembers the pair's last success (`None`: it has none).
    pub fn saw(&self, user: &str, source: &str, last_success: Option<i64>) {
        match last_success {
            None => self.0.remove(user, source),
            Some(last) => self.0.insert(user, source, last),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_pair_without_a_success_is_forgotten() {
        let hints = Hints::default();
        let shared = hints.clone();
        hints.saw("alice", "ssh:198.51.100.7", Some(100));
        assert_eq!(shared.last_success("alice", "ssh:198.51.100.7"), Some(100));
        hints.saw("alice", "ssh:198.51.100.7", None);
        assert_eq!(shared.last_success("alice", "ssh:198.51.100.7"), None);
    }
}

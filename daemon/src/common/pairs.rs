//! A map of (user, source) pairs to what this process last saw of them,
//! shared by the threads that clone it, and bounded: past [`MAX_PAIRS`]
//! it starts again (a pair not kept only loses what it would have saved).
//! What PostgreSQL's reservation remembers of known-good pairs
//! (`store/postgres/hints.rs`) and the hashes pairs logged in with
//! (`verify/known.rs`) are both one.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

/// Pairs kept at most.
pub const MAX_PAIRS: usize = 4096;

pub struct Pairs<V>(Arc<Mutex<HashMap<(String, String), V>>>);

impl<V> Clone for Pairs<V> {
    fn clone(&self) -> Self {
        Pairs(Arc::clone(&self.0))
    }
}

impl<V> Default for Pairs<V> {
    fn default() -> Self {
        Pairs(Arc::default())
    }
}

impl<V> std::fmt::Debug for Pairs<V> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Pairs").finish_non_exhaustive()
    }
}

impl<V: Clone> Pairs<V> {
    pub fn get(&self, user: &str, source: &str) -> Option<V> {
        let pairs = self.0.lock().unwrap_or_else(|p| p.into_inner());
        pairs.get(&(user.to_owned(), source.to_owned())).cloned()
    }

    pub fn insert(&self, user: &str, source: &str, value: V) {
        let mut pairs = self.0.lock().unwrap_or_else(|p| p.into_inner());
        let pair = (user.to_owned(), source.to_owned());
        if pairs.len() >= MAX_PAIRS && !pairs.contains_key(&pair) {
            pairs.clear();
        }
        pairs.insert(pair, value);
    }

    pub fn remove(&self, user: &str, source: &str) {
        let mut pairs = self.0.lock().unwrap_or_else(|p| p.into_inner());
        pairs.remove(&(user.to_owned(), source.to_owned()));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_pair_is_kept_shared_removed_and_the_map_stays_bounded() {
        let pairs = Pairs::default();
        let shared = pairs.clone();
        pairs.insert("alice", "ssh:198.51.100.7", 100);
        assert_eq!(shared.get("alice", "ssh:198.51.100.7"), Some(100));
        assert_eq!(shared.get("alice", "ssh:198.51.100.8"), None);
        assert_eq!(shared.get("bob", "ssh:198.51.100.7"), None);
        pairs.remove("alice", "ssh:198.51.100.7");
        assert_eq!(shared.get("alice", "ssh:198.51.100.7"), None);
        for i in 0..MAX_PAIRS + 10 {
            pairs.insert(&format!("u{i}"), "s", 1);
        }
        assert!(pairs.0.lock().unwrap().len() <= MAX_PAIRS);
        assert_eq!(pairs.get(&format!("u{}", MAX_PAIRS + 9), "s"), Some(1));
    }
}

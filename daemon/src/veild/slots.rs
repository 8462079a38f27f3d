//! Connection slots: who may hold what, so that no requester, and no class
//! of requesters, can crowd out the others' logins.
//!
//! * `max_connections` bounds the *active* connections: being read or
//!   worked on. A denial waiting for its deadline holds no active slot; it
//!   waits in a pool of its own (twice `max_connections`: one descriptor
//!   each, within the unit's LimitNOFILE), and only when that is full is a
//!   denial sent before its deadline.
//! * Each requester has at most `max_connections_per_user` active: a
//!   non-root peer by its uid, its subordinate uids counted as their owner
//!   (`/etc/subuid`); a root peer's request by its origin (whoever ran a
//!   setuid front end, the remote source, a root service, the console).
//! * Local requesters together (non-root peers, and root front ends run by
//!   a local user or started for a service) hold at most half of
//!   `max_connections`; the rest stays for remote sources and the console.

use std::collections::HashMap;
use std::path::Path;

use crate::veild::subuid::SubIds;

/// The limits, from `[limits]`.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    pub max_connections: usize,
    pub max_per_user: usize,
}

/// Which limit refused a connection or request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Full {
    Connections,
    PerUser,
    Local,
}

impl Full {
    pub fn as_str(self) -> &'static str {
        match self {
            Full::Connections => "max_connections",
            Full::PerUser => "max_connections_per_user",
            Full::Local => "local_share",
        }
    }
}

/// What one connection holds; given back by [`Slots::release`].
#[derive(Debug, Default)]
pub struct Held {
    active: bool,
    waiting: bool,
    local: bool,
    /// The requester counted in `per_requester`: `uid:OWNER` for a
    /// non-root peer (the same share as its root front ends'), a root
    /// peer's origin once its request is read.
    requester: Option<String>,
}

#[derive(Debug)]
pub struct Slots {
    limits: Limits,
    active: usize,
    waiting: usize,
    local: usize,
    per_requester: HashMap<String, usize>,
    subids: SubIds,
}

impl Slots {
    pub fn new(limits: Limits, subuid: &Path) -> Slots {
        Slots {
            limits,
            active: 0,
            waiting: 0,
            local: 0,
            per_requester: HashMap::new(),
            subids: SubIds::new(subuid),
        }
    }

    fn max_local(&self) -> usize {
        (self.limits.max_connections / 2).max(1)
    }

    /// A new connection from `peer_uid`. A non-root peer is a local
    /// requester from the start (its uid is all there is to know).
    pub fn accept(&mut self, peer_uid: u32) -> Result<Held, (Full, Option<u32>)> {
        if self.active >= self.limits.max_connections {
            return Err((Full::Connections, None));
        }
        let mut held = Held {
            active: true,
            ..Held::default()
        };
        if peer_uid != 0 {
            let owner = self.subids.owner(peer_uid);
            if self.local >= self.max_local() {
                return Err((Full::Local, Some(owner)));
            }
            let requester = format!("uid:{owner}");
            if self.share(&requester) >= self.limits.max_per_user {
                return Err((Full::PerUser, Some(owner)));
            }
            *self.per_requester.entry(requester.clone()).or_insert(0) += 1;
            self.local += 1;
            held.local = true;
            held.requester = Some(requester);
        }
        self.active += 1;
        Ok(held)
    }

    /// A root peer's login request was read: it is `requester`'s, local
    /// or not. Refused over that requester's share, or over the local share.
    pub fn start(&mut self, held: &mut Held, requester: &str, local: bool) -> Result<(), Full> {
        if self.share(requester) >= self.limits.max_per_user {
            return Err(Full::PerUser);
        }
        if local && !held.local && self.local >= self.max_local() {
            return Err(Full::Local);
        }
        *self.per_requester.entry(requester.to_owned()).or_insert(0) += 1;
        held.requester = Some(requester.to_owned());
        if local && !held.local {
            self.local += 1;
            held.local = true;
        }
        Ok(())
    }

    /// The connection's answer is a denial that waits for its deadline:
    /// it gives back every share and its active slot, and takes a waiting
    /// one. `false`: the waiting pool is full, answer now.
    pub fn wait(&mut self, held: &mut Held) -> bool {
        if held.waiting {
            return true;
        }
        let room = self.waiting < self.limits.max_connections.saturating_mul(2);
        self.release(held);
        if room {
            self.waiting += 1;
            held.waiting = true;
        }
        room
    }

    /// Gives back everything `held` holds.
    pub fn release(&mut self, held: &mut Held) {
        if std::mem::take(&mut held.active) {
            self.active = self.active.saturating_sub(1);
        }
        if std::mem::take(&mut held.waiting) {
            self.waiting = self.waiting.saturating_sub(1);
        }
        if std::mem::take(&mut held.local) {
            self.local = self.local.saturating_sub(1);
        }
        if let Some(requester) = held.requester.take() {
            decrement(&mut self.per_requester, &requester);
        }
    }

    /// Active requests of `requester`.
    fn share(&self, requester: &str) -> usize {
        self.per_requester.get(requester).copied().unwrap_or(0)
    }

    /// (active, waiting, local) counts, for tests and the audit.
    pub fn counts(&self) -> (usize, usize, usize) {
        (self.active, self.waiting, self.local)
    }
}

fn decrement(map: &mut HashMap<String, usize>, key: &str) {
    if let Some(open) = map.get_mut(key) {
        *open = open.saturating_sub(1);
        if *open == 0 {
            map.remove(key);
        }
    }
}

#[cfg(test)]
mod tests;

//! Who may ask about whom, from the peer's kernel-verified credentials.

use nix::unistd::{Uid, User};

/// The connecting process, as `SO_PEERCRED` reports it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Peer {
    pub uid: u32,
    pub pid: i32,
}

/// root may ask about anyone (sshd, login, su and sudo run as root); any
/// other uid only about the account that has its own uid (a screen locker
/// running as the user). Looking the name up in NSS means an unknown name
/// is refused for non-root peers, which is no leak: they can read passwd.
pub fn permits(peer: Peer, user: &str) -> bool {
    if peer.uid == 0 {
        return true;
    }
    match User::from_name(user) {
        Ok(Some(account)) => account.uid == Uid::from_raw(peer.uid),
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn root_may_ask_about_anyone_including_unknown_names() {
        assert!(permits(Peer { uid: 0, pid: 1 }, "root"));
        assert!(permits(Peer { uid: 0, pid: 1 }, "no-such-user-xyz"));
    }

    #[test]
    fn others_may_ask_only_about_their_own_account() {
        let nobody = User::from_name("nobody").unwrap().unwrap();
        let peer = Peer {
            uid: nobody.uid.as_raw(),
            pid: 1,
        };
        assert!(permits(peer, "nobody"));
        assert!(!permits(peer, "root"));
        assert!(!permits(peer, "no-such-user-xyz"));
    }
}

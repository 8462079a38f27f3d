//! Where users have ssh keys, `--after-publickey` is the stronger set-up:
//! sshd asks for the code alone after a key proved the account, so no
//! password is guessed through veil, and sshd's own work for an unknown
//! name (its failed lookup and log line, before the first prompt, which
//! no PAM module can hide) is never reached by a stranger without a key.
//! `veilctl enable sshd` says so when it sees keys.

use std::path::{Path, PathBuf};

/// The users among `users` whose home holds a non-empty
/// `.ssh/authorized_keys` (Debian's `AuthorizedKeysFile` default).
pub fn key_holders<'a>(
    users: &[&'a str],
    home_of: impl Fn(&str) -> Option<PathBuf>,
) -> Vec<&'a str> {
    users
        .iter()
        .copied()
        .filter(|u| {
            home_of(u).is_some_and(|home| {
                std::fs::metadata(home.join(".ssh/authorized_keys")).is_ok_and(|m| m.len() > 0)
            })
        })
        .collect()
}

/// The system's home directory of `user`, if it has an account.
pub fn system_home(user: &str) -> Option<PathBuf> {
    nix::unistd::User::from_name(user)
        .ok()
        .flatten()
        .map(|u| u.dir)
}

/// The advice line for a two-prompt (or one-prompt) sshd set-up, if any
/// user who can pass veil has keys.
pub fn advice(holders: &[&str], config: &Path) -> String {
    if holders.is_empty() {
        return String::new();
    }
    format!(
        "note: {} of the users who can pass veil have ssh keys ({}): where every user has one, \
         `veilctl enable sshd --after-publickey` is the stronger set-up (sshd asks for the code \
         alone after the key, with AuthenticationMethods publickey,keyboard-interactive in {}): \
         no password can be guessed through veil, and sshd's own work for an unknown name \
         before the first prompt is never reached without a key\n",
        holders.len(),
        holders.join(", "),
        config.display()
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_users_with_a_non_empty_authorized_keys_are_named() {
        let dir = tempfile::tempdir().unwrap();
        for (user, keys) in [
            ("alice", Some("ssh-ed25519 AAAA alice")),
            ("bob", Some("")),
            ("carol", None),
        ] {
            let ssh = dir.path().join(user).join(".ssh");
            std::fs::create_dir_all(&ssh).unwrap();
            if let Some(k) = keys {
                std::fs::write(ssh.join("authorized_keys"), k).unwrap();
            }
        }
        let home = |u: &str| (u != "nobody-here").then(|| dir.path().join(u));
        let users = ["alice", "bob", "carol", "nobody-here"];
        let holders = key_holders(&users, home);
        assert_eq!(holders, ["alice"]);
        let text = advice(&holders, Path::new("/etc/ssh/sshd_config"));
        assert!(
            text.contains("1 of the users who can pass veil have ssh keys (alice)"),
            "{text}"
        );
        assert!(text.contains("--after-publickey"), "{text}");
        assert_eq!(advice(&[], Path::new("x")), "");
    }
}

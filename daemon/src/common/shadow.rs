//! `/etc/shadow`, read by veil itself (shadow(5): nine `:`-separated
//! fields), and the account state pam_unix's account stage would judge
//! from it: locked (`!` before a hash or a `*`: `passwd -l`, `usermod -L`,
//! systemd-sysusers' `!*`), expired (the expire date has come, or the
//! password is older than its maximum age plus the inactive period), or
//! no system password (`!` or `*` alone, empty, or a setting libxcrypt
//! does not know). A bare `!` is `useradd`'s default and `adduser
//! --disabled-password`'s: "no password yet", not a lock, and exactly the
//! account that keeps its password in veil. [`State::denies`] says which
//! states deny for which password source.
//!
//! The file is read whole on every lookup and every line is parsed, so
//! that finding a name costs the same wherever it is and whether it is
//! there at all; `passwd`'s changes apply at the next login.

use std::path::Path;

use zeroize::Zeroizing;

use crate::common::crypt;

pub const DEFAULT_SHADOW: &str = "/etc/shadow";

/// One shadow line. Numbers are days since 1970-01-01; `None` for an empty field.
#[derive(Clone, PartialEq, Eq)]
pub struct Entry {
    pub name: String,
    pub hash: Zeroizing<String>,
    pub last_change: Option<i64>,
    pub max_days: Option<i64>,
    pub inactive_days: Option<i64>,
    pub expire: Option<i64>,
}

impl std::fmt::Debug for Entry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Entry")
            .field("name", &self.name)
            .field("hash", &crypt::describe(&self.hash))
            .field("last_change", &self.last_change)
            .field("max_days", &self.max_days)
            .field("inactive_days", &self.inactive_days)
            .field("expire", &self.expire)
            .finish()
    }
}

/// What the system says about an account, before any password is checked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum State {
    /// A hash that libxcrypt can check.
    Usable,
    /// `passwd -l`, `usermod -L`: `!` before anything (a hash, `*`, or
    /// another `!`); a bare `!` is not a lock.
    Locked,
    /// The account's expire date has come (`chage -E`).
    Expired,
    /// The password is older than its maximum age plus the inactive period.
    PasswordInactive,
    /// No system password: `!` or `*` alone, empty, or a setting libxcrypt
    /// does not know. No password can match it; a veil password does not
    /// need one.
    NoUsableHash,
}

impl State {
    /// Whether veild denies an account in this state whatever the password
    /// (`system_source`: `[password] source = "system"`). Lock and expiry
    /// deny with both sources; having no system password denies only when
    /// the system password is the one checked.
    pub fn denies(self, system_source: bool) -> bool {
        match self {
            State::Usable => false,
            State::Locked | State::Expired | State::PasswordInactive => true,
            State::NoUsableHash => system_source,
        }
    }

    /// The audit reason veild logs for a denial in this state.
    pub fn reason(self) -> &'static str {
        match self {
            State::Usable => "none",
            State::Locked => "account-locked",
            State::Expired => "account-expired",
            State::PasswordInactive => "password-expired",
            State::NoUsableHash => "no-usable-hash",
        }
    }
}

impl Entry {
    /// The account's state on day `today` (days since the epoch).
    pub fn state(&self, today: i64) -> State {
        // `passwd -l` on a hash, `usermod -L` on `*`: a lock. A bare `!`
        // is `useradd`'s "no password yet" (below: no usable hash).
        if self.hash.len() > 1 && self.hash.starts_with('!') {
            return State::Locked;
        }
        if self.expire.is_some_and(|e| e >= 0 && today >= e) {
            return State::Expired;
        }
        if let (Some(last), Some(max), Some(inactive)) =
            (self.last_change, self.max_days, self.inactive_days)
        {
            // As pam_unix: 0 means "change at next login", not expired.
            if last > 0 && max >= 0 && inactive >= 0 && today - last > max + inactive {
                return State::PasswordInactive;
            }
        }
        if crypt::usable(&self.hash) {
            State::Usable
        } else {
            State::NoUsableHash
        }
    }
}

/// One line of shadow(5), or `None` for a line that is not one (too few
/// fields, an empty name, a NIS `+`/`-` entry).
pub fn parse_line(line: &str) -> Option<Entry> {
    let fields: Vec<&str> = line.split(':').collect();
    if fields.len() < 8 {
        return None;
    }
    let name = fields[0];
    if name.is_empty() || name.starts_with('+') || name.starts_with('-') {
        return None;
    }
    let day = |s: &str| -> Option<i64> { if s.is_empty() { None } else { s.parse().ok() } };
    Some(Entry {
        name: name.to_owned(),
        hash: Zeroizing::new(fields[1].to_owned()),
        last_change: day(fields[2]),
        max_days: day(fields[4]),
        inactive_days: day(fields[6]),
        expire: day(fields[7]),
    })
}

/// The entry for `name` in shadow text; every line is parsed whatever it
/// holds. The first entry of a name wins, as with getspnam.
pub fn find(text: &str, name: &str) -> Option<Entry> {
    let mut found = None;
    for entry in text.lines().filter_map(parse_line) {
        if found.is_none() && entry.name == name {
            found = Some(entry);
        }
    }
    found
}

/// Every entry, in file order (veilctl's list).
pub fn entries(text: &str) -> Vec<Entry> {
    text.lines().filter_map(parse_line).collect()
}

/// Reads `path` (kept in memory that is wiped afterwards).
pub fn read(path: &Path) -> std::io::Result<Zeroizing<String>> {
    std::fs::read_to_string(path).map(Zeroizing::new)
}

/// The entry for `name` in the file at `path`.
pub fn lookup(path: &Path, name: &str) -> std::io::Result<Option<Entry>> {
    Ok(find(&read(path)?, name))
}

/// Days since the epoch at Unix time `now`, as shadow counts them.
pub fn day_of(now: u64) -> i64 {
    (now / 86_400).min(i64::MAX as u64) as i64
}

#[cfg(test)]
mod tests {
    use super::*;

    const TODAY: i64 = 20_000;
    const YES: &str = "$y$j9T$F5Jx5fExrKuPp53xLKQ..1$X3DX6M94c7o.9agCG9G317fhZg9SqC.5i5rd.RhAtQ7";

    fn entry(line: &str) -> Entry {
        parse_line(line).unwrap_or_else(|| panic!("{line}"))
    }

    #[test]
    fn a_debian_line_parses_into_its_fields() {
        let e = entry(&format!("alice:{YES}:19700:0:99999:7:::"));
        assert_eq!(e.name, "alice");
        assert_eq!(e.hash.as_str(), YES);
        assert_eq!(
            (e.last_change, e.max_days, e.inactive_days, e.expire),
            (Some(19700), Some(99999), None, None)
        );
        assert_eq!(e.state(TODAY), State::Usable);
    }

    /// Issue 19. Fails on the old main, where a bare `!` (useradd's and
    /// `adduser --disabled-password`'s "no password yet") counted as
    /// `passwd -l`.
    #[test]
    fn passwd_l_and_usermod_l_lock_but_a_bare_bang_is_no_system_password() {
        for hash in [format!("!{YES}"), "!*".into(), "!!".into(), "!x".into()] {
            assert_eq!(
                entry(&format!("bob:{hash}:19700:0:99999:7:::")).state(TODAY),
                State::Locked,
                "{hash}"
            );
        }
        assert_eq!(
            entry("bob:!:19700:0:99999:7:::").state(TODAY),
            State::NoUsableHash
        );
    }

    /// Every shadow state, with both sources: what veild decides before
    /// any password is checked (the README's table).
    #[test]
    fn each_state_denies_or_not_for_each_source() {
        let expired = TODAY - 1;
        let old = TODAY - 100;
        // (line's fields after the name, state, denied with source veil, with source system)
        let table = [
            (
                format!("{YES}:19700:0:99999:7:::"),
                State::Usable,
                false,
                false,
            ),
            (
                "!:19700:0:99999:7:::".to_owned(),
                State::NoUsableHash,
                false,
                true,
            ),
            (
                "*:19700:0:99999:7:::".into(),
                State::NoUsableHash,
                false,
                true,
            ),
            (
                ":19700:0:99999:7:::".into(),
                State::NoUsableHash,
                false,
                true,
            ),
            ("!*:19700:0:99999:7:::".into(), State::Locked, true, true),
            (
                format!("!{YES}:19700:0:99999:7:::"),
                State::Locked,
                true,
                true,
            ),
            (
                format!("{YES}:19700:0:99999:7::{expired}:"),
                State::Expired,
                true,
                true,
            ),
            (
                format!("!:19700:0:99999:7::{expired}:"),
                State::Expired,
                true,
                true,
            ),
            (
                format!("{YES}:{old}:0:60:7:10::"),
                State::PasswordInactive,
                true,
                true,
            ),
            (
                format!("!:{old}:0:60:7:10::"),
                State::PasswordInactive,
                true,
                true,
            ),
            // Past the maximum age but within the inactive period, or
            // "change at next login": pam_unix's account stage asks for a
            // new password; veil does not refuse.
            (
                format!("{YES}:{old}:0:60:7:50::"),
                State::Usable,
                false,
                false,
            ),
            (format!("{YES}:0:0:99999:7:::"), State::Usable, false, false),
        ];
        for (fields, state, veil, system) in table {
            let e = entry(&format!("u:{fields}"));
            assert_eq!(e.state(TODAY), state, "{fields}");
            assert_eq!(state.denies(false), veil, "{fields} with source veil");
            assert_eq!(state.denies(true), system, "{fields} with source system");
        }
    }

    #[test]
    fn stars_empty_and_unknown_settings_have_no_usable_hash() {
        for hash in ["!", "*", "", "x", "$9$abc$def"] {
            assert_eq!(
                entry(&format!("daemon:{hash}:19700:0:99999:7:::")).state(TODAY),
                State::NoUsableHash,
                "{hash:?}"
            );
        }
    }

    #[test]
    fn chage_e_0_and_a_past_expire_date_are_expired_today_is_too() {
        for expire in [0, TODAY - 1, TODAY] {
            let e = entry(&format!("carol:{YES}:19700:0:99999:7::{expire}:"));
            assert_eq!(e.state(TODAY), State::Expired, "{expire}");
        }
        let e = entry(&format!("carol:{YES}:19700:0:99999:7::{}:", TODAY + 1));
        assert_eq!(e.state(TODAY), State::Usable);
    }

    #[test]
    fn a_password_past_max_plus_inactive_is_inactive_but_not_one_day_before() {
        // Changed 100 days ago, max 60, inactive 40: the last usable day is today.
        let e = entry(&format!("dave:{YES}:{}:0:60:7:40::", TODAY - 100));
        assert_eq!(e.state(TODAY), State::Usable);
        assert_eq!(e.state(TODAY + 1), State::PasswordInactive);
        // No inactive field: pam_unix asks for a new password, veil does not refuse.
        let e = entry(&format!("dave:{YES}:{}:0:60:7:::", TODAY - 100));
        assert_eq!(e.state(TODAY), State::Usable);
        // Last change 0 ("change at next login") is not inactivity.
        let e = entry(&format!("dave:{YES}:0:0:60:7:40::"));
        assert_eq!(e.state(TODAY), State::Usable);
    }

    #[test]
    fn the_lock_is_reported_before_the_expiry() {
        let e = entry(&format!("erin:!{YES}:19700:0:99999:7::0:"));
        assert_eq!(e.state(TODAY), State::Locked);
    }

    #[test]
    fn find_takes_the_first_entry_and_skips_what_is_not_a_line() {
        let text = format!(
            "root:*:19700:0:99999:7:::\n\
             \n\
             garbage\n\
             +nis::::::::\n\
             alice:{YES}:19700:0:99999:7:::\n\
             alice:*:19700:0:99999:7:::\n"
        );
        assert_eq!(find(&text, "alice").unwrap().hash.as_str(), YES);
        assert!(find(&text, "ghost").is_none());
        assert!(find(&text, "+nis").is_none());
        assert!(find(&text, "").is_none());
        assert_eq!(entries(&text).len(), 3);
    }

    #[test]
    fn days_count_from_the_epoch() {
        assert_eq!(day_of(0), 0);
        assert_eq!(day_of(86_399), 0);
        assert_eq!(day_of(1_700_000_000), 19_675);
    }
}

//! Who owns a uid: a subordinate uid (`/etc/subuid`, rootless containers)
//! belongs to the account it was delegated to, so one local user's 65 536
//! subordinate uids share that user's connection share instead of each
//! having its own.

use std::path::{Path, PathBuf};
use std::time::SystemTime;

/// The ranges of one subuid file, re-read when the file changes.
#[derive(Debug)]
pub struct SubIds {
    path: PathBuf,
    /// (first uid, count, owner uid).
    ranges: Vec<(u64, u64, u32)>,
    stamp: Option<(SystemTime, u64)>,
}

impl SubIds {
    pub fn new(path: &Path) -> SubIds {
        let mut ids = SubIds {
            path: path.to_owned(),
            ranges: Vec::new(),
            stamp: None,
        };
        ids.refresh();
        ids
    }

    /// The account `uid` counts as: the owner of a subordinate range that
    /// holds it, else itself.
    pub fn owner(&mut self, uid: u32) -> u32 {
        self.refresh();
        self.ranges
            .iter()
            .find(|(first, count, _)| {
                (*first..first.saturating_add(*count)).contains(&u64::from(uid))
            })
            .map_or(uid, |(_, _, owner)| *owner)
    }

    /// Re-reads the file if its modification time or size changed (one
    /// stat per call). A missing or unreadable file means no ranges.
    fn refresh(&mut self) {
        let stamp = std::fs::metadata(&self.path)
            .ok()
            .and_then(|m| Some((m.modified().ok()?, m.len())));
        if stamp == self.stamp {
            return;
        }
        self.stamp = stamp;
        self.ranges = std::fs::read_to_string(&self.path)
            .map(|text| parse(&text, lookup))
            .unwrap_or_default();
    }
}

fn lookup(name: &str) -> Option<u32> {
    nix::unistd::User::from_name(name)
        .ok()
        .flatten()
        .map(|u| u.uid.as_raw())
}

/// `owner:first:count` lines; the owner is a name (resolved by `resolve`)
/// or a number. Lines that do not parse, or whose owner is unknown, are
/// skipped.
pub fn parse(text: &str, resolve: impl Fn(&str) -> Option<u32>) -> Vec<(u64, u64, u32)> {
    text.lines()
        .filter_map(|line| {
            let mut parts = line.trim().split(':');
            let (owner, first, count) = (parts.next()?, parts.next()?, parts.next()?);
            if parts.next().is_some() || owner.is_empty() {
                return None;
            }
            let owner = owner.parse::<u32>().ok().or_else(|| resolve(owner))?;
            Some((first.parse().ok()?, count.parse().ok()?, owner))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn subordinate_uids_belong_to_their_owner() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("subuid");
        std::fs::write(&path, "root:100000:65536\n1000:165536:65536\nbad line\n").unwrap();
        let mut ids = SubIds::new(&path);
        assert_eq!(ids.owner(100_000), 0);
        assert_eq!(ids.owner(165_535), 0);
        assert_eq!(ids.owner(165_536), 1000);
        assert_eq!(ids.owner(231_071), 1000);
        assert_eq!(ids.owner(231_072), 231_072);
        assert_eq!(ids.owner(1000), 1000);
        // A changed file is read again.
        std::fs::write(&path, "1000:300000:10\n").unwrap();
        assert_eq!(ids.owner(165_536), 165_536);
        assert_eq!(ids.owner(300_009), 1000);
        std::fs::remove_file(&path).unwrap();
        assert_eq!(ids.owner(300_009), 300_009);
    }

    #[test]
    fn owners_are_names_or_numbers_and_unknown_names_are_skipped() {
        let resolve = |n: &str| (n == "alice").then_some(1001);
        let got = parse("alice:10:5\n7:20:5\nghost:30:5\n:40:5\nx:1:2:3\n", resolve);
        assert_eq!(got, vec![(10, 5, 1001), (20, 5, 7)]);
    }
}

//! Audit lines as native journald entries: the syslog line stays the
//! MESSAGE, and gains a MESSAGE_ID per event kind (explained by
//! packaging/systemd/veil.catalog) and VEIL_* fields, so that
//! `journalctl MESSAGE_ID=...` and forwarders filter without parsing text.
//!
//! The fields are taken from the finished line itself, so they can never
//! say other than it does; its values are sanitised (no space, `=` or
//! control character), so splitting it on spaces and `=` is exact.
//! The protocol (systemd's "Native Journal Protocol") is one datagram of
//! `KEY=value\n` fields, or `KEY\n`, a 64-bit little-endian length, the
//! value and `\n` for a value that holds a newline.

use std::io;
use std::os::unix::net::UnixDatagram;
use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::veild::severity::Severity;

/// Where journald listens for native entries.
pub const SOCKET: &str = "/run/systemd/journal/socket";
/// Overrides [`SOCKET`] (for tests: a socket the test binds).
pub const SOCKET_ENV: &str = "VEIL_JOURNAL_SOCKET";

/// One fixed id per event kind; veil.catalog has the same ids.
const MESSAGE_IDS: [(&str, &str); 22] = [
    ("attempt", "70c29d4ab07748c691d1eae0892e2d82"),
    ("lock", "08ba1e75ae1c483287bbb8da4bbb90fc"),
    ("recovery-code-used", "14c95d824d37482c88a5c80a35d53366"),
    ("overload", "9770c51a5a1c443cb453eb3fef9f3ddf"),
    ("store", "7c87ae4618b24cb3b4abdca94b39a569"),
    ("fatal", "c107f6e0a6b7440990fbd3158aaea4b1"),
    ("start", "a40f83b1b5024bfaa4e68fcd6eeabd8e"),
    ("stopping", "1750407a6b494027a302ef69ad6f3211"),
    ("stopped", "7d1c4166beff4e478681702f0344d16e"),
    ("malformed", "6558e92295f04eaea375d5408e8e5919"),
    ("self-service", "e90481125f2f4497aa61ae6c40db36ed"),
    ("prune", "70891d09b71040fc9bd4ea16f8ee1778"),
    ("config", "cc9ce291c1d94fbfb23f0be9c415f094"),
    ("clock-skew", "0b795b0cf93d44cfa7a20ca21f242629"),
    ("passwords", "2d06cea865fa4faf9ea3fcf13c1a25ca"),
    ("accept", "691d2dd6e6d8488988cf674b93a64412"),
    ("timeout", "54eb2d2241e94617964e483ab78467e9"),
    ("metrics", "6b0edc4a0bda4d119d551974b7f1a564"),
    ("alert", "0849412c12ad4d6883c4e5d36f4c6635"),
    ("session", "9efc208ffb8143ffa48014c89d21cdb6"),
    ("outage-hand-over", "7d4a63ae8de94c33b083a990b35ecd84"),
    ("outage-cache", "555baba4ccbc459cbd8dc68a462e6b28"),
];

/// The line's keys that become fields of their own (`VEIL_` + upper case).
const FIELDS: [&str; 6] = ["event", "outcome", "reason", "service", "source", "key"];

pub fn message_id(event: &str) -> Option<&'static str> {
    MESSAGE_IDS
        .iter()
        .find(|(e, _)| *e == event)
        .map(|(_, id)| *id)
}

/// Every (event, MESSAGE_ID) pair, for the catalog's test.
pub fn message_ids() -> &'static [(&'static str, &'static str)] {
    &MESSAGE_IDS
}

/// Appends one field in the native protocol's framing.
pub fn put(out: &mut Vec<u8>, key: &str, value: &[u8]) {
    out.extend_from_slice(key.as_bytes());
    if value.contains(&b'\n') {
        out.push(b'\n');
        out.extend_from_slice(&(value.len() as u64).to_le_bytes());
    } else {
        out.push(b'=');
    }
    out.extend_from_slice(value);
    out.push(b'\n');
}

/// The datagram for one audit line.
pub fn entry(severity: Severity, line: &str) -> Vec<u8> {
    let mut out = Vec::with_capacity(line.len() * 2 + 128);
    put(&mut out, "MESSAGE", line.as_bytes());
    put(
        &mut out,
        "PRIORITY",
        severity.priority().to_string().as_bytes(),
    );
    // authpriv, as the syslog line: rsyslog's forwarded copy lands where
    // it always did.
    put(&mut out, "SYSLOG_FACILITY", b"10");
    put(&mut out, "SYSLOG_IDENTIFIER", b"veild");
    let pairs = line.split(' ').filter_map(|t| t.split_once('='));
    for (key, value) in pairs {
        if let Some(id) = (key == "event").then(|| message_id(value)).flatten() {
            put(&mut out, "MESSAGE_ID", id.as_bytes());
        }
        if FIELDS.contains(&key) {
            let name = format!("VEIL_{}", key.to_ascii_uppercase());
            put(&mut out, &name, value.as_bytes());
        }
    }
    out
}

/// A socket to journald. Unconnected: each entry is sent to the path, so
/// a restarted journald (a new socket) is found again without more code.
#[derive(Debug)]
pub struct Journal {
    socket: UnixDatagram,
    path: PathBuf,
}

impl Journal {
    /// The journal, if its socket exists now (else the caller uses syslog).
    pub fn open() -> Option<Journal> {
        let path = std::env::var_os(SOCKET_ENV)
            .map(PathBuf::from)
            .unwrap_or_else(|| PathBuf::from(SOCKET));
        Journal::at(&path)
    }

    fn at(path: &Path) -> Option<Journal> {
        if !path.exists() {
            return None;
        }
        let socket = UnixDatagram::unbound().ok()?;
        // A journald that does not read must not hold the writer forever.
        socket
            .set_write_timeout(Some(Duration::from_secs(1)))
            .ok()?;
        Some(Journal {
            socket,
            path: path.to_owned(),
        })
    }

    pub fn send(&self, severity: Severity, line: &str) -> io::Result<()> {
        self.socket
            .send_to(&entry(severity, line), &self.path)
            .map(drop)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The fields of a datagram, decoded as journald does.
    fn decode(mut data: &[u8]) -> Vec<(String, Vec<u8>)> {
        let mut fields = Vec::new();
        while !data.is_empty() {
            let end = data.iter().position(|b| *b == b'\n' || *b == b'=').unwrap();
            let key = String::from_utf8(data[..end].to_vec()).unwrap();
            if data[end] == b'=' {
                let nl = data.iter().position(|b| *b == b'\n').unwrap();
                fields.push((key, data[end + 1..nl].to_vec()));
                data = &data[nl + 1..];
            } else {
                let len = u64::from_le_bytes(data[end + 1..end + 9].try_into().unwrap()) as usize;
                let value = data[end + 9..end + 9 + len].to_vec();
                assert_eq!(data[end + 9 + len], b'\n');
                fields.push((key, value));
                data = &data[end + 10 + len..];
            }
        }
        fields
    }

    #[test]
    fn a_value_with_newlines_is_framed_by_its_length() {
        let mut out = Vec::new();
        put(&mut out, "A", b"one");
        put(&mut out, "B", b"two\nlines\n");
        put(&mut out, "C", b"");
        let mut expected = b"A=one\nB\n".to_vec();
        expected.extend_from_slice(&10u64.to_le_bytes());
        expected.extend_from_slice(b"two\nlines\n\nC=\n");
        assert_eq!(out, expected);
        assert_eq!(
            decode(&out),
            [
                ("A".into(), b"one".to_vec()),
                ("B".into(), b"two\nlines\n".to_vec()),
                ("C".into(), b"".to_vec()),
            ]
        );
    }

    #[test]
    fn an_attempt_gets_its_message_id_and_fields_and_keeps_its_line() {
        let line = "event=attempt user=alice service=sshd rhost=192.0.2.7 source=192.0.2.7 outcome=deny reason=locked key=user+source:alice@192.0.2.7";
        let fields = decode(&entry(Severity::Notice, line));
        let get = |k: &str| {
            fields
                .iter()
                .find(|(key, _)| key == k)
                .map(|(_, v)| String::from_utf8(v.clone()).unwrap())
        };
        assert_eq!(get("MESSAGE").as_deref(), Some(line));
        assert_eq!(get("MESSAGE_ID").as_deref(), message_id("attempt"));
        assert_eq!(get("PRIORITY").as_deref(), Some("5"));
        assert_eq!(get("VEIL_EVENT").as_deref(), Some("attempt"));
        assert_eq!(get("VEIL_REASON").as_deref(), Some("locked"));
        assert_eq!(get("VEIL_SERVICE").as_deref(), Some("sshd"));
        assert_eq!(get("VEIL_SOURCE").as_deref(), Some("192.0.2.7"));
        assert_eq!(
            get("VEIL_KEY").as_deref(),
            Some("user+source:alice@192.0.2.7")
        );
        assert_eq!(get("VEIL_USER"), None);
    }

    #[test]
    fn a_crafted_name_cannot_add_or_change_a_field() {
        let line = crate::veild::audit::Line::new("attempt")
            .field("user", "x reason=success\nVEIL_KEY=forged")
            .field("reason", "wrong-code")
            .finish();
        let fields = decode(&entry(Severity::Notice, &line));
        let reasons: Vec<_> = fields.iter().filter(|(k, _)| k == "VEIL_REASON").collect();
        assert_eq!(
            reasons,
            [&("VEIL_REASON".to_owned(), b"wrong-code".to_vec())]
        );
        assert!(fields.iter().all(|(k, _)| k != "VEIL_KEY"), "{fields:?}");
    }

    #[test]
    fn the_catalog_and_the_readme_list_every_message_id() {
        let catalog = include_str!("../../../packaging/systemd/veil.catalog");
        let mut listed: Vec<&str> = catalog
            .lines()
            .filter_map(|l| l.strip_prefix("-- "))
            .collect();
        let mut ids: Vec<&str> = MESSAGE_IDS.iter().map(|(_, id)| *id).collect();
        listed.sort();
        ids.sort();
        assert_eq!(listed, ids);
        // README.md's table lists them for admins.
        let readme = include_str!("../../../README.md");
        let missing: Vec<_> = ids.iter().filter(|id| !readme.contains(*id)).collect();
        assert!(missing.is_empty(), "not in README.md: {missing:?}");
    }

    /// Every event kind veild logs has its id (the two outage events had
    /// none when they came: this test found them).
    #[test]
    fn every_event_kind_in_the_sources_has_a_message_id() {
        fn walk(dir: &std::path::Path, kinds: &mut Vec<String>) {
            for entry in std::fs::read_dir(dir).unwrap() {
                let path = entry.unwrap().path();
                if path.is_dir() {
                    walk(&path, kinds);
                } else if path.extension().is_some_and(|e| e == "rs") {
                    let text = std::fs::read_to_string(&path).unwrap();
                    for rest in text.split("Line::new(\"").skip(1) {
                        kinds.push(rest.split('"').next().unwrap_or_default().to_owned());
                    }
                }
            }
        }
        let mut kinds = Vec::new();
        walk(
            &std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("src"),
            &mut kinds,
        );
        assert!(kinds.len() > 20, "read no sources: {kinds:?}");
        let missing: Vec<_> = kinds.iter().filter(|k| message_id(k).is_none()).collect();
        assert!(missing.is_empty(), "no MESSAGE_ID for {missing:?}");
    }

    #[test]
    fn message_ids_are_distinct_128_bit_hex() {
        let mut ids: Vec<_> = MESSAGE_IDS.iter().map(|(_, id)| *id).collect();
        assert!(
            ids.iter()
                .all(|id| id.len() == 32 && id.bytes().all(|b| b.is_ascii_hexdigit()))
        );
        ids.sort();
        ids.dedup();
        assert_eq!(ids.len(), MESSAGE_IDS.len());
    }
}

//! Audit events as native journald entries, received by a journal socket
//! the test binds (this machine runs no journald): each event keeps its
//! syslog line as MESSAGE and gains MESSAGE_ID and VEIL_* fields; without
//! a journal, the lines still reach stderr.

use std::collections::HashMap;
use std::os::unix::net::UnixDatagram;
use std::time::Duration;

use veil_daemon::veild::journal::{SOCKET_ENV, message_id};
use veil_proto::DENY;
use veil_tests::Veild;
use veil_tests::wire::*;

/// One datagram's fields, decoded as journald does (a key then `=value`,
/// or a newline, a 64-bit little-endian length and the value).
fn decode(mut data: &[u8]) -> HashMap<String, String> {
    let mut fields = HashMap::new();
    while let Some(end) = data.iter().position(|b| *b == b'\n' || *b == b'=') {
        let key = String::from_utf8_lossy(&data[..end]).into_owned();
        let (value, rest) = if data[end] == b'=' {
            let nl = end + data[end..].iter().position(|b| *b == b'\n').unwrap();
            (&data[end + 1..nl], &data[nl + 1..])
        } else {
            let len = u64::from_le_bytes(data[end + 1..end + 9].try_into().unwrap()) as usize;
            (&data[end + 9..end + 9 + len], &data[end + 10 + len..])
        };
        fields.insert(key, String::from_utf8_lossy(value).into_owned());
        data = rest;
    }
    fields
}

#[test]
fn a_lock_reaches_the_journal_with_its_message_id_and_fields() {
    let journal_dir = tempfile::tempdir().unwrap();
    let path = journal_dir.path().join("socket");
    let journal = UnixDatagram::bind(&path).unwrap();
    // Bounds the wait for a datagram veild sends at once; no timing is asserted.
    journal
        .set_read_timeout(Some(Duration::from_secs(30)))
        .unwrap();
    let mut d = Veild::from_toml("[lockout]\ndeny = 1\n");
    d.stop();
    d.env
        .push((SOCKET_ENV.to_owned(), path.to_str().unwrap().to_owned()));
    d.spawn();
    d.enrol("alice", true);
    assert_eq!(
        d.ask_from("alice", "wrong", &wrong_code(), "198.51.100.4"),
        DENY
    );
    let mut entries = Vec::new();
    let mut buf = vec![0u8; 65_536];
    while !entries
        .iter()
        .any(|e: &HashMap<String, String>| e.get("VEIL_EVENT").is_some_and(|v| v == "lock"))
    {
        let n = journal
            .recv(&mut buf)
            .expect("veild's entries on the journal socket");
        entries.push(decode(&buf[..n]));
    }
    let find = |event: &str| {
        entries
            .iter()
            .find(|e| e.get("VEIL_EVENT").is_some_and(|v| v == event))
            .unwrap_or_else(|| panic!("no {event} entry in {entries:?}"))
    };
    let attempt = find("attempt");
    assert_eq!(
        attempt.get("MESSAGE_ID").map(String::as_str),
        message_id("attempt")
    );
    assert_eq!(attempt["VEIL_REASON"], "wrong-password");
    assert_eq!(attempt["VEIL_OUTCOME"], "deny");
    assert_eq!(attempt["VEIL_SOURCE"], "198.51.100.4");
    assert_eq!(attempt["SYSLOG_IDENTIFIER"], "veild");
    assert_eq!(attempt["SYSLOG_FACILITY"], "10");
    assert!(
        attempt["MESSAGE"].starts_with("event=attempt user=alice "),
        "{attempt:?}"
    );
    let lock = find("lock");
    assert_eq!(
        lock.get("MESSAGE_ID").map(String::as_str),
        message_id("lock")
    );
    assert_eq!(lock["VEIL_KEY"], "user+source:alice@198.51.100.4");
    assert_eq!(lock["PRIORITY"], "4");
    // The same line still reaches stderr (--log-stderr), unchanged.
    assert!(d.stderr().contains(&attempt["MESSAGE"]), "{}", d.stderr());
}

#[test]
fn without_a_journal_socket_the_lines_still_reach_stderr() {
    let gone = tempfile::tempdir().unwrap();
    let mut d = Veild::from_toml("");
    d.stop();
    d.env.push((
        SOCKET_ENV.to_owned(),
        gone.path().join("no-socket").to_str().unwrap().to_owned(),
    ));
    d.spawn();
    d.enrol("alice", true);
    assert_eq!(d.ask("alice", "wrong", &wrong_code()), DENY);
    assert!(
        d.log_with(1).contains("reason=wrong-password"),
        "{}",
        d.stderr()
    );
}

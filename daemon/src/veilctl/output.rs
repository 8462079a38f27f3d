//! What veilctl prints: ledger entries as a table or JSON.

use serde::Serialize;

use veil_daemon::common::ledger::{self, Entry};

use crate::error::Failure;

/// A ledger entry with the seconds left, for people and scripts.
#[derive(Debug, Serialize)]
pub struct EntryView {
    kind: &'static str,
    user: String,
    source: String,
    failures: i64,
    limit: i64,
    locked: bool,
    seconds_left: i64,
}

impl EntryView {
    pub fn of(e: &Entry, now: i64) -> EntryView {
        EntryView {
            kind: e.key.kind.as_str(),
            user: e.key.user.clone(),
            source: if e.key.kind == ledger::KeyKind::UserSource {
                ledger::source_of(&e.key.source).to_owned()
            } else {
                e.key.source.clone()
            },
            failures: e.failures,
            limit: e.limit,
            locked: e.locked_at(now),
            seconds_left: (e.locked_until - now).max(0),
        }
    }
}

pub fn print_entries(entries: &[Entry], now: i64) {
    println!(
        "{:<12} {:<24} {:<40} {:>9} {:>10}",
        "KEY", "USER", "SOURCE", "FAILURES", "LOCKED"
    );
    for e in entries {
        let v = EntryView::of(e, now);
        let locked = if v.locked {
            format!("{}s left", v.seconds_left)
        } else {
            "no".into()
        };
        let dash = |s: &str| {
            if s.is_empty() {
                "-".to_owned()
            } else {
                s.to_owned()
            }
        };
        println!(
            "{:<12} {:<24} {:<40} {:>9} {:>10}",
            v.kind,
            veil_proto::sanitize::sanitize(&dash(&v.user)),
            veil_proto::sanitize::sanitize(&dash(&v.source)),
            format!("{}/{}", v.failures, v.limit),
            locked
        );
    }
}

pub fn print_json<T: Serialize>(value: &T) -> Result<(), Failure> {
    let text = serde_json::to_string_pretty(value).map_err(|e| Failure::failed(e.to_string()))?;
    println!("{text}");
    Ok(())
}

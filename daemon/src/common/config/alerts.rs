//! `[alerts]`: a command veild runs on events an admin must hear about
//! (see `crate::veild::alerts`).

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use super::Invalid;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Alerts {
    /// The program to run (an absolute path, run directly: no shell);
    /// unset: no alerts.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub command: Option<PathBuf>,
    /// Its arguments; the event itself is in `VEIL_*` environment variables.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub args: Vec<String>,
    /// At most one run per event kind in this many seconds; the rest are
    /// dropped and counted.
    pub interval_s: u64,
    /// A run still going after this many seconds is killed (its whole
    /// process group).
    pub timeout_s: u64,
    /// A lock storm: more than `storm_locks` locks within `storm_window_s`.
    pub storm_locks: u32,
    pub storm_window_s: u64,
}

impl Default for Alerts {
    fn default() -> Alerts {
        Alerts {
            command: None,
            args: Vec::new(),
            interval_s: 300,
            timeout_s: 10,
            storm_locks: 20,
            storm_window_s: 60,
        }
    }
}

impl Alerts {
    pub(super) fn check(&self) -> Result<(), Invalid> {
        let invalid = |key, message: &str| {
            Err(Invalid {
                key,
                message: message.to_owned(),
            })
        };
        if self
            .command
            .as_ref()
            .is_some_and(|c| !c.is_absolute() || c.file_name().is_none())
        {
            return invalid("alerts.command", "must be an absolute file path");
        }
        if self.args.iter().any(|a| a.contains('\0') || a.len() > 4096) {
            return invalid(
                "alerts.args",
                "must be strings without NUL, each at most 4096 bytes",
            );
        }
        if self.interval_s > 86_400 {
            return invalid("alerts.interval_s", "must be at most 86400");
        }
        if !(1..=60).contains(&self.timeout_s) {
            return invalid("alerts.timeout_s", "must be between 1 and 60");
        }
        if self.storm_locks < 1 {
            return invalid("alerts.storm_locks", "must be at least 1");
        }
        if !(1..=86_400).contains(&self.storm_window_s) {
            return invalid("alerts.storm_window_s", "must be between 1 and 86400");
        }
        Ok(())
    }
}

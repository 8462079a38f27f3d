//! `[metrics]`: where veild writes its Prometheus metrics, for
//! node_exporter's textfile collector and `veilctl metrics`.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::Invalid;

/// The directory Debian's `prometheus-node-exporter` reads `*.prom` from.
pub const NODE_EXPORTER_DIR: &str = "/var/lib/prometheus/node-exporter";
/// The group node_exporter runs as on Debian: the file's default group.
pub const DEFAULT_GROUP: &str = "prometheus";

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Metrics {
    /// The file veild rewrites (a temporary file renamed over it); unset:
    /// `NODE_EXPORTER_DIR/veil.prom` when that directory exists, else none.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub file: Option<PathBuf>,
    /// Seconds between writes; 0 turns metrics off.
    pub interval_s: u64,
    /// The file's group (mode 0640); unset: `prometheus` if that group
    /// exists, else veild's own.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub group: Option<String>,
}

impl Default for Metrics {
    fn default() -> Metrics {
        Metrics {
            file: None,
            interval_s: 15,
            group: None,
        }
    }
}

impl Metrics {
    /// The file to write, if metrics are on: the configured one, or the
    /// node_exporter one when its directory exists.
    pub fn target(&self) -> Option<PathBuf> {
        if self.interval_s == 0 {
            return None;
        }
        match &self.file {
            Some(f) => Some(f.clone()),
            None => Path::new(NODE_EXPORTER_DIR)
                .is_dir()
                .then(|| Path::new(NODE_EXPORTER_DIR).join("veil.prom")),
        }
    }

    pub(super) fn check(&self) -> Result<(), Invalid> {
        let invalid = |key, message: &str| {
            Err(Invalid {
                key,
                message: message.to_owned(),
            })
        };
        if self
            .file
            .as_ref()
            .is_some_and(|f| !f.is_absolute() || f.file_name().is_none())
        {
            return invalid("metrics.file", "must be an absolute file path");
        }
        if self.interval_s > 3600 {
            return invalid("metrics.interval_s", "must be at most 3600");
        }
        if self
            .group
            .as_ref()
            .is_some_and(|g| g.is_empty() || g.len() > 256 || g.contains(char::is_control))
        {
            return invalid("metrics.group", "must be a group name");
        }
        Ok(())
    }
}

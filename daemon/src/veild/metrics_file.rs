//! Writes the metrics to `[metrics] file` every `interval_s` seconds and at
//! exit: a temporary file in the same directory (mode 0640, the configured
//! group), renamed over the old one, so node_exporter never reads half a
//! file. A failure is logged once (and its end), and never touches logins.

use std::fs::OpenOptions;
use std::io::Write as _;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::mpsc::{RecvTimeoutError, Sender, channel};
use std::thread::JoinHandle;
use std::time::Duration;

use nix::unistd::{Gid, Group};

use crate::common::clock::unix_now;
use crate::common::config::metrics::{DEFAULT_GROUP, Metrics as Settings};
use crate::common::ledger::KeyKind;
use crate::common::store::{self, Location, OpenMode, Store, StoreError};
use crate::veild::audit::{Audit, Line, Severity};
use crate::veild::metrics::Metrics;

/// Where and how veild writes the metrics.
#[derive(Debug, Clone)]
pub struct Target {
    pub path: PathBuf,
    /// The file's group; `None`: veild's own.
    pub gid: Option<Gid>,
    pub interval: Duration,
}

/// Why the metrics file has no target or was not written.
#[derive(Debug, thiserror::Error)]
pub enum MetricsFileError {
    #[error("[metrics] group {name:?} does not exist")]
    NoGroup { name: String },
    #[error("[metrics] group {name:?}: {source}")]
    GroupLookup {
        name: String,
        #[source]
        source: nix::Error,
    },
    #[error("{}: written, but not given [metrics] group (gid {gid}): {source}", path.display())]
    Group {
        path: PathBuf,
        gid: u32,
        #[source]
        source: std::io::Error,
    },
    #[error("{}: {source}", path.display())]
    Write {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

/// The target of `[metrics]`, if metrics are on. A group named in the
/// config must exist (else veild refuses to start, as for any bad key);
/// the default `prometheus` group is used only where it exists.
pub fn resolve(settings: &Settings) -> Result<Option<Target>, MetricsFileError> {
    let Some(path) = settings.target() else {
        return Ok(None);
    };
    let gid = match &settings.group {
        Some(name) => match Group::from_name(name) {
            Ok(Some(g)) => Some(g.gid),
            Ok(None) => return Err(MetricsFileError::NoGroup { name: name.clone() }),
            Err(source) => {
                return Err(MetricsFileError::GroupLookup {
                    name: name.clone(),
                    source,
                });
            }
        },
        None => Group::from_name(DEFAULT_GROUP)
            .ok()
            .flatten()
            .map(|g| g.gid),
    };
    Ok(Some(Target {
        path,
        gid,
        interval: Duration::from_secs(settings.interval_s.max(1)),
    }))
}

/// Replaces the file at `target.path` with `text`, atomically.
pub fn write(target: &Target, text: &str) -> Result<(), MetricsFileError> {
    let dir = target.path.parent().unwrap_or(Path::new("/"));
    let name = target
        .path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    // Not `*.prom`: the textfile collector must not read it half-written.
    let tmp = dir.join(format!(".{name}.{}.tmp", std::process::id()));
    let _ = std::fs::remove_file(&tmp);
    let result = (|| -> std::io::Result<std::io::Result<()>> {
        let mut file = OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .custom_flags(libc::O_NOFOLLOW)
            .open(&tmp)?;
        // Not a member of the group (veild as user veil without the
        // drop-in): the file is still written, 0640 in veild's own group,
        // and the failure reported.
        let chown = match target.gid {
            Some(gid) => std::os::unix::fs::fchown(&file, None, Some(gid.as_raw())),
            None => Ok(()),
        };
        // Explicitly: veild.service's UMask=0077 would leave it 0600.
        file.set_permissions(std::fs::Permissions::from_mode(0o640))?;
        file.write_all(text.as_bytes())?;
        std::fs::rename(&tmp, &target.path)?;
        Ok(chown)
    })();
    match result {
        Ok(Ok(())) => Ok(()),
        Ok(Err(source)) => Err(MetricsFileError::Group {
            path: target.path.clone(),
            gid: target.gid.map_or(0, |g| g.as_raw()),
            source,
        }),
        Err(source) => {
            let _ = std::fs::remove_file(&tmp);
            Err(MetricsFileError::Write {
                path: target.path.clone(),
                source,
            })
        }
    }
}

/// The metrics thread's own store connection (never a worker's, so no
/// login waits on it), for the locks-in-force gauge: opened when first
/// needed and again after a failure.
struct InForce {
    location: Location,
    store: Option<Box<dyn Store>>,
}

impl InForce {
    fn count(&mut self, metrics: &Metrics) {
        // While the store fails logins no connection is tried (it would
        // hold the file back by a connect timeout); the gauge is left out.
        let counted = if metrics.store_is_up() {
            self.try_count()
        } else {
            Err(None)
        };
        if counted.is_err() {
            self.store = None;
        }
        metrics.set_locks_in_force(counted.ok().as_deref());
    }

    fn try_count(&mut self) -> Result<Vec<(KeyKind, i64)>, Option<StoreError>> {
        let store = match self.store.take() {
            Some(s) if s.still_usable() => s,
            _ => store::open(&self.location, OpenMode::MustExist)?,
        };
        let store = self.store.insert(store);
        let now = store.fleet_now(unix_now().min(i64::MAX as u64) as i64)?;
        Ok(store.locks_in_force(now)?)
    }
}

/// Stops the writer (after a last write) when dropped or sent to.
pub type Stop = Sender<()>;

/// Starts the writer thread: a write now, every interval, and at stop,
/// each after counting the locks in force in the store at `location`.
pub fn start(
    target: Target,
    location: Location,
    metrics: Arc<Metrics>,
    audit: Audit,
) -> std::io::Result<(Stop, JoinHandle<()>)> {
    let (stop, stopped) = channel::<()>();
    let interval = target.interval;
    let handle = std::thread::Builder::new()
        .name("metrics".into())
        .spawn(move || {
            let mut failing = false;
            let mut in_force = InForce {
                location,
                store: None,
            };
            let mut write_now = || {
                in_force.count(&metrics);
                match write(&target, &metrics.render()) {
                    Ok(()) if failing => {
                        failing = false;
                        audit.log(
                            Severity::Notice,
                            Line::new("metrics")
                                .field("file", target.path.display())
                                .field("state", "written-again")
                                .finish(),
                        );
                    }
                    Ok(()) => {}
                    Err(e) if !failing => {
                        failing = true;
                        audit.log(
                            Severity::Warning,
                            Line::new("metrics").field("error", e).finish(),
                        );
                    }
                    Err(_) => {}
                }
            };
            loop {
                write_now();
                if !matches!(
                    stopped.recv_timeout(interval),
                    Err(RecvTimeoutError::Timeout)
                ) {
                    // Stopping: the final counts, then out.
                    write_now();
                    return;
                }
            }
        })?;
    Ok((stop, handle))
}

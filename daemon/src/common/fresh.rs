//! The fresh-code window (`[service.NAME] fresh_code_window_s`): within N
//! seconds after a user passed password and code in a login session on
//! this host, that service accepts the password with the code left empty
//! in the same session.
//!
//! "The same session" is the kernel's word, never a client's: the audit
//! session id (`/proc/PID/sessionid`), which pam_loginuid gives a login
//! in its session phase, which every process of the login inherits, and
//! which only `CAP_AUDIT_CONTROL` can set. veild reads it itself, for the
//! peer's pid (`SO_PEERCRED`). Two steps:
//!
//! 1. Binding. A login that verified password and code, from a root peer
//!    whose real uid is 0 (sshd, login: not a setuid front end), is
//!    remembered for [`BIND_WITHIN_S`] with the peer's pid and parent pid.
//!    pam_veil's `open_session` then sends a [`SessionNote`]; veild binds
//!    the peer's session id to the user only if the peer is root, its
//!    session id is set, and it is the process that ran that login or its
//!    parent (sshd runs `pam_authenticate` in a child it forks, and the
//!    session phase in itself), and each login binds once. So another
//!    connection's session (one that logged in with a key alone at the
//!    same moment) cannot take a login that was not its own.
//! 2. Use. A request of a service with a window reads the peer's session
//!    id (sudo's own process, which inherits it) and the binding of (host,
//!    boot, session id, user); with `bound_at + N > now` an empty code
//!    passes. Every request of such a service does this same work.

use std::path::Path;

use veil_proto::session::{SessionNote, SessionOp};

use crate::common::peer::Peer;
use crate::common::store::{SessionKey, Store, StoreError};

/// The largest window an admin may set, and how long a binding is kept.
pub const MAX_WINDOW_S: u64 = 3600;

/// How long after a login its session phase may bind it.
pub const BIND_WITHIN_S: u64 = 60;

/// `/proc/PID/sessionid` of a process no login session has claimed.
pub const NO_SESSION: u32 = u32::MAX;

/// Logins waiting for their session phase, at most; the oldest go first.
const MAX_RECENT: usize = 4096;

/// What the kernel says of a peer process; `None` where /proc did not say.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ProcInfo {
    /// The audit session id, unless unset ([`NO_SESSION`]).
    pub session: Option<u32>,
    pub ppid: Option<i32>,
}

/// Reads `/proc/PID/sessionid` and the parent pid of `/proc/PID/stat`.
pub fn read_proc(pid: i32) -> ProcInfo {
    let dir = Path::new("/proc").join(pid.to_string());
    ProcInfo {
        session: std::fs::read_to_string(dir.join("sessionid"))
            .ok()
            .and_then(|t| parse_session(&t)),
        ppid: std::fs::read_to_string(dir.join("stat"))
            .ok()
            .and_then(|t| parse_ppid(&t)),
    }
}

/// A session id, or `None` when unset or unreadable.
pub fn parse_session(text: &str) -> Option<u32> {
    text.trim().parse::<u32>().ok().filter(|&s| s != NO_SESSION)
}

/// The parent pid: the second field after the command, which is in
/// parentheses and may itself hold spaces and parentheses.
pub fn parse_ppid(stat: &str) -> Option<i32> {
    let rest = &stat[stat.rfind(')')? + 1..];
    rest.split_whitespace().nth(1)?.parse().ok()
}

/// This host as its bindings are keyed: its name and its boot (session
/// ids start again at each boot).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostKey {
    pub host: String,
    pub boot: String,
}

impl HostKey {
    pub fn this_host() -> HostKey {
        HostKey {
            host: crate::common::totp::host_name(),
            boot: std::fs::read_to_string("/proc/sys/kernel/random/boot_id")
                .map(|t| t.trim().to_owned())
                .unwrap_or_default(),
        }
    }

    pub fn key<'a>(&'a self, session: u32, user: &'a str) -> SessionKey<'a> {
        SessionKey {
            host: &self.host,
            boot: &self.boot,
            session,
            user,
        }
    }
}

/// Why this veild cannot tell sessions apart, if it cannot: another
/// user's /proc entries are hidden from it (`ProtectProc=invisible` in
/// veild.service, `hidepid=`), or the boot id is (`ProcSubset=pid`).
/// Then no window ever opens; veild says so at start.
pub fn proc_problem(host: &HostKey) -> Option<&'static str> {
    if host.boot.is_empty() {
        return Some("/proc/sys/kernel/random/boot_id is not readable (ProcSubset=pid?)");
    }
    // PID 1 is root's: visible only without hidepid.
    if std::fs::read_to_string("/proc/1/sessionid").is_err() {
        return Some("other users' /proc/PID/sessionid is hidden (ProtectProc=invisible?)");
    }
    None
}

/// One login that verified password and code, not yet bound.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Login {
    user: String,
    service: String,
    pid: i32,
    ppid: Option<i32>,
    at: u64,
}

/// The logins waiting for their session phase (shared by the workers).
#[derive(Debug, Default)]
pub struct Recent {
    logins: Vec<Login>,
}

impl Recent {
    /// Remembers a login of `user` on `service` by process `pid` (whose
    /// parent is `ppid`) at `now`.
    pub fn record(&mut self, user: &str, service: &str, pid: i32, ppid: Option<i32>, now: u64) {
        self.logins
            .retain(|l| now.saturating_sub(l.at) <= BIND_WITHIN_S && l.at <= now);
        if self.logins.len() >= MAX_RECENT {
            self.logins.remove(0);
        }
        self.logins.push(Login {
            user: user.to_owned(),
            service: service.to_owned(),
            pid,
            ppid,
            at: now,
        });
    }

    /// Takes the login a session phase in process `pid` may bind: of the
    /// same user and service, run by `pid` itself or a child of it, within
    /// [`BIND_WITHIN_S`]. Each login is taken once.
    pub fn claim(&mut self, user: &str, service: &str, pid: i32, now: u64) -> bool {
        let found = self.logins.iter().rposition(|l| {
            l.user == user
                && l.service == service
                && (l.pid == pid || l.ppid == Some(pid))
                && l.at <= now
                && now - l.at <= BIND_WITHIN_S
        });
        match found {
            Some(i) => {
                self.logins.remove(i);
                true
            }
            None => false,
        }
    }
}

/// Whether a binding made at `bound_at` still opens a window of
/// `window_s` seconds at `now` (a clock that went back closes it).
pub fn window_open(bound_at: Option<i64>, window_s: u64, now: i64) -> bool {
    match bound_at {
        Some(at) if window_s > 0 => at <= now && now < at.saturating_add(window_s as i64),
        _ => false,
    }
}

/// What veild made of a session note, for its log.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NoteOutcome {
    Bound {
        session: u32,
    },
    Closed {
        session: u32,
        rows: usize,
    },
    /// Not bound: why.
    Ignored(&'static str),
}

impl NoteOutcome {
    pub fn reason(&self) -> &'static str {
        match self {
            NoteOutcome::Bound { .. } => "bound",
            NoteOutcome::Closed { .. } => "closed",
            NoteOutcome::Ignored(why) => why,
        }
    }
}

/// Applies one session note from `peer`, whose /proc says `proc`. `any_window`:
/// some service has a window (else nothing is bound).
pub fn apply_note(
    store: &mut dyn Store,
    recent: &mut Recent,
    host: &HostKey,
    note: &SessionNote,
    (peer, proc): (Peer, ProcInfo),
    any_window: bool,
    now: u64,
) -> Result<NoteOutcome, StoreError> {
    if peer.uid != 0 {
        return Ok(NoteOutcome::Ignored("peer-not-root"));
    }
    let Some(session) = proc.session else {
        return Ok(NoteOutcome::Ignored("no-audit-session"));
    };
    if host.boot.is_empty() {
        // Session ids start again at each boot: without the boot in the
        // key, a binding could outlive a reboot.
        return Ok(NoteOutcome::Ignored("no-boot-id"));
    }
    let key = host.key(session, &note.user);
    match note.op {
        SessionOp::Close => Ok(NoteOutcome::Closed {
            session,
            rows: store.fresh_unbind(&key)?,
        }),
        SessionOp::Open if !any_window => Ok(NoteOutcome::Ignored("no-window-configured")),
        SessionOp::Open => {
            if !recent.claim(&note.user, &note.service, peer.pid, now) {
                return Ok(NoteOutcome::Ignored("no-fresh-login"));
            }
            store.fresh_bind(&key, now.min(i64::MAX as u64) as i64)?;
            Ok(NoteOutcome::Bound { session })
        }
    }
}

#[cfg(test)]
mod tests;

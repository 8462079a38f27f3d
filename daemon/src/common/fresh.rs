//! The fresh-code window (`[service.NAME] fresh_code_window_s`): within N
//! seconds after a user passed password and code in a login session on
//! this host, that service accepts the password with the code left empty
//! in the same session.
//!
//! "The same session" is the kernel's word, never a client's: the audit
//! session id (`/proc/PID/sessionid`), which pam_loginuid gives a login
//! in its session phase, which every process of the login inherits, and
//! which only `CAP_AUDIT_CONTROL` can set. pam_veil reads it inside the
//! PAM application, with the boot id and its parent pid, and sends them
//! ([`veil_proto::process`]); veild believes them from a root peer only
//! ([`Claimed`]), as it believes `ruid`, and reads no /proc itself (its
//! unit hides other users' processes and the boot id from it). The peer's
//! own pid is the kernel's (`SO_PEERCRED`). Two steps:
//!
//! 1. Binding. A login that verified password and code, from a root peer
//!    whose real uid is 0 (sshd, login: not a setuid front end), is
//!    remembered for [`BIND_WITHIN_S`] with the peer's pid and the parent
//!    pid its module sent. pam_veil's `open_session` then sends a
//!    [`SessionNote`] with its session id; veild binds that session to the
//!    user only if the peer is root, sent a session id and boot id, and is
//!    the process that ran that login or its parent (sshd runs
//!    `pam_authenticate` in a child it forks, and the session phase in
//!    itself), and each login binds once. So another connection's session
//!    (one that logged in with a key alone at the same moment) cannot
//!    take a login that was not its own.
//! 2. Use. A request of a service with a window looks up the binding of
//!    (host, boot, session id, user) its module sent (sudo's own process,
//!    which inherits the session); with `bound_at + N > now` an empty code
//!    passes. Every such request that carries a session id does this same
//!    work.

use veil_proto::Request;
use veil_proto::session::{SessionNote, SessionOp};

use crate::common::peer::Peer;
use crate::common::store::{SessionKey, Store, StoreError};

/// The largest window an admin may set, and how long a binding is kept.
pub const MAX_WINDOW_S: u64 = 3600;

/// How long after a login its session phase may bind it.
pub const BIND_WITHIN_S: u64 = 60;

/// Logins waiting for their session phase, at most; the oldest go first.
const MAX_RECENT: usize = 4096;

/// What a peer's module said of its process, as veild takes it: from a
/// root peer only. A process that is not root could name any session id
/// (another user's, or its own user's other login), so its claims count
/// for nothing; root could set its session id anyway.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Claimed<'a> {
    pub session: Option<u32>,
    pub boot: Option<&'a str>,
    pub ppid: Option<i32>,
}

impl<'a> Claimed<'a> {
    /// What an auth request claims, if `peer` is root.
    pub fn of_request(request: &'a Request, peer: Peer) -> Claimed<'a> {
        if peer.uid != 0 {
            return Claimed::default();
        }
        Claimed {
            session: request.audit_session,
            boot: request.boot_id.as_deref(),
            ppid: request.ppid.and_then(|p| i32::try_from(p).ok()),
        }
    }

    /// What a session note claims, if `peer` is root.
    pub fn of_note(note: &'a SessionNote, peer: Peer) -> Claimed<'a> {
        if peer.uid != 0 {
            return Claimed::default();
        }
        Claimed {
            session: note.audit_session,
            boot: note.boot_id.as_deref(),
            ppid: None,
        }
    }

    /// The binding's key on `host` for `user`, if the claim names both a
    /// session and a boot (session ids start again at each boot: without
    /// the boot in the key, a binding could outlive a reboot).
    pub fn key(&self, host: &'a str, user: &'a str) -> Option<SessionKey<'a>> {
        Some(SessionKey {
            host,
            boot: self.boot?,
            session: self.session?,
            user,
        })
    }
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
        // A pid of 0 is no process (a peer outside veild's pid namespace).
        let found = self.logins.iter().rposition(|l| {
            pid > 0
                && l.user == user
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

    /// What the admin can do about an outcome that is likely a setup
    /// mistake, for the log line.
    pub fn hint(&self) -> Option<&'static str> {
        match self {
            NoteOutcome::Ignored("no-audit-session") => Some(
                "the module sent no audit session id: put session required pam_loginuid.so before pam_veil.so's session line, and upgrade pam_veil.so with veild",
            ),
            NoteOutcome::Ignored("no-boot-id") => {
                Some("the module could not read /proc/sys/kernel/random/boot_id")
            }
            _ => None,
        }
    }
}

/// Applies one session note from `peer` on `host`. `any_window`: some
/// service has a window (else nothing is bound).
pub fn apply_note(
    store: &mut dyn Store,
    recent: &mut Recent,
    host: &str,
    note: &SessionNote,
    peer: Peer,
    any_window: bool,
    now: u64,
) -> Result<NoteOutcome, StoreError> {
    if peer.uid != 0 {
        return Ok(NoteOutcome::Ignored("peer-not-root"));
    }
    let claimed = Claimed::of_note(note, peer);
    let Some(session) = claimed.session else {
        return Ok(NoteOutcome::Ignored("no-audit-session"));
    };
    let Some(key) = claimed.key(host, &note.user) else {
        return Ok(NoteOutcome::Ignored("no-boot-id"));
    };
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

//! Who an attempt is charged to: its [`Origin`] (remote address, local
//! caller or console) and the keys that origin counts against
//! ([`charge_for`], [`peer_charge`]). Its own file because it is the
//! ledger's input side, apart from the counters and the plan.

use crate::common::source::{self, Sources};

use super::{Key, KeyKind, LOCAL, Limits, LockoutScope};

/// The source named by PAM_RHOST, or [`LOCAL`].
pub fn source_of(rhost: &str) -> &str {
    if rhost.is_empty() { LOCAL } else { rhost }
}

/// The stored form of a source an admin typed (`veilctl unlock --source`):
/// `local` is the console, an address counts as its block (as an attempt
/// from it does), `names` and anything else are kept as typed (`uid:N`,
/// `ruser:NAME`).
pub fn source_from_admin(sources: &Sources, typed: &str) -> String {
    if typed == LOCAL {
        String::new()
    } else if let Some(address) = source::address(typed) {
        sources.group(&address.to_string())
    } else {
        typed.to_owned()
    }
}

/// PAM services whose root-started application (real uid 0) with no
/// remote host is someone at the console: getty's `login` and the display
/// managers. Nobody but root can start these as root.
pub const CONSOLE_SERVICES: &[&str] = &["login", "gdm-password", "lightdm", "sddm", "xdm"];

/// Where an attempt comes from, as the ledger charges it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Origin {
    /// PAM_RHOST as root reported it, as one address or `names`
    /// ([`source::canonical`]); grouped by the configured prefix when charged.
    Remote(String),
    /// A local requester: `uid:N` for whoever ran the program (a setuid
    /// front end's caller, or a local user's own program), `service:NAME`
    /// for a program root started that is not a console login.
    Caller(String),
    /// A console login service ([`CONSOLE_SERVICES`]) started by root,
    /// with no remote host.
    Console,
}

impl Origin {
    /// A root peer's report. `ruid` is the real uid of the PAM application:
    /// not 0, it is whoever ran a setuid front end, whatever the program
    /// set as PAM_RHOST or PAM_RUSER (both are the program's claims, and a
    /// user can start it). From 0 (a program root started): PAM_RHOST if
    /// set, else the console for a console service, else the service.
    pub fn from_root(rhost: &str, ruid: u32, service: &str) -> Origin {
        if ruid != 0 {
            Origin::local_uid(ruid)
        } else if !rhost.is_empty() {
            Origin::Remote(source::canonical(rhost))
        } else if CONSOLE_SERVICES.contains(&service) {
            Origin::Console
        } else {
            Origin::Caller(format!("service:{service}"))
        }
    }

    /// A local user's own program, asking about its own account.
    pub fn local_uid(uid: u32) -> Origin {
        Origin::Caller(format!("uid:{uid}"))
    }

    /// The stored source string.
    pub fn source(&self) -> &str {
        match self {
            Origin::Remote(s) | Origin::Caller(s) => s,
            Origin::Console => "",
        }
    }
}

/// What one attempt is charged to: its keys, and the (user, source) pair
/// whose known-good standing can spare it the wide keys.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Charge {
    pub user: String,
    pub source: String,
    pub keys: Vec<Key>,
}

/// The keys an attempt at `user` from `origin` counts against.
pub fn charge_for(limits: &Limits, user: &str, origin: &Origin) -> Charge {
    let key = |kind, user: &str, source: &str| Key {
        kind,
        user: user.to_owned(),
        source: source.to_owned(),
    };
    // A remote address counts as its block at the configured prefix.
    let source = match origin {
        Origin::Remote(address) => limits.sources.group(address),
        _ => origin.source().to_owned(),
    };
    let source = source.as_str();
    let keys = match (limits.scope, origin) {
        (LockoutScope::User, _) => vec![key(KeyKind::User, user, "")],
        (LockoutScope::Source, Origin::Console) => vec![key(KeyKind::UserSource, user, "")],
        (LockoutScope::Source, Origin::Caller(_)) => vec![
            key(KeyKind::UserSource, user, source),
            key(KeyKind::Source, "", source),
        ],
        // An admin network is charged to its own (user, source) key only:
        // a botnet's locks of the wide keys never refuse it, and its own
        // `deny` still stops guessing from inside it.
        (LockoutScope::Source, Origin::Remote(address)) if limits.sources.exempt(address) => {
            vec![key(KeyKind::UserSource, user, source)]
        }
        (LockoutScope::Source, Origin::Remote(_)) => vec![
            key(KeyKind::UserSource, user, source),
            key(KeyKind::UserRemote, user, ""),
            key(KeyKind::Source, "", source),
        ],
    };
    Charge {
        user: user.to_owned(),
        source: source.to_owned(),
        keys,
    }
}

/// The one key of a non-root peer that asked about an account not its own.
pub fn peer_charge(uid: u32) -> Charge {
    let source = format!("uid:{uid}");
    Charge {
        user: String::new(),
        keys: vec![Key {
            kind: KeyKind::Peer,
            user: String::new(),
            source: source.clone(),
        }],
        source,
    }
}

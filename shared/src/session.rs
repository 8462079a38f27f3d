//! Session notes: `pam_sm_open_session` and `pam_sm_close_session` tell
//! veild that a login session opened or closed, for the fresh-code window
//! (`[service.NAME] fresh_code_window_s`). A note carries no secret; it
//! carries what the kernel says of the application's process (its audit
//! session id and the boot id, [`crate::process`]), which veild believes
//! from a root peer only.
//!
//! A request kind of its own, like self-service: its body names this
//! kind's version under the key `"session"`; a body with it is a
//! [`SessionNote`] or nothing. An older veild, which does not know the
//! key, reads it as a malformed login and answers DENY; the module ignores
//! the answer either way, so no login ever depends on it.

use serde::{Deserialize, Serialize};
use zeroize::Zeroizing;

use crate::codec::{DecodeError, check_boot_id, check_name, encode_frame};
use crate::process::ProcessFacts;
use crate::proto::MAX_REQUEST;

/// Version of the session kind, carried under `"session"`.
pub const SESSION_VERSION: u32 = 1;

/// What happened to the session.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum SessionOp {
    /// `pam_sm_open_session`: bind the login that just verified a password
    /// and a code to the peer's audit session.
    Open,
    /// `pam_sm_close_session`: the window of the peer's session ends.
    Close,
}

impl SessionOp {
    pub fn as_str(self) -> &'static str {
        match self {
            SessionOp::Open => "open",
            SessionOp::Close => "close",
        }
    }
}

/// One session note: PAM_USER and PAM_SERVICE of the session's handle.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SessionNote {
    /// Must equal [`SESSION_VERSION`]. Its key tells this kind apart.
    #[serde(rename = "session")]
    pub version: u32,
    pub op: SessionOp,
    pub user: String,
    #[serde(default)]
    pub service: String,
    /// The application's audit session id, set by pam_loginuid before
    /// this module's session line; left out when unset (then nothing is
    /// bound, and veild says why).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub audit_session: Option<u32>,
    /// The kernel's boot id; left out when unreadable.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub boot_id: Option<String>,
}

impl SessionNote {
    pub fn new(op: SessionOp, user: &str, service: &str) -> SessionNote {
        SessionNote {
            version: SESSION_VERSION,
            op,
            user: user.to_owned(),
            service: service.to_owned(),
            audit_session: None,
            boot_id: None,
        }
    }

    /// Carries what the kernel says of this process ([`crate::process`]).
    pub fn with_process(mut self, facts: &ProcessFacts) -> SessionNote {
        self.audit_session = facts.session;
        self.boot_id = facts.boot_id.clone();
        self
    }
}

/// Parses and validates one session note body.
pub fn decode_session_note(body: &[u8]) -> Result<SessionNote, DecodeError> {
    if body.is_empty() {
        return Err(DecodeError::ZeroLength);
    }
    if body.len() > MAX_REQUEST {
        return Err(DecodeError::Oversize(body.len() as u32));
    }
    let text = std::str::from_utf8(body).map_err(|_| DecodeError::NotUtf8)?;
    let note: SessionNote = serde_json::from_str(text).map_err(|e| {
        DecodeError::Malformed(format!("{:?} error at column {}", e.classify(), e.column()))
    })?;
    if note.version != SESSION_VERSION {
        return Err(DecodeError::UnknownVersion(note.version));
    }
    check_name("user", &note.user, false)?;
    check_name("service", &note.service, true)?;
    check_boot_id(note.boot_id.as_deref())?;
    Ok(note)
}

/// One note as a frame.
pub fn encode_session_note(note: &SessionNote) -> Zeroizing<Vec<u8>> {
    encode_frame(note)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::self_service::{Incoming, decode_incoming};

    fn body(note: &SessionNote) -> Vec<u8> {
        encode_session_note(note)[crate::proto::LEN_PREFIX..].to_vec()
    }

    #[test]
    fn a_note_round_trips_and_is_its_own_kind() {
        let note = SessionNote::new(SessionOp::Open, "alice", "sshd");
        let got = decode_incoming(&body(&note)).unwrap();
        assert!(matches!(got, Incoming::Session(n) if n == note));
        let close = SessionNote::new(SessionOp::Close, "alice", "");
        assert!(
            matches!(decode_incoming(&body(&close)).unwrap(), Incoming::Session(n) if n == close)
        );
    }

    #[test]
    fn a_note_carries_the_process_facts_only_when_the_module_has_them() {
        let bare = SessionNote::new(SessionOp::Open, "alice", "sshd");
        let text = String::from_utf8(body(&bare)).unwrap();
        assert!(
            !text.contains("audit_session") && !text.contains("boot_id"),
            "{text}"
        );
        let facts = ProcessFacts {
            session: Some(7),
            boot_id: Some("6f1c6a2e-3b8d-4c1e-9f0a-2d5b7c9e1a34".into()),
            ppid: Some(1),
        };
        let note = bare.with_process(&facts);
        let got = decode_incoming(&body(&note)).unwrap();
        assert!(matches!(got, Incoming::Session(n) if n == note));
        let odd = br#"{"session":1,"op":"open","user":"alice","audit_session":7,"boot_id":"x"}"#;
        assert_eq!(
            decode_session_note(odd).unwrap_err(),
            DecodeError::BadField("boot_id")
        );
    }

    #[test]
    fn a_note_with_a_login_field_or_a_bad_name_is_refused() {
        let mixed = br#"{"session":1,"op":"open","user":"alice","service":"sshd","v":4}"#;
        assert!(decode_incoming(mixed).is_err());
        let empty_user = br#"{"session":1,"op":"open","user":"","service":"sshd"}"#;
        assert_eq!(
            decode_session_note(empty_user).unwrap_err(),
            DecodeError::BadField("user")
        );
        let newer = br#"{"session":2,"op":"open","user":"alice","service":"sshd"}"#;
        assert_eq!(
            decode_session_note(newer).unwrap_err(),
            DecodeError::UnknownVersion(2)
        );
    }
}

//! The request type, the two response constants and the protocol limits.

use std::fmt;

use serde::{Deserialize, Serialize};
use zeroize::{Zeroize, ZeroizeOnDrop};

/// Version carried in every request; anything else is a decode error.
pub const PROTOCOL_VERSION: u32 = 1;

/// Size of the big-endian length prefix.
pub const LEN_PREFIX: usize = 4;

/// Largest request body accepted, checked before any allocation.
pub const MAX_REQUEST: usize = 8 * 1024;

/// Largest user, service, rhost, tty or ruser accepted (Linux-PAM's own
/// limits are far below this; longer values are hostile).
pub const MAX_FIELD_LEN: usize = 512;

/// The one success frame: length 11, `{"ok":true}`.
pub const ALLOW: [u8; 15] = *b"\x00\x00\x00\x0b{\"ok\":true}";

/// The one denial frame, identical for every failure: length 12, `{"ok":false}`.
pub const DENY: [u8; 16] = *b"\x00\x00\x00\x0c{\"ok\":false}";

/// What the client makes of the daemon's answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    Allow,
    /// DENY, garbage, silence, or a closed connection: all the same to the caller.
    Deny,
}

impl Verdict {
    /// Only the exact ALLOW bytes allow; everything else denies.
    pub fn from_response(bytes: &[u8]) -> Verdict {
        if bytes == ALLOW {
            Verdict::Allow
        } else {
            Verdict::Deny
        }
    }

    pub fn frame(self) -> &'static [u8] {
        match self {
            Verdict::Allow => &ALLOW,
            Verdict::Deny => &DENY,
        }
    }
}

/// A password or one-time code: wiped on drop, never printed.
#[derive(Clone, Default, PartialEq, Eq, Zeroize, ZeroizeOnDrop, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Secret(String);

impl Secret {
    pub fn new(value: String) -> Secret {
        Secret(value)
    }

    pub fn expose(&self) -> &str {
        &self.0
    }

    pub fn len(&self) -> usize {
        self.0.len()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl From<&str> for Secret {
    fn from(value: &str) -> Secret {
        Secret(value.to_owned())
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("<redacted>")
    }
}

/// One authentication question. Optional PAM items are empty strings when unset.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Request {
    /// Protocol version; must equal [`PROTOCOL_VERSION`].
    pub v: u32,
    pub user: String,
    pub password: Secret,
    pub code: Secret,
    #[serde(default)]
    pub service: String,
    #[serde(default)]
    pub rhost: String,
    #[serde(default)]
    pub tty: String,
    #[serde(default)]
    pub ruser: String,
}

impl Request {
    /// A request at the current protocol version.
    pub fn new(user: &str, password: Secret, code: Secret) -> Request {
        Request {
            v: PROTOCOL_VERSION,
            user: user.to_owned(),
            password,
            code,
            service: String::new(),
            rhost: String::new(),
            tty: String::new(),
            ruser: String::new(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn response_constants_are_well_formed_frames() {
        for frame in [&ALLOW[..], &DENY[..]] {
            let len = u32::from_be_bytes([frame[0], frame[1], frame[2], frame[3]]) as usize;
            assert_eq!(len, frame.len() - LEN_PREFIX);
            let _: serde_json::Value = serde_json::from_slice(&frame[LEN_PREFIX..]).unwrap();
        }
        assert_ne!(&ALLOW[..], &DENY[..]);
    }

    #[test]
    fn only_exact_allow_bytes_allow() {
        assert_eq!(Verdict::from_response(&ALLOW), Verdict::Allow);
        assert_eq!(Verdict::from_response(&DENY), Verdict::Deny);
        assert_eq!(Verdict::from_response(&ALLOW[..14]), Verdict::Deny);
        let mut longer = ALLOW.to_vec();
        longer.push(b' ');
        assert_eq!(Verdict::from_response(&longer), Verdict::Deny);
        assert_eq!(Verdict::from_response(b""), Verdict::Deny);
    }

    #[test]
    fn secrets_are_redacted_in_debug_output() {
        let req = Request::new("alice", Secret::from("hunter2"), Secret::from("123456"));
        let shown = format!("{req:?}");
        assert!(!shown.contains("hunter2"));
        assert!(!shown.contains("123456"));
        assert!(shown.contains("<redacted>"));
    }
}

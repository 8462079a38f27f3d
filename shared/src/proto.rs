//! The request type, the two response constants and the protocol limits.

use std::fmt;

use serde::{Deserialize, Serialize};
use zeroize::{Zeroize, ZeroizeOnDrop, Zeroizing};

use crate::process::ProcessFacts;

/// Version carried in every request; anything else is a decode error.
/// 2: replies are fixed-size byte fields ([`Reply`]) instead of strings.
/// 3: every request carries `ruid`, the PAM application's real uid (who
/// ran it); a request without it does not decode. An old module and a new
/// veild, or the reverse, therefore get DENY, charged to no ledger key.
/// 4: every request carries `answered`, the module's `CLOCK_MONOTONIC`
/// when the conversation returned the last answer; veild's failure
/// deadline starts there. A protocol-3 request is refused the same way.
/// Also new in 4: `one_prompt` (left out when false). Added within 4,
/// optional: `audit_session`, `boot_id` and `ppid` (the fresh-code window;
/// left out when the module has none). A veild from before them (0.3.0)
/// refuses a request that carries them as malformed; this veild takes a
/// request without them, so no bump was needed.
pub const PROTOCOL_VERSION: u32 = 4;

/// Where veild listens unless configured otherwise (the Debian package's
/// socket unit), and where pam_veil.so looks unless `socket=` says.
pub const DEFAULT_SOCKET: &str = "/run/veil/veild.sock";

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
    /// The verdict of exactly one of the two frames; any other bytes are
    /// no verdict at all (the caller denies, and says why).
    pub fn from_response(bytes: &[u8]) -> Option<Verdict> {
        if bytes == ALLOW {
            Some(Verdict::Allow)
        } else if bytes == DENY {
            Some(Verdict::Deny)
        } else {
            None
        }
    }

    pub fn frame(self) -> &'static [u8] {
        match self {
            Verdict::Allow => &ALLOW,
            Verdict::Deny => &DENY,
        }
    }
}

/// A password or one-time code: wiped on drop, never printed. Bytes, not
/// text: what a conversation returns need not be UTF-8, and veil must treat
/// every reply alike (sshd replaces an unknown account's reply with ASCII
/// junk, so anything that singles out non-UTF-8 bytes marks real accounts).
#[derive(Clone, Default, PartialEq, Eq, Zeroize, ZeroizeOnDrop)]
pub struct Secret(Vec<u8>);

impl Secret {
    pub fn new(bytes: Vec<u8>) -> Secret {
        Secret(bytes)
    }

    pub fn expose(&self) -> &[u8] {
        &self.0
    }

    /// The bytes, moved out (no copy is left behind).
    pub fn into_bytes(mut self) -> Vec<u8> {
        std::mem::take(&mut self.0)
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
        Secret(value.as_bytes().to_vec())
    }
}

impl From<&[u8]> for Secret {
    fn from(value: &[u8]) -> Secret {
        Secret(value.to_vec())
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("<redacted>")
    }
}

/// Bytes of a reply carried on the wire: Linux-PAM's `PAM_MAX_RESP_SIZE`
/// (pam_unix refuses longer passwords too). A longer reply is cut to this
/// and marked [`ReplyState::Overlong`]: veild still does all the work on
/// it and then denies, so the length of what was typed changes nothing.
pub const REPLY_CAP: usize = 512;

/// Characters of one reply field on the wire: hex of a 2-byte header and
/// [`REPLY_CAP`] bytes, whatever the reply. The request's size therefore
/// never depends on what was typed (sshd's fake password for an unknown
/// account escapes differently under JSON than the real bytes would).
pub const REPLY_WIRE_CHARS: usize = 2 * (2 + REPLY_CAP);

const HEADER_MISSING: u16 = 0xffff;
const HEADER_OVERLONG: u16 = 0xfffe;

/// What the conversation gave for one prompt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReplyState {
    /// Bytes the person (or sshd's substitute) typed, all of them.
    Given,
    /// No reply: the conversation failed, returned nothing, or
    /// `use_first_pass` found no stored password.
    Missing,
    /// Longer than [`REPLY_CAP`]; the first [`REPLY_CAP`] bytes are kept.
    Overlong,
}

/// One prompt's answer as veild receives it. Every state is verified with
/// the same work; only [`ReplyState::Given`] can ever match.
#[derive(Clone, PartialEq, Eq)]
pub struct Reply {
    bytes: Secret,
    state: ReplyState,
}

impl Reply {
    /// A reply of any bytes and any length; longer than [`REPLY_CAP`] is
    /// cut (the tail wiped first) and marked overlong.
    pub fn given(mut bytes: Vec<u8>) -> Reply {
        let state = if bytes.len() > REPLY_CAP {
            bytes[REPLY_CAP..].zeroize();
            bytes.truncate(REPLY_CAP);
            ReplyState::Overlong
        } else {
            ReplyState::Given
        };
        Reply {
            bytes: Secret::new(bytes),
            state,
        }
    }

    /// No reply at all.
    pub fn missing() -> Reply {
        Reply {
            bytes: Secret::default(),
            state: ReplyState::Missing,
        }
    }

    /// The bytes to verify (empty when missing, cut when overlong).
    pub fn bytes(&self) -> &[u8] {
        self.bytes.expose()
    }

    pub fn state(&self) -> ReplyState {
        self.state
    }

    /// Whether these bytes are the whole reply (only then can it match).
    pub fn is_whole(&self) -> bool {
        self.state == ReplyState::Given
    }
}

impl From<&str> for Reply {
    fn from(value: &str) -> Reply {
        Reply::given(value.as_bytes().to_vec())
    }
}

impl fmt::Debug for Reply {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Reply({:?}, <redacted>)", self.state)
    }
}

const HEX: &[u8; 16] = b"0123456789abcdef";

impl Serialize for Reply {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let header = match self.state {
            ReplyState::Given => self.bytes.len() as u16,
            ReplyState::Missing => HEADER_MISSING,
            ReplyState::Overlong => HEADER_OVERLONG,
        };
        // Sized once, so no reallocation leaves a copy of the secret behind.
        let mut text = Zeroizing::new(String::with_capacity(REPLY_WIRE_CHARS));
        let padded = self
            .bytes
            .expose()
            .iter()
            .copied()
            .chain(std::iter::repeat(0))
            .take(REPLY_CAP);
        for byte in header.to_be_bytes().into_iter().chain(padded) {
            text.push(HEX[usize::from(byte >> 4)] as char);
            text.push(HEX[usize::from(byte & 0x0f)] as char);
        }
        serializer.serialize_str(&text)
    }
}

impl<'de> Deserialize<'de> for Reply {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Reply, D::Error> {
        deserializer.deserialize_str(ReplyVisitor)
    }
}

struct ReplyVisitor;

impl serde::de::Visitor<'_> for ReplyVisitor {
    type Value = Reply;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{REPLY_WIRE_CHARS} lowercase hex digits")
    }

    fn visit_str<E: serde::de::Error>(self, text: &str) -> Result<Reply, E> {
        // The error never quotes the value: it holds a secret.
        let bad = || E::custom("a reply field is not of the fixed hex form");
        let digits = text.as_bytes();
        if digits.len() != REPLY_WIRE_CHARS {
            return Err(bad());
        }
        let nibble = |c: u8| match c {
            b'0'..=b'9' => Some(c - b'0'),
            b'a'..=b'f' => Some(c - b'a' + 10),
            _ => None,
        };
        let mut raw = Zeroizing::new(Vec::with_capacity(2 + REPLY_CAP));
        for pair in digits.chunks_exact(2) {
            match (nibble(pair[0]), nibble(pair[1])) {
                (Some(hi), Some(lo)) => raw.push(hi << 4 | lo),
                _ => return Err(bad()),
            }
        }
        let header = u16::from_be_bytes([raw[0], raw[1]]);
        let (len, state) = match header {
            HEADER_MISSING => (0, ReplyState::Missing),
            HEADER_OVERLONG => (REPLY_CAP, ReplyState::Overlong),
            n if usize::from(n) <= REPLY_CAP => (usize::from(n), ReplyState::Given),
            _ => return Err(bad()),
        };
        let mut bytes = Vec::with_capacity(len);
        bytes.extend_from_slice(&raw[2..2 + len]);
        Ok(Reply {
            bytes: Secret::new(bytes),
            state,
        })
    }
}

/// One authentication question. Optional PAM items are empty strings when unset.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Request {
    /// Protocol version; must equal [`PROTOCOL_VERSION`].
    pub v: u32,
    pub user: String,
    pub password: Reply,
    pub code: Reply,
    #[serde(default)]
    pub service: String,
    #[serde(default)]
    pub rhost: String,
    #[serde(default)]
    pub tty: String,
    /// PAM_RUSER: what the application claims about its caller. Logged,
    /// never charged (polkit's helper puts the *target* account there).
    #[serde(default)]
    pub ruser: String,
    /// The real uid of the process that runs the PAM stack (`getuid()` in
    /// the module): the person who ran a setuid front end (su, sudo,
    /// polkit-agent-helper-1), 0 for a program root started (sshd, login,
    /// a socket-activated service). Believed from a root peer only.
    /// Required: a request without it is refused, never charged.
    pub ruid: u32,
    /// `CLOCK_MONOTONIC` in nanoseconds when the conversation returned the
    /// last answer ([`crate::monotonic::now_ns`]). veild starts a root
    /// peer's failure deadline there (clamped, see
    /// [`crate::monotonic::answer_age`]), so nothing the module does
    /// after the answers can show in the time to a denial. Required.
    pub answered: u64,
    /// `factors=code`: an earlier method (sshd's publickey) proved the
    /// account, so veild checks only the code (and the ledger); honoured
    /// for root peers only. Left out of the frame when false, so a
    /// request's size depends on the module's arguments, never on a reply.
    #[serde(default, skip_serializing_if = "is_false")]
    pub code_only: bool,
    /// `one_prompt`: `password` holds the one answer to "Password and
    /// verification code: " and `code` is missing; veild splits it by
    /// [`crate::one_prompt::split`]. Left out of the frame when false,
    /// like `code_only`.
    #[serde(default, skip_serializing_if = "is_false")]
    pub one_prompt: bool,
    /// The PAM application's audit session id (`/proc/self/sessionid`),
    /// for the fresh-code window; left out when unset. This and the next
    /// two fields describe the application's process, never the account
    /// or a reply ([`crate::process`]); veild believes them from a root
    /// peer only and reads no /proc of its own. Optional, so a veild of
    /// this version still takes an older module's request (no window for
    /// it); an older veild refuses one that carries them, as any
    /// malformed request: DENY, charged to no one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub audit_session: Option<u32>,
    /// The kernel's boot id (session ids start again at each boot);
    /// left out when unreadable. Checked to be of the kernel's form.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub boot_id: Option<String>,
    /// The application's parent pid (`getppid()`): sshd runs
    /// `pam_authenticate` in a child of the process that opens the
    /// session, and veild binds a login to that session only from the
    /// process that ran it or its parent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ppid: Option<u32>,
}

fn is_false(value: &bool) -> bool {
    !*value
}

impl Request {
    /// A request at the current protocol version.
    pub fn new(user: &str, password: Reply, code: Reply) -> Request {
        Request {
            v: PROTOCOL_VERSION,
            user: user.to_owned(),
            password,
            code,
            service: String::new(),
            rhost: String::new(),
            tty: String::new(),
            ruser: String::new(),
            ruid: 0,
            answered: 0,
            code_only: false,
            one_prompt: false,
            audit_session: None,
            boot_id: None,
            ppid: None,
        }
    }

    /// Carries what the kernel says of this process ([`crate::process`]).
    pub fn set_process(&mut self, facts: &ProcessFacts) {
        self.audit_session = facts.session;
        self.boot_id = facts.boot_id.clone();
        self.ppid = facts.ppid;
    }
}

#[cfg(test)]
mod tests;

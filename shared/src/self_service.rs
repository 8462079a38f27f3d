//! Self-service: a local user enrols their own TOTP secret, changes their
//! own veil password or makes their own recovery codes over veild's
//! socket (SO_PEERCRED says who they are).
//!
//! A request kind of its own, kept apart from the login [`Request`]
//! structurally:
//!
//! * its body names this kind's version under the key `"self"`, where a
//!   login names its version under `"v"`; both kinds refuse unknown keys,
//!   so one body decodes as one kind at most ([`decode_incoming`]), and a
//!   body without `"self"` is decoded exactly as a login always was;
//! * its answers are frames of their own ([`SelfAnswer`]), every one longer
//!   than ALLOW and DENY and starting with another key, so a login client
//!   (which takes only the exact 15- or 16-byte constants) can only read
//!   one as garbage, that is, as a denial.
//!
//! veild answers a login request only with ALLOW or DENY, whatever arrives
//! on the same socket; a self-service request that does not decode gets
//! DENY too (the one frame that says "not served").

use std::fmt;

use serde::{Deserialize, Serialize};
use zeroize::Zeroizing;

use crate::codec::{DecodeError, check_name, decode_request, encode_frame};
use crate::proto::{ALLOW, DENY, LEN_PREFIX, MAX_REQUEST, Reply, Request};
use crate::session::{SessionNote, decode_session_note};

/// Version of the self-service kind, carried under `"self"`.
pub const SELF_SERVICE_VERSION: u32 = 1;

/// Codes a pending secret accepts before veild drops it.
pub const CONFIRM_TRIES: u8 = 3;

/// Largest answer body a client accepts.
pub const MAX_ANSWER: usize = 1024;

/// What the user asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Operation {
    /// Password (and the current code when a secret is active): veild
    /// answers with a new secret, pending until confirmed.
    EnrolBegin,
    /// One code of the pending secret, with the begin's ticket: activates it.
    EnrolConfirm,
    /// Password (and code) plus a new veil password.
    Passwd,
    /// Password and the current code (a recovery code stands in for it, as
    /// at a login): veild answers with ten new recovery codes, the old set
    /// void. Added within version 1: a veild without it answers DENY.
    RecoveryNew,
}

impl Operation {
    pub fn as_str(self) -> &'static str {
        match self {
            Operation::EnrolBegin => "enrol-begin",
            Operation::EnrolConfirm => "enrol-confirm",
            Operation::Passwd => "passwd",
            Operation::RecoveryNew => "recovery-new",
        }
    }
}

/// One self-service request. Every field is always present (unused
/// replies are [`Reply::missing`], an unused ticket empty), so the size
/// does not depend on the operation's answers.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SelfRequest {
    /// Must equal [`SELF_SERVICE_VERSION`]. Its key tells this kind from a login.
    #[serde(rename = "self")]
    pub version: u32,
    pub op: Operation,
    /// The account, which must be the peer's own (veild checks the uid).
    pub user: String,
    pub password: Reply,
    pub code: Reply,
    pub new_password: Reply,
    /// From the [`SelfAnswer::Challenge`] of this enrolment; empty otherwise.
    pub ticket: String,
}

impl SelfRequest {
    /// A request at the current version with every secret missing.
    pub fn new(op: Operation, user: &str) -> SelfRequest {
        SelfRequest {
            version: SELF_SERVICE_VERSION,
            op,
            user: user.to_owned(),
            password: Reply::missing(),
            code: Reply::missing(),
            new_password: Reply::missing(),
            ticket: String::new(),
        }
    }
}

/// Why veild refused whatever the credentials: things the user may know.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Refusal {
    /// root names the user: `veilctl totp enroll NAME`, `veilctl user passwd NAME`.
    RootPeer,
    /// `[password] source = "system"`: the password is the system's (`passwd`).
    SystemPasswords,
    /// The new password is empty or longer than the wire carries.
    BadNewPassword,
    /// Too many enrolments are pending on this host; try again later.
    Busy,
    /// Authenticated, but veild could not save the change (its log says why).
    Error,
    /// Recovery codes need an active TOTP secret first (`veilctl totp enroll`).
    NoSecret,
    /// The new password failed the host's quality check (libpwquality,
    /// the breached list): `why` is the check's own sentence. Sent only
    /// after the current password (and code) passed, so only to the
    /// account's owner. Added within version 1: a veilctl without it reads
    /// the answer as garbage and reports that veild did not serve it;
    /// every other answer is unchanged on the wire.
    WeakPassword { why: String },
}

/// The longest `why` veild sends, in bytes (libpwquality's own limit):
/// even with every byte escaped, the answer stays under [`MAX_ANSWER`].
pub const MAX_WHY: usize = 256;

impl Refusal {
    /// A [`Refusal::WeakPassword`] with `why` cut to [`MAX_WHY`] bytes (at
    /// a character boundary) and without control characters.
    pub fn weak_password(why: &str) -> Refusal {
        let mut text = String::with_capacity(why.len().min(MAX_WHY));
        for c in why.chars().filter(|c| !c.is_control()) {
            if text.len() + c.len_utf8() > MAX_WHY {
                break;
            }
            text.push(c);
        }
        Refusal::WeakPassword { why: text }
    }
}

/// A base32 TOTP secret on the wire: wiped on drop, never printed.
#[derive(Clone, PartialEq, Eq)]
pub struct SecretText(Zeroizing<String>);

impl Serialize for SecretText {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&self.0)
    }
}

impl<'de> Deserialize<'de> for SecretText {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<SecretText, D::Error> {
        let text = Zeroizing::new(String::deserialize(deserializer)?);
        Ok(SecretText(text))
    }
}

impl SecretText {
    pub fn new(text: Zeroizing<String>) -> SecretText {
        SecretText(text)
    }

    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for SecretText {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("<redacted>")
    }
}

/// veild's answer to a [`SelfRequest`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "answer", rename_all = "kebab-case", deny_unknown_fields)]
pub enum SelfAnswer {
    /// The begin was accepted: a new secret, pending (the active one, if
    /// any, stays in force) until a code of it confirms it with `ticket`
    /// within `expires_in_s` seconds.
    Challenge {
        secret: SecretText,
        ticket: String,
        expires_in_s: u64,
    },
    /// Enrolled, or password changed.
    Done,
    /// The ten new recovery codes (`xxxx-xxxx-xx`), shown once; the old set
    /// no longer works. Sent only to the uid that proved both factors.
    Codes { codes: Vec<SecretText> },
    /// The one failure: wrong password or code, a lock, an account veil
    /// does not know, a name not the peer's, an expired or unknown ticket.
    /// Sent at the same deadline as a DENY.
    Failed,
    /// Refused whatever the credentials.
    Refused { reason: Refusal },
}

/// What arrived on veild's socket: a login, a self-service request or a
/// session note ([`crate::session`]).
#[derive(Debug)]
pub enum Incoming {
    Login(Request),
    SelfService(SelfRequest),
    Session(SessionNote),
}

/// Only whether the key `"self"` or `"session"` is present. Every other
/// value is skipped without being copied (it may be a password).
#[derive(Deserialize)]
struct Kind {
    #[serde(rename = "self")]
    self_version: Option<serde::de::IgnoredAny>,
    session: Option<serde::de::IgnoredAny>,
}

/// Decodes a request body of either kind. A body without the key `"self"`
/// goes through [`decode_request`] exactly as before self-service existed;
/// one with it is a [`SelfRequest`] or nothing (a login's `"v"` beside it
/// is an unknown key).
pub fn decode_incoming(body: &[u8]) -> Result<Incoming, DecodeError> {
    // Only a JSON object can be self-service (serde would read a struct
    // from an array too, and a login in array form must stay a login).
    let kind = std::str::from_utf8(body)
        .ok()
        .filter(|text| text.trim_start().starts_with('{'))
        .and_then(|text| serde_json::from_str::<Kind>(text).ok());
    let (is_self, is_session) = kind.map_or((false, false), |k| {
        (k.self_version.is_some(), k.session.is_some())
    });
    if is_self {
        decode_self_request(body).map(Incoming::SelfService)
    } else if is_session {
        decode_session_note(body).map(Incoming::Session)
    } else {
        decode_request(body).map(Incoming::Login)
    }
}

/// Parses and validates one self-service request body.
pub fn decode_self_request(body: &[u8]) -> Result<SelfRequest, DecodeError> {
    if body.is_empty() {
        return Err(DecodeError::ZeroLength);
    }
    if body.len() > MAX_REQUEST {
        return Err(DecodeError::Oversize(body.len() as u32));
    }
    let text = std::str::from_utf8(body).map_err(|_| DecodeError::NotUtf8)?;
    let request: SelfRequest = serde_json::from_str(text).map_err(|e| {
        DecodeError::Malformed(format!("{:?} error at column {}", e.classify(), e.column()))
    })?;
    if request.version != SELF_SERVICE_VERSION {
        return Err(DecodeError::UnknownVersion(request.version));
    }
    check_name("user", &request.user, false)?;
    if request.ticket.len() > 64 || !request.ticket.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(DecodeError::BadField("ticket"));
    }
    Ok(request)
}

/// One self-service request as a frame, in a buffer wiped on drop.
pub fn encode_self_request(request: &SelfRequest) -> Zeroizing<Vec<u8>> {
    encode_frame(request)
}

/// One answer as a frame, in a buffer wiped on drop (it may hold a secret).
pub fn encode_answer(answer: &SelfAnswer) -> Zeroizing<Vec<u8>> {
    encode_frame(answer)
}

/// Reads a whole answer frame (prefix included). `None`: not an answer.
pub fn decode_answer(frame: &[u8]) -> Option<SelfAnswer> {
    if frame.len() < LEN_PREFIX || frame == ALLOW || frame == DENY {
        return None;
    }
    let len = u32::from_be_bytes([frame[0], frame[1], frame[2], frame[3]]) as usize;
    let body = &frame[LEN_PREFIX..];
    if len != body.len() || len > MAX_ANSWER {
        return None;
    }
    serde_json::from_slice(body).ok()
}

#[cfg(test)]
mod tests;

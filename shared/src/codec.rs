//! Frame codec: 4-byte big-endian length, then a JSON body of at most
//! [`MAX_REQUEST`] bytes. Lengths are checked before anything is allocated.

use std::fmt;

use zeroize::Zeroizing;

use crate::proto::{LEN_PREFIX, MAX_FIELD_LEN, MAX_REQUEST, PROTOCOL_VERSION, Request};

/// Why a frame was refused. Every variant is answered with the same DENY.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DecodeError {
    ZeroLength,
    /// The length prefix announced more than [`MAX_REQUEST`] bytes.
    Oversize(u32),
    /// The peer closed before the whole frame arrived.
    Truncated,
    /// Bytes arrived after the end of the frame.
    TrailingBytes,
    NotUtf8,
    /// Not a request: bad JSON, a missing or unknown field, a wrong type.
    Malformed(String),
    UnknownVersion(u32),
    /// A field is empty, too long, or holds a control character.
    BadField(&'static str),
}

impl fmt::Display for DecodeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DecodeError::ZeroLength => write!(f, "zero-length frame"),
            DecodeError::Oversize(n) => write!(f, "frame of {n} bytes exceeds {MAX_REQUEST}"),
            DecodeError::Truncated => write!(f, "truncated frame"),
            DecodeError::TrailingBytes => write!(f, "bytes after the frame"),
            DecodeError::NotUtf8 => write!(f, "body is not UTF-8"),
            DecodeError::Malformed(why) => write!(f, "malformed request: {why}"),
            DecodeError::UnknownVersion(v) => write!(f, "unknown protocol version {v}"),
            DecodeError::BadField(name) => write!(f, "invalid field {name}"),
        }
    }
}

impl std::error::Error for DecodeError {}

/// Serialises a request into one frame. The buffer holds secrets: it is
/// sized exactly from a first, counting pass (so no reallocation leaves a
/// copy behind) and wiped when dropped.
pub fn encode_request(request: &Request) -> Zeroizing<Vec<u8>> {
    encode_frame(request)
}

/// Any of the protocol's messages as one frame, sized and wiped as above.
pub(crate) fn encode_frame<T: serde::Serialize>(message: &T) -> Zeroizing<Vec<u8>> {
    let mut counter = Counter(0);
    // The protocol's messages always serialise: strings, integers, enums.
    let _ = serde_json::to_writer(&mut counter, message);
    let mut frame = Zeroizing::new(Vec::with_capacity(LEN_PREFIX + counter.0));
    frame.extend_from_slice(&[0; LEN_PREFIX]);
    let _ = serde_json::to_writer(&mut *frame, message);
    let len = (frame.len() - LEN_PREFIX) as u32;
    frame[..LEN_PREFIX].copy_from_slice(&len.to_be_bytes());
    frame
}

/// A writer that only counts bytes.
struct Counter(usize);

impl std::io::Write for Counter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0 += buf.len();
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[derive(serde::Deserialize)]
struct VersionOnly {
    v: u32,
}

/// Parses and validates one request body (the bytes after the prefix).
pub fn decode_request(body: &[u8]) -> Result<Request, DecodeError> {
    if body.is_empty() {
        return Err(DecodeError::ZeroLength);
    }
    if body.len() > MAX_REQUEST {
        return Err(DecodeError::Oversize(body.len() as u32));
    }
    let text = std::str::from_utf8(body).map_err(|_| DecodeError::NotUtf8)?;
    // The version first, other fields ignored: an older module's request
    // (which lacks a field this version requires) is logged as what it
    // is, "unknown protocol version N", so the admin knows to upgrade it.
    if let Ok(VersionOnly { v }) = serde_json::from_str::<VersionOnly>(text) {
        if v != PROTOCOL_VERSION {
            return Err(DecodeError::UnknownVersion(v));
        }
    }
    // serde_json's own message can quote the offending value (a password
    // sent as a number), so only its category and position are kept.
    let request: Request = serde_json::from_str(text).map_err(|e| {
        DecodeError::Malformed(format!("{:?} error at column {}", e.classify(), e.column()))
    })?;
    if request.v != PROTOCOL_VERSION {
        return Err(DecodeError::UnknownVersion(request.v));
    }
    check_name("user", &request.user, false)?;
    for (name, value) in [
        ("service", &request.service),
        ("rhost", &request.rhost),
        ("tty", &request.tty),
        ("ruser", &request.ruser),
    ] {
        check_name(name, value, true)?;
    }
    check_boot_id(request.boot_id.as_deref())?;
    Ok(request)
}

/// A boot id, if given, must be of the kernel's form: it becomes part of
/// a store key.
pub(crate) fn check_boot_id(boot_id: Option<&str>) -> Result<(), DecodeError> {
    match boot_id {
        Some(id) if !crate::process::is_boot_id(id) => Err(DecodeError::BadField("boot_id")),
        _ => Ok(()),
    }
}

pub(crate) fn check_name(
    name: &'static str,
    value: &str,
    may_be_empty: bool,
) -> Result<(), DecodeError> {
    if (value.is_empty() && !may_be_empty)
        || value.len() > MAX_FIELD_LEN
        || value.chars().any(char::is_control)
    {
        return Err(DecodeError::BadField(name));
    }
    Ok(())
}

/// Incremental reader for one frame arriving in pieces on a non-blocking socket.
#[derive(Default)]
pub struct FrameReader {
    prefix: [u8; LEN_PREFIX],
    prefix_len: usize,
    expected: Option<usize>,
    body: Zeroizing<Vec<u8>>,
}

impl fmt::Debug for FrameReader {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FrameReader")
            .field("expected", &self.expected)
            .field("received", &self.body.len())
            .finish_non_exhaustive()
    }
}

impl FrameReader {
    pub fn new() -> FrameReader {
        FrameReader::default()
    }

    /// Feeds bytes; returns the complete body once the whole frame is in.
    /// Bytes beyond the frame are an error, as is a bad length prefix.
    pub fn push(&mut self, mut input: &[u8]) -> Result<Option<&[u8]>, DecodeError> {
        if self.is_complete() {
            return if input.is_empty() {
                Ok(Some(&self.body))
            } else {
                Err(DecodeError::TrailingBytes)
            };
        }
        if self.expected.is_none() {
            let take = (LEN_PREFIX - self.prefix_len).min(input.len());
            self.prefix[self.prefix_len..self.prefix_len + take].copy_from_slice(&input[..take]);
            self.prefix_len += take;
            input = &input[take..];
            if self.prefix_len < LEN_PREFIX {
                return Ok(None);
            }
            let len = u32::from_be_bytes(self.prefix);
            if len == 0 {
                return Err(DecodeError::ZeroLength);
            }
            if len as usize > MAX_REQUEST {
                return Err(DecodeError::Oversize(len));
            }
            self.expected = Some(len as usize);
            self.body.reserve_exact(len as usize);
        }
        let expected = self.expected.unwrap_or(0);
        let take = (expected - self.body.len()).min(input.len());
        self.body.extend_from_slice(&input[..take]);
        if take < input.len() {
            return Err(DecodeError::TrailingBytes);
        }
        Ok(if self.is_complete() {
            Some(&self.body)
        } else {
            None
        })
    }

    fn is_complete(&self) -> bool {
        self.expected == Some(self.body.len())
    }

    /// Called when the peer closed or the deadline passed.
    pub fn finish(&self) -> Result<&[u8], DecodeError> {
        if self.is_complete() {
            Ok(&self.body)
        } else {
            Err(DecodeError::Truncated)
        }
    }

    /// Bytes received so far, prefix included.
    pub fn received(&self) -> usize {
        self.prefix_len + self.body.len()
    }
}

#[cfg(test)]
mod tests;

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
    let mut counter = Counter(0);
    // A Request always serialises: every field is a string or an integer.
    let _ = serde_json::to_writer(&mut counter, request);
    let mut frame = Zeroizing::new(Vec::with_capacity(LEN_PREFIX + counter.0));
    frame.extend_from_slice(&[0; LEN_PREFIX]);
    let _ = serde_json::to_writer(&mut *frame, request);
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

/// Parses and validates one request body (the bytes after the prefix).
pub fn decode_request(body: &[u8]) -> Result<Request, DecodeError> {
    if body.is_empty() {
        return Err(DecodeError::ZeroLength);
    }
    if body.len() > MAX_REQUEST {
        return Err(DecodeError::Oversize(body.len() as u32));
    }
    let text = std::str::from_utf8(body).map_err(|_| DecodeError::NotUtf8)?;
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
    Ok(request)
}

fn check_name(name: &'static str, value: &str, may_be_empty: bool) -> Result<(), DecodeError> {
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
mod tests {
    use super::*;
    use crate::proto::{REPLY_CAP, Reply};
    use proptest::prelude::*;

    fn sample() -> Request {
        let mut r = Request::new("alice", Reply::from("correct horse"), Reply::from("123456"));
        r.service = "sshd".into();
        r.rhost = "192.0.2.7".into();
        r
    }

    #[test]
    fn a_request_round_trips_through_a_frame() {
        let frame = encode_request(&sample());
        let mut reader = FrameReader::new();
        let body = reader.push(&frame).unwrap().unwrap().to_vec();
        assert_eq!(decode_request(&body).unwrap(), sample());
    }

    #[test]
    fn a_frame_split_into_single_bytes_is_reassembled() {
        let frame = encode_request(&sample());
        let mut reader = FrameReader::new();
        let mut done = None;
        for (i, b) in frame.iter().enumerate() {
            let got = reader.push(std::slice::from_ref(b)).unwrap();
            if i + 1 < frame.len() {
                assert!(got.is_none(), "complete too early at byte {i}");
            } else {
                done = got.map(<[u8]>::to_vec);
            }
        }
        assert_eq!(decode_request(&done.unwrap()).unwrap(), sample());
    }

    #[test]
    fn a_partial_frame_is_truncated_when_the_peer_closes() {
        let frame = encode_request(&sample());
        let mut reader = FrameReader::new();
        assert!(reader.push(&frame[..10]).unwrap().is_none());
        assert_eq!(reader.finish().unwrap_err(), DecodeError::Truncated);
        assert_eq!(
            FrameReader::new().finish().unwrap_err(),
            DecodeError::Truncated
        );
    }

    #[test]
    fn zero_length_is_refused() {
        assert_eq!(
            FrameReader::new().push(&[0, 0, 0, 0]).unwrap_err(),
            DecodeError::ZeroLength
        );
        assert_eq!(decode_request(b"").unwrap_err(), DecodeError::ZeroLength);
    }

    #[test]
    fn oversize_is_refused_from_the_prefix_alone() {
        let mut reader = FrameReader::new();
        assert_eq!(
            reader.push(&[0xff, 0xff, 0xff, 0xff]).unwrap_err(),
            DecodeError::Oversize(u32::MAX)
        );
        assert_eq!(
            reader.body.capacity(),
            0,
            "nothing allocated for an oversize frame"
        );
        let just_over = (MAX_REQUEST as u32 + 1).to_be_bytes();
        assert!(matches!(
            FrameReader::new().push(&just_over),
            Err(DecodeError::Oversize(_))
        ));
        let at_limit = (MAX_REQUEST as u32).to_be_bytes();
        assert!(FrameReader::new().push(&at_limit).unwrap().is_none());
    }

    #[test]
    fn trailing_bytes_are_refused() {
        let mut frame = encode_request(&sample()).to_vec();
        frame.push(b'x');
        assert_eq!(
            FrameReader::new().push(&frame).unwrap_err(),
            DecodeError::TrailingBytes
        );
        let good = encode_request(&sample());
        let mut reader = FrameReader::new();
        reader.push(&good).unwrap();
        assert_eq!(reader.push(b"y").unwrap_err(), DecodeError::TrailingBytes);
    }

    #[test]
    fn garbage_bodies_are_refused() {
        assert_eq!(
            decode_request(&[0xff, 0xfe, b'{']).unwrap_err(),
            DecodeError::NotUtf8
        );
        assert!(matches!(
            decode_request(b"not json"),
            Err(DecodeError::Malformed(_))
        ));
        assert!(matches!(
            decode_request(b"[1,2,3]"),
            Err(DecodeError::Malformed(_))
        ));
        assert!(matches!(
            decode_request(b"{\"v\":1}"),
            Err(DecodeError::Malformed(_))
        ));
    }

    #[test]
    fn unknown_fields_and_versions_are_refused() {
        let good = String::from_utf8(encode_request(&sample())[LEN_PREFIX..].to_vec()).unwrap();
        let extra = good.replacen("{", "{\"admin\":true,", 1);
        assert!(matches!(
            decode_request(extra.as_bytes()),
            Err(DecodeError::Malformed(_))
        ));
        let v1 = good.replacen("\"v\":2", "\"v\":1", 1);
        assert_eq!(
            decode_request(v1.as_bytes()).unwrap_err(),
            DecodeError::UnknownVersion(1)
        );
        // Version 1 sent replies as plain strings: refused, not misread.
        let old = br#"{"v":1,"user":"a","password":"p","code":"1"}"#;
        assert!(decode_request(old).is_err());
    }

    #[test]
    fn user_names_with_control_characters_or_nul_are_refused() {
        for user in ["a\nb", "a\u{0}b", "\u{1b}[31mroot", ""] {
            let mut r = sample();
            r.user = user.into();
            let body = serde_json::to_vec(&r).unwrap();
            assert_eq!(
                decode_request(&body).unwrap_err(),
                DecodeError::BadField("user"),
                "{user:?}"
            );
        }
    }

    #[test]
    fn the_frame_is_allocated_once_at_its_exact_size() {
        let mut r = sample();
        r.user = "\"".repeat(500);
        r.rhost = "\\".repeat(500);
        r.password = Reply::given(vec![b'"'; REPLY_CAP * 3]);
        let frame = encode_request(&r);
        assert_eq!(frame.capacity(), frame.len());
    }

    #[test]
    fn malformed_messages_never_echo_the_password() {
        let body = br#"{"v":2,"user":"a","password":12345678,"code":"1"}"#;
        let err = decode_request(body).unwrap_err().to_string();
        assert!(!err.contains("12345678"), "{err}");
    }

    proptest! {
        #[test]
        fn any_request_round_trips(user in "[a-z_][a-z0-9_.-]{0,40}",
                                   pw in proptest::collection::vec(any::<u8>(), 0..700),
                                   code in proptest::collection::vec(any::<u8>(), 0..20),
                                   rhost in "[0-9a-f.:]{0,45}") {
            let mut r = Request::new(&user, Reply::given(pw), Reply::given(code));
            r.rhost = rhost;
            let frame = encode_request(&r);
            let mut reader = FrameReader::new();
            let body = reader.push(&frame).unwrap().unwrap().to_vec();
            prop_assert_eq!(decode_request(&body).unwrap(), r);
        }

        #[test]
        fn arbitrary_bytes_never_panic_and_never_overrun(data in proptest::collection::vec(any::<u8>(), 0..10_000),
                                                         split in 0usize..10_000) {
            let mut reader = FrameReader::new();
            let split = split.min(data.len());
            let first = reader.push(&data[..split]);
            if let Ok(None) = first {
                let _ = reader.push(&data[split..]);
            }
            prop_assert!(reader.body.len() <= MAX_REQUEST);
            let _ = decode_request(&data);
        }

        #[test]
        fn any_split_of_a_valid_frame_decodes(split in 0usize..200) {
            let frame = encode_request(&sample());
            let split = split.min(frame.len());
            let mut reader = FrameReader::new();
            let first = reader.push(&frame[..split]).unwrap().map(<[u8]>::to_vec);
            let body = match first { Some(b) => b, None => reader.push(&frame[split..]).unwrap().unwrap().to_vec() };
            prop_assert_eq!(decode_request(&body).unwrap(), sample());
        }
    }
}

//! `decode_incoming` on arbitrary bodies: what veild's socket does with
//! every request. A body is a login or a self-service request, never both:
//! whatever `decode_request` accepts is a login here, unchanged, and a
//! self-service request is one `decode_request` refuses. An accepted
//! self-service request has the right version, a bounded, control-free
//! user and a hex ticket, and survives a re-encode round trip; no error
//! message quotes what was sent.
#![no_main]

use libfuzzer_sys::fuzz_target;
use veil_proto::self_service::{
    Incoming, SELF_SERVICE_VERSION, decode_incoming, decode_self_request, encode_self_request,
};
use veil_proto::{MAX_FIELD_LEN, decode_request};

fuzz_target!(|data: &[u8]| {
    let login = decode_request(data);
    match decode_incoming(data) {
        Ok(Incoming::Login(request)) => {
            assert_eq!(login.as_ref().ok(), Some(&request), "a login, unchanged");
        }
        Ok(Incoming::SelfService(request)) => {
            assert!(login.is_err(), "a body both kinds accept");
            assert_eq!(request.version, SELF_SERVICE_VERSION);
            assert!(!request.user.is_empty() && request.user.len() <= MAX_FIELD_LEN);
            assert!(!request.user.chars().any(char::is_control));
            assert!(request.ticket.len() <= 64);
            assert!(request.ticket.bytes().all(|b| b.is_ascii_hexdigit()));
            let frame = encode_self_request(&request);
            if frame.len() - 4 <= veil_proto::MAX_REQUEST {
                assert_eq!(decode_self_request(&frame[4..]).unwrap(), request);
            }
        }
        Err(e) => {
            // A login the old decoder accepted is never refused now.
            assert!(login.is_err(), "a login refused: {e}");
            let text = e.to_string();
            let mut shape = String::new();
            for c in text.chars() {
                if !c.is_ascii_digit() {
                    shape.push(c);
                } else if !shape.ends_with('N') {
                    shape.push('N');
                }
            }
            const SHAPES: &[&str] = &[
                "zero-length frame",
                "frame of N bytes exceeds N",
                "body is not UTF-N",
                "malformed request: Syntax error at column N",
                "malformed request: Data error at column N",
                "malformed request: Eof error at column N",
                "unknown protocol version N",
                "invalid field user",
                "invalid field service",
                "invalid field rhost",
                "invalid field tty",
                "invalid field ruser",
                "invalid field ticket",
            ];
            assert!(SHAPES.contains(&shape.as_str()), "unexpected message {text:?}");
        }
    }
});

//! `decode_request` on arbitrary bodies. A request it accepts must be one
//! the protocol allows (right version, names within bounds and free of
//! control characters) and must survive a re-encode round trip; an error
//! message must be one of a fixed set of sentences (numbers aside), so it
//! can never quote the password, the code or anything else that was sent.
#![no_main]

use libfuzzer_sys::fuzz_target;
use veil_proto::{
    FrameReader, MAX_FIELD_LEN, MAX_REQUEST, PROTOCOL_VERSION, decode_request, encode_request,
};

fuzz_target!(|data: &[u8]| {
    match decode_request(data) {
        Ok(request) => {
            assert!(data.len() <= MAX_REQUEST);
            assert_eq!(request.v, PROTOCOL_VERSION);
            assert!(!request.user.is_empty());
            for field in [
                &request.user,
                &request.service,
                &request.rhost,
                &request.tty,
                &request.ruser,
            ] {
                assert!(field.len() <= MAX_FIELD_LEN);
                assert!(!field.chars().any(char::is_control), "{field:?}");
            }
            let frame = encode_request(&request);
            let mut reader = FrameReader::new();
            // Re-encoding may grow the body (escapes) past the limit; then
            // the reader must refuse it by length, never accept it.
            match reader.push(&frame) {
                Ok(Some(body)) => assert_eq!(decode_request(body).unwrap(), request),
                Ok(None) => panic!("a whole frame left the reader waiting"),
                Err(e) => assert!(frame.len() - 4 > MAX_REQUEST, "{e:?}"),
            }
        }
        Err(e) => {
            // Nothing the peer sent may be echoed: with every number written
            // as N, the message must be one of a fixed set of sentences, so
            // it cannot carry a password, a code or any other sent text.
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
            ];
            assert!(SHAPES.contains(&shape.as_str()), "unexpected message {text:?}");
        }
    }
});

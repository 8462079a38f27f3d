//! `decode_request` on arbitrary bodies. A request it accepts must be one
//! the protocol allows (right version, names within bounds and free of
//! control characters), must survive a re-encode round trip, and no error
//! message may quote the password or the code.
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
            let text = e.to_string();
            // Secrets are the values of "password" and "code"; when the input
            // is JSON with string values there, they must not be echoed.
            if let Ok(serde_json::Value::Object(map)) = serde_json::from_slice(data) {
                for key in ["password", "code"] {
                    if let Some(v) = map.get(key) {
                        let shown = match v {
                            serde_json::Value::String(s) => s.clone(),
                            other => other.to_string(),
                        };
                        if shown.len() >= 4 {
                            assert!(!text.contains(&shown), "{key} echoed in {text:?}");
                        }
                    }
                }
            }
        }
    }
});

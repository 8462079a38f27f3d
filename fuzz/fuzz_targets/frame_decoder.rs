//! `FrameReader::push`, fed the input in pieces whose sizes come from the
//! input itself, as a non-blocking socket would deliver them.
//!
//! Checked besides "no panic, no overrun": a frame is only ever complete
//! with exactly the announced number of bytes, never more than
//! `MAX_REQUEST`; once an error is returned the reader stays in error or
//! complete; `received()` never exceeds what was fed; and `finish()` agrees
//! with the last `push`.
#![no_main]

use libfuzzer_sys::fuzz_target;
use veil_proto::{DecodeError, FrameReader, LEN_PREFIX, MAX_REQUEST};

fuzz_target!(|data: &[u8]| {
    // First byte: chunk-size seed; the rest: the bytes on the wire.
    let Some((&seed, wire)) = data.split_first() else {
        return;
    };
    let mut reader = FrameReader::new();
    let mut fed = 0usize;
    let mut rest = wire;
    let mut step = usize::from(seed % 17) + 1;
    let mut complete: Option<Vec<u8>> = None;
    while !rest.is_empty() {
        let take = step.min(rest.len());
        let (chunk, tail) = rest.split_at(take);
        rest = tail;
        fed += take;
        step = (step * 7 + usize::from(seed)) % 4099 + 1;
        match reader.push(chunk) {
            Ok(None) => {
                assert!(reader.received() <= fed);
                assert!(reader.received() < LEN_PREFIX + MAX_REQUEST);
            }
            Ok(Some(body)) => {
                assert!(!body.is_empty() && body.len() <= MAX_REQUEST);
                let announced = u32::from_be_bytes([wire[0], wire[1], wire[2], wire[3]]) as usize;
                assert_eq!(body.len(), announced);
                assert_eq!(body, &wire[LEN_PREFIX..LEN_PREFIX + announced]);
                complete = Some(body.to_vec());
                assert_eq!(reader.received(), LEN_PREFIX + announced);
            }
            Err(e) => {
                match e {
                    DecodeError::ZeroLength => assert_eq!(&wire[..4], &[0, 0, 0, 0]),
                    DecodeError::Oversize(n) => assert!(n as usize > MAX_REQUEST),
                    DecodeError::TrailingBytes => {
                        let announced =
                            u32::from_be_bytes([wire[0], wire[1], wire[2], wire[3]]) as usize;
                        assert!(wire.len() > LEN_PREFIX + announced);
                    }
                    other => panic!("push returned {other:?}"),
                }
                return;
            }
        }
    }
    // The peer closed here.
    match (reader.finish(), complete) {
        (Ok(body), Some(seen)) => assert_eq!(body, seen.as_slice()),
        (Ok(_), None) => panic!("finish() completed a frame push() never completed"),
        (Err(DecodeError::Truncated), None) => {}
        (other, seen) => panic!("finish() gave {other:?} after {seen:?}"),
    }
    // A complete body also goes through the request parser, as in veild.
    if let Ok(body) = reader.finish() {
        let _ = veil_proto::decode_request(body);
    }
});

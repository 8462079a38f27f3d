//! Frames split, truncated, oversize, trailing and garbage; round trips
//! (with proptest).

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
    // The version is read first: an old frame is named as such.
    assert_eq!(
        decode_request(b"{\"v\":1}").unwrap_err(),
        DecodeError::UnknownVersion(1)
    );
    assert!(matches!(
        decode_request(format!("{{\"v\":{PROTOCOL_VERSION}}}").as_bytes()),
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
    let v1 = good.replacen("\"v\":4", "\"v\":1", 1);
    assert_eq!(
        decode_request(v1.as_bytes()).unwrap_err(),
        DecodeError::UnknownVersion(1)
    );
    // Version 1 sent replies as plain strings: refused, not misread.
    let old = br#"{"v":1,"user":"a","password":"p","code":"1"}"#;
    assert!(decode_request(old).is_err());
}

/// Version 3 added `ruid` (who ran the PAM application). A version-2
/// module's request (no `ruid`) and a version-3 request to a version-2
/// veild (an unknown key there) must both be refused, never read with a
/// default caller: fails on the old main, where `v: 2` without `ruid` decodes.
#[test]
fn a_request_without_the_real_uid_or_of_version_2_is_refused() {
    let good = String::from_utf8(encode_request(&sample())[LEN_PREFIX..].to_vec()).unwrap();
    assert!(good.contains("\"ruid\":"), "{good}");
    let no_ruid = good
        .replace(",\"ruid\":0", "")
        .replace(",\"answered\":0", "");
    assert_ne!(no_ruid, good);
    assert!(matches!(
        decode_request(no_ruid.as_bytes()),
        Err(DecodeError::Malformed(_))
    ));
    let v2 = no_ruid.replacen("\"v\":4", "\"v\":2", 1);
    assert!(decode_request(v2.as_bytes()).is_err());
    let v2_with_ruid = good.replacen("\"v\":4", "\"v\":2", 1);
    assert_eq!(
        decode_request(v2_with_ruid.as_bytes()).unwrap_err(),
        DecodeError::UnknownVersion(2)
    );
}

/// Version 4 added `answered` (when the last answer was given, on the
/// host's monotonic clock). A version-3 module's request (no `answered`)
/// and a version-4 request to a version-3 veild (an unknown key there)
/// are refused, never read as answered "now": fails on the old main,
/// where `v: 3` without `answered` decodes.
#[test]
fn a_request_without_the_answer_stamp_or_of_version_3_is_refused() {
    let good = String::from_utf8(encode_request(&sample())[LEN_PREFIX..].to_vec()).unwrap();
    assert!(good.contains(",\"answered\":0"), "{good}");
    let no_stamp = good.replace(",\"answered\":0", "");
    assert!(matches!(
        decode_request(no_stamp.as_bytes()),
        Err(DecodeError::Malformed(_))
    ));
    let v3 = no_stamp.replacen("\"v\":4", "\"v\":3", 1);
    assert_ne!(v3, no_stamp);
    assert_eq!(
        decode_request(v3.as_bytes()).unwrap_err(),
        DecodeError::UnknownVersion(3)
    );
    let v3_with_stamp = good.replacen("\"v\":4", "\"v\":3", 1);
    assert_eq!(
        decode_request(v3_with_stamp.as_bytes()).unwrap_err(),
        DecodeError::UnknownVersion(3)
    );
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
    let body = br#"{"v":4,"user":"a","password":12345678,"code":"1","ruid":0,"answered":0}"#;
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

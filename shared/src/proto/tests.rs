//! The two frames, secrets kept out of Debug, fixed-size replies.

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
    assert_eq!(Verdict::from_response(&ALLOW), Some(Verdict::Allow));
    assert_eq!(Verdict::from_response(&DENY), Some(Verdict::Deny));
    assert_eq!(Verdict::from_response(&ALLOW[..14]), None);
    let mut longer = ALLOW.to_vec();
    longer.push(b' ');
    assert_eq!(Verdict::from_response(&longer), None);
    assert_eq!(Verdict::from_response(b""), None);
}

#[test]
fn secrets_are_redacted_in_debug_output() {
    let req = Request::new("alice", Reply::from("hunter2"), Reply::from("123456"));
    let shown = format!("{req:?}");
    assert!(!shown.contains("hunter2"));
    assert!(!shown.contains("123456"));
    assert!(shown.contains("<redacted>"));
}

fn wire(request: &Request) -> String {
    serde_json::to_string(request).unwrap()
}

#[test]
fn the_request_size_never_depends_on_the_reply() {
    let size = |pw: Reply, code: Reply| wire(&Request::new("alice", pw, code)).len();
    let base = size(Reply::from(""), Reply::from(""));
    let fake = "\x08\n\r\x7fINCORRECT".repeat(900);
    for (pw, code) in [
        (Reply::given(vec![0xff]), Reply::from("123456")),
        (Reply::given(b"\"\\".repeat(300)), Reply::missing()),
        (Reply::from(fake.as_str()), Reply::given(vec![b'"'; 7000])),
        (
            Reply::given(vec![b'a'; REPLY_CAP]),
            Reply::given(vec![0; 3]),
        ),
        (Reply::missing(), Reply::missing()),
    ] {
        assert_eq!(size(pw, code), base);
    }
}

#[test]
fn every_reply_state_round_trips() {
    for reply in [
        Reply::from(""),
        Reply::given(vec![0xff, 0x00, 0x80]),
        Reply::given(vec![7; REPLY_CAP]),
        Reply::given(vec![9; REPLY_CAP + 1]),
        Reply::missing(),
    ] {
        let request = Request::new("a", reply.clone(), Reply::from("1"));
        let back: Request = serde_json::from_str(&wire(&request)).unwrap();
        assert_eq!(back.password, reply);
    }
    let cut = Reply::given(vec![9; REPLY_CAP + 1]);
    assert_eq!(cut.state(), ReplyState::Overlong);
    assert_eq!(cut.bytes().len(), REPLY_CAP);
    assert!(!cut.is_whole() && !Reply::missing().is_whole());
    assert!(Reply::given(vec![0xff]).is_whole());
}

#[test]
fn reply_fields_of_another_form_are_refused_without_quoting_them() {
    let good = wire(&Request::new("a", Reply::from("s3cret"), Reply::from("1")));
    let hex_of_len = |n: u16| {
        let mut field = format!("{n:04x}");
        field.push_str(&"0".repeat(REPLY_WIRE_CHARS - 4));
        field
    };
    let field = serde_json::to_value(Reply::from("s3cret")).unwrap();
    let field = field.as_str().unwrap().to_owned();
    for bad in [
        field[..field.len() - 2].to_owned(),
        field.replacen('0', "g", 1),
        format!("{field}00"),
        hex_of_len(REPLY_CAP as u16 + 1),
        "s3cret".to_owned(),
    ] {
        let body = good.replacen(&field, &bad, 1);
        let err = serde_json::from_str::<Request>(&body)
            .unwrap_err()
            .to_string();
        assert!(!err.contains("s3cret") && !err.contains(&bad), "{err}");
    }
}

#[test]
fn replies_are_redacted_in_debug_output() {
    let shown = format!("{:?}", Reply::from("hunter2"));
    assert!(
        !shown.contains("hunter2") && shown.contains("<redacted>"),
        "{shown}"
    );
}

#[test]
fn the_process_facts_travel_only_when_the_module_has_them() {
    use crate::codec::decode_request;
    use crate::process::ProcessFacts;
    // Without them (an older module, or a process outside any session) the
    // request is what it was: a veild of this version decodes it.
    let bare = Request::new("alice", Reply::from("pw"), Reply::from("1"));
    let text = wire(&bare);
    for key in ["audit_session", "boot_id", "ppid"] {
        assert!(!text.contains(key), "{text}");
    }
    assert_eq!(decode_request(text.as_bytes()).unwrap(), bare);
    let mut full = bare.clone();
    full.set_process(&ProcessFacts {
        session: Some(4242),
        boot_id: Some("6f1c6a2e-3b8d-4c1e-9f0a-2d5b7c9e1a34".into()),
        ppid: Some(100),
    });
    assert_eq!(decode_request(wire(&full).as_bytes()).unwrap(), full);
    // A boot id not of the kernel's form never reaches a store key.
    full.boot_id = Some("../x".into());
    assert_eq!(
        decode_request(wire(&full).as_bytes()).unwrap_err(),
        crate::codec::DecodeError::BadField("boot_id")
    );
}

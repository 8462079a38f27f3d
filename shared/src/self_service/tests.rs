//! The two kinds never mix: a login body is a login, a self-service body
//! is one or nothing, and no answer can be read as a verdict.

use super::*;
use crate::proto::{PROTOCOL_VERSION, Verdict};

fn login() -> Request {
    Request::new("alice", Reply::from("hunter2"), Reply::from("123456"))
}

fn begin() -> SelfRequest {
    let mut r = SelfRequest::new(Operation::EnrolBegin, "alice");
    r.password = Reply::from("hunter2");
    r
}

fn body(frame: &[u8]) -> &[u8] {
    &frame[LEN_PREFIX..]
}

#[test]
fn a_login_body_decodes_as_a_login_and_nothing_else() {
    let frame = crate::encode_request(&login());
    match decode_incoming(body(&frame)).unwrap() {
        Incoming::Login(r) => assert_eq!(r, login()),
        other => panic!("a login became {other:?}"),
    }
    assert!(decode_self_request(body(&frame)).is_err());
}

#[test]
fn a_self_service_body_decodes_as_self_service_and_never_as_a_login() {
    let frame = encode_self_request(&begin());
    assert!(body(&frame).starts_with(b"{\"self\":1,"));
    match decode_incoming(body(&frame)).unwrap() {
        Incoming::SelfService(r) => assert_eq!(r, begin()),
        other => panic!("self-service became {other:?}"),
    }
    assert!(decode_request(body(&frame)).is_err());
}

#[test]
fn a_body_that_mixes_the_two_kinds_is_neither() {
    // A login with a self-service key, and self-service with a login's version.
    let login_text = String::from_utf8(body(&crate::encode_request(&login())).to_vec()).unwrap();
    let mixed_login = login_text.replacen('{', "{\"self\":1,\"op\":\"enrol-begin\",", 1);
    assert!(decode_incoming(mixed_login.as_bytes()).is_err());
    let self_text = String::from_utf8(body(&encode_self_request(&begin())).to_vec()).unwrap();
    let mixed_self = self_text.replacen('{', &format!("{{\"v\":{PROTOCOL_VERSION},"), 1);
    assert!(decode_incoming(mixed_self.as_bytes()).is_err());
    // A login that names no "self" key but carries self-service fields.
    let extra = login_text.replacen('{', "{\"op\":\"passwd\",", 1);
    assert!(decode_incoming(extra.as_bytes()).is_err());
}

#[test]
fn a_body_in_array_form_is_judged_as_a_login_as_before() {
    // serde reads a struct from an array as well; such a body never was,
    // and is not now, anything but a login request's business.
    let array = br#"[2,"alice","x","y"]"#;
    assert_eq!(
        decode_incoming(array).unwrap_err(),
        decode_request(array).unwrap_err()
    );
    let self_array = br#"[1,"enrol-begin","alice","x","y","z",""]"#;
    assert!(matches!(
        decode_incoming(self_array),
        Err(DecodeError::Malformed(_))
    ));
}

#[test]
fn unknown_self_service_versions_and_bad_tickets_are_refused() {
    let mut r = begin();
    r.version = 2;
    assert_eq!(
        decode_incoming(body(&encode_self_request(&r))).unwrap_err(),
        DecodeError::UnknownVersion(2)
    );
    let mut r = begin();
    r.ticket = "not hex".into();
    assert_eq!(
        decode_self_request(body(&encode_self_request(&r))).unwrap_err(),
        DecodeError::BadField("ticket")
    );
    let mut r = begin();
    r.user = String::new();
    assert!(decode_self_request(body(&encode_self_request(&r))).is_err());
}

/// Ten codes of the real shape (`xxxx-xxxx-xx`), the largest answer.
fn ten_codes() -> SelfAnswer {
    SelfAnswer::Codes {
        codes: (0..10)
            .map(|i| SecretText::new(Zeroizing::new(format!("zzzz-zzzz-z{i}"))))
            .collect(),
    }
}

#[test]
fn ten_recovery_codes_fit_the_clients_answer_cap() {
    let frame = encode_answer(&ten_codes());
    assert!(
        frame.len() - LEN_PREFIX <= MAX_ANSWER,
        "{} bytes",
        frame.len()
    );
    assert_eq!(decode_answer(&frame), Some(ten_codes()));
    assert!(!format!("{:?}", ten_codes()).contains("zzzz"));
    let mut r = SelfRequest::new(Operation::RecoveryNew, "alice");
    r.password = Reply::from("hunter2");
    let frame = encode_self_request(&r);
    assert!(body(&frame).starts_with(b"{\"self\":1,\"op\":\"recovery-new\","));
    assert!(matches!(
        decode_incoming(body(&frame)),
        Ok(Incoming::SelfService(ref s)) if *s == r
    ));
}

fn every_answer() -> Vec<SelfAnswer> {
    let mut answers = vec![
        SelfAnswer::Challenge {
            secret: SecretText::new(Zeroizing::new("A".into())),
            ticket: String::new(),
            expires_in_s: 0,
        },
        SelfAnswer::Done,
        SelfAnswer::Failed,
        ten_codes(),
    ];
    for reason in [
        Refusal::RootPeer,
        Refusal::SystemPasswords,
        Refusal::BadNewPassword,
        Refusal::Busy,
        Refusal::Error,
        Refusal::NoSecret,
        Refusal::weak_password("The password is shorter than 8 characters"),
        Refusal::weak_password(&"\"\\".repeat(MAX_WHY)),
    ] {
        answers.push(SelfAnswer::Refused { reason });
    }
    answers
}

#[test]
fn no_answer_frame_can_be_read_as_a_verdict() {
    for answer in every_answer() {
        let frame = encode_answer(&answer);
        // The PAM module's reader refuses anything longer than DENY.
        assert!(
            frame.len() > ALLOW.len().max(DENY.len()),
            "{answer:?}: {} bytes",
            frame.len()
        );
        assert_eq!(Verdict::from_response(&frame), None, "{answer:?}");
        assert!(body(&frame).starts_with(b"{\"answer\":"), "{answer:?}");
        assert_eq!(decode_answer(&frame), Some(answer));
    }
    assert_eq!(decode_answer(&ALLOW), None);
    assert_eq!(decode_answer(&DENY), None);
}

#[test]
fn secrets_are_redacted_in_debug_output() {
    let answer = SelfAnswer::Challenge {
        secret: SecretText::new(Zeroizing::new("JBSWY3DPEHPK3PXP".into())),
        ticket: "00".into(),
        expires_in_s: 600,
    };
    assert!(!format!("{answer:?}").contains("JBSWY3DPEHPK3PXP"));
    let mut r = begin();
    r.new_password = Reply::from("n3w-s3cret");
    let shown = format!("{r:?}");
    assert!(
        !shown.contains("hunter2") && !shown.contains("n3w-s3cret"),
        "{shown}"
    );
}

mod properties {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn any_login_is_a_login(user in "[a-z_][a-z0-9_.-]{0,40}",
                                pw in proptest::collection::vec(any::<u8>(), 0..700),
                                code in proptest::collection::vec(any::<u8>(), 0..20),
                                rhost in "[0-9a-f.:]{0,45}") {
            let mut r = Request::new(&user, Reply::given(pw), Reply::given(code));
            r.rhost = rhost;
            let frame = crate::encode_request(&r);
            prop_assert!(matches!(decode_incoming(body(&frame)), Ok(Incoming::Login(ref l)) if *l == r));
        }

        #[test]
        fn any_self_service_request_is_one(user in "[a-z_][a-z0-9_.-]{0,40}",
                                           pw in proptest::collection::vec(any::<u8>(), 0..700),
                                           ticket in "[0-9a-f]{0,32}",
                                           op in prop_oneof![Just(Operation::EnrolBegin),
                                                             Just(Operation::EnrolConfirm),
                                                             Just(Operation::Passwd),
                                                             Just(Operation::RecoveryNew)]) {
            let mut r = SelfRequest::new(op, &user);
            r.password = Reply::given(pw.clone());
            r.new_password = Reply::given(pw);
            r.ticket = ticket;
            let frame = encode_self_request(&r);
            prop_assert!(matches!(decode_incoming(body(&frame)), Ok(Incoming::SelfService(ref s)) if *s == r));
        }

        #[test]
        fn no_body_is_both_kinds(data in proptest::collection::vec(any::<u8>(), 0..2_000)) {
            let login = decode_request(&data).is_ok();
            let own = decode_self_request(&data).is_ok();
            let note = crate::session::decode_session_note(&data).is_ok();
            prop_assert!(u8::from(login) + u8::from(own) + u8::from(note) <= 1);
            match decode_incoming(&data) {
                Ok(Incoming::Login(_)) => prop_assert!(login),
                Ok(Incoming::SelfService(_)) => prop_assert!(own),
                Ok(Incoming::Session(_)) => prop_assert!(note),
                Err(_) => prop_assert!(!login),
            }
        }
    }
}

#[test]
fn the_weak_password_refusal_is_bounded_and_leaves_the_other_refusals_unchanged() {
    // The refusals an older veilctl knows keep their bytes.
    let busy = encode_answer(&SelfAnswer::Refused {
        reason: Refusal::Busy,
    });
    assert_eq!(body(&busy), br#"{"answer":"refused","reason":"busy"}"#);
    let weak = encode_answer(&SelfAnswer::Refused {
        reason: Refusal::weak_password("too short\n\u{7}"),
    });
    assert_eq!(
        body(&weak),
        br#"{"answer":"refused","reason":{"weak-password":{"why":"too short"}}}"#
    );
    // The longest, worst-escaped reason still fits the client's cap.
    let worst = encode_answer(&SelfAnswer::Refused {
        reason: Refusal::weak_password(&"\"".repeat(4 * MAX_WHY)),
    });
    assert!(worst.len() - LEN_PREFIX <= MAX_ANSWER, "{}", worst.len());
    let Refusal::WeakPassword { why } = Refusal::weak_password(&"é".repeat(MAX_WHY)) else {
        unreachable!()
    };
    assert!(why.len() <= MAX_WHY && why.len() > MAX_WHY - 2);
}

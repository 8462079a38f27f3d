//! `one_prompt`: the one answer split by veil_proto's rule, then checked
//! like two answers, with one password verify whichever way it splits.

use super::*;
use crate::common::password::VERIFIES;

fn ask_one(f: &mut Fixture, user: &str, answer: &str, now: u64) -> (Decision, usize) {
    let mut req = Request::new(user, Reply::from(answer), Reply::missing());
    req.one_prompt = true;
    let before = VERIFIES.with(|n| n.get());
    let d = f.verifier.decide(&req, ROOT, now);
    (d, VERIFIES.with(|n| n.get()) - before)
}

/// Fails on the old main, which had no `one_prompt` (the whole answer was
/// checked as the password, with a missing code: never an ALLOW).
#[test]
fn one_answer_splits_into_password_and_code_and_costs_one_verify_either_way() {
    let mut f = fixture(TotpPolicy::Required);
    let codes = give_codes(&mut f, "alice");
    let totp = code(&f, NOW);
    let cases = [
        ("alice", format!("right{totp}"), Reason::Success),
        (
            "alice",
            format!("right {}", codes[0].as_str()),
            Reason::RecoveryCode { left: 9 },
        ),
        ("alice", format!("wrong{totp}"), Reason::WrongPassword),
        ("alice", "right000000".to_owned(), Reason::WrongCode),
        // The recovery code without its space: read as a TOTP tail.
        (
            "alice",
            format!("right{}", codes[1].as_str()),
            Reason::WrongPassword,
        ),
        ("alice", "123".to_owned(), Reason::WrongPassword),
        ("ghost", format!("right{totp}"), Reason::UnknownUser),
        (
            "ghost",
            format!("right {}", codes[2].as_str()),
            Reason::UnknownUser,
        ),
    ];
    for (i, (user, answer, want)) in cases.into_iter().enumerate() {
        let (d, verifies) = ask_one(&mut f, user, &answer, NOW + i as u64 * 30);
        assert_eq!(d.reason, want, "case {i}");
        assert_eq!(verifies, 1, "case {i}: one password verify");
        f.verifier.store().unwrap().unlock_user("alice").unwrap();
    }
    // A missing or overlong answer is verified too, and never splits.
    let mut req = Request::new("alice", Reply::missing(), Reply::missing());
    req.one_prompt = true;
    let before = VERIFIES.with(|n| n.get());
    let d = f.verifier.decide(&req, ROOT, NOW + 900);
    assert_eq!(VERIFIES.with(|n| n.get()) - before, 1);
    assert_eq!(d.verdict, Verdict::Deny);
}

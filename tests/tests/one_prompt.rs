//! `one_prompt` through real libpam and a real veild: one prompt, the
//! password and the code in one answer, split by veild. Failures of a
//! real and an unknown account look the same to the application (prompt,
//! PAM code, veild's DENY bytes) and cost each the same ledger charge.
//! Every test here fails on the old main, which had no `one_prompt` (the
//! module refused the unknown argument and denied everything).
#![forbid(unsafe_code)]

use std::time::Duration;

use veil_proto::{DENY, Reply, Request, encode_request};
use veil_tests::pam::{self, PAM_AUTH_ERR, PAM_SUCCESS, socket_args};
use veil_tests::totp::{DEMO_SECRET, code_now, wrong_code};
use veil_tests::{Attempt, Exchange, PamStack, Style, Veild};

const PASSWORD: &str = "correct horse battery staple";
const ONE_PROMPT: &str = "Password and verification code: ";

fn stack_for(veild: &Veild) -> PamStack {
    PamStack::veil(&format!("{} one_prompt", socket_args(&veild.socket(), "5")))
}

fn one_prompt() -> Vec<Exchange> {
    vec![Exchange {
        style: Style::EchoOff,
        text: ONE_PROMPT.into(),
    }]
}

/// The user's ledger counters as (kind, source, failures), sorted: what
/// a failure charged, with the user's own name left out.
fn charges(veild: &Veild, user: &str) -> Vec<String> {
    let (rc, out, err) = veild.ctl(&["status", user, "--json"], "");
    assert_eq!(rc, 0, "{err}");
    let status: serde_json::Value = serde_json::from_str(&out).unwrap();
    let mut charged: Vec<String> = status["counters"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| {
            let mut c = c.clone();
            c.as_object_mut().unwrap().remove("user");
            c.to_string().replace(user, "USER")
        })
        .collect();
    charged.sort();
    charged
}

#[test]
fn password_and_code_in_one_answer_log_in_and_every_failure_looks_the_same() {
    let veild = Veild::from_toml("[lockout]\ndeny = 5\n");
    veild.add_user("alice", PASSWORD);
    veild.enroll_totp("alice", DEMO_SECRET);
    let stack = stack_for(&veild);

    let ok = pam::authenticate(
        &stack,
        &Attempt::new("alice", &[&format!("{PASSWORD}{}", code_now(DEMO_SECRET))]),
    );
    assert_eq!(ok.code, PAM_SUCCESS, "{}", veild.stderr());
    assert_eq!(ok.transcript, one_prompt());
    assert_eq!(ok.unused_answers, 0);

    let wrong_code = format!("{PASSWORD}{}", wrong_code(DEMO_SECRET));
    let real = pam::authenticate(&stack, &Attempt::new("alice", &[&wrong_code]));
    let right_answer = format!("{PASSWORD}{}", code_now(DEMO_SECRET));
    let unknown = pam::authenticate(&stack, &Attempt::new("ghost", &[&right_answer]));
    for (what, run) in [("wrong code", &real), ("unknown user", &unknown)] {
        assert_eq!(run.code, PAM_AUTH_ERR, "{what}");
        assert_eq!(run.transcript, one_prompt(), "{what}");
        assert_eq!(run.unused_answers, 0, "{what}");
    }
    let log = veild.log_with(3);
    assert!(
        log.contains("user=alice") && log.contains("reason=wrong-code"),
        "{log}"
    );
    assert!(
        log.contains("user=ghost") && log.contains("reason=unknown-user"),
        "{log}"
    );
    // The same ledger effect: one failure each, on keys of the same kinds.
    let (alice, ghost) = (charges(&veild, "alice"), charges(&veild, "ghost"));
    assert!(!alice.is_empty(), "a failure is charged");
    assert_eq!(alice, ghost);

    // veild's answer to either request is the DENY frame, byte for byte.
    for (user, answer) in [("alice", &wrong_code), ("ghost", &right_answer)] {
        let mut request = Request::new(user, Reply::from(answer.as_str()), Reply::missing());
        request.one_prompt = true;
        assert_eq!(veild.raw(&encode_request(&request)), DENY, "{user}");
    }
}

#[test]
fn a_recovery_code_after_a_space_logs_in_once() {
    let veild = Veild::from_toml("[lockout]\ndeny = 5\n");
    veild.add_user("alice", PASSWORD);
    veild.enroll_totp("alice", DEMO_SECRET);
    let out = veild.veilctl(&["recovery", "new", "alice"], "");
    let text = String::from_utf8_lossy(&out.stdout);
    let code = text
        .split_whitespace()
        .find(|w| w.len() == 12 && w.as_bytes()[4] == b'-' && w.as_bytes()[9] == b'-')
        .unwrap_or_else(|| panic!("no code in {text}"))
        .to_owned();
    let stack = stack_for(&veild);
    let answer = format!("{PASSWORD} {code}");
    let first = pam::authenticate(&stack, &Attempt::new("alice", &[&answer]));
    assert_eq!(first.code, PAM_SUCCESS, "{}", veild.stderr());
    let again = pam::authenticate(&stack, &Attempt::new("alice", &[&answer]));
    assert_eq!(again.code, PAM_AUTH_ERR);
    assert_eq!(again.transcript, one_prompt());
    assert!(
        veild
            .wait_for_line(
                &["user=alice", "reason=used-recovery-code"],
                Duration::from_secs(5)
            )
            .is_some(),
        "{}",
        veild.stderr()
    );
}

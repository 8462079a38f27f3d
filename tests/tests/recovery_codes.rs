//! Recovery codes through real libpam and a real veild: `veilctl recovery
//! new` shows ten codes once; each logs in once in place of a TOTP code at
//! the same prompts; the eleventh use fails; an unknown user, a user
//! without codes and a user with codes but a wrong one get the same DENY
//! bytes (their audit reasons differ); `status` and `user list` count
//! what is left.

#![forbid(unsafe_code)]

use veil_proto::DENY;
use veil_tests::pam::{self, PAM_AUTH_ERR, PAM_SUCCESS, socket_args};
use veil_tests::wire::PASSWORD;
use veil_tests::{Attempt, PamStack, Veild};

/// The ten codes `veilctl recovery new NAME` prints (`xxxx-xxxx-xx`).
fn new_codes(veild: &Veild, name: &str) -> Vec<String> {
    let out = veild.veilctl(&["recovery", "new", name], "");
    let text = String::from_utf8_lossy(&out.stdout);
    let codes: Vec<String> = text
        .split_whitespace()
        .filter(|w| w.len() == 12 && w.as_bytes()[4] == b'-' && w.as_bytes()[9] == b'-')
        .map(str::to_owned)
        .collect();
    assert_eq!(codes.len(), 10, "{text}");
    codes
}

#[test]
fn each_code_logs_in_once_at_the_same_prompts_and_the_eleventh_use_fails() {
    let veild = Veild::from_toml("[lockout]\ndeny = 20\n");
    veild.enrol("alice", true);
    let codes = new_codes(&veild, "alice");
    let stack = PamStack::veil(&socket_args(&veild.socket(), "5"));
    let totp = pam::authenticate(
        &stack,
        &Attempt::new("alice", &[PASSWORD, &veil_tests::wire::code_now()]),
    );
    assert_eq!(totp.code, PAM_SUCCESS, "{}", veild.stderr());
    for (i, code) in codes.iter().enumerate() {
        let run = pam::authenticate(&stack, &Attempt::new("alice", &[PASSWORD, code]));
        assert_eq!(run.code, PAM_SUCCESS, "code {i}: {}", veild.stderr());
        assert_eq!(run.transcript, totp.transcript, "the same two prompts");
    }
    for code in [&codes[0], &codes[9]] {
        let again = pam::authenticate(&stack, &Attempt::new("alice", &[PASSWORD, code]));
        assert_eq!(again.code, PAM_AUTH_ERR, "a code works once");
        assert_eq!(again.transcript, totp.transcript);
    }
    let log = veild.log_with(13);
    assert_eq!(log.matches("event=recovery-code-used").count(), 10, "{log}");
    assert!(log.contains("reason=recovery-code"), "{log}");
    assert!(log.contains("codes_left=0"), "{log}");
    assert_eq!(log.matches("reason=used-recovery-code").count(), 2, "{log}");
    let (_, status, _) = veild.ctl(&["status", "alice"], "");
    assert!(status.contains("recovery codes left: 0"), "{status}");
}

#[test]
fn unknown_users_users_without_codes_and_wrong_codes_get_the_same_deny_bytes() {
    let veild = Veild::from_toml("[lockout]\ndeny = 20\n");
    veild.enrol("alice", true);
    veild.enrol("bob", true);
    let codes = new_codes(&veild, "alice");
    // A code that looks like one but is nobody's.
    let guess = "abcd-efgh-jk";
    let answers = [
        veild.ask("ghost", PASSWORD, guess),
        veild.ask("ghost", PASSWORD, &codes[0]),
        veild.ask("bob", PASSWORD, guess),
        veild.ask("bob", PASSWORD, &codes[0]),
        veild.ask("alice", PASSWORD, guess),
    ];
    for answer in &answers {
        assert_eq!(answer.as_slice(), DENY.as_slice());
    }
    let log = veild.log_with(5);
    assert_eq!(log.matches("reason=unknown-user").count(), 2, "{log}");
    assert_eq!(log.matches("reason=wrong-code").count(), 3, "{log}");
    // alice's first code was never used by the requests above.
    assert_ne!(veild.ask("alice", PASSWORD, &codes[0]), DENY.to_vec());
}

#[test]
fn status_and_user_list_count_the_codes_left_and_clear_removes_them() {
    let veild = Veild::from_toml("");
    veild.enrol("alice", true);
    veild.enrol("bob", true);
    let codes = new_codes(&veild, "alice");
    assert_ne!(veild.ask("alice", PASSWORD, &codes[4]), DENY.to_vec());
    let (_, status, _) = veild.ctl(&["status", "alice"], "");
    assert!(status.contains("recovery codes left: 9"), "{status}");
    let (_, json, _) = veild.ctl(&["status", "alice", "--json"], "");
    assert!(json.contains("\"recovery_codes_left\": 9"), "{json}");
    let (_, list, _) = veild.ctl(&["user", "list"], "");
    let column = |list: &str, name: &str| {
        list.lines()
            .find(|l| l.starts_with(name))
            .and_then(|l| l.split_whitespace().nth(3).map(str::to_owned))
    };
    assert!(list.lines().next().unwrap().contains("RECOVERY"), "{list}");
    assert_eq!(column(&list, "alice").as_deref(), Some("9"), "{list}");
    assert_eq!(column(&list, "bob").as_deref(), Some("0"), "{list}");
    let (_, json, _) = veild.ctl(&["user", "list", "--json"], "");
    assert!(json.contains("\"recovery_codes_left\": 9"), "{json}");
    veild.veilctl(&["recovery", "clear", "alice"], "");
    assert_eq!(veild.ask("alice", PASSWORD, &codes[5]), DENY.to_vec());
    let (rc, _, err) = veild.ctl(&["recovery", "new", "nobody-here"], "");
    assert_eq!(rc, 3, "{err}");
}

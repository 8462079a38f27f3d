//! `veilctl enable --one-prompt`: `one_prompt` on the PAM line, and sshd's
//! `password` method judged as reaching veil (the password followed by the
//! code) instead of as always failing. Each fails on the old main, which
//! had no `--one-prompt` and judged the password method dead behind veil.

use std::fs;
use std::path::Path;

use super::pam_stack::*;
use super::sshd_access::*;
use super::sshd_config::*;
use super::tests::{SSHD, enable_args, enrol, setup};
use super::*;

const SSHD_CONFIG: &str = include_str!("../../../../packaging/testdata/sshd_config-debian");

fn settings(text: &str) -> Vec<Directive> {
    sshd_directives(text, "sshd_config").0
}

/// root and alice with the same settings, `alice_extra` first for alice.
fn state(text: &str, alice_extra: &str) -> SshdState {
    let view = |name: &str, root: bool, text: &str| UserView {
        name: name.into(),
        root,
        settings: settings(text),
    };
    SshdState {
        global: settings(text),
        views: vec![
            view("root", true, text),
            view("alice", false, &format!("{alice_extra}{text}")),
        ],
        fallback: None,
    }
}

#[test]
fn debians_default_sshd_needs_nothing_for_one_prompt_and_two_prompts_name_it() {
    let one = sshd_advice_for(&settings(SSHD_CONFIG), true);
    assert!(one.required.is_empty(), "{one:?}");
    assert!(
        !one.advised
            .iter()
            .any(|c| c.line.starts_with("PasswordAuthentication")),
        "{one:?}"
    );
    let two = sshd_advice_for(&settings(SSHD_CONFIG), false);
    let password = two
        .advised
        .iter()
        .find(|c| c.line == "PasswordAuthentication no")
        .expect("the two-prompt advice on the password method");
    assert!(password.why.contains("--one-prompt"), "{}", password.why);
    assert!(
        !password.why.contains("no one-prompt mode"),
        "{}",
        password.why
    );
    // With neither password nor keyboard-interactive, one_prompt is unreachable.
    let off = sshd_advice_for(
        &settings("UsePAM yes\nPasswordAuthentication no\nAuthenticationMethods publickey\n"),
        true,
    );
    let lines: Vec<&str> = off.required.iter().map(|c| c.line.as_str()).collect();
    assert_eq!(
        lines,
        [
            "PasswordAuthentication yes",
            "AuthenticationMethods password"
        ],
        "{off:?}"
    );
}

#[test]
fn a_user_who_logs_in_by_password_keeps_a_way_in_with_one_prompt() {
    let debian = state(SSHD_CONFIG, "AuthenticationMethods password\n");
    let err = judge_sshd_for(
        &debian,
        Path::new("sshd_config"),
        Mode::TwoPrompts,
        &["alice"],
    )
    .unwrap_err();
    assert!(err.to_string().contains("--one-prompt"), "{err}");
    let report = judge_sshd_for(
        &debian,
        Path::new("sshd_config"),
        Mode::OnePrompt,
        &["alice"],
    )
    .unwrap();
    assert!(!report.contains("alice can log in"), "{report}");
    // Not enrolled, and afterwards only through veil's one prompt: warned.
    let report = judge_sshd_for(
        &debian,
        Path::new("sshd_config"),
        Mode::OnePrompt,
        &["root"],
    )
    .unwrap();
    assert!(report.contains("warning: alice"), "{report}");
}

#[test]
fn enable_one_prompt_writes_the_argument_and_accepts_a_one_prompt_locker() {
    let options = StackOptions {
        veil_args: ONE_PROMPT_ARG.into(),
        force: false,
    };
    let e = enable_text(SSHD, &options).unwrap();
    assert!(
        e.text
            .contains("\nauth       required     pam_veil.so one_prompt\n"),
        "{}",
        e.text
    );
    assert_eq!(disable_text(&e.text).unwrap(), SSHD);
    check_two_prompts("i3lock", true).unwrap();
    let err = check_two_prompts("swaylock", false).unwrap_err();
    assert!(err.message.contains("--one-prompt"), "{err}");

    let (dir, config, pam) = setup(SSHD);
    enrol(&config, "bob", true);
    let mut args = enable_args(dir.path(), &pam);
    args.one_prompt = true;
    let sshd_config = dir.path().join("sshd_config");
    fs::write(
        &sshd_config,
        "UsePAM yes\nKbdInteractiveAuthentication no\nPubkeyAuthentication no\n",
    )
    .unwrap();
    args.sshd_config = Some(sshd_config);
    let report = enable(&config, &args).unwrap();
    assert!(!report.contains("PasswordAuthentication no"), "{report}");
    let written = fs::read_to_string(pam.join("svc")).unwrap();
    assert!(written.contains("pam_veil.so one_prompt\n"), "{written}");
}

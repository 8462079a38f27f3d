//! `veilctl enable` under a `[service.NAME]` policy: the line it writes,
//! the report, and the policies it refuses to wire up.

use std::fs;

use veil_daemon::common::config::Service;

use super::tests::{enable_args, enrol, setup};
use super::*;
use crate::error::EXIT_REFUSED;

const SUDO: &str = include_str!("../../../../packaging/testdata/pam.d-sudo");

fn with_policy(config: &mut Config, factors: Option<Factors>, totp: Option<TotpPolicy>) {
    config.service.insert(
        "svc".into(),
        Service {
            factors,
            totp_policy: totp,
            ..Service::default()
        },
    );
}

#[test]
fn the_password_alone_lets_users_without_a_code_pass_and_is_reported() {
    let (dir, mut config, pam) = setup(SUDO);
    enrol(&config, "alice", false);
    let args = enable_args(dir.path(), &pam);
    // The host requires a code: nobody could pass, nothing is written.
    assert_eq!(enable(&config, &args).unwrap_err().code, EXIT_REFUSED);
    with_policy(&mut config, Some(Factors::Password), None);
    let report = enable(&config, &args).unwrap();
    assert!(
        report.contains("policy for svc: factors [\"password\"], TOTP no code (from [service.svc] in veild.toml)"),
        "{report}"
    );
    assert!(
        report.contains("users who can log in through veil: alice"),
        "{report}"
    );
    // The default line: the module has no line that asks no code.
    let text = fs::read_to_string(pam.join("svc")).unwrap();
    assert!(text.contains("pam_veil.so\n"), "{text}");
    assert!(!text.contains("factors="), "{text}");
}

#[test]
fn a_service_without_a_section_reports_the_host_settings() {
    let (dir, config, pam) = setup(SUDO);
    enrol(&config, "bob", true);
    let report = enable(&config, &enable_args(dir.path(), &pam)).unwrap();
    assert!(
        report.contains("policy for svc: factors as the module line declares, TOTP required (from the host's settings)"),
        "{report}"
    );
}

#[test]
fn after_publickey_is_refused_where_the_policy_wants_the_password() {
    let (dir, mut config, pam) = setup(SUDO);
    enrol(&config, "bob", true);
    with_policy(&mut config, Some(Factors::PasswordAndCode), None);
    let mut args = enable_args(dir.path(), &pam);
    args.after_publickey = true;
    args.sshd_config = Some(dir.path().join("sshd_config"));
    let err = enable(&config, &args).unwrap_err();
    assert_eq!(err.code, EXIT_REFUSED);
    assert!(err.message.contains("deny every login"), "{err}");
    assert_eq!(fs::read_to_string(pam.join("svc")).unwrap(), SUDO);
}

/// `--one-prompt` under `["password"]`: veild would deny every login as
/// `policy`, so nothing is written. Fails without the check in `enable`.
#[test]
fn one_prompt_is_refused_where_the_policy_takes_the_password_alone() {
    let (dir, mut config, pam) = setup(SUDO);
    enrol(&config, "bob", true);
    with_policy(&mut config, Some(Factors::Password), None);
    let mut args = enable_args(dir.path(), &pam);
    args.one_prompt = true;
    let err = enable(&config, &args).unwrap_err();
    assert_eq!(err.code, EXIT_REFUSED);
    assert!(err.message.contains("--one-prompt"), "{err}");
    assert_eq!(fs::read_to_string(pam.join("svc")).unwrap(), SUDO);
}

#[test]
fn the_code_alone_needs_sshd_like_after_publickey() {
    let (dir, mut config, pam) = setup(SUDO);
    enrol(&config, "bob", true);
    with_policy(&mut config, Some(Factors::Code), None);
    let err = enable(&config, &enable_args(dir.path(), &pam)).unwrap_err();
    assert!(err.message.contains("is for sshd"), "{err}");
    assert_eq!(fs::read_to_string(pam.join("svc")).unwrap(), SUDO);
}

#[test]
fn an_enabled_line_the_policy_does_not_accept_is_warned_about() {
    let (dir, mut config, pam) = setup(SUDO);
    enrol(&config, "bob", true);
    let args = enable_args(dir.path(), &pam);
    enable(&config, &args).unwrap();
    let report = enable(&config, &args).unwrap();
    assert!(!report.contains("warning"), "{report}");
    // A policy set after the edit that accepts the line: no warning; a
    // line edited by hand to factors=code, which it does not accept: named.
    with_policy(&mut config, Some(Factors::Password), None);
    let report = enable(&config, &enable_args(dir.path(), &pam)).unwrap();
    assert!(report.contains("already enabled"), "{report}");
    assert!(!report.contains("warning"), "{report}");
    assert!(!block_code_only(
        &fs::read_to_string(pam.join("svc")).unwrap()
    ));
    let code_line = fs::read_to_string(pam.join("svc"))
        .unwrap()
        .replace("pam_veil.so\n", "pam_veil.so factors=code\n");
    assert!(block_code_only(&code_line));
    fs::write(pam.join("svc"), code_line).unwrap();
    let report = enable(&config, &enable_args(dir.path(), &pam)).unwrap();
    assert!(report.contains("warning: its pam_veil.so line"), "{report}");
}

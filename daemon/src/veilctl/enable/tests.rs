//! The enable/disable logic on real Debian PAM files and sshd_config,
//! and the I/O layer on temp dirs.

use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::Path;

use super::pam_stack::*;
use super::sshd_config::*;
use super::*;
use crate::error::EXIT_REFUSED;

const SSHD: &str = include_str!("../../../../packaging/testdata/pam.d-sshd");
const SUDO: &str = include_str!("../../../../packaging/testdata/pam.d-sudo");
const LOGIN: &str = include_str!("../../../../packaging/testdata/pam.d-login");
const SSHD_CONFIG: &str = include_str!("../../../../packaging/testdata/sshd_config-debian");

fn plain() -> StackOptions {
    StackOptions::default()
}

fn auth_lines(text: &str) -> Vec<String> {
    text.lines()
        .map(str::trim)
        .filter(|l| l.starts_with("auth") || l.starts_with("@include common-auth"))
        .map(|l| l.split_whitespace().collect::<Vec<_>>().join(" "))
        .collect()
}

#[test]
fn debian_sshd_gets_veil_as_its_only_authenticator() {
    let e = enable_text(SSHD, &plain()).unwrap();
    assert_eq!(auth_lines(&e.text), vec!["auth required pam_veil.so"]);
    assert_eq!(e.replaced, vec!["@include common-auth"]);
    assert!(e.text.contains("#veil# @include common-auth\n"));
    // Account, session and password stacks are untouched.
    assert!(e.text.contains("@include common-account\n"));
    assert!(e.text.contains("@include common-password\n"));
}

#[test]
fn debian_sudo_gets_veil_where_common_auth_was() {
    let e = enable_text(SUDO, &plain()).unwrap();
    let veil = e.text.find("pam_veil.so").unwrap();
    assert!(veil < e.text.find("@include common-account").unwrap());
    assert_eq!(auth_lines(&e.text), vec!["auth required pam_veil.so"]);
}

#[test]
fn login_keeps_its_gates_and_moves_nologin_behind_veil() {
    let e = enable_text(LOGIN, &plain()).unwrap();
    assert_eq!(
        auth_lines(&e.text),
        vec![
            "auth optional pam_faildelay.so delay=3000000",
            "auth requisite pam_veil.so",
            "auth required pam_nologin.so",
            "auth optional pam_group.so",
        ]
    );
    assert_eq!(e.moved.len(), 1);
    assert!(
        e.text
            .contains("#veil# auth       requisite  pam_nologin.so\n")
    );
}

#[test]
fn disable_undoes_enable_byte_for_byte() {
    for original in [
        SSHD,
        SUDO,
        LOGIN,
        "auth sufficient pam_unix.so\nauth required pam_deny.so",
    ] {
        let e = enable_text(original, &plain()).unwrap();
        assert!(is_enabled(&e.text));
        assert_eq!(disable_text(&e.text).unwrap(), original);
    }
}

#[test]
fn crlf_files_and_continued_lines_round_trip() {
    let original =
        "#%PAM-1.0\r\nauth required \\\n   pam_unix.so nullok\r\naccount required pam_unix.so\r\n";
    let e = enable_text(original, &plain()).unwrap();
    assert!(e.text.contains(&format!("{BEGIN}\r\n")));
    assert!(
        e.text
            .contains("#veil# auth required \\\n#veil#    pam_unix.so")
    );
    assert_eq!(disable_text(&e.text).unwrap(), original);
}

#[test]
fn other_authenticators_go_and_rootok_stays_in_front() {
    let original = "auth sufficient pam_rootok.so\n@include common-auth\n-auth optional pam_gnome_keyring.so\nauth [success=1 default=ignore] pam_sss.so\n";
    let e = enable_text(original, &plain()).unwrap();
    assert_eq!(
        auth_lines(&e.text),
        vec!["auth sufficient pam_rootok.so", "auth required pam_veil.so"]
    );
    assert_eq!(e.replaced.len(), 3);
    assert_eq!(disable_text(&e.text).unwrap(), original);
}

#[test]
fn enabling_twice_or_with_leftover_markers_is_refused() {
    let once = enable_text(SUDO, &plain()).unwrap().text;
    assert!(
        enable_text(&once, &plain())
            .unwrap_err()
            .message
            .contains("already")
    );
    let stray = format!("{SUDO}#veil# auth required pam_unix.so\n");
    assert!(
        enable_text(&stray, &plain())
            .unwrap_err()
            .message
            .contains("leftover")
    );
}

#[test]
fn unknown_includes_and_hand_written_veil_lines_are_refused() {
    let err = enable_text("@include my-auth\n", &plain()).unwrap_err();
    assert_eq!(err.code, EXIT_REFUSED);
    assert!(err.message.contains("my-auth"));
    assert!(
        enable_text(
            "auth required /usr/lib/x86_64-linux-gnu/security/pam_veil.so\n",
            &plain()
        )
        .is_err()
    );
    assert!(enable_text("account required pam_unix.so\n", &plain()).is_err());
}

#[test]
fn a_damaged_block_is_not_guessed_at() {
    let mut text = enable_text(SUDO, &plain()).unwrap().text;
    text = text.replace(&veil_line(false, ""), "auth sufficient pam_permit.so");
    assert!(disable_text(&text).is_err());
    let cut = enable_text(SUDO, &plain()).unwrap().text.replace(END, "");
    assert!(disable_text(&cut).is_err());
    assert!(disable_text(SUDO).is_err());
}

#[test]
fn shared_and_odd_service_names_are_refused() {
    for bad in [
        "common-auth",
        "other",
        "../shadow",
        "",
        ".hidden",
        "a/b",
        "-x",
    ] {
        assert!(check_service_name(bad).is_err(), "{bad}");
    }
    for good in ["sshd", "sudo", "veil-e2e-sshd", "login"] {
        check_service_name(good).unwrap();
    }
}

fn user(name: &str, totp: bool) -> UserSummary {
    UserSummary {
        name: name.into(),
        totp,
        totp_pending: false,
        created_at: 0,
        updated_at: 0,
        phc: String::new(),
        hash_current: true,
        system_hash: None,
    }
}

#[test]
fn only_users_who_can_pass_veil_count_as_enrolled() {
    let users = [user("alice", false), user("bob", true)];
    assert_eq!(able_to_log_in(&users, TotpPolicy::Required), vec!["bob"]);
    assert_eq!(
        able_to_log_in(&users, TotpPolicy::IfEnrolled),
        vec!["alice", "bob"]
    );
    assert!(able_to_log_in(&users[..1], TotpPolicy::Required).is_empty());
}

fn advice(text: &str) -> SshdAdvice {
    sshd_advice(&sshd_directives(text, "sshd_config").0)
}

#[test]
fn debian_default_sshd_config_needs_keyboard_interactive() {
    let a = advice(SSHD_CONFIG);
    assert_eq!(a.required.len(), 1, "{a:?}");
    assert_eq!(a.required[0].line, "KbdInteractiveAuthentication yes");
    assert!(a.required[0].now.contains("sshd_config:"), "{a:?}");
    let text = describe_sshd(&a, Path::new("/etc/ssh/sshd_config"));
    assert!(text.contains("KbdInteractiveAuthentication yes"), "{text}");
    assert!(text.contains("PasswordAuthentication no"), "{text}");
}

#[test]
fn a_veil_ready_sshd_config_has_nothing_required() {
    let a = advice(
        "UsePAM yes\nKbdInteractiveAuthentication yes\nPasswordAuthentication no\nPubkeyAuthentication no\nAuthenticationMethods keyboard-interactive\n",
    );
    assert_eq!(a, SshdAdvice::default());
}

#[test]
fn sshd_takes_the_first_value_and_ignores_match_blocks() {
    let a = advice(
        "usepam=yes\nChallengeResponseAuthentication no\nKbdInteractiveAuthentication yes\nMatch user x\nUsePAM no\n",
    );
    assert_eq!(a.required.len(), 1);
    assert_eq!(a.required[0].line, "KbdInteractiveAuthentication yes");
    let a = advice("UsePAM no\nUsePAM yes\n");
    assert_eq!(a.required[0].line, "UsePAM yes");
}

#[test]
fn authentication_methods_must_allow_keyboard_interactive() {
    let a = advice("UsePAM yes\nAuthenticationMethods publickey password\n");
    assert!(
        a.required
            .iter()
            .any(|c| c.line.starts_with("AuthenticationMethods"))
    );
    let a = advice(
        "UsePAM yes\nAuthenticationMethods publickey,keyboard-interactive:pam\nPasswordAuthentication no\n",
    );
    assert!(a.required.is_empty());
    assert!(a.advised.is_empty(), "{a:?}");
}

#[test]
fn public_keys_bypassing_veil_are_pointed_out() {
    let a = advice("UsePAM yes\nPasswordAuthentication no\n");
    assert!(a.required.is_empty());
    assert_eq!(a.advised.len(), 1);
    assert!(a.advised[0].why.contains("public key"));
}

#[test]
fn includes_are_read_in_place_and_first_value_wins() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path().join("sshd_config.d");
    fs::create_dir(&d).unwrap();
    fs::write(d.join("10-a.conf"), "KbdInteractiveAuthentication no\n").unwrap();
    fs::write(d.join("20-b.conf"), "PasswordAuthentication no\n").unwrap();
    fs::write(d.join("ignored.txt"), "UsePAM no\n").unwrap();
    let main = dir.path().join("sshd_config");
    fs::write(
        &main,
        format!(
            "Include {}/*.conf\nKbdInteractiveAuthentication yes\nUsePAM yes\n",
            d.display()
        ),
    )
    .unwrap();
    let a = sshd_advice(&load_sshd_config(&main).unwrap());
    assert_eq!(a.required.len(), 1, "{a:?}");
    assert!(a.required[0].now.contains("10-a.conf:1"), "{a:?}");
}

#[test]
fn wildcards_match_like_sshd_globs() {
    assert!(wildcard("*.conf", "a.conf"));
    assert!(!wildcard("*.conf", "a.conf.bak"));
    assert!(!wildcard("*.conf", ".hidden.conf"));
    assert!(wildcard("x?", "xy"));
}

fn setup(service_text: &str) -> (tempfile::TempDir, Config, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let pam = dir.path().join("pam.d");
    fs::create_dir(&pam).unwrap();
    fs::write(pam.join("svc"), service_text).unwrap();
    let config = Config {
        database: dir.path().join("veil.db"),
        ..Config::default()
    };
    (dir, config, pam)
}

fn enrol(config: &Config, name: &str, active: bool) {
    let mut store = store::open(&config.database, OpenMode::CreateIfMissing).unwrap();
    store
        .add_user(name, "$argon2id$v=19$m=8,t=1,p=1$c2FsdHNhbHQ$aGFzaA", 0)
        .unwrap();
    if active {
        store.set_totp_pending(name, &[7; 20], 0).unwrap();
        store.activate_totp(name, -1, 0).unwrap();
    }
}

fn enable_args(dir: &Path, pam: &Path) -> EnableArgs {
    EnableArgs {
        service: "svc".into(),
        pam_dir: pam.to_owned(),
        sshd_config: None,
        backup_dir: dir.join("backup"),
        console: false,
        force: false,
        after_publickey: false,
    }
}

#[test]
fn enable_refuses_while_nobody_could_log_in_and_changes_nothing() {
    let (dir, config, pam) = setup(SUDO);
    let args = enable_args(dir.path(), &pam);
    let err = enable(&config, &args).unwrap_err();
    assert_eq!(err.code, EXIT_REFUSED);
    assert!(err.message.contains("nobody is enrolled"), "{err}");
    enrol(&config, "alice", false);
    let err = enable(&config, &args).unwrap_err();
    assert!(err.message.contains("no user has an active TOTP"), "{err}");
    assert_eq!(fs::read_to_string(pam.join("svc")).unwrap(), SUDO);
    assert!(!args.backup_dir.exists());
}

#[test]
fn enable_then_disable_restores_the_file_and_its_mode() {
    let (dir, config, pam) = setup(SUDO);
    fs::set_permissions(pam.join("svc"), fs::Permissions::from_mode(0o640)).unwrap();
    enrol(&config, "bob", true);
    let args = enable_args(dir.path(), &pam);
    let report = enable(&config, &args).unwrap();
    assert!(
        report.contains("users who can log in through veil: bob"),
        "{report}"
    );
    let edited = fs::read_to_string(pam.join("svc")).unwrap();
    assert!(is_enabled(&edited));
    assert_eq!(
        fs::read_to_string(args.backup_dir.join("svc")).unwrap(),
        SUDO
    );
    assert_eq!(
        fs::metadata(pam.join("svc")).unwrap().mode() & 0o7777,
        0o640
    );
    assert!(enable(&config, &args).unwrap().contains("already enabled"));
    let disable_args = DisableArgs {
        service: "svc".into(),
        pam_dir: pam.clone(),
        backup_dir: args.backup_dir.clone(),
    };
    let report = disable(&disable_args).unwrap();
    assert!(report.contains("restored the original"), "{report}");
    assert_eq!(fs::read_to_string(pam.join("svc")).unwrap(), SUDO);
    assert!(!args.backup_dir.join("svc").exists());
    assert!(disable(&disable_args).unwrap().contains("not enabled"));
}

#[test]
fn the_console_needs_an_explicit_flag() {
    let (dir, config, pam) = setup(LOGIN);
    fs::rename(pam.join("svc"), pam.join("login")).unwrap();
    enrol(&config, "bob", true);
    let mut args = enable_args(dir.path(), &pam);
    args.service = "login".into();
    let err = enable(&config, &args).unwrap_err();
    assert!(err.message.contains("--console"), "{err}");
    args.console = true;
    enable(&config, &args).unwrap();
}

#[test]
fn enable_refuses_an_sshd_that_would_never_ask_veil() {
    let (dir, config, pam) = setup(SSHD);
    enrol(&config, "bob", true);
    let sshd_config = dir.path().join("sshd_config");
    fs::write(&sshd_config, SSHD_CONFIG).unwrap();
    let mut args = enable_args(dir.path(), &pam);
    args.sshd_config = Some(sshd_config.clone());
    let err = enable(&config, &args).unwrap_err();
    assert!(
        err.message.contains("KbdInteractiveAuthentication yes"),
        "{err}"
    );
    assert_eq!(fs::read_to_string(pam.join("svc")).unwrap(), SSHD);
    fs::write(
        &sshd_config,
        "UsePAM yes\nKbdInteractiveAuthentication yes\nPasswordAuthentication no\nPubkeyAuthentication no\n",
    )
    .unwrap();
    enable(&config, &args).unwrap();
}

#[test]
fn disable_keeps_later_edits_and_the_backup_wins_over_a_damaged_block() {
    let (dir, config, pam) = setup(SUDO);
    enrol(&config, "bob", true);
    let args = enable_args(dir.path(), &pam);
    enable(&config, &args).unwrap();
    let disable_args = DisableArgs {
        service: "svc".into(),
        pam_dir: pam.clone(),
        backup_dir: args.backup_dir.clone(),
    };
    let edited = fs::read_to_string(pam.join("svc")).unwrap();
    fs::write(
        pam.join("svc"),
        edited.replace(&veil_line(false, ""), "auth sufficient pam_permit.so"),
    )
    .unwrap();
    let report = disable(&disable_args).unwrap();
    assert!(report.contains("restored the backup"), "{report}");
    assert_eq!(fs::read_to_string(pam.join("svc")).unwrap(), SUDO);

    enable(&config, &args).unwrap();
    let edited = fs::read_to_string(pam.join("svc")).unwrap();
    fs::write(pam.join("svc"), format!("{edited}# local note\n")).unwrap();
    let report = disable(&disable_args).unwrap();
    assert!(report.contains("other changes since kept"), "{report}");
    assert_eq!(
        fs::read_to_string(pam.join("svc")).unwrap(),
        format!("{SUDO}# local note\n")
    );
}

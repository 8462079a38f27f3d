//! The enable/disable logic on real Debian PAM files and sshd_config,
//! and the I/O layer on temp dirs.

use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::Path;

use super::pam_stack::*;
use super::sshd_config::*;
use super::*;
use crate::error::EXIT_REFUSED;

pub(super) const SSHD: &str = include_str!("../../../../packaging/testdata/pam.d-sshd");
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

fn rollout(policy: TotpPolicy, groups: &[&str], enrol_by: Option<&str>) -> Policies {
    Policies::from(&Config {
        totp: veil_daemon::common::config::Totp {
            policy,
            required_groups: groups.iter().map(|g| g.to_string()).collect(),
            enrol_by: enrol_by.map(str::to_owned),
            ..Config::default().totp
        },
        ..Config::default()
    })
}

/// [`able_to_log_in`] for a service without a section of its own.
fn able<'a>(users: &'a [UserSummary], p: &Policies, code_only: bool, now: u64) -> Vec<&'a str> {
    able_to_log_in(users, p, &p.for_service("svc"), code_only, now)
}

/// 2026-03-01 00:00 UTC, and one second before.
const MARCH_1: u64 = 1_772_323_200;

#[test]
fn only_users_who_can_pass_veil_count_as_enrolled() {
    let users = [user("alice", false), user("bob", true)];
    let required = rollout(TotpPolicy::Required, &[], None);
    let if_enrolled = rollout(TotpPolicy::IfEnrolled, &[], None);
    assert_eq!(able(&users, &required, false, 0), vec!["bob"]);
    assert_eq!(able(&users, &if_enrolled, false, 0), vec!["alice", "bob"]);
    assert!(able(&users[..1], &required, false, 0).is_empty());
}

#[test]
fn code_only_counts_only_users_with_an_active_secret() {
    // veild requires a code of everyone under factors=code (verify.rs).
    let users = [user("alice", false), user("bob", true)];
    let if_enrolled = rollout(TotpPolicy::IfEnrolled, &[], None);
    assert_eq!(able(&users, &if_enrolled, true, 0), vec!["bob"]);
    assert!(able(&users[..1], &if_enrolled, true, 0).is_empty());
}

#[test]
fn the_rollout_decides_who_passes_without_a_secret() {
    let users = [user("alice", false), user("root", false)];
    let deadline = rollout(TotpPolicy::IfEnrolled, &[], Some("2026-03-01"));
    assert_eq!(
        able(&users, &deadline, false, MARCH_1 - 1),
        vec!["alice", "root"]
    );
    assert!(able(&users, &deadline, false, MARCH_1).is_empty());
    // root's primary group is root on every Debian system.
    let group = rollout(TotpPolicy::IfEnrolled, &["root"], None);
    assert_eq!(able(&users, &group, false, 0), vec!["alice"]);
}

#[test]
fn enable_refuses_when_the_rollout_deadline_has_passed_and_nobody_has_a_secret() {
    let (dir, mut config, pam) = setup(SUDO);
    config.totp.policy = TotpPolicy::IfEnrolled;
    enrol(&config, "alice", false);
    let args = enable_args(dir.path(), &pam);
    config.totp.enrol_by = Some("2020-01-01".into());
    let err = enable(&config, &args).unwrap_err();
    assert_eq!(err.code, EXIT_REFUSED);
    assert!(err.message.contains("the rollout"), "{err}");
    assert_eq!(fs::read_to_string(pam.join("svc")).unwrap(), SUDO);
    // Before the deadline alice passes with her password alone.
    config.totp.enrol_by = Some("2999-01-01".into());
    let report = enable(&config, &args).unwrap();
    assert!(report.contains("log in through veil: alice"), "{report}");
}

#[test]
fn after_publickey_refuses_while_nobody_has_an_active_secret() {
    let (dir, mut config, pam) = setup(SSHD);
    config.totp.policy = TotpPolicy::IfEnrolled;
    enrol(&config, "alice", false);
    let mut args = enable_args(dir.path(), &pam);
    args.after_publickey = true;
    // sshd_config puts a key first for everyone; the enrolment is what fails.
    let sshd_config = dir.path().join("sshd_config");
    fs::write(
        &sshd_config,
        "UsePAM yes\nKbdInteractiveAuthentication yes\nAuthenticationMethods publickey,keyboard-interactive\n",
    )
    .unwrap();
    args.sshd_config = Some(sshd_config);
    let err = enable(&config, &args).unwrap_err();
    assert_eq!(err.code, EXIT_REFUSED);
    assert!(err.message.contains("asks only for the code"), "{err}");
    assert_eq!(fs::read_to_string(pam.join("svc")).unwrap(), SSHD);
    assert!(!args.backup_dir.exists());
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

pub(super) fn setup(service_text: &str) -> (tempfile::TempDir, Config, PathBuf) {
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

pub(super) fn enrol(config: &Config, name: &str, active: bool) {
    let mut store = store::open(&store::Location::of(config), OpenMode::CreateIfMissing).unwrap();
    store
        .add_user(name, "$argon2id$v=19$m=8,t=1,p=1$c2FsdHNhbHQ$aGFzaA", 0)
        .unwrap();
    if active {
        store.set_totp_pending(name, &[7; 20], 0).unwrap();
        store.activate_totp(name, -1, 0).unwrap();
    }
}

pub(super) fn enable_args(dir: &Path, pam: &Path) -> EnableArgs {
    EnableArgs {
        service: "svc".into(),
        pam_dir: pam.to_owned(),
        sshd_config: None,
        backup_dir: dir.join("backup"),
        console: false,
        force: false,
        after_publickey: false,
        one_prompt: false,
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

// ------------------------------------------- access restrictions behind veil

const SU: &str = include_str!("../../../../packaging/testdata/pam.d-su");

/// Debian's su with its commented `auth required pam_wheel.so` made active.
fn su_with_wheel() -> String {
    let line = "# auth       required   pam_wheel.so\n";
    assert!(SU.contains(line), "Debian's su changed");
    SU.replacen(line, "auth       required   pam_wheel.so\n", 1)
}

/// `line` inserted into `file` just before its `@include common-auth`.
fn before_common_auth(file: &str, line: &str) -> String {
    let at = file.find("@include common-auth").expect("common-auth");
    format!("{}{line}\n{}", &file[..at], &file[at..])
}

/// Enables `original`, checks that `module` now runs right behind veil as
/// `required` (veil `requisite`), that nothing else authenticates, and that
/// disable gives back the original byte for byte.
fn assert_moved_behind_veil(original: &str, module: &str, expected: &str) -> Enabled {
    let e = enable_text(original, &plain()).unwrap();
    let auth = auth_lines(&e.text);
    let veil = auth.iter().position(|l| l == "auth requisite pam_veil.so");
    let veil = veil.unwrap_or_else(|| panic!("no requisite veil: {auth:?}"));
    assert_eq!(auth[veil + 1], expected, "{auth:?}");
    assert!(
        auth[..veil].iter().all(|l| !l.contains(module)),
        "{module} still in front of veil: {auth:?}"
    );
    assert!(!auth.iter().any(|l| l.contains("common-auth")), "{auth:?}");
    assert!(e.moved.iter().any(|m| m.contains(module)), "{e:?}");
    assert_eq!(disable_text(&e.text).unwrap(), original);
    e
}

#[test]
fn su_keeps_rootok_in_front_and_pam_wheel_behind_veil() {
    let original = su_with_wheel();
    let e = assert_moved_behind_veil(&original, "pam_wheel.so", "auth required pam_wheel.so");
    assert_eq!(
        auth_lines(&e.text)[..2],
        [
            "auth sufficient pam_rootok.so",
            "auth requisite pam_veil.so"
        ]
    );
    assert!(
        e.text
            .contains("#veil# auth       required   pam_wheel.so\n")
    );
    // Debian's own su (wheel commented) has nothing to move: veil stays required.
    let plain_su = enable_text(SU, &plain()).unwrap();
    assert_eq!(
        auth_lines(&plain_su.text),
        ["auth sufficient pam_rootok.so", "auth required pam_veil.so"]
    );
}

#[test]
fn pam_wheel_deny_group_is_kept_with_its_arguments() {
    let original = su_with_wheel().replacen(
        "auth       required   pam_wheel.so\n",
        "auth       required   pam_wheel.so deny group=nosu\n",
        1,
    );
    assert_moved_behind_veil(
        &original,
        "pam_wheel.so",
        "auth required pam_wheel.so deny group=nosu",
    );
}

#[test]
fn pam_listfile_in_sshd_is_kept_behind_veil() {
    let original = before_common_auth(
        SSHD,
        "auth required pam_listfile.so item=user sense=deny file=/etc/ssh/deny onerr=succeed",
    );
    assert_moved_behind_veil(
        &original,
        "pam_listfile.so",
        "auth required pam_listfile.so item=user sense=deny file=/etc/ssh/deny onerr=succeed",
    );
}

#[test]
fn pam_succeed_if_in_sudo_is_kept_behind_veil_as_required() {
    let original = before_common_auth(
        SUDO,
        "auth requisite pam_succeed_if.so user ingroup sudo quiet",
    );
    assert_moved_behind_veil(
        &original,
        "pam_succeed_if.so",
        "auth required pam_succeed_if.so user ingroup sudo quiet",
    );
}

#[test]
fn pam_access_in_sshd_is_kept_behind_veil() {
    let original = before_common_auth(
        SSHD,
        "auth  required  pam_access.so accessfile=/etc/security/access-sshd.conf",
    );
    assert_moved_behind_veil(
        &original,
        "pam_access.so",
        "auth required pam_access.so accessfile=/etc/security/access-sshd.conf",
    );
}

#[test]
fn pam_nologin_of_debian_login_is_kept_behind_veil() {
    assert_moved_behind_veil(LOGIN, "pam_nologin.so", "auth required pam_nologin.so");
}

#[test]
fn old_debian_pam_securetty_line_is_kept_behind_veil() {
    // Debian's login up to buster, with its bracketed control.
    let original = LOGIN.replacen(
        "auth       requisite  pam_nologin.so\n",
        "auth [success=ok new_authtok_reqd=ok ignore=ignore user_unknown=bad default=die] pam_securetty.so\nauth       requisite  pam_nologin.so\n",
        1,
    );
    let e = assert_moved_behind_veil(
        &original,
        "pam_securetty.so",
        "auth required pam_securetty.so",
    );
    assert_eq!(e.moved.len(), 2, "{e:?}");
}

#[test]
fn a_restriction_that_grants_is_not_moved_but_refused() {
    let trust = su_with_wheel().replacen(
        "# auth       sufficient pam_wheel.so trust\n",
        "auth       sufficient pam_wheel.so trust\n",
        1,
    );
    let err = enable_text(&trust, &plain()).unwrap_err();
    assert_eq!(err.code, EXIT_REFUSED);
    assert!(
        err.message
            .contains("auth       sufficient pam_wheel.so trust"),
        "{err}"
    );
    assert!(err.message.contains("--force"), "{err}");
    let jump = before_common_auth(
        SUDO,
        "auth [success=1 default=ignore] pam_succeed_if.so uid < 1000",
    );
    assert!(enable_text(&jump, &plain()).is_err());
    let rootok = "auth required pam_rootok.so\n@include common-auth\n";
    assert!(enable_text(rootok, &plain()).is_err());
}

#[test]
fn an_unknown_module_is_refused_naming_its_line_unless_forced() {
    let original = before_common_auth(
        SUDO,
        "auth sufficient pam_ssh_agent_auth.so file=~/.ssh/keys",
    );
    let err = enable_text(&original, &plain()).unwrap_err();
    assert_eq!(err.code, EXIT_REFUSED);
    let n = original
        .lines()
        .position(|l| l.contains("pam_ssh_agent_auth"))
        .unwrap()
        + 1;
    assert!(
        err.message.contains(&format!(
            "line {n}: auth sufficient pam_ssh_agent_auth.so file=~/.ssh/keys"
        )),
        "{err}"
    );
    let forced = StackOptions {
        force: true,
        ..plain()
    };
    let e = enable_text(&original, &forced).unwrap();
    assert_eq!(auth_lines(&e.text), vec!["auth required pam_veil.so"]);
    assert_eq!(e.forced.len(), 1);
    assert!(
        e.text
            .contains("#veil# auth sufficient pam_ssh_agent_auth.so")
    );
    assert_eq!(disable_text(&e.text).unwrap(), original);
    // An include of a stack veilctl does not know is judged the same way.
    assert!(enable_text("auth include my-stack\n@include common-auth\n", &plain()).is_err());
}

#[test]
fn a_hand_edited_restriction_in_the_block_is_not_guessed_at() {
    let e = enable_text(&su_with_wheel(), &plain()).unwrap();
    let edited = e.text.replace(
        "auth       required     pam_wheel.so",
        "auth       sufficient   pam_permit.so",
    );
    assert!(disable_text(&edited).is_err());
}

#[test]
fn after_publickey_writes_factors_code_and_undoes_it() {
    let options = StackOptions {
        veil_args: CODE_ONLY_ARG.into(),
        ..plain()
    };
    let e = enable_text(SSHD, &options).unwrap();
    assert!(
        e.text
            .contains("\nauth       required     pam_veil.so factors=code\n"),
        "{}",
        e.text
    );
    assert_eq!(disable_text(&e.text).unwrap(), SSHD);
}

#[test]
fn single_prompt_screen_lockers_are_refused() {
    for service in ["i3lock", "swaylock"] {
        let err = check_two_prompts(service, false).unwrap_err();
        assert_eq!(err.code, EXIT_REFUSED);
        assert!(err.message.contains("one password"), "{err}");
    }
    check_two_prompts("sudo", false).unwrap();
    let (dir, config, pam) = setup(SUDO);
    fs::rename(pam.join("svc"), pam.join("i3lock")).unwrap();
    enrol(&config, "bob", true);
    let mut args = enable_args(dir.path(), &pam);
    args.service = "i3lock".into();
    assert!(
        enable(&config, &args)
            .unwrap_err()
            .message
            .contains("Screen lockers")
    );
    assert_eq!(fs::read_to_string(pam.join("i3lock")).unwrap(), SUDO);
}

// ------------------------------------------------ sshd access, per user

use super::sshd_access::*;
use super::sshd_t::parse_sshd_t;

fn settings(text: &str) -> Vec<Directive> {
    sshd_directives(text, "sshd_config").0
}

/// Debian's default sshd_config with keyboard-interactive on.
fn debian_kbd() -> String {
    SSHD_CONFIG.replace(
        "KbdInteractiveAuthentication no",
        "KbdInteractiveAuthentication yes",
    )
}

/// The state `read_sshd` would build with the same settings for root and
/// alice, except `alice_extra` first for alice (a Match block's effect).
fn state(text: &str, alice_extra: &str) -> SshdState {
    let global = settings(text);
    let alice = settings(&format!("{alice_extra}{text}"));
    SshdState {
        views: vec![
            UserView {
                name: "root".into(),
                root: true,
                settings: global.clone(),
            },
            UserView {
                name: "alice".into(),
                root: false,
                settings: alice,
            },
        ],
        global,
        fallback: None,
    }
}

#[test]
fn root_under_prohibit_password_has_only_its_key() {
    let d = settings(&debian_kbd());
    assert_eq!(permit_root_login(&d), "prohibit-password");
    assert_eq!(usable_lists(&d, true, Phase::Today), vec!["publickey"]);
    assert_eq!(
        usable_lists(&d, false, Phase::Today),
        vec!["publickey", "password", "keyboard-interactive"]
    );
    // Behind veil sshd's password method always fails.
    assert_eq!(
        usable_lists(&d, false, Phase::AfterVeil),
        vec!["publickey", "keyboard-interactive"]
    );
    let yes = settings(&format!("PermitRootLogin yes\n{}", debian_kbd()));
    assert!(method_works(
        &yes,
        "keyboard-interactive:pam",
        true,
        Phase::AfterVeil
    ));
    let old_name = parse_sshd_t("permitrootlogin without-password\nusepam yes\n", "sshd -T");
    assert_eq!(permit_root_login(&old_name), "prohibit-password");
}

#[test]
fn the_advised_methods_come_with_a_match_block_for_root() {
    let report = judge_sshd(
        &state(&debian_kbd(), ""),
        Path::new("sshd_config"),
        false,
        &["root", "alice"],
    )
    .unwrap();
    assert!(
        report.contains("AuthenticationMethods publickey,keyboard-interactive"),
        "{report}"
    );
    assert!(
        report.contains("root can log in by ssh today (publickey)"),
        "{report}"
    );
    assert!(report.contains("fake password"), "{report}");
    assert!(
        report.contains("Match User root\n              AuthenticationMethods publickey"),
        "{report}"
    );
    assert!(!report.contains("alice can log in"), "{report}");
    // With PermitRootLogin yes root passes veil's prompts: no Match needed.
    let yes = format!("PermitRootLogin yes\n{}", debian_kbd());
    let report = judge_sshd(
        &state(&yes, ""),
        Path::new("sshd_config"),
        false,
        &["root", "alice"],
    )
    .unwrap();
    assert!(!report.contains("Match User root"), "{report}");
}

#[test]
fn a_user_who_logs_in_only_by_password_today_stops_enable() {
    let err = judge_sshd(
        &state(&debian_kbd(), "AuthenticationMethods password\n"),
        Path::new("sshd_config"),
        false,
        &["root", "alice"],
    )
    .unwrap_err()
    .to_string();
    assert!(
        err.contains("alice can log in by ssh today (password)"),
        "{err}"
    );
    assert!(
        err.contains("keyboard-interactive in place of password"),
        "{err}"
    );
    assert!(!err.contains("root can log in"), "{err}");
    // Root logging in by password today (PermitRootLogin yes) keeps a way in.
    let yes = format!("PermitRootLogin yes\n{}", debian_kbd());
    judge_sshd(
        &state(&yes, ""),
        Path::new("sshd_config"),
        false,
        &["root", "alice"],
    )
    .unwrap();
}

#[test]
fn after_publickey_refuses_keyboard_interactive_alone() {
    let err = judge_sshd(
        &state(&debian_kbd(), ""),
        Path::new("sshd_config"),
        true,
        &["root", "alice"],
    )
    .unwrap_err()
    .to_string();
    assert!(err.contains("root: AuthenticationMethods any"), "{err}");
    assert!(err.contains("alice: AuthenticationMethods any"), "{err}");
    let both = format!(
        "AuthenticationMethods publickey,keyboard-interactive\n{}",
        debian_kbd()
    );
    let err = judge_sshd(
        &state(
            &both,
            "AuthenticationMethods publickey,keyboard-interactive keyboard-interactive\n",
        ),
        Path::new("sshd_config"),
        true,
        &["root", "alice"],
    )
    .unwrap_err()
    .to_string();
    assert!(
        err.contains(
            "alice: AuthenticationMethods publickey,keyboard-interactive keyboard-interactive"
        ),
        "{err}"
    );
    assert!(!err.contains("root:"), "{err}");
    let report = judge_sshd(
        &state(&both, ""),
        Path::new("sshd_config"),
        true,
        &["root", "alice"],
    )
    .unwrap();
    assert!(
        report.contains("note: root cannot log in by ssh"),
        "{report}"
    );
    // A key alone for root (its Match block) also starts with the key.
    let report = judge_sshd(
        &state(&both, "AuthenticationMethods publickey\n"),
        Path::new("sshd_config"),
        true,
        &["root", "alice"],
    );
    assert!(report.is_ok(), "{report:?}");
    // Without sshd -T, Match blocks are unknown: refused.
    let mut fallback = state(&both, "");
    fallback.fallback = Some("could not run sshd -T (test)".into());
    let err = judge_sshd(
        &fallback,
        Path::new("sshd_config"),
        true,
        &["root", "alice"],
    )
    .unwrap_err()
    .to_string();
    assert!(err.contains("sshd -T"), "{err}");
}

#[test]
fn a_probed_user_not_enrolled_is_warned_about() {
    let yes = format!(
        "PermitRootLogin yes\nPubkeyAuthentication no\n{}",
        debian_kbd()
    );
    let report = judge_sshd(
        &state(&yes, ""),
        Path::new("sshd_config"),
        false,
        &["alice"],
    )
    .unwrap();
    assert!(
        report.contains("warning: root can log in by ssh today but is not enrolled"),
        "{report}"
    );
    assert!(!report.contains("warning: alice"), "{report}");
}

#[test]
fn sshd_t_output_is_read_as_keyword_and_value() {
    let d = parse_sshd_t(
        "usepam yes\nauthenticationmethods publickey,keyboard-interactive\nsubsystem sftp /usr/lib/openssh/sftp-server\n",
        "sshd -T for root",
    );
    assert_eq!(d.len(), 3);
    assert!(publickey_first(&d));
    assert_eq!(d[2].value, "sftp /usr/lib/openssh/sftp-server");
    let any = parse_sshd_t("authenticationmethods any\n", "sshd -T");
    assert!(!publickey_first(&any));
}

#[test]
fn only_controls_that_take_access_away_move_behind_veil() {
    for ok in [
        "required",
        "requisite",
        "[success=ok new_authtok_reqd=ok ignore=ignore user_unknown=bad default=die]",
    ] {
        assert!(restricting_control(ok), "{ok}");
    }
    for bad in [
        "sufficient",
        "optional",
        "[success=1 default=ignore]",
        "[success=done default=die]",
        "[]",
        "[default=reset]",
    ] {
        assert!(!restricting_control(bad), "{bad}");
    }
}

// ------------------------------------- --after-publickey and Match blocks

#[test]
fn every_match_block_that_lets_a_login_reach_veil_without_a_key_is_named() {
    let dir = tempfile::tempdir().unwrap();
    let inc = dir.path().join("inc.conf");
    // A block opened in an included file ends with it; an Include inside a
    // block belongs to the block.
    fs::write(
        &inc,
        "Match LocalPort 2222\n    KbdInteractiveAuthentication yes\n",
    )
    .unwrap();
    let methods = dir.path().join("methods.conf");
    fs::write(&methods, "AuthenticationMethods keyboard-interactive\n").unwrap();
    let main = dir.path().join("sshd_config");
    fs::write(
        &main,
        format!(
            "AuthenticationMethods publickey,keyboard-interactive\n\
             Include {}\n\
             Match User root\n    AuthenticationMethods publickey\n\
             Match Address 10.0.0.0/8\n    Include {}\n\
             Match Group admins Host *.example.org\n    X11Forwarding no\n\
             Match All\n    PubkeyAuthentication yes\n",
            inc.display(),
            methods.display()
        ),
    )
    .unwrap();
    let blocks = load_match_blocks(&main).unwrap();
    let summary: Vec<(String, Vec<String>)> = blocks
        .iter()
        .map(|b| {
            (
                b.criteria.clone(),
                b.directives.iter().map(|d| d.key.clone()).collect(),
            )
        })
        .collect();
    let keys = |k: &[&str]| k.iter().map(|k| (*k).to_owned()).collect::<Vec<_>>();
    assert_eq!(
        summary,
        vec![
            (
                "LocalPort 2222".into(),
                keys(&["kbdinteractiveauthentication"])
            ),
            ("User root".into(), keys(&["authenticationmethods"])),
            (
                "Address 10.0.0.0/8".into(),
                keys(&["authenticationmethods"])
            ),
            (
                "Group admins Host *.example.org".into(),
                keys(&["x11forwarding"])
            ),
            ("All".into(), keys(&["pubkeyauthentication"])),
        ]
    );
    let global = load_sshd_config(&main).unwrap();
    let err = code_alone_methods(&global, &blocks)
        .unwrap_err()
        .to_string();
    assert!(
        err.contains(&format!(
            "{}:1: AuthenticationMethods keyboard-interactive (in \"Match Address 10.0.0.0/8\" at {}:5)",
            methods.display(),
            main.display()
        )),
        "{err}"
    );
    // Only the one method value that lets a login start without a key.
    assert_eq!(
        err.matches("AuthenticationMethods keyboard-interactive")
            .count(),
        1,
        "{err}"
    );
    assert!(!err.contains("Match User root"), "{err}");
    assert!(
        err.contains("fix: make each of them start with the key"),
        "{err}"
    );
    // Settings other than AuthenticationMethods do not decide it.
    let others: Vec<MatchBlock> = blocks
        .iter()
        .filter(|b| !b.criteria.starts_with("Address"))
        .cloned()
        .collect();
    code_alone_methods(&global, &others).unwrap();
}

/// Issue 18 item 7. Fails on the old main, which judged only the users who
/// could pass veil that day (here: alice, whom no Match block touches) and
/// ignored Match User/Group blocks for anyone else: it wrote the code-only
/// stack, and bob, in group ops, enrolling later by self-service, would
/// have logged in with the 6-digit code alone.
#[test]
fn a_match_group_block_with_keyboard_interactive_alone_stops_after_publickey_whoever_is_enrolled() {
    let (dir, config, pam) = setup(SSHD);
    let sshd_config = dir.path().join("sshd_config");
    fs::write(
        &sshd_config,
        "UsePAM yes\nKbdInteractiveAuthentication yes\nPasswordAuthentication no\n\
         AuthenticationMethods publickey,keyboard-interactive\n\
         Match Group ops\n    AuthenticationMethods keyboard-interactive\n",
    )
    .unwrap();
    let mut args = enable_args(dir.path(), &pam);
    args.sshd_config = Some(sshd_config.clone());
    args.after_publickey = true;
    let named = format!(
        "{}:6: AuthenticationMethods keyboard-interactive (in \"Match Group ops\" at {0}:5)",
        sshd_config.display()
    );
    // Nobody enrolled: the block is what is refused.
    let err = enable(&config, &args).unwrap_err();
    assert_eq!(err.code, EXIT_REFUSED);
    assert!(err.message.contains(&named), "{err}");
    // Someone enrolled whom the block does not touch: still refused.
    enrol(&config, "alice", true);
    let err = enable(&config, &args).unwrap_err();
    assert_eq!(err.code, EXIT_REFUSED);
    assert!(err.message.contains(&named), "{err}");
    assert_eq!(fs::read_to_string(pam.join("svc")).unwrap(), SSHD);
    // With the block fixed, enabled; run again after sshd_config regressed,
    // the check is made again instead of "already enabled".
    let fixed = fs::read_to_string(&sshd_config).unwrap().replace(
        "    AuthenticationMethods keyboard-interactive\n",
        "    AuthenticationMethods publickey,keyboard-interactive\n",
    );
    let broken = fs::read_to_string(&sshd_config).unwrap();
    fs::write(&sshd_config, fixed).unwrap();
    enable(&config, &args).unwrap();
    assert!(is_enabled(&fs::read_to_string(pam.join("svc")).unwrap()));
    assert!(enable(&config, &args).unwrap().contains("already enabled"));
    fs::write(&sshd_config, broken).unwrap();
    let err = enable(&config, &args).unwrap_err();
    assert!(err.message.contains(&named), "{err}");
    // The same for every other method list that reaches veil before a key.
    for methods in [
        "any",
        "password",
        "keyboard-interactive,publickey",
        "hostbased,keyboard-interactive",
        "publickey,keyboard-interactive keyboard-interactive:pam",
    ] {
        let global = settings("AuthenticationMethods publickey,keyboard-interactive\n");
        let block = MatchBlock {
            origin: "sshd_config:9".into(),
            criteria: "User later".into(),
            directives: settings(&format!("AuthenticationMethods {methods}\n")),
        };
        assert!(code_alone_methods(&global, &[block]).is_err(), "{methods}");
        let global = settings(&format!("AuthenticationMethods {methods}\n"));
        assert!(code_alone_methods(&global, &[]).is_err(), "{methods}");
    }
    // Unset globally means any: refused.
    assert!(
        code_alone_methods(&[], &[])
            .unwrap_err()
            .to_string()
            .contains("default (unset)")
    );
    for methods in [
        "publickey,keyboard-interactive",
        "publickey",
        "hostbased,publickey,keyboard-interactive:pam",
        "publickey,password publickey,keyboard-interactive",
        "gssapi-with-mic",
    ] {
        let global = settings(&format!("AuthenticationMethods {methods}\n"));
        code_alone_methods(&global, &[]).unwrap_or_else(|e| panic!("{methods}: {e}"));
    }
}

#[test]
fn after_publickey_probes_every_user_who_can_pass_veil_or_refuses() {
    let names: Vec<String> = (0..40).map(|i| format!("u{i:02}")).collect();
    let able: Vec<&str> = names.iter().map(String::as_str).collect();
    let all = sshd_probes(&able, "admin", true).unwrap();
    assert_eq!(all.len(), 42, "{all:?}");
    assert!(all.contains(&"u39") && all.contains(&"admin"));
    assert_eq!(sshd_probes(&able, "admin", false).unwrap().len(), 20);
    let many: Vec<String> = (0..MAX_CODE_ONLY_PROBES).map(|i| format!("u{i}")).collect();
    let many: Vec<&str> = many.iter().map(String::as_str).collect();
    let err = sshd_probes(&many, "", true).unwrap_err();
    assert_eq!(err.code, EXIT_REFUSED);
    assert!(err.message.contains("more than veilctl reads"), "{err}");
    assert!(sshd_probes(&["a,b"], "", true).is_err());
    assert_eq!(sshd_probes(&["a,b"], "", false).unwrap(), vec!["root"]);
}

// ------------------------------------------- modules kept in front of veil

#[test]
fn pam_cap_moves_behind_veil_as_written_and_disable_restores_it() {
    let original = before_common_auth(SSHD, "auth       optional   pam_cap.so\n");
    let e = enable_text(&original, &plain()).unwrap();
    assert_eq!(
        auth_lines(&e.text),
        vec!["auth requisite pam_veil.so", "auth optional pam_cap.so"],
        "{}",
        e.text
    );
    assert_eq!(e.moved, vec!["auth       optional     pam_cap.so"]);
    assert_eq!(disable_text(&e.text).unwrap(), original);
}

#[test]
fn a_kept_module_that_could_grant_or_skip_veil_is_refused() {
    for line in [
        "auth       sufficient pam_cap.so\n",
        "auth       [success=1 default=ignore] pam_cap.so\n",
        "auth       sufficient pam_echo.so file=/etc/issue\n",
        "auth       [default=done] pam_env.so\n",
        "auth       [success=2 default=ignore] pam_faildelay.so delay=1\n",
    ] {
        let original = before_common_auth(SSHD, line);
        let err = enable_text(&original, &plain()).unwrap_err();
        assert_eq!(err.code, EXIT_REFUSED, "{line}");
        assert!(err.message.contains("could let a login past veil"), "{err}");
        // --force comments it out.
        let e = enable_text(
            &original,
            &StackOptions {
                force: true,
                ..plain()
            },
        )
        .unwrap();
        assert_eq!(
            auth_lines(&e.text),
            vec!["auth required pam_veil.so"],
            "{line}"
        );
    }
    for line in [
        "auth       optional   pam_echo.so file=/etc/issue\n",
        "auth       required   pam_env.so\n",
        "-auth      [success=ok default=ignore] pam_faildelay.so delay=1\n",
    ] {
        let original = before_common_auth(SSHD, line);
        let e = enable_text(&original, &plain()).unwrap();
        // Left in place, in front of veil's block, untouched.
        let at = e.text.find(line).expect(line);
        assert!(at < e.text.find(BEGIN).unwrap(), "{}", e.text);
        assert!(e.moved.is_empty(), "{line}");
    }
}

//! `veilctl enable` end to end: the real veilctl edits Debian's real PAM
//! files, real libpam runs the result against a real veild, and the real
//! `sshd -T` judges Debian's sshd_config.
//!
//! Root only (real accounts, a su caller whose real uid is not root, sshd
//! reading its host keys): ignored in a plain `cargo test`, run by
//! `scripts/test.sh` as root with `--include-ignored`; run as anyone else
//! they fail rather than pass.

#![forbid(unsafe_code)]

use std::fs;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use veil_tests::accounts::Accounts;
use veil_tests::pam::{self, PAM_AUTH_ERR, PAM_SUCCESS, socket_args};
use veil_tests::root::require_root;
use veil_tests::totp::{DEMO_SECRET, code_now};
use veil_tests::{Attempt, DaemonConfig, PamStack, Veild, paths};

const PASSWORD: &str = "correct horse battery staple";
const SU: &str = include_str!("../../packaging/testdata/pam.d-su");
const SSHD_PAM: &str = include_str!("../../packaging/testdata/pam.d-sshd");

/// Debian's /etc/pam.d/su with pam_wheel made active (pam_rootok already is).
fn su_with_wheel() -> String {
    let line = "# auth       required   pam_wheel.so\n";
    assert!(SU.contains(line), "Debian's su changed");
    SU.replacen(line, "auth       required   pam_wheel.so\n", 1)
}

/// A temp dir with `name` holding `text`, for `--pam-dir`.
fn pam_dir(name: &str, text: &str) -> tempfile::TempDir {
    let dir = tempfile::Builder::new()
        .prefix("veil-enable-")
        .tempdir()
        .unwrap();
    fs::write(dir.path().join(name), text).unwrap();
    dir
}

/// `veilctl enable ARGS` against `veild`'s database; (status, stdout+stderr).
fn enable(veild: &Veild, dir: &Path, args: &[&str]) -> (i32, String) {
    let pam = dir.to_str().unwrap();
    let backup = dir.join("backup");
    let mut all = vec!["enable"];
    all.extend_from_slice(args);
    all.extend_from_slice(&["--pam-dir", pam, "--backup-dir", backup.to_str().unwrap()]);
    let (code, out, err) = veild.ctl(&all, "");
    (code, format!("{out}{err}"))
}

/// The service file as libpam will load it: pam_veil by absolute path,
/// talking to `veild`; the files it `@include`s beside it.
fn loadable(text: &str, veild: &Veild) -> String {
    let veil = format!(
        " {} {}",
        paths::module().display(),
        socket_args(&veild.socket(), "5")
    );
    assert_eq!(text.matches(" pam_veil.so").count(), 1, "{text}");
    text.replace(" pam_veil.so", &veil)
}

fn stack_of(text: &str) -> PamStack {
    let stack = PamStack::new(&[text.trim_end().to_owned()]);
    for include in ["common-account", "common-session"] {
        fs::write(
            stack.dir().join(include),
            "account required pam_permit.so\nsession required pam_permit.so\n",
        )
        .unwrap();
    }
    stack
}

/// One su attempt as seen by the caller: PAM code and transcript.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Seen {
    code: String,
    prompts: String,
}

/// Runs `attempts` (user, password, code) through `stack_text` in a child
/// of this test binary whose real uid is `nobody` and effective uid root:
/// what su looks like to PAM when nobody runs it (pam_rootok reads the
/// real uid; pam_veil's connection carries the effective one).
fn su_as_nobody(stack_text: &str, attempts: &[(&str, &str, &str)]) -> Vec<Seen> {
    let spec: Vec<String> = attempts
        .iter()
        .map(|(u, p, c)| format!("{u}\t{p}\t{c}"))
        .collect();
    let out = Command::new(std::env::current_exe().unwrap())
        .args(["--exact", "su_client", "--nocapture", "--include-ignored"])
        .env("VEIL_SU_STACK", stack_text)
        .env("VEIL_SU_ATTEMPTS", spec.join("\n"))
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(
        out.status.success(),
        "{text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    text.lines()
        .filter_map(|l| l.strip_prefix("SU\t"))
        .map(|l| {
            let (code, prompts) = l.split_once('\t').unwrap_or((l, ""));
            Seen {
                code: code.to_owned(),
                prompts: prompts.to_owned(),
            }
        })
        .collect()
}

/// Runs only as the child of [`su_as_nobody`].
#[test]
#[ignore = "a helper: run by enabled_su_answers_a_real_and_an_unknown_account_alike"]
fn su_client() {
    let (Ok(stack_text), Ok(attempts)) = (
        std::env::var("VEIL_SU_STACK"),
        std::env::var("VEIL_SU_ATTEMPTS"),
    ) else {
        return;
    };
    let stack = stack_of(&stack_text);
    let nobody = nix::unistd::Uid::from_raw(65534);
    let root = nix::unistd::Uid::from_raw(0);
    nix::unistd::setresuid(nobody, root, root).expect("setresuid: run as root");
    for line in attempts.lines() {
        let mut f = line.split('\t');
        let (user, password, code) = (f.next().unwrap(), f.next().unwrap(), f.next().unwrap());
        let run = pam::authenticate(&stack, &Attempt::new(user, &[password, code]).by("nobody"));
        println!("SU\t{}\t{}", run.code_name(), run.prompts());
    }
}

#[test]
#[ignore = "needs root (a real account, a su caller whose real uid is nobody): scripts/test.sh runs it as root"]
fn enabled_su_answers_a_real_and_an_unknown_account_alike() {
    require_root();
    let mut accounts = Accounts::new();
    // Unlocked (useradd leaves "!"), or veild denies it as account-locked.
    accounts.add_with_password("v12breal", "v12b system password");
    let veild = Veild::start(DaemonConfig::default());
    veild.add_user("v12breal", PASSWORD);
    veild.enroll_totp("v12breal", DEMO_SECRET);
    let original = su_with_wheel();
    let dir = pam_dir("su", &original);
    let (code, report) = enable(&veild, dir.path(), &["su"]);
    assert_eq!(code, 0, "{report}");
    assert!(report.contains("kept behind veil"), "{report}");
    let enabled = fs::read_to_string(dir.path().join("su")).unwrap();
    let stack = loadable(&enabled, &veild);

    // Root's own su is still pam_rootok's: no prompt at all.
    let as_root = pam::authenticate(&stack_of(&stack), &Attempt::new("v12bghost", &[]));
    assert_eq!(as_root.code, PAM_SUCCESS, "{}", as_root.prompts());
    assert!(as_root.transcript.is_empty(), "{}", as_root.prompts());

    let wrong = "not the password";
    let seen = su_as_nobody(
        &stack,
        &[
            ("v12breal", wrong, "123456"),
            ("v12bghost", wrong, "123456"),
            ("v12breal", PASSWORD, &code_now(DEMO_SECRET)),
        ],
    );
    assert_eq!(seen.len(), 3, "{seen:?}");
    assert_eq!(seen[0], seen[1], "a real and an unknown account differ");
    assert_eq!(seen[0].code, pam::code_name(PAM_AUTH_ERR));
    assert_eq!(
        seen[0].prompts,
        "\"Password: \" (echo off) | \"Verification code: \" (echo off)"
    );
    // With the right password and code veil lets the caller through, and
    // pam_wheel, behind it, still keeps nobody (not in the wheel group) out.
    assert_eq!(seen[2].code, "PAM_PERM_DENIED", "{seen:?}");
    assert!(
        veild
            .wait_for_line(&["user=v12breal", "outcome=allow"], Duration::from_secs(5))
            .is_some(),
        "{}",
        veild.stderr()
    );

    // The control: veil put in common-auth's place with pam_wheel left in
    // front (the edit veilctl does not make) tells the two names apart.
    let naive = original.replace("@include common-auth", "auth       required   pam_veil.so");
    let seen = su_as_nobody(
        &loadable(&naive, &veild),
        &[
            ("v12breal", wrong, "123456"),
            ("v12bghost", wrong, "123456"),
        ],
    );
    assert_ne!(
        seen[0].code, seen[1].code,
        "the control did not leak: {seen:?}"
    );

    // disable gives the file back byte for byte.
    let backup = dir.path().join("backup");
    veild.veilctl(
        &[
            "disable",
            "su",
            "--pam-dir",
            dir.path().to_str().unwrap(),
            "--backup-dir",
            backup.to_str().unwrap(),
        ],
        "",
    );
    assert_eq!(fs::read_to_string(dir.path().join("su")).unwrap(), original);
}

// ------------------------------------------------------------------- sshd

/// sshd -T refuses to run without its privilege separation directory,
/// which sshd.service creates (RuntimeDirectory=sshd); so does this test.
fn sshd_ready() {
    require_root();
    fs::create_dir_all("/run/sshd").unwrap();
    let out = Command::new("/usr/sbin/sshd")
        .arg("-V")
        .output()
        .expect("/usr/sbin/sshd (scripts/deps.sh test installs openssh-server)");
    assert!(!String::from_utf8_lossy(&out.stderr).is_empty());
}

fn enabled_sshd(
    veild: &Veild,
    extra: &str,
    matches: &str,
    flags: &[&str],
) -> (i32, String, String) {
    let dir = pam_dir("sshd", SSHD_PAM);
    let config = veil_tests::sshd::debian_sshd_config(dir.path(), extra, matches);
    let mut args = vec!["sshd", "--sshd-config", config.to_str().unwrap()];
    args.extend_from_slice(flags);
    let (code, report) = enable(veild, dir.path(), &args);
    let text = fs::read_to_string(dir.path().join("sshd")).unwrap();
    assert!(
        !report.contains("could not run sshd -T"),
        "sshd -T did not run: {report}"
    );
    (code, report, text)
}

#[test]
#[ignore = "needs root (sshd -T reads the host keys): scripts/test.sh runs it as root"]
fn debian_sshd_config_gets_a_match_block_for_root_with_the_advice() {
    sshd_ready();
    let veild = Veild::start(DaemonConfig::default());
    veild.add_user("v12bssh", PASSWORD);
    veild.enroll_totp("v12bssh", DEMO_SECRET);
    // Debian's default: keyboard-interactive off, so sshd would never ask veil.
    let (code, report, text) = enabled_sshd(&veild, "", "", &[]);
    assert_eq!(code, 6, "{report}");
    assert!(
        report.contains("KbdInteractiveAuthentication yes"),
        "{report}"
    );
    assert_eq!(text, SSHD_PAM);
    // With it on, enable goes ahead; the advised publickey,keyboard-interactive
    // would lock root (PermitRootLogin prohibit-password) out: the report says
    // so and gives the Match block.
    let (code, report, text) = enabled_sshd(&veild, "KbdInteractiveAuthentication yes\n", "", &[]);
    assert_eq!(code, 0, "{report}");
    assert!(text.contains("pam_veil.so"), "{text}");
    assert!(
        report.contains("AuthenticationMethods publickey,keyboard-interactive"),
        "{report}"
    );
    assert!(report.contains("root can log in by ssh today"), "{report}");
    assert!(
        report.contains("PermitRootLogin prohibit-password"),
        "{report}"
    );
    assert!(report.contains("Match User root"), "{report}");
}

#[test]
#[ignore = "needs root (sshd -T reads the host keys): scripts/test.sh runs it as root"]
fn a_user_who_could_log_in_only_by_password_is_not_locked_out() {
    sshd_ready();
    let veild = Veild::start(DaemonConfig::default());
    veild.add_user("v12bpw", PASSWORD);
    veild.enroll_totp("v12bpw", DEMO_SECRET);
    let (code, report, text) = enabled_sshd(
        &veild,
        "KbdInteractiveAuthentication yes\n",
        "Match User v12bpw\n    AuthenticationMethods password\n",
        &[],
    );
    assert_eq!(code, 6, "{report}");
    assert!(
        report.contains("v12bpw can log in by ssh today (password)"),
        "{report}"
    );
    assert!(report.contains("password method"), "{report}");
    assert_eq!(text, SSHD_PAM);
}

#[test]
#[ignore = "needs root (sshd -T reads the host keys): scripts/test.sh runs it as root"]
fn after_publickey_needs_a_key_first_for_every_user() {
    sshd_ready();
    let veild = Veild::start(DaemonConfig::default());
    veild.add_user("v12bkey", PASSWORD);
    veild.enroll_totp("v12bkey", DEMO_SECRET);
    let flags = ["--after-publickey"];
    // keyboard-interactive alone is allowed: refused.
    let (code, report, text) =
        enabled_sshd(&veild, "KbdInteractiveAuthentication yes\n", "", &flags);
    assert_eq!(code, 6, "{report}");
    assert!(report.contains("AuthenticationMethods any"), "{report}");
    assert_eq!(text, SSHD_PAM);
    // A Match block giving one user keyboard-interactive alone: refused, named.
    let (code, report, _) = enabled_sshd(
        &veild,
        "KbdInteractiveAuthentication yes\nAuthenticationMethods publickey,keyboard-interactive\n",
        "Match User v12bkey\n    AuthenticationMethods keyboard-interactive\n",
        &flags,
    );
    assert_eq!(code, 6, "{report}");
    assert!(
        report
            .contains("AuthenticationMethods keyboard-interactive (in \"Match User v12bkey\" at "),
        "{report}"
    );
    // A key first for everyone: accepted, and the line asks for the code only.
    let (code, report, text) = enabled_sshd(
        &veild,
        "KbdInteractiveAuthentication yes\nAuthenticationMethods publickey,keyboard-interactive\n",
        "",
        &flags,
    );
    assert_eq!(code, 0, "{report}");
    assert!(
        text.contains("auth       required     pam_veil.so factors=code\n"),
        "{text}"
    );
    // Root cannot use keyboard-interactive under prohibit-password: pointed out.
    assert!(
        report.contains("note: root cannot log in by ssh"),
        "{report}"
    );
}

const KEY_FIRST: &str =
    "KbdInteractiveAuthentication yes\nAuthenticationMethods publickey,keyboard-interactive\n";

#[test]
#[ignore = "needs root (sshd -T reads the host keys): scripts/test.sh runs it as root"]
fn after_publickey_refuses_a_match_address_block_that_drops_the_key() {
    sshd_ready();
    let veild = Veild::start(DaemonConfig::default());
    veild.add_user("v12ckey", PASSWORD);
    veild.enroll_totp("v12ckey", DEMO_SECRET);
    let flags = ["--after-publickey"];
    // Anyone from 10/8 would log in with a code alone; sshd -T, asked for
    // one made-up connection from 127.0.0.1, does not see it.
    let (code, report, text) = enabled_sshd(
        &veild,
        KEY_FIRST,
        "Match Address 10.0.0.0/8\n    AuthenticationMethods keyboard-interactive\n",
        &flags,
    );
    assert_eq!(code, 6, "{report}");
    assert!(
        report.contains(
            "AuthenticationMethods keyboard-interactive (in \"Match Address 10.0.0.0/8\" at "
        ),
        "{report}"
    );
    assert!(report.contains("sshd_config:"), "{report}");
    assert_eq!(text, SSHD_PAM);
    // The same in a drop-in, under LocalPort: found through the Include.
    let dir = pam_dir("sshd", SSHD_PAM);
    let config = veil_tests::sshd::debian_sshd_config(dir.path(), KEY_FIRST, "");
    fs::write(
        dir.path().join("sshd_config.d/port.conf"),
        "Match LocalPort 2222\n    KbdInteractiveAuthentication yes\n    AuthenticationMethods keyboard-interactive\n",
    )
    .unwrap();
    let (code, report) = enable(
        &veild,
        dir.path(),
        &[
            "sshd",
            "--sshd-config",
            config.to_str().unwrap(),
            "--after-publickey",
        ],
    );
    assert_eq!(code, 6, "{report}");
    assert!(
        report.contains("port.conf:3: AuthenticationMethods keyboard-interactive"),
        "{report}"
    );
    // A Match Address block that leaves the methods alone does not stop it.
    let (code, report, text) = enabled_sshd(
        &veild,
        KEY_FIRST,
        "Match Address 10.0.0.0/8\n    X11Forwarding no\n",
        &flags,
    );
    assert_eq!(code, 0, "{report}");
    assert!(text.contains("pam_veil.so factors=code"), "{text}");
}

/// Issue 18 item 7. Fails on the old main, which asked `sshd -T` only about
/// root and the users who could pass veil that day: with v18cok enrolled
/// (no Match block for them) it wrote the `factors=code` stack, and anyone
/// in group v18ops enrolling later by self-service would have logged in
/// with the code alone. Now every Match block is judged, whoever is
/// enrolled (nobody, too).
#[test]
#[ignore = "needs root (sshd -T reads the host keys): scripts/test.sh runs it as root"]
fn after_publickey_refuses_a_match_group_block_whoever_is_enrolled() {
    sshd_ready();
    let flags = ["--after-publickey"];
    let group = "Match Group v18ops\n    AuthenticationMethods keyboard-interactive\n";
    let named = "AuthenticationMethods keyboard-interactive (in \"Match Group v18ops\" at ";
    let veild = Veild::start(DaemonConfig::default());
    // Nobody enrolled: the block is named, not the enrolment.
    let (code, report, text) = enabled_sshd(&veild, KEY_FIRST, group, &flags);
    assert_eq!(code, 6, "{report}");
    assert!(report.contains(named), "{report}");
    assert!(
        report.contains("fix: make each of them start with the key"),
        "{report}"
    );
    assert_eq!(text, SSHD_PAM);
    // Someone enrolled whom the block does not touch: still refused.
    veild.add_user("v18cok", PASSWORD);
    veild.enroll_totp("v18cok", DEMO_SECRET);
    let (code, report, text) = enabled_sshd(&veild, KEY_FIRST, group, &flags);
    assert_eq!(code, 6, "{report}");
    assert!(report.contains(named), "{report}");
    assert_eq!(text, SSHD_PAM);
    // The group with a key first: accepted.
    let (code, report, text) = enabled_sshd(
        &veild,
        KEY_FIRST,
        "Match Group v18ops\n    AuthenticationMethods publickey,keyboard-interactive\n",
        &flags,
    );
    assert_eq!(code, 0, "{report}");
    assert!(text.contains("pam_veil.so factors=code"), "{text}");
}

#[test]
#[ignore = "needs root (sshd -T reads the host keys): scripts/test.sh runs it as root"]
fn after_publickey_checks_every_user_who_can_pass_veil() {
    sshd_ready();
    let veild = Veild::start(DaemonConfig::default());
    // More than the 20 users read without --after-publickey; the one with
    // a code-alone login sorts last.
    let names: Vec<String> = (0..24).map(|i| format!("v12cu{i:02}")).collect();
    for name in &names {
        veild.add_user(name, PASSWORD);
        veild.enroll_totp(name, DEMO_SECRET);
    }
    let (code, report, text) = enabled_sshd(
        &veild,
        KEY_FIRST,
        "Match User v12cu23\n    AuthenticationMethods keyboard-interactive\n",
        &["--after-publickey"],
    );
    assert_eq!(code, 6, "{report}");
    assert!(
        report
            .contains("AuthenticationMethods keyboard-interactive (in \"Match User v12cu23\" at "),
        "{report}"
    );
    assert_eq!(text, SSHD_PAM);
}

#[test]
#[ignore = "needs root (sshd -T reads the host keys): scripts/test.sh runs it as root"]
fn after_publickey_is_refused_while_only_password_users_exist() {
    sshd_ready();
    let veild = Veild::start(DaemonConfig {
        totp_policy: "if-enrolled",
        ..DaemonConfig::default()
    });
    veild.add_user("v12cpw", PASSWORD);
    // Password users pass veil today, but factors=code would deny them all.
    let (code, report, text) = enabled_sshd(&veild, KEY_FIRST, "", &["--after-publickey"]);
    assert_eq!(code, 6, "{report}");
    assert!(report.contains("asks only for the code"), "{report}");
    assert_eq!(text, SSHD_PAM);
    let (code, report, _) = enabled_sshd(&veild, KEY_FIRST, "", &[]);
    assert_eq!(code, 0, "{report}");
}

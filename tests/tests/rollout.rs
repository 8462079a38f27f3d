//! Gradual rollout through real libpam and a real veild: with `[totp]
//! policy = "if-enrolled"`, a member of a `required_groups` group without
//! a secret is refused while a non-member logs in on the password; from
//! `enrol_by` on the non-member is refused too. Every attempt sees the
//! same two prompts; only veild's decision (and its audit reason) differs.

#![forbid(unsafe_code)]

use veil_tests::accounts::{Accounts, run};
use veil_tests::pam::{self, PAM_AUTH_ERR, PAM_SUCCESS, socket_args};
use veil_tests::root::require_root;
use veil_tests::wire::PASSWORD;
use veil_tests::{Attempt, PamRun, PamStack, Veild};

const GROUP: &str = "v14bops";
const MEMBER: &str = "v14bcarol";
const OTHER: &str = "v14bdave";

/// A system group, removed on drop.
struct TempGroup(&'static str);

impl Drop for TempGroup {
    fn drop(&mut self) {
        let _ = std::process::Command::new("groupdel").arg(self.0).status();
    }
}

fn login(veild: &Veild, user: &str) -> PamRun {
    let stack = PamStack::veil(&socket_args(&veild.socket(), "5"));
    pam::authenticate(&stack, &Attempt::new(user, &[PASSWORD, "123456"]))
}

#[test]
#[ignore = "needs root (adds a group and accounts): scripts/test.sh runs it as root"]
fn a_required_group_member_without_a_secret_is_refused_and_others_log_in_on_the_password() {
    require_root();
    let mut made = Accounts::new();
    made.add(MEMBER);
    made.add(OTHER);
    // No system password, but not locked ('!'): veil checks the shadow lock.
    for name in [MEMBER, OTHER] {
        run("usermod", &["-p", "*", name], "");
    }
    run("groupadd", &[GROUP], "");
    let _group = TempGroup(GROUP);
    run("gpasswd", &["-a", MEMBER, GROUP], "");

    let mut veild = Veild::from_toml(&format!(
        "[totp]\npolicy = \"if-enrolled\"\nrequired_groups = [\"{GROUP}\"]\nenrol_by = \"2099-01-01\"\n"
    ));
    veild.enrol(MEMBER, false);
    veild.enrol(OTHER, false);

    let member = login(&veild, MEMBER);
    let other = login(&veild, OTHER);
    let ghost = login(&veild, "v14b-ghost");
    assert_eq!(member.code, PAM_AUTH_ERR, "{}", veild.stderr());
    assert_eq!(other.code, PAM_SUCCESS, "{}", veild.stderr());
    assert_eq!(ghost.code, PAM_AUTH_ERR);
    assert_eq!(member.transcript, other.transcript, "the same prompts");
    assert_eq!(ghost.transcript, other.transcript);
    assert_eq!(other.transcript.len(), 2, "{}", other.prompts());
    let log = veild.log_with(3);
    assert!(
        log.lines().any(
            |l| l.contains(&format!("user={MEMBER} ")) && l.contains("reason=no-totp-enrolled")
        ),
        "{log}"
    );

    // enrol_by has passed: the non-member is refused too.
    let mut config = veild.config();
    config.totp.enrol_by = Some("2020-01-01".into());
    veild.restart(config);
    let other = login(&veild, OTHER);
    assert_eq!(other.code, PAM_AUTH_ERR, "{}", veild.stderr());
    assert_eq!(other.transcript, member.transcript);
}

#[test]
fn after_enrol_by_a_user_without_a_secret_is_refused_at_the_same_prompts() {
    let mut veild =
        Veild::from_toml("[totp]\npolicy = \"if-enrolled\"\nenrol_by = \"2099-12-31\"\n");
    veild.enrol("erin", false);
    veild.enrol("frank", true);
    let before = login(&veild, "erin");
    assert_eq!(before.code, PAM_SUCCESS, "{}", veild.stderr());

    let mut config = veild.config();
    config.totp.enrol_by = Some("2000-01-01".into());
    veild.restart(config);
    let after = login(&veild, "erin");
    assert_eq!(after.code, PAM_AUTH_ERR);
    assert_eq!(after.transcript, before.transcript);
    let enrolled = login(&veild, "frank");
    assert_eq!(enrolled.code, PAM_AUTH_ERR, "frank's code is wrong");
    assert_eq!(enrolled.transcript, before.transcript);
    let ok = pam::authenticate(
        &PamStack::veil(&socket_args(&veild.socket(), "5")),
        &Attempt::new("frank", &[PASSWORD, &veil_tests::wire::code_now()]),
    );
    assert_eq!(ok.code, PAM_SUCCESS, "{}", veild.stderr());
    assert!(veild.stderr().contains("reason=no-totp-enrolled"));
}

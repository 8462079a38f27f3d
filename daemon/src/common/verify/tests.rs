//! The pipeline on a real SQLite file: every reason, replays, rehash,
//! peer keys, unusable replies.

use super::*;
use crate::common::config::TotpPolicy;
use crate::common::crypt;
use crate::common::shadow;
use crate::common::store::SYSTEM_ONLY_PHC;
use std::path::PathBuf;
use veil_proto::Reply;
use zeroize::Zeroizing;

struct Fixture {
    _dir: tempfile::TempDir,
    verifier: Verifier,
    secret: Zeroizing<Vec<u8>>,
}

const NOW: u64 = 1_700_000_000;
const ROOT: Peer = Peer { uid: 0, pid: 1 };

fn fixture(policy: TotpPolicy) -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let mut config = Config {
        database: dir.path().join("v.db"),
        ..Config::default()
    };
    config.argon2 = crate::common::config::Argon2 {
        m_cost_kib: 64,
        t_cost: 1,
        p_cost: 1,
    };
    config.lockout.deny = 3;
    config.totp.policy = policy;
    let hasher = Hasher::new(&config.argon2).unwrap();
    let mut store = store::open(&store::Location::of(&config), OpenMode::CreateIfMissing).unwrap();
    store
        .add_user("alice", &hasher.hash(b"right").unwrap(), 0)
        .unwrap();
    let secret = totp::new_secret().unwrap();
    store.set_totp_pending("alice", &secret, 0).unwrap();
    store.activate_totp("alice", -1, 0).unwrap();
    store
        .add_user("nototp", &hasher.hash(b"right").unwrap(), 0)
        .unwrap();
    let dummy = dummy_record(&hasher).unwrap();
    Fixture {
        _dir: dir,
        verifier: Verifier::new(&config, hasher, dummy, SystemAccounts::default()),
        secret,
    }
}

fn ask(f: &mut Fixture, user: &str, password: &str, code: &str, now: u64) -> Decision {
    let req = Request::new(user, Reply::from(password), Reply::from(code));
    f.verifier.decide(&req, ROOT, now)
}

fn code(f: &Fixture, now: u64) -> String {
    totp::code_at(&f.secret, totp::step_of(now)).to_string()
}

#[test]
fn right_password_and_code_allow() {
    let mut f = fixture(TotpPolicy::Required);
    let c = code(&f, NOW);
    let d = ask(&mut f, "alice", "right", &c, NOW);
    assert_eq!((d.verdict, d.reason), (Verdict::Allow, Reason::Success));
}

#[test]
fn every_failure_is_a_deny_with_its_own_audit_reason() {
    let mut f = fixture(TotpPolicy::Required);
    let c = code(&f, NOW);
    assert_eq!(
        ask(&mut f, "ghost", "right", &c, NOW).reason,
        Reason::UnknownUser
    );
    assert_eq!(
        ask(&mut f, "alice", "wrong", &c, NOW).reason,
        Reason::WrongPassword
    );
    assert_eq!(
        ask(&mut f, "alice", "right", "000000", NOW + 300).reason,
        Reason::WrongCode
    );
    assert_eq!(
        ask(&mut f, "nototp", "right", "123456", NOW).reason,
        Reason::NoTotp
    );
    assert_eq!(ask(&mut f, "ghost", "x", "1", NOW).verdict, Verdict::Deny);
}

#[test]
fn a_replayed_code_is_denied() {
    let mut f = fixture(TotpPolicy::Required);
    let c = code(&f, NOW);
    assert_eq!(
        ask(&mut f, "alice", "right", &c, NOW).verdict,
        Verdict::Allow
    );
    assert_eq!(
        ask(&mut f, "alice", "right", &c, NOW + 1).reason,
        Reason::ReplayedCode
    );
}

#[test]
fn the_correct_password_while_locked_is_denied_and_unlock_ends_it() {
    let mut f = fixture(TotpPolicy::Required);
    for _ in 0..3 {
        ask(&mut f, "alice", "wrong", "000000", NOW);
    }
    let c = code(&f, NOW);
    let d = ask(&mut f, "alice", "right", &c, NOW);
    assert!(matches!(d.reason, Reason::Locked(_)), "{:?}", d.reason);
    let store = f.verifier.store().unwrap();
    store.unlock_user("alice").unwrap();
    assert_eq!(
        ask(&mut f, "alice", "right", &c, NOW).verdict,
        Verdict::Allow
    );
}

#[test]
fn unknown_names_lock_exactly_like_real_ones() {
    let mut f = fixture(TotpPolicy::Required);
    let mut known = Vec::new();
    let mut unknown = Vec::new();
    for _ in 0..4 {
        known.push(ask(&mut f, "alice", "wrong", "000000", NOW));
        unknown.push(ask(&mut f, "ghost", "wrong", "000000", NOW));
    }
    let locked = |v: &[Decision]| {
        v.iter()
            .map(|d| matches!(d.reason, Reason::Locked(_)))
            .collect::<Vec<_>>()
    };
    assert_eq!(locked(&known), locked(&unknown));
    assert_eq!(locked(&known), [false, false, false, true]);
    assert_eq!(known[2].locked.len(), 1);
    assert_eq!(unknown[2].locked.len(), 1);
}

#[test]
fn if_enrolled_lets_a_user_without_totp_in_on_the_password() {
    let mut f = fixture(TotpPolicy::IfEnrolled);
    assert_eq!(
        ask(&mut f, "nototp", "right", "", NOW).verdict,
        Verdict::Allow
    );
    assert_eq!(
        ask(&mut f, "alice", "right", "", NOW).reason,
        Reason::WrongCode
    );
}

#[test]
fn a_non_root_peer_cannot_ask_about_another_user() {
    let mut f = fixture(TotpPolicy::Required);
    let c = code(&f, NOW);
    let req = Request::new("alice", Reply::from("right"), Reply::from(c.as_str()));
    let d = f.verifier.decide(&req, Peer { uid: 65534, pid: 9 }, NOW);
    assert_eq!(
        (d.verdict, d.reason),
        (Verdict::Deny, Reason::PeerNotPermitted)
    );
}

#[test]
fn a_local_user_cannot_lock_another_account_or_a_host() {
    let mut f = fixture(TotpPolicy::Required);
    let nobody = Peer { uid: 65534, pid: 9 };
    for i in 0..10 {
        let mut req = Request::new("alice", Reply::from("wrong"), Reply::from("000000"));
        req.rhost = format!("198.51.100.{i}");
        assert_eq!(f.verifier.decide(&req, nobody, NOW).verdict, Verdict::Deny);
    }
    let limits = f.verifier.limits.clone();
    let store = f.verifier.store().unwrap();
    let alice = store.status(&limits, "alice", NOW as i64).unwrap();
    assert!(alice.is_empty(), "alice's keys were charged: {alice:?}");
    let locks = store.locks(&limits, NOW as i64).unwrap();
    assert_eq!(locks.len(), 1);
    assert_eq!(locks[0].key.to_string(), "peer:uid:65534");
    let c = code(&f, NOW);
    assert_eq!(
        ask(&mut f, "alice", "right", &c, NOW).verdict,
        Verdict::Allow
    );
}

#[test]
fn old_parameters_are_rehashed_on_success() {
    let mut f = fixture(TotpPolicy::IfEnrolled);
    let old = Hasher::new(&crate::common::config::Argon2 {
        m_cost_kib: 32,
        t_cost: 1,
        p_cost: 1,
    })
    .unwrap();
    let store = f.verifier.store().unwrap();
    store
        .set_password("nototp", &old.hash(b"right").unwrap(), 0)
        .unwrap();
    assert_eq!(
        ask(&mut f, "nototp", "right", "", NOW).verdict,
        Verdict::Allow
    );
    let phc = f
        .verifier
        .store()
        .unwrap()
        .user("nototp")
        .unwrap()
        .unwrap()
        .phc;
    assert!(phc.contains("m=64,t=1,p=1"), "{phc}");
}

#[test]
fn a_deleted_database_denies_and_a_restored_one_recovers() {
    let mut f = fixture(TotpPolicy::IfEnrolled);
    let path = f.verifier.database.sqlite_path().unwrap().to_owned();
    assert_eq!(
        ask(&mut f, "nototp", "right", "", NOW).verdict,
        Verdict::Allow
    );
    let saved = std::fs::read(&path).unwrap();
    std::fs::rename(&path, path.with_extension("moved")).unwrap();
    let d = ask(&mut f, "nototp", "right", "", NOW);
    assert!(matches!(d.reason, Reason::Store(_)), "{:?}", d.reason);
    assert!(!path.exists(), "never recreated");
    std::fs::rename(path.with_extension("moved"), &path).unwrap();
    let _ = saved;
    assert_eq!(
        ask(&mut f, "nototp", "right", "", NOW + 1).verdict,
        Verdict::Allow
    );
}

fn ask_replies(f: &mut Fixture, user: &str, password: Reply, code: Reply, now: u64) -> Decision {
    let req = Request::new(user, password, code);
    f.verifier.decide(&req, ROOT, now)
}

#[test]
fn a_reply_cut_to_the_wire_size_never_matches_even_when_its_prefix_is_the_password() {
    let mut f = fixture(TotpPolicy::IfEnrolled);
    let long = vec![b'a'; veil_proto::REPLY_CAP];
    let phc = f.verifier.hasher.hash(&long).unwrap();
    f.verifier
        .store()
        .unwrap()
        .add_user("longpw", &phc, 0)
        .unwrap();
    let exact = ask_replies(
        &mut f,
        "longpw",
        Reply::given(long.clone()),
        Reply::from(""),
        NOW,
    );
    assert_eq!(exact.reason, Reason::Success);
    let mut longer = long;
    longer.push(b'a');
    let cut = ask_replies(&mut f, "longpw", Reply::given(longer), Reply::from(""), NOW);
    assert_eq!(cut.verdict, Verdict::Deny);
    assert_eq!(cut.reason.as_str(), "overlong-password");
}

#[test]
fn missing_and_non_utf8_replies_are_verified_and_denied_with_their_reason() {
    let mut f = fixture(TotpPolicy::Required);
    let c = code(&f, NOW);
    let no_password = ask_replies(
        &mut f,
        "alice",
        Reply::missing(),
        Reply::from(c.as_str()),
        NOW,
    );
    assert_eq!(no_password.reason.as_str(), "no-password");
    let no_code = ask_replies(&mut f, "alice", Reply::from("right"), Reply::missing(), NOW);
    assert_eq!(no_code.reason.as_str(), "no-code");
    let bytes = ask_replies(
        &mut f,
        "alice",
        Reply::given(vec![0xff]),
        Reply::given(vec![0xc3, 0x28]),
        NOW,
    );
    assert_eq!(bytes.reason, Reason::WrongPassword);
    // An unknown name says unknown-user whatever its replies were.
    let ghost = ask_replies(&mut f, "ghost", Reply::missing(), Reply::missing(), NOW);
    assert_eq!(ghost.reason, Reason::UnknownUser);
    for d in [no_password, no_code, bytes, ghost] {
        assert_eq!(d.verdict, Verdict::Deny);
    }
}

/// Fails on the old main, which charged PAM_RUSER (`ruser:mallory`, or
/// the console without it) instead of the application's real uid.
#[test]
fn root_front_ends_are_charged_to_who_ran_them_and_sshd_to_its_host() {
    let limits = Limits::from(&Config::default().lockout);
    let mut req = Request::new("alice", Reply::from("x"), Reply::from("1"));
    req.service = "su".into();
    req.ruser = "alice".into();
    req.ruid = 1001;
    let su = charge_of(&limits, &req, ROOT, true);
    assert_eq!(su.source, "uid:1001", "PAM_RUSER is only a claim");
    req.ruid = 0;
    req.service = "sshd".into();
    req.rhost = "192.0.2.7".into();
    assert_eq!(charge_of(&limits, &req, ROOT, true).source, "192.0.2.7");
    req.rhost.clear();
    req.ruser.clear();
    req.service = "login".into();
    assert_eq!(
        charge_of(&limits, &req, ROOT, true).source,
        "",
        "the console"
    );
    req.service = "polkit-1".into();
    req.ruser = "alice".into();
    assert_eq!(
        charge_of(&limits, &req, ROOT, true).source,
        "service:polkit-1",
        "a root service with no caller is not the console"
    );
    // A non-root peer's own claims count for nothing.
    req.rhost = "192.0.2.7".into();
    req.ruser = "root".into();
    req.ruid = 0;
    let me = Peer { uid: 1000, pid: 2 };
    assert_eq!(charge_of(&limits, &req, me, true).source, "uid:1000");
    let other = charge_of(&limits, &req, me, false);
    assert_eq!(other.keys[0].to_string(), "peer:uid:1000");
}

// `[password] source = "system"`, on a shadow file written by the test.

struct SystemFixture {
    f: Fixture,
    shadow: PathBuf,
}

fn sha256(password: &[u8]) -> String {
    let method = crypt::Method {
        kind: crypt::Kind::Sha256,
        cost: Some(1000),
        from: "test".into(),
    };
    crypt::hash(&method, password).unwrap()
}

/// Shadow lines: `sys` (right password "system pw"), `locked` (`passwd -l`),
/// `expired` (`chage -E 0`), `inactive`, `star` (`*`), `alice` and `bob`
/// (no veil row); veil rows for `alice` (the veil fixture's), `nototp`
/// (no shadow line) and `sys` (TOTP only, as `veilctl totp enroll` makes it).
fn system_fixture(policy: TotpPolicy, crypt_dummy: bool) -> SystemFixture {
    let mut f = fixture(policy);
    let shadow = f._dir.path().join("shadow");
    let h = sha256(b"system pw");
    let today = shadow::day_of(NOW);
    std::fs::write(
        &shadow,
        format!(
            "root:*:19000:0:99999:7:::\n\
             sys:{h}:19000:0:99999:7:::\n\
             locked:!{h}:19000:0:99999:7:::\n\
             expired:{h}:19000:0:99999:7::0:\n\
             inactive:{h}:{}:0:30:7:10::\n\
             star:*:19000:0:99999:7:::\n\
             alice:{h}:19000:0:99999:7:::\n\
             bob:{h}:19000:0:99999:7:::\n",
            today - 100
        ),
    )
    .unwrap();
    {
        let store = f.verifier.store().unwrap();
        store.add_user("sys", SYSTEM_ONLY_PHC, 0).unwrap();
        store.set_totp_pending("sys", &f.secret, 0).unwrap();
        store.activate_totp("sys", -1, 0).unwrap();
    }
    f.verifier.system = SystemAccounts {
        shadow: Some(shadow.clone()),
        crypt_dummy: crypt_dummy.then(|| sha256(b"nobody knows")),
    };
    SystemFixture { f, shadow }
}

#[test]
fn a_system_password_and_code_allow_and_every_system_failure_has_its_reason() {
    let SystemFixture { mut f, .. } = system_fixture(TotpPolicy::Required, true);
    let c = code(&f, NOW);
    let d = ask(&mut f, "sys", "system pw", &c, NOW);
    assert_eq!((d.verdict, d.reason), (Verdict::Allow, Reason::Success));
    let c = code(&f, NOW + 60);
    for (user, password, reason) in [
        ("sys", "wrong", Reason::WrongPassword),
        ("locked", "system pw", Reason::AccountLocked),
        ("expired", "system pw", Reason::AccountExpired),
        ("inactive", "system pw", Reason::PasswordExpired),
        ("star", "system pw", Reason::NoUsableHash),
        ("ghost", "system pw", Reason::UnknownUser),
        // A veil row with the shadow line gone.
        ("nototp", "right", Reason::NoSystemAccount),
    ] {
        let d = ask(&mut f, user, password, &c, NOW + 60);
        assert_eq!((d.verdict, &d.reason), (Verdict::Deny, &reason), "{user}");
    }
}

#[test]
fn a_system_user_without_a_veil_row_logs_in_on_the_password_when_totp_is_optional() {
    let SystemFixture { mut f, .. } = system_fixture(TotpPolicy::IfEnrolled, true);
    let d = ask(&mut f, "bob", "system pw", "", NOW);
    assert_eq!(d.reason, Reason::Success);
    let c = code(&f, NOW);
    let d = ask(&mut f, "alice", "right", &c, NOW);
    assert_eq!(
        d.reason,
        Reason::WrongPassword,
        "alice's veil password is not used"
    );
    let d = ask(&mut f, "alice", "system pw", &c, NOW);
    assert_eq!(
        d.reason,
        Reason::Success,
        "her shadow one is, with her veil TOTP"
    );
    let SystemFixture { mut f, .. } = system_fixture(TotpPolicy::Required, true);
    let d = ask(&mut f, "root", "x", "", NOW);
    assert_eq!(d.reason, Reason::NoUsableHash);
}

#[test]
fn with_source_veil_the_system_lock_and_expiry_still_apply_to_veil_users() {
    let SystemFixture { mut f, shadow } = system_fixture(TotpPolicy::IfEnrolled, false);
    // nototp has no shadow line: a veil-only user, nothing to apply.
    assert_eq!(
        ask(&mut f, "nototp", "right", "", NOW).reason,
        Reason::Success
    );
    // A row made for a system account's TOTP has no veil password.
    let c = code(&f, NOW);
    assert_eq!(
        ask(&mut f, "sys", "system pw", &c, NOW).reason,
        Reason::NoVeilPassword
    );
    // Lock and expire nototp in shadow: the veil password no longer suffices.
    let text = std::fs::read_to_string(&shadow).unwrap();
    std::fs::write(&shadow, format!("{text}nototp:!x:19000:0:99999:7:::\n")).unwrap();
    assert_eq!(
        ask(&mut f, "nototp", "right", "", NOW).reason,
        Reason::AccountLocked
    );
    std::fs::write(&shadow, format!("{text}nototp:*:19000:0:99999:7::1:\n")).unwrap();
    assert_eq!(
        ask(&mut f, "nototp", "right", "", NOW).reason,
        Reason::AccountExpired
    );
    // A `*` shadow line is fine for a veil password.
    std::fs::write(&shadow, format!("{text}nototp:*:19000:0:99999:7:::\n")).unwrap();
    assert_eq!(
        ask(&mut f, "nototp", "right", "", NOW).reason,
        Reason::Success
    );
    // An unreadable shadow file denies everyone, named in the audit.
    std::fs::remove_file(&shadow).unwrap();
    let d = ask(&mut f, "nototp", "right", "", NOW);
    assert!(matches!(d.reason, Reason::Shadow(_)), "{:?}", d.reason);
}

/// Issue 19: every shadow state of one account (veil password "right",
/// no TOTP, `if-enrolled`; its shadow hash is of "right" too), with both
/// sources, through the verifier: the README's table, and
/// [`State::denies`] / [`State::reason`] (veilctl's warnings) agree with
/// it. Fails on the old main for the bare `!` with source veil
/// (`useradd`'s default: `account-locked` there).
#[test]
fn every_shadow_state_is_decided_as_the_table_says_with_both_sources() {
    let today = shadow::day_of(NOW);
    let old = today - 100;
    let h = sha256(b"right");
    // (fields after the name, reason with source veil, with source system)
    let table = [
        (format!("{h}:19000:0:99999:7:::"), "success", "success"),
        (
            "!:19000:0:99999:7:::".to_owned(),
            "success",
            "no-usable-hash",
        ),
        (
            "*:19000:0:99999:7:::".to_owned(),
            "success",
            "no-usable-hash",
        ),
        (
            ":19000:0:99999:7:::".to_owned(),
            "success",
            "no-usable-hash",
        ),
        (
            "!*:19000:0:99999:7:::".to_owned(),
            "account-locked",
            "account-locked",
        ),
        (
            "!!:19000:0:99999:7:::".to_owned(),
            "account-locked",
            "account-locked",
        ),
        (
            format!("!{h}:19000:0:99999:7:::"),
            "account-locked",
            "account-locked",
        ),
        (
            format!("{h}:19000:0:99999:7::{}:", today - 1),
            "account-expired",
            "account-expired",
        ),
        (
            format!("!:19000:0:99999:7::{}:", today - 1),
            "account-expired",
            "account-expired",
        ),
        (
            format!("{h}:{old}:0:60:7:10::"),
            "password-expired",
            "password-expired",
        ),
        // Past the maximum age within the inactive period, and "change at
        // next login": the account stack asks for a new password.
        (format!("{h}:{old}:0:60:7:50::"), "success", "success"),
        (format!("{h}:0:0:99999:7:::"), "success", "success"),
    ];
    for system in [false, true] {
        let SystemFixture { mut f, shadow } = system_fixture(TotpPolicy::IfEnrolled, system);
        let text = std::fs::read_to_string(&shadow).unwrap();
        for (fields, veil, sys) in &table {
            let want = if system { sys } else { veil };
            std::fs::write(&shadow, format!("{text}nototp:{fields}\n")).unwrap();
            let d = ask(&mut f, "nototp", "right", "", NOW);
            assert_eq!(
                &d.reason.as_str(),
                want,
                "{fields:?}, system source: {system}"
            );
            let state = shadow::find(&format!("nototp:{fields}"), "nototp")
                .unwrap()
                .state(today);
            let said = if state.denies(system) {
                state.reason()
            } else {
                "success"
            };
            assert_eq!(&said, want, "{fields:?}, system source: {system}");
            // Keep the ledger out of it.
            f.verifier.store().unwrap().unlock_user("nototp").unwrap();
        }
    }
}

// Recovery codes, code-only requests, rollout.

fn give_codes(f: &mut Fixture, user: &str) -> Vec<String> {
    let new = recovery::generate().unwrap();
    f.verifier
        .store()
        .unwrap()
        .set_recovery(user, Some(&new.set), 0)
        .unwrap();
    new.codes.iter().map(|c| c.to_string()).collect()
}

#[test]
fn each_recovery_code_logs_in_once_and_the_eleventh_use_fails() {
    let mut f = fixture(TotpPolicy::Required);
    let codes = give_codes(&mut f, "alice");
    for (i, c) in codes.iter().enumerate() {
        let d = ask(&mut f, "alice", "right", c, NOW + i as u64);
        assert_eq!(d.verdict, Verdict::Allow, "code {i}: {:?}", d.reason);
        assert_eq!(d.reason, Reason::RecoveryCode { left: 9 - i as u32 });
    }
    let d = ask(&mut f, "alice", "right", &codes[0], NOW + 20);
    assert_eq!(
        (d.verdict, d.reason),
        (Verdict::Deny, Reason::UsedRecoveryCode)
    );
    // A wrong password with a good code is still a wrong password.
    let fresh = give_codes(&mut f, "alice");
    let d = ask(&mut f, "alice", "wrong", &fresh[0], NOW + 40);
    assert_eq!(d.reason, Reason::WrongPassword);
    // New codes replace the old ones.
    let d = ask(&mut f, "alice", "right", &codes[1], NOW + 41);
    assert_eq!(d.reason, Reason::WrongCode);
    // TOTP codes still work next to them (after the three failures above).
    f.verifier.store().unwrap().unlock_user("alice").unwrap();
    let c = code(&f, NOW + 90);
    assert_eq!(
        ask(&mut f, "alice", "right", &c, NOW + 90).reason,
        Reason::Success
    );
}

#[test]
fn a_recovery_code_for_an_unknown_user_or_a_user_without_codes_is_the_same_denial() {
    let mut f = fixture(TotpPolicy::Required);
    let codes = give_codes(&mut f, "alice");
    let bob = f.verifier.hasher.hash(b"right").unwrap();
    let store = f.verifier.store().unwrap();
    store.add_user("bob", &bob, 0).unwrap();
    store.set_totp_pending("bob", &f.secret, 0).unwrap();
    store.activate_totp("bob", -1, 0).unwrap();
    let d = ask(&mut f, "bob", "right", &codes[0], NOW);
    assert_eq!((d.verdict, d.reason), (Verdict::Deny, Reason::WrongCode));
    let d = ask(&mut f, "ghost", "right", &codes[0], NOW);
    assert_eq!((d.verdict, d.reason), (Verdict::Deny, Reason::UnknownUser));
    // alice's code is still unused.
    let d = ask(&mut f, "alice", "right", &codes[0], NOW);
    assert_eq!(d.verdict, Verdict::Allow);
}

#[test]
fn the_dummy_row_carries_a_full_recovery_set() {
    let mut f = fixture(TotpPolicy::Required);
    let store = f.verifier.store().unwrap();
    let (row, found) = store.user_or_dummy("ghost").unwrap().unwrap();
    assert!(!found);
    assert_eq!(row.recovery.map(|r| r.left()), Some(10));
}

fn code_only(f: &mut Fixture, user: &str, code: &str, peer: Peer, now: u64) -> Decision {
    let mut req = Request::new(user, Reply::missing(), Reply::from(code));
    req.code_only = true;
    f.verifier.decide(&req, peer, now)
}

#[test]
fn code_only_from_root_checks_the_code_and_not_the_password() {
    let mut f = fixture(TotpPolicy::Required);
    let c = code(&f, NOW);
    let d = code_only(&mut f, "alice", &c, ROOT, NOW);
    assert_eq!((d.verdict, d.reason), (Verdict::Allow, Reason::Success));
    let d = code_only(&mut f, "alice", &c, ROOT, NOW + 1);
    assert_eq!(d.reason, Reason::ReplayedCode);
    let d = code_only(&mut f, "alice", "000000", ROOT, NOW + 300);
    assert_eq!(d.reason, Reason::WrongCode);
    assert_eq!(
        code_only(&mut f, "ghost", &c, ROOT, NOW).reason,
        Reason::UnknownUser
    );
    let codes = give_codes(&mut f, "alice");
    let d = code_only(&mut f, "alice", &codes[0], ROOT, NOW + 400);
    assert_eq!(d.verdict, Verdict::Allow);
}

#[test]
fn code_only_needs_a_code_even_when_totp_is_optional() {
    let mut f = fixture(TotpPolicy::IfEnrolled);
    let d = code_only(&mut f, "nototp", "123456", ROOT, NOW);
    assert_eq!((d.verdict, d.reason), (Verdict::Deny, Reason::NoTotp));
}

#[test]
fn code_only_from_a_non_root_peer_is_refused_even_for_its_own_account() {
    let mut f = fixture(TotpPolicy::Required);
    let nobody = nix::unistd::User::from_name("nobody").unwrap().unwrap();
    let hash = f.verifier.hasher.hash(b"right").unwrap();
    let store = f.verifier.store().unwrap();
    store.add_user("nobody", &hash, 0).unwrap();
    store.set_totp_pending("nobody", &f.secret, 0).unwrap();
    store.activate_totp("nobody", -1, 0).unwrap();
    let peer = Peer {
        uid: nobody.uid.as_raw(),
        pid: 9,
    };
    let c = code(&f, NOW);
    let d = code_only(&mut f, "nobody", &c, peer, NOW);
    assert_eq!(
        (d.verdict, d.reason),
        (Verdict::Deny, Reason::PeerNotPermitted)
    );
    // The same peer with both factors is its own screen locker: allowed.
    let req = Request::new("nobody", Reply::from("right"), Reply::from(c.as_str()));
    assert_eq!(f.verifier.decide(&req, peer, NOW).verdict, Verdict::Allow);
}

#[test]
fn enrol_by_refuses_users_without_a_secret_from_that_day_on() {
    let mut f = fixture(TotpPolicy::IfEnrolled);
    let mut config = Config::default();
    config.totp.policy = TotpPolicy::IfEnrolled;
    config.totp.enrol_by = Some("2023-11-15".into());
    f.verifier.policies = Policies::from(&config);
    // NOW is 2023-11-14 22:13 UTC.
    let d = ask(&mut f, "nototp", "right", "", NOW);
    assert_eq!(d.reason, Reason::Success);
    let d = ask(&mut f, "nototp", "right", "", NOW + 86_400);
    assert_eq!((d.verdict, d.reason), (Verdict::Deny, Reason::NoTotp));
}

mod one_prompt;

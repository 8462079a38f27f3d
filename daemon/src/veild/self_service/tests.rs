//! Self-service against a real SQLite file, at a fixed `now`, as uid
//! `nobody` (the peer policy looks the name up in NSS).

use super::*;
use crate::common::config::Config;
use crate::common::store::OpenMode;
use crate::common::verify::dummy_record;
use veil_proto::Reply;

const NOW: u64 = 1_800_000_000;
const PASSWORD: &str = "correct horse";
/// A new password libpwquality accepts with its defaults.
const NEW: &str = "n3w-pass Qx7 walrus";

struct Setup {
    _dir: tempfile::TempDir,
    config: Config,
    hasher: Hasher,
    service: SelfService,
    pending: Arc<Mutex<PendingEnrolments>>,
    nobody: Peer,
}

fn setup(extra: impl FnOnce(&mut Config)) -> Setup {
    let dir = tempfile::tempdir().unwrap();
    let mut config = Config {
        database: dir.path().join("veil.db"),
        ..Config::default()
    };
    config.argon2.m_cost_kib = 256;
    config.argon2.t_cost = 1;
    extra(&mut config);
    let hasher = Hasher::new(&config.argon2).unwrap();
    let mut store = store::open(&store::Location::of(&config), OpenMode::CreateIfMissing).unwrap();
    store
        .add_user("nobody", &hasher.hash(PASSWORD.as_bytes()).unwrap(), 0)
        .unwrap();
    let pending = Arc::new(Mutex::new(PendingEnrolments::default()));
    let service = SelfService::new(
        &config,
        hasher.clone(),
        dummy_record(&hasher).unwrap(),
        SystemAccounts::default(),
        Arc::clone(&pending),
    );
    let uid = nix::unistd::User::from_name("nobody")
        .unwrap()
        .expect("an account nobody")
        .uid
        .as_raw();
    Setup {
        _dir: dir,
        config,
        hasher,
        service,
        pending,
        nobody: Peer { uid, pid: 1 },
    }
}

fn begin(password: &str, code: &str) -> SelfRequest {
    let mut r = SelfRequest::new(Operation::EnrolBegin, "nobody");
    r.password = Reply::from(password);
    r.code = Reply::from(code);
    r
}

fn confirm(code: &str, ticket: &str) -> SelfRequest {
    let mut r = SelfRequest::new(Operation::EnrolConfirm, "nobody");
    r.code = Reply::from(code);
    r.ticket = ticket.to_owned();
    r
}

fn code(secret: &[u8], now: u64) -> String {
    totp::code_at(secret, totp::step_of(now)).to_string()
}

fn challenge(answer: SelfAnswer) -> (Zeroizing<Vec<u8>>, String) {
    match answer {
        SelfAnswer::Challenge { secret, ticket, .. } => {
            (totp::from_base32(secret.expose()).unwrap(), ticket)
        }
        other => panic!("no challenge: {other:?}"),
    }
}

fn login(s: &Setup, password: &str, code: &str, now: u64) -> Verdict {
    let mut verifier = Verifier::new(
        &s.config,
        s.hasher.clone(),
        dummy_record(&s.hasher).unwrap(),
        SystemAccounts::default(),
    );
    let request = Request::new("nobody", Reply::from(password), Reply::from(code));
    verifier
        .decide(&request, Peer { uid: 0, pid: 1 }, now)
        .verdict
}

#[test]
fn root_is_refused_whatever_it_sends() {
    let mut s = setup(|_| {});
    let out = s
        .service
        .handle(&begin(PASSWORD, ""), Peer { uid: 0, pid: 1 }, NOW);
    assert_eq!(
        out.answer,
        SelfAnswer::Refused {
            reason: Refusal::RootPeer
        }
    );
}

#[test]
fn enrolment_needs_the_password_then_a_code_of_the_new_secret() {
    let mut s = setup(|_| {});
    let peer = s.nobody;
    let wrong = s.service.handle(&begin("wrong", ""), peer, NOW);
    assert_eq!(wrong.answer, SelfAnswer::Failed);
    assert_eq!(wrong.reason, "wrong-password");
    assert_eq!(s.service.pending(NOW), 0);
    let (secret, ticket) = challenge(s.service.handle(&begin(PASSWORD, ""), peer, NOW).answer);
    // What veil_pending_enrolments shows: one now, none once it expired.
    assert_eq!(s.service.pending(NOW), 1);
    assert_eq!(s.service.pending(NOW + ENROL_TTL_S), 0);
    // Pending only: no login with it yet (policy required: no secret, no login).
    assert_eq!(login(&s, PASSWORD, &code(&secret, NOW), NOW), Verdict::Deny);
    let bad_ticket = s
        .service
        .handle(&confirm(&code(&secret, NOW), "00"), peer, NOW);
    assert_eq!(bad_ticket.answer, SelfAnswer::Failed);
    let done = s
        .service
        .handle(&confirm(&code(&secret, NOW), &ticket), peer, NOW);
    assert_eq!(done.answer, SelfAnswer::Done, "{}", done.reason);
    assert_eq!(s.service.pending(NOW), 0);
    // The confirming code is used up; the next step's logs in.
    assert_eq!(login(&s, PASSWORD, &code(&secret, NOW), NOW), Verdict::Deny);
    assert_eq!(
        login(&s, PASSWORD, &code(&secret, NOW + 30), NOW + 30),
        Verdict::Allow
    );
}

#[test]
fn re_enrolment_needs_the_current_code_and_keeps_the_old_secret_until_confirmed() {
    let mut s = setup(|_| {});
    let peer = s.nobody;
    let (first, ticket) = challenge(s.service.handle(&begin(PASSWORD, ""), peer, NOW).answer);
    let out = s
        .service
        .handle(&confirm(&code(&first, NOW), &ticket), peer, NOW);
    assert_eq!(out.answer, SelfAnswer::Done);
    let later = NOW + 60;
    let no_code = s.service.handle(&begin(PASSWORD, ""), peer, later);
    assert_eq!(no_code.answer, SelfAnswer::Failed);
    let (second, ticket) = challenge(
        s.service
            .handle(&begin(PASSWORD, &code(&first, later)), peer, later)
            .answer,
    );
    // Until confirmed, the first secret is the one in force.
    let next = later + 30;
    assert_eq!(
        login(&s, PASSWORD, &code(&first, next), next),
        Verdict::Allow
    );
    let out = s
        .service
        .handle(&confirm(&code(&second, next), &ticket), peer, next);
    assert_eq!(out.answer, SelfAnswer::Done);
    let after = next + 30;
    assert_eq!(
        login(&s, PASSWORD, &code(&first, after), after),
        Verdict::Deny
    );
    assert_eq!(
        login(&s, PASSWORD, &code(&second, after), after),
        Verdict::Allow
    );
}

#[test]
fn a_pending_secret_expires_and_takes_three_codes_at_most() {
    let mut s = setup(|_| {});
    let peer = s.nobody;
    let (secret, ticket) = challenge(s.service.handle(&begin(PASSWORD, ""), peer, NOW).answer);
    let late = NOW + ENROL_TTL_S;
    let out = s
        .service
        .handle(&confirm(&code(&secret, late), &ticket), peer, late);
    assert_eq!(out.answer, SelfAnswer::Failed);
    assert_eq!(out.reason, "no-pending-enrolment");

    let (secret, ticket) = challenge(s.service.handle(&begin(PASSWORD, ""), peer, NOW).answer);
    for _ in 0..CONFIRM_TRIES {
        let out = s.service.handle(&confirm("000000", &ticket), peer, NOW);
        assert_eq!(out.answer, SelfAnswer::Failed);
    }
    let out = s
        .service
        .handle(&confirm(&code(&secret, NOW), &ticket), peer, NOW);
    assert_eq!(out.reason, "no-pending-enrolment");
    assert_eq!(s.pending.lock().unwrap().by_uid.len(), 0);
}

#[test]
fn passwd_changes_a_veil_password_after_the_current_one() {
    let mut s = setup(|c| c.totp.policy = TotpPolicy::IfEnrolled);
    let peer = s.nobody;
    let mut request = SelfRequest::new(Operation::Passwd, "nobody");
    request.password = Reply::from("wrong");
    request.new_password = Reply::from(NEW);
    assert_eq!(
        s.service.handle(&request, peer, NOW).answer,
        SelfAnswer::Failed
    );
    request.password = Reply::from(PASSWORD);
    assert_eq!(
        s.service.handle(&request, peer, NOW).answer,
        SelfAnswer::Done
    );
    assert_eq!(login(&s, PASSWORD, "", NOW), Verdict::Deny);
    assert_eq!(login(&s, NEW, "", NOW), Verdict::Allow);
    request.password = Reply::from(NEW);
    request.new_password = Reply::given(Vec::new());
    assert_eq!(
        s.service.handle(&request, peer, NOW).answer,
        SelfAnswer::Refused {
            reason: Refusal::BadNewPassword
        }
    );
}

// Fails on the old main: any new password was taken.
#[test]
fn passwd_refuses_a_weak_password_with_the_reason_only_after_the_current_one() {
    let dir = tempfile::tempdir().unwrap();
    let list = dir.path().join("breached.txt");
    let hex = crate::common::quality::breached::sha1_hex(b"Breached-But-Long-42");
    std::fs::write(&list, format!("{hex}:3\n")).unwrap();
    // Its own (empty) pwquality.conf: libpwquality's defaults, whatever the host's says.
    let settings = dir.path().join("pwquality.conf");
    std::fs::write(&settings, "").unwrap();
    let mut s = setup(|c| {
        c.totp.policy = TotpPolicy::IfEnrolled;
        c.password.breached_list = Some(list);
        c.password.quality_config = Some(settings);
    });
    let peer = s.nobody;
    let mut request = SelfRequest::new(Operation::Passwd, "nobody");
    request.password = Reply::from("wrong");
    request.new_password = Reply::from("abc");
    // A wrong current password: the one failure, not the reason.
    assert_eq!(
        s.service.handle(&request, peer, NOW).answer,
        SelfAnswer::Failed
    );
    request.password = Reply::from(PASSWORD);
    let out = s.service.handle(&request, peer, NOW);
    assert_eq!(out.reason, "weak-password");
    assert_eq!(
        out.answer,
        SelfAnswer::Refused {
            reason: Refusal::WeakPassword {
                why: "The password is shorter than 8 characters".into()
            }
        }
    );
    request.new_password = Reply::from("Breached-But-Long-42");
    let out = s.service.handle(&request, peer, NOW);
    assert_eq!(
        out.answer,
        SelfAnswer::Refused {
            reason: Refusal::weak_password(crate::common::quality::BREACHED)
        }
    );
    assert_eq!(login(&s, PASSWORD, "", NOW), Verdict::Allow, "unchanged");
}

#[test]
fn passwd_is_refused_when_the_system_owns_passwords() {
    let mut s = setup(|c| c.password.source = PasswordSource::System);
    let mut request = SelfRequest::new(Operation::Passwd, "nobody");
    request.password = Reply::from(PASSWORD);
    request.new_password = Reply::from(NEW);
    let out = s.service.handle(&request, s.nobody, NOW);
    assert_eq!(
        out.answer,
        SelfAnswer::Refused {
            reason: Refusal::SystemPasswords
        }
    );
}

#[test]
fn another_accounts_name_is_refused() {
    let mut s = setup(|_| {});
    let mut request = begin(PASSWORD, "");
    request.user = "root".into();
    let out = s.service.handle(&request, s.nobody, NOW);
    assert_eq!(out.answer, SelfAnswer::Failed);
    assert_eq!(out.reason, "peer-not-permitted");
}

fn recovery_new(password: &str, code: &str) -> SelfRequest {
    let mut r = SelfRequest::new(Operation::RecoveryNew, "nobody");
    r.password = Reply::from(password);
    r.code = Reply::from(code);
    r
}

fn codes_of(answer: SelfAnswer) -> Vec<String> {
    match answer {
        SelfAnswer::Codes { codes } => codes.iter().map(|c| c.expose().to_owned()).collect(),
        other => panic!("no codes: {other:?}"),
    }
}

/// Activates a fresh secret for `nobody` directly in the store.
fn activate(s: &Setup) -> Zeroizing<Vec<u8>> {
    let secret = totp::new_secret().unwrap();
    let mut store = store::open(&store::Location::of(&s.config), OpenMode::MustExist).unwrap();
    store.set_totp_pending("nobody", &secret, 0).unwrap();
    store.activate_totp("nobody", -1, 0).unwrap();
    secret
}

#[test]
fn recovery_codes_need_an_active_secret_and_are_refused_at_once_without_one() {
    let mut s = setup(|_| {});
    let out = s.service.handle(&recovery_new(PASSWORD, ""), s.nobody, NOW);
    assert_eq!(
        out.answer,
        SelfAnswer::Refused {
            reason: Refusal::NoSecret
        }
    );
    assert!(out.check.is_none(), "no check ran: nothing to charge");
    // Another account's name gets the one failure, not the refusal.
    let mut other = recovery_new(PASSWORD, "");
    other.user = "root".into();
    let out = s.service.handle(&other, s.nobody, NOW);
    assert_eq!(out.answer, SelfAnswer::Failed);
    assert_eq!(out.reason, "peer-not-permitted");
}

#[test]
fn recovery_codes_take_the_password_and_the_current_code_and_void_the_old_set() {
    let mut s = setup(|_| {});
    let peer = s.nobody;
    let secret = activate(&s);
    for (password, typed, reason) in [
        ("wrong", code(&secret, NOW), "wrong-password"),
        (PASSWORD, String::new(), "unusable-reply"),
        (PASSWORD, "000000".to_owned(), "wrong-code"),
    ] {
        let out = s.service.handle(&recovery_new(password, &typed), peer, NOW);
        assert_eq!(out.answer, SelfAnswer::Failed, "{reason}");
        assert!(out.check.is_some(), "{reason}: checked as a login");
    }
    let first = codes_of(
        s.service
            .handle(&recovery_new(PASSWORD, &code(&secret, NOW)), peer, NOW)
            .answer,
    );
    assert_eq!(first.len(), recovery::COUNT);
    // The code that proved it is used up, like a login's.
    let replay = s
        .service
        .handle(&recovery_new(PASSWORD, &code(&secret, NOW)), peer, NOW);
    assert_eq!(replay.answer, SelfAnswer::Failed);
    // An old recovery code stands in for the TOTP code, once.
    let later = NOW + 60;
    let second = codes_of(
        s.service
            .handle(&recovery_new(PASSWORD, &first[0]), peer, later)
            .answer,
    );
    assert_ne!(first, second);
    for old in &first[1..3] {
        assert_eq!(login(&s, PASSWORD, old, later), Verdict::Deny, "void");
    }
    assert_eq!(login(&s, PASSWORD, &second[3], later), Verdict::Allow);
    assert_eq!(login(&s, PASSWORD, &second[3], later), Verdict::Deny);
}

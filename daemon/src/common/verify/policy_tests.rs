//! `[service.NAME]` in the pipeline: the password alone, a line whose
//! factors the service does not accept, a peer that names a service.

use super::*;
use veil_proto::Reply;

const NOW: u64 = 1_700_000_000;
const ROOT: Peer = Peer { uid: 0, pid: 1 };

struct Fixture {
    _dir: tempfile::TempDir,
    verifier: Verifier,
    secret: Vec<u8>,
}

/// alice (password "right", TOTP), nototp (password "right"); host
/// policy required; `login` takes the password alone, `sshd` the code.
fn fixture() -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let text = format!(
        "database = {:?}\n[argon2]\nm_cost_kib = 64\nt_cost = 1\n\
         [service.login]\nfactors = [\"password\"]\n[service.sshd]\nfactors = [\"code\"]\n",
        dir.path().join("v.db")
    );
    let config = Config::parse(&text, std::path::Path::new("veild.toml")).unwrap();
    let hasher = Hasher::new(&config.argon2).unwrap();
    let mut store = store::open(&Location::of(&config), OpenMode::CreateIfMissing).unwrap();
    let secret = totp::new_secret().unwrap().to_vec();
    for user in ["alice", "nototp"] {
        store
            .add_user(user, &hasher.hash(b"right").unwrap(), 0)
            .unwrap();
    }
    store.set_totp_pending("alice", &secret, 0).unwrap();
    store.activate_totp("alice", -1, 0).unwrap();
    let dummy = dummy_record(&hasher).unwrap();
    Fixture {
        _dir: dir,
        verifier: Verifier::new(&config, hasher, dummy, SystemAccounts::default()),
        secret,
    }
}

fn ask(f: &mut Fixture, service: &str, code_only: bool, user: &str, code: &str) -> Decision {
    ask_as(f, service, code_only, user, code, ROOT)
}

fn ask_as(
    f: &mut Fixture,
    service: &str,
    code_only: bool,
    user: &str,
    code: &str,
    peer: Peer,
) -> Decision {
    let password = if code_only {
        Reply::missing()
    } else {
        Reply::from("right")
    };
    let mut req = Request::new(user, password, Reply::from(code));
    req.service = service.to_owned();
    req.code_only = code_only;
    f.verifier.decide(&req, peer, NOW)
}

fn code(f: &Fixture) -> String {
    totp::code_at(&f.secret, totp::step_of(NOW)).to_string()
}

#[test]
fn the_password_alone_admits_where_the_policy_says_so_and_nowhere_else() {
    let mut f = fixture();
    // Fails on the old main: no service's policy was read, so the host's
    // `required` asked for alice's code on login too (wrong-code) and
    // refused nototp (no-totp-enrolled).
    for user in ["alice", "nototp"] {
        let d = ask(&mut f, "login", false, user, "");
        assert_eq!(
            (d.verdict, d.reason),
            (Verdict::Allow, Reason::Success),
            "{user}"
        );
    }
    // Another service on the same veild still needs the code.
    assert_eq!(
        ask(&mut f, "sudo", false, "alice", "").reason,
        Reason::WrongCode
    );
    assert_eq!(
        ask(&mut f, "sudo", false, "nototp", "").reason,
        Reason::NoTotp
    );
    let c = code(&f);
    assert_eq!(
        ask(&mut f, "sudo", false, "alice", &c).reason,
        Reason::Success
    );
    // No code reply at all (a conversation that gave none) is fine there too.
    let mut req = Request::new("alice", Reply::from("right"), Reply::missing());
    req.service = "login".into();
    assert_eq!(f.verifier.decide(&req, ROOT, NOW).reason, Reason::Success);
    // An unknown name is still an unknown name under the password alone.
    assert_eq!(
        ask(&mut f, "login", false, "ghost", "").reason,
        Reason::UnknownUser
    );
}

#[test]
fn a_code_typed_under_the_password_alone_is_not_used_up() {
    let mut f = fixture();
    let c = code(&f);
    assert_eq!(
        ask(&mut f, "login", false, "alice", &c).reason,
        Reason::Success
    );
    // Fails if the ignored code moved alice's watermark (replayed-code).
    assert_eq!(
        ask(&mut f, "sudo", false, "alice", &c).reason,
        Reason::Success
    );
}

#[test]
fn a_line_the_policy_does_not_accept_is_denied_alike_for_real_and_unknown_names() {
    let mut f = fixture();
    let c = code(&f);
    // (service, the line declares factors=code)
    for (service, code_only) in [("login", true), ("sshd", false)] {
        for user in ["alice", "ghost"] {
            let d = ask(&mut f, service, code_only, user, &c);
            assert_eq!(
                (d.verdict, d.reason),
                (Verdict::Deny, Reason::Policy),
                "{service} {user}"
            );
        }
    }
    assert_eq!(
        ask(&mut f, "sshd", true, "alice", &c).reason,
        Reason::Success
    );
}

#[test]
fn a_program_running_as_the_user_gets_the_host_policy_whatever_service_it_names() {
    let mut f = fixture();
    let nobody = nix::unistd::User::from_name("nobody").unwrap().unwrap();
    let hash = f.verifier.hasher.hash(b"right").unwrap();
    f.verifier
        .store()
        .unwrap()
        .add_user("nobody", &hash, 0)
        .unwrap();
    let peer = Peer {
        uid: nobody.uid.as_raw(),
        pid: 9,
    };
    // As root's login it would pass on the password; its own program
    // naming "login" is held to the host's `required`.
    assert_eq!(
        ask(&mut f, "login", false, "nobody", "").reason,
        Reason::Success
    );
    let d = ask_as(&mut f, "login", false, "nobody", "", peer);
    assert_eq!((d.verdict, d.reason), (Verdict::Deny, Reason::NoTotp));
}

/// A `one_prompt` line asks for the password and the code in one answer:
/// under `["password"]` it is a line the policy does not accept (else the
/// split would cut six bytes off a password typed alone). Fails without
/// the `one_prompt` term in `policy_ok`: alice's "right" + code split to
/// "right" and was admitted on the password alone.
#[test]
fn a_one_prompt_line_is_denied_where_the_policy_takes_the_password_alone() {
    let mut f = fixture();
    let c = code(&f);
    for user in ["alice", "ghost"] {
        let mut req = Request::new(
            user,
            Reply::from(format!("right{c}").as_str()),
            Reply::missing(),
        );
        req.service = "login".into();
        req.one_prompt = true;
        let d = f.verifier.decide(&req, ROOT, NOW);
        assert_eq!(
            (d.verdict, d.reason),
            (Verdict::Deny, Reason::Policy),
            "{user}"
        );
    }
    // The same line on a service with the host's policy splits and admits.
    let c = code(&f);
    let mut req = Request::new(
        "alice",
        Reply::from(format!("right{c}").as_str()),
        Reply::missing(),
    );
    req.service = "sudo".into();
    req.one_prompt = true;
    assert_eq!(f.verifier.decide(&req, ROOT, NOW).reason, Reason::Success);
}

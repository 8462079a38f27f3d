//! Self-service as real unprivileged users: `veilctl totp enroll` (no
//! NAME), `veilctl passwd` and `veilctl recovery new` (no NAME) run under
//! the user's own uid (real accounts
//! made with `useradd`) against a real veild, which knows them from
//! SO_PEERCRED. A wrong password counts in the ledger like a login from
//! `uid:N`; re-enrolment needs the current code; no user can enrol
//! another; and a login request from the same user, on the same socket,
//! is answered with exactly ALLOW or DENY whatever self-service is under way.
//!
//! Root only (adds accounts, switches uid): ignored in a plain `cargo
//! test`, run by `scripts/test.sh` as root. Accounts are removed when the
//! test ends, pass or fail; a test refuses to run if a name exists already.

#![forbid(unsafe_code)]

use std::io::{BufRead, BufReader, Read, Write};
use std::os::unix::process::CommandExt;
use std::process::{Command, Stdio};

use veil_daemon::common::totp;
use veil_proto::self_service::{
    Operation, SelfAnswer, SelfRequest, decode_answer, encode_self_request,
};
use veil_proto::{ALLOW, DENY, Reply, Request, encode_request};
use veil_tests::Veild;
use veil_tests::accounts::Accounts;
use veil_tests::pam::{self, PAM_AUTH_ERR, PAM_SUCCESS, socket_args};
use veil_tests::paths;
use veil_tests::root::require_root;
use veil_tests::wire::{PASSWORD, SECRET_B32, code_at, frame, raw};
use veil_tests::{Attempt, PamStack};

/// One real account.
#[derive(Debug, Clone)]
struct User {
    name: &'static str,
    uid: u32,
    gid: u32,
}

/// A real account with a system password: one without (`!` in shadow)
/// is denied with source = "system" (no-usable-hash).
fn account(made: &mut Accounts, name: &'static str) -> User {
    made.add_with_password(name, "the system one, not veil's");
    let entry = nix::unistd::User::from_name(name)
        .unwrap()
        .expect("useradd made it");
    User {
        name,
        uid: entry.uid.as_raw(),
        gid: entry.gid.as_raw(),
    }
}

/// `veilctl --config <d's> ARGS` as `user`, in its own process.
fn veilctl_as(d: &Veild, user: &User) -> Command {
    let mut command = Command::new(paths::veilctl());
    command
        .arg("--config")
        .arg(d.config_path())
        .uid(user.uid)
        .gid(user.gid)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    command
}

/// Runs veilctl as `user` with `stdin`: (exit status, stdout, stderr).
fn ctl_as(d: &Veild, user: &User, args: &[&str], stdin: &str) -> (i32, String, String) {
    let mut child = veilctl_as(d, user).args(args).spawn().expect("veilctl");
    if let Some(mut input) = child.stdin.take() {
        let _ = input.write_all(stdin.as_bytes());
    }
    let out = child.wait_with_output().unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into(),
        String::from_utf8_lossy(&out.stderr).into(),
    )
}

/// The code of a base32 secret `offset` steps from now.
fn code_of(secret_b32: &str, offset: i64) -> String {
    let secret = totp::from_base32(secret_b32).unwrap();
    let now = veil_daemon::common::clock::unix_now();
    totp::code_at(&secret, totp::step_of(now) + offset).to_string()
}

/// `veilctl totp enroll --password-stdin --no-qr` as `user`, typed as a
/// person would: the password and current code, then (once veilctl shows
/// the new secret) a code of it. The activated secret, or veilctl's stderr.
fn enrol_as(d: &Veild, user: &User, password: &str, current: &str) -> Result<String, String> {
    let mut child = veilctl_as(d, user)
        .args(["totp", "enroll", "--password-stdin", "--no-qr"])
        .spawn()
        .expect("veilctl");
    let mut stdin = child.stdin.take().unwrap();
    writeln!(stdin, "{password}\n{current}").unwrap();
    let mut stdout = BufReader::new(child.stdout.take().unwrap());
    let mut shown = String::new();
    let mut secret = None;
    let mut line = String::new();
    while stdout.read_line(&mut line).unwrap() > 0 {
        shown.push_str(&line);
        if let Some(s) = line.strip_prefix("Secret: ") {
            secret = Some(s.trim().to_owned());
            break;
        }
        line.clear();
    }
    if let Some(s) = &secret {
        writeln!(stdin, "{}", code_of(s, 0)).unwrap();
    }
    drop(stdin);
    stdout.read_to_string(&mut shown).unwrap();
    let out = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr).to_string();
    match secret {
        Some(s) if out.status.success() => {
            assert!(
                shown.contains("URI:    otpauth://totp/veil%20on%20"),
                "{shown}"
            );
            Ok(s)
        }
        _ => Err(format!("{}: {stderr}", out.status)),
    }
}

/// `veilctl status NAME --json`: the failures counted on (NAME, uid:N).
fn failures_from_uid(d: &Veild, user: &User) -> i64 {
    let out = d.veilctl(&["status", user.name, "--json"], "");
    let status: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let source = format!("uid:{}", user.uid);
    status["counters"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["kind"] == "user+source" && c["source"] == source.as_str())
        .map_or(0, |c| c["failures"].as_i64().unwrap())
}

fn login(d: &Veild, user: &User, password: &str, code: &str) -> Vec<u8> {
    d.ask(user.name, password, code)
}

#[test]
#[ignore = "needs root (adds accounts, switches uid): scripts/test.sh runs it as root"]
fn a_user_enrols_their_own_secret_after_their_password_and_then_logs_in() {
    require_root();
    let mut made = Accounts::new();
    let alice = account(&mut made, "v14aalice");
    let d = Veild::from_toml("[lockout]\ndeny = 3\n");
    d.add_user(alice.name, PASSWORD);

    let wrong = enrol_as(&d, &alice, "not her password", "").unwrap_err();
    assert!(
        wrong.contains("refused: the password or the code is wrong"),
        "{wrong}"
    );
    assert_eq!(failures_from_uid(&d, &alice), 1, "counted like a login");
    let log = d.log_with(1);
    assert!(
        log.contains("service=veilctl-totp-enroll")
            && log.contains(&format!("source=uid:{}", alice.uid))
            && log.contains("reason=wrong-password"),
        "{log}"
    );

    let secret = enrol_as(&d, &alice, PASSWORD, "").expect("enrolled");
    assert_eq!(failures_from_uid(&d, &alice), 0, "a success clears its key");
    assert_eq!(login(&d, &alice, PASSWORD, &code_of(&secret, 1)), ALLOW);
    assert_eq!(
        login(&d, &alice, "not her password", &code_of(&secret, 1)),
        DENY
    );
    let log = d.stderr();
    assert!(
        log.contains("event=self-service op=enrol-confirm user=v14aalice")
            && log.contains("outcome=done reason=enrolled"),
        "{log}"
    );
    assert!(!log.contains(&secret), "the secret is not logged");

    // Her own name is pointed to self-enrolment.
    let (code, _, err) = ctl_as(&d, &alice, &["totp", "enroll", alice.name], "");
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("leave the name out"), "{err}");
    // root names the user: no self-service for root.
    let (code, _, err) = d.ctl(&["totp", "enroll", "--password-stdin"], "");
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("veilctl totp enroll NAME"), "{err}");
}

#[test]
#[ignore = "needs root (adds accounts, switches uid): scripts/test.sh runs it as root"]
fn re_enrolment_needs_the_current_code() {
    require_root();
    let mut made = Accounts::new();
    let carol = account(&mut made, "v14acarol");
    let d = Veild::from_toml("[lockout]\ndeny = 5\n");
    d.add_user(carol.name, PASSWORD);
    let wrong_password = enrol_as(&d, &carol, "wrong", "").unwrap_err();
    let first = enrol_as(&d, &carol, PASSWORD, "").expect("first enrolment");

    let no_code = enrol_as(&d, &carol, PASSWORD, "").unwrap_err();
    assert_eq!(no_code, wrong_password, "one failure, whatever was wrong");
    let wrong_code = enrol_as(&d, &carol, PASSWORD, &code_of(&first, 5)).unwrap_err();
    assert_eq!(wrong_code, wrong_password);
    assert_eq!(failures_from_uid(&d, &carol), 2);

    let second = enrol_as(&d, &carol, PASSWORD, &code_of(&first, 1)).expect("re-enrolled");
    assert_ne!(first, second);
    assert_eq!(login(&d, &carol, PASSWORD, &code_of(&first, 1)), DENY);
    assert_eq!(login(&d, &carol, PASSWORD, &code_of(&second, 1)), ALLOW);
}

#[test]
#[ignore = "needs root (adds accounts, switches uid): scripts/test.sh runs it as root"]
fn a_user_cannot_enrol_another_account() {
    require_root();
    let mut made = Accounts::new();
    let dave = account(&mut made, "v14adave");
    let erin = account(&mut made, "v14aerin");
    let d = Veild::from_toml("");
    d.add_user(dave.name, PASSWORD);
    d.add_user(erin.name, PASSWORD);

    // veilctl with a NAME opens the database, which users cannot.
    let (code, _, err) = ctl_as(
        &d,
        &dave,
        &["totp", "enroll", erin.name, "--no-confirm", "--no-qr"],
        "",
    );
    assert_ne!(code, 0, "{err}");
    // A frame naming erin, with erin's password, from dave's uid.
    let text = run_as(
        &dave,
        "frames_naming_another_user",
        &[
            ("VEIL_SS_SOCKET", d.socket().to_str().unwrap()),
            ("VEIL_SS_USER", erin.name),
        ],
    );
    assert!(text.contains("ANSWER=failed"), "{text}");
    let list = String::from_utf8(d.veilctl(&["user", "list"], "").stdout).unwrap();
    let erin_row = list.lines().find(|l| l.starts_with(erin.name)).unwrap();
    assert!(erin_row.contains(" none "), "{list}");
    assert_eq!(failures_from_uid(&d, &erin), 0, "nothing charged to erin");
    let log = d.log_with(1);
    assert!(
        log.contains("user=v14aerin")
            && log.contains(&format!("peer_uid={}", dave.uid))
            && log.contains("reason=peer-not-permitted"),
        "{log}"
    );
    // The peer's own key (peer:uid:N) took the failure: one row to clear.
    let (code, _, err) = d.ctl(&["unlock", "--source", &format!("uid:{}", dave.uid)], "");
    assert_eq!(code, 0, "{err}");
    assert!(err.contains("cleared 1 counter(s)"), "{err}");
}

/// Runs only as the child of `a_user_cannot_enrol_another_account`.
#[test]
#[ignore = "a helper: run as a user by a_user_cannot_enrol_another_account"]
fn frames_naming_another_user() {
    let (Ok(socket), Ok(user)) = (
        std::env::var("VEIL_SS_SOCKET"),
        std::env::var("VEIL_SS_USER"),
    ) else {
        return;
    };
    let mut begin = SelfRequest::new(Operation::EnrolBegin, &user);
    begin.password = Reply::from(PASSWORD);
    let answer = raw(socket.as_ref(), &encode_self_request(&begin));
    match decode_answer(&answer) {
        Some(SelfAnswer::Failed) => println!("ANSWER=failed"),
        other => println!("ANSWER={other:?}"),
    }
}

#[test]
#[ignore = "needs root (adds accounts, switches uid): scripts/test.sh runs it as root"]
fn a_login_request_from_the_user_is_answered_only_with_allow_or_deny() {
    require_root();
    let mut made = Accounts::new();
    let frank = account(&mut made, "v14afrank");
    let d = Veild::from_toml("");
    d.enrol(frank.name, true);
    let text = run_as(
        &frank,
        "login_frames_during_an_enrolment",
        &[
            ("VEIL_SS_SOCKET", d.socket().to_str().unwrap()),
            ("VEIL_SS_USER", frank.name),
        ],
    );
    assert!(text.contains("FRAMES-CHECKED"), "{text}");
    // root's own self-service frame is refused, as a self-service answer.
    let mut begin = SelfRequest::new(Operation::EnrolBegin, frank.name);
    begin.password = Reply::from(PASSWORD);
    let answer = d.raw(&encode_self_request(&begin));
    assert!(
        matches!(decode_answer(&answer), Some(SelfAnswer::Refused { .. })),
        "{answer:?}"
    );
}

/// Runs only as the child of the test above, as the user: a self-service
/// enrolment is pending, and every login frame still gets ALLOW or DENY.
#[test]
#[ignore = "a helper: run as a user by a_login_request_from_the_user_is_answered_only_with_allow_or_deny"]
fn login_frames_during_an_enrolment() {
    let (Ok(socket), Ok(user)) = (
        std::env::var("VEIL_SS_SOCKET"),
        std::env::var("VEIL_SS_USER"),
    ) else {
        return;
    };
    let socket = std::path::Path::new(&socket);
    let mut begin = SelfRequest::new(Operation::EnrolBegin, &user);
    begin.password = Reply::from(PASSWORD);
    begin.code = Reply::from(code_at(0).as_str());
    let pending = match decode_answer(&raw(socket, &encode_self_request(&begin))) {
        Some(SelfAnswer::Challenge { secret, .. }) => secret.expose().to_owned(),
        other => panic!("no challenge: {other:?}"),
    };
    let login = |password: &str, code: &str| {
        raw(
            socket,
            &encode_request(&Request::new(
                &user,
                Reply::from(password),
                Reply::from(code),
            )),
        )
    };
    // The pending secret's code is no login, the active one's is.
    assert_eq!(login(PASSWORD, &code_of(&pending, 0)), DENY);
    assert_eq!(login(PASSWORD, &code_of(&pending, 1)), DENY);
    assert_eq!(login(PASSWORD, &code_at(1)), ALLOW);
    // Bodies that mix the two kinds decode as neither: DENY, exactly.
    let login_body = String::from_utf8(
        encode_request(&Request::new(
            &user,
            Reply::from(PASSWORD),
            Reply::from("1"),
        ))[4..]
            .to_vec(),
    )
    .unwrap();
    for mixed in [
        login_body.replacen('{', "{\"self\":1,\"op\":\"enrol-begin\",", 1),
        login_body.replacen('{', "{\"op\":\"enrol-begin\",", 1),
        login_body.replacen('{', "{\"ticket\":\"\",", 1),
        login_body.replacen('{', "{\"self\":1,\"op\":\"recovery-new\",", 1),
        login_body.replacen('{', "{\"op\":\"recovery-new\",", 1),
    ] {
        assert_eq!(raw(socket, &frame(mixed.as_bytes())), DENY, "{mixed:.60}");
    }
    let self_body = String::from_utf8(encode_self_request(&begin)[4..].to_vec()).unwrap();
    let with_v = self_body.replacen('{', "{\"v\":2,", 1);
    assert_eq!(raw(socket, &frame(with_v.as_bytes())), DENY);
    let mut codes = SelfRequest::new(Operation::RecoveryNew, &user);
    codes.password = Reply::from(PASSWORD);
    codes.code = Reply::from(code_at(2).as_str());
    let codes_body = String::from_utf8(encode_self_request(&codes)[4..].to_vec()).unwrap();
    let with_v = codes_body.replacen('{', "{\"v\":2,", 1);
    assert_eq!(raw(socket, &frame(with_v.as_bytes())), DENY);
    assert_ne!(SECRET_B32, pending);
    println!("FRAMES-CHECKED");
}

#[test]
#[ignore = "needs root (adds accounts, switches uid): scripts/test.sh runs it as root"]
fn self_service_takes_from_the_same_per_uid_share_as_logins() {
    require_root();
    let mut made = Accounts::new();
    let kim = account(&mut made, "v14akim");
    let d = Veild::from_toml("[limits]\nmax_connections_per_user = 2\n");
    d.add_user(kim.name, PASSWORD);
    let text = run_as(
        &kim,
        "self_service_past_the_share",
        &[
            ("VEIL_SS_SOCKET", d.socket().to_str().unwrap()),
            ("VEIL_SS_USER", kim.name),
        ],
    );
    assert!(
        text.contains("PAST-SHARE=deny IN-SHARE=challenge"),
        "{text}"
    );
    let log = d.stderr();
    assert!(
        log.contains(&format!(
            "limit=max_connections_per_user peer_uid={}",
            kim.uid
        )),
        "{log}"
    );
}

/// Runs only as the child of the test above: two idle connections hold
/// the uid's share, so a self-service request gets DENY at once, unread;
/// once they close, the same request is served.
#[test]
#[ignore = "a helper: run as a user by self_service_takes_from_the_same_per_uid_share_as_logins"]
fn self_service_past_the_share() {
    let (Ok(socket), Ok(user)) = (
        std::env::var("VEIL_SS_SOCKET"),
        std::env::var("VEIL_SS_USER"),
    ) else {
        return;
    };
    let socket = std::path::Path::new(&socket);
    let idle: Vec<_> = (0..2)
        .map(|_| std::os::unix::net::UnixStream::connect(socket).unwrap())
        .collect();
    std::thread::sleep(std::time::Duration::from_millis(200));
    let mut begin = SelfRequest::new(Operation::EnrolBegin, &user);
    begin.password = Reply::from(PASSWORD);
    let past = raw(socket, &encode_self_request(&begin));
    drop(idle);
    std::thread::sleep(std::time::Duration::from_millis(200));
    let within = decode_answer(&raw(socket, &encode_self_request(&begin)));
    println!(
        "PAST-SHARE={} IN-SHARE={}",
        if past == DENY { "deny" } else { "other" },
        if matches!(within, Some(SelfAnswer::Challenge { .. })) {
            "challenge"
        } else {
            "other"
        }
    );
}

#[test]
#[ignore = "needs root (adds accounts, switches uid): scripts/test.sh runs it as root"]
fn a_user_changes_their_own_veil_password() {
    require_root();
    let mut made = Accounts::new();
    let gina = account(&mut made, "v14agina");
    let d = Veild::from_toml("[totp]\npolicy = \"if-enrolled\"\n");
    d.add_user(gina.name, PASSWORD);
    const NEW: &str = "a new one, 4 gina";

    let (code, _, err) = ctl_as(
        &d,
        &gina,
        &["passwd", "--password-stdin"],
        "wrong\n\nx y z\n",
    );
    assert_eq!(code, 1, "{err}");
    assert!(
        err.contains("refused: the password or the code is wrong"),
        "{err}"
    );
    assert_eq!(failures_from_uid(&d, &gina), 1);
    assert_eq!(login(&d, &gina, PASSWORD, ""), ALLOW, "unchanged");

    let (code, _, err) = ctl_as(
        &d,
        &gina,
        &["passwd", "--password-stdin"],
        &format!("{PASSWORD}\n\n{NEW}\n"),
    );
    assert_eq!(code, 0, "{err}");
    assert_eq!(login(&d, &gina, PASSWORD, ""), DENY, "the old one is gone");
    assert_eq!(login(&d, &gina, NEW, ""), ALLOW);
    let log = d.stderr();
    assert!(!log.contains(NEW) && !log.contains(PASSWORD), "{log}");

    // Once she has a secret, a change needs its code too.
    d.enroll_totp(gina.name, SECRET_B32);
    let stdin = format!("{NEW}\n\n{PASSWORD}\n");
    let (code, _, err) = ctl_as(&d, &gina, &["passwd", "--password-stdin"], &stdin);
    assert_eq!(code, 1, "{err}");
    let stdin = format!("{NEW}\n{}\n{PASSWORD}\n", code_at(0));
    let (code, _, err) = ctl_as(&d, &gina, &["passwd", "--password-stdin"], &stdin);
    assert_eq!(code, 0, "{err}");
    assert_eq!(login(&d, &gina, PASSWORD, &code_at(1)), ALLOW);
}

#[test]
#[ignore = "needs root (adds accounts, switches uid; reads /etc/shadow): scripts/test.sh runs it as root"]
fn passwd_points_system_password_users_to_passwd() {
    require_root();
    let mut made = Accounts::new();
    let hank = account(&mut made, "v14ahank");
    let d = Veild::from_toml("[password]\nsource = \"system\"\n");
    let (code, _, err) = ctl_as(&d, &hank, &["passwd", "--password-stdin"], "a\n\nb\n");
    assert_eq!(code, 6, "{err}");
    assert!(err.contains("change yours with passwd"), "{err}");
    // veild refuses it too, whatever veilctl does.
    let text = run_as(
        &hank,
        "passwd_frame_of_a_system_user",
        &[
            ("VEIL_SS_SOCKET", d.socket().to_str().unwrap()),
            ("VEIL_SS_USER", hank.name),
        ],
    );
    assert!(text.contains("ANSWER=system-passwords"), "{text}");
}

#[test]
#[ignore = "needs root (adds accounts, switches uid; reads /etc/shadow): scripts/test.sh runs it as root"]
fn a_system_user_enrols_with_the_system_password_and_no_admin() {
    require_root();
    let mut made = Accounts::new();
    let name = "v14ajude";
    made.add(name);
    veil_tests::accounts::run("chpasswd", &[], &format!("{name}:{PASSWORD}\n"));
    let entry = nix::unistd::User::from_name(name).unwrap().unwrap();
    let jude = User {
        name,
        uid: entry.uid.as_raw(),
        gid: entry.gid.as_raw(),
    };
    let d = Veild::from_toml("[password]\nsource = \"system\"\n");
    let secret = enrol_as(&d, &jude, PASSWORD, "").expect("enrolled");
    assert_eq!(login(&d, &jude, PASSWORD, &code_of(&secret, 1)), ALLOW);
    let list = String::from_utf8(d.veilctl(&["user", "list"], "").stdout).unwrap();
    let row = list.lines().find(|l| l.starts_with(name)).unwrap();
    assert!(row.contains(" active "), "{list}");
}

#[test]
#[ignore = "needs root (adds accounts, switches uid): scripts/test.sh runs it as root"]
fn an_impostor_on_the_socket_gets_no_password_from_veilctl() {
    use std::os::unix::fs::PermissionsExt;
    require_root();
    let mut made = Accounts::new();
    let lee = account(&mut made, "v14alee");
    let dir = tempfile::Builder::new()
        .prefix("veil-14a-impostor-")
        .tempdir()
        .unwrap();
    let nobody = nix::unistd::User::from_name("nobody").unwrap().unwrap();
    nix::unistd::chown(dir.path(), Some(nobody.uid), Some(nobody.gid)).unwrap();
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let socket = dir.path().join("veild.sock");
    let record = dir.path().join("record");
    let config = dir.path().join("veild.toml");
    std::fs::write(
        &config,
        format!(
            "socket = \"{}\"\ndatabase = \"/nonexistent/veil.db\"\n",
            socket.display()
        ),
    )
    .unwrap();
    let mut command = Command::new(paths::fake_veild());
    veil_tests::kill_with_parent(&mut command);
    let mut impostor = command
        .arg(&socket)
        .arg(&record)
        .uid(nobody.uid.as_raw())
        .gid(nobody.gid.as_raw())
        .stdin(Stdio::null())
        .spawn()
        .expect("start the impostor");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while !socket.exists() {
        assert!(
            std::time::Instant::now() < deadline,
            "the impostor did not bind"
        );
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    let out = Command::new(paths::veilctl())
        .arg("--config")
        .arg(&config)
        .args(["passwd", "--password-stdin"])
        .uid(lee.uid)
        .gid(lee.gid)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .and_then(|mut child| {
            let _ = child
                .stdin
                .take()
                .unwrap()
                .write_all(format!("{PASSWORD}\n\nnew one\n").as_bytes());
            child.wait_with_output()
        })
        .unwrap();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    // The impostor creates the file before it writes the line: wait for the line.
    let recorded = || std::fs::read_to_string(&record).is_ok_and(|r| r.ends_with('\n'));
    while !recorded() && std::time::Instant::now() < deadline {
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    let _ = impostor.kill();
    let _ = impostor.wait();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(
        err.contains("neither root nor veild's user; nothing sent"),
        "{err}"
    );
    let record = std::fs::read_to_string(&record).unwrap_or_default();
    assert!(
        record.lines().count() == 1 && record.contains("bytes=0"),
        "veilctl connected once and sent nothing: {record:?}"
    );
}

/// Runs only as the child of `passwd_points_system_password_users_to_passwd`.
#[test]
#[ignore = "a helper: run as a user by passwd_points_system_password_users_to_passwd"]
fn passwd_frame_of_a_system_user() {
    let (Ok(socket), Ok(user)) = (
        std::env::var("VEIL_SS_SOCKET"),
        std::env::var("VEIL_SS_USER"),
    ) else {
        return;
    };
    let mut request = SelfRequest::new(Operation::Passwd, &user);
    request.password = Reply::from("a");
    request.new_password = Reply::from("b");
    match decode_answer(&raw(socket.as_ref(), &encode_self_request(&request))) {
        Some(SelfAnswer::Refused {
            reason: veil_proto::self_service::Refusal::SystemPasswords,
        }) => println!("ANSWER=system-passwords"),
        other => println!("ANSWER={other:?}"),
    }
}

#[test]
fn root_enrolment_labels_the_entry_with_the_host() {
    let d = Veild::from_toml("");
    d.add_user("ivy", PASSWORD);
    let host = totp::host_name();
    let enc = percent_encode;
    let out = d.veilctl(&["totp", "enroll", "ivy", "--no-confirm", "--no-qr"], "");
    let shown = String::from_utf8(out.stdout).unwrap();
    let want = format!(
        "otpauth://totp/{}:{}?",
        enc(&format!("veil on {host}")),
        enc(&format!("ivy@{host}"))
    );
    assert!(shown.contains(&want), "{want}\n{shown}");

    let d = Veild::from_toml("[totp]\nissuer = \"Example web-1\"\n");
    d.add_user("ivy", PASSWORD);
    let out = d.veilctl(&["totp", "enroll", "ivy", "--no-confirm", "--no-qr"], "");
    let shown = String::from_utf8(out.stdout).unwrap();
    assert!(
        shown.contains(&format!(
            "otpauth://totp/Example%20web%2D1:{}?",
            enc(&format!("ivy@{host}"))
        )) && shown.contains("&issuer=Example%20web%2D1&"),
        "{shown}"
    );
}

/// What the otpauth URI does to a label: every byte but ASCII letters and
/// digits as %XX (RFC 3986 percent-encoding, written out here on purpose).
fn percent_encode(s: &str) -> String {
    s.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

/// The ten codes (`xxxx-xxxx-xx`) in what `veilctl recovery new` printed.
fn codes_in(text: &str) -> Vec<String> {
    text.split_whitespace()
        .filter(|w| w.len() == 12 && w.as_bytes()[4] == b'-' && w.as_bytes()[9] == b'-')
        .map(str::to_owned)
        .collect()
}

/// `veilctl recovery new --password-stdin` as `user`: (exit, codes, stderr).
fn recovery_as(d: &Veild, user: &User, password: &str, code: &str) -> (i32, Vec<String>, String) {
    let (rc, out, err) = ctl_as(
        d,
        user,
        &["recovery", "new", "--password-stdin"],
        &format!("{password}\n{code}\n"),
    );
    (rc, codes_in(&out), err)
}

#[test]
#[ignore = "needs root (adds accounts, switches uid): scripts/test.sh runs it as root"]
fn a_user_makes_their_own_recovery_codes_with_password_and_code() {
    require_root();
    let mut made = Accounts::new();
    let mia = account(&mut made, "v14cmia");
    let d = Veild::from_toml("[lockout]\ndeny = 5\n");
    d.add_user(mia.name, PASSWORD);

    // No secret yet: refused at once, pointed to enrolment, nothing charged.
    let (rc, codes, err) = recovery_as(&d, &mia, PASSWORD, "");
    assert_eq!(rc, 6, "{err}");
    assert!(codes.is_empty());
    assert!(err.contains("enrol first: veilctl totp enroll"), "{err}");
    assert_eq!(failures_from_uid(&d, &mia), 0);

    d.enroll_totp(mia.name, SECRET_B32);
    let (_, root_out, _) = d.ctl(&["recovery", "new", mia.name], "");
    let old = codes_in(&root_out);
    assert_eq!(old.len(), 10, "root keeps recovery new NAME: {root_out}");

    // Wrong password, no code, wrong code: the one failure, each counted.
    let (rc, codes, wrong_password) = recovery_as(&d, &mia, "not hers", &code_at(0));
    assert_eq!(rc, 1, "{wrong_password}");
    assert!(codes.is_empty());
    assert!(
        wrong_password.contains("refused: the password or the code is wrong"),
        "{wrong_password}"
    );
    for code in [String::new(), code_at(10)] {
        let (rc, codes, err) = recovery_as(&d, &mia, PASSWORD, &code);
        assert_eq!((rc, codes.len()), (1, 0), "{err}");
        assert_eq!(err, wrong_password, "one failure, whatever was wrong");
    }
    assert_eq!(failures_from_uid(&d, &mia), 3, "counted like logins");
    let log = d.log_with(3);
    assert!(
        log.contains("service=veilctl-recovery-new")
            && log.contains(&format!("source=uid:{}", mia.uid))
            && log.contains("reason=wrong-password")
            && log.contains("reason=wrong-code"),
        "{log}"
    );

    let (rc, new, err) = recovery_as(&d, &mia, PASSWORD, &code_at(0));
    assert_eq!(rc, 0, "{err}");
    assert_eq!(new.len(), 10, "{err}");
    assert!(err.contains("any earlier ones no longer work"), "{err}");
    assert_eq!(failures_from_uid(&d, &mia), 0, "a success clears its key");
    for code in &old {
        assert!(!new.contains(code));
    }
    // Through real libpam: a new code logs in once, an old one not at all.
    let stack = PamStack::veil(&socket_args(&d.socket(), "5"));
    let run = |code: &str| pam::authenticate(&stack, &Attempt::new(mia.name, &[PASSWORD, code]));
    assert_eq!(run(&old[0]).code, PAM_AUTH_ERR, "the old set is void");
    assert_eq!(run(&new[0]).code, PAM_SUCCESS, "{}", d.stderr());
    assert_eq!(run(&new[0]).code, PAM_AUTH_ERR, "once");

    // A recovery code stands in for the TOTP code here too, used up.
    let (rc, third, err) = recovery_as(&d, &mia, PASSWORD, &new[1]);
    assert_eq!((rc, third.len()), (0, 10), "{err}");
    assert_eq!(
        d.ask(mia.name, PASSWORD, &new[2]),
        DENY,
        "the second set is void"
    );
    assert_eq!(d.ask(mia.name, PASSWORD, &third[2]), ALLOW);

    let log = d.stderr();
    assert!(
        log.contains("event=self-service op=recovery-new user=v14cmia")
            && log.contains("outcome=done reason=recovery-codes-made")
            && log.contains("outcome=refused reason=no-secret"),
        "{log}"
    );
    for code in old.iter().chain(&new).chain(&third) {
        assert!(!log.contains(code.as_str()), "a code is in the log");
    }
    let (_, status, _) = d.ctl(&["status", mia.name], "");
    assert!(status.contains("recovery codes left: 9"), "{status}");

    // Her own name is pointed to the self-service form; root must name one.
    let (rc, _, err) = ctl_as(&d, &mia, &["recovery", "new", mia.name], "");
    assert_eq!(rc, 2, "{err}");
    assert!(err.contains("leave the name out"), "{err}");
    let (rc, _, err) = d.ctl(&["recovery", "new", "--password-stdin"], "");
    assert_eq!(rc, 2, "{err}");
    assert!(err.contains("veilctl recovery new NAME"), "{err}");
}

#[test]
#[ignore = "needs root (adds accounts, switches uid): scripts/test.sh runs it as root"]
fn a_user_cannot_make_codes_for_another_account() {
    require_root();
    let mut made = Accounts::new();
    let ned = account(&mut made, "v14cned");
    let ola = account(&mut made, "v14cola");
    let d = Veild::from_toml("");
    d.add_user(ned.name, PASSWORD);
    d.add_user(ola.name, PASSWORD);
    d.enroll_totp(ola.name, SECRET_B32);
    let text = run_as(
        &ned,
        "recovery_frame_naming_another_user",
        &[
            ("VEIL_SS_SOCKET", d.socket().to_str().unwrap()),
            ("VEIL_SS_USER", ola.name),
        ],
    );
    assert!(text.contains("ANSWER=failed"), "{text}");
    let (_, status, _) = d.ctl(&["status", ola.name], "");
    assert!(status.contains("recovery codes left: 0"), "{status}");
    assert_eq!(failures_from_uid(&d, &ola), 0, "nothing charged to ola");
    let log = d.log_with(1);
    assert!(log.contains("reason=peer-not-permitted"), "{log}");
}

/// Runs only as the child of `a_user_cannot_make_codes_for_another_account`.
#[test]
#[ignore = "a helper: run as a user by a_user_cannot_make_codes_for_another_account"]
fn recovery_frame_naming_another_user() {
    let (Ok(socket), Ok(user)) = (
        std::env::var("VEIL_SS_SOCKET"),
        std::env::var("VEIL_SS_USER"),
    ) else {
        return;
    };
    let mut request = SelfRequest::new(Operation::RecoveryNew, &user);
    request.password = Reply::from(PASSWORD);
    request.code = Reply::from(code_at(0).as_str());
    match decode_answer(&raw(socket.as_ref(), &encode_self_request(&request))) {
        Some(SelfAnswer::Failed) => println!("ANSWER=failed"),
        other => println!("ANSWER={other:?}"),
    }
}

/// Re-runs one helper test of this binary as `user`; its stdout.
fn run_as(user: &User, test: &str, env: &[(&str, &str)]) -> String {
    let env: Vec<(&str, &std::ffi::OsStr)> = env.iter().map(|(k, v)| (*k, v.as_ref())).collect();
    veil_tests::root::rerun_as(user.uid, user.gid, test, &env)
}

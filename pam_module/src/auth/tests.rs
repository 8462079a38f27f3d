//! Unit tests for the authentication logic, driven through a scripted
//! [`Pam`] fake that asserts every expected prompt and a fake [`Veild`].

use std::cell::RefCell;
use std::collections::{HashMap, VecDeque};
use std::io;
use std::path::{Path, PathBuf};
use std::time::Duration;

use veil_proto::{ClientError, Secret};

use super::*;
use crate::conv::{CODE_PROMPT, ONE_PROMPT, PASSWORD_PROMPT};
use crate::vocab::{MessageStyle, PamFailure};

const PASSWORD: &str = "correct horse battery";
const CODE: &str = "492039";

type Scripted = Result<Secret, PamFailure>;

thread_local! {
    /// What the fakes did, in order, with the monotonic clock read at
    /// each step: "prompt" as a prompt returns, "lookup" for the server
    /// account, "ask" as the request reaches veild.
    static EVENTS: RefCell<Vec<(&'static str, u64)>> = const { RefCell::new(Vec::new()) };
}

fn event(what: &'static str) {
    EVENTS.with(|e| e.borrow_mut().push((what, veil_proto::monotonic::now_ns())));
}

/// A scripted libpam: every prompt must be the next one in the script.
struct FakePam {
    user: Result<String, PamFailure>,
    items: HashMap<Item, String>,
    authtok: Option<Secret>,
    script: VecDeque<(MessageStyle, &'static str, Scripted)>,
    transcript: Vec<(MessageStyle, String)>,
    stored: Vec<Secret>,
    logs: RefCell<Vec<(Level, String)>>,
}

impl FakePam {
    fn new() -> FakePam {
        let items = HashMap::from([
            (Item::User, "alice".to_owned()),
            (Item::Service, "sshd".to_owned()),
            (Item::RHost, "192.0.2.7".to_owned()),
            (Item::Tty, "ssh".to_owned()),
            (Item::RUser, "bob".to_owned()),
        ]);
        FakePam {
            user: Ok("alice".to_owned()),
            items,
            authtok: None,
            script: VecDeque::new(),
            transcript: Vec::new(),
            stored: Vec::new(),
            logs: RefCell::new(Vec::new()),
        }
    }

    /// Expects both prompts, answered with the right password and code.
    fn answering_both() -> FakePam {
        FakePam::new()
            .expect(PASSWORD_PROMPT, Ok(Secret::from(PASSWORD)))
            .expect(CODE_PROMPT, Ok(Secret::from(CODE)))
    }

    fn expect(mut self, text: &'static str, reply: Scripted) -> FakePam {
        self.script
            .push_back((MessageStyle::PromptEchoOff, text, reply));
        self
    }

    fn assert_script_done(&self) {
        assert!(
            self.script.is_empty(),
            "prompts never asked: {:?}",
            self.script
        );
    }
}

impl Pam for FakePam {
    fn user(&mut self) -> Result<String, PamFailure> {
        self.user.clone()
    }

    fn item(&self, item: Item) -> Option<String> {
        self.items.get(&item).cloned()
    }

    fn authtok(&self) -> Result<Option<Secret>, PamFailure> {
        Ok(self.authtok.clone())
    }

    fn prompt(&mut self, style: MessageStyle, text: &str) -> Result<Secret, PamFailure> {
        self.transcript.push((style, text.to_owned()));
        let (want_style, want_text, reply) = self
            .script
            .pop_front()
            .unwrap_or_else(|| panic!("unexpected prompt {text:?}"));
        assert_eq!(
            (style, text),
            (want_style, want_text),
            "prompt out of script"
        );
        event("prompt");
        reply
    }

    fn set_authtok(&mut self, token: &Secret) -> Result<(), PamFailure> {
        self.stored.push(token.clone());
        Ok(())
    }

    fn log(&self, level: Level, message: &str) {
        self.logs.borrow_mut().push((level, message.to_owned()));
    }
}

type Answer = Box<dyn FnMut() -> Result<Verdict, ClientError>>;

struct FakeVeild {
    answer: Answer,
    asked: Vec<(PathBuf, Request, Duration)>,
    server_user: &'static str,
}

impl FakeVeild {
    fn answering(answer: impl FnMut() -> Result<Verdict, ClientError> + 'static) -> FakeVeild {
        FakeVeild {
            answer: Box::new(answer),
            asked: Vec::new(),
            server_user: "veil",
        }
    }
}

impl Veild for FakeVeild {
    fn server_uid(&mut self, server_user: &str) -> Option<u32> {
        assert_eq!(server_user, self.server_user, "the trusted server account");
        event("lookup");
        Some(4242)
    }

    fn ask(
        &mut self,
        socket: &Path,
        request: &Request,
        timeout: Duration,
        server_uid: Option<u32>,
    ) -> Result<Verdict, ClientError> {
        assert_eq!(
            server_uid,
            Some(4242),
            "the uid looked up before the prompts"
        );
        event("ask");
        self.asked
            .push((socket.to_owned(), request.clone(), timeout));
        (self.answer)()
    }

    fn note(
        &mut self,
        _: &Path,
        _: &veil_proto::session::SessionNote,
        _: Duration,
        _: Option<u32>,
    ) -> Result<Verdict, ClientError> {
        panic!("authentication never sends a session note")
    }
}

struct Run {
    code: PamCode,
    transcript: Vec<(MessageStyle, String)>,
    logs: Vec<(Level, String)>,
    asked: Vec<(PathBuf, Request, Duration)>,
    stored: Vec<Secret>,
}

fn run(mut pam: FakePam, mut veild: FakeVeild, args: &[&str]) -> Run {
    let code = authenticate(
        &mut pam,
        &mut veild,
        args.iter().map(|a| Some(a.as_bytes())),
    );
    pam.assert_script_done();
    Run {
        code,
        transcript: pam.transcript,
        logs: pam.logs.into_inner(),
        asked: veild.asked,
        stored: pam.stored,
    }
}

fn both_prompts() -> Vec<(MessageStyle, String)> {
    vec![
        (MessageStyle::PromptEchoOff, PASSWORD_PROMPT.to_owned()),
        (MessageStyle::PromptEchoOff, CODE_PROMPT.to_owned()),
    ]
}

fn io_error(kind: io::ErrorKind) -> io::Error {
    io::Error::new(kind, "test")
}

#[test]
fn allow_is_success_after_both_prompts_and_the_request_carries_every_item() {
    let got = run(
        FakePam::answering_both(),
        FakeVeild::answering(|| Ok(Verdict::Allow)),
        &[],
    );
    assert_eq!(got.code, PamCode::Success);
    assert_eq!(got.transcript, both_prompts());
    assert_eq!(got.asked.len(), 1);
    let (socket, request, timeout) = &got.asked[0];
    assert_eq!(socket, Path::new("/run/veil/veild.sock"));
    assert_eq!(*timeout, Duration::from_secs(5));
    assert_eq!(request.user, "alice");
    assert_eq!(request.password.bytes(), PASSWORD.as_bytes());
    assert_eq!(request.code.bytes(), CODE.as_bytes());
    assert_eq!(
        (
            &*request.service,
            &*request.rhost,
            &*request.tty,
            &*request.ruser
        ),
        ("sshd", "192.0.2.7", "ssh", "bob")
    );
    // What the kernel says of this process, for the fresh-code window.
    let facts = veil_proto::process::ProcessFacts::of_this_process();
    assert_eq!(
        (request.audit_session, &request.boot_id, request.ppid),
        (facts.session, &facts.boot_id, facts.ppid)
    );
    assert!(request.ppid.is_some() && request.boot_id.is_some());
    assert_eq!(
        got.stored.len(),
        1,
        "the typed password becomes PAM_AUTHTOK"
    );
    assert_eq!(got.stored[0].expose(), PASSWORD.as_bytes());
    assert!(
        got.logs.is_empty(),
        "success logs nothing without debug: {:?}",
        got.logs
    );
}

#[test]
fn unset_items_are_sent_as_empty_strings() {
    let mut pam = FakePam::answering_both();
    pam.items.retain(|item, _| *item == Item::User);
    let got = run(
        pam,
        FakeVeild::answering(|| Ok(Verdict::Deny)),
        &["socket=/tmp/x.sock", "timeout=1.5"],
    );
    let (socket, request, timeout) = &got.asked[0];
    assert_eq!(socket, Path::new("/tmp/x.sock"));
    assert_eq!(*timeout, Duration::from_millis(1500));
    assert_eq!(
        (
            &*request.service,
            &*request.rhost,
            &*request.tty,
            &*request.ruser
        ),
        ("", "", "", "")
    );
}

/// Every way to fail: the code must be PAM_AUTH_ERR and the transcript
/// must be the same as for every other failure, and as for a success.
fn failure_runs() -> Vec<(&'static str, Run)> {
    let deny = || FakeVeild::answering(|| Ok(Verdict::Deny));
    let conv_failed = || {
        Err(PamFailure::Call {
            call: "the conversation",
            code: PamCode::ConvErr,
        })
    };
    let mut runs = vec![
        ("veild denied", run(FakePam::answering_both(), deny(), &[])),
        (
            "veild missing",
            run(
                FakePam::answering_both(),
                FakeVeild::answering(|| {
                    Err(ClientError::Connect(io_error(io::ErrorKind::NotFound)))
                }),
                &[],
            ),
        ),
        (
            "veild refusing",
            run(
                FakePam::answering_both(),
                FakeVeild::answering(|| {
                    Err(ClientError::Connect(io_error(
                        io::ErrorKind::ConnectionRefused,
                    )))
                }),
                &[],
            ),
        ),
        (
            "veild slow",
            run(
                FakePam::answering_both(),
                FakeVeild::answering(|| Err(ClientError::TimedOut)),
                &[],
            ),
        ),
        (
            "veild garbage",
            run(
                FakePam::answering_both(),
                FakeVeild::answering(|| Err(ClientError::Garbage)),
                &[],
            ),
        ),
        (
            "veild hung up",
            run(
                FakePam::answering_both(),
                FakeVeild::answering(|| {
                    Err(ClientError::Receive(io_error(
                        io::ErrorKind::ConnectionReset,
                    )))
                }),
                &[],
            ),
        ),
        (
            "unknown argument",
            run(FakePam::answering_both(), deny(), &["nodelay"]),
        ),
        (
            "malformed timeout",
            run(FakePam::answering_both(), deny(), &["timeout=forever"]),
        ),
        (
            "timeout out of range",
            run(FakePam::answering_both(), deny(), &["timeout=0.5"]),
        ),
        (
            "relative socket",
            run(FakePam::answering_both(), deny(), &["socket=veild.sock"]),
        ),
        (
            "pam_get_user failed",
            run(
                {
                    let mut pam = FakePam::answering_both();
                    pam.user = Err(PamFailure::Call {
                        call: "pam_get_user",
                        code: PamCode::ConvErr,
                    });
                    pam
                },
                deny(),
                &[],
            ),
        ),
        (
            "password conversation failed",
            run(
                FakePam::new()
                    .expect(PASSWORD_PROMPT, conv_failed())
                    .expect(CODE_PROMPT, Ok(Secret::from(CODE))),
                deny(),
                &[],
            ),
        ),
        (
            "code conversation failed",
            run(
                FakePam::new()
                    .expect(PASSWORD_PROMPT, Ok(Secret::from(PASSWORD)))
                    .expect(CODE_PROMPT, conv_failed()),
                deny(),
                &[],
            ),
        ),
        (
            "both conversations failed",
            run(
                FakePam::new()
                    .expect(PASSWORD_PROMPT, conv_failed())
                    .expect(CODE_PROMPT, conv_failed()),
                deny(),
                &[],
            ),
        ),
    ];
    let mut pam = FakePam::answering_both();
    let mut veild = deny();
    let code = authenticate(&mut pam, &mut veild, [None]);
    pam.assert_script_done();
    runs.push((
        "null argument",
        Run {
            code,
            transcript: pam.transcript,
            logs: pam.logs.into_inner(),
            asked: veild.asked,
            stored: pam.stored,
        },
    ));
    runs
}

#[test]
fn every_failure_is_auth_err_with_the_same_prompts_as_a_success() {
    let success = run(
        FakePam::answering_both(),
        FakeVeild::answering(|| Ok(Verdict::Allow)),
        &[],
    );
    for (name, got) in failure_runs() {
        assert_eq!(got.code, PamCode::AuthErr, "{name}");
        assert_eq!(got.transcript, success.transcript, "{name}");
    }
}

#[test]
fn no_failure_sends_a_message_to_the_user() {
    for (name, got) in failure_runs() {
        assert!(
            got.transcript
                .iter()
                .all(|(style, _)| *style == MessageStyle::PromptEchoOff),
            "{name}: {:?}",
            got.transcript
        );
    }
}

#[test]
fn only_argument_and_user_name_failures_stay_local_and_they_are_logged() {
    for (name, got) in failure_runs() {
        let local = [
            "unknown argument",
            "malformed timeout",
            "timeout out of range",
            "relative socket",
            "pam_get_user failed",
            "null argument",
        ]
        .contains(&name);
        assert_eq!(got.asked.len(), usize::from(!local), "{name}");
        if local || name.contains("conversation") {
            assert!(
                got.logs.iter().any(|(level, _)| *level == Level::Err),
                "{name}: {:?}",
                got.logs
            );
        }
    }
}

/// sshd gives PAM the client's bytes for a real account and its own
/// ASCII junk of the same length for an unknown one: whatever comes
/// back must reach veild, in a request of one and the same size.
#[test]
fn every_reply_shape_reaches_veild_in_a_request_of_one_size() {
    let conv_failed = || {
        Err(PamFailure::Call {
            call: "the conversation",
            code: PamCode::ConvErr,
        })
    };
    let shapes: Vec<(&str, Scripted, Scripted)> = vec![
        (
            "ordinary",
            Ok(Secret::from(PASSWORD)),
            Ok(Secret::from(CODE)),
        ),
        (
            "not UTF-8",
            Ok(Secret::new(vec![0xff])),
            Ok(Secret::new(vec![0xc3, 0x28])),
        ),
        ("empty", Ok(Secret::from("")), Ok(Secret::from(""))),
        (
            "sshd's junk",
            Ok(Secret::from("\x08\n\r\x7fINCORRECT")),
            Ok(Secret::from("\x08\n")),
        ),
        (
            "JSON-heavy, long",
            Ok(Secret::new(vec![b'"'; 7000])),
            Ok(Secret::new(vec![b'\\'; 600])),
        ),
        (
            "just over the cap",
            Ok(Secret::new(vec![b'a'; veil_proto::REPLY_CAP + 1])),
            Ok(Secret::from(CODE)),
        ),
        ("no replies", conv_failed(), conv_failed()),
        (
            "null reply",
            Err(PamFailure::Null("the conversation")),
            Ok(Secret::from(CODE)),
        ),
    ];
    let mut sizes = Vec::new();
    for (name, password, code) in shapes {
        let got = run(
            FakePam::new()
                .expect(PASSWORD_PROMPT, password)
                .expect(CODE_PROMPT, code),
            FakeVeild::answering(|| Ok(Verdict::Deny)),
            &[],
        );
        assert_eq!(got.code, PamCode::AuthErr, "{name}");
        assert_eq!(got.transcript, both_prompts(), "{name}");
        assert_eq!(got.asked.len(), 1, "{name}: veild must be asked");
        sizes.push((name, veil_proto::encode_request(&got.asked[0].1).len()));
    }
    assert!(sizes.iter().all(|(_, n)| *n == sizes[0].1), "{sizes:?}");
}

#[test]
fn a_missing_reply_is_sent_as_missing_never_as_an_empty_password() {
    let got = run(
        FakePam::new()
            .expect(PASSWORD_PROMPT, Err(PamFailure::Null("the conversation")))
            .expect(CODE_PROMPT, Ok(Secret::from(CODE))),
        FakeVeild::answering(|| Ok(Verdict::Allow)),
        &[],
    );
    let request = &got.asked[0].1;
    assert_eq!(request.password.state(), veil_proto::ReplyState::Missing);
    assert!(request.code.is_whole());
    assert!(got.stored.is_empty(), "no reply is no PAM_AUTHTOK");
    // veild's ALLOW is still the only thing that allows; it never
    // allows a missing reply (daemon tests), but the module obeys it.
    assert_eq!(got.code, PamCode::Success);
}

#[test]
fn server_user_is_passed_to_the_client() {
    let mut veild = FakeVeild::answering(|| Ok(Verdict::Deny));
    veild.server_user = "_veild";
    let got = run(FakePam::answering_both(), veild, &["server_user=_veild"]);
    assert_eq!(got.asked.len(), 1);
}

#[test]
fn daemon_trouble_is_logged_but_a_plain_deny_only_with_debug() {
    let runs = failure_runs();
    let logs_of = |wanted: &str| {
        &runs
            .iter()
            .find(|(name, _)| *name == wanted)
            .unwrap()
            .1
            .logs
    };
    assert!(logs_of("veild denied").is_empty());
    for name in ["veild missing", "veild slow", "veild garbage"] {
        let logs = logs_of(name);
        assert_eq!(logs.len(), 1, "{name}: {logs:?}");
        assert_eq!(logs[0].0, Level::Err);
        assert!(
            logs[0]
                .1
                .contains("no verdict from veild at /run/veil/veild.sock"),
            "{}",
            logs[0].1
        );
        assert!(
            logs[0]
                .1
                .contains("user=alice service=sshd rhost=192.0.2.7"),
            "{}",
            logs[0].1
        );
    }
    let debug = run(
        FakePam::answering_both(),
        FakeVeild::answering(|| Ok(Verdict::Deny)),
        &["debug"],
    );
    assert_eq!(debug.logs.len(), 1);
    assert_eq!(debug.logs[0].0, Level::Debug);
    assert!(debug.logs[0].1.starts_with("veild denied"));
}

#[test]
fn no_log_line_holds_a_secret() {
    let mut runs = failure_runs();
    runs.push((
        "debug success",
        run(
            FakePam::answering_both(),
            FakeVeild::answering(|| Ok(Verdict::Allow)),
            &["debug"],
        ),
    ));
    for (name, got) in runs {
        for (_, line) in &got.logs {
            assert!(
                !line.contains(PASSWORD) && !line.contains(CODE),
                "{name}: {line}"
            );
        }
    }
}

/// The log lines use veild's audit escaping (`veil_proto::sanitize`).
#[test]
fn sanitize_escapes_what_could_forge_a_line() {
    assert_eq!(sanitize("alice"), "alice");
    let forged = sanitize("root\nveild: event=attempt user=root outcome=allow");
    assert!(
        !forged.contains(' ') && !forged.contains('\n') && !forged.contains('='),
        "{forged}"
    );
    assert_eq!(sanitize("a\u{1b}[31m"), "a\\x1b[31m");
    assert!(sanitize(&"x".repeat(500)).ends_with("..."));
}

#[test]
fn a_crafted_user_name_cannot_forge_a_log_line() {
    let mut pam = FakePam::answering_both();
    pam.items.insert(
        Item::User,
        "mallory\naudit user=root outcome=allow".to_owned(),
    );
    let got = run(
        pam,
        FakeVeild::answering(|| Err(ClientError::TimedOut)),
        &[],
    );
    assert!(
        got.logs.iter().all(|(_, line)| !line.contains('\n')),
        "{:?}",
        got.logs
    );
}

#[test]
fn bad_arguments_still_ask_both_prompts_and_honour_the_password_source() {
    let got = run(
        FakePam::new().expect(CODE_PROMPT, Ok(Secret::from(CODE))),
        FakeVeild::answering(|| Ok(Verdict::Allow)),
        &["use_first_pass", "socket="],
    );
    assert_eq!(got.code, PamCode::AuthErr);
    assert!(got.asked.is_empty());
    assert!(
        got.logs.iter().any(|(_, line)| line.contains("socket=")),
        "{:?}",
        got.logs
    );
}

#[test]
fn use_first_pass_reuses_the_stored_token_and_asks_only_the_code() {
    let mut pam = FakePam::new().expect(CODE_PROMPT, Ok(Secret::from(CODE)));
    pam.authtok = Some(Secret::from("from pam_unix"));
    let got = run(
        pam,
        FakeVeild::answering(|| Ok(Verdict::Allow)),
        &["use_first_pass"],
    );
    assert_eq!(got.code, PamCode::Success);
    assert_eq!(
        got.transcript,
        vec![(MessageStyle::PromptEchoOff, CODE_PROMPT.to_owned())]
    );
    assert_eq!(got.asked[0].1.password.bytes(), b"from pam_unix");
    assert!(got.stored.is_empty(), "a reused token is not stored again");
}

#[test]
fn use_first_pass_without_a_token_asks_the_code_and_sends_a_missing_password() {
    let with_token = {
        let mut pam = FakePam::new().expect(CODE_PROMPT, Ok(Secret::from(CODE)));
        pam.authtok = Some(Secret::from("wrong"));
        run(
            pam,
            FakeVeild::answering(|| Ok(Verdict::Deny)),
            &["use_first_pass"],
        )
    };
    let without = run(
        FakePam::new().expect(CODE_PROMPT, Ok(Secret::from(CODE))),
        FakeVeild::answering(|| Ok(Verdict::Deny)),
        &["use_first_pass"],
    );
    assert_eq!(without.code, PamCode::AuthErr);
    assert_eq!(without.asked.len(), 1);
    assert_eq!(
        without.asked[0].1.password.state(),
        veil_proto::ReplyState::Missing
    );
    assert_eq!(without.transcript, with_token.transcript);
    assert_eq!(with_token.code, PamCode::AuthErr);
}

#[test]
fn try_first_pass_reuses_a_token_or_prompts_for_one() {
    let mut pam = FakePam::new().expect(CODE_PROMPT, Ok(Secret::from(CODE)));
    pam.authtok = Some(Secret::from("stored"));
    let reused = run(
        pam,
        FakeVeild::answering(|| Ok(Verdict::Allow)),
        &["try_first_pass"],
    );
    assert_eq!(reused.code, PamCode::Success);
    assert_eq!(reused.asked[0].1.password.bytes(), b"stored");

    let prompted = run(
        FakePam::answering_both(),
        FakeVeild::answering(|| Ok(Verdict::Allow)),
        &["try_first_pass"],
    );
    assert_eq!(prompted.code, PamCode::Success);
    assert_eq!(prompted.transcript, both_prompts());
    assert_eq!(prompted.asked[0].1.password.bytes(), PASSWORD.as_bytes());
    assert_eq!(prompted.stored.len(), 1);
}

#[test]
fn factors_code_asks_only_the_code_and_marks_the_request_code_only() {
    let got = run(
        FakePam::new().expect(CODE_PROMPT, Ok(Secret::from(CODE))),
        FakeVeild::answering(|| Ok(Verdict::Allow)),
        &["factors=code"],
    );
    assert_eq!(got.code, PamCode::Success);
    assert_eq!(
        got.transcript,
        vec![(MessageStyle::PromptEchoOff, CODE_PROMPT.to_owned())]
    );
    let request = &got.asked[0].1;
    assert!(request.code_only);
    assert_eq!(request.password.state(), veil_proto::ReplyState::Missing);
    assert_eq!(request.code.bytes(), CODE.as_bytes());
    assert!(got.stored.is_empty(), "no password to hand on");
    // The default stack's request is not code-only, and the frame's size
    // depends on the argument only, never on the replies.
    let both = run(
        FakePam::answering_both(),
        FakeVeild::answering(|| Ok(Verdict::Allow)),
        &[],
    );
    assert!(!both.asked[0].1.code_only);
    let size = |r: &Request| veil_proto::encode_request(r).len();
    let short = run(
        FakePam::new().expect(CODE_PROMPT, Ok(Secret::from("1"))),
        FakeVeild::answering(|| Ok(Verdict::Deny)),
        &["factors=code"],
    );
    assert_eq!(size(request), size(&short.asked[0].1));
}

/// The issue-21 order: the server account is looked up before the first
/// prompt, and the request carries the clock read after the last prompt
/// returned and before anything reached veild. Fails on the old main,
/// where the module looked `server_user` up by name inside `ask`, after
/// the answers (the trait had no lookup of its own) and sent no stamp.
#[test]
fn the_name_lookup_comes_before_the_prompts_and_the_stamp_after_the_last_answer() {
    for (args, prompts) in [(&[][..], 2), (&["factors=code"][..], 1)] {
        EVENTS.with(|e| e.borrow_mut().clear());
        let pam = if prompts == 2 {
            FakePam::answering_both()
        } else {
            FakePam::new().expect(CODE_PROMPT, Ok(Secret::from(CODE)))
        };
        let got = run(pam, FakeVeild::answering(|| Ok(Verdict::Deny)), args);
        assert_eq!(got.code, PamCode::AuthErr);
        let events = EVENTS.with(|e| e.borrow().clone());
        let order: Vec<&str> = events.iter().map(|(what, _)| *what).collect();
        let mut want = vec!["lookup"];
        want.extend(std::iter::repeat_n("prompt", prompts));
        want.push("ask");
        assert_eq!(order, want);
        let last_answer = events[prompts].1;
        let asked = events[prompts + 1].1;
        let stamp = got.asked[0].1.answered;
        assert!(
            last_answer <= stamp && stamp <= asked,
            "{last_answer} <= {stamp} <= {asked}"
        );
    }
}

/// `one_prompt`: one prompt, the whole answer as the password with the
/// code missing and the flag set, in a frame whose size depends on the
/// argument only; later modules get the password part. A bad combination
/// still asks the one prompt and then fails closed without asking veild.
/// Fails on the old main, which had no `one_prompt`.
#[test]
fn one_prompt_asks_once_and_sends_the_whole_answer() {
    let answer = format!("{PASSWORD}{CODE}");
    let got = run(
        FakePam::new().expect(ONE_PROMPT, Ok(Secret::from(answer.as_str()))),
        FakeVeild::answering(|| Ok(Verdict::Allow)),
        &["one_prompt"],
    );
    assert_eq!(got.code, PamCode::Success);
    assert_eq!(
        got.transcript,
        vec![(MessageStyle::PromptEchoOff, ONE_PROMPT.to_owned())]
    );
    let request = &got.asked[0].1;
    assert!(request.one_prompt && !request.code_only);
    assert_eq!(request.password.bytes(), answer.as_bytes());
    assert_eq!(request.code.state(), veil_proto::ReplyState::Missing);
    assert_eq!(got.stored.len(), 1);
    assert_eq!(got.stored[0].expose(), PASSWORD.as_bytes());
    let short = run(
        FakePam::new().expect(ONE_PROMPT, Ok(Secret::from("x"))),
        FakeVeild::answering(|| Ok(Verdict::Deny)),
        &["one_prompt"],
    );
    assert_eq!(short.code, PamCode::AuthErr);
    let size = |r: &Request| veil_proto::encode_request(r).len();
    assert_eq!(size(request), size(&short.asked[0].1));
    let bad = run(
        FakePam::new().expect(ONE_PROMPT, Ok(Secret::from(answer.as_str()))),
        FakeVeild::answering(|| Ok(Verdict::Allow)),
        &["one_prompt", "factors=code"],
    );
    assert_eq!(bad.code, PamCode::AuthErr);
    assert!(bad.asked.is_empty());
}

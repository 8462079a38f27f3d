//! The session phase: what it sends, and that nothing it meets changes
//! the answer to libpam (always PAM_IGNORE).

use std::cell::RefCell;
use std::path::{Path, PathBuf};

use veil_proto::{ClientError, Request, Secret};

use super::*;
use crate::vocab::{MessageStyle, PamFailure};

#[derive(Default)]
struct ItemsOnly {
    user: Option<String>,
    logs: RefCell<Vec<(Level, String)>>,
}

impl Pam for ItemsOnly {
    fn user(&mut self) -> Result<String, PamFailure> {
        panic!("the session phase never calls pam_get_user (it could prompt)")
    }
    fn item(&self, item: Item) -> Option<String> {
        match item {
            Item::User => self.user.clone(),
            Item::Service => Some("sshd".into()),
            _ => None,
        }
    }
    fn authtok(&self) -> Result<Option<Secret>, PamFailure> {
        panic!("no secret in the session phase")
    }
    fn prompt(&mut self, _: MessageStyle, _: &str) -> Result<Secret, PamFailure> {
        panic!("no prompt in the session phase")
    }
    fn set_authtok(&mut self, _: &Secret) -> Result<(), PamFailure> {
        panic!("no secret in the session phase")
    }
    fn log(&self, level: Level, message: &str) {
        self.logs.borrow_mut().push((level, message.to_owned()));
    }
}

struct Notes {
    answer: fn() -> Result<Verdict, ClientError>,
    sent: Vec<(PathBuf, SessionNote, Duration)>,
}

impl Veild for Notes {
    fn server_uid(&mut self, _: &str) -> Option<u32> {
        Some(4242)
    }
    fn ask(
        &mut self,
        _: &Path,
        _: &Request,
        _: Duration,
        _: Option<u32>,
    ) -> Result<Verdict, ClientError> {
        panic!("the session phase asks for no verdict")
    }
    fn note(
        &mut self,
        socket: &Path,
        note: &SessionNote,
        timeout: Duration,
        server_uid: Option<u32>,
    ) -> Result<Verdict, ClientError> {
        assert_eq!(server_uid, Some(4242));
        self.sent.push((socket.to_owned(), note.clone(), timeout));
        (self.answer)()
    }
}

fn run(
    user: Option<&str>,
    args: &[&str],
    answer: fn() -> Result<Verdict, ClientError>,
    op: SessionOp,
) -> (PamCode, ItemsOnly, Notes) {
    let pam = ItemsOnly {
        user: user.map(str::to_owned),
        ..ItemsOnly::default()
    };
    let mut veild = Notes {
        answer,
        sent: Vec::new(),
    };
    let code = note_session(
        &pam,
        &mut veild,
        args.iter().map(|a| Some(a.as_bytes())),
        op,
    );
    (code, pam, veild)
}

#[test]
fn open_and_close_send_the_user_and_service_with_a_short_timeout() {
    for op in [SessionOp::Open, SessionOp::Close] {
        let (code, pam, veild) = run(
            Some("alice"),
            &["timeout=30", "socket=/run/x.sock"],
            || Ok(Verdict::Allow),
            op,
        );
        assert_eq!(code, PamCode::Ignore);
        assert_eq!(veild.sent.len(), 1);
        let (socket, note, timeout) = &veild.sent[0];
        assert_eq!(socket, Path::new("/run/x.sock"));
        // With what the kernel says of this process (pam_loginuid's id).
        let facts = veil_proto::process::ProcessFacts::of_this_process();
        assert_eq!(
            *note,
            SessionNote::new(op, "alice", "sshd").with_process(&facts)
        );
        assert!(note.boot_id.is_some());
        assert_eq!(*timeout, SESSION_TIMEOUT);
        assert!(pam.logs.borrow().is_empty(), "{:?}", pam.logs);
    }
}

#[test]
fn whatever_veild_does_the_answer_is_ignore() {
    let (code, _, _) = run(Some("alice"), &[], || Ok(Verdict::Deny), SessionOp::Open);
    assert_eq!(code, PamCode::Ignore);
    let (code, pam, _) = run(
        Some("alice"),
        &[],
        || Err(ClientError::TimedOut),
        SessionOp::Open,
    );
    assert_eq!(code, PamCode::Ignore);
    assert!(
        pam.logs.borrow()[0].1.contains("no answer from veild"),
        "{:?}",
        pam.logs
    );
}

#[test]
fn no_user_or_bad_arguments_send_nothing() {
    let (code, _, veild) = run(None, &[], || Ok(Verdict::Allow), SessionOp::Open);
    assert_eq!((code, veild.sent.len()), (PamCode::Ignore, 0));
    let (code, pam, veild) = run(
        Some("alice"),
        &["bogus"],
        || Ok(Verdict::Allow),
        SessionOp::Open,
    );
    assert_eq!((code, veild.sent.len()), (PamCode::Ignore, 0));
    assert_eq!(pam.logs.borrow()[0].0, Level::Err);
}

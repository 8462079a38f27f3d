//! A PAM application in a box: a temp config dir with one service file, and
//! `pam_authenticate` with a scripted conversation that records every message.
#![forbid(unsafe_code)]

use std::ffi::CString;
use std::fmt;
use std::path::Path;
use std::time::{Duration, Instant};

use tempfile::TempDir;

use crate::ffi::{
    self, PAM_AUTHTOK, PAM_PROMPT_ECHO_OFF, PAM_PROMPT_ECHO_ON, PAM_RHOST, PAM_RUSER, RawMessage,
    Script,
};
use crate::paths;

/// The service name used in every generated config dir.
pub const SERVICE: &str = "veil-test";

/// A temp PAM config dir holding the service file `veil-test`.
#[derive(Debug)]
pub struct PamStack {
    dir: TempDir,
    text: String,
    service: String,
}

impl PamStack {
    /// A service whose auth stack is exactly `lines` (each a full PAM line).
    pub fn new(lines: &[String]) -> PamStack {
        PamStack::service(SERVICE, lines)
    }

    /// The same, under the PAM service name `service`: a root program
    /// with no remote host is the console only for console login
    /// services (`login`), else its service.
    pub fn service(service: &str, lines: &[String]) -> PamStack {
        let dir = tempfile::Builder::new()
            .prefix("veil-pam-")
            .tempdir()
            .expect("temp PAM dir");
        let text = lines.join("\n") + "\n";
        std::fs::write(dir.path().join(service), &text).expect("write the service file");
        // Linux-PAM (and pam_wrapper) fall back to "other"; make it deny.
        std::fs::write(dir.path().join("other"), "auth required pam_deny.so\n")
            .expect("write the other file");
        PamStack {
            dir,
            text,
            service: service.to_owned(),
        }
    }

    /// `auth required <abs path>/libpam_veil.so <args>` and nothing else.
    pub fn veil(args: &str) -> PamStack {
        PamStack::new(&[veil_line("required", args)])
    }

    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// The service file's text, for messages.
    pub fn text(&self) -> &str {
        &self.text
    }
}

/// One PAM line loading the built module by absolute path.
pub fn veil_line(control: &str, args: &str) -> String {
    format!("auth {control} {} {args}", paths::module().display())
        .trim_end()
        .to_owned()
}

/// The arguments for talking to `socket` with `timeout`, trusting a
/// server that runs as this test's own account (the tests' veild does).
pub fn socket_args(socket: &Path, timeout: &str) -> String {
    format!(
        "socket={} timeout={timeout} server_user={}",
        socket.display(),
        current_user()
    )
}

/// The name of the account running this process.
pub fn current_user() -> String {
    nix::unistd::User::from_uid(nix::unistd::getuid())
        .ok()
        .flatten()
        .map(|u| u.name)
        .expect("the test's own account has a passwd entry")
}

/// How a message was shown.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Style {
    EchoOff,
    EchoOn,
    Error,
    Info,
    Other(i32),
}

impl Style {
    fn from_raw(raw: i32) -> Style {
        match raw {
            PAM_PROMPT_ECHO_OFF => Style::EchoOff,
            PAM_PROMPT_ECHO_ON => Style::EchoOn,
            3 => Style::Error,
            4 => Style::Info,
            other => Style::Other(other),
        }
    }
}

/// One message of the conversation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Exchange {
    pub style: Style,
    pub text: String,
}

impl fmt::Display for Exchange {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let style = match self.style {
            Style::EchoOff => "echo off".to_owned(),
            Style::EchoOn => "echo on".to_owned(),
            Style::Error => "error".to_owned(),
            Style::Info => "info".to_owned(),
            Style::Other(n) => format!("style {n}"),
        };
        write!(f, "{:?} ({style})", self.text)
    }
}

/// What one login attempt looks like from the application.
#[derive(Debug, Clone, Default)]
pub struct Attempt {
    pub user: String,
    pub rhost: Option<String>,
    /// PAM_RUSER, as su and sudo set it: a claim veild logs and never
    /// charges (the requester is the application's real uid).
    pub ruser: Option<String>,
    /// Answers to the prompts, in order.
    pub answers: Vec<String>,
    /// Tried with `pam_set_item(PAM_AUTHTOK)` as the application, before
    /// `pam_authenticate` (Linux-PAM refuses it: only modules may).
    pub app_authtok: Option<String>,
}

impl Attempt {
    pub fn new(user: &str, answers: &[&str]) -> Attempt {
        Attempt {
            user: user.to_owned(),
            answers: answers.iter().map(|a| (*a).to_owned()).collect(),
            ..Attempt::default()
        }
    }

    pub fn from_host(mut self, rhost: &str) -> Attempt {
        self.rhost = Some(rhost.to_owned());
        self
    }

    /// With PAM_RUSER `ruser`, as a front end names its caller (or, like
    /// polkit's helper, the target). This process's real uid is still the
    /// requester.
    pub fn by(mut self, ruser: &str) -> Attempt {
        self.ruser = Some(ruser.to_owned());
        self
    }
}

/// The result of one `pam_authenticate`.
#[derive(Debug, Clone)]
pub struct PamRun {
    /// `pam_authenticate`'s return code.
    pub code: i32,
    /// Every message the module sent through the conversation, in order.
    pub transcript: Vec<Exchange>,
    /// Answers the conversation was scripted with but never asked for.
    pub unused_answers: usize,
    /// The return code of the application's `pam_set_item(PAM_AUTHTOK)`, when tried.
    pub app_authtok_code: Option<i32>,
    pub elapsed: Duration,
}

impl PamRun {
    pub fn code_name(&self) -> &'static str {
        code_name(self.code)
    }

    /// The transcript as one line, e.g. `"Password: " (echo off) | ...`.
    pub fn prompts(&self) -> String {
        self.transcript
            .iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>()
            .join(" | ")
    }
}

/// Runs `pam_start_confdir` + `pam_authenticate` + `pam_end` for one attempt.
pub fn authenticate(stack: &PamStack, attempt: &Attempt) -> PamRun {
    let confdir = c_string(&stack.dir().to_string_lossy());
    let service = c_string(&stack.service);
    let user = c_string(&attempt.user);
    let mut items = Vec::new();
    if let Some(rhost) = &attempt.rhost {
        items.push((PAM_RHOST, c_string(rhost)));
    }
    if let Some(ruser) = &attempt.ruser {
        items.push((PAM_RUSER, c_string(ruser)));
    }
    if let Some(token) = &attempt.app_authtok {
        items.push((PAM_AUTHTOK, c_string(token)));
    }
    let mut script = Script {
        answers: attempt.answers.iter().cloned().collect(),
        seen: Vec::new(),
    };
    let started = Instant::now();
    let raw = ffi::run_authenticate(&confdir, &service, Some(&user), &items, &mut script);
    let elapsed = started.elapsed();
    assert_eq!(
        raw.start,
        0,
        "pam_start_confdir failed ({}) for:\n{}",
        code_name(raw.start),
        stack.text()
    );
    assert!(
        raw.set_items
            .iter()
            .all(|(item, rc)| *item == PAM_AUTHTOK || *rc == 0),
        "pam_set_item failed: {:?}",
        raw.set_items
    );
    PamRun {
        code: raw.authenticate,
        transcript: script
            .seen
            .into_iter()
            .map(|RawMessage { style, text }| Exchange {
                style: Style::from_raw(style),
                text,
            })
            .collect(),
        unused_answers: script.answers.len(),
        app_authtok_code: raw
            .set_items
            .iter()
            .find(|(item, _)| *item == PAM_AUTHTOK)
            .map(|(_, rc)| *rc),
        elapsed,
    }
}

fn c_string(text: &str) -> CString {
    CString::new(text).expect("no NUL in test strings")
}

/// The symbolic name of a Linux-PAM return code.
pub fn code_name(code: i32) -> &'static str {
    const NAMES: [&str; 32] = [
        "PAM_SUCCESS",
        "PAM_OPEN_ERR",
        "PAM_SYMBOL_ERR",
        "PAM_SERVICE_ERR",
        "PAM_SYSTEM_ERR",
        "PAM_BUF_ERR",
        "PAM_PERM_DENIED",
        "PAM_AUTH_ERR",
        "PAM_CRED_INSUFFICIENT",
        "PAM_AUTHINFO_UNAVAIL",
        "PAM_USER_UNKNOWN",
        "PAM_MAXTRIES",
        "PAM_NEW_AUTHTOK_REQD",
        "PAM_ACCT_EXPIRED",
        "PAM_SESSION_ERR",
        "PAM_CRED_UNAVAIL",
        "PAM_CRED_EXPIRED",
        "PAM_CRED_ERR",
        "PAM_NO_MODULE_DATA",
        "PAM_CONV_ERR",
        "PAM_AUTHTOK_ERR",
        "PAM_AUTHTOK_RECOVERY_ERR",
        "PAM_AUTHTOK_LOCK_BUSY",
        "PAM_AUTHTOK_DISABLE_AGING",
        "PAM_TRY_AGAIN",
        "PAM_IGNORE",
        "PAM_ABORT",
        "PAM_AUTHTOK_EXPIRED",
        "PAM_MODULE_UNKNOWN",
        "PAM_BAD_ITEM",
        "PAM_CONV_AGAIN",
        "PAM_INCOMPLETE",
    ];
    usize::try_from(code)
        .ok()
        .and_then(|i| NAMES.get(i).copied())
        .unwrap_or("(unknown PAM code)")
}

pub const PAM_SUCCESS: i32 = 0;
pub const PAM_AUTH_ERR: i32 = 7;
pub const PAM_BAD_ITEM: i32 = 29;

/// One login through libpam as a login program runs it (pam-login's
/// core): pam_authenticate answering `answers`, then, when it succeeded
/// and `during` is given, pam_open_session, `during`, pam_close_session.
/// Returns the authenticate code and the open and close codes.
pub fn login_session<F: FnOnce()>(
    confdir: &Path,
    service: &str,
    user: &str,
    answers: &[String],
    during: Option<F>,
) -> (i32, Option<(i32, i32)>) {
    let mut script = Script {
        answers: answers.iter().cloned().collect(),
        seen: Vec::new(),
    };
    let (raw, codes) = ffi::run_login(
        &c_string(&confdir.to_string_lossy()),
        &c_string(service),
        Some(&c_string(user)),
        &[],
        &mut script,
        during,
    );
    (raw.authenticate, codes.map(|c| (c.open, c.close)))
}

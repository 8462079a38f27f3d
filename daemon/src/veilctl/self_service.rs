//! `veilctl totp enroll` (no NAME), `veilctl passwd` and `veilctl
//! recovery new` (no NAME): a user, not root, for their own account, through veild's socket. veilctl opens no
//! database here: veild knows the user from the socket's peer
//! credentials and checks the password (and the current code) first.

use std::io::IsTerminal;
use std::time::Duration;

use zeroize::Zeroizing;

use veil_daemon::common::config::PasswordSource;
use veil_daemon::common::totp;
use veil_proto::self_service::{CONFIRM_TRIES, Operation, Refusal, SelfAnswer, SelfRequest};
use veil_proto::{REPLY_CAP, Reply, SelfOutcome};

use crate::Ctx;
use crate::error::{EXIT_REFUSED, Failure};
use crate::input::{read_line_stdin, read_new_password};

/// veild's own account: the socket must be served by it or by root.
const DAEMON_USER: &str = "veil";

/// The one message for every failed check: veild does not say which
/// part was wrong, and neither can veilctl.
const FAILED: &str = "refused: the password or the code is wrong, you are not a veil user on this host, or there were too many failed attempts for now (try again later, or ask your admin)";

/// Where the password and codes come from: the terminal without echo, or
/// standard input, one line each (scripts and tests).
struct Prompter {
    stdin: bool,
}

impl Prompter {
    fn new(stdin: bool) -> Result<Prompter, Failure> {
        if !stdin && !std::io::stdin().is_terminal() {
            return Err(Failure::usage(
                "no terminal to ask the password on; use --password-stdin",
            ));
        }
        Ok(Prompter { stdin })
    }

    fn ask(&self, prompt: &str) -> Result<Zeroizing<String>, Failure> {
        if self.stdin {
            read_line_stdin()
        } else {
            rpassword::prompt_password(prompt)
                .map(Zeroizing::new)
                .map_err(|e| Failure::failed(e.to_string()))
        }
    }
}

/// The calling user's name, refusing root (who names the account).
fn me(root_hint: &str) -> Result<String, Failure> {
    let uid = nix::unistd::getuid();
    if uid.is_root() {
        return Err(Failure::usage(root_hint.to_owned()));
    }
    match nix::unistd::User::from_uid(uid) {
        Ok(Some(user)) => Ok(user.name),
        _ => Err(Failure::failed(format!(
            "uid {uid} has no account name (NSS)"
        ))),
    }
}

/// A password as typed (only the line end is gone).
fn password(text: &str) -> Reply {
    Reply::given(text.as_bytes().to_vec())
}

/// A code, without the spaces around it.
fn code(text: &str) -> Reply {
    Reply::given(text.trim().as_bytes().to_vec())
}

/// One request to veild, waiting past its failure delay.
fn ask(ctx: &Ctx, request: &SelfRequest) -> Result<SelfAnswer, Failure> {
    let server_uid = nix::unistd::User::from_name(DAEMON_USER)
        .ok()
        .flatten()
        .map(|u| u.uid.as_raw());
    let timeout = Duration::from_millis(ctx.config.failure_delay_ms) + Duration::from_secs(30);
    match veil_proto::ask_self(&ctx.config.socket, request, timeout, server_uid) {
        Ok(SelfOutcome::Answer(SelfAnswer::Refused { reason })) => Err(refusal(reason)),
        Ok(SelfOutcome::Answer(answer)) => Ok(answer),
        Ok(SelfOutcome::NotServed) => Err(Failure::failed(
            "veild did not serve the request (it is too busy, or an older version without this self-service operation: restart it after an upgrade)",
        )),
        Err(e) => Err(Failure::failed(format!(
            "{e} ({})",
            ctx.config.socket.display()
        ))),
    }
}

fn refusal(reason: Refusal) -> Failure {
    Failure::refused(match reason {
        Refusal::WeakPassword { why } => {
            // veild's sentence (libpwquality's); no control characters
            // reach the terminal, whoever answered on the socket.
            let why: String = why.chars().filter(|c| !c.is_control()).take(256).collect();
            return Failure::failed(format!("BAD PASSWORD: {why}; nothing changed"));
        }
        Refusal::RootPeer => {
            "veild serves this to users other than root; root names the user: veilctl totp enroll NAME, veilctl user passwd NAME, veilctl recovery new NAME"
        }
        Refusal::SystemPasswords => {
            "this host checks the system's passwords ([password] source = \"system\"): change yours with passwd"
        }
        Refusal::BadNewPassword => "the new password is empty or too long; nothing changed",
        Refusal::Busy => "too many enrolments are pending on this host; try again in a few minutes",
        Refusal::Error => "veild could not save the change (its log says why; ask your admin)",
        Refusal::NoSecret => {
            "recovery codes stand in for a TOTP code, and you have no active TOTP secret: enrol first: veilctl totp enroll"
        }
    })
}

/// `veilctl totp enroll` as a user: password and current code, then the
/// new secret (QR code, URI), active once one of its codes is typed.
pub fn enrol(ctx: &Ctx, password_stdin: bool, no_qr: bool) -> Result<(), Failure> {
    let name = me("as root, name the user: veilctl totp enroll NAME")?;
    let input = Prompter::new(password_stdin)?;
    let mut begin = SelfRequest::new(Operation::EnrolBegin, &name);
    begin.password = password(&input.ask("Password: ")?);
    begin.code = code(&input.ask("Current verification code (Enter if you have none yet): ")?);
    let (secret, ticket) = match ask(ctx, &begin)? {
        SelfAnswer::Challenge { secret, ticket, .. } => (secret, ticket),
        SelfAnswer::Failed => return Err(Failure::failed(FAILED)),
        other => {
            return Err(Failure::failed(format!(
                "unexpected answer from veild: {other:?}"
            )));
        }
    };
    drop(begin);
    let raw = totp::from_base32(secret.expose())
        .ok_or_else(|| Failure::failed("veild sent a secret that is not base32"))?;
    crate::steps::show_enrolment(&ctx.config, &name, &raw, no_qr)?;
    for _ in 0..CONFIRM_TRIES {
        let typed = input.ask("Code from the app: ")?;
        if typed.trim().is_empty() && password_stdin {
            break;
        }
        let mut confirm = SelfRequest::new(Operation::EnrolConfirm, &name);
        confirm.code = code(&typed);
        confirm.ticket = ticket.clone();
        match ask(ctx, &confirm)? {
            SelfAnswer::Done => {
                eprintln!("veilctl: TOTP active for {name}");
                return Ok(());
            }
            _ => eprintln!("veilctl: that code was not accepted; check the phone's clock"),
        }
    }
    Err(Failure::failed(
        "no code confirmed the new secret; it was not activated (a secret you had stays active)",
    ))
}

/// `veilctl passwd`: a `source = "veil"` user's own password.
pub fn passwd(ctx: &Ctx, password_stdin: bool) -> Result<(), Failure> {
    if ctx.config.password.source == PasswordSource::System {
        return Err(Failure::new(
            EXIT_REFUSED,
            "this host checks the system's passwords ([password] source = \"system\"): change yours with passwd",
        ));
    }
    let name = me("as root, name the user: veilctl user passwd NAME")?;
    let input = Prompter::new(password_stdin)?;
    let mut request = SelfRequest::new(Operation::Passwd, &name);
    request.password = password(&input.ask("Current password: ")?);
    request.code = code(&input.ask("Verification code (Enter if you have none): ")?);
    let new = read_new_password(password_stdin)?;
    if new.len() > REPLY_CAP {
        return Err(Failure::failed(format!(
            "a password longer than {REPLY_CAP} bytes cannot log in; nothing changed"
        )));
    }
    request.new_password = Reply::given(new.as_bytes().to_vec());
    match ask(ctx, &request)? {
        SelfAnswer::Done => {
            eprintln!("veilctl: password of {name} changed");
            Ok(())
        }
        SelfAnswer::Failed => Err(Failure::failed(FAILED)),
        other => Err(Failure::failed(format!(
            "unexpected answer from veild: {other:?}"
        ))),
    }
}

/// `veilctl recovery new` as a user: password and current code (or one
/// of the old recovery codes), then ten new codes, shown once.
pub fn recovery_new(ctx: &Ctx, password_stdin: bool) -> Result<(), Failure> {
    let name = me("as root, name the user: veilctl recovery new NAME")?;
    let input = Prompter::new(password_stdin)?;
    let mut request = SelfRequest::new(Operation::RecoveryNew, &name);
    request.password = password(&input.ask("Password: ")?);
    request.code = code(&input.ask("Verification code (or a recovery code): ")?);
    match ask(ctx, &request)? {
        SelfAnswer::Codes { codes } => {
            drop(request);
            let shown: Vec<&str> = codes.iter().map(|c| c.expose()).collect();
            crate::steps::show_codes(&name, &shown)
        }
        SelfAnswer::Failed => Err(Failure::failed(FAILED)),
        other => Err(Failure::failed(format!(
            "unexpected answer from veild: {other:?}"
        ))),
    }
}

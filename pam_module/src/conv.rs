//! The conversation: the two prompts, always in the same order, asked before
//! anything about the account is known.
#![forbid(unsafe_code)]

use veil_proto::Reply;

use crate::args::{Factors, PasswordSource};
use crate::handle::Pam;
use crate::vocab::MessageStyle;

/// The first prompt (echo off), unless the password comes from an earlier module.
pub const PASSWORD_PROMPT: &str = "Password: ";
/// The second prompt (echo off), asked every time.
pub const CODE_PROMPT: &str = "Verification code: ";
/// With `one_prompt`, the only prompt (echo off): the password followed
/// by the code, or by a space and a recovery code.
pub const ONE_PROMPT: &str = "Password and verification code: ";

/// What the person (or an earlier module) supplied. Whatever it is, it
/// goes to veild: nothing here may end the attempt early (see
/// [`ask_credentials`]).
#[derive(Debug)]
pub struct Credentials {
    pub password: Reply,
    /// The password was typed at veil's own prompt (so it is offered to
    /// later modules as PAM_AUTHTOK).
    pub typed: bool,
    pub code: Reply,
    /// Why a reply is missing, for the administrator's log only.
    pub problems: Vec<String>,
}

/// Asks for the password (per `source`) and then, always, for the code.
///
/// Every reply becomes a [`Reply`] and is sent to veild, whatever its bytes
/// or length, and a failed prompt becomes [`Reply::missing`]: sshd answers
/// an unknown account's prompts with its own junk of the same length, so
/// any local decision on a reply would single out the real accounts. A
/// failed password prompt does not stop the code prompt: the transcript is
/// the same for every attempt. With `use_first_pass` and no stored token
/// the password prompt is not asked (that is what the option means), which
/// depends on the stack, never on the account.
///
/// With `factors=code` only the code is asked (the argument is the
/// stack's, never the account's), and the password is sent as missing.
///
/// With `one_prompt` only [`ONE_PROMPT`] is asked, whatever the other
/// arguments say; the whole answer is sent as the password and the code
/// as missing, and veild splits it.
pub fn ask_credentials(
    pam: &mut impl Pam,
    source: PasswordSource,
    factors: Factors,
    one_prompt: bool,
) -> Credentials {
    let mut problems = Vec::new();
    if one_prompt {
        let (password, typed) = match pam.prompt(MessageStyle::PromptEchoOff, ONE_PROMPT) {
            Ok(secret) => (Reply::given(secret.into_bytes()), true),
            Err(e) => {
                problems.push(format!("cannot read the password and code: {e}"));
                (Reply::missing(), false)
            }
        };
        return Credentials {
            password,
            typed,
            code: Reply::missing(),
            problems,
        };
    }
    if factors == Factors::Code {
        return Credentials {
            password: Reply::missing(),
            typed: false,
            code: ask_code(pam, &mut problems),
            problems,
        };
    }
    let stored = match source {
        PasswordSource::Prompt => Ok(None),
        PasswordSource::TryFirstPass | PasswordSource::UseFirstPass => pam.authtok(),
    };
    let (password, typed) = match (source, stored) {
        (_, Ok(Some(secret))) => (Reply::given(secret.into_bytes()), false),
        (PasswordSource::UseFirstPass, Ok(None)) => {
            problems.push("use_first_pass, but no earlier module set a password".to_owned());
            (Reply::missing(), false)
        }
        (PasswordSource::UseFirstPass, Err(e)) => {
            problems.push(format!("cannot read PAM_AUTHTOK: {e}"));
            (Reply::missing(), false)
        }
        // Prompt, or try_first_pass with nothing (or nothing readable) stored.
        (_, _) => match pam.prompt(MessageStyle::PromptEchoOff, PASSWORD_PROMPT) {
            Ok(secret) => (Reply::given(secret.into_bytes()), true),
            Err(e) => {
                problems.push(format!("cannot read the password: {e}"));
                (Reply::missing(), false)
            }
        },
    };
    let code = ask_code(pam, &mut problems);
    Credentials {
        password,
        typed,
        code,
        problems,
    }
}

fn ask_code(pam: &mut impl Pam, problems: &mut Vec<String>) -> Reply {
    match pam.prompt(MessageStyle::PromptEchoOff, CODE_PROMPT) {
        Ok(secret) => Reply::given(secret.into_bytes()),
        Err(e) => {
            problems.push(format!("cannot read the verification code: {e}"));
            Reply::missing()
        }
    }
}

//! The conversation: the two prompts, always in the same order, asked before
//! anything about the account is known.
#![forbid(unsafe_code)]

use veil_proto::Reply;

use crate::args::PasswordSource;
use crate::pam::Pam;

/// The first prompt (echo off), unless the password comes from an earlier module.
pub const PASSWORD_PROMPT: &str = "Password: ";
/// The second prompt (echo off), asked every time.
pub const CODE_PROMPT: &str = "Verification code: ";

/// Linux-PAM message styles, total over C ints.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MessageStyle {
    PromptEchoOff,
    PromptEchoOn,
    ErrorMsg,
    TextInfo,
    RadioType,
    BinaryPrompt,
    Unknown(i32),
}

impl MessageStyle {
    pub fn from_raw(raw: i32) -> MessageStyle {
        match raw {
            pam::constants::PAM_PROMPT_ECHO_OFF => MessageStyle::PromptEchoOff,
            pam::constants::PAM_PROMPT_ECHO_ON => MessageStyle::PromptEchoOn,
            pam::constants::PAM_ERROR_MSG => MessageStyle::ErrorMsg,
            pam::constants::PAM_TEXT_INFO => MessageStyle::TextInfo,
            pam::constants::PAM_RADIO_TYPE => MessageStyle::RadioType,
            BINARY_PROMPT => MessageStyle::BinaryPrompt,
            other => MessageStyle::Unknown(other),
        }
    }

    pub fn to_raw(self) -> i32 {
        match self {
            MessageStyle::PromptEchoOff => pam::constants::PAM_PROMPT_ECHO_OFF,
            MessageStyle::PromptEchoOn => pam::constants::PAM_PROMPT_ECHO_ON,
            MessageStyle::ErrorMsg => pam::constants::PAM_ERROR_MSG,
            MessageStyle::TextInfo => pam::constants::PAM_TEXT_INFO,
            MessageStyle::RadioType => pam::constants::PAM_RADIO_TYPE,
            MessageStyle::BinaryPrompt => BINARY_PROMPT,
            MessageStyle::Unknown(raw) => raw,
        }
    }
}

/// `PAM_BINARY_PROMPT` (Linux-PAM extension; not public in pam-bindings).
const BINARY_PROMPT: i32 = 7;

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
pub fn ask_credentials(pam: &mut impl Pam, source: PasswordSource) -> Credentials {
    let mut problems = Vec::new();
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
    let code = match pam.prompt(MessageStyle::PromptEchoOff, CODE_PROMPT) {
        Ok(secret) => Reply::given(secret.into_bytes()),
        Err(e) => {
            problems.push(format!("cannot read the verification code: {e}"));
            Reply::missing()
        }
    };
    Credentials {
        password,
        typed,
        code,
        problems,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_message_style_round_trips() {
        for raw in (-100..100).chain([i32::MIN, i32::MAX]) {
            assert_eq!(MessageStyle::from_raw(raw).to_raw(), raw, "{raw}");
        }
        assert_eq!(MessageStyle::from_raw(1), MessageStyle::PromptEchoOff);
        assert_eq!(MessageStyle::from_raw(2), MessageStyle::PromptEchoOn);
        assert_eq!(MessageStyle::from_raw(3), MessageStyle::ErrorMsg);
        assert_eq!(MessageStyle::from_raw(4), MessageStyle::TextInfo);
        assert_eq!(MessageStyle::from_raw(5), MessageStyle::RadioType);
        assert_eq!(MessageStyle::from_raw(7), MessageStyle::BinaryPrompt);
        assert_eq!(MessageStyle::from_raw(6), MessageStyle::Unknown(6));
    }
}

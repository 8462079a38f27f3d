//! The conversation: the two prompts, always in the same order, asked before
//! anything about the account is known.
#![forbid(unsafe_code)]

use veil_proto::Secret;

use crate::args::PasswordSource;
use crate::pam::{Pam, PamFailure};

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

/// What the person (or an earlier module) supplied.
#[derive(Debug)]
pub struct Credentials {
    pub password: Result<Password, PasswordError>,
    pub code: Result<Secret, PamFailure>,
}

/// The password, and whether it was typed at veil's own prompt (and so
/// should be offered to later modules as PAM_AUTHTOK).
#[derive(Debug)]
pub struct Password {
    pub secret: Secret,
    pub typed: bool,
}

#[derive(Debug)]
pub enum PasswordError {
    /// `use_first_pass` and no PAM_AUTHTOK was set.
    NoStoredToken,
    Failed(PamFailure),
}

/// Asks for the password (per `source`) and then, always, for the code.
///
/// A failed password prompt does not stop the code prompt: the transcript
/// must be the same for every failure, and it never depends on the account.
/// With `use_first_pass` and no stored token the password prompt is not
/// asked (that is what the option means) but the code prompt still is, so
/// the person sees the same single prompt as every other attempt under that
/// configuration; the attempt is then denied without asking veild.
pub fn ask_credentials(pam: &mut impl Pam, source: PasswordSource) -> Credentials {
    let stored = match source {
        PasswordSource::Prompt => Ok(None),
        PasswordSource::TryFirstPass | PasswordSource::UseFirstPass => pam.authtok(),
    };
    let password = match (source, stored) {
        (_, Ok(Some(secret))) => Ok(Password {
            secret,
            typed: false,
        }),
        (PasswordSource::UseFirstPass, Ok(None)) => Err(PasswordError::NoStoredToken),
        (PasswordSource::UseFirstPass, Err(e)) => Err(PasswordError::Failed(e)),
        // Prompt, or try_first_pass with nothing (or nothing readable) stored.
        (_, _) => pam
            .prompt(MessageStyle::PromptEchoOff, PASSWORD_PROMPT)
            .map(|secret| Password {
                secret,
                typed: true,
            })
            .map_err(PasswordError::Failed),
    };
    let code = pam.prompt(MessageStyle::PromptEchoOff, CODE_PROMPT);
    Credentials { password, code }
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

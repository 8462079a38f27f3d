//! The small interface the authentication logic needs from libpam: the
//! [`Pam`] trait. The FFI handle implements it; unit tests implement it with
//! a scripted fake.
#![forbid(unsafe_code)]

use veil_proto::Secret;

use crate::vocab::{Item, Level, MessageStyle, PamFailure};

/// What `pam_sm_authenticate` needs from libpam.
pub trait Pam {
    /// `pam_get_user`: the user name (libpam may itself prompt for it).
    fn user(&mut self) -> Result<String, PamFailure>;
    /// `pam_get_item` for a string item; `None` when unset.
    fn item(&self, item: Item) -> Option<String>;
    /// `PAM_AUTHTOK` as left by an earlier module; `None` when unset.
    fn authtok(&self) -> Result<Option<Secret>, PamFailure>;
    /// Asks one question through the application's conversation.
    fn prompt(&mut self, style: MessageStyle, text: &str) -> Result<Secret, PamFailure>;
    /// Stores `PAM_AUTHTOK` for the modules stacked after this one.
    fn set_authtok(&mut self, token: &Secret) -> Result<(), PamFailure>;
    /// `pam_syslog`. Callers pass text that holds no secret.
    fn log(&self, level: Level, message: &str);
}

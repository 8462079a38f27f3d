//! `pam_sm_open_session` and `pam_sm_close_session`: tell veild that the
//! login session of PAM_USER opened or closed, for the fresh-code window.
//! Placed after `session required pam_loginuid.so`, which gives the
//! process its audit session id; the note carries that id and the boot id
//! as the kernel gives them to this process (`veil_proto::process`), and
//! veild believes them from a root peer only.
//!
//! Nothing here can fail, hang or change a login: every outcome is
//! `PAM_IGNORE`, the note is sent with a short timeout, and what veild
//! answered is only logged (with `debug`, or when veild was unreachable).
#![forbid(unsafe_code)]

use std::time::Duration;

use veil_proto::Verdict;
use veil_proto::process::ProcessFacts;
use veil_proto::sanitize::sanitize;
use veil_proto::session::{SessionNote, SessionOp};

use crate::args;
use crate::client::Veild;
use crate::handle::Pam;
use crate::vocab::{Item, Level, PamCode};

/// The longest a session phase waits for veild, whatever `timeout=` says.
pub const SESSION_TIMEOUT: Duration = Duration::from_secs(2);

/// Sends one note; always `PAM_IGNORE`.
pub fn note_session<'a>(
    pam: &impl Pam,
    veild: &mut impl Veild,
    raw_args: impl IntoIterator<Item = Option<&'a [u8]>>,
    op: SessionOp,
) -> PamCode {
    let parsed = args::parse(raw_args);
    if !parsed.problems.is_empty() {
        for problem in &parsed.problems {
            pam.log(
                Level::Err,
                &format!(
                    "module argument: {problem}; session {} not noted",
                    op.as_str()
                ),
            );
        }
        return PamCode::Ignore;
    }
    let args = parsed.args;
    // PAM_USER as authenticated: never pam_get_user, which could prompt.
    let Some(user) = pam.item(Item::User).filter(|u| !u.is_empty()) else {
        if args.debug {
            pam.log(Level::Debug, "session: no PAM_USER; nothing noted");
        }
        return PamCode::Ignore;
    };
    let service = pam.item(Item::Service).unwrap_or_default();
    let note = SessionNote::new(op, &user, &service).with_process(&ProcessFacts::of_this_process());
    let server_uid = veild.server_uid(&args.server_user);
    let timeout = args.timeout.min(SESSION_TIMEOUT);
    let (level, text) = match veild.note(&args.socket, &note, timeout, server_uid) {
        Ok(Verdict::Allow) => (Level::Debug, "veild noted it".to_owned()),
        Ok(Verdict::Deny) => (
            Level::Debug,
            "veild did not bind it (its log says why)".into(),
        ),
        Err(e) => (Level::Err, format!("no answer from veild: {e}")),
    };
    if level == Level::Err || args.debug {
        pam.log(
            level,
            &format!(
                "session {} (user={} service={}): {text}",
                op.as_str(),
                sanitize(&user),
                sanitize(&service)
            ),
        );
    }
    PamCode::Ignore
}

#[cfg(test)]
mod tests;

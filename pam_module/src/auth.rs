//! `pam_sm_authenticate`'s logic, generic over [`Pam`] and [`Veild`].
//!
//! The order never changes: parse the arguments, get the user, resolve
//! the trusted server account, ask the password and the code, stamp the
//! moment of the last answer, and only then decide. Between that stamp
//! and the verdict nothing depends on the account or asks the name
//! service: veild's failure deadline starts at the stamp. No message is
//! ever sent to the person on failure, and every failure is `PAM_AUTH_ERR`.
#![forbid(unsafe_code)]

use veil_proto::process::ProcessFacts;
use veil_proto::sanitize::sanitize;
use veil_proto::{Request, Secret, Verdict};
use veil_proto::{monotonic, one_prompt};

use crate::args::{self, Args};
use crate::client::Veild;
use crate::conv::{self, Credentials};
use crate::handle::Pam;
use crate::outcome::{Denial, Outcome, pam_code};
use crate::vocab::{Item, Level, PamCode};

/// Runs one authentication. `raw_args` are the module arguments; `None`
/// stands for a null pointer.
pub fn authenticate<'a>(
    pam: &mut impl Pam,
    veild: &mut impl Veild,
    raw_args: impl IntoIterator<Item = Option<&'a [u8]>>,
) -> PamCode {
    let parsed = args::parse(raw_args);
    for problem in &parsed.problems {
        pam.log(
            Level::Err,
            &format!("module argument: {problem}; every attempt is denied until it is fixed"),
        );
    }
    let args = parsed.args;
    // Everything the person sees happens here, before any decision.
    let user = pam.user();
    // Before the prompts: where `server_user` misses /etc/passwd, NSS may
    // load a library now, and (sshd having looked up unknown names
    // already) only for real accounts. Here it happens before the stamp.
    let server_uid = veild.server_uid(&args.server_user);
    // What the kernel says of this process (for the fresh-code window),
    // read before the prompts too: it depends on the process only.
    let process = ProcessFacts::of_this_process();
    let credentials = conv::ask_credentials(pam, args.password, args.factors, args.one_prompt);
    let answered = monotonic::now_ns();
    for problem in &credentials.problems {
        pam.log(
            Level::Err,
            &format!("{problem}; veild decides as for any reply"),
        );
    }
    if credentials.typed && credentials.password.is_whole() {
        // Later modules (a keyring) get the password without the code.
        let token = if args.one_prompt {
            one_prompt::password_of(credentials.password.bytes())
        } else {
            Secret::from(credentials.password.bytes())
        };
        if let Err(e) = pam.set_authtok(&token) {
            pam.log(
                Level::Err,
                &format!("cannot store PAM_AUTHTOK for later modules: {e}"),
            );
        }
    }

    // The only local denials; neither can depend on the account (see Denial).
    let outcome = if !parsed.problems.is_empty() {
        Outcome::Denied(Denial::BadArguments)
    } else {
        match user {
            Err(e) => Outcome::Denied(Denial::NoUser(e)),
            Ok(user) => decide(
                pam,
                veild,
                &args,
                user,
                credentials,
                (server_uid, answered, &process),
            ),
        }
    };
    report(pam, &args, &outcome);
    pam_code(&outcome)
}

/// One request to veild, of the same size whatever the replies were.
fn decide(
    pam: &impl Pam,
    veild: &mut impl Veild,
    args: &Args,
    user: String,
    credentials: Credentials,
    (server_uid, answered, process): (Option<u32>, u64, &ProcessFacts),
) -> Outcome {
    let mut request = Request::new(&user, credentials.password, credentials.code);
    request.answered = answered;
    request.service = pam.item(Item::Service).unwrap_or_default();
    request.rhost = pam.item(Item::RHost).unwrap_or_default();
    request.tty = pam.item(Item::Tty).unwrap_or_default();
    request.ruser = pam.item(Item::RUser).unwrap_or_default();
    // Who ran this application: a setuid front end (su, sudo, polkit's
    // helper) keeps its caller's real uid. veild believes it from root only.
    request.ruid = nix::unistd::getuid().as_raw();
    request.code_only = args.factors == args::Factors::Code;
    request.one_prompt = args.one_prompt;
    request.set_process(process);
    match veild.ask(&args.socket, &request, args.timeout, server_uid) {
        Ok(Verdict::Allow) => Outcome::Allowed,
        Ok(Verdict::Deny) => Outcome::Denied(Denial::DaemonDenied),
        Err(e) => Outcome::Denied(Denial::DaemonTrouble(e)),
    }
}

/// Logs the outcome: local failures always (LOG_ERR), veild's own verdicts
/// only with `debug` (veild logs the reason for a DENY itself).
fn report(pam: &impl Pam, args: &Args, outcome: &Outcome) {
    let context = || {
        format!(
            "(user={} service={} rhost={} tty={})",
            sanitize(&pam.item(Item::User).unwrap_or_default()),
            sanitize(&pam.item(Item::Service).unwrap_or_default()),
            sanitize(&pam.item(Item::RHost).unwrap_or_default()),
            sanitize(&pam.item(Item::Tty).unwrap_or_default()),
        )
    };
    let (level, text) = match outcome {
        Outcome::Allowed => (Level::Debug, "veild allowed".to_owned()),
        Outcome::Denied(Denial::DaemonDenied) => (Level::Debug, "veild denied".to_owned()),
        Outcome::Denied(Denial::BadArguments) => {
            (Level::Err, "denied: bad module arguments".to_owned())
        }
        Outcome::Denied(Denial::NoUser(e)) => {
            (Level::Err, format!("denied: cannot get the user name: {e}"))
        }
        Outcome::Denied(Denial::DaemonTrouble(e)) => (
            Level::Err,
            format!(
                "denied: no verdict from veild at {}: {e}",
                sanitize(&args.socket.to_string_lossy())
            ),
        ),
    };
    if level == Level::Err || args.debug {
        pam.log(level, &format!("{text} {}", context()));
    }
}

#[cfg(test)]
mod tests;

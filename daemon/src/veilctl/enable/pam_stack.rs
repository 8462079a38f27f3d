//! The PAM stack edit: which `auth` lines authenticate, the marked veil
//! block that replaces them, and the exact undo. Pure functions over a
//! file's text.

use crate::error::Failure;

/// First line of the block veilctl adds.
pub const BEGIN: &str = "# >>> veil: added by `veilctl enable`; undo with `veilctl disable` <<<";
/// Last line of the block veilctl adds.
pub const END: &str = "# <<< veil";
/// Prefix of each line veilctl commented out.
pub const OFF: &str = "#veil# ";

/// `auth` modules that prepare or set credentials but never decide who
/// gets in and look nothing up by the user's name in their auth step (it
/// returns `PAM_IGNORE`, or, pam_echo, `PAM_SUCCESS` for every name): they
/// stay where they are, but only under a control that cannot grant or
/// skip ([`non_granting_control`]): `auth sufficient pam_echo.so` in front
/// of veil would let everyone in.
pub(super) const KEEP_AUTH: &[&str] = &[
    "pam_faildelay.so",
    "pam_env.so",
    "pam_group.so",
    "pam_keyinit.so",
    "pam_umask.so",
    "pam_mail.so",
    "pam_echo.so",
    "pam_warn.so",
];

/// `auth` modules that set credentials in `pam_setcred` from what their
/// auth step found, and whose auth step looks the user up (pam_cap:
/// getpwnam and the groups, for real names only, a timing leak) and
/// returns `PAM_SUCCESS` for some users. They stay in the stack (their
/// setcred needs the auth step) but are moved behind pam_veil, their line
/// as written, under the same rules as the restrictions.
pub(super) const CREDENTIAL_AUTH: &[&str] = &["pam_cap.so"];

/// `auth` modules that restrict who may authenticate. In front of veil they
/// would leak: each decides on the target user's name before any prompt
/// (and some answer `PAM_USER_UNKNOWN` for unknown names). They are moved
/// behind pam_veil, as `required`, and pam_veil becomes `requisite` so that
/// a failed veil ends the stack before any of them runs: they only ever
/// judge a user who has passed veil.
pub(super) const RESTRICT_AUTH: &[&str] = &[
    "pam_wheel.so",
    "pam_listfile.so",
    "pam_succeed_if.so",
    "pam_access.so",
    "pam_nologin.so",
    "pam_securetty.so",
    "pam_shells.so",
    "pam_time.so",
    "pam_localuser.so",
];

/// `auth` modules whose decision depends only on the caller (root): the
/// answer is the same for every target name, so they stay in front.
pub(super) const CALLER_ONLY_AUTH: &[&str] = &["pam_rootok.so"];

/// `auth` modules that authenticate (or count failures, or hand the
/// password on): veil replaces them, so they are commented out.
pub(super) const AUTHENTICATORS: &[&str] = &[
    "pam_unix.so",
    "pam_deny.so",
    "pam_permit.so",
    "pam_faillock.so",
    "pam_tally2.so",
    "pam_sss.so",
    "pam_ldap.so",
    "pam_krb5.so",
    "pam_winbind.so",
    "pam_systemd_home.so",
    "pam_google_authenticator.so",
    "pam_oath.so",
    "pam_u2f.so",
    "pam_yubico.so",
    "pam_fprintd.so",
    "pam_pkcs11.so",
    "pam_p11.so",
    "pam_radius_auth.so",
    "pam_gnome_keyring.so",
    "pam_kwallet5.so",
    "pam_mount.so",
    "pam_ecryptfs.so",
];

/// Shared auth stacks an `include`/`substack` may name: their lines are
/// authenticators (Debian's common-auth, Red Hat's and Arch's names).
pub(super) const AUTH_STACKS: &[&str] = &[
    "common-auth",
    "system-auth",
    "password-auth",
    "system-login",
    "system-local-login",
    "system-remote-login",
];

/// `@include`d files known to hold no `auth` lines (Debian's common-*).
pub(super) const NON_AUTH_INCLUDES: &[&str] = &[
    "common-account",
    "common-session",
    "common-session-noninteractive",
    "common-password",
];

/// Whether a service file carries veilctl's block.
pub fn is_enabled(text: &str) -> bool {
    text.lines().any(|l| l == BEGIN)
}

/// One logical line of a PAM file: its physical lines (with their line
/// endings) joined by trailing backslashes.
pub(super) fn logical_lines(text: &str) -> Vec<&str> {
    let mut out = Vec::new();
    let mut start = 0;
    let mut pos = 0;
    for physical in text.split_inclusive('\n') {
        pos += physical.len();
        let body = physical.trim_end_matches(['\n', '\r']);
        if !body.ends_with('\\') {
            out.push(&text[start..pos]);
            start = pos;
        }
    }
    if start < text.len() {
        out.push(&text[start..]);
    }
    out
}

/// What a line does to the auth stack.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum AuthRole {
    /// Not an auth line, or one that stays where it is.
    Keep,
    /// Authenticates: commented out.
    Replace,
    /// Restricts who may authenticate, or looks the user up to set
    /// credentials: commented out here and written behind pam_veil as
    /// this line.
    Restrict(String),
    /// An auth line veilctl cannot judge: refused unless `--force`, which
    /// comments it out. The text says why.
    Unknown(String),
}

/// Splits a PAM line into tokens, keeping a bracketed control as one token.
pub(super) fn tokens(line: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut chars = line.chars().peekable();
    while let Some(&c) = chars.peek() {
        if c.is_whitespace() || c == '\\' {
            chars.next();
            continue;
        }
        let mut token = String::new();
        if c == '[' {
            for c in chars.by_ref() {
                token.push(c);
                if c == ']' {
                    break;
                }
            }
        } else {
            while let Some(&c) = chars.peek() {
                if c.is_whitespace() || c == '\\' {
                    break;
                }
                token.push(c);
                chars.next();
            }
        }
        out.push(token);
    }
    out
}

/// The line a restriction gets behind veil: the same type (`auth` or
/// `-auth`), module and arguments, with the control `required`.
pub(super) fn restriction_line(t: &[String]) -> String {
    let mut t = t.to_vec();
    t[1] = "required".into();
    kept_line(&t)
}

/// A control under which a module can only take access away: `required`,
/// `requisite`, or brackets whose actions are all `ok`, `ignore`, `bad` or
/// `die` (old Debian's pam_securetty line). Jumps, `done` and `sufficient`
/// grant or skip, which a module behind veil must not.
pub(super) fn restricting_control(control: &str) -> bool {
    if control == "required" || control == "requisite" {
        return true;
    }
    let Some(inner) = control.strip_prefix('[').and_then(|c| c.strip_suffix(']')) else {
        return false;
    };
    let mut pairs = inner.split_whitespace().peekable();
    pairs.peek().is_some()
        && pairs.all(|pair| {
            pair.split_once('=')
                .is_some_and(|(_, action)| matches!(action, "ok" | "ignore" | "bad" | "die"))
        })
}

/// A control under which a module's answer can neither grant access nor
/// skip the modules after it: `optional`, or any [`restricting_control`].
pub(super) fn non_granting_control(control: &str) -> bool {
    control == "optional" || restricting_control(control)
}

/// The line as it will stand behind veil: tokens joined, control kept.
fn kept_line(t: &[String]) -> String {
    let mut line = format!("{:<10} {:<12} {}", t[0], t[1], t[2]);
    for arg in &t[3..] {
        line.push(' ');
        line.push_str(arg);
    }
    line
}

pub(super) fn auth_role(line: &str) -> Result<AuthRole, Failure> {
    let trimmed = line.trim_start();
    if trimmed.is_empty() || trimmed.starts_with('#') {
        return Ok(AuthRole::Keep);
    }
    let t = tokens(trimmed);
    let Some(kind) = t.first() else {
        return Ok(AuthRole::Keep);
    };
    if kind == "@include" {
        let target = t.get(1).map_or("", String::as_str);
        return if AUTH_STACKS.contains(&target) {
            Ok(AuthRole::Replace)
        } else if NON_AUTH_INCLUDES.contains(&target) {
            Ok(AuthRole::Keep)
        } else {
            Err(Failure::refused(format!(
                "\"@include {0}\" may hold auth lines that veilctl cannot see; if {0} is a service, \
                 enable {0} instead (this file reads its lines from there), else edit this file by hand",
                veil_proto::sanitize::sanitize(target)
            )))
        };
    }
    if !kind.trim_start_matches('-').eq_ignore_ascii_case("auth") {
        return Ok(AuthRole::Keep);
    }
    let control = t.get(1).map_or("", String::as_str);
    let module = t.get(2).map_or("", String::as_str);
    if control == "include" || control == "substack" {
        return Ok(if AUTH_STACKS.contains(&module) {
            AuthRole::Replace
        } else {
            AuthRole::Unknown(format!(
                "{control} of a stack veilctl does not know; if {module} is a service, enable {module} instead"
            ))
        });
    }
    let base = module.rsplit('/').next().unwrap_or(module);
    if base == "pam_veil.so" {
        return Err(Failure::refused(
            "pam_veil.so is already named outside veilctl's block; edit this file by hand",
        ));
    }
    if KEEP_AUTH.contains(&base) {
        return Ok(if non_granting_control(control) {
            AuthRole::Keep
        } else {
            AuthRole::Unknown(format!(
                "{base} with control {control} could let a login past veil or skip it"
            ))
        });
    }
    if CREDENTIAL_AUTH.contains(&base) {
        return Ok(if non_granting_control(control) && t.len() >= 3 {
            AuthRole::Restrict(kept_line(&t))
        } else {
            AuthRole::Unknown(format!(
                "{base} with control {control} could let a login past veil or skip it"
            ))
        });
    }
    if AUTHENTICATORS.contains(&base) {
        return Ok(AuthRole::Replace);
    }
    if CALLER_ONLY_AUTH.contains(&base) {
        return Ok(if control == "sufficient" {
            AuthRole::Keep
        } else {
            AuthRole::Unknown(format!(
                "{base} with control {control} (veilctl keeps it only as sufficient)"
            ))
        });
    }
    if RESTRICT_AUTH.contains(&base) {
        // Only a plain restriction can move: as `sufficient` or with jumps
        // it grants or skips (pam_wheel trust), which is not a restriction.
        return Ok(if restricting_control(control) && t.len() >= 3 {
            AuthRole::Restrict(restriction_line(&t))
        } else {
            AuthRole::Unknown(format!(
                "{base} with control {control} decides more than who may authenticate"
            ))
        });
    }
    Ok(AuthRole::Unknown(format!(
        "{base} is not a module veilctl knows"
    )))
}

/// How to write veil's block.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct StackOptions {
    /// Comment out auth lines veilctl cannot judge instead of refusing.
    pub force: bool,
    /// Arguments for the pam_veil line (e.g. `factors=code`).
    pub veil_args: String,
}

/// The result of [`enable_text`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Enabled {
    pub text: String,
    /// The authenticators now commented out, trimmed, for the report.
    pub replaced: Vec<String>,
    /// The restrictions moved behind veil, as they now read.
    pub moved: Vec<String>,
    /// Lines commented out under `--force`, with the reason.
    pub forced: Vec<String>,
}

/// The pam_veil line of the block.
pub fn veil_line(requisite: bool, args: &str) -> String {
    let control = if requisite { "requisite" } else { "required" };
    let line = format!("auth       {control:<12} pam_veil.so {args}");
    line.trim_end().to_owned()
}

/// Whether `body` is a line veilctl writes into its block.
fn is_block_line(body: &str) -> bool {
    let t = tokens(body);
    let kind = t.first().map_or("", String::as_str);
    let control = t.get(1).map_or("", String::as_str);
    let module = t.get(2).map_or("", String::as_str);
    let base = module.rsplit('/').next().unwrap_or(module);
    (kind == "auth"
        && base == "pam_veil.so"
        && module == base
        && matches!(control, "required" | "requisite"))
        || (matches!(kind, "auth" | "-auth")
            && control == "required"
            && RESTRICT_AUTH.contains(&base))
        || (matches!(kind, "auth" | "-auth")
            && non_granting_control(control)
            && CREDENTIAL_AUTH.contains(&base))
}

/// Rewrites a PAM service file so that pam_veil.so is its only
/// authenticator, with its access restrictions behind it. Refuses a file
/// already enabled, a file with stray veil markers, one without any
/// authenticator to replace, and one whose auth lines veilctl cannot judge
/// (unless `force`).
pub fn enable_text(original: &str, options: &StackOptions) -> Result<Enabled, Failure> {
    if is_enabled(original) {
        return Err(Failure::refused("veil is already enabled here"));
    }
    if original
        .lines()
        .any(|l| l == END || l.starts_with(OFF.trim_end()))
    {
        return Err(Failure::refused(
            "the file holds leftover veil markers (\"#veil#\" or \"# <<< veil\"); restore it by hand first",
        ));
    }
    let eol = if original.contains("\r\n") {
        "\r\n"
    } else {
        "\n"
    };
    let lines = logical_lines(original);
    let mut roles = Vec::with_capacity(lines.len());
    let mut unknown = Vec::new();
    for (n, line) in lines.iter().enumerate() {
        let role = auth_role(line)?;
        if let AuthRole::Unknown(why) = &role {
            unknown.push(format!("line {}: {} ({why})", n + 1, line.trim()));
        }
        roles.push(role);
    }
    if !unknown.is_empty() && !options.force {
        return Err(Failure::refused(format!(
            "auth lines veilctl cannot judge; nothing changed:\n    {}\n\
             veil must be the only authenticator, and a module in front of it that decides on the \
             user's name leaks which names exist. Edit these lines by hand, or pass --force to \
             comment them out.",
            unknown.join("\n    ")
        )));
    }
    let moved: Vec<String> = roles
        .iter()
        .filter_map(|r| match r {
            AuthRole::Restrict(line) => Some(line.clone()),
            _ => None,
        })
        .collect();
    let mut text = String::with_capacity(original.len() + 300);
    let mut replaced = Vec::new();
    let mut block_written = false;
    for (line, role) in lines.iter().zip(&roles) {
        let authenticator = match role {
            AuthRole::Keep => {
                text.push_str(line);
                continue;
            }
            AuthRole::Replace => {
                replaced.push(line.trim().to_owned());
                true
            }
            AuthRole::Restrict(_) | AuthRole::Unknown(_) => false,
        };
        // The block goes where the first authenticator was.
        if authenticator && !block_written {
            block_written = true;
            text.push_str(BEGIN);
            text.push_str(eol);
            text.push_str(&veil_line(!moved.is_empty(), &options.veil_args));
            text.push_str(eol);
            for m in &moved {
                text.push_str(m);
                text.push_str(eol);
            }
            text.push_str(END);
            text.push_str(eol);
        }
        for physical in line.split_inclusive('\n') {
            text.push_str(OFF);
            text.push_str(physical);
        }
    }
    if replaced.is_empty() {
        return Err(Failure::refused(
            "this service has no auth lines to replace (it falls back to /etc/pam.d/other); edit it by hand",
        ));
    }
    let forced = unknown;
    Ok(Enabled {
        text,
        replaced,
        moved,
        forced,
    })
}

/// Undoes [`enable_text`] exactly: drops the block, uncomments the lines.
pub fn disable_text(edited: &str) -> Result<String, Failure> {
    if !is_enabled(edited) {
        return Err(Failure::refused("veil is not enabled here"));
    }
    let mut out = String::with_capacity(edited.len());
    let mut in_block = false;
    let mut blocks = 0;
    for physical in edited.split_inclusive('\n') {
        let body = physical.trim_end_matches(['\n', '\r']);
        if in_block {
            if body == END {
                in_block = false;
            } else if !is_block_line(body) {
                return Err(Failure::refused(
                    "veil's block was edited by hand; restore the backup or edit the file by hand",
                ));
            }
        } else if body == BEGIN {
            in_block = true;
            blocks += 1;
        } else if let Some(rest) = physical.strip_prefix(OFF) {
            out.push_str(rest);
        } else {
            out.push_str(physical);
        }
    }
    if in_block || blocks != 1 {
        return Err(Failure::refused(
            "veil's block is incomplete or repeated; restore the backup or edit the file by hand",
        ));
    }
    Ok(out)
}

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
/// The one authenticator veil leaves in the service.
pub const VEIL_AUTH: &str = "auth       required     pam_veil.so";

/// `auth` modules that gate or prepare but never authenticate; they stay.
pub(super) const KEEP_AUTH: &[&str] = &[
    "pam_nologin.so",
    "pam_faildelay.so",
    "pam_env.so",
    "pam_securetty.so",
    "pam_group.so",
    "pam_shells.so",
    "pam_access.so",
    "pam_time.so",
    "pam_keyinit.so",
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
    /// Not an auth line, or a gate that stays.
    Keep,
    /// Authenticates: commented out.
    Replace,
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
        return if target == "common-auth" {
            Ok(AuthRole::Replace)
        } else if NON_AUTH_INCLUDES.contains(&target) {
            Ok(AuthRole::Keep)
        } else {
            Err(Failure::refused(format!(
                "\"@include {}\" may hold auth lines that veilctl cannot see; edit this file by hand",
                veil_proto::sanitize::sanitize(target)
            )))
        };
    }
    if !kind.trim_start_matches('-').eq_ignore_ascii_case("auth") {
        return Ok(AuthRole::Keep);
    }
    let control = t.get(1).map_or("", String::as_str);
    if control == "include" || control == "substack" {
        return Ok(AuthRole::Replace);
    }
    let module = t.get(2).map_or("", String::as_str);
    let base = module.rsplit('/').next().unwrap_or(module);
    if base == "pam_veil.so" {
        return Err(Failure::refused(
            "pam_veil.so is already named outside veilctl's block; edit this file by hand",
        ));
    }
    if KEEP_AUTH.contains(&base) {
        Ok(AuthRole::Keep)
    } else {
        Ok(AuthRole::Replace)
    }
}

/// The result of [`enable_text`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Enabled {
    pub text: String,
    /// The original lines now commented out, trimmed, for the report.
    pub replaced: Vec<String>,
}

/// Rewrites a PAM service file so that pam_veil.so is its only
/// authenticator. Refuses a file already enabled, a file with stray veil
/// markers, one without any authenticator to replace, and one whose auth
/// lines veilctl cannot judge.
pub fn enable_text(original: &str) -> Result<Enabled, Failure> {
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
    let mut text = String::with_capacity(original.len() + 200);
    let mut replaced = Vec::new();
    for line in logical_lines(original) {
        match auth_role(line)? {
            AuthRole::Keep => text.push_str(line),
            AuthRole::Replace => {
                if replaced.is_empty() {
                    for added in [BEGIN, VEIL_AUTH, END] {
                        text.push_str(added);
                        text.push_str(eol);
                    }
                }
                replaced.push(line.trim().to_owned());
                for physical in line.split_inclusive('\n') {
                    text.push_str(OFF);
                    text.push_str(physical);
                }
            }
        }
    }
    if replaced.is_empty() {
        return Err(Failure::refused(
            "this service has no auth lines to replace (it falls back to /etc/pam.d/other); edit it by hand",
        ));
    }
    Ok(Enabled { text, replaced })
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
            } else if body != VEIL_AUTH {
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

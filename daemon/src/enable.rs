//! `veilctl enable SERVICE` / `veilctl disable SERVICE`: put veil in front of
//! one PAM service, and take it out again, without locking anyone out.
//!
//! Enabling edits `/etc/pam.d/SERVICE` so that `pam_veil.so` is its only
//! authenticator: every `auth` line that authenticates (and `@include
//! common-auth`) is commented out with a `#veil# ` prefix, and one marked
//! block with `auth required pam_veil.so` takes the place of the first one.
//! Gates that do not authenticate (`pam_nologin`, `pam_faildelay`, ...) stay.
//! The edit is exactly reversible ([`disable_text`] undoes it byte for
//! byte) and the original is also copied to a root-only backup directory.
//!
//! Guards: nothing is edited while no user could pass veil (nobody enrolled,
//! or, under `totp.policy = "required"`, nobody with an active TOTP secret);
//! the console (`login`) needs `--console`; for sshd the effective
//! `sshd_config` is read and every setting that would stop sshd from asking
//! veil is named with the exact line to write, and nothing is edited until
//! it is right.
//!
//! The logic is pure functions over file contents; [`enable`] and
//! [`disable`] are the thin I/O layer.

use std::fmt;
use std::fs;
use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use crate::config::{Config, TotpPolicy};
use crate::store::{OpenMode, Store, UserSummary};

pub const DEFAULT_PAM_DIR: &str = "/etc/pam.d";
pub const DEFAULT_SSHD_CONFIG: &str = "/etc/ssh/sshd_config";
/// Root-only: restoring from here must never pick up a file veild (user
/// `veil`) could have written, so it is not under /var/lib/veil.
pub const DEFAULT_BACKUP_DIR: &str = "/etc/veil/pam-backup";

/// First line of the block veilctl adds.
pub const BEGIN: &str = "# >>> veil: added by `veilctl enable`; undo with `veilctl disable` <<<";
/// Last line of the block veilctl adds.
pub const END: &str = "# <<< veil";
/// Prefix of each line veilctl commented out.
pub const OFF: &str = "#veil# ";
/// The one authenticator veil leaves in the service.
pub const VEIL_AUTH: &str = "auth       required     pam_veil.so";

/// `auth` modules that gate or prepare but never authenticate; they stay.
const KEEP_AUTH: &[&str] = &[
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
const NON_AUTH_INCLUDES: &[&str] = &[
    "common-account",
    "common-session",
    "common-session-noninteractive",
    "common-password",
];

/// What went wrong, with the exit status veilctl uses for it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EnableError {
    pub code: u8,
    pub message: String,
}

impl EnableError {
    fn refused(message: impl Into<String>) -> EnableError {
        EnableError {
            code: EXIT_REFUSED,
            message: message.into(),
        }
    }
    fn io(message: impl Into<String>) -> EnableError {
        EnableError {
            code: 1,
            message: message.into(),
        }
    }
}

impl fmt::Display for EnableError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

/// Exit status when a guard refuses: nothing was changed.
pub const EXIT_REFUSED: u8 = 6;

#[derive(Debug, clap::Args)]
pub struct EnableArgs {
    /// PAM service, the file name in /etc/pam.d (sshd, sudo, ...)
    pub service: String,
    /// Directory of the PAM service files
    #[arg(long, value_name = "DIR", default_value = DEFAULT_PAM_DIR)]
    pub pam_dir: PathBuf,
    /// sshd configuration to check (always checked for the service "sshd")
    #[arg(long, value_name = "PATH")]
    pub sshd_config: Option<PathBuf>,
    /// Where the original service file is kept (root only)
    #[arg(long, value_name = "DIR", default_value = DEFAULT_BACKUP_DIR)]
    pub backup_dir: PathBuf,
    /// Also allow the console service `login` (the usual way back in when
    /// veild is down)
    #[arg(long)]
    pub console: bool,
}

#[derive(Debug, clap::Args)]
pub struct DisableArgs {
    /// PAM service, the file name in /etc/pam.d
    pub service: String,
    #[arg(long, value_name = "DIR", default_value = DEFAULT_PAM_DIR)]
    pub pam_dir: PathBuf,
    #[arg(long, value_name = "DIR", default_value = DEFAULT_BACKUP_DIR)]
    pub backup_dir: PathBuf,
}

// ---------------------------------------------------------------- pure logic

/// A PAM service name as a file name in /etc/pam.d.
pub fn check_service_name(service: &str) -> Result<(), EnableError> {
    let ok = !service.is_empty()
        && service.len() <= 64
        && !service.starts_with(['.', '-'])
        && service
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-' | b'+'));
    if !ok {
        return Err(EnableError {
            code: 2,
            message: format!(
                "invalid PAM service name {:?}: use the file name in /etc/pam.d",
                crate::audit::sanitize(service)
            ),
        });
    }
    if service.starts_with("common-") || service == "other" {
        return Err(EnableError::refused(format!(
            "{service} is shared by every service; veil does not edit it (the pam-auth-update profile \"veil\" is the way to put veil in front of every service)"
        )));
    }
    Ok(())
}

/// Whether a service file carries veilctl's block.
pub fn is_enabled(text: &str) -> bool {
    text.lines().any(|l| l == BEGIN)
}

/// One logical line of a PAM file: its physical lines (with their line
/// endings) joined by trailing backslashes.
fn logical_lines(text: &str) -> Vec<&str> {
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
enum AuthRole {
    /// Not an auth line, or a gate that stays.
    Keep,
    /// Authenticates: commented out.
    Replace,
}

/// Splits a PAM line into tokens, keeping a bracketed control as one token.
fn tokens(line: &str) -> Vec<String> {
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

fn auth_role(line: &str) -> Result<AuthRole, EnableError> {
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
            Err(EnableError::refused(format!(
                "\"@include {}\" may hold auth lines that veilctl cannot see; edit this file by hand",
                crate::audit::sanitize(target)
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
        return Err(EnableError::refused(
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
pub fn enable_text(original: &str) -> Result<Enabled, EnableError> {
    if is_enabled(original) {
        return Err(EnableError::refused("veil is already enabled here"));
    }
    if original
        .lines()
        .any(|l| l == END || l.starts_with(OFF.trim_end()))
    {
        return Err(EnableError::refused(
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
        return Err(EnableError::refused(
            "this service has no auth lines to replace (it falls back to /etc/pam.d/other); edit it by hand",
        ));
    }
    Ok(Enabled { text, replaced })
}

/// Undoes [`enable_text`] exactly: drops the block, uncomments the lines.
pub fn disable_text(edited: &str) -> Result<String, EnableError> {
    if !is_enabled(edited) {
        return Err(EnableError::refused("veil is not enabled here"));
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
                return Err(EnableError::refused(
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
        return Err(EnableError::refused(
            "veil's block is incomplete or repeated; restore the backup or edit the file by hand",
        ));
    }
    Ok(out)
}

/// The users who could pass veil today under `policy`.
pub fn able_to_log_in(users: &[UserSummary], policy: TotpPolicy) -> Vec<&str> {
    users
        .iter()
        .filter(|u| u.totp || policy == TotpPolicy::IfEnrolled)
        .map(|u| u.name.as_str())
        .collect()
}

/// One sshd_config directive in the global section.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Directive {
    /// Lower-case keyword.
    pub key: String,
    pub value: String,
    /// `file:line`, for the report.
    pub origin: String,
}

/// Parses one sshd_config file's global section (up to the first `Match`).
/// `Include` comes back as a directive for the caller to expand in place.
/// The second value says whether a `Match` block ended the global section.
pub fn sshd_directives(text: &str, file: &str) -> (Vec<Directive>, bool) {
    let mut out = Vec::new();
    for (n, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let (key, value) = match line.find(|c: char| c.is_whitespace() || c == '=') {
            Some(i) => (
                &line[..i],
                line[i..].trim_start_matches(|c: char| c.is_whitespace() || c == '='),
            ),
            None => (line, ""),
        };
        let key = key.to_ascii_lowercase();
        if key == "match" {
            return (out, true);
        }
        out.push(Directive {
            key,
            value: value.trim().trim_matches('"').to_owned(),
            origin: format!("{file}:{}", n + 1),
        });
    }
    (out, false)
}

/// A change to sshd_config, as the exact line to write.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SshdChange {
    pub line: String,
    /// Where the current value comes from ("default" if unset).
    pub now: String,
    pub why: &'static str,
}

/// What sshd_config needs before veil can be sshd's authenticator.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct SshdAdvice {
    /// Without these sshd never asks veil's two prompts: refuse.
    pub required: Vec<SshdChange>,
    /// Advisable; enabling goes ahead.
    pub advised: Vec<SshdChange>,
}

/// sshd uses the first value it reads for a keyword.
fn effective<'a>(directives: &'a [Directive], keys: &[&str]) -> Option<&'a Directive> {
    directives.iter().find(|d| keys.contains(&d.key.as_str()))
}

fn now_of(d: Option<&Directive>, keyword: &str, default: &str) -> String {
    match d {
        Some(d) => format!("{keyword} {} at {}", d.value, d.origin),
        None => format!("{keyword} unset, default {default}"),
    }
}

fn is_yes(d: Option<&Directive>, default: bool) -> bool {
    d.map_or(default, |d| d.value.eq_ignore_ascii_case("yes"))
}

/// Checks the effective global sshd settings (includes already expanded,
/// in order) for what veil needs: PAM, keyboard-interactive, no password
/// method (sshd would feed the password to both prompts), and says how
/// public keys relate to veil.
pub fn sshd_advice(directives: &[Directive]) -> SshdAdvice {
    let mut advice = SshdAdvice::default();
    let use_pam = effective(directives, &["usepam"]);
    if !is_yes(use_pam, false) {
        advice.required.push(SshdChange {
            line: "UsePAM yes".into(),
            now: now_of(use_pam, "UsePAM", "no"),
            why: "without PAM sshd never asks veil",
        });
    }
    let kbd = effective(
        directives,
        &[
            "kbdinteractiveauthentication",
            "challengeresponseauthentication",
        ],
    );
    if !is_yes(kbd, true) {
        advice.required.push(SshdChange {
            line: "KbdInteractiveAuthentication yes".into(),
            now: now_of(kbd, "KbdInteractiveAuthentication", "yes"),
            why: "veil's two prompts (password, verification code) need keyboard-interactive",
        });
    }
    let methods = effective(directives, &["authenticationmethods"]);
    let lists: Vec<Vec<&str>> = match methods {
        Some(d) if !d.value.eq_ignore_ascii_case("any") => d
            .value
            .split_whitespace()
            .map(|list| list.split(',').collect())
            .collect(),
        _ => Vec::new(),
    };
    let is_kbd = |m: &&str| *m == "keyboard-interactive" || m.starts_with("keyboard-interactive:");
    if !lists.is_empty() && !lists.iter().any(|l| l.iter().any(is_kbd)) {
        advice.required.push(SshdChange {
            line: "AuthenticationMethods keyboard-interactive".into(),
            now: now_of(methods, "AuthenticationMethods", "any"),
            why: "no allowed method list includes keyboard-interactive",
        });
    }
    let password = effective(directives, &["passwordauthentication"]);
    if is_yes(password, true) {
        advice.advised.push(SshdChange {
            line: "PasswordAuthentication no".into(),
            now: now_of(password, "PasswordAuthentication", "yes"),
            why: "sshd's password method answers both of veil's prompts with the password, so it always fails",
        });
    }
    let pubkey = effective(directives, &["pubkeyauthentication"]);
    let kbd_always = !lists.is_empty() && lists.iter().all(|l| l.iter().any(is_kbd));
    if is_yes(pubkey, true) && !kbd_always {
        advice.advised.push(SshdChange {
            line: "AuthenticationMethods publickey,keyboard-interactive".into(),
            now: now_of(pubkey, "PubkeyAuthentication", "yes"),
            why: "a public key logs in without PAM auth, so without veil; require both (or set PubkeyAuthentication no)",
        });
    }
    advice
}

/// The report for an [`SshdAdvice`], one change per line.
pub fn describe_sshd(advice: &SshdAdvice, config: &Path) -> String {
    let mut s = String::new();
    let mut section = |title: &str, changes: &[SshdChange]| {
        if changes.is_empty() {
            return;
        }
        s.push_str(&format!("{title} {}:\n", config.display()));
        for c in changes {
            s.push_str(&format!("    {:<52} # now: {}; {}\n", c.line, c.now, c.why));
        }
    };
    section("required in", &advice.required);
    section("advised in", &advice.advised);
    if !s.is_empty() {
        s.push_str(
            "sshd uses the first value it reads: put these lines before any other setting of the same \
             keyword (an Include at the top counts first), then reload sshd.\n",
        );
    }
    s
}

// ---------------------------------------------------------------- I/O layer

fn read(path: &Path) -> Result<String, EnableError> {
    fs::read_to_string(path).map_err(|e| EnableError::io(format!("{}: {e}", path.display())))
}

/// Reads sshd_config with its `Include`s expanded in place (globs in the
/// last path component, relative paths under /etc/ssh as sshd does).
pub fn load_sshd_config(path: &Path) -> Result<Vec<Directive>, EnableError> {
    fn walk(path: &Path, depth: u8, out: &mut Vec<Directive>) -> Result<bool, EnableError> {
        if depth > 8 {
            return Err(EnableError::io(format!(
                "{}: Include nested too deeply",
                path.display()
            )));
        }
        let text = read(path)?;
        let (directives, matched) = sshd_directives(&text, &path.display().to_string());
        for d in directives {
            if d.key != "include" {
                out.push(d);
                continue;
            }
            for pattern in d.value.split_whitespace() {
                let pattern = if pattern.starts_with('/') {
                    PathBuf::from(pattern)
                } else {
                    Path::new("/etc/ssh").join(pattern)
                };
                for file in glob_last(&pattern)? {
                    if walk(&file, depth + 1, out)? {
                        return Ok(true);
                    }
                }
            }
        }
        Ok(matched)
    }
    let mut out = Vec::new();
    walk(path, 0, &mut out)?;
    Ok(out)
}

/// Expands `*` and `?` in the last component of `pattern`, sorted, as
/// sshd's glob does for `Include dir/*.conf`.
fn glob_last(pattern: &Path) -> Result<Vec<PathBuf>, EnableError> {
    let name = pattern
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    if !name.contains(['*', '?']) {
        return Ok(if pattern.exists() {
            vec![pattern.to_owned()]
        } else {
            Vec::new()
        });
    }
    let dir = pattern.parent().unwrap_or(Path::new("/"));
    let Ok(entries) = fs::read_dir(dir) else {
        return Ok(Vec::new());
    };
    let mut files: Vec<PathBuf> = entries
        .filter_map(Result::ok)
        .filter(|e| wildcard(&name, &e.file_name().to_string_lossy()))
        .map(|e| e.path())
        .collect();
    files.sort();
    Ok(files)
}

fn wildcard(pattern: &str, name: &str) -> bool {
    fn go(p: &[u8], n: &[u8]) -> bool {
        match (p.first(), n.first()) {
            (None, None) => true,
            (Some(b'*'), _) => go(&p[1..], n) || (!n.is_empty() && go(p, &n[1..])),
            (Some(b'?'), Some(_)) => go(&p[1..], &n[1..]),
            (Some(a), Some(b)) if a == b => go(&p[1..], &n[1..]),
            _ => false,
        }
    }
    !name.starts_with('.') && go(pattern.as_bytes(), name.as_bytes())
}

/// Replaces `path` with `text` atomically, keeping its mode and owner.
fn write_like(path: &Path, text: &str, like: &fs::Metadata) -> Result<(), EnableError> {
    let dir = path.parent().unwrap_or(Path::new("."));
    let name = path
        .file_name()
        .map_or_else(|| "service".into(), |n| n.to_string_lossy().into_owned());
    let tmp = dir.join(format!(".{name}.veil-tmp"));
    let fail = |e: std::io::Error| EnableError::io(format!("{}: {e}", tmp.display()));
    let _ = fs::remove_file(&tmp);
    let mut file = fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&tmp)
        .map_err(fail)?;
    let result = (|| {
        file.write_all(text.as_bytes())?;
        std::os::unix::fs::fchown(&file, Some(like.uid()), Some(like.gid()))?;
        file.set_permissions(fs::Permissions::from_mode(like.mode() & 0o7777))?;
        file.sync_all()?;
        fs::rename(&tmp, path)?;
        fs::File::open(dir)?.sync_all()
    })();
    if let Err(e) = result {
        let _ = fs::remove_file(&tmp);
        return Err(EnableError::io(format!("{}: {e}", path.display())));
    }
    Ok(())
}

fn backup_path(dir: &Path, service: &str) -> PathBuf {
    dir.join(service)
}

/// Refuses a backup directory others could write to: its contents become
/// PAM configuration on `disable`.
fn ensure_backup_dir(dir: &Path) -> Result<(), EnableError> {
    if !dir.exists() {
        fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)
            .map_err(|e| EnableError::io(format!("{}: {e}", dir.display())))?;
    }
    check_private(dir)
}

fn check_private(path: &Path) -> Result<(), EnableError> {
    let meta =
        fs::metadata(path).map_err(|e| EnableError::io(format!("{}: {e}", path.display())))?;
    let me = nix::unistd::geteuid().as_raw();
    if meta.mode() & 0o022 != 0 || (meta.uid() != 0 && meta.uid() != me) {
        return Err(EnableError::refused(format!(
            "{} is writable by others or not owned by root; refusing to use it",
            path.display()
        )));
    }
    Ok(())
}

/// `veilctl enable`: the guards, the backup, the edit. Returns the report.
pub fn enable(config: &Config, args: &EnableArgs) -> Result<String, EnableError> {
    let service = args.service.as_str();
    check_service_name(service)?;
    if service == "login" && !args.console {
        return Err(EnableError::refused(
            "login is the console, the way back in when veild is down or a phone is lost; \
             it stays on the system password unless you pass --console",
        ));
    }
    let path = args.pam_dir.join(service);
    let original = read(&path)?;
    if is_enabled(&original) {
        return Ok(format!("veil is already enabled in {}\n", path.display()));
    }
    // Fails here, before anything is written, if the file cannot be handled.
    let edited = enable_text(&original)?;

    // Nobody must be locked out: someone has to be able to pass veil.
    let store = Store::open(&config.database, OpenMode::MustExist).map_err(|e| {
        EnableError::refused(format!(
            "{e}: nobody is enrolled yet; add a user and a TOTP secret first (veilctl user add, veilctl totp enroll)"
        ))
    })?;
    let users = store
        .list_users()
        .map_err(|e| EnableError::io(e.to_string()))?;
    let able = able_to_log_in(&users, config.totp.policy);
    if able.is_empty() {
        return Err(EnableError::refused(match config.totp.policy {
            TotpPolicy::Required => {
                "no user has an active TOTP secret, so nobody could log in: \
                 enrol one first (veilctl user add NAME; veilctl totp enroll NAME)"
            }
            TotpPolicy::IfEnrolled => {
                "no user is enrolled, so nobody could log in: enrol one first (veilctl user add NAME)"
            }
        }));
    }
    let mut report = String::new();
    if let Ok(admin) = std::env::var("SUDO_USER")
        && !admin.is_empty()
        && admin != "root"
        && !able.contains(&admin.as_str())
    {
        report.push_str(&format!(
            "warning: you ({admin}) cannot pass veil yet; enrol yourself before you log out\n"
        ));
    }

    let sshd_config = match (&args.sshd_config, service) {
        (Some(p), _) => Some(p.clone()),
        (None, "sshd") => Some(PathBuf::from(DEFAULT_SSHD_CONFIG)),
        _ => None,
    };
    if let Some(sshd_config) = sshd_config {
        let advice = sshd_advice(&load_sshd_config(&sshd_config)?);
        let text = describe_sshd(&advice, &sshd_config);
        if !advice.required.is_empty() {
            return Err(EnableError::refused(format!(
                "sshd would not ask veil's prompts; nothing changed.\n{text}then run veilctl enable {service} again"
            )));
        }
        report.push_str(&text);
    }

    let meta =
        fs::metadata(&path).map_err(|e| EnableError::io(format!("{}: {e}", path.display())))?;
    ensure_backup_dir(&args.backup_dir)?;
    let backup = backup_path(&args.backup_dir, service);
    write_like(&backup, &original, &meta)?;
    write_like(&path, &edited.text, &meta)?;
    report.push_str(&format!(
        "veil is now the only authenticator of {}; original kept in {}\nreplaced: {}\n\
         users who can log in through veil: {}\n\
         keep this session open and try a login in another one; undo with: veilctl disable {service}\n",
        path.display(),
        backup.display(),
        edited.replaced.join(" | "),
        able.join(", "),
    ));
    Ok(report)
}

/// `veilctl disable`: undoes the edit (keeping later edits of other lines);
/// falls back to the backup if veil's block was damaged.
pub fn disable(args: &DisableArgs) -> Result<String, EnableError> {
    let service = args.service.as_str();
    check_service_name(service)?;
    let path = args.pam_dir.join(service);
    let current = read(&path)?;
    let backup = backup_path(&args.backup_dir, service);
    if !is_enabled(&current) {
        return Ok(format!("veil is not enabled in {}\n", path.display()));
    }
    let meta =
        fs::metadata(&path).map_err(|e| EnableError::io(format!("{}: {e}", path.display())))?;
    let saved = if backup.exists() {
        check_private(&args.backup_dir)?;
        Some(read(&backup)?)
    } else {
        None
    };
    let (restored, how) = match (disable_text(&current), saved) {
        (Ok(text), Some(saved)) if text == saved => (text, "restored the original"),
        (Ok(text), _) => (text, "undid veil's edit (other changes since kept)"),
        (Err(_), Some(saved)) => (saved, "veil's block was damaged: restored the backup"),
        (Err(e), None) => return Err(e),
    };
    write_like(&path, &restored, &meta)?;
    if backup.exists() {
        fs::remove_file(&backup)
            .map_err(|e| EnableError::io(format!("{}: {e}", backup.display())))?;
    }
    let _ = fs::remove_dir(&args.backup_dir);
    Ok(format!(
        "{}: {how}; veil no longer authenticates {service}\n",
        path.display()
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    const SSHD: &str = include_str!("../../packaging/testdata/pam.d-sshd");
    const SUDO: &str = include_str!("../../packaging/testdata/pam.d-sudo");
    const LOGIN: &str = include_str!("../../packaging/testdata/pam.d-login");
    const SSHD_CONFIG: &str = include_str!("../../packaging/testdata/sshd_config-debian");

    fn auth_lines(text: &str) -> Vec<String> {
        text.lines()
            .map(str::trim)
            .filter(|l| l.starts_with("auth") || l.starts_with("@include common-auth"))
            .map(|l| l.split_whitespace().collect::<Vec<_>>().join(" "))
            .collect()
    }

    #[test]
    fn debian_sshd_gets_veil_as_its_only_authenticator() {
        let e = enable_text(SSHD).unwrap();
        assert_eq!(auth_lines(&e.text), vec!["auth required pam_veil.so"]);
        assert_eq!(e.replaced, vec!["@include common-auth"]);
        assert!(e.text.contains("#veil# @include common-auth\n"));
        // Account, session and password stacks are untouched.
        assert!(e.text.contains("@include common-account\n"));
        assert!(e.text.contains("@include common-password\n"));
    }

    #[test]
    fn debian_sudo_gets_veil_where_common_auth_was() {
        let e = enable_text(SUDO).unwrap();
        let veil = e.text.find("pam_veil.so").unwrap();
        assert!(veil < e.text.find("@include common-account").unwrap());
        assert_eq!(auth_lines(&e.text), vec!["auth required pam_veil.so"]);
    }

    #[test]
    fn login_keeps_its_gates_and_loses_its_authenticator() {
        let e = enable_text(LOGIN).unwrap();
        let auth = auth_lines(&e.text);
        assert!(auth.contains(&"auth requisite pam_nologin.so".to_owned()));
        assert!(auth.contains(&"auth optional pam_faildelay.so delay=3000000".to_owned()));
        assert!(auth.contains(&"auth optional pam_group.so".to_owned()));
        assert!(auth.contains(&"auth required pam_veil.so".to_owned()));
        assert!(!auth.iter().any(|l| l.contains("common-auth")));
    }

    #[test]
    fn disable_undoes_enable_byte_for_byte() {
        for original in [
            SSHD,
            SUDO,
            LOGIN,
            "auth sufficient pam_unix.so\nauth required pam_deny.so",
        ] {
            let e = enable_text(original).unwrap();
            assert!(is_enabled(&e.text));
            assert_eq!(disable_text(&e.text).unwrap(), original);
        }
    }

    #[test]
    fn crlf_files_and_continued_lines_round_trip() {
        let original = "#%PAM-1.0\r\nauth required \\\n   pam_unix.so nullok\r\naccount required pam_unix.so\r\n";
        let e = enable_text(original).unwrap();
        assert!(e.text.contains(&format!("{BEGIN}\r\n")));
        assert!(
            e.text
                .contains("#veil# auth required \\\n#veil#    pam_unix.so")
        );
        assert_eq!(disable_text(&e.text).unwrap(), original);
    }

    #[test]
    fn a_sufficient_module_before_veil_is_commented_out_too() {
        let original = "auth sufficient pam_rootok.so\n@include common-auth\n-auth optional pam_gnome_keyring.so\nauth [success=1 default=ignore] pam_sss.so\n";
        let e = enable_text(original).unwrap();
        assert_eq!(auth_lines(&e.text), vec!["auth required pam_veil.so"]);
        assert_eq!(e.replaced.len(), 4);
    }

    #[test]
    fn enabling_twice_or_with_leftover_markers_is_refused() {
        let once = enable_text(SUDO).unwrap().text;
        assert!(enable_text(&once).unwrap_err().message.contains("already"));
        let stray = format!("{SUDO}#veil# auth required pam_unix.so\n");
        assert!(
            enable_text(&stray)
                .unwrap_err()
                .message
                .contains("leftover")
        );
    }

    #[test]
    fn unknown_includes_and_hand_written_veil_lines_are_refused() {
        let err = enable_text("@include my-auth\n").unwrap_err();
        assert_eq!(err.code, EXIT_REFUSED);
        assert!(err.message.contains("my-auth"));
        assert!(
            enable_text("auth required /usr/lib/x86_64-linux-gnu/security/pam_veil.so\n").is_err()
        );
        assert!(enable_text("account required pam_unix.so\n").is_err());
    }

    #[test]
    fn a_damaged_block_is_not_guessed_at() {
        let mut text = enable_text(SUDO).unwrap().text;
        text = text.replace(VEIL_AUTH, "auth sufficient pam_permit.so");
        assert!(disable_text(&text).is_err());
        let cut = enable_text(SUDO).unwrap().text.replace(END, "");
        assert!(disable_text(&cut).is_err());
        assert!(disable_text(SUDO).is_err());
    }

    #[test]
    fn shared_and_odd_service_names_are_refused() {
        for bad in [
            "common-auth",
            "other",
            "../shadow",
            "",
            ".hidden",
            "a/b",
            "-x",
        ] {
            assert!(check_service_name(bad).is_err(), "{bad}");
        }
        for good in ["sshd", "sudo", "veil-e2e-sshd", "login"] {
            check_service_name(good).unwrap();
        }
    }

    fn user(name: &str, totp: bool) -> UserSummary {
        UserSummary {
            name: name.into(),
            totp,
            totp_pending: false,
            created_at: 0,
            updated_at: 0,
            phc: String::new(),
            hash_current: true,
        }
    }

    #[test]
    fn only_users_who_can_pass_veil_count_as_enrolled() {
        let users = [user("alice", false), user("bob", true)];
        assert_eq!(able_to_log_in(&users, TotpPolicy::Required), vec!["bob"]);
        assert_eq!(
            able_to_log_in(&users, TotpPolicy::IfEnrolled),
            vec!["alice", "bob"]
        );
        assert!(able_to_log_in(&users[..1], TotpPolicy::Required).is_empty());
    }

    fn advice(text: &str) -> SshdAdvice {
        sshd_advice(&sshd_directives(text, "sshd_config").0)
    }

    #[test]
    fn debian_default_sshd_config_needs_keyboard_interactive() {
        let a = advice(SSHD_CONFIG);
        assert_eq!(a.required.len(), 1, "{a:?}");
        assert_eq!(a.required[0].line, "KbdInteractiveAuthentication yes");
        assert!(a.required[0].now.contains("sshd_config:"), "{a:?}");
        let text = describe_sshd(&a, Path::new("/etc/ssh/sshd_config"));
        assert!(text.contains("KbdInteractiveAuthentication yes"), "{text}");
        assert!(text.contains("PasswordAuthentication no"), "{text}");
    }

    #[test]
    fn a_veil_ready_sshd_config_has_nothing_required() {
        let a = advice(
            "UsePAM yes\nKbdInteractiveAuthentication yes\nPasswordAuthentication no\nPubkeyAuthentication no\nAuthenticationMethods keyboard-interactive\n",
        );
        assert_eq!(a, SshdAdvice::default());
    }

    #[test]
    fn sshd_takes_the_first_value_and_ignores_match_blocks() {
        let a = advice(
            "usepam=yes\nChallengeResponseAuthentication no\nKbdInteractiveAuthentication yes\nMatch user x\nUsePAM no\n",
        );
        assert_eq!(a.required.len(), 1);
        assert_eq!(a.required[0].line, "KbdInteractiveAuthentication yes");
        let a = advice("UsePAM no\nUsePAM yes\n");
        assert_eq!(a.required[0].line, "UsePAM yes");
    }

    #[test]
    fn authentication_methods_must_allow_keyboard_interactive() {
        let a = advice("UsePAM yes\nAuthenticationMethods publickey password\n");
        assert!(
            a.required
                .iter()
                .any(|c| c.line.starts_with("AuthenticationMethods"))
        );
        let a = advice(
            "UsePAM yes\nAuthenticationMethods publickey,keyboard-interactive:pam\nPasswordAuthentication no\n",
        );
        assert!(a.required.is_empty());
        assert!(a.advised.is_empty(), "{a:?}");
    }

    #[test]
    fn public_keys_bypassing_veil_are_pointed_out() {
        let a = advice("UsePAM yes\nPasswordAuthentication no\n");
        assert!(a.required.is_empty());
        assert_eq!(a.advised.len(), 1);
        assert!(a.advised[0].why.contains("public key"));
    }

    #[test]
    fn includes_are_read_in_place_and_first_value_wins() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path().join("sshd_config.d");
        fs::create_dir(&d).unwrap();
        fs::write(d.join("10-a.conf"), "KbdInteractiveAuthentication no\n").unwrap();
        fs::write(d.join("20-b.conf"), "PasswordAuthentication no\n").unwrap();
        fs::write(d.join("ignored.txt"), "UsePAM no\n").unwrap();
        let main = dir.path().join("sshd_config");
        fs::write(
            &main,
            format!(
                "Include {}/*.conf\nKbdInteractiveAuthentication yes\nUsePAM yes\n",
                d.display()
            ),
        )
        .unwrap();
        let a = sshd_advice(&load_sshd_config(&main).unwrap());
        assert_eq!(a.required.len(), 1, "{a:?}");
        assert!(a.required[0].now.contains("10-a.conf:1"), "{a:?}");
    }

    #[test]
    fn wildcards_match_like_sshd_globs() {
        assert!(wildcard("*.conf", "a.conf"));
        assert!(!wildcard("*.conf", "a.conf.bak"));
        assert!(!wildcard("*.conf", ".hidden.conf"));
        assert!(wildcard("x?", "xy"));
    }

    fn setup(service_text: &str) -> (tempfile::TempDir, Config, PathBuf) {
        let dir = tempfile::tempdir().unwrap();
        let pam = dir.path().join("pam.d");
        fs::create_dir(&pam).unwrap();
        fs::write(pam.join("svc"), service_text).unwrap();
        let config = Config {
            database: dir.path().join("veil.db"),
            ..Config::default()
        };
        (dir, config, pam)
    }

    fn enrol(config: &Config, name: &str, active: bool) {
        let mut store = Store::open(&config.database, OpenMode::CreateIfMissing).unwrap();
        store
            .add_user(name, "$argon2id$v=19$m=8,t=1,p=1$c2FsdHNhbHQ$aGFzaA", 0)
            .unwrap();
        if active {
            store.set_totp_pending(name, &[7; 20], 0).unwrap();
            store.activate_totp(name, -1, 0).unwrap();
        }
    }

    fn enable_args(dir: &Path, pam: &Path) -> EnableArgs {
        EnableArgs {
            service: "svc".into(),
            pam_dir: pam.to_owned(),
            sshd_config: None,
            backup_dir: dir.join("backup"),
            console: false,
        }
    }

    #[test]
    fn enable_refuses_while_nobody_could_log_in_and_changes_nothing() {
        let (dir, config, pam) = setup(SUDO);
        let args = enable_args(dir.path(), &pam);
        let err = enable(&config, &args).unwrap_err();
        assert_eq!(err.code, EXIT_REFUSED);
        assert!(err.message.contains("nobody is enrolled"), "{err}");
        enrol(&config, "alice", false);
        let err = enable(&config, &args).unwrap_err();
        assert!(err.message.contains("no user has an active TOTP"), "{err}");
        assert_eq!(fs::read_to_string(pam.join("svc")).unwrap(), SUDO);
        assert!(!args.backup_dir.exists());
    }

    #[test]
    fn enable_then_disable_restores_the_file_and_its_mode() {
        let (dir, config, pam) = setup(SUDO);
        fs::set_permissions(pam.join("svc"), fs::Permissions::from_mode(0o640)).unwrap();
        enrol(&config, "bob", true);
        let args = enable_args(dir.path(), &pam);
        let report = enable(&config, &args).unwrap();
        assert!(
            report.contains("users who can log in through veil: bob"),
            "{report}"
        );
        let edited = fs::read_to_string(pam.join("svc")).unwrap();
        assert!(is_enabled(&edited));
        assert_eq!(
            fs::read_to_string(args.backup_dir.join("svc")).unwrap(),
            SUDO
        );
        assert_eq!(
            fs::metadata(pam.join("svc")).unwrap().mode() & 0o7777,
            0o640
        );
        assert!(enable(&config, &args).unwrap().contains("already enabled"));
        let disable_args = DisableArgs {
            service: "svc".into(),
            pam_dir: pam.clone(),
            backup_dir: args.backup_dir.clone(),
        };
        let report = disable(&disable_args).unwrap();
        assert!(report.contains("restored the original"), "{report}");
        assert_eq!(fs::read_to_string(pam.join("svc")).unwrap(), SUDO);
        assert!(!args.backup_dir.join("svc").exists());
        assert!(disable(&disable_args).unwrap().contains("not enabled"));
    }

    #[test]
    fn the_console_needs_an_explicit_flag() {
        let (dir, config, pam) = setup(LOGIN);
        fs::rename(pam.join("svc"), pam.join("login")).unwrap();
        enrol(&config, "bob", true);
        let mut args = enable_args(dir.path(), &pam);
        args.service = "login".into();
        let err = enable(&config, &args).unwrap_err();
        assert!(err.message.contains("--console"), "{err}");
        args.console = true;
        enable(&config, &args).unwrap();
    }

    #[test]
    fn enable_refuses_an_sshd_that_would_never_ask_veil() {
        let (dir, config, pam) = setup(SSHD);
        enrol(&config, "bob", true);
        let sshd_config = dir.path().join("sshd_config");
        fs::write(&sshd_config, SSHD_CONFIG).unwrap();
        let mut args = enable_args(dir.path(), &pam);
        args.sshd_config = Some(sshd_config.clone());
        let err = enable(&config, &args).unwrap_err();
        assert!(
            err.message.contains("KbdInteractiveAuthentication yes"),
            "{err}"
        );
        assert_eq!(fs::read_to_string(pam.join("svc")).unwrap(), SSHD);
        fs::write(
            &sshd_config,
            "UsePAM yes\nKbdInteractiveAuthentication yes\nPasswordAuthentication no\nPubkeyAuthentication no\n",
        )
        .unwrap();
        enable(&config, &args).unwrap();
    }

    #[test]
    fn disable_keeps_later_edits_and_the_backup_wins_over_a_damaged_block() {
        let (dir, config, pam) = setup(SUDO);
        enrol(&config, "bob", true);
        let args = enable_args(dir.path(), &pam);
        enable(&config, &args).unwrap();
        let disable_args = DisableArgs {
            service: "svc".into(),
            pam_dir: pam.clone(),
            backup_dir: args.backup_dir.clone(),
        };
        let edited = fs::read_to_string(pam.join("svc")).unwrap();
        fs::write(
            pam.join("svc"),
            edited.replace(VEIL_AUTH, "auth sufficient pam_permit.so"),
        )
        .unwrap();
        let report = disable(&disable_args).unwrap();
        assert!(report.contains("restored the backup"), "{report}");
        assert_eq!(fs::read_to_string(pam.join("svc")).unwrap(), SUDO);

        enable(&config, &args).unwrap();
        let edited = fs::read_to_string(pam.join("svc")).unwrap();
        fs::write(pam.join("svc"), format!("{edited}# local note\n")).unwrap();
        let report = disable(&disable_args).unwrap();
        assert!(report.contains("other changes since kept"), "{report}");
        assert_eq!(
            fs::read_to_string(pam.join("svc")).unwrap(),
            format!("{SUDO}# local note\n")
        );
    }
}

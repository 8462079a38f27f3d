//! Reading sshd_config as sshd does (first value wins, `Include` with
//! globs, `Match` blocks ignored for the global answer) and saying what
//! must change before sshd asks veil's two prompts.

use std::fs;
use std::path::{Path, PathBuf};

use crate::error::Failure;

use super::files::read;

/// One sshd_config directive in the global section.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Directive {
    /// Lower-case keyword.
    pub key: String,
    pub value: String,
    /// `file:line`, for the report.
    pub origin: String,
}

/// One sshd_config line as sshd splits it: the keyword (lower case) and the
/// rest, after whitespace or `=`; `None` for a blank line or a comment.
fn keyword_line(line: &str) -> Option<(String, &str)> {
    let line = line.trim();
    if line.is_empty() || line.starts_with('#') {
        return None;
    }
    let (key, value) = match line.find(|c: char| c.is_whitespace() || c == '=') {
        Some(i) => (
            &line[..i],
            line[i..].trim_start_matches(|c: char| c.is_whitespace() || c == '='),
        ),
        None => (line, ""),
    };
    Some((key.to_ascii_lowercase(), value))
}

/// Parses one sshd_config file's global section (up to the first `Match`).
/// `Include` comes back as a directive for the caller to expand in place.
/// The second value says whether a `Match` block ended the global section.
pub fn sshd_directives(text: &str, file: &str) -> (Vec<Directive>, bool) {
    let mut out = Vec::new();
    for (n, line) in text.lines().enumerate() {
        let Some((key, value)) = keyword_line(line) else {
            continue;
        };
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
pub(super) fn effective<'a>(directives: &'a [Directive], keys: &[&str]) -> Option<&'a Directive> {
    directives.iter().find(|d| keys.contains(&d.key.as_str()))
}

pub(super) fn now_of(d: Option<&Directive>, keyword: &str, default: &str) -> String {
    match d {
        Some(d) if d.origin.starts_with("sshd -T") => {
            format!("{keyword} {} ({})", d.value, d.origin)
        }
        Some(d) => format!("{keyword} {} at {}", d.value, d.origin),
        None => format!("{keyword} unset, default {default}"),
    }
}

pub(super) fn is_yes(d: Option<&Directive>, default: bool) -> bool {
    d.map_or(default, |d| d.value.eq_ignore_ascii_case("yes"))
}

/// Checks the effective global sshd settings (includes already expanded,
/// in order) for what veil needs: PAM, keyboard-interactive, no password
/// method (sshd would feed the password to both prompts), and says how
/// public keys relate to veil.
#[cfg(test)]
pub fn sshd_advice(directives: &[Directive]) -> SshdAdvice {
    sshd_advice_for(directives, false)
}

/// [`sshd_advice`], or with `one_prompt` (`veilctl enable sshd
/// --one-prompt`) what the `password` method needs: PAM, and a method
/// that reaches it (password, or keyboard-interactive, which then shows
/// the one prompt too).
pub fn sshd_advice_for(directives: &[Directive], one_prompt: bool) -> SshdAdvice {
    let mut advice = SshdAdvice::default();
    let use_pam = effective(directives, &["usepam"]);
    if !is_yes(use_pam, false) {
        advice.required.push(SshdChange {
            line: "UsePAM yes".into(),
            now: now_of(use_pam, "UsePAM", "no"),
            why: "without PAM sshd never asks veil",
        });
    }
    if one_prompt {
        one_prompt_advice(directives, &mut advice);
        pubkey_advice(
            directives,
            &mut advice,
            &["keyboard-interactive", "password"],
        );
        return advice;
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
            why: "sshd's password method answers both of veil's prompts with the password, so every \
                  login by it fails (real and unknown names alike: no oracle), and each try counts as \
                  a failure against the account and its source in veil's limits; for clients that \
                  use it, run veilctl enable sshd --one-prompt instead (one prompt: the password \
                  followed by the code)",
        });
    }
    pubkey_advice(directives, &mut advice, &["keyboard-interactive"]);
    advice
}

/// The allowed method lists of `AuthenticationMethods` (none for `any`).
fn method_lists(directives: &[Directive]) -> (Option<&Directive>, Vec<Vec<&str>>) {
    let methods = effective(directives, &["authenticationmethods"]);
    let lists = match methods {
        Some(d) if !d.value.eq_ignore_ascii_case("any") => d
            .value
            .split_whitespace()
            .map(|list| list.split(',').collect())
            .collect(),
        _ => Vec::new(),
    };
    (methods, lists)
}

/// Whether `method` (`keyboard-interactive:pam` too) is one of `pam_methods`.
fn reaches_pam(method: &str, pam_methods: &[&str]) -> bool {
    pam_methods.contains(&method.split(':').next().unwrap_or(method))
}

/// Public keys log in without PAM's auth stack: advise requiring both,
/// unless every allowed list already goes through one of `pam_methods`.
fn pubkey_advice(directives: &[Directive], advice: &mut SshdAdvice, pam_methods: &[&str]) {
    let (_, lists) = method_lists(directives);
    let pubkey = effective(directives, &["pubkeyauthentication"]);
    let pam_always = !lists.is_empty()
        && lists
            .iter()
            .all(|l| l.iter().any(|m| reaches_pam(m, pam_methods)));
    if is_yes(pubkey, true) && !pam_always {
        advice.advised.push(SshdChange {
            line: "AuthenticationMethods publickey,keyboard-interactive".into(),
            now: now_of(pubkey, "PubkeyAuthentication", "yes"),
            why: "a public key logs in without PAM auth, so without veil; require both (or set PubkeyAuthentication no)",
        });
    }
}

/// `--one-prompt`: the password method must be on, and some allowed list
/// must reach PAM through it or keyboard-interactive.
fn one_prompt_advice(directives: &[Directive], advice: &mut SshdAdvice) {
    let password = effective(directives, &["passwordauthentication"]);
    if !is_yes(password, true) {
        advice.required.push(SshdChange {
            line: "PasswordAuthentication yes".into(),
            now: now_of(password, "PasswordAuthentication", "yes"),
            why: "--one-prompt serves sshd's password method (the password followed by the code)",
        });
    }
    let (methods, lists) = method_lists(directives);
    let pam = ["password", "keyboard-interactive"];
    if !lists.is_empty() && !lists.iter().any(|l| l.iter().any(|m| reaches_pam(m, &pam))) {
        advice.required.push(SshdChange {
            line: "AuthenticationMethods password".into(),
            now: now_of(methods, "AuthenticationMethods", "any"),
            why: "no allowed method list includes password or keyboard-interactive",
        });
    }
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

/// Reads sshd_config with its `Include`s expanded in place (globs in the
/// last path component, relative paths under /etc/ssh as sshd does).
pub fn load_sshd_config(path: &Path) -> Result<Vec<Directive>, Failure> {
    fn walk(path: &Path, depth: u8, out: &mut Vec<Directive>) -> Result<bool, Failure> {
        if depth > 8 {
            return Err(Failure::io(format!(
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
pub(super) fn glob_last(pattern: &Path) -> Result<Vec<PathBuf>, Failure> {
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

pub(super) fn wildcard(pattern: &str, name: &str) -> bool {
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

/// One `Match` block of sshd_config or a file it includes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MatchBlock {
    /// `file:line` of the `Match` line.
    pub origin: String,
    /// The criteria as written (`Address 10.0.0.0/8`).
    pub criteria: String,
    /// The directives inside it (an `Include` in it expanded in place).
    pub directives: Vec<Directive>,
}

/// Every `Match` block of sshd_config and its `Include`s, as sshd reads
/// them: an `Include` inside a block belongs to that block, and a block
/// opened in an included file ends with that file (checked against
/// OpenSSH 9.2's `sshd -T`).
pub fn load_match_blocks(path: &Path) -> Result<Vec<MatchBlock>, Failure> {
    fn walk(
        path: &Path,
        depth: u8,
        outer: Option<usize>,
        out: &mut Vec<MatchBlock>,
    ) -> Result<(), Failure> {
        if depth > 8 {
            return Err(Failure::io(format!(
                "{}: Include nested too deeply",
                path.display()
            )));
        }
        let text = read(path)?;
        let file = path.display().to_string();
        let mut current = outer;
        for (n, line) in text.lines().enumerate() {
            let Some((key, value)) = keyword_line(line) else {
                continue;
            };
            let value = value.trim().trim_matches('"');
            if key == "match" {
                out.push(MatchBlock {
                    origin: format!("{file}:{}", n + 1),
                    criteria: value.to_owned(),
                    directives: Vec::new(),
                });
                current = Some(out.len() - 1);
            } else if key == "include" {
                for pattern in value.split_whitespace() {
                    let pattern = if pattern.starts_with('/') {
                        PathBuf::from(pattern)
                    } else {
                        Path::new("/etc/ssh").join(pattern)
                    };
                    for file in glob_last(&pattern)? {
                        walk(&file, depth + 1, current, out)?;
                    }
                }
            } else if let Some(i) = current {
                out[i].directives.push(Directive {
                    key,
                    value: value.to_owned(),
                    origin: format!("{file}:{}", n + 1),
                });
            }
        }
        Ok(())
    }
    let mut out = Vec::new();
    walk(path, 0, None, &mut out)?;
    Ok(out)
}

//! Who can log in by ssh, per user, today and once veil is sshd's PAM
//! authenticator: sshd's effective settings come from the real `sshd -T -C
//! user=NAME,...` (Match blocks evaluated by sshd itself), with the
//! hand interpreter of [`super::sshd_config`] only as a fallback.
//!
//! The rules that matter (OpenSSH's auth2.c, auth-pam.c):
//! * under `PermitRootLogin prohibit-password` (Debian's default) or `no`,
//!   root may not use keyboard-interactive at all, and sshd hands PAM a fake
//!   password for root's replies: veil can never let root in that way;
//! * sshd's `password` method answers every PAM prompt with the password,
//!   so behind veil's two prompts it always fails; behind `one_prompt`
//!   (the password followed by the code, in one answer) it works;
//! * public keys (and hostbased, GSSAPI) never reach PAM's auth stack.

use std::path::{Path, PathBuf};

use super::sshd_config::{Directive, MatchBlock, describe_sshd, effective, sshd_advice_for};

/// When a login is judged.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    /// With the PAM stack as it is (pam_unix answers keyboard-interactive).
    Today,
    /// With pam_veil as sshd's only PAM authenticator.
    AfterVeil,
    /// The same, with `one_prompt` (`veilctl enable sshd --one-prompt`):
    /// the password method reaches veil with the password and the code.
    AfterOnePrompt,
}

/// How veil will ask: what `veilctl enable` writes on the PAM line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// `Password:` then `Verification code:` (keyboard-interactive).
    TwoPrompts,
    /// `--after-publickey`: `factors=code`.
    AfterPublickey,
    /// `--one-prompt`: `one_prompt`, for sshd's `password` method.
    OnePrompt,
}

impl Mode {
    /// The phase in which logins are judged once veil is in place.
    pub fn phase(self) -> Phase {
        match self {
            Mode::OnePrompt => Phase::AfterOnePrompt,
            _ => Phase::AfterVeil,
        }
    }
}

/// The methods sshd offers for `AuthenticationMethods any`.
const SINGLE_METHODS: &[&str] = &[
    "publickey",
    "password",
    "keyboard-interactive",
    "hostbased",
    "gssapi-with-mic",
];

fn value<'a>(d: &'a [Directive], key: &str, default: &'a str) -> &'a str {
    effective(d, &[key]).map_or(default, |d| d.value.as_str())
}

fn yes(d: &[Directive], key: &str, default: bool) -> bool {
    effective(d, &[key]).map_or(default, |d| d.value.eq_ignore_ascii_case("yes"))
}

/// `PermitRootLogin` as sshd -T prints it (`without-password` is the old
/// name of `prohibit-password`).
pub fn permit_root_login(d: &[Directive]) -> String {
    let v = value(d, "permitrootlogin", "prohibit-password").to_ascii_lowercase();
    if v == "without-password" {
        "prohibit-password".into()
    } else {
        v
    }
}

/// Whether sshd lets root use `method` at all (auth2.c, auth_root_allowed).
fn root_may_use(d: &[Directive], method: &str) -> bool {
    match permit_root_login(d).as_str() {
        "yes" => true,
        "prohibit-password" => matches!(method, "publickey" | "hostbased" | "gssapi-with-mic"),
        "forced-commands-only" => method == "publickey",
        _ => false,
    }
}

/// The base name of a method (`keyboard-interactive:pam` → `keyboard-interactive`).
fn base(method: &str) -> &str {
    method.split(':').next().unwrap_or(method)
}

/// Whether `method` can succeed for a user (root or not) in `phase`.
pub fn method_works(d: &[Directive], method: &str, root: bool, phase: Phase) -> bool {
    let method = base(method);
    if root && !root_may_use(d, method) {
        return false;
    }
    let use_pam = yes(d, "usepam", false);
    match method {
        "publickey" => yes(d, "pubkeyauthentication", true),
        "hostbased" => yes(d, "hostbasedauthentication", false),
        "gssapi-with-mic" => yes(d, "gssapiauthentication", false),
        // Behind veil's two prompts the password method feeds the password
        // to both; behind one_prompt it is the one answer.
        "password" => {
            yes(d, "passwordauthentication", true) && !(use_pam && phase == Phase::AfterVeil)
        }
        "keyboard-interactive" => {
            use_pam
                && yes(
                    d,
                    "kbdinteractiveauthentication",
                    yes(d, "challengeresponseauthentication", true),
                )
        }
        _ => false,
    }
}

/// The allowed method lists: `AuthenticationMethods`, or every single
/// method for `any`.
pub fn method_lists(d: &[Directive]) -> Vec<Vec<String>> {
    let v = value(d, "authenticationmethods", "any");
    if v.eq_ignore_ascii_case("any") || v.is_empty() {
        return SINGLE_METHODS
            .iter()
            .map(|m| vec![(*m).to_owned()])
            .collect();
    }
    v.split_whitespace()
        .map(|list| list.split(',').map(str::to_owned).collect())
        .collect()
}

/// The method lists a user can complete in `phase`.
pub fn usable_lists(d: &[Directive], root: bool, phase: Phase) -> Vec<String> {
    method_lists(d)
        .into_iter()
        .filter(|list| list.iter().all(|m| method_works(d, m, root, phase)))
        .map(|list| list.join(","))
        .collect()
}

/// Whether `list` proves the account with a key before any step that
/// reaches PAM (`keyboard-interactive`, and `password`, which answers
/// veil's code prompt with what was typed): what `factors=code` relies
/// on. A list with no PAM step never reaches veil.
fn key_before_pam(list: &[String]) -> bool {
    for m in list {
        match base(m) {
            "publickey" => return true,
            "keyboard-interactive" | "password" => return false,
            _ => {}
        }
    }
    true
}

/// Whether an `AuthenticationMethods` value lets no login reach PAM
/// before a key (`any` offers keyboard-interactive alone).
fn methods_key_first(value: &str) -> bool {
    let value = value.trim();
    !value.eq_ignore_ascii_case("any")
        && !value.is_empty()
        && value
            .split_whitespace()
            .all(|list| key_before_pam(&list.split(',').map(str::to_owned).collect::<Vec<_>>()))
}

/// Whether every allowed method list proves the account with a key
/// before veil is asked (see [`key_before_pam`]).
pub fn publickey_first(d: &[Directive]) -> bool {
    methods_key_first(value(d, "authenticationmethods", "any"))
}

/// For `--after-publickey`, whoever is enrolled now or later: every
/// `AuthenticationMethods` that some connection could get (the global
/// one, and each `Match` block's, whatever it matches on: a block for a
/// group or a user not enrolled today applies the day they enrol by
/// self-service, and sshd applies the first matching block's value, so
/// these are all the values there are) must put a key before veil.
/// `global` is sshd's global section (`sshd -T` without `-C`).
pub fn code_alone_methods(global: &[Directive], blocks: &[MatchBlock]) -> Result<(), CodeAlone> {
    let mut found = Vec::new();
    let g = value(global, "authenticationmethods", "any");
    if !methods_key_first(g) {
        let origin = effective(global, &["authenticationmethods"])
            .map_or("default (unset)".to_owned(), |d| d.origin.clone());
        found.push(format!(
            "    {origin}: AuthenticationMethods {g} (global section)"
        ));
    }
    for b in blocks {
        for d in b
            .directives
            .iter()
            .filter(|d| d.key == "authenticationmethods")
        {
            if !methods_key_first(&d.value) {
                found.push(format!(
                    "    {}: AuthenticationMethods {} (in \"Match {}\" at {})",
                    d.origin, d.value, b.criteria, b.origin
                ));
            }
        }
    }
    if found.is_empty() {
        return Ok(());
    }
    Err(CodeAlone { found })
}

/// `AuthenticationMethods` values that let a login reach veil without a
/// key ([`code_alone_methods`]): each line names the setting and its file.
#[derive(Debug, thiserror::Error)]
#[error(
    "--after-publickey makes veil ask only for the code, so a key must prove the account first \
     for every account sshd could let in, now and later (a user who enrols by self-service \
     needs no admin); these settings let a login reach veil without a key:\n{}\n\
     fix: make each of them start with the key (AuthenticationMethods {ADVISED_METHODS}; \
     root under PermitRootLogin prohibit-password: AuthenticationMethods publickey) or \
     delete the line; nothing changed",
    found.join("\n")
)]
pub struct CodeAlone {
    pub found: Vec<String>,
}

/// One user's effective sshd settings.
#[derive(Debug, Clone)]
pub struct UserView {
    pub name: String,
    pub root: bool,
    pub settings: Vec<Directive>,
}

/// A user who can log in by ssh now and could not afterwards.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Lockout {
    pub user: String,
    /// The lists that work today.
    pub today: Vec<String>,
    pub why: String,
    /// What to write in sshd_config instead.
    pub fix: String,
}

/// The fix for root under a `PermitRootLogin` that keeps it from
/// keyboard-interactive.
pub const ROOT_MATCH: &str = "Match User root\n    AuthenticationMethods publickey";

/// Why `view` could not log in afterwards, and the fix.
fn explain(view: &UserView) -> (String, String) {
    let d = &view.settings;
    let lists = method_lists(d);
    let mentions = |m: &str| lists.iter().any(|l| l.iter().any(|x| base(x) == m));
    if view.root && !root_may_use(d, "keyboard-interactive") && mentions("keyboard-interactive") {
        (
            format!(
                "under PermitRootLogin {} sshd never hands root's keyboard-interactive replies to PAM \
                 (it substitutes a fake password), so veil can never let root in that way",
                permit_root_login(d)
            ),
            format!("at the end of sshd_config (root keeps logging in with a key):\n{ROOT_MATCH}"),
        )
    } else if mentions("password") {
        (
            "sshd's password method answers both of veil's prompts with the password, so it always fails"
                .into(),
            "keyboard-interactive in place of password in AuthenticationMethods, or veilctl enable \
             sshd --one-prompt (one prompt: the password followed by the code)"
                .into(),
        )
    } else {
        (
            "no allowed method list can be completed".into(),
            "allow publickey or keyboard-interactive in AuthenticationMethods".into(),
        )
    }
}

/// The users who can log in today but not once `after` is in force
/// (`after` is each user's settings afterwards: the same, or with advice
/// applied), judged in `phase` (see [`Mode::phase`]).
pub fn lockouts_in(
    views: &[UserView],
    phase: Phase,
    after: impl Fn(&UserView) -> UserView,
) -> Vec<Lockout> {
    let mut out = Vec::new();
    for view in views {
        let today = usable_lists(&view.settings, view.root, Phase::Today);
        if today.is_empty() {
            continue;
        }
        let later = after(view);
        if usable_lists(&later.settings, later.root, phase).is_empty() {
            let (why, fix) = explain(&later);
            out.push(Lockout {
                user: view.name.clone(),
                today,
                why,
                fix,
            });
        }
    }
    out
}

/// `view` with `AuthenticationMethods` set to `methods`, unless a Match
/// block already gives the user a value of their own (differing from the
/// global one), which a global change does not touch.
pub fn with_global_methods(view: &UserView, global: &[Directive], methods: &str) -> UserView {
    let global_value = value(global, "authenticationmethods", "any");
    let own = value(&view.settings, "authenticationmethods", "any");
    let mut v = view.clone();
    if own.eq_ignore_ascii_case(global_value) {
        v.settings.retain(|d| d.key != "authenticationmethods");
        v.settings.insert(
            0,
            Directive {
                key: "authenticationmethods".into(),
                value: methods.into(),
                origin: "advice".into(),
            },
        );
    }
    v
}

/// The report line for lockouts.
pub fn describe_lockouts(lockouts: &[Lockout]) -> String {
    let mut s = String::new();
    for l in lockouts {
        s.push_str(&format!(
            "    {} can log in by ssh today ({}) but could not with veil: {}\n      fix: {}\n",
            l.user,
            l.today.join(" or "),
            l.why,
            l.fix.replace('\n', "\n          ")
        ));
    }
    s
}

// ---------------------------------------------------------------- judgement

/// What was read of sshd: the global settings and each probed user's.
#[derive(Debug, Clone)]
pub struct SshdState {
    pub global: Vec<Directive>,
    pub views: Vec<UserView>,
    /// Set when `sshd -T` could not run and the interpreter was used.
    pub fallback: Option<String>,
}

/// The advised global `AuthenticationMethods`.
pub const ADVISED_METHODS: &str = "publickey,keyboard-interactive";

/// Why `veilctl enable` leaves sshd's PAM file alone ([`judge_sshd`]).
#[derive(Debug, thiserror::Error)]
pub enum SshdRefusal {
    /// What sshd must change to ask veil's prompts at all.
    #[error("sshd would not ask veil's prompts; nothing changed.\n{0}")]
    NoPrompts(String),
    /// `--after-publickey` without `sshd -T` (the reason it could not run).
    #[error(
        "--after-publickey needs sshd's effective settings for every user, and {0}; nothing changed"
    )]
    NoSettings(String),
    /// Users who may start without a key, each with its methods.
    #[error(
        "--after-publickey makes veil ask only for the code, so a key must have proved the \
         account first; sshd lets these users start without one:\n{}\n\
         set AuthenticationMethods {ADVISED_METHODS} in {}, and for root under \
         PermitRootLogin prohibit-password, at its end:\n    {}\nnothing changed",
        open.join("\n"),
        config.display(),
        ROOT_MATCH.replace('\n', "\n    ")
    )]
    KeyNotFirst { open: Vec<String>, config: PathBuf },
    /// Users who could log in today and no longer could.
    #[error(
        "with veil as sshd's authenticator these users could no longer log in; nothing changed:\n{0}"
    )]
    LockedOut(String),
}

/// Judges sshd for `veilctl enable`: refuses (the message) when sshd would
/// not ask veil, when a user who can log in today could not afterwards, or
/// (`after_publickey`) when some user may start without a key; otherwise
/// returns the report (advice included). `enrolled` are the users who can
/// pass veil: a probed user outside it who can log in today, and
/// afterwards only through veil, is warned about.
#[cfg(test)]
pub fn judge_sshd(
    state: &SshdState,
    config: &Path,
    after_publickey: bool,
    enrolled: &[&str],
) -> Result<String, SshdRefusal> {
    let mode = if after_publickey {
        Mode::AfterPublickey
    } else {
        Mode::TwoPrompts
    };
    judge_sshd_for(state, config, mode, enrolled)
}

/// [`judge_sshd`] for any [`Mode`].
pub fn judge_sshd_for(
    state: &SshdState,
    config: &Path,
    mode: Mode,
    enrolled: &[&str],
) -> Result<String, SshdRefusal> {
    let after_publickey = mode == Mode::AfterPublickey;
    let phase = mode.phase();
    let advice = sshd_advice_for(&state.global, mode == Mode::OnePrompt);
    if !advice.required.is_empty() {
        return Err(SshdRefusal::NoPrompts(describe_sshd(&advice, config)));
    }
    if after_publickey {
        if let Some(why) = &state.fallback {
            return Err(SshdRefusal::NoSettings(why.clone()));
        }
        let open: Vec<String> = state
            .views
            .iter()
            .filter(|v| !publickey_first(&v.settings))
            .map(|v| {
                format!(
                    "    {}: AuthenticationMethods {}",
                    v.name,
                    value(&v.settings, "authenticationmethods", "any")
                )
            })
            .collect();
        if !open.is_empty() {
            return Err(SshdRefusal::KeyNotFirst {
                open,
                config: config.to_owned(),
            });
        }
    }
    let now = lockouts_in(&state.views, phase, UserView::clone);
    if !now.is_empty() {
        return Err(SshdRefusal::LockedOut(describe_lockouts(&now)));
    }
    let mut extra = String::new();
    if advice
        .advised
        .iter()
        .any(|c| c.line.ends_with(ADVISED_METHODS))
    {
        let advised = lockouts_in(&state.views, phase, |v| {
            with_global_methods(v, &state.global, ADVISED_METHODS)
        });
        if !advised.is_empty() {
            extra.push_str(&format!(
                "but with AuthenticationMethods {ADVISED_METHODS} alone:\n{}",
                describe_lockouts(&advised)
            ));
        }
    }
    for v in state
        .views
        .iter()
        .filter(|v| !enrolled.contains(&v.name.as_str()))
    {
        let later = usable_lists(&v.settings, v.root, phase);
        // A list through PAM: keyboard-interactive, or password behind one_prompt.
        let through_veil = |l: &String| {
            l.contains("keyboard-interactive")
                || (phase == Phase::AfterOnePrompt && l.split(',').any(|m| base(m) == "password"))
        };
        if !usable_lists(&v.settings, v.root, Phase::Today).is_empty()
            && !later.is_empty()
            && later.iter().all(through_veil)
        {
            extra.push_str(&format!(
                "warning: {} can log in by ssh today but is not enrolled in veil, and afterwards \
                 only through veil ({}): enrol {0} first\n",
                v.name,
                later.join(" or ")
            ));
        }
    }
    for v in state.views.iter().filter(|v| v.root) {
        if usable_lists(&v.settings, true, Phase::Today).is_empty()
            && permit_root_login(&v.settings) != "no"
            && method_works(&v.settings, "publickey", true, Phase::Today)
        {
            extra.push_str(&format!(
                "note: root cannot log in by ssh with these settings (AuthenticationMethods {}, \
                 PermitRootLogin {}); for root with a key, at the end of {}:\n    {}\n",
                value(&v.settings, "authenticationmethods", "any"),
                permit_root_login(&v.settings),
                config.display(),
                ROOT_MATCH.replace('\n', "\n    ")
            ));
        }
    }
    let mut report = String::new();
    if let Some(why) = &state.fallback {
        report.push_str(&format!(
            "note: {why}; read {} by hand instead (Match blocks not evaluated)\n",
            config.display()
        ));
    }
    report.push_str(&describe_sshd(&advice, config));
    report.push_str(&extra);
    Ok(report)
}

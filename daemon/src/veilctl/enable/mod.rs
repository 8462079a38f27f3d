//! `veilctl enable SERVICE` / `veilctl disable SERVICE`: put veil in front of
//! one PAM service, and take it out again, without locking anyone out.
//!
//! Enabling edits `/etc/pam.d/SERVICE` so that `pam_veil.so` is its only
//! authenticator: every `auth` line that authenticates (and `@include
//! common-auth`) is commented out with a `#veil# ` prefix, and one marked
//! block with `auth required pam_veil.so` takes the place of the first one.
//! Modules that restrict who may authenticate (`pam_wheel`, `pam_listfile`,
//! `pam_succeed_if`, `pam_access`, `pam_nologin`, `pam_securetty`, ...) are
//! moved into the block behind veil, as `required`, and veil becomes
//! `requisite`: a failed veil ends the stack with its own `PAM_AUTH_ERR`
//! before any of them could answer differently for a real and an unknown
//! name. `pam_cap` (it looks the user up and can return success) moves
//! there too, its line as written (its setcred needs its auth step).
//! `pam_rootok` (it looks only at the caller) stays in front; preparing
//! modules (`pam_faildelay`, `pam_env`, ...) stay where they are, but only
//! as `optional`, `required` or `requisite` (never `sufficient` or a
//! jump, which could pass or skip veil); any other auth module or control
//! is refused, naming the line, unless `--force`.
//! The edit is exactly reversible ([`disable_text`] undoes it byte for
//! byte) and the original is also copied to a root-only backup directory.
//!
//! Guards: nothing is edited while no user could pass veil by veild's own
//! rule (a user without an active TOTP secret passes only while the
//! rollout does not require a code of them, and never under
//! `--after-publickey`);
//! under `--after-publickey` every `AuthenticationMethods` sshd_config
//! holds (global, and every `Match` block, whatever it matches: a block
//! for someone who enrols later applies then) must put a key before veil,
//! checked first, whoever is enrolled, and again on every run;
//! the console (`login`) needs `--console`; a service known to answer
//! every prompt with one password (i3lock, swaylock) is refused; for sshd
//! the effective settings are read per user with the real `sshd -T` and
//! every setting that would stop sshd from asking veil, or lock out a user
//! who can log in today (root under `PermitRootLogin prohibit-password`), is
//! named with the exact line to write, and nothing is edited until it is
//! right; settings under which sshd itself tells a real account from an
//! unknown name (`Match invalid-user`, ...) are refused, and `UseDNS yes`
//! is warned about ([`sshd_oracle`]).
//!
//! The logic is pure functions over file contents; [`enable`] and
//! [`disable`] are the thin I/O layer.

mod files;
mod fresh_advice;
mod key_advice;
mod pam_stack;
mod sshd_access;
mod sshd_config;
mod sshd_oracle;
mod sshd_t;
use sshd_t::{sshd_binary, sshd_t};

use std::fs;
use std::path::{Path, PathBuf};

use veil_daemon::common::clock::unix_now;
use veil_daemon::common::config::{Config, Factors, TotpPolicy};
use veil_daemon::common::policy::{Policies, Policy};
use veil_daemon::common::store::{self, OpenMode, UserSummary};

use crate::error::{EXIT_USAGE, Failure};
use files::{backup_path, check_private, ensure_backup_dir, read, write_like};
use pam_stack::{StackOptions, disable_text, enable_text, is_enabled};
use sshd_access::{Mode, SshdState, UserView, code_alone_methods, judge_sshd_for};
use sshd_config::{load_match_blocks, load_sshd_config};
use sshd_oracle::{describe_refusals, oracle_settings};

pub const DEFAULT_PAM_DIR: &str = "/etc/pam.d";
pub const DEFAULT_SSHD_CONFIG: &str = "/etc/ssh/sshd_config";
/// Root-only: restoring from here must never pick up a file veild (user
/// `veil`) could have written, so it is not under /var/lib/veil.
pub const DEFAULT_BACKUP_DIR: &str = "/etc/veil/pam-backup";

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
    /// Comment out auth modules veilctl does not know instead of refusing
    #[arg(long)]
    pub force: bool,
    /// sshd only: veil asks only for the code (`factors=code`), for
    /// `AuthenticationMethods publickey,keyboard-interactive`; refused
    /// unless sshd requires a key first for every user, on every connection
    #[arg(long)]
    pub after_publickey: bool,
    /// One prompt, the password followed by the code (`one_prompt`): for
    /// sshd's `password` method and clients that answer one prompt
    #[arg(long, conflicts_with = "after_publickey")]
    pub one_prompt: bool,
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
pub fn check_service_name(service: &str) -> Result<(), Failure> {
    let ok = !service.is_empty()
        && service.len() <= 64
        && !service.starts_with(['.', '-'])
        && service
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-' | b'+'));
    if !ok {
        return Err(Failure {
            code: EXIT_USAGE,
            message: format!(
                "invalid PAM service name {:?}: use the file name in /etc/pam.d",
                veil_proto::sanitize::sanitize(service)
            ),
        });
    }
    if service.starts_with("common-") || service == "other" {
        return Err(Failure::refused(format!(
            "{service} is shared by every service; veil does not edit it (the pam-auth-update profile \"veil\" is the way to put veil in front of every service)"
        )));
    }
    Ok(())
}

/// PAM clients that answer every prompt with the one password they asked
/// for: veil's code prompt gets the password, so every attempt fails.
pub const ONE_PROMPT_SERVICES: &[&str] = &["i3lock", "swaylock"];

/// Refuses a service whose client asks one prompt, unless veil asks one
/// too (`--one-prompt`).
pub fn check_two_prompts(service: &str, one_prompt: bool) -> Result<(), Failure> {
    if ONE_PROMPT_SERVICES.contains(&service) && !one_prompt {
        return Err(Failure::refused(format!(
            "{service} asks for one password and answers every PAM prompt with it, so veil's \
             \"Verification code:\" prompt would get the password and every unlock would fail; \
             nothing changed. Run veilctl enable {service} --one-prompt (one prompt: the password \
             followed by the code), keep {service} on the system password, or use a locker that \
             shows each PAM prompt (see README, \"Screen lockers\")"
        )));
    }
    Ok(())
}

/// The module argument `--after-publickey` writes.
pub const CODE_ONLY_ARG: &str = "factors=code";
/// The module argument `--one-prompt` writes.
pub const ONE_PROMPT_ARG: &str = "one_prompt";

/// The users who could pass veil now, by veild's own rule (verify.rs): a
/// user with an active TOTP secret always can; one without only while
/// the request asks for the password too (not `code_only`) and the
/// service's policy (`factors = ["password"]`, else its TOTP policy and
/// the rollout's `required_groups`, `enrol_by`) does not require a code
/// of them at `now`.
pub fn able_to_log_in<'a>(
    users: &'a [UserSummary],
    policies: &Policies,
    policy: &Policy,
    code_only: bool,
    now: u64,
) -> Vec<&'a str> {
    users
        .iter()
        .filter(|u| u.totp || (!code_only && !policies.code_required(policy, &u.name, now)))
        .map(|u| u.name.as_str())
        .collect()
}

/// Why nobody could pass veil, for the refusal.
fn nobody_able_message(policy: &Policy, code_only: bool) -> String {
    let enrol = "enrol one first (veilctl user add NAME; veilctl totp enroll NAME)";
    if code_only {
        format!(
            "no user has an active TOTP secret, and with --after-publickey veil asks only for \
             the code, so nobody could log in: {enrol}"
        )
    } else if policy.totp == TotpPolicy::Required {
        format!("no user has an active TOTP secret, so nobody could log in: {enrol}")
    } else {
        format!(
            "no user has an active TOTP secret, and the rollout ([totp] required_groups, \
             enrol_by) requires a code of every enrolled user now, so nobody could log in: {enrol}"
        )
    }
}

/// `veilctl enable`: the guards, the backup, the edit. Returns the report.
pub fn enable(config: &Config, args: &EnableArgs) -> Result<String, Failure> {
    let service = args.service.as_str();
    check_service_name(service)?;
    if service == "login" && !args.console {
        return Err(Failure::refused(
            "login is the console, the way back in when veild is down or a phone is lost; \
             it stays on the system password unless you pass --console",
        ));
    }
    check_two_prompts(service, args.one_prompt)?;
    let sshd_config = match (&args.sshd_config, service) {
        (Some(p), _) => Some(p.clone()),
        (None, "sshd") => Some(PathBuf::from(DEFAULT_SSHD_CONFIG)),
        _ => None,
    };
    // The line follows the service's policy: `factors = ["code"]` is
    // --after-publickey's line, with its guards.
    let policy = Policies::from(config).for_service(service);
    let code_only = args.after_publickey || policy.factors == Some(Factors::Code);
    if !policy.accepts(code_only) {
        return Err(Failure::refused(format!(
            "{}; --after-publickey writes factors=code, which it does not accept, so veild would \
             deny every login; nothing changed. Change [service.{service}] in veild.toml or leave \
             out --after-publickey",
            policy.describe(service)
        )));
    }
    if args.one_prompt && !policy.asks_code() {
        return Err(Failure::refused(format!(
            "{}; --one-prompt asks for the password and the code in one answer, which it does not \
             accept, so veild would deny every login; nothing changed. Change [service.{service}] \
             in veild.toml or leave out --one-prompt",
            policy.describe(service)
        )));
    }
    if code_only && sshd_config.is_none() {
        return Err(Failure::usage(
            "--after-publickey (or factors = [\"code\"] in veild.toml) is for sshd (or a service given --sshd-config)",
        ));
    }
    // Whoever is enrolled, now or later: checked first, so that it also
    // stops an enable with nobody enrolled, and so that running it again
    // over an enabled sshd re-checks an sshd_config edited since.
    if let (true, Some(sshd_config)) = (code_only, &sshd_config) {
        let blocks = load_match_blocks(sshd_config)?;
        let global = read_sshd(sshd_config, &[])?;
        code_alone_methods(&global.global, &blocks).map_err(|e| {
            Failure::refused(format!("{e}\nthen run veilctl enable {service} again"))
        })?;
    }
    let path = args.pam_dir.join(service);
    let original = read(&path)?;
    if is_enabled(&original) {
        let checked = if code_only {
            "; sshd_config still puts a key before veil for every account"
        } else {
            ""
        };
        // A policy set after the edit can disagree with the line.
        let mismatch = if policy.accepts(block_code_only(&original)) {
            String::new()
        } else {
            format!(
                "warning: its pam_veil.so line does not declare the factors this policy accepts, \
                 so veild denies every login through it: run veilctl disable {service}, then \
                 veilctl enable {service}\n"
            )
        };
        return Ok(format!(
            "veil is already enabled in {}{checked}\n{}\n{mismatch}{}",
            path.display(),
            policy.describe(service),
            fresh_advice::advice(&Policies::from(config), service, &original),
        ));
    }
    // Fails here, before anything is written, if the file cannot be handled.
    let options = StackOptions {
        force: args.force,
        veil_args: if code_only {
            CODE_ONLY_ARG.into()
        } else if args.one_prompt {
            ONE_PROMPT_ARG.into()
        } else {
            String::new()
        },
    };
    let edited = enable_text(&original, &options)?;

    // Nobody must be locked out: someone has to be able to pass veil.
    let store = store::open(&store::Location::of(config), OpenMode::MustExist).map_err(|e| {
        Failure::refused(format!(
            "{e}: nobody is enrolled yet; add a user and a TOTP secret first (veilctl user add, veilctl totp enroll)"
        ))
    })?;
    let users = store.list_users().map_err(|e| Failure::io(e.to_string()))?;
    let able = able_to_log_in(
        &users,
        &Policies::from(config),
        &policy,
        code_only,
        unix_now(),
    );
    if users.is_empty() {
        return Err(Failure::refused(
            "no user is enrolled, so nobody could log in: enrol one first (veilctl user add NAME)",
        ));
    }
    if able.is_empty() {
        return Err(Failure::refused(nobody_able_message(&policy, code_only)));
    }
    let mut report = String::new();
    let admin = std::env::var("SUDO_USER").ok();
    if let Some(admin) =
        admin.filter(|a| !a.is_empty() && a != "root" && !able.contains(&a.as_str()))
    {
        report.push_str(&format!(
            "warning: you ({admin}) cannot pass veil yet; enrol yourself before you log out\n"
        ));
    }

    if let Some(sshd_config) = sshd_config {
        let admin = std::env::var("SUDO_USER").unwrap_or_default();
        let probe = sshd_probes(&able, &admin, code_only)?;
        let state = read_sshd(&sshd_config, &probe)?;
        // Settings under which sshd itself answers real and unknown names
        // differently: refused before anything else is judged.
        let oracle = oracle_settings(&state.global, &load_match_blocks(&sshd_config)?);
        if !oracle.refusals.is_empty() {
            return Err(Failure::refused(format!(
                "{}then run veilctl enable {service} again",
                describe_refusals(&oracle)
            )));
        }
        let mode = if code_only {
            Mode::AfterPublickey
        } else if args.one_prompt {
            Mode::OnePrompt
        } else {
            Mode::TwoPrompts
        };
        let text = judge_sshd_for(&state, &sshd_config, mode, &able).map_err(|e| {
            Failure::refused(format!(
                "{}\nthen run veilctl enable {service} again",
                e.to_string().trim_end()
            ))
        })?;
        report.push_str(&text);
        report.push_str(&oracle.warnings.concat());
        if mode != Mode::AfterPublickey {
            let holders = key_advice::key_holders(&able, key_advice::system_home);
            report.push_str(&key_advice::advice(&holders, &sshd_config));
        }
    }

    let meta = fs::metadata(&path).map_err(|e| Failure::io(format!("{}: {e}", path.display())))?;
    ensure_backup_dir(&args.backup_dir)?;
    let backup = backup_path(&args.backup_dir, service);
    write_like(&backup, &original, &meta)?;
    write_like(&path, &edited.text, &meta)?;
    report.push_str(&format!(
        "veil is now the only authenticator of {}; original kept in {}\n\
         commented out (veil replaces them): {}\n",
        path.display(),
        backup.display(),
        edited.replaced.join(" | "),
    ));
    if !edited.moved.is_empty() {
        report.push_str(&format!(
            "kept behind veil, which is now requisite (they only see users who passed veil): {}\n",
            edited.moved.join(" | ")
        ));
    }
    for line in &edited.forced {
        report.push_str(&format!("warning: commented out under --force: {line}\n"));
    }
    report.push_str(&policy.describe(service));
    report.push('\n');
    report.push_str(&fresh_advice::advice(
        &Policies::from(config),
        service,
        &edited.text,
    ));
    report.push_str(&format!(
        "users who can log in through veil: {}\n\
         keep this session open and try a login in another one; undo with: veilctl disable {service}\n",
        able.join(", "),
    ));
    Ok(report)
}

/// Whether the pam_veil.so line in veilctl's block says `factors=code`.
fn block_code_only(text: &str) -> bool {
    text.lines()
        .skip_while(|l| *l != pam_stack::BEGIN)
        .take_while(|l| *l != pam_stack::END)
        .any(|l| {
            let words: Vec<&str> = l.split_whitespace().collect();
            words.contains(&"pam_veil.so") && words.contains(&CODE_ONLY_ARG)
        })
}

/// At most this many users' sshd settings are read (root, the admin and
/// the first enrolled users): each `sshd -T` takes some 30 ms.
const MAX_SSHD_PROBES: usize = 20;

/// Under `--after-publickey` every user who can pass veil is read (a
/// single one given a code-alone login is a hole); past this many
/// (some 15 s of `sshd -T`) enable refuses rather than check some.
pub const MAX_CODE_ONLY_PROBES: usize = 500;

/// The users whose sshd settings are read: root, the users who can pass
/// veil, the admin. For `code_only` all of them, or a refusal; otherwise
/// the first [`MAX_SSHD_PROBES`].
pub fn sshd_probes<'a>(
    able: &[&'a str],
    admin: &'a str,
    code_only: bool,
) -> Result<Vec<&'a str>, Failure> {
    if code_only && able.len() + 2 > MAX_CODE_ONLY_PROBES {
        return Err(Failure::refused(format!(
            "--after-publickey needs sshd's settings for every user who can pass veil, and {} is \
             more than veilctl reads ({MAX_CODE_ONLY_PROBES}, some 30 ms each); nothing changed. \
             Edit /etc/pam.d/sshd by hand (auth required pam_veil.so factors=code) after checking \
             sshd_config yourself",
            able.len()
        )));
    }
    let mut probe: Vec<&str> = vec!["root"];
    let admin = (!admin.is_empty()).then_some((admin, false));
    for (name, can_pass) in able.iter().map(|n| (*n, true)).chain(admin) {
        // Each goes into `sshd -C user=NAME,...`: nothing that could add a field.
        if name.is_empty() || name.contains([',', '=', ' ', '\t', '\n']) {
            if code_only && can_pass {
                return Err(Failure::refused(format!(
                    "--after-publickey needs sshd's settings for every user who can pass veil, \
                     and sshd -T cannot be asked about {:?}; nothing changed",
                    veil_proto::sanitize::sanitize(name)
                )));
            }
            continue;
        }
        if !probe.contains(&name) && (code_only || probe.len() < MAX_SSHD_PROBES) {
            probe.push(name);
        }
    }
    Ok(probe)
}

/// sshd's settings, globally and for each of `users`: from `sshd -T`, or,
/// when sshd cannot run (not installed, config error), from the hand
/// interpreter (Match blocks not evaluated, the same settings for all).
fn read_sshd(config: &Path, users: &[&str]) -> Result<SshdState, Failure> {
    let is_root = |name: &str| {
        nix::unistd::User::from_name(name)
            .ok()
            .flatten()
            .map_or(name == "root", |u| u.uid.is_root())
    };
    let sshd = sshd_binary();
    let global = match sshd_t(&sshd, config, None) {
        Ok(global) => global,
        Err(why) => {
            let global = load_sshd_config(config)?;
            let views = users
                .iter()
                .map(|name| UserView {
                    name: (*name).to_owned(),
                    root: is_root(name),
                    settings: global.clone(),
                })
                .collect();
            return Ok(SshdState {
                global,
                views,
                fallback: Some(format!("could not run sshd -T ({why})")),
            });
        }
    };
    // Name the line of a value where the hand reading agrees with sshd.
    let global = match load_sshd_config(config) {
        Ok(by_hand) => global
            .into_iter()
            .map(|mut d| {
                let by_hand = sshd_config::effective(&by_hand, &[d.key.as_str()]);
                if let Some(h) = by_hand.filter(|h| h.value.eq_ignore_ascii_case(&d.value)) {
                    d.origin.clone_from(&h.origin);
                }
                d
            })
            .collect(),
        Err(_) => global,
    };
    let mut views = Vec::new();
    for name in users {
        let settings =
            sshd_t(&sshd, config, Some(name)).map_err(|e| Failure::failed(e.to_string()))?;
        views.push(UserView {
            name: (*name).to_owned(),
            root: is_root(name),
            settings,
        });
    }
    Ok(SshdState {
        global,
        views,
        fallback: None,
    })
}

/// `veilctl disable`: undoes the edit (keeping later edits of other lines);
/// falls back to the backup if veil's block was damaged.
pub fn disable(args: &DisableArgs) -> Result<String, Failure> {
    let service = args.service.as_str();
    check_service_name(service)?;
    let path = args.pam_dir.join(service);
    let current = read(&path)?;
    let backup = backup_path(&args.backup_dir, service);
    if !is_enabled(&current) {
        return Ok(format!("veil is not enabled in {}\n", path.display()));
    }
    let meta = fs::metadata(&path).map_err(|e| Failure::io(format!("{}: {e}", path.display())))?;
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
        fs::remove_file(&backup).map_err(|e| Failure::io(format!("{}: {e}", backup.display())))?;
    }
    let _ = fs::remove_dir(&args.backup_dir);
    Ok(format!(
        "{}: {how}; veil no longer authenticates {service}\n",
        path.display()
    ))
}

#[cfg(test)]
mod one_prompt_tests;
#[cfg(test)]
mod oracle_tests;
#[cfg(test)]
mod policy_tests;
#[cfg(test)]
mod tests;

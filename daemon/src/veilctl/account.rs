//! The system's side of an account, for the admin: `user add`, `user
//! list` and `status` warn on stderr when a user's shadow line would make
//! veild deny them whatever the password, by veild's own rule
//! ([`State::denies`]), with the reason veild logs and the fix. Only the
//! state is described, never the hash.

use std::path::Path;

use veil_daemon::common::config::PasswordSource;
use veil_daemon::common::shadow::{self, Entry, State};

use crate::Ctx;

/// The warnings for `names`, one per account that veild would deny; one
/// warning instead when the shadow file cannot be read.
pub fn warnings(ctx: &Ctx, names: &[&str]) -> Vec<String> {
    let p = &ctx.config.password;
    let system = p.source == PasswordSource::System;
    if names.is_empty() {
        return Vec::new();
    }
    let text = match shadow::read(&p.shadow) {
        Ok(text) => text,
        Err(e) => {
            return vec![format!(
                "warning: cannot read {} ({e}): the system's lock and expiry of {} not checked",
                p.shadow.display(),
                names.join(", ")
            )];
        }
    };
    let today = shadow::day_of(ctx.now.max(0) as u64);
    names
        .iter()
        .filter_map(|name| {
            warning(
                name,
                shadow::find(&text, name).as_ref(),
                today,
                system,
                &p.shadow,
            )
        })
        .collect()
}

/// Prints [`warnings`] on stderr.
pub fn warn(ctx: &Ctx, names: &[&str]) {
    for w in warnings(ctx, names) {
        eprintln!("veilctl: {w}");
    }
}

/// The warning for one account (`entry`: its shadow line) on day
/// `today`, if veild would deny it with this source.
pub fn warning(
    name: &str,
    entry: Option<&Entry>,
    today: i64,
    system_source: bool,
    shadow_path: &Path,
) -> Option<String> {
    let Some(entry) = entry else {
        return system_source.then(|| {
            format!(
                "warning: {name} has no line in {}; with [password] source = \"system\" veild \
                 denies {name} whatever the password (reason=no-system-account): create the \
                 system account (useradd {name}) or remove {name} from veil (veilctl user del {name})",
                shadow_path.display()
            )
        });
    };
    let state = entry.state(today);
    if !state.denies(system_source) {
        return None;
    }
    let denied = format!(
        "veild denies {name} whatever the password (reason={})",
        state.reason()
    );
    Some(match state {
        State::Locked => format!(
            "warning: {name}'s system account is locked (its shadow password field is {}: \
             passwd -l, usermod -L), so {denied}; if no lock is meant: usermod -U {name}",
            locked_field(&entry.hash)
        ),
        State::Expired => format!(
            "warning: {name}'s system account expired on {} (chage -E), so {denied}; to lift \
             it: chage -E -1 {name}",
            entry.expire.map_or_else(String::new, date)
        ),
        State::PasswordInactive if system_source => format!(
            "warning: {name}'s system password is older than its maximum age plus the inactive \
             period (chage -l {name}), so {denied}; set a new one (passwd {name}) or lift the \
             inactive period (chage -I -1 {name})"
        ),
        State::PasswordInactive => format!(
            "warning: {name}'s system password is older than its maximum age plus the inactive \
             period (chage -l {name}), so {denied}, although veil checks its own password; \
             lift the maximum age: chage -M -1 {name}"
        ),
        State::NoUsableHash | State::Usable => format!(
            "warning: {name} has no system password (shadow password field '!' or '*' alone, \
             empty, or of a method this host cannot check), and with [password] source = \
             \"system\" that is the password checked, so {denied}; set one: passwd {name}"
        ),
    })
}

/// How a locked field looks, without printing a hash: a short marker as
/// it is (`!*`, `!!`; no hash is that short), else "'!' before its hash".
fn locked_field(hash: &str) -> String {
    if hash.len() <= 3 {
        format!("{hash:?}")
    } else {
        "'!' before its hash".to_owned()
    }
}

/// Day `days` since 1970-01-01 as YYYY-MM-DD (proleptic Gregorian).
fn date(days: i64) -> String {
    // Howard Hinnant's civil_from_days.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!("{y:04}-{m:02}-{d:02}")
}

#[cfg(test)]
mod tests;

//! sshd settings under which sshd itself tells a real account from an
//! unknown name, or undoes veil's limits, whatever veil answers
//! (keywords as OpenSSH's servconf.c spells them):
//! * `Match invalid-user` (OpenSSH 9.9+): a block only unknown names get;
//! * `RefuseConnection yes` (9.9+) in a block that matches on the user
//!   (`User`, `Group`, `invalid-user`): the connection ends at the name;
//! * `PerSourcePenalties invaliduser:` (10.3+) unlike `authfail:`: how long
//!   a source is shut out after one try says which kind the name was;
//! * `UseDNS yes`: `PAM_RHOST` is a name the client's network picks.
//!
//! Match blocks are read from the files (`sshd -T` prints only the global
//! section), so this works with an sshd too old to know the keywords.

use super::sshd_config::{Directive, MatchBlock, effective};

/// What [`oracle_settings`] found: refusals (an oracle for every account
/// the setting covers) and warnings (a weakening), each with its fix.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct OracleReport {
    pub refusals: Vec<String>,
    pub warnings: Vec<String>,
}

/// The criteria keywords of a `Match` line (lower case): `User alice`,
/// `user=alice`, and the argument-less `all` and `invalid-user`.
fn criteria_keys(criteria: &str) -> Vec<String> {
    let mut keys = Vec::new();
    let mut tokens = criteria.split_whitespace();
    while let Some(t) = tokens.next() {
        let t = t.to_ascii_lowercase();
        if let Some((k, _)) = t.split_once('=') {
            keys.push(k.to_owned());
        } else {
            if t != "all" && t != "invalid-user" {
                tokens.next();
            }
            keys.push(t);
        }
    }
    keys
}

/// Seconds in an sshd time value (`30`, `30s`, `1m30s`, `5.000000` as
/// `sshd -T` prints it); `None` if it is not one.
fn seconds(value: &str) -> Option<f64> {
    let mut total = 0.0;
    let mut number = String::new();
    for c in value.chars() {
        if c.is_ascii_digit() || c == '.' {
            number.push(c);
            continue;
        }
        let unit = match c.to_ascii_lowercase() {
            's' => 1.0,
            'm' => 60.0,
            'h' => 3600.0,
            'd' => 86400.0,
            'w' => 604_800.0,
            _ => return None,
        };
        total += number.parse::<f64>().ok()? * unit;
        number.clear();
    }
    if !number.is_empty() {
        total += number.parse::<f64>().ok()?;
    }
    Some(total)
}

/// `PerSourcePenalties`' `authfail:` and `invaliduser:` (both default to
/// 5 s in OpenSSH 10.3+) and the line of the first; `None` when penalties
/// are off. sshd keeps the first value of each field over all the lines.
fn penalties(global: &[Directive]) -> Option<(String, String, String)> {
    let lines: Vec<&Directive> = global
        .iter()
        .filter(|d| d.key == "persourcepenalties")
        .collect();
    let first = lines.first()?;
    let words = || lines.iter().flat_map(|d| d.value.split_whitespace());
    let enabled = words().find(|w| w.eq_ignore_ascii_case("no") || w.eq_ignore_ascii_case("yes"));
    if enabled.is_some_and(|w| w.eq_ignore_ascii_case("no")) {
        return None;
    }
    let get = |name: &str| {
        words()
            .find_map(|w| w.strip_prefix(name))
            .unwrap_or("5")
            .to_owned()
    };
    Some((first.origin.clone(), get("authfail:"), get("invaliduser:")))
}

fn show(value: &str) -> String {
    seconds(value).map_or(value.to_owned(), |s| format!("{s}s"))
}

/// Checks the global settings (as `sshd -T` or the files give them) and
/// every Match block.
pub fn oracle_settings(global: &[Directive], blocks: &[MatchBlock]) -> OracleReport {
    let mut out = OracleReport::default();
    for b in blocks.iter().filter(|b| !b.directives.is_empty()) {
        let keys = criteria_keys(&b.criteria);
        if keys.iter().any(|k| k == "invalid-user") {
            out.refusals.push(format!(
                "    {}: Match {}: sshd applies this block only to names that are not accounts \
                 here (OpenSSH 9.9+), so it answers every unknown name differently from every \
                 real one, before veil is asked\n      fix: delete the block (a setting meant \
                 for everyone belongs in the global section)",
                b.origin, b.criteria
            ));
            continue;
        }
        if !keys.iter().any(|k| k == "user" || k == "group") {
            continue;
        }
        for d in b
            .directives
            .iter()
            .filter(|d| d.key == "refuseconnection" && d.value.eq_ignore_ascii_case("yes"))
        {
            out.refusals.push(format!(
                "    {}: RefuseConnection yes in \"Match {}\" at {}: sshd drops the connection \
                 right after the user name for the names this block matches (OpenSSH 9.9+), \
                 before veil's prompts, so those names are told apart from every other one\n      \
                 fix: delete the line and name them in DenyUsers or DenyGroups instead (sshd \
                 then answers them like an unknown name: the prompts come, and fail)",
                d.origin, b.criteria, b.origin
            ));
        }
    }
    if let Some((origin, authfail, invalid)) = penalties(global) {
        let differ = match (seconds(&authfail), seconds(&invalid)) {
            (Some(a), Some(i)) => (a - i).abs() > 1e-9,
            _ => authfail != invalid,
        };
        if differ {
            out.refusals.push(format!(
                "    {}: PerSourcePenalties invaliduser:{} but authfail:{}: sshd (OpenSSH 10.3+) \
                 shuts a source out for one after an unknown name and for the other after a \
                 failed real account, so a client that fails once and reconnects learns which \
                 the name was\n      fix: PerSourcePenalties invaliduser:{authfail} (the same as \
                 authfail; both default to 5s)",
                origin,
                show(&invalid),
                show(&authfail),
            ));
        }
    }
    if let Some(d) = effective(global, &["usedns"]).filter(|d| d.value.eq_ignore_ascii_case("yes"))
    {
        out.warnings.push(format!(
            "warning: UseDNS yes ({}): sshd hands veil the client's host name (its PTR record, \
             which whoever runs the client's network chooses) as PAM_RHOST in place of its \
             address; veil counts every host name as the one source `names`, so these logins \
             lose their own per-address limits and share one counter (a spray through names \
             locks `names` for every user not known-good there)\n  fix: UseDNS no (the default)\n",
            d.origin
        ));
    }
    out
}

/// The refusal text for `report` (its refusals must not be empty).
pub fn describe_refusals(report: &OracleReport) -> String {
    format!(
        "with these settings sshd itself tells a real account from an unknown name, whatever \
         veil answers; nothing changed:\n{}\n",
        report.refusals.join("\n")
    )
}

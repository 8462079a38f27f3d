//! Gradual rollout: who must have a TOTP code. `policy = "required"`:
//! everyone. `"if-enrolled"`: members of `required_groups`, and from
//! `enrol_by` on everyone; the others log in with the password alone
//! until they enrol. Only veild's decision changes: every user sees both
//! prompts, and every request does the same lookups (the groups and the
//! user's account are looked up in NSS for every request, unknown names
//! too, whenever groups are configured).

use nix::unistd::{Group, User};

use crate::common::config::{Totp, TotpPolicy};

/// The rollout rules of `[totp]`.
#[derive(Debug, Clone)]
pub struct Rollout {
    policy: TotpPolicy,
    groups: Vec<String>,
    enrol_by: Option<i64>,
}

impl From<&Totp> for Rollout {
    fn from(totp: &Totp) -> Rollout {
        Rollout {
            policy: totp.policy,
            groups: totp.required_groups.clone(),
            enrol_by: totp.enrol_by_unix(),
        }
    }
}

impl Rollout {
    /// Whether `user` must have an active TOTP secret at Unix time `now`.
    pub fn code_required(&self, user: &str, now: u64) -> bool {
        self.code_required_under(self.policy, user, now)
    }

    /// [`Rollout::code_required`] with `policy` in place of `[totp]
    /// policy` (a service's `totp_policy`); the same lookups either way.
    pub fn code_required_under(&self, policy: TotpPolicy, user: &str, now: u64) -> bool {
        let in_group = self.in_required_group(user);
        let now = i64::try_from(now).unwrap_or(i64::MAX);
        policy == TotpPolicy::Required || self.enrol_by.is_some_and(|d| now >= d) || in_group
    }

    /// `[totp] policy`.
    pub fn policy(&self) -> TotpPolicy {
        self.policy
    }

    /// Membership of any required group: listed as a member, or the
    /// group is the account's primary one. Every group is looked up, with
    /// no early exit, and so is the account, whoever asks. A lookup that
    /// fails (NSS down) counts as membership: fail closed.
    fn in_required_group(&self, user: &str) -> bool {
        if self.groups.is_empty() {
            return false;
        }
        let primary = match User::from_name(user) {
            Ok(account) => Ok(account.map(|a| a.gid)),
            Err(e) => Err(e),
        };
        let mut member = primary.is_err();
        for name in &self.groups {
            match Group::from_name(name) {
                Ok(Some(group)) => {
                    let listed = group.mem.iter().any(|m| m == user);
                    let primary_group = matches!(primary, Ok(Some(gid)) if gid == group.gid);
                    member |= listed || primary_group;
                }
                // A group that does not exist has no members.
                Ok(None) => {}
                Err(_) => member = true,
            }
        }
        member
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rollout(policy: TotpPolicy, groups: &[&str], enrol_by: Option<&str>) -> Rollout {
        Rollout::from(&Totp {
            policy,
            skew: 1,
            required_groups: groups.iter().map(|g| g.to_string()).collect(),
            enrol_by: enrol_by.map(str::to_owned),
            issuer: None,
        })
    }

    #[test]
    fn required_means_everyone_and_if_enrolled_no_one_without_rules() {
        assert!(rollout(TotpPolicy::Required, &[], None).code_required("anyone", 0));
        assert!(!rollout(TotpPolicy::IfEnrolled, &[], None).code_required("anyone", 0));
    }

    #[test]
    fn enrol_by_makes_everyone_required_from_that_day_on() {
        let r = rollout(TotpPolicy::IfEnrolled, &[], Some("2026-03-01"));
        assert!(!r.code_required("bob", 1_772_323_199));
        assert!(r.code_required("bob", 1_772_323_200));
        assert!(r.code_required("no-such-user-xyz", 1_772_323_200));
    }

    #[test]
    fn a_primary_group_counts_and_an_absent_group_has_no_members() {
        // root's primary group is root on every Debian system.
        let r = rollout(TotpPolicy::IfEnrolled, &["root"], None);
        assert!(r.code_required("root", 0));
        assert!(!r.code_required("no-such-user-xyz", 0));
        let r = rollout(TotpPolicy::IfEnrolled, &["no-such-group-xyz"], None);
        assert!(!r.code_required("root", 0));
    }
}

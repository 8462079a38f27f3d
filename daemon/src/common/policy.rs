//! The policy a request is decided under: its PAM service's
//! `[service.NAME]` section, else the host's settings. The prompts are the
//! module line's; a policy only says which lines veild accepts and whether
//! the code counts, so it never changes what a person sees.

use std::collections::BTreeMap;

use crate::common::config::{Config, Factors, Service, TotpPolicy};
use crate::common::rollout::Rollout;

/// Where a request's policy came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Origin {
    /// The service's `[service.NAME]` section.
    Section,
    /// No section for the service: the host's settings.
    Host,
    /// A peer other than root names its service itself (a program the
    /// user runs could name any), so it gets the host's settings.
    NotRoot,
}

/// The effective policy of one service.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Policy {
    /// `None`: whatever the module line declares.
    pub factors: Option<Factors>,
    pub totp: TotpPolicy,
    pub origin: Origin,
}

impl Policy {
    /// Whether the factors the module line declares (`factors=code`, or
    /// the default password and code) are the ones this service accepts.
    /// `["password"]` takes the default line: the module has no line that
    /// asks no code, so its code prompt is shown and ignored.
    pub fn accepts(&self, code_only: bool) -> bool {
        match self.factors {
            None => true,
            Some(Factors::Code) => code_only,
            Some(Factors::PasswordAndCode | Factors::Password) => !code_only,
        }
    }

    /// Whether the code is checked at all (not under `["password"]`).
    pub fn asks_code(&self) -> bool {
        self.factors != Some(Factors::Password)
    }

    /// One line for `veilctl enable` and the admin.
    pub fn describe(&self, service: &str) -> String {
        let factors = match self.factors {
            Some(f) => f.to_string(),
            None => "as the module line declares".to_owned(),
        };
        let totp = match (self.asks_code(), self.totp) {
            (false, _) => "no code",
            (true, TotpPolicy::Required) => "required",
            (true, TotpPolicy::IfEnrolled) => "if-enrolled (with [totp]'s rollout)",
        };
        let origin = match self.origin {
            Origin::Section => format!("[service.{service}] in veild.toml"),
            Origin::Host | Origin::NotRoot => "the host's settings".to_owned(),
        };
        format!("policy for {service}: factors {factors}, TOTP {totp} (from {origin})")
    }
}

/// Every service's policy, and the host's rollout rules they share.
#[derive(Debug, Clone)]
pub struct Policies {
    rollout: Rollout,
    services: BTreeMap<String, Service>,
}

impl From<&Config> for Policies {
    fn from(config: &Config) -> Policies {
        Policies {
            rollout: Rollout::from(&config.totp),
            services: config.service.clone(),
        }
    }
}

impl Policies {
    /// The policy for a request naming `service` from a peer of `peer_uid`.
    pub fn of(&self, service: &str, peer_uid: u32) -> Policy {
        if peer_uid != 0 {
            return self.host(Origin::NotRoot);
        }
        self.for_service(service)
    }

    /// The policy of `service` for root's applications (sshd, sudo, su, login).
    pub fn for_service(&self, service: &str) -> Policy {
        match self.services.get(service) {
            Some(section) => Policy {
                factors: section.factors,
                totp: section.totp_policy.unwrap_or(self.rollout.policy()),
                origin: Origin::Section,
            },
            None => self.host(Origin::Host),
        }
    }

    fn host(&self, origin: Origin) -> Policy {
        Policy {
            factors: None,
            totp: self.rollout.policy(),
            origin,
        }
    }

    /// Whether `user` must have a TOTP secret under `policy`: never for
    /// the password alone, else the rollout under the policy's TOTP
    /// setting. The rollout's lookups are made in every case alike.
    pub fn code_required(&self, policy: &Policy, user: &str, now: u64) -> bool {
        let required = self.rollout.code_required_under(policy.totp, user, now);
        required && policy.asks_code()
    }

    /// `[service.NAME] fresh_code_window_s` for a request naming
    /// `service` from a peer of `peer_uid`: 0 (off) for a peer other than
    /// root, which names its service itself.
    pub fn fresh_window(&self, service: &str, peer_uid: u32) -> u64 {
        if peer_uid != 0 {
            return 0;
        }
        self.services
            .get(service)
            .and_then(|s| s.fresh_code_window_s)
            .unwrap_or(0)
    }

    /// Whether any service has a fresh-code window (else nothing is bound).
    pub fn any_fresh_window(&self) -> bool {
        self.services
            .values()
            .any(|s| s.fresh_code_window_s.unwrap_or(0) > 0)
    }

    /// The host's rollout rules.
    pub fn rollout(&self) -> &Rollout {
        &self.rollout
    }
}

#[cfg(test)]
mod tests;

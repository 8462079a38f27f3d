//! Where a remote attempt comes from, as the ledger counts it.
//!
//! PAM_RHOST is what the front end reported, in whatever spelling it chose:
//! `::ffff:192.0.2.1`, `[2001:db8::1]:22`, `fe80::1%eth0`, or, with sshd's
//! `UseDNS yes`, the client's PTR name, which the client's owner controls.
//! Counting that text as given lets one host be many sources (and have many
//! fair shares). So an address counts as one canonical address, grouped by
//! the `[lockout]` prefixes (like OpenSSH's `PerSourceNetBlockSize`), and
//! every host name counts as the one source [`NAMES`]: a name buys nothing.
//! Addresses in `[lockout] exempt_networks` (like OpenSSH's
//! `PerSourcePenaltyExemptList`) are charged to their own (user, source)
//! key only, never to the wide keys a botnet can run up.
//!
//! A leaf: config and the ledger use it, it uses neither.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// The one source every PAM_RHOST that is not an address counts as.
pub const NAMES: &str = "names";

/// PAM_RHOST as one address: brackets, a port and a zone id dropped, an
/// IPv4-mapped IPv6 address as IPv4. `None`: not an address (a host name).
pub fn address(rhost: &str) -> Option<IpAddr> {
    let host = match rhost.strip_prefix('[') {
        // `[addr]` or `[addr]:port`
        Some(rest) => {
            let (inside, after) = rest.split_once(']')?;
            if !(after.is_empty() || after.strip_prefix(':').is_some_and(is_port)) {
                return None;
            }
            inside
        }
        // `a.b.c.d:port`; a bare IPv6 address has more than one colon.
        None => match rhost.split_once(':') {
            Some((v4, port)) if is_port(port) && v4.parse::<Ipv4Addr>().is_ok() => v4,
            _ => rhost,
        },
    };
    // A zone id (`%eth0`) names the host's own interface, not the peer.
    let host = match host.split_once('%') {
        Some((v6, zone)) if !zone.is_empty() && v6.contains(':') => v6,
        Some(_) => return None,
        None => host,
    };
    match host.parse::<IpAddr>().ok()? {
        IpAddr::V6(v6) => Some(v6.to_ipv4_mapped().map_or(IpAddr::V6(v6), IpAddr::V4)),
        v4 => Some(v4),
    }
}

fn is_port(s: &str) -> bool {
    s.bytes().all(|b| b.is_ascii_digit()) && s.parse::<u16>().is_ok()
}

/// The canonical form of a PAM_RHOST: its address, or [`NAMES`].
pub fn canonical(rhost: &str) -> String {
    address(rhost).map_or_else(|| NAMES.to_owned(), |a| a.to_string())
}

/// An address block: `192.0.2.0/24`, `2001:db8::/32`, or one address.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Network {
    base: IpAddr,
    prefix: u8,
}

impl Network {
    /// The block of `prefix` bits around `addr`.
    pub fn around(addr: IpAddr, prefix: u8) -> Network {
        let base = match addr {
            IpAddr::V4(a) => {
                let prefix = u32::from(prefix.min(32));
                let mask = u32::MAX.checked_shl(32 - prefix).unwrap_or(0);
                IpAddr::V4(Ipv4Addr::from(u32::from(a) & mask))
            }
            IpAddr::V6(a) => {
                let prefix = u32::from(prefix.min(128));
                let mask = u128::MAX.checked_shl(128 - prefix).unwrap_or(0);
                IpAddr::V6(Ipv6Addr::from(u128::from(a) & mask))
            }
        };
        Network {
            base,
            prefix: prefix.min(full_length(addr)),
        }
    }

    pub fn contains(&self, addr: IpAddr) -> bool {
        addr.is_ipv4() == self.base.is_ipv4() && Network::around(addr, self.prefix) == *self
    }
}

fn full_length(addr: IpAddr) -> u8 {
    if addr.is_ipv4() { 32 } else { 128 }
}

/// One address prints bare, as the ledger has always stored it.
impl fmt::Display for Network {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.prefix == full_length(self.base) {
            write!(f, "{}", self.base)
        } else {
            write!(f, "{}/{}", self.base, self.prefix)
        }
    }
}

/// Why a text is not a [`Network`]; each message quotes the text.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NetworkError {
    #[error("{0:?} is not an address or a network such as 192.0.2.0/24")]
    NotAnAddress(String),
    #[error("{0:?}: write an IPv4 network as IPv4")]
    MappedV4(String),
    #[error("{text:?}: the prefix length must be 0 to {full}")]
    Prefix { text: String, full: u8 },
    #[error("{text:?} has host bits set: did you mean {net}?")]
    HostBits { text: String, net: Network },
}

/// Strict: an address, or an address with a prefix length and no host
/// bits set (`10.0.0.1/8` is a typo, not `10.0.0.0/8`). IPv4 networks are
/// written as IPv4: a `::ffff:` one could never match, as addresses are
/// compared in their IPv4 form.
impl FromStr for Network {
    type Err = NetworkError;

    fn from_str(s: &str) -> Result<Network, NetworkError> {
        let (addr, prefix) = match s.split_once('/') {
            Some((a, p)) => (a, Some(p)),
            None => (s, None),
        };
        let addr: IpAddr = addr
            .parse()
            .map_err(|_| NetworkError::NotAnAddress(s.to_owned()))?;
        if let IpAddr::V6(v6) = addr {
            if v6.to_ipv4_mapped().is_some() {
                return Err(NetworkError::MappedV4(s.to_owned()));
            }
        }
        let full = full_length(addr);
        let prefix = match prefix {
            None => full,
            // Digits only, no leading zero: `/+24` and `/024` are refused.
            Some(p) => p
                .parse::<u8>()
                .ok()
                .filter(|&n| n <= full && n.to_string() == p)
                .ok_or_else(|| NetworkError::Prefix {
                    text: s.to_owned(),
                    full,
                })?,
        };
        let net = Network::around(addr, prefix);
        if net.base != addr {
            return Err(NetworkError::HostBits {
                text: s.to_owned(),
                net,
            });
        }
        Ok(net)
    }
}

impl TryFrom<String> for Network {
    type Error = NetworkError;
    fn try_from(s: String) -> Result<Network, NetworkError> {
        s.parse()
    }
}

impl From<Network> for String {
    fn from(n: Network) -> String {
        n.to_string()
    }
}

/// How remote sources are grouped and which are exempt from the wide keys.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sources {
    /// Leading bits of an IPv4 address that make one source (32: each address).
    pub ipv4_prefix: u8,
    /// Leading bits of an IPv6 address that make one source (64: one
    /// host can rotate through its whole /64).
    pub ipv6_prefix: u8,
    /// Addresses charged to their own (user, source) key only.
    pub exempt: Vec<Network>,
}

impl Default for Sources {
    fn default() -> Sources {
        Sources {
            ipv4_prefix: 32,
            ipv6_prefix: 64,
            exempt: Vec::new(),
        }
    }
}

impl Sources {
    /// The stored source of a [`canonical`] remote address: its block at
    /// the configured prefix (`192.0.2.7`, `2001:db8:1:2::/64`); a name as
    /// [`NAMES`].
    pub fn group(&self, canonical: &str) -> String {
        match canonical.parse::<IpAddr>() {
            Ok(a @ IpAddr::V4(_)) => Network::around(a, self.ipv4_prefix).to_string(),
            Ok(a @ IpAddr::V6(_)) => Network::around(a, self.ipv6_prefix).to_string(),
            Err(_) => NAMES.to_owned(),
        }
    }

    /// The stored source of a PAM_RHOST (or an address an admin typed).
    pub fn key(&self, rhost: &str) -> String {
        self.group(&canonical(rhost))
    }

    /// A [`canonical`] address inside an exempt network. Names never are.
    pub fn exempt(&self, canonical: &str) -> bool {
        canonical
            .parse::<IpAddr>()
            .is_ok_and(|a| self.exempt.iter().any(|n| n.contains(a)))
    }
}

#[cfg(test)]
mod tests;

//! System passwords: hashes in the format `/etc/shadow` holds, checked and
//! made with the system's libxcrypt (yescrypt, gost-yescrypt, sha512crypt,
//! sha256crypt, bcrypt, md5crypt: whatever pam_unix can check), and the
//! method and cost new passwords get on this host ([`policy`]).

#[allow(unsafe_code)]
mod ffi;
pub mod policy;

use std::ffi::CString;

use serde::{Deserialize, Serialize};
use subtle::ConstantTimeEq;
use zeroize::Zeroizing;

pub use ffi::Scratch;

/// A hashing method libxcrypt can make new hashes with.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Kind {
    Yescrypt,
    GostYescrypt,
    Sha512,
    Sha256,
    Bcrypt,
    Md5,
}

impl Kind {
    /// The setting prefix crypt_gensalt takes.
    pub fn prefix(self) -> &'static str {
        match self {
            Kind::Yescrypt => "$y$",
            Kind::GostYescrypt => "$gy$",
            Kind::Sha512 => "$6$",
            Kind::Sha256 => "$5$",
            Kind::Bcrypt => "$2b$",
            Kind::Md5 => "$1$",
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Kind::Yescrypt => "yescrypt",
            Kind::GostYescrypt => "gost-yescrypt",
            Kind::Sha512 => "sha512",
            Kind::Sha256 => "sha256",
            Kind::Bcrypt => "bcrypt",
            Kind::Md5 => "md5",
        }
    }

    /// The method of a stored hash, from its `$id$` prefix.
    pub fn of_hash(hash: &str) -> Option<Kind> {
        [
            Kind::Yescrypt,
            Kind::GostYescrypt,
            Kind::Sha512,
            Kind::Sha256,
            Kind::Bcrypt,
            Kind::Md5,
        ]
        .into_iter()
        .find(|k| hash.starts_with(k.prefix()))
        .or_else(|| {
            ["$2a$", "$2y$"]
                .iter()
                .any(|p| hash.starts_with(p))
                .then_some(Kind::Bcrypt)
        })
    }
}

/// The method and cost new passwords get, and where that was read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Method {
    pub kind: Kind,
    /// crypt_gensalt's count: yescrypt's cost factor, sha-crypt's rounds,
    /// bcrypt's log2 cost. `None`: libxcrypt's default for the method.
    pub cost: Option<u64>,
    /// The file (or config key) the method came from.
    pub from: String,
}

#[derive(Debug, thiserror::Error)]
pub enum CryptError {
    #[error("libxcrypt cannot make a {method} setting with cost {cost}")]
    Gensalt { method: &'static str, cost: String },
    #[error("libxcrypt cannot hash with the {0} setting it made")]
    Hash(&'static str),
    #[error("no randomness from the OS: {0}")]
    Random(#[source] getrandom::Error),
}

/// True when `hash` is something libxcrypt can check a password against:
/// not empty, not a lock (`!`) or no-login (`*`) marker, and a setting
/// libxcrypt accepts.
pub fn usable(hash: &str) -> bool {
    if hash.is_empty() || hash.starts_with('!') || hash.starts_with('*') {
        return false;
    }
    match CString::new(hash) {
        Ok(c) => ffi::setting_usable(&c),
        Err(_) => false,
    }
}

/// True when `password` hashes to `hash` with `hash`'s own setting. The
/// hash is always computed; the comparison is constant-time. A password
/// with a NUL byte (which no PAM conversation can produce) is hashed up
/// to the NUL, as C would see it, and never matches.
pub fn verify(scratch: &mut Scratch, hash: &str, password: &[u8]) -> bool {
    let cut = password.iter().position(|&b| b == 0);
    let phrase = c_phrase(&password[..cut.unwrap_or(password.len())]);
    let Ok(phrase) = std::ffi::CStr::from_bytes_with_nul(&phrase) else {
        return false;
    };
    let Ok(setting) = CString::new(hash) else {
        return false;
    };
    let Some(computed) = ffi::crypt(scratch, phrase, &setting) else {
        return false;
    };
    let computed = Zeroizing::new(computed);
    cut.is_none() && bool::from(computed.as_bytes().ct_eq(hash.as_bytes()))
}

/// `bytes` (which hold no NUL) and a NUL, in memory wiped on drop.
fn c_phrase(bytes: &[u8]) -> Zeroizing<Vec<u8>> {
    let mut phrase = Zeroizing::new(Vec::with_capacity(bytes.len() + 1));
    phrase.extend_from_slice(bytes);
    phrase.push(0);
    phrase
}

/// A setting (method, cost and a salt from the OS) for a new hash.
pub fn setting(method: &Method) -> Result<String, CryptError> {
    ffi::gensalt(method.kind.prefix(), method.cost.unwrap_or(0)).ok_or_else(|| {
        CryptError::Gensalt {
            method: method.kind.name(),
            cost: method.cost.map_or("default".into(), |c| c.to_string()),
        }
    })
}

/// A fresh hash of `password` with `method` (a salt from the OS).
pub fn hash(method: &Method, password: &[u8]) -> Result<String, CryptError> {
    let setting = setting(method)?;
    let fail = || CryptError::Hash(method.kind.name());
    let phrase = c_phrase(password);
    let phrase = std::ffi::CStr::from_bytes_with_nul(&phrase).map_err(|_| fail())?;
    let setting = CString::new(setting).map_err(|_| fail())?;
    ffi::crypt(&mut Scratch::default(), phrase, &setting)
        .filter(|h| !h.starts_with('*'))
        .ok_or_else(fail)
}

/// The dummy: a hash of random bytes nobody knows, made at start with the
/// method and cost new passwords get on this host, so that an unknown
/// name or an unusable hash costs what a fresh password does.
pub fn dummy(method: &Method) -> Result<String, CryptError> {
    let mut secret = [0u8; 24];
    getrandom::getrandom(&mut secret).map_err(CryptError::Random)?;
    // Printable, so no NUL can cut it short.
    let phrase = Zeroizing::new(data_encoding::HEXLOWER.encode(&secret));
    hash(method, phrase.as_bytes())
}

/// A hash's method and cost parameters without its salt and checksum,
/// e.g. `$y$j9T` or `$6$rounds=65536` (`$6$` with the default 5000
/// rounds): two hashes with the same settings cost the same.
pub fn settings_of(hash: &str) -> String {
    let Some(kind) = Kind::of_hash(hash) else {
        return hash.chars().take(3).collect();
    };
    let rest = &hash[kind.prefix().len().min(hash.len())..];
    let first = rest.split('$').next().unwrap_or("");
    match kind {
        Kind::Sha512 | Kind::Sha256 => {
            let rounds = first
                .strip_prefix("rounds=")
                .and_then(|r| r.parse::<u64>().ok());
            match rounds {
                Some(r) if r != 5000 => format!("{}rounds={r}", kind.prefix()),
                _ => kind.prefix().to_owned(),
            }
        }
        Kind::Md5 => kind.prefix().to_owned(),
        _ => format!("{}{first}", kind.prefix()),
    }
}

/// A hash's method and cost for people: `yescrypt j9T`, `sha512 rounds=5000`.
pub fn describe(hash: &str) -> String {
    let Some(kind) = Kind::of_hash(hash) else {
        return "unknown".to_owned();
    };
    let settings = settings_of(hash);
    let params = &settings[kind.prefix().len().min(settings.len())..];
    match (kind, params) {
        (Kind::Sha512 | Kind::Sha256, "") => format!("{} rounds=5000", kind.name()),
        (_, "") => kind.name().to_owned(),
        (_, p) => format!("{} {p}", kind.name()),
    }
}

#[cfg(test)]
mod tests;

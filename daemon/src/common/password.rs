//! argon2id hashing with the configured parameters, and the dummy hash
//! that makes an unknown user cost exactly what a real one does.

use argon2::password_hash::{PasswordHash, PasswordHasher, SaltString};
use argon2::{Algorithm, Argon2, Block, Params, Version};
use subtle::ConstantTimeEq;
use zeroize::{Zeroize, Zeroizing};

use crate::common::config;

#[derive(Debug, thiserror::Error)]
pub enum HashError {
    #[error("invalid argon2 parameters: {0}")]
    Params(#[source] argon2::Error),
    #[error("cannot hash: {0}")]
    Hash(#[source] argon2::password_hash::Error),
    #[error("no randomness from the OS: {0}")]
    Random(#[source] getrandom::Error),
}

#[derive(Debug, Clone)]
pub struct Hasher {
    params: Params,
}

impl Hasher {
    pub fn new(cfg: &config::Argon2) -> Result<Hasher, HashError> {
        let params =
            Params::new(cfg.m_cost_kib, cfg.t_cost, cfg.p_cost, None).map_err(HashError::Params)?;
        Ok(Hasher { params })
    }

    fn argon2(&self) -> Argon2<'static> {
        Argon2::new(Algorithm::Argon2id, Version::V0x13, self.params.clone())
    }

    /// A PHC string (`$argon2id$v=19$m=...`) for a new password, with a
    /// 16-byte salt from the OS.
    pub fn hash(&self, password: &[u8]) -> Result<String, HashError> {
        let mut salt = [0u8; 16];
        getrandom::getrandom(&mut salt).map_err(HashError::Random)?;
        let salt = SaltString::encode_b64(&salt).map_err(HashError::Hash)?;
        let hash = self
            .argon2()
            .hash_password(password, &salt)
            .map_err(HashError::Hash)?;
        Ok(hash.to_string())
    }

    /// True when `phc` is a valid hash of `password`. The cost is the one
    /// written in the hash, so stored hashes must carry the current
    /// parameters (see [`Hasher::needs_rehash`]) for timing to match the dummy.
    pub fn verify(&self, phc: &str, password: &[u8]) -> bool {
        self.verify_with(&mut Memory::default(), phc, password)
    }

    /// [`Hasher::verify`] in a worker's own memory: argon2's blocks are
    /// allocated once per worker, not per request, so memory stays at
    /// workers × m_cost and no request pays for fresh pages.
    pub fn verify_with(&self, memory: &mut Memory, phc: &str, password: &[u8]) -> bool {
        #[cfg(test)]
        VERIFIES.with(|n| n.set(n.get() + 1));
        let Ok(parsed) = PasswordHash::new(phc) else {
            return false;
        };
        let Ok(algorithm) = Algorithm::try_from(parsed.algorithm) else {
            return false;
        };
        let version = match parsed.version.map(Version::try_from) {
            None => Version::V0x13,
            Some(Ok(v)) => v,
            Some(Err(_)) => return false,
        };
        let Ok(params) = Params::try_from(&parsed) else {
            return false;
        };
        let (Some(salt), Some(expected)) = (parsed.salt, parsed.hash) else {
            return false;
        };
        let mut salt_buf = [0u8; 64];
        let Ok(salt) = salt.decode_b64(&mut salt_buf) else {
            return false;
        };
        let argon2 = Argon2::new(algorithm, version, params.clone());
        let needed = params.block_count();
        let mut out = Zeroizing::new(vec![0u8; expected.len()]);
        let computed = if needed <= self.params.block_count() {
            if memory.0.len() < needed {
                memory.0.resize(self.params.block_count(), Block::default());
            }
            argon2.hash_password_into_with_memory(password, salt, &mut out, &mut memory.0[..needed])
        } else {
            // An old hash costlier than the current parameters: its memory
            // is borrowed for this verify only (it is rehashed on success).
            let mut borrowed = Memory(vec![Block::default(); needed]);
            argon2.hash_password_into_with_memory(password, salt, &mut out, &mut borrowed.0[..])
        };
        computed.is_ok() && bool::from(expected.as_bytes().ct_eq(&out))
    }

    /// A stored hash whose algorithm or parameters differ from the current
    /// ones; it is replaced at the next successful login.
    pub fn needs_rehash(&self, phc: &str) -> bool {
        let Ok(parsed) = PasswordHash::new(phc) else {
            return true;
        };
        if parsed.algorithm.as_str() != "argon2id" || parsed.version != Some(0x13) {
            return true;
        }
        match Params::try_from(&parsed) {
            Ok(p) => {
                p.m_cost() != self.params.m_cost()
                    || p.t_cost() != self.params.t_cost()
                    || p.p_cost() != self.params.p_cost()
                    || p.output_len().unwrap_or(32) != 32
            }
            Err(_) => true,
        }
    }

    /// A hash of random bytes nobody knows, made at start with the current
    /// parameters: verified against for unknown users.
    pub fn dummy(&self) -> Result<String, HashError> {
        let mut secret = [0u8; 32];
        getrandom::getrandom(&mut secret).map_err(HashError::Random)?;
        self.hash(&secret)
    }
}

/// One worker's argon2 working memory, reused from request to request and
/// wiped when dropped.
#[derive(Default)]
pub struct Memory(Vec<Block>);

impl std::fmt::Debug for Memory {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Memory({} KiB)", self.0.len())
    }
}

impl Drop for Memory {
    fn drop(&mut self) {
        self.0.iter_mut().for_each(Zeroize::zeroize);
    }
}

#[cfg(test)]
thread_local! {
    /// Password verifies on this thread, for tests that count the work.
    pub static VERIFIES: std::cell::Cell<usize> = const { std::cell::Cell::new(0) };
}

#[cfg(test)]
mod tests;

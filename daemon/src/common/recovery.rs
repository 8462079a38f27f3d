//! Recovery codes: ten single-use codes that stand in for a TOTP code at
//! the `Verification code:` prompt (a lost phone). Each is 10 characters
//! of Crockford's base32 (50 bits), shown once as `xxxx-xxxx-xx`.
//!
//! Only keyed hashes are stored: HMAC-SHA256 under a random 256-bit key
//! of the user's own set. Not a slow hash: the check runs on every login
//! request, for everyone, and must stay cheap and constant (one HMAC and
//! ten constant-time compares, whoever asks). A key per set means equal
//! codes of two users never hash alike and nothing can be precomputed;
//! whoever holds the database holds the TOTP secrets too, so a slow hash
//! would protect nothing a stolen database does not already give away.

use hmac::{Hmac, Mac};
use sha2::Sha256;
use subtle::ConstantTimeEq;
use zeroize::Zeroizing;

/// Codes per set.
pub const COUNT: usize = 10;
/// Characters of one code (5 bits each: 50 bits).
pub const CODE_CHARS: usize = 10;
pub const KEY_BYTES: usize = 32;
pub const HASH_BYTES: usize = 32;

/// Crockford's base32, lower case: no i, l, o or u to misread.
const ALPHABET: &[u8; 32] = b"0123456789abcdefghjkmnpqrstvwxyz";

/// One user's stored set: the key, the ten hashes, and which are used.
#[derive(Clone)]
pub struct RecoverySet {
    pub key: Zeroizing<Vec<u8>>,
    /// Exactly [`COUNT`] hashes, slot by slot.
    pub hashes: Vec<[u8; HASH_BYTES]>,
    /// Bit `i` set: slot `i` has been used.
    pub used: u16,
}

impl std::fmt::Debug for RecoverySet {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RecoverySet")
            .field("left", &self.left())
            .finish_non_exhaustive()
    }
}

impl RecoverySet {
    /// Codes not yet used.
    pub fn left(&self) -> u32 {
        COUNT as u32 - (self.used & ((1 << COUNT) - 1)).count_ones()
    }

    /// The hashes as one blob (slot order), as stores keep them.
    pub fn hashes_blob(&self) -> Vec<u8> {
        self.hashes.concat()
    }

    /// A set from its stored parts; `None` if they are not of the stored shape.
    pub fn from_parts(key: Vec<u8>, hashes: &[u8], used: i64) -> Option<RecoverySet> {
        if key.len() != KEY_BYTES || hashes.len() != COUNT * HASH_BYTES {
            return None;
        }
        Some(RecoverySet {
            key: Zeroizing::new(key),
            hashes: hashes
                .chunks_exact(HASH_BYTES)
                .map(|c| c.try_into().expect("chunks of HASH_BYTES"))
                .collect(),
            used: u16::try_from(used).unwrap_or(u16::MAX),
        })
    }
}

/// What checking a typed code against a set found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RecoveryCheck {
    /// Matched this unused slot.
    Matched(u8),
    /// Matched a slot already used.
    Used,
    Wrong,
}

/// A new set: the codes to show (once) and what to store.
pub struct NewCodes {
    pub codes: Vec<Zeroizing<String>>,
    pub set: RecoverySet,
}

impl std::fmt::Debug for NewCodes {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("NewCodes(<redacted>)")
    }
}

fn new_key() -> Result<Zeroizing<Vec<u8>>, getrandom::Error> {
    let mut key = Zeroizing::new(vec![0u8; KEY_BYTES]);
    getrandom::getrandom(&mut key)?;
    Ok(key)
}

fn hash(key: &[u8], canonical: &[u8; CODE_CHARS]) -> [u8; HASH_BYTES] {
    let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(key).expect("HMAC takes any key length");
    mac.update(canonical);
    mac.finalize().into_bytes().into()
}

/// Ten fresh codes from the OS random generator, and their set.
pub fn generate() -> Result<NewCodes, getrandom::Error> {
    let key = new_key()?;
    let mut codes = Vec::with_capacity(COUNT);
    let mut hashes = Vec::with_capacity(COUNT);
    for _ in 0..COUNT {
        let mut raw = Zeroizing::new([0u8; CODE_CHARS]);
        getrandom::getrandom(&mut raw[..])?;
        let mut canonical = Zeroizing::new([0u8; CODE_CHARS]);
        for (c, r) in canonical.iter_mut().zip(raw.iter()) {
            // 256 is a multiple of 32: the low five bits are uniform.
            *c = ALPHABET[usize::from(r & 0x1f)];
        }
        hashes.push(hash(&key, &canonical));
        codes.push(display(&canonical));
    }
    Ok(NewCodes {
        codes,
        set: RecoverySet {
            key,
            hashes,
            used: 0,
        },
    })
}

/// Codes imported as they are (google-authenticator's 8-digit scratch
/// codes: digits are in the alphabet, so they canonicalise to themselves
/// padded on the left with zeros to ten characters). Unused slots are
/// filled with hashes of nothing anyone knows and marked used.
pub fn import(codes: &[&[u8]]) -> Result<RecoverySet, getrandom::Error> {
    let mut set = dummy()?;
    set.used = (1 << COUNT) - 1;
    for (slot, code) in codes.iter().take(COUNT).enumerate() {
        if let Some(canonical) = canonical(code) {
            set.hashes[slot] = hash(&set.key, &canonical);
            set.used &= !(1 << slot);
        }
    }
    Ok(set)
}

/// The set unknown names and users without codes are checked against:
/// a random key and ten random hashes nobody can match.
pub fn dummy() -> Result<RecoverySet, getrandom::Error> {
    let key = new_key()?;
    let mut hashes = vec![[0u8; HASH_BYTES]; COUNT];
    for h in &mut hashes {
        getrandom::getrandom(h)?;
    }
    Ok(RecoverySet {
        key,
        hashes,
        used: 0,
    })
}

/// `xxxx-xxxx-xx`.
fn display(canonical: &[u8; CODE_CHARS]) -> Zeroizing<String> {
    let mut text = Zeroizing::new(String::with_capacity(CODE_CHARS + 2));
    for (i, &c) in canonical.iter().enumerate() {
        if i == 4 || i == 8 {
            text.push('-');
        }
        text.push(char::from(c));
    }
    text
}

/// A typed code in canonical form: any case, dashes and spaces ignored,
/// `o` read as `0` and `i`, `l` as `1`; an 8-digit scratch code is padded
/// to ten. `None` if it cannot be a code. Every byte is looked at, with
/// no early exit, so the work depends on what was typed only.
fn canonical(typed: &[u8]) -> Option<Zeroizing<[u8; CODE_CHARS]>> {
    let mut out = Zeroizing::new([0u8; CODE_CHARS + 1]);
    let mut count = 0usize;
    let mut bad = false;
    for &b in typed {
        let c = match b.to_ascii_lowercase() {
            b'-' | b' ' => continue,
            b'o' => b'0',
            b'i' | b'l' => b'1',
            c => c,
        };
        bad |= !ALPHABET.contains(&c);
        out[count.min(CODE_CHARS)] = c;
        count += 1;
    }
    let mut code = Zeroizing::new([b'0'; CODE_CHARS]);
    match count {
        CODE_CHARS => code.copy_from_slice(&out[..CODE_CHARS]),
        // google-authenticator's scratch codes: eight digits.
        8 if out[..8].iter().all(u8::is_ascii_digit) => code[2..].copy_from_slice(&out[..8]),
        _ => return None,
    }
    (!bad).then_some(code)
}

/// Checks `typed` against every slot of `set`: one HMAC and [`COUNT`]
/// constant-time compares, whatever was typed and whoever the set is
/// (a malformed code is hashed too, as a filler that cannot match).
pub fn check(set: &RecoverySet, typed: &[u8]) -> RecoveryCheck {
    let parsed = canonical(typed);
    let well_formed = parsed.is_some();
    let filler = Zeroizing::new([b'u'; CODE_CHARS]); // `u` is not in the alphabet
    let digest = hash(&set.key, parsed.as_deref().unwrap_or(&filler));
    let mut matched: Option<u8> = None;
    let mut used_match = false;
    for (slot, stored) in set.hashes.iter().enumerate() {
        let equal: bool = stored.ct_eq(&digest).into();
        let used = set.used & (1 << slot) != 0;
        if equal && well_formed {
            if used {
                used_match = true;
            } else {
                matched = Some(slot as u8);
            }
        }
    }
    match (matched, used_match) {
        (Some(slot), _) => RecoveryCheck::Matched(slot),
        (None, true) => RecoveryCheck::Used,
        (None, false) => RecoveryCheck::Wrong,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ten_codes_of_fifty_bits_each_match_their_own_slot_once_shown() {
        let new = generate().unwrap();
        assert_eq!(new.codes.len(), COUNT);
        assert_eq!(new.set.left(), 10);
        for (slot, code) in new.codes.iter().enumerate() {
            assert_eq!(code.len(), 12, "{}", code.as_str());
            assert_eq!(&code[4..5], "-");
            assert_eq!(&code[9..10], "-");
            assert_eq!(
                check(&new.set, code.as_bytes()),
                RecoveryCheck::Matched(slot as u8)
            );
        }
    }

    #[test]
    fn typing_is_forgiving_case_dashes_spaces_and_look_alikes() {
        let new = generate().unwrap();
        let code = new.codes[3].replace('-', "").to_uppercase();
        assert_eq!(check(&new.set, code.as_bytes()), RecoveryCheck::Matched(3));
        let spaced = format!("{} {}", &code[..5], &code[5..]);
        assert_eq!(
            check(&new.set, spaced.as_bytes()),
            RecoveryCheck::Matched(3)
        );
        let misread = new.codes[3].replace('0', "O").replace('1', "l");
        assert_eq!(
            check(&new.set, misread.as_bytes()),
            RecoveryCheck::Matched(3)
        );
    }

    #[test]
    fn a_used_slot_says_used_and_everything_else_is_wrong() {
        let mut new = generate().unwrap();
        new.set.used |= 1 << 2;
        assert_eq!(new.set.left(), 9);
        assert_eq!(
            check(&new.set, new.codes[2].as_bytes()),
            RecoveryCheck::Used
        );
        for typed in [
            &b"123456"[..],
            b"",
            b"uuuuuuuuuu",
            b"\xff\x00\x01",
            b"aaaa-aaaa-aaa",
        ] {
            assert_eq!(check(&new.set, typed), RecoveryCheck::Wrong);
        }
        let other = generate().unwrap();
        assert_eq!(
            check(&other.set, new.codes[0].as_bytes()),
            RecoveryCheck::Wrong
        );
        assert_eq!(
            check(&dummy().unwrap(), new.codes[0].as_bytes()),
            RecoveryCheck::Wrong
        );
    }

    #[test]
    fn scratch_codes_import_into_their_slots_and_the_rest_are_used() {
        let set = import(&[b"92668966", b"20047959"]).unwrap();
        assert_eq!(set.left(), 2);
        assert_eq!(check(&set, b"92668966"), RecoveryCheck::Matched(0));
        assert_eq!(check(&set, b"20047959"), RecoveryCheck::Matched(1));
        assert_eq!(check(&set, b"20047958"), RecoveryCheck::Wrong);
    }

    #[test]
    fn stored_parts_round_trip_and_bad_shapes_are_refused() {
        let new = generate().unwrap();
        let back =
            RecoverySet::from_parts(new.set.key.to_vec(), &new.set.hashes_blob(), 5).unwrap();
        assert_eq!(back.left(), 8);
        assert_eq!(
            check(&back, new.codes[1].as_bytes()),
            RecoveryCheck::Matched(1)
        );
        assert!(RecoverySet::from_parts(vec![0; 31], &new.set.hashes_blob(), 0).is_none());
        assert!(RecoverySet::from_parts(new.set.key.to_vec(), &[0; 31], 0).is_none());
    }
}

//! The local list of breached passwords: SHA-1 of each password as 40 hex
//! digits, one a line, sorted, optionally followed by `:COUNT` — the
//! format of Have I Been Pwned's "Pwned Passwords" download (ordered by
//! hash). The file is searched in place by bisection (about 35 reads of
//! one line for a billion lines), so it costs no memory and no start-up
//! time whatever its size, and nothing is ever sent anywhere. An unsorted
//! file gives wrong answers: sort it (`LC_ALL=C sort`) first.

use std::cmp::Ordering;
use std::fs::File;
use std::io::{self, BufRead, BufReader, Read, Seek, SeekFrom};
use std::path::Path;

/// Hex digits of a SHA-1 digest.
const HEX_LEN: usize = 40;
/// A line longer than this is not the list's format.
const MAX_LINE: u64 = 256;

/// The upper-case hex SHA-1 of `password`, as the list holds it.
pub fn sha1_hex(password: &[u8]) -> String {
    openssl::sha::sha1(password)
        .iter()
        .map(|b| format!("{b:02X}"))
        .collect()
}

/// Whether the sorted list at `path` holds `hex` (40 hex digits, any case).
pub fn contains(path: &Path, hex: &str) -> io::Result<bool> {
    let file = File::open(path)?;
    let len = file.metadata()?.len();
    let mut reader = BufReader::with_capacity(512, file);
    let target = hex.to_ascii_uppercase();
    // Every line starting before `lo` sorts before the target; none
    // starting at or after `hi` is still to be looked at.
    let (mut lo, mut hi) = (0u64, len);
    while lo < hi {
        let mid = lo + (hi - lo) / 2;
        let start = line_start_at_or_after(&mut reader, mid)?;
        if start >= hi {
            hi = mid;
            continue;
        }
        let (key, next) = line_at(&mut reader, start)?;
        match key.as_str().cmp(target.as_str()) {
            Ordering::Equal => return Ok(true),
            Ordering::Less => lo = next,
            // `start` is the first line at or after `mid`: the rest is larger.
            Ordering::Greater => hi = mid,
        }
    }
    Ok(false)
}

/// The first line start at or after `pos` (the file's length if none).
fn line_start_at_or_after(reader: &mut BufReader<File>, pos: u64) -> io::Result<u64> {
    if pos == 0 {
        return Ok(0);
    }
    reader.seek(SeekFrom::Start(pos - 1))?;
    let mut skipped = Vec::new();
    let n = reader
        .by_ref()
        .take(MAX_LINE + 1)
        .read_until(b'\n', &mut skipped)?;
    if n as u64 > MAX_LINE {
        return Err(bad_line());
    }
    Ok(pos - 1 + n as u64)
}

/// The hash of the line at `start` (upper case) and where the next begins.
fn line_at(reader: &mut BufReader<File>, start: u64) -> io::Result<(String, u64)> {
    reader.seek(SeekFrom::Start(start))?;
    let mut line = Vec::new();
    let n = reader
        .by_ref()
        .take(MAX_LINE + 1)
        .read_until(b'\n', &mut line)?;
    if n as u64 > MAX_LINE {
        return Err(bad_line());
    }
    let text = std::str::from_utf8(&line).map_err(|_| bad_line())?;
    let key = text
        .trim_end_matches(['\n', '\r'])
        .split(':')
        .next()
        .unwrap_or_default();
    if key.len() != HEX_LEN || !key.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(bad_line());
    }
    Ok((key.to_ascii_uppercase(), start + n as u64))
}

fn bad_line() -> io::Error {
    io::Error::new(
        io::ErrorKind::InvalidData,
        "a line is not 40 hex digits of SHA-1 (optionally :COUNT)",
    )
}

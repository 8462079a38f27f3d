//! `veilctl totp import-google-authenticator NAME [FILE]`: takes over the
//! TOTP secret of a `~/.google_authenticator` file (as written by
//! google-authenticator-libpam), and says which of its options veil does
//! not carry over. The file itself is left in place.

use std::fs::File;
use std::io::Read;
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use zeroize::Zeroizing;

use veil_daemon::common::{recovery, totp};

use crate::Ctx;
use crate::error::{EXIT_NO_SUCH_USER, Failure};

/// The parts of a google-authenticator file that matter to veil.
#[derive(Debug, PartialEq, Eq)]
pub struct GaFile {
    pub secret: Zeroizing<Vec<u8>>,
    pub options: Vec<GaOption>,
    /// How many scratch (emergency) codes the file holds.
    pub scratch_codes: usize,
    /// The scratch codes themselves (8 digits each), imported as recovery codes.
    pub scratch: Vec<Zeroizing<String>>,
}

/// One `" NAME ...` option line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum GaOption {
    /// `" RATE_LIMIT N M [timestamps...]`: N logins per M seconds.
    RateLimit { logins: u32, seconds: u32 },
    /// `" WINDOW_SIZE W`: W codes accepted around now.
    WindowSize(u32),
    /// `" DISALLOW_REUSE [steps...]`.
    DisallowReuse,
    /// `" TOTP_AUTH`: time-based codes.
    TotpAuth,
    /// `" HOTP_COUNTER N`: counter-based codes (refused).
    HotpCounter(u64),
    /// `" STEP_SIZE S`: seconds per code.
    StepSize(u32),
    /// Anything else, word for word (reported, not carried over).
    Other(String),
}

fn number<T: std::str::FromStr>(word: Option<&str>, line_no: usize) -> Result<T, Failure> {
    word.and_then(|w| w.parse().ok())
        .ok_or_else(|| Failure::failed(format!("line {line_no}: option without a valid number")))
}

/// Parses the text of a google-authenticator file: the base32 secret on
/// the first line, `"` option lines, bare 8-digit scratch codes.
pub fn parse(text: &str) -> Result<GaFile, Failure> {
    let mut lines = text.lines();
    let first = lines
        .next()
        .ok_or_else(|| Failure::failed("the file is empty"))?;
    let secret = totp::from_base32(first.trim())
        .ok_or_else(|| Failure::failed("line 1 is not a base32 secret"))?;
    if secret.len() < 10 {
        return Err(Failure::failed("the secret is shorter than 80 bits"));
    }
    let mut options = Vec::new();
    let mut scratch_codes = 0;
    let mut scratch = Vec::new();
    for (i, line) in lines.enumerate() {
        let line_no = i + 2;
        let line = line.trim_end_matches('\r');
        if let Some(option) = line.strip_prefix('"') {
            let mut words = option.split_whitespace();
            let option = match words.next() {
                Some("RATE_LIMIT") => GaOption::RateLimit {
                    logins: number(words.next(), line_no)?,
                    seconds: number(words.next(), line_no)?,
                },
                Some("WINDOW_SIZE") => GaOption::WindowSize(number(words.next(), line_no)?),
                Some("DISALLOW_REUSE") => GaOption::DisallowReuse,
                Some("TOTP_AUTH") => GaOption::TotpAuth,
                Some("HOTP_COUNTER") => GaOption::HotpCounter(number(words.next(), line_no)?),
                Some("STEP_SIZE") => GaOption::StepSize(number(words.next(), line_no)?),
                Some(other) => GaOption::Other(other.to_owned()),
                None => continue,
            };
            options.push(option);
        } else if line.len() == 8 && line.bytes().all(|b| b.is_ascii_digit()) {
            scratch_codes += 1;
            scratch.push(Zeroizing::new(line.to_owned()));
        } else if !line.trim().is_empty() {
            return Err(Failure::failed(format!(
                "line {line_no} is neither an option nor a scratch code; is this a google-authenticator file?"
            )));
        }
    }
    Ok(GaFile {
        secret,
        options,
        scratch_codes,
        scratch,
    })
}

impl GaFile {
    /// Refuses what veil cannot verify at all: HOTP, other step sizes.
    pub fn check_usable(&self) -> Result<(), Failure> {
        for option in &self.options {
            match option {
                GaOption::HotpCounter(_) => {
                    return Err(Failure::failed(
                        "this file is for counter-based codes (HOTP_COUNTER); veil verifies only \
                         time-based codes (TOTP): enrol a new secret with `veilctl totp enroll` instead",
                    ));
                }
                GaOption::StepSize(s) if u64::from(*s) != totp::STEP_SECONDS => {
                    return Err(Failure::failed(format!(
                        "this file uses {s}-second codes (STEP_SIZE {s}); veil's codes are {}-second: \
                         enrol a new secret with `veilctl totp enroll` instead",
                        totp::STEP_SECONDS
                    )));
                }
                _ => {}
            }
        }
        Ok(())
    }

    /// One line per option or part veil does not carry over as it was.
    pub fn notes(&self, skew: u8) -> Vec<String> {
        let window = 2 * u32::from(skew) + 1;
        let mut notes = Vec::new();
        for option in &self.options {
            match option {
                GaOption::RateLimit { logins, seconds } => notes.push(format!(
                    "RATE_LIMIT {logins} {seconds} not carried over: veil's lockout ([lockout] in veild.toml) replaces it"
                )),
                GaOption::WindowSize(w) if *w != window => notes.push(format!(
                    "WINDOW_SIZE {w} not carried over: veil accepts {window} codes around now ([totp] skew = {skew} in veild.toml)"
                )),
                GaOption::Other(name) => {
                    notes.push(format!("option {name} not understood; not carried over"))
                }
                _ => {}
            }
        }
        if !self.options.contains(&GaOption::DisallowReuse) {
            notes.push(
                "the file allowed a code to be used twice; veil never accepts a code twice".into(),
            );
        }
        if self.scratch_codes > recovery::COUNT {
            notes.push(format!(
                "{} scratch codes in the file; only the first {} imported as recovery codes",
                self.scratch_codes,
                recovery::COUNT
            ));
        } else if self.scratch_codes > 0 {
            notes.push(format!(
                "{} scratch codes imported as recovery codes (each works once; `veilctl status {{user}}` shows how many remain)",
                self.scratch_codes
            ));
        }
        notes
    }
}

/// Opens the file without following a symlink, and refuses it unless it
/// is a regular file owned by `owner` or root that only its owner can write.
fn read_checked(path: &Path, owner: Option<u32>) -> Result<Zeroizing<String>, Failure> {
    let mut file = File::options()
        .read(true)
        .custom_flags(libc::O_NOFOLLOW)
        .open(path)
        .map_err(|e| Failure::io(format!("cannot open {}: {e}", path.display())))?;
    let meta = file
        .metadata()
        .map_err(|e| Failure::io(format!("cannot stat {}: {e}", path.display())))?;
    if !meta.is_file() {
        return Err(Failure::failed(format!(
            "{} is not a regular file",
            path.display()
        )));
    }
    if meta.uid() != 0 && Some(meta.uid()) != owner {
        return Err(Failure::failed(format!(
            "{} is owned by uid {}, neither the user nor root: refused",
            path.display(),
            meta.uid()
        )));
    }
    if meta.mode() & 0o022 != 0 {
        return Err(Failure::failed(format!(
            "{} is writable by others than its owner (mode {:o}): refused",
            path.display(),
            meta.mode() & 0o7777
        )));
    }
    let mut text = Zeroizing::new(String::new());
    file.read_to_string(&mut text)
        .map_err(|e| Failure::io(format!("cannot read {}: {e}", path.display())))?;
    Ok(text)
}

pub fn run(ctx: &Ctx, name: &str, file: Option<PathBuf>) -> Result<(), Failure> {
    let account = nix::unistd::User::from_name(name)
        .map_err(|e| Failure::failed(format!("cannot look up {name}: {e}")))?;
    let path = match (file, &account) {
        (Some(path), _) => path,
        (None, Some(user)) => user.dir.join(".google_authenticator"),
        (None, None) => {
            return Err(Failure::new(
                EXIT_NO_SUCH_USER,
                format!("{name} has no system account to find a home in; name the FILE"),
            ));
        }
    };
    let text = read_checked(&path, account.as_ref().map(|u| u.uid.as_raw()))?;
    let ga = parse(&text)?;
    ga.check_usable()?;
    crate::steps::activate(ctx, name, &ga.secret)?;
    if !ga.scratch.is_empty() {
        let codes: Vec<&[u8]> = ga.scratch.iter().map(|c| c.as_bytes()).collect();
        let set = recovery::import(&codes)
            .map_err(|e| Failure::failed(format!("no randomness from the OS: {e}")))?;
        ctx.open()?.set_recovery(name, Some(&set), ctx.now)?;
    }
    for note in ga.notes(ctx.config.totp.skew) {
        eprintln!("veilctl: {}", note.replace("{user}", name));
    }
    eprintln!(
        "veilctl: {} is left in place: pam_google_authenticator reads it while a PAM stack \
         still uses it. Once every service authenticates with veil, retire it with \
         `shred -u {}` (its scratch codes go with it)",
        path.display(),
        path.display()
    );
    Ok(())
}

#[cfg(test)]
mod tests;

//! Strict parsing of the module arguments from the PAM configuration line.
//!
//! `socket=PATH`, `timeout=SECONDS`, `server_user=NAME`, `use_first_pass`,
//! `try_first_pass`, `factors=code`, `one_prompt`, `debug`. Anything unknown, malformed, repeated or conflicting is a
//! problem; the caller logs every problem and fails closed, after asking the
//! usual prompts. The options that did parse still shape the prompts, so a
//! typo in `timeout=` does not change what the person at the prompt sees.
#![forbid(unsafe_code)]

use std::fmt;
use std::path::PathBuf;
use std::time::Duration;

use veil_proto::sanitize::sanitize;

/// Where veild listens unless `socket=` says otherwise.
pub use veil_proto::DEFAULT_SOCKET;
/// How long the module waits for veild unless `timeout=` says otherwise; it
/// must stay above the daemon's failure delay (2 s by default).
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(5);
/// Bounds for `timeout=`, inclusive.
pub const MIN_TIMEOUT: Duration = Duration::from_secs(1);
pub const MAX_TIMEOUT: Duration = Duration::from_secs(60);
/// The account veild runs as (the Debian package's); root is always trusted.
pub const DEFAULT_SERVER_USER: &str = "veil";
/// `sun_path` holds 108 bytes including the terminating NUL.
const MAX_SOCKET_PATH: usize = 107;

/// Where the password comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PasswordSource {
    /// Always prompt `Password: ` (the default).
    Prompt,
    /// Reuse PAM_AUTHTOK when an earlier module set it, else prompt.
    TryFirstPass,
    /// Only reuse PAM_AUTHTOK; never prompt for the password.
    UseFirstPass,
}

/// What the module asks for and veild checks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Factors {
    /// `Password: ` then `Verification code: ` (the default;
    /// `factors=password,code` says it explicitly).
    PasswordAndCode,
    /// `factors=code`: only `Verification code: `, for services where an
    /// earlier method proved the account (sshd's `AuthenticationMethods
    /// publickey,keyboard-interactive`). veild honours it for root only.
    Code,
}

/// The parsed options, defaults filled in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Args {
    pub socket: PathBuf,
    pub timeout: Duration,
    /// Besides root, the only uid the module sends secrets to.
    pub server_user: String,
    pub password: PasswordSource,
    pub factors: Factors,
    /// `one_prompt`: one prompt, `Password and verification code: `, for
    /// clients that answer only one (sshd's `password` method); veild
    /// splits the answer (`veil_proto::one_prompt`).
    pub one_prompt: bool,
    pub debug: bool,
}

impl Default for Args {
    fn default() -> Args {
        Args {
            socket: PathBuf::from(DEFAULT_SOCKET),
            timeout: DEFAULT_TIMEOUT,
            server_user: DEFAULT_SERVER_USER.to_owned(),
            password: PasswordSource::Prompt,
            factors: Factors::PasswordAndCode,
            one_prompt: false,
            debug: false,
        }
    }
}

/// One thing wrong with the argument list. Its text is meant for syslog.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ArgProblem {
    /// libpam handed a null argument pointer or a broken argv.
    Null,
    NotUtf8,
    Unknown(String),
    Malformed {
        name: &'static str,
        value: String,
        why: &'static str,
    },
    Repeated(&'static str),
    Conflict,
    /// `factors=code` with `use_first_pass` or `try_first_pass`: no password is used.
    FactorsConflict,
    /// `one_prompt` with `factors=code`, `use_first_pass` or `try_first_pass`.
    OnePromptConflict,
}

impl fmt::Display for ArgProblem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ArgProblem::Null => write!(f, "null argument"),
            ArgProblem::NotUtf8 => write!(f, "argument is not UTF-8"),
            ArgProblem::Unknown(arg) => write!(f, "unknown argument \"{}\"", sanitize(arg)),
            ArgProblem::Malformed { name, value, why } => {
                write!(f, "bad value \"{}\" for {name}=: {why}", sanitize(value))
            }
            ArgProblem::Repeated(name) => write!(f, "{name} given more than once"),
            ArgProblem::Conflict => write!(f, "use_first_pass and try_first_pass are exclusive"),
            ArgProblem::FactorsConflict => write!(
                f,
                "factors=code asks no password: use_first_pass and try_first_pass do not apply"
            ),
            ArgProblem::OnePromptConflict => write!(
                f,
                "one_prompt asks the password and the code together: factors=code, use_first_pass and try_first_pass do not apply"
            ),
        }
    }
}

/// The result of parsing: the options, and every problem found on the way.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Parsed {
    pub args: Args,
    pub problems: Vec<ArgProblem>,
}

impl Parsed {
    pub fn is_ok(&self) -> bool {
        self.problems.is_empty()
    }
}

/// Parses the raw arguments; `None` stands for a null pointer from libpam.
pub fn parse<'a>(raw: impl IntoIterator<Item = Option<&'a [u8]>>) -> Parsed {
    let mut args = Args::default();
    let mut problems = Vec::new();
    let mut seen: Vec<&'static str> = Vec::new();
    let mut first_pass: Option<PasswordSource> = None;
    for arg in raw {
        let Some(bytes) = arg else {
            problems.push(ArgProblem::Null);
            continue;
        };
        let Ok(text) = std::str::from_utf8(bytes) else {
            problems.push(ArgProblem::NotUtf8);
            continue;
        };
        let (name, value) = match text.split_once('=') {
            Some((name, value)) => (name, Some(value)),
            None => (text, None),
        };
        let name: &'static str = match (name, value) {
            ("socket", Some(value)) => {
                match parse_socket(value) {
                    Ok(path) => args.socket = path,
                    Err(why) => problems.push(malformed("socket", value, why)),
                }
                "socket"
            }
            ("timeout", Some(value)) => {
                match parse_timeout(value) {
                    Ok(timeout) => args.timeout = timeout,
                    Err(why) => problems.push(malformed("timeout", value, why)),
                }
                "timeout"
            }
            ("server_user", Some(value)) => {
                match parse_user_name(value) {
                    Ok(name) => args.server_user = name,
                    Err(why) => problems.push(malformed("server_user", value, why)),
                }
                "server_user"
            }
            ("use_first_pass", None) => {
                first_pass =
                    merge_first_pass(first_pass, PasswordSource::UseFirstPass, &mut problems);
                "use_first_pass"
            }
            ("try_first_pass", None) => {
                first_pass =
                    merge_first_pass(first_pass, PasswordSource::TryFirstPass, &mut problems);
                "try_first_pass"
            }
            ("factors", Some(value)) => {
                match value {
                    "code" => args.factors = Factors::Code,
                    "password,code" => args.factors = Factors::PasswordAndCode,
                    _ => problems.push(malformed(
                        "factors",
                        value,
                        "expected code or password,code",
                    )),
                }
                "factors"
            }
            ("one_prompt", None) => {
                args.one_prompt = true;
                "one_prompt"
            }
            ("debug", None) => {
                args.debug = true;
                "debug"
            }
            _ => {
                problems.push(ArgProblem::Unknown(text.to_owned()));
                continue;
            }
        };
        if seen.contains(&name) {
            problems.push(ArgProblem::Repeated(name));
        }
        seen.push(name);
    }
    if let Some(source) = first_pass {
        args.password = source;
        if args.factors == Factors::Code {
            problems.push(ArgProblem::FactorsConflict);
        }
    }
    // The one prompt is still what the person sees (an argument of the
    // stack, never of the account); the attempt is denied as for any problem.
    if args.one_prompt && (first_pass.is_some() || args.factors == Factors::Code) {
        problems.push(ArgProblem::OnePromptConflict);
    }
    Parsed { args, problems }
}

fn malformed(name: &'static str, value: &str, why: &'static str) -> ArgProblem {
    ArgProblem::Malformed {
        name,
        value: value.to_owned(),
        why,
    }
}

fn merge_first_pass(
    current: Option<PasswordSource>,
    new: PasswordSource,
    problems: &mut Vec<ArgProblem>,
) -> Option<PasswordSource> {
    match current {
        Some(existing) if existing != new => {
            problems.push(ArgProblem::Conflict);
            // The stricter of the two decides the prompts.
            Some(PasswordSource::UseFirstPass)
        }
        _ => Some(new),
    }
}

/// A plausible account name: what useradd accepts, nothing that could
/// reach NSS as something else.
fn parse_user_name(value: &str) -> Result<String, &'static str> {
    let plausible = !value.is_empty()
        && value.len() <= 32
        && !value.starts_with('-')
        && value
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.'));
    if plausible {
        Ok(value.to_owned())
    } else {
        Err("not an account name")
    }
}

fn parse_socket(value: &str) -> Result<PathBuf, &'static str> {
    if !value.starts_with('/') {
        return Err("must be an absolute path");
    }
    if value.len() > MAX_SOCKET_PATH {
        return Err("longer than a Unix socket path may be");
    }
    if value.chars().any(char::is_control) {
        return Err("holds a control character");
    }
    Ok(PathBuf::from(value))
}

/// Seconds as `N` or `N.F` (at most three decimals), from 1 to 60 inclusive.
fn parse_timeout(value: &str) -> Result<Duration, &'static str> {
    const SHAPE: &str = "expected seconds such as 5 or 2.5";
    let (whole, fraction) = match value.split_once('.') {
        Some((whole, fraction)) => (whole, Some(fraction)),
        None => (value, None),
    };
    let digits = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
    if !digits(whole) || fraction.is_some_and(|f| !digits(f)) {
        return Err(SHAPE);
    }
    if whole.len() > 3 {
        return Err("out of range 1..=60");
    }
    let fraction = fraction.unwrap_or("");
    if fraction.len() > 3 {
        return Err("at most millisecond precision");
    }
    let secs: u64 = whole.parse().map_err(|_| SHAPE)?;
    let millis: u64 = if fraction.is_empty() {
        0
    } else {
        format!("{fraction:0<3}").parse().map_err(|_| SHAPE)?
    };
    let timeout = Duration::from_secs(secs) + Duration::from_millis(millis);
    if !(MIN_TIMEOUT..=MAX_TIMEOUT).contains(&timeout) {
        return Err("out of range 1..=60");
    }
    Ok(timeout)
}

#[cfg(test)]
mod tests;

//! Which method and cost new passwords get on this host, as `passwd` and
//! `chpasswd` would choose them: pam_unix's options on its `password` line
//! in `/etc/pam.d/common-password` (`yescrypt`, `sha512`, `rounds=N`, ...);
//! where that line names no method, `ENCRYPT_METHOD` in `/etc/login.defs`
//! (as pam_unix does since Linux-PAM 1.4); the cost, where the line has no
//! `rounds=`, from login.defs (`YESCRYPT_COST_FACTOR`,
//! `SHA_CRYPT_MAX_ROUNDS` or else `SHA_CRYPT_MIN_ROUNDS`). A method set in
//! veild.toml overrides them all.

use std::path::Path;

use super::{Kind, Method};

pub const PAM_PASSWORD: &str = "/etc/pam.d/common-password";
pub const LOGIN_DEFS: &str = "/etc/login.defs";

/// A host whose method veil cannot copy; each message names the way out.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PolicyError {
    #[error(
        "{PAM_PASSWORD}: pam_unix uses {0}, which veil cannot make a dummy hash for; \
         set [password] dummy_method in veild.toml"
    )]
    PamUnix(String),
    #[error(
        "{LOGIN_DEFS}: ENCRYPT_METHOD {0} is not one veil can make a dummy hash for; \
         set [password] dummy_method in veild.toml"
    )]
    LoginDefs(String),
}

/// What pam_unix's `password` line says: the last method option (pam_unix
/// lets a later one override an earlier one) and `rounds=`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PamUnix {
    pub kind: Option<Kind>,
    pub rounds: Option<u64>,
    /// A method option veil cannot make dummies for (`bigcrypt`).
    pub unsupported: Option<String>,
}

/// The first `password` line that runs pam_unix.so, or `None` if there is none.
pub fn parse_pam_password(text: &str) -> Option<PamUnix> {
    for raw in text.lines() {
        let line = raw.split('#').next().unwrap_or("").trim();
        let Some((kind, rest)) = split_word(line) else {
            continue;
        };
        if kind.trim_start_matches('-') != "password" {
            continue;
        }
        let rest = rest.trim_start();
        // The control is a word or a bracketed list that may hold spaces.
        let rest = if let Some(inner) = rest.strip_prefix('[') {
            match inner.find(']') {
                Some(end) => &inner[end + 1..],
                None => continue,
            }
        } else {
            match split_word(rest) {
                Some((_, r)) => r,
                None => continue,
            }
        };
        let Some((module, args)) = split_word(rest.trim_start()) else {
            continue;
        };
        if Path::new(module).file_name().and_then(|n| n.to_str()) != Some("pam_unix.so") {
            continue;
        }
        let mut found = PamUnix::default();
        for arg in args.split_whitespace() {
            let kind = match arg {
                "yescrypt" => Some(Kind::Yescrypt),
                "gost_yescrypt" => Some(Kind::GostYescrypt),
                "sha512" => Some(Kind::Sha512),
                "sha256" => Some(Kind::Sha256),
                "blowfish" => Some(Kind::Bcrypt),
                "md5" => Some(Kind::Md5),
                "bigcrypt" => {
                    found.unsupported = Some(arg.to_owned());
                    found.kind = None;
                    continue;
                }
                _ => None,
            };
            if kind.is_some() {
                found.kind = kind;
                found.unsupported = None;
            } else if let Some(n) = arg.strip_prefix("rounds=") {
                found.rounds = n.parse().ok().filter(|&n| n > 0);
            }
        }
        return Some(found);
    }
    None
}

fn split_word(s: &str) -> Option<(&str, &str)> {
    let s = s.trim_start();
    if s.is_empty() {
        return None;
    }
    match s.find(char::is_whitespace) {
        Some(i) => Some((&s[..i], &s[i..])),
        None => Some((s, "")),
    }
}

/// What login.defs says about new hashes.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LoginDefs {
    /// `ENCRYPT_METHOD`, as written.
    pub encrypt_method: Option<String>,
    pub yescrypt_cost_factor: Option<u64>,
    pub sha_crypt_min_rounds: Option<u64>,
    pub sha_crypt_max_rounds: Option<u64>,
}

pub fn parse_login_defs(text: &str) -> LoginDefs {
    let mut defs = LoginDefs::default();
    for raw in text.lines() {
        let line = raw.trim();
        if line.starts_with('#') {
            continue;
        }
        let mut words = line.split_whitespace();
        let (Some(key), Some(value)) = (words.next(), words.next()) else {
            continue;
        };
        let value = value.trim_matches('"');
        let number = || value.parse::<u64>().ok();
        match key {
            "ENCRYPT_METHOD" => defs.encrypt_method = Some(value.to_owned()),
            "YESCRYPT_COST_FACTOR" => defs.yescrypt_cost_factor = number(),
            "SHA_CRYPT_MIN_ROUNDS" => defs.sha_crypt_min_rounds = number(),
            "SHA_CRYPT_MAX_ROUNDS" => defs.sha_crypt_max_rounds = number(),
            _ => {}
        }
    }
    defs
}

fn login_defs_kind(method: &str) -> Option<Kind> {
    match method.to_ascii_uppercase().as_str() {
        "YESCRYPT" => Some(Kind::Yescrypt),
        "GOST_YESCRYPT" => Some(Kind::GostYescrypt),
        "SHA512" => Some(Kind::Sha512),
        "SHA256" => Some(Kind::Sha256),
        "BCRYPT" => Some(Kind::Bcrypt),
        "MD5" => Some(Kind::Md5),
        _ => None,
    }
}

/// The method from the two files' texts (either may be absent). Without
/// either, libxcrypt's and Debian's default: yescrypt at its default cost.
pub fn decide(pam: Option<&str>, login_defs: Option<&str>) -> Result<Method, PolicyError> {
    let pam = pam.and_then(parse_pam_password);
    let defs = login_defs.map(parse_login_defs).unwrap_or_default();
    if let Some(bad) = pam.as_ref().and_then(|p| p.unsupported.clone()) {
        return Err(PolicyError::PamUnix(bad));
    }
    let (kind, from) = match (pam.as_ref().and_then(|p| p.kind), &defs.encrypt_method) {
        (Some(kind), _) => (kind, PAM_PASSWORD),
        (None, Some(method)) => match login_defs_kind(method) {
            Some(kind) => (kind, LOGIN_DEFS),
            None => {
                return Err(PolicyError::LoginDefs(method.clone()));
            }
        },
        (None, None) => (Kind::Yescrypt, "libxcrypt's default"),
    };
    let cost = match pam.as_ref().and_then(|p| p.rounds) {
        Some(r) => Some(r),
        None => match kind {
            Kind::Yescrypt | Kind::GostYescrypt => defs.yescrypt_cost_factor,
            Kind::Sha512 | Kind::Sha256 => defs.sha_crypt_max_rounds.or(defs.sha_crypt_min_rounds),
            Kind::Bcrypt | Kind::Md5 => None,
        },
    };
    Ok(Method {
        kind,
        cost,
        from: from.to_owned(),
    })
}

/// This host's method, or the one veild.toml sets (`[password]
/// dummy_method`, `dummy_cost`).
pub fn host(dummy_method: Option<Kind>, dummy_cost: Option<u64>) -> Result<Method, PolicyError> {
    if let Some(kind) = dummy_method {
        return Ok(Method {
            kind,
            cost: dummy_cost,
            from: "veild.toml".to_owned(),
        });
    }
    let read = |path: &str| std::fs::read_to_string(path).ok();
    let mut method = decide(read(PAM_PASSWORD).as_deref(), read(LOGIN_DEFS).as_deref())?;
    if let Some(cost) = dummy_cost {
        method.cost = Some(cost);
        method.from = format!("{} (cost from veild.toml)", method.from);
    }
    Ok(method)
}

#[cfg(test)]
mod tests {
    use super::*;

    const DEBIAN_12: &str = "\
# /etc/pam.d/common-password - password-related modules common to all services
password\t[success=1 default=ignore]\tpam_unix.so obscure yescrypt
password\trequisite\t\t\tpam_deny.so
password\trequired\t\t\tpam_permit.so
";

    #[test]
    fn debian_12s_common_password_says_yescrypt_at_the_default_cost() {
        let m = decide(Some(DEBIAN_12), Some("ENCRYPT_METHOD SHA512\n")).unwrap();
        assert_eq!(
            (m.kind, m.cost, m.from.as_str()),
            (Kind::Yescrypt, None, PAM_PASSWORD)
        );
    }

    #[test]
    fn rounds_and_the_last_method_option_win() {
        let pam = "password required /lib/x86_64-linux-gnu/security/pam_unix.so yescrypt sha512 rounds=65536 # old\n";
        let p = parse_pam_password(pam).unwrap();
        assert_eq!((p.kind, p.rounds), (Some(Kind::Sha512), Some(65536)));
    }

    #[test]
    fn other_modules_and_other_types_are_not_pam_unix_password_lines() {
        let text = "auth required pam_unix.so sha256\n\
                    # password required pam_unix.so md5\n\
                    password requisite pam_pwquality.so sha256\n\
                    -password optional pam_unix.so.bak sha256\n";
        assert_eq!(parse_pam_password(text), None);
    }

    #[test]
    fn without_a_method_on_the_line_login_defs_decides() {
        let pam = "password [success=1 default=ignore] pam_unix.so obscure\n";
        let defs = "# ENCRYPT_METHOD MD5\nENCRYPT_METHOD SHA512\nSHA_CRYPT_MIN_ROUNDS 10000\n";
        let m = decide(Some(pam), Some(defs)).unwrap();
        assert_eq!(
            (m.kind, m.cost, m.from.as_str()),
            (Kind::Sha512, Some(10000), LOGIN_DEFS)
        );
        let m = decide(
            None,
            Some("ENCRYPT_METHOD YESCRYPT\nYESCRYPT_COST_FACTOR 8\n"),
        )
        .unwrap();
        assert_eq!((m.kind, m.cost), (Kind::Yescrypt, Some(8)));
    }

    #[test]
    fn sha_max_rounds_is_preferred_to_min_as_pam_unix_does() {
        let defs = parse_login_defs("SHA_CRYPT_MIN_ROUNDS 5000\nSHA_CRYPT_MAX_ROUNDS 20000\n");
        assert_eq!(
            (defs.sha_crypt_min_rounds, defs.sha_crypt_max_rounds),
            (Some(5000), Some(20000))
        );
        let m = decide(
            None,
            Some("ENCRYPT_METHOD SHA256\nSHA_CRYPT_MIN_ROUNDS 5000\nSHA_CRYPT_MAX_ROUNDS 20000\n"),
        )
        .unwrap();
        assert_eq!((m.kind, m.cost), (Kind::Sha256, Some(20000)));
    }

    #[test]
    fn methods_veil_cannot_copy_are_errors_that_name_the_way_out() {
        let err = decide(Some("password required pam_unix.so bigcrypt\n"), None)
            .unwrap_err()
            .to_string();
        assert!(err.contains("dummy_method"), "{err}");
        let err = decide(None, Some("ENCRYPT_METHOD DES\n"))
            .unwrap_err()
            .to_string();
        assert!(err.contains("DES") && err.contains("dummy_method"), "{err}");
    }

    #[test]
    fn no_files_means_yescrypt() {
        assert_eq!(decide(None, None).unwrap().kind, Kind::Yescrypt);
    }
}

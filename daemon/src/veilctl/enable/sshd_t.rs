//! Asking the real sshd for its effective settings: `sshd -T` (with `-C`
//! for one user, so that sshd evaluates its own Match blocks).

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use super::sshd_config::{Directive, effective};

/// sshd's binary: Debian's path first.
pub fn sshd_binary() -> PathBuf {
    ["/usr/sbin/sshd", "/usr/local/sbin/sshd"]
        .iter()
        .map(PathBuf::from)
        .find(|p| p.exists())
        .unwrap_or_else(|| PathBuf::from("sshd"))
}

/// Parses `sshd -T` output (one `keyword value` per line).
pub fn parse_sshd_t(text: &str, origin: &str) -> Vec<Directive> {
    text.lines()
        .filter_map(|line| {
            let (key, value) = line.trim().split_once(' ')?;
            Some(Directive {
                key: key.to_ascii_lowercase(),
                value: value.trim().to_owned(),
                origin: origin.to_owned(),
            })
        })
        .collect()
}

/// Runs `sshd -T -f config` (for `user`, with `-C`) and parses its answer.
pub fn sshd_t(
    sshd: &Path,
    config: &Path,
    user: Option<&str>,
) -> Result<Vec<Directive>, SshdTError> {
    let mut cmd = Command::new(sshd);
    cmd.arg("-T").arg("-f").arg(config);
    let origin = match user {
        Some(user) => {
            cmd.arg("-C")
                .arg(format!("user={user},host=localhost,addr=127.0.0.1"));
            format!("sshd -T for {user}")
        }
        None => "sshd -T".to_owned(),
    };
    let out = cmd
        .stdin(Stdio::null())
        .output()
        .map_err(|source| SshdTError::Run {
            sshd: sshd.to_owned(),
            source,
        })?;
    if !out.status.success() {
        return Err(SshdTError::Refused {
            sshd: sshd.to_owned(),
            config: config.to_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).trim().to_owned(),
        });
    }
    let d = parse_sshd_t(&String::from_utf8_lossy(&out.stdout), &origin);
    if effective(&d, &["usepam"]).is_none() {
        return Err(SshdTError::Empty {
            sshd: sshd.to_owned(),
        });
    }
    Ok(d)
}

/// Why `sshd -T` gave no settings (`veilctl enable` then reads the file
/// by hand, or stops).
#[derive(Debug, thiserror::Error)]
pub enum SshdTError {
    #[error("{}: {source}", sshd.display())]
    Run {
        sshd: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{} -T -f {}: {stderr}", sshd.display(), config.display())]
    Refused {
        sshd: PathBuf,
        config: PathBuf,
        stderr: String,
    },
    #[error("{} -T printed no settings", sshd.display())]
    Empty { sshd: PathBuf },
}

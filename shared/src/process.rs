//! What pam_veil says of the PAM application's own process, for the
//! fresh-code window: its audit session id, its parent's pid and the
//! kernel's boot id. The module reads them inside the application
//! (`/proc/self/sessionid`, `getppid()`, `/proc/sys/kernel/random/boot_id`),
//! where nothing hides them; veild, whose unit hides other users'
//! processes from it (`ProtectProc=invisible`, `ProcSubset=pid`), reads
//! none of them and believes them from root peers only, as it believes
//! `ruid`: a process that is not root could claim another session's id.
//!
//! None of them depends on the account or on a reply: the kernel sets
//! them for the process before anyone types anything, and the module
//! reads them before its prompts. So a request or note carries them
//! whenever the module has them, and they tell an observer of the request
//! nothing about who is logging in. They are no secrets (any process may
//! read its own), so they are neither wiped nor hidden from logs.

/// `/proc/PID/sessionid` of a process no login session has claimed.
pub const NO_SESSION: u32 = u32::MAX;

/// Where the kernel names this boot.
const BOOT_ID: &str = "/proc/sys/kernel/random/boot_id";

/// What the kernel says of one process; each `None` where it did not say.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ProcessFacts {
    /// The audit session id, unless unset ([`NO_SESSION`]).
    pub session: Option<u32>,
    /// The boot id, in its canonical form ([`parse_boot_id`]).
    pub boot_id: Option<String>,
    /// The parent's pid; `None` when 0 (a parent outside the pid namespace).
    pub ppid: Option<u32>,
}

impl ProcessFacts {
    /// The facts of the calling process.
    pub fn of_this_process() -> ProcessFacts {
        ProcessFacts {
            session: std::fs::read_to_string("/proc/self/sessionid")
                .ok()
                .and_then(|t| parse_session(&t)),
            boot_id: std::fs::read_to_string(BOOT_ID)
                .ok()
                .and_then(|t| parse_boot_id(&t)),
            ppid: Some(std::os::unix::process::parent_id()).filter(|&p| p != 0),
        }
    }
}

/// A session id as `/proc/PID/sessionid` holds it, or `None` when unset
/// or not a number.
pub fn parse_session(text: &str) -> Option<u32> {
    text.trim().parse::<u32>().ok().filter(|&s| s != NO_SESSION)
}

/// A boot id as the kernel writes it (a UUID: 8-4-4-4-12 lowercase hex
/// digits, then a newline), without the newline; `None` for anything else.
pub fn parse_boot_id(text: &str) -> Option<String> {
    let id = text.strip_suffix('\n').unwrap_or(text);
    is_boot_id(id).then(|| id.to_owned())
}

/// Whether `id` is a boot id in the kernel's form (checked where veild
/// decodes one, so a store key never holds anything else).
pub fn is_boot_id(id: &str) -> bool {
    let groups: Vec<&str> = id.split('-').collect();
    groups.len() == 5
        && groups
            .iter()
            .zip([8, 4, 4, 4, 12])
            .all(|(g, n)| g.len() == n && g.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_kernels_files_parse_as_it_writes_them() {
        assert_eq!(parse_session("4294967295"), None);
        assert_eq!(parse_session("12\n"), Some(12));
        assert_eq!(parse_session(""), None);
        let id = "6f1c6a2e-3b8d-4c1e-9f0a-2d5b7c9e1a34";
        assert_eq!(parse_boot_id(&format!("{id}\n")).as_deref(), Some(id));
        assert_eq!(parse_boot_id(id).as_deref(), Some(id));
        for bad in [
            "",
            "6F1C6A2E-3B8D-4C1E-9F0A-2D5B7C9E1A34",
            "6f1c6a2e-3b8d-4c1e-9f0a-2d5b7c9e1a3",
            "6f1c6a2e-3b8d-4c1e-9f0a-2d5b7c9e1a34-00",
            "6f1c6a2e 3b8d-4c1e-9f0a-2d5b7c9e1a34",
        ] {
            assert_eq!(parse_boot_id(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn this_process_has_a_parent_and_the_kernel_a_boot_id() {
        let facts = ProcessFacts::of_this_process();
        assert!(facts.ppid.is_some());
        // Every Linux kernel since 2.6.32 writes it; the test reads it
        // as the module would.
        assert!(facts.boot_id.is_some(), "{facts:?}");
    }
}

//! What `veilctl enable` says about the fresh-code window
//! (`[service.NAME] fresh_code_window_s`): the window of the service it
//! enables, and, for a login service (sshd, login) while some service has
//! a window, whether its session stack binds logins to their audit
//! session (`session optional pam_veil.so` after `session required
//! pam_loginuid.so`), with the line to add when it does not. The session
//! stack is the admin's to edit: veilctl's block covers `auth` alone.

use veil_daemon::common::policy::Policies;

use super::pam_stack::{logical_lines, tokens};

/// The session line that binds a login to its audit session.
pub const SESSION_LINE: &str = "session    optional     pam_veil.so";

/// Services whose logins start a session a window can follow.
const LOGIN_SERVICES: [&str; 2] = ["sshd", "login"];

/// Whether a session line loads `module` (by file name).
fn session_loads(text: &str, module: &str) -> bool {
    logical_lines(text).iter().any(|line| {
        let t = tokens(line);
        let kind = t.first().map_or("", String::as_str);
        let base = t.get(2).map_or("", |m| m.rsplit('/').next().unwrap_or(m));
        matches!(kind, "session" | "-session") && base == module
    })
}

/// The lines for the report (each ending in a newline), or nothing.
pub fn advice(policies: &Policies, service: &str, pam_text: &str) -> String {
    let mut out = String::new();
    let window = policies.fresh_window(service, 0);
    if window > 0 {
        out.push_str(&format!(
            "fresh-code window for {service}: {window} s after a login with password and code in \
             the same login session (the code prompt may then be left empty; the login service \
             needs `{SESSION_LINE}` after pam_loginuid)\n"
        ));
    }
    if LOGIN_SERVICES.contains(&service)
        && policies.any_fresh_window()
        && !session_loads(pam_text, "pam_veil.so")
    {
        let place = if session_loads(pam_text, "pam_loginuid.so") {
            "after its `session required pam_loginuid.so` line".to_owned()
        } else {
            "after a `session required pam_loginuid.so` line (add that too)".to_owned()
        };
        out.push_str(&format!(
            "warning: veild.toml sets a fresh-code window, but logins through {service} open none: \
             add `{SESSION_LINE}` to /etc/pam.d/{service}, {place}\n"
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use veil_daemon::common::config::Config;

    const SSHD: &str = include_str!("../../../../packaging/testdata/pam.d-sshd");

    fn policies(toml: &str) -> Policies {
        Policies::from(&Config::parse(toml, std::path::Path::new("veild.toml")).unwrap())
    }

    #[test]
    fn sshd_without_the_session_line_is_told_where_it_goes() {
        let p = policies("[service.sudo]\nfresh_code_window_s = 300\n");
        let got = advice(&p, "sshd", SSHD);
        assert!(
            got.contains("add `session    optional     pam_veil.so`"),
            "{got}"
        );
        assert!(
            got.contains("after its `session required pam_loginuid.so` line"),
            "{got}"
        );
        let with_line = SSHD.replace(
            "session    required     pam_loginuid.so\n",
            "session    required     pam_loginuid.so\nsession optional pam_veil.so\n",
        );
        assert_ne!(with_line, SSHD);
        assert_eq!(advice(&p, "sshd", &with_line), "");
    }

    #[test]
    fn the_windowed_service_reports_its_window_and_no_window_says_nothing() {
        let p = policies("[service.sudo]\nfresh_code_window_s = 300\n");
        let got = advice(&p, "sudo", "auth required pam_unix.so\n");
        assert!(
            got.starts_with("fresh-code window for sudo: 300 s"),
            "{got}"
        );
        let none = policies("");
        assert_eq!(advice(&none, "sshd", SSHD), "");
        assert_eq!(advice(&none, "sudo", ""), "");
    }
}

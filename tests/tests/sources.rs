//! Remote sources through real libpam and a real veild: one address in
//! any spelling is one source, host names buy no fresh counter, the
//! `[lockout]` prefixes group addresses, and an exempt network's own login
//! is not refused by a botnet's lock of the wide keys.
//!
//! They play sshd, whose PAM_RHOST is believed only from root: ignored in
//! a plain `cargo test`, run by `scripts/test.sh` as root
//! (`--include-ignored`); run as another user, they fail.

#![forbid(unsafe_code)]

use std::time::Duration;

use veil_tests::pam::{self, PAM_AUTH_ERR, PAM_SUCCESS, socket_args};
use veil_tests::root::require_root;
use veil_tests::{Attempt, DaemonConfig, PamStack, Veild};

const PASSWORD: &str = "correct horse battery staple";
const AUDIT_WAIT: Duration = Duration::from_secs(5);

/// Password-only logins, so one account can succeed several times without
/// waiting for new TOTP steps; `deny` and more `[lockout]` lines.
fn veild(deny: u32, lockout_extra: &str) -> Veild {
    let veild = Veild::start(DaemonConfig {
        deny,
        totp_policy: "if-enrolled",
        lockout_extra: lockout_extra.into(),
        ..DaemonConfig::default()
    });
    veild.add_user("alice", PASSWORD);
    veild
}

/// One sshd-style attempt at alice from `rhost`: its PAM code.
fn login(veild: &Veild, rhost: &str, password: &str) -> i32 {
    let stack = PamStack::veil(&socket_args(&veild.socket(), "10"));
    pam::authenticate(
        &stack,
        &Attempt::new("alice", &[password, ""]).from_host(rhost),
    )
    .code
}

/// The audit line that refused an attempt, by the key that refused it.
fn locked_by(veild: &Veild, key: &str) -> String {
    veild
        .wait_for_line(&["event=attempt", "reason=locked", key], AUDIT_WAIT)
        .unwrap_or_else(|| panic!("no attempt refused by {key}:\n{}", veild.stderr()))
}

/// Fails on the old main: the port and zone-id spellings were each a
/// source of their own, so alice's key at 192.0.2.1 had one failure of
/// three and her right password from there was let in.
#[test]
#[ignore = "needs root (plays sshd, whose PAM_RHOST is believed): scripts/test.sh runs it as root"]
fn every_spelling_of_one_address_runs_up_one_counter() {
    require_root();
    let veild = veild(3, "");
    for rhost in [
        "::ffff:192.0.2.1",
        "[::ffff:192.0.2.1]:2222",
        "::FFFF:192.0.2.1%eth0",
    ] {
        assert_eq!(login(&veild, rhost, "wrong"), PAM_AUTH_ERR, "{rhost}");
    }
    assert_eq!(
        login(&veild, "192.0.2.1", PASSWORD),
        PAM_AUTH_ERR,
        "the plain address is the same source, locked after 3"
    );
    locked_by(&veild, "key=user+source:alice@192.0.2.1");
    assert_eq!(login(&veild, "192.0.2.2", PASSWORD), PAM_SUCCESS);
}

/// Fails on the old main: each PTR name (sshd's `UseDNS yes`) was a fresh
/// source, so four names gave four counters and the fourth login passed.
#[test]
#[ignore = "needs root (plays sshd, whose PAM_RHOST is believed): scripts/test.sh runs it as root"]
fn host_names_share_one_source_and_buy_no_fresh_counter() {
    require_root();
    let veild = veild(3, "");
    for i in 0..3 {
        let name = format!("h{i}.attacker.example");
        assert_eq!(login(&veild, &name, "wrong"), PAM_AUTH_ERR, "{name}");
    }
    assert_eq!(
        login(&veild, "h3.attacker.example", PASSWORD),
        PAM_AUTH_ERR,
        "a fourth name is the same source"
    );
    let line = locked_by(&veild, "key=user+source:alice@names");
    assert!(line.contains("source=names"), "{line}");
    assert!(line.contains("rhost=h3.attacker.example"), "{line}");
    assert_eq!(login(&veild, "192.0.2.9", PASSWORD), PAM_SUCCESS);
}

/// Fails on the old main: it had no `ipv4_prefix`/`ipv6_prefix` (veild
/// refused the unknown keys), and its /64 made each of these its own source.
#[test]
#[ignore = "needs root (plays sshd, whose PAM_RHOST is believed): scripts/test.sh runs it as root"]
fn the_prefix_settings_group_addresses_into_one_source() {
    require_root();
    let veild = veild(3, "ipv4_prefix = 24\nipv6_prefix = 48\n");
    for rhost in ["2001:db8:1:1::1", "2001:db8:1:2::1", "2001:db8:1:3::1"] {
        assert_eq!(login(&veild, rhost, "wrong"), PAM_AUTH_ERR, "{rhost}");
    }
    assert_eq!(
        login(&veild, "2001:db8:1:ffff::1", PASSWORD),
        PAM_AUTH_ERR,
        "the same /48"
    );
    locked_by(&veild, "key=user+source:alice@2001:db8:1::/48");
    for rhost in ["198.51.100.1", "198.51.100.2", "198.51.100.3"] {
        assert_eq!(login(&veild, rhost, "wrong"), PAM_AUTH_ERR, "{rhost}");
    }
    assert_eq!(
        login(&veild, "198.51.100.200", PASSWORD),
        PAM_AUTH_ERR,
        "the same /24"
    );
    locked_by(&veild, "key=user+source:alice@198.51.100.0/24");
    assert_eq!(login(&veild, "2001:db8:2::1", PASSWORD), PAM_SUCCESS);
}

/// Fails on the old main: it had no `exempt_networks` (veild refused the
/// unknown key), and an admin address alice never logged in from was
/// refused by the botnet's lock of (alice, any remote source).
#[test]
#[ignore = "needs root (plays sshd, whose PAM_RHOST is believed): scripts/test.sh runs it as root"]
fn an_exempt_network_logs_in_through_a_botnet_lock_but_its_own_deny_holds() {
    require_root();
    let veild = veild(
        5,
        "user_deny = 20\nexempt_networks = [\"192.0.2.0/24\", \"2001:db8:a::/48\"]\n",
    );
    // 5 wrong from each of four bots: user_deny (20) locks alice's remote logins.
    for bot in ["203.0.113.1", "203.0.113.2", "203.0.113.3", "203.0.113.4"] {
        for i in 0..5 {
            assert_eq!(
                login(&veild, bot, &format!("guess {i}")),
                PAM_AUTH_ERR,
                "{bot}"
            );
        }
    }
    assert_eq!(
        login(&veild, "203.0.113.99", PASSWORD),
        PAM_AUTH_ERR,
        "an unseen source outside the exempt networks is refused"
    );
    locked_by(&veild, "key=user+remote:alice");
    // From the admin network, in any spelling, never seen before: let in.
    assert_eq!(login(&veild, "192.0.2.7", PASSWORD), PAM_SUCCESS);
    assert_eq!(login(&veild, "[2001:db8:a:5::7]:22", PASSWORD), PAM_SUCCESS);
    // Guessing from inside the admin network still locks its own key.
    for i in 0..5 {
        assert_eq!(
            login(&veild, "192.0.2.8", &format!("inside {i}")),
            PAM_AUTH_ERR
        );
    }
    assert_eq!(login(&veild, "192.0.2.8", PASSWORD), PAM_AUTH_ERR);
    locked_by(&veild, "key=user+source:alice@192.0.2.8");
}

/// Fails on the old main: the fair share keyed on PAM_RHOST as given, so
/// each name was a requester with a share of its own and none was held.
/// The denials wait for a long `failure_delay_ms`, so the four requests
/// overlap and two slots are all a share has.
#[test]
#[ignore = "needs root (plays sshd, whose PAM_RHOST is believed): scripts/test.sh runs it as root"]
fn host_names_share_one_fair_share() {
    require_root();
    let veild = Veild::start(DaemonConfig {
        deny: 5,
        failure_delay_ms: 3000,
        totp_policy: "if-enrolled",
        limits_extra: "max_connections_per_user = 2\n".into(),
        ..DaemonConfig::default()
    });
    veild.add_user("alice", PASSWORD);
    std::thread::scope(|s| {
        for i in 0..4 {
            let veild = &veild;
            s.spawn(move || {
                let name = format!("f{i}.attacker.example");
                assert_eq!(login(veild, &name, "wrong"), PAM_AUTH_ERR, "{name}");
            });
        }
    });
    veild
        .wait_for_line(&["event=overload", "requester=rhost:names"], AUDIT_WAIT)
        .unwrap_or_else(|| panic!("no name was held to the one share:\n{}", veild.stderr()));
}

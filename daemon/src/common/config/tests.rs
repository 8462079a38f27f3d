//! The config's defaults, strictness and the messages that name a key.

use super::*;

fn parse(text: &str) -> Result<Config, ConfigError> {
    Config::parse(text, Path::new("/etc/veil/veild.toml"))
}

#[test]
fn an_empty_file_gives_the_documented_defaults() {
    let c = parse("").unwrap();
    assert_eq!(c, Config::default());
    assert_eq!(c.failure_delay_ms, 2000);
    assert_eq!(
        (
            c.lockout.deny,
            c.lockout.fail_interval_s,
            c.lockout.unlock_time_s
        ),
        (5, 900, 900)
    );
    assert_eq!(
        (c.argon2.m_cost_kib, c.argon2.t_cost, c.argon2.p_cost),
        (19_456, 2, 1)
    );
    assert_eq!(c.totp.policy, TotpPolicy::Required);
}

#[test]
fn the_shipped_example_parses_to_the_defaults() {
    let text = include_str!("../../../../packaging/veild.toml");
    assert_eq!(parse(text).unwrap(), Config::default());
}

#[test]
fn unknown_keys_are_errors_that_name_the_key() {
    let err = parse("failure_delay = 10\n").unwrap_err().to_string();
    assert!(err.contains("failure_delay"), "{err}");
    let err = parse("[lockout]\ndenny = 3\n").unwrap_err().to_string();
    assert!(err.contains("denny"), "{err}");
}

#[test]
fn bad_values_are_errors_that_name_the_key() {
    let err = parse("[lockout]\ndeny = 0\n").unwrap_err().to_string();
    assert!(err.contains("lockout.deny"), "{err}");
    let err = parse("socket = \"relative.sock\"\n")
        .unwrap_err()
        .to_string();
    assert!(err.contains("socket"), "{err}");
    let err = parse("[totp]\npolicy = \"sometimes\"\n")
        .unwrap_err()
        .to_string();
    assert!(err.contains("policy") || err.contains("sometimes"), "{err}");
    let err = parse("[argon2]\nm_cost_kib = \"lots\"\n")
        .unwrap_err()
        .to_string();
    assert!(err.contains("m_cost_kib"), "{err}");
}

#[test]
fn source_grouping_and_exempt_networks_parse_strictly_naming_the_key() {
    // On the old main these keys did not exist: veild refused to start.
    let c = parse(
        "[lockout]\nipv4_prefix = 24\nipv6_prefix = 48\n\
         exempt_networks = [\"198.51.100.0/24\", \"2001:db8:a::/48\"]\n",
    )
    .unwrap();
    let sources = crate::common::ledger::Limits::from(&c.lockout).sources;
    assert_eq!((sources.ipv4_prefix, sources.ipv6_prefix), (24, 48));
    assert_eq!(sources.exempt.len(), 2);
    for (text, key) in [
        ("ipv6_prefix = 16", "lockout.ipv6_prefix"),
        ("ipv6_prefix = 129", "lockout.ipv6_prefix"),
        ("ipv4_prefix = 8", "lockout.ipv4_prefix"),
        ("exempt_networks = [\"10.0.0.1/8\"]", "exempt_networks"),
        ("exempt_networks = [\"admin.example\"]", "exempt_networks"),
        ("exempt_networks = \"10.0.0.0/8\"", "exempt_networks"),
    ] {
        let err = parse(&format!("[lockout]\n{text}\n"))
            .unwrap_err()
            .to_string();
        assert!(err.contains(key), "{text}: {err}");
    }
    let err = parse("[lockout]\nexempt_networks = [\"10.0.0.1/8\"]\n")
        .unwrap_err()
        .to_string();
    assert!(err.contains("did you mean 10.0.0.0/8?"), "{err}");
}

#[test]
fn password_source_and_dummy_overrides_parse_and_default_to_veil() {
    assert_eq!(parse("").unwrap().password.source, PasswordSource::Veil);
    let c = parse(
        "[password]\nsource = \"system\"\nshadow = \"/tmp/shadow\"\n\
         dummy_method = \"sha512\"\ndummy_cost = 65536\n",
    )
    .unwrap();
    assert_eq!(c.password.source, PasswordSource::System);
    assert_eq!(c.password.shadow, PathBuf::from("/tmp/shadow"));
    assert_eq!(
        (c.password.dummy_method, c.password.dummy_cost),
        (Some(Kind::Sha512), Some(65536))
    );
    let err = parse("[password]\nsource = \"ldap\"\n")
        .unwrap_err()
        .to_string();
    assert!(err.contains("ldap") || err.contains("source"), "{err}");
    let err = parse("[password]\nshadow = \"shadow\"\n")
        .unwrap_err()
        .to_string();
    assert!(err.contains("password.shadow"), "{err}");
    let err = parse("[password]\nsalt = 1\n").unwrap_err().to_string();
    assert!(err.contains("salt"), "{err}");
}

#[test]
fn rollout_keys_parse_and_a_bad_date_names_the_key() {
    let c = parse(
        "[totp]\npolicy = \"if-enrolled\"\nrequired_groups = [\"admins\", \"ops\"]\n\
         enrol_by = \"2026-03-01\"\n",
    )
    .unwrap();
    assert_eq!(c.totp.required_groups, vec!["admins", "ops"]);
    assert_eq!(c.totp.enrol_by_unix(), Some(1_772_323_200));
    assert_eq!(day_start_unix("1970-01-01"), Some(0));
    assert_eq!(day_start_unix("2024-02-29"), Some(1_709_164_800));
    for bad in [
        "2026-02-30",
        "2026-3-01",
        "01.03.2026",
        "2026-13-01",
        "tomorrow",
    ] {
        let err = parse(&format!("[totp]\nenrol_by = \"{bad}\"\n"))
            .unwrap_err()
            .to_string();
        assert!(err.contains("totp.enrol_by"), "{err}");
    }
}

#[test]
fn the_issuer_is_optional_and_checked() {
    assert_eq!(parse("").unwrap().totp.issuer, None);
    let c = parse("[totp]\nissuer = \"Example Corp web-1\"\n").unwrap();
    assert_eq!(c.totp.issuer.as_deref(), Some("Example Corp web-1"));
    for bad in ["\"\"", "\"a:b\"", "\"x\\u0007\""] {
        let err = parse(&format!("[totp]\nissuer = {bad}\n"))
            .unwrap_err()
            .to_string();
        assert!(err.contains("totp.issuer"), "{bad}: {err}");
    }
}

#[test]
fn policy_and_scope_spellings() {
    let c = parse("[totp]\npolicy = \"if-enrolled\"\n[lockout]\nscope = \"user\"\n").unwrap();
    assert_eq!(c.totp.policy, TotpPolicy::IfEnrolled);
    assert_eq!(c.lockout.scope, LockoutScope::User);
}

#[test]
fn alert_settings_out_of_bounds_are_errors_that_name_the_key() {
    for (text, key) in [
        ("[alerts]\ncommand = \"veil-alert\"\n", "alerts.command"),
        ("[alerts]\ntimeout_s = 0\n", "alerts.timeout_s"),
        ("[alerts]\ntimeout_s = 61\n", "alerts.timeout_s"),
        ("[alerts]\nstorm_locks = 0\n", "alerts.storm_locks"),
        ("[alerts]\nstorm_window_s = 0\n", "alerts.storm_window_s"),
        ("[alerts]\nargs = [\"a\\u0000b\"]\n", "alerts.args"),
    ] {
        let err = parse(text).unwrap_err().to_string();
        assert!(err.contains(key), "{text}: {err}");
    }
    let c = parse("[alerts]\ncommand = \"/usr/local/sbin/veil-alert\"\nargs = [\"-v\"]\n").unwrap();
    assert_eq!(c.alerts.args, ["-v"]);
}

#[test]
fn the_fresh_code_window_is_bounded_and_needs_a_line_with_both_factors() {
    let ok = parse("[service.sudo]\nfresh_code_window_s = 3600\n").unwrap();
    assert_eq!(ok.service["sudo"].fresh_code_window_s, Some(3600));
    let too_long = parse("[service.sudo]\nfresh_code_window_s = 3601\n").unwrap_err();
    assert!(
        too_long.to_string().contains("fresh_code_window_s"),
        "{too_long}"
    );
    for factors in ["[\"password\"]", "[\"code\"]"] {
        let text = format!("[service.sudo]\nfactors = {factors}\nfresh_code_window_s = 60\n");
        let e = parse(&text).unwrap_err();
        assert!(e.to_string().contains("fresh_code_window_s"), "{e}");
    }
    // 0 is off and allowed anywhere.
    parse("[service.sudo]\nfactors = [\"password\"]\nfresh_code_window_s = 0\n").unwrap();
}

/// `[postgres] outage` (issue 20, item 5): `deny` by default, `local` on
/// request, bounds named by key. Fails on the old main: no such keys.
#[test]
fn the_outage_option_defaults_to_deny_and_names_its_keys() {
    let url = "database = \"postgresql://veil@%2Frun%2Fpostgresql/veil\"\n";
    let c = parse(url).unwrap();
    assert_eq!(c.postgres.outage, pg::Outage::Deny);
    let c = parse(&format!("{url}[postgres]\noutage = \"local\"\n")).unwrap();
    assert_eq!(c.postgres.outage, pg::Outage::Local);
    assert_eq!(
        c.postgres.outage_cache,
        Path::new("/var/lib/veil/outage-cache.db")
    );
    assert_eq!(c.postgres.outage_refresh_s, 60);
    let err = parse(&format!("{url}[postgres]\noutage = \"allow\"\n")).unwrap_err();
    assert!(err.to_string().contains("outage"), "{err}");
    let err = parse(&format!("{url}[postgres]\noutage_refresh_s = 0\n")).unwrap_err();
    assert!(
        err.to_string().contains("postgres.outage_refresh_s"),
        "{err}"
    );
    let err = parse(&format!(
        "{url}[postgres]\noutage = \"local\"\noutage_cache = \"cache.db\"\n"
    ))
    .unwrap_err();
    assert!(err.to_string().contains("postgres.outage_cache"), "{err}");
}

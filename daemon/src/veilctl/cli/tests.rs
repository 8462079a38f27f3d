//! The man page says what the command line does: every command and every
//! long option clap knows is in veilctl(8), and every config key veild
//! reads is in veild.toml(5). Fails when one is added without its page.

use clap::CommandFactory;

use super::Cli;

/// A roff page as plain words: `\-` is `-`, font changes and quotes gone.
fn plain(roff: &str) -> String {
    roff.replace("\\-", "-")
        .replace("\\fB", "")
        .replace("\\fR", "")
        .replace("\\fI", "")
        .replace("\\(dq", "\"")
        .replace('"', "")
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ")
}

fn page(name: &str) -> String {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../packaging/man")
        .join(name);
    plain(&std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display())))
}

/// Every command path ("user add", "store copy", ...) and long option.
fn walk(cmd: &clap::Command, path: &str, missing: &mut Vec<String>, man: &str) {
    for arg in cmd.get_arguments() {
        let long = arg.get_long().filter(|l| !["help", "version"].contains(l));
        if let Some(long) = long.filter(|l| !man.contains(&format!("--{l}"))) {
            missing.push(format!("{path} --{long}"));
        }
    }
    for sub in cmd.get_subcommands() {
        if sub.get_name() == "help" {
            continue;
        }
        let sub_path = format!("{path} {}", sub.get_name()).trim().to_owned();
        if !man.contains(&sub_path) {
            missing.push(sub_path.clone());
        }
        walk(sub, &sub_path, missing, man);
    }
}

#[test]
fn every_command_and_option_is_in_the_man_page() {
    let man = page("veilctl.8");
    let mut missing = Vec::new();
    walk(&Cli::command(), "", &mut missing, &man);
    assert!(missing.is_empty(), "not in veilctl(8): {missing:?}");
}

#[test]
fn every_config_key_is_in_veild_toml_5() {
    let man = page("veild.toml.5");
    // Keys left out when unset are given a value, so that they are listed
    // too (a new optional key needs a line here as well).
    let mut config = veil_daemon::common::config::Config::default();
    config.password.dummy_method = Some(veil_daemon::common::crypt::Kind::Yescrypt);
    config.password.dummy_cost = Some(5);
    config.lockout.exempt_networks = vec!["192.0.2.0/24".parse().unwrap()];
    config.totp.required_groups = vec!["staff".into()];
    config.totp.enrol_by = Some("2027-01-01".into());
    config.totp.issuer = Some("veil".into());
    config.postgres.password_file = Some("/etc/veil/pgpass".into());
    config.postgres.ca_file = Some("/etc/veil/ca.pem".into());
    config.metrics.file = Some("/var/lib/prometheus/node-exporter/veil.prom".into());
    config.metrics.group = Some("prometheus".into());
    config.service.insert(
        "sshd".into(),
        veil_daemon::common::config::Service {
            factors: Some(veil_daemon::common::config::Factors::Code),
            totp_policy: Some(veil_daemon::common::config::TotpPolicy::Required),
            fresh_code_window_s: Some(300),
        },
    );
    let table = toml::Table::try_from(config).unwrap();
    let mut missing = Vec::new();
    for (key, value) in &table {
        match value {
            // Named sections (`[service.NAME]`): their keys are one level down.
            toml::Value::Table(named) if key == "service" => {
                if !man.contains("[service.NAME]") {
                    missing.push("[service.NAME]".into());
                }
                for inner in named.values().filter_map(toml::Value::as_table) {
                    for k in inner.keys().filter(|k| !man.contains(k.as_str())) {
                        missing.push(format!("service.NAME.{k}"));
                    }
                }
            }
            toml::Value::Table(section) => {
                if !man.contains(&format!("[{key}]")) {
                    missing.push(format!("[{key}]"));
                }
                for inner in section.keys() {
                    if !man.contains(inner.as_str()) {
                        missing.push(format!("{key}.{inner}"));
                    }
                }
            }
            _ => {
                if !man.contains(key.as_str()) {
                    missing.push(key.clone());
                }
            }
        }
    }
    assert!(missing.is_empty(), "not in veild.toml(5): {missing:?}");
}

//! An older release's config keeps working: the `veild.toml` that 0.1.0
//! and 0.2.0 shipped (packaging/testdata, taken from their commits) is
//! accepted by this veild as it is and with each of its commented-out
//! optional keys switched on, one at a time. And the package's preinst,
//! which refuses an upgrade whose config this release stops accepting
//! (before dpkg replaces anything), reads its table right: run here on a
//! copy of the script with a table of test rules.

use std::path::{Path, PathBuf};
use std::process::Command;

use veil_tests::paths;

const OLD: [&str; 2] = ["0.1.0", "0.2.0"];

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn old_config(version: &str) -> String {
    let path = repo().join(format!("packaging/testdata/veild.toml-{version}"));
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// `veild --check-config` on `text`: its status and what it printed.
fn check(dir: &Path, name: &str, text: &str) -> (bool, String) {
    let path = dir.join(name);
    std::fs::write(&path, text).unwrap();
    let out = Command::new(paths::veild())
        .arg("--check-config")
        .arg("--config")
        .arg(&path)
        .output()
        .expect("run veild --check-config");
    let said = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), said)
}

#[test]
fn the_configs_earlier_releases_shipped_still_check() {
    let dir = tempfile::tempdir().unwrap();
    for version in OLD {
        let text = old_config(version);
        let (ok, said) = check(dir.path(), version, &text);
        assert!(ok, "{version}'s veild.toml refused: {said}");
        assert!(!said.contains("warning"), "{version}'s veild.toml: {said}");
    }
}

#[test]
fn each_optional_key_earlier_releases_documented_still_checks() {
    let dir = tempfile::tempdir().unwrap();
    let mut tried = 0;
    for version in OLD {
        let text = old_config(version);
        let lines: Vec<&str> = text.lines().collect();
        for (i, line) in lines.iter().enumerate() {
            // `#key = value` or `# key = value`: an optional key, switched off.
            let body = line.trim_start_matches('#').trim_start();
            let is_key = line.starts_with('#')
                && body.split_once('=').is_some_and(|(k, _)| {
                    !k.trim().is_empty()
                        && k.trim().chars().all(|c| c.is_ascii_lowercase() || c == '_')
                });
            if !is_key {
                continue;
            }
            let mut on = lines.clone();
            on[i] = body;
            let (ok, said) = check(dir.path(), &format!("{version}-{i}"), &on.join("\n"));
            assert!(
                ok,
                "{version}'s veild.toml with line {} switched on ({body}) refused: {said}",
                i + 1
            );
            tried += 1;
        }
    }
    // The two files document 15 optional keys between them; fewer means
    // the reading above broke, not that the keys went.
    assert!(tried >= 15, "only {tried} optional keys found");
}

/// packaging/debian/preinst with its config path and table replaced.
fn preinst_with(dir: &Path, config: &Path, table: &str) -> PathBuf {
    let script = std::fs::read_to_string(repo().join("packaging/debian/preinst")).unwrap();
    let config_line = "config=/etc/veil/veild.toml";
    let table_block = "cat <<'TABLE'\nTABLE";
    assert!(
        script.contains(config_line) && script.contains(table_block),
        "preinst changed shape"
    );
    let script = script
        .replace(config_line, &format!("config={}", config.display()))
        .replace(table_block, &format!("cat <<'TABLE'\n{table}TABLE"));
    let path = dir.join("preinst");
    std::fs::write(&path, script).unwrap();
    path
}

fn run_preinst(script: &Path, args: &[&str]) -> (bool, String) {
    let out = Command::new("sh")
        .arg(script)
        .args(args)
        .output()
        .expect("run sh");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn the_shipped_preinst_accepts_every_earlier_config() {
    let dir = tempfile::tempdir().unwrap();
    for version in OLD {
        let config = dir.path().join(format!("veild.toml-{version}"));
        std::fs::write(&config, old_config(version)).unwrap();
        let script = std::fs::read_to_string(repo().join("packaging/debian/preinst")).unwrap();
        let path = dir.path().join("preinst-shipped");
        std::fs::write(
            &path,
            script.replace(
                "config=/etc/veil/veild.toml",
                &format!("config={}", config.display()),
            ),
        )
        .unwrap();
        let (ok, said) = run_preinst(&path, &["upgrade", version]);
        assert!(ok, "the preinst refuses {version}'s config: {said}");
    }
}

#[test]
fn the_preinst_names_the_line_and_the_fix_of_each_rule_broken() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("veild.toml");
    std::fs::write(&config, old_config("0.1.0")).unwrap();
    let table = "lockout.max_ledger_rows\trange 1000000 100000000\tset it to 1000000\n\
                 .failure_delay_ms\tremoved\tdelete the line\n\
                 totp.skew\trange 0 10\tnothing\n\
                 argon2.made_up\tremoved\tnothing\n";
    let script = preinst_with(dir.path(), &config, table);

    let (ok, said) = run_preinst(&script, &["upgrade", "0.1.0-1"]);
    assert!(!ok, "the preinst let the upgrade go on: {said}");
    let at = config.display();
    assert!(
        said.contains(&format!(
            "{at}:48: lockout.max_ledger_rows = 100000 must be from 1000000 to 100000000; fix: set it to 1000000"
        )),
        "{said}"
    );
    assert!(
        said.contains(&format!(
            "{at}:16: failure_delay_ms is no longer accepted; fix: delete the line"
        )),
        "{said}"
    );
    // Rules the config keeps (skew = 1, no made_up key) are not named.
    assert!(
        !said.contains("skew") && !said.contains("made_up"),
        "{said}"
    );
    assert!(said.contains("nothing was changed"), "{said}");

    // Only install and upgrade are checked; a missing config passes.
    assert!(run_preinst(&script, &["abort-upgrade", "0.3.0"]).0);
    std::fs::remove_file(&config).unwrap();
    assert!(run_preinst(&script, &["upgrade", "0.1.0-1"]).0);
}

//! sshd settings that bring the oracle back (issue 21 part 4). Debian 12's
//! OpenSSH 9.2 does not know `invalid-user`, `RefuseConnection` or
//! `invaliduser:`, so these read the files as enable does when `sshd -T`
//! rejects them; tests/tests/enable.rs runs the real `sshd -T` for UseDNS
//! and PasswordAuthentication. Each fails on the old main, which had no
//! such check (the refusals and warnings below did not exist).

use std::fs;

use super::sshd_config::{load_match_blocks, sshd_advice, sshd_directives};
use super::sshd_oracle::{OracleReport, oracle_settings};
use super::tests::{SSHD, enable_args, enrol, setup};
use super::*;
use crate::error::EXIT_REFUSED;

/// What `enable` finds in `text` (its Match blocks read from a file).
fn check(text: &str) -> OracleReport {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("sshd_config");
    fs::write(&path, text).unwrap();
    let global = sshd_directives(text, "sshd_config").0;
    oracle_settings(&global, &load_match_blocks(&path).unwrap())
}

const READY: &str = "UsePAM yes\nKbdInteractiveAuthentication yes\nPasswordAuthentication no\n\
                     PubkeyAuthentication no\n";

#[test]
fn a_match_invalid_user_block_is_refused_in_either_spelling() {
    for criteria in ["invalid-user", "Invalid-User", "User=x* invalid-user"] {
        let r = check(&format!(
            "{READY}Match {criteria}\n    MaxAuthTries 1\nMatch Address 10.0.0.0/8\n    MaxAuthTries 2\n"
        ));
        assert_eq!(r.refusals.len(), 1, "{criteria}: {r:?}");
        assert!(r.refusals[0].contains(&format!("sshd_config:5: Match {criteria}")));
        assert!(r.refusals[0].contains("fix: delete the block"), "{r:?}");
    }
    // An empty block changes nothing.
    assert_eq!(
        check(&format!("{READY}Match invalid-user\n")),
        OracleReport::default()
    );
}

#[test]
fn refuse_connection_is_refused_only_where_the_block_matches_on_the_user() {
    for criteria in [
        "User alice,bob",
        "Group wheel",
        "Address 10.0.0.0/8 User alice",
    ] {
        let r = check(&format!(
            "{READY}Match {criteria}\n    RefuseConnection yes\n"
        ));
        assert_eq!(r.refusals.len(), 1, "{criteria}: {r:?}");
        assert!(
            r.refusals[0].contains("sshd_config:6: RefuseConnection yes"),
            "{r:?}"
        );
        assert!(r.refusals[0].contains("DenyUsers or DenyGroups"), "{r:?}");
    }
    // By source alone it says nothing about the account.
    for criteria in [
        "Address 10.0.0.0/8",
        "Host *.example",
        "all",
        "LocalPort 2222",
    ] {
        let r = check(&format!(
            "{READY}Match {criteria}\n    RefuseConnection yes\n"
        ));
        assert_eq!(r, OracleReport::default(), "{criteria}");
    }
    let r = check(&format!(
        "{READY}Match User alice\n    RefuseConnection no\n"
    ));
    assert_eq!(r, OracleReport::default());
}

#[test]
fn per_source_penalties_must_treat_unknown_names_like_failed_accounts() {
    let refused = [
        "PerSourcePenalties authfail:30s invaliduser:5s",
        // invaliduser defaults to 5s.
        "PerSourcePenalties authfail:30s",
        "PerSourcePenalties invaliduser:1m",
        // sshd keeps each field's first value, over several lines.
        "PerSourcePenalties invaliduser:5s\nPerSourcePenalties authfail:30s invaliduser:30s",
        // As OpenSSH 10.3+'s sshd -T prints it.
        "persourcepenalties crash:90.000000 authfail:5.000000 noauth:1.000000 invaliduser:1.000000 \
         grace-exceeded:10.000000 refuseconnection:10.000000 max:600.000000 min:15.000000",
    ];
    for line in refused {
        let r = check(&format!("{line}\n{READY}"));
        assert_eq!(r.refusals.len(), 1, "{line}: {r:?}");
        assert!(r.refusals[0].contains("sshd_config:1: PerSourcePenalties invaliduser:"));
        assert!(
            r.refusals[0].contains("fix: PerSourcePenalties invaliduser:"),
            "{r:?}"
        );
    }
    let r = check(&format!("{}\n{READY}", refused[0]));
    assert!(
        r.refusals[0].contains("invaliduser:5s but authfail:30s"),
        "{r:?}"
    );
    assert!(r.refusals[0].contains("invaliduser:30s (the same"), "{r:?}");
    for line in [
        "PerSourcePenalties authfail:1m invaliduser:60",
        "PerSourcePenalties authfail:5s",
        "PerSourcePenalties no",
        "PerSourcePenalties crash:90s noauth:1s",
        "PerSourcePenalties authfail:30s\nPerSourcePenalties invaliduser:30s authfail:5s",
        "PerSourcePenalties no\nPerSourcePenalties authfail:30s",
        "persourcepenalties crash:90.000000 authfail:5.000000 noauth:1.000000 invaliduser:5.000000 \
         grace-exceeded:10.000000 refuseconnection:10.000000 max:600.000000 min:15.000000",
    ] {
        assert_eq!(
            check(&format!("{line}\n{READY}")),
            OracleReport::default(),
            "{line}"
        );
    }
}

#[test]
fn use_dns_yes_is_warned_about_with_the_names_source() {
    let r = check(&format!("UseDNS yes\n{READY}"));
    assert!(r.refusals.is_empty());
    assert_eq!(r.warnings.len(), 1, "{r:?}");
    assert!(
        r.warnings[0].contains("UseDNS yes (sshd_config:1)"),
        "{r:?}"
    );
    assert!(r.warnings[0].contains("one source `names`"), "{r:?}");
    assert!(r.warnings[0].contains("fix: UseDNS no"), "{r:?}");
    assert_eq!(
        check(&format!("UseDNS no\n{READY}")),
        OracleReport::default()
    );
    assert_eq!(check(READY), OracleReport::default());
}

#[test]
fn password_authentication_advice_says_what_each_try_costs() {
    let a = sshd_advice(&sshd_directives("UsePAM yes\n", "sshd_config").0);
    let c = a
        .advised
        .iter()
        .find(|c| c.line == "PasswordAuthentication no")
        .unwrap();
    assert!(c.why.contains("real and unknown names alike"), "{c:?}");
    assert!(c.why.contains("counts as a failure"), "{c:?}");
    // It names the mode that serves the password method (issue 21).
    assert!(c.why.contains("veilctl enable sshd --one-prompt"), "{c:?}");
}

/// Through `enable` (the real `sshd -T` where it runs: OpenSSH 9.2 rejects
/// `invalid-user`, and enable reads the files instead).
#[test]
fn enable_refuses_a_match_invalid_user_block_and_changes_nothing() {
    let (dir, config, pam) = setup(SSHD);
    enrol(&config, "bob", true);
    let sshd_config = dir.path().join("sshd_config");
    fs::write(
        &sshd_config,
        format!("{READY}Match invalid-user\n    RefuseConnection yes\n"),
    )
    .unwrap();
    let mut args = enable_args(dir.path(), &pam);
    args.sshd_config = Some(sshd_config.clone());
    let err = enable(&config, &args).unwrap_err();
    assert_eq!(err.code, EXIT_REFUSED);
    assert!(
        err.message
            .contains("tells a real account from an unknown name"),
        "{err}"
    );
    assert!(err.message.contains(":5: Match invalid-user"), "{err}");
    assert!(
        err.message.contains("then run veilctl enable svc again"),
        "{err}"
    );
    assert_eq!(fs::read_to_string(pam.join("svc")).unwrap(), SSHD);
    assert!(!args.backup_dir.exists());
    fs::write(&sshd_config, format!("UseDNS yes\n{READY}")).unwrap();
    let report = enable(&config, &args).unwrap();
    assert!(report.contains("warning: UseDNS yes"), "{report}");
}

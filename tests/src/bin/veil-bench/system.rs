//! `[password] source = "system"`: a login's latency against a bare
//! libxcrypt verify at the host's default cost, and denial timing at delay
//! 0 for a wrong system password, a locked system account and an unknown
//! name. Real accounts, made for the run with `useradd` + `chpasswd`
//! (through pam_unix's password line) and removed at the end.

use std::time::Instant;

use veil_daemon::common::crypt::{self, Scratch};
use veil_tests::Attempt;
use veil_tests::accounts::{self, Accounts, run, shadow_hash};
use veil_tests::pam::authenticate;
use veil_tests::stats::{ks_two_sample, median, quantile};

use crate::timing::Lcg;
use crate::{Daemon, PAM_OK, ms, verdict};

const PASSWORD: &str = "bench system pw 7";
/// Accounts per class, so that no name reaches its `deny` in a window.
const PER_CLASS: usize = 10;

pub fn system_report(n: usize, say: &mut dyn FnMut(String)) {
    let names = |class: &str| -> Vec<String> {
        (0..PER_CLASS)
            .map(|i| format!("veilbench-{class}{i}"))
            .collect()
    };
    let (wrong, locked, unknown) = (names("w"), names("l"), names("u"));
    for name in &unknown {
        assert!(
            !accounts::exists(name),
            "an account {name} exists on this host"
        );
    }
    let mut made = Accounts::new();
    for name in wrong.iter().chain(&locked) {
        made.add_with_password(name, PASSWORD);
    }
    for name in &locked {
        run("passwd", &["-l", name], "");
    }
    let hash = shadow_hash(&wrong[0]);

    // The floor: libxcrypt itself on that hash.
    let mut scratch = Scratch::default();
    let floor: Vec<f64> = (0..100)
        .map(|_| {
            let t = Instant::now();
            assert!(crypt::verify(&mut scratch, &hash, PASSWORD.as_bytes()));
            ms(t.elapsed())
        })
        .collect();

    let mut d = Daemon::start(
        "failure_delay_ms = 2000\n[password]\nsource = \"system\"\n[totp]\npolicy = \"if-enrolled\"\n",
    );
    let stack = d.stack();
    let logins: Vec<f64> = (0..100)
        .map(|i| {
            let run = authenticate(
                &stack,
                &Attempt::new(&wrong[i % PER_CLASS], &[PASSWORD, ""]).from_host("192.0.2.1"),
            );
            assert_eq!(run.code, PAM_OK, "a system login failed");
            ms(run.elapsed)
        })
        .collect();
    say("## System passwords (`[password] source = \"system\"`)\n".into());
    say(format!(
        "Accounts made with `useradd` + `chpasswd` (pam_unix's method and cost on this host: `{}`).\n",
        crypt::describe(&hash)
    ));
    say("| | n | median | p99 |\n|---|---|---|---|".into());
    say(format!(
        "| bare libxcrypt verify (`crypt_rn`) | {} | {:.2} ms | {:.2} ms |",
        floor.len(),
        median(&floor),
        quantile(&floor, 0.99)
    ));
    say(format!(
        "| successful login through libpam + pam_veil + veild | {} | {:.2} ms | {:.2} ms |\n",
        logins.len(),
        median(&logins),
        quantile(&logins, 0.99)
    ));

    // Denials at delay 0, three classes interleaved at random, one client.
    d.restart(
        "failure_delay_ms = 0\n[password]\nsource = \"system\"\n[totp]\npolicy = \"if-enrolled\"\n\
         [lockout]\ndeny = 100\nfail_interval_s = 1\nuser_deny = 100000000\nsource_deny = 100000000\n[limits]\nqueue = 256\n",
    );
    let stack = d.stack();
    let classes: [(&str, &Vec<String>); 3] = [
        ("unknown name", &unknown),
        ("system user, wrong password", &wrong),
        ("locked system user (right password)", &locked),
    ];
    let mut plan: Vec<usize> = (0..3).flat_map(|c| std::iter::repeat_n(c, n)).collect();
    let mut rng = Lcg(0x5157);
    for i in (1..plan.len()).rev() {
        plan.swap(i, rng.below(i + 1));
    }
    let mut lat: Vec<Vec<f64>> = (0..3).map(|_| Vec::with_capacity(n)).collect();
    let mut count = [0usize; 3];
    for c in plan {
        let (_, names) = classes[c];
        let password = if c == 2 { PASSWORD } else { "not the password" };
        let attempt =
            Attempt::new(&names[count[c] % PER_CLASS], &[password, ""]).from_host("192.0.2.2");
        count[c] += 1;
        let run = authenticate(&stack, &attempt);
        assert_ne!(run.code, PAM_OK, "a denial class succeeded");
        lat[c].push(ms(run.elapsed));
    }
    say(format!(
        "Denials at failure_delay_ms = 0: {n} per class, interleaved at random, one client, through libpam.\n"
    ));
    say("| class | n | median | p10 | p90 | KS p vs unknown | Δ median vs unknown | target (p > 0.01, |Δ| < 0.5 ms) |\n|---|---|---|---|---|---|---|---|".into());
    for (c, (name, _)) in classes.iter().enumerate() {
        let (_, p) = if c == 0 {
            (0.0, 1.0)
        } else {
            ks_two_sample(&lat[0], &lat[c])
        };
        let delta = median(&lat[c]) - median(&lat[0]);
        say(format!(
            "| {name} | {} | {:.2} ms | {:.2} ms | {:.2} ms | {p:.3} | {delta:+.3} ms | {} |",
            lat[c].len(),
            median(&lat[c]),
            quantile(&lat[c], 0.1),
            quantile(&lat[c], 0.9),
            if c == 0 {
                "-"
            } else {
                verdict(p > 0.01 && delta.abs() < 0.5)
            }
        ));
    }
    say(String::new());
    drop(made);
}

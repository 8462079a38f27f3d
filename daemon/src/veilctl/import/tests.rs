use super::*;

/// Written by `google-authenticator --time-based --disallow-reuse --force
/// --rate-limit=3 --rate-time=30 --window-size=3 --no-confirm --quiet`
/// (libpam-google-authenticator 20191231, Debian 12).
const TOTP_FILE: &str = "R7N7EG5ASIVN2I5MFXFANSH6WE\n\" RATE_LIMIT 3 30\n\" WINDOW_SIZE 3\n\" DISALLOW_REUSE\n\" TOTP_AUTH\n92668966\n20047959\n66819211\n42431583\n42454308\n";

/// `google-authenticator -c -f -C -q -u -W -e 2`: counter-based.
const HOTP_FILE: &str =
    "TPNECSY27WFYZV4EZIDQZ4XLHE\n\" WINDOW_SIZE 1\n\" HOTP_COUNTER 1\n63701998\n80488148\n";

/// `google-authenticator -t -f -C -q -S 60 -D -w 3 -u`.
const STEP_60_FILE: &str = "YNP6IKGH6B365JJ4UVLGCVNWYE\n\" WINDOW_SIZE 3\n\" STEP_SIZE 60\n\" TOTP_AUTH\n98742536\n31464239\n15335438\n18343686\n83201512\n";

#[test]
fn a_totp_file_gives_its_secret_options_and_scratch_count() {
    let ga = parse(TOTP_FILE).unwrap();
    assert_eq!(
        ga.secret.as_slice(),
        totp::from_base32("R7N7EG5ASIVN2I5MFXFANSH6WE")
            .unwrap()
            .as_slice()
    );
    assert_eq!(ga.secret.len(), 16);
    assert_eq!(
        ga.options,
        vec![
            GaOption::RateLimit {
                logins: 3,
                seconds: 30
            },
            GaOption::WindowSize(3),
            GaOption::DisallowReuse,
            GaOption::TotpAuth,
        ]
    );
    assert_eq!(ga.scratch_codes, 5);
    ga.check_usable().unwrap();
}

#[test]
fn notes_name_what_is_not_carried_over() {
    let ga = parse(TOTP_FILE).unwrap();
    // skew 1 is a window of 3: WINDOW_SIZE 3 carries over.
    let notes = ga.notes(1).join("\n");
    assert!(
        notes.contains("RATE_LIMIT 3 30 not carried over"),
        "{notes}"
    );
    assert!(notes.contains("lockout"), "{notes}");
    assert!(!notes.contains("WINDOW_SIZE"), "{notes}");
    assert!(
        notes.contains("5 scratch codes imported as recovery codes"),
        "{notes}"
    );
    assert_eq!(ga.scratch[0].as_str(), "92668966");
    assert!(!notes.contains("used twice"), "{notes}");
    let notes = ga.notes(2).join("\n");
    assert!(
        notes.contains("WINDOW_SIZE 3 not carried over: veil accepts 5 codes"),
        "{notes}"
    );
}

#[test]
fn rate_limit_timestamps_and_reuse_steps_after_use_are_read() {
    // After logins, google-authenticator appends timestamps and used steps.
    let text = "R7N7EG5ASIVN2I5MFXFANSH6WE\n\" RATE_LIMIT 3 30 1764629000 1764629010\n\" WINDOW_SIZE 17\n\" TOTP_AUTH\n\" DISALLOW_REUSE 58820966\n";
    let ga = parse(text).unwrap();
    assert!(ga.options.contains(&GaOption::DisallowReuse));
    assert!(ga.options.contains(&GaOption::WindowSize(17)));
    assert_eq!(ga.scratch_codes, 0);
    let notes = ga.notes(1).join("\n");
    assert!(notes.contains("WINDOW_SIZE 17 not carried over"), "{notes}");
    assert!(!notes.contains("scratch"), "{notes}");
}

#[test]
fn a_file_that_allowed_reuse_says_veil_does_not() {
    let ga = parse("R7N7EG5ASIVN2I5MFXFANSH6WE\n\" TOTP_AUTH\n").unwrap();
    assert!(ga.notes(1).join("\n").contains("used twice"));
}

#[test]
fn hotp_and_other_step_sizes_are_refused() {
    let err = parse(HOTP_FILE).unwrap().check_usable().unwrap_err();
    assert!(err.message.contains("HOTP_COUNTER"), "{}", err.message);
    let err = parse(STEP_60_FILE).unwrap().check_usable().unwrap_err();
    assert!(err.message.contains("STEP_SIZE 60"), "{}", err.message);
    let ga = parse("R7N7EG5ASIVN2I5MFXFANSH6WE\n\" STEP_SIZE 30\n").unwrap();
    ga.check_usable().unwrap();
}

#[test]
fn what_is_not_such_a_file_is_refused() {
    assert!(parse("").is_err());
    assert!(parse("not base32!\n").is_err());
    assert!(parse("MFRGG\n").is_err(), "too short a secret");
    assert!(parse("R7N7EG5ASIVN2I5MFXFANSH6WE\nhello\n").is_err());
    assert!(parse("R7N7EG5ASIVN2I5MFXFANSH6WE\n\" WINDOW_SIZE x\n").is_err());
    assert!(parse("R7N7EG5ASIVN2I5MFXFANSH6WE\n1234567\n").is_err());
    let ga = parse("R7N7EG5ASIVN2I5MFXFANSH6WE\n\" SOMETHING_NEW 1\n").unwrap();
    assert!(ga.notes(1).join("\n").contains("SOMETHING_NEW"));
}

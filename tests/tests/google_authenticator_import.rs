//! `veilctl totp import-google-authenticator`: a `~/.google_authenticator`
//! file written by the real `google-authenticator` tool (Debian package
//! libpam-google-authenticator, run non-interactively with its flags) is
//! imported for a real system account (`useradd` + `chpasswd`, veild with
//! `source = "system"`), and the current code of its secret logs in
//! through real libpam. HOTP files, files owned by someone else and files
//! others can write are refused.
//!
//! Root only (it adds an account with a home): ignored in a plain `cargo
//! test`, run by `scripts/test.sh` as root. The account and its home are
//! removed when the test ends, pass or fail.

#![forbid(unsafe_code)]

use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use veil_tests::accounts::{Accounts, run};
use veil_tests::daemon::{quick_config, with_toml};
use veil_tests::pam::{self, PAM_AUTH_ERR, PAM_SUCCESS, socket_args};
use veil_tests::root::require_root;
use veil_tests::totp::{code_now, wrong_code};
use veil_tests::{Attempt, PamStack, Veild};

const NAME: &str = "veilga-t1";
const PASSWORD: &str = "system pw: ga import";

/// `google-authenticator` writing `path`, time-based unless `hotp`.
fn google_authenticator(path: &Path, hotp: bool) {
    let secret = format!("--secret={}", path.display());
    let mut args = vec![
        "--force",
        "--no-confirm",
        "--quiet",
        "--qr-mode=NONE",
        &secret,
    ];
    if hotp {
        args.extend(["--counter-based", "--window-size=3", "--no-rate-limit"]);
    } else {
        args.extend([
            "--time-based",
            "--disallow-reuse",
            "--rate-limit=3",
            "--rate-time=30",
            "--window-size=3",
        ]);
    }
    run("google-authenticator", &args, "");
}

fn chown(path: &Path, user: &str) {
    run("chown", &[user, &path.display().to_string()], "");
}

#[test]
#[ignore = "needs root (adds an account with useradd): scripts/test.sh runs it as root"]
fn a_file_from_google_authenticator_imports_and_its_code_logs_in() {
    require_root();
    let mut made = Accounts::with_homes();
    made.add_with_password(NAME, PASSWORD);
    let home = Path::new("/home").join(NAME);
    let file = home.join(".google_authenticator");
    google_authenticator(&file, false);
    // As if the user had run it: theirs, mode 0400.
    chown(&file, NAME);
    let text = std::fs::read_to_string(&file).expect("the tool wrote the file");
    let secret = text.lines().next().expect("a first line").to_owned();
    assert!(text.contains("\" TOTP_AUTH"), "{text}");

    let veild = Veild::launch(with_toml(
        quick_config(),
        "[password]\nsource = \"system\"\n",
    ));

    // Refused: HOTP, someone else's file, a file others can write.
    let scratch = veild.dir().join("ga");
    std::fs::create_dir(&scratch).unwrap();
    let hotp = scratch.join("hotp");
    google_authenticator(&hotp, true);
    let (rc, _, err) = veild.ctl(
        &[
            "totp",
            "import-google-authenticator",
            NAME,
            hotp.to_str().unwrap(),
        ],
        "",
    );
    assert_ne!(rc, 0, "{err}");
    assert!(err.contains("HOTP_COUNTER"), "{err}");
    let other = scratch.join("other");
    std::fs::copy(&file, &other).unwrap();
    chown(&other, "nobody");
    let (rc, _, err) = veild.ctl(
        &[
            "totp",
            "import-google-authenticator",
            NAME,
            other.to_str().unwrap(),
        ],
        "",
    );
    assert_ne!(rc, 0, "{err}");
    assert!(err.contains("neither the user nor root"), "{err}");
    let writable = scratch.join("writable");
    std::fs::copy(&file, &writable).unwrap();
    std::fs::set_permissions(&writable, std::fs::Permissions::from_mode(0o666)).unwrap();
    let (rc, _, err) = veild.ctl(
        &[
            "totp",
            "import-google-authenticator",
            NAME,
            writable.to_str().unwrap(),
        ],
        "",
    );
    assert_ne!(rc, 0, "{err}");
    assert!(err.contains("writable by others"), "{err}");
    let (_, list, _) = veild.ctl(&["user", "list"], "");
    let row = |list: &str| {
        list.lines()
            .find(|l| l.starts_with(NAME))
            .map(|l| l.split_whitespace().nth(1).unwrap_or("").to_owned())
    };
    assert_eq!(
        row(&list).as_deref(),
        Some("none"),
        "nothing imported yet:\n{list}"
    );

    // The default FILE: ~NAME/.google_authenticator, from NSS.
    let (rc, _, err) = veild.ctl(&["totp", "import-google-authenticator", NAME], "");
    assert_eq!(rc, 0, "{err}");
    assert!(err.contains(&format!("TOTP active for {NAME}")), "{err}");
    assert!(err.contains("RATE_LIMIT 3 30 not carried over"), "{err}");
    assert!(
        err.contains("5 scratch codes imported as recovery codes"),
        "{err}"
    );
    assert!(
        !err.contains("WINDOW_SIZE"),
        "3 codes is veil's skew 1: {err}"
    );
    assert!(err.contains("shred -u"), "{err}");
    assert!(file.exists(), "the file is left in place");
    let (_, list, _) = veild.ctl(&["user", "list"], "");
    assert_ne!(row(&list).as_deref(), Some("none"), "{list}");

    let stack = PamStack::veil(&socket_args(&veild.socket(), "10"));
    let ok = pam::authenticate(&stack, &Attempt::new(NAME, &[PASSWORD, &code_now(&secret)]));
    assert_eq!(
        ok.code,
        PAM_SUCCESS,
        "{}\n{}",
        ok.code_name(),
        veild.stderr()
    );
    let bad = pam::authenticate(
        &stack,
        &Attempt::new(NAME, &[PASSWORD, &wrong_code(&secret)]),
    );
    assert_eq!(bad.code, PAM_AUTH_ERR, "{}", bad.code_name());

    // The file's scratch codes are recovery codes now: each logs in once.
    let scratch: Vec<&str> = text
        .lines()
        .filter(|l| l.len() == 8 && l.bytes().all(|b| b.is_ascii_digit()))
        .collect();
    assert_eq!(scratch.len(), 5, "{text}");
    let first = pam::authenticate(&stack, &Attempt::new(NAME, &[PASSWORD, scratch[0]]));
    assert_eq!(first.code, PAM_SUCCESS, "{}", veild.stderr());
    let again = pam::authenticate(&stack, &Attempt::new(NAME, &[PASSWORD, scratch[0]]));
    assert_eq!(again.code, PAM_AUTH_ERR, "a scratch code works once");
    let (_, status, _) = veild.ctl(&["status", NAME], "");
    assert!(status.contains("recovery codes left: 4"), "{status}");
}

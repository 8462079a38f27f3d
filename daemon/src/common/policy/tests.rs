//! Policy resolution as a table: service section or host default, the
//! peer, the module line's declared factors, who needs a code.

use std::path::Path;

use super::*;

const CONFIG: &str = r#"
[totp]
policy = "if-enrolled"

[service.sshd]
factors = ["code"]

[service.sudo]
factors = ["code", "password"]
totp_policy = "required"

[service.login]
factors = ["password"]

[service.su]
totp_policy = "required"
"#;

fn policies() -> Policies {
    Policies::from(&Config::parse(CONFIG, Path::new("veild.toml")).unwrap())
}

#[test]
fn each_service_resolves_to_its_section_else_the_host() {
    use Factors::*;
    use TotpPolicy::*;
    let p = policies();
    // (service, peer uid, factors, totp, origin)
    let table = [
        ("sshd", 0, Some(Code), IfEnrolled, Origin::Section),
        ("sudo", 0, Some(PasswordAndCode), Required, Origin::Section),
        ("login", 0, Some(Password), IfEnrolled, Origin::Section),
        ("su", 0, None, Required, Origin::Section),
        ("cron", 0, None, IfEnrolled, Origin::Host),
        ("", 0, None, IfEnrolled, Origin::Host),
        // A program the user runs names its service itself: host settings.
        ("login", 1000, None, IfEnrolled, Origin::NotRoot),
        ("sudo", 1000, None, IfEnrolled, Origin::NotRoot),
    ];
    for (service, uid, factors, totp, origin) in table {
        let got = p.of(service, uid);
        assert_eq!(
            got,
            Policy {
                factors,
                totp,
                origin
            },
            "{service} from uid {uid}"
        );
    }
}

#[test]
fn the_declared_factors_must_be_the_accepted_ones() {
    let p = policies();
    // (service, code_only declared by the module line, accepted)
    let table = [
        ("sshd", true, true),
        ("sshd", false, false),
        ("sudo", false, true),
        ("sudo", true, false),
        ("login", false, true),
        ("login", true, false),
        ("cron", false, true),
        ("cron", true, true),
    ];
    for (service, code_only, accepted) in table {
        assert_eq!(
            p.for_service(service).accepts(code_only),
            accepted,
            "{service} code_only={code_only}"
        );
    }
}

#[test]
fn the_password_alone_never_needs_a_code_and_the_others_follow_their_totp_policy() {
    let p = policies();
    let required = |service: &str| p.code_required(&p.for_service(service), "anyone", 0);
    assert!(!required("login"));
    assert!(!p.for_service("login").asks_code());
    assert!(required("sudo"));
    assert!(required("su"));
    assert!(!required("cron"));
    assert!(p.for_service("cron").asks_code());
}

#[test]
fn the_policy_line_names_the_factors_and_where_they_come_from() {
    let p = policies();
    let line = p.for_service("login").describe("login");
    assert_eq!(
        line,
        "policy for login: factors [\"password\"], TOTP no code (from [service.login] in veild.toml)"
    );
    let line = p.for_service("cron").describe("cron");
    assert!(line.contains("as the module line declares"), "{line}");
    assert!(line.contains("the host's settings"), "{line}");
}

#[test]
fn bad_sections_are_refused_naming_what_is_wrong() {
    // (section, a word the error must hold)
    let bad = [
        ("[service.sshd]\nfactor = [\"code\"]\n", "factor"),
        ("[service.sshd]\nfactors = []\n", "each once"),
        (
            "[service.sshd]\nfactors = [\"code\", \"code\"]\n",
            "each once",
        ),
        ("[service.sshd]\nfactors = [\"otp\"]\n", "otp"),
        ("[service.sshd]\nfactors = \"code\"\n", "factors"),
        ("[service.sshd]\ntotp_policy = \"sometimes\"\n", "sometimes"),
        (
            "[service.\"../x\"]\nfactors = [\"code\"]\n",
            "not a PAM service name",
        ),
        (
            "[service.\"\"]\nfactors = [\"code\"]\n",
            "not a PAM service name",
        ),
        (
            "[service.login]\nfactors = [\"password\"]\ntotp_policy = \"required\"\n",
            "service.login: totp_policy",
        ),
        (
            "[service.sshd]\nfactors = [\"code\"]\ntotp_policy = \"if-enrolled\"\n",
            "service.sshd: factors",
        ),
    ];
    for (text, word) in bad {
        let err = Config::parse(text, Path::new("veild.toml")).unwrap_err();
        assert!(err.to_string().contains(word), "{text}: {err}");
    }
    // An empty section is the host's settings, said explicitly.
    let ok = Config::parse("[service.sshd]\n", Path::new("veild.toml")).unwrap();
    assert_eq!(ok.service["sshd"], Service::default());
}

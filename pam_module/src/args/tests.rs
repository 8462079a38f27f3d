//! Unit tests for the argument parser.

use super::*;

fn parse_strs(args: &[&str]) -> Parsed {
    parse(args.iter().map(|a| Some(a.as_bytes())))
}

#[test]
fn no_arguments_give_the_defaults() {
    let parsed = parse_strs(&[]);
    assert!(parsed.is_ok());
    assert_eq!(parsed.args, Args::default());
    assert_eq!(parsed.args.socket, PathBuf::from("/run/veil/veild.sock"));
    assert_eq!(parsed.args.timeout, Duration::from_secs(5));
    assert_eq!(parsed.args.password, PasswordSource::Prompt);
    assert!(!parsed.args.debug);
}

#[test]
fn every_known_argument_is_understood() {
    let parsed = parse_strs(&[
        "socket=/tmp/v.sock",
        "timeout=2.5",
        "server_user=_veil",
        "try_first_pass",
        "debug",
    ]);
    assert!(parsed.is_ok(), "{:?}", parsed.problems);
    assert_eq!(
        parsed.args,
        Args {
            socket: PathBuf::from("/tmp/v.sock"),
            timeout: Duration::from_millis(2500),
            server_user: "_veil".to_owned(),
            password: PasswordSource::TryFirstPass,
            factors: Factors::PasswordAndCode,
            one_prompt: false,
            debug: true,
        }
    );
    assert_eq!(
        parse_strs(&["use_first_pass"]).args.password,
        PasswordSource::UseFirstPass
    );
}

#[test]
fn timeouts_are_whole_or_decimal_seconds_within_bounds() {
    for (text, millis) in [
        ("1", 1000),
        ("5", 5000),
        ("60", 60_000),
        ("1.5", 1500),
        ("2.25", 2250),
        ("59.999", 59_999),
        ("01", 1000),
        ("60.0", 60_000),
    ] {
        assert_eq!(
            parse_timeout(text),
            Ok(Duration::from_millis(millis)),
            "{text}"
        );
    }
    for text in [
        "",
        "0",
        "0.999",
        "60.001",
        "61",
        "1000",
        "99999999999999999999",
        "-1",
        "+5",
        "1e1",
        "inf",
        "NaN",
        "5s",
        " 5",
        "5 ",
        ".5",
        "5.",
        "1.2345",
        "1..2",
        "0x10",
        "٣",
    ] {
        assert!(parse_timeout(text).is_err(), "{text:?} accepted");
    }
}

#[test]
fn unknown_and_malformed_arguments_are_problems() {
    for bad in [
        &["nodelay"][..],
        &["socket"],
        &["socket="],
        &["socket=relative/path"],
        &["timeout"],
        &["timeout=abc"],
        &["timeout=0"],
        &["debug=1"],
        &["use_first_pass=yes"],
        &["Debug"],
        &[" debug"],
        &["socket=/a", "socket=/b"],
        &["server_user="],
        &["server_user=-x"],
        &["server_user=a b"],
        &["server_user=a", "server_user=b"],
        &["timeout=5", "timeout=5"],
        &["use_first_pass", "try_first_pass"],
    ] {
        let parsed = parse_strs(bad);
        assert!(!parsed.is_ok(), "{bad:?} accepted");
    }
    let long = format!("socket=/{}", "a".repeat(200));
    assert!(!parse_strs(&[&long]).is_ok());
}

#[test]
fn null_and_non_utf8_arguments_are_problems() {
    assert_eq!(parse([None]).problems, vec![ArgProblem::Null]);
    assert_eq!(
        parse([Some(&b"socket=/tmp/\xff"[..])]).problems,
        vec![ArgProblem::NotUtf8]
    );
}

#[test]
fn valid_options_still_apply_next_to_a_problem() {
    let parsed = parse_strs(&["use_first_pass", "timeout=soon"]);
    assert!(!parsed.is_ok());
    assert_eq!(parsed.args.password, PasswordSource::UseFirstPass);
    assert_eq!(parsed.args.timeout, DEFAULT_TIMEOUT);
}

#[test]
fn problem_messages_are_sanitised() {
    let parsed = parse_strs(&["evil\nline"]);
    let text = parsed.problems[0].to_string();
    assert!(!text.contains('\n'), "{text}");
    assert!(text.contains("evil\\x0aline"), "{text}");
}

#[test]
fn factors_code_asks_only_the_code_and_excludes_first_pass_options() {
    assert_eq!(parse_strs(&["factors=code"]).args.factors, Factors::Code);
    let explicit = parse_strs(&["factors=password,code"]);
    assert!(explicit.is_ok());
    assert_eq!(explicit.args.factors, Factors::PasswordAndCode);
    for bad in ["factors=password", "factors=", "factors=code,password"] {
        let parsed = parse_strs(&[bad]);
        assert!(
            matches!(
                parsed.problems[..],
                [ArgProblem::Malformed {
                    name: "factors",
                    ..
                }]
            ),
            "{bad}: {:?}",
            parsed.problems
        );
    }
    let parsed = parse_strs(&["factors=code", "use_first_pass"]);
    assert_eq!(parsed.problems, vec![ArgProblem::FactorsConflict]);
    let parsed = parse_strs(&["factors=code", "factors=code"]);
    assert_eq!(parsed.problems, vec![ArgProblem::Repeated("factors")]);
}

/// Fails on the old main, where `one_prompt` was an unknown argument.
#[test]
fn one_prompt_parses_and_excludes_factors_code_and_the_first_pass_options() {
    let parsed = parse_strs(&["one_prompt"]);
    assert!(parsed.is_ok(), "{:?}", parsed.problems);
    assert!(parsed.args.one_prompt);
    assert!(parse_strs(&["one_prompt", "factors=password,code"]).is_ok());
    for other in ["factors=code", "use_first_pass", "try_first_pass"] {
        let parsed = parse_strs(&["one_prompt", other]);
        assert!(parsed.args.one_prompt, "{other}");
        assert!(
            parsed.problems.contains(&ArgProblem::OnePromptConflict),
            "{other}: {:?}",
            parsed.problems
        );
    }
    assert_eq!(
        parse_strs(&["one_prompt", "one_prompt"]).problems,
        vec![ArgProblem::Repeated("one_prompt")]
    );
    assert!(!parse_strs(&["one_prompt=yes"]).is_ok());
}

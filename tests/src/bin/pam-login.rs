//! A login and what runs inside it, each a process of its own as on a
//! real host (the kernel's audit session id belongs to a process; a test
//! thread cannot have one of its own).
//!
//! usage:
//!   pam-login auth CONFDIR SERVICE USER ANSWER...
//!     pam_authenticate; prints `auth=CODE session=ID`.
//!   pam-login login CONFDIR SERVICE USER ANSWER... -- COMMAND...
//!     pam_authenticate, then pam_open_session (the stack's pam_loginuid
//!     gives this process its session id), COMMAND run as a child (it
//!     inherits the session) with its output passed on, pam_close_session;
//!     prints `auth=CODE open=CODE close=CODE session=ID`.
//!   pam-login newsession UID -- COMMAND...
//!     writes UID to /proc/self/loginuid (a new audit session, root
//!     only), then runs COMMAND.
#![forbid(unsafe_code)]

use std::path::Path;
use std::process::{Command, ExitCode};

fn session() -> String {
    std::fs::read_to_string("/proc/self/sessionid")
        .unwrap_or_default()
        .trim()
        .to_owned()
}

fn run(command: &[String]) {
    let out = Command::new(&command[0])
        .args(&command[1..])
        .output()
        .expect("run the command");
    print!("{}", String::from_utf8_lossy(&out.stdout));
    eprint!("{}", String::from_utf8_lossy(&out.stderr));
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let (head, command) = match args.iter().position(|a| a == "--") {
        Some(i) => (&args[..i], args[i + 1..].to_vec()),
        None => (&args[..], Vec::new()),
    };
    match head {
        [mode, uid] if mode == "newsession" => {
            std::fs::write("/proc/self/loginuid", uid).expect("write /proc/self/loginuid");
            run(&command);
            ExitCode::SUCCESS
        }
        [mode, confdir, service, user, answers @ ..] if mode == "auth" || mode == "login" => {
            let during = (mode == "login").then_some(|| run(&command));
            let (auth, codes) =
                veil_tests::pam::login_session(Path::new(confdir), service, user, answers, during);
            match codes {
                Some((open, close)) => println!(
                    "{mode} auth={auth} open={open} close={close} session={}",
                    session()
                ),
                None => println!("{mode} auth={auth} session={}", session()),
            }
            ExitCode::SUCCESS
        }
        _ => {
            eprintln!("usage: see the source");
            ExitCode::from(2)
        }
    }
}

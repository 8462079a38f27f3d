//! Secrets typed by the admin: without echo on a terminal, or one line of
//! standard input; never from the command line.

use std::io::{BufRead, IsTerminal};

use zeroize::Zeroizing;

use crate::error::Failure;

pub fn read_line_stdin() -> Result<Zeroizing<String>, Failure> {
    let mut line = Zeroizing::new(String::new());
    std::io::stdin()
        .lock()
        .read_line(&mut line)
        .map_err(|e| Failure::failed(format!("cannot read standard input: {e}")))?;
    while line.ends_with('\n') || line.ends_with('\r') {
        line.pop();
    }
    Ok(line)
}

pub fn read_new_password(from_stdin: bool) -> Result<Zeroizing<String>, Failure> {
    let password = if from_stdin {
        read_line_stdin()?
    } else {
        if !std::io::stdin().is_terminal() {
            return Err(Failure::usage(
                "no terminal to ask the password on; use --password-stdin",
            ));
        }
        let first = Zeroizing::new(
            rpassword::prompt_password("New password: ")
                .map_err(|e| Failure::failed(e.to_string()))?,
        );
        let second = Zeroizing::new(
            rpassword::prompt_password("Repeat password: ")
                .map_err(|e| Failure::failed(e.to_string()))?,
        );
        if first != second {
            return Err(Failure::failed("the passwords differ; nothing changed"));
        }
        first
    };
    if password.is_empty() {
        return Err(Failure::failed("empty password refused; nothing changed"));
    }
    if password.len() > 1024 {
        return Err(Failure::failed(
            "password longer than 1024 bytes refused; nothing changed",
        ));
    }
    Ok(password)
}

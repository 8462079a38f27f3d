//! `one_prompt`: the password and the code typed as one answer, for
//! clients that answer a single prompt (sshd's `password` method, scp and
//! sftp clients, Ansible, screen lockers). One rule splits it, the same
//! for every account, and looks at nothing but the bytes typed:
//!
//! * an answer that ends in a space and a recovery code in the form veil
//!   shows it, `xxxx-xxxx-xx` (letters or digits, any case), is the
//!   password, that space, and the recovery code;
//! * any other answer is the password followed by the last
//!   [`CODE_DIGITS`] bytes, the code (nothing separates them);
//! * an answer shorter than that is all code, with an empty password.
//!
//! The two forms cannot be confused: a TOTP code ends in three digits,
//! a recovery code in a dash and two characters. veild verifies both
//! parts as it verifies two separate answers (one password verify, one
//! TOTP check, one recovery check), so the work is the same whichever way
//! an answer splits.

use crate::proto::{Reply, ReplyState, Secret};

/// Digits of a TOTP code.
pub const CODE_DIGITS: usize = 6;

/// `xxxx-xxxx-xx`: recovery codes as veilctl shows them.
const RECOVERY_FORM: &[u8; 12] = b"xxxx-xxxx-xx";

/// Whether `tail` is a recovery code as shown: dashes where the form has
/// them, a letter or digit everywhere else.
fn recovery_form(tail: &[u8]) -> bool {
    tail.len() == RECOVERY_FORM.len()
        && tail.iter().zip(RECOVERY_FORM).all(|(&b, &f)| match f {
            b'-' => b == b'-',
            _ => b.is_ascii_alphanumeric(),
        })
}

/// Where the answer splits: (end of the password, start of the code).
fn split_at(answer: &[u8]) -> (usize, usize) {
    let n = answer.len();
    let form = RECOVERY_FORM.len();
    if n > form && answer[n - form - 1] == b' ' && recovery_form(&answer[n - form..]) {
        (n - form - 1, n - form)
    } else {
        let at = n.saturating_sub(CODE_DIGITS);
        (at, at)
    }
}

/// The one answer as (password, code). A whole answer splits into two
/// whole replies; a missing or overlong one stays as it is in the
/// password (it cannot match) and the code is missing.
pub fn split(answer: &Reply) -> (Reply, Reply) {
    if answer.state() != ReplyState::Given {
        return (answer.clone(), Reply::missing());
    }
    let bytes = answer.bytes();
    let (end, start) = split_at(bytes);
    (
        Reply::given(bytes[..end].to_vec()),
        Reply::given(bytes[start..].to_vec()),
    )
}

/// Just the password of a typed answer (for PAM_AUTHTOK, so later modules
/// such as a keyring get the password alone).
pub fn password_of(answer: &[u8]) -> Secret {
    let (end, _) = split_at(answer);
    Secret::from(&answer[..end])
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parts(answer: &str) -> (String, String) {
        let (p, c) = split(&Reply::from(answer));
        assert_eq!(
            (p.state(), c.state()),
            (ReplyState::Given, ReplyState::Given)
        );
        (
            String::from_utf8(p.bytes().to_vec()).unwrap(),
            String::from_utf8(c.bytes().to_vec()).unwrap(),
        )
    }

    #[test]
    fn a_totp_code_is_the_last_six_bytes_and_a_recovery_code_follows_a_space() {
        let own = |p: &str, c: &str| (p.to_owned(), c.to_owned());
        assert_eq!(parts("hunter2123456"), own("hunter2", "123456"));
        assert_eq!(
            parts("correct horse 492039"),
            own("correct horse ", "492039")
        );
        assert_eq!(parts("pw abcd-2345-xy"), own("pw", "abcd-2345-xy"));
        assert_eq!(parts("pw ABCD-2345-XY"), own("pw", "ABCD-2345-XY"));
        // A password that itself ends like a recovery code, then a TOTP
        // code: the answer ends in digits, so the TOTP rule applies.
        assert_eq!(
            parts("x abcd-2345-xy123456"),
            own("x abcd-2345-xy", "123456")
        );
        // No space before the form: the last six bytes.
        assert_eq!(parts("pwabcd-2345-xy"), own("pwabcd-2", "345-xy"));
        assert_eq!(parts("12345"), own("", "12345"));
        assert_eq!(parts(""), own("", ""));
        assert_eq!(password_of(b"pw abcd-2345-xy").expose(), b"pw");
        assert_eq!(password_of(b"hunter2123456").expose(), b"hunter2");
    }

    #[test]
    fn a_missing_or_overlong_answer_is_never_split() {
        let (p, c) = split(&Reply::missing());
        assert_eq!(
            (p.state(), c.state()),
            (ReplyState::Missing, ReplyState::Missing)
        );
        let long = Reply::given(vec![b'1'; crate::proto::REPLY_CAP + 1]);
        let (p, c) = split(&long);
        assert_eq!(
            (p.state(), c.state()),
            (ReplyState::Overlong, ReplyState::Missing)
        );
    }
}

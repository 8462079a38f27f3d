//! Log-safe text: what a log line may show of a value someone else chose
//! (a user name, a host, a module argument). Shared by veild's audit lines
//! and pam_veil's syslog lines, so that neither can be forged or split.
#![forbid(unsafe_code)]

use std::fmt::Write as _;

/// Longest value kept in a line, in bytes after escaping (then "...").
pub const MAX_VALUE: usize = 128;

/// Escapes everything but printable ASCII (and the characters that would
/// break key=value parsing) and caps the length.
pub fn sanitize(value: &str) -> String {
    let mut out = String::with_capacity(value.len().min(MAX_VALUE));
    for c in value.chars() {
        if out.len() >= MAX_VALUE {
            out.push_str("...");
            break;
        }
        match c {
            ' ' | '"' | '\\' | '=' => {
                let _ = write!(out, "\\x{:02x}", c as u32);
            }
            c if c.is_ascii_graphic() => out.push(c),
            c if (c as u32) < 0x100 => {
                let _ = write!(out, "\\x{:02x}", c as u32);
            }
            c => {
                let _ = write!(out, "\\u{{{:x}}}", c as u32);
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn control_characters_separators_and_non_ascii_are_escaped() {
        assert_eq!(sanitize("alice"), "alice");
        assert_eq!(sanitize("a\nb c=d\"e\\"), "a\\x0ab\\x20c\\x3dd\\x22e\\x5c");
        assert_eq!(sanitize("\u{1b}[2J"), "\\x1b[2J");
        assert_eq!(sanitize("\u{202e}\u{2028}"), "\\u{202e}\\u{2028}");
        assert_eq!(sanitize("\u{85}\u{7f}"), "\\x85\\x7f");
        assert_eq!(sanitize("2001:db8::1"), "2001:db8::1");
    }

    #[test]
    fn long_values_are_capped() {
        assert!(sanitize(&"a".repeat(10_000)).len() <= MAX_VALUE + 3);
        assert!(sanitize(&"\u{202e}".repeat(1000)).len() <= MAX_VALUE + 16);
    }
}

//! veilctl: administers veil's users, TOTP secrets and locks. See veilctl(8).

fn main() -> std::process::ExitCode {
    veil_daemon::ctl::main()
}

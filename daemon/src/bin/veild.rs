//! veild: answers pam_veil.so's questions. See veild(8).

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Parser;

/// veil verification daemon: checks passwords and TOTP codes for pam_veil.so
#[derive(Debug, Parser)]
#[command(name = "veild", version = veil_daemon::common::version::text(), about)]
struct Cli {
    /// Configuration file
    #[arg(long, value_name = "PATH", default_value = veil_daemon::common::config::DEFAULT_CONFIG)]
    config: PathBuf,
    /// Check the configuration file and exit
    #[arg(long)]
    check_config: bool,
    /// Also write audit lines to standard error (for running in the foreground)
    #[arg(long)]
    log_stderr: bool,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    veil_daemon::veild::run(&veil_daemon::veild::Options {
        config: cli.config,
        check_config: cli.check_config,
        log_stderr: cli.log_stderr,
    })
}

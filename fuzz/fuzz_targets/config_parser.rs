//! `Config::parse` on arbitrary text. It must never panic; a config it
//! accepts must pass its own validation again after a serialise/parse
//! round trip and come back equal; and an error must be one line that
//! names the file.
#![no_main]

use std::path::Path;

use libfuzzer_sys::fuzz_target;
use veil_daemon::common::config::Config;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let path = Path::new("/etc/veil/veild.toml");
    match Config::parse(text, path) {
        Ok(config) => {
            assert!(config.socket.is_absolute() && config.database.is_absolute());
            assert!(config.failure_delay_ms <= 30_000);
            assert!(config.limits.max_connections >= 1 && config.limits.queue >= 1);
            assert!(config.limits.workers <= 256);
            // Paths that are not valid UTF-8 cannot be written back as TOML.
            if let Ok(again) = toml::to_string(&config) {
                let reparsed = Config::parse(&again, path)
                    .unwrap_or_else(|e| panic!("re-parse of {again:?} failed: {e}"));
                assert_eq!(reparsed, config);
            }
        }
        Err(e) => {
            let message = e.to_string();
            assert!(message.starts_with("/etc/veil/veild.toml"), "{message}");
            assert!(!message.contains('\n'), "{message}");
        }
    }
});

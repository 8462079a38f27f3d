//! An impostor on veild's socket path: it answers the exact ALLOW frame to
//! every connection before reading anything, then counts the bytes the
//! client sent. The module must neither believe it nor send it a secret.
//!
//! usage: fake-veild SOCKET RECORD — binds SOCKET, then appends one line
//! `connection bytes=N` to RECORD per client.
#![forbid(unsafe_code)]

use std::io::{Read, Write};
use std::os::unix::fs::PermissionsExt;
use std::os::unix::net::UnixListener;
use std::process::ExitCode;
use std::time::Duration;

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [socket, record] = args.as_slice() else {
        eprintln!("usage: fake-veild SOCKET RECORD");
        return ExitCode::from(2);
    };
    let listener = match UnixListener::bind(socket) {
        Ok(l) => l,
        Err(e) => {
            eprintln!("fake-veild: bind {socket}: {e}");
            return ExitCode::FAILURE;
        }
    };
    let _ = std::fs::set_permissions(socket, std::fs::Permissions::from_mode(0o666));
    for conn in listener.incoming() {
        let Ok(mut conn) = conn else { continue };
        let _ = conn.write_all(&veil_proto::ALLOW);
        let _ = conn.set_read_timeout(Some(Duration::from_millis(500)));
        let mut got = Vec::new();
        let _ = conn.read_to_end(&mut got);
        let line = format!("connection bytes={}\n", got.len());
        let appended = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(record)
            .and_then(|mut f| f.write_all(line.as_bytes()));
        if let Err(e) = appended {
            eprintln!("fake-veild: {record}: {e}");
        }
    }
    ExitCode::SUCCESS
}

//! Many non-root peers of veild's socket, one per uid, from one root
//! process: for each uid it switches its effective uid (which is what
//! SO_PEERCRED reports), connects, and switches back. The connections send
//! nothing and stay open, as a rootless container's processes could.
//!
//! usage: subuid-peers SOCKET FIRST_UID COUNT — prints `open N closed M`
//! (connections still open after a moment, and those veild closed at
//! once), then holds the open ones until stdin ends.
#![forbid(unsafe_code)]

use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::process::ExitCode;
use std::time::Duration;

use nix::unistd::{Uid, seteuid};

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [socket, first, count] = args.as_slice() else {
        eprintln!("usage: subuid-peers SOCKET FIRST_UID COUNT");
        return ExitCode::from(2);
    };
    let (Ok(first), Ok(count)) = (first.parse::<u32>(), count.parse::<u32>()) else {
        eprintln!("subuid-peers: FIRST_UID and COUNT are numbers");
        return ExitCode::from(2);
    };
    let mut conns = Vec::new();
    for uid in first..first.saturating_add(count) {
        if let Err(e) = seteuid(Uid::from_raw(uid)) {
            eprintln!("subuid-peers: seteuid {uid}: {e} (run as root)");
            return ExitCode::FAILURE;
        }
        let conn = UnixStream::connect(socket);
        if let Err(e) = seteuid(Uid::from_raw(0)) {
            eprintln!("subuid-peers: back to root: {e}");
            return ExitCode::FAILURE;
        }
        match conn {
            Ok(c) => conns.push(c),
            Err(e) => eprintln!("subuid-peers: connect as {uid}: {e}"),
        }
    }
    // A connection veild refused has its DENY and end of file waiting.
    std::thread::sleep(Duration::from_millis(500));
    let mut open = Vec::new();
    let mut closed = 0;
    for mut c in conns {
        let _ = c.set_nonblocking(true);
        let mut buf = [0u8; 64];
        match c.read(&mut buf) {
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => open.push(c),
            _ => closed += 1,
        }
    }
    println!("open {} closed {closed}", open.len());
    let _ = std::io::stdout().flush();
    let mut sink = Vec::new();
    let _ = std::io::stdin().read_to_end(&mut sink);
    drop(open);
    ExitCode::SUCCESS
}

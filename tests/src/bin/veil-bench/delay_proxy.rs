//! A Unix-socket proxy in front of a PostgreSQL cluster's socket that holds
//! every chunk a fixed time in each direction: a database server a network
//! away, on a machine that has only loopback (and no netem), so that what
//! a statement fewer saves on a real link can be measured.

use std::io::{Read, Write};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::sync::mpsc;
use std::time::{Duration, Instant};

#[derive(Debug)]
pub struct DelayProxy {
    dir: tempfile::TempDir,
}

impl DelayProxy {
    /// Listens at a new directory's `.s.PGSQL.5432` and forwards each
    /// connection to `target` (a socket file), `one_way` late each way.
    pub fn start(target: PathBuf, one_way: Duration) -> DelayProxy {
        let dir = tempfile::tempdir().expect("proxy dir");
        let listener = UnixListener::bind(dir.path().join(".s.PGSQL.5432")).expect("proxy socket");
        std::thread::spawn(move || {
            for client in listener.incoming() {
                let Ok(client) = client else { break };
                let Ok(server) = UnixStream::connect(&target) else {
                    continue;
                };
                let (c2, s2) = (
                    client.try_clone().expect("clone"),
                    server.try_clone().expect("clone"),
                );
                pipe(client, server, one_way);
                pipe(s2, c2, one_way);
            }
        });
        DelayProxy { dir }
    }

    /// `url` (a cluster's, naming the socket directory `socket_dir`)
    /// through the proxy.
    pub fn url(&self, url: &str, socket_dir: &Path) -> String {
        let encode = |p: &Path| {
            percent_encoding::utf8_percent_encode(
                &p.to_string_lossy(),
                percent_encoding::NON_ALPHANUMERIC,
            )
            .to_string()
        };
        url.replacen(&encode(socket_dir), &encode(self.dir.path()), 1)
    }
}

/// Copies `from` to `to`, each chunk written `delay` after it was read
/// (in order, so the link keeps its bandwidth and only gains latency).
fn pipe(mut from: UnixStream, mut to: UnixStream, delay: Duration) {
    let (tx, rx) = mpsc::channel::<(Instant, Vec<u8>)>();
    std::thread::spawn(move || {
        let mut buf = vec![0u8; 64 * 1024];
        while let Ok(n) = from.read(&mut buf) {
            if n == 0
                || tx
                    .send((Instant::now() + delay, buf[..n].to_vec()))
                    .is_err()
            {
                break;
            }
        }
    });
    std::thread::spawn(move || {
        for (at, bytes) in rx {
            if let Some(wait) = at.checked_duration_since(Instant::now()) {
                std::thread::sleep(wait);
            }
            if to.write_all(&bytes).is_err() {
                break;
            }
        }
        let _ = to.shutdown(std::net::Shutdown::Both);
    });
}

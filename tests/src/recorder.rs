//! A relay between pam_veil.so and veild that records veild's reply bytes,
//! so the demo can show exactly what the daemon sent for each attempt.
#![forbid(unsafe_code)]

use std::io::{self, Read, Write};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use veil_proto::{LEN_PREFIX, MAX_REQUEST};

/// Listens on `path`, relays each connection's one request to veild and
/// its one reply back, and keeps a copy of every reply. The relay thread
/// lives as long as the process (it blocks in accept); it is meant for the
/// demo, which exits when done.
#[derive(Debug)]
pub struct Recorder {
    path: PathBuf,
    replies: Arc<Mutex<Vec<Vec<u8>>>>,
}

impl Recorder {
    pub fn start(path: &Path, upstream: &Path) -> io::Result<Recorder> {
        let listener = UnixListener::bind(path)?;
        let replies = Arc::new(Mutex::new(Vec::new()));
        let store = Arc::clone(&replies);
        let upstream = upstream.to_path_buf();
        std::thread::Builder::new()
            .name("recorder".into())
            .spawn(move || {
                for conn in listener.incoming().flatten() {
                    // A failed relay is recorded as an empty reply.
                    if relay(conn, &upstream, &store).is_err() {
                        if let Ok(mut replies) = store.lock() {
                            replies.push(Vec::new());
                        }
                    }
                }
            })?;
        Ok(Recorder {
            path: path.to_path_buf(),
            replies,
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The replies recorded since the last call, oldest first.
    pub fn take(&self) -> Vec<Vec<u8>> {
        self.replies
            .lock()
            .map(|mut r| std::mem::take(&mut *r))
            .unwrap_or_default()
    }
}

/// Relays one request and its reply; the reply is recorded before the
/// module gets it, so it is in the store by the time pam_authenticate returns.
fn relay(mut client: UnixStream, upstream: &Path, store: &Mutex<Vec<Vec<u8>>>) -> io::Result<()> {
    let limit = Some(Duration::from_secs(10));
    client.set_read_timeout(limit)?;
    let mut prefix = [0u8; LEN_PREFIX];
    client.read_exact(&mut prefix)?;
    let len = u32::from_be_bytes(prefix) as usize;
    if len > MAX_REQUEST {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            "oversize request",
        ));
    }
    let mut body = vec![0u8; len];
    client.read_exact(&mut body)?;

    let mut daemon = UnixStream::connect(upstream)?;
    daemon.set_read_timeout(limit)?;
    daemon.write_all(&prefix)?;
    daemon.write_all(&body)?;
    body.fill(0);
    let mut reply = Vec::new();
    daemon.read_to_end(&mut reply)?;
    if let Ok(mut replies) = store.lock() {
        replies.push(reply.clone());
    }
    client.write_all(&reply)
}

//! The one round trip to veild.
#![forbid(unsafe_code)]

use std::path::Path;
use std::time::Duration;

use veil_proto::session::SessionNote;
use veil_proto::{ClientError, Request, Verdict};

/// Asks veild for a verdict. The real one is [`SocketClient`]; tests use fakes.
pub trait Veild {
    /// The uid of the account `server_user`, or `None` when there is no
    /// such account (then only root is trusted). A name-service lookup:
    /// called before the prompts, never between the last answer and the
    /// verdict (where NSS may load libraries for some accounts only).
    fn server_uid(&mut self, server_user: &str) -> Option<u32>;
    /// One round trip to the veild on `socket`, which must be served by
    /// root or by `server_uid`.
    fn ask(
        &mut self,
        socket: &Path,
        request: &Request,
        timeout: Duration,
        server_uid: Option<u32>,
    ) -> Result<Verdict, ClientError>;
    /// Sends one session note, under the same rules as [`Veild::ask`].
    fn note(
        &mut self,
        socket: &Path,
        note: &SessionNote,
        timeout: Duration,
        server_uid: Option<u32>,
    ) -> Result<Verdict, ClientError>;
}

/// One blocking connection with a deadline, through `veil_proto::ask`: no
/// threads, no async runtime, nothing that outlives the call.
#[derive(Debug, Default)]
pub struct SocketClient;

impl Veild for SocketClient {
    fn server_uid(&mut self, server_user: &str) -> Option<u32> {
        // An account that does not exist leaves only root trusted.
        nix::unistd::User::from_name(server_user)
            .ok()
            .flatten()
            .map(|user| user.uid.as_raw())
    }

    fn ask(
        &mut self,
        socket: &Path,
        request: &Request,
        timeout: Duration,
        server_uid: Option<u32>,
    ) -> Result<Verdict, ClientError> {
        veil_proto::ask(socket, request, timeout, server_uid)
    }

    fn note(
        &mut self,
        socket: &Path,
        note: &SessionNote,
        timeout: Duration,
        server_uid: Option<u32>,
    ) -> Result<Verdict, ClientError> {
        veil_proto::client::note_session(socket, note, timeout, server_uid)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{Read, Write};
    use std::os::unix::net::UnixListener;
    use std::time::Instant;
    use veil_proto::{DENY, Reply};

    fn request() -> Request {
        Request::new("alice", Reply::from("pw"), Reply::from("123456"))
    }

    /// The uid of the account running the tests (the server in them),
    /// resolved by name as the module resolves `server_user`.
    fn me() -> Option<u32> {
        let name = nix::unistd::User::from_uid(nix::unistd::getuid())
            .unwrap()
            .unwrap()
            .name;
        let uid = SocketClient.server_uid(&name);
        assert_eq!(uid, Some(nix::unistd::getuid().as_raw()));
        uid
    }

    #[test]
    fn a_missing_socket_is_an_error_at_once() {
        let dir = tempfile::tempdir().unwrap();
        let started = Instant::now();
        let got = SocketClient.ask(
            &dir.path().join("absent.sock"),
            &request(),
            Duration::from_secs(5),
            None,
        );
        assert!(matches!(got, Err(ClientError::Connect(_))), "{got:?}");
        assert!(started.elapsed() < Duration::from_secs(1));
    }

    #[test]
    fn a_daemon_that_never_answers_times_out_within_the_timeout() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("silent.sock");
        let listener = UnixListener::bind(&path).unwrap();
        let server = std::thread::spawn(move || {
            let (mut conn, _) = listener.accept().unwrap();
            let mut sink = Vec::new();
            let _ = conn.set_read_timeout(Some(Duration::from_secs(3)));
            let _ = conn.read_to_end(&mut sink);
        });
        let started = Instant::now();
        let got = SocketClient.ask(&path, &request(), Duration::from_millis(1000), me());
        let took = started.elapsed();
        assert!(matches!(got, Err(ClientError::TimedOut)), "{got:?}");
        assert!(
            took >= Duration::from_millis(900) && took < Duration::from_millis(2000),
            "{took:?}"
        );
        server.join().unwrap();
    }

    #[test]
    fn deny_bytes_are_a_deny_and_garbage_is_an_error() {
        for (reply, want_deny) in [(&DENY[..], true), (&b"\x00\x00\x00\x02hi"[..], false)] {
            let dir = tempfile::tempdir().unwrap();
            let path = dir.path().join("d.sock");
            let listener = UnixListener::bind(&path).unwrap();
            let reply = reply.to_vec();
            let server = std::thread::spawn(move || {
                let (mut conn, _) = listener.accept().unwrap();
                let mut prefix = [0u8; 4];
                conn.read_exact(&mut prefix).unwrap();
                let mut body = vec![0u8; u32::from_be_bytes(prefix) as usize];
                conn.read_exact(&mut body).unwrap();
                conn.write_all(&reply).unwrap();
            });
            let got = SocketClient.ask(&path, &request(), Duration::from_secs(2), me());
            if want_deny {
                assert!(matches!(got, Ok(Verdict::Deny)), "{got:?}");
            } else {
                assert!(matches!(got, Err(ClientError::Garbage)), "{got:?}");
            }
            server.join().unwrap();
        }
    }
}

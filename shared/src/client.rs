//! Blocking client: one connection, one request, one answer, all within a
//! deadline. No threads, no async runtime: it runs inside sshd and sudo.

use std::fmt;
use std::io::{self, Read};
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::time::{Duration, Instant};

use nix::errno::Errno;
use nix::sys::socket::{self, AddressFamily, SockFlag, SockType, UnixAddr};

use crate::codec::encode_request;
use crate::proto::{ALLOW, DENY, LEN_PREFIX, Request, Verdict};
use crate::self_service::{
    MAX_ANSWER, SelfAnswer, SelfRequest, decode_answer, encode_self_request,
};

/// Why no verdict came back. The caller treats every one as a denial.
#[derive(Debug)]
pub enum ClientError {
    Connect(io::Error),
    Send(io::Error),
    Receive(io::Error),
    TimedOut,
    /// The daemon answered with bytes that are neither ALLOW nor DENY.
    Garbage,
    /// The process listening on the socket is neither root nor the
    /// configured daemon user: nothing was sent to it.
    UntrustedServer {
        uid: u32,
    },
}

impl fmt::Display for ClientError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ClientError::Connect(e) => write!(f, "cannot connect to veild: {e}"),
            ClientError::Send(e) => write!(f, "cannot send to veild: {e}"),
            ClientError::Receive(e) => write!(f, "cannot read from veild: {e}"),
            ClientError::TimedOut => write!(f, "veild did not answer in time"),
            ClientError::Garbage => write!(f, "veild answered with an unknown frame"),
            ClientError::UntrustedServer { uid } => write!(
                f,
                "the socket is served by uid {uid}, neither root nor veild's user; nothing sent"
            ),
        }
    }
}

impl std::error::Error for ClientError {}

/// Asks veild one question. Returns the verdict, or why there was none;
/// never blocks past `timeout`. The secrets go only to a server running as
/// root or as `server_uid` (veild's own user): a socket path in a place
/// someone else could bind first must not hand them a password, nor let
/// them answer ALLOW.
pub fn ask(
    socket: &Path,
    request: &Request,
    timeout: Duration,
    server_uid: Option<u32>,
) -> Result<Verdict, ClientError> {
    let deadline = Instant::now() + timeout;
    let frame = encode_request(request);
    let mut stream = connect(socket, deadline)?;
    check_server(&stream, server_uid)?;
    set_timeouts(&stream, deadline)?;
    send_all(&stream, &frame)?;
    let response = read_response(&mut stream, deadline)?;
    Verdict::from_response(&response).ok_or(ClientError::Garbage)
}

/// Sends one session note under the same rules as [`ask`]; veild answers
/// ALLOW when it bound or closed a window, DENY otherwise (the module
/// ignores either).
pub fn note_session(
    socket: &Path,
    note: &crate::session::SessionNote,
    timeout: Duration,
    server_uid: Option<u32>,
) -> Result<Verdict, ClientError> {
    let deadline = Instant::now() + timeout;
    let frame = crate::session::encode_session_note(note);
    let mut stream = connect(socket, deadline)?;
    check_server(&stream, server_uid)?;
    set_timeouts(&stream, deadline)?;
    send_all(&stream, &frame)?;
    let response = read_response(&mut stream, deadline)?;
    Verdict::from_response(&response).ok_or(ClientError::Garbage)
}

/// What veild made of a self-service request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SelfOutcome {
    Answer(SelfAnswer),
    /// The DENY frame: veild did not serve it (too busy, a request it
    /// could not decode, or a veild without self-service).
    NotServed,
}

/// Sends one self-service request (veilctl, as the user) under the same
/// rules as [`ask`]: a server that is root or `server_uid`, one deadline.
pub fn ask_self(
    socket: &Path,
    request: &SelfRequest,
    timeout: Duration,
    server_uid: Option<u32>,
) -> Result<SelfOutcome, ClientError> {
    let deadline = Instant::now() + timeout;
    let frame = encode_self_request(request);
    let mut stream = connect(socket, deadline)?;
    check_server(&stream, server_uid)?;
    set_timeouts(&stream, deadline)?;
    send_all(&stream, &frame)?;
    let response = read_frame(&mut stream, deadline, LEN_PREFIX + MAX_ANSWER)?;
    if response[..] == DENY {
        return Ok(SelfOutcome::NotServed);
    }
    decode_answer(&response)
        .map(SelfOutcome::Answer)
        .ok_or(ClientError::Garbage)
}

/// A non-blocking connect: a plain `connect` on a Unix socket blocks while
/// the listener's backlog is full (a stopped daemon), which would hang the login.
fn connect(path: &Path, deadline: Instant) -> Result<UnixStream, ClientError> {
    let addr = UnixAddr::new(path).map_err(|e| ClientError::Connect(e.into()))?;
    let fd = socket::socket(
        AddressFamily::Unix,
        SockType::Stream,
        SockFlag::SOCK_NONBLOCK | SockFlag::SOCK_CLOEXEC,
        None,
    )
    .map_err(|e| ClientError::Connect(e.into()))?;
    let mut pause = Duration::from_millis(2);
    loop {
        match socket::connect(std::os::fd::AsRawFd::as_raw_fd(&fd), &addr) {
            Ok(()) => break,
            // Linux answers EAGAIN on a full backlog of a Unix listener.
            Err(Errno::EAGAIN) | Err(Errno::EINTR) => {
                let now = Instant::now();
                if now >= deadline {
                    return Err(ClientError::TimedOut);
                }
                std::thread::sleep(pause.min(deadline - now));
                pause = (pause * 2).min(Duration::from_millis(100));
            }
            Err(e) => return Err(ClientError::Connect(e.into())),
        }
    }
    let stream = UnixStream::from(fd);
    stream
        .set_nonblocking(false)
        .map_err(ClientError::Connect)?;
    Ok(stream)
}

/// The kernel's word (SO_PEERCRED) on who listens: root or `server_uid`.
fn check_server(stream: &UnixStream, server_uid: Option<u32>) -> Result<(), ClientError> {
    let creds = socket::getsockopt(stream, socket::sockopt::PeerCredentials)
        .map_err(|e| ClientError::Connect(e.into()))?;
    let uid = creds.uid();
    if uid == 0 || Some(uid) == server_uid {
        Ok(())
    } else {
        Err(ClientError::UntrustedServer { uid })
    }
}

fn set_timeouts(stream: &UnixStream, deadline: Instant) -> Result<(), ClientError> {
    let left = remaining(deadline)?;
    stream
        .set_write_timeout(Some(left))
        .map_err(ClientError::Send)?;
    stream
        .set_read_timeout(Some(left))
        .map_err(ClientError::Receive)
}

fn remaining(deadline: Instant) -> Result<Duration, ClientError> {
    let left = deadline.saturating_duration_since(Instant::now());
    // A zero timeout means "block forever" to setsockopt.
    if left < Duration::from_millis(1) {
        Err(ClientError::TimedOut)
    } else {
        Ok(left)
    }
}

fn timed_out_or(e: io::Error, wrap: fn(io::Error) -> ClientError) -> ClientError {
    match e.kind() {
        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut => ClientError::TimedOut,
        _ => wrap(e),
    }
}

/// Writes the whole frame with MSG_NOSIGNAL: a daemon that closes early
/// must not raise SIGPIPE in the host (sshd or sudo may not ignore it),
/// whatever the compiler's std does for plain writes.
fn send_all(stream: &UnixStream, mut buf: &[u8]) -> Result<(), ClientError> {
    while !buf.is_empty() {
        match socket::send(
            std::os::fd::AsRawFd::as_raw_fd(stream),
            buf,
            socket::MsgFlags::MSG_NOSIGNAL,
        ) {
            Ok(0) => return Err(ClientError::Send(io::ErrorKind::WriteZero.into())),
            Ok(n) => buf = &buf[n..],
            Err(Errno::EINTR) => continue,
            // SO_SNDTIMEO ran out.
            Err(Errno::EAGAIN) => return Err(ClientError::TimedOut),
            Err(e) => return Err(ClientError::Send(e.into())),
        }
    }
    Ok(())
}

/// Reads one response frame of at most the size of the larger constant.
fn read_response(stream: &mut UnixStream, deadline: Instant) -> Result<Vec<u8>, ClientError> {
    read_frame(stream, deadline, ALLOW.len().max(DENY.len())).map(|f| f.to_vec())
}

/// Reads one frame of at most `max` bytes, prefix included.
fn read_frame(
    stream: &mut UnixStream,
    deadline: Instant,
    max: usize,
) -> Result<zeroize::Zeroizing<Vec<u8>>, ClientError> {
    let mut buf = zeroize::Zeroizing::new(vec![0u8; max + 1]);
    let mut got = 0;
    loop {
        stream
            .set_read_timeout(Some(remaining(deadline)?))
            .map_err(ClientError::Receive)?;
        match stream.read(&mut buf[got..]) {
            Ok(0) => break,
            Ok(n) => {
                got += n;
                if got > max {
                    return Err(ClientError::Garbage);
                }
                if got >= LEN_PREFIX {
                    let len = u32::from_be_bytes([buf[0], buf[1], buf[2], buf[3]]) as usize;
                    if LEN_PREFIX + len > max {
                        return Err(ClientError::Garbage);
                    }
                    if got == LEN_PREFIX + len {
                        break;
                    }
                }
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(timed_out_or(e, ClientError::Receive)),
        }
    }
    buf.truncate(got);
    Ok(buf)
}

//! One connection as the event loop holds it: its state from the first
//! byte to the answer, reading one request frame without blocking, and
//! when a denial may leave.

use std::io::{self, Read};
use std::time::{Duration, Instant};

use mio::net::UnixStream;
use veil_proto::self_service::{Incoming, decode_incoming};
use veil_proto::{DecodeError, FrameReader, Request};
use zeroize::Zeroizing;

use crate::common::peer::Peer;
use crate::veild::slots::Held;

/// When a denial for a request received at `received` may leave: at
/// `received + delay`, or if that has passed (overload) at the next whole
/// multiple of `delay`, so even a slow answer shows no per-request pattern.
pub fn deny_at(received: Instant, now: Instant, delay: Duration) -> Instant {
    if delay.is_zero() {
        return now;
    }
    let first = received + delay;
    if now <= first {
        return first;
    }
    let late = now - received;
    let periods = late
        .as_nanos()
        .div_ceil(delay.as_nanos())
        .min(u32::MAX as u128) as u32;
    received + delay * periods
}

/// Where a login request's failure deadline starts: at the moment the
/// module's conversation returned the last answer (its `answered` stamp,
/// on the `CLOCK_MONOTONIC` veild shares), so the module's own work after
/// the answers is inside the delay whatever it costs for this account.
/// `received` and `received_ns` are the same moment on both clocks. A
/// root peer's stamp only (a non-root peer, such as a screen locker in a
/// user's session, could move its own deadline earlier and time the work
/// behind it); a future or too old stamp is receipt
/// ([`veil_proto::monotonic::answer_age`]).
pub fn started_at(
    request: &Request,
    peer_uid: u32,
    received: Instant,
    received_ns: u64,
) -> Instant {
    if peer_uid != 0 {
        return received;
    }
    let age = veil_proto::monotonic::answer_age(received_ns, request.answered);
    received.checked_sub(age).unwrap_or(received)
}

pub(super) enum State {
    Reading {
        reader: FrameReader,
        deadline: Instant,
    },
    Working,
    Delayed {
        until: Instant,
    },
    /// A self-service request is being served: only such a connection
    /// can be sent a self-service answer.
    SelfWorking,
    /// Its failure waits for the denial deadline.
    SelfDelayed {
        until: Instant,
    },
}

pub(super) struct Conn {
    pub(super) stream: UnixStream,
    pub(super) peer: Peer,
    pub(super) state: State,
    /// The slots and shares it holds (see [`Slots`]).
    pub(super) held: Held,
}

/// Why a request could not be read: audited as `malformed`, then denied.
#[derive(Debug, thiserror::Error)]
pub(super) enum Malformed {
    #[error("{0}")]
    Frame(#[from] DecodeError),
    #[error("read: {0}")]
    Read(#[source] io::Error),
}

/// Reads what the peer has sent so far: `Ok(None)` while the frame is
/// incomplete and the peer may still write; a request once the frame is
/// whole and the peer has nothing more to send.
pub(super) fn read_incoming(
    stream: &mut UnixStream,
    reader: &mut FrameReader,
) -> Result<Option<Incoming>, Malformed> {
    let mut buf = Zeroizing::new([0u8; 4096]);
    loop {
        match stream.read(&mut buf[..]) {
            Ok(0) => return Ok(Some(decode_incoming(reader.finish()?)?)),
            Ok(n) => match reader.push(&buf[..n]) {
                Ok(Some(_)) => continue, // keep reading: trailing bytes are an error
                Ok(None) => continue,
                Err(e) => return Err(e.into()),
            },
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                return match reader.finish() {
                    Ok(body) => Ok(Some(decode_incoming(body)?)),
                    Err(_) => Ok(None),
                };
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(Malformed::Read(e)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_denial_leaves_at_the_deadline_or_the_next_multiple() {
        let t0 = Instant::now();
        let d = Duration::from_millis(100);
        assert_eq!(deny_at(t0, t0 + Duration::from_millis(30), d), t0 + d);
        assert_eq!(deny_at(t0, t0 + d, d), t0 + d);
        assert_eq!(deny_at(t0, t0 + Duration::from_millis(101), d), t0 + 2 * d);
        assert_eq!(deny_at(t0, t0 + Duration::from_millis(250), d), t0 + 3 * d);
        let now = t0 + Duration::from_millis(7);
        assert_eq!(deny_at(t0, now, Duration::ZERO), now);
    }

    /// Issue 21: a root peer's request whose last answer was given 40 ms
    /// before receipt is denied at answer + delay, not receipt + delay;
    /// clock readings are injected, nothing waits. Fails on the old main,
    /// where the deadline was `deny_at(received, ..)` (no stamp existed).
    #[test]
    fn the_denial_deadline_starts_at_the_last_answer_of_a_root_peer() {
        let received = Instant::now() + Duration::from_secs(10);
        let received_ns = 50_000_000_000;
        let delay = Duration::from_millis(200);
        let mut request = Request::new("alice", "pw".into(), "1".into());
        request.answered = received_ns - 40_000_000;
        let answer = received - Duration::from_millis(40);
        let start = started_at(&request, 0, received, received_ns);
        assert_eq!(start, answer);
        let decided = received + Duration::from_millis(5);
        let until = deny_at(start, decided, delay);
        assert_eq!(until, answer + delay);
        assert!(until < received + delay);
        // A non-root peer's, a future and a stale stamp: receipt.
        assert_eq!(started_at(&request, 1000, received, received_ns), received);
        request.answered = received_ns + 1;
        assert_eq!(started_at(&request, 0, received, received_ns), received);
        request.answered = received_ns - 1_500_000_000;
        assert_eq!(started_at(&request, 0, received, received_ns), received);
    }
}

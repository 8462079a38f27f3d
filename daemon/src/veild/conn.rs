//! One connection as the event loop holds it: its state from the first
//! byte to the answer, reading one request frame without blocking, and
//! when a denial may leave.

use std::io::{self, Read};
use std::time::{Duration, Instant};

use mio::net::UnixStream;
use veil_proto::self_service::{Incoming, decode_incoming};
use veil_proto::{DecodeError, FrameReader};
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
}

//! The socket server: one event-loop thread does all I/O for every
//! connection (non-blocking, bounded buffers, deadlines), a fixed pool of
//! worker threads does the argon2 work. Denials are held by the loop until
//! their deadline, so a worker is never tied up by a delay.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap};
use std::io::{self, Read, Write};
use std::path::Path;
use std::sync::Arc;
use std::sync::mpsc::{self, SyncSender, TrySendError};
use std::time::{Duration, Instant};

use mio::net::{UnixListener, UnixStream};
use mio::{Events, Interest, Poll, Token, Waker};
use nix::sys::socket::{getsockopt, sockopt::PeerCredentials};
use veil_proto::self_service::{Incoming, SelfAnswer, encode_answer};
use veil_proto::{DENY, FrameReader, Request, Verdict};

use crate::common::config::Config;
use crate::common::ledger::{Origin, Sources};
use crate::common::peer::Peer;
use crate::common::store;
use crate::veild::audit::{Audit, Line, Severity};
use crate::veild::conn::{Conn, State, read_incoming};
use crate::veild::conn::{deny_at, started_at};
pub use crate::veild::listen::{Listener, listen};
use crate::veild::slots::{self, Slots};
pub use crate::veild::workers::Worker;
use crate::veild::workers::{Done, Job, spawn_workers};

/// Where subordinate uids are delegated (shadow-utils' file).
const SUBUID: &str = "/etc/subuid";

const LISTENER: Token = Token(0);
const WAKER: Token = Token(1);
const SIGNALS: Token = Token(2);
const FIRST_CONN: usize = 3;
const PRUNE_EVERY: Duration = Duration::from_secs(60);

/// Who a root peer's request is really from, for the fair share of the
/// queue: the origin the ledger charges ([`Origin::from_root`]): whoever ran
/// a setuid front end (`uid:N`, the same share as that uid's own
/// programs), the remote source (grouped as the ledger groups it: a host
/// name or another spelling of an address is no fresh share), a root
/// service, or the console.
/// The second part says whether it is a local requester (see [`Slots`]).
fn requester_of(request: &Request, sources: &Sources) -> (String, bool) {
    match Origin::from_root(&request.rhost, request.ruid, &request.service) {
        Origin::Remote(_) => (format!("rhost:{}", sources.key(&request.rhost)), false),
        Origin::Caller(caller) => (caller, true),
        Origin::Console => ("console".to_owned(), false),
    }
}

/// Runs until SIGTERM or SIGINT, then finishes the requests in flight.
pub fn serve(
    config: &Config,
    listener: Listener,
    workers: Vec<Worker>,
    audit: &Audit,
) -> io::Result<()> {
    let mut poll = Poll::new()?;
    let waker = Arc::new(Waker::new(poll.registry(), WAKER)?);
    let (mut listener, bound_path) = match listener {
        Listener::Bound(l, p) => (l, Some(p)),
        Listener::Inherited(l) => (l, None),
    };
    poll.registry()
        .register(&mut listener, LISTENER, Interest::READABLE)?;

    let (signal_read, signal_write) = std::os::unix::net::UnixStream::pair()?;
    signal_read.set_nonblocking(true)?;
    for signal in [signal_hook::consts::SIGTERM, signal_hook::consts::SIGINT] {
        signal_hook::low_level::pipe::register(signal, signal_write.try_clone()?)?;
    }
    let mut signal_read = UnixStream::from_std(signal_read);
    poll.registry()
        .register(&mut signal_read, SIGNALS, Interest::READABLE)?;

    let (job_tx, job_rx) = mpsc::sync_channel::<Job>(config.limits.queue);
    let (done_tx, done_rx) = mpsc::channel::<Done>();
    let workers = spawn_workers(workers, job_rx, done_tx, &waker, audit)?;

    let mut loop_state = EventLoop {
        conns: HashMap::new(),
        timers: BinaryHeap::new(),
        next_token: FIRST_CONN,
        delay: Duration::from_millis(config.failure_delay_ms),
        request_timeout: Duration::from_millis(config.limits.request_timeout_ms),
        slots: Slots::new(
            slots::Limits {
                max_connections: config.limits.max_connections,
                max_per_user: config.limits.max_connections_per_user,
            },
            Path::new(SUBUID),
        ),
        sources: crate::common::ledger::Limits::from(&config.lockout).sources,
        job_tx: Some(job_tx),
        audit: audit.clone(),
        accept_blocked: false,
    };
    let mut events = Events::with_capacity(256);
    let mut draining = false;
    let mut listener = Some(listener);
    let mut next_prune = Instant::now() + PRUNE_EVERY;
    // `[postgres] outage = "local"`: the copy is filled at start, then
    // refreshed (and the journal handed over) every outage_refresh_s.
    let outage_every = (config.postgres.outage == crate::common::config::pg::Outage::Local
        && store::postgres::is_url(&config.database))
    .then(|| Duration::from_secs(config.postgres.outage_refresh_s));
    let mut next_outage = outage_every.map(|_| Instant::now());
    audit.log(
        Severity::Info,
        Line::new("start")
            .field("workers", workers.len())
            .field("failure_delay_ms", config.failure_delay_ms)
            .finish(),
    );

    loop {
        let now = Instant::now();
        if draining && loop_state.conns.is_empty() {
            break;
        }
        let next_timer = loop_state
            .timers
            .peek()
            .map(|Reverse((t, _))| *t)
            .unwrap_or(now + PRUNE_EVERY)
            .min(next_prune)
            .min(next_outage.unwrap_or(next_prune));
        let timeout = next_timer.saturating_duration_since(now);
        if let Err(e) = poll.poll(&mut events, Some(timeout)) {
            if e.kind() == io::ErrorKind::Interrupted {
                continue;
            }
            return Err(e);
        }
        for event in events.iter() {
            match event.token() {
                LISTENER => {
                    if let Some(l) = listener.as_mut() {
                        loop_state.accept_all(l, poll.registry());
                    }
                }
                WAKER => {}
                SIGNALS => {
                    let mut buf = [0u8; 64];
                    while matches!(signal_read.read(&mut buf), Ok(n) if n > 0) {}
                    if !draining {
                        draining = true;
                        if let Some(mut l) = listener.take() {
                            let _ = poll.registry().deregister(&mut l);
                        }
                        if let Some(path) = &bound_path {
                            let _ = std::fs::remove_file(path);
                        }
                        audit.log(
                            Severity::Info,
                            Line::new("stopping")
                                .field("in_flight", loop_state.conns.len())
                                .finish(),
                        );
                    }
                }
                token => loop_state.readable(token),
            }
        }
        while let Ok(done) = done_rx.try_recv() {
            loop_state.finished(done);
        }
        loop_state.fire_timers(Instant::now());
        // The listener is edge-triggered: after an accept failed for want
        // of descriptors, clients already queued would wait for the next
        // new connection. Retry once this round has closed connections.
        if loop_state.accept_blocked {
            if let Some(l) = listener.as_mut() {
                loop_state.accept_all(l, poll.registry());
            }
        }
        if Instant::now() >= next_prune {
            next_prune = Instant::now() + PRUNE_EVERY;
            if let Some(tx) = &loop_state.job_tx {
                let _ = tx.try_send(Job::Prune);
            }
        }
        if let (Some(at), Some(every)) = (next_outage, outage_every) {
            if Instant::now() >= at {
                next_outage = Some(Instant::now() + every);
                if let Some(tx) = &loop_state.job_tx {
                    let _ = tx.try_send(Job::OutageTick);
                }
            }
        }
    }
    // Closing the queue ends the workers once they finish what they hold.
    loop_state.job_tx = None;
    for w in workers {
        let _ = w.join();
    }
    audit.log(Severity::Info, Line::new("stopped").finish());
    Ok(())
}

struct EventLoop {
    conns: HashMap<Token, Conn>,
    timers: BinaryHeap<Reverse<(Instant, Token)>>,
    next_token: usize,
    delay: Duration,
    request_timeout: Duration,
    /// Active and waiting connections, per requester and class.
    slots: Slots,
    /// How PAM_RHOST is grouped into sources (`[lockout]`).
    sources: Sources,
    job_tx: Option<SyncSender<Job>>,
    audit: Audit,
    /// The last accept failed (EMFILE and the like) with clients still queued.
    accept_blocked: bool,
}

impl EventLoop {
    fn accept_all(&mut self, listener: &mut UnixListener, registry: &mio::Registry) {
        loop {
            let (mut stream, _) = match listener.accept() {
                Ok(pair) => pair,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    self.accept_blocked = false;
                    return;
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => {
                    // EMFILE and the like: the pending connection stays
                    // queued, and is retried once a connection closes.
                    if !self.accept_blocked {
                        self.audit.log(
                            Severity::Error,
                            Line::new("accept").field("error", e).finish(),
                        );
                    }
                    self.accept_blocked = true;
                    return;
                }
            };
            let peer = match getsockopt(&stream, PeerCredentials) {
                Ok(c) => Peer {
                    uid: c.uid(),
                    pid: c.pid(),
                },
                Err(_) => continue,
            };
            let held = match self.slots.accept(peer.uid) {
                Ok(held) => held,
                Err((full, owner)) => {
                    // Overload fails closed, at once: holding it would
                    // take the very slot that is missing.
                    let _ = stream.write(&DENY);
                    self.audit.metrics().overload(full.as_str());
                    let mut line = Line::new("overload").field("limit", full.as_str());
                    if peer.uid != 0 {
                        line = line.field("peer_uid", peer.uid);
                    }
                    if let Some(owner) = owner.filter(|o| *o != peer.uid) {
                        line = line.field("owner_uid", owner);
                    }
                    self.audit.log(Severity::Warning, line.finish());
                    continue;
                }
            };
            let token = Token(self.next_token);
            self.next_token = self.next_token.wrapping_add(1).max(FIRST_CONN);
            let mut held = held;
            if registry
                .register(&mut stream, token, Interest::READABLE)
                .is_err()
            {
                self.slots.release(&mut held);
                continue;
            }
            let deadline = Instant::now() + self.request_timeout;
            self.timers.push(Reverse((deadline, token)));
            self.conns.insert(
                token,
                Conn {
                    stream,
                    peer,
                    state: State::Reading {
                        reader: FrameReader::new(),
                        deadline,
                    },
                    held,
                },
            );
            // Read at once: a client writes its request as it connects, and
            // a request read is no longer an anonymous active slot.
            self.readable(token);
        }
    }

    fn readable(&mut self, token: Token) {
        let Some(conn) = self.conns.get_mut(&token) else {
            return;
        };
        let State::Reading { reader, .. } = &mut conn.state else {
            return;
        };
        let outcome = read_incoming(&mut conn.stream, reader);
        let received = Instant::now();
        let received_ns = veil_proto::monotonic::now_ns();
        let peer = conn.peer;
        match outcome {
            Ok(None) => {}
            Ok(Some(Incoming::SelfService(request))) => {
                conn.state = State::SelfWorking;
                // Only non-root peers are served, each within its uid's
                // connection share taken at accept (root is refused at once).
                let job = Job::SelfService {
                    token,
                    request: Box::new(request),
                    peer,
                    received,
                };
                let sent = match &self.job_tx {
                    Some(tx) => tx.try_send(job),
                    None => Err(TrySendError::Disconnected(job)),
                };
                if sent.is_err() {
                    self.audit.metrics().overload("queue");
                    self.audit.log(
                        Severity::Warning,
                        Line::new("self-service")
                            .field("peer_uid", peer.uid)
                            .field("outcome", "not-served")
                            .field("reason", "overload")
                            .finish(),
                    );
                    // DENY, as at the per-uid cap: "not served", which is
                    // no verdict on the credentials. At the same deadline.
                    self.schedule_deny(token, received);
                }
            }
            Ok(Some(Incoming::Session(note))) => {
                // No verdict on credentials: answered as soon as applied,
                // DENY at once when no worker can take it.
                conn.state = State::Working;
                let job = Job::Session {
                    token,
                    note: Box::new(note),
                    peer,
                };
                let sent = match &self.job_tx {
                    Some(tx) => tx.try_send(job),
                    None => Err(TrySendError::Disconnected(job)),
                };
                if sent.is_err() {
                    self.audit.metrics().overload("queue");
                    self.reply(token, Verdict::Deny);
                }
            }
            Ok(Some(Incoming::Login(request))) => {
                conn.state = State::Working;
                let received = started_at(&request, peer.uid, received, received_ns);
                if peer.uid == 0 {
                    let (requester, local) = requester_of(&request, &self.sources);
                    if let Err(full) = self.slots.start(&mut conn.held, &requester, local) {
                        self.audit.metrics().overload(full.as_str());
                        self.audit.metrics().attempt(false, "overload");
                        self.audit.log(
                            Severity::Warning,
                            Line::new("overload")
                                .field("limit", full.as_str())
                                .field("requester", &requester)
                                .field("user", &request.user)
                                .field("outcome", "deny")
                                .finish(),
                        );
                        // Held to the deadline like any denial, but in the
                        // waiting pool, and not evaluated: the flood gains
                        // no guesses and takes no one's slot.
                        self.schedule_deny(token, received);
                        return;
                    }
                }
                let job = Job::Verify {
                    token,
                    request: Box::new(request),
                    peer,
                    received,
                };
                let sent = match &self.job_tx {
                    Some(tx) => tx.try_send(job),
                    None => Err(TrySendError::Disconnected(job)),
                };
                if let Err(e) = sent {
                    let job = match e {
                        TrySendError::Full(j) | TrySendError::Disconnected(j) => j,
                    };
                    self.audit.metrics().overload("queue");
                    self.audit.metrics().attempt(false, "overload");
                    if let Job::Verify { request, .. } = job {
                        self.audit.log(
                            Severity::Warning,
                            Line::new("attempt")
                                .field("user", &request.user)
                                .field("service", &request.service)
                                .field("rhost", &request.rhost)
                                .field("peer_uid", peer.uid)
                                .field("outcome", "deny")
                                .field("reason", "overload")
                                .finish(),
                        );
                    }
                    self.schedule_deny(token, received);
                }
            }
            Err(_) if reader.received() == 0 => {
                // Connected and closed without a byte: a liveness probe.
                self.reply(token, Verdict::Deny);
            }
            Err(why) => {
                self.audit.log(
                    Severity::Warning,
                    Line::new("malformed")
                        .field("peer_uid", peer.uid)
                        .field("peer_pid", peer.pid)
                        .field("error", why)
                        .field("outcome", "deny")
                        .finish(),
                );
                self.schedule_deny(token, received);
            }
        }
    }

    fn schedule_deny(&mut self, token: Token, received: Instant) {
        let until = deny_at(received, Instant::now(), self.delay);
        if self.wait(token) {
            if let Some(conn) = self.conns.get_mut(&token) {
                conn.state = State::Delayed { until };
                self.timers.push(Reverse((until, token)));
            }
        } else {
            self.reply(token, Verdict::Deny);
        }
    }

    /// A self-service failure, held to the same deadline as a denial.
    fn schedule_self_failed(&mut self, token: Token, received: Instant) {
        let until = deny_at(received, Instant::now(), self.delay);
        if self.wait(token) {
            if let Some(conn) = self.conns.get_mut(&token) {
                conn.state = State::SelfDelayed { until };
                self.timers.push(Reverse((until, token)));
            }
        } else {
            self.reply_self(token, &SelfAnswer::Failed);
        }
    }

    /// Moves a connection whose answer is a denial to the waiting pool
    /// (it gives back its active slot and shares). `false`: the pool is
    /// full (logged), and the denial is sent now.
    fn wait(&mut self, token: Token) -> bool {
        let Some(conn) = self.conns.get_mut(&token) else {
            return true;
        };
        if self.slots.wait(&mut conn.held) {
            return true;
        }
        self.audit.log(
            Severity::Warning,
            Line::new("overload")
                .field("limit", "waiting")
                .field("peer_uid", conn.peer.uid)
                .finish(),
        );
        false
    }

    fn finished(&mut self, done: Done) {
        match done {
            Done::Login {
                token,
                verdict: Verdict::Allow,
                ..
            } => self.reply(token, Verdict::Allow),
            Done::Login {
                token,
                verdict: Verdict::Deny,
                received,
            } => self.schedule_deny(token, received),
            Done::SelfService {
                token,
                answer: SelfAnswer::Failed,
                received,
            } => self.schedule_self_failed(token, received),
            Done::Session { token, verdict } => self.reply(token, verdict),
            Done::SelfService { token, answer, .. } => self.reply_self(token, &answer),
        }
    }

    fn fire_timers(&mut self, now: Instant) {
        while let Some(Reverse((at, token))) = self.timers.peek().copied() {
            if at > now {
                break;
            }
            self.timers.pop();
            let due = match self.conns.get(&token).map(|c| &c.state) {
                Some(State::Reading { deadline, .. }) => *deadline <= now,
                Some(State::Delayed { until }) => *until <= now,
                Some(State::SelfDelayed { until }) => {
                    if *until <= now {
                        self.reply_self(token, &SelfAnswer::Failed);
                    }
                    false
                }
                _ => false,
            };
            if due {
                if let Some(Conn {
                    state: State::Reading { .. },
                    peer,
                    ..
                }) = self.conns.get(&token)
                {
                    self.audit.log(
                        Severity::Notice,
                        Line::new("timeout")
                            .field("peer_uid", peer.uid)
                            .field("peer_pid", peer.pid)
                            .field("outcome", "deny")
                            .finish(),
                    );
                }
                self.reply(token, Verdict::Deny);
            }
        }
    }

    /// Sends a self-service answer and closes, only on a connection whose
    /// request decoded as self-service; any other gets DENY. The frame is
    /// a few hundred bytes into an empty socket buffer: written whole.
    fn reply_self(&mut self, token: Token, answer: &SelfAnswer) {
        let is_self = matches!(
            self.conns.get(&token).map(|c| &c.state),
            Some(State::SelfWorking | State::SelfDelayed { .. })
        );
        if !is_self {
            self.reply(token, Verdict::Deny);
            return;
        }
        self.close_with(token, &encode_answer(answer));
    }

    /// Sends one of the two constants and closes. The answer is at most 16
    /// bytes into an empty socket buffer, so a non-blocking write takes it whole.
    fn reply(&mut self, token: Token, verdict: Verdict) {
        self.close_with(token, verdict.frame());
    }

    /// Writes `frame`, closes and gives back the connection's slots.
    fn close_with(&mut self, token: Token, frame: &[u8]) {
        if let Some(mut conn) = self.conns.remove(&token) {
            let _ = conn.stream.write(frame);
            let _ = conn.stream.shutdown(std::net::Shutdown::Both);
            self.slots.release(&mut conn.held);
        }
    }
}

//! veild's worker pool: a fixed number of threads that take jobs (a login
//! to decide, a self-service request, the minute's prune) from the event
//! loop and hand back what was decided. A panic in a check costs one
//! denial, never a worker.

use std::io;
use std::sync::mpsc::{Receiver, Sender};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use mio::{Token, Waker};
use veil_proto::self_service::{SelfAnswer, SelfRequest};
use veil_proto::session::SessionNote;
use veil_proto::{Request, Verdict};

use crate::common::clock::unix_now;
use crate::common::fresh::NoteOutcome;
use crate::common::peer::Peer;
use crate::common::verify::{Decision, HandOver, OutageError, Reason, Verifier};
use crate::veild::audit::{Audit, Line, Severity, audit_decision};
use crate::veild::self_service::SelfService;

pub(super) enum Job {
    Verify {
        token: Token,
        request: Box<Request>,
        peer: Peer,
        received: Instant,
    },
    SelfService {
        token: Token,
        request: Box<SelfRequest>,
        peer: Peer,
        received: Instant,
    },
    /// A session note (pam_veil's session phase).
    Session {
        token: Token,
        note: Box<SessionNote>,
        peer: Peer,
    },
    Prune,
    /// `outage = "local"`: hand the journal over, refresh the copy.
    OutageTick,
}

/// A finished job. A login's is a [`Verdict`] and nothing else, so the
/// only bytes a login connection can ever get are ALLOW or DENY.
pub(super) enum Done {
    Login {
        token: Token,
        verdict: Verdict,
        received: Instant,
    },
    SelfService {
        token: Token,
        answer: SelfAnswer,
        received: Instant,
    },
    /// ALLOW when a window was bound or closed, DENY otherwise.
    Session { token: Token, verdict: Verdict },
}

/// One worker's tools: the login verifier and the self-service handler.
#[derive(Debug)]
pub struct Worker {
    pub verifier: Verifier,
    pub self_service: SelfService,
}

pub(super) fn spawn_workers(
    workers: Vec<Worker>,
    jobs: Receiver<Job>,
    done: Sender<Done>,
    waker: &Arc<Waker>,
    audit: &Audit,
) -> io::Result<Vec<JoinHandle<()>>> {
    let jobs = Arc::new(Mutex::new(jobs));
    let mut handles = Vec::new();
    for (i, worker) in workers.into_iter().enumerate() {
        let Worker {
            mut verifier,
            mut self_service,
        } = worker;
        let jobs = Arc::clone(&jobs);
        let done = done.clone();
        let waker = Arc::clone(waker);
        let audit = audit.clone();
        handles.push(
            std::thread::Builder::new()
                .name(format!("verify-{i}"))
                .spawn(move || {
                    loop {
                        let job = match jobs.lock() {
                            Ok(rx) => rx.recv(),
                            Err(_) => return,
                        };
                        match job {
                            Ok(Job::Verify {
                                token,
                                request,
                                peer,
                                received,
                            }) => {
                                // A bug in the check must cost one denial, not a worker.
                                let started = Instant::now();
                                let mut fleet_time = Duration::ZERO;
                                let decision =
                                    std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                                        let now = verifier.fleet_now(unix_now());
                                        fleet_time = started.elapsed();
                                        verifier.decide(&request, peer, now)
                                    }))
                                    .unwrap_or_else(|_| {
                                        Decision {
                                            verdict: Verdict::Deny,
                                            reason: Reason::Internal,
                                            locked: Vec::new(),
                                            ledger_full: false,
                                            offline: false,
                                        }
                                    });
                                audit.metrics().verification(started.elapsed());
                                // The store's clock (PostgreSQL: a query) is store time too.
                                audit
                                    .metrics()
                                    .store_time(fleet_time + verifier.take_store_time());
                                audit.metrics().check_time(verifier.take_check_time());
                                audit_decision(&audit, &request, peer, &decision);
                                drop(request);
                                let _ = done.send(Done::Login {
                                    token,
                                    verdict: decision.verdict,
                                    received,
                                });
                                let _ = waker.wake();
                            }
                            Ok(Job::SelfService {
                                token,
                                request,
                                peer,
                                received,
                            }) => {
                                let answer = serve_self(&mut self_service, &audit, &request, peer);
                                audit
                                    .metrics()
                                    .set_pending_enrolments(self_service.pending(unix_now()));
                                drop(request);
                                let _ = done.send(Done::SelfService {
                                    token,
                                    answer,
                                    received,
                                });
                                let _ = waker.wake();
                            }
                            Ok(Job::Session { token, note, peer }) => {
                                let verdict = serve_note(&mut verifier, &audit, &note, peer);
                                let _ = done.send(Done::Session { token, verdict });
                                let _ = waker.wake();
                            }
                            Ok(Job::Prune) => {
                                let now = verifier.fleet_now(unix_now());
                                let pruned = verifier.prune(now);
                                let error = pruned.as_ref().err().map(ToString::to_string);
                                audit.store_answered(pruned.is_ok(), error.as_deref());
                                audit
                                    .metrics()
                                    .set_pending_enrolments(self_service.pending(unix_now()));
                                match pruned {
                                    Ok(0) => {}
                                    Ok(n) => audit.log(
                                        Severity::Info,
                                        Line::new("prune").field("rows", n).finish(),
                                    ),
                                    Err(e) => {
                                        audit.metrics().store_error_prune();
                                        audit.log(
                                            Severity::Error,
                                            Line::new("prune").field("error", e).finish(),
                                        )
                                    }
                                }
                                if let Ok(rows) = verifier.ledger_rows() {
                                    audit.metrics().set_ledger_rows(rows);
                                }
                            }
                            Ok(Job::OutageTick) => outage_tick(&mut verifier, &audit),
                            Err(_) => return,
                        }
                    }
                })?,
        );
    }
    Ok(handles)
}

/// One session note on a worker: applied, and logged (admin-only: which
/// session was bound or why not).
fn serve_note(verifier: &mut Verifier, audit: &Audit, note: &SessionNote, peer: Peer) -> Verdict {
    let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        let now = verifier.fleet_now(unix_now());
        verifier.session_note(note, peer, now)
    }));
    let mut line = Line::new("session")
        .field("op", note.op.as_str())
        .field("user", &note.user)
        .field("service", &note.service)
        .field("peer_uid", peer.uid)
        .field("peer_pid", peer.pid);
    let (severity, verdict) = match outcome {
        Ok(Ok(result)) => {
            line = line.field("outcome", result.reason());
            match result {
                NoteOutcome::Bound { session } | NoteOutcome::Closed { session, .. } => {
                    line = line.field("audit_session", session);
                    (Severity::Info, Verdict::Allow)
                }
                NoteOutcome::Ignored(_) => {
                    if let Some(hint) = result.hint() {
                        line = line.field("hint", hint);
                    }
                    (Severity::Info, Verdict::Deny)
                }
            }
        }
        Ok(Err(e)) => {
            line = line.field("outcome", "store-error").field("error", e);
            (Severity::Error, Verdict::Deny)
        }
        Err(_) => {
            line = line.field("outcome", "internal-error");
            (Severity::Error, Verdict::Deny)
        }
    };
    audit.log(severity, line.finish());
    verdict
}

/// The outage copy's tick: logged when it handed anything over, removed
/// a user, or failed for another reason than the store being away.
fn outage_tick(verifier: &mut Verifier, audit: &Audit) {
    let now = verifier.fleet_now(unix_now());
    let mut done = HandOver::default();
    let tick = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        verifier.outage_tick(now, &mut done)
    }));
    if matches!(tick, Ok(Ok(true))) {
        audit.metrics().set_outage_cache_users(done.users);
    }
    if done.failures + done.uses + done.removed > 0 {
        audit.log(
            Severity::Notice,
            Line::new("outage-hand-over")
                .field("failures", done.failures)
                .field("uses", done.uses)
                .field("users", done.users)
                .field("removed", done.removed)
                .finish(),
        );
    }
    match tick {
        Ok(Ok(_)) | Ok(Err(OutageError::Shared(_))) => {}
        Ok(Err(e)) => audit.log(
            Severity::Error,
            Line::new("outage-cache").field("error", e).finish(),
        ),
        Err(_) => audit.log(
            Severity::Error,
            Line::new("outage-cache")
                .field("error", "internal")
                .finish(),
        ),
    }
}

/// One self-service request on a worker: its answer, and its audit lines
/// (the login-like check's `attempt`, then `self-service`).
fn serve_self(
    self_service: &mut SelfService,
    audit: &Audit,
    request: &SelfRequest,
    peer: Peer,
) -> SelfAnswer {
    let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        self_service.handle(request, peer, unix_now())
    }));
    let (answer, reason, error) = match outcome {
        Ok(o) => {
            if let Some((login, decision)) = &o.check {
                audit_decision(audit, login, peer, decision);
            }
            (o.answer, o.reason, o.error)
        }
        Err(_) => (SelfAnswer::Failed, "internal-error", None),
    };
    let outcome_word = match &answer {
        SelfAnswer::Challenge { .. } => "pending",
        SelfAnswer::Done | SelfAnswer::Codes { .. } => "done",
        SelfAnswer::Failed => "failed",
        SelfAnswer::Refused { .. } => "refused",
    };
    let severity = match (&answer, &error) {
        (_, Some(_)) => Severity::Error,
        (SelfAnswer::Failed, None) => Severity::Notice,
        _ => Severity::Info,
    };
    let mut line = Line::new("self-service")
        .field("op", request.op.as_str())
        .field("user", &request.user)
        .field("peer_uid", peer.uid)
        .field("peer_pid", peer.pid)
        .field("outcome", outcome_word)
        .field("reason", reason);
    if let Some(e) = error {
        line = line.field("error", e);
    }
    audit.log(severity, line.finish());
    answer
}

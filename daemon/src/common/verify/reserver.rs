//! A thread of each verifier's own that makes a known pair's reservation
//! while the verifier's thread verifies the password (`known.rs`). One per
//! worker, started with it and kept: veild's threads stay what they were
//! at start whatever the load (no thread per login), and a login does not
//! pay for starting one. The store travels to the thread and back with
//! each job, so only one thread ever holds it.

use std::any::Any;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::mpsc;

use crate::common::ledger::{Charge, Limits};
use crate::common::store::{Reserved, Store, StoreError};

/// One reservation to make.
pub(super) struct Job {
    pub(super) store: Box<dyn Store>,
    pub(super) charge: Charge,
    pub(super) user: String,
    pub(super) now: i64,
}

/// The store back, and what it answered; `Err`: the reservation panicked
/// (the store is dropped, and the panic goes on on the verifier's thread).
type Done = Result<(Box<dyn Store>, Result<Reserved, StoreError>), Box<dyn Any + Send>>;

pub(super) struct Reserver {
    jobs: mpsc::Sender<Job>,
    done: mpsc::Receiver<Done>,
    /// The verifier's limits (fixed for veild's life), for a job run here.
    limits: Limits,
}

impl std::fmt::Debug for Reserver {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Reserver").finish_non_exhaustive()
    }
}

impl Job {
    fn run(mut self, limits: &Limits) -> Done {
        catch_unwind(AssertUnwindSafe(|| {
            self.store
                .reserve_and_look_up(limits, self.charge, &self.user, self.now)
        }))
        .map(|reserved| (self.store, reserved))
    }
}

impl Reserver {
    /// The thread, reserving under `limits`, or `None` when none can be
    /// had (a task limit): the verifier then reserves and verifies in turn.
    pub(super) fn start(limits: &Limits) -> Option<Reserver> {
        let for_thread = limits.clone();
        let (jobs, inbox) = mpsc::channel::<Job>();
        let (outbox, done) = mpsc::channel::<Done>();
        std::thread::Builder::new()
            .name("veild-reserve".into())
            .spawn(move || {
                // Ends when its verifier is dropped.
                for job in inbox {
                    if outbox.send(job.run(&for_thread)).is_err() {
                        return;
                    }
                }
            })
            .ok()?;
        Some(Reserver {
            jobs,
            done,
            limits: limits.clone(),
        })
    }

    /// Runs `job` on the thread while `meanwhile` runs on this one; both
    /// results once both are done.
    pub(super) fn reserve_while<T>(
        &self,
        job: Job,
        meanwhile: impl FnOnce() -> T,
    ) -> (Option<Box<dyn Store>>, Result<Reserved, StoreError>, T) {
        let done = match self.jobs.send(job) {
            Ok(()) => {
                let value = meanwhile();
                match self.done.recv() {
                    Ok(done) => (done, value),
                    // The thread is gone with the store: the reservation
                    // was not made, and the store is opened again next time.
                    Err(_) => return (None, Err(StoreError::ReservationThreadGone), value),
                }
            }
            // The thread is gone: the job (and its store) came back.
            Err(mpsc::SendError(job)) => {
                let value = meanwhile();
                (job.run(&self.limits), value)
            }
        };
        match done {
            (Ok((store, reserved)), value) => (Some(store), reserved, value),
            (Err(panic), _) => std::panic::resume_unwind(panic),
        }
    }
}

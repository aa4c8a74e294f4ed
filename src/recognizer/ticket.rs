//! [`Ticket`]: the caller's end of one submitted request, waited on from sync or async code.

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::task::{Context, Poll, Waker};
use std::time::{Duration, Instant};

use super::{RecognizeError, Transcript};

/// The outcome of one request.
pub(crate) type Outcome = Result<Transcript, RecognizeError>;

/// Shared between a [`Ticket`] and the worker that runs its request.
#[derive(Debug, Default)]
pub(crate) struct Slot {
    inner: Mutex<SlotInner>,
    done: Condvar,
    /// Set by the caller (cancel or drop); read by the worker and the abort callback.
    cancelled: AtomicBool,
}

#[derive(Debug, Default)]
struct SlotInner {
    outcome: Option<Outcome>,
    finished: bool,
    waker: Option<Waker>,
}

impl Slot {
    fn lock(&self) -> MutexGuard<'_, SlotInner> {
        // A panic while holding this lock cannot leave it inconsistent (plain assignments).
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Delivers the outcome once; later calls are ignored.
    pub(crate) fn complete(&self, outcome: Outcome) {
        let waker = {
            let mut inner = self.lock();
            if inner.finished {
                return;
            }
            inner.finished = true;
            inner.outcome = Some(outcome);
            inner.waker.take()
        };
        self.done.notify_all();
        if let Some(waker) = waker {
            waker.wake();
        }
    }

    pub(crate) fn is_cancelled(&self) -> bool {
        self.cancelled.load(Ordering::Acquire)
    }

    pub(crate) fn is_finished(&self) -> bool {
        self.lock().finished
    }
}

/// A submitted request: wait for its [`Transcript`] with [`wait`](Self::wait) in sync code, or
/// `.await` it in async code (it is a `Future`, driven by the recognizer's own worker threads,
/// so awaiting it never blocks an executor thread and needs no particular runtime).
///
/// Dropping a ticket before its result arrives cancels the request: a queued request is
/// skipped, a running one is stopped through whisper.cpp's abort callback.
#[derive(Debug)]
pub struct Ticket {
    id: u64,
    slot: Arc<Slot>,
    taken: bool,
}

impl Ticket {
    pub(crate) fn new(id: u64, slot: Arc<Slot>) -> Self {
        Ticket {
            id,
            slot,
            taken: false,
        }
    }

    /// The request's number, unique within its recognizer (for logs).
    pub fn id(&self) -> u64 {
        self.id
    }

    /// Asks for the request to stop. A request that has not started never runs; a running one
    /// stops at whisper.cpp's next abort check. Its outcome becomes
    /// [`RecognizeError::Cancelled`] unless it had already finished.
    pub fn cancel(&self) {
        self.slot.cancelled.store(true, Ordering::Release);
    }

    /// Whether the outcome is available (then `wait` returns at once).
    pub fn is_finished(&self) -> bool {
        self.slot.is_finished()
    }

    /// Blocks until the outcome is available and returns it.
    pub fn wait(mut self) -> Result<Transcript, RecognizeError> {
        let mut inner = self.slot.lock();
        while !inner.finished {
            inner = self
                .slot
                .done
                .wait(inner)
                .unwrap_or_else(|p| p.into_inner());
        }
        self.taken = true;
        inner
            .outcome
            .take()
            .unwrap_or(Err(RecognizeError::Cancelled))
    }

    /// Blocks for at most `timeout`; `None` if the outcome is not available by then (the
    /// request keeps running; call again or cancel it).
    pub fn wait_timeout(
        &mut self,
        timeout: Duration,
    ) -> Option<Result<Transcript, RecognizeError>> {
        let until = Instant::now() + timeout;
        let mut inner = self.slot.lock();
        while !inner.finished {
            let left = until.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return None;
            }
            inner = self
                .slot
                .done
                .wait_timeout(inner, left)
                .unwrap_or_else(|p| p.into_inner())
                .0;
        }
        if self.taken {
            return Some(Err(RecognizeError::Cancelled));
        }
        self.taken = true;
        Some(
            inner
                .outcome
                .take()
                .unwrap_or(Err(RecognizeError::Cancelled)),
        )
    }
}

impl Future for Ticket {
    type Output = Result<Transcript, RecognizeError>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = &mut *self;
        let mut inner = this.slot.lock();
        if inner.finished {
            drop(inner);
            if this.taken {
                // Polled again after completion: the outcome was handed out already.
                return Poll::Ready(Err(RecognizeError::Cancelled));
            }
            this.taken = true;
            let outcome = this.slot.lock().outcome.take();
            return Poll::Ready(outcome.unwrap_or(Err(RecognizeError::Cancelled)));
        }
        match &inner.waker {
            Some(w) if w.will_wake(cx.waker()) => {}
            _ => inner.waker = Some(cx.waker().clone()),
        }
        Poll::Pending
    }
}

impl Drop for Ticket {
    fn drop(&mut self) {
        if !self.taken && !self.slot.is_finished() {
            self.cancel();
        }
    }
}

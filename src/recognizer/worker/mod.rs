//! One worker thread: takes requests from its lane's queue and runs them on its own state, or
//! forwards them to its lane's worker process. The loop is here; a failed GPU attempt's way to
//! another lane is in `failover`, one attempt (the whole audio, or its speech in chunks) in
//! `attempt`, one attempt in a worker process in `remote`.

mod attempt;
mod failover;
mod remote;

use attempt::{attempt, Attempt};
use failover::{gpu_failed, neutral, retry_possible};

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Instant;

use super::isolation::Supervisor;
use super::ticket::Outcome;
use super::{lock, Backend, Job, RecognizeError, Shared};
use crate::{WhisperState, WhisperVadContext};

/// What a worker thread owns: its state, the states it may add for the chunks of a long request
/// (made on first use, kept), and its VAD context.
pub(super) struct Workspace {
    pub(super) state: WhisperState,
    pub(super) helpers: Vec<WhisperState>,
    pub(super) vad: Option<WhisperVadContext>,
}

/// What a worker runs its attempts on.
pub(super) enum Engine {
    /// Its own states, in this process.
    Threads(Workspace),
    /// Its lane's worker process.
    Process(Arc<Supervisor>),
}

/// The worker's loop, until the recognizer closes and its lane's queue is empty.
pub(super) fn run(shared: Arc<Shared>, lane: usize, worker: usize, mut work: Engine) {
    while let Some(job) = next_job(&shared, lane) {
        // Counted busy (by `next_job`) from the moment the request leaves the queue until it
        // is finished or handed to the CPU lane, so the CPU lane never stops under a retry.
        handle(&shared, lane, worker, &mut work, job);
        let closed = {
            let mut queues = lock(&shared.queues);
            shared.lanes[lane].busy.fetch_sub(1, Ordering::Relaxed);
            let idle = queues.lanes.iter().all(|q| q.is_empty())
                && shared
                    .lanes
                    .iter()
                    .all(|l| l.busy.load(Ordering::Relaxed) == 0);
            if idle {
                // This worker waits for the next request with the trim's time as its limit.
                queues.idle_since = Some(Instant::now());
            }
            queues.closed
        };
        if closed {
            // Workers of other lanes waiting to shut down recheck whether a retry may come.
            for (other, ready) in shared.ready.iter().enumerate() {
                if other != lane {
                    ready.notify_all();
                }
            }
        }
    }
}

fn handle(shared: &Shared, lane: usize, worker: usize, work: &mut Engine, mut job: Job) {
    let started = Instant::now();
    job.timings.queued += started - job.enqueued;
    let kind = shared.lanes[lane].kind;
    let backend = kind.backend();

    let attempt = if job.slot.is_cancelled() {
        Attempt::Cancelled
    } else if job.deadline.is_some_and(|(at, _)| started >= at) {
        Attempt::DeadlineExceeded
    } else {
        let attempt = match work {
            Engine::Threads(work) => attempt(shared, lane, worker, work, &job),
            Engine::Process(process) => remote::attempt(shared, lane, worker, process, &job),
        };
        job.timings.processing += started.elapsed();
        attempt
    };

    let outcome: Outcome = match attempt {
        Attempt::Done(mut transcript) => {
            shared.lanes[lane].succeeded.fetch_add(1, Ordering::Relaxed);
            if let Some(breaker) = &shared.lanes[lane].breaker {
                lock(breaker).record_success();
            }
            transcript.device = kind.device();
            transcript.retried_on_cpu = job.retried_on_cpu;
            transcript.timings = job.timings;
            transcript.timings.total = job.submitted.elapsed();
            Ok(transcript)
        }
        Attempt::Refused(error) => {
            neutral(shared, lane);
            log::debug!(
                target: "whisper_steady::recognizer",
                "request {}: {error}",
                job.id
            );
            Err(error)
        }
        Attempt::Cancelled => {
            neutral(shared, lane);
            Err(RecognizeError::Cancelled)
        }
        Attempt::DeadlineExceeded => {
            neutral(shared, lane);
            Err(RecognizeError::DeadlineExceeded {
                deadline: job.deadline.map(|(_, d)| d).unwrap_or_default(),
            })
        }
        Attempt::Failed(error) => {
            shared.lanes[lane].failed.fetch_add(1, Ordering::Relaxed);
            // The states may be left broken by whatever failed (a device error): start afresh.
            // (A worker process that died is started afresh by its supervisor.)
            if let Engine::Threads(work) = work {
                work.helpers.clear();
                match shared.lanes[lane].ctx.create_state() {
                    Ok(fresh) => work.state = fresh,
                    Err(e) => log::warn!(
                        target: "whisper_steady::recognizer",
                        "{kind} worker {worker}: cannot renew its state after a failure ({e}); \
                         keeping the old one"
                    ),
                }
            }
            let death = error.is_death();
            let unretried = if backend == Backend::Gpu {
                match gpu_failed(shared, lane, job, error) {
                    None => return, // retried elsewhere: the request lives on
                    Some(returned) => returned,
                }
            } else {
                (job, Err(error.into_error(backend)))
            };
            // Nowhere else to go: a request whose worker process died is run once more on
            // its lane when the process is back (not twice: it might be what kills it).
            match unretried {
                (returned, _) if death && returned.deaths == 0 => {
                    requeue_after_death(shared, lane, returned);
                    return;
                }
                (returned, outcome) => {
                    job = returned;
                    outcome
                }
            }
        }
    };
    finish(shared, job, outcome);
}

/// Puts a request whose worker process died back at the head of its lane's queue.
fn requeue_after_death(shared: &Shared, lane: usize, mut job: Job) {
    job.deaths += 1;
    job.enqueued = Instant::now();
    log::warn!(
        target: "whisper_steady::recognizer",
        "request {}: its worker process died; running it again on {} once the process is back",
        job.id,
        shared.lanes[lane].kind
    );
    shared.counters.retried.fetch_add(1, Ordering::Relaxed);
    lock(&shared.queues).lanes[lane].push_front(job);
    shared.ready[lane].notify_one();
}

/// Blocks until this lane has a request, or returns `None` once the recognizer is closed and
/// the lane's queue is empty (queued requests are always run, even during shutdown).
fn next_job(shared: &Shared, lane: usize) -> Option<Job> {
    let mut queues = lock(&shared.queues);
    loop {
        if let Some(job) = queues.lanes[lane].pop_front() {
            // Busy from here (under the queue lock, see `retry_possible`) until `run` is done.
            shared.lanes[lane].busy.fetch_add(1, Ordering::Relaxed);
            return Some(job);
        }
        if queues.closed && !retry_possible(shared, lane, &queues) {
            return None;
        }
        let trim_at = shared
            .config
            .idle_trim_after
            .zip(queues.idle_since)
            .filter(|_| !queues.closed)
            .map(|(after, since)| since + after);
        match trim_at {
            Some(at) if Instant::now() >= at => {
                // This worker trims, once for this idle period, without the queue locked.
                queues.idle_since = None;
                drop(queues);
                shared.trim(true);
                queues = lock(&shared.queues);
            }
            Some(at) => {
                let wait = at.saturating_duration_since(Instant::now());
                queues = shared.ready[lane]
                    .wait_timeout(queues, wait)
                    .unwrap_or_else(|p| p.into_inner())
                    .0;
            }
            None => {
                queues = shared.ready[lane]
                    .wait(queues)
                    .unwrap_or_else(|p| p.into_inner());
            }
        }
    }
}

/// Counts the outcome and hands it to the caller.
fn finish(shared: &Shared, mut job: Job, outcome: Outcome) {
    // The segment receiver goes first, so that a channel it sends on is closed by the time
    // the caller sees the outcome.
    if let Some(segments) = job.segments.take() {
        lock(&segments).close();
    }
    let counter = match &outcome {
        Ok(_) => &shared.counters.completed,
        Err(RecognizeError::Cancelled) => &shared.counters.cancelled,
        Err(RecognizeError::DeadlineExceeded { .. }) => &shared.counters.deadline,
        Err(RecognizeError::InvalidAudio(_) | RecognizeError::InvalidOptions(_)) => {
            &shared.counters.invalid
        }
        Err(_) => &shared.counters.failed,
    };
    counter.fetch_add(1, Ordering::Relaxed);
    job.slot.complete(outcome);
}

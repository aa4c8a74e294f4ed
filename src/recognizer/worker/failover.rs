//! A failed GPU attempt: its breaker hears of it, and the request moves to another GPU or the
//! CPU lane.

use std::sync::atomic::Ordering;
use std::time::Instant;

use crate::recognizer::isolation::LaneFailure;
use crate::recognizer::ticket::Outcome;
use crate::recognizer::{lock, Backend, Job, Shared};

/// A lane must stay up while another lane's GPU workers still have requests that may fail
/// over to it (to another GPU, or to the CPU).
pub(super) fn retry_possible(
    shared: &Shared,
    lane: usize,
    queues: &crate::recognizer::Queues,
) -> bool {
    shared.lanes.iter().enumerate().any(|(other, l)| {
        other != lane
            && l.is_gpu()
            && (!queues.lanes[other].is_empty() || l.busy.load(Ordering::Relaxed) > 0)
    })
}

/// A GPU attempt failed: count it, feed that GPU's breaker, and hand the request to another
/// GPU it has not failed on (least loaded, breaker permitting), else to the CPU lane if there
/// is one. Returns the job and its outcome when it cannot be retried.
pub(super) fn gpu_failed(
    shared: &Shared,
    lane: usize,
    mut job: Job,
    error: LaneFailure,
) -> Option<(Job, Outcome)> {
    let kind = shared.lanes[lane].kind;
    shared.counters.gpu_failures.fetch_add(1, Ordering::Relaxed);
    if let Some(breaker) = &shared.lanes[lane].breaker {
        let mut breaker = lock(breaker);
        if breaker.record_failure(Instant::now()) {
            log::warn!(
                target: "whisper_steady::recognizer",
                "{kind}: circuit breaker open after {} consecutive failures (last: {error}); \
                 requests go elsewhere for {:?}",
                breaker.consecutive_failures(),
                shared.config.breaker_cooldown
            );
        }
    }
    job.tried |= 1 << lane;
    let mut queues = lock(&shared.queues);
    let others = shared.gpu_lanes_by_load(&queues, job.tried);
    let (target, counter) = match shared.pick_gpu(&others, Instant::now()) {
        Some(other) => (other, &shared.counters.retried_on_gpu),
        None => match shared.cpu_lane() {
            Some(cpu) => {
                job.retried_on_cpu = true;
                (cpu, &shared.counters.retried)
            }
            None => {
                return Some((job, Err(error.into_error(Backend::Gpu))));
            }
        },
    };
    log::warn!(
        target: "whisper_steady::recognizer",
        "request {} failed on {kind} ({error}); retrying it on {}",
        job.id,
        shared.lanes[target].kind
    );
    job.enqueued = Instant::now();
    counter.fetch_add(1, Ordering::Relaxed);
    // A retry goes first and is not subject to the queue limit: it was accepted already.
    // Workers of the other lanes stay up while GPU workers run (see `retry_possible`), so it
    // runs even during shutdown.
    queues.lanes[target].push_front(job);
    drop(queues);
    shared.ready[target].notify_one();
    None
}

/// A request that ended without a verdict on its lane releases a probe slot it held.
pub(super) fn neutral(shared: &Shared, lane: usize) {
    if let Some(breaker) = &shared.lanes[lane].breaker {
        lock(breaker).record_neutral();
    }
}

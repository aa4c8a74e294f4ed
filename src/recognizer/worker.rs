//! One worker thread: takes requests from its lane's queue and runs them on its own state.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Instant;

use super::config::fitted_audio_ctx;
use super::ticket::Outcome;
use super::transcript::centis;
use super::{lock, Backend, FaultSite, Job, RecognizeError, Segment, Shared, Token, Transcript};
use crate::{FullParams, SamplingStrategy, WhisperError, WhisperState};

/// How an attempt ended.
enum Attempt {
    Done(Transcript),
    /// whisper.cpp failed, and neither the caller nor the deadline asked it to stop.
    Failed(WhisperError),
    Cancelled,
    DeadlineExceeded,
}

/// The worker's loop, until the recognizer closes and its lane's queue is empty.
pub(super) fn run(shared: Arc<Shared>, lane: usize, worker: usize, mut state: WhisperState) {
    while let Some(job) = next_job(&shared, lane) {
        // Counted busy (by `next_job`) from the moment the request leaves the queue until it
        // is finished or handed to the CPU lane, so the CPU lane never stops under a retry.
        handle(&shared, lane, worker, &mut state, job);
        {
            let _queues = lock(&shared.queues);
            shared.lanes[lane].busy.fetch_sub(1, Ordering::Relaxed);
        }
        if lane == 0 && shared.lanes.len() > 1 {
            // A CPU lane waiting to shut down rechecks whether a retry may still come.
            shared.ready[1].notify_all();
        }
    }
}

fn handle(shared: &Shared, lane: usize, worker: usize, state: &mut WhisperState, mut job: Job) {
    let started = Instant::now();
    job.timings.queued += started - job.enqueued;
    let backend = shared.lanes[lane].backend;

    let attempt = if job.slot.is_cancelled() {
        Attempt::Cancelled
    } else if job.deadline.is_some_and(|(at, _)| started >= at) {
        Attempt::DeadlineExceeded
    } else {
        let attempt = attempt(shared, lane, worker, state, &job);
        job.timings.processing += started.elapsed();
        attempt
    };

    let outcome: Outcome = match attempt {
        Attempt::Done(mut transcript) => {
            shared.lanes[lane].succeeded.fetch_add(1, Ordering::Relaxed);
            if backend == Backend::Gpu {
                lock(&shared.breaker).record_success();
            }
            transcript.retried_on_cpu = job.retried_on_cpu;
            transcript.timings = job.timings;
            transcript.timings.total = job.submitted.elapsed();
            Ok(transcript)
        }
        Attempt::Cancelled => {
            neutral(shared, backend);
            Err(RecognizeError::Cancelled)
        }
        Attempt::DeadlineExceeded => {
            neutral(shared, backend);
            Err(RecognizeError::DeadlineExceeded {
                deadline: job.deadline.map(|(_, d)| d).unwrap_or_default(),
            })
        }
        Attempt::Failed(error) => {
            shared.lanes[lane].failed.fetch_add(1, Ordering::Relaxed);
            // The state may be left broken by whatever failed (a device error): start afresh.
            match shared.lanes[lane].ctx.create_state() {
                Ok(fresh) => *state = fresh,
                Err(e) => log::warn!(
                    target: "whisper_steady::recognizer",
                    "{backend} worker {worker}: cannot renew its state after a failure ({e}); \
                     keeping the old one"
                ),
            }
            if backend == Backend::Gpu {
                match gpu_failed(shared, job, error) {
                    None => return, // retried on the CPU: the request lives on
                    Some((returned, outcome)) => {
                        job = returned;
                        outcome
                    }
                }
            } else {
                Err(RecognizeError::Failed { backend, error })
            }
        }
    };
    finish(shared, &job, outcome);
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
        queues = shared.ready[lane]
            .wait(queues)
            .unwrap_or_else(|p| p.into_inner());
    }
}

/// A CPU lane must stay up while GPU workers still run requests that may fail over to it.
fn retry_possible(shared: &Shared, lane: usize, queues: &super::Queues) -> bool {
    lane == 1 && (!queues.lanes[0].is_empty() || shared.lanes[0].busy.load(Ordering::Relaxed) > 0)
}

/// A GPU attempt failed: count it, feed the breaker, and hand the request to the CPU lane if
/// there is one. Returns the job and its outcome when it cannot be retried.
fn gpu_failed(shared: &Shared, mut job: Job, error: WhisperError) -> Option<(Job, Outcome)> {
    shared.counters.gpu_failures.fetch_add(1, Ordering::Relaxed);
    let opened = lock(&shared.breaker).record_failure(Instant::now());
    if opened {
        log::warn!(
            target: "whisper_steady::recognizer",
            "GPU circuit breaker open after {} consecutive failures (last: {error}); requests go \
             to the CPU for {:?}",
            lock(&shared.breaker).consecutive_failures(),
            shared.config.breaker_cooldown
        );
    }
    let Some(cpu) = shared.cpu_lane() else {
        return Some((
            job,
            Err(RecognizeError::Failed {
                backend: Backend::Gpu,
                error,
            }),
        ));
    };
    log::warn!(
        target: "whisper_steady::recognizer",
        "request {} failed on the GPU ({error}); retrying it on the CPU",
        job.id
    );
    job.retried_on_cpu = true;
    job.enqueued = Instant::now();
    shared.counters.retried.fetch_add(1, Ordering::Relaxed);
    // A retry goes first and is not subject to the queue limit: it was accepted already.
    // Workers of the CPU lane stay up while GPU workers run (see `retry_possible`), so it runs
    // even during shutdown.
    lock(&shared.queues).lanes[cpu].push_front(job);
    shared.ready[cpu].notify_one();
    None
}

fn neutral(shared: &Shared, backend: Backend) {
    if backend == Backend::Gpu {
        lock(&shared.breaker).record_neutral();
    }
}

/// Counts the outcome and hands it to the caller.
fn finish(shared: &Shared, job: &Job, outcome: Outcome) {
    let counter = match &outcome {
        Ok(_) => &shared.counters.completed,
        Err(RecognizeError::Cancelled) => &shared.counters.cancelled,
        Err(RecognizeError::DeadlineExceeded { .. }) => &shared.counters.deadline,
        Err(_) => &shared.counters.failed,
    };
    counter.fetch_add(1, Ordering::Relaxed);
    job.slot.complete(outcome);
}

/// One run of whisper.cpp for a request on this worker's state.
fn attempt(
    shared: &Shared,
    lane: usize,
    worker: usize,
    state: &mut WhisperState,
    job: &Job,
) -> Attempt {
    let backend = shared.lanes[lane].backend;
    let injected = shared
        .config
        .fault_injection
        .as_ref()
        .and_then(|f| f.fail_attempt.as_ref())
        .is_some_and(|fail| {
            fail(FaultSite {
                backend,
                worker,
                request: job.id,
            })
        });

    let options = &job.options;
    let strategy = match options.beam_size {
        Some(beams) if beams > 1 => SamplingStrategy::BeamSearch {
            beam_size: beams as i32,
            patience: -1.0,
        },
        _ => SamplingStrategy::Greedy { best_of: 5 },
    };
    let mut params = FullParams::new(strategy);
    params.set_n_threads(shared.config.threads_per_worker.min(i32::MAX as usize) as i32);
    params.set_language(Some(&job.language));
    params.set_translate(options.translate);
    // Requests are independent: no text of an earlier request may steer this one.
    params.set_no_context(true);
    params.set_print_progress(false);
    params.set_print_realtime(false);
    params.set_print_special(false);
    params.set_print_timestamps(false);
    params.set_token_timestamps(options.token_timestamps);
    let fitted = || {
        let n_audio_ctx = shared.lanes[lane].ctx.n_audio_ctx().max(0) as u32;
        fitted_audio_ctx(job.audio.len(), n_audio_ctx)
    };
    let audio_ctx = options
        .audio_ctx
        .or_else(|| shared.config.fit_audio_ctx.then(fitted).flatten());
    if let Some(frames) = audio_ctx {
        params.set_audio_ctx(frames as i32);
    }
    if let Some(t) = options.temperature {
        params.set_temperature(t);
    }
    if let Some(prompt) = &options.initial_prompt {
        params.set_initial_prompt(prompt);
    }
    let slot = Arc::clone(&job.slot);
    let deadline = job.deadline.map(|(at, _)| at);
    params.set_abort_callback_safe(move || {
        injected || slot.is_cancelled() || deadline.is_some_and(|at| Instant::now() >= at)
    });

    match state.full(params, &job.audio) {
        Ok(()) => Attempt::Done(collect(shared, lane, state)),
        Err(_) if job.slot.is_cancelled() => Attempt::Cancelled,
        Err(_) if deadline.is_some_and(|at| Instant::now() >= at) => Attempt::DeadlineExceeded,
        Err(error) => Attempt::Failed(error),
    }
}

/// Copies the state's results into an owned transcript.
fn collect(shared: &Shared, lane: usize, state: &WhisperState) -> Transcript {
    let ctx = &shared.lanes[lane].ctx;
    let first_special = ctx.token_eot();
    let segments: Vec<Segment> = state
        .as_iter()
        .map(|segment| {
            let tokens = (0..segment.n_tokens())
                .filter_map(|i| segment.get_token(i))
                .map(|token| {
                    let data = token.token_data();
                    Token {
                        id: data.id,
                        text: token
                            .to_str_lossy()
                            .map(|t| t.into_owned())
                            .unwrap_or_default(),
                        p: data.p,
                        plog: data.plog,
                        start: centis(data.t0),
                        end: centis(data.t1),
                        special: data.id >= first_special,
                    }
                })
                .collect();
            Segment {
                start: centis(segment.start_timestamp()),
                end: centis(segment.end_timestamp()),
                text: segment
                    .to_str_lossy()
                    .map(|t| t.into_owned())
                    .unwrap_or_default(),
                no_speech_probability: segment.no_speech_probability(),
                speaker_turn_next: segment.next_segment_speaker_turn(),
                tokens,
            }
        })
        .collect();
    let text = segments
        .iter()
        .map(|s| s.text.as_str())
        .collect::<String>()
        .trim()
        .to_owned();
    let language = crate::get_lang_str(state.full_lang_id_from_state())
        .unwrap_or("unknown")
        .to_owned();
    Transcript {
        text,
        segments,
        language,
        backend: shared.lanes[lane].backend,
        retried_on_cpu: false,
        timings: Default::default(),
    }
}

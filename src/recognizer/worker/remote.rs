//! One attempt in the lane's worker process: the request goes over the socket, its segments and
//! its end come back. The process's death is a failed attempt like any other.

use std::sync::mpsc::RecvTimeoutError;
use std::time::{Duration, Instant};

use super::attempt::Attempt;
use crate::recognizer::faults::FaultSite;
use crate::recognizer::isolation::{remaining, LaneFailure, Reply, Supervisor, WireError};
use crate::recognizer::{lock, Job, RecognizeError, Shared};

/// How often a waiting worker looks at its request's cancellation.
const POLL: Duration = Duration::from_millis(20);

pub(super) fn attempt(
    shared: &Shared,
    lane: usize,
    worker: usize,
    process: &Supervisor,
    job: &Job,
) -> Attempt {
    let kind = shared.lanes[lane].kind;
    let deadline = job.deadline.map(|(at, _)| at);
    let cancelled = || job.slot.is_cancelled();
    let late = || deadline.is_some_and(|at| Instant::now() >= at);
    let stopped = || {
        if cancelled() {
            Some(Attempt::Cancelled)
        } else if late() {
            Some(Attempt::DeadlineExceeded)
        } else {
            None
        }
    };
    // A GPU lane with somewhere to fail over to does not wait for its process to come back.
    let wait = !(shared.lanes[lane].is_gpu() && shared.lanes.len() > 1);
    let connection = match process.connection(wait, &|| cancelled() || late()) {
        Ok(c) => c,
        Err(why) => return stopped().unwrap_or(Attempt::Failed(LaneFailure::Worker(why))),
    };
    let site = FaultSite {
        backend: kind.backend(),
        device: kind.device(),
        worker,
        request: job.id,
    };
    let abort_inside = shared.config.abort_process(site);
    let mut options = job.options.clone();
    // The worker's recognizer has one lane: this one.
    options.use_gpu = None;
    options.deadline = remaining(deadline);
    if options.deadline.is_some_and(|d| d.is_zero()) {
        return Attempt::DeadlineExceeded;
    }
    let stream = job.segments.is_some();
    let (id, replies) = match connection.submit(options, &job.audio, stream, abort_inside) {
        Ok(sent) => sent,
        Err(why) => return Attempt::Failed(LaneFailure::Worker(why)),
    };
    let mut cancel_sent = false;
    loop {
        match replies.recv_timeout(POLL) {
            Ok(Reply::Segment(s)) => {
                if let Some(segments) = &job.segments {
                    lock(segments).offer(s.index, s.start, s.end, s.text);
                }
            }
            Ok(Reply::Done(mut transcript)) => {
                transcript.backend = kind.backend();
                return Attempt::Done(transcript);
            }
            Ok(Reply::Error(error)) => {
                return match error {
                    WireError::Cancelled => Attempt::Cancelled,
                    WireError::DeadlineExceeded => Attempt::DeadlineExceeded,
                    WireError::InvalidAudio(why) => {
                        Attempt::Refused(RecognizeError::InvalidAudio(why))
                    }
                    WireError::InvalidOptions(why) => {
                        Attempt::Refused(RecognizeError::InvalidOptions(why))
                    }
                    WireError::Whisper {
                        code: Some(code), ..
                    } => Attempt::Failed(LaneFailure::Whisper(crate::WhisperError::GenericError(
                        code,
                    ))),
                    WireError::Whisper { text, .. } | WireError::Other(text) => {
                        Attempt::Failed(LaneFailure::Worker(text))
                    }
                }
            }
            Ok(Reply::Died(cause)) => {
                return stopped().unwrap_or(Attempt::Failed(LaneFailure::Worker(cause)))
            }
            // Answers to trims and statistics go to their own callers, never here.
            Ok(Reply::Trimmed(_) | Reply::PoolStats(_)) => {}
            Err(RecvTimeoutError::Timeout) => {
                if cancelled() && !cancel_sent {
                    connection.cancel(id);
                    cancel_sent = true;
                }
            }
            Err(RecvTimeoutError::Disconnected) => {
                return Attempt::Failed(LaneFailure::Worker("its answer was lost".into()))
            }
        }
    }
}

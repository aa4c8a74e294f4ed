//! The worker process's side: a one-lane [`Recognizer`] that serves the requests its parent
//! forwards, until the parent's end of the socket closes.

use std::collections::HashMap;
use std::io::{BufReader, BufWriter};
use std::os::fd::FromRawFd;
use std::os::unix::net::UnixStream;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use super::wire::{self, Frame, FromWorker, ToWorker, WireError, WorkerConfig};
use super::{Isolation, FD_ENV, PARENT_ENV};
use crate::recognizer::{lock, RecognizeError, Recognizer, RecognizerConfig, Ticket};

/// Exit status of a worker that could not start its recognizer.
const START_FAILED: i32 = 3;
/// Exit status of a worker whose parent went away or broke the protocol.
const PARENT_GONE: i32 = 4;

/// The test hook's flag: the next attempt aborts the process inside whisper.cpp.
#[cfg(feature = "fault-injection")]
static ABORT_NEXT: AtomicBool = AtomicBool::new(false);

/// In a worker process started by a recognizer with process isolation, serves it and exits;
/// anywhere else returns at once. Call it first thing in `main` of every program whose
/// recognizers may isolate (the default [`WorkerProgram`](super::WorkerProgram) is the running
/// executable):
///
/// ```no_run
/// // first thing in `main`:
/// whisper_steady::recognizer::run_worker_if_child();
/// // ... the program as usual
/// ```
pub fn run_worker_if_child() {
    let Some(fd) = std::env::var(FD_ENV)
        .ok()
        .and_then(|v| v.parse::<i32>().ok())
    else {
        return;
    };
    let parent = std::env::var(PARENT_ENV)
        .ok()
        .and_then(|v| v.parse::<u32>().ok());
    // The parent may have died before the death signal was armed (see the supervisor).
    if parent.is_some_and(|p| p != std::os::unix::process::parent_id()) {
        std::process::exit(PARENT_GONE);
    }
    super::logs::install_in_worker();
    // SAFETY: the parent passed this descriptor, open and ours alone, for this purpose.
    let socket = unsafe { UnixStream::from_raw_fd(fd) };
    std::process::exit(serve(socket));
}

/// The requests in flight: their tickets' cancel flags.
type InFlight = Arc<Mutex<HashMap<u64, Arc<AtomicBool>>>>;

fn serve(socket: UnixStream) -> i32 {
    let Ok(write_half) = socket.try_clone() else {
        return PARENT_GONE;
    };
    let out = Arc::new(Mutex::new(BufWriter::new(write_half)));
    let mut input = BufReader::new(socket);
    let config = match wire::receive::<ToWorker>(&mut input) {
        Ok(Some(Frame::Message(ToWorker::Start(config)))) => config,
        _ => return PARENT_GONE,
    };
    let hello = FromWorker::Hello {
        pid: std::process::id(),
    };
    if wire::send(&mut *lock(&out), &hello).is_err() {
        return PARENT_GONE;
    }
    let recognizer = match Recognizer::new(recognizer_config(config)) {
        Ok(r) => r,
        Err(e) => {
            let _ = wire::send(
                &mut *lock(&out),
                &FromWorker::StartFailed {
                    reason: e.to_string(),
                },
            );
            return START_FAILED;
        }
    };
    let ready = FromWorker::Ready {
        pid: std::process::id(),
    };
    if wire::send(&mut *lock(&out), &ready).is_err() {
        return PARENT_GONE;
    }
    let in_flight: InFlight = Arc::default();
    loop {
        match wire::receive::<ToWorker>(&mut input) {
            Ok(Some(Frame::Message(ToWorker::Request {
                id,
                options,
                stream,
                abort_inside,
            }))) => {
                let audio = match wire::receive::<ToWorker>(&mut input) {
                    Ok(Some(Frame::Audio(audio))) => audio,
                    _ => return PARENT_GONE,
                };
                #[cfg(feature = "fault-injection")]
                if abort_inside {
                    ABORT_NEXT.store(true, Ordering::SeqCst);
                }
                let _ = abort_inside;
                start(&recognizer, &out, &in_flight, id, audio, options, stream);
            }
            Ok(Some(Frame::Message(ToWorker::Cancel { id }))) => {
                if let Some(cancel) = lock(&in_flight).get(&id) {
                    cancel.store(true, Ordering::Relaxed);
                }
            }
            Ok(Some(Frame::Message(ToWorker::Trim { id }))) => {
                // A trim waits for the pools' streams: not on the thread that reads requests.
                let (recognizer, out) = (recognizer.clone(), Arc::clone(&out));
                let _ = std::thread::Builder::new()
                    .name("whisper-worker-trim".into())
                    .spawn(move || {
                        let report = recognizer.trim();
                        let _ = wire::send(&mut *lock(&out), &FromWorker::Trimmed { id, report });
                    });
            }
            Ok(Some(Frame::Message(ToWorker::PoolStats { id }))) => {
                let stats = crate::cuda::pool_stats();
                let _ = wire::send(&mut *lock(&out), &FromWorker::PoolStats { id, stats });
            }
            // The parent closed its end (or sent nonsense): finish what runs, then go.
            _ => {
                recognizer.shutdown();
                return 0;
            }
        }
    }
}

/// The one-lane recognizer a worker runs: the parent's settings for this lane, threads (no
/// isolation within), no CPU fallback (the parent has it), no deadline of its own (each
/// request brings what is left of its own).
fn recognizer_config(config: WorkerConfig) -> RecognizerConfig {
    let mut c = RecognizerConfig::new(config.model_path);
    c.use_gpu = config.gpu.is_some();
    c.require_gpu = config.gpu.is_some();
    c.fallback_to_cpu = false;
    c.gpu_device = config.gpu.unwrap_or(0);
    c.gpu_devices = crate::recognizer::GpuDevices::Single;
    c.flash_attn = config.flash_attn;
    c.fit_audio_ctx = config.fit_audio_ctx;
    c.vad_model = config.vad_model;
    c.chunk_states = config.chunk_states;
    c.long_audio = config.long_audio;
    c.workers = config.workers;
    c.threads_per_worker = config.threads_per_worker;
    c.cpu_workers = 0;
    // The parent queues; this queue holds at most what the parent's workers forwarded.
    c.queue_limit = config.workers * 2;
    c.idle_trim_after = config.idle_trim_after;
    c.detect_languages = config.detect_languages;
    c.isolation = Isolation::Thread;
    #[cfg(feature = "fault-injection")]
    {
        let mut faults = crate::recognizer::FaultInjection::new();
        faults.abort_process = Some(Arc::new(|_| ABORT_NEXT.swap(false, Ordering::SeqCst)));
        c.fault_injection = Some(faults);
    }
    c
}

/// Submits a request and answers it from a thread of its own when it is done.
fn start(
    recognizer: &Recognizer,
    out: &Arc<Mutex<BufWriter<UnixStream>>>,
    in_flight: &InFlight,
    id: u64,
    audio: Vec<f32>,
    options: crate::recognizer::RecognizeOptions,
    stream: bool,
) {
    let submitted = if stream {
        let out = Arc::clone(out);
        recognizer.submit_streaming(audio, options, move |segment| {
            let _ = wire::send(&mut *lock(&out), &FromWorker::Segment { id, segment });
        })
    } else {
        recognizer.submit(audio, options)
    };
    let mut ticket = match submitted {
        Ok(ticket) => ticket,
        Err(e) => {
            let error = wire_error(e);
            let _ = wire::send(&mut *lock(out), &FromWorker::Error { id, error });
            return;
        }
    };
    let cancel = Arc::new(AtomicBool::new(false));
    lock(in_flight).insert(id, Arc::clone(&cancel));
    let (out, in_flight) = (Arc::clone(out), Arc::clone(in_flight));
    let answer = move || {
        let outcome = wait(&mut ticket, &cancel);
        lock(&in_flight).remove(&id);
        let message = match outcome {
            Ok(transcript) => FromWorker::Done { id, transcript },
            Err(e) => FromWorker::Error {
                id,
                error: wire_error(e),
            },
        };
        let _ = wire::send(&mut *lock(&out), &message);
    };
    if let Err(e) = std::thread::Builder::new()
        .name(format!("whisper-worker-reply-{id}"))
        .spawn(answer)
    {
        log::error!(target: "whisper_steady::recognizer", "worker: cannot start a thread: {e}");
    }
}

/// Waits for a ticket, cancelling it when the parent asks.
fn wait(
    ticket: &mut Ticket,
    cancel: &AtomicBool,
) -> Result<crate::recognizer::Transcript, RecognizeError> {
    loop {
        if let Some(outcome) = ticket.wait_timeout(Duration::from_millis(20)) {
            return outcome;
        }
        if cancel.load(Ordering::Relaxed) {
            ticket.cancel();
        }
    }
}

fn wire_error(e: RecognizeError) -> WireError {
    match e {
        RecognizeError::Cancelled => WireError::Cancelled,
        RecognizeError::DeadlineExceeded { .. } => WireError::DeadlineExceeded,
        RecognizeError::InvalidAudio(why) => WireError::InvalidAudio(why),
        RecognizeError::InvalidOptions(why) => WireError::InvalidOptions(why),
        RecognizeError::Failed { error, .. } => WireError::Whisper {
            code: match error {
                crate::WhisperError::GenericError(code) => Some(code),
                _ => None,
            },
            text: error.to_string(),
        },
        other => WireError::Other(other.to_string()),
    }
}

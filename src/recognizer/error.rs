//! The errors of the recognizer: starting one, and running a request.

use std::fmt;
use std::path::PathBuf;
use std::time::Duration;

use super::Backend;
use crate::WhisperError;

/// Why a [`Recognizer`](super::Recognizer) could not start.
#[derive(Debug)]
#[non_exhaustive]
pub enum RecognizerError {
    /// A configuration value is out of range; the message names it.
    InvalidConfig(String),
    /// The model file could not be loaded.
    ModelLoad {
        /// The path from the configuration.
        path: PathBuf,
        /// What whisper.cpp reported.
        error: WhisperError,
    },
    /// The VAD model (`vad_model`) could not be loaded.
    VadModelLoad {
        /// The path from the configuration.
        path: PathBuf,
        /// What whisper.cpp reported.
        error: WhisperError,
    },
    /// `use_gpu` is set, `fallback_to_cpu` is not, and no GPU context could be created.
    GpuUnavailable {
        /// Why (no device in this build, or the error of the GPU context).
        reason: String,
    },
    /// A worker state (its buffers) could not be created.
    StateInit {
        /// Where.
        backend: Backend,
        /// What whisper.cpp reported.
        error: WhisperError,
    },
    /// A worker thread could not be spawned.
    Spawn(std::io::Error),
    /// The worker process of the CPU lane (isolation `process` without a GPU lane) did not
    /// start; a GPU lane's that does not start leaves that GPU out, as its context would.
    WorkerProcess {
        /// Why: the program did not start or answer, or the model did not load in it.
        reason: String,
    },
}

impl fmt::Display for RecognizerError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RecognizerError::InvalidConfig(why) => {
                write!(f, "invalid recognizer configuration: {why}")
            }
            RecognizerError::ModelLoad { path, error } => {
                write!(f, "cannot load the model {}: {error}", path.display())
            }
            RecognizerError::VadModelLoad { path, error } => write!(
                f,
                "cannot load the VAD model {} ({error}): give a Silero VAD model in ggml \
                 format (scripts/fetch-vad-model.sh, or whisper-steady convert-silero)",
                path.display()
            ),
            RecognizerError::GpuUnavailable { reason } => write!(
                f,
                "use_gpu is set but no GPU context could be created ({reason}); set \
                 fallback_to_cpu to run on the CPU instead"
            ),
            RecognizerError::StateInit { backend, error } => {
                write!(f, "cannot create a {backend} worker state: {error}")
            }
            RecognizerError::Spawn(e) => write!(f, "cannot start a worker thread: {e}"),
            RecognizerError::WorkerProcess { reason } => {
                write!(f, "cannot start the worker process: {reason}")
            }
        }
    }
}

impl std::error::Error for RecognizerError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            RecognizerError::ModelLoad { error, .. } | RecognizerError::StateInit { error, .. } => {
                Some(error)
            }
            RecognizerError::Spawn(e) => Some(e),
            _ => None,
        }
    }
}

/// Why a request produced no transcript.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub enum RecognizeError {
    /// The queue already holds `queue_limit` waiting requests; nothing was queued. Retry later.
    Overloaded {
        /// The configured limit.
        queue_limit: usize,
    },
    /// The request's deadline passed, while queued or while running (then it was aborted).
    DeadlineExceeded {
        /// The deadline it had, counted from submission.
        deadline: Duration,
    },
    /// The caller cancelled the request (or dropped its [`Ticket`](super::Ticket)).
    Cancelled,
    /// The audio cannot be transcribed (empty, too long, or not finite numbers).
    InvalidAudio(String),
    /// An option is out of range or does not fit the model; the message names it.
    InvalidOptions(String),
    /// The recognizer is shutting down and takes no new requests.
    ShuttingDown,
    /// whisper.cpp failed the transcription (on the CPU, or on the GPU with no CPU to retry on,
    /// or on both).
    Failed {
        /// The backend of the last attempt.
        backend: Backend,
        /// What whisper.cpp returned.
        error: WhisperError,
    },
    /// The worker process running the request died (or failed in a way it could not say
    /// more of), and no other lane was left to retry it on, or it died there too.
    WorkerFailed {
        /// The backend of the last attempt.
        backend: Backend,
        /// How the process ended: its signal or exit status and the last lines it wrote.
        cause: String,
    },
}

impl fmt::Display for RecognizeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RecognizeError::Overloaded { queue_limit } => write!(
                f,
                "overloaded: {queue_limit} requests are already waiting; retry later"
            ),
            RecognizeError::DeadlineExceeded { deadline } => {
                write!(f, "deadline of {deadline:?} exceeded")
            }
            RecognizeError::Cancelled => write!(f, "cancelled"),
            RecognizeError::InvalidAudio(why) => write!(f, "invalid audio: {why}"),
            RecognizeError::InvalidOptions(why) => write!(f, "invalid options: {why}"),
            RecognizeError::ShuttingDown => write!(f, "the recognizer is shutting down"),
            RecognizeError::Failed { backend, error } => {
                write!(f, "transcription failed on the {backend}: {error}")
            }
            RecognizeError::WorkerFailed { backend, cause } => {
                write!(f, "the {backend} worker process failed: {cause}")
            }
        }
    }
}

impl std::error::Error for RecognizeError {}

//! Worker processes: a lane's whisper contexts in a child process, so that a native failure
//! (a `GGML_ASSERT`, a CUDA error that ggml turns into `abort()`, a segfault, the kernel's
//! out-of-memory killer) kills that child and not the server. The recognizer's failover treats
//! the death as a failed attempt: the requests it ran go to another lane (or, on a lone lane,
//! back to the same one once its worker process is up again), the breaker hears of it, and a
//! supervisor thread starts the child again with back-off.
//!
//! ```text
//!  parent process (server, CLI, your program)              child process per isolated lane
//!  ─────────────────────────────────────────              ───────────────────────────────
//!  Recognizer ── queue ── lane gpu0: N worker threads ══ socket ══ worker: Recognizer, one lane
//!                  │          (each forwards a request,            (the model loaded once,
//!                  │           waits for its result)                N states, VAD, chunks)
//!                  │      supervisor thread: starts, reads,
//!                  │      reaps, restarts (back-off)
//!                  └──── lane cpu: N worker threads, in process (the failover target)
//! ```
//!
//! The child is the same program started again ([`WorkerProgram`]; by default the running
//! executable), which must call [`run_worker_if_child`] first thing in `main`: in a worker it
//! serves the parent and exits, elsewhere it returns at once. The child dies with its parent
//! (`PR_SET_PDEATHSIG` on Linux, and the end of its socket everywhere), so no orphan keeps GPU
//! memory. See `docs/robustness.md` for what is contained and what it costs.

// Worker processes need Unix (a socket pair, exec with the socket kept, the parent-death
// signal); elsewhere `Process` isolation is refused at start and the worker hook does nothing.
#[cfg(unix)]
mod child;
#[cfg(unix)]
mod logs;
#[cfg(unix)]
mod supervisor;
#[cfg(not(unix))]
mod unsupported;
// Without worker processes the protocol is only the types the stub names.
#[cfg_attr(not(unix), allow(dead_code))]
mod wire;

#[cfg(unix)]
pub use child::run_worker_if_child;
#[cfg(unix)]
pub(crate) use supervisor::Supervisor;
#[cfg(not(unix))]
pub use unsupported::run_worker_if_child;
#[cfg(not(unix))]
pub(crate) use unsupported::Supervisor;
pub(crate) use wire::{WireError, WorkerConfig};

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use crate::recognizer::{DecodedSegment, Transcript};

/// Set by the parent in the worker's environment: the socket's file descriptor.
pub(crate) const FD_ENV: &str = "WHISPER_STEADY_WORKER_FD";
/// Set by the parent in the worker's environment: its process id, to notice having been
/// orphaned before the death signal was armed.
#[cfg_attr(not(unix), allow(dead_code))]
pub(crate) const PARENT_ENV: &str = "WHISPER_STEADY_WORKER_PARENT";

/// Whether this process was started as a worker and did not call [`run_worker_if_child`]
/// (then it must not start worker processes of its own).
pub(crate) fn is_unserved_child() -> bool {
    std::env::var_os(FD_ENV).is_some()
}

/// Where a lane's whisper contexts run ([`RecognizerConfig::isolation`](super::RecognizerConfig::isolation)).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Isolation {
    /// [`Process`](Self::Process) when a GPU lane runs, else [`Thread`](Self::Thread): a GPU
    /// is where native failures come from; on the CPU a child process would only cost time.
    /// Without Unix (no worker processes there): [`Thread`](Self::Thread).
    #[default]
    Auto,
    /// Every lane's workers are threads of this process (the behaviour before isolation): a
    /// native failure in whisper.cpp or ggml ends the process.
    Thread,
    /// Each GPU lane runs in a child process (on a machine without a GPU lane, the CPU lane
    /// does); the CPU fallback lane beside GPU lanes stays in this process, as the refuge of
    /// the requests of a worker process that died.
    Process,
}

impl Isolation {
    /// `"auto"`, `"thread"` or `"process"`.
    pub fn as_str(self) -> &'static str {
        match self {
            Isolation::Auto => "auto",
            Isolation::Thread => "thread",
            Isolation::Process => "process",
        }
    }
}

impl std::fmt::Display for Isolation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::str::FromStr for Isolation {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "auto" => Ok(Isolation::Auto),
            "thread" => Ok(Isolation::Thread),
            "process" => Ok(Isolation::Process),
            other => Err(format!(
                "unknown isolation {other:?}: use \"auto\", \"thread\" or \"process\""
            )),
        }
    }
}

/// The program started as a worker process, and its arguments. The program must call
/// [`run_worker_if_child`] before anything else in `main` (a test binary: in a test it runs,
/// see the crate's tests).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WorkerProgram {
    /// The executable.
    pub program: PathBuf,
    /// Its arguments (the worker is recognized by its environment, not by them).
    pub args: Vec<OsString>,
    /// Variables set in its environment besides this process's (which it inherits), e.g.
    /// `WHISPER_STEADY_CUDA_POOL_MAX_BYTES` for its pools only.
    pub env: Vec<(OsString, OsString)>,
}

/// On Linux, the file the running process was started from, even once it is deleted or
/// replaced on disk.
const THIS_PROCESS_FILE: &str = "/proc/self/exe";

impl WorkerProgram {
    /// The running executable, without arguments (the default). On Linux it is started through
    /// `/proc/self/exe`, the very file this process runs, so a binary replaced on disk while it
    /// runs (an upgrade in place) still starts workers, of its own version; elsewhere through
    /// its path.
    pub fn current_exe() -> std::io::Result<Self> {
        let path = std::env::current_exe()?;
        let program = if cfg!(target_os = "linux") && Path::new(THIS_PROCESS_FILE).exists() {
            PathBuf::from(THIS_PROCESS_FILE)
        } else {
            path
        };
        Ok(WorkerProgram {
            program,
            args: Vec::new(),
            env: Vec::new(),
        })
    }

    /// Its name in messages and as the worker's `argv[0]`: the running executable's path in
    /// place of `/proc/self/exe`.
    fn name(&self) -> std::ffi::OsString {
        if self.program == Path::new(THIS_PROCESS_FILE) {
            if let Ok(path) = std::env::current_exe() {
                return path.into_os_string();
            }
        }
        self.program.clone().into_os_string()
    }
}

/// Why an attempt failed on its lane: whisper.cpp's error, or the worker process's end.
#[derive(Debug, Clone)]
pub(crate) enum LaneFailure {
    /// whisper.cpp returned an error (in this process or in the worker's).
    Whisper(crate::WhisperError),
    /// The worker process died (its signal or exit status and the last lines it wrote), or
    /// failed in a way its error does not say more of, or is being started again.
    Worker(String),
}

impl std::fmt::Display for LaneFailure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            LaneFailure::Whisper(e) => e.fmt(f),
            LaneFailure::Worker(why) => write!(f, "worker process: {why}"),
        }
    }
}

impl LaneFailure {
    /// The request's error when no lane is left to retry it on.
    pub(crate) fn into_error(self, backend: super::Backend) -> super::RecognizeError {
        match self {
            LaneFailure::Whisper(error) => super::RecognizeError::Failed { backend, error },
            LaneFailure::Worker(cause) => super::RecognizeError::WorkerFailed { backend, cause },
        }
    }

    /// Whether the worker process died (rather than whisper.cpp returning an error).
    pub(crate) fn is_death(&self) -> bool {
        matches!(self, LaneFailure::Worker(_))
    }
}

/// What a waiting worker thread receives about its request.
#[cfg_attr(not(unix), allow(dead_code))]
pub(crate) enum Reply {
    Segment(DecodedSegment),
    Done(Transcript),
    Error(WireError),
    /// The worker process ended: why.
    Died(String),
    /// The answer to a trim.
    Trimmed(crate::cuda::TrimReport),
    /// The answer to a question for pool statistics.
    PoolStats(crate::cuda::PoolStats),
}

/// A worker process, as [`LaneHealth::process`](crate::recognizer::LaneHealth::process) reports
/// it.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct WorkerProcessHealth {
    /// Its process id while it runs.
    pub pid: Option<u32>,
    /// `"running"`, `"starting"`, `"restarting"` (waiting out its back-off) or `"closed"`.
    pub state: &'static str,
    /// Times it was started (the first start included).
    pub starts: u64,
    /// Times it died (killed, aborted, crashed or exited while serving) since the start.
    pub deaths: u64,
    /// Deaths in the last 10 minutes; 3 or more make the recognizer degraded.
    pub recent_deaths: usize,
    /// How the last one died: its signal or exit status and the last lines it wrote.
    pub last_cause: Option<String>,
}

/// Remaining time of an optional deadline, for the worker's copy of a request.
pub(crate) fn remaining(deadline: Option<Instant>) -> Option<Duration> {
    deadline.map(|at| at.saturating_duration_since(Instant::now()))
}

//! The recognizer's side of a worker process: a supervisor thread per isolated lane starts the
//! child, reads its answers and hands them to the worker threads waiting for them, notices its
//! end (EOF on the socket, then the exit status), fails the requests it held, and starts it
//! again with back-off. Every child is started from that one long-lived thread, because Linux's
//! parent-death signal follows the thread that forked.

use std::collections::{HashMap, VecDeque};
use std::io::{BufRead, BufReader, BufWriter};
use std::os::fd::AsRawFd;
use std::os::unix::net::UnixStream;
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::path::Path;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{self, Receiver, Sender};
use std::sync::{Arc, Condvar, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use super::logs;
use super::wire::{self, Frame, FromWorker, ToWorker, WorkerConfig};
use super::{Reply, FD_ENV, PARENT_ENV};
use super::{WorkerProcessHealth, WorkerProgram};
use crate::recognizer::{lock, RecognizeOptions};

/// How long a started child may take to say it is a worker.
const HELLO_TIMEOUT: Duration = Duration::from_secs(20);
/// How long it may take to load the model and make its states.
const READY_TIMEOUT: Duration = Duration::from_secs(600);
/// The first restart's delay; it doubles with each death soon after a start, up to the most.
const FIRST_BACKOFF: Duration = Duration::from_millis(250);
const MOST_BACKOFF: Duration = Duration::from_secs(30);
/// A child that ran this long before dying starts the back-off afresh.
const STABLE_AFTER: Duration = Duration::from_secs(60);
/// Deaths within this window that make the lane degraded.
const DEATH_WINDOW: Duration = Duration::from_secs(600);
const DEGRADED_AFTER_DEATHS: usize = 3;
/// Lines of a child's standard error kept for the report of its death.
const TAIL_LINES: usize = 20;
/// How long a child's trim may take (it waits for its pools' streams).
const TRIM_TIMEOUT: Duration = Duration::from_secs(30);
/// How long a child may take to tell its pools' statistics.
const STATS_TIMEOUT: Duration = Duration::from_millis(200);
/// How long a child may take to finish after its socket closed at shutdown.
const EXIT_GRACE: Duration = Duration::from_secs(5);

/// A running child: the socket to write requests on and the requests waiting for answers.
pub(crate) struct Connection {
    writer: Mutex<BufWriter<UnixStream>>,
    /// `None` once the child is gone (with why): nothing more can be sent.
    pending: Mutex<Result<HashMap<u64, Sender<Reply>>, String>>,
    next_id: AtomicU64,
}

impl Connection {
    /// Sends a request and its audio; the receiver gets its segments and its end.
    pub(crate) fn submit(
        &self,
        options: RecognizeOptions,
        audio: &[f32],
        stream: bool,
        abort_inside: bool,
    ) -> Result<(u64, Receiver<Reply>), String> {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let (tx, rx) = mpsc::channel();
        match &mut *lock(&self.pending) {
            Ok(pending) => pending.insert(id, tx),
            Err(why) => return Err(why.clone()),
        };
        let request = ToWorker::Request {
            id,
            options,
            stream,
            abort_inside,
        };
        let mut writer = lock(&self.writer);
        let sent =
            wire::send(&mut *writer, &request).and_then(|()| wire::send_audio(&mut *writer, audio));
        drop(writer);
        if let Err(e) = sent {
            if let Ok(pending) = &mut *lock(&self.pending) {
                pending.remove(&id);
            }
            return Err(format!("cannot send the request: {e}"));
        }
        Ok((id, rx))
    }

    /// Sends what `message` makes of a fresh id and waits up to `timeout` for its answer.
    fn call(&self, message: impl FnOnce(u64) -> ToWorker, timeout: Duration) -> Option<Reply> {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let (tx, rx) = mpsc::channel();
        match &mut *lock(&self.pending) {
            Ok(pending) => pending.insert(id, tx),
            Err(_) => return None,
        };
        let sent = wire::send(&mut *lock(&self.writer), &message(id));
        let answer = sent.ok().and_then(|()| rx.recv_timeout(timeout).ok());
        if let Ok(pending) = &mut *lock(&self.pending) {
            pending.remove(&id);
        }
        answer
    }

    /// Asks the child to stop request `id`.
    pub(crate) fn cancel(&self, id: u64) {
        let _ = wire::send(&mut *lock(&self.writer), &ToWorker::Cancel { id });
    }

    fn dispatch(&self, id: u64, reply: Reply, last: bool) {
        if let Ok(pending) = &mut *lock(&self.pending) {
            let sender = if last {
                pending.remove(&id)
            } else {
                pending.get(&id).cloned()
            };
            if let Some(sender) = sender {
                let _ = sender.send(reply);
            }
        }
    }

    /// The child is gone: every waiting request hears why, and nothing more is accepted.
    fn fail_all(&self, cause: &str) {
        let pending = std::mem::replace(&mut *lock(&self.pending), Err(cause.to_owned()));
        for (_, sender) in pending.into_iter().flatten() {
            let _ = sender.send(Reply::Died(cause.to_owned()));
        }
    }
}

/// Where a lane's worker process is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    Starting,
    Running,
    Restarting,
    /// The first start failed; the lane is not made.
    Failed,
    Closed,
}

struct State {
    phase: Phase,
    connection: Option<Arc<Connection>>,
    pid: Option<u32>,
    /// Why the first start failed, or the last death's cause.
    last_cause: Option<String>,
    deaths: VecDeque<Instant>,
    closed: bool,
}

/// One isolated lane's worker process, kept running.
pub(crate) struct Supervisor {
    label: String,
    program: WorkerProgram,
    config: WorkerConfig,
    state: Mutex<State>,
    changed: Condvar,
    thread: Mutex<Option<JoinHandle<()>>>,
    starts: AtomicU64,
    total_deaths: AtomicU64,
}

impl Supervisor {
    /// Starts the lane's worker process and waits until its model is loaded; `Err` with why
    /// when that first start fails (the lane is then not made, as a GPU context that cannot be
    /// created is not).
    pub(crate) fn start(
        label: String,
        program: WorkerProgram,
        config: WorkerConfig,
    ) -> Result<Arc<Self>, String> {
        let supervisor = Arc::new(Supervisor {
            label,
            program,
            config,
            state: Mutex::new(State {
                phase: Phase::Starting,
                connection: None,
                pid: None,
                last_cause: None,
                deaths: VecDeque::new(),
                closed: false,
            }),
            changed: Condvar::new(),
            thread: Mutex::new(None),
            starts: AtomicU64::new(0),
            total_deaths: AtomicU64::new(0),
        });
        let run = Arc::clone(&supervisor);
        let thread = std::thread::Builder::new()
            .name(format!("whisper-{}-supervisor", supervisor.label))
            .spawn(move || run.supervise())
            .map_err(|e| format!("cannot start the supervisor thread: {e}"))?;
        *lock(&supervisor.thread) = Some(thread);
        let mut state = lock(&supervisor.state);
        while state.phase == Phase::Starting {
            state = supervisor
                .changed
                .wait(state)
                .unwrap_or_else(|p| p.into_inner());
        }
        if state.phase == Phase::Failed {
            let why = state.last_cause.clone().unwrap_or_default();
            drop(state);
            if let Some(thread) = lock(&supervisor.thread).take() {
                let _ = thread.join();
            }
            return Err(why);
        }
        drop(state);
        Ok(supervisor)
    }

    /// The running child's connection. When it is not running: with `wait`, waits for it
    /// until `give_up` says to stop; without, `Err` at once (the caller fails over).
    pub(crate) fn connection(
        &self,
        wait: bool,
        give_up: &dyn Fn() -> bool,
    ) -> Result<Arc<Connection>, String> {
        let mut state = lock(&self.state);
        loop {
            if let (Phase::Running, Some(c)) = (state.phase, &state.connection) {
                return Ok(Arc::clone(c));
            }
            if state.closed {
                return Err("the recognizer is shutting down".into());
            }
            if !wait || give_up() {
                let last = state.last_cause.as_deref().unwrap_or("no cause known");
                return Err(format!(
                    "not running, being started again (last end: {last})"
                ));
            }
            state = self
                .changed
                .wait_timeout(state, Duration::from_millis(20))
                .unwrap_or_else(|p| p.into_inner())
                .0;
        }
    }

    /// Has the running child trim its CUDA pools and says what it gave back (`None` when it
    /// is not running or did not answer within 30 s).
    pub(crate) fn trim(&self) -> Option<crate::cuda::TrimReport> {
        let connection = lock(&self.state).connection.clone()?;
        match connection.call(|id| ToWorker::Trim { id }, TRIM_TIMEOUT)? {
            Reply::Trimmed(report) => Some(report),
            _ => None,
        }
    }

    /// The running child's CUDA pool statistics (`None` when it is not running or did not
    /// answer within 200 ms).
    pub(crate) fn pool_stats(&self) -> Option<crate::cuda::PoolStats> {
        let connection = lock(&self.state).connection.clone()?;
        match connection.call(|id| ToWorker::PoolStats { id }, STATS_TIMEOUT)? {
            Reply::PoolStats(stats) => Some(stats),
            _ => None,
        }
    }

    /// Stops the child (after the lane's worker threads are done) and the supervisor; again
    /// does nothing.
    pub(crate) fn close(&self) {
        {
            let mut state = lock(&self.state);
            state.closed = true;
            if let Some(c) = &state.connection {
                // The child sees the end of its socket, finishes and exits.
                let _ = lock(&c.writer)
                    .get_ref()
                    .shutdown(std::net::Shutdown::Write);
            }
        }
        self.changed.notify_all();
        if let Some(thread) = lock(&self.thread).take() {
            let _ = thread.join();
        }
    }

    pub(crate) fn health(&self) -> WorkerProcessHealth {
        let mut state = lock(&self.state);
        let now = Instant::now();
        while state
            .deaths
            .front()
            .is_some_and(|&t| now.duration_since(t) > DEATH_WINDOW)
        {
            state.deaths.pop_front();
        }
        WorkerProcessHealth {
            pid: state.pid,
            state: match state.phase {
                Phase::Starting => "starting",
                Phase::Running => "running",
                Phase::Restarting | Phase::Failed => "restarting",
                Phase::Closed => "closed",
            },
            starts: self.starts.load(Ordering::Relaxed),
            deaths: self.total_deaths.load(Ordering::Relaxed),
            recent_deaths: state.deaths.len(),
            last_cause: state.last_cause.clone(),
        }
    }

    /// Whether it makes the recognizer degraded: not running, or dying again and again.
    pub(crate) fn degrades(health: &WorkerProcessHealth) -> bool {
        health.state != "running" || health.recent_deaths >= DEGRADED_AFTER_DEATHS
    }

    fn set(&self, change: impl FnOnce(&mut State)) {
        change(&mut lock(&self.state));
        self.changed.notify_all();
    }

    /// The supervisor thread: start, serve, reap, back off, again.
    fn supervise(self: Arc<Self>) {
        let mut first = true;
        let mut quick_deaths: u32 = 0;
        loop {
            if lock(&self.state).closed {
                break;
            }
            self.starts.fetch_add(1, Ordering::Relaxed);
            match self.launch() {
                Ok(mut running) => {
                    let started = Instant::now();
                    let connection = Arc::clone(&running.connection);
                    self.set(|s| {
                        s.phase = Phase::Running;
                        s.connection = Some(Arc::clone(&connection));
                        s.pid = Some(running.child.id());
                    });
                    first = false;
                    read_answers(&mut running.reader, &connection);
                    // The socket ended: the child is gone or going.
                    let closing = lock(&self.state).closed;
                    let status = reap(&mut running.child, closing);
                    let tail = running.tail.lines();
                    let cause = describe(status, &tail);
                    self.set(|s| {
                        s.connection = None;
                        s.pid = None;
                    });
                    connection.fail_all(&cause);
                    if closing {
                        break;
                    }
                    self.total_deaths.fetch_add(1, Ordering::Relaxed);
                    log::error!(
                        target: "whisper_steady::recognizer",
                        "{} worker process {} died: {cause}; its requests go to another lane, \
                         and it is started again",
                        self.label,
                        running.child.id()
                    );
                    if started.elapsed() >= STABLE_AFTER {
                        quick_deaths = 0;
                    }
                    quick_deaths += 1;
                    self.set(|s| {
                        s.last_cause = Some(cause);
                        s.deaths.push_back(Instant::now());
                    });
                }
                Err(why) if first => {
                    self.set(|s| {
                        s.phase = Phase::Failed;
                        s.last_cause = Some(why);
                    });
                    return;
                }
                Err(why) => {
                    log::error!(
                        target: "whisper_steady::recognizer",
                        "{} worker process did not start again: {why}",
                        self.label
                    );
                    quick_deaths += 1;
                    self.set(|s| s.last_cause = Some(why));
                }
            }
            let delay = FIRST_BACKOFF
                .saturating_mul(1 << quick_deaths.saturating_sub(1).min(10))
                .min(MOST_BACKOFF);
            let until = Instant::now() + delay;
            let mut state = lock(&self.state);
            state.phase = Phase::Restarting;
            self.changed.notify_all();
            while !state.closed && Instant::now() < until {
                let left = until.saturating_duration_since(Instant::now());
                state = self
                    .changed
                    .wait_timeout(state, left)
                    .unwrap_or_else(|p| p.into_inner())
                    .0;
            }
            state.phase = Phase::Starting;
        }
        self.set(|s| s.phase = Phase::Closed);
    }

    /// Starts a child and waits until it is ready.
    fn launch(&self) -> Result<Running, String> {
        let (ours, theirs) = UnixStream::pair().map_err(|e| format!("socket pair: {e}"))?;
        let fd = theirs.as_raw_fd();
        let mut command = Command::new(&self.program.program);
        command
            .arg0(self.program.name())
            .args(&self.program.args)
            .envs(self.program.env.iter().map(|(k, v)| (k, v)))
            .env(FD_ENV, fd.to_string())
            .env(PARENT_ENV, std::process::id().to_string())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        // SAFETY: between fork and exec only async-signal-safe calls: fcntl and prctl.
        unsafe {
            command.pre_exec(move || {
                // The child keeps its end of the socket across exec.
                let flags = libc::fcntl(fd, libc::F_GETFD);
                if flags < 0 || libc::fcntl(fd, libc::F_SETFD, flags & !libc::FD_CLOEXEC) < 0 {
                    return Err(std::io::Error::last_os_error());
                }
                // It dies with this process, so no orphan keeps the GPU's memory.
                #[cfg(target_os = "linux")]
                if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL) < 0 {
                    return Err(std::io::Error::last_os_error());
                }
                Ok(())
            });
        }
        let mut child = command.spawn().map_err(|e| {
            format!(
                "cannot start the worker program {}: {e}",
                Path::new(&self.program.name()).display()
            )
        })?;
        drop(theirs);
        let mut tail = Tail::follow(
            child.stderr.take().expect("piped"),
            format!("{} worker {}", self.label, child.id()),
        );
        let handshake = || -> Result<(BufReader<UnixStream>, BufWriter<UnixStream>), String> {
            let io = |e: std::io::Error| e.to_string();
            let mut writer = BufWriter::new(ours.try_clone().map_err(io)?);
            // A program that is no worker may be gone already: its silence says more below.
            let _ = wire::send(&mut writer, &ToWorker::Start(self.config.clone()));
            let mut reader = BufReader::new(ours.try_clone().map_err(io)?);
            ours.set_read_timeout(Some(HELLO_TIMEOUT)).map_err(io)?;
            match wire::receive::<FromWorker>(&mut reader) {
                Ok(Some(Frame::Message(FromWorker::Hello { .. }))) => {}
                _ => {
                    return Err(format!(
                        "{} did not answer as a worker within {HELLO_TIMEOUT:?}: its main \
                         must call whisper_steady::recognizer::run_worker_if_child() first",
                        Path::new(&self.program.name()).display()
                    ))
                }
            }
            ours.set_read_timeout(Some(READY_TIMEOUT)).map_err(io)?;
            match wire::receive::<FromWorker>(&mut reader) {
                Ok(Some(Frame::Message(FromWorker::Ready { .. }))) => {}
                Ok(Some(Frame::Message(FromWorker::StartFailed { reason }))) => return Err(reason),
                Ok(_) => return Err("it ended while loading the model".into()),
                Err(e) => return Err(format!("while loading the model: {e}")),
            }
            ours.set_read_timeout(None).map_err(io)?;
            Ok((reader, writer))
        };
        match handshake() {
            Ok((reader, writer)) => Ok(Running {
                child,
                reader,
                tail,
                connection: Arc::new(Connection {
                    writer: Mutex::new(writer),
                    pending: Mutex::new(Ok(HashMap::new())),
                    next_id: AtomicU64::new(1),
                }),
            }),
            Err(why) => {
                let _ = child.kill();
                let status = child.wait().ok();
                let lines = tail.lines();
                Err(match lines.is_empty() {
                    true => why,
                    false => format!("{why} ({})", describe(status, &lines)),
                })
            }
        }
    }
}

/// A child being served.
struct Running {
    child: Child,
    reader: BufReader<UnixStream>,
    tail: Tail,
    connection: Arc<Connection>,
}

/// Hands the child's answers to the requests' waiting threads until its socket ends.
fn read_answers(reader: &mut BufReader<UnixStream>, connection: &Connection) {
    loop {
        match wire::receive::<FromWorker>(reader) {
            Ok(Some(Frame::Message(message))) => match message {
                FromWorker::Segment { id, segment } => {
                    connection.dispatch(id, Reply::Segment(segment), false)
                }
                FromWorker::Done { id, transcript } => {
                    connection.dispatch(id, Reply::Done(transcript), true)
                }
                FromWorker::Error { id, error } => {
                    connection.dispatch(id, Reply::Error(error), true)
                }
                FromWorker::Trimmed { id, report } => {
                    connection.dispatch(id, Reply::Trimmed(report), true)
                }
                FromWorker::PoolStats { id, stats } => {
                    connection.dispatch(id, Reply::PoolStats(stats), true)
                }
                FromWorker::Hello { .. }
                | FromWorker::Ready { .. }
                | FromWorker::StartFailed { .. } => {}
            },
            // The end, a broken socket, or a frame that makes no sense: the child is done for.
            _ => return,
        }
    }
}

/// Waits for the child's end: at shutdown it has a grace period to finish, otherwise (the
/// socket ended while serving: it crashed, or is about to) it is killed if still there.
fn reap(child: &mut Child, closing: bool) -> Option<ExitStatus> {
    let until = Instant::now()
        + if closing {
            EXIT_GRACE
        } else {
            Duration::from_millis(500)
        };
    while Instant::now() < until {
        match child.try_wait() {
            Ok(Some(status)) => return Some(status),
            Ok(None) => std::thread::sleep(Duration::from_millis(10)),
            Err(_) => break,
        }
    }
    let _ = child.kill();
    child.wait().ok()
}

/// "killed by signal 9 (SIGKILL)", "exited with status 3", and the last lines it wrote.
fn describe(status: Option<ExitStatus>, tail: &[String]) -> String {
    let how = match status {
        Some(s) => match (s.code(), s.signal()) {
            (Some(code), _) => format!("exited with status {code}"),
            (None, Some(signal)) => format!(
                "killed by signal {signal} ({}){}",
                signal_name(signal),
                if s.core_dumped() { ", core dumped" } else { "" }
            ),
            _ => s.to_string(),
        },
        None => "ended (status unknown)".to_owned(),
    };
    match tail {
        [] => how,
        lines => format!("{how}; it last wrote: {}", lines.join(" | ")),
    }
}

fn signal_name(signal: i32) -> &'static str {
    match signal {
        libc::SIGABRT => "SIGABRT: an abort, e.g. a failed GGML_ASSERT or CUDA error",
        libc::SIGKILL => "SIGKILL: killed, e.g. by the out-of-memory killer",
        libc::SIGSEGV => "SIGSEGV: a crash",
        libc::SIGBUS => "SIGBUS: a crash",
        libc::SIGILL => "SIGILL: an illegal instruction",
        libc::SIGFPE => "SIGFPE: an arithmetic fault",
        libc::SIGTERM => "SIGTERM",
        _ => "a signal",
    }
}

/// A child's standard error: passed on line by line to our logger (`logs`), the last lines
/// kept.
struct Tail {
    lines: Arc<Mutex<VecDeque<String>>>,
    thread: Option<JoinHandle<()>>,
}

impl Tail {
    fn follow(stderr: std::process::ChildStderr, prefix: String) -> Tail {
        let lines = Arc::new(Mutex::new(VecDeque::new()));
        let keep = Arc::clone(&lines);
        let thread = std::thread::Builder::new()
            .name("whisper-worker-stderr".into())
            .spawn(move || {
                let mut reader = BufReader::new(stderr);
                let mut line = Vec::new();
                while matches!(reader.read_until(b'\n', &mut line), Ok(n) if n > 0) {
                    let text = String::from_utf8_lossy(&line).trim_end().to_owned();
                    line.clear();
                    let parsed = logs::Line::parse(&text);
                    logs::pass_on(&prefix, &parsed);
                    let message = parsed.message.to_owned();
                    let mut kept = lock(&keep);
                    if kept.len() == TAIL_LINES {
                        kept.pop_front();
                    }
                    kept.push_back(message);
                }
            })
            .ok();
        Tail { lines, thread }
    }

    /// The last lines, once the child's standard error has ended (it has, when it is dead).
    fn lines(&mut self) -> Vec<String> {
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
        lock(&self.lines).iter().cloned().collect()
    }
}

//! Three `recognizer-server` processes behind HAProxy (deploy/haproxy.cfg, ports changed), on
//! loopback: bounded concurrent load through HAProxy while one server is killed with SIGKILL and
//! restarted, then while one is stopped with SIGTERM and restarted. Every request must be
//! answered 200 with the right text or 429, none lost and none 5xx, also those that were inside
//! the killed server (HAProxy resends them: they fit its buffer); the health checks must take
//! the killed server out and put it back. Then the throughput with 1, 2 and 3 replicas.

#![cfg(unix)]

mod common;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::{openai_multipart, openai_request, shared_audio, wer, JFK_TEXT};

const BIN: &str = env!("CARGO_BIN_EXE_recognizer-server");

/// Columns of HAProxy's `show stat` CSV: current sessions, retries, redispatches, status.
const STAT_SESSIONS: usize = 4;
const STAT_RETRIES: usize = 15;
const STAT_REDISPATCHES: usize = 16;
const STAT_STATUS: usize = 17;

/// A free loopback port (bound, read, released).
fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// One recognizer-server process on a fixed port.
struct Replica {
    port: u16,
    dir: PathBuf,
    model: PathBuf,
    child: Option<Child>,
}

impl Replica {
    fn start(&mut self) {
        let config = self.dir.join("config.json");
        std::fs::write(
            &config,
            serde_json::json!({
                "server": {"host": "127.0.0.1", "port": self.port},
                // One worker of one thread: one replica uses one core, so that the throughput
                // with 1, 2 and 3 replicas means something on a small machine; greedy decoding
                // keeps the test's time down.
                "recognition": {"model_path": self.model, "workers": 1, "queue_limit": 4,
                                "threads_per_worker": 1,
                                "default_params": {"use_gpu": false, "language": "en",
                                                   "beam_size": 1}},
                "storage": {"dir": self.dir.join("storage")},
                "logging": {"level": "warn"},
            })
            .to_string(),
        )
        .unwrap();
        let (child, _) = common::spawn_listening(Command::new(BIN).arg("--config").arg(&config));
        self.child = Some(child);
    }

    fn signal(&mut self, signal: &str) -> std::process::ExitStatus {
        let mut child = self.child.take().expect("running");
        let pid = child.id().to_string();
        assert!(Command::new("kill")
            .args([signal, &pid])
            .status()
            .unwrap()
            .success());
        child.wait().unwrap()
    }
}

impl Drop for Replica {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// HAProxy with deploy/haproxy.cfg, its ports moved, and an admin socket.
struct Haproxy {
    child: Child,
    socket: PathBuf,
}

impl Haproxy {
    fn start(dir: &Path, front: u16, ports: &[u16]) -> Haproxy {
        let shipped = std::fs::read_to_string(
            Path::new(env!("CARGO_MANIFEST_DIR")).join("../deploy/haproxy.cfg"),
        )
        .unwrap();
        let socket = dir.join("haproxy.sock");
        let mut cfg = shipped
            .replace("127.0.0.1:8080", &format!("127.0.0.1:{front}"))
            .replace("127.0.0.1:8081", &format!("127.0.0.1:{}", ports[0]))
            .replace("127.0.0.1:8082", &format!("127.0.0.1:{}", ports[1]))
            .replace("127.0.0.1:8083", &format!("127.0.0.1:{}", ports[2]))
            .replace(
                "    log stdout format raw local0\n",
                &format!(
                    "    log stdout format raw local0\n    stats socket {} level admin\n",
                    socket.display()
                ),
            );
        assert!(cfg.contains(&format!(":{}", ports[2])) && cfg.contains("stats socket"));
        cfg.push('\n');
        let path = dir.join("haproxy.cfg");
        std::fs::write(&path, cfg).unwrap();
        let child = Command::new("haproxy")
            .arg("-f")
            .arg(&path)
            .arg("-db")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let h = Haproxy { child, socket };
        let started = Instant::now();
        while h.command("show info").is_none() {
            assert!(
                started.elapsed() < Duration::from_secs(10),
                "haproxy did not start"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
        h
    }

    /// One command on the admin socket.
    fn command(&self, command: &str) -> Option<String> {
        let mut s = UnixStream::connect(&self.socket).ok()?;
        s.write_all(format!("{command}\n").as_bytes()).ok()?;
        let mut out = String::new();
        s.read_to_string(&mut out).ok()?;
        Some(out)
    }

    /// Column `index` of `show stat` for server `name` ("BACKEND" for the backend's totals).
    fn stat(&self, name: &str, index: usize) -> String {
        let csv = self.command("show stat").unwrap_or_default();
        csv.lines()
            .find(|l| l.starts_with(&format!("recognizers,{name},")))
            .and_then(|l| l.split(',').nth(index).map(str::to_owned))
            .unwrap_or_default()
    }

    /// The check status of server `name` ("UP", "DOWN", "MAINT", ...).
    fn status(&self, name: &str) -> String {
        self.stat(name, STAT_STATUS)
    }

    /// A counter of `show stat` (0 when empty).
    fn count(&self, name: &str, index: usize) -> u64 {
        self.stat(name, index).parse().unwrap_or(0)
    }

    fn wait_for(&self, name: &str, want: &str) -> Duration {
        let started = Instant::now();
        while !self.status(name).starts_with(want) {
            assert!(
                started.elapsed() < Duration::from_secs(30),
                "{name} never became {want}: {}",
                self.status(name)
            );
            std::thread::sleep(Duration::from_millis(100));
        }
        started.elapsed()
    }
}

impl Drop for Haproxy {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// What the clients got: status and text of every request, or why there was no response.
type Outcome = Result<(u16, String), String>;
type Outcomes = Arc<Mutex<Vec<Outcome>>>;

/// `clients` threads send `each` transcriptions of jfk.wav through `front`; `during` runs once
/// `after` responses have arrived. Returns the outcomes and the wall time.
fn load(
    front: SocketAddr,
    clients: usize,
    each: usize,
    after: usize,
    during: impl FnOnce(),
) -> (Vec<Outcome>, Duration) {
    let wav = std::fs::read(shared_audio("jfk.wav")).unwrap();
    let (ct, body) = openai_multipart(
        &[("model", "whisper-1"), ("response_format", "text")],
        Some(("jfk.wav", "audio/x-wav", &wav)),
    );
    let request = Arc::new(openai_request(&ct, &body));
    let outcomes: Outcomes = Arc::default();
    let done = Arc::new(AtomicUsize::new(0));
    let started = Instant::now();
    let threads: Vec<_> = (0..clients)
        .map(|_| {
            let (request, outcomes, done) = (request.clone(), outcomes.clone(), done.clone());
            std::thread::spawn(move || {
                for _ in 0..each {
                    let r = std::panic::catch_unwind(|| common::raw(front, &request))
                        .map(|r| (r.status, r.text()))
                        .map_err(|_| "no HTTP response".to_string());
                    outcomes.lock().unwrap().push(r);
                    done.fetch_add(1, Ordering::SeqCst);
                }
            })
        })
        .collect();
    while done.load(Ordering::SeqCst) < after {
        std::thread::sleep(Duration::from_millis(50));
    }
    during();
    for t in threads {
        t.join().unwrap();
    }
    let elapsed = started.elapsed();
    let outcomes = std::mem::take(&mut *outcomes.lock().unwrap());
    (outcomes, elapsed)
}

/// Every request answered 200 with the right words, or 429; returns (200s, 429s).
fn check(what: &str, outcomes: &[Outcome], expected: usize) -> (usize, usize) {
    assert_eq!(outcomes.len(), expected, "{what}: requests lost");
    let mut wrong = Vec::new();
    let (mut ok, mut busy) = (0, 0);
    for o in outcomes {
        match o {
            Ok((200, text)) if wer(JFK_TEXT, text) <= 0.1 => ok += 1,
            Ok((429, _)) => busy += 1,
            other => wrong.push(format!("{other:?}")),
        }
    }
    assert!(wrong.is_empty(), "{what}: {wrong:#?}");
    (ok, busy)
}

fn haproxy_available() -> bool {
    let found = Command::new("haproxy")
        .arg("-v")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    let required = std::env::var("WHISPER_STEADY_REQUIRE_MODEL").is_ok_and(|v| v == "1");
    if !found {
        assert!(
            !required,
            "haproxy is needed (Debian: apt-get install haproxy)"
        );
        eprintln!("skipped: no haproxy");
    }
    found
}

#[test]
fn three_servers_behind_haproxy_lose_nothing_when_one_is_killed_or_stopped() {
    let Some(model) = common::model_path() else {
        return;
    };
    if !haproxy_available() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let mut replicas: Vec<Replica> = (0..3)
        .map(|i| {
            let dir = dir.path().join(format!("r{}", i + 1));
            std::fs::create_dir_all(&dir).unwrap();
            Replica {
                port: free_port(),
                dir,
                model: model.clone(),
                child: None,
            }
        })
        .collect();
    for r in &mut replicas {
        r.start();
    }
    let front_port = free_port();
    let ports: Vec<u16> = replicas.iter().map(|r| r.port).collect();
    let haproxy = Haproxy::start(dir.path(), front_port, &ports);
    for name in ["r1", "r2", "r3"] {
        haproxy.wait_for(name, "UP");
    }
    let front: SocketAddr = format!("127.0.0.1:{front_port}").parse().unwrap();
    // Bounded: 6 clients x 4 requests per phase, the signal after the first 6 answers (so that
    // every replica has requests inside it).
    let (clients, each, after) = (6, 4, 6);

    // SIGKILL r2 in the middle of the load, wait until the checks take it out, restart it
    let mut out_after = Duration::ZERO;
    let mut back_after = Duration::ZERO;
    let (outcomes, elapsed) = load(front, clients, each, after, || {
        // Killed with a request inside it, which HAProxy must resend elsewhere.
        let until = Instant::now() + Duration::from_secs(30);
        while haproxy.count("r2", STAT_SESSIONS) == 0 {
            assert!(Instant::now() < until, "r2 never had a request");
            std::thread::sleep(Duration::from_millis(20));
        }
        let status = replicas[1].signal("-KILL");
        assert!(!status.success());
        out_after = haproxy.wait_for("r2", "DOWN");
        replicas[1].start();
        back_after = haproxy.wait_for("r2", "UP");
    });
    let (ok, busy) = check("SIGKILL", &outcomes, clients * each);
    let resent =
        haproxy.count("BACKEND", STAT_RETRIES) + haproxy.count("BACKEND", STAT_REDISPATCHES);
    eprintln!(
        "SIGKILL: {ok} x 200, {busy} x 429 in {:.1} s; {resent} retries and redispatches; r2 \
         out after {:.1} s, back {:.1} s after its restart",
        elapsed.as_secs_f64(),
        out_after.as_secs_f64(),
        back_after.as_secs_f64()
    );
    assert!(resent > 0, "HAProxy resent nothing: r2 died empty");

    // SIGTERM r3 in the middle of the load: it drains, exits 0, restarts
    let (outcomes, elapsed) = load(front, clients, each, after, || {
        let status = replicas[2].signal("-TERM");
        assert!(status.success(), "{status}");
        haproxy.wait_for("r3", "DOWN");
        replicas[2].start();
        haproxy.wait_for("r3", "UP");
    });
    let (ok, busy) = check("SIGTERM", &outcomes, clients * each);
    eprintln!(
        "SIGTERM: {ok} x 200, {busy} x 429 in {:.1} s",
        elapsed.as_secs_f64()
    );

    // throughput with 1, 2 and 3 replicas (the others in maintenance)
    for n in 1..=3 {
        for (i, name) in ["r1", "r2", "r3"].iter().enumerate() {
            let state = if i < n { "ready" } else { "maint" };
            haproxy
                .command(&format!("set server recognizers/{name} state {state}"))
                .unwrap();
        }
        for name in &["r1", "r2", "r3"][..n] {
            haproxy.wait_for(name, "UP");
        }
        let (outcomes, elapsed) = load(front, 4, 3, 0, || {});
        let (ok, busy) = check(&format!("{n} replicas"), &outcomes, 12);
        eprintln!(
            "{n} replicas: {:.1} requests/min ({ok} x 200, {busy} x 429, 4 clients x 3, {:.1} s)",
            ok as f64 / elapsed.as_secs_f64() * 60.0,
            elapsed.as_secs_f64()
        );
    }
    drop(haproxy);
    // nothing is left listening once the replicas go
    drop(replicas);
    assert!(TcpStream::connect(front).is_err());
}

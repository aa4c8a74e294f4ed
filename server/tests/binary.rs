//! The `recognizer-server` binary: starting from `--model` alone, refusing bad configuration,
//! and finishing in-flight requests on SIGTERM.

mod common;

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::Duration;

use serde_json::json;

const BIN: &str = env!("CARGO_BIN_EXE_recognizer-server");

#[test]
fn bad_configuration_is_refused_with_the_key_named() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("config.json");
    let refused = |json: &str, key: &str| {
        std::fs::write(&config, json).unwrap();
        let out = Command::new(BIN)
            .arg("--config")
            .arg(&config)
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(out.status.code() == Some(2) && err.contains(key), "{err}");
    };
    refused(r#"{"server": {"port": 8080, "hots": "x"}}"#, "server.hots");
    refused(
        r#"{"recognition": {"workers": "four"}}"#,
        "recognition.workers",
    );
    refused(
        r#"{"wyoming": {"fit_window_below_seconds": -1}}"#,
        "wyoming.fit_window_below_seconds",
    );

    // No model anywhere: a clear message, not a crash.
    let out = Command::new(BIN).args(["--port", "0"]).output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success() && err.contains("--model"), "{err}");
}

#[cfg(unix)]
#[test]
fn starts_from_model_alone_and_sigterm_finishes_in_flight_requests() {
    let Some(model) = common::model_path() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let (mut child, addr) = common::spawn_listening(
        Command::new(BIN)
            .arg("--model")
            .arg(&model)
            .args(["--host", "127.0.0.1", "--port", "0"])
            .current_dir(dir.path()),
    );

    // The embedded default storage folder is ./storage.
    let wav = std::fs::read(common::shared_audio("jfk.wav")).unwrap();
    let mut upload = format!(
        "POST /api/upload?filename=jfk.wav HTTP/1.1\r\nHost: t\r\nConnection: close\r\nContent-Length: {}\r\n\r\n",
        wav.len()
    )
    .into_bytes();
    upload.extend_from_slice(&wav);
    let r = common::raw(addr, &upload);
    assert_eq!(r.status, 200, "{}", r.text());
    let id = r.json()["id"].as_str().unwrap().to_owned();
    assert!(dir.path().join("storage").join(&id).is_file());

    let in_flight = std::thread::spawn(move || {
        let body = json!({"audio_path": id}).to_string();
        let req = format!(
            "POST /api/recognize HTTP/1.1\r\nHost: t\r\nConnection: close\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
            body.len()
        );
        common::raw(addr, req.as_bytes())
    });
    // Let the request reach a worker, then ask the server to stop.
    std::thread::sleep(Duration::from_millis(500));
    sigterm(&child);
    let r = in_flight.join().unwrap();
    assert_eq!(
        r.status,
        200,
        "the in-flight request was not finished: {}",
        r.text()
    );
    assert!(common::wer(common::JFK_TEXT, r.json()["text"].as_str().unwrap()) <= 0.1);
    let status = child.wait().unwrap();
    assert!(status.success(), "{status}");
    // Nothing listens any more.
    assert!(std::net::TcpStream::connect(addr).is_err());
}

#[cfg(unix)]
#[test]
fn the_start_script_checks_the_model_before_starting() {
    let script =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../scripts/start-server.sh");
    let run = |args: &[&str]| {
        Command::new("bash")
            .arg(&script)
            .args(args)
            .env("RECOGNIZER_SERVER", BIN)
            .env_remove("RECOGNIZER_MODEL")
            .output()
            .unwrap()
    };
    let out = run(&["--model", "/no/such/model.bin"]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(err.contains("/no/such/model.bin does not exist"), "{err}");

    // With a model it execs the server, which then stops on SIGTERM.
    let Some(model) = common::model_path() else {
        return;
    };

    // With no model at all: tiny.en by name, from the model cache (the test model's folder
    // holds it: no network here), served on 127.0.0.1.
    let dir = tempfile::tempdir().unwrap();
    let (mut child, addr) = common::spawn_listening(
        Command::new("bash")
            .arg(&script)
            .args(["--port", "0"])
            .env("RECOGNIZER_SERVER", BIN)
            .env_remove("RECOGNIZER_MODEL")
            .env("WHISPER_STEADY_MODEL_CACHE", model.parent().unwrap())
            .env("WHISPER_STEADY_MODEL_BASE_URL", "http://127.0.0.1:9/")
            .current_dir(dir.path()),
    );
    assert!(addr.ip().is_loopback(), "{addr}");
    let health = common::raw(
        addr,
        b"GET /health HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n",
    );
    assert!(
        health.json()["model"]
            .as_str()
            .unwrap()
            .ends_with("ggml-tiny.en.bin"),
        "{}",
        health.text()
    );
    sigterm(&child);
    assert!(child.wait().unwrap().success());
    let dir = tempfile::tempdir().unwrap();
    let mut child = Command::new("bash")
        .arg(&script)
        .arg("--model")
        .arg(&model)
        .args(["--host", "127.0.0.1", "--port", "0"])
        .env("RECOGNIZER_SERVER", BIN)
        .env("GGML_CUDA_FORCE_LEGACY_POOL", "1")
        .current_dir(dir.path())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    assert!(
        line.starts_with("listening on http://127.0.0.1:"),
        "{line:?}"
    );
    sigterm(&child);
    assert!(child.wait().unwrap().success());
}

/// Asks a child process to stop, as a service manager does.
#[cfg(unix)]
fn sigterm(child: &std::process::Child) {
    let pid = child.id().to_string();
    assert!(Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .unwrap()
        .success());
}

/// Starts the binary on a loopback port with `model` and the configuration `json`, in `dir`.
fn spawn_with_config(
    model: &std::path::Path,
    dir: &std::path::Path,
    json: &str,
) -> (std::process::Child, std::net::SocketAddr) {
    spawn_in(dir, json, Some(model))
}

/// Starts the binary on a loopback port with the configuration `json` (its models in it), in
/// `dir`, with `--model` when given.
fn spawn_in(
    dir: &std::path::Path,
    json: &str,
    model: Option<&std::path::Path>,
) -> (std::process::Child, std::net::SocketAddr) {
    spawn_program_in(std::path::Path::new(BIN), dir, json, model, Stdio::null())
}

/// [`spawn_in`] with the server binary at `bin` and its stderr going to `stderr`.
fn spawn_program_in(
    bin: &std::path::Path,
    dir: &std::path::Path,
    json: &str,
    model: Option<&std::path::Path>,
    stderr: Stdio,
) -> (std::process::Child, std::net::SocketAddr) {
    let config = dir.join("config.json");
    std::fs::write(&config, json).unwrap();
    let mut command = Command::new(bin);
    if let Some(model) = model {
        command.arg("--model").arg(model);
    }
    common::spawn_listening_logged(
        command
            .arg("--config")
            .arg(&config)
            .args(["--host", "127.0.0.1", "--port", "0"])
            .current_dir(dir),
        stderr,
    )
}

/// jfk.wav through the OpenAI API (`POST /v1/audio/transcriptions`, model `whisper-1`).
fn transcribe_jfk(addr: std::net::SocketAddr) -> common::Response {
    let wav = std::fs::read(common::shared_audio("jfk.wav")).unwrap();
    let (ct, body) = common::openai_multipart(
        &[("model", "whisper-1")],
        Some(("jfk.wav", "audio/x-wav", &wav)),
    );
    common::raw(addr, &common::openai_request(&ct, &body))
}

/// `GET /health`'s body.
fn health(addr: std::net::SocketAddr) -> serde_json::Value {
    common::raw(
        addr,
        b"GET /health HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n",
    )
    .json()
}

/// A WAV header of 8-bit mono PCM at `rate` Hz declaring and holding `frames` frames.
fn crafted_wav(rate: u32, frames: usize) -> Vec<u8> {
    let mut out = Vec::with_capacity(44 + frames);
    out.extend_from_slice(b"RIFF");
    out.extend_from_slice(&(36 + frames as u32).to_le_bytes());
    out.extend_from_slice(b"WAVEfmt ");
    out.extend_from_slice(&16u32.to_le_bytes());
    out.extend_from_slice(&1u16.to_le_bytes()); // PCM
    out.extend_from_slice(&1u16.to_le_bytes()); // mono
    out.extend_from_slice(&rate.to_le_bytes());
    out.extend_from_slice(&rate.to_le_bytes()); // bytes per second
    out.extend_from_slice(&1u16.to_le_bytes()); // block
    out.extend_from_slice(&8u16.to_le_bytes()); // bits
    out.extend_from_slice(b"data");
    out.extend_from_slice(&(frames as u32).to_le_bytes());
    out.resize(44 + frames, 128);
    out
}

/// A line of `/proc/PID/status` in kB (`VmHWM`, `VmRSS`).
#[cfg(target_os = "linux")]
fn status_kb(pid: u32, key: &str) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let line = status
        .lines()
        .find(|l| l.starts_with(key))
        .unwrap_or_else(|| panic!("no {key}"));
    line.split_whitespace().nth(1).unwrap().parse().unwrap()
}

/// The CPU time a process has used (user + system).
#[cfg(target_os = "linux")]
fn cpu_time(pid: u32) -> Duration {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    // after the command name's closing parenthesis: state is field 3, utime 14, stime 15
    let fields: Vec<&str> = stat[stat.rfind(')').unwrap() + 2..]
        .split_whitespace()
        .collect();
    let ticks: u64 = fields[11].parse::<u64>().unwrap() + fields[12].parse::<u64>().unwrap();
    Duration::from_millis(ticks * 10) // USER_HZ is 100 on Linux
}

/// The red team's crafted WAV headers (issue: one upload aborted the process): each answered
/// 400 with the reason, quickly, within bounded memory and CPU time, while another client is
/// served and the server stays up.
#[cfg(target_os = "linux")]
#[test]
fn crafted_wav_headers_get_400_within_bounded_memory_and_cpu() {
    let Some(model) = common::model_path() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let (mut child, addr) = spawn_with_config(
        &model,
        dir.path(),
        r#"{"recognition": {"workers": 1, "threads_per_worker": 1}}"#,
    );
    let pid = child.id();
    let wav = std::fs::read(common::shared_audio("jfk.wav")).unwrap();
    let transcribe = |name: &str, bytes: &[u8]| {
        let (ct, body) = common::openai_multipart(
            &[("model", "whisper-1")],
            Some((name, "audio/x-wav", bytes)),
        );
        common::raw(addr, &common::openai_request(&ct, &body))
    };
    // Warm up (the first request maps the model's pages), then measure from here.
    assert_eq!(transcribe("jfk.wav", &wav).status, 200);
    let rss_before = status_kb(pid, "VmHWM");
    let cpu_before = cpu_time(pid);

    let cases: Vec<(&str, Vec<u8>)> = vec![
        // 104 MB of 8-bit audio at 1,000,000,001 Hz (was: a 34 GB allocation, abort)
        ("1 GHz, 104 MB", crafted_wav(1_000_000_001, 104_000_000)),
        // 8 MB at 20 MHz (was: 134 MB and 9 s of CPU)
        ("20 MHz, 8 MB", crafted_wav(20_000_000, 8_000_000)),
        // 1 Hz, 10,800 frames: 3 hours of audio in 11 KB (was: 1.2-1.8 GB per request)
        ("1 Hz, 3 hours", crafted_wav(1, 10_800)),
        // rate 0 (was: a panic inside the decoder)
        ("0 Hz", crafted_wav(0, 16_000)),
    ];
    let served = std::thread::scope(|scope| {
        let other = scope.spawn(|| transcribe("jfk.wav", &wav));
        for (what, bytes) in &cases {
            let started = std::time::Instant::now();
            let r = transcribe("crafted.wav", bytes);
            assert_eq!(r.status, 400, "{what}: {}", r.text());
            let message = r.json()["error"]["message"].as_str().unwrap().to_owned();
            assert!(message.contains("sample rate"), "{what}: {message}");
            assert!(
                started.elapsed() < Duration::from_secs(10),
                "{what}: {:?}",
                started.elapsed()
            );
        }
        other.join().unwrap()
    });
    assert_eq!(served.status, 200, "{}", served.text());
    assert!(common::wer(common::JFK_TEXT, served.json()["text"].as_str().unwrap()) <= 0.1);
    // Bounded: the largest case's bytes held a few times over (request, multipart part), no
    // more; and no more CPU than a transcription of jfk.wav and some copying.
    let grown_mb = (status_kb(pid, "VmHWM") - rss_before) / 1024;
    let cpu = cpu_time(pid) - cpu_before;
    eprintln!("peak RSS grew by {grown_mb} MB; CPU time {cpu:?}");
    assert!(grown_mb < 600, "peak RSS grew by {grown_mb} MB");
    assert!(cpu < Duration::from_secs(20), "CPU time {cpu:?}");
    // Still up and healthy.
    let health = common::raw(
        addr,
        b"GET /health HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n",
    );
    assert_eq!(health.status, 200, "{}", health.text());
    assert!(child.try_wait().unwrap().is_none(), "the server exited");
    sigterm(&child);
    assert!(child.wait().unwrap().success());
}

/// The red team's slow clients (issue: connections held forever): 100 sockets sending a
/// header line every half second, a body dripping under the minimum rate, a body over the
/// limit announced by its `Content-Length`, and idle sockets beyond `max_connections`. Each
/// is cut off (a 4xx or a close) within its limit; the server stays up, serves `/health` and a
/// transcription meanwhile, in bounded memory and CPU time.
#[cfg(target_os = "linux")]
#[test]
fn slow_and_idle_clients_are_cut_off_while_others_are_served() {
    use std::io::{Read, Write};
    use std::net::TcpStream;
    use std::time::Instant;

    let Some(model) = common::model_path() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let (mut child, addr) = spawn_with_config(
        &model,
        dir.path(),
        r#"{"server": {"header_timeout_seconds": 1, "idle_timeout_seconds": 2,
                       "body_timeout_seconds": 10, "min_body_bytes_per_second": 2000,
                       "max_connections": 64, "max_upload_bytes": 2000000},
            "recognition": {"workers": 1, "threads_per_worker": 1}}"#,
    );
    let pid = child.id();
    let health = || {
        let started = Instant::now();
        let r = common::raw(
            addr,
            b"GET /health HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n",
        );
        (r.status, started.elapsed())
    };
    assert_eq!(health().0, 200);
    let rss_before = status_kb(pid, "VmHWM");
    let cpu_before = cpu_time(pid);

    // Until when a socket stays open, read from its server side (0: closed by the server).
    let closed_after = |mut socket: TcpStream, started: Instant| -> Duration {
        socket
            .set_read_timeout(Some(Duration::from_secs(30)))
            .unwrap();
        let mut sink = [0u8; 4096];
        while matches!(socket.read(&mut sink), Ok(n) if n > 0) {}
        started.elapsed()
    };

    std::thread::scope(|scope| {
        // 100 slowloris sockets (more than max_connections: the rest wait in the backlog).
        let slow_headers: Vec<_> = (0..100)
            .map(|_| {
                scope.spawn(move || {
                    let started = Instant::now();
                    let mut socket = TcpStream::connect(addr).unwrap();
                    let _ = socket.write_all(b"GET /health HTTP/1.1\r\n");
                    let writer = socket.try_clone().unwrap();
                    let drip = std::thread::spawn(move || {
                        let mut writer = writer;
                        for _ in 0..40 {
                            std::thread::sleep(Duration::from_millis(500));
                            if writer.write_all(b"X-Slow: 1\r\n").is_err() {
                                break;
                            }
                        }
                    });
                    let took = closed_after(socket, started);
                    let _ = drip.join();
                    took
                })
            })
            .collect();
        // A body dripping 100 bytes a second (the minimum is 2,000).
        let slow_body = scope.spawn(move || {
            let started = Instant::now();
            let mut socket = TcpStream::connect(addr).unwrap();
            socket
                .write_all(
                    b"POST /api/upload HTTP/1.1\r\nHost: t\r\nContent-Length: 100000\r\n\r\n",
                )
                .unwrap();
            socket
                .set_read_timeout(Some(Duration::from_millis(200)))
                .unwrap();
            let mut answer = Vec::new();
            let mut buf = [0u8; 4096];
            while started.elapsed() < Duration::from_secs(30) {
                if socket.write_all(&[0u8; 100]).is_err() {
                    break;
                }
                match socket.read(&mut buf) {
                    Ok(0) => break,
                    Ok(n) => {
                        answer.extend_from_slice(&buf[..n]);
                        break;
                    }
                    Err(_) => std::thread::sleep(Duration::from_millis(800)),
                }
            }
            (
                String::from_utf8_lossy(&answer).into_owned(),
                started.elapsed(),
            )
        });
        // A body over the limit is refused from its Content-Length, before it is sent.
        let declared = scope.spawn(move || {
            let started = Instant::now();
            let r = common::raw(
                addr,
                b"POST /api/upload HTTP/1.1\r\nHost: t\r\nContent-Length: 900000000\r\n\r\n",
            );
            (r.status, started.elapsed())
        });
        // Meanwhile an ordinary client: health and a transcription.
        std::thread::sleep(Duration::from_millis(300));
        let (status, took) = health();
        assert_eq!(status, 200);
        assert!(took < Duration::from_secs(5), "/health took {took:?}");
        let r = transcribe_jfk(addr);
        assert_eq!(r.status, 200, "{}", r.text());

        let mut slowest = Duration::ZERO;
        for handle in slow_headers {
            slowest = slowest.max(handle.join().unwrap());
        }
        // Each is closed a second after it got a slot; the last ones waited for one.
        assert!(
            slowest < Duration::from_secs(10),
            "slowest close {slowest:?}"
        );
        let (answer, took) = slow_body.join().unwrap();
        assert!(answer.starts_with("HTTP/1.1 400"), "{answer}");
        assert!(answer.contains("too slowly"), "{answer}");
        assert!(took < Duration::from_secs(8), "{took:?}");
        let (status, took) = declared.join().unwrap();
        assert_eq!(status, 413);
        assert!(took < Duration::from_secs(2), "{took:?}");
    });

    // An idle kept-alive connection is closed by the header timer (1 s here).
    let started = Instant::now();
    let mut socket = TcpStream::connect(addr).unwrap();
    socket
        .write_all(b"GET /health HTTP/1.1\r\nHost: t\r\n\r\n")
        .unwrap();
    let took = closed_after(socket, started);
    assert!(took < Duration::from_secs(4), "kept alive for {took:?}");

    let grown_mb = (status_kb(pid, "VmHWM") - rss_before) / 1024;
    let cpu = cpu_time(pid) - cpu_before;
    eprintln!("peak RSS grew by {grown_mb} MB; CPU time {cpu:?}");
    assert!(grown_mb < 300, "peak RSS grew by {grown_mb} MB");
    assert!(cpu < Duration::from_secs(30), "CPU time {cpu:?}");
    assert_eq!(health().0, 200);
    assert!(child.try_wait().unwrap().is_none(), "the server exited");
    sigterm(&child);
    assert!(child.wait().unwrap().success());
}

/// The server with `--model` alone and the model cache `cache`, its Python package index
/// unreachable; stderr goes to `log`.
#[cfg(unix)]
fn spawn_offline(
    model: &std::path::Path,
    dir: &std::path::Path,
    cache: &std::path::Path,
    log: &std::path::Path,
) -> (std::process::Child, std::net::SocketAddr) {
    common::spawn_listening_logged(
        Command::new(BIN)
            .arg("--model")
            .arg(model)
            .args(["--host", "127.0.0.1", "--port", "0"])
            .current_dir(dir)
            .env("WHISPER_STEADY_MODEL_CACHE", cache)
            .env("PIP_INDEX_URL", "http://127.0.0.1:9/simple")
            .env("PIP_FIND_LINKS", "")
            .env("RUST_LOG", "info"),
        Stdio::from(std::fs::File::create(log).unwrap()),
    )
}

/// Speech detection is on by default: from the model cache without any network, and when it
/// cannot be had (an empty cache, the package index unreachable) the server still starts, soon,
/// and says loudly that it runs without.
#[cfg(unix)]
#[test]
fn speech_detection_is_on_by_default_from_the_cache_and_its_absence_is_loud() {
    let (Some(model), Some(vad)) = (common::model_path(), common::vad_model_path()) else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let noise = test_support::sounds::wav_bytes(&test_support::sounds::brown_noise(6.0, 0.3, 21));
    let (content_type, body) = common::openai_multipart(
        &[("model", "whisper-1"), ("response_format", "verbose_json")],
        Some(("noise.wav", "audio/wav", &noise)),
    );

    // The cache holds the model: used, nothing fetched.
    let cached = dir.path().join("cache");
    std::fs::create_dir_all(&cached).unwrap();
    std::fs::copy(&vad, cached.join("ggml-silero-v6.2.0.bin")).unwrap();
    let log = dir.path().join("cached.log");
    let (mut child, addr) = spawn_offline(&model, dir.path(), &cached, &log);
    let r = common::raw(addr, &common::openai_request(&content_type, &body));
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.json()["text"], "");
    assert_eq!(r.json()["no_speech"], true);
    sigterm(&child);
    child.wait().unwrap();
    let said = std::fs::read_to_string(&log).unwrap();
    assert!(
        said.contains("speech detection: ") && said.contains("ggml-silero-v6.2.0.bin"),
        "{said}"
    );
    assert!(!said.contains("WITHOUT speech detection"), "{said}");

    // An empty cache and no way to fetch: the server starts within seconds, without.
    let empty = dir.path().join("empty");
    std::fs::create_dir_all(&empty).unwrap();
    let log = dir.path().join("empty.log");
    let started = std::time::Instant::now();
    let (mut child, addr) = spawn_offline(&model, dir.path(), &empty, &log);
    assert!(
        started.elapsed() < Duration::from_secs(60),
        "the server waited {:?} for an unreachable index",
        started.elapsed()
    );
    let r = common::raw(addr, &common::openai_request(&content_type, &body));
    assert_eq!(r.status, 200, "{}", r.text());
    sigterm(&child);
    child.wait().unwrap();
    let said = std::fs::read_to_string(&log).unwrap();
    assert!(said.contains("WITHOUT speech detection"), "{said}");
    assert!(said.contains("speech detection: off"), "{said}");
}

/// `model_cache.idle_unload_seconds`: a model left idle is unloaded and its memory goes back
/// (the process's resident memory drops by about the model's size), and the next request for
/// it loads it again.
#[cfg(target_os = "linux")]
#[test]
fn an_idle_model_is_unloaded_its_memory_returned_and_reloaded_on_demand() {
    let (Some(english), Some(multilingual)) =
        (common::model_path(), common::multilingual_model_path())
    else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let json = json!({"recognition": {
        "models": {"tiny.en": english, "base": multilingual},
        "default_model": "tiny.en",
        "model_cache": {"idle_unload_seconds": 2},
        "workers": 1, "vad_model": "off", "default_params": {"beam_size": 1},
    }});
    let (mut child, addr) = spawn_in(dir.path(), &json.to_string(), None);
    let pid = child.id();
    let wav = std::fs::read(common::shared_audio("jfk.wav")).unwrap();
    let transcribe = |model: &str| {
        let (ct, body) =
            common::openai_multipart(&[("model", model)], Some(("jfk.wav", "audio/x-wav", &wav)));
        common::raw(addr, &common::openai_request(&ct, &body))
    };
    let base_loaded = || {
        let health = health(addr);
        let models = health["models"].as_array().unwrap().clone();
        let base = models.iter().find(|m| m["name"] == "base").unwrap();
        base["loaded"] == true
    };
    assert!(!base_loaded(), "base waits for its first request");
    let r = transcribe("base");
    assert_eq!(r.status, 200, "{}", r.text());
    assert!(base_loaded());
    let loaded_kb = status_kb(pid, "VmRSS");
    // Unloaded after 2 s without a request (checked every 0.5 s).
    let started = std::time::Instant::now();
    while base_loaded() {
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "base was not unloaded"
        );
        std::thread::sleep(Duration::from_millis(250));
    }
    std::thread::sleep(Duration::from_millis(500)); // the unload's trim and log
    let unloaded_kb = status_kb(pid, "VmRSS");
    let model_kb = std::fs::metadata(common::multilingual_model_path().unwrap())
        .unwrap()
        .len()
        / 1024;
    eprintln!("resident: {loaded_kb} kB with base, {unloaded_kb} kB after its unload; base is {model_kb} kB");
    assert!(
        loaded_kb.saturating_sub(unloaded_kb) >= model_kb * 6 / 10,
        "resident memory {loaded_kb} kB -> {unloaded_kb} kB; the model is {model_kb} kB"
    );
    // The default model stays; base comes back with the next request.
    assert_eq!(transcribe("tiny.en").status, 200);
    let r = transcribe("base");
    assert_eq!(r.status, 200, "{}", r.text());
    assert!(base_loaded());
    sigterm(&child);
    assert!(child.wait().unwrap().success());
}

/// SIGHUP with a model file replaced on disk: the new file is loaded beside the old one and
/// takes over; requests during the swap all succeed.
#[cfg(unix)]
#[test]
fn sighup_swaps_in_a_replaced_model_file_without_failing_a_request() {
    let Some(english) = common::model_path() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let model = dir.path().join("model.bin");
    std::fs::copy(&english, &model).unwrap();
    let json = json!({"recognition": {
        "models": {"m": model},
        "workers": 2, "vad_model": "off", "default_params": {"beam_size": 1},
    }});
    let (mut child, addr) = spawn_in(dir.path(), &json.to_string(), None);
    let wav = std::fs::read(common::shared_audio("jfk.wav")).unwrap();
    let transcribe = || {
        let (ct, body) =
            common::openai_multipart(&[("model", "m")], Some(("jfk.wav", "audio/x-wav", &wav)));
        common::raw(addr, &common::openai_request(&ct, &body)).status
    };
    let loads = || {
        let health = health(addr);
        health["models"][0]["loads"].as_u64().unwrap()
    };
    assert_eq!(loads(), 1);
    let statuses = std::thread::scope(|scope| {
        let clients: Vec<_> = (0..2)
            .map(|_| scope.spawn(|| (0..4).map(|_| transcribe()).collect::<Vec<_>>()))
            .collect();
        std::thread::sleep(Duration::from_millis(500));
        // A new file in place (written beside, then renamed over, as deployments do).
        let next = dir.path().join("model.bin.new");
        std::fs::copy(&english, &next).unwrap();
        std::thread::sleep(Duration::from_millis(20)); // a modification time of its own
        std::fs::rename(&next, &model).unwrap();
        let pid = child.id().to_string();
        assert!(Command::new("kill")
            .args(["-HUP", &pid])
            .status()
            .unwrap()
            .success());
        clients
            .into_iter()
            .flat_map(|c| c.join().unwrap())
            .collect::<Vec<_>>()
    });
    assert!(statuses.iter().all(|&s| s == 200), "{statuses:?}");
    let started = std::time::Instant::now();
    while loads() < 2 {
        assert!(started.elapsed() < Duration::from_secs(30), "no swap");
        std::thread::sleep(Duration::from_millis(200));
    }
    assert_eq!(transcribe(), 200);
    sigterm(&child);
    assert!(child.wait().unwrap().success());
}

/// `recognition.isolation = "process"`: the worker process is killed (SIGKILL, as the
/// out-of-memory killer would) while 6 requests are in flight; all 6 are answered right, the
/// server stays up, the worker is replaced and `/health` says so; SIGTERM leaves no orphan.
#[cfg(unix)]
#[test]
fn a_worker_process_killed_mid_request_costs_no_request() {
    let Some(model) = common::model_path() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let json = json!({"recognition": {
        "isolation": "process", "workers": 2, "vad_model": "off",
        "default_params": {"beam_size": 1},
    }});
    let (mut child, addr) = spawn_with_config(&model, dir.path(), &json.to_string());
    let before = health(addr);
    assert_eq!(before["isolation"], "process", "{before}");
    let process = before["workers"][0]["process"].clone();
    assert_eq!(process["state"], "running", "{before}");
    let victim = process["pid"].as_u64().unwrap() as u32;

    let wav = std::fs::read(common::shared_audio("jfk.wav")).unwrap();
    let requests: Vec<_> = (0..6)
        .map(|_| {
            let wav = wav.clone();
            std::thread::spawn(move || {
                let (ct, body) = common::openai_multipart(
                    &[("model", "whisper-1")],
                    Some(("jfk.wav", "audio/x-wav", &wav)),
                );
                common::raw(addr, &common::openai_request(&ct, &body))
            })
        })
        .collect();
    let started = std::time::Instant::now();
    while health(addr)["workers"][0]["busy"] != 2 {
        assert!(started.elapsed() < Duration::from_secs(60), "never busy");
        std::thread::sleep(Duration::from_millis(20));
    }
    std::thread::sleep(Duration::from_millis(300));
    assert!(Command::new("kill")
        .args(["-KILL", &victim.to_string()])
        .status()
        .unwrap()
        .success());
    for request in requests {
        let r = request.join().unwrap();
        assert_eq!(r.status, 200, "{}", r.text());
        let text = r.json()["text"].as_str().unwrap().to_owned();
        assert!(common::wer(common::JFK_TEXT, &text) <= 0.1, "{text}");
    }
    let after = health(addr);
    let process = after["workers"][0]["process"].clone();
    assert_eq!(process["restarts"], 1, "{after}");
    assert_eq!(process["deaths"], 1, "{after}");
    assert!(
        process["last_cause"].as_str().unwrap().contains("SIGKILL"),
        "{after}"
    );
    let replacement = process["pid"].as_u64().unwrap() as u32;
    assert_ne!(replacement, victim);
    let metrics = common::raw(
        addr,
        b"GET /metrics HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n",
    )
    .text();
    assert!(
        metrics
            .contains("recognizer_worker_process_deaths_total{backend=\"cpu\",device=\"cpu\"} 1"),
        "{metrics}"
    );
    sigterm(&child);
    assert!(child.wait().unwrap().success());
    assert!(
        !std::path::Path::new(&format!("/proc/{replacement}")).exists(),
        "the worker process outlived the server"
    );
}

/// A worker process's messages go to the server's log (`logging.file`, at `debug` here) at
/// their level, prefixed with the worker, and not to its stderr; and after the binary is
/// replaced on disk (an upgrade in place), a killed worker is started again from the file the
/// server runs (Linux: `/proc/self/exe`), not from what now lies at its path.
#[cfg(target_os = "linux")]
#[test]
fn a_worker_process_logs_to_the_server_log_and_restarts_after_the_binary_is_replaced() {
    let Some(model) = common::model_path() else {
        return;
    };
    // A copy of the binary, to replace.
    let (dir, bin) = (tempfile::tempdir().unwrap(), "recognizer-server");
    let bin = dir.path().join(bin);
    std::fs::copy(BIN, &bin).unwrap();
    let json = json!({
        "recognition": {"isolation": "process", "workers": 1, "vad_model": "off",
                        "default_params": {"beam_size": 1}},
        "logging": {"level": "debug", "file": "server.log"},
    });
    let stderr = std::fs::File::create(dir.path().join("stderr.txt")).unwrap();
    let (mut child, addr) = spawn_program_in(
        &bin,
        dir.path(),
        &json.to_string(),
        Some(&model),
        Stdio::from(stderr),
    );
    let first = health(addr)["workers"][0]["process"]["pid"]
        .as_u64()
        .unwrap();

    // The upgrade: another program where the binary was.
    std::fs::remove_file(&bin).unwrap();
    std::fs::write(&bin, "#!/bin/sh\nexit 7\n").unwrap();
    std::fs::set_permissions(&bin, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    assert!(Command::new("kill")
        .args(["-KILL", &first.to_string()])
        .status()
        .unwrap()
        .success());
    let started = std::time::Instant::now();
    let second = loop {
        let process = health(addr)["workers"][0]["process"].clone();
        if process["state"] == "running" && process["pid"].as_u64() != Some(first) {
            assert_eq!(process["restarts"], 1, "{process}");
            break process["pid"].as_u64().unwrap();
        }
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "the worker was not started again: {process}"
        );
        std::thread::sleep(Duration::from_millis(50));
    };
    let r = transcribe_jfk(addr);
    assert_eq!(r.status, 200, "{}", r.text());
    assert!(common::wer(common::JFK_TEXT, r.json()["text"].as_str().unwrap()) <= 0.1);
    sigterm(&child);
    assert!(child.wait().unwrap().success());

    let log = std::fs::read_to_string(dir.path().join("server.log")).unwrap();
    for pid in [first, second] {
        let line = log
            .lines()
            .find(|l| l.contains(&format!("[cpu worker {pid}] whisper_model_load: n_vocab")))
            .unwrap_or_else(|| panic!("no model-load line of worker {pid} in the log:\n{log}"));
        assert!(
            line.contains("INFO") && line.contains("whisper_cpp"),
            "{line}"
        );
    }
    let stderr = std::fs::read_to_string(dir.path().join("stderr.txt")).unwrap();
    assert!(!stderr.contains("whisper_model_load"), "{stderr}");
}

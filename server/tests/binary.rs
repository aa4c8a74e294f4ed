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
    std::fs::write(&config, r#"{"server": {"port": 8080, "hots": "x"}}"#).unwrap();
    let out = Command::new(BIN)
        .arg("--config")
        .arg(&config)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("server.hots"), "{err}");

    std::fs::write(&config, r#"{"recognition": {"workers": "four"}}"#).unwrap();
    let out = Command::new(BIN)
        .arg("--config")
        .arg(&config)
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.code() == Some(2) && err.contains("recognition.workers"),
        "{err}"
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

//! Live protocols. `GET /v1/live`: jfk.wav streamed in real time over a WebSocket gets partial
//! text while it plays and final text per utterance; the latency from the end of speech to the
//! final text is measured; bad frames close the connection cleanly; the connection limit
//! answers 503. Wyoming: the `wyoming` package drives the server as Home Assistant does.

mod common;

use std::io::ErrorKind;
use std::net::TcpStream;
use std::time::{Duration, Instant};

use common::{shared_audio, wer, TestServer, JFK_TEXT};
use serde_json::Value;
use tungstenite::protocol::frame::coding::CloseCode;
use tungstenite::{Message, WebSocket};

type Socket = WebSocket<TcpStream>;

/// Taken by the tests that keep the CPU busy for long, so that the real-time latency test never
/// shares the machine with another of them (the test harness runs tests in parallel).
static HEAVY: std::sync::Mutex<()> = std::sync::Mutex::new(());

fn heavy() -> std::sync::MutexGuard<'static, ()> {
    HEAVY.lock().unwrap_or_else(|p| p.into_inner())
}

fn connect(server: &TestServer) -> Result<Socket, tungstenite::Error> {
    let stream = TcpStream::connect(server.addr).unwrap();
    let url = format!("ws://{}/v1/live", server.addr);
    tungstenite::client(url, stream)
        .map(|(socket, _)| socket)
        .map_err(|e| match e {
            tungstenite::HandshakeError::Failure(e) => e,
            tungstenite::HandshakeError::Interrupted(_) => panic!("blocking handshake"),
        })
}

/// jfk.wav's 16-bit samples.
fn jfk_pcm() -> Vec<i16> {
    let wav = std::fs::read(shared_audio("jfk.wav")).unwrap();
    let data = wav.windows(4).position(|w| w == b"data").unwrap() + 8;
    wav[data..]
        .chunks_exact(2)
        .map(|b| i16::from_le_bytes([b[0], b[1]]))
        .collect()
}

/// What arrived: a JSON message with its arrival time, or the close code.
#[derive(Debug)]
enum Got {
    Json(Duration, Value),
    Closed(Option<CloseCode>),
}

/// Reads what is there (until the short read timeout), or until the close when `wait`.
fn drain(socket: &mut Socket, started: Instant, got: &mut Vec<Got>, wait: bool) -> bool {
    loop {
        match socket.read() {
            Ok(Message::Text(t)) => got.push(Got::Json(
                started.elapsed(),
                serde_json::from_str(t.as_str()).unwrap(),
            )),
            Ok(Message::Close(frame)) => {
                got.push(Got::Closed(frame.map(|f| f.code)));
                return true;
            }
            Ok(_) => {}
            Err(tungstenite::Error::Io(e))
                if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) =>
            {
                if !wait {
                    return false;
                }
            }
            Err(tungstenite::Error::ConnectionClosed | tungstenite::Error::AlreadyClosed) => {
                return true
            }
            Err(e) => panic!("{e}"),
        }
    }
}

#[test]
fn jfk_streamed_in_real_time_gets_partials_then_finals() {
    let _heavy = heavy();
    let Some(server) = TestServer::start(|_| {}) else {
        return;
    };
    let mut socket = connect(&server).unwrap();
    socket
        .get_mut()
        .set_read_timeout(Some(Duration::from_millis(5)))
        .unwrap();
    socket
        .send(Message::Text(
            r#"{"type": "start", "language": "en"}"#.into(),
        ))
        .unwrap();
    let pcm = jfk_pcm();
    // The end of speech: the last 20 ms frame well above jfk.wav's noise floor (0.008).
    let last_loud = pcm
        .chunks(320)
        .rposition(|f| {
            let e: f64 = f.iter().map(|&s| (f64::from(s) / 32768.0).powi(2)).sum();
            (e / f.len() as f64).sqrt() >= 0.05
        })
        .unwrap();
    let speech_ends = Duration::from_secs_f64((last_loud + 1) as f64 * 0.02);

    let chunk = 1_600; // 100 ms
    let started = Instant::now();
    let mut got = Vec::new();
    for (i, samples) in pcm.chunks(chunk).enumerate() {
        let bytes: Vec<u8> = samples.iter().flat_map(|s| s.to_le_bytes()).collect();
        socket.send(Message::Binary(bytes.into())).unwrap();
        drain(&mut socket, started, &mut got, false);
        // Real time: chunk i+1 goes at (i+1) x 100 ms.
        let next = Duration::from_millis(100 * (i as u64 + 1));
        if let Some(wait) = next.checked_sub(started.elapsed()) {
            std::thread::sleep(wait);
        }
    }
    let audio_sent = started.elapsed();
    socket
        .send(Message::Text(r#"{"type": "stop"}"#.into()))
        .unwrap();
    socket
        .get_mut()
        .set_read_timeout(Some(Duration::from_secs(60)))
        .unwrap();
    drain(&mut socket, started, &mut got, true);

    let of = |kind: &str| -> Vec<(Duration, String)> {
        got.iter()
            .filter_map(|g| match g {
                Got::Json(at, v) if v["type"] == kind => {
                    Some((*at, v["text"].as_str().unwrap_or_default().to_owned()))
                }
                _ => None,
            })
            .collect()
    };
    let (partials, finals) = (of("partial"), of("final"));
    assert!(!partials.is_empty(), "{got:?}");
    assert!(
        partials[0].0 < audio_sent,
        "a partial came while the audio played: {got:?}"
    );
    assert!(!finals.is_empty(), "{got:?}");
    let text: Vec<&str> = finals.iter().map(|(_, t)| t.as_str()).collect();
    let text = text.join(" ");
    assert!(wer(JFK_TEXT, &text) <= 0.2, "{text:?} ({got:?})");
    assert!(
        matches!(got.last(), Some(Got::Closed(Some(CloseCode::Normal)))),
        "{got:?}"
    );
    assert!(got
        .iter()
        .any(|g| matches!(g, Got::Json(_, v) if v["type"] == "done")));
    let last_final = finals.last().unwrap().0;
    eprintln!(
        "live: {} partials, {} finals; speech ended at {:.2} s of the stream, audio sent by \
         {:.2} s; last final at {:.2} s: {:.2} s from the end of speech to the final text",
        partials.len(),
        finals.len(),
        speech_ends.as_secs_f64(),
        audio_sent.as_secs_f64(),
        last_final.as_secs_f64(),
        (last_final.saturating_sub(speech_ends)).as_secs_f64()
    );
    // (a final may come before the last frame: jfk.wav ends in half a second of quiet)
    assert!(
        last_final.saturating_sub(speech_ends) < Duration::from_secs(20),
        "{got:?}"
    );
}

#[test]
fn bad_frames_close_the_connection_cleanly() {
    let Some(server) = TestServer::start(|_| {}) else {
        return;
    };
    let close_of = |message: Message| {
        let mut socket = connect(&server).unwrap();
        socket.send(message).unwrap();
        let mut got = Vec::new();
        drain(&mut socket, Instant::now(), &mut got, true);
        got
    };
    let closed_with = |got: &[Got], code: CloseCode| {
        matches!(got.last(), Some(Got::Closed(Some(c))) if *c == code)
            && got
                .iter()
                .any(|g| matches!(g, Got::Json(_, v) if v["type"] == "error"))
    };
    // An odd number of bytes is not 16-bit PCM.
    let got = close_of(Message::Binary(vec![1u8, 2, 3].into()));
    assert!(closed_with(&got, CloseCode::Invalid), "{got:?}");
    // Text that is not one of the two messages.
    let got = close_of(Message::Text("hello".into()));
    assert!(closed_with(&got, CloseCode::Unsupported), "{got:?}");
    let got = close_of(Message::Text(
        r#"{"type": "start", "language": "xx"}"#.into(),
    ));
    assert!(closed_with(&got, CloseCode::Unsupported), "{got:?}");
    // A language the model cannot take (tiny.en is English-only), by the recognizer's rules:
    // said at the start, not at the first final.
    let got = close_of(Message::Text(
        r#"{"type": "start", "language": "de"}"#.into(),
    ));
    assert!(closed_with(&got, CloseCode::Unsupported), "{got:?}");
    let (_, error) = close_and_error(&got);
    assert!(error.contains("English-only"), "{error}");
    // Over a second of audio in one frame: 1009.
    for bytes in [40_000, 200_000] {
        let got = close_of(Message::Binary(vec![0u8; bytes].into()));
        assert!(closed_with(&got, CloseCode::Size), "{bytes}: {got:?}");
    }
    // The server still serves.
    assert_eq!(server.get("/health").status, 200);
}

#[test]
fn the_language_follows_the_recognizers_rules() {
    let _heavy = heavy();
    let Some(server) = TestServer::start(|_| {}) else {
        return;
    };
    // Any case, or the English name: the recognizer's reading of a language, as over HTTP.
    for language in ["EN", "English"] {
        let mut socket = connect(&server).unwrap();
        socket
            .send(Message::Text(
                format!(r#"{{"type": "start", "language": "{language}"}}"#).into(),
            ))
            .unwrap();
        for second in jfk_pcm().chunks(16_000) {
            let bytes: Vec<u8> = second.iter().flat_map(|s| s.to_le_bytes()).collect();
            socket.send(Message::Binary(bytes.into())).unwrap();
        }
        socket
            .send(Message::Text(r#"{"type": "stop"}"#.into()))
            .unwrap();
        let mut got = Vec::new();
        drain(&mut socket, Instant::now(), &mut got, true);
        let text: Vec<&str> = got
            .iter()
            .filter_map(|g| match g {
                Got::Json(_, v) if v["type"] == "final" => v["text"].as_str(),
                _ => None,
            })
            .collect();
        let text = text.join(" ");
        assert!(
            wer(JFK_TEXT, &text) <= 0.2,
            "{language}: {text:?} ({got:?})"
        );
        assert!(
            matches!(got.last(), Some(Got::Closed(Some(CloseCode::Normal)))),
            "{language}: {got:?}"
        );
    }
}

#[test]
fn connections_over_the_limit_get_503() {
    let Some(server) = TestServer::start(|c| c.server.max_live_connections = 1) else {
        return;
    };
    let first = connect(&server).unwrap();
    match connect(&server) {
        Err(tungstenite::Error::Http(response)) => assert_eq!(response.status(), 503),
        other => panic!("expected 503, got {:?}", other.map(|_| "a connection")),
    }
    drop(first);
    // Freed once the first one goes.
    let until = Instant::now() + Duration::from_secs(10);
    loop {
        match connect(&server) {
            Ok(_) => break,
            Err(_) if Instant::now() < until => std::thread::sleep(Duration::from_millis(50)),
            Err(e) => panic!("{e}"),
        }
    }
}

fn set_short_reads(socket: &mut Socket) {
    socket
        .get_mut()
        .set_read_timeout(Some(Duration::from_millis(50)))
        .unwrap();
}

/// The close that ended `got`, and the error message before it.
fn close_and_error(got: &[Got]) -> (Option<CloseCode>, String) {
    let code = match got.last() {
        Some(Got::Closed(code)) => *code,
        _ => None,
    };
    let error = got
        .iter()
        .find_map(|g| match g {
            Got::Json(_, v) if v["type"] == "error" => v["message"].as_str().map(str::to_owned),
            _ => None,
        })
        .unwrap_or_default();
    (code, error)
}

#[test]
fn pings_do_not_keep_a_session_open_and_sessions_have_a_length() {
    let Some(server) = TestServer::start(|c| {
        c.server.live_idle_seconds = 1.5;
        c.server.live_max_session_seconds = 4.0;
    }) else {
        return;
    };
    // Pings and empty frames every 0.2 s: closed for lack of audio after 1.5 s.
    let mut socket = connect(&server).unwrap();
    set_short_reads(&mut socket);
    let started = Instant::now();
    let mut got = Vec::new();
    while started.elapsed() < Duration::from_secs(10) {
        let _ = socket.send(Message::Ping(vec![1u8].into()));
        let _ = socket.send(Message::Binary(Vec::new().into()));
        if drain(&mut socket, started, &mut got, false) {
            break;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    let took = started.elapsed();
    let (code, error) = close_and_error(&got);
    assert_eq!(code, Some(CloseCode::Policy), "{got:?}");
    assert!(error.contains("no audio for 1.5 s"), "{error}");
    assert!(took < Duration::from_secs(4), "{took:?}");

    // Audio all along (quiet, in real time): closed at the session's length.
    let mut socket = connect(&server).unwrap();
    set_short_reads(&mut socket);
    let started = Instant::now();
    let mut got = Vec::new();
    let frame: Vec<u8> = (0..1_600u32)
        .flat_map(|i| (((i * 7919) % 200) as i16 - 100).to_le_bytes())
        .collect();
    while started.elapsed() < Duration::from_secs(15) {
        let _ = socket.send(Message::Binary(frame.clone().into()));
        if drain(&mut socket, started, &mut got, false) {
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    let took = started.elapsed();
    let (code, error) = close_and_error(&got);
    assert_eq!(code, Some(CloseCode::Policy), "{got:?}");
    assert!(error.contains("live_max_session_seconds"), "{error}");
    assert!(
        took >= Duration::from_secs(4) && took < Duration::from_secs(8),
        "{took:?}"
    );
    assert_eq!(server.get("/health").status, 200);
}

#[test]
fn audio_faster_than_real_time_is_cut_at_the_utterance_cap() {
    let _heavy = heavy();
    let Some(server) = TestServer::start(|_| {}) else {
        return;
    };
    let mut socket = connect(&server).unwrap();
    set_short_reads(&mut socket);
    let started = Instant::now();
    let mut got = Vec::new();
    // 66 s of speech (jfk.wav six times) sent at once in one-second frames.
    let pcm: Vec<u8> = jfk_pcm()
        .repeat(6)
        .iter()
        .flat_map(|s| s.to_le_bytes())
        .collect();
    for frame in pcm.chunks(32_000) {
        socket.send(Message::Binary(frame.to_vec().into())).unwrap();
        drain(&mut socket, started, &mut got, false);
    }
    socket
        .send(Message::Text(r#"{"type": "stop"}"#.into()))
        .unwrap();
    socket
        .get_mut()
        .set_read_timeout(Some(Duration::from_secs(120)))
        .unwrap();
    drain(&mut socket, started, &mut got, true);
    let finals: Vec<&Value> = got
        .iter()
        .filter_map(|g| match g {
            Got::Json(_, v) if v["type"] == "final" => Some(v),
            _ => None,
        })
        .collect();
    assert!(finals.len() >= 3, "{got:?}");
    for f in &finals {
        let length = f["end"].as_f64().unwrap() - f["start"].as_f64().unwrap();
        assert!(length <= 26.0, "a final of {length} s: {f}");
    }
    assert!(
        matches!(got.last(), Some(Got::Closed(Some(CloseCode::Normal)))),
        "{got:?}"
    );
}

#[test]
fn a_client_still_sending_gets_the_close_code_not_a_reset() {
    let Some(server) = TestServer::start(|_| {}) else {
        return;
    };
    let mut socket = connect(&server).unwrap();
    // A bad frame, then a stream of audio the server will not read as audio any more.
    socket
        .send(Message::Binary(vec![1u8, 2, 3].into()))
        .unwrap();
    for _ in 0..40 {
        if socket
            .send(Message::Binary(vec![0u8; 32_000].into()))
            .is_err()
        {
            break;
        }
    }
    let mut got = Vec::new();
    socket
        .get_mut()
        .set_read_timeout(Some(Duration::from_secs(30)))
        .unwrap();
    drain(&mut socket, Instant::now(), &mut got, true);
    let (code, error) = close_and_error(&got);
    assert_eq!(code, Some(CloseCode::Invalid), "{got:?}");
    assert!(error.contains("even number of bytes"), "{error}");
}

// ---- Wyoming (Home Assistant), driven by the `wyoming` package ----

/// Runs server/tests/wyoming_client.py; `None` when python3 or the `wyoming` package is
/// missing (a failure when WHISPER_STEADY_REQUIRE_MODEL=1, as in CI).
fn wyoming_client(args: &[&str]) -> Option<Value> {
    let required = std::env::var("WHISPER_STEADY_REQUIRE_MODEL").is_ok_and(|v| v == "1");
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/wyoming_client.py");
    let Ok(out) = std::process::Command::new("python3")
        .arg(script)
        .args(args)
        .output()
    else {
        assert!(!required, "python3 is needed for the Wyoming client");
        return None;
    };
    let stderr = String::from_utf8_lossy(&out.stderr);
    if !out.status.success() && stderr.contains("No module named 'wyoming'") {
        assert!(!required, "the `wyoming` package is needed: {stderr}");
        eprintln!("skipped: {stderr}");
        return None;
    }
    assert!(out.status.success(), "the Wyoming client failed: {stderr}");
    Some(serde_json::from_slice(&out.stdout).unwrap())
}

/// One raw Wyoming exchange: sends `bytes`, returns the event types and data that come back
/// until the server closes or goes quiet for a second.
fn wyoming_raw(addr: std::net::SocketAddr, bytes: &[u8]) -> Vec<(String, Value)> {
    use std::io::{BufRead, BufReader, Read, Write};
    let mut stream = TcpStream::connect(addr).unwrap();
    stream.write_all(bytes).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(1)))
        .unwrap();
    let mut reader = BufReader::new(stream);
    let mut events = Vec::new();
    let mut line = String::new();
    while matches!(reader.read_line(&mut line), Ok(n) if n > 0) {
        let header: Value = serde_json::from_str(line.trim()).unwrap();
        let mut data = header.get("data").cloned().unwrap_or(Value::Null);
        if let Some(n) = header["data_length"].as_u64() {
            let mut block = vec![0u8; n as usize];
            reader.read_exact(&mut block).unwrap();
            data = serde_json::from_slice(&block).unwrap();
        }
        events.push((header["type"].as_str().unwrap().to_owned(), data));
        line.clear();
    }
    events
}

#[test]
fn wyoming_describe_transcribe_concurrent_clients_and_malformed_events() {
    let _heavy = heavy();
    let Some(server) = TestServer::start(|c| {
        c.wyoming.port = Some(0);
        c.recognition.workers = Some(2);
        c.recognition.threads_per_worker = Some(1);
    }) else {
        return;
    };
    let addr = server.wyoming.unwrap();
    let (host, port) = (addr.ip().to_string(), addr.port().to_string());
    let jfk = shared_audio("jfk.wav").display().to_string();

    let Some(info) = wyoming_client(&["describe", &host, &port]) else {
        return;
    };
    assert_eq!(info["program"], "whisper-steady", "{info}");
    assert_eq!(info["streaming"], true);
    assert_eq!(info["models"][0]["languages"], serde_json::json!(["en"]));

    let seen = wyoming_client(&["transcribe", &host, &port, &jfk]).unwrap();
    let text = seen["text"].as_str().unwrap();
    assert!(wer(JFK_TEXT, text) <= 0.1, "{seen}");
    assert_eq!(seen["language"], "en");
    let events: Vec<&str> = seen["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e.as_str().unwrap())
        .collect();
    assert_eq!(events.first(), Some(&"transcript-start"), "{seen}");
    assert_eq!(
        &events[events.len() - 2..],
        ["transcript-stop", "transcript"]
    );
    let streamed: String = seen["chunks"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c.as_str().unwrap())
        .collect();
    assert_eq!(streamed.trim(), text, "{seen}");
    eprintln!(
        "wyoming: transcript {:.2} s after audio-stop",
        seen["seconds_after_stop"].as_f64().unwrap()
    );

    // Five clients at once, through the same queue.
    let all = wyoming_client(&["concurrent", &host, &port, &jfk, "5"]).unwrap();
    for result in all["results"].as_array().unwrap() {
        let text = result["text"].as_str().unwrap_or_default();
        assert!(wer(JFK_TEXT, text) <= 0.1, "{result}");
    }

    // Malformed: not JSON; no type; an absurd payload; all answered with an error event.
    for (bytes, code) in [
        (b"garbage\n".to_vec(), "malformed"),
        (b"{\"data\": {}}\n".to_vec(), "malformed"),
        (
            b"{\"type\": \"audio-chunk\", \"payload_length\": 999999999}\n".to_vec(),
            "malformed",
        ),
    ] {
        let events = wyoming_raw(addr, &bytes);
        assert_eq!(events.len(), 1, "{events:?}");
        assert_eq!(events[0].0, "error");
        assert_eq!(events[0].1["code"], code, "{events:?}");
    }
    // Audio the server cannot take: an error event, and the connection goes on (ping, pong).
    let events = wyoming_raw(
        addr,
        b"{\"type\": \"audio-start\", \"data\": {\"rate\": 1, \"width\": 2, \"channels\": 1}}\n\
          {\"type\": \"ping\", \"data\": {\"text\": \"still there?\"}}\n",
    );
    assert_eq!(events[0].0, "error", "{events:?}");
    assert!(events[0].1["text"].as_str().unwrap().contains("rate 1"));
    assert_eq!(events[1].0, "pong");
    assert_eq!(events[1].1["text"], "still there?");
    // audio-stop without audio: an empty transcript; unknown events are ignored.
    let events = wyoming_raw(
        addr,
        b"{\"type\": \"select-program\", \"data\": {\"name\": \"x\"}}\n{\"type\": \"audio-stop\"}\n",
    );
    assert_eq!(events.len(), 1, "{events:?}");
    assert_eq!(events[0].0, "transcript");
    assert_eq!(events[0].1["text"], "");
    assert_eq!(server.get("/health").status, 200);
}

#[test]
fn wyoming_detects_and_forces_languages_with_a_multilingual_model() {
    let _heavy = heavy();
    let Some(model) = common::multilingual_model_path() else {
        return;
    };
    let Some(server) = TestServer::start(move |c| {
        c.wyoming.port = Some(0);
        c.recognition.model_path = Some(model);
    }) else {
        return;
    };
    let addr = server.wyoming.unwrap();
    let (host, port) = (addr.ip().to_string(), addr.port().to_string());
    // A German command, spoken by espeak-ng (22,050 Hz: resampled by the server).
    let dir = tempfile::tempdir().unwrap();
    let wav = dir.path().join("de.wav");
    let made = std::process::Command::new("espeak-ng")
        .args(["-v", "de", "-s", "140", "-w"])
        .arg(&wav)
        .arg("Schalte bitte das Licht im Wohnzimmer aus.")
        .status();
    if !made.is_ok_and(|s| s.success()) {
        assert!(
            std::env::var("WHISPER_STEADY_REQUIRE_MODEL").is_err(),
            "espeak-ng is needed"
        );
        return;
    }
    let wav = wav.display().to_string();
    let Some(info) = wyoming_client(&["describe", &host, &port]) else {
        return;
    };
    let languages = info["models"][0]["languages"].as_array().unwrap();
    assert!(
        languages.len() > 90 && languages.contains(&"de".into()),
        "{info}"
    );
    for language in [None, Some("de")] {
        let mut args = vec!["transcribe", host.as_str(), port.as_str(), wav.as_str()];
        args.extend(language);
        let seen = wyoming_client(&args).unwrap();
        assert_eq!(seen["language"], "de", "{language:?}: {seen}");
        let text = seen["text"].as_str().unwrap().to_lowercase();
        assert!(
            text.contains("licht") && text.contains("wohnzimmer"),
            "{language:?}: {seen}"
        );
    }
}

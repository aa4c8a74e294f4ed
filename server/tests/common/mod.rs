//! A server on a loopback port, and a raw HTTP/1.1 client that can also send broken requests.

#![allow(dead_code, unused_imports)]

use std::io::{Read, Write};
use std::net::{Shutdown, SocketAddr, TcpStream};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use recognizer_server::{serve_all, AppState, Config};

pub use test_support::{
    model_path, multilingual_model_path, shared_audio, vad_model_path, JFK_TEXT,
};
pub use whisper_steady::wer::word_error_rate as wer;

/// Starts the server binary as `command` says and waits for its first line, `listening on
/// http://ADDR`; returns the process and the address.
pub fn spawn_listening(command: &mut std::process::Command) -> (std::process::Child, SocketAddr) {
    spawn_listening_logged(command, std::process::Stdio::null())
}

/// [`spawn_listening`] with the server's stderr (its log) going to `stderr`.
pub fn spawn_listening_logged(
    command: &mut std::process::Command,
    stderr: std::process::Stdio,
) -> (std::process::Child, SocketAddr) {
    use std::io::BufRead;
    let mut child = command
        .stdout(std::process::Stdio::piped())
        .stderr(stderr)
        .spawn()
        .unwrap();
    let mut line = String::new();
    std::io::BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let addr: SocketAddr = line
        .trim()
        .strip_prefix("listening on http://")
        .unwrap_or_else(|| panic!("unexpected first line: {line:?}"))
        .parse()
        .unwrap();
    (child, addr)
}

/// A running server; stopped (gracefully) when dropped.
pub struct TestServer {
    pub addr: SocketAddr,
    /// The Wyoming server's address, when the config turns it on (`wyoming.port`).
    pub wyoming: Option<SocketAddr>,
    pub storage: PathBuf,
    pub state: Arc<AppState>,
    _dir: tempfile::TempDir,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl TestServer {
    /// Starts a server on 127.0.0.1 with a fresh storage folder; `tune` adjusts the config.
    pub fn start(tune: impl FnOnce(&mut Config)) -> Option<TestServer> {
        Self::start_state(tune, |config| AppState::new(config).unwrap())
    }

    /// The same, serving the state that `build` makes from the tuned config (to give it a
    /// recognizer built by hand, with simulated GPUs say).
    pub fn start_state(
        tune: impl FnOnce(&mut Config),
        build: impl FnOnce(Config) -> Arc<AppState>,
    ) -> Option<TestServer> {
        let model = model_path()?;
        let dir = tempfile::tempdir().unwrap();
        let mut config = Config::default();
        config.server.host = "127.0.0.1".into();
        config.server.port = 0;
        config.recognition.model_path = Some(model);
        config.recognition.default_params.use_gpu = recognizer_server::config::UseGpu::Off;
        config.storage.dir = dir.path().join("storage");
        tune(&mut config);
        config.validate().unwrap();
        let state = build(config);
        let storage = state.storage.root().to_path_buf();
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap();
        let listener = runtime
            .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
            .unwrap();
        let addr = listener.local_addr().unwrap();
        let wyoming_listener = state.config.wyoming.port.map(|_| {
            runtime
                .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
                .unwrap()
        });
        let wyoming = wyoming_listener.as_ref().map(|l| l.local_addr().unwrap());
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let served = Arc::clone(&state);
        let thread = std::thread::spawn(move || {
            runtime
                .block_on(serve_all(listener, wyoming_listener, served, async {
                    let _ = stopped.await;
                }))
                .unwrap();
        });
        Some(TestServer {
            addr,
            wyoming,
            storage,
            state,
            _dir: dir,
            stop: Some(stop),
            thread: Some(thread),
        })
    }

    /// Sends raw bytes and reads the whole response.
    pub fn raw(&self, request: &[u8]) -> Response {
        raw(self.addr, request)
    }

    /// `GET path`.
    pub fn get(&self, path: &str) -> Response {
        self.raw(
            format!("GET {path} HTTP/1.1\r\nHost: test\r\nConnection: close\r\n\r\n").as_bytes(),
        )
    }

    /// `POST path` with a body and a content type.
    pub fn post(&self, path: &str, content_type: &str, body: &[u8]) -> Response {
        let mut req = format!(
            "POST {path} HTTP/1.1\r\nHost: test\r\nConnection: close\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\n\r\n",
            body.len()
        )
        .into_bytes();
        req.extend_from_slice(body);
        self.raw(&req)
    }

    /// `POST path` with JSON.
    pub fn post_json(&self, path: &str, json: &serde_json::Value) -> Response {
        self.post(path, "application/json", json.to_string().as_bytes())
    }

    /// Uploads a file and returns its id.
    pub fn upload(&self, bytes: &[u8], filename: &str) -> String {
        let r = self.post(
            &format!("/api/upload?filename={filename}"),
            "application/octet-stream",
            bytes,
        );
        assert_eq!(r.status, 200, "{}", r.text());
        r.json()["id"].as_str().unwrap().to_owned()
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// A response.
#[derive(Debug)]
pub struct Response {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Response {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {}", self.text()))
    }
}

/// Sends raw bytes to `addr` (from a second thread, so that a server answering before it has
/// read everything, as with 413, is still heard) and reads the response until the server closes
/// the connection (every request here says `Connection: close`, or is broken).
pub fn raw(addr: SocketAddr, request: &[u8]) -> Response {
    let mut stream = TcpStream::connect(addr).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(600)))
        .unwrap();
    let mut writer = stream.try_clone().unwrap();
    let request = request.to_vec();
    let sender = std::thread::spawn(move || {
        let _ = writer.write_all(&request);
    });
    let mut data = Vec::new();
    // A reset after the response (unread body) ends the read; what arrived is kept.
    let _ = stream.read_to_end(&mut data);
    let _ = stream.shutdown(Shutdown::Both);
    let _ = sender.join();
    parse(&data).unwrap_or_else(|| panic!("no HTTP response: {:?}", String::from_utf8_lossy(&data)))
}

fn parse(data: &[u8]) -> Option<Response> {
    let end = data.windows(4).position(|w| w == b"\r\n\r\n")?;
    let head = std::str::from_utf8(&data[..end]).ok()?;
    let mut lines = head.split("\r\n");
    let status: u16 = lines.next()?.split(' ').nth(1)?.parse().ok()?;
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_owned(), v.trim().to_owned()))
        .collect();
    let mut body = data[end + 4..].to_vec();
    let chunked = headers
        .iter()
        .any(|(k, v)| k.eq_ignore_ascii_case("transfer-encoding") && v.contains("chunked"));
    if chunked {
        let mut out = Vec::new();
        let mut rest = &body[..];
        loop {
            let line_end = rest.windows(2).position(|w| w == b"\r\n")?;
            let size =
                usize::from_str_radix(std::str::from_utf8(&rest[..line_end]).ok()?.trim(), 16)
                    .ok()?;
            rest = &rest[line_end + 2..];
            if size == 0 {
                break;
            }
            out.extend_from_slice(rest.get(..size)?);
            rest = rest.get(size + 2..)?;
        }
        body = out;
    }
    Some(Response {
        status,
        headers,
        body,
    })
}

/// A multipart/form-data body as OpenAI's official Python client (httpx) builds it: a random
/// hex boundary, `form-data` parts with the file's name and a content type guessed from it.
pub fn openai_multipart(
    fields: &[(&str, &str)],
    file: Option<(&str, &str, &[u8])>,
) -> (String, Vec<u8>) {
    let boundary = "4d8e0d9b6a8a4f43b7f1f2a2d7c6e5b1";
    let mut body = Vec::new();
    for (name, value) in fields {
        body.extend_from_slice(
            format!("--{boundary}\r\nContent-Disposition: form-data; name=\"{name}\"\r\n\r\n{value}\r\n").as_bytes(),
        );
    }
    if let Some((filename, content_type, bytes)) = file {
        body.extend_from_slice(
            format!(
                "--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"{filename}\"\r\nContent-Type: {content_type}\r\n\r\n"
            )
            .as_bytes(),
        );
        body.extend_from_slice(bytes);
        body.extend_from_slice(b"\r\n");
    }
    body.extend_from_slice(format!("--{boundary}--\r\n").as_bytes());
    (format!("multipart/form-data; boundary={boundary}"), body)
}

/// The request line and headers the official client sends, around a multipart body.
pub fn openai_request(content_type: &str, body: &[u8]) -> Vec<u8> {
    openai_request_to("/v1/audio/transcriptions", content_type, body)
}

/// The same to another path.
pub fn openai_request_to(path: &str, content_type: &str, body: &[u8]) -> Vec<u8> {
    let mut req = format!(
        "POST {path} HTTP/1.1\r\nHost: test\r\nAccept: application/json\r\nAccept-Encoding: gzip, deflate\r\nAuthorization: Bearer sk-test\r\nUser-Agent: OpenAI/Python 1.54.0\r\nX-Stainless-Lang: python\r\nConnection: close\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\n\r\n",
        body.len()
    )
    .into_bytes();
    req.extend_from_slice(body);
    req
}

/// jfk.wav `times` times over, as one WAV file (the same format, sizes rewritten).
pub fn jfk_repeated(times: usize) -> Vec<u8> {
    let wav = std::fs::read(shared_audio("jfk.wav")).unwrap();
    let data = wav.windows(4).position(|w| w == b"data").unwrap();
    let samples = &wav[data + 8..];
    let mut out = wav[..data + 8].to_vec();
    out.extend(std::iter::repeat_n(samples, times).flatten());
    let riff = (out.len() - 8) as u32;
    out[4..8].copy_from_slice(&riff.to_le_bytes());
    let size = (samples.len() * times) as u32;
    out[data + 4..data + 8].copy_from_slice(&size.to_le_bytes());
    out
}

/// Sends `request` and reads a Server-Sent Events response as it arrives: the head (status
/// line and headers) and each `data:` payload with the time since the request was sent.
pub fn sse(addr: SocketAddr, request: &[u8]) -> (String, Vec<(Duration, String)>) {
    use std::io::{BufRead, BufReader};
    let started = std::time::Instant::now();
    let mut stream = TcpStream::connect(addr).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(300)))
        .unwrap();
    stream.write_all(request).unwrap();
    let mut reader = BufReader::new(stream);
    let mut head = String::new();
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line).unwrap() == 0 {
            return (head, Vec::new());
        }
        if line == "\r\n" {
            break;
        }
        head.push_str(&line);
    }
    let mut events = Vec::new();
    // Chunked framing lines come and go; the events are the `data:` lines.
    let mut line = String::new();
    while reader.read_line(&mut line).unwrap_or(0) > 0 {
        if let Some(data) = line.trim_end().strip_prefix("data: ") {
            events.push((started.elapsed(), data.to_owned()));
        }
        line.clear();
    }
    (head, events)
}

//! The web page at `/` in a real browser: headless Chromium (Debian's `chromium`) driven over
//! the DevTools protocol. The upload path sets jfk.wav on the file input and clicks Transcribe;
//! the microphone path runs with Chromium's fake capture device playing jfk.wav. Both must show
//! the transcript. Skipped without Chromium unless `WHISPER_STEADY_REQUIRE_MODEL=1` (CI installs
//! it). No screenshots are taken.

#![cfg(unix)]

mod common;

use std::net::TcpStream;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::{shared_audio, wer, TestServer, JFK_TEXT};
use serde_json::{json, Value};
use tungstenite::{Message, WebSocket};

/// A headless Chromium and a DevTools connection to its page.
struct Browser {
    child: Child,
    _profile: tempfile::TempDir,
    devtools: WebSocket<TcpStream>,
    next_id: u64,
}

impl Drop for Browser {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn chromium() -> Option<&'static str> {
    ["chromium", "chromium-browser"].into_iter().find(|name| {
        Command::new(name)
            .arg("--version")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success())
    })
}

impl Browser {
    fn open(binary: &str, url: &str, fake_audio: &Path) -> Browser {
        let profile = tempfile::tempdir().unwrap();
        let child = Command::new(binary)
            .args([
                "--headless=new",
                "--no-sandbox",
                "--disable-gpu",
                "--no-first-run",
                "--remote-debugging-port=0",
                "--use-fake-ui-for-media-stream",
                "--use-fake-device-for-media-stream",
                "--autoplay-policy=no-user-gesture-required",
            ])
            // Played in a loop: on a machine loaded by other work Chromium's fake device can
            // lose its first pass (the page then heard about a second of it); the next pass
            // still says it all.
            .arg(format!(
                "--use-file-for-fake-audio-capture={}",
                fake_audio.display()
            ))
            .arg(format!("--user-data-dir={}", profile.path().display()))
            .arg(url)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        // Chromium writes the port it chose into the profile.
        let port_file = profile.path().join("DevToolsActivePort");
        let until = Instant::now() + Duration::from_secs(30);
        let port: u16 = loop {
            if let Some(port) = std::fs::read_to_string(&port_file)
                .ok()
                .and_then(|s| s.lines().next()?.trim().parse().ok())
            {
                break port;
            }
            assert!(Instant::now() < until, "Chromium did not start");
            std::thread::sleep(Duration::from_millis(100));
        };
        eprintln!("browser: DevTools on port {port}");
        let addr = format!("127.0.0.1:{port}").parse().unwrap();
        let target = loop {
            let list = devtools_list(addr);
            let page = list.as_array().and_then(|targets| {
                targets
                    .iter()
                    .find(|t| {
                        t["type"] == "page" && t["url"].as_str().is_some_and(|u| u.starts_with(url))
                    })
                    .and_then(|t| t["webSocketDebuggerUrl"].as_str().map(str::to_owned))
            });
            if let Some(page) = page {
                break page;
            }
            assert!(Instant::now() < until, "no page in {list}");
            std::thread::sleep(Duration::from_millis(100));
        };
        eprintln!("browser: page {target}");
        let stream = TcpStream::connect(addr).unwrap();
        stream
            .set_read_timeout(Some(Duration::from_secs(90)))
            .unwrap();
        let (devtools, _) = tungstenite::client(target.as_str(), stream).unwrap();
        Browser {
            child,
            _profile: profile,
            devtools,
            next_id: 1,
        }
    }

    /// One DevTools command; its `result`.
    fn call(&mut self, method: &str, params: Value) -> Value {
        let id = self.next_id;
        self.next_id += 1;
        let request = json!({"id": id, "method": method, "params": params});
        self.devtools
            .send(Message::Text(request.to_string().into()))
            .unwrap();
        loop {
            if let Message::Text(text) = self.devtools.read().unwrap() {
                let reply: Value = serde_json::from_str(text.as_str()).unwrap();
                if reply["id"] == id {
                    assert!(reply.get("error").is_none(), "{method}: {reply}");
                    return reply["result"].clone();
                }
            }
        }
    }

    /// Evaluates JavaScript in the page; its value.
    fn eval(&mut self, expression: &str) -> Value {
        let result = self.call(
            "Runtime.evaluate",
            json!({"expression": expression, "returnByValue": true, "awaitPromise": true}),
        );
        assert!(
            result.get("exceptionDetails").is_none(),
            "{expression}: {result}"
        );
        result["result"]["value"].clone()
    }

    /// The text of an element.
    /// Saves a PNG of the page's viewport (1000 x 1100 CSS pixels) scrolled to `selector`.
    fn screenshot(&mut self, path: &Path, selector: &str) {
        use base64::Engine;
        self.call(
            "Emulation.setDeviceMetricsOverride",
            json!({"width": 1000, "height": 1100, "deviceScaleFactor": 1, "mobile": false}),
        );
        self.eval(&format!(
            "document.querySelector({selector:?}).scrollIntoView(); true"
        ));
        std::thread::sleep(Duration::from_millis(500));
        let shot = self.call("Page.captureScreenshot", json!({"format": "png"}));
        let png = base64::engine::general_purpose::STANDARD
            .decode(shot["data"].as_str().unwrap())
            .unwrap();
        std::fs::write(path, png).unwrap();
    }

    fn text(&mut self, selector: &str) -> String {
        // Empty until the element exists (the page may still be loading).
        let js = format!("(document.querySelector({selector:?}) || {{}}).innerText || ''");
        self.eval(&js).as_str().unwrap_or_default().to_owned()
    }

    /// Waits until `done` holds for the element's text (two minutes at most: a loaded machine
    /// runs the live partials slowly).
    fn wait_for_text(&mut self, selector: &str, done: impl Fn(&str) -> bool) -> String {
        let until = Instant::now() + Duration::from_secs(120);
        loop {
            let text = self.text(selector);
            if done(&text) {
                return text;
            }
            if Instant::now() >= until {
                let more = self.text("#live-status") + " | " + &self.text("#live-partial");
                panic!("{selector}: {text:?} ({more})");
            }
            std::thread::sleep(Duration::from_millis(200));
        }
    }
}

/// `GET /json/list` of the DevTools server, which keeps the connection open: the body is read
/// by its `Content-Length`.
fn devtools_list(addr: std::net::SocketAddr) -> Value {
    use std::io::{BufRead, BufReader, Read, Write};
    let mut stream = TcpStream::connect(addr).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    stream
        .write_all(format!("GET /json/list HTTP/1.1\r\nHost: {addr}\r\n\r\n").as_bytes())
        .unwrap();
    let mut reader = BufReader::new(stream);
    let mut length = 0;
    loop {
        let mut line = String::new();
        reader.read_line(&mut line).unwrap();
        if line.trim().is_empty() {
            break;
        }
        if let Some((name, value)) = line.split_once(':') {
            if name.eq_ignore_ascii_case("content-length") {
                length = value.trim().parse().unwrap();
            }
        }
    }
    let mut body = vec![0; length];
    reader.read_exact(&mut body).unwrap();
    serde_json::from_slice(&body).unwrap()
}

#[test]
fn the_page_transcribes_an_upload_and_the_microphone() {
    // A server with an API key: the page sends it as a header and as a WebSocket subprotocol.
    let Some(server) = TestServer::start(|c| {
        c.auth.keys = vec![recognizer_server::config::ApiKey {
            name: "browser".into(),
            key: Some("sk-browser-page-1".into()),
            ..Default::default()
        }];
    }) else {
        return;
    };
    let Some(binary) = chromium() else {
        let required = std::env::var("WHISPER_STEADY_REQUIRE_MODEL").is_ok_and(|v| v == "1");
        assert!(
            !required,
            "Chromium is needed (Debian: apt-get install chromium)"
        );
        eprintln!("skipped: no Chromium");
        return;
    };
    let jfk = shared_audio("jfk.wav").canonicalize().unwrap();
    let url = format!("http://{}/", server.addr);
    let mut browser = Browser::open(binary, &url, &jfk);
    browser.wait_for_text("h1", |t| t == "recognizer-server");
    let links = browser
        .eval("[...document.querySelectorAll('nav a')].map(a => a.getAttribute('href')).join(' ')");
    assert!(
        links.as_str().unwrap().contains("/health") && links.as_str().unwrap().contains("/metrics")
    );

    // The language choice: auto-detect unless the user picks one.
    let choice = browser.eval(
        "const l = document.querySelector('#language'); \
         l.value + ' ' + l.options[l.selectedIndex].text + ' ' + l.options.length",
    );
    let choice = choice.as_str().unwrap();
    assert!(choice.starts_with("auto auto-detect "), "{choice}");

    // Upload: the file input gets jfk.wav, as a user choosing it would.
    let root = browser.call("DOM.getDocument", json!({}))["root"]["nodeId"].clone();
    let input = browser.call(
        "DOM.querySelector",
        json!({"nodeId": root, "selector": "#file"}),
    )["nodeId"]
        .clone();
    browser.call(
        "DOM.setFileInputFiles",
        json!({"nodeId": input, "files": [jfk.display().to_string()]}),
    );
    // Without the key: the server's answer is shown.
    browser.eval("document.querySelector('#transcribe').click()");
    let status = browser.wait_for_text("#status", |t| t.contains("API key"));
    assert!(status.contains("needs an API key"), "{status}");
    // With it (typed into the key field, as a user would).
    browser.eval(
        "const k = document.querySelector('#key'); k.value = 'sk-browser-page-1'; \
         k.dispatchEvent(new Event('change'))",
    );
    browser.eval("document.querySelector('#transcribe').click()");
    let transcript = browser.wait_for_text("#transcript", |t| t.contains("country"));
    // The language the answer names is shown (tiny.en: English, taken rather than detected).
    let status = browser.wait_for_text("#status", |t| t.starts_with("done"));
    assert!(status.ends_with("language english"), "{status}");
    assert!(transcript.starts_with("0.00 → "), "{transcript}");
    assert!(
        wer(JFK_TEXT, &transcript.replace('→', " ")) <= 0.4,
        "{transcript}"
    );
    let spoken: String = transcript
        .lines()
        .map(|l| l.split_once('\t').map_or(l, |(_, t)| t))
        .collect::<Vec<_>>()
        .join(" ");
    assert!(
        spoken
            .to_lowercase()
            .contains("ask not what your country can do for you"),
        "{transcript}"
    );

    // The result can be downloaded (SRT, VTT, JSON).
    let downloads = browser.eval("document.querySelector('#downloads').hidden");
    assert_eq!(downloads, json!(false));

    // The model choice: the server's model, chosen as the default.
    let model = browser.eval(
        "const m = document.querySelector('#model'); \
         m.options.length + ' ' + m.options[m.selectedIndex].text",
    );
    let model = model.as_str().unwrap();
    assert!(
        model.starts_with("1 ") && model.ends_with("(default)"),
        "{model}"
    );

    // The status panel: health, the lanes and the models, from /health.
    let status = browser.wait_for_text("#health-status", |t| t.starts_with("ok"));
    assert!(status.contains("cpu"), "{status}");
    let lanes = browser.wait_for_text("#lanes", |t| t.contains("cpu"));
    assert!(lanes.contains("succeeded"), "{lanes}");
    let models = browser.wait_for_text("#models", |t| t.contains("(default)"));
    assert!(models.contains("yes"), "{models}");
    let drawn = browser.eval(
        "[...document.querySelectorAll('.chart canvas')].length + ' ' + \
         document.querySelector('#now-queue').textContent",
    );
    assert!(drawn.as_str().unwrap().starts_with("5 0 / "), "{drawn}");
    // Screenshots for the docs, when asked for (WHISPER_STEADY_SCREENSHOTS=docs/images).
    if let Some(dir) = std::env::var_os("WHISPER_STEADY_SCREENSHOTS") {
        let dir = std::path::PathBuf::from(dir);
        std::thread::sleep(Duration::from_secs(12)); // a few points in the charts
        browser.screenshot(&dir.join("page-result.png"), "h1");
        browser.screenshot(&dir.join("page-status.png"), "#health-status");
    }

    // Microphone: Chromium's fake capture device plays jfk.wav (in a loop); record, wait, stop.
    browser.eval("document.querySelector('#record').click()");
    browser.wait_for_text("#live-status", |t| t == "listening");
    let heard = browser.wait_for_text("#live-final", |t| t.to_lowercase().contains("ask not"));
    std::thread::sleep(Duration::from_secs(6));
    browser.eval("document.querySelector('#stop').click()");
    browser.wait_for_text("#live-status", |t| t == "done");
    let live = browser.text("#live-final");
    eprintln!("live in the browser: {live:?} (first final: {heard:?})");
    assert!(live.to_lowercase().contains("country"), "{live}");
    assert!(live.contains(" → "), "{live}");
}

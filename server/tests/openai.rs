//! The OpenAI audio API: word and segment timings, translations, the model list, and the
//! official `openai` Python client driving the server; `stream=true` events and cancellation.

mod common;

use std::process::Command;

use common::{
    openai_multipart, openai_request, openai_request_to, shared_audio, wer, TestServer, JFK_TEXT,
};
use serde_json::Value;

fn jfk_wav() -> Vec<u8> {
    std::fs::read(shared_audio("jfk.wav")).unwrap()
}

/// Lowercase words without punctuation.
fn plain_words(text: &str) -> Vec<String> {
    text.split_whitespace()
        .map(|w| {
            w.chars()
                .filter(|c| c.is_alphanumeric() || *c == '\'')
                .collect::<String>()
                .to_lowercase()
        })
        .filter(|w| !w.is_empty())
        .collect()
}

/// Checks `verbose_json` words: monotonic, inside the audio, the transcript's words.
fn check_words(body: &Value) {
    let duration = body["duration"].as_f64().unwrap();
    let words = body["words"].as_array().expect("words");
    let text: Vec<String> = words
        .iter()
        .map(|w| w["word"].as_str().unwrap().to_lowercase())
        .collect();
    assert_eq!(text, plain_words(body["text"].as_str().unwrap()), "{body}");
    let mut last_start = 0.0;
    for w in words {
        let (start, end) = (w["start"].as_f64().unwrap(), w["end"].as_f64().unwrap());
        assert!(
            start >= last_start && end >= start && end <= duration,
            "{w}"
        );
        last_start = start;
    }
    // jfk.wav: "And" is spoken in the first second, "country" (the last word) after 8 s
    assert!(words[0]["start"].as_f64().unwrap() < 1.0, "{}", words[0]);
    assert!(
        words.last().unwrap()["start"].as_f64().unwrap() > 8.0,
        "{body}"
    );
}

#[test]
fn verbose_json_words_segments_models_and_translations() {
    let Some(server) = TestServer::start(|_| {}) else {
        return;
    };
    let wav = jfk_wav();
    let ask = |path: &str, fields: &[(&str, &str)]| {
        let (ct, body) = openai_multipart(fields, Some(("jfk.wav", "audio/x-wav", &wav)));
        server.raw(&openai_request_to(path, &ct, &body))
    };
    let transcriptions = "/v1/audio/transcriptions";

    // words and segments
    let r = ask(
        transcriptions,
        &[
            ("response_format", "verbose_json"),
            ("timestamp_granularities[]", "word"),
            ("timestamp_granularities[]", "segment"),
            ("temperature", "0"),
        ],
    );
    assert_eq!(r.status, 200, "{}", r.text());
    let body = r.json();
    check_words(&body);
    let segments = body["segments"].as_array().unwrap();
    assert!(!segments.is_empty());
    for s in segments {
        let logprob = s["avg_logprob"].as_f64().unwrap();
        assert!(logprob < 0.0 && logprob > -2.0, "{s}");
        let ratio = s["compression_ratio"].as_f64().unwrap();
        assert!(ratio > 0.5 && ratio < 2.4, "{s}");
        let no_speech = s["no_speech_prob"].as_f64().unwrap();
        assert!((0.0..=1.0).contains(&no_speech), "{s}");
        assert_eq!(s["temperature"], 0.0);
    }

    // words only: no segments
    let r = ask(
        transcriptions,
        &[
            ("response_format", "verbose_json"),
            ("timestamp_granularities[]", "word"),
        ],
    );
    let body = r.json();
    check_words(&body);
    assert!(body.get("segments").is_none(), "{body}");

    // what a client gets wrong is a 400 in OpenAI's shape
    for (fields, says) in [
        (
            vec![("timestamp_granularities[]", "word")],
            "needs response_format verbose_json",
        ),
        (
            vec![
                ("response_format", "verbose_json"),
                ("timestamp_granularities[]", "letter"),
            ],
            "not one of word, segment",
        ),
        (
            vec![("stream", "true"), ("response_format", "srt")],
            "must be json or text",
        ),
        (vec![("stream", "maybe")], "neither true nor false"),
    ] {
        let r = ask(transcriptions, &fields);
        assert_eq!(r.status, 400, "{fields:?}: {}", r.text());
        let message = r.json()["error"]["message"].as_str().unwrap().to_owned();
        assert!(message.contains(says), "{message}");
    }

    // translations: the test model is English-only, which the answer says
    let r = ask("/v1/audio/translations", &[("model", "whisper-1")]);
    assert_eq!(r.status, 400, "{}", r.text());
    let message = r.json()["error"]["message"].as_str().unwrap().to_owned();
    assert!(message.contains("English-only"), "{message}");

    // models
    let list = server.get("/v1/models").json();
    assert_eq!(list["object"], "list");
    let ids: Vec<&str> = list["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["id"].as_str().unwrap())
        .collect();
    // The model (by its file's name), then its aliases, OpenAI's names among them.
    let file = common::model_path().unwrap();
    let name = file.file_name().unwrap().to_str().unwrap();
    let name = name.trim_end_matches(".bin");
    assert_eq!(ids[0], name, "{list}");
    assert_eq!(
        ids[1..],
        ["gpt-4o-mini-transcribe", "gpt-4o-transcribe", "whisper-1"],
        "{list}"
    );
    assert_eq!(list["data"][0]["loaded"], true);
    assert_eq!(list["data"][3]["alias_of"], name);
    for id in &ids {
        let m = server.get(&format!("/v1/models/{id}"));
        assert_eq!(m.status, 200);
        assert_eq!(m.json()["object"], "model");
    }
    let missing = server.get("/v1/models/gpt-4");
    assert_eq!(missing.status, 404);
    assert!(missing.json()["error"]["message"]
        .as_str()
        .unwrap()
        .contains("GET /v1/models"));
}

#[test]
fn the_official_openai_python_client_works_against_the_server() {
    let Some(server) = TestServer::start(|_| {}) else {
        return;
    };
    let required = std::env::var("WHISPER_STEADY_REQUIRE_MODEL").is_ok_and(|v| v == "1");
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/openai_client.py");
    let out = Command::new("python3")
        .arg(script)
        .arg(format!("http://{}/v1", server.addr))
        .arg(shared_audio("jfk.wav"))
        .output();
    let Ok(out) = out else {
        assert!(!required, "python3 is needed for the OpenAI client test");
        eprintln!("skipped: no python3");
        return;
    };
    let stderr = String::from_utf8_lossy(&out.stderr);
    if !out.status.success() && stderr.contains("No module named 'openai'") {
        assert!(!required, "the `openai` package is needed: {stderr}");
        eprintln!("skipped: {stderr}");
        return;
    }
    assert!(out.status.success(), "the OpenAI client failed: {stderr}");
    let seen: Value = serde_json::from_slice(&out.stdout).unwrap();
    eprintln!("openai {}", seen["client_version"]);
    for key in ["json", "text"] {
        let text = seen[key].as_str().unwrap();
        assert!(wer(JFK_TEXT, text) <= 0.1, "{key}: {text}");
    }
    assert!(seen["srt"]
        .as_str()
        .unwrap()
        .starts_with("1\n00:00:00,000 --> "));
    let verbose = &seen["verbose"];
    assert_eq!(verbose["language"], "english");
    check_words(verbose);
    assert!(!verbose["segments"].as_array().unwrap().is_empty());
    let events = seen["stream"].as_array().unwrap();
    let (done, deltas) = events.split_last().unwrap();
    assert_eq!(done["type"], "transcript.text.done", "{events:?}");
    assert!(
        wer(JFK_TEXT, done["text"].as_str().unwrap()) <= 0.1,
        "{done}"
    );
    assert!(!deltas.is_empty());
    assert!(deltas.iter().all(|e| e["type"] == "transcript.text.delta"));
    assert_eq!(seen["translation"]["status"], 400, "{seen}");
    assert!(seen["translation"]["message"]
        .as_str()
        .unwrap()
        .contains("English-only"));
    // The model's own name first, then its aliases, whisper-1 among them.
    assert!(seen["models"]
        .as_array()
        .unwrap()
        .contains(&Value::from("whisper-1")));
    assert_eq!(seen["model"], "whisper-1");
    assert_eq!(seen["missing_model"], 404);
    assert!(seen["bad_format"]
        .as_str()
        .unwrap()
        .contains("response_format"));
}

#[test]
fn stream_true_sends_deltas_as_windows_are_decoded_then_the_text() {
    let Some(server) = TestServer::start(|c| c.recognition.default_params.beam_size = 1) else {
        return;
    };
    // 44 s: two of whisper's 30 s windows, so the first deltas come while the second is decoded.
    let wav = common::jfk_repeated(4);
    let (ct, body) = openai_multipart(
        &[("model", "whisper-1"), ("stream", "true")],
        Some(("jfk4.wav", "audio/x-wav", &wav)),
    );
    let (head, events) = common::sse(server.addr, &openai_request(&ct, &body));
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    assert!(
        head.to_ascii_lowercase()
            .contains("content-type: text/event-stream"),
        "{head}"
    );
    let parsed: Vec<(std::time::Duration, Value)> = events
        .iter()
        .map(|(at, data)| (*at, serde_json::from_str(data).unwrap()))
        .collect();
    let (done, deltas) = parsed.split_last().expect("events");
    assert_eq!(done.1["type"], "transcript.text.done", "{parsed:?}");
    assert!(deltas.len() >= 2, "{parsed:?}");
    assert!(deltas
        .iter()
        .all(|(_, e)| e["type"] == "transcript.text.delta"));
    let joined: String = deltas
        .iter()
        .map(|(_, e)| e["delta"].as_str().unwrap())
        .collect();
    let text = done.1["text"].as_str().unwrap();
    assert_eq!(joined.trim_end(), text);
    let reference = [JFK_TEXT; 4].join(" ");
    assert!(wer(&reference, text) <= 0.1, "{text}");
    // The first delta arrived while the rest was still being decoded.
    let (first, last) = (deltas[0].0, deltas.last().unwrap().0);
    assert!(
        last - first > std::time::Duration::from_millis(200),
        "first delta at {first:?}, last at {last:?}, done at {:?}",
        done.0
    );
}

#[test]
fn a_client_that_leaves_a_stream_cancels_its_recognition() {
    let Some(server) = TestServer::start(|c| c.recognition.default_params.beam_size = 1) else {
        return;
    };
    // About three minutes of audio: far longer to decode than the test waits.
    let wav = common::jfk_repeated(16);
    let (ct, body) = openai_multipart(
        &[("model", "whisper-1"), ("stream", "true")],
        Some(("jfk16.wav", "audio/x-wav", &wav)),
    );
    {
        use std::io::{Read, Write};
        let mut stream = std::net::TcpStream::connect(server.addr).unwrap();
        stream.write_all(&openai_request(&ct, &body)).unwrap();
        // The head comes once the request is queued; then the client goes.
        let mut head = [0u8; 12];
        stream.read_exact(&mut head).unwrap();
        assert_eq!(&head, b"HTTP/1.1 200");
    }
    let until = std::time::Instant::now() + std::time::Duration::from_secs(60);
    loop {
        let health = server.get("/health").json();
        let requests = &health["requests"];
        if requests["cancelled"] == 1 && health["workers"][0]["busy"] == 0 {
            assert_eq!(requests["completed"], 0, "{health}");
            break;
        }
        assert!(std::time::Instant::now() < until, "not cancelled: {health}");
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    // The worker is free again and serves the next request.
    let (ct, body) = openai_multipart(
        &[("model", "whisper-1")],
        Some(("jfk.wav", "audio/x-wav", &jfk_wav())),
    );
    let r = server.raw(&openai_request(&ct, &body));
    assert_eq!(r.status, 200, "{}", r.text());
}

#[test]
fn the_official_client_authenticates_with_its_api_key() {
    use recognizer_server::config::ApiKey;
    let Some(server) = TestServer::start(|c| {
        c.auth.keys = vec![ApiKey {
            name: "client".into(),
            key: Some("sk-official-client-1".into()),
            ..ApiKey::default()
        }];
    }) else {
        return;
    };
    let required = std::env::var("WHISPER_STEADY_REQUIRE_MODEL").is_ok_and(|v| v == "1");
    let script = r#"
import json, sys, openai
from openai import OpenAI
base, audio = sys.argv[1], sys.argv[2]
seen = {}
for key in ["sk-official-client-1", "sk-wrong-key-0000"]:
    client = OpenAI(base_url=base, api_key=key, max_retries=0, timeout=120)
    try:
        with open(audio, "rb") as f:
            seen[key] = client.audio.transcriptions.create(model="whisper-1", file=f).text
    except openai.AuthenticationError as e:
        seen[key] = "AuthenticationError %d" % e.status_code
print(json.dumps(seen))
"#;
    let out = Command::new("python3")
        .arg("-c")
        .arg(script)
        .arg(format!("http://{}/v1", server.addr))
        .arg(shared_audio("jfk.wav"))
        .output();
    let Ok(out) = out else {
        assert!(!required, "python3 is needed for the OpenAI client test");
        return;
    };
    let stderr = String::from_utf8_lossy(&out.stderr);
    if !out.status.success() && stderr.contains("No module named 'openai'") {
        assert!(!required, "the `openai` package is needed: {stderr}");
        return;
    }
    assert!(out.status.success(), "the OpenAI client failed: {stderr}");
    let seen: Value = serde_json::from_slice(&out.stdout).unwrap();
    let text = seen["sk-official-client-1"].as_str().unwrap();
    assert!(wer(JFK_TEXT, text) <= 0.1, "{text}");
    assert_eq!(seen["sk-wrong-key-0000"], "AuthenticationError 401");
}

/// OpenAI's Realtime API in transcription mode, driven by the official client
/// (`openai[realtime]`): jfk.wav at real time with server VAD (deltas before each completed
/// transcript), manual commits with PCM and G.711, and bad events answered with `error` events
/// on an open connection. With an API key, as the SDK sends it.
#[test]
fn the_official_realtime_client_transcribes_in_a_transcription_session() {
    use recognizer_server::config::ApiKey;
    let Some(server) = TestServer::start(|c| {
        c.auth.keys = vec![ApiKey {
            name: "realtime".into(),
            key: Some("sk-realtime-client-1".into()),
            ..ApiKey::default()
        }];
    }) else {
        return;
    };
    let required = std::env::var("WHISPER_STEADY_REQUIRE_MODEL").is_ok_and(|v| v == "1");
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/openai_realtime.py");
    let out = Command::new("python3")
        .arg(script)
        .arg(format!("http://{}/v1", server.addr))
        .arg("sk-realtime-client-1")
        .arg(shared_audio("jfk.wav"))
        .output();
    let Ok(out) = out else {
        assert!(!required, "python3 is needed for the realtime client test");
        return;
    };
    let stderr = String::from_utf8_lossy(&out.stderr);
    if !out.status.success()
        && (stderr.contains("No module named 'openai'") || stderr.contains("openai[realtime]"))
    {
        assert!(!required, "`openai[realtime]` is needed: {stderr}");
        return;
    }
    assert!(out.status.success(), "the realtime client failed: {stderr}");
    let seen: Value = serde_json::from_slice(&out.stdout).unwrap();

    // Server VAD: turns with speech_started/stopped, committed, added, deltas, completed.
    let events = seen["server_vad"]["events"].as_array().unwrap();
    let kinds: Vec<&str> = events.iter().map(|e| e[1].as_str().unwrap()).collect();
    for kind in [
        "session.created",
        "session.updated",
        "input_audio_buffer.speech_started",
        "input_audio_buffer.speech_stopped",
        "input_audio_buffer.committed",
        "conversation.item.added",
        "conversation.item.input_audio_transcription.delta",
    ] {
        assert!(kinds.contains(&kind), "no {kind} in {kinds:?}");
    }
    let mut transcript = String::new();
    for (i, e) in events.iter().enumerate() {
        if e[1] == "conversation.item.input_audio_transcription.completed" {
            let item = e[2]["item_id"].as_str().unwrap();
            // A delta of the same item came first.
            assert!(
                events[..i].iter().any(|d| d[1]
                    == "conversation.item.input_audio_transcription.delta"
                    && d[2]["item_id"] == item),
                "no delta before the completed {item}"
            );
            transcript.push_str(e[2]["transcript"].as_str().unwrap());
            transcript.push(' ');
        }
    }
    assert!(wer(JFK_TEXT, &transcript) <= 0.2, "{transcript:?}");
    let first_completed = events
        .iter()
        .find(|e| e[1] == "conversation.item.input_audio_transcription.completed")
        .unwrap()[0]
        .as_f64()
        .unwrap();
    let sent = seen["server_vad"]["audio_sent_at"].as_f64().unwrap();
    eprintln!(
        "realtime: first transcript at {first_completed:.2} s, audio sent by {sent:.2} s, \
         last event at {:.2} s",
        events.last().unwrap()[0].as_f64().unwrap()
    );
    assert!(
        first_completed < sent,
        "a turn was transcribed while audio still came"
    );

    // Manual commits: 24 kHz PCM and G.711 µ-law.
    for key in ["manual_pcm", "manual_g711"] {
        let m = &seen[key];
        let text = m["transcript"].as_str().unwrap();
        assert!(wer(JFK_TEXT, text) <= 0.15, "{key}: {text:?}");
        let kinds: Vec<&str> = m["events"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| e.as_str().unwrap())
            .collect();
        assert!(
            !kinds.contains(&"input_audio_buffer.speech_started"),
            "{kinds:?}"
        );
        assert!(kinds.contains(&"input_audio_buffer.committed"), "{kinds:?}");
    }

    // Bad events: an error each, with OpenAI's codes, and the connection still works.
    assert_eq!(
        seen["bad"]["error_codes"],
        serde_json::json!([
            "invalid_json",
            "invalid_event",
            "invalid_value",
            "unsupported_event",
            "invalid_value",
            "input_audio_buffer_commit_empty"
        ])
    );
    assert_eq!(seen["bad"]["still_open"], true);
}

/// Languages over the OpenAI API on the multilingual test model (whisper base,
/// `WHISPER_STEADY_TEST_MODEL_MULTILINGUAL`) with speech spoken by espeak-ng: detection
/// (`language` omitted and `auto`) with its probability (patch 0017), a forced language,
/// translation into English, prompts in Chinese and in mixed scripts, Chinese subtitles and
/// words, and the allow-list (`recognition.detect_languages`). One server on base for the
/// binary, greedy, without the speech detector; short clips. The 400 for a translation with
/// an English-only model is `verbose_json_words_segments_models_and_translations`'s.
mod languages {
    use std::sync::{Mutex, MutexGuard, OnceLock};
    use std::time::{Duration, Instant};

    use serde_json::{json, Value};
    use whisper_steady::catalog::VadChoice;

    use super::common::{self, openai_multipart, openai_request_to, wer, Response, TestServer};

    /// Sentences base transcribes well when espeak-ng speaks them (checked by hand).
    const ENGLISH: (&str, &str) = (
        "en-gb",
        "The weather is nice today, so we are going to the park.",
    );
    const GERMAN: (&str, &str) = ("de", "Guten Morgen, wie geht es Ihnen heute?");
    const GERMAN_LONGER: (&str, &str) = (
        "de",
        "Ich habe keine Zeit, ich muss jetzt nach Hause gehen.",
    );
    const GERMAN_IN_ENGLISH: &str = "I have no time, I have to go home now.";
    const SPANISH: (&str, &str) = ("es", "Hoy hace buen tiempo, así que vamos al parque.");
    /// "I love Beijing", spoken from pinyin (espeak-ng's `cmn` voice spells Han characters
    /// out); base writes Han characters for it (not all the right ones).
    const MANDARIN: (&str, &str) = ("cmn-latn-pinyin", "wo3 ai4 bei3 jing1.");

    fn tune(c: &mut recognizer_server::Config, model: std::path::PathBuf) {
        c.recognition.model_path = Some(model);
        c.recognition.workers = Some(1);
        c.recognition.vad_model = VadChoice::Off;
        c.recognition.default_params.beam_size = 1;
    }

    /// One test at a time on the shared server (its one worker), so that a request's time is
    /// its own.
    fn one_at_a_time() -> MutexGuard<'static, ()> {
        static ONE: Mutex<()> = Mutex::new(());
        ONE.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// The binary's server on base (loaded once).
    fn server() -> Option<&'static TestServer> {
        static SERVER: OnceLock<Option<TestServer>> = OnceLock::new();
        SERVER
            .get_or_init(|| {
                let model = common::multilingual_model_path()?;
                TestServer::start(move |c| tune(c, model))
            })
            .as_ref()
    }

    fn speech((voice, text): (&str, &str)) -> Option<Vec<u8>> {
        test_support::espeak_wav(voice, text)
    }

    fn ask(server: &TestServer, path: &str, wav: &[u8], fields: &[(&str, &str)]) -> Response {
        let (ct, body) = openai_multipart(fields, Some(("clip.wav", "audio/x-wav", wav)));
        server.raw(&openai_request_to(path, &ct, &body))
    }

    fn verbose(server: &TestServer, wav: &[u8], fields: &[(&str, &str)]) -> Value {
        let mut fields = fields.to_vec();
        fields.push(("response_format", "verbose_json"));
        let r = ask(server, "/v1/audio/transcriptions", wav, &fields);
        assert_eq!(r.status, 200, "{fields:?}: {}", r.text());
        r.json()
    }

    fn is_han(c: char) -> bool {
        matches!(c, '\u{3400}'..='\u{4DBF}' | '\u{4E00}'..='\u{9FFF}' | '\u{F900}'..='\u{FAFF}')
    }

    #[test]
    fn languages_detected_forced_and_translated() {
        let _one = one_at_a_time();
        let Some(server) = server() else { return };
        // German with `auto`, Spanish with the language omitted (English and the three ways
        // for each language are tests/speech/speech_languages.rs's); WER measured 0 for both.
        for (clip, fields, name) in [
            (GERMAN, vec![("language", "auto")], "german"),
            (SPANISH, vec![], "spanish"),
        ] {
            let Some(wav) = speech(clip) else { return };
            let body = verbose(server, &wav, &fields);
            eprintln!("{} {fields:?}: {body}", clip.0);
            assert_eq!(body["language"], name, "{fields:?}: {body}");
            let p = body["language_probability"].as_f64().unwrap_or(-1.0);
            assert!(p > 0.1 && p <= 1.0, "{body}");
            assert!(
                wer(clip.1, body["text"].as_str().unwrap()) <= 0.35,
                "{body}"
            );
        }
        // the original API: the code and the probability
        let Some(wav) = speech(ENGLISH) else { return };
        let id = server.upload(&wav, "clip.wav");
        let r = server.post_json("/api/recognize", &json!({"audio_path": id, "beam_size": 1}));
        assert_eq!(r.status, 200, "{}", r.text());
        let body = r.json();
        eprintln!("original API: {body}");
        assert_eq!(body["language"], "en", "{body}");
        let p = body["language_probability"].as_f64().unwrap_or(-1.0);
        assert!(p > 0.5 && p <= 1.0, "{body}");
        // measured 0.25 ("but wherever is ice today")
        assert!(
            wer(ENGLISH.1, body["text"].as_str().unwrap()) <= 0.5,
            "{body}"
        );

        // forced: taken as given, no probability
        let Some(wav) = speech(GERMAN_LONGER) else {
            return;
        };
        let body = verbose(server, &wav, &[("language", "de")]);
        eprintln!("forced: {body}");
        assert_eq!(body["language"], "german");
        assert!(body.get("language_probability").is_none(), "{body}");
        assert!(
            wer(GERMAN_LONGER.1, body["text"].as_str().unwrap()) <= 0.35,
            "{body}"
        );

        // translated into English (measured: WER 0 against the English sentence)
        let r = ask(
            server,
            "/v1/audio/translations",
            &wav,
            &[("model", "whisper-1"), ("response_format", "verbose_json")],
        );
        assert_eq!(r.status, 200, "{}", r.text());
        let body = r.json();
        eprintln!("translated: {body}");
        assert_eq!(body["task"], "translate");
        assert_eq!(body["language"], "english");
        let text = body["text"].as_str().unwrap();
        assert!(wer(GERMAN_IN_ENGLISH, text) <= 0.4, "{body}");
    }

    /// Prompts of any script and length are answered: a Chinese prompt with English names and
    /// one of 2,000 Han characters (far over the 223 tokens whisper keeps: cut to its last ones),
    /// quickly.
    #[test]
    fn languages_prompts_in_chinese_and_mixed_scripts_are_answered() {
        let _one = one_at_a_time();
        let Some(server) = server() else { return };
        let Some(wav) = speech(ENGLISH) else { return };
        let timed = |prompt: &str| {
            let fields = [("language", "en"), ("prompt", prompt)];
            let started = Instant::now();
            let r = ask(server, "/v1/audio/transcriptions", &wav, &fields);
            let took = started.elapsed();
            assert_eq!(r.status, 200, "{}", r.text());
            assert!(!r.json()["text"].as_str().unwrap().trim().is_empty());
            took
        };
        let mixed =
            timed("请把会议记录发给 Alice 和 Bob，谢谢。Meeting notes for Project Phoenix.");
        let long: String = "今天天气很好我们去公园散步吧"
            .chars()
            .cycle()
            .take(2000)
            .collect();
        let took = timed(&long);
        eprintln!("prompt of 2,000 Han characters: {took:?} (a short mixed one: {mixed:?})");
        // Both are cut to at most 223 tokens, so decoding costs about the same: what the long
        // one adds is tokenizing 2,000 characters (milliseconds).
        assert!(
            took < mixed * 2 + Duration::from_secs(5),
            "{took:?} vs {mixed:?}"
        );
    }

    /// Chinese in subtitles and words: SRT, WebVTT and verbose_json carry Han characters as UTF-8
    /// (never U+FFFD for a character split across tokens), and verbose_json `words` has one
    /// word per Han character, not the whole segment.
    #[test]
    fn languages_chinese_subtitles_and_words() {
        let _one = one_at_a_time();
        let Some(server) = server() else { return };
        let Some(wav) = speech(MANDARIN) else { return };
        let mut texts = Vec::new();
        for format in ["srt", "vtt"] {
            let r = ask(
                server,
                "/v1/audio/transcriptions",
                &wav,
                &[("language", "zh"), ("response_format", format)],
            );
            assert_eq!(r.status, 200, "{}", r.text());
            let text = String::from_utf8(r.body.clone()).expect("UTF-8");
            eprintln!("{format}: {text:?}");
            assert!(!text.contains('\u{FFFD}'), "{text:?}");
            assert!(text.chars().any(is_han), "{format}: {text:?}");
            texts.push(text);
        }
        assert!(
            texts[0].starts_with("1\n00:00:00,000 --> "),
            "{:?}",
            texts[0]
        );
        assert!(texts[1].starts_with("WEBVTT"), "{:?}", texts[1]);

        let body = verbose(
            server,
            &wav,
            &[("language", "zh"), ("timestamp_granularities[]", "word")],
        );
        eprintln!("words: {body}");
        let han: Vec<char> = body["text"]
            .as_str()
            .unwrap()
            .chars()
            .filter(|c| is_han(*c))
            .collect();
        let words: Vec<&str> = body["words"]
            .as_array()
            .unwrap()
            .iter()
            .map(|w| w["word"].as_str().unwrap())
            .collect();
        assert!(!han.is_empty(), "{body}");
        for w in &words {
            assert!(!w.contains('\u{FFFD}'), "{body}");
            assert!(
                !w.chars().any(is_han) || w.chars().count() == 1,
                "{w:?} in {body}"
            );
        }
        let han_words: Vec<char> = words
            .iter()
            .filter_map(|w| w.chars().next().filter(|c| is_han(*c)))
            .collect();
        assert_eq!(han_words, han, "{body}");
    }

    /// `recognition.detect_languages`: German speech with only English and French allowed is
    /// detected as one of those; a request naming a language outside the list is a 400.
    #[test]
    fn languages_the_allow_list_decides_and_refuses() {
        let Some(model) = common::multilingual_model_path() else {
            return;
        };
        let Some(wav) = speech(GERMAN) else { return };
        let Some(server) = TestServer::start(move |c| {
            tune(c, model);
            c.recognition.detect_languages = vec!["en".into(), "fr".into()];
        }) else {
            return;
        };
        let body = verbose(&server, &wav, &[]);
        eprintln!("de among en, fr: {body}");
        assert!(
            ["english", "french"].contains(&body["language"].as_str().unwrap()),
            "{body}"
        );
        assert!(body["language_probability"].as_f64().is_some(), "{body}");
        let r = ask(
            &server,
            "/v1/audio/transcriptions",
            &wav,
            &[("language", "de")],
        );
        assert_eq!(r.status, 400, "{}", r.text());
        let message = r.json()["error"]["message"].as_str().unwrap().to_owned();
        assert!(
            message.contains("not among") && message.contains("en, fr"),
            "{message}"
        );
    }
}

/// Several models in one server (`recognition.models`), chosen per request.
mod models {
    use recognizer_server::config::{ModelSetting, RecognitionConfig};
    use serde_json::Value;
    use whisper_steady::catalog::VadChoice;

    use super::common::{self, openai_multipart, openai_request_to, wer, Response, TestServer};

    const GERMAN: &str = "Guten Morgen, wie geht es Ihnen heute?";

    fn transcribe(server: &TestServer, wav: &[u8], fields: &[(&str, &str)]) -> Response {
        let (ct, body) = openai_multipart(fields, Some(("clip.wav", "audio/x-wav", wav)));
        server.raw(&openai_request_to("/v1/audio/transcriptions", &ct, &body))
    }

    /// A server with tiny.en (the default) and base, one worker each, no speech detection,
    /// greedy decoding, and what `tune` changes; `None` without both test models.
    fn two_models(tune: impl FnOnce(&mut RecognitionConfig)) -> Option<TestServer> {
        let (english, multilingual) = (common::model_path()?, common::multilingual_model_path()?);
        TestServer::start(move |c| {
            let r = &mut c.recognition;
            r.model_path = None;
            r.models
                .insert("tiny.en".into(), ModelSetting::Path(english));
            r.models
                .insert("base".into(), ModelSetting::Path(multilingual));
            r.default_model = Some("tiny.en".into());
            r.workers = Some(1);
            r.vad_model = VadChoice::Off;
            r.default_params.beam_size = 1;
            tune(r);
        })
    }

    /// `/v1/models`: each id with whether its model is loaded.
    fn loaded(server: &TestServer) -> Vec<(String, bool)> {
        let list = server.get("/v1/models").json();
        list["data"]
            .as_array()
            .unwrap()
            .iter()
            .map(|m| (m["id"].as_str().unwrap().to_owned(), m["loaded"] == true))
            .collect()
    }

    fn is_loaded(server: &TestServer, id: &str) -> bool {
        loaded(server)
            .into_iter()
            .find(|(i, _)| i == id)
            .unwrap_or_else(|| panic!("{id} is not in /v1/models"))
            .1
    }

    #[test]
    fn each_model_transcribes_its_language_and_an_unknown_one_is_refused() {
        let Some(german) = test_support::espeak_wav("de", GERMAN) else {
            return;
        };
        let jfk = std::fs::read(common::shared_audio("jfk.wav")).unwrap();
        let Some(server) = two_models(|r| {
            // The same file under a third name: loading it must unload base (two at once).
            let english = common::model_path().unwrap();
            r.models
                .insert("tiny-copy".into(), ModelSetting::Path(english));
            r.model_cache.max_loaded = Some(2);
        }) else {
            return;
        };

        // Listed with their aliases; only the default is loaded at start.
        let ids: Vec<String> = loaded(&server).into_iter().map(|(id, _)| id).collect();
        for id in [
            "base",
            "tiny-copy",
            "tiny.en",
            "whisper-1",
            "gpt-4o-transcribe",
        ] {
            assert!(ids.contains(&id.to_owned()), "{id} missing in {ids:?}");
        }
        assert!(is_loaded(&server, "tiny.en"));
        assert!(!is_loaded(&server, "base"));
        let alias = server.get("/v1/models/whisper-1").json();
        assert_eq!(alias["alias_of"], "tiny.en", "{alias}");

        // The default model by its name, by an alias, and with no model named.
        for fields in [&[("model", "tiny.en")][..], &[("model", "whisper-1")], &[]] {
            let r = transcribe(&server, &jfk, fields);
            assert_eq!(r.status, 200, "{fields:?}: {}", r.text());
            let text = r.json()["text"].as_str().unwrap().to_owned();
            assert!(wer(common::JFK_TEXT, &text) <= 0.1, "{fields:?}: {text}");
        }

        // base is loaded by its first request and transcribes German.
        let r = transcribe(&server, &german, &[("model", "base"), ("language", "de")]);
        assert_eq!(r.status, 200, "{}", r.text());
        let text = r.json()["text"].as_str().unwrap().to_owned();
        assert!(wer(GERMAN, &text) <= 0.35, "{text}");
        assert!(is_loaded(&server, "base"));

        // A third model needs room: base, idle and not the default, is unloaded for it.
        let r = transcribe(&server, &jfk, &[("model", "tiny-copy")]);
        assert_eq!(r.status, 200, "{}", r.text());
        assert!(is_loaded(&server, "tiny-copy"));
        assert!(!is_loaded(&server, "base"), "{:?}", loaded(&server));
        assert!(is_loaded(&server, "tiny.en"), "the default model stays");

        // An unknown name: 400 in OpenAI's shape, naming the models.
        let r = transcribe(&server, &jfk, &[("model", "whisper-large-v9")]);
        assert_eq!(r.status, 400, "{}", r.text());
        let message = r.json()["error"]["message"].as_str().unwrap().to_owned();
        assert!(
            message.contains("whisper-large-v9") && message.contains("base"),
            "{message}"
        );

        // The original API's `model`.
        let id = server.upload(&jfk, "jfk.wav");
        let r = server.post_json(
            "/api/recognize",
            &serde_json::json!({"audio_path": id, "model": "base", "language": "en"}),
        );
        assert_eq!(r.status, 200, "{}", r.text());
        assert!(wer(common::JFK_TEXT, r.json()["text"].as_str().unwrap()) <= 0.15);
        let r = server.post_json(
            "/api/recognize",
            &serde_json::json!({"audio_path": id, "model": "nope"}),
        );
        assert_eq!(r.status, 400, "{}", r.text());
        assert_eq!(r.json()["success"], false);

        // /health lists every model.
        let health: Value = server.get("/health").json();
        let models = health["models"].as_array().unwrap();
        assert_eq!(models.len(), 3, "{health}");
        assert!(models
            .iter()
            .any(|m| m["name"] == "tiny.en" && m["default"] == true && m["loaded"] == true));
        // And /metrics, per model (the original API's request for base unloaded tiny-copy).
        let metrics = server.get("/metrics").text();
        for line in [
            r#"recognizer_model_loaded{model="tiny.en"} 1"#,
            r#"recognizer_model_loaded{model="tiny-copy"} 0"#,
            r#"recognizer_model_loaded{model="base"} 1"#,
            r#"recognizer_model_requests_total{model="base"} 2"#,
        ] {
            assert!(metrics.contains(line), "{line} missing in:\n{metrics}");
        }
    }

    /// `POST /admin/models/{name}/load|unload` while requests run: a reload swaps in a new
    /// recognizer beside the serving one and no request fails.
    #[test]
    fn models_loaded_again_and_unloaded_under_load_fail_no_request() {
        let jfk = std::fs::read(common::shared_audio("jfk.wav")).unwrap();
        let Some(server) = two_models(|r| r.workers = Some(2)) else {
            return;
        };
        let admin = |path: &str| server.post(path, "text/plain", b"");
        let results = std::thread::scope(|scope| {
            let clients: Vec<_> = (0..3)
                .map(|_| {
                    scope.spawn(|| {
                        (0..4)
                            .map(|_| {
                                let r = transcribe(&server, &jfk, &[("model", "tiny.en")]);
                                (r.status, r.text())
                            })
                            .collect::<Vec<_>>()
                    })
                })
                .collect();
            // Meanwhile: the default model loaded again twice, base loaded and unloaded.
            std::thread::sleep(std::time::Duration::from_millis(300));
            for path in [
                "/admin/models/tiny.en/load",
                "/admin/models/base/load",
                "/admin/models/whisper-1/load",
                "/admin/models/base/unload",
            ] {
                let r = admin(path);
                assert_eq!(r.status, 200, "{path}: {}", r.text());
            }
            clients
                .into_iter()
                .flat_map(|c| c.join().unwrap())
                .collect::<Vec<_>>()
        });
        for (status, body) in &results {
            assert_eq!(*status, 200, "{body}");
            let text: Value = serde_json::from_str(body).unwrap();
            assert!(
                wer(common::JFK_TEXT, text["text"].as_str().unwrap()) <= 0.1,
                "{body}"
            );
        }
        let health: Value = server.get("/health").json();
        let tiny = health["models"]
            .as_array()
            .unwrap()
            .iter()
            .find(|m| m["name"] == "tiny.en")
            .unwrap()
            .clone();
        assert_eq!(tiny["loads"], 3, "{health}");
        assert!(!is_loaded(&server, "base"));
        // The default model stays; an unknown one is a 400.
        assert_eq!(admin("/admin/models/tiny.en/unload").status, 409);
        assert_eq!(admin("/admin/models/nope/load").status, 400);
        // And the default model still answers after its swaps.
        assert_eq!(transcribe(&server, &jfk, &[]).status, 200);
    }

    #[test]
    fn a_model_that_cannot_get_room_is_answered_503_with_retry_after() {
        let jfk = std::fs::read(common::shared_audio("jfk.wav")).unwrap();
        let Some(server) = two_models(|r| {
            // One model at a time, and the default stays: no room for base.
            r.model_cache.max_loaded = Some(1);
        }) else {
            return;
        };
        let r = transcribe(&server, &jfk, &[("model", "base")]);
        assert_eq!(r.status, 503, "{}", r.text());
        assert!(
            r.headers
                .iter()
                .any(|(k, _)| k.eq_ignore_ascii_case("retry-after")),
            "{:?}",
            r.headers
        );
        assert!(!is_loaded(&server, "base"));
    }
}

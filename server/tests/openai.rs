//! The OpenAI audio API: word and segment timings, translations, the model list, and the
//! official `openai` Python client driving the server.

mod common;

use std::process::Command;

use common::{openai_multipart, openai_request_to, shared_audio, wer, TestServer, JFK_TEXT};
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
        (vec![("stream", "true")], "stream=true is not supported"),
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
    assert_eq!(ids[0], "whisper-1");
    assert_eq!(ids.len(), 2, "{list}");
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
    assert_eq!(seen["translation"]["status"], 400, "{seen}");
    assert!(seen["translation"]["message"]
        .as_str()
        .unwrap()
        .contains("English-only"));
    assert_eq!(seen["models"][0], "whisper-1");
    assert_eq!(seen["model"], "whisper-1");
    assert_eq!(seen["missing_model"], 404);
    assert!(seen["bad_format"]
        .as_str()
        .unwrap()
        .contains("response_format"));
}

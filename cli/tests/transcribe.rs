//! End-to-end tests of `whisper-steady transcribe`, running the built binary.
//!
//! The error tests need no model. The transcription tests use the model named by
//! `WHISPER_STEADY_TEST_MODEL` (`scripts/fetch-test-model.sh` builds one and prints its path)
//! and the shared `jfk.wav`; without the model they print why and pass, unless
//! `WHISPER_STEADY_REQUIRE_MODEL=1`, which turns the skip into a failure.

use std::ffi::OsStr;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use hound::{SampleFormat, WavReader, WavSpec, WavWriter};

/// The binary under test.
const BIN: &str = env!("CARGO_BIN_EXE_whisper-steady");
/// Part of what jfk.wav says.
const JFK_PHRASE: &str = "ask not what your country can do for you";

/// The test model, or `None` (after printing why) when it is absent and not required.
fn model() -> Option<PathBuf> {
    test_support::model_path()
}

/// jfk.wav, which must exist when a model test runs.
fn jfk() -> PathBuf {
    let path = test_support::shared_audio("jfk.wav");
    assert!(path.is_file(), "{} is missing", path.display());
    path
}

/// Runs `whisper-steady transcribe ARGS`.
fn transcribe<I, S>(args: I) -> Output
where
    I: IntoIterator<Item = S>,
    S: AsRef<OsStr>,
{
    Command::new(BIN)
        .arg("transcribe")
        .args(args)
        .output()
        .expect("the binary runs")
}

/// The output's stdout, as text.
fn stdout(output: &Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned()
}

/// The output's stderr, as text.
fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

/// Asserts a clean failure: exit status 1 (not a panic's 101), one `error:` line that contains
/// `needle`, and no panic message.
fn assert_clean_error(output: &Output, needle: &str) {
    let err = stderr(output);
    assert_eq!(output.status.code(), Some(1), "stderr: {err}");
    let errors: Vec<&str> = err.lines().filter(|l| l.starts_with("error: ")).collect();
    assert_eq!(errors.len(), 1, "stderr: {err}");
    assert!(errors[0].contains(needle), "stderr: {err}");
    assert!(!err.contains("panicked"), "stderr: {err}");
    assert!(output.stdout.is_empty(), "stdout: {}", stdout(output));
}

/// Writes a short WAV of silence (for tests where the audio is not the point).
fn write_silence(path: &Path) {
    let spec = WavSpec {
        channels: 1,
        sample_rate: 16_000,
        bits_per_sample: 16,
        sample_format: SampleFormat::Int,
    };
    let mut writer = WavWriter::create(path, spec).unwrap();
    for _ in 0..1600 {
        writer.write_sample(0i16).unwrap();
    }
    writer.finalize().unwrap();
}

#[test]
fn missing_model_is_a_clean_error() {
    let dir = tempfile::tempdir().unwrap();
    let audio = dir.path().join("a.wav");
    write_silence(&audio);
    let output = transcribe([
        OsStr::new("--model"),
        dir.path().join("missing.bin").as_os_str(),
        audio.as_os_str(),
    ]);
    assert_clean_error(&output, "missing.bin");
}

#[test]
fn non_wav_audio_is_a_clean_error() {
    let dir = tempfile::tempdir().unwrap();
    let audio = dir.path().join("notes.wav");
    std::fs::write(&audio, "this is text, not audio\n").unwrap();
    // The audio is read before the model loads, so any existing file does as the model.
    let output = transcribe([OsStr::new("--model"), audio.as_os_str(), audio.as_os_str()]);
    assert_clean_error(&output, "unrecognized audio format");
}

#[test]
fn missing_audio_is_a_clean_error() {
    let dir = tempfile::tempdir().unwrap();
    let model = dir.path().join("model.bin");
    std::fs::write(&model, "x").unwrap();
    let output = transcribe([
        OsStr::new("-m"),
        model.as_os_str(),
        dir.path().join("nothing.wav").as_os_str(),
    ]);
    assert_clean_error(&output, "nothing.wav");
}

#[test]
fn empty_wav_is_a_clean_error() {
    let dir = tempfile::tempdir().unwrap();
    let audio = dir.path().join("empty.wav");
    let spec = WavSpec {
        channels: 2,
        sample_rate: 44_100,
        bits_per_sample: 16,
        sample_format: SampleFormat::Int,
    };
    WavWriter::create(&audio, spec).unwrap().finalize().unwrap();
    let output = transcribe([OsStr::new("-m"), audio.as_os_str(), audio.as_os_str()]);
    assert_clean_error(&output, "holds no samples");
}

#[test]
fn unsupported_wav_format_is_a_clean_error() {
    // A well-formed header for 64-bit float samples, which are not supported.
    let mut bytes = Vec::new();
    let data = [0u8; 16];
    bytes.extend_from_slice(b"RIFF");
    bytes.extend_from_slice(&(4 + 8 + 16 + 8 + data.len() as u32).to_le_bytes());
    bytes.extend_from_slice(b"WAVEfmt ");
    bytes.extend_from_slice(&16u32.to_le_bytes());
    bytes.extend_from_slice(&3u16.to_le_bytes()); // IEEE float
    bytes.extend_from_slice(&1u16.to_le_bytes()); // channels
    bytes.extend_from_slice(&16_000u32.to_le_bytes()); // sample rate
    bytes.extend_from_slice(&(16_000u32 * 8).to_le_bytes()); // byte rate
    bytes.extend_from_slice(&8u16.to_le_bytes()); // block align
    bytes.extend_from_slice(&64u16.to_le_bytes()); // bits per sample
    bytes.extend_from_slice(b"data");
    bytes.extend_from_slice(&(data.len() as u32).to_le_bytes());
    bytes.extend_from_slice(&data);
    let dir = tempfile::tempdir().unwrap();
    let audio = dir.path().join("double.wav");
    std::fs::write(&audio, bytes).unwrap();
    let output = transcribe([OsStr::new("-m"), audio.as_os_str(), audio.as_os_str()]);
    assert_clean_error(&output, "double.wav");
}

#[test]
fn invalid_model_file_is_a_clean_error() {
    let dir = tempfile::tempdir().unwrap();
    let model = dir.path().join("model.bin");
    std::fs::write(&model, vec![0u8; 4096]).unwrap();
    let audio = dir.path().join("a.wav");
    write_silence(&audio);
    let output = transcribe([OsStr::new("-m"), model.as_os_str(), audio.as_os_str()]);
    assert_clean_error(&output, "cannot load model");
}

#[test]
fn unknown_language_is_a_clean_error() {
    let dir = tempfile::tempdir().unwrap();
    let audio = dir.path().join("a.wav");
    write_silence(&audio);
    let output = transcribe([
        OsStr::new("-m"),
        audio.as_os_str(),
        OsStr::new("--language"),
        OsStr::new("klingon"),
        audio.as_os_str(),
    ]);
    assert_clean_error(&output, "language \"klingon\" is not one whisper knows");
}

#[test]
fn transcribes_jfk_into_every_format() {
    let Some(model) = model() else { return };
    let dir = tempfile::tempdir().unwrap();
    let out_dir = dir.path().join("out");
    let output = transcribe([
        OsStr::new("--model"),
        model.as_os_str(),
        OsStr::new("--output-txt"),
        OsStr::new("--output-srt"),
        OsStr::new("--output-vtt"),
        OsStr::new("--output-json"),
        OsStr::new("--output-dir"),
        out_dir.as_os_str(),
        OsStr::new("--no-gpu"),
        jfk().as_os_str(),
    ]);
    assert!(output.status.success(), "stderr: {}", stderr(&output));
    let text = stdout(&output);
    assert!(
        text.to_lowercase().contains(JFK_PHRASE),
        "stdout: {text}\nstderr: {}",
        stderr(&output)
    );
    for line in text.lines() {
        assert!(
            line.starts_with("[00:00:") && line.contains(" --> "),
            "line without timestamps: {line}"
        );
    }
    // Not a terminal: no progress bar.
    assert!(!stderr(&output).contains('%'), "{}", stderr(&output));

    let read = |ext: &str| std::fs::read_to_string(out_dir.join(format!("jfk.{ext}"))).unwrap();

    let txt = read("txt");
    assert!(txt.to_lowercase().contains(JFK_PHRASE), "{txt}");
    assert!(txt.lines().all(|l| l == l.trim() && !l.is_empty()), "{txt}");

    let srt = read("srt");
    let lines: Vec<&str> = srt.lines().collect();
    assert_eq!(lines.first(), Some(&"1"), "{srt}");
    assert!(
        lines[1].contains(" --> ") && lines[1].contains(','),
        "{srt}"
    );
    assert!(srt.to_lowercase().contains(JFK_PHRASE), "{srt}");

    let vtt = read("vtt");
    assert!(vtt.starts_with("WEBVTT"), "{vtt}");
    assert!(vtt.contains(" --> "), "{vtt}");

    let json: serde_json::Value = serde_json::from_str(&read("json")).unwrap();
    assert_eq!(json["language"], "en");
    assert!(json["text"]
        .as_str()
        .unwrap()
        .to_lowercase()
        .contains(JFK_PHRASE));
    let segments = json["segments"].as_array().unwrap();
    assert!(!segments.is_empty());
    let mut previous_start = -1.0;
    for (i, segment) in segments.iter().enumerate() {
        assert_eq!(segment["id"], i);
        let start = segment["start"].as_f64().unwrap();
        let end = segment["end"].as_f64().unwrap();
        assert!((0.0..11.5).contains(&start), "{segment}");
        assert!(
            start > previous_start,
            "start times do not increase: {json}"
        );
        assert!(end >= start && end <= 11.5, "{segment}");
        previous_start = start;
        let tokens = segment["tokens"].as_array().unwrap();
        assert!(!tokens.is_empty(), "{segment}");
        for token in tokens {
            assert!(token["id"].is_i64(), "{token}");
            assert!(token["text"].is_string(), "{token}");
            let p = token["p"].as_f64().unwrap();
            assert!((0.0..=1.0).contains(&p), "{token}");
            assert!(token["t0"].as_f64().unwrap() <= token["t1"].as_f64().unwrap());
        }
    }
}

#[test]
fn resamples_and_mixes_down_48k_stereo_float() {
    let Some(model) = model() else { return };
    // jfk.wav (16 kHz mono) as 48 kHz stereo float: each sample held for three frames, which
    // adds images above 8 kHz that the resampler must filter out; the right channel is quieter.
    let mut reader = WavReader::open(jfk()).unwrap();
    let samples: Vec<i16> = reader.samples::<i16>().map(Result::unwrap).collect();
    let dir = tempfile::tempdir().unwrap();
    let audio = dir.path().join("speech 48k.wav");
    let spec = WavSpec {
        channels: 2,
        sample_rate: 48_000,
        bits_per_sample: 32,
        sample_format: SampleFormat::Float,
    };
    let mut writer = WavWriter::create(&audio, spec).unwrap();
    for s in samples {
        let v = f32::from(s) / 32768.0;
        for _ in 0..3 {
            writer.write_sample(v).unwrap();
            writer.write_sample(v * 0.5).unwrap();
        }
    }
    writer.finalize().unwrap();

    let output = transcribe([
        OsStr::new("-m"),
        model.as_os_str(),
        OsStr::new("--no-timestamps"),
        OsStr::new("--output-srt"),
        OsStr::new("--no-gpu"),
        audio.as_os_str(),
    ]);
    assert!(output.status.success(), "stderr: {}", stderr(&output));
    let text = stdout(&output);
    assert!(text.to_lowercase().contains(JFK_PHRASE), "stdout: {text}");
    assert!(!text.contains("-->"), "stdout: {text}");
    // Written next to the audio, named after its stem.
    let srt = std::fs::read_to_string(dir.path().join("speech 48k.srt")).unwrap();
    assert!(srt.starts_with("1\n"), "{srt}");
}

#[test]
fn mp3_flac_and_ogg_are_transcribed_like_the_wav() {
    let Some(model) = model() else { return };
    let dir = tempfile::tempdir().unwrap();
    let mut files = vec![jfk().with_extension("mp3")];
    for ext in ["flac", "ogg"] {
        let out = dir.path().join(format!("jfk.{ext}"));
        let made = std::process::Command::new("sox")
            .arg(jfk())
            .arg(&out)
            .status();
        if made.as_ref().is_ok_and(|s| s.success()) {
            files.push(out);
        } else {
            let required = std::env::var("WHISPER_STEADY_REQUIRE_MODEL").is_ok_and(|v| v == "1");
            assert!(!required, "sox could not write {ext}: {made:?}");
            eprintln!("skipped {ext}: sox unavailable");
        }
    }
    for audio in files {
        let output = transcribe([
            OsStr::new("-m"),
            model.as_os_str(),
            OsStr::new("--no-timestamps"),
            OsStr::new("--no-gpu"),
            OsStr::new("--output-dir"),
            dir.path().as_os_str(),
            audio.as_os_str(),
        ]);
        assert!(
            output.status.success(),
            "{}: {}",
            audio.display(),
            stderr(&output)
        );
        let text = stdout(&output).to_lowercase();
        assert!(text.contains(JFK_PHRASE), "{}: {text}", audio.display());
    }
}

/// The server's own test harness: recognizer-server in this process on a loopback port.
#[path = "../../server/tests/common/mod.rs"]
mod server;

/// recognizer-server on `model` with two workers and greedy decoding by default (what
/// `transcribe` does by default).
fn start_server(model: &Path) -> server::TestServer {
    let model = model.to_path_buf();
    server::TestServer::start(move |c| {
        c.recognition.model_path = Some(model);
        c.recognition.default_params.beam_size = 1;
        c.recognition.workers = Some(2);
    })
    .expect("the test model is there")
}

/// The `text` of an OpenAI-style request to `path` with these form fields and the audio.
fn server_text(
    server: &server::TestServer,
    path: &str,
    fields: &[(&str, &str)],
    audio: &[u8],
) -> String {
    let (ct, multipart) = server::openai_multipart(fields, Some(("a.wav", "audio/x-wav", audio)));
    let r = server.raw(&server::openai_request_to(path, &ct, &multipart));
    assert_eq!(r.status, 200, "{}", r.text());
    r.json()["text"].as_str().unwrap().to_owned()
}

/// The `text` of `transcribe ARGS --output-json` on `audio` (a WAV file's bytes).
fn cli_text(model: &Path, audio: &[u8], args: &[&str]) -> String {
    let dir = tempfile::tempdir().unwrap();
    let wav = dir.path().join("clip.wav");
    std::fs::write(&wav, audio).unwrap();
    let output = transcribe(
        [
            OsStr::new("-m"),
            model.as_os_str(),
            wav.as_os_str(),
            OsStr::new("--output-json"),
            OsStr::new("--no-progress"),
        ]
        .into_iter()
        .chain(args.iter().map(OsStr::new)),
    );
    assert!(output.status.success(), "{args:?}: {}", stderr(&output));
    let json = std::fs::read_to_string(dir.path().join("clip.json")).unwrap();
    let value: serde_json::Value = serde_json::from_str(&json).unwrap();
    value["text"].as_str().unwrap().to_owned()
}

/// One case: the command's options and the same request to the server.
struct Same<'a> {
    cli: &'a [&'a str],
    path: &'a str,
    form: &'a [(&'a str, &'a str)],
}

#[test]
fn the_command_and_the_server_give_the_same_text_for_the_same_options() {
    let Some(model) = model() else { return };
    let jfk = std::fs::read(jfk()).unwrap();
    let transcriptions = "/v1/audio/transcriptions";
    let server = start_server(&model);
    for case in [
        Same {
            cli: &[],
            path: transcriptions,
            form: &[("language", "en")],
        },
        // Sampling from the first window: the seed decides (this one misspells some words).
        Same {
            cli: &["--temperature", "1", "--seed", "1"],
            path: transcriptions,
            form: &[("language", "en"), ("temperature", "1"), ("seed", "1")],
        },
        Same {
            cli: &["--prompt", "President Kennedy, 1961."],
            path: transcriptions,
            form: &[("language", "en"), ("prompt", "President Kennedy, 1961.")],
        },
    ] {
        let ours = cli_text(&model, &jfk, case.cli);
        let theirs = server_text(&server, case.path, case.form, &jfk);
        assert_eq!(ours, theirs, "{:?}", case.cli);
        eprintln!("{:?}: {ours:?}", case.cli);
    }
    drop(server);

    // A translation that falls back to sampling (whisper base, a French question from
    // espeak-ng): the seed changes the text, and the command and the server agree on each.
    // Non-speech tokens are left unsuppressed (`--sound-tags`): the test is about sampling,
    // and with them suppressed this clip's first decode passes whisper's checks.
    let Some(model) = test_support::multilingual_model_path() else {
        return;
    };
    let Some(question) = test_support::espeak_wav("fr", "Pourquoi le chat dort-il sur la table ?")
    else {
        return;
    };
    let server = start_server(&model);
    let mut texts = Vec::new();
    for seed in ["0", "1"] {
        let ours = cli_text(
            &model,
            &question,
            &[
                "--language",
                "auto",
                "--translate",
                "--seed",
                seed,
                "--sound-tags",
            ],
        );
        let theirs = server_text(
            &server,
            "/v1/audio/translations",
            &[("seed", seed), ("sound_tags", "true")],
            &question,
        );
        assert_eq!(ours, theirs, "seed {seed}");
        eprintln!("translation, seed {seed}: {ours:?}");
        texts.push(ours);
    }
    assert_ne!(
        texts[0], texts[1],
        "the translation must fall back to sampling"
    );
}

#[test]
fn long_audio_with_a_vad_model_is_transcribed_in_chunks() {
    let Some(model) = model() else { return };
    let Some(vad) = test_support::vad_model_path() else {
        return;
    };
    // 33 s (jfk.wav three times): over whisper's 30 s window, so the recognizer cuts the
    // speech into chunks at its pauses, as the server does with recognition.vad_model.
    let dir = tempfile::tempdir().unwrap();
    let audio = dir.path().join("jfk3.wav");
    std::fs::write(&audio, server::jfk_repeated(3)).unwrap();
    let output = transcribe([
        OsStr::new("-m"),
        model.as_os_str(),
        audio.as_os_str(),
        OsStr::new("--vad-model"),
        vad.as_os_str(),
        OsStr::new("--no-timestamps"),
        OsStr::new("--no-progress"),
    ]);
    assert!(output.status.success(), "{}", stderr(&output));
    let text = stdout(&output);
    let reference = [test_support::JFK_TEXT; 3].join(" ");
    let wer = whisper_steady::wer::word_error_rate(&reference, &text);
    assert!(wer <= 0.15, "WER {wer:.2}: {text}");
}

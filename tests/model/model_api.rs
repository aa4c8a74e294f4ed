//! The safe API on the real model and real speech (jfk.wav). Skips without the model, see
//! `tests/common/mod.rs`.

use crate::common;

use std::ffi::c_void;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use common::{context, jfk, wer, JFK_TEXT};
use whisper_steady::convert::f16_to_f32;
use whisper_steady::sys;
use whisper_steady::{
    DtwMode, DtwModelPreset, DtwParameters, FullParams, SamplingStrategy, SegmentCallbackData,
    WhisperContext, WhisperContextParameters, WhisperError, WhisperGrammarElement,
    WhisperGrammarElementType, WhisperState, WhisperVadContext, WhisperVadContextParams,
};

const THREADS: i32 = 2;

fn greedy<'a, 'b>() -> FullParams<'a, 'b> {
    let mut params = FullParams::new(SamplingStrategy::Greedy { best_of: 1 });
    params.set_n_threads(THREADS);
    params.set_language(Some("en"));
    params.set_print_progress(false);
    params.set_print_realtime(false);
    params.set_print_special(false);
    params.set_print_timestamps(false);
    params
}

fn text_of(state: &WhisperState) -> String {
    state
        .as_iter()
        .map(|s| s.to_str().expect("UTF-8 text").to_owned())
        .collect::<Vec<_>>()
        .join("")
}

fn transcribe(ctx: &WhisperContext, params: FullParams<'_, '_>, audio: &[f32]) -> WhisperState {
    let mut state = ctx.create_state().expect("state");
    state.full(params, audio).expect("transcription");
    state
}

#[test]
fn jfk_transcribes_exactly() {
    let Some(ctx) = context() else { return };
    let state = transcribe(&ctx, greedy(), &jfk());
    let text = text_of(&state);
    assert_eq!(wer(JFK_TEXT, &text), 0.0, "transcript: {text}");
    assert_eq!(state.full_lang_id_from_state(), 0, "English");
}

/// `model`'s bytes with every f16 tensor widened to f32 and the ftype 0 (what whisper.cpp's own
/// converter writes with `use-f32`): the same weights, all in f32.
fn widened_to_f32(model: &[u8]) -> Vec<u8> {
    let i32_at = |b: &[u8], at: usize| i32::from_le_bytes(b[at..at + 4].try_into().unwrap());
    let mut out = model[..4].to_vec();
    let mut hparams = model[4..48].to_vec();
    hparams[40..44].copy_from_slice(&0i32.to_le_bytes());
    out.extend_from_slice(&hparams);
    let mut at = 48;
    let (n_mel, n_fft) = (i32_at(model, at) as usize, i32_at(model, at + 4) as usize);
    at += 8 + 4 * n_mel * n_fft;
    let n_vocab = i32_at(model, at) as usize;
    at += 4;
    for _ in 0..n_vocab {
        at += 4 + i32_at(model, at) as usize;
    }
    out.extend_from_slice(&model[48..at]);
    while at < model.len() {
        let (n_dims, name_len, ttype) = (
            i32_at(model, at) as usize,
            i32_at(model, at + 4) as usize,
            i32_at(model, at + 8),
        );
        let head_len = 12 + 4 * n_dims + name_len;
        let mut head = model[at..at + head_len].to_vec();
        let values: usize = (0..n_dims)
            .map(|d| i32_at(model, at + 12 + 4 * d) as usize)
            .product();
        at += head_len;
        match ttype {
            0 => {
                out.extend_from_slice(&head);
                out.extend_from_slice(&model[at..at + 4 * values]);
                at += 4 * values;
            }
            1 => {
                head[8..12].copy_from_slice(&0i32.to_le_bytes());
                out.extend_from_slice(&head);
                for half in model[at..at + 2 * values].chunks_exact(2) {
                    let wide = f16_to_f32(u16::from_le_bytes([half[0], half[1]]));
                    out.extend_from_slice(&wide.to_le_bytes());
                }
                at += 2 * values;
            }
            other => panic!("the test model has a tensor of type {other}"),
        }
    }
    out
}

/// Patch 0019: an all-f32 model (f32 convolution weights) transcribes instead of aborting in
/// the encoder's f16 im2col.
#[test]
fn an_all_f32_model_transcribes_as_its_f16_original() {
    let Some(model) = common::model_path() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let wide = dir.path().join("ggml-f32.bin");
    std::fs::write(&wide, widened_to_f32(&std::fs::read(&model).unwrap())).unwrap();
    let ctx = WhisperContext::new_with_params(&wide, WhisperContextParameters::default())
        .expect("the f32 model loads");
    let text = text_of(&transcribe(&ctx, greedy(), &jfk()));
    assert_eq!(wer(JFK_TEXT, &text), 0.0, "transcript: {text}");
}

#[test]
fn segments_are_ordered_and_inside_the_audio() {
    let Some(ctx) = context() else { return };
    let audio = jfk();
    let duration_cs = (audio.len() as i64 * 100 + 15_999) / 16_000;
    let state = transcribe(&ctx, greedy(), &audio);
    let n = state.full_n_segments();
    assert!(n >= 1);
    let mut previous_end = 0;
    for segment in state.as_iter() {
        let (t0, t1) = (segment.start_timestamp(), segment.end_timestamp());
        assert!(
            0 <= t0 && t0 <= t1,
            "segment {}: {t0}..{t1}",
            segment.segment_index()
        );
        assert!(
            t0 >= previous_end,
            "segments overlap: {t0} < {previous_end}"
        );
        assert!(
            t1 <= duration_cs,
            "segment ends at {t1} cs, audio is {duration_cs} cs"
        );
        assert!((0.0..=1.0).contains(&segment.no_speech_probability()));
        previous_end = t1;
    }
    assert!(state.get_segment(n).is_none());
    assert!(state.get_segment(-1).is_none());
}

#[test]
fn token_level_data() {
    let Some(ctx) = context() else { return };
    let mut params = greedy();
    params.set_token_timestamps(true);
    let audio = jfk();
    let duration_cs = (audio.len() as i64 * 100 + 15_999) / 16_000;
    let state = transcribe(&ctx, params, &audio);
    let eot = ctx.token_eot();
    let mut words_seen = String::new();
    for segment in state.as_iter() {
        let mut text = String::new();
        assert!(segment.n_tokens() > 0);
        assert!(segment.get_token(segment.n_tokens()).is_none());
        for i in 0..segment.n_tokens() {
            let token = segment.get_token(i).unwrap();
            let data = token.token_data();
            assert_eq!(data.id, token.token_id());
            assert!((0..ctx.n_vocab()).contains(&data.id));
            assert!((0.0..=1.0).contains(&token.token_probability()), "{data:?}");
            assert_eq!(token.token_probability(), data.p);
            assert_eq!(token.to_str().unwrap(), ctx.token_to_str(data.id).unwrap());
            if data.id < eot {
                text.push_str(token.to_str().unwrap());
                assert!(
                    0 <= data.t0 && data.t0 <= data.t1 && data.t1 <= duration_cs,
                    "{data:?}"
                );
            }
        }
        assert_eq!(text, segment.to_str().unwrap(), "tokens spell the segment");
        words_seen.push_str(&text);
    }
    assert_eq!(wer(JFK_TEXT, &words_seen), 0.0);
}

#[test]
fn dtw_token_timestamps() {
    let Some(path) = common::model_path() else {
        return;
    };
    let mut cparams = WhisperContextParameters::default();
    cparams.use_gpu(false).dtw_parameters(DtwParameters {
        mode: DtwMode::ModelPreset {
            model_preset: DtwModelPreset::TinyEn,
        },
        dtw_mem_size: 128 * 1024 * 1024,
    });
    let ctx = WhisperContext::new_with_params(&path, cparams).expect("model loads with DTW");
    let audio = jfk();
    let duration_cs = (audio.len() as i64 * 100 + 15_999) / 16_000;
    let mut params = greedy();
    params.set_token_timestamps(true);
    let delivered = Arc::new(Mutex::new(Vec::new()));
    let sink = Arc::clone(&delivered);
    params.set_segment_callback_safe(move |s: SegmentCallbackData| {
        sink.lock().unwrap().push((s.segment, s.text))
    });
    let state = transcribe(&ctx, params, &audio);
    // Patch 0005: with DTW the callback used to skip and repeat segments.
    let expected: Vec<(i32, String)> = state
        .as_iter()
        .map(|s| (s.segment_index(), s.to_str().unwrap().to_owned()))
        .collect();
    assert_eq!(*delivered.lock().unwrap(), expected);
    let eot = ctx.token_eot();
    let mut times = Vec::new();
    for segment in state.as_iter() {
        for i in 0..segment.n_tokens() {
            let data = segment.get_token(i).unwrap().token_data();
            if data.id < eot {
                times.push(data.t_dtw);
            }
        }
    }
    assert!(times.len() >= 20, "{times:?}");
    assert!(
        times.iter().all(|&t| (0..=duration_cs).contains(&t)),
        "{times:?}"
    );
    assert!(
        times.windows(2).all(|w| w[0] <= w[1]),
        "DTW times go back: {times:?}"
    );
    assert!(
        times.last().unwrap() - times[0] > 500,
        "spread over the speech: {times:?}"
    );
}

#[test]
fn language_detection() {
    let Some(ctx) = context() else { return };
    assert!(!ctx.is_multilingual(), "tiny.en is English-only");
    // A new state's spectrogram is uninitialized memory in whisper.cpp: detecting (or encoding)
    // before computing one must be an error, not a read of garbage. Create and drop states first
    // so that the allocator hands the new state recycled memory.
    for _ in 0..3 {
        let mut used = ctx.create_state().unwrap();
        used.pcm_to_mel(&jfk(), 2).unwrap();
    }
    let mut state = ctx.create_state().unwrap();
    assert_eq!(state.n_len(), 0);
    assert!(matches!(
        state.lang_detect(0, 2),
        Err(WhisperError::SpectrogramNotInitialized)
    ));
    assert!(matches!(
        state.encode(0, 2),
        Err(WhisperError::SpectrogramNotInitialized)
    ));
    state.pcm_to_mel(&jfk(), 2).unwrap();
    let (id, probs) = state.lang_detect(0, 2).unwrap();
    assert_eq!(probs.len(), whisper_steady::get_lang_max_id() as usize + 1);
    let sum: f32 = probs.iter().sum();
    assert!((sum - 1.0).abs() < 1e-3, "probabilities sum to {sum}");
    let best = probs
        .iter()
        .enumerate()
        .max_by(|a, b| a.1.total_cmp(b.1))
        .unwrap()
        .0;
    assert_eq!(id as usize, best);
    if ctx.is_multilingual() {
        assert_eq!(whisper_steady::get_lang_str(id), Some("en"));
    } else {
        // An English-only model has no trained language head: the answer is a valid language
        // but not a meaningful one (whisper.cpp itself never asks such a model).
        assert!(whisper_steady::get_lang_str(id).is_some());
    }
    // Deterministic: the same input gives the same answer.
    assert_eq!(state.lang_detect(0, 2).unwrap(), (id, probs.clone()));
    assert!(matches!(
        state.lang_detect(0, 0),
        Err(WhisperError::InvalidThreadCount)
    ));
    assert!(state.lang_detect(60_000, 2).is_err(), "offset past the end");

    // With an explicit language, `full` reports it.
    let state = transcribe(&ctx, greedy(), &jfk());
    assert_eq!(state.full_lang_id_from_state(), 0);
}

#[test]
fn concurrent_lang_detect_on_one_state() {
    let Some(ctx) = context() else { return };
    let mut state = ctx.create_state().unwrap();
    state.pcm_to_mel(&jfk(), 2).unwrap();
    let sot = ctx.token_sot();
    state.encode(0, 2).unwrap();
    state.decode(&[sot], 0, 2).unwrap();
    let logits_before = state.get_logits().unwrap().to_vec();
    let expected = state.lang_detect(0, 1).unwrap();

    let state = Arc::new(state);
    let handles: Vec<_> = (0..3)
        .map(|_| {
            let state = Arc::clone(&state);
            std::thread::spawn(move || {
                let logits = state.get_logits().unwrap();
                let mut results = Vec::new();
                for _ in 0..2 {
                    results.push(state.lang_detect(0, 1).unwrap());
                }
                (results, logits.to_vec())
            })
        })
        .collect();
    for handle in handles {
        let (results, logits) = handle.join().unwrap();
        for result in results {
            assert_eq!(result.0, expected.0);
            assert_eq!(
                result.1, expected.1,
                "concurrent detections must not disturb each other"
            );
        }
        assert_eq!(
            logits, logits_before,
            "get_logits is not rewritten by lang_detect"
        );
    }
}

#[test]
fn tokenize_reports_too_many_tokens() {
    let Some(ctx) = context() else { return };
    let tokens = ctx.tokenize(JFK_TEXT, 1000).unwrap();
    assert!(tokens.len() > 10);
    let text: String = tokens
        .iter()
        .map(|&t| ctx.token_to_str(t).unwrap().to_owned())
        .collect();
    assert_eq!(text, JFK_TEXT);
    // whisper.cpp answers -(needed) here; whisper-rs passed that to Vec::set_len.
    for max in [0, 1, 2, 5, tokens.len() - 1] {
        assert!(
            matches!(ctx.tokenize(JFK_TEXT, max), Err(WhisperError::InvalidText)),
            "max {max}"
        );
    }
    assert_eq!(ctx.tokenize(JFK_TEXT, tokens.len()).unwrap(), tokens);
    assert_eq!(ctx.tokenize(JFK_TEXT, usize::MAX).unwrap(), tokens);
    assert!(ctx.tokenize("", 10).unwrap().is_empty());
    assert!(matches!(
        ctx.tokenize("a\0b", 10),
        Err(WhisperError::NullByteInString { idx: 1 })
    ));
    // A run of 30,000 letters overflowed the stack of whisper.cpp's tokenizer (whisper-rs called
    // it): tokenized now, in a thread with a small stack to show that nothing deep runs.
    let ctx2 = ctx.clone();
    let letters = std::thread::Builder::new()
        .stack_size(256 * 1024)
        .spawn(move || ctx2.tokenize(&"a".repeat(30_000), 100_000))
        .unwrap()
        .join()
        .unwrap()
        .unwrap();
    let text: String = letters
        .iter()
        .map(|&t| ctx.token_to_str(t).unwrap().to_owned())
        .collect();
    assert_eq!(text, "a".repeat(30_000));
}

/// whisper.cpp's own tokenizer, on a context loaded through the raw API.
struct RawTokenizer(*mut sys::whisper_context);

impl RawTokenizer {
    fn load(path: &std::path::Path) -> RawTokenizer {
        let path = std::ffi::CString::new(path.to_str().unwrap()).unwrap();
        // SAFETY: a valid path and default parameters.
        let ctx = unsafe {
            let mut params = sys::whisper_context_default_params();
            params.use_gpu = false;
            sys::whisper_init_from_file_with_params_no_state(path.as_ptr(), params)
        };
        assert!(!ctx.is_null());
        RawTokenizer(ctx)
    }

    fn tokenize(&self, text: &str) -> Vec<i32> {
        let text = std::ffi::CString::new(text).unwrap();
        // A token covers at least one byte.
        let mut tokens = vec![0; text.as_bytes().len() + 1];
        // SAFETY: a loaded context, a C string and a buffer of the size passed.
        let n = unsafe {
            sys::whisper_tokenize(
                self.0,
                text.as_ptr(),
                tokens.as_mut_ptr(),
                tokens.len() as i32,
            )
        };
        tokens.truncate(usize::try_from(n).unwrap());
        tokens
    }
}

impl Drop for RawTokenizer {
    fn drop(&mut self) {
        // SAFETY: loaded above, freed once.
        unsafe { sys::whisper_free(self.0) }
    }
}

/// Our tokenizer against whisper.cpp's on `model`: every vocabulary entry that is text, mixed
/// texts of letters, digits, blanks, contractions, punctuation and UTF-8, and runs up to the
/// length whisper.cpp's can take.
fn tokenizer_matches_whisper_cpp_on(model: &std::path::Path) {
    use rand::{Rng, SeedableRng};
    let mut params = WhisperContextParameters::default();
    params.use_gpu(false);
    let ours = WhisperContext::new_with_params(model, params).unwrap();
    let theirs = RawTokenizer::load(model);
    let same = |text: &str| {
        assert_eq!(
            ours.tokenize(text, usize::MAX).unwrap(),
            theirs.tokenize(text),
            "{text:?}"
        );
    };
    let entries: Vec<&str> = (0..ours.n_vocab())
        .filter_map(|id| ours.token_to_str(id).ok())
        .filter(|t| !t.is_empty() && !t.contains('\0'))
        .collect();
    assert!(entries.len() > 40_000, "{}", entries.len());
    for group in entries.chunks(64) {
        same(&group.concat());
        same(&group.join("\n"));
    }
    let pieces = [
        "a", "Z", "q", "7", "42", " ", "  ", "\n", "\t", "\r", "\u{b}", "\u{c}", "'", "'s", "'re",
        "'ll", "'d", "'m", "'t", "'ve", "'S", ".", ",", "!?", "-", "_", "é", "ß", "中", "文", "，",
        "😀", " the", " and", "Hello", "world", "1961", "—",
    ];
    let mut rng = rand::rngs::SmallRng::seed_from_u64(24);
    for _ in 0..3_000 {
        let n = rng.random_range(0..40);
        let text: String = (0..n)
            .map(|_| pieces[rng.random_range(0..pieces.len())])
            .collect();
        same(&text);
    }
    for (unit, n) in [
        ("a", 1024),
        (" ", 600),
        ("7", 1024),
        ("中", 340),
        ("é", 500),
    ] {
        same(&format!("x{}y", unit.repeat(n)));
        same(&unit.repeat(n));
    }
}

#[test]
fn tokenize_gives_whisper_cpps_tokens() {
    if let Some(model) = common::model_path() {
        tokenizer_matches_whisper_cpp_on(&model);
    }
    if let Some(model) = common::multilingual_model_path() {
        tokenizer_matches_whisper_cpp_on(&model);
    }
}

#[test]
fn tokenize_takes_linear_time_on_adversarial_text() {
    let Some(ctx) = context() else { return };
    // 100 KB without a word boundary, in a thread with a small stack: whisper.cpp's tokenizer
    // took 7 s for 6,000 spaces and overflowed its stack at 30,000 letters.
    for unit in ["a", " ", "7", "中", "é", ".", "😀"] {
        let text = unit.repeat(100_000 / unit.len());
        let ctx = ctx.clone();
        let start = std::time::Instant::now();
        let tokens = std::thread::Builder::new()
            .stack_size(256 * 1024)
            .spawn(move || ctx.tokenize(&text, usize::MAX).unwrap())
            .unwrap()
            .join()
            .unwrap();
        let took = start.elapsed();
        assert!(!tokens.is_empty());
        assert!(
            took < std::time::Duration::from_secs(5),
            "{unit:?} x 100 KB: {took:?}"
        );
        eprintln!("{unit:?} x 100 KB: {} tokens in {took:.1?}", tokens.len());
    }
}

#[test]
fn tokens_round_trip() {
    let Some(ctx) = context() else { return };
    assert_eq!(ctx.n_vocab(), 51864);
    assert_eq!(ctx.model_n_vocab(), 51864);
    assert_eq!(ctx.model_n_mels(), 80);
    assert_eq!(ctx.model_n_audio_layer(), 4);
    assert_eq!(ctx.model_type_readable_str().unwrap(), "tiny");
    assert_eq!(ctx.token_to_str(ctx.token_eot()).unwrap(), "[_EOT_]");
    assert!(ctx.token_to_str(-1).is_err());
    assert!(ctx.token_to_str(ctx.n_vocab()).is_err());
    assert!(ctx.token_to_bytes(i32::MAX).is_err());
    assert_eq!(ctx.token_lang(0), ctx.token_sot() + 1);
}

#[test]
fn set_mel_checks_its_shape() {
    let Some(ctx) = context() else { return };
    let mut state = ctx.create_state().unwrap();
    assert!(matches!(
        state.set_mel(&[0.0; 81]),
        Err(WhisperError::InvalidMelBands)
    ));
    assert!(matches!(
        state.set_mel(&[]),
        Err(WhisperError::InvalidMelBands)
    ));
    state.set_mel(&vec![0.0; 80 * 100]).unwrap();
    assert_eq!(state.n_len(), 100);
}

#[test]
fn low_level_pipeline() {
    let Some(ctx) = context() else { return };
    let mut state = ctx.create_state().unwrap();
    assert!(matches!(
        state.encode(0, 2),
        Err(WhisperError::SpectrogramNotInitialized)
    ));
    assert!(matches!(
        state.pcm_to_mel(&[], 2),
        Err(WhisperError::NoSamples)
    ));
    assert!(matches!(
        state.pcm_to_mel(&jfk(), 0),
        Err(WhisperError::InvalidThreadCount)
    ));
    assert!(matches!(state.get_logits(), Err(WhisperError::NullPointer)));
    state.pcm_to_mel(&jfk(), 2).unwrap();
    assert!(state.n_len() > 1000);
    state.encode(0, 2).unwrap();
    let prompt = [ctx.token_sot(), ctx.token_not()];
    assert!(matches!(
        state.decode(&[-5], 0, 2),
        Err(WhisperError::InvalidText)
    ));
    assert!(matches!(
        state.decode(&[ctx.n_vocab()], 0, 2),
        Err(WhisperError::InvalidText)
    ));
    // No tokens, or more than the text context holds: refused before whisper.cpp's batch
    // buffer (n_text_ctx tokens) is written.
    assert!(matches!(
        state.decode(&[], 0, 2),
        Err(WhisperError::InvalidText)
    ));
    let too_many = vec![ctx.token_sot(); ctx.n_text_ctx() as usize + 1];
    assert!(matches!(
        state.decode(&too_many, 0, 2),
        Err(WhisperError::InvalidText)
    ));
    assert!(matches!(
        state.decode(&prompt, ctx.n_text_ctx() as usize - 1, 2),
        Err(WhisperError::InvalidText)
    ));
    state.decode(&prompt, 0, 2).unwrap();
    let logits = state.get_logits().unwrap();
    assert_eq!(logits.len(), ctx.n_vocab() as usize);
    assert!(logits
        .iter()
        .all(|l| l.is_finite() || *l == f32::NEG_INFINITY));
    assert!(matches!(
        state.full(greedy(), &[]),
        Err(WhisperError::NoSamples)
    ));
}

#[test]
fn callbacks_fire() {
    let Some(ctx) = context() else { return };
    let progress = Arc::new(Mutex::new(Vec::new()));
    let segments = Arc::new(Mutex::new(Vec::<SegmentCallbackData>::new()));
    let encoder_begins = Arc::new(AtomicUsize::new(0));

    unsafe extern "C" fn on_encoder_begin(
        _ctx: *mut whisper_steady::WhisperSysContext,
        _state: *mut whisper_steady::WhisperSysState,
        user_data: *mut c_void,
    ) -> bool {
        // SAFETY: user data is the AtomicUsize kept alive by the test for the whole run.
        let counter = unsafe { &*(user_data as *const AtomicUsize) };
        counter.fetch_add(1, Ordering::SeqCst);
        true
    }

    let mut params = greedy();
    let sink = Arc::clone(&progress);
    params.set_progress_callback_safe(move |p: i32| sink.lock().unwrap().push(p));
    let sink = Arc::clone(&segments);
    params.set_segment_callback_safe(move |s: SegmentCallbackData| sink.lock().unwrap().push(s));
    // SAFETY: the callback matches the type and the counter outlives the transcription.
    unsafe {
        params.set_start_encoder_callback(Some(on_encoder_begin));
        params.set_start_encoder_callback_user_data(Arc::as_ptr(&encoder_begins) as *mut c_void);
    }
    let state = transcribe(&ctx, params, &jfk());

    let progress = progress.lock().unwrap();
    assert!(!progress.is_empty(), "progress callback never fired");
    assert!(progress.windows(2).all(|w| w[0] <= w[1]), "{progress:?}");
    assert!(
        progress.iter().all(|p| (0..=100).contains(p)),
        "{progress:?}"
    );
    assert!(encoder_begins.load(Ordering::SeqCst) >= 1);
    let segments = segments.lock().unwrap();
    assert_eq!(segments.len() as i32, state.full_n_segments());
    for (data, segment) in segments.iter().zip(state.as_iter()) {
        assert_eq!(data.segment, segment.segment_index());
        assert_eq!(data.text, segment.to_str().unwrap());
        assert_eq!(data.start_timestamp, segment.start_timestamp());
        assert_eq!(data.end_timestamp, segment.end_timestamp());
    }
}

/// 66 s of speech: jfk.wav six times, so whisper.cpp needs several 30 s windows.
fn long_audio() -> Vec<f32> {
    let one = jfk();
    let mut audio = Vec::with_capacity(one.len() * 6);
    for _ in 0..6 {
        audio.extend_from_slice(&one);
    }
    audio
}

#[test]
fn abort_callback_stops_a_long_transcription() {
    let Some(ctx) = context() else { return };
    let audio = long_audio();
    let complete = transcribe(&ctx, greedy(), &audio);
    let all_segments = complete.full_n_segments();
    assert!(
        all_segments >= 6,
        "the long audio yields {all_segments} segments"
    );

    // A capturing closure (the case whisper-rs's type confusion broke): stop once the first
    // segment has been delivered.
    let first_segment_seen = Arc::new(AtomicBool::new(false));
    let abort_calls = Arc::new(AtomicUsize::new(0));
    let mut params = greedy();
    let seen = Arc::clone(&first_segment_seen);
    params.set_segment_callback_safe(move |_s: SegmentCallbackData| {
        seen.store(true, Ordering::SeqCst)
    });
    let (seen, calls) = (Arc::clone(&first_segment_seen), Arc::clone(&abort_calls));
    params.set_abort_callback_safe(move || {
        calls.fetch_add(1, Ordering::SeqCst);
        seen.load(Ordering::SeqCst)
    });
    let mut state = ctx.create_state().unwrap();
    let result = state.full(params, &audio);
    assert!(
        abort_calls.load(Ordering::SeqCst) > 0,
        "the abort callback was never called"
    );
    assert!(first_segment_seen.load(Ordering::SeqCst));
    assert!(result.is_err(), "an aborted transcription reports an error");
    assert!(
        state.full_n_segments() < all_segments,
        "aborted run produced {} of {all_segments} segments",
        state.full_n_segments()
    );
}

#[test]
fn panicking_callbacks_do_not_unwind_into_c() {
    let Some(ctx) = context() else { return };
    let mut params = greedy();
    params.set_progress_callback_safe(|_p: i32| panic!("progress callback panics"));
    params.set_segment_callback_safe(|_s: SegmentCallbackData| panic!("segment callback panics"));
    let state = transcribe(&ctx, params, &jfk());
    assert_eq!(wer(JFK_TEXT, &text_of(&state)), 0.0, "the run completes");

    let mut params = greedy();
    params.set_abort_callback_safe(|| panic!("abort callback panics"));
    let mut state = ctx.create_state().unwrap();
    assert!(
        state.full(params, &jfk()).is_err(),
        "a panicking abort callback stops the run"
    );
}

#[test]
fn cloned_params_with_callbacks_run_on_two_threads() {
    let Some(ctx) = context() else { return };
    let count = Arc::new(AtomicUsize::new(0));
    let mut params = greedy();
    let counter = Arc::clone(&count);
    params.set_segment_callback_safe(move |_s: SegmentCallbackData| {
        counter.fetch_add(1, Ordering::SeqCst);
    });
    params.set_initial_prompt("President Kennedy speaking.");
    let handles: Vec<_> = (0..2)
        .map(|_| {
            let (ctx, params) = (Arc::clone(&ctx), params.clone());
            std::thread::spawn(move || {
                let mut state = ctx.create_state().unwrap();
                state.full(params, &jfk()).unwrap();
                text_of(&state)
            })
        })
        .collect();
    drop(params);
    for handle in handles {
        let text = handle.join().unwrap();
        assert!(wer(JFK_TEXT, &text) <= 0.1, "{text}");
    }
    assert!(count.load(Ordering::SeqCst) >= 2);
}

#[test]
fn grammar_constrains_decoding() {
    let Some(ctx) = context() else { return };
    use WhisperGrammarElementType::*;
    let e = WhisperGrammarElement::new;
    // root ::= [a-z ] rest ; rest ::= [a-z ] rest | (empty)
    let grammar = [
        e(Character, 'a' as u32),
        e(CharacterRangeUpper, 'z' as u32),
        e(CharacterAlternate, ' ' as u32),
        e(RuleReference, 1),
        e(End, 0),
        e(Character, 'a' as u32),
        e(CharacterRangeUpper, 'z' as u32),
        e(CharacterAlternate, ' ' as u32),
        e(RuleReference, 1),
        e(Alternate, 0),
        e(End, 0),
    ];
    let mut params = greedy();
    params.set_grammar(Some(&grammar));
    params.set_start_rule(0);
    params.set_grammar_penalty(1000.0);
    let state = transcribe(&ctx, params, &jfk());
    let text = text_of(&state);
    assert!(
        text.chars().all(|c| c.is_ascii_lowercase() || c == ' '),
        "the grammar allows lowercase letters and spaces only: {text:?}"
    );
    assert!(wer(JFK_TEXT, &text) <= 0.2, "{text}");

    let bad = [e(RuleReference, 5), e(End, 0)];
    let mut params = greedy();
    let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        params.set_grammar(Some(&bad))
    }));
    assert!(result.is_err(), "a dangling rule reference is refused");
}

#[test]
fn vad_reports_a_missing_model_cleanly() {
    let Some(ctx) = context() else { return };
    let missing = "/nonexistent/ggml-silero-vad.bin";
    assert!(matches!(
        WhisperVadContext::new(missing, WhisperVadContextParams::default()),
        Err(WhisperError::InitError)
    ));
    let mut params = greedy();
    params.set_vad_model_path(Some(missing));
    params.enable_vad(true);
    let mut state = ctx.create_state().unwrap();
    let result = state.full(params, &jfk());
    assert!(
        result.is_err(),
        "VAD without its model fails cleanly: {result:?}"
    );
}

/// `decode` of several tokens gives the logits of the token after the last one: the same, up to
/// float rounding, as decoding them one at a time (patch 0023 computes only that row; before
/// it, `get_logits` returned the first row, which whisper.cpp never fills).
#[test]
fn decode_of_a_prompt_gives_the_last_tokens_logits() {
    let Some(ctx) = context() else { return };
    let mut state = ctx.create_state().unwrap();
    state.pcm_to_mel(&jfk(), 2).unwrap();
    state.encode(0, 2).unwrap();
    let mut prompt = vec![ctx.token_sot(), ctx.token_not()];
    prompt.extend(ctx.tokenize(" And so my fellow", 16).unwrap());

    state.decode(&prompt, 0, 2).unwrap();
    let batched = state.get_logits().unwrap().to_vec();
    for (n_past, token) in prompt.iter().enumerate() {
        state.decode(&[*token], n_past, 2).unwrap();
    }
    let stepwise = state.get_logits().unwrap().to_vec();

    let argmax = |l: &[f32]| {
        l.iter()
            .enumerate()
            .max_by(|a, b| a.1.total_cmp(b.1))
            .map(|(i, _)| i)
            .unwrap()
    };
    assert!(
        batched.iter().any(|l| *l != 0.0),
        "the last token's row was computed"
    );
    assert_eq!(argmax(&batched), argmax(&stepwise));
    let expected = ctx.tokenize(" Americans", 4).unwrap()[0];
    assert_eq!(
        argmax(&batched) as i32,
        expected,
        "\"And so my fellow\" continues with \" Americans\" on jfk.wav"
    );
    let worst = batched
        .iter()
        .zip(&stepwise)
        .filter(|(a, b)| a.is_finite() && b.is_finite())
        .map(|(a, b)| (a - b).abs())
        .fold(0.0f32, f32::max);
    assert!(worst < 0.05, "largest difference {worst}");
}

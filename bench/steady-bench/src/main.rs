//! Speed measurements of whisper-steady (run by bench/run.sh):
//!
//! - `steady-bench compat MODEL THREADS RUNS AUDIO...`: the whisper-rs code of
//!   bench/common/compat.rs, compiled against this crate (whisper-rs's defaults);
//! - `steady-bench recognizer MODEL THREADS RUNS AUDIO... [--flash-attn] [--fit-window]
//!   [--vad=VAD_MODEL] [--chunk-states=N] [--long-audio=HOW] [--beam=N]`: one request at a
//!   time through a `Recognizer` with one worker of THREADS threads and every other setting at
//!   its default; the flags turn flash attention and `fit_audio_ctx` on, set `vad_model` (long
//!   audio in chunks), `chunk_states`, `long_audio` and the beams, for the experiments in
//!   bench/RESULTS.md;
//! - `steady-bench throughput MODEL TOTAL_THREADS STATES REQUESTS AUDIO [--fit-window]`:
//!   REQUESTS requests
//!   from 8 client threads, served by a `Recognizer` with STATES states sharing TOTAL_THREADS
//!   threads, and by the pattern of the user's original server: one context, one state, one
//!   global mutex, TOTAL_THREADS threads per call. Prints requests per minute for both;
//! - `steady-bench window MODEL THREADS SET.tsv RULE...`: every clip of the word-error set
//!   (bench/wer_set.py, or bench/commands/make_set.py's; whisper is given the language of the
//!   clip's espeak-ng voice) through a one-worker `Recognizer`, once per encoder-window rule: `full`
//!   (whisper's 30 s window), `fit` (the Recognizer's default), or `M` / `M/F` (the clip plus M
//!   positions of 20 ms, at least F positions). One JSON line per clip and rule;
//! - `steady-bench signals MODEL VAD_MODEL THREADS SET.tsv`: for every clip of the no-speech set
//!   (bench/speechless_set.py), what the speech guard could decide on: the VAD's frame
//!   probabilities and speech spans, and whisper's segments (text, no-speech probability, mean
//!   log-probability of the text tokens) with non-speech tokens suppressed and not, language
//!   detected on multilingual models. One JSON line per clip; bench/speechless_tune.py reads them;
//! - `steady-bench guard MODEL VAD_MODEL THREADS SET.tsv`: every clip of a set (bench/wer_set.py's
//!   or bench/speechless_set.py's: the reference is the last column) through a one-worker
//!   `Recognizer` with `vad_model`, with the speech guard (the default) and without it
//!   (`sound_tags`, whisper's output as it is). One JSON line per clip;
//! - `steady-bench system-info`: how ggml was compiled for the CPU (`cpu_build`) and the
//!   instruction sets that gave (`print_system_info`), two lines of text;
//! - `steady-bench pool`: nanoseconds per alloc/free pair of the VMM pool's bookkeeping,
//!   upstream's LIFO counter vs patch 0001's ledger, LIFO and out-of-order workloads.

#[path = "../../common/compat.rs"]
mod compat;

use std::sync::Mutex;
use std::time::Instant;

use whisper_rs::recognizer::{RecognizeOptions, Recognizer, RecognizerConfig};
use whisper_rs::{FullParams, SamplingStrategy};

fn main() {
    // The `isolation` mode's worker processes are this program started again.
    whisper_rs::recognizer::run_worker_if_child();
    let mode = std::env::args().nth(1).unwrap_or_default();
    let rest: Vec<String> = std::env::args().skip(2).collect();
    match mode.as_str() {
        "compat" => compat_mode(),
        "recognizer" => recognizer_mode(&rest),
        "throughput" => throughput_mode(&rest),
        "pool" => pool_mode(),
        "system-info" => system_info_mode(),
        "window" => window_mode(&rest),
        "signals" => signals_mode(&rest),
        "guard" => guard_mode(&rest),
        "isolation" => isolation_mode(&rest),
        _ => {
            eprintln!(
                "usage: steady-bench compat|recognizer|throughput|pool|system-info|window|signals|guard|isolation ..."
            );
            std::process::exit(2);
        }
    }
}

fn compat_mode() {
    let (model, threads, runs, audio) = compat::args(std::env::args().skip(2));
    let ctx = compat::load(&model);
    for path in &audio {
        let samples = compat::read_wav(path);
        let (times, text) = compat::run(&ctx, &samples, threads, runs);
        compat::report(
            "whisper-steady (whisper-rs API)",
            threads,
            path,
            &times,
            &text,
        );
    }
}

fn recognizer_mode(all: &[String]) {
    let flag = |name: &str| all.iter().any(|a| a == name);
    let value = |name: &str| {
        all.iter()
            .find_map(|a| a.strip_prefix(name)?.strip_prefix('='))
    };
    let a: Vec<&String> = all.iter().filter(|a| !a.starts_with("--")).collect();
    let (model, threads, runs): (&str, usize, usize) = (
        a[0],
        a[1].parse().expect("THREADS"),
        a[2].parse().expect("RUNS"),
    );
    let mut config = RecognizerConfig::new(model);
    config.workers = 1;
    config.threads_per_worker = threads;
    config.use_gpu = false;
    config.flash_attn = flag("--flash-attn");
    config.fit_audio_ctx = flag("--fit-window");
    config.vad_model = value("--vad").map(Into::into);
    if let Some(n) = value("--chunk-states") {
        config.chunk_states = n.parse().expect("--chunk-states=N");
    }
    if let Some(how) = value("--long-audio") {
        config.long_audio = how
            .parse()
            .expect("--long-audio=chunks_when_greedy|chunks|windows");
    }
    let label = format!(
        "whisper-steady (Recognizer{}{}{})",
        if config.flash_attn {
            ", flash attn"
        } else {
            ""
        },
        if config.fit_audio_ctx {
            ", fitted window"
        } else {
            ""
        },
        if config.vad_model.is_some() {
            format!(", VAD chunks on {} states", config.chunk_states)
        } else {
            String::new()
        }
    );
    // `--beam=N`: beam search as the server's defaults (beam 5, temperature 0 then whisper's
    // fallback); greedy otherwise.
    let beam: Option<u32> = value("--beam").map(|n| n.parse().expect("--beam=N"));
    let label = match beam {
        Some(n) => format!("{label}, beam {n}"),
        None => label,
    };
    let recognizer = Recognizer::new(config).expect("the recognizer starts");
    for path in a[3..].iter().copied() {
        let samples = compat::read_wav(path);
        let mut times = Vec::new();
        let mut text = String::new();
        for _ in 0..runs {
            let start = Instant::now();
            let mut options = RecognizeOptions::new().language("en");
            options.beam_size = beam;
            let t = recognizer
                .transcribe(samples.clone(), options)
                .expect("a transcript");
            times.push(start.elapsed().as_secs_f64());
            text = t.text;
        }
        compat::report(&label, threads as i32, path, &times, &text);
    }
}

fn throughput_mode(a: &[String]) {
    let fit_window = a.iter().any(|x| x == "--fit-window");
    let a: Vec<&String> = a.iter().filter(|x| !x.starts_with("--")).collect();
    let model = a[0];
    let total: usize = a[1].parse().expect("TOTAL_THREADS");
    let states: usize = a[2].parse().expect("STATES");
    let requests: usize = a[3].parse().expect("REQUESTS");
    let audio = compat::read_wav(a[4]);
    let clients = 8;

    // The user's pattern: one context, one state, a global mutex around every call.
    let ctx = compat::load(model);
    let state = Mutex::new(ctx.create_state().expect("a state"));
    let start = Instant::now();
    std::thread::scope(|s| {
        for c in 0..clients {
            let (state, audio) = (&state, &audio);
            s.spawn(move || {
                for _ in (c..requests).step_by(clients) {
                    let mut p = FullParams::new(SamplingStrategy::Greedy { best_of: 1 });
                    p.set_n_threads(total as i32);
                    p.set_language(Some("en"));
                    p.set_print_progress(false);
                    p.set_print_realtime(false);
                    let mut st = state.lock().unwrap();
                    st.full(p, audio).expect("whisper_full");
                }
            });
        }
    });
    let mutex_rpm = requests as f64 / start.elapsed().as_secs_f64() * 60.0;
    drop(state);
    drop(ctx);

    let mut config = RecognizerConfig::new(model);
    config.workers = states;
    config.threads_per_worker = (total / states).max(1);
    config.use_gpu = false;
    config.queue_limit = requests;
    config.fit_audio_ctx = fit_window;
    let recognizer = Recognizer::new(config).expect("the recognizer starts");
    let start = Instant::now();
    std::thread::scope(|s| {
        for c in 0..clients {
            let (recognizer, audio) = (&recognizer, &audio);
            s.spawn(move || {
                for _ in (c..requests).step_by(clients) {
                    recognizer
                        .transcribe(audio.clone(), RecognizeOptions::new().language("en"))
                        .expect("a transcript");
                }
            });
        }
    });
    let rec_rpm = requests as f64 / start.elapsed().as_secs_f64() * 60.0;
    println!(
        "{{\"total_threads\":{total},\"states\":{states},\"requests\":{requests},\"fit_window\":{fit_window},\"mutex_rpm\":{mutex_rpm:.1},\"recognizer_rpm\":{rec_rpm:.1}}}"
    );
}

fn pool_mode() {
    use pool_host::pool_bench;
    let pairs = 20_000_000;
    for depth in [4u32, 16, 64] {
        let best = |ledger: bool, out_of_order: bool| {
            (0..5)
                .filter_map(|_| pool_bench(ledger, out_of_order, depth, pairs))
                .fold(f64::INFINITY, f64::min)
        };
        let upstream = best(false, false);
        let ledger = best(true, false);
        let ooo = best(true, true);
        println!(
            "{{\"depth\":{depth},\"upstream_lifo_ns\":{upstream:.2},\"ledger_lifo_ns\":{ledger:.2},\"ledger_out_of_order_ns\":{ooo:.2}}}"
        );
    }
}

fn system_info_mode() {
    let build = whisper_rs::cpu_build();
    println!("ggml CPU build: {:?} ({})", build.target, build.reason);
    println!(
        "ggml system info: {}",
        whisper_rs::print_system_info().trim()
    );
    if let Some(warning) = whisper_rs::slow_cpu_build_warning() {
        println!("warning: {warning}");
    }
}

/// An encoder-window rule of `window` mode.
#[derive(Clone, Copy)]
enum WindowRule {
    /// Whisper's full 30 s window.
    Full,
    /// The Recognizer's default (`fit_audio_ctx`).
    Fit,
    /// The clip plus `margin` positions, at least `floor` positions.
    Margin { margin: u32, floor: u32 },
}

impl WindowRule {
    fn parse(text: &str) -> WindowRule {
        match text {
            "full" => WindowRule::Full,
            "fit" => WindowRule::Fit,
            _ => {
                let (margin, floor) = text.split_once('/').unwrap_or((text, "0"));
                WindowRule::Margin {
                    margin: margin.parse().expect("RULE: full, fit, M or M/F"),
                    floor: floor.parse().expect("RULE: full, fit, M or M/F"),
                }
            }
        }
    }

    /// `fit_audio_ctx` and `audio_ctx` for a clip of `samples`.
    fn options(self, samples: usize) -> (bool, Option<u32>) {
        match self {
            WindowRule::Full => (false, None),
            WindowRule::Fit => (true, None),
            WindowRule::Margin { margin, floor } => {
                let ctx = (samples.div_ceil(320) as u32 + margin).max(floor);
                (false, (ctx < 1500).then_some(ctx))
            }
        }
    }
}

fn window_mode(a: &[String]) {
    let (model, threads, set) = (&a[0], a[1].parse().expect("THREADS"), &a[2]);
    let rules: Vec<(&String, WindowRule)> =
        a[3..].iter().map(|r| (r, WindowRule::parse(r))).collect();
    // The language is the voice's (espeak-ng's `de`, `es-419`, `en-gb+f2`: its first two
    // letters), given to whisper as Home Assistant gives its pipeline's.
    let clips: Vec<(String, String, String)> = std::fs::read_to_string(set)
        .expect("SET.tsv")
        .lines()
        .map(|line| {
            let fields: Vec<&str> = line.split('\t').collect();
            let language = fields[2].get(..2).unwrap_or("en").to_string();
            (fields[0].to_string(), fields[1].to_string(), language)
        })
        .collect();
    let recognizer_for = |fit: bool| {
        let mut config = RecognizerConfig::new(model);
        config.workers = 1;
        config.threads_per_worker = threads;
        config.use_gpu = false;
        config.fit_audio_ctx = fit;
        Recognizer::new(config).expect("the recognizer starts")
    };
    let (fitting, plain) = (recognizer_for(true), recognizer_for(false));
    for (path, split, language) in &clips {
        let samples = compat::read_wav(path);
        for (name, rule) in &rules {
            let (fit, audio_ctx) = rule.options(samples.len());
            let mut options = RecognizeOptions::new().language(language);
            options.audio_ctx = audio_ctx;
            let recognizer = if fit { &fitting } else { &plain };
            let start = Instant::now();
            let transcript = recognizer
                .transcribe(samples.clone(), options)
                .expect("a transcript");
            let seconds = start.elapsed().as_secs_f64();
            // The mean log probability of the text tokens, and the lowest segment mean: what a
            // rule could check to decide whether to trust a fitted window.
            let text_tokens = |s: &whisper_rs::recognizer::Segment| {
                s.tokens
                    .iter()
                    .filter(|t| !t.special)
                    .map(|t| t.plog)
                    .collect::<Vec<f32>>()
            };
            let all: Vec<f32> = transcript.segments.iter().flat_map(text_tokens).collect();
            let mean = |v: &[f32]| v.iter().sum::<f32>() / v.len().max(1) as f32;
            let worst_segment = transcript
                .segments
                .iter()
                .map(|s| mean(&text_tokens(s)))
                .fold(0.0f32, f32::min);
            println!(
                "{{\"rule\":{name:?},\"split\":{split:?},\"audio\":{path:?},\"seconds\":{seconds:.4},\"avg_logprob\":{:.4},\"worst_segment_logprob\":{worst_segment:.4},\"segments\":{},\"text\":{:?}}}",
                mean(&all),
                transcript.segments.len(),
                transcript.text
            );
        }
    }
}

fn signals_mode(a: &[String]) {
    use whisper_rs::{WhisperVadContext, WhisperVadContextParams, WhisperVadParams};
    let (model, vad_model, threads, set) =
        (&a[0], &a[1], a[2].parse::<i32>().expect("THREADS"), &a[3]);
    let ctx = compat::load(model);
    let multilingual = ctx.is_multilingual();
    let mut state = ctx.create_state().expect("a state");
    let mut vad_params = WhisperVadContextParams::new();
    vad_params.set_n_threads(1);
    let mut vad = WhisperVadContext::new(vad_model, vad_params).expect("the VAD model loads");
    let quote = |s: &str| format!("{s:?}");
    for line in std::fs::read_to_string(set).expect("SET.tsv").lines() {
        let fields: Vec<&str> = line.split('\t').collect();
        let samples = compat::read_wav(fields[0]);
        vad.detect_speech(&samples).expect("VAD");
        let probs = vad.probabilities().to_vec();
        let max_p = probs.iter().copied().fold(0.0f32, f32::max);
        let over = probs.iter().filter(|p| **p > 0.5).count();
        let spans: Vec<(f32, f32)> = vad
            .segments_from_samples(WhisperVadParams::new(), &samples)
            .expect("VAD segments")
            .map(|s| (s.start / 100.0, s.end / 100.0))
            .collect();
        let mut runs = Vec::new();
        for nst in [false, true] {
            let mut params = FullParams::new(SamplingStrategy::Greedy { best_of: 5 });
            params.set_n_threads(threads);
            params.set_language(Some(if multilingual { "auto" } else { "en" }));
            params.set_no_context(true);
            params.set_suppress_nst(nst);
            params.set_print_progress(false);
            state.full(params, &samples).expect("whisper_full");
            let first_special = ctx.token_eot();
            let segments: Vec<String> = state
                .as_iter()
                .map(|seg| {
                    let plogs: Vec<f32> = (0..seg.n_tokens())
                        .filter_map(|i| seg.get_token(i))
                        .map(|t| t.token_data())
                        .filter(|d| d.id < first_special)
                        .map(|d| d.plog)
                        .collect();
                    let avg = plogs.iter().sum::<f32>() / plogs.len().max(1) as f32;
                    format!(
                        "{{\"t0\":{},\"t1\":{},\"text\":{},\"nsp\":{},\"avg_logprob\":{},\"tokens\":{}}}",
                        seg.start_timestamp() as f64 / 100.0,
                        seg.end_timestamp() as f64 / 100.0,
                        quote(&seg.to_str_lossy().unwrap_or_default()),
                        seg.no_speech_probability(),
                        avg,
                        plogs.len()
                    )
                })
                .collect();
            let lang = whisper_rs::get_lang_str(state.full_lang_id_from_state()).unwrap_or("?");
            runs.push(format!(
                "\"{}\":{{\"language\":{},\"segments\":[{}]}}",
                if nst { "nst" } else { "plain" },
                quote(lang),
                segments.join(",")
            ));
        }
        let spans: Vec<String> = spans.iter().map(|(a, b)| format!("[{a},{b}]")).collect();
        println!(
            "{{\"path\":{},\"split\":{},\"kind\":{},\"seconds\":{},\"reference\":{},\"vad_max\":{max_p},\"vad_frames_over\":{over},\"vad_frames\":{},\"vad_spans\":[{}],{}}}",
            quote(fields[0]),
            quote(fields[1]),
            quote(fields[2]),
            fields[3],
            quote(fields.get(4).copied().unwrap_or("")),
            probs.len(),
            spans.join(","),
            runs.join(",")
        );
    }
}

fn guard_mode(a: &[String]) {
    let (model, vad_model, threads, set) = (&a[0], &a[1], a[2].parse().expect("THREADS"), &a[3]);
    let mut config = RecognizerConfig::new(model.as_str());
    config.workers = 1;
    config.threads_per_worker = threads;
    config.use_gpu = false;
    config.vad_model = Some(vad_model.into());
    let recognizer = Recognizer::new(config).expect("the recognizer starts");
    for line in std::fs::read_to_string(set).expect("SET.tsv").lines() {
        let fields: Vec<&str> = line.split('\t').collect();
        let samples = compat::read_wav(fields[0]);
        let mut texts = Vec::new();
        for sound_tags in [false, true] {
            let mut options = RecognizeOptions::new();
            options.sound_tags = sound_tags;
            let start = Instant::now();
            let t = recognizer
                .transcribe(samples.clone(), options)
                .expect("a transcript");
            texts.push(format!(
                "{:?}:{{\"text\":{:?},\"no_speech\":{},\"language\":{:?},\"seconds\":{:.3}}}",
                if sound_tags { "unguarded" } else { "guarded" },
                t.text,
                t.no_speech,
                t.language,
                start.elapsed().as_secs_f64()
            ));
        }
        println!(
            "{{\"path\":{:?},\"split\":{:?},\"reference\":{:?},{}}}",
            fields[0],
            fields[1],
            fields.last().copied().unwrap_or(""),
            texts.join(",")
        );
    }
}

/// `isolation MODEL AUDIO.wav [RUNS]`: the cost of process isolation per request. Two
/// recognizers with the same settings (1 worker, 2 threads, defaults otherwise), one with its
/// lane in a worker process and one in threads, take turns on the same audio, one request at
/// a time; prints each one's median and mean time per request and the ratio.
fn isolation_mode(all: &[String]) {
    use whisper_rs::recognizer::{Isolation, RecognizeOptions, Recognizer, RecognizerConfig};
    let (model, audio) = match all {
        [model, audio, ..] => (model, audio),
        _ => {
            eprintln!("usage: steady-bench isolation MODEL AUDIO.wav [RUNS]");
            std::process::exit(2);
        }
    };
    let runs: usize = all.get(2).map_or(20, |r| r.parse().expect("RUNS"));
    let samples = compat::read_wav(audio);
    let make = |isolation| {
        let mut config = RecognizerConfig::new(model);
        config.use_gpu = false;
        config.workers = 1;
        config.threads_per_worker = 2;
        config.isolation = isolation;
        Recognizer::new(config).expect("recognizer")
    };
    let kinds = [
        ("thread", make(Isolation::Thread)),
        ("process", make(Isolation::Process)),
    ];
    let mut times = [Vec::new(), Vec::new()];
    let mut texts = [String::new(), String::new()];
    // One warm-up each, then turns.
    for round in 0..=runs {
        for (i, (_, r)) in kinds.iter().enumerate() {
            let started = Instant::now();
            let t = r
                .transcribe(samples.clone(), RecognizeOptions::new())
                .expect("transcript");
            if round > 0 {
                times[i].push(started.elapsed().as_secs_f64());
            }
            texts[i] = t.text;
        }
    }
    let stats = |t: &mut Vec<f64>| {
        t.sort_by(|a, b| a.total_cmp(b));
        (t[t.len() / 2], t.iter().sum::<f64>() / t.len() as f64)
    };
    let (thread, process) = (stats(&mut times[0]), stats(&mut times[1]));
    for ((name, _), (median, mean)) in kinds.iter().zip([thread, process]) {
        println!("{name:<8} median {median:.3} s  mean {mean:.3} s  ({runs} requests)");
    }
    println!(
        "process / thread: median {:+.1} %, mean {:+.1} %; same text: {}",
        (process.0 / thread.0 - 1.0) * 100.0,
        (process.1 / thread.1 - 1.0) * 100.0,
        texts[0] == texts[1]
    );
}

//! One attempt at a request on a worker's states: the whole audio at once, or, for long audio
//! with a VAD model, its speech in chunks.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use super::Workspace;
use crate::api::state::checks::{self, Fault};
use crate::recognizer::chunk::{self, Chunk, Span};
use crate::recognizer::faults::FaultSite;
use crate::recognizer::isolation::LaneFailure;
use crate::recognizer::speech;
use crate::recognizer::transcript::{centis, read_state, Spoken};
use crate::recognizer::{lock, Backend, Job, RecognizeError, Segment, Shared, Transcript};
use crate::{FullParams, WhisperContext, WhisperError, WhisperState, WhisperVadParams};

/// The shortest speech the guard looks for when the detector's default minimum (250 ms) finds
/// none: a word alone, such as "Go.", is voiced for less (espeak-ng's "Go." at 200 words per
/// minute was missed at 250 ms).
const SHORTEST_SPEECH_MS: i32 = 64;

/// Whisper's samples per second.
const RATE: usize = crate::audio::WHISPER_SAMPLE_RATE as usize;

/// Audio longer than one encoder window (30 s) is cut into chunks when the recognizer has a VAD
/// model.
const CHUNK_AFTER_SAMPLES: usize = 30 * RATE;

/// The longest chunk: 28 s, under the encoder's 30 s so that whisper.cpp decodes it in one
/// window.
const CHUNK_MAX_SAMPLES: usize = 28 * RATE;

/// The silence kept on either side of each stretch of speech, so that a pause between two is
/// at most 0.6 s: 0.3 s. Chosen on the `long-tune` recordings of bench/wer_set.py (word errors
/// with 100/150/200/300/500/1000 ms: 51/39/32/32/46/45; whisper.cpp's windows over the whole
/// recordings: 42); 300 over 200 for the margin it leaves around words.
const CHUNK_PAD_SAMPLES: usize = 4_800;

/// How an attempt ended.
pub(super) enum Attempt {
    Done(Transcript),
    /// whisper.cpp failed, and neither the caller nor the deadline asked it to stop.
    Failed(LaneFailure),
    /// whisper.cpp refused the request's input ([`InvalidAudio`](RecognizeError::InvalidAudio)
    /// or [`InvalidOptions`](RecognizeError::InvalidOptions)): the caller's mistake, which the
    /// checks before queueing should have caught. Not a failure of the lane: never retried,
    /// the state is kept, and neither a breaker nor a failure counter hears of it.
    Refused(RecognizeError),
    Cancelled,
    DeadlineExceeded,
}

/// What one run of whisper.cpp gave: segments in the recording's time, and the language.
struct Piece {
    segments: Vec<Segment>,
    language: Spoken,
}

/// One attempt at a request on this worker's states: the whole audio at once, or, for long
/// audio when the recognizer has a VAD model, its speech in chunks.
pub(super) fn attempt(
    shared: &Shared,
    lane: usize,
    worker: usize,
    work: &mut Workspace,
    job: &Job,
) -> Attempt {
    let kind = shared.lanes[lane].kind;
    let backend = kind.backend();
    let site = FaultSite {
        backend,
        device: kind.device(),
        worker,
        request: job.id,
    };
    let injected = shared.config.fail_attempt(site);
    // The test hook of isolation: abort the process from inside whisper.cpp.
    let abort_process = shared.config.abort_process(site);
    let deadline = job.deadline.map(|(at, _)| at);
    // Set when one chunk fails, to stop the others.
    let stop = Arc::new(AtomicBool::new(false));
    let n_audio_ctx = shared.lanes[lane].ctx.n_audio_ctx().max(0) as u32;
    let params = |threads: usize, samples: usize| {
        let audio_ctx =
            job.options
                .audio_ctx_for(samples, n_audio_ctx, shared.config.fit_audio_ctx);
        let mut params = job.options.full_params(job.language, threads, audio_ctx);
        let (slot, stop) = (Arc::clone(&job.slot), Arc::clone(&stop));
        params.set_abort_callback_safe(move || {
            if abort_process {
                std::process::abort();
            }
            injected
                || slot.is_cancelled()
                || stop.load(Ordering::Relaxed)
                || deadline.is_some_and(|at| Instant::now() >= at)
        });
        params
    };

    // The speech guard (speech.rs), unless the request keeps sound descriptions.
    let guard = !job.options.sound_tags;
    let speech = speech_spans(work, &job.audio);
    if guard && speech.as_ref().is_some_and(Vec::is_empty) {
        let mut transcript = Transcript::assemble(
            Vec::new(),
            language_without_speech(job.language.code),
            backend,
        );
        transcript.no_speech = true;
        return Attempt::Done(transcript);
    }
    let chunks = speech
        .as_deref()
        .filter(|_| job.audio.len() > CHUNK_AFTER_SAMPLES)
        .filter(|_| shared.config.long_audio.chunks(job.options.beam_size))
        .map(|speech| {
            chunk::plan(
                speech,
                job.audio.len(),
                CHUNK_MAX_SAMPLES,
                CHUNK_PAD_SAMPLES,
            )
        });
    let n_chunks = chunks.as_ref().map_or(0, Vec::len);
    let result = match chunks {
        Some(chunks) => transcribe_chunks(shared, lane, work, job, &chunks, &params, &stop),
        None => {
            let threads = shared.config.threads_per_worker;
            let mut params = params(threads, job.audio.len());
            if let Some(segments) = &job.segments {
                let segments = Arc::clone(segments);
                let speech = speech.clone().filter(|_| guard);
                let mut seen = 0;
                params.set_segment_callback_safe_lossy(move |s: crate::SegmentCallbackData| {
                    let (start, end) = (centis(s.start_timestamp), centis(s.end_timestamp));
                    // What the guard will drop is not streamed either (whisper's own
                    // no-speech rule needs the whole segment and applies to the result only).
                    let dropped =
                        guard && speech::not_words(&s.text, start, end, speech.as_deref());
                    if !dropped {
                        lock(&segments).offer(seen, start, end, s.text);
                        seen += 1;
                    }
                });
            }
            transcribe(&mut work.state, params, &job.audio, &|cs| cs)
        }
    };
    match result {
        Ok(piece) => {
            let segments = if guard {
                speech::keep_speech(piece.segments, speech.as_deref())
            } else {
                piece.segments
            };
            let mut transcript = Transcript::assemble(segments, piece.language, backend);
            transcript.no_speech = guard && transcript.segments.is_empty();
            transcript.chunks = n_chunks;
            Attempt::Done(transcript)
        }
        Err(_) if job.slot.is_cancelled() => Attempt::Cancelled,
        Err(_) if deadline.is_some_and(|at| Instant::now() >= at) => Attempt::DeadlineExceeded,
        Err(error) => match checks::fault_of(&error) {
            Some((Fault::Audio, why)) => Attempt::Refused(RecognizeError::InvalidAudio(why.into())),
            Some((Fault::Parameters, why)) => {
                Attempt::Refused(RecognizeError::InvalidOptions(why.into()))
            }
            None => Attempt::Failed(LaneFailure::Whisper(error)),
        },
    }
}

/// The stretches of speech the VAD finds in `audio`, or `None` without a VAD model or when it
/// fails (logged; the audio is then transcribed as it is, unguarded by the detector).
fn speech_spans(work: &mut Workspace, audio: &[f32]) -> Option<Vec<Span>> {
    let vad = work.vad.as_mut()?;
    let failed = |e: WhisperError| {
        log::warn!(
            target: "whisper_steady::recognizer",
            "voice activity detection failed ({e}); transcribing the audio whole"
        );
    };
    if let Err(e) = vad.detect_speech(audio) {
        failed(e);
        return None;
    }
    // Centiseconds to samples.
    let at =
        |cs: f32| ((cs.max(0.0) * chunk::SAMPLES_PER_CENTISECOND as f32) as usize).min(audio.len());
    let mut spans = |params: WhisperVadParams| -> Result<Vec<Span>, WhisperError> {
        Ok(vad
            .segments_from_probabilities(params)?
            .map(|s| Span {
                start: at(s.start),
                end: at(s.end),
            })
            .filter(|s| s.end > s.start)
            .collect())
    };
    let found = spans(WhisperVadParams::new()).and_then(|found| {
        if !found.is_empty() {
            return Ok(found);
        }
        // A word alone ("Go.") can be shorter than the detector's 250 ms minimum: look again
        // with a shorter one before calling the audio silent.
        let mut short = WhisperVadParams::new();
        short.set_min_speech_duration(SHORTEST_SPEECH_MS);
        spans(short)
    });
    found.map_err(failed).ok()
}

/// The language of a transcript without speech: the one requested, `unknown` when it was to be
/// detected (there was nothing to detect it from).
fn language_without_speech(requested: &str) -> Spoken {
    Spoken {
        code: match requested {
            "auto" => "unknown".to_owned(),
            requested => requested.to_owned(),
        },
        probability: None,
    }
}

/// Transcribes `chunks` of the request's audio on up to `chunk_states` states at once, the
/// worker's own and helpers made on first use, and returns their segments in order with
/// timestamps in the whole recording, and the language of the first chunk.
fn transcribe_chunks<'j>(
    shared: &Shared,
    lane: usize,
    work: &mut Workspace,
    job: &'j Job,
    chunks: &[Chunk],
    params: &(dyn Fn(usize, usize) -> FullParams<'j, 'j> + Sync),
    stop: &AtomicBool,
) -> Result<Piece, WhisperError> {
    let ctx: &WhisperContext = &shared.lanes[lane].ctx;
    let threads = shared.config.threads_per_worker;
    // On the CPU, a state per thread at most: more would only take turns on the same cores.
    let cap = match shared.lanes[lane].kind.backend() {
        Backend::Cpu => threads,
        Backend::Gpu => usize::MAX,
    };
    let wanted = shared.config.chunk_states.min(chunks.len()).min(cap).max(1);
    while work.helpers.len() + 1 < wanted {
        match ctx.create_state() {
            Ok(state) => work.helpers.push(state),
            Err(e) => {
                log::warn!(
                    target: "whisper_steady::recognizer",
                    "cannot create a state for chunks ({e}); using {}",
                    work.helpers.len() + 1
                );
                break;
            }
        }
    }
    let states = wanted.min(work.helpers.len() + 1);
    let threads = (threads / states).max(1);
    let next = AtomicUsize::new(0);
    let results: Mutex<Vec<Option<Piece>>> = Mutex::new(chunks.iter().map(|_| None).collect());
    // For streaming: the first chunk whose segments are not delivered, and how many are.
    let delivered = Mutex::new((0usize, 0usize));
    // The failure that stopped the others (theirs only say they were stopped).
    let failure: Mutex<Option<WhisperError>> = Mutex::new(None);
    let run = |state: &mut WhisperState| loop {
        let i = next.fetch_add(1, Ordering::Relaxed);
        if i >= chunks.len() || stop.load(Ordering::Relaxed) {
            return;
        }
        let chunk = &chunks[i];
        let audio = chunk.samples(&job.audio);
        let to_recording = |cs: i64| chunk.recording_centis(cs);
        let params = params(threads, audio.len());
        match transcribe(state, params, &audio, &to_recording) {
            Ok(mut piece) => {
                // A chunk is speech only: the guard's other rules, before it is streamed.
                if !job.options.sound_tags {
                    piece.segments = speech::keep_speech(piece.segments, None);
                }
                let mut results = lock(&results);
                results[i] = Some(piece);
                if let Some(segments) = &job.segments {
                    // Delivered in the recording's order: every finished chunk from the first
                    // one not yet delivered.
                    let mut next = lock(&delivered);
                    let mut segments = lock(segments);
                    while let Some(Some(piece)) = results.get(next.0) {
                        for s in &piece.segments {
                            segments.offer(next.1, s.start, s.end, s.text.clone());
                            next.1 += 1;
                        }
                        next.0 += 1;
                    }
                }
            }
            Err(error) => {
                if !stop.swap(true, Ordering::Relaxed) {
                    *lock(&failure) = Some(error);
                }
                return;
            }
        }
    };
    std::thread::scope(|scope| {
        for helper in work.helpers.iter_mut().take(states - 1) {
            scope.spawn(|| run(helper));
        }
        run(&mut work.state);
    });
    if let Some(error) = failure.into_inner().unwrap_or_else(|p| p.into_inner()) {
        return Err(error);
    }
    let mut segments = Vec::new();
    let mut language = None;
    for mut piece in results
        .into_inner()
        .unwrap_or_else(|p| p.into_inner())
        .into_iter()
        .flatten()
    {
        segments.append(&mut piece.segments);
        language.get_or_insert(piece.language);
    }
    // No speech at all: the requested language (there was none to detect).
    let language = language.unwrap_or_else(|| language_without_speech(job.language.code));
    Ok(Piece { segments, language })
}

/// Runs whisper.cpp on `audio` with `state`; returns its segments, with their timestamps (in
/// centiseconds) turned into the recording's by `to_recording`, and the language.
fn transcribe(
    state: &mut WhisperState,
    params: FullParams<'_, '_>,
    audio: &[f32],
    to_recording: &dyn Fn(i64) -> i64,
) -> Result<Piece, WhisperError> {
    state.full(params, audio)?;
    let (segments, language) = read_state(state, to_recording);
    Ok(Piece { segments, language })
}

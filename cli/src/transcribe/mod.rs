//! `whisper-steady transcribe`: speech in a WAV file → transcript on stdout, and optionally
//! text, SRT, WebVTT and JSON files.
//!
//! The transcription goes through the library's [`Recognizer`] (one worker), as the server's
//! requests do: the same options become the same whisper.cpp parameters, so the same audio
//! gives the same text here and there; long audio is cut at pauses with `--vad-model`.
//!
//! The checks run cheapest first, so that a mistake shows before the model loads: the options,
//! the model file's presence, the output folder, then the audio; then the model loads and the
//! transcription runs. Every failure is one `error:` line (printed by `main`).

mod format;

use std::error::Error;
use std::ffi::OsString;
use std::fs;
use std::io::{self, IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use clap::Args;
use indicatif::{ProgressBar, ProgressStyle};
use whisper_steady::WhisperError;

use whisper_steady::audio::{self, Decoded};
use whisper_steady::catalog::VadChoice;
use whisper_steady::recognizer::{
    DecodedSegment, RecognizeError, RecognizeOptions, Recognizer, RecognizerConfig, RecognizerError,
};

/// Arguments of `transcribe`.
#[derive(Debug, Args)]
pub struct TranscribeArgs {
    /// The whisper.cpp model file (e.g. `ggml-base.en.bin`).
    #[arg(long, short = 'm', value_name = "MODEL")]
    pub model: PathBuf,
    /// The audio: WAV (integer or float samples), MP3, FLAC or OGG Vorbis, any number of
    /// channels (averaged) and any sample rate (resampled to 16 kHz); the server's decoder.
    #[arg(value_name = "AUDIO")]
    pub audio: PathBuf,
    /// The spoken language: a code such as `en` or `de` (or its English name), or `auto` to
    /// detect it [default: the model's: `auto` for multilingual models, which then print the
    /// language detected on stderr (`detected: zh (0.97)`), `en` for English-only ones].
    #[arg(long, short = 'l', value_name = "LANG")]
    pub language: Option<String>,
    /// CPU threads [default: the available parallelism, at most 4].
    #[arg(long, short = 't', value_name = "N", value_parser = clap::value_parser!(u16).range(1..=512))]
    pub threads: Option<u16>,
    /// Beam search with N beams (at most 8); 0 or 1 decodes greedily (with whisper's
    /// temperature fallback).
    #[arg(long, default_value_t = 0, value_name = "N", value_parser = clap::value_parser!(u32).range(0..=8))]
    pub beam_size: u32,
    /// Translate the speech into English (multilingual models only).
    #[arg(long)]
    pub translate: bool,
    /// The first decoding temperature (0 to 1); above 0 samples.
    #[arg(long, default_value_t = 0.0, value_name = "T")]
    pub temperature: f32,
    /// Text that precedes the audio, to steer spelling and style (whisper uses its last 223
    /// tokens).
    #[arg(long, value_name = "TEXT")]
    pub prompt: Option<String>,
    /// The seed of sampling (the temperature fallback, or `--temperature` above 0): the same
    /// audio and options give the same text, here and on the server.
    #[arg(long, default_value_t = 0, value_name = "N")]
    pub seed: u32,
    /// The speech detector: `silero` (Silero VAD 6.2.0 from the model cache, fetched there
    /// when missing), `off`, or a ggml VAD model file. With it, audio without speech gives no
    /// words and audio longer than 30 s is transcribed as its speech, in chunks cut at pauses.
    #[arg(long, value_name = "silero|off|MODEL", default_value = "silero")]
    pub vad_model: VadChoice,
    /// Keep whisper's sound descriptions (`[Music]`, `(wind howling)`) and transcribe audio
    /// without detected speech, as whisper alone would.
    #[arg(long)]
    pub sound_tags: bool,
    /// Write the transcript as plain text, one segment a line (`STEM.txt`).
    #[arg(long)]
    pub output_txt: bool,
    /// Write SubRip subtitles (`STEM.srt`).
    #[arg(long)]
    pub output_srt: bool,
    /// Write WebVTT subtitles (`STEM.vtt`).
    #[arg(long)]
    pub output_vtt: bool,
    /// Write JSON with segments and tokens, times in seconds (`STEM.json`).
    #[arg(long)]
    pub output_json: bool,
    /// Where the output files go [default: the audio file's folder]; created if missing.
    #[arg(long, value_name = "DIR")]
    pub output_dir: Option<PathBuf>,
    /// Print the transcript on stdout without timestamps.
    #[arg(long)]
    pub no_timestamps: bool,
    /// Never show the progress bar (shown on stderr only when stderr is a terminal).
    #[arg(long)]
    pub no_progress: bool,
    /// Run on the CPU even when built with a GPU backend.
    #[arg(long)]
    pub no_gpu: bool,
    /// Let whisper.cpp log to stderr, and describe the audio there.
    #[arg(long, short = 'v')]
    pub verbose: bool,
}

/// One output file format.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum OutputKind {
    /// Plain text.
    Txt,
    /// SubRip subtitles.
    Srt,
    /// WebVTT subtitles.
    Vtt,
    /// JSON with segments and tokens.
    Json,
}

impl OutputKind {
    /// The file extension.
    fn extension(self) -> &'static str {
        match self {
            OutputKind::Txt => "txt",
            OutputKind::Srt => "srt",
            OutputKind::Vtt => "vtt",
            OutputKind::Json => "json",
        }
    }
}

/// An error of this subcommand: its message is the whole `error:` line.
fn fail(message: String) -> Box<dyn Error> {
    message.into()
}

/// The request, as the server would make it from the same options.
fn request_options(args: &TranscribeArgs, with_tokens: bool) -> RecognizeOptions {
    let mut options = RecognizeOptions::new();
    options.language = args.language.clone();
    options.translate = args.translate;
    options.beam_size = Some(args.beam_size.max(1));
    options.temperature = Some(args.temperature);
    options.initial_prompt = args.prompt.clone();
    options.seed = args.seed;
    options.sound_tags = args.sound_tags;
    options.token_timestamps = with_tokens;
    options
}

/// Runs the transcription: prints the transcript on stdout, writes the requested files.
pub fn run(args: &TranscribeArgs) -> Result<(), Box<dyn Error>> {
    if !args.verbose {
        // Without a logging backend this drops whisper.cpp's and ggml's log lines.
        whisper_steady::install_logging_hooks();
    }
    let outputs = plan_outputs_kinds(args);
    let with_tokens = outputs.contains(&OutputKind::Json);
    let options = request_options(args, with_tokens);
    options.check().map_err(|e| fail(e.to_string()))?;
    check_model_file(&args.model)?;
    let outputs = plan_outputs(args, &outputs)?;
    let mut audio = load_audio(&args.audio)?;
    if audio.truncated {
        eprintln!(
            "warning: `{}` ends before its header says; transcribing what it holds",
            args.audio.display()
        );
    }
    if args.verbose {
        describe_audio(&audio);
    }

    let recognizer = load_model(args)?;
    let bar = (!args.no_progress && io::stderr().is_terminal()).then(progress_bar);
    let write_error = Arc::new(Mutex::new(None));
    let printer = Printer {
        timestamps: !args.no_timestamps,
        bar: bar.clone(),
        seconds: audio.seconds,
        error: Arc::clone(&write_error),
    };
    let samples = std::mem::take(&mut audio.samples);
    let ticket =
        recognizer.submit_streaming(samples, options, move |segment| printer.print(&segment));
    let result = ticket.and_then(|ticket| ticket.wait());
    if let Some(bar) = &bar {
        bar.finish_and_clear();
    }
    let transcript = result.map_err(|e| match e {
        // The request's own mistake (another language on an English-only model, say).
        RecognizeError::InvalidOptions(_) | RecognizeError::InvalidAudio(_) => fail(e.to_string()),
        other => fail(format!("transcription failed: {other}")),
    })?;
    if let Some(p) = transcript.language_probability {
        // On stderr: stdout holds only the transcript.
        eprintln!("detected: {} ({p:.2})", transcript.language);
    }
    for (kind, path) in &outputs {
        let contents = match kind {
            OutputKind::Txt => transcript.to_text(),
            OutputKind::Srt => transcript.to_srt(),
            OutputKind::Vtt => transcript.to_vtt(),
            OutputKind::Json => transcript.to_json(),
        };
        fs::write(path, contents)
            .map_err(|e| fail(format!("cannot write `{}`: {e}", path.display())))?;
        eprintln!("wrote {}", path.display());
    }
    // Reported last: the files are written even when stdout is closed early (`| head`).
    match write_error.lock().ok().and_then(|mut e| e.take()) {
        Some(err) => Err(fail(format!("cannot write to stdout: {err}"))),
        None => Ok(()),
    }
}

/// Fails unless `path` names a readable file (whisper.cpp would only say that loading failed).
fn check_model_file(path: &Path) -> Result<(), Box<dyn Error>> {
    match fs::metadata(path) {
        Ok(meta) if meta.is_file() => Ok(()),
        Ok(_) => Err(fail(format!(
            "model `{}` is not a file (expected a whisper.cpp model such as ggml-base.en.bin)",
            path.display()
        ))),
        Err(e) => Err(fail(format!(
            "cannot open model file `{}`: {e}",
            path.display()
        ))),
    }
}

/// The output files asked for.
fn plan_outputs_kinds(args: &TranscribeArgs) -> Vec<OutputKind> {
    [
        (args.output_txt, OutputKind::Txt),
        (args.output_srt, OutputKind::Srt),
        (args.output_vtt, OutputKind::Vtt),
        (args.output_json, OutputKind::Json),
    ]
    .into_iter()
    .filter_map(|(wanted, kind)| wanted.then_some(kind))
    .collect()
}

/// The output files to write, named after the audio file's stem, in the output folder
/// (created here, so that a bad folder fails before the transcription).
fn plan_outputs(
    args: &TranscribeArgs,
    kinds: &[OutputKind],
) -> Result<Vec<(OutputKind, PathBuf)>, Box<dyn Error>> {
    if kinds.is_empty() {
        return Ok(Vec::new());
    }
    let dir = match &args.output_dir {
        Some(dir) => {
            fs::create_dir_all(dir).map_err(|e| {
                fail(format!(
                    "cannot create output folder `{}`: {e}",
                    dir.display()
                ))
            })?;
            dir.clone()
        }
        // A bare file name has an empty parent: the current folder.
        None => args.audio.parent().unwrap_or(Path::new("")).to_path_buf(),
    };
    let stem = args
        .audio
        .file_stem()
        .map_or_else(|| OsString::from("transcript"), OsString::from);
    let audio = fs::canonicalize(&args.audio).ok();
    kinds
        .iter()
        .map(|&kind| {
            let mut name = stem.clone();
            name.push(".");
            name.push(kind.extension());
            let path = dir.join(name);
            if audio.is_some() && fs::canonicalize(&path).ok() == audio {
                return Err(fail(format!(
                    "the {} output `{}` would overwrite the audio file; use --output-dir",
                    kind.extension(),
                    path.display()
                )));
            }
            Ok((kind, path))
        })
        .collect()
}

/// The longest audio `transcribe` reads: whisper.cpp counts samples in a C `int` (37 hours at
/// 16 kHz); 24 hours stays well inside it.
const MAX_AUDIO_SECONDS: f64 = 24.0 * 3600.0;

/// Reads and decodes the audio file (WAV, MP3, FLAC, OGG Vorbis; the library's decoder, as the
/// server's), with an error that names it.
pub(crate) fn load_audio(path: &Path) -> Result<Decoded, Box<dyn Error>> {
    let bytes = fs::read(path)
        .map_err(|e| fail(format!("cannot open audio file `{}`: {e}", path.display())))?;
    let extension = path.extension().and_then(|e| e.to_str());
    audio::decode(&bytes, extension, MAX_AUDIO_SECONDS).map_err(|e| {
        fail(format!(
            "cannot use audio file `{}`: {e} (other formats: convert first, e.g. \
             `ffmpeg -i INPUT -ar 16000 -ac 1 OUTPUT.wav`)",
            path.display()
        ))
    })
}

/// Describes the audio on stderr (`--verbose`).
fn describe_audio(audio: &Decoded) {
    eprintln!(
        "audio: {} Hz, {} channel{}, {:.2} s{}{}",
        audio.sample_rate,
        audio.channels,
        if audio.channels == 1 { "" } else { "s" },
        audio.seconds,
        if audio.sample_rate == audio::WHISPER_SAMPLE_RATE {
            ""
        } else {
            ", resampled to 16 kHz"
        },
        if audio.truncated {
            " (the file ends before its header says)"
        } else {
            ""
        }
    );
}

/// Loads the model into a recognizer of one worker: on the GPU when the build and the machine
/// have one (unless `--no-gpu`), else on the CPU.
fn load_model(args: &TranscribeArgs) -> Result<Recognizer, Box<dyn Error>> {
    let mut config = RecognizerConfig::new(&args.model);
    config.use_gpu = !args.no_gpu;
    // One copy of the model: a GPU that is there but fails is an error here, not a second
    // load into host memory.
    config.fallback_to_cpu = false;
    config.workers = 1;
    config.threads_per_worker = args.threads.map_or_else(
        || std::thread::available_parallelism().map_or(1, |n| n.get().min(4)),
        usize::from,
    );
    config.queue_limit = 1;
    config.vad_model = args.vad_model.fetch().unwrap_or_else(|e| {
        eprintln!(
            "warning: cannot get the Silero VAD model ({e}); {}",
            whisper_steady::catalog::VAD_UNAVAILABLE
        );
        None
    });
    Recognizer::new(config).map_err(|e| {
        let hint = if args.verbose {
            ""
        } else {
            " (--verbose shows whisper.cpp's log)"
        };
        match e {
            RecognizerError::ModelLoad { path, error } => {
                let reason = match error {
                    WhisperError::InitError => {
                        "not a whisper.cpp model file, or a damaged one".to_owned()
                    }
                    other => other.to_string(),
                };
                fail(format!(
                    "cannot load model `{}`: {reason}{hint}",
                    path.display()
                ))
            }
            RecognizerError::GpuUnavailable { reason } => fail(format!(
                "the GPU cannot be used ({reason}); --no-gpu runs on the CPU{hint}"
            )),
            other => fail(format!("{other}{hint}")),
        }
    })
}

/// The progress bar on stderr, in percent.
fn progress_bar() -> ProgressBar {
    let bar = ProgressBar::new(100);
    if let Ok(style) =
        ProgressStyle::with_template("transcribing [{elapsed_precise}] {wide_bar} {pos:>3}%")
    {
        bar.set_style(style);
    }
    bar
}

/// Prints segments on stdout as whisper.cpp finishes them, around the progress bar, which
/// follows the end of the last segment through the audio.
struct Printer {
    /// Whether lines start with `[start --> end]`.
    timestamps: bool,
    /// The progress bar to hide while printing.
    bar: Option<ProgressBar>,
    /// The audio's length.
    seconds: f64,
    /// The first write error; later segments are not printed.
    error: Arc<Mutex<Option<io::Error>>>,
}

impl Printer {
    /// Prints one segment, unless an earlier one failed to print.
    fn print(&self, segment: &DecodedSegment) {
        if let Some(bar) = &self.bar {
            let done = segment.end.as_secs_f64() / self.seconds.max(1e-3);
            bar.set_position((done * 100.0).clamp(0.0, 100.0) as u64);
        }
        let Ok(mut error) = self.error.lock() else {
            return;
        };
        if error.is_some() {
            return;
        }
        let line = format::console_line(segment.start, segment.end, &segment.text, self.timestamps);
        let write = || {
            let mut out = io::stdout().lock();
            writeln!(out, "{line}")?;
            out.flush()
        };
        let result = match &self.bar {
            Some(bar) => bar.suspend(write),
            None => write(),
        };
        if let Err(err) = result {
            *error = Some(err);
        }
    }
}

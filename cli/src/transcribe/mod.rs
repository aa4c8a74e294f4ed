//! `whisper-steady transcribe`: speech in a WAV file → transcript on stdout, and optionally
//! text, SRT, WebVTT and JSON files.
//!
//! The checks run cheapest first, so that a mistake shows before the model loads: the
//! language, the model file's presence, the output folder, then the audio; then the model
//! loads and the transcription runs. Every failure is one `error:` line (printed by `main`).

mod format;

use std::error::Error;
use std::ffi::OsString;
use std::fs;
use std::io::{self, IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use clap::Args;
use indicatif::{ProgressBar, ProgressStyle};
use whisper_steady::{
    FullParams, SamplingStrategy, SegmentCallbackData, WhisperContext, WhisperContextParameters,
    WhisperError,
};

use whisper_steady::audio::{self, Decoded};
use whisper_steady::recognizer::{Backend, Transcript};

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
    /// The spoken language: a code such as `en` or `de`, or `auto` to detect it (multilingual
    /// models only; English-only models always transcribe English).
    #[arg(long, short = 'l', default_value = "en", value_name = "LANG")]
    pub language: String,
    /// CPU threads [default: the available parallelism, at most 4].
    #[arg(long, short = 't', value_name = "N", value_parser = clap::value_parser!(i32).range(1..=1024))]
    pub threads: Option<i32>,
    /// Beam search with N beams (at most 8); 0 decodes greedily.
    #[arg(long, default_value_t = 0, value_name = "N", value_parser = clap::value_parser!(i32).range(0..=8))]
    pub beam_size: i32,
    /// Translate the speech into English (multilingual models only).
    #[arg(long)]
    pub translate: bool,
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

/// Runs the transcription: prints the transcript on stdout, writes the requested files.
pub fn run(args: &TranscribeArgs) -> Result<(), Box<dyn Error>> {
    if !args.verbose {
        // Without a logging backend this drops whisper.cpp's and ggml's log lines.
        whisper_steady::install_logging_hooks();
    }
    let language = args.language.trim().to_ascii_lowercase();
    if language != "auto" && whisper_steady::get_lang_id(&language).is_none() {
        return Err(fail(format!(
            "unknown language `{}` (use a code such as `en`, `de`, `fr`, or `auto`)",
            args.language
        )));
    }
    check_model_file(&args.model)?;
    let outputs = plan_outputs(args)?;
    let audio = load_audio(&args.audio)?;
    if audio.truncated {
        eprintln!(
            "warning: `{}` ends before its header says; transcribing what it holds",
            args.audio.display()
        );
    }
    if args.verbose {
        describe_audio(&audio);
    }

    let ctx = load_model(args)?;
    let (language, translate) = effective_language(&ctx, &language, args.translate);
    let mut state = ctx
        .create_state()
        .map_err(|e| fail(format!("cannot set up a transcription: {e}")))?;

    let with_tokens = outputs.iter().any(|(kind, _)| *kind == OutputKind::Json);
    let bar = (!args.no_progress && io::stderr().is_terminal()).then(progress_bar);
    let printer = Printer {
        timestamps: !args.no_timestamps,
        bar: bar.clone(),
        error: Arc::new(Mutex::new(None)),
    };
    let params = full_params(
        args,
        &language,
        translate,
        with_tokens,
        &printer,
        bar.as_ref(),
    );
    let result = state.full(params, &audio.samples);
    if let Some(bar) = &bar {
        bar.finish_and_clear();
    }
    result.map_err(|e| fail(format!("transcription failed: {e}")))?;

    let backend = if args.no_gpu
        || !whisper_steady::device::devices()
            .iter()
            .any(|d| d.kind != "cpu")
    {
        Backend::Cpu
    } else {
        Backend::Gpu
    };
    let mut transcript = Transcript::from_state(&state, backend);
    if transcript.language == "unknown" {
        transcript.language = language.clone();
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
    match printer.take_error() {
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

/// The output files to write, named after the audio file's stem, in the output folder
/// (created here, so that a bad folder fails before the transcription).
fn plan_outputs(args: &TranscribeArgs) -> Result<Vec<(OutputKind, PathBuf)>, Box<dyn Error>> {
    let kinds: Vec<OutputKind> = [
        (args.output_txt, OutputKind::Txt),
        (args.output_srt, OutputKind::Srt),
        (args.output_vtt, OutputKind::Vtt),
        (args.output_json, OutputKind::Json),
    ]
    .into_iter()
    .filter_map(|(wanted, kind)| wanted.then_some(kind))
    .collect();
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
        .into_iter()
        .map(|kind| {
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
fn load_audio(path: &Path) -> Result<Decoded, Box<dyn Error>> {
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

/// Loads the model.
fn load_model(args: &TranscribeArgs) -> Result<WhisperContext, Box<dyn Error>> {
    let mut params = WhisperContextParameters::default();
    if args.no_gpu {
        params.use_gpu(false);
    }
    WhisperContext::new_with_params(&args.model, params).map_err(|e| {
        let reason = match e {
            WhisperError::InitError => "not a whisper.cpp model file, or a damaged one".to_owned(),
            other => other.to_string(),
        };
        let hint = if args.verbose {
            ""
        } else {
            " (--verbose shows whisper.cpp's log)"
        };
        fail(format!(
            "cannot load model `{}`: {reason}{hint}",
            args.model.display()
        ))
    })
}

/// The language and translation the model can do: English-only models transcribe English
/// whatever was asked (with a warning when something else was asked).
fn effective_language(ctx: &WhisperContext, language: &str, translate: bool) -> (String, bool) {
    if ctx.is_multilingual() {
        return (language.to_owned(), translate);
    }
    if language != "en" && language != "auto" {
        eprintln!("warning: the model is English-only; transcribing as English, not `{language}`");
    }
    if translate {
        eprintln!("warning: the model is English-only; --translate has no effect");
    }
    ("en".to_owned(), false)
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

/// Prints segments on stdout as whisper.cpp finishes them, around the progress bar.
#[derive(Clone)]
struct Printer {
    /// Whether lines start with `[start --> end]`.
    timestamps: bool,
    /// The progress bar to hide while printing.
    bar: Option<ProgressBar>,
    /// The first write error; later segments are not printed.
    error: Arc<Mutex<Option<io::Error>>>,
}

impl Printer {
    /// Prints one segment, unless an earlier one failed to print.
    fn print(&self, segment: &SegmentCallbackData) {
        let Ok(mut error) = self.error.lock() else {
            return;
        };
        if error.is_some() {
            return;
        }
        let line = format::console_line(
            format::centis(segment.start_timestamp),
            format::centis(segment.end_timestamp),
            &segment.text,
            self.timestamps,
        );
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

    /// The write error, if any.
    fn take_error(&self) -> Option<io::Error> {
        self.error.lock().ok().and_then(|mut e| e.take())
    }
}

/// The decoding parameters.
fn full_params<'a>(
    args: &TranscribeArgs,
    language: &'a str,
    translate: bool,
    token_timestamps: bool,
    printer: &Printer,
    bar: Option<&ProgressBar>,
) -> FullParams<'a, 'static> {
    let strategy = if args.beam_size == 0 {
        SamplingStrategy::Greedy { best_of: 5 }
    } else {
        SamplingStrategy::BeamSearch {
            beam_size: args.beam_size,
            patience: -1.0,
        }
    };
    let mut params = FullParams::new(strategy);
    let threads = args.threads.unwrap_or_else(|| {
        std::thread::available_parallelism().map_or(1, |n| n.get().min(4) as i32)
    });
    params.set_n_threads(threads);
    // "auto" asks whisper.cpp to detect the language.
    params.set_language(Some(language));
    params.set_translate(translate);
    params.set_token_timestamps(token_timestamps);
    params.set_print_progress(false);
    params.set_print_realtime(false);
    params.set_print_timestamps(false);
    params.set_print_special(false);
    let printer = printer.clone();
    params.set_segment_callback_safe_lossy(move |segment: SegmentCallbackData| {
        printer.print(&segment)
    });
    if let Some(bar) = bar {
        let bar = bar.clone();
        params.set_progress_callback_safe(move |percent: i32| {
            bar.set_position(u64::try_from(percent.clamp(0, 100)).unwrap_or(0))
        });
    }
    params
}

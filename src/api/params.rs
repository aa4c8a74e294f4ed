//! [`FullParams`]: the parameters of one [`WhisperState::full`](crate::WhisperState::full) run.

use std::ffi::{c_char, c_int, c_void, CString};
use std::fmt::{self, Debug, Formatter};
use std::marker::PhantomData;
use std::sync::{Arc, Mutex};

use crate::api::callbacks::{self, AbortFn, ProgressFn, SegmentCallback, Shared};
use crate::api::grammar::Grammar;
use crate::sys;
use crate::{WhisperGrammarElement, WhisperVadParams};

/// The sampling strategy to use to pick tokens from a list of likely possibilities.
#[derive(Debug, Clone)]
pub enum SamplingStrategy {
    /// Greedy sampling: picks the token with the highest probability after having seen
    /// `best_of` tokens.
    Greedy {
        /// Number of candidates when sampling with a non-zero temperature.
        best_of: c_int,
    },
    /// Beam search. Tends to be more accurate in exchange for more CPU time.
    BeamSearch {
        /// Number of beams (at least 1).
        beam_size: c_int,
        /// Patience (not implemented by whisper.cpp; -1.0 is the default).
        patience: f32,
    },
}

/// A finished segment, as the safe segment callback receives it.
#[derive(Debug, Clone)]
pub struct SegmentCallbackData {
    /// Index of the segment.
    pub segment: i32,
    /// Start, in centiseconds.
    pub start_timestamp: i64,
    /// End, in centiseconds.
    pub end_timestamp: i64,
    /// Text.
    pub text: String,
}

/// Parameters of a full transcription. `'a` is the lifetime of the language string in
/// whisper-rs's signature (it is copied here), `'b` that of the prompt tokens (borrowed).
pub struct FullParams<'a, 'b> {
    pub(crate) fp: sys::whisper_full_params,
    phantom: PhantomData<(&'a str, &'b [c_int])>,
    language: Option<CString>,
    initial_prompt: Option<CString>,
    vad_model_path: Option<CString>,
    detect_languages: Option<Arc<[c_int]>>,
    grammar: Option<Grammar>,
    progress: Option<Shared<ProgressFn>>,
    abort: Option<Shared<AbortFn>>,
    segment: Option<Arc<SegmentCallback>>,
}

// SAFETY: the raw pointers in `fp` point into data this value owns (strings, grammar, callback
// cells, all heap-allocated and immutable while shared) or borrows for 'b (prompt tokens, which
// are `Sync`); the safe closures are `Send` and behind mutexes. Raw callbacks and user data set
// through the `unsafe` setters are the caller's responsibility, as those setters document.
unsafe impl Send for FullParams<'_, '_> {}
// SAFETY: as above; `&FullParams` gives no way to call the closures.
unsafe impl Sync for FullParams<'_, '_> {}

fn c_string(value: &str, what: &str) -> CString {
    CString::new(value).unwrap_or_else(|_| panic!("{what} contains null byte"))
}

fn ptr_of(value: &Option<CString>) -> *const c_char {
    value.as_ref().map_or(std::ptr::null(), |s| s.as_ptr())
}

impl<'a, 'b> FullParams<'a, 'b> {
    /// Create a new set of parameters for the decoder.
    pub fn new(sampling_strategy: SamplingStrategy) -> FullParams<'a, 'b> {
        let strategy = match sampling_strategy {
            SamplingStrategy::Greedy { .. } => {
                sys::whisper_sampling_strategy_WHISPER_SAMPLING_GREEDY
            }
            SamplingStrategy::BeamSearch { .. } => {
                sys::whisper_sampling_strategy_WHISPER_SAMPLING_BEAM_SEARCH
            }
        };
        // SAFETY: returns a plain struct by value; its pointers are null or static.
        let mut fp = unsafe { sys::whisper_full_default_params(strategy) };
        match sampling_strategy {
            SamplingStrategy::Greedy { best_of } => fp.greedy.best_of = best_of,
            SamplingStrategy::BeamSearch {
                beam_size,
                patience,
            } => {
                fp.beam_search.beam_size = beam_size.max(1);
                fp.beam_search.patience = patience;
            }
        }
        FullParams {
            fp,
            phantom: PhantomData,
            language: None,
            initial_prompt: None,
            vad_model_path: None,
            detect_languages: None,
            grammar: None,
            progress: None,
            abort: None,
            segment: None,
        }
    }

    /// Set the number of threads to use for decoding. Defaults to min(4, hardware threads).
    ///
    /// A count outside 1 to 512 (ggml's limit) makes [`WhisperState::full`](crate::WhisperState::full)
    /// return [`WhisperError::InvalidThreadCount`](crate::WhisperError::InvalidThreadCount)
    /// (whisper.cpp itself aborted the process).
    pub fn set_n_threads(&mut self, n_threads: c_int) {
        self.fp.n_threads = n_threads;
    }

    /// Max tokens to use from past text as prompt for the decoder. Defaults to 16384.
    pub fn set_n_max_text_ctx(&mut self, n_max_text_ctx: c_int) {
        self.fp.n_max_text_ctx = n_max_text_ctx;
    }

    /// Set the start offset in milliseconds to use for decoding. Defaults to 0.
    pub fn set_offset_ms(&mut self, offset_ms: c_int) {
        self.fp.offset_ms = offset_ms;
    }

    /// Set the audio duration to process in milliseconds. Defaults to 0 (all of it).
    pub fn set_duration_ms(&mut self, duration_ms: c_int) {
        self.fp.duration_ms = duration_ms;
    }

    /// Set whether to translate the output. This only translates to English.
    pub fn set_translate(&mut self, translate: bool) {
        self.fp.translate = translate;
    }

    /// Do not use past transcription (if any) as initial prompt for the decoder.
    pub fn set_no_context(&mut self, no_context: bool) {
        self.fp.no_context = no_context;
    }

    /// Do not generate timestamps.
    pub fn set_no_timestamps(&mut self, no_timestamps: bool) {
        self.fp.no_timestamps = no_timestamps;
    }

    /// Force single segment output. This may be useful for streaming.
    pub fn set_single_segment(&mut self, single_segment: bool) {
        self.fp.single_segment = single_segment;
    }

    /// Print special tokens (e.g. `<SOT>`, `<EOT>`, `<BEG>`, etc.)
    pub fn set_print_special(&mut self, print_special: bool) {
        self.fp.print_special = print_special;
    }

    /// Set whether to print progress.
    pub fn set_print_progress(&mut self, print_progress: bool) {
        self.fp.print_progress = print_progress;
    }

    /// Print results from within whisper.cpp. Prefer the segment callbacks.
    pub fn set_print_realtime(&mut self, print_realtime: bool) {
        self.fp.print_realtime = print_realtime;
    }

    /// Print timestamps for each text segment when printing realtime.
    pub fn set_print_timestamps(&mut self, print_timestamps: bool) {
        self.fp.print_timestamps = print_timestamps;
    }

    /// # EXPERIMENTAL
    /// Enable token-level timestamps.
    pub fn set_token_timestamps(&mut self, token_timestamps: bool) {
        self.fp.token_timestamps = token_timestamps;
    }

    /// # EXPERIMENTAL
    /// Timestamp token probability threshold (~0.01).
    pub fn set_thold_pt(&mut self, thold_pt: f32) {
        self.fp.thold_pt = thold_pt;
    }

    /// # EXPERIMENTAL
    /// Timestamp token sum probability threshold (~0.01).
    pub fn set_thold_ptsum(&mut self, thold_ptsum: f32) {
        self.fp.thold_ptsum = thold_ptsum;
    }

    /// # EXPERIMENTAL
    /// Max segment length in characters (0: no limit).
    pub fn set_max_len(&mut self, max_len: c_int) {
        self.fp.max_len = max_len;
    }

    /// # EXPERIMENTAL
    /// Split on word rather than on token (when used with max_len).
    pub fn set_split_on_word(&mut self, split_on_word: bool) {
        self.fp.split_on_word = split_on_word;
    }

    /// # EXPERIMENTAL
    /// Max tokens per segment (0: no limit).
    pub fn set_max_tokens(&mut self, max_tokens: c_int) {
        self.fp.max_tokens = max_tokens;
    }

    /// # EXPERIMENTAL
    /// Enables debug mode, such as dumping the log mel spectrogram.
    pub fn set_debug_mode(&mut self, debug: bool) {
        self.fp.debug_mode = debug;
    }

    /// # EXPERIMENTAL
    /// Overwrite the audio context size (0: use the model's).
    pub fn set_audio_ctx(&mut self, audio_ctx: c_int) {
        self.fp.audio_ctx = audio_ctx;
    }

    /// # EXPERIMENTAL
    /// Enable tinydiarize speaker-turn detection.
    pub fn set_tdrz_enable(&mut self, tdrz_enable: bool) {
        self.fp.tdrz_enable = tdrz_enable;
    }

    /// Set tokens to provide the model as initial input. The slice is borrowed for `'b`.
    pub fn set_tokens(&mut self, tokens: &'b [c_int]) {
        self.fp.prompt_tokens = tokens.as_ptr();
        self.fp.prompt_n_tokens = c_int::try_from(tokens.len()).unwrap_or(c_int::MAX);
    }

    /// Set the target language (`None` or `"auto"`: detect it). The string is copied.
    ///
    /// # Panics
    /// If the language contains a NUL byte.
    pub fn set_language(&mut self, language: Option<&'a str>) {
        self.language = language.map(|l| c_string(l, "Language"));
        self.fp.language = ptr_of(&self.language);
    }

    /// Set `detect_language`. Has the same effect as setting the language to "auto" or None.
    pub fn set_detect_language(&mut self, detect_language: bool) {
        self.fp.detect_language = detect_language;
    }

    /// Restrict language detection (a language of `None`, `""` or `"auto"`) to these language
    /// ids ([`get_lang_id`](crate::get_lang_id)): the most probable of them is chosen, while
    /// [`WhisperState::full_lang_probs`](crate::WhisperState::full_lang_probs) still reports the
    /// probabilities over every language the model knows. Ids the model has no token for are
    /// skipped; an empty list (the default) detects among all languages.
    pub fn set_detect_languages(&mut self, lang_ids: &[c_int]) {
        self.detect_languages = (!lang_ids.is_empty()).then(|| Arc::from(lang_ids));
        match &self.detect_languages {
            Some(ids) => {
                self.fp.detect_lang_ids = ids.as_ptr();
                self.fp.n_detect_langs = c_int::try_from(ids.len()).unwrap_or(c_int::MAX);
            }
            None => {
                self.fp.detect_lang_ids = std::ptr::null();
                self.fp.n_detect_langs = 0;
            }
        }
    }

    /// Set suppress_blank. Defaults to true.
    pub fn set_suppress_blank(&mut self, suppress_blank: bool) {
        self.fp.suppress_blank = suppress_blank;
    }

    /// Set suppress_non_speech_tokens. Defaults to false.
    pub fn set_suppress_nst(&mut self, suppress_nst: bool) {
        self.fp.suppress_nst = suppress_nst;
    }

    /// Set initial decoding temperature. Defaults to 0.0.
    pub fn set_temperature(&mut self, temperature: f32) {
        self.fp.temperature = temperature;
    }

    /// Set max_initial_ts. Defaults to 1.0.
    pub fn set_max_initial_ts(&mut self, max_initial_ts: f32) {
        self.fp.max_initial_ts = max_initial_ts;
    }

    /// Set length_penalty. Defaults to -1.0.
    pub fn set_length_penalty(&mut self, length_penalty: f32) {
        self.fp.length_penalty = length_penalty;
    }

    /// Set temperature_inc. Defaults to 0.2.
    pub fn set_temperature_inc(&mut self, temperature_inc: f32) {
        self.fp.temperature_inc = temperature_inc;
    }

    /// Set entropy_thold. Similar to OpenAI's compression_ratio_threshold. Defaults to 2.4.
    pub fn set_entropy_thold(&mut self, entropy_thold: f32) {
        self.fp.entropy_thold = entropy_thold;
    }

    /// Set logprob_thold. Defaults to -1.0.
    pub fn set_logprob_thold(&mut self, logprob_thold: f32) {
        self.fp.logprob_thold = logprob_thold;
    }

    /// Set no_speech_thold. Defaults to 0.6.
    pub fn set_no_speech_thold(&mut self, no_speech_thold: f32) {
        self.fp.no_speech_thold = no_speech_thold;
    }

    /// Set the seed of the random generators that sample tokens at temperatures above 0 (the
    /// temperature fallback, or [`set_temperature`](Self::set_temperature) above 0). Defaults
    /// to 0. Every [`WhisperState::full`](crate::WhisperState::full) starts from this seed
    /// (patch 0013), so the same audio and parameters give the same text whatever the state
    /// ran before; seed 0 samples what whisper.cpp's first run on a fresh state samples.
    /// whisper-rs has no such setter (its states carried their generator over between runs).
    pub fn set_seed(&mut self, seed: u32) {
        self.fp.seed = seed;
    }

    /// Set the callback for new segments.
    ///
    /// # Safety
    /// The callback must be safe to call with the user data set by
    /// [`set_new_segment_callback_user_data`](Self::set_new_segment_callback_user_data), on the
    /// thread that runs `full`, for as long as these parameters are used.
    pub unsafe fn set_new_segment_callback(
        &mut self,
        new_segment_callback: crate::WhisperNewSegmentCallback,
    ) {
        self.fp.new_segment_callback = new_segment_callback;
    }

    /// Set the user data to be passed to the new segment callback.
    ///
    /// # Safety
    /// See [`set_new_segment_callback`](Self::set_new_segment_callback).
    pub unsafe fn set_new_segment_callback_user_data(&mut self, user_data: *mut c_void) {
        self.fp.new_segment_callback_user_data = user_data;
    }

    fn install_segment_callback<F>(&mut self, closure: Option<F>, lossy: bool)
    where
        F: FnMut(SegmentCallbackData) + Send + 'static,
    {
        self.segment = closure.map(|closure| {
            Arc::new(SegmentCallback {
                lossy,
                closure: Mutex::new(Box::new(closure)),
            })
        });
        self.fp.new_segment_callback = self
            .segment
            .as_ref()
            .map(|_| callbacks::segment_trampoline as _);
        self.fp.new_segment_callback_user_data = callbacks::user_data(&self.segment);
    }

    /// Set the callback for segment updates. Segments whose text is not valid UTF-8 are skipped.
    ///
    /// The closure must be `Send`: whisper.cpp may call it from another thread.
    ///
    /// ```compile_fail
    /// use std::rc::Rc;
    /// use whisper_steady::{FullParams, SamplingStrategy, SegmentCallbackData};
    /// let mut params = FullParams::new(SamplingStrategy::Greedy { best_of: 1 });
    /// let texts = Rc::new(std::cell::RefCell::new(Vec::new()));
    /// params.set_segment_callback_safe(move |s: SegmentCallbackData| texts.borrow_mut().push(s.text));
    /// ```
    pub fn set_segment_callback_safe<O, F>(&mut self, closure: O)
    where
        F: FnMut(SegmentCallbackData) + Send + 'static,
        O: Into<Option<F>>,
    {
        self.install_segment_callback(closure.into(), false);
    }

    /// Set the callback for segment updates; invalid UTF-8 in the text is replaced.
    ///
    /// The closure must be `Send`: whisper.cpp may call it from another thread.
    pub fn set_segment_callback_safe_lossy<O, F>(&mut self, closure: O)
    where
        F: FnMut(SegmentCallbackData) + Send + 'static,
        O: Into<Option<F>>,
    {
        self.install_segment_callback(closure.into(), true);
    }

    /// Set the callback for progress updates.
    ///
    /// # Safety
    /// As for [`set_new_segment_callback`](Self::set_new_segment_callback).
    pub unsafe fn set_progress_callback(
        &mut self,
        progress_callback: crate::WhisperProgressCallback,
    ) {
        self.fp.progress_callback = progress_callback;
    }

    /// Set the callback for progress updates (percent, 0 to 100).
    ///
    /// The closure must be `Send`: whisper.cpp may call it from another thread. whisper-rs
    /// accepted closures that are not `Send` (see COMPAT.md):
    ///
    /// ```
    /// use std::sync::{Arc, Mutex};
    /// use whisper_steady::{FullParams, SamplingStrategy};
    /// let mut params = FullParams::new(SamplingStrategy::Greedy { best_of: 1 });
    /// let seen = Arc::new(Mutex::new(Vec::new()));
    /// let sink = Arc::clone(&seen);
    /// params.set_progress_callback_safe(move |p: i32| sink.lock().unwrap().push(p));
    /// ```
    ///
    /// ```compile_fail
    /// use std::rc::Rc;
    /// use std::cell::RefCell;
    /// use whisper_steady::{FullParams, SamplingStrategy};
    /// let mut params = FullParams::new(SamplingStrategy::Greedy { best_of: 1 });
    /// let seen = Rc::new(RefCell::new(Vec::new()));
    /// let sink = Rc::clone(&seen);
    /// params.set_progress_callback_safe(move |p: i32| sink.borrow_mut().push(p));
    /// ```
    pub fn set_progress_callback_safe<O, F>(&mut self, closure: O)
    where
        F: FnMut(i32) + Send + 'static,
        O: Into<Option<F>>,
    {
        self.progress = closure
            .into()
            .map(|closure| callbacks::share(Box::new(closure) as Box<ProgressFn>));
        self.fp.progress_callback = self
            .progress
            .as_ref()
            .map(|_| callbacks::progress_trampoline as _);
        self.fp.progress_callback_user_data = callbacks::user_data(&self.progress);
    }

    /// Set the callback for abort conditions: return `true` to stop the transcription, which
    /// then fails. A panic inside the closure also stops it.
    ///
    /// The closure must be `Send`: ggml calls it from its compute threads.
    ///
    /// ```compile_fail
    /// use std::rc::Rc;
    /// use whisper_steady::{FullParams, SamplingStrategy};
    /// let mut params = FullParams::new(SamplingStrategy::Greedy { best_of: 1 });
    /// let flag = Rc::new(std::cell::Cell::new(false));
    /// params.set_abort_callback_safe(move || flag.get());
    /// ```
    pub fn set_abort_callback_safe<O, F>(&mut self, closure: O)
    where
        F: FnMut() -> bool + Send + 'static,
        O: Into<Option<F>>,
    {
        self.abort = closure
            .into()
            .map(|closure| callbacks::share(Box::new(closure) as Box<AbortFn>));
        self.fp.abort_callback = self
            .abort
            .as_ref()
            .map(|_| callbacks::abort_trampoline as _);
        self.fp.abort_callback_user_data = callbacks::user_data(&self.abort);
    }

    /// Set the user data to be passed to the progress callback.
    ///
    /// # Safety
    /// As for [`set_new_segment_callback`](Self::set_new_segment_callback).
    pub unsafe fn set_progress_callback_user_data(&mut self, user_data: *mut c_void) {
        self.fp.progress_callback_user_data = user_data;
    }

    /// Set the callback that is called each time before the encoder begins; returning false
    /// aborts.
    ///
    /// # Safety
    /// As for [`set_new_segment_callback`](Self::set_new_segment_callback).
    pub unsafe fn set_start_encoder_callback(
        &mut self,
        start_encoder_callback: crate::WhisperStartEncoderCallback,
    ) {
        self.fp.encoder_begin_callback = start_encoder_callback;
    }

    /// Set the user data to be passed to the start encoder callback.
    ///
    /// # Safety
    /// As for [`set_new_segment_callback`](Self::set_new_segment_callback).
    pub unsafe fn set_start_encoder_callback_user_data(&mut self, user_data: *mut c_void) {
        self.fp.encoder_begin_callback_user_data = user_data;
    }

    /// Set the callback that is called by each decoder to filter obtained logits.
    ///
    /// # Safety
    /// As for [`set_new_segment_callback`](Self::set_new_segment_callback).
    pub unsafe fn set_filter_logits_callback(
        &mut self,
        logits_filter_callback: crate::WhisperLogitsFilterCallback,
    ) {
        self.fp.logits_filter_callback = logits_filter_callback;
    }

    /// Set the user data to be passed to the logits filter callback.
    ///
    /// # Safety
    /// As for [`set_new_segment_callback`](Self::set_new_segment_callback).
    pub unsafe fn set_filter_logits_callback_user_data(&mut self, user_data: *mut c_void) {
        self.fp.logits_filter_callback_user_data = user_data;
    }

    /// Set the callback that is called each time before ggml computation starts.
    ///
    /// # Safety
    /// As for [`set_new_segment_callback`](Self::set_new_segment_callback); ggml may call it
    /// from its compute threads.
    pub unsafe fn set_abort_callback(&mut self, abort_callback: crate::WhisperAbortCallback) {
        self.fp.abort_callback = abort_callback;
    }

    /// Set the user data to be passed to the abort callback.
    ///
    /// # Safety
    /// As for [`set_abort_callback`](Self::set_abort_callback).
    pub unsafe fn set_abort_callback_user_data(&mut self, user_data: *mut c_void) {
        self.fp.abort_callback_user_data = user_data;
    }

    /// Enable a grammar: the elements of all rules, each rule ending with
    /// [`WhisperGrammarElementType::End`](crate::WhisperGrammarElementType::End). `None`
    /// disables it.
    ///
    /// # Panics
    /// If a rule reference names a rule that does not exist (whisper.cpp would read out of
    /// bounds).
    pub fn set_grammar(&mut self, grammar: Option<&[WhisperGrammarElement]>) {
        match grammar.map(Grammar::new) {
            Some(Ok(mut g)) => {
                self.fp.grammar_rules = g.rules_ptr();
                self.fp.n_grammar_rules = g.n_rules();
                self.fp.i_start_rule = 0;
                self.grammar = Some(g);
            }
            Some(Err(message)) => panic!("invalid grammar: {message}"),
            None => {
                self.grammar = None;
                self.fp.grammar_rules = std::ptr::null_mut();
                self.fp.n_grammar_rules = 0;
                self.fp.i_start_rule = 0;
            }
        }
    }

    /// Set the start grammar rule. Does nothing if no grammar is set or the rule does not exist.
    pub fn set_start_rule(&mut self, start_rule: usize) {
        if self
            .grammar
            .as_ref()
            .is_some_and(|g| start_rule < g.n_rules())
        {
            self.fp.i_start_rule = start_rule;
        }
    }

    /// Set grammar penalty. Defaults to 100.0.
    pub fn set_grammar_penalty(&mut self, grammar_penalty: f32) {
        self.fp.grammar_penalty = grammar_penalty;
    }

    /// Set the initial prompt for the model. The string is copied.
    ///
    /// # Panics
    /// If the prompt contains a NUL byte.
    pub fn set_initial_prompt(&mut self, initial_prompt: &str) {
        self.initial_prompt = Some(c_string(initial_prompt, "Initial prompt"));
        self.fp.initial_prompt = ptr_of(&self.initial_prompt);
    }

    /// Enable or disable VAD.
    ///
    /// # Panics
    /// If `vad` is true and no VAD model path is set.
    pub fn enable_vad(&mut self, vad: bool) {
        if vad && self.vad_model_path.is_none() {
            panic!("Set a VAD model path before calling enable_vad");
        }
        self.fp.vad = vad;
    }

    /// Set the path where a VAD model can be found. Passing `None` will clear it and disable VAD.
    ///
    /// # Panics
    /// If the path contains a NUL byte.
    pub fn set_vad_model_path(&mut self, vad_model_path: Option<&str>) {
        self.vad_model_path = vad_model_path.map(|p| c_string(p, "VAD model path"));
        self.fp.vad_model_path = ptr_of(&self.vad_model_path);
        if self.vad_model_path.is_none() {
            self.fp.vad = false;
        }
    }

    /// Replace the VAD model parameters.
    pub fn set_vad_params(&mut self, params: WhisperVadParams) {
        self.fp.vad_params = params.into_inner();
    }
}

impl Clone for FullParams<'_, '_> {
    fn clone(&self) -> Self {
        let mut copy = FullParams {
            fp: self.fp,
            phantom: PhantomData,
            language: self.language.clone(),
            initial_prompt: self.initial_prompt.clone(),
            vad_model_path: self.vad_model_path.clone(),
            // Shared and never written: the copy's pointer may stay ours.
            detect_languages: self.detect_languages.clone(),
            grammar: self.grammar.clone(),
            progress: self.progress.clone(),
            abort: self.abort.clone(),
            segment: self.segment.clone(),
        };
        // Owned strings and the grammar were copied: point at the copies, never at ours.
        if self.language.is_some() {
            copy.fp.language = ptr_of(&copy.language);
        }
        if self.initial_prompt.is_some() {
            copy.fp.initial_prompt = ptr_of(&copy.initial_prompt);
        }
        if self.vad_model_path.is_some() {
            copy.fp.vad_model_path = ptr_of(&copy.vad_model_path);
        }
        if let Some(g) = copy.grammar.as_mut() {
            copy.fp.grammar_rules = g.rules_ptr();
        }
        copy
    }
}

impl Debug for FullParams<'_, '_> {
    fn fmt(&self, f: &mut Formatter<'_>) -> fmt::Result {
        f.debug_struct("FullParams")
            .field("fp", &self.fp)
            .field("language", &self.language)
            .field("initial_prompt", &self.initial_prompt)
            .field("vad_model_path", &self.vad_model_path)
            .field("detect_languages", &self.detect_languages)
            .field("grammar", &self.grammar)
            .field("progress_callback_safe", &self.progress.is_some())
            .field("abort_callback_safe", &self.abort.is_some())
            .field("segment_callback_safe", &self.segment.is_some())
            .finish()
    }
}

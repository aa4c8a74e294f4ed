//! [`WhisperState`]: the buffers of one transcription, and its results.

pub(crate) mod checks;
mod segment;
mod token;

pub use segment::{WhisperSegment, WhisperStateSegmentIterator};
pub use token::WhisperToken;

use std::ffi::c_int;
use std::sync::Arc;

use crate::api::context::WhisperInnerContext;
use crate::sys;
use crate::{FullParams, WhisperError, WhisperTokenId};

/// Rustified pointer to a Whisper state.
///
/// A state holds the buffers (and, with CUDA, the backend and memory pool) of one
/// transcription. It keeps its model alive, so it is `'static` and can move to any thread.
/// Methods that run the model take `&mut self`, except [`lang_detect`](Self::lang_detect); the
/// results of [`full`](Self::full) can be read from many threads. Underneath, every whisper.cpp
/// call on a state holds that state's lock (patch 0006), so even the raw API cannot corrupt a
/// state shared between threads.
pub struct WhisperState {
    ctx: Arc<WhisperInnerContext>,
    ptr: *mut sys::whisper_state,
    /// The logits of the last `decode` or `full`, copied out so that `get_logits` never hands
    /// out memory that a concurrent `lang_detect` rewrites.
    logits: Vec<f32>,
    /// Whether a spectrogram was computed or set. whisper.cpp leaves a new state's spectrogram
    /// fields uninitialized, so its own length cannot tell.
    has_mel: bool,
}

// SAFETY: the state owns its C buffers and holds its context alive. Every whisper.cpp function
// on a state holds the state's recursive lock for its duration (patch 0006), so calls from
// several threads run one after the other. Every `&self` method reads results that only
// `&mut self` methods write, except `lang_detect`, which writes nothing a `&self` method reads
// (the encoder output and logits it produces stay in C memory; `get_logits` returns our own
// copy), so what a `&self` reader holds (segment text) stays valid while `lang_detect` runs.
unsafe impl Send for WhisperState {}
// SAFETY: as above.
unsafe impl Sync for WhisperState {}

impl Drop for WhisperState {
    fn drop(&mut self) {
        // SAFETY: ptr came from whisper_init_state and is freed once, before the context (which
        // `ctx` keeps alive until after this runs).
        unsafe { sys::whisper_free_state(self.ptr) }
    }
}

impl std::fmt::Debug for WhisperState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WhisperState")
            .field("ctx", &self.ctx)
            .field("ptr", &self.ptr)
            .finish()
    }
}

/// ggml's limit on compute threads (`GGML_MAX_N_THREADS`); more aborts inside ggml.
const MAX_THREADS: usize = sys::GGML_MAX_N_THREADS as usize;

/// A thread count whisper.cpp can take: 1 to [`MAX_THREADS`]. Zero, negative or larger counts
/// made whisper.cpp throw a C++ exception through the C API (which aborts the process).
fn threads_arg(threads: usize) -> Result<c_int, WhisperError> {
    if !(1..=MAX_THREADS).contains(&threads) {
        return Err(WhisperError::InvalidThreadCount);
    }
    Ok(threads as c_int)
}

fn len_arg(len: usize) -> Result<c_int, WhisperError> {
    c_int::try_from(len).map_err(|_| WhisperError::GenericError(-1))
}

impl WhisperState {
    pub(crate) fn new(ctx: Arc<WhisperInnerContext>, ptr: *mut sys::whisper_state) -> Self {
        WhisperState {
            ctx,
            ptr,
            logits: Vec::new(),
            has_mel: false,
        }
    }

    pub(crate) fn raw_ctx(&self) -> *mut sys::whisper_context {
        self.ctx.ctx
    }

    pub(crate) fn raw_state(&self) -> *mut sys::whisper_state {
        self.ptr
    }

    /// Keeps a copy of row `row` of the state's logits: whisper.cpp lays them out one row of
    /// n_vocab per token of the last batch, and fills only the rows it computed (the last
    /// token's after [`Self::decode`]).
    fn snapshot_logits(&mut self, row: usize) {
        let n_vocab = self.n_vocab().max(0) as usize;
        // SAFETY: the state is exclusively borrowed; the pointer is null or points at the
        // logits of the last batch, at least `row + 1` rows of n_vocab floats (the callers pass
        // a row of that batch).
        let ptr = unsafe { sys::whisper_get_logits_from_state(self.ptr) };
        self.logits.clear();
        if !ptr.is_null() && n_vocab > 0 {
            // SAFETY: as above.
            self.logits.extend_from_slice(unsafe {
                std::slice::from_raw_parts(ptr.add(row * n_vocab), n_vocab)
            });
        }
    }

    /// Convert raw PCM audio (floating point 32 bit) to log mel spectrogram.
    /// The resulting spectrogram is stored in the context transparently.
    pub fn pcm_to_mel(&mut self, pcm: &[f32], threads: usize) -> Result<(), WhisperError> {
        let threads = threads_arg(threads)?;
        if pcm.is_empty() {
            return Err(WhisperError::NoSamples);
        }
        let pcm = checks::padded_for_mel(pcm);
        // SAFETY: valid slice and exclusive state.
        let ret = unsafe {
            sys::whisper_pcm_to_mel_with_state(
                self.raw_ctx(),
                self.ptr,
                pcm.as_ptr(),
                len_arg(pcm.len())?,
                threads,
            )
        };
        self.has_mel = ret == 0;
        match ret {
            0 => Ok(()),
            -1 => Err(WhisperError::UnableToCalculateSpectrogram),
            other => Err(WhisperError::GenericError(other)),
        }
    }

    /// This can be used to set a custom log mel spectrogram inside the provided whisper state.
    /// Use this instead of whisper_pcm_to_mel() if you want to provide your own log mel
    /// spectrogram.
    ///
    /// `data` holds `n_mels` rows (the model's [`model_n_mels`](crate::WhisperContext::model_n_mels))
    /// of equal length; any other length is [`WhisperError::InvalidMelBands`].
    pub fn set_mel(&mut self, data: &[f32]) -> Result<(), WhisperError> {
        // SAFETY: reads the model's hyperparameters.
        let n_mel = unsafe { sys::whisper_model_n_mels(self.raw_ctx()) };
        if n_mel <= 0 || data.is_empty() || data.len() % n_mel as usize != 0 {
            return Err(WhisperError::InvalidMelBands);
        }
        let n_len = len_arg(data.len() / n_mel as usize)?;
        // SAFETY: `data` holds n_len * n_mel floats; exclusive state.
        let ret = unsafe {
            sys::whisper_set_mel_with_state(self.raw_ctx(), self.ptr, data.as_ptr(), n_len, n_mel)
        };
        self.has_mel = ret == 0;
        match ret {
            0 => Ok(()),
            -1 => Err(WhisperError::InvalidMelBands),
            other => Err(WhisperError::GenericError(other)),
        }
    }

    /// Run the Whisper encoder on the log mel spectrogram stored inside the provided whisper
    /// state. Make sure to call [WhisperState::pcm_to_mel] or [WhisperState::set_mel] first.
    pub fn encode(&mut self, offset: usize, threads: usize) -> Result<(), WhisperError> {
        let threads = threads_arg(threads)?;
        if !self.has_mel {
            return Err(WhisperError::SpectrogramNotInitialized);
        }
        let offset = len_arg(offset)?;
        // SAFETY: exclusive state with a spectrogram.
        let ret =
            unsafe { sys::whisper_encode_with_state(self.raw_ctx(), self.ptr, offset, threads) };
        match ret {
            0 => Ok(()),
            -1 => Err(WhisperError::UnableToCalculateEvaluation),
            other => Err(WhisperError::GenericError(other)),
        }
    }

    /// Run the Whisper decoder to obtain the logits and probabilities for the next token.
    /// Make sure to call [WhisperState::encode] first.
    /// tokens + n_tokens is the provided context for the decoder.
    pub fn decode(
        &mut self,
        tokens: &[WhisperTokenId],
        n_past: usize,
        threads: usize,
    ) -> Result<(), WhisperError> {
        let threads = threads_arg(threads)?;
        let n_vocab = self.n_vocab();
        if tokens.iter().any(|&t| t < 0 || t >= n_vocab) {
            return Err(WhisperError::InvalidText);
        }
        // whisper.cpp's batch holds n_text_ctx tokens and takes the last one's logits: no tokens,
        // or more than the text context holds with the past ones, would write outside it.
        // SAFETY: reads the model's hyperparameters.
        let n_text_ctx =
            usize::try_from(unsafe { sys::whisper_n_text_ctx(self.raw_ctx()) }).unwrap_or(0);
        if tokens.is_empty() || n_past.saturating_add(tokens.len()) > n_text_ctx {
            return Err(WhisperError::InvalidText);
        }
        // SAFETY: valid token slice (ids in range) and exclusive state.
        let ret = unsafe {
            sys::whisper_decode_with_state(
                self.raw_ctx(),
                self.ptr,
                tokens.as_ptr(),
                len_arg(tokens.len())?,
                len_arg(n_past)?,
                threads,
            )
        };
        match ret {
            0 => {
                self.snapshot_logits(tokens.len().saturating_sub(1));
                Ok(())
            }
            -1 => Err(WhisperError::UnableToCalculateEvaluation),
            other => Err(WhisperError::GenericError(other)),
        }
    }

    /// Use mel data at offset_ms to try and auto-detect the spoken language. Make sure to call
    /// [`Self::pcm_to_mel`] or [`Self::set_mel`] first.
    ///
    /// Returns the most probable language id and the probability of every language. Concurrent
    /// calls on one state run one after the other.
    pub fn lang_detect(
        &self,
        offset_ms: usize,
        threads: usize,
    ) -> Result<(i32, Vec<f32>), WhisperError> {
        let threads = threads_arg(threads)?;
        if !self.has_mel {
            return Err(WhisperError::SpectrogramNotInitialized);
        }
        let offset_ms = len_arg(offset_ms)?;
        let mut probs = vec![0.0f32; crate::get_lang_max_id() as usize + 1];
        // SAFETY: whisper.cpp holds the state's lock (patch 0006) for the call, which gives it
        // exclusive use of the encoder/decoder buffers; it writes nothing that `&self` readers
        // read (see the Sync impl). `probs` has room for every language.
        let ret = unsafe {
            sys::whisper_lang_auto_detect_with_state(
                self.raw_ctx(),
                self.ptr,
                offset_ms,
                threads,
                probs.as_mut_ptr(),
            )
        };
        if ret < 0 {
            Err(WhisperError::GenericError(ret))
        } else {
            Ok((ret, probs))
        }
    }

    /// Gets logits obtained from the last call to [WhisperState::decode] (or
    /// [WhisperState::full]). Only the row of the last token is available: after `decode`,
    /// the logits for the token that follows the tokens given.
    pub fn get_logits(&self) -> Result<&[f32], WhisperError> {
        if self.logits.is_empty() {
            return Err(WhisperError::NullPointer);
        }
        Ok(&self.logits)
    }

    /// Get the mel spectrogram length (0 before a spectrogram was computed or set).
    pub fn n_len(&self) -> c_int {
        if !self.has_mel {
            return 0;
        }
        // SAFETY: reads a length that only `&mut self` methods change.
        unsafe { sys::whisper_n_len_from_state(self.ptr) }
    }

    /// Get n_vocab.
    pub fn n_vocab(&self) -> c_int {
        // SAFETY: reads the model's hyperparameters.
        unsafe { sys::whisper_n_vocab(self.raw_ctx()) }
    }

    /// Run the entire model: PCM -> log mel spectrogram -> encoder -> decoder -> text
    /// Uses the specified decoding strategy to obtain the text.
    ///
    /// `data` is 16 kHz mono PCM within ±1. Audio and parameters that made whisper.cpp loop
    /// forever, read out of bounds, abort the process or compute NaN are refused before it
    /// runs, with [`WhisperError::GenericError`] and a code below (the reason is also logged
    /// to the `log` crate, target `whisper_steady`, at debug level: it is the caller's mistake):
    ///
    /// | code | refused |
    /// |---|---|
    /// | -101 | an audio sample is NaN or infinite |
    /// | -102 | an audio sample is beyond ±1,000,000 (not audio; around ±1e17 whisper.cpp's spectrogram overflows and the model computes NaN) |
    /// | -103 | `temperature` is NaN, infinite or negative |
    /// | -104 | `temperature_inc` is NaN or infinite, or so small that the fallback schedule below 1.0 would have more than 100 temperatures |
    /// | -105 | `entropy_thold`, `logprob_thold`, `no_speech_thold`, `length_penalty`, `thold_pt`, `thold_ptsum`, `max_initial_ts` or `grammar_penalty` is NaN (infinities are meaningful thresholds and pass) |
    /// | -106 | `offset_ms` is negative (whisper.cpp read before the start of the spectrogram) |
    /// | -107 | `duration_ms` is negative |
    /// | -108 | the language is not one whisper.cpp knows (`None`, `""` and `"auto"` detect it) |
    /// | -109 | a prompt token (`set_tokens`) is outside the model's vocabulary (whisper.cpp aborted) |
    ///
    /// whisper.cpp itself returns `-4` for more than 8 decoders (`best_of` or `beam_size`) and
    /// `-5` for an `audio_ctx` larger than the model's, and this method refuses an empty input
    /// ([`WhisperError::NoSamples`]) and thread counts outside 1 to 512
    /// ([`WhisperError::InvalidThreadCount`]).
    ///
    /// Normalized, where whisper.cpp's own semantics give the value a meaning:
    /// - `temperature` above 1.0 with `temperature_inc > 0`: whisper.cpp's fallback schedule
    ///   (from `temperature` up to 1.0) is empty and it never advanced through the audio; it runs
    ///   once at `temperature`, without fallback.
    /// - `offset_ms + duration_ms` past the end of the audio: up to the end (`duration_ms` 0),
    ///   instead of decoding silence up to the requested time.
    /// - the initial prompt: tokenized here, in time linear in its length, into the tokens
    ///   whisper.cpp's tokenizer gives (which takes time cubic in a long word: ~350 Chinese
    ///   characters, which have no spaces, or a run of 1,500 spaces), and only its last
    ///   `min(n_max_text_ctx, n_text_ctx / 2) - 1` tokens (223 for every released model) are
    ///   passed, the ones whisper.cpp conditions on: a prompt of any length is taken.
    ///
    /// Passed through as whisper.cpp defines them: `max_len`, `max_tokens`, `n_max_text_ctx`
    /// and `audio_ctx` of 0 or less (no limit, no limit, no past text, the model's context),
    /// `offset_ms` at or past the end of the audio (no segments), `best_of` or `beam_size`
    /// below 1 (one decoder), `temperature_inc` of 0 or less (no fallback), a language other
    /// than English on an English-only model (ignored). Audio shorter than 100 ms gives no
    /// segments; input under 201 samples is padded with silence first (whisper.cpp read 201
    /// samples whatever the length).
    pub fn full(&mut self, params: FullParams<'_, '_>, data: &[f32]) -> Result<(), WhisperError> {
        if data.is_empty() {
            return Err(WhisperError::NoSamples);
        }
        threads_arg(usize::try_from(params.fp.n_threads).unwrap_or(0))?;
        // SAFETY: the pointers in `params.fp` are null or owned/borrowed by `params`.
        let checked = unsafe { checks::check(&self.ctx, params.fp, data) }?;
        let data = checks::padded_for_mel(data);
        let n_samples = len_arg(data.len())?;
        let vad = checked.fp.vad;
        // SAFETY: exclusive state; `params` owns (or borrows for its lifetimes) everything its
        // pointers reach and lives until the end of this call, callbacks included, and `checked`
        // owns the replacement prompt its parameters may point at.
        let ret = unsafe {
            sys::whisper_full_with_state(
                self.raw_ctx(),
                self.ptr,
                checked.fp,
                data.as_ptr(),
                n_samples,
            )
        };
        drop(checked);
        drop(params);
        // A successful run computed a spectrogram, except with VAD, which skips it when it finds
        // no speech.
        self.has_mel = self.has_mel || (ret == 0 && !vad);
        match ret {
            0 => {
                // The first decoder's row of the last step, as before.
                self.snapshot_logits(0);
                Ok(())
            }
            -1 => Err(WhisperError::UnableToCalculateSpectrogram),
            7 => Err(WhisperError::FailedToEncode),
            8 => Err(WhisperError::FailedToDecode),
            other => Err(WhisperError::GenericError(other)),
        }
    }

    /// Number of generated text segments.
    /// A segment can be a few words, a sentence, or even a paragraph.
    pub fn full_n_segments(&self) -> c_int {
        // SAFETY: reads results.
        unsafe { sys::whisper_full_n_segments_from_state(self.ptr) }
    }

    /// The first special token of the model's vocabulary (end of text): ids from here on are
    /// timestamps, language tags and other markers, not text.
    pub(crate) fn first_special_token(&self) -> WhisperTokenId {
        // SAFETY: reads the vocabulary of the context this state keeps alive.
        unsafe { sys::whisper_token_eot(self.ctx.ctx) }
    }

    /// Language ID associated with the provided state.
    pub fn full_lang_id_from_state(&self) -> c_int {
        // SAFETY: reads results.
        unsafe { sys::whisper_full_lang_id_from_state(self.ptr) }
    }

    /// The probability of every language (indexed by language id, 0 for languages the model has
    /// no token for) that the last [`full`](Self::full) run's language detection computed;
    /// `None` when that run was given a language and did not detect (patch 0017).
    pub fn full_lang_probs(&self) -> Option<Vec<f32>> {
        let mut probs = vec![0.0f32; crate::get_lang_max_id() as usize + 1];
        // SAFETY: copies whisper_lang_max_id() + 1 values into `probs`, which has room for
        // them, under the state's lock.
        let ret = unsafe { sys::whisper_full_lang_probs_from_state(self.ptr, probs.as_mut_ptr()) };
        (ret == 0).then_some(probs)
    }

    /// The probability that the last [`full`](Self::full) run's language detection gave the
    /// language it chose ([`full_lang_id_from_state`](Self::full_lang_id_from_state)); `None`
    /// when that run was given a language.
    pub fn full_lang_probability(&self) -> Option<f32> {
        let probs = self.full_lang_probs()?;
        let id = usize::try_from(self.full_lang_id_from_state()).ok()?;
        probs.get(id).copied()
    }

    /// Get a [`WhisperSegment`] object for the specified segment index, or `None` if out of
    /// bounds.
    pub fn get_segment(&self, segment: c_int) -> Option<WhisperSegment<'_>> {
        (0..self.full_n_segments())
            .contains(&segment)
            .then(|| WhisperSegment::new(self, segment))
    }

    /// Get a [`WhisperSegment`] object for the specified segment index.
    ///
    /// # Safety
    /// Kept `unsafe` for compatibility; the index is still checked.
    ///
    /// # Panics
    /// If the index is out of bounds.
    pub unsafe fn get_segment_unchecked(&self, segment: c_int) -> WhisperSegment<'_> {
        self.get_segment(segment)
            .unwrap_or_else(|| panic!("segment index {segment} out of bounds"))
    }

    /// Get an iterator over all segments.
    pub fn as_iter(&self) -> WhisperStateSegmentIterator<'_> {
        WhisperStateSegmentIterator::new(self)
    }
}

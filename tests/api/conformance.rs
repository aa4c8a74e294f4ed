//! Conformance with the public API of whisper-rs 0.16.0: every item, method signature (as a
//! function-pointer coercion), enum variant, public field and trait of the specification is
//! named here, so any drift fails to compile. Deliberate differences are listed in COMPAT.md and
//! marked `// COMPAT:` below. The method list was generated once from the specification's tables
//! and is maintained by hand.

#![allow(
    clippy::type_complexity,
    clippy::extra_unused_lifetimes,
    clippy::too_many_arguments,
    unused_imports
)]

use std::borrow::Cow;
use std::error::Error;
use std::ffi::{c_int, c_void};
use std::fmt::{Debug, Display};
use std::hash::Hash;
use std::panic::{RefUnwindSafe, UnwindSafe};
use std::path::Path;

use whisper_steady::sys;
use whisper_steady::*;

/// Compiles only if `T` implements every listed trait.
macro_rules! assert_impl {
    ($t:ty: $($tr:path),+ $(,)?) => {
        const _: () = {
            fn check<T: ?Sized $(+ $tr)+>() {}
            #[allow(dead_code)]
            fn go() { check::<$t>(); }
        };
    };
}

/// Compiles only if `T` implements none of the listed traits (the ambiguity trick).
macro_rules! assert_not_impl {
    ($t:ty: $($tr:path),+ $(,)?) => {
        const _: () = {
            trait AmbiguousIfImpl<A> { fn some_item() {} }
            impl<T: ?Sized> AmbiguousIfImpl<()> for T {}
            $({
                #[allow(dead_code)]
                struct Invalid;
                impl<T: ?Sized + $tr> AmbiguousIfImpl<Invalid> for T {}
            })+
            #[allow(dead_code)]
            fn go() { let _ = <$t as AmbiguousIfImpl<_>>::some_item; }
        };
    };
}

assert_impl!(WhisperContext: Debug, Send, Sync, Unpin, UnwindSafe, RefUnwindSafe);
assert_impl!(WhisperContextParameters<'static>: Debug, Default, Send, Sync, Unpin, UnwindSafe, RefUnwindSafe);
assert_impl!(DtwParameters<'static>: Debug, Clone, Default, Send, Sync, Unpin, UnwindSafe, RefUnwindSafe);
assert_impl!(DtwMode<'static>: Debug, Clone, Send, Sync, Unpin, UnwindSafe, RefUnwindSafe);
assert_impl!(DtwModelPreset: Debug, Clone, Send, Sync, Unpin, UnwindSafe, RefUnwindSafe);
assert_impl!(WhisperState: Debug, Send, Sync, Unpin, UnwindSafe, RefUnwindSafe);
assert_impl!(WhisperStateSegmentIterator<'static>: Debug, Send, Sync, Unpin, UnwindSafe, RefUnwindSafe);
assert_impl!(WhisperSegment<'static>: Display, Debug, Send, Sync, Unpin, UnwindSafe, RefUnwindSafe);
assert_impl!(WhisperToken<'static, 'static>: Display, Debug, Send, Sync, Unpin, UnwindSafe, RefUnwindSafe);
// COMPAT: whisper-rs's FullParams is !UnwindSafe (bare boxed closures); ours keeps its
// closures behind mutexes, which makes it UnwindSafe. Additive: no caller breaks.
assert_impl!(FullParams<'static, 'static>: Clone, Debug, Send, Sync, Unpin, UnwindSafe, RefUnwindSafe);
assert_impl!(SamplingStrategy: Debug, Clone, Send, Sync, Unpin, UnwindSafe, RefUnwindSafe);
assert_impl!(SegmentCallbackData: Debug, Clone, Send, Sync, Unpin, UnwindSafe, RefUnwindSafe);
assert_impl!(WhisperGrammarElement: Debug, Copy, Clone, PartialEq, Eq, Hash, Send, Sync, Unpin, UnwindSafe, RefUnwindSafe);
assert_impl!(WhisperGrammarElementType: Debug, Copy, Clone, PartialEq, Eq, Hash, Send, Sync, Unpin, UnwindSafe, RefUnwindSafe);
assert_impl!(WhisperVadParams: Copy, Clone, Debug, Default, Send, Sync, Unpin, UnwindSafe, RefUnwindSafe);
assert_impl!(WhisperVadContextParams: Copy, Clone, Debug, Default, Send, Sync, Unpin, UnwindSafe, RefUnwindSafe);
assert_impl!(WhisperVadContext: Debug, Send, Sync, Unpin, UnwindSafe, RefUnwindSafe);
assert_impl!(WhisperVadSegments: Debug, Unpin, UnwindSafe, RefUnwindSafe);
assert_not_impl!(WhisperVadSegments: Send);
assert_not_impl!(WhisperVadSegments: Sync);
assert_impl!(WhisperVadSegment: Copy, Clone, Debug, Send, Sync, Unpin, UnwindSafe, RefUnwindSafe);
assert_impl!(WhisperError: Debug, Copy, Clone, Display, Error, Send, Sync, Unpin, UnwindSafe, RefUnwindSafe);
assert_impl!(GGMLLogLevel: Debug, Send, Sync, Unpin, UnwindSafe, RefUnwindSafe);
assert_impl!(SystemInfo: Debug, Default, Send, Sync, Unpin, UnwindSafe, RefUnwindSafe);

#[allow(dead_code)]
fn methods_of_whisper_context() {
    let _: fn(
        &'static str,
        WhisperContextParameters<'static>,
    ) -> Result<WhisperContext, WhisperError> = <WhisperContext>::new_with_params::<&'static str>;
    let _: fn(&[u8], WhisperContextParameters<'_>) -> Result<WhisperContext, WhisperError> =
        <WhisperContext>::new_from_buffer_with_params;
    let _: fn(&WhisperContext, &str, usize) -> Result<Vec<WhisperTokenId>, WhisperError> =
        <WhisperContext>::tokenize;
    let _: fn(&WhisperContext) -> c_int = <WhisperContext>::n_vocab;
    let _: fn(&WhisperContext) -> c_int = <WhisperContext>::n_text_ctx;
    let _: fn(&WhisperContext) -> c_int = <WhisperContext>::n_audio_ctx;
    let _: fn(&WhisperContext) -> bool = <WhisperContext>::is_multilingual;
    let _: fn(&WhisperContext) -> c_int = <WhisperContext>::model_n_vocab;
    let _: fn(&WhisperContext) -> c_int = <WhisperContext>::model_n_audio_ctx;
    let _: fn(&WhisperContext) -> c_int = <WhisperContext>::model_n_audio_state;
    let _: fn(&WhisperContext) -> c_int = <WhisperContext>::model_n_audio_head;
    let _: fn(&WhisperContext) -> c_int = <WhisperContext>::model_n_audio_layer;
    let _: fn(&WhisperContext) -> c_int = <WhisperContext>::model_n_text_ctx;
    let _: fn(&WhisperContext) -> c_int = <WhisperContext>::model_n_text_state;
    let _: fn(&WhisperContext) -> c_int = <WhisperContext>::model_n_text_head;
    let _: fn(&WhisperContext) -> c_int = <WhisperContext>::model_n_text_layer;
    let _: fn(&WhisperContext) -> c_int = <WhisperContext>::model_n_mels;
    let _: fn(&WhisperContext) -> c_int = <WhisperContext>::model_ftype;
    let _: fn(&WhisperContext) -> c_int = <WhisperContext>::model_type;
    let _: fn(&WhisperContext) -> Result<&[u8], WhisperError> =
        <WhisperContext>::model_type_readable_bytes;
    let _: fn(&WhisperContext) -> Result<&str, WhisperError> =
        <WhisperContext>::model_type_readable_str;
    let _: fn(&WhisperContext) -> Result<Cow<'_, str>, WhisperError> =
        <WhisperContext>::model_type_readable_str_lossy;
    let _: fn(&WhisperContext, WhisperTokenId) -> Result<&[u8], WhisperError> =
        <WhisperContext>::token_to_bytes;
    let _: fn(&WhisperContext, WhisperTokenId) -> Result<&str, WhisperError> =
        <WhisperContext>::token_to_str;
    let _: fn(&WhisperContext, WhisperTokenId) -> Result<Cow<'_, str>, WhisperError> =
        <WhisperContext>::token_to_str_lossy;
    let _: fn(&WhisperContext) -> WhisperTokenId = <WhisperContext>::token_eot;
    let _: fn(&WhisperContext) -> WhisperTokenId = <WhisperContext>::token_sot;
    let _: fn(&WhisperContext) -> WhisperTokenId = <WhisperContext>::token_solm;
    let _: fn(&WhisperContext) -> WhisperTokenId = <WhisperContext>::token_prev;
    let _: fn(&WhisperContext) -> WhisperTokenId = <WhisperContext>::token_nosp;
    let _: fn(&WhisperContext) -> WhisperTokenId = <WhisperContext>::token_not;
    let _: fn(&WhisperContext) -> WhisperTokenId = <WhisperContext>::token_beg;
    let _: fn(&WhisperContext, c_int) -> WhisperTokenId = <WhisperContext>::token_lang;
    let _: fn(&WhisperContext) = <WhisperContext>::print_timings;
    let _: fn(&WhisperContext) = <WhisperContext>::reset_timings;
    let _: fn(&WhisperContext) -> WhisperTokenId = <WhisperContext>::token_translate;
    let _: fn(&WhisperContext) -> WhisperTokenId = <WhisperContext>::token_transcribe;
    let _: fn(&WhisperContext) -> Result<WhisperState, WhisperError> =
        <WhisperContext>::create_state;
}

#[allow(dead_code)]
fn methods_of_whisper_context_parameters<'a>() {
    let _: fn() -> WhisperContextParameters<'a> = <WhisperContextParameters<'a>>::new;
    let _: for<'s> fn(
        &'s mut WhisperContextParameters<'a>,
        bool,
    ) -> &'s mut WhisperContextParameters<'a> = <WhisperContextParameters<'a>>::use_gpu;
    let _: for<'s> fn(
        &'s mut WhisperContextParameters<'a>,
        bool,
    ) -> &'s mut WhisperContextParameters<'a> = <WhisperContextParameters<'a>>::flash_attn;
    let _: for<'s> fn(
        &'s mut WhisperContextParameters<'a>,
        c_int,
    ) -> &'s mut WhisperContextParameters<'a> = <WhisperContextParameters<'a>>::gpu_device;
    let _: for<'s> fn(
        &'s mut WhisperContextParameters<'a>,
        DtwParameters<'a>,
    ) -> &'s mut WhisperContextParameters<'a> = <WhisperContextParameters<'a>>::dtw_parameters;
}

#[allow(dead_code)]
fn methods_of_whisper_state() {
    let _: fn(&mut WhisperState, &[f32], usize) -> Result<(), WhisperError> =
        <WhisperState>::pcm_to_mel;
    let _: fn(&mut WhisperState, &[f32]) -> Result<(), WhisperError> = <WhisperState>::set_mel;
    let _: fn(&mut WhisperState, usize, usize) -> Result<(), WhisperError> = <WhisperState>::encode;
    let _: fn(&mut WhisperState, &[WhisperTokenId], usize, usize) -> Result<(), WhisperError> =
        <WhisperState>::decode;
    let _: fn(&WhisperState, usize, usize) -> Result<(i32, Vec<f32>), WhisperError> =
        <WhisperState>::lang_detect;
    let _: fn(&WhisperState) -> Result<&[f32], WhisperError> = <WhisperState>::get_logits;
    let _: fn(&WhisperState) -> c_int = <WhisperState>::n_len;
    let _: fn(&WhisperState) -> c_int = <WhisperState>::n_vocab;
    let _: fn(&mut WhisperState, FullParams<'_, '_>, &[f32]) -> Result<(), WhisperError> =
        <WhisperState>::full;
    let _: fn(&WhisperState) -> c_int = <WhisperState>::full_n_segments;
    let _: fn(&WhisperState) -> c_int = <WhisperState>::full_lang_id_from_state;
    let _: fn(&WhisperState, c_int) -> Option<WhisperSegment<'_>> = <WhisperState>::get_segment;
    let _: unsafe fn(&WhisperState, c_int) -> WhisperSegment<'_> =
        <WhisperState>::get_segment_unchecked;
    let _: fn(&WhisperState) -> WhisperStateSegmentIterator<'_> = <WhisperState>::as_iter;
}

#[allow(dead_code)]
fn methods_of_whisper_segment<'a>() {
    let _: for<'s> fn(&'s WhisperSegment<'a>) -> c_int = <WhisperSegment<'a>>::segment_index;
    let _: for<'s> fn(&'s WhisperSegment<'a>) -> i64 = <WhisperSegment<'a>>::start_timestamp;
    let _: for<'s> fn(&'s WhisperSegment<'a>) -> i64 = <WhisperSegment<'a>>::end_timestamp;
    let _: for<'s> fn(&'s WhisperSegment<'a>) -> c_int = <WhisperSegment<'a>>::n_tokens;
    let _: for<'s> fn(&'s WhisperSegment<'a>) -> bool =
        <WhisperSegment<'a>>::next_segment_speaker_turn;
    let _: for<'s> fn(&'s WhisperSegment<'a>) -> f32 = <WhisperSegment<'a>>::no_speech_probability;
    let _: for<'s> fn(&'s WhisperSegment<'a>) -> Result<&'a [u8], WhisperError> =
        <WhisperSegment<'a>>::to_bytes;
    let _: for<'s> fn(&'s WhisperSegment<'a>) -> Result<&'a str, WhisperError> =
        <WhisperSegment<'a>>::to_str;
    let _: for<'s> fn(&'s WhisperSegment<'a>) -> Result<Cow<'a, str>, WhisperError> =
        <WhisperSegment<'a>>::to_str_lossy;
    let _: for<'s> fn(&'s WhisperSegment<'a>, c_int) -> Option<WhisperToken<'s, 's>> =
        <WhisperSegment<'a>>::get_token;
    let _: for<'s> unsafe fn(&'s WhisperSegment<'a>, c_int) -> WhisperToken<'s, 's> =
        <WhisperSegment<'a>>::get_token_unchecked;
}

#[allow(dead_code)]
fn methods_of_whisper_token<'a, 'b: 'a>() {
    let _: for<'s> fn(&'s WhisperToken<'a, 'b>) -> WhisperTokenId =
        <WhisperToken<'a, 'b>>::token_id;
    let _: for<'s> fn(&'s WhisperToken<'a, 'b>) -> WhisperTokenData =
        <WhisperToken<'a, 'b>>::token_data;
    let _: for<'s> fn(&'s WhisperToken<'a, 'b>) -> f32 = <WhisperToken<'a, 'b>>::token_probability;
    let _: for<'s> fn(&'s WhisperToken<'a, 'b>) -> Result<&'b [u8], WhisperError> =
        <WhisperToken<'a, 'b>>::to_bytes;
    let _: for<'s> fn(&'s WhisperToken<'a, 'b>) -> Result<&'b str, WhisperError> =
        <WhisperToken<'a, 'b>>::to_str;
    let _: for<'s> fn(&'s WhisperToken<'a, 'b>) -> Result<Cow<'b, str>, WhisperError> =
        <WhisperToken<'a, 'b>>::to_str_lossy;
}

#[allow(dead_code)]
fn methods_of_full_params<'a, 'b>() {
    let _: fn(SamplingStrategy) -> FullParams<'a, 'b> = <FullParams<'a, 'b>>::new;
    let _: for<'s> fn(&'s mut FullParams<'a, 'b>, c_int) = <FullParams<'a, 'b>>::set_n_threads;
    let _: for<'s> fn(&'s mut FullParams<'a, 'b>, c_int) = <FullParams<'a, 'b>>::set_n_max_text_ctx;
    let _: for<'s> fn(&'s mut FullParams<'a, 'b>, c_int) = <FullParams<'a, 'b>>::set_offset_ms;
    let _: for<'s> fn(&'s mut FullParams<'a, 'b>, c_int) = <FullParams<'a, 'b>>::set_duration_ms;
    let _: for<'s> fn(&'s mut FullParams<'a, 'b>, bool) = <FullParams<'a, 'b>>::set_translate;
    let _: for<'s> fn(&'s mut FullParams<'a, 'b>, bool) = <FullParams<'a, 'b>>::set_no_context;
    let _: for<'s> fn(&'s mut FullParams<'a, 'b>, bool) = <FullParams<'a, 'b>>::set_no_timestamps;
    let _: for<'s> fn(&'s mut FullParams<'a, 'b>, bool) = <FullParams<'a, 'b>>::set_single_segment;
    let _: for<'s> fn(&'s mut FullParams<'a, 'b>, bool) = <FullParams<'a, 'b>>::set_print_special;
    let _: for<'s> fn(&'s mut FullParams<'a, 'b>, bool) = <FullParams<'a, 'b>>::set_print_progress;
    let _: for<'s> fn(&'s mut FullParams<'a, 'b>, bool) = <FullParams<'a, 'b>>::set_print_realtime;
    let _: for<'s> fn(&'s mut FullParams<'a, 'b>, bool) =
        <FullParams<'a, 'b>>::set_print_timestamps;
    let _: for<'s> fn(&'s mut FullParams<'a, 'b>, bool) =
        <FullParams<'a, 'b>>::set_token_timestamps;
    let _: for<'s> fn(&'s mut FullParams<'a, 'b>, f32) = <FullParams<'a, 'b>>::set_thold_pt;
    let _: for<'s> fn(&'s mut FullParams<'a, 'b>, f32) = <FullParams<'a, 'b>>::set_thold_ptsum;
    let _: for<'s> fn(&'s mut FullParams<'a, 'b>, c_int) = <FullParams<'a, 'b>>::set_max_len;
    let _: for<'s> fn(&'s mut FullParams<'a, 'b>, bool) = <FullParams<'a, 'b>>::set_split_on_word;
    let _: for<'s> fn(&'s mut FullParams<'a, 'b>, c_int) = <FullParams<'a, 'b>>::set_max_tokens;
    let _: for<'s> fn(&'s mut FullParams<'a, 'b>, bool) = <FullParams<'a, 'b>>::set_debug_mode;
    let _: for<'s> fn(&'s mut FullParams<'a, 'b>, c_int) = <FullParams<'a, 'b>>::set_audio_ctx;
    let _: for<'s> fn(&'s mut FullParams<'a, 'b>, bool) = <FullParams<'a, 'b>>::set_tdrz_enable;
    let _: for<'s> fn(&'s mut FullParams<'a, 'b>, &'b [c_int]) = <FullParams<'a, 'b>>::set_tokens;
    let _: for<'s> fn(&'s mut FullParams<'a, 'b>, Option<&'a str>) =
        <FullParams<'a, 'b>>::set_language;
    let _: for<'s> fn(&'s mut FullParams<'a, 'b>, bool) = <FullParams<'a, 'b>>::set_detect_language;
    let _: for<'s> fn(&'s mut FullParams<'a, 'b>, bool) = <FullParams<'a, 'b>>::set_suppress_blank;
    let _: for<'s> fn(&'s mut FullParams<'a, 'b>, bool) = <FullParams<'a, 'b>>::set_suppress_nst;
    let _: for<'s> fn(&'s mut FullParams<'a, 'b>, f32) = <FullParams<'a, 'b>>::set_temperature;
    let _: for<'s> fn(&'s mut FullParams<'a, 'b>, f32) = <FullParams<'a, 'b>>::set_max_initial_ts;
    let _: for<'s> fn(&'s mut FullParams<'a, 'b>, f32) = <FullParams<'a, 'b>>::set_length_penalty;
    let _: for<'s> fn(&'s mut FullParams<'a, 'b>, f32) = <FullParams<'a, 'b>>::set_temperature_inc;
    let _: for<'s> fn(&'s mut FullParams<'a, 'b>, f32) = <FullParams<'a, 'b>>::set_entropy_thold;
    let _: for<'s> fn(&'s mut FullParams<'a, 'b>, f32) = <FullParams<'a, 'b>>::set_logprob_thold;
    let _: for<'s> fn(&'s mut FullParams<'a, 'b>, f32) = <FullParams<'a, 'b>>::set_no_speech_thold;
    let _: for<'s> unsafe fn(&'s mut FullParams<'a, 'b>, WhisperNewSegmentCallback) =
        <FullParams<'a, 'b>>::set_new_segment_callback;
    let _: for<'s> unsafe fn(&'s mut FullParams<'a, 'b>, *mut c_void) =
        <FullParams<'a, 'b>>::set_new_segment_callback_user_data;
    let _: fn(&mut FullParams<'a, 'b>, Option<fn(SegmentCallbackData)>) =
        <FullParams<'a, 'b>>::set_segment_callback_safe::<
            Option<fn(SegmentCallbackData)>,
            fn(SegmentCallbackData),
        >;
    let _: fn(&mut FullParams<'a, 'b>, Option<fn(SegmentCallbackData)>) =
        <FullParams<'a, 'b>>::set_segment_callback_safe_lossy::<
            Option<fn(SegmentCallbackData)>,
            fn(SegmentCallbackData),
        >;
    let _: for<'s> unsafe fn(&'s mut FullParams<'a, 'b>, WhisperProgressCallback) =
        <FullParams<'a, 'b>>::set_progress_callback;
    let _: fn(&mut FullParams<'a, 'b>, Option<fn(i32)>) =
        <FullParams<'a, 'b>>::set_progress_callback_safe::<Option<fn(i32)>, fn(i32)>;
    let _: fn(&mut FullParams<'a, 'b>, Option<fn() -> bool>) =
        <FullParams<'a, 'b>>::set_abort_callback_safe::<Option<fn() -> bool>, fn() -> bool>;
    let _: for<'s> unsafe fn(&'s mut FullParams<'a, 'b>, *mut c_void) =
        <FullParams<'a, 'b>>::set_progress_callback_user_data;
    let _: for<'s> unsafe fn(&'s mut FullParams<'a, 'b>, WhisperStartEncoderCallback) =
        <FullParams<'a, 'b>>::set_start_encoder_callback;
    let _: for<'s> unsafe fn(&'s mut FullParams<'a, 'b>, *mut c_void) =
        <FullParams<'a, 'b>>::set_start_encoder_callback_user_data;
    let _: for<'s> unsafe fn(&'s mut FullParams<'a, 'b>, WhisperLogitsFilterCallback) =
        <FullParams<'a, 'b>>::set_filter_logits_callback;
    let _: for<'s> unsafe fn(&'s mut FullParams<'a, 'b>, *mut c_void) =
        <FullParams<'a, 'b>>::set_filter_logits_callback_user_data;
    let _: for<'s> unsafe fn(&'s mut FullParams<'a, 'b>, WhisperAbortCallback) =
        <FullParams<'a, 'b>>::set_abort_callback;
    let _: for<'s> unsafe fn(&'s mut FullParams<'a, 'b>, *mut c_void) =
        <FullParams<'a, 'b>>::set_abort_callback_user_data;
    let _: for<'s> fn(&'s mut FullParams<'a, 'b>, Option<&[WhisperGrammarElement]>) =
        <FullParams<'a, 'b>>::set_grammar;
    let _: for<'s> fn(&'s mut FullParams<'a, 'b>, usize) = <FullParams<'a, 'b>>::set_start_rule;
    let _: for<'s> fn(&'s mut FullParams<'a, 'b>, f32) = <FullParams<'a, 'b>>::set_grammar_penalty;
    let _: for<'s> fn(&'s mut FullParams<'a, 'b>, &str) = <FullParams<'a, 'b>>::set_initial_prompt;
    let _: for<'s> fn(&'s mut FullParams<'a, 'b>, bool) = <FullParams<'a, 'b>>::enable_vad;
    let _: for<'s> fn(&'s mut FullParams<'a, 'b>, Option<&str>) =
        <FullParams<'a, 'b>>::set_vad_model_path;
    let _: for<'s> fn(&'s mut FullParams<'a, 'b>, WhisperVadParams) =
        <FullParams<'a, 'b>>::set_vad_params;
}

#[allow(dead_code)]
fn methods_of_whisper_grammar_element() {
    let _: fn(WhisperGrammarElementType, u32) -> WhisperGrammarElement =
        <WhisperGrammarElement>::new;
    let _: fn(WhisperGrammarElement) -> sys::whisper_grammar_element =
        <WhisperGrammarElement>::to_c_type;
}

#[allow(dead_code)]
fn methods_of_whisper_vad_params() {
    let _: fn() -> WhisperVadParams = <WhisperVadParams>::new;
    let _: fn(&mut WhisperVadParams, f32) = <WhisperVadParams>::set_threshold;
    let _: fn(&mut WhisperVadParams, c_int) = <WhisperVadParams>::set_min_speech_duration;
    let _: fn(&mut WhisperVadParams, c_int) = <WhisperVadParams>::set_min_silence_duration;
    let _: fn(&mut WhisperVadParams, f32) = <WhisperVadParams>::set_max_speech_duration;
    let _: fn(&mut WhisperVadParams, c_int) = <WhisperVadParams>::set_speech_pad;
    let _: fn(&mut WhisperVadParams, f32) = <WhisperVadParams>::set_samples_overlap;
}

#[allow(dead_code)]
fn methods_of_whisper_vad_context_params() {
    let _: fn() -> WhisperVadContextParams = <WhisperVadContextParams>::new;
    let _: fn(&mut WhisperVadContextParams, c_int) = <WhisperVadContextParams>::set_n_threads;
    let _: fn(&mut WhisperVadContextParams, bool) = <WhisperVadContextParams>::set_use_gpu;
    let _: fn(&mut WhisperVadContextParams, c_int) = <WhisperVadContextParams>::set_gpu_device;
}

#[allow(dead_code)]
fn methods_of_whisper_vad_context() {
    let _: fn(&str, WhisperVadContextParams) -> Result<WhisperVadContext, WhisperError> =
        <WhisperVadContext>::new;
    let _: fn(&mut WhisperVadContext, &[f32]) -> Result<(), WhisperError> =
        <WhisperVadContext>::detect_speech;
    let _: fn(&WhisperVadContext) -> &[f32] = <WhisperVadContext>::probabilities;
    let _: fn(
        &mut WhisperVadContext,
        WhisperVadParams,
    ) -> Result<WhisperVadSegments, WhisperError> =
        <WhisperVadContext>::segments_from_probabilities;
    let _: fn(
        &mut WhisperVadContext,
        WhisperVadParams,
        &[f32],
    ) -> Result<WhisperVadSegments, WhisperError> = <WhisperVadContext>::segments_from_samples;
}

#[allow(dead_code)]
fn methods_of_whisper_vad_segments() {
    let _: fn(&WhisperVadSegments) -> c_int = <WhisperVadSegments>::num_segments;
    let _: fn(&WhisperVadSegments, c_int) -> bool = <WhisperVadSegments>::index_in_bounds;
    let _: fn(&WhisperVadSegments, c_int) -> Option<f32> =
        <WhisperVadSegments>::get_segment_start_timestamp;
    let _: fn(&WhisperVadSegments, c_int) -> Option<f32> =
        <WhisperVadSegments>::get_segment_end_timestamp;
    let _: fn(&WhisperVadSegments, c_int) -> Option<WhisperVadSegment> =
        <WhisperVadSegments>::get_segment;
}

// ---- free functions, aliases, the static ----

#[allow(dead_code)]
fn free_functions() {
    let _: fn() = install_logging_hooks;
    let _: fn(&str) -> Option<c_int> = get_lang_id;
    let _: fn() -> i32 = get_lang_max_id;
    let _: fn(i32) -> Option<&'static str> = get_lang_str;
    let _: fn(i32) -> Option<&'static str> = get_lang_str_full;
    let _: unsafe fn(WhisperLogCallback, *mut c_void) = set_log_callback;
    let _: fn() -> &'static str = get_whisper_version;
    let _: fn() -> &'static str = print_system_info;
    let _: fn(&[i16], &mut [f32]) -> Result<(), WhisperError> = convert_integer_to_float_audio;
    let _: fn(&[f32], &mut [f32]) -> Result<(), WhisperError> = convert_stereo_to_mono_audio;
    let _: &'static str = WHISPER_CPP_VERSION;
}

/// Each alias names exactly the raw type of the specification.
#[allow(dead_code)]
fn aliases(
    a: WhisperSysContext,
    b: WhisperSysState,
    c: WhisperTokenData,
    d: WhisperTokenId,
    e: WhisperNewSegmentCallback,
    f: WhisperStartEncoderCallback,
    g: WhisperProgressCallback,
    h: WhisperLogitsFilterCallback,
    i: WhisperAbortCallback,
    j: WhisperLogCallback,
    k: DtwAhead,
) {
    let _: sys::whisper_context = a;
    let _: sys::whisper_state = b;
    let _: sys::whisper_token_data = c;
    let _: i32 = d;
    let _: Option<
        unsafe extern "C" fn(*mut WhisperSysContext, *mut WhisperSysState, c_int, *mut c_void),
    > = e;
    let _: Option<
        unsafe extern "C" fn(*mut WhisperSysContext, *mut WhisperSysState, *mut c_void) -> bool,
    > = f;
    let _: Option<
        unsafe extern "C" fn(*mut WhisperSysContext, *mut WhisperSysState, c_int, *mut c_void),
    > = g;
    let _: Option<
        unsafe extern "C" fn(
            *mut WhisperSysContext,
            *mut WhisperSysState,
            *const WhisperTokenData,
            c_int,
            *mut f32,
            *mut c_void,
        ),
    > = h;
    let _: Option<unsafe extern "C" fn(*mut c_void) -> bool> = i;
    let _: Option<unsafe extern "C" fn(sys::ggml_log_level, *const std::ffi::c_char, *mut c_void)> =
        j;
    let _: sys::whisper_ahead = k;
}

assert_impl!(WhisperSysContext: Debug, Copy, Clone);
assert_impl!(WhisperSysState: Debug, Copy, Clone);
assert_impl!(WhisperTokenData: Debug, Copy, Clone);
assert_impl!(DtwAhead: Debug, Copy, Clone);

// ---- public fields, variants and trait impls that code builds or matches ----

#[allow(dead_code)]
fn fields_and_variants(token: WhisperTokenData) {
    let _: (i32, i32, f32, f32, f32, f32, i64, i64, i64, f32) = (
        token.id,
        token.tid,
        token.p,
        token.plog,
        token.pt,
        token.ptsum,
        token.t0,
        token.t1,
        token.t_dtw,
        token.vlen,
    );
    let ahead = DtwAhead {
        n_text_layer: 1,
        n_head: 2,
    };
    let aheads = [ahead];
    let mode = DtwMode::Custom { aheads: &aheads };
    let params = WhisperContextParameters {
        use_gpu: false,
        flash_attn: false,
        gpu_device: 0,
        dtw_parameters: DtwParameters {
            mode,
            dtw_mem_size: 1,
        },
    };
    match params.dtw_parameters.mode {
        DtwMode::None
        | DtwMode::TopMost { n_top: _ }
        | DtwMode::Custom { aheads: _ }
        | DtwMode::ModelPreset { model_preset: _ } => {}
    }
    for preset in [
        DtwModelPreset::TinyEn,
        DtwModelPreset::Tiny,
        DtwModelPreset::BaseEn,
        DtwModelPreset::Base,
        DtwModelPreset::SmallEn,
        DtwModelPreset::Small,
        DtwModelPreset::MediumEn,
        DtwModelPreset::Medium,
        DtwModelPreset::LargeV1,
        DtwModelPreset::LargeV2,
        DtwModelPreset::LargeV3,
        DtwModelPreset::LargeV3Turbo,
    ] {
        let _ = DtwMode::ModelPreset {
            model_preset: preset,
        };
    }
    let _ = DtwMode::TopMost { n_top: 1 };
    match (SamplingStrategy::Greedy { best_of: 1 }) {
        SamplingStrategy::Greedy { best_of } => {
            let _: c_int = best_of;
        }
        SamplingStrategy::BeamSearch {
            beam_size,
            patience,
        } => {
            let _: (c_int, f32) = (beam_size, patience);
        }
    }
    let data = SegmentCallbackData {
        segment: 0,
        start_timestamp: 0,
        end_timestamp: 0,
        text: String::new(),
    };
    let _: (i32, i64, i64, String) = (
        data.segment,
        data.start_timestamp,
        data.end_timestamp,
        data.text,
    );
    let element = WhisperGrammarElement {
        element_type: WhisperGrammarElementType::Character,
        value: 97,
    };
    let _: sys::whisper_grammar_element = element.to_c_type();
    let _ = sys::whisper_grammar_element { type_: 0, value: 0 };
    let _: WhisperGrammarElementType = <WhisperGrammarElementType as From<u32>>::from(0);
    let _: sys::whisper_gretype = WhisperGrammarElementType::End.into();
    match WhisperGrammarElementType::End {
        WhisperGrammarElementType::End
        | WhisperGrammarElementType::Alternate
        | WhisperGrammarElementType::RuleReference
        | WhisperGrammarElementType::Character
        | WhisperGrammarElementType::NotCharacter
        | WhisperGrammarElementType::CharacterRangeUpper
        | WhisperGrammarElementType::CharacterAlternate => {}
    }
    let segment = WhisperVadSegment {
        start: 0.0,
        end: 1.0,
    };
    let WhisperVadSegment { start, end } = segment;
    let _: (f32, f32) = (start, end);
    let info = SystemInfo {
        avx: false,
        avx2: false,
        fma: false,
        f16c: false,
    };
    let _ = info;
    let _: GGMLLogLevel = <GGMLLogLevel as From<u32>>::from(0);
    match GGMLLogLevel::None {
        GGMLLogLevel::None
        | GGMLLogLevel::Info
        | GGMLLogLevel::Warn
        | GGMLLogLevel::Error
        | GGMLLogLevel::Debug
        | GGMLLogLevel::Cont => {}
        GGMLLogLevel::Unknown(level) => {
            let _: sys::ggml_log_level = level;
        }
    }
}

#[allow(dead_code)]
fn errors(e: WhisperError, bytes: &[u8]) {
    if let Err(utf8) = std::str::from_utf8(bytes) {
        let _: WhisperError = utf8.into();
    }
    let _: WhisperError = std::ffi::CString::new("a\0b").unwrap_err().into();
    match e {
        WhisperError::InitError
        | WhisperError::SpectrogramNotInitialized
        | WhisperError::EncodeNotComplete
        | WhisperError::DecodeNotComplete
        | WhisperError::UnableToCalculateSpectrogram
        | WhisperError::UnableToCalculateEvaluation
        | WhisperError::FailedToEncode
        | WhisperError::FailedToDecode
        | WhisperError::InvalidMelBands
        | WhisperError::InvalidThreadCount
        | WhisperError::NullPointer
        | WhisperError::InvalidText
        | WhisperError::FailedToCreateState
        | WhisperError::NoSamples => {}
        WhisperError::InvalidUtf8 {
            error_len,
            valid_up_to,
        } => {
            let _: (Option<usize>, usize) = (error_len, valid_up_to);
        }
        WhisperError::NullByteInString { idx } => {
            let _: usize = idx;
        }
        WhisperError::GenericError(code) => {
            let _: c_int = code;
        }
        WhisperError::InputOutputLengthMismatch {
            input_len,
            output_len,
        } => {
            let _: (usize, usize) = (input_len, output_len);
        }
        WhisperError::HalfSampleMissing(n) => {
            let _: usize = n;
        }
        // Added by whisper-steady (see COMPAT.md): a model refused before whisper.cpp reads it.
        WhisperError::InvalidModel(defect) => {
            let _: whisper_steady::ggml::ModelDefect = defect;
        }
    }
}

#[allow(dead_code)]
fn iterators(state: &WhisperState, segments: WhisperVadSegments) {
    let _: WhisperStateSegmentIterator<'_> = state.as_iter();
    for segment in state.as_iter() {
        let _: WhisperSegment<'_> = segment;
    }
    for segment in segments {
        let _: WhisperVadSegment = segment;
    }
}

#[test]
fn error_messages_match_whisper_rs() {
    let cases: [(WhisperError, &str); 6] = [
        (
            WhisperError::InitError,
            "Failed to create a new whisper context.",
        ),
        (WhisperError::NoSamples, "Input sample buffer was empty."),
        (
            WhisperError::GenericError(7),
            "Generic whisper error. Varies depending on the function. Error code: 7",
        ),
        (
            WhisperError::InvalidUtf8 {
                error_len: Some(1),
                valid_up_to: 3,
            },
            "Invalid UTF-8 detected in a string from Whisper. Index: 3, Length: 1.",
        ),
        (
            WhisperError::HalfSampleMissing(3),
            "Input slice was not an even number of samples, got 3, expected 4",
        ),
        (
            WhisperError::InputOutputLengthMismatch {
                input_len: 2,
                output_len: 1,
            },
            "Input and output slices were not the same length. Input: 2, Output: 1",
        ),
    ];
    for (error, message) in cases {
        assert_eq!(error.to_string(), message);
    }
}

#[test]
fn defaults_match_whisper_rs() {
    let params = WhisperContextParameters::default();
    assert_eq!(params.use_gpu, cfg!(feature = "_gpu"));
    assert!(!params.flash_attn);
    assert_eq!(params.gpu_device, 0);
    assert_eq!(params.dtw_parameters.dtw_mem_size, 128 * 1024 * 1024);
    assert!(matches!(params.dtw_parameters.mode, DtwMode::None));
    assert!(WhisperGrammarElementType::from(6u32) == WhisperGrammarElementType::CharacterAlternate);
    let result = std::panic::catch_unwind(|| WhisperGrammarElementType::from(7u32));
    assert!(
        result.is_err(),
        "values outside 0..=6 panic, as in whisper-rs"
    );
    assert_eq!(get_lang_id("de"), Some(2));
    assert_eq!(get_lang_id("klingon"), None);
    assert_eq!(get_lang_str(2), Some("de"));
    assert_eq!(get_lang_str_full(2), Some("german"));
    assert_eq!(get_lang_str(10_000), None);
    assert_eq!(get_lang_max_id(), 99);
    assert_eq!(WHISPER_CPP_VERSION, "1.8.3");
    assert!(print_system_info().contains("CPU"));
}

#[cfg(feature = "vulkan")]
mod vulkan_items {
    use super::*;
    assert_impl!(whisper_steady::vulkan::VKVram: Debug, Clone, Send, Sync);
    assert_impl!(whisper_steady::vulkan::VkDeviceInfo: Debug, Clone);
    assert_not_impl!(whisper_steady::vulkan::VkDeviceInfo: Send);
    assert_not_impl!(whisper_steady::vulkan::VkDeviceInfo: Sync);
    #[allow(dead_code)]
    fn items() {
        let _: fn() -> Vec<whisper_steady::vulkan::VkDeviceInfo> =
            whisper_steady::vulkan::list_devices;
        let v = whisper_steady::vulkan::VKVram { free: 0, total: 0 };
        let _ = whisper_steady::vulkan::VkDeviceInfo {
            id: 0,
            name: String::new(),
            vram: v,
            buf_type: std::ptr::null_mut(),
        };
    }
}

#[cfg(feature = "raw-api")]
#[allow(dead_code)]
fn raw_api() {
    let _: whisper_steady::whisper_rs_sys::whisper_token = 0;
    let _ = whisper_steady::whisper_rs_sys::whisper_sampling_strategy_WHISPER_SAMPLING_GREEDY;
}

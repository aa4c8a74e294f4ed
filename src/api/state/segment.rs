//! One segment of a transcription, and the iterator over them.

use std::borrow::Cow;
use std::ffi::{c_int, CStr};
use std::fmt;

use super::{WhisperState, WhisperToken};
use crate::sys;
use crate::WhisperError;

/// A segment returned by Whisper after running the transcription pipeline.
pub struct WhisperSegment<'a> {
    state: &'a WhisperState,
    index: c_int,
}

impl<'a> WhisperSegment<'a> {
    /// `index` must be in `0..state.full_n_segments()`.
    pub(super) fn new(state: &'a WhisperState, index: c_int) -> Self {
        WhisperSegment { state, index }
    }

    pub(super) fn state(&self) -> &'a WhisperState {
        self.state
    }

    /// Get the index of this segment.
    pub fn segment_index(&self) -> c_int {
        self.index
    }

    /// Get the start time of the specified segment, in centiseconds.
    pub fn start_timestamp(&self) -> i64 {
        // SAFETY: index in bounds; reads results.
        unsafe { sys::whisper_full_get_segment_t0_from_state(self.state.raw_state(), self.index) }
    }

    /// Get the end time of the specified segment, in centiseconds.
    pub fn end_timestamp(&self) -> i64 {
        // SAFETY: index in bounds; reads results.
        unsafe { sys::whisper_full_get_segment_t1_from_state(self.state.raw_state(), self.index) }
    }

    /// Get number of tokens in this segment.
    pub fn n_tokens(&self) -> c_int {
        // SAFETY: index in bounds; reads results.
        unsafe { sys::whisper_full_n_tokens_from_state(self.state.raw_state(), self.index) }
    }

    /// Get whether the next segment is predicted as a speaker turn.
    pub fn next_segment_speaker_turn(&self) -> bool {
        // SAFETY: index in bounds; reads results.
        unsafe {
            sys::whisper_full_get_segment_speaker_turn_next_from_state(
                self.state.raw_state(),
                self.index,
            )
        }
    }

    /// Get the no_speech probability for the specified segment.
    pub fn no_speech_probability(&self) -> f32 {
        // SAFETY: index in bounds; reads results.
        unsafe {
            sys::whisper_full_get_segment_no_speech_prob_from_state(
                self.state.raw_state(),
                self.index,
            )
        }
    }

    fn raw_text(&self) -> Result<&'a CStr, WhisperError> {
        // SAFETY: index in bounds; the text lives in the state's results, which only `&mut`
        // methods change, so it outlives the `&'a WhisperState` borrow.
        let ptr = unsafe {
            sys::whisper_full_get_segment_text_from_state(self.state.raw_state(), self.index)
        };
        if ptr.is_null() {
            return Err(WhisperError::NullPointer);
        }
        // SAFETY: non-null NUL-terminated string, see above.
        Ok(unsafe { CStr::from_ptr(ptr) })
    }

    /// Get the raw bytes of this segment.
    pub fn to_bytes(&self) -> Result<&'a [u8], WhisperError> {
        Ok(self.raw_text()?.to_bytes())
    }

    /// Get the text of this segment.
    pub fn to_str(&self) -> Result<&'a str, WhisperError> {
        Ok(self.raw_text()?.to_str()?)
    }

    /// Get the text of this segment, invalid UTF-8 replaced.
    pub fn to_str_lossy(&self) -> Result<Cow<'a, str>, WhisperError> {
        Ok(self.raw_text()?.to_string_lossy())
    }

    /// Get the token at the specified index. Returns `None` if out of bounds for this state.
    pub fn get_token(&self, token: c_int) -> Option<WhisperToken<'_, '_>> {
        (0..self.n_tokens())
            .contains(&token)
            .then(|| WhisperToken::new(self, token))
    }

    /// The same as [`Self::get_token`] but without returning an `Option`.
    ///
    /// # Safety
    /// Kept `unsafe` for compatibility; the index is still checked.
    ///
    /// # Panics
    /// If the index is out of bounds.
    pub unsafe fn get_token_unchecked(&self, token: c_int) -> WhisperToken<'_, '_> {
        self.get_token(token)
            .unwrap_or_else(|| panic!("token index {token} out of bounds"))
    }
}

impl fmt::Display for WhisperSegment<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.to_str_lossy() {
            Ok(text) => f.write_str(&text),
            Err(_) => Ok(()),
        }
    }
}

impl fmt::Debug for WhisperSegment<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("WhisperSegment")
            .field("segment_index", &self.index)
            .field("start_timestamp", &self.start_timestamp())
            .field("end_timestamp", &self.end_timestamp())
            .field("n_tokens", &self.n_tokens())
            .field("text", &self.to_str_lossy().ok())
            .finish()
    }
}

/// An iterator over a [`WhisperState`]'s result.
#[derive(Debug)]
pub struct WhisperStateSegmentIterator<'a> {
    state: &'a WhisperState,
    next: c_int,
}

impl<'a> WhisperStateSegmentIterator<'a> {
    pub(super) fn new(state: &'a WhisperState) -> Self {
        WhisperStateSegmentIterator { state, next: 0 }
    }
}

impl<'a> Iterator for WhisperStateSegmentIterator<'a> {
    type Item = WhisperSegment<'a>;

    fn next(&mut self) -> Option<Self::Item> {
        let segment = self.state.get_segment(self.next)?;
        self.next += 1;
        Some(segment)
    }
}

//! One token of a segment.

use std::borrow::Cow;
use std::ffi::{c_int, CStr};
use std::fmt;

use super::WhisperSegment;
use crate::sys;
use crate::{WhisperError, WhisperTokenData, WhisperTokenId};

/// A token of a [`WhisperSegment`].
pub struct WhisperToken<'a, 'b: 'a> {
    segment: &'a WhisperSegment<'b>,
    index: c_int,
}

impl<'a, 'b> WhisperToken<'a, 'b> {
    /// `index` must be in `0..segment.n_tokens()`.
    pub(super) fn new(segment: &'a WhisperSegment<'b>, index: c_int) -> Self {
        WhisperToken { segment, index }
    }

    fn state_ptr(&self) -> *mut sys::whisper_state {
        self.segment.state().raw_state()
    }

    /// Get the token ID of this token in its segment.
    pub fn token_id(&self) -> WhisperTokenId {
        // SAFETY: indices in bounds; reads results.
        unsafe {
            sys::whisper_full_get_token_id_from_state(
                self.state_ptr(),
                self.segment.segment_index(),
                self.index,
            )
        }
    }

    /// Get token data for this token in its segment.
    pub fn token_data(&self) -> WhisperTokenData {
        // SAFETY: indices in bounds; reads results.
        unsafe {
            sys::whisper_full_get_token_data_from_state(
                self.state_ptr(),
                self.segment.segment_index(),
                self.index,
            )
        }
    }

    /// Get the probability of this token in its segment.
    pub fn token_probability(&self) -> f32 {
        // SAFETY: indices in bounds; reads results.
        unsafe {
            sys::whisper_full_get_token_p_from_state(
                self.state_ptr(),
                self.segment.segment_index(),
                self.index,
            )
        }
    }

    fn raw_text(&self) -> Result<&'b CStr, WhisperError> {
        let state = self.segment.state();
        // SAFETY: indices in bounds; the text is in the vocabulary, which lives as long as the
        // model that the state (borrowed for 'b) keeps alive.
        let ptr = unsafe {
            sys::whisper_full_get_token_text_from_state(
                state.raw_ctx(),
                state.raw_state(),
                self.segment.segment_index(),
                self.index,
            )
        };
        if ptr.is_null() {
            return Err(WhisperError::NullPointer);
        }
        // SAFETY: non-null NUL-terminated string, see above.
        Ok(unsafe { CStr::from_ptr(ptr) })
    }

    /// Get the raw bytes of this token.
    pub fn to_bytes(&self) -> Result<&'b [u8], WhisperError> {
        Ok(self.raw_text()?.to_bytes())
    }

    /// Get the text of this token.
    pub fn to_str(&self) -> Result<&'b str, WhisperError> {
        Ok(self.raw_text()?.to_str()?)
    }

    /// Get the text of this token, invalid UTF-8 replaced.
    pub fn to_str_lossy(&self) -> Result<Cow<'b, str>, WhisperError> {
        Ok(self.raw_text()?.to_string_lossy())
    }
}

impl fmt::Display for WhisperToken<'_, '_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.to_str_lossy() {
            Ok(text) => f.write_str(&text),
            Err(_) => Ok(()),
        }
    }
}

impl fmt::Debug for WhisperToken<'_, '_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("WhisperToken")
            .field("segment_index", &self.segment.segment_index())
            .field("token_index", &self.index)
            .field("token_data", &self.token_data())
            .field("text", &self.to_str_lossy().ok())
            .finish()
    }
}

//! whisper.cpp's voice activity detection, standalone.

use std::ffi::{c_int, CString};

use crate::sys;
use crate::WhisperError;

/// Configuration for Voice Activity Detection in `whisper.cpp`.
#[derive(Copy, Clone, Debug)]
pub struct WhisperVadParams {
    params: sys::whisper_vad_params,
}

impl Default for WhisperVadParams {
    fn default() -> Self {
        Self::new()
    }
}

impl WhisperVadParams {
    /// whisper.cpp's defaults: threshold 0.5, min speech 250 ms, min silence 100 ms, max speech
    /// unlimited, padding 30 ms, overlap 0.1 s.
    pub fn new() -> Self {
        // SAFETY: returns a plain struct by value.
        WhisperVadParams {
            params: unsafe { sys::whisper_vad_default_params() },
        }
    }

    /// Set the probability threshold to consider as speech.
    pub fn set_threshold(&mut self, threshold: f32) {
        self.params.threshold = threshold;
    }

    /// Set the minimum duration for a valid speech segment, in milliseconds.
    pub fn set_min_speech_duration(&mut self, min_speech_duration: c_int) {
        self.params.min_speech_duration_ms = min_speech_duration;
    }

    /// Set the minimum silence duration to consider speech as ended, in milliseconds.
    pub fn set_min_silence_duration(&mut self, min_silence_duration: c_int) {
        self.params.min_silence_duration_ms = min_silence_duration;
    }

    /// Set the maximum duration of a speech segment before forcing a new segment, in seconds.
    pub fn set_max_speech_duration(&mut self, max_speech_duration: f32) {
        self.params.max_speech_duration_s = max_speech_duration;
    }

    /// Set the padding added before and after speech segments, in milliseconds.
    pub fn set_speech_pad(&mut self, speech_pad: c_int) {
        self.params.speech_pad_ms = speech_pad;
    }

    /// Set the audio extended from each speech segment into the next one, in seconds.
    pub fn set_samples_overlap(&mut self, samples_overlap: f32) {
        self.params.samples_overlap = samples_overlap;
    }

    pub(crate) fn into_inner(self) -> sys::whisper_vad_params {
        self.params
    }
}

/// Whisper VAD context parameters
#[derive(Copy, Clone, Debug)]
pub struct WhisperVadContextParams {
    params: sys::whisper_vad_context_params,
}

impl Default for WhisperVadContextParams {
    fn default() -> Self {
        Self::new()
    }
}

impl WhisperVadContextParams {
    /// whisper.cpp's defaults: 4 threads, CPU, device 0.
    pub fn new() -> Self {
        // SAFETY: returns a plain struct by value.
        WhisperVadContextParams {
            params: unsafe { sys::whisper_vad_default_context_params() },
        }
    }

    /// Set the number of threads to use for processing
    pub fn set_n_threads(&mut self, n_threads: c_int) {
        self.params.n_threads = n_threads;
    }

    /// Enable the GPU for VAD?
    pub fn set_use_gpu(&mut self, use_gpu: bool) {
        self.params.use_gpu = use_gpu;
    }

    /// The CUDA device to use if `use_gpu` is true
    pub fn set_gpu_device(&mut self, gpu_device: c_int) {
        self.params.gpu_device = gpu_device;
    }
}

/// A handle to use `whisper.cpp`'s built in VAD standalone.
#[derive(Debug)]
pub struct WhisperVadContext {
    ptr: *mut sys::whisper_vad_context,
}

// SAFETY: the VAD context has no thread affinity; mutation goes through `&mut self`, and
// `probabilities(&self)` only reads.
unsafe impl Send for WhisperVadContext {}
// SAFETY: as above.
unsafe impl Sync for WhisperVadContext {}

impl Drop for WhisperVadContext {
    fn drop(&mut self) {
        // SAFETY: ptr came from whisper_vad_init_from_file_with_params and is freed once.
        unsafe { sys::whisper_vad_free(self.ptr) }
    }
}

impl WhisperVadContext {
    /// Load a VAD model (e.g. Silero in ggml format). A missing or unreadable model is
    /// [`WhisperError::InitError`]; a NUL byte in the path is
    /// [`WhisperError::NullByteInString`].
    pub fn new(model_path: &str, params: WhisperVadContextParams) -> Result<Self, WhisperError> {
        let path = CString::new(model_path)?;
        if !std::path::Path::new(model_path).is_file() {
            return Err(WhisperError::InitError);
        }
        // SAFETY: valid path and parameters; whisper.cpp copies what it keeps.
        let ptr =
            unsafe { sys::whisper_vad_init_from_file_with_params(path.as_ptr(), params.params) };
        if ptr.is_null() {
            return Err(WhisperError::InitError);
        }
        Ok(WhisperVadContext { ptr })
    }

    /// Detect speech in `samples` (16 kHz mono). Call [`Self::segments_from_probabilities`] to
    /// finish the pipeline.
    pub fn detect_speech(&mut self, samples: &[f32]) -> Result<(), WhisperError> {
        if samples.is_empty() {
            return Err(WhisperError::NoSamples);
        }
        let n = c_int::try_from(samples.len()).map_err(|_| WhisperError::GenericError(-1))?;
        // SAFETY: valid slice and exclusive context.
        if unsafe { sys::whisper_vad_detect_speech(self.ptr, samples.as_ptr(), n) } {
            Ok(())
        } else {
            Err(WhisperError::GenericError(-1))
        }
    }

    /// Get an array of probabilities, one per frame of the last [`Self::detect_speech`].
    pub fn probabilities(&self) -> &[f32] {
        // SAFETY: reads the probabilities owned by the context; only `&mut self` changes them.
        unsafe {
            let n = sys::whisper_vad_n_probs(self.ptr);
            let ptr = sys::whisper_vad_probs(self.ptr);
            if ptr.is_null() || n <= 0 {
                return &[];
            }
            std::slice::from_raw_parts(ptr, n as usize)
        }
    }

    /// Finish running the VAD pipeline and return segment details.
    pub fn segments_from_probabilities(
        &mut self,
        params: WhisperVadParams,
    ) -> Result<WhisperVadSegments, WhisperError> {
        // SAFETY: exclusive context.
        let ptr = unsafe { sys::whisper_vad_segments_from_probs(self.ptr, params.params) };
        WhisperVadSegments::from_raw(ptr)
    }

    /// Run the entire VAD pipeline.
    pub fn segments_from_samples(
        &mut self,
        params: WhisperVadParams,
        samples: &[f32],
    ) -> Result<WhisperVadSegments, WhisperError> {
        if samples.is_empty() {
            return Err(WhisperError::NoSamples);
        }
        let n = c_int::try_from(samples.len()).map_err(|_| WhisperError::GenericError(-1))?;
        // SAFETY: valid slice and exclusive context.
        let ptr = unsafe {
            sys::whisper_vad_segments_from_samples(self.ptr, params.params, samples.as_ptr(), n)
        };
        WhisperVadSegments::from_raw(ptr)
    }
}

/// You can obtain this struct from a [`WhisperVadContext`].
#[derive(Debug)]
pub struct WhisperVadSegments {
    ptr: *mut sys::whisper_vad_segments,
    next: c_int,
}

impl Drop for WhisperVadSegments {
    fn drop(&mut self) {
        // SAFETY: ptr came from a whisper_vad_segments_* call and is freed once.
        unsafe { sys::whisper_vad_free_segments(self.ptr) }
    }
}

impl WhisperVadSegments {
    fn from_raw(ptr: *mut sys::whisper_vad_segments) -> Result<Self, WhisperError> {
        if ptr.is_null() {
            return Err(WhisperError::NullPointer);
        }
        Ok(WhisperVadSegments { ptr, next: 0 })
    }

    /// Number of speech segments.
    pub fn num_segments(&self) -> c_int {
        // SAFETY: reads the owned segment list.
        unsafe { sys::whisper_vad_segments_n_segments(self.ptr) }
    }

    /// Whether `idx` names a segment.
    pub fn index_in_bounds(&self, idx: c_int) -> bool {
        (0..self.num_segments()).contains(&idx)
    }

    /// Return the start timestamp of this segment in centiseconds (10s of milliseconds).
    pub fn get_segment_start_timestamp(&self, idx: c_int) -> Option<f32> {
        // SAFETY: index checked.
        self.index_in_bounds(idx)
            .then(|| unsafe { sys::whisper_vad_segments_get_segment_t0(self.ptr, idx) })
    }

    /// Return the end timestamp of this segment in centiseconds (10s of milliseconds).
    pub fn get_segment_end_timestamp(&self, idx: c_int) -> Option<f32> {
        // SAFETY: index checked.
        self.index_in_bounds(idx)
            .then(|| unsafe { sys::whisper_vad_segments_get_segment_t1(self.ptr, idx) })
    }

    /// The segment at `idx`.
    pub fn get_segment(&self, idx: c_int) -> Option<WhisperVadSegment> {
        Some(WhisperVadSegment {
            start: self.get_segment_start_timestamp(idx)?,
            end: self.get_segment_end_timestamp(idx)?,
        })
    }
}

impl Iterator for WhisperVadSegments {
    type Item = WhisperVadSegment;

    fn next(&mut self) -> Option<Self::Item> {
        let segment = self.get_segment(self.next)?;
        self.next += 1;
        Some(segment)
    }
}

/// A speech segment, in centiseconds.
#[derive(Copy, Clone, Debug)]
pub struct WhisperVadSegment {
    /// Start, in centiseconds.
    pub start: f32,
    /// End, in centiseconds.
    pub end: f32,
}

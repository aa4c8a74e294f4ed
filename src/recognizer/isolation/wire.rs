//! The protocol between a recognizer and its worker processes, over a Unix socket: frames of a
//! kind byte, a length (8 bytes, little-endian) and the payload. Messages are JSON
//! (`serde_json`, already in every binary that serves); a request's audio follows its message
//! as a frame of raw little-endian `f32` samples, so that 10 minutes of audio is 38 MB copied,
//! not 100 MB of text parsed. The framing is these 40 lines of blocking std I/O: the worker
//! threads are not async, and a framing crate would bring an async runtime into the library.

use std::io::{self, Read, Write};
use std::path::PathBuf;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::recognizer::{DecodedSegment, RecognizeOptions, Transcript};

/// A JSON message.
const JSON: u8 = 1;
/// Audio samples.
const AUDIO: u8 = 2;

/// The largest JSON message (a transcript of hours of audio with every token is well under).
const MAX_JSON: u64 = 256 << 20;
/// The largest audio frame: whisper.cpp's limit in samples, 4 bytes each.
const MAX_AUDIO: u64 = (i32::MAX as u64) * 4;

/// What the worker process needs to start: a one-lane recognizer's configuration.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct WorkerConfig {
    pub model_path: PathBuf,
    /// `None`: the CPU; `Some(device)`: that GPU.
    pub gpu: Option<i32>,
    pub flash_attn: bool,
    pub fit_audio_ctx: bool,
    pub vad_model: Option<PathBuf>,
    pub chunk_states: usize,
    pub long_audio: crate::recognizer::LongAudio,
    pub workers: usize,
    pub threads_per_worker: usize,
    pub idle_trim_after: Option<Duration>,
    pub detect_languages: Vec<String>,
}

/// From the recognizer to its worker process.
#[derive(Debug, Serialize, Deserialize)]
pub(super) enum ToWorker {
    /// The first message.
    Start(WorkerConfig),
    /// A request; its audio comes next, in an audio frame.
    Request {
        id: u64,
        options: RecognizeOptions,
        /// Whether to send its segments as they are decoded.
        stream: bool,
        /// Test hook (feature `fault-injection`): abort the process inside whisper.cpp.
        abort_inside: bool,
    },
    /// Stop a request (its caller cancelled it).
    Cancel { id: u64 },
    /// Give the CUDA pools' free memory back ([`Recognizer::trim`](crate::recognizer::Recognizer::trim));
    /// answered [`FromWorker::Trimmed`].
    Trim { id: u64 },
    /// Its CUDA pools' statistics, for the health report; answered [`FromWorker::PoolStats`].
    PoolStats { id: u64 },
}

/// From a worker process to its recognizer.
#[derive(Debug, Serialize, Deserialize)]
pub(super) enum FromWorker {
    /// The first answer, before the model loads: this program is a worker.
    Hello { pid: u32 },
    /// The model is loaded and the workers wait.
    Ready { pid: u32 },
    /// The recognizer could not start (the model does not load on that device, ...).
    StartFailed { reason: String },
    /// A segment of request `id`, as soon as it is decoded.
    Segment { id: u64, segment: DecodedSegment },
    /// Request `id` is done.
    Done { id: u64, transcript: Transcript },
    /// Request `id` failed.
    Error { id: u64, error: WireError },
    /// The answer to [`ToWorker::Trim`] `id`.
    Trimmed {
        id: u64,
        report: crate::cuda::TrimReport,
    },
    /// The answer to [`ToWorker::PoolStats`] `id`.
    PoolStats {
        id: u64,
        stats: crate::cuda::PoolStats,
    },
}

/// A request's failure, as the worker's recognizer reported it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) enum WireError {
    Cancelled,
    DeadlineExceeded,
    InvalidAudio(String),
    InvalidOptions(String),
    /// whisper.cpp's error code, when it was one (`GenericError`), and its text.
    Whisper {
        code: Option<i32>,
        text: String,
    },
    /// Anything else, as text.
    Other(String),
}

/// One frame read: a message or audio.
pub(super) enum Frame<M> {
    Message(M),
    Audio(Vec<f32>),
}

/// Writes a message.
pub(super) fn send<M: Serialize>(to: &mut impl Write, message: &M) -> io::Result<()> {
    let body = serde_json::to_vec(message).map_err(io::Error::other)?;
    to.write_all(&[JSON])?;
    to.write_all(&(body.len() as u64).to_le_bytes())?;
    to.write_all(&body)?;
    to.flush()
}

/// Writes audio samples.
pub(super) fn send_audio(to: &mut impl Write, samples: &[f32]) -> io::Result<()> {
    to.write_all(&[AUDIO])?;
    to.write_all(&((samples.len() * 4) as u64).to_le_bytes())?;
    // In blocks, so that neither a second copy of long audio nor a write per sample is made.
    let mut block = Vec::with_capacity(64 << 10);
    for chunk in samples.chunks(16 << 10) {
        block.clear();
        block.extend(chunk.iter().flat_map(|s| s.to_le_bytes()));
        to.write_all(&block)?;
    }
    to.flush()
}

/// Reads the next frame; `Ok(None)` at a clean end of the stream.
pub(super) fn receive<M: for<'de> Deserialize<'de>>(
    from: &mut impl Read,
) -> io::Result<Option<Frame<M>>> {
    let mut head = [0u8; 9];
    match from.read_exact(&mut head[..1]) {
        Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => return Ok(None),
        other => other?,
    }
    from.read_exact(&mut head[1..])?;
    let len = u64::from_le_bytes(head[1..].try_into().expect("8 bytes"));
    let bad = |why: String| Err(io::Error::new(io::ErrorKind::InvalidData, why));
    match head[0] {
        JSON if len <= MAX_JSON => {
            let mut body = vec![0; len as usize];
            from.read_exact(&mut body)?;
            serde_json::from_slice(&body)
                .map(|m| Some(Frame::Message(m)))
                .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))
        }
        AUDIO if len <= MAX_AUDIO && len % 4 == 0 => {
            let mut bytes = vec![0; len as usize];
            from.read_exact(&mut bytes)?;
            Ok(Some(Frame::Audio(
                bytes
                    .chunks_exact(4)
                    .map(|b| f32::from_le_bytes(b.try_into().expect("4 bytes")))
                    .collect(),
            )))
        }
        kind => bad(format!("bad frame: kind {kind}, {len} bytes")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_and_audio_go_through_and_a_bad_frame_is_refused() {
        let mut buf = Vec::new();
        send(&mut buf, &ToWorker::Cancel { id: 7 }).unwrap();
        send_audio(&mut buf, &[0.5, -1.0, f32::MIN_POSITIVE]).unwrap();
        let mut from = buf.as_slice();
        match receive::<ToWorker>(&mut from).unwrap() {
            Some(Frame::Message(ToWorker::Cancel { id: 7 })) => {}
            _ => panic!("not the cancel"),
        }
        match receive::<ToWorker>(&mut from).unwrap() {
            Some(Frame::Audio(a)) => assert_eq!(a, [0.5, -1.0, f32::MIN_POSITIVE]),
            _ => panic!("not the audio"),
        }
        assert!(receive::<ToWorker>(&mut from).unwrap().is_none());
        let huge = [[JSON].as_slice(), &u64::MAX.to_le_bytes()].concat();
        assert!(receive::<ToWorker>(&mut huge.as_slice()).is_err());
        let odd = [[AUDIO].as_slice(), &3u64.to_le_bytes(), &[0, 0, 0]].concat();
        assert!(receive::<ToWorker>(&mut odd.as_slice()).is_err());
    }
}

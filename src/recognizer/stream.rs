//! Segments delivered as they are decoded ([`Recognizer::submit_streaming`](super::Recognizer::submit_streaming)).

use std::time::Duration;

/// One segment, delivered as soon as whisper.cpp has decoded it, before the request is done.
/// The [`Transcript`](super::Transcript) the ticket gives at the end is the authoritative result
/// (with tokens and probabilities); these are for showing text early.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
#[non_exhaustive]
pub struct DecodedSegment {
    /// Its position in the transcript: 0, 1, 2, ... without gaps or repeats.
    pub index: usize,
    /// Start, from the beginning of the audio.
    pub start: Duration,
    /// End, from the beginning of the audio.
    pub end: Duration,
    /// The text, as whisper produced it (usually with a leading space).
    pub text: String,
}

/// What receives a request's segments.
pub type SegmentFn = dyn FnMut(DecodedSegment) + Send;

/// Hands segments to the caller's function in order, each once: an attempt offers its segments
/// numbered from 0, and a retry after a failover skips the ones an earlier attempt delivered.
pub(crate) struct Emitter {
    deliver: Box<SegmentFn>,
    delivered: usize,
}

impl Emitter {
    pub(crate) fn new(deliver: Box<SegmentFn>) -> Self {
        Emitter {
            deliver,
            delivered: 0,
        }
    }

    /// Drops the caller's function (and a channel sender it holds): nothing more is delivered.
    pub(crate) fn close(&mut self) {
        self.deliver = Box::new(|_| {});
        self.delivered = usize::MAX;
    }

    /// Offers the attempt's `index`-th segment (times from the start of the recording).
    pub(crate) fn offer(&mut self, index: usize, start: Duration, end: Duration, text: String) {
        if index != self.delivered {
            return;
        }
        self.delivered += 1;
        (self.deliver)(DecodedSegment {
            index,
            start,
            end,
            text,
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::{Arc, Mutex};

    #[test]
    fn a_retry_delivers_only_what_the_first_attempt_did_not() {
        let got = Arc::new(Mutex::new(Vec::new()));
        let sink = Arc::clone(&got);
        let mut e = Emitter::new(Box::new(move |s: DecodedSegment| {
            sink.lock().unwrap().push((s.index, s.text, s.start))
        }));
        let cs = super::super::transcript::centis;
        e.offer(0, cs(0), cs(150), "a".into());
        e.offer(1, cs(150), cs(300), "b".into());
        // the first attempt failed; the retry starts over
        for (i, t) in ["a'", "b'", "c", "d"].iter().enumerate() {
            e.offer(
                i,
                cs(150 * i as i64),
                cs(150 * (i as i64 + 1)),
                t.to_string(),
            );
        }
        e.offer(7, cs(0), cs(0), "out of order".into());
        let got = got.lock().unwrap();
        let texts: Vec<_> = got.iter().map(|g| (g.0, g.1.as_str())).collect();
        assert_eq!(texts, [(0, "a"), (1, "b"), (2, "c"), (3, "d")]);
        assert_eq!(got[2].2, Duration::from_millis(3000));
    }
}

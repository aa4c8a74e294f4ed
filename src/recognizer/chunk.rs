//! Long audio in pieces: the speech that Silero VAD finds, with pauses shortened and silence
//! left out, packed into chunks that each fit one encoder window, cut at the widest pauses;
//! the chunks are transcribed on their own (several at once when the worker may use more
//! states) and their times mapped back to the recording.
//!
//! Why it is faster than whisper.cpp's own 30 s windows: the encoder, two thirds of the time on
//! the CPU (6.5 s of 9.8 s for a 79 s talk, tiny.en on 2 cores), runs once per window whatever
//! the window holds, and silence fills windows like speech. Packing only the speech
//! takes fewer windows: 2 instead of 3 for a 79 s talk with pauses of 1-3 s
//! (bench/RESULTS.md, "Long audio").

/// Samples in whisper's time unit, the centisecond.
pub(crate) const SAMPLES_PER_CENTISECOND: usize = crate::audio::WHISPER_SAMPLE_RATE as usize / 100;

/// A stretch of a recording, in samples: `start..end`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Span {
    pub(crate) start: usize,
    pub(crate) end: usize,
}

/// A piece of a long recording transcribed on its own: stretches of speech, each with a little
/// of the silence around it, played one after the other (longer pauses shortened).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Chunk {
    /// The stretches of the recording it holds, in order, not touching.
    pub(crate) pieces: Vec<Span>,
}

impl Chunk {
    /// Its samples: the pieces, one after the other.
    pub(crate) fn samples(&self, recording: &[f32]) -> Vec<f32> {
        let mut out = Vec::with_capacity(self.len());
        for piece in &self.pieces {
            out.extend_from_slice(&recording[piece.start..piece.end]);
        }
        out
    }

    /// How many samples it holds.
    pub(crate) fn len(&self) -> usize {
        self.pieces.iter().map(|p| p.end - p.start).sum()
    }

    /// A time in the chunk, in centiseconds, as a time in the recording (a time past the end is
    /// the end of the last piece).
    pub(crate) fn recording_centis(&self, chunk_centis: i64) -> i64 {
        let mut at = usize::try_from(chunk_centis)
            .unwrap_or(0)
            .saturating_mul(SAMPLES_PER_CENTISECOND);
        for piece in &self.pieces {
            let len = piece.end - piece.start;
            if at < len {
                return ((piece.start + at) / SAMPLES_PER_CENTISECOND) as i64;
            }
            at -= len;
        }
        self.pieces
            .last()
            .map_or(0, |p| (p.end / SAMPLES_PER_CENTISECOND) as i64)
    }
}

/// Speech found by the VAD, in chunks of at most `max` samples where silences allow.
///
/// `speech` holds the VAD's speech spans of a recording of `len` samples, sorted and not
/// overlapping. Each span keeps up to `pad` samples of the silence on either side (at most half
/// of the silence it shares with a neighbour), so that no word is clipped and sentences stay
/// apart; the rest of each pause is left out. The plan has as few chunks as possible and, among
/// plans with that many, the one whose narrowest cut pause is widest. A span longer than `max`
/// becomes a chunk of its own: whisper's own windows then take it in turn.
pub(crate) fn plan(speech: &[Span], len: usize, max: usize, pad: usize) -> Vec<Chunk> {
    let n = speech.len();
    if n == 0 {
        return Vec::new();
    }
    let gap_before = |k: usize| {
        if k == 0 {
            usize::MAX
        } else {
            speech[k].start.saturating_sub(speech[k - 1].end)
        }
    };
    let padded: Vec<Span> = (0..n)
        .map(|k| {
            let before = if k == 0 {
                speech[0].start
            } else {
                gap_before(k) / 2
            };
            let after = if k + 1 == n {
                len.saturating_sub(speech[k].end)
            } else {
                gap_before(k + 1) / 2
            };
            Span {
                start: speech[k].start - pad.min(before),
                end: (speech[k].end + pad.min(after)).min(len),
            }
        })
        .collect();
    // best[i]: the best plan of speech[..i] as (chunks, narrowest cut pause, first span of its
    // last chunk).
    let mut best: Vec<(usize, usize, usize)> = vec![(0, usize::MAX, 0); n + 1];
    for i in 1..=n {
        let mut choice: Option<(usize, usize, usize)> = None;
        let mut samples = 0;
        for j in (0..i).rev() {
            samples += padded[j].end - padded[j].start;
            if samples > max && j + 1 < i {
                break; // taking more spans only lengthens the chunk
            }
            let (chunks, narrowest, _) = best[j];
            let candidate = (chunks + 1, narrowest.min(gap_before(j)), j);
            let better = match choice {
                None => true,
                Some((c, w, _)) => candidate.0 < c || (candidate.0 == c && candidate.1 > w),
            };
            if better {
                choice = Some(candidate);
            }
        }
        best[i] = choice.expect("a span always forms a chunk on its own");
    }
    let mut chunks = Vec::new();
    let mut i = n;
    while i > 0 {
        let j = best[i].2;
        let mut pieces: Vec<Span> = Vec::new();
        for span in &padded[j..i] {
            match pieces.last_mut() {
                Some(last) if last.end == span.start => last.end = span.end,
                _ => pieces.push(*span),
            }
        }
        chunks.push(Chunk { pieces });
        i = j;
    }
    chunks.reverse();
    chunks
}

#[cfg(test)]
mod tests {
    use super::*;

    const S: usize = crate::audio::WHISPER_SAMPLE_RATE as usize;

    fn span(a: f64, b: f64) -> Span {
        Span {
            start: (a * S as f64).round() as usize,
            end: (b * S as f64).round() as usize,
        }
    }

    fn pieces(chunks: &[Chunk]) -> Vec<Vec<Span>> {
        chunks.iter().map(|c| c.pieces.clone()).collect()
    }

    #[test]
    fn no_speech_gives_no_chunks() {
        assert!(plan(&[], 60 * S, 28 * S, S / 2).is_empty());
    }

    #[test]
    fn pauses_are_shortened_to_the_padding() {
        // A 0.6 s pause stays whole (each side keeps its half); a 3 s pause keeps 0.5 s a side.
        let chunks = plan(
            &[span(2.0, 5.0), span(5.6, 10.0), span(13.0, 20.0)],
            40 * S,
            28 * S,
            S / 2,
        );
        assert_eq!(
            pieces(&chunks),
            vec![vec![span(1.5, 10.5), span(12.5, 20.5)]]
        );
        let chunk = &chunks[0];
        assert_eq!(chunk.len(), 17 * S);
        // Chunk time 0 is 1.5 s; 9 s into the chunk is the second piece's start, 12.5 s.
        assert_eq!(chunk.recording_centis(0), 150);
        assert_eq!(chunk.recording_centis(899), 1049);
        assert_eq!(chunk.recording_centis(900), 1250);
        assert_eq!(chunk.recording_centis(1700), 2050);
        assert_eq!(chunk.recording_centis(5000), 2050);
        let audio: Vec<f32> = (0..40 * S).map(|i| i as f32).collect();
        let samples = chunk.samples(&audio);
        assert_eq!(samples.len(), 17 * S);
        assert_eq!(samples[9 * S], (12.5 * S as f64) as f32);
    }

    #[test]
    fn cuts_fall_in_the_widest_pauses_with_the_fewest_chunks() {
        // 3 x 10 s of speech with pauses of 0.4 s and 3 s: padded, 31 s in all, so two chunks;
        // both cuts give two, and the 3 s pause is the wider.
        let speech = [span(0.5, 10.5), span(10.9, 20.9), span(23.9, 33.9)];
        let chunks = plan(&speech, 35 * S, 28 * S, S / 2);
        assert_eq!(
            pieces(&chunks),
            vec![vec![span(0.0, 21.4)], vec![span(23.4, 34.4)]]
        );
    }

    #[test]
    fn chunks_never_overlap_and_hold_every_span_once() {
        let speech: Vec<Span> = (0..200)
            .map(|k| {
                let start = k as f64 * 8.0;
                span(start, start + 6.0 + (k % 5) as f64 * 0.2)
            })
            .collect();
        let len = speech.last().unwrap().end + 1000;
        let chunks = plan(&speech, len, 28 * S, S / 2);
        let all: Vec<Span> = chunks.iter().flat_map(|c| c.pieces.clone()).collect();
        for pair in all.windows(2) {
            assert!(pair[0].end <= pair[1].start, "{pair:?}");
        }
        for chunk in &chunks {
            assert!(chunk.len() <= 28 * S, "{chunk:?}");
        }
        assert!(all.last().unwrap().end <= len);
        for s in &speech {
            let holding = all
                .iter()
                .filter(|p| p.start <= s.start && s.end <= p.end)
                .count();
            assert_eq!(holding, 1, "{s:?}");
        }
        // Spans of 6.0-6.8 s at least 1.2 s apart, padded to 7.0-7.8 s: three fit in 28 s,
        // four never do.
        assert_eq!(chunks.len(), 67);
    }

    #[test]
    fn speech_longer_than_a_chunk_is_kept_whole() {
        let chunks = plan(&[span(1.0, 2.0), span(3.0, 63.0)], 70 * S, 28 * S, S / 2);
        assert_eq!(
            pieces(&chunks),
            vec![vec![span(0.5, 2.5)], vec![span(2.5, 63.5)]]
        );
    }
}

//! The transcript formats: console lines, plain text, SubRip (SRT), WebVTT and JSON.
//!
//! These are pure functions of owned [`Segment`]s, so they can be tested without a model.
//! Times are held in milliseconds: whisper.cpp's centiseconds times 10.

use serde::Serialize;

/// One token of a segment, copied out of whisper.cpp's results.
#[derive(Debug, Clone, PartialEq)]
pub struct Token {
    /// The token id in the model's vocabulary.
    pub id: i32,
    /// The token's text (often a word piece with its leading space); invalid UTF-8 replaced.
    pub text: String,
    /// The token's probability.
    pub p: f32,
    /// Start, in milliseconds; `None` when whisper.cpp did not compute it.
    pub t0_ms: Option<i64>,
    /// End, in milliseconds; `None` when whisper.cpp did not compute it.
    pub t1_ms: Option<i64>,
}

/// One segment of a transcript, copied out of whisper.cpp's results.
#[derive(Debug, Clone, PartialEq)]
pub struct Segment {
    /// Start, in milliseconds from the start of the audio.
    pub start_ms: i64,
    /// End, in milliseconds from the start of the audio.
    pub end_ms: i64,
    /// The text as whisper.cpp gives it (usually with a leading space); invalid UTF-8 replaced.
    pub text: String,
    /// The segment's text tokens (special and timestamp tokens left out).
    pub tokens: Vec<Token>,
}

/// Converts whisper.cpp's centiseconds into milliseconds.
pub fn centis_to_ms(centis: i64) -> i64 {
    centis.saturating_mul(10)
}

/// Formats `ms` as `hh:mm:ss` + `separator` + `mmm` (hours grow past two digits as needed;
/// negative times are shown as zero).
///
/// SRT uses `,` as the separator, WebVTT and the console `.`.
pub fn timestamp(ms: i64, separator: char) -> String {
    let ms = ms.max(0);
    let hours = ms / 3_600_000;
    let minutes = ms / 60_000 % 60;
    let seconds = ms / 1000 % 60;
    let millis = ms % 1000;
    format!("{hours:02}:{minutes:02}:{seconds:02}{separator}{millis:03}")
}

/// One line of the transcript as printed on stdout: `[start --> end] text`, or the text alone
/// without timestamps. The text is trimmed.
pub fn console_line(start_ms: i64, end_ms: i64, text: &str, timestamps: bool) -> String {
    let text = text.trim();
    if timestamps {
        format!(
            "[{} --> {}] {text}",
            timestamp(start_ms, '.'),
            timestamp(end_ms, '.')
        )
    } else {
        text.to_owned()
    }
}

/// A segment's text as subtitle cue text: its lines trimmed, blank ones dropped (a blank line
/// would end the cue). `None` when nothing is left.
fn cue_text(text: &str) -> Option<String> {
    let lines: Vec<&str> = text
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .collect();
    (!lines.is_empty()).then(|| lines.join("\n"))
}

/// Plain text: each segment's text, trimmed, one per line; empty segments left out.
pub fn to_txt(segments: &[Segment]) -> String {
    let mut out = String::new();
    for segment in segments {
        let text = segment.text.trim();
        if !text.is_empty() {
            out.push_str(text);
            out.push('\n');
        }
    }
    out
}

/// SubRip subtitles: cues numbered from 1, times as `HH:MM:SS,mmm`; empty segments left out
/// (the numbering stays consecutive).
pub fn to_srt(segments: &[Segment]) -> String {
    let mut out = String::new();
    let cues = segments
        .iter()
        .filter_map(|s| cue_text(&s.text).map(|text| (s, text)));
    for (number, (segment, text)) in (1..).zip(cues) {
        out.push_str(&format!(
            "{number}\n{} --> {}\n{text}\n\n",
            timestamp(segment.start_ms, ','),
            timestamp(segment.end_ms, ',')
        ));
    }
    out
}

/// Escapes the characters that WebVTT cue text reserves (`&`, `<`, and `>` so that no `-->`
/// appears).
fn vtt_escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

/// WebVTT subtitles: a `WEBVTT` header, then one cue per segment with times as
/// `HH:MM:SS.mmm`; empty segments left out.
pub fn to_vtt(segments: &[Segment]) -> String {
    let mut out = String::from("WEBVTT\n\n");
    for segment in segments {
        if let Some(text) = cue_text(&segment.text) {
            out.push_str(&format!(
                "{} --> {}\n{}\n\n",
                timestamp(segment.start_ms, '.'),
                timestamp(segment.end_ms, '.'),
                vtt_escape(&text)
            ));
        }
    }
    out
}

/// The JSON document (see [`to_json`]).
#[derive(Serialize)]
struct JsonTranscript<'a> {
    /// The whole text.
    text: String,
    /// The spoken language's code.
    language: &'a str,
    /// The segments, in order.
    segments: Vec<JsonSegment<'a>>,
}

/// A segment in the JSON document.
#[derive(Serialize)]
struct JsonSegment<'a> {
    /// Its index, from 0.
    id: usize,
    /// Start, in seconds.
    start: f64,
    /// End, in seconds.
    end: f64,
    /// The text, trimmed.
    text: &'a str,
    /// The text tokens.
    tokens: Vec<JsonToken<'a>>,
}

/// A token in the JSON document.
#[derive(Serialize)]
struct JsonToken<'a> {
    /// The vocabulary id.
    id: i32,
    /// The text, as decoded.
    text: &'a str,
    /// The probability.
    p: f32,
    /// Start, in seconds, or `null`.
    t0: Option<f64>,
    /// End, in seconds, or `null`.
    t1: Option<f64>,
}

/// Milliseconds as seconds.
fn seconds(ms: i64) -> f64 {
    ms as f64 / 1000.0
}

/// The transcript as a pretty-printed JSON object:
/// `{"text", "language", "segments": [{"id", "start", "end", "text", "tokens": [{"id", "text",
/// "p", "t0", "t1"}]}]}`.
///
/// `text` is the segments' texts joined as whisper.cpp produced them, then trimmed; each
/// segment's `text` is trimmed; times are in seconds; a token's `t0`/`t1` is `null` when
/// unknown. `language` is the spoken language's code. Ends with a newline.
pub fn to_json(segments: &[Segment], language: &str) -> Result<String, serde_json::Error> {
    let text: String = segments.iter().map(|s| s.text.as_str()).collect();
    let doc = JsonTranscript {
        text: text.trim().to_owned(),
        language,
        segments: segments
            .iter()
            .enumerate()
            .map(|(id, s)| JsonSegment {
                id,
                start: seconds(s.start_ms),
                end: seconds(s.end_ms),
                text: s.text.trim(),
                tokens: s
                    .tokens
                    .iter()
                    .map(|t| JsonToken {
                        id: t.id,
                        text: &t.text,
                        p: t.p,
                        t0: t.t0_ms.map(seconds),
                        t1: t.t1_ms.map(seconds),
                    })
                    .collect(),
            })
            .collect(),
    };
    let mut json = serde_json::to_string_pretty(&doc)?;
    json.push('\n');
    Ok(json)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A segment without tokens.
    fn segment(start_ms: i64, end_ms: i64, text: &str) -> Segment {
        Segment {
            start_ms,
            end_ms,
            text: text.to_owned(),
            tokens: Vec::new(),
        }
    }

    #[test]
    fn timestamps() {
        assert_eq!(timestamp(0, ','), "00:00:00,000");
        assert_eq!(timestamp(0, '.'), "00:00:00.000");
        assert_eq!(timestamp(59_999, ','), "00:00:59,999");
        assert_eq!(timestamp(59_999, '.'), "00:00:59.999");
        assert_eq!(timestamp(60_000, '.'), "00:01:00.000");
        assert_eq!(timestamp(3_661_500, ','), "01:01:01,500");
        assert_eq!(timestamp(3_661_500, '.'), "01:01:01.500");
        assert_eq!(timestamp(100 * 3_600_000 + 5, '.'), "100:00:00.005");
        assert_eq!(timestamp(-20, ','), "00:00:00,000");
    }

    #[test]
    fn centiseconds_to_milliseconds() {
        assert_eq!(centis_to_ms(0), 0);
        assert_eq!(centis_to_ms(1100), 11_000);
        assert_eq!(timestamp(centis_to_ms(366_150), ','), "01:01:01,500");
        assert_eq!(centis_to_ms(i64::MAX), i64::MAX);
    }

    #[test]
    fn console_lines() {
        assert_eq!(
            console_line(0, 11_000, " And so my fellow Americans ", true),
            "[00:00:00.000 --> 00:00:11.000] And so my fellow Americans"
        );
        assert_eq!(
            console_line(0, 11_000, " And so my fellow Americans ", false),
            "And so my fellow Americans"
        );
    }

    #[test]
    fn txt_trims_and_skips_empty_segments() {
        let segments = [
            segment(0, 1000, " Hello there. "),
            segment(1000, 2000, "   "),
            segment(2000, 3000, " General Kenobi."),
        ];
        assert_eq!(to_txt(&segments), "Hello there.\nGeneral Kenobi.\n");
        assert_eq!(to_txt(&[]), "");
    }

    #[test]
    fn srt_cues_are_numbered_consecutively() {
        let segments = [
            segment(0, 2500, " First."),
            segment(2500, 3000, " "),
            segment(3000, 59_999, " Second."),
            segment(3_600_000, 3_661_500, " Third.\n\n  line two "),
        ];
        assert_eq!(
            to_srt(&segments),
            "1\n00:00:00,000 --> 00:00:02,500\nFirst.\n\n\
             2\n00:00:03,000 --> 00:00:59,999\nSecond.\n\n\
             3\n01:00:00,000 --> 01:01:01,500\nThird.\nline two\n\n"
        );
        assert_eq!(to_srt(&[]), "");
    }

    #[test]
    fn vtt_has_header_dot_times_and_escapes() {
        let segments = [
            segment(0, 1500, " Fish & chips <3 --> yes"),
            segment(1500, 1500, ""),
            segment(3_661_500, 3_662_000, " Bye."),
        ];
        assert_eq!(
            to_vtt(&segments),
            "WEBVTT\n\n\
             00:00:00.000 --> 00:00:01.500\nFish &amp; chips &lt;3 --&gt; yes\n\n\
             01:01:01.500 --> 01:01:02.000\nBye.\n\n"
        );
        assert_eq!(to_vtt(&[]), "WEBVTT\n\n");
    }

    #[test]
    fn json_escapes_and_round_trips() {
        let tricky = " He said \"hi\\there\"\nand\tleft \u{1} – ünïcödé 日本";
        let segments = [
            Segment {
                start_ms: 0,
                end_ms: 1230,
                text: tricky.to_owned(),
                tokens: vec![
                    Token {
                        id: 679,
                        text: " He".to_owned(),
                        p: 0.5,
                        t0_ms: Some(0),
                        t1_ms: Some(320),
                    },
                    Token {
                        id: 531,
                        text: " \"".to_owned(),
                        p: 0.25,
                        t0_ms: None,
                        t1_ms: None,
                    },
                ],
            },
            segment(1230, 3_661_500, " Second."),
        ];
        let json = to_json(&segments, "en").unwrap();
        assert!(json.ends_with('\n'));
        // Quotes, backslashes and control characters are escaped, not written raw.
        assert!(json.contains(r#"He said \"hi\\there\"\nand\tleft \u0001"#));

        let value: serde_json::Value = serde_json::from_str(&json).unwrap();
        assert_eq!(value["language"], "en");
        assert_eq!(value["text"], format!("{} Second.", tricky.trim()));
        let segs = value["segments"].as_array().unwrap();
        assert_eq!(segs.len(), 2);
        assert_eq!(segs[0]["id"], 0);
        assert_eq!(segs[0]["start"], 0.0);
        assert_eq!(segs[0]["end"], 1.23);
        assert_eq!(segs[0]["text"], tricky.trim());
        assert_eq!(segs[1]["id"], 1);
        assert_eq!(segs[1]["start"], 1.23);
        assert_eq!(segs[1]["end"], 3661.5);
        assert_eq!(segs[1]["text"], "Second.");
        assert_eq!(segs[1]["tokens"].as_array().unwrap().len(), 0);
        let tokens = segs[0]["tokens"].as_array().unwrap();
        assert_eq!(tokens[0]["id"], 679);
        assert_eq!(tokens[0]["text"], " He");
        assert_eq!(tokens[0]["p"], 0.5);
        assert_eq!(tokens[0]["t0"], 0.0);
        assert_eq!(tokens[0]["t1"], 0.32);
        assert_eq!(tokens[1]["text"], " \"");
        assert!(tokens[1]["t0"].is_null());
        assert!(tokens[1]["t1"].is_null());
    }

    #[test]
    fn json_of_nothing() {
        let value: serde_json::Value = serde_json::from_str(&to_json(&[], "de").unwrap()).unwrap();
        assert_eq!(
            value,
            serde_json::json!({"text": "", "language": "de", "segments": []})
        );
    }
}

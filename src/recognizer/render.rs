//! A transcript's renderings: plain text, SubRip (SRT), WebVTT and a JSON document. The
//! command-line tool writes them to files, the server answers with them; the rules (trimming,
//! empty cues left out, WebVTT escaping) live here once.

use std::fmt::Write as _;
use std::time::Duration;

use super::{Segment, Transcript};

/// `d` as `hh:mm:ss` + `separator` + `mmm`, hours growing past two digits as needed. SRT uses
/// `,` as the separator, WebVTT (and the command-line tool's console lines) `.`.
///
/// ```
/// use std::time::Duration;
/// use whisper_steady::recognizer::subtitle_timestamp;
/// assert_eq!(subtitle_timestamp(Duration::from_millis(3_723_456), ','), "01:02:03,456");
/// ```
pub fn subtitle_timestamp(d: Duration, separator: char) -> String {
    let ms = d.as_millis();
    format!(
        "{:02}:{:02}:{:02}{separator}{:03}",
        ms / 3_600_000,
        ms / 60_000 % 60,
        ms / 1000 % 60,
        ms % 1000
    )
}

/// `d` in seconds as the JSON renderings write it: whole milliseconds over 1000, so that a
/// time of 1.14 s is the number closest to 1.14 (`Duration::as_secs_f64` adds the parts and can
/// land one step off, 1.1400000000000001).
///
/// ```
/// use std::time::Duration;
/// use whisper_steady::recognizer::seconds;
/// assert_eq!(seconds(Duration::from_millis(1140)).to_string(), "1.14");
/// ```
pub fn seconds(d: Duration) -> f64 {
    d.as_millis() as f64 / 1000.0
}

/// A segment's text as subtitle cue text: its lines trimmed, blank ones dropped (a blank line
/// would end the cue). `None` when nothing is left: such a segment gets no cue.
fn cue_text(segment: &Segment) -> Option<String> {
    let lines: Vec<&str> = segment
        .text
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .collect();
    (!lines.is_empty()).then(|| lines.join("\n"))
}

/// Escapes what WebVTT cue text reserves: `&`, `<`, and `>` (so that no `-->` appears).
fn vtt_escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

/// `text` as a JSON string literal: quotes, backslashes and control characters escaped, the
/// rest (non-ASCII included) as it is.
fn json_string(text: &str) -> String {
    let mut out = String::with_capacity(text.len() + 2);
    out.push('"');
    for c in text.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\u{8}' => out.push_str("\\b"),
            '\u{c}' => out.push_str("\\f"),
            c if c < ' ' => {
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// A number as JSON: the shortest text that reads back as the same value; `null` when it is
/// not finite (JSON has no NaN or infinity).
fn json_number<T: Into<f64> + std::fmt::Debug + Copy>(x: T) -> String {
    // Debug prints the shortest digits that read back as the same `T` (0.95 for an f32 0.95).
    if x.into().is_finite() {
        format!("{x:?}")
    } else {
        "null".to_owned()
    }
}

impl Transcript {
    /// Plain text: each segment's text, trimmed, one a line; empty segments left out.
    pub fn to_text(&self) -> String {
        let mut out = String::new();
        for text in self.segments.iter().map(|s| s.text.trim()) {
            if !text.is_empty() {
                out.push_str(text);
                out.push('\n');
            }
        }
        out
    }

    /// SubRip subtitles: cues numbered from 1, times as `HH:MM:SS,mmm`; segments without text
    /// get no cue (the numbering stays consecutive).
    pub fn to_srt(&self) -> String {
        let mut out = String::new();
        let cues = self
            .segments
            .iter()
            .filter_map(|s| cue_text(s).map(|text| (s, text)));
        for (number, (segment, text)) in (1..).zip(cues) {
            let _ = write!(
                out,
                "{number}\n{} --> {}\n{text}\n\n",
                subtitle_timestamp(segment.start, ','),
                subtitle_timestamp(segment.end, ',')
            );
        }
        out
    }

    /// WebVTT subtitles: a `WEBVTT` header, then a cue per segment with times as
    /// `HH:MM:SS.mmm` and the text escaped; segments without text get no cue.
    pub fn to_vtt(&self) -> String {
        let mut out = String::from("WEBVTT\n\n");
        for segment in &self.segments {
            if let Some(text) = cue_text(segment) {
                let _ = write!(
                    out,
                    "{} --> {}\n{}\n\n",
                    subtitle_timestamp(segment.start, '.'),
                    subtitle_timestamp(segment.end, '.'),
                    vtt_escape(&text)
                );
            }
        }
        out
    }

    /// The transcript as a JSON document, indented, ending with a newline:
    /// `{"text", "language", "language_probability", "no_speech", "segments": [{"id", "start",
    /// "end", "text", "tokens": [{"id", "text", "p", "t0", "t1"}]}]}`. `text` is
    /// [`text`](Self::text); `language_probability` is
    /// [`language_probability`](Self::language_probability) (`null` when the language was given),
    /// `no_speech` [`no_speech`](Self::no_speech); each segment's text is trimmed; times are in
    /// seconds; only text tokens are listed (special ones such as timestamps left out), with
    /// their text as decoded.
    pub fn to_json(&self) -> String {
        let mut out = String::from("{\n");
        let _ = writeln!(out, "  \"text\": {},", json_string(&self.text));
        let _ = writeln!(out, "  \"language\": {},", json_string(&self.language));
        let probability = self
            .language_probability
            .map_or_else(|| "null".to_owned(), json_number);
        let _ = writeln!(out, "  \"language_probability\": {probability},");
        let _ = writeln!(out, "  \"no_speech\": {},", self.no_speech);
        if self.segments.is_empty() {
            out.push_str("  \"segments\": []\n}\n");
            return out;
        }
        out.push_str("  \"segments\": [\n");
        for (id, s) in self.segments.iter().enumerate() {
            out.push_str("    {\n");
            let _ = writeln!(out, "      \"id\": {id},");
            let _ = writeln!(out, "      \"start\": {},", json_number(seconds(s.start)));
            let _ = writeln!(out, "      \"end\": {},", json_number(seconds(s.end)));
            let _ = writeln!(out, "      \"text\": {},", json_string(s.text.trim()));
            let tokens: Vec<String> = s
                .text_tokens()
                .map(|t| {
                    format!(
                        "        {{\n          \"id\": {},\n          \"text\": {},\n          \
                         \"p\": {},\n          \"t0\": {},\n          \"t1\": {}\n        }}",
                        t.id,
                        json_string(&t.text),
                        json_number(t.p),
                        json_number(seconds(t.start)),
                        json_number(seconds(t.end))
                    )
                })
                .collect();
            if tokens.is_empty() {
                out.push_str("      \"tokens\": []\n");
            } else {
                let _ = writeln!(out, "      \"tokens\": [\n{}\n      ]", tokens.join(",\n"));
            }
            out.push_str(if id + 1 < self.segments.len() {
                "    },\n"
            } else {
                "    }\n"
            });
        }
        out.push_str("  ]\n}\n");
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::recognizer::{Backend, Token};

    fn ms(ms: u64) -> Duration {
        Duration::from_millis(ms)
    }

    /// A segment without tokens.
    fn segment(start_ms: u64, end_ms: u64, text: &str) -> Segment {
        Segment {
            start: ms(start_ms),
            end: ms(end_ms),
            text: text.to_owned(),
            no_speech_probability: 0.0,
            speaker_turn_next: false,
            tokens: Vec::new(),
        }
    }

    fn spoken(code: &str) -> crate::recognizer::transcript::Spoken {
        crate::recognizer::transcript::Spoken {
            code: code.to_owned(),
            probability: None,
        }
    }

    fn transcript(segments: Vec<Segment>) -> Transcript {
        Transcript::assemble(segments, spoken("en"), Backend::Cpu)
    }

    fn token(id: i32, text: &str, p: f32, start_ms: u64, end_ms: u64, special: bool) -> Token {
        Token {
            id,
            text: text.to_owned(),
            bytes: text.as_bytes().to_vec(),
            p,
            plog: p.ln(),
            start: ms(start_ms),
            end: ms(end_ms),
            special,
        }
    }

    #[test]
    fn timestamps() {
        assert_eq!(subtitle_timestamp(ms(0), ','), "00:00:00,000");
        assert_eq!(subtitle_timestamp(ms(0), '.'), "00:00:00.000");
        assert_eq!(subtitle_timestamp(ms(59_999), ','), "00:00:59,999");
        assert_eq!(subtitle_timestamp(ms(60_000), '.'), "00:01:00.000");
        assert_eq!(subtitle_timestamp(ms(3_661_500), ','), "01:01:01,500");
        assert_eq!(
            subtitle_timestamp(ms(100 * 3_600_000 + 5), '.'),
            "100:00:00.005"
        );
    }

    #[test]
    fn text_trims_and_skips_empty_segments() {
        let t = transcript(vec![
            segment(0, 1000, " Hello there. "),
            segment(1000, 2000, "   "),
            segment(2000, 3000, " General Kenobi."),
        ]);
        assert_eq!(t.to_text(), "Hello there.\nGeneral Kenobi.\n");
        assert_eq!(transcript(Vec::new()).to_text(), "");
    }

    #[test]
    fn srt_cues_are_numbered_consecutively() {
        let t = transcript(vec![
            segment(0, 2500, " First."),
            segment(2500, 3000, " "),
            segment(3000, 59_999, " Second."),
            segment(3_600_000, 3_661_500, " Third.\n\n  line two "),
        ]);
        assert_eq!(
            t.to_srt(),
            "1\n00:00:00,000 --> 00:00:02,500\nFirst.\n\n\
             2\n00:00:03,000 --> 00:00:59,999\nSecond.\n\n\
             3\n01:00:00,000 --> 01:01:01,500\nThird.\nline two\n\n"
        );
        assert_eq!(transcript(Vec::new()).to_srt(), "");
    }

    #[test]
    fn vtt_has_header_dot_times_and_escapes() {
        let t = transcript(vec![
            segment(0, 1500, " Fish & chips <3 --> yes"),
            segment(1500, 1500, ""),
            segment(3_661_500, 3_662_000, " Bye."),
        ]);
        assert_eq!(
            t.to_vtt(),
            "WEBVTT\n\n\
             00:00:00.000 --> 00:00:01.500\nFish &amp; chips &lt;3 --&gt; yes\n\n\
             01:01:01.500 --> 01:01:02.000\nBye.\n\n"
        );
        assert_eq!(transcript(Vec::new()).to_vtt(), "WEBVTT\n\n");
    }

    #[test]
    fn json_strings_are_escaped() {
        assert_eq!(
            json_string("a\"b\\c\nd\te\u{1}f"),
            r#""a\"b\\c\nd\te\u0001f""#
        );
        assert_eq!(json_string("ünï 日本"), "\"ünï 日本\"");
        assert_eq!(json_number(1.23), "1.23");
        assert_eq!(json_number(0.0), "0.0");
        assert_eq!(json_number(f64::NAN), "null");
        assert_eq!(json_number(0.95f32), "0.95");
        assert_eq!(json_number(seconds(Duration::from_millis(1360))), "1.36");
    }

    /// The document is parsed back by a JSON parser written by someone else (serde_json, a
    /// dev-dependency only) and every field compared.
    #[test]
    fn json_escapes_and_round_trips() {
        let tricky = " He said \"hi\\there\"\nand\tleft \u{1} – ünïcödé 日本";
        let mut first = segment(0, 1230, tricky);
        first.tokens = vec![
            token(50363, "[_BEG_]", 0.9, 0, 0, true),
            token(679, " He", 0.5, 0, 320, false),
            token(531, " \"", 0.25, 320, 400, false),
        ];
        let t = transcript(vec![first, segment(1230, 3_661_500, " Second.")]);
        let json = t.to_json();
        assert!(json.ends_with("}\n"));
        assert!(json.contains(r#"He said \"hi\\there\"\nand\tleft \u0001"#));

        let value: serde_json::Value = serde_json::from_str(&json).unwrap();
        assert_eq!(value["language"], "en");
        assert_eq!(value["language_probability"], serde_json::Value::Null);
        assert_eq!(value["no_speech"], false);
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
        assert_eq!(tokens.len(), 2, "the special token is left out");
        assert_eq!(tokens[0]["id"], 679);
        assert_eq!(tokens[0]["text"], " He");
        assert_eq!(tokens[0]["p"], 0.5);
        assert_eq!(tokens[0]["t0"], 0.0);
        assert_eq!(tokens[0]["t1"], 0.32);
        assert_eq!(tokens[1]["text"], " \"");
        assert_eq!(tokens[1]["t1"], 0.4);
    }

    #[test]
    fn json_of_nothing() {
        let mut t = Transcript::assemble(Vec::new(), spoken("de"), Backend::Cpu);
        t.language_probability = Some(0.68);
        t.no_speech = true;
        let value: serde_json::Value = serde_json::from_str(&t.to_json()).unwrap();
        assert_eq!(
            value,
            serde_json::json!({"text": "", "language": "de", "language_probability": 0.68,
                               "no_speech": true, "segments": []})
        );
    }
}

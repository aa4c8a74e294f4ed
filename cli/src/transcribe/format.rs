//! The console line of a segment as whisper.cpp finishes it. The file formats (text, SRT,
//! WebVTT, JSON) are the library's renderers on
//! [`Transcript`](whisper_steady::recognizer::Transcript).

use std::time::Duration;

use whisper_steady::recognizer::subtitle_timestamp;

/// One line of the transcript as printed on stdout: `[start --> end] text`, or the text alone
/// without timestamps. The text is trimmed.
pub fn console_line(start: Duration, end: Duration, text: &str, timestamps: bool) -> String {
    let text = text.trim();
    if timestamps {
        format!(
            "[{} --> {}] {text}",
            subtitle_timestamp(start, '.'),
            subtitle_timestamp(end, '.')
        )
    } else {
        text.to_owned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn centis(centis: u64) -> Duration {
        Duration::from_millis(centis * 10)
    }

    #[test]
    fn console_lines() {
        assert_eq!(
            console_line(
                centis(0),
                centis(1100),
                " And so my fellow Americans ",
                true
            ),
            "[00:00:00.000 --> 00:00:11.000] And so my fellow Americans"
        );
        assert_eq!(
            console_line(
                centis(0),
                centis(1100),
                " And so my fellow Americans ",
                false
            ),
            "And so my fellow Americans"
        );
        assert_eq!(
            console_line(centis(0), centis(366_150), "x", true),
            "[00:00:00.000 --> 01:01:01.500] x"
        );
    }
}

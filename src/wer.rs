//! Word and character error rates, the measures of a transcript against a reference that the
//! tests, the CLI's `gpu-check` and the benchmarks use (`bench/summarize.py` counts words by the
//! same rule, up to combining marks, which Python's `\w` does not count as letters). The
//! character error rate is for languages written without spaces between words (Chinese,
//! Japanese), where a "word" would be a whole clause.

/// The words of `text` as counted: lowercase, split at everything that is neither a letter, a
/// digit nor an apostrophe (so `country,` is `country` and `don't` stays one word).
///
/// ```
/// assert_eq!(whisper_steady::wer::words("Ask not -- don't ask!"), ["ask", "not", "don't", "ask"]);
/// ```
pub fn words(text: &str) -> Vec<String> {
    text.to_lowercase()
        .split(|c: char| !(c.is_alphanumeric() || c == '\''))
        .filter(|w| !w.is_empty())
        .map(str::to_owned)
        .collect()
}

/// The word error rate of `hypothesis` against `reference`: the word-level edit distance
/// (substitutions, insertions, deletions) over the reference's word count (1 when it has none).
///
/// ```
/// use whisper_steady::wer::word_error_rate;
/// assert_eq!(word_error_rate("ask not what", "Ask not, what"), 0.0);
/// assert_eq!(word_error_rate("ask not what", "ask what"), 1.0 / 3.0);
/// ```
pub fn word_error_rate(reference: &str, hypothesis: &str) -> f64 {
    error_rate(&words(reference), &words(hypothesis))
}

/// The characters of `text` as counted: lowercase letters and digits, in order; spaces and
/// punctuation (`，` and `。` too) left out.
///
/// ```
/// let chars: String = whisper_steady::wer::characters("你好，World!").into_iter().collect();
/// assert_eq!(chars, "你好world");
/// ```
pub fn characters(text: &str) -> Vec<char> {
    text.to_lowercase()
        .chars()
        .filter(|c| c.is_alphanumeric())
        .collect()
}

/// The character error rate of `hypothesis` against `reference`: the edit distance between
/// their [`characters`] over the reference's count (1 when it has none).
///
/// ```
/// use whisper_steady::wer::character_error_rate;
/// assert_eq!(character_error_rate("今天天气很好。", "今天天气很好"), 0.0);
/// assert_eq!(character_error_rate("今天天气很好", "今天天汽很好"), 1.0 / 6.0);
/// ```
pub fn character_error_rate(reference: &str, hypothesis: &str) -> f64 {
    error_rate(&characters(reference), &characters(hypothesis))
}

/// The edit distance (substitutions, insertions, deletions) from `r` to `h` over `r`'s length
/// (1 when it is empty).
fn error_rate<T: PartialEq>(r: &[T], h: &[T]) -> f64 {
    let mut row: Vec<usize> = (0..=h.len()).collect();
    for (i, rw) in r.iter().enumerate() {
        let mut diagonal = row[0];
        row[0] = i + 1;
        for (j, hw) in h.iter().enumerate() {
            let next = (row[j] + 1)
                .min(row[j + 1] + 1)
                .min(diagonal + usize::from(rw != hw));
            diagonal = row[j + 1];
            row[j + 1] = next;
        }
    }
    row[h.len()] as f64 / r.len().max(1) as f64
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn edits_are_counted() {
        assert_eq!(word_error_rate("a b c d", "a b c d"), 0.0);
        assert_eq!(word_error_rate("a b c d", "a x c d"), 0.25);
        assert_eq!(word_error_rate("a b c d", "a b c d e f"), 0.5);
        assert_eq!(word_error_rate("a b c d", ""), 1.0);
        assert_eq!(word_error_rate("", "a"), 1.0);
        assert_eq!(word_error_rate("", ""), 0.0);
        assert_eq!(
            words("It's 3 o'clock—Ünïcode."),
            ["it's", "3", "o'clock", "ünïcode"]
        );
        assert_eq!(character_error_rate("ab c", "abc"), 0.0);
        assert_eq!(character_error_rate("abcd", "axcd"), 0.25);
        assert_eq!(character_error_rate("", ""), 0.0);
    }
}

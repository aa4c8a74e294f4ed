//! Word error rate, the measure of a transcript against a reference that the tests, the CLI's
//! `gpu-check` and the benchmarks use (`bench/summarize.py` counts words by the same rule, up to
//! combining marks, which Python's `\w` does not count as letters).

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
    let (r, h) = (words(reference), words(hypothesis));
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
    }
}

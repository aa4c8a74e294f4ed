//! whisper.cpp's tokenizer, in linear time.
//!
//! whisper.cpp splits text into words with a `std::regex` (GPT-2's pattern in the C locale)
//! and cuts each word into the longest vocabulary entries from its left, trying every length
//! of the rest of the word: time cubic in the length of a word and recursion as deep as it
//! (6,000 spaces took 7 s, 30,000 letters overflowed a 2 MiB thread stack, and ~350 Chinese
//! characters, which have no spaces, are one word of ~1 KB). This module gives the same tokens:
//! the same word boundaries found by one scan, and each word cut by walking a byte trie of the
//! vocabulary, so a token costs at most the length of the longest entry. `WhisperContext::tokenize`
//! and the initial prompt of `WhisperState::full` both use it; `tests/model/model_api.rs` compares it
//! with whisper.cpp's own on every vocabulary entry and on mixed texts.

use std::collections::HashMap;
use std::ffi::CStr;

use crate::sys;
use crate::WhisperTokenId;

/// A model's vocabulary as a byte trie: the edges `(node, byte) → node` in one map, and the
/// token that ends at each node. Node 0 is the root.
pub(crate) struct Vocab {
    edges: HashMap<(u32, u8), u32>,
    /// The token spelled by the path to each node; `None` where no entry ends.
    ends: Vec<Option<WhisperTokenId>>,
}

impl Vocab {
    /// Reads the vocabulary of `ctx`. Where two ids spell the same bytes, the later wins, as in
    /// whisper.cpp's `token_to_id` map; the empty entry (multilingual models have one) never
    /// matches.
    ///
    /// # Safety
    /// `ctx` is a valid, loaded context.
    pub(crate) unsafe fn of(ctx: *mut sys::whisper_context) -> Vocab {
        let mut vocab = Vocab {
            edges: HashMap::new(),
            ends: vec![None],
        };
        // SAFETY: the caller's contract.
        let n_vocab = unsafe { sys::whisper_n_vocab(ctx) };
        for id in 0..n_vocab {
            // SAFETY: the id is in range; the string lives as long as the model.
            let ptr = unsafe { sys::whisper_token_to_str(ctx, id) };
            if ptr.is_null() {
                continue;
            }
            // SAFETY: a NUL-terminated string owned by the vocabulary.
            let bytes = unsafe { CStr::from_ptr(ptr) }.to_bytes();
            if !bytes.is_empty() {
                vocab.insert(bytes, id);
            }
        }
        vocab
    }

    fn insert(&mut self, bytes: &[u8], id: WhisperTokenId) {
        let mut node = 0u32;
        for &b in bytes {
            let next = self.ends.len() as u32;
            node = *self.edges.entry((node, b)).or_insert_with(|| next);
            if node == next {
                self.ends.push(None);
            }
        }
        self.ends[node as usize] = Some(id);
    }

    /// The longest entry at the start of `bytes`: its token and length.
    fn longest_prefix(&self, bytes: &[u8]) -> Option<(WhisperTokenId, usize)> {
        let mut node = 0u32;
        let mut found = None;
        for (i, &b) in bytes.iter().enumerate() {
            match self.edges.get(&(node, b)) {
                Some(&next) => node = next,
                None => break,
            }
            if let Some(id) = self.ends[node as usize] {
                found = Some((id, i + 1));
            }
        }
        found
    }

    /// The tokens of one word, cut greedily from its left into the longest entries (a byte
    /// that starts none is skipped, as whisper.cpp does after logging "unknown token").
    fn word_tokens(&self, word: &[u8], out: &mut Vec<WhisperTokenId>) {
        let mut i = 0;
        while i < word.len() {
            match self.longest_prefix(&word[i..]) {
                Some((id, len)) => {
                    out.push(id);
                    i += len;
                }
                None => {
                    log::debug!(target: "whisper_steady", "tokenizer: byte {:#04x} is no token", word[i]);
                    i += 1;
                }
            }
        }
    }

    /// The tokens of `text`, as whisper.cpp's `whisper_tokenize` gives them.
    pub(crate) fn tokenize(&self, text: &[u8]) -> Vec<WhisperTokenId> {
        let mut tokens = Vec::new();
        for word in words(text) {
            self.word_tokens(word, &mut tokens);
        }
        tokens
    }

    /// The last `keep` tokens of `text` (all of them when it has fewer): the end of
    /// [`tokenize`](Self::tokenize). Every word gives at least one token and words are cut
    /// independently of each other, so only the last `keep` words are cut: a long text costs
    /// one scan for its words.
    pub(crate) fn tokenize_last(&self, text: &[u8], keep: usize) -> Vec<WhisperTokenId> {
        let mut last = std::collections::VecDeque::with_capacity(keep.min(1024));
        for word in words(text) {
            if last.len() == keep {
                last.pop_front();
            }
            if keep > 0 {
                last.push_back(word);
            }
        }
        let mut tokens = Vec::new();
        for word in last {
            self.word_tokens(word, &mut tokens);
        }
        let cut = tokens.len().saturating_sub(keep);
        tokens.drain(..cut);
        tokens
    }
}

/// The character classes of whisper.cpp's pattern in the C locale: `[[:alpha:]]` is the ASCII
/// letters, `[[:digit:]]` the ASCII digits, `\s` the six ASCII blanks; every other byte (UTF-8
/// sequences included) is "other".
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Class {
    Letter,
    Digit,
    Space,
    Other,
}

fn class(b: u8) -> Class {
    match b {
        b'a'..=b'z' | b'A'..=b'Z' => Class::Letter,
        b'0'..=b'9' => Class::Digit,
        b' ' | b'\t' | b'\n' | b'\r' | 0x0b | 0x0c => Class::Space,
        _ => Class::Other,
    }
}

/// The contractions the pattern tries first, in its order.
const CONTRACTIONS: [&[u8]; 7] = [b"'s", b"'t", b"'re", b"'ve", b"'m", b"'ll", b"'d"];

/// The words of `text` as whisper.cpp's pattern
/// `'s|'t|'re|'ve|'m|'ll|'d| ?[[:alpha:]]+| ?[[:digit:]]+| ?[^\s[:alpha:][:digit:]]+|\s+(?!\S)|\s+`
/// finds them, searching from where the last match ended (every byte starts a match of some
/// alternative, so no byte is skipped).
pub(crate) fn words(text: &[u8]) -> impl Iterator<Item = &[u8]> {
    let mut at = 0;
    std::iter::from_fn(move || {
        if at >= text.len() {
            return None;
        }
        let len = word_at(&text[at..]);
        let word = &text[at..at + len];
        at += len;
        Some(word)
    })
}

/// The length of the match at the start of `rest` (not empty).
fn word_at(rest: &[u8]) -> usize {
    if let Some(c) = CONTRACTIONS.iter().find(|c| rest.starts_with(c)) {
        return c.len();
    }
    let run = |from: usize, of: Class| {
        from + rest[from..].iter().take_while(|&&b| class(b) == of).count()
    };
    // ` ?X+` for the letters, the digits and the others, in that order: the optional space
    // first, then without it (only when the first byte is itself of the class).
    let first = class(rest[0]);
    let after_space = (rest[0] == b' ')
        .then(|| rest.get(1).map(|&b| class(b)))
        .flatten();
    for of in [Class::Letter, Class::Digit, Class::Other] {
        if after_space == Some(of) {
            return run(1, of);
        }
        if first == of {
            return run(0, of);
        }
    }
    // Blanks: `\s+(?!\S)` takes the run but its last blank when a non-blank follows (at least
    // one blank), else `\s+` the whole run.
    let end = run(0, Class::Space);
    if end < rest.len() && end > 1 {
        end - 1
    } else {
        end
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn split(text: &str) -> Vec<&str> {
        words(text.as_bytes())
            .map(|w| std::str::from_utf8(w).unwrap())
            .collect()
    }

    #[test]
    fn words_follow_the_pattern() {
        assert_eq!(
            split("And so, my fellow Americans: it's 1961!"),
            [
                "And",
                " so",
                ",",
                " my",
                " fellow",
                " Americans",
                ":",
                " it",
                "'s",
                " 1961",
                "!"
            ]
        );
        assert_eq!(split("a   b"), ["a", "  ", " b"]);
        assert_eq!(split("a \n b"), ["a", " \n", " b"]);
        assert_eq!(split("a\nb"), ["a", "\n", "b"]);
        assert_eq!(split("end   "), ["end", "   "]);
        assert_eq!(split("'sun 'S x'll"), ["'s", "un", " '", "S", " x", "'ll"]);
        assert_eq!(split("你好，世界 ok"), ["你好，世界", " ok"]);
        assert_eq!(split(" ."), [" ."]);
        assert_eq!(split("\t"), ["\t"]);
    }

    #[test]
    fn a_long_run_is_one_word_found_in_one_scan() {
        let text = "a".repeat(1 << 20);
        assert_eq!(words(text.as_bytes()).count(), 1);
    }
}

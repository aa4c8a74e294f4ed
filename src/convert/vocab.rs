//! The vocabulary: CTranslate2's token lists and GPT-2's byte-level token spelling.
//!
//! CTranslate2 stores Whisper's tokens as GPT-2 spells them: every byte is shown as one
//! printable character (a printable byte as itself, the others as characters from U+0100 on),
//! so that `Ġthe` stands for the bytes ` the`. whisper.cpp wants the raw bytes.

use super::ConvertError;

/// The byte a GPT-2 byte-level character stands for, or `None` for a character outside that
/// alphabet.
///
/// GPT-2's table keeps the printable bytes `!`..=`~`, `¡`..=`¬` and `®`..=`ÿ` as the characters of
/// the same code point, and gives the 68 others (0..=32, 127..=160 and 173, in that order) the
/// code points 256..=323.
pub fn gpt2_byte(c: char) -> Option<u8> {
    let cp = u32::from(c);
    match cp {
        0x21..=0x7e | 0xa1..=0xac | 0xae..=0xff => Some(cp as u8),
        0x100..=0x143 => {
            let i = cp - 0x100;
            Some(match i {
                0..=32 => i as u8,
                33..=66 => (127 + (i - 33)) as u8,
                _ => 173,
            })
        }
        _ => None,
    }
}

/// A GPT-2 byte-level token as bytes, or `None` if it holds a character outside the byte-level
/// alphabet.
pub fn decode_gpt2_token(token: &str) -> Option<Vec<u8>> {
    token.chars().map(gpt2_byte).collect()
}

/// The tokens of a `vocabulary.txt`: one per line, split on `\n` alone (a token may hold other
/// line-breaking characters); the final newline does not start another token.
pub fn parse_vocabulary_txt(text: &str) -> Vec<&str> {
    text.strip_suffix('\n')
        .unwrap_or(text)
        .split('\n')
        .collect()
}

/// The tokens of a `vocabulary.json` (a JSON array of strings, as newer CTranslate2 versions
/// write).
pub fn parse_vocabulary_json(text: &str) -> Result<Vec<String>, ConvertError> {
    let mut p = JsonStrings {
        s: text.as_bytes(),
        pos: 0,
    };
    p.ws();
    p.expect(b'[')?;
    let mut tokens = Vec::new();
    p.ws();
    if p.peek() == Some(b']') {
        p.pos += 1;
    } else {
        loop {
            p.ws();
            tokens.push(p.string()?);
            p.ws();
            match p.next() {
                Some(b',') => continue,
                Some(b']') => break,
                _ => return Err(p.error("expected ',' or ']'")),
            }
        }
    }
    p.ws();
    if p.pos != p.s.len() {
        return Err(p.error("unexpected text after the array"));
    }
    Ok(tokens)
}

/// Just enough of a JSON reader for an array of strings.
struct JsonStrings<'a> {
    s: &'a [u8],
    pos: usize,
}

impl JsonStrings<'_> {
    fn error(&self, msg: &str) -> ConvertError {
        ConvertError::Vocabulary(format!("vocabulary.json at byte {}: {msg}", self.pos))
    }

    fn peek(&self) -> Option<u8> {
        self.s.get(self.pos).copied()
    }

    fn next(&mut self) -> Option<u8> {
        let b = self.peek()?;
        self.pos += 1;
        Some(b)
    }

    fn ws(&mut self) {
        while matches!(self.peek(), Some(b' ' | b'\t' | b'\n' | b'\r')) {
            self.pos += 1;
        }
    }

    fn expect(&mut self, b: u8) -> Result<(), ConvertError> {
        if self.next() == Some(b) {
            Ok(())
        } else {
            Err(self.error(&format!("expected '{}'", b as char)))
        }
    }

    fn hex4(&mut self) -> Result<u32, ConvertError> {
        let mut v = 0;
        for _ in 0..4 {
            let d = self
                .next()
                .and_then(|b| (b as char).to_digit(16))
                .ok_or_else(|| self.error("bad \\u escape"))?;
            v = v * 16 + d;
        }
        Ok(v)
    }

    fn string(&mut self) -> Result<String, ConvertError> {
        self.expect(b'"')?;
        let mut out = Vec::new();
        loop {
            let b = self
                .next()
                .ok_or_else(|| self.error("unterminated string"))?;
            match b {
                b'"' => break,
                b'\\' => {
                    let e = self
                        .next()
                        .ok_or_else(|| self.error("unterminated escape"))?;
                    let c = match e {
                        b'"' => '"',
                        b'\\' => '\\',
                        b'/' => '/',
                        b'b' => '\u{8}',
                        b'f' => '\u{c}',
                        b'n' => '\n',
                        b'r' => '\r',
                        b't' => '\t',
                        b'u' => {
                            let hi = self.hex4()?;
                            let cp = if (0xd800..0xdc00).contains(&hi) {
                                if self.next() != Some(b'\\') || self.next() != Some(b'u') {
                                    return Err(self.error("unpaired surrogate"));
                                }
                                let lo = self.hex4()?;
                                if !(0xdc00..0xe000).contains(&lo) {
                                    return Err(self.error("unpaired surrogate"));
                                }
                                0x10000 + ((hi - 0xd800) << 10) + (lo - 0xdc00)
                            } else {
                                hi
                            };
                            char::from_u32(cp).ok_or_else(|| self.error("unpaired surrogate"))?
                        }
                        _ => return Err(self.error("unknown escape")),
                    };
                    let mut buf = [0u8; 4];
                    out.extend_from_slice(c.encode_utf8(&mut buf).as_bytes());
                }
                0..=0x1f => return Err(self.error("control character in string")),
                _ => out.push(b),
            }
        }
        // The input is a &str and escapes add whole characters, so this cannot fail; report
        // rather than panic all the same.
        String::from_utf8(out).map_err(|_| self.error("invalid UTF-8"))
    }
}

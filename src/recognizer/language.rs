//! The language of a request: the one reading of a language name (whisper's code or its English
//! name, in any case, or detection), and the rules that decide what whisper.cpp runs a request
//! in on the loaded model, under the recognizer's allow-list of detected languages
//! ([`RecognizerConfig::detect_languages`](super::RecognizerConfig::detect_languages)).

use std::ffi::c_int;

use super::{RecognizeError, RecognizeOptions};
use crate::WhisperContext;

/// Reads `language` as whisper's code: `"German"`, `"de"` and `"DE"` are all `"de"`; `None` for
/// detection (an empty name or `auto`, in any case). The error says what is wrong.
pub(crate) fn parse_language(language: &str) -> Result<Option<&'static str>, String> {
    let code = language.trim().to_ascii_lowercase();
    if code.is_empty() || code == "auto" {
        return Ok(None);
    }
    crate::get_lang_id(&code)
        .and_then(crate::get_lang_str)
        .map(Some)
        .ok_or_else(|| {
            format!(
                "language {code:?} is not one whisper knows (use a code such as \"en\", or \"auto\")"
            )
        })
}

/// The language id of a code [`parse_language`] returned.
fn id_of(code: &str) -> c_int {
    crate::get_lang_id(code).unwrap_or(-1)
}

/// What the loaded model and the recognizer's configuration allow: the languages the model has
/// a token for and those detection may choose.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct LanguageRules {
    multilingual: bool,
    /// Ids below this are the model's languages (whisper_model_n_langs: 99 before large-v3,
    /// 100 in large-v3, 1 for an English-only model).
    n_langs: c_int,
    /// Bit `1 << id` for each language detection may choose; 0 for every one.
    detect_among: u128,
}

impl LanguageRules {
    /// The rules of `ctx`'s model with detection restricted to `detect_languages` (codes or
    /// English names; empty for every language the model has). The error names a language
    /// whisper does not know or the model has no token for.
    pub(crate) fn new(ctx: &WhisperContext, detect_languages: &[String]) -> Result<Self, String> {
        let multilingual = ctx.is_multilingual();
        let n_langs = ctx.model_n_langs();
        let mut detect_among = 0u128;
        for name in detect_languages {
            let code = parse_language(name)?
                .ok_or_else(|| format!("{name:?} is not a language (list codes such as \"en\")"))?;
            let id = id_of(code);
            if !(0..n_langs).contains(&id) || id >= 128 {
                return Err(not_in_model(code, multilingual, n_langs));
            }
            detect_among |= 1u128 << id;
        }
        Ok(LanguageRules {
            multilingual,
            n_langs,
            detect_among,
        })
    }

    /// Whether detection is restricted to `code` among others (always true without a list).
    fn allows(&self, code: &str) -> bool {
        self.detect_among == 0 || self.detect_among & (1u128 << id_of(code)) != 0
    }

    /// The codes of the allow-list, in id order (empty without one).
    fn allowed_codes(&self) -> Vec<&'static str> {
        (0..128)
            .filter(|id| self.detect_among & (1u128 << id) != 0)
            .filter_map(crate::get_lang_str)
            .collect()
    }
}

/// Why `code` is refused on a model with `n_langs` languages.
fn not_in_model(code: &str, multilingual: bool, n_langs: c_int) -> String {
    if multilingual {
        format!(
            "language {code:?}: the model has no token for it (it knows {n_langs} languages; \
             \"yue\" is only in large-v3)"
        )
    } else {
        format!("language {code:?}: the model is English-only")
    }
}

/// The language whisper.cpp runs one request in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct RunLanguage {
    /// whisper's code, or `"auto"` to detect it.
    pub(crate) code: &'static str,
    /// For detection, bit `1 << id` for each language it may choose; 0 for every one.
    detect_among: u128,
}

impl RunLanguage {
    /// The language ids detection may choose ([`crate::FullParams::set_detect_languages`]);
    /// empty for every language.
    pub(crate) fn detect_ids(&self) -> Vec<c_int> {
        (0..128)
            .filter(|id| self.detect_among & (1u128 << id) != 0)
            .collect()
    }
}

impl RecognizeOptions {
    /// The language asked for, as whisper's code ([`parse_language`]); `None` for detection.
    /// The one reading of [`language`](Self::language).
    pub(crate) fn language_asked(&self) -> Result<Option<&'static str>, RecognizeError> {
        match self.language.as_deref() {
            None => Ok(None),
            Some(name) => parse_language(name).map_err(RecognizeError::InvalidOptions),
        }
    }

    /// The language whisper.cpp runs this request in under `rules`: the language asked for as
    /// whisper's code, or `"auto"` to detect it (among the allow-list's languages when there is
    /// one); English on an English-only model, which refuses another language and translation.
    /// A language the model has no token for, or one outside the allow-list, is refused.
    pub(crate) fn language_on(&self, rules: &LanguageRules) -> Result<RunLanguage, RecognizeError> {
        let invalid = |message: String| Err(RecognizeError::InvalidOptions(message));
        let code = match self.language_asked()? {
            None if rules.multilingual => "auto",
            None => "en",
            Some(code) if !(0..rules.n_langs).contains(&id_of(code)) => {
                return invalid(not_in_model(code, rules.multilingual, rules.n_langs));
            }
            Some(code) if !rules.allows(code) => {
                return invalid(format!(
                    "language {code:?} is not among the languages this service recognizes ({})",
                    rules.allowed_codes().join(", ")
                ));
            }
            Some(code) => code,
        };
        if self.translate && !rules.multilingual {
            return invalid("translate: the model is English-only".into());
        }
        Ok(RunLanguage {
            code,
            detect_among: if code == "auto" {
                rules.detect_among
            } else {
                0
            },
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_codes_read_as_codes() {
        assert_eq!(parse_language("German"), Ok(Some("de")));
        assert_eq!(parse_language(" DE "), Ok(Some("de")));
        assert_eq!(parse_language("chinese"), Ok(Some("zh")));
        assert_eq!(parse_language("AUTO"), Ok(None));
        assert_eq!(parse_language(""), Ok(None));
        assert!(parse_language("klingon").is_err());
    }

    #[test]
    fn rules_refuse_what_the_model_lacks_and_the_list_leaves_out() {
        let base = LanguageRules {
            multilingual: true,
            n_langs: 99,
            detect_among: (1 << id_of("zh")) | (1 << id_of("en")),
        };
        let asking = |language: &str| RecognizeOptions::new().language(language);
        let run = asking("auto").language_on(&base).unwrap();
        assert_eq!(run.code, "auto");
        assert_eq!(run.detect_ids(), [id_of("en"), id_of("zh")]);
        assert_eq!(asking("Chinese").language_on(&base).unwrap().code, "zh");
        assert!(asking("de").language_on(&base).is_err());
        assert!(asking("yue").language_on(&base).is_err());
        let tiny_en = LanguageRules {
            multilingual: false,
            n_langs: 1,
            detect_among: 0,
        };
        assert_eq!(
            RecognizeOptions::new().language_on(&tiny_en).unwrap().code,
            "en"
        );
        assert!(asking("de").language_on(&tiny_en).is_err());
    }
}

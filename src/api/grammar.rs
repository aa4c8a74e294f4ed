//! Grammar elements for constrained decoding.

use crate::sys;

/// The kind of a grammar element (`whisper_gretype`).
#[cfg_attr(any(not(windows), target_env = "gnu"), repr(u32))]
#[cfg_attr(all(windows, not(target_env = "gnu")), repr(i32))]
#[derive(Copy, Clone, Debug, Eq, PartialEq, Hash)]
pub enum WhisperGrammarElementType {
    /// End of rule definition
    End = sys::whisper_gretype_WHISPER_GRETYPE_END,
    /// Start of alternate definition for a rule
    Alternate = sys::whisper_gretype_WHISPER_GRETYPE_ALT,
    /// Non-terminal element: reference to another rule
    RuleReference = sys::whisper_gretype_WHISPER_GRETYPE_RULE_REF,
    /// Terminal element: character (code point)
    Character = sys::whisper_gretype_WHISPER_GRETYPE_CHAR,
    /// Inverse of a character(s)
    NotCharacter = sys::whisper_gretype_WHISPER_GRETYPE_CHAR_NOT,
    /// Modifies a preceding [Self::Character] to be an inclusive range
    CharacterRangeUpper = sys::whisper_gretype_WHISPER_GRETYPE_CHAR_RNG_UPPER,
    /// Modifies a preceding [Self::Character] to add an alternate character to match
    CharacterAlternate = sys::whisper_gretype_WHISPER_GRETYPE_CHAR_ALT,
}

impl From<sys::whisper_gretype> for WhisperGrammarElementType {
    /// # Panics
    /// For values outside 0..=6, as whisper-rs does.
    fn from(value: sys::whisper_gretype) -> Self {
        use WhisperGrammarElementType::*;
        match value {
            sys::whisper_gretype_WHISPER_GRETYPE_END => End,
            sys::whisper_gretype_WHISPER_GRETYPE_ALT => Alternate,
            sys::whisper_gretype_WHISPER_GRETYPE_RULE_REF => RuleReference,
            sys::whisper_gretype_WHISPER_GRETYPE_CHAR => Character,
            sys::whisper_gretype_WHISPER_GRETYPE_CHAR_NOT => NotCharacter,
            sys::whisper_gretype_WHISPER_GRETYPE_CHAR_RNG_UPPER => CharacterRangeUpper,
            sys::whisper_gretype_WHISPER_GRETYPE_CHAR_ALT => CharacterAlternate,
            other => panic!("invalid whisper_gretype value {other}"),
        }
    }
}

impl From<WhisperGrammarElementType> for sys::whisper_gretype {
    fn from(value: WhisperGrammarElementType) -> Self {
        value as sys::whisper_gretype
    }
}

/// One element of a grammar rule.
#[derive(Copy, Clone, Debug, Eq, PartialEq, Hash)]
pub struct WhisperGrammarElement {
    /// The kind of element.
    pub element_type: WhisperGrammarElementType,
    /// A code point or a rule index, depending on the kind.
    pub value: u32,
}

impl WhisperGrammarElement {
    /// A new element.
    pub fn new(element_type: WhisperGrammarElementType, value: u32) -> Self {
        WhisperGrammarElement {
            element_type,
            value,
        }
    }

    /// The C representation.
    pub fn to_c_type(self) -> sys::whisper_grammar_element {
        sys::whisper_grammar_element {
            type_: self.element_type.into(),
            value: self.value,
        }
    }
}

/// A grammar in the shape whisper.cpp reads: one array of elements per rule, each ending with
/// `End`, and an array of pointers to them.
#[derive(Debug)]
pub(crate) struct Grammar {
    rules: Vec<Vec<sys::whisper_grammar_element>>,
    pointers: Vec<*const sys::whisper_grammar_element>,
}

impl Grammar {
    /// Splits a flat list of elements into rules at each `End`; a missing final `End` is added.
    /// Fails when a rule reference points past the last rule.
    pub(crate) fn new(elements: &[WhisperGrammarElement]) -> Result<Grammar, String> {
        let mut rules = Vec::new();
        let mut current = Vec::new();
        for element in elements {
            current.push(element.to_c_type());
            if element.element_type == WhisperGrammarElementType::End {
                rules.push(std::mem::take(&mut current));
            }
        }
        if !current.is_empty() {
            current.push(WhisperGrammarElement::new(WhisperGrammarElementType::End, 0).to_c_type());
            rules.push(current);
        }
        if rules.is_empty() {
            return Err("it has no rule".to_string());
        }
        for element in elements {
            if element.element_type == WhisperGrammarElementType::RuleReference
                && element.value as usize >= rules.len()
            {
                return Err(format!(
                    "rule reference {} out of range ({} rules)",
                    element.value,
                    rules.len()
                ));
            }
        }
        Ok(Grammar::from_rules(rules))
    }

    fn from_rules(rules: Vec<Vec<sys::whisper_grammar_element>>) -> Grammar {
        let pointers = rules.iter().map(|r| r.as_ptr()).collect();
        Grammar { rules, pointers }
    }

    pub(crate) fn n_rules(&self) -> usize {
        self.rules.len()
    }

    /// The rule-pointer array whisper.cpp reads; valid while `self` lives.
    pub(crate) fn rules_ptr(&mut self) -> *mut *const sys::whisper_grammar_element {
        self.pointers.as_mut_ptr()
    }
}

impl Clone for Grammar {
    fn clone(&self) -> Self {
        Grammar::from_rules(self.rules.clone())
    }
}

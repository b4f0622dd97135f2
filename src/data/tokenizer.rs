//! A Unicode-aware word tokenizer for reviews.
//!
//! A token is either a word — a run of alphanumeric characters (any script), with apostrophes
//! kept inside it so contractions and negations stay whole (`don't`, `isn't`, `l'été`) — or a
//! single other non-space character (punctuation, symbols, emoji), so "good," and "good" share a
//! token. Curly apostrophes (’ ʼ) are read as `'`. Words are lower-cased unless disabled. The
//! settings are saved with the model, so prediction tokenizes as training did.

use serde::{Deserialize, Serialize};

/// The tokenizer's settings, saved in a checkpoint's `config.json`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct TokenizerConfig {
    /// Lower-case every token (Unicode lower-casing).
    pub lowercase: bool,
}

impl Default for TokenizerConfig {
    fn default() -> Self {
        Self { lowercase: true }
    }
}

/// Splits text into word and punctuation tokens (see the module documentation).
#[derive(Debug, Clone, Copy, Default)]
pub struct Tokenizer {
    config: TokenizerConfig,
}

fn is_apostrophe(c: char) -> bool {
    matches!(c, '\'' | '\u{2019}' | '\u{02BC}')
}

impl Tokenizer {
    /// A tokenizer with these settings.
    pub fn new(config: TokenizerConfig) -> Self {
        Self { config }
    }

    /// Its settings.
    pub fn config(&self) -> TokenizerConfig {
        self.config
    }

    /// The tokens of `text`, in order.
    pub fn tokenize(&self, text: &str) -> Vec<String> {
        let mut tokens = Vec::new();
        let mut word = String::new();
        let mut chars = text.chars().peekable();
        while let Some(c) = chars.next() {
            if c.is_alphanumeric() {
                word.push(c);
            } else if is_apostrophe(c)
                && !word.is_empty()
                && chars.peek().is_some_and(|n| n.is_alphanumeric())
            {
                word.push('\'');
            } else {
                self.flush(&mut word, &mut tokens);
                if !c.is_whitespace() {
                    tokens.push(if is_apostrophe(c) { "'".to_owned() } else { c.to_string() });
                }
            }
        }
        self.flush(&mut word, &mut tokens);
        tokens
    }

    fn flush(&self, word: &mut String, tokens: &mut Vec<String>) {
        if !word.is_empty() {
            tokens.push(if self.config.lowercase { word.to_lowercase() } else { word.clone() });
            word.clear();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tokens(text: &str) -> Vec<String> {
        Tokenizer::default().tokenize(text)
    }

    #[test]
    fn splits_words_from_punctuation() {
        assert_eq!(tokens("Good, but too long..."), ["good", ",", "but", "too", "long", ".", ".", "."]);
        assert_eq!(tokens("(great!)"), ["(", "great", "!", ")"]);
        assert_eq!(tokens("3.5 stars"), ["3", ".", "5", "stars"]);
    }

    #[test]
    fn keeps_contractions_and_negations_whole() {
        assert_eq!(tokens("I don't like it"), ["i", "don't", "like", "it"]);
        assert_eq!(tokens("It isn’t bad"), ["it", "isn't", "bad"]);
        assert_eq!(tokens("not bad"), ["not", "bad"]);
        assert_eq!(tokens("'quoted' word"), ["'", "quoted", "'", "word"]);
        assert_eq!(tokens("the actors' work"), ["the", "actors", "'", "work"]);
    }

    #[test]
    fn is_unicode_aware() {
        assert_eq!(tokens("L'été était BEAU"), ["l'été", "était", "beau"]);
        assert_eq!(tokens("ÜBER gut"), ["über", "gut"]);
        assert_eq!(tokens("Отличный фильм!"), ["отличный", "фильм", "!"]);
        assert_eq!(tokens("great 👍"), ["great", "👍"]);
        assert_eq!(tokens("tab\tand\u{00A0}nbsp"), ["tab", "and", "nbsp"]);
    }

    #[test]
    fn empty_and_blank_text_give_no_tokens() {
        assert!(tokens("").is_empty());
        assert!(tokens(" \t ").is_empty());
    }

    #[test]
    fn lowercasing_can_be_turned_off() {
        let t = Tokenizer::new(TokenizerConfig { lowercase: false });
        assert_eq!(t.tokenize("Not BAD"), ["Not", "BAD"]);
    }
}

//! The word scanner of checkpoint format 1 (lstm-tch 0.1), kept so that a format-1 checkpoint
//! tokenizes, and so predicts, exactly as it did when it was trained. New models use the modes
//! of [`super::TokenizerMode`].
//!
//! A token is either a word — a run of alphanumeric characters (any script), with apostrophes
//! kept inside it (`don't`, `l'été`) — or a single other non-space character. Curly apostrophes
//! (’ ʼ) are read as `'`. A run of Han characters between two punctuation marks is one "word":
//! the reason this scanner was replaced.

use super::push_token;

fn is_apostrophe(c: char) -> bool {
    matches!(c, '\'' | '\u{2019}' | '\u{02BC}')
}

/// Appends the tokens of `text` to `tokens`, lower-cased when `lowercase`.
pub(super) fn tokenize(text: &str, lowercase: bool, tokens: &mut Vec<String>) {
    let mut word = String::new();
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        if c.is_alphanumeric() {
            word.push(c);
        } else if is_apostrophe(c) && !word.is_empty() && chars.peek().is_some_and(|n| n.is_alphanumeric()) {
            word.push('\'');
        } else {
            if !word.is_empty() {
                push_token(tokens, &word, lowercase);
                word.clear();
            }
            if !c.is_whitespace() {
                tokens.push(if is_apostrophe(c) { "'".to_owned() } else { c.to_string() });
            }
        }
    }
    if !word.is_empty() {
        push_token(tokens, &word, lowercase);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tokens(text: &str) -> Vec<String> {
        let mut out = Vec::new();
        tokenize(text, true, &mut out);
        out
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
    fn keeps_han_runs_whole() {
        // The behaviour format-1 checkpoints were trained with (and issue 8's reason to move on).
        assert_eq!(tokens("很快，好吃"), ["很快", "，", "好吃"]);
    }

    #[test]
    fn empty_and_blank_text_give_no_tokens() {
        assert!(tokens("").is_empty());
        assert!(tokens(" \t ").is_empty());
    }

    #[test]
    fn lowercasing_can_be_turned_off() {
        let mut out = Vec::new();
        tokenize("Not BAD", false, &mut out);
        assert_eq!(out, ["Not", "BAD"]);
    }
}

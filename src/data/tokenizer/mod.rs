//! Tokenizers for reviews in any script, Chinese included.
//!
//! Three modes ([`TokenizerMode`]), each lower-casing unless told not to:
//! - **`unicode`**: the word boundaries of Unicode's UAX #29 (the `unicode-segmentation` crate),
//!   as for English, Korean or Russian, with every CJK ideograph and kana a token of its own (as
//!   BERT's basic tokenizer does), since Chinese and Japanese write no spaces. Contractions stay
//!   whole (`don't`, `isn't`, curly apostrophes read as `'`), so negations keep their meaning;
//!   punctuation and emoji are tokens of their own; whitespace is dropped.
//! - **`chars`**: every non-space character (grapheme cluster) a token.
//! - **`jieba`**: Chinese word segmentation by the `jieba-rs` crate (its built-in dictionary,
//!   HMM for unknown words) on each run of Han characters; everything else as in `unicode`.
//!
//! The mode and case setting are saved in a checkpoint, so prediction tokenizes as training did.
//! Checkpoints of format 1 were made with an older word scanner ([`v1`]), kept for them alone.

mod v1;

use std::sync::OnceLock;

use clap::ValueEnum;
use jieba_rs::Jieba;
use serde::{Deserialize, Serialize};
use unicode_segmentation::UnicodeSegmentation;

/// How text is cut into tokens.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, ValueEnum, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TokenizerMode {
    /// Unicode (UAX #29) words; each CJK ideograph and kana a token.
    #[default]
    Unicode,
    /// Every non-space character a token.
    Chars,
    /// Chinese words by jieba; other text as `unicode`.
    Jieba,
    /// The word scanner of checkpoint format 1 (for loading old checkpoints only).
    #[value(skip)]
    #[serde(rename = "v1-words")]
    V1Words,
}

impl TokenizerMode {
    /// The mode of a saved config that names none: checkpoint format 1's scanner.
    fn format_1() -> Self {
        TokenizerMode::V1Words
    }
}

/// The tokenizer's settings, saved in a checkpoint's `config.json`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct TokenizerConfig {
    /// How text is cut (format-1 configs have no `mode`: their scanner is [`TokenizerMode::V1Words`]).
    #[serde(default = "TokenizerMode::format_1")]
    pub mode: TokenizerMode,
    /// Lower-case every token (Unicode lower-casing).
    pub lowercase: bool,
}

impl Default for TokenizerConfig {
    fn default() -> Self {
        Self { mode: TokenizerMode::default(), lowercase: true }
    }
}

/// Splits text into tokens (see the module documentation).
#[derive(Debug, Clone, Copy, Default)]
pub struct Tokenizer {
    config: TokenizerConfig,
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

    /// The tokens of `text`, in order; never an empty string, never whitespace.
    pub fn tokenize(&self, text: &str) -> Vec<String> {
        let lowercase = self.config.lowercase;
        let mut tokens = Vec::new();
        match self.config.mode {
            TokenizerMode::Unicode => unicode_words(text, lowercase, &mut tokens),
            TokenizerMode::Chars => {
                for g in text.graphemes(true).filter(|g| !is_blank(g)) {
                    push_token(&mut tokens, g, lowercase);
                }
            }
            TokenizerMode::Jieba => {
                for (han, run) in han_runs(text) {
                    if han {
                        for token in jieba().cut(run, true) {
                            push_token(&mut tokens, token.word, lowercase);
                        }
                    } else {
                        unicode_words(run, lowercase, &mut tokens);
                    }
                }
            }
            TokenizerMode::V1Words => v1::tokenize(text, lowercase, &mut tokens),
        }
        tokens
    }
}

/// jieba with its built-in dictionary, loaded once per process on first use (~0.2 s).
fn jieba() -> &'static Jieba {
    static JIEBA: OnceLock<Jieba> = OnceLock::new();
    JIEBA.get_or_init(Jieba::new)
}

fn push_token(tokens: &mut Vec<String>, token: &str, lowercase: bool) {
    tokens.push(if lowercase { token.to_lowercase() } else { token.to_owned() });
}

fn is_blank(s: &str) -> bool {
    s.chars().all(char::is_whitespace)
}

/// A CJK ideograph (the blocks BERT's tokenizer splits) or a kana.
fn is_cjk(c: char) -> bool {
    is_han(c)
        || matches!(c,
            '\u{3040}'..='\u{30FF}'     // Hiragana, Katakana
            | '\u{31F0}'..='\u{31FF}'   // Katakana phonetic extensions
            | '\u{FF66}'..='\u{FF9D}') // half-width Katakana
}

/// A Han ideograph: CJK Unified Ideographs and their extensions, compatibility ideographs, 〇.
fn is_han(c: char) -> bool {
    matches!(c,
        '\u{3007}'
        | '\u{3400}'..='\u{4DBF}'
        | '\u{4E00}'..='\u{9FFF}'
        | '\u{F900}'..='\u{FAFF}'
        | '\u{20000}'..='\u{2FA1F}'
        | '\u{30000}'..='\u{323AF}')
}

/// UAX #29 words of `text`: whitespace dropped, CJK split into characters, apostrophes inside
/// a word normalised to `'`.
fn unicode_words(text: &str, lowercase: bool, tokens: &mut Vec<String>) {
    for segment in text.split_word_bounds() {
        if is_blank(segment) {
            continue;
        }
        if segment.chars().any(is_cjk) {
            // UAX #29 keeps Katakana runs, and ideographs next to letters, in one segment.
            let mut rest = segment;
            while let Some(c) = rest.chars().next() {
                let end = if is_cjk(c) { c.len_utf8() } else { rest.find(is_cjk).unwrap_or(rest.len()) };
                let (piece, tail) = rest.split_at(end);
                if is_cjk(c) {
                    tokens.push(piece.to_owned());
                } else {
                    unicode_words(piece, lowercase, tokens);
                }
                rest = tail;
            }
        } else if segment.contains(APOSTROPHES) {
            push_token(tokens, &segment.replace(APOSTROPHES, "'"), lowercase);
        } else {
            push_token(tokens, segment, lowercase);
        }
    }
}

/// Apostrophes read as `'`: the right single quotation mark and the modifier letter apostrophe.
const APOSTROPHES: [char; 2] = ['\u{2019}', '\u{02BC}'];

/// `text` cut into maximal runs of Han ideographs (`true`) and of everything else (`false`).
fn han_runs(text: &str) -> impl Iterator<Item = (bool, &str)> {
    let mut rest = text;
    std::iter::from_fn(move || {
        let first = rest.chars().next()?;
        let han = is_han(first);
        let end = rest.find(|c: char| is_han(c) != han).unwrap_or(rest.len());
        let (run, tail) = rest.split_at(end);
        rest = tail;
        Some((han, run))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tokens(mode: TokenizerMode, text: &str) -> Vec<String> {
        Tokenizer::new(TokenizerConfig { mode, lowercase: true }).tokenize(text)
    }

    use TokenizerMode::{Chars, Jieba, Unicode};

    #[test]
    fn unicode_english_keeps_contractions_and_splits_punctuation() {
        assert_eq!(
            tokens(Unicode, "Good, but too long..."),
            ["good", ",", "but", "too", "long", ".", ".", "."]
        );
        assert_eq!(tokens(Unicode, "I don't like it"), ["i", "don't", "like", "it"]);
        assert_eq!(tokens(Unicode, "It isn’t bad"), ["it", "isn't", "bad"]);
        assert_eq!(tokens(Unicode, "'quoted' word"), ["'", "quoted", "'", "word"]);
        assert_eq!(tokens(Unicode, "(great!) 3.5 stars"), ["(", "great", "!", ")", "3.5", "stars"]);
        assert_eq!(tokens(Unicode, "L'été était BEAU"), ["l'été", "était", "beau"]);
        assert_eq!(tokens(Unicode, "Отличный фильм!"), ["отличный", "фильм", "!"]);
        assert_eq!(tokens(Unicode, "great 👍👍"), ["great", "👍", "👍"]);
        assert_eq!(tokens(Unicode, "tab\tand\u{00A0}nbsp\r\n"), ["tab", "and", "nbsp"]);
    }

    #[test]
    fn unicode_splits_chinese_and_japanese_into_characters() {
        assert_eq!(tokens(Unicode, "很快，好吃！"), ["很", "快", "，", "好", "吃", "！"]);
        assert_eq!(tokens(Unicode, "并不好吃"), ["并", "不", "好", "吃"]);
        // Kanji, hiragana and a katakana run (one UAX #29 word) all become characters.
        assert_eq!(
            tokens(Unicode, "映画はとてもツマラナイ"),
            ["映", "画", "は", "と", "て", "も", "ツ", "マ", "ラ", "ナ", "イ"]
        );
    }

    #[test]
    fn unicode_keeps_korean_words() {
        assert_eq!(tokens(Unicode, "정말 재미없어요."), ["정말", "재미없어요", "."]);
    }

    #[test]
    fn unicode_handles_mixed_scripts() {
        assert_eq!(tokens(Unicode, "iPhone15很好用，5星"), ["iphone15", "很", "好", "用", "，", "5", "星"]);
        assert_eq!(tokens(Unicode, "送餐很快OK的"), ["送", "餐", "很", "快", "ok", "的"]);
    }

    #[test]
    fn chars_gives_every_non_space_character() {
        assert_eq!(tokens(Chars, "Not bad!"), ["n", "o", "t", "b", "a", "d", "!"]);
        assert_eq!(tokens(Chars, "不错 👍🏽"), ["不", "错", "👍🏽"]); // a grapheme cluster stays whole
        assert_eq!(tokens(Chars, "とても"), ["と", "て", "も"]);
        assert_eq!(tokens(Chars, "좋아"), ["좋", "아"]);
    }

    #[test]
    fn jieba_segments_chinese_words_and_leaves_the_rest_to_unicode() {
        assert_eq!(tokens(Jieba, "味道不错，送餐很快"), ["味道", "不错", "，", "送餐", "很快"]);
        // docs/text-classification.md's example, in each mode.
        let example = "虽然很慢，但是不错 👍";
        assert_eq!(tokens(Jieba, example), ["虽然", "很", "慢", "，", "但是", "不错", "👍"]);
        assert_eq!(tokens(Unicode, example), ["虽", "然", "很", "慢", "，", "但", "是", "不", "错", "👍"]);
        assert_eq!(tokens(Chars, example), tokens(Unicode, example));
        assert_eq!(tokens(Jieba, "I don't like 这家店"), ["i", "don't", "like", "这家", "店"]);
        assert_eq!(tokens(Jieba, "映画はとても"), ["映画", "は", "と", "て", "も"]);
        assert_eq!(tokens(Jieba, "정말 좋아"), ["정말", "좋아"]);
    }

    #[test]
    fn every_mode_drops_whitespace_and_gives_no_empty_token() {
        for mode in [Unicode, Chars, Jieba, TokenizerMode::V1Words] {
            assert!(tokens(mode, "").is_empty(), "{mode:?}");
            assert!(tokens(mode, " \t\u{3000}\n").is_empty(), "{mode:?}");
            let t = tokens(mode, "Mixed 文本, with ｓｐａｃｅｓ　和 emoji 🎉!");
            assert!(t.iter().all(|t| !t.is_empty() && !is_blank(t)), "{mode:?}: {t:?}");
        }
    }

    #[test]
    fn lowercasing_can_be_turned_off() {
        let t = Tokenizer::new(TokenizerConfig { mode: Unicode, lowercase: false });
        assert_eq!(t.tokenize("Not BAD"), ["Not", "BAD"]);
    }

    #[test]
    fn the_v1_scanner_differs_on_the_format_1_fixture_sentences() {
        // So tests/fixtures/format1 proves that format-1 checkpoints keep their own scanner.
        let sentences = include_str!("../../../tests/fixtures/format1/sentences.txt");
        let differ = sentences.lines().filter(|s| tokens(TokenizerMode::V1Words, s) != tokens(Unicode, s));
        assert_eq!(differ.count(), 2, "'3.5' and '很快，好吃' are tokenized differently");
    }

    #[test]
    fn format_1_configs_read_as_the_v1_scanner() {
        let old: TokenizerConfig = serde_json::from_str(r#"{"lowercase": true}"#).unwrap();
        assert_eq!(old, TokenizerConfig { mode: TokenizerMode::V1Words, lowercase: true });
        let new: TokenizerConfig = serde_json::from_str(r#"{"mode": "jieba", "lowercase": false}"#).unwrap();
        assert_eq!(new.mode, Jieba);
        assert_eq!(serde_json::to_string(&TokenizerMode::V1Words).unwrap(), r#""v1-words""#);
    }
}

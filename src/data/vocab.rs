//! The vocabulary: token ↔ id, built from the training split only.
//!
//! Id 0 is `<pad>` (the embedding's padding row) and id 1 is `<unk>` (any token not in the
//! vocabulary). The rest are the training tokens seen at least `min_freq` times, most frequent
//! first, ties broken by the token's text (byte order), so the same data always gives the same ids.

use std::collections::HashMap;

use anyhow::{ensure, Result};

use super::tokenizer::Tokenizer;
use crate::runtime::checks;

/// The padding token, id 0.
pub const PAD: &str = "<pad>";
/// The unknown-token token, id 1.
pub const UNK: &str = "<unk>";
/// Id of [`PAD`].
pub const PAD_ID: i64 = 0;
/// Id of [`UNK`].
pub const UNK_ID: i64 = 1;

/// Token frequencies, counted one text at a time (no token list is kept).
#[derive(Debug, Clone, Default)]
struct TokenCounts(HashMap<String, usize>);

impl TokenCounts {
    /// Counts the tokens of one text.
    fn add<S: AsRef<str>>(&mut self, tokens: &[S]) {
        for token in tokens {
            match self.0.get_mut(token.as_ref()) {
                Some(n) => *n += 1,
                None => {
                    self.0.insert(token.as_ref().to_owned(), 1);
                }
            }
        }
    }
}

/// A token ↔ id mapping.
#[derive(Debug, Clone, PartialEq)]
pub struct Vocab {
    tokens: Vec<String>,
    ids: HashMap<String, i64>,
}

impl Vocab {
    /// Builds the vocabulary of `sentences` (already tokenized): the tokens seen at least
    /// `min_freq` times, at most `max_size` entries in all (the two special tokens included).
    pub fn build<'a, I, S>(sentences: I, min_freq: usize, max_size: Option<usize>) -> Result<Self>
    where
        I: IntoIterator<Item = &'a [S]>,
        S: AsRef<str> + 'a,
    {
        let mut counts = TokenCounts::default();
        for sentence in sentences {
            counts.add(sentence);
        }
        Self::from_counts(counts, min_freq, max_size)
    }

    /// The vocabulary of raw `texts`, tokenized one at a time by `tokenizer` and counted (no
    /// token list is kept); `min_freq` and `max_size` as in [`Vocab::build`].
    pub fn from_texts<'a>(
        texts: impl IntoIterator<Item = &'a str>,
        tokenizer: &Tokenizer,
        min_freq: usize,
        max_size: Option<usize>,
    ) -> Result<Self> {
        let mut counts = TokenCounts::default();
        for text in texts {
            counts.add(&tokenizer.tokenize(text));
        }
        Self::from_counts(counts, min_freq, max_size)
    }

    fn from_counts(counts: TokenCounts, min_freq: usize, max_size: Option<usize>) -> Result<Self> {
        checks::at_least_one("--min-freq", min_freq)?;
        ensure!(max_size.is_none_or(|m| m >= 2), "--max-vocab must be at least 2 (<pad> and <unk>)");
        let mut ranked: Vec<(String, usize)> =
            counts.0.into_iter().filter(|(t, n)| *n >= min_freq && t != PAD && t != UNK).collect();
        ranked.sort_unstable_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
        let room = max_size.map_or(usize::MAX, |m| m - 2);
        let specials = [PAD, UNK].into_iter().map(str::to_owned);
        Self::from_tokens(specials.chain(ranked.into_iter().take(room).map(|(t, _)| t)).collect())
    }

    /// The vocabulary whose token `i` has id `i`, as saved in a checkpoint. The first two must be
    /// `<pad>` and `<unk>`, and no token may appear twice.
    pub fn from_tokens(tokens: Vec<String>) -> Result<Self> {
        ensure!(
            tokens.len() >= 2 && tokens[0] == PAD && tokens[1] == UNK,
            "a vocabulary must start with {PAD} and {UNK}"
        );
        let ids: HashMap<String, i64> =
            tokens.iter().enumerate().map(|(i, t)| (t.clone(), i as i64)).collect();
        ensure!(ids.len() == tokens.len(), "the vocabulary lists a token twice");
        Ok(Self { tokens, ids })
    }

    /// Number of entries, the special tokens included.
    pub fn len(&self) -> usize {
        self.tokens.len()
    }

    /// Never true: a vocabulary always holds `<pad>` and `<unk>`.
    pub fn is_empty(&self) -> bool {
        self.tokens.is_empty()
    }

    /// The tokens in id order.
    pub fn tokens(&self) -> &[String] {
        &self.tokens
    }

    /// The id of `token`, or [`UNK_ID`].
    pub fn id(&self, token: &str) -> i64 {
        self.ids.get(token).copied().unwrap_or(UNK_ID)
    }

    /// The ids of `tokens`. An empty token list encodes as `[<unk>]`: every sequence the model
    /// sees has at least one step, so an empty line still gets a prediction.
    pub fn encode<S: AsRef<str>>(&self, tokens: &[S]) -> Vec<i64> {
        if tokens.is_empty() {
            return vec![UNK_ID];
        }
        tokens.iter().map(|t| self.id(t.as_ref())).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sentences(texts: &[&str]) -> Vec<Vec<String>> {
        texts.iter().map(|t| t.split(' ').map(str::to_owned).collect()).collect()
    }

    #[test]
    fn orders_by_frequency_then_text() {
        let data = sentences(&["b a c", "c b", "c d", "e"]);
        let vocab = Vocab::build(data.iter().map(Vec::as_slice), 1, None).unwrap();
        assert_eq!(vocab.tokens(), ["<pad>", "<unk>", "c", "b", "a", "d", "e"]);
        assert_eq!(vocab.encode(&["c", "zzz", "a"]), [2, UNK_ID, 4]);
    }

    #[test]
    fn min_freq_and_max_size_cut_the_tail() {
        let data = sentences(&["b a c", "c b", "c d", "e"]);
        let vocab = Vocab::build(data.iter().map(Vec::as_slice), 2, None).unwrap();
        assert_eq!(vocab.tokens(), ["<pad>", "<unk>", "c", "b"]);
        let vocab = Vocab::build(data.iter().map(Vec::as_slice), 1, Some(3)).unwrap();
        assert_eq!(vocab.tokens(), ["<pad>", "<unk>", "c"]);
        assert!(Vocab::build(data.iter().map(Vec::as_slice), 0, None).is_err());
        assert!(Vocab::build(data.iter().map(Vec::as_slice), 1, Some(1)).is_err());
    }

    #[test]
    fn empty_input_encodes_as_unknown() {
        let vocab = Vocab::from_tokens(vec![PAD.into(), UNK.into(), "x".into()]).unwrap();
        assert_eq!(vocab.encode::<&str>(&[]), [UNK_ID]);
    }

    #[test]
    fn saved_vocabularies_are_checked() {
        assert!(Vocab::from_tokens(vec!["a".into(), UNK.into()]).is_err());
        assert!(Vocab::from_tokens(vec![PAD.into(), UNK.into(), "a".into(), "a".into()]).is_err());
    }
}

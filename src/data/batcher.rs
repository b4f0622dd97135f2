//! Encoded datasets and padded batches.
//!
//! Token ids are stored flat (one `Vec<i64>` and offsets), so memory grows with the data and
//! not with the longest text. `--max-len N` keeps N tokens of a longer text: by `--truncate`,
//! the first N (`head`), the last N (`tail`), or the first N/4 and the last 3N/4 (`head-tail`,
//! the best of these for long reviews in Sun et al. 2019, "How to Fine-Tune BERT for Text
//! Classification": a review often ends with its verdict). Batches are padded with `<pad>` (id 0) to their longest
//! member; the last, partial batch is kept. Shuffling draws `torch.randperm(n)` from libtorch's
//! default generator, so a PyTorch program seeded alike draws the same order.
//!
//! Length bucketing (`train --bucket`, [`Encoded::epoch_batches`]) puts texts of similar length
//! together, so a batch pads (and the LSTM runs) to barely more than its texts' own lengths, the
//! way torchtext's `BucketIterator` does: `torch.randperm(n)` orders the texts; that order is cut
//! into pools of [`BUCKET_POOL_BATCHES`] × batch size texts; each pool is sorted by length
//! (shortest first; a stable sort, so equal lengths keep their shuffled order) and cut into
//! batches (only the last pool can end with a partial batch); finally `torch.randperm(batches)`
//! orders the batches. Every draw is on libtorch's generator and the sort is defined, so
//! `scripts/text_reference.py` reproduces the batches exactly.

use anyhow::{ensure, Context, Result};
use clap::ValueEnum;
use serde::{Deserialize, Serialize};
use tch::{Device, Kind, Tensor};

use super::{tokenizer::Tokenizer, vocab::Vocab, vocab::PAD_ID};
use crate::runtime::checks;

/// Batches per pool sorted together by `--bucket` (torchtext's `BucketIterator` sorts pools of
/// 100 batches): large enough for nearly uniform lengths within a batch, small enough that a
/// batch's texts still come from a random sample of the data.
pub const BUCKET_POOL_BATCHES: usize = 100;

/// Which tokens of a text longer than `--max-len` are kept.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, ValueEnum, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Truncation {
    /// The first tokens (format-1 checkpoints).
    #[default]
    Head,
    /// The last tokens.
    Tail,
    /// The first quarter of `max_len` and the last three quarters.
    HeadTail,
}

/// How many tokens of each text are kept (at least 1), and which.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Truncate {
    /// Tokens kept per text.
    pub max_len: usize,
    /// Which, for a longer text.
    pub keep: Truncation,
}

impl Truncate {
    /// The first `max_len` tokens.
    pub fn head(max_len: usize) -> Self {
        Self { max_len, keep: Truncation::Head }
    }

    /// The kept ids of `ids`, in order.
    pub fn apply<'a>(&self, ids: &'a [i64]) -> std::borrow::Cow<'a, [i64]> {
        let (n, m) = (ids.len(), self.max_len);
        if n <= m {
            return ids.into();
        }
        match self.keep {
            Truncation::Head => ids[..m].into(),
            Truncation::Tail => ids[n - m..].into(),
            Truncation::HeadTail => {
                let head = m / 4;
                [&ids[..head], &ids[n - (m - head)..]].concat().into()
            }
        }
    }
}

/// `text`'s token ids as a checkpoint reads it: tokenized, looked up in `vocab` (an empty text is
/// `[<unk>]`), then truncated. The one place text becomes ids, for training, `predict` and the
/// server alike.
pub fn encode_text(text: &str, tokenizer: &Tokenizer, vocab: &Vocab, truncate: Truncate) -> Vec<i64> {
    truncate.apply(&vocab.encode(&tokenizer.tokenize(text))).into_owned()
}

/// Texts as token ids, with their class indices.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Encoded {
    ids: Vec<i64>,
    offsets: Vec<usize>,
    /// The class index of each text.
    pub labels: Vec<i64>,
}

impl Encoded {
    /// Tokenizes and encodes `texts`, keeping at most `truncate.max_len` tokens of each (at
    /// least one: an empty text is `[<unk>]`).
    pub fn new<'a>(
        texts: impl IntoIterator<Item = &'a str>,
        labels: Vec<i64>,
        tokenizer: &Tokenizer,
        vocab: &Vocab,
        truncate: Truncate,
    ) -> Result<Self> {
        checks::at_least_one("--max-len", truncate.max_len)?;
        let mut encoded = Self { ids: Vec::new(), offsets: vec![0], labels };
        for text in texts {
            encoded.push(&encode_text(text, tokenizer, vocab, truncate));
        }
        ensure!(
            encoded.len() == encoded.labels.len(),
            "{} texts but {} labels",
            encoded.len(),
            encoded.labels.len()
        );
        Ok(encoded)
    }

    /// Texts already encoded as token ids (each non-empty), with their class indices.
    pub fn from_ids(texts: &[Vec<i64>], labels: Vec<i64>) -> Result<Self> {
        ensure!(texts.len() == labels.len(), "{} texts but {} labels", texts.len(), labels.len());
        ensure!(texts.iter().all(|t| !t.is_empty()), "every text needs at least one token");
        let mut encoded = Self { ids: Vec::new(), offsets: vec![0], labels };
        for ids in texts {
            encoded.push(ids);
        }
        Ok(encoded)
    }

    /// Texts that all have `width` tokens, given as one row-major buffer `ids`
    /// [texts × width] (no copy), with one label per row.
    pub fn from_rows(ids: Vec<i64>, width: usize, labels: Vec<i64>) -> Result<Self> {
        ensure!(width >= 1, "every text needs at least one token");
        ensure!(
            ids.len() == width * labels.len(),
            "{} ids are not {} texts of {width} tokens",
            ids.len(),
            labels.len()
        );
        let offsets = (0..=labels.len()).map(|i| i * width).collect();
        Ok(Self { ids, offsets, labels })
    }

    fn push(&mut self, ids: &[i64]) {
        self.ids.extend_from_slice(ids);
        self.offsets.push(self.ids.len());
    }

    /// Number of texts.
    pub fn len(&self) -> usize {
        self.offsets.len() - 1
    }

    /// True when there are no texts.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The ids of text `i`.
    pub fn ids(&self, i: usize) -> &[i64] {
        &self.ids[self.offsets[i]..self.offsets[i + 1]]
    }

    /// The batch of texts `indices`: tokens padded to the longest, lengths, labels.
    pub fn batch(&self, indices: &[usize]) -> Result<Batch> {
        let max_len = indices.iter().map(|&i| self.ids(i).len()).max().unwrap_or(0);
        let mut tokens = vec![PAD_ID; indices.len() * max_len];
        for (row, &i) in indices.iter().enumerate() {
            let ids = self.ids(i);
            tokens[row * max_len..row * max_len + ids.len()].copy_from_slice(ids);
        }
        let b = indices.len() as i64;
        Ok(Batch {
            tokens: Tensor::from_slice(&tokens).f_view([b, max_len as i64])?,
            lengths: Tensor::from_slice(
                &indices.iter().map(|&i| self.ids(i).len() as i64).collect::<Vec<_>>(),
            ),
            labels: Tensor::from_slice(&indices.iter().map(|&i| self.labels[i]).collect::<Vec<_>>()),
        })
    }

    /// The batches of one training epoch, each a list of text indices. Without `bucket`:
    /// [`Encoded::order`] (`torch.randperm(n)`) cut into batches of `batch_size`, the last one
    /// partial. With `bucket`: length-bucketed batches, as the module documentation describes
    /// (two draws: the texts' order, then the batches'). `batch_size` must be at least 1.
    pub fn epoch_batches(&self, batch_size: usize, bucket: bool) -> Result<Vec<Vec<usize>>> {
        checks::batch_size(batch_size)?;
        let order = self.order(true)?;
        if !bucket {
            return Ok(order.chunks(batch_size).map(<[usize]>::to_vec).collect());
        }
        let perm = Tensor::f_randperm(order.len().div_ceil(batch_size) as i64, (Kind::Int64, Device::Cpu))?;
        self.bucketed_batches(&order, batch_size, &Vec::<i64>::try_from(&perm)?)
    }

    /// `order` (text indices) cut into pools of [`BUCKET_POOL_BATCHES`] × `batch_size` texts,
    /// each pool sorted by length (stable) and cut into batches of `batch_size` (only the last
    /// pool can end with a partial one: ⌈order.len() / batch_size⌉ batches in all), the batches
    /// then put in the order `batch_order` gives (a permutation of their number).
    pub fn bucketed_batches(
        &self,
        order: &[usize],
        batch_size: usize,
        batch_order: &[i64],
    ) -> Result<Vec<Vec<usize>>> {
        checks::batch_size(batch_size)?;
        let mut batches = Vec::with_capacity(order.len().div_ceil(batch_size));
        for pool in order.chunks(batch_size.saturating_mul(BUCKET_POOL_BATCHES)) {
            let mut pool = pool.to_vec();
            pool.sort_by_key(|&i| self.ids(i).len()); // stable
            batches.extend(pool.chunks(batch_size).map(<[usize]>::to_vec));
        }
        ensure!(
            batch_order.len() == batches.len(),
            "{} batches, but an order of {}",
            batches.len(),
            batch_order.len()
        );
        let mut slots: Vec<Option<Vec<usize>>> = batches.into_iter().map(Some).collect();
        batch_order
            .iter()
            .map(|&k| {
                usize::try_from(k)
                    .ok()
                    .and_then(|k| slots.get_mut(k))
                    .and_then(Option::take)
                    .context("the batch order is not a permutation")
            })
            .collect()
    }

    /// The order of one epoch: `torch.randperm(n)` from the default generator when `shuffle`,
    /// else 0..n.
    pub fn order(&self, shuffle: bool) -> Result<Vec<usize>> {
        if !shuffle {
            return Ok((0..self.len()).collect());
        }
        let perm = Tensor::f_randperm(self.len() as i64, (Kind::Int64, Device::Cpu))?;
        Ok(Vec::<i64>::try_from(&perm)?.into_iter().map(|i| i as usize).collect())
    }
}

/// A padded batch, on the CPU until moved.
#[derive(Debug)]
pub struct Batch {
    /// Token ids [batch, longest], padded with `<pad>` (0).
    pub tokens: Tensor,
    /// Real lengths [batch], int64; stays on the CPU (as `pack_padded_sequence` wants).
    pub lengths: Tensor,
    /// Class indices [batch], int64.
    pub labels: Tensor,
}

impl Batch {
    /// Number of texts in the batch.
    pub fn len(&self) -> usize {
        self.lengths.size()[0] as usize
    }

    /// True for an empty batch.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Tokens and labels moved to `device`; lengths stay on the CPU.
    pub fn to_device(self, device: Device) -> Result<Self> {
        Ok(Self {
            tokens: self.tokens.f_to_device(device)?,
            lengths: self.lengths,
            labels: self.labels.f_to_device(device)?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::data::vocab::UNK_ID;

    fn encoded() -> Encoded {
        let vocab = Vocab::build([["a", "b", "c"].as_slice()], 1, None).unwrap();
        Encoded::new(["a b c a", "", "c"], vec![0, 1, 1], &Tokenizer::default(), &vocab, Truncate::head(3))
            .unwrap()
    }

    #[test]
    fn truncates_and_encodes_empty_texts_as_unknown() {
        let e = encoded();
        assert_eq!(e.len(), 3);
        assert_eq!(e.ids(0), [2, 3, 4]); // "a b c" after --max-len 3
        assert_eq!(e.ids(1), [UNK_ID]);
        assert_eq!(e.ids(2), [4]);
    }

    #[test]
    fn truncation_keeps_the_head_the_tail_or_both() {
        let ids: Vec<i64> = (10..20).collect();
        let keep = |keep, max_len| Truncate { max_len, keep }.apply(&ids).into_owned();
        assert_eq!(keep(Truncation::Head, 4), [10, 11, 12, 13]);
        assert_eq!(keep(Truncation::Tail, 4), [16, 17, 18, 19]);
        assert_eq!(keep(Truncation::HeadTail, 8), [10, 11, 14, 15, 16, 17, 18, 19]);
        assert_eq!(keep(Truncation::HeadTail, 3), [17, 18, 19]); // a quarter of 3 is nothing
        for mode in [Truncation::Head, Truncation::Tail, Truncation::HeadTail] {
            assert_eq!(keep(mode, 10), ids, "{mode:?}: a text that fits is kept whole");
        }
    }

    #[test]
    fn pads_batches_to_their_longest_member() {
        let b = encoded().batch(&[2, 0]).unwrap();
        assert_eq!(Vec::<i64>::try_from(&b.tokens.flatten(0, -1)).unwrap(), [4, 0, 0, 2, 3, 4]);
        assert_eq!(Vec::<i64>::try_from(&b.lengths).unwrap(), [1, 3]);
        assert_eq!(Vec::<i64>::try_from(&b.labels).unwrap(), [1, 0]);
    }

    /// `n` texts whose lengths cycle through 1..=7.
    fn varied(n: usize) -> Encoded {
        let texts: Vec<Vec<i64>> = (0..n).map(|i| vec![2; 1 + (i * 5) % 7]).collect();
        Encoded::from_ids(&texts, vec![0; n]).unwrap()
    }

    #[test]
    fn default_batches_are_the_shuffled_order_cut_in_pieces() {
        let e = varied(23);
        let _guard = GENERATOR.lock().unwrap_or_else(|p| p.into_inner());
        tch::manual_seed(5);
        let order = e.order(true).unwrap();
        tch::manual_seed(5);
        let batches = e.epoch_batches(4, false).unwrap();
        assert_eq!(batches, order.chunks(4).map(<[usize]>::to_vec).collect::<Vec<_>>());
    }

    #[test]
    fn bucketed_batches_hold_similar_lengths_and_every_text_once() {
        let (n, batch_size) = (1000, 3); // pools of 300 texts: three full ones and a partial one
        let e = varied(n);
        let _guard = GENERATOR.lock().unwrap_or_else(|p| p.into_inner());
        tch::manual_seed(11);
        let batches = e.epoch_batches(batch_size, true).unwrap();
        tch::manual_seed(11);
        assert_eq!(e.epoch_batches(batch_size, true).unwrap(), batches, "seeded");
        assert_eq!(batches.len(), n.div_ceil(batch_size));
        assert_eq!(batches.iter().filter(|b| b.len() < batch_size).count(), 1, "one partial batch");
        let mut all: Vec<usize> = batches.iter().flatten().copied().collect();
        all.sort_unstable();
        assert_eq!(all, (0..n).collect::<Vec<_>>());
        // Within a batch the lengths are sorted and, with pools this large, nearly equal.
        let spread: usize = batches
            .iter()
            .map(|b| {
                let lengths: Vec<usize> = b.iter().map(|&i| e.ids(i).len()).collect();
                assert!(lengths.windows(2).all(|w| w[0] <= w[1]), "{lengths:?}");
                lengths[lengths.len() - 1] - lengths[0]
            })
            .sum();
        // Only a batch straddling two lengths in a sorted pool mixes them, by one: at most 6
        // per pool (7 lengths), against ~4 per batch for random batches.
        assert!(spread <= 4 * 6, "batches mix lengths: total spread {spread}");
        // The batches themselves are shuffled: not in pool order.
        let firsts: Vec<usize> = batches.iter().map(|b| e.ids(b[0]).len()).collect();
        assert!(firsts.windows(2).any(|w| w[0] > w[1]), "batches are not shuffled");
    }

    /// Tests drawing from libtorch's global generator hold this.
    static GENERATOR: std::sync::Mutex<()> = std::sync::Mutex::new(());

    #[test]
    fn shuffles_with_libtorchs_generator() {
        let e = encoded();
        let _guard = GENERATOR.lock().unwrap_or_else(|p| p.into_inner());
        tch::manual_seed(3);
        let first = e.order(true).unwrap();
        tch::manual_seed(3);
        assert_eq!(e.order(true).unwrap(), first);
        let mut sorted = first.clone();
        sorted.sort();
        assert_eq!(sorted, [0, 1, 2]);
        assert_eq!(e.order(false).unwrap(), [0, 1, 2]);
    }
}

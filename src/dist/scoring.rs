//! Scoring a corpus past one machine: `predict --file` and `eval` under torchrun.
//!
//! The texts are taken in rounds of world size × batch size: rank r scores the r-th batch of
//! every round, and the rows come back to every rank in the texts' order. Every text is scored
//! in the same batch as one process scoring the file in batches of that size would put it, so
//! its scores are the same bits (a text's float32 results depend on what it is batched with).

use std::ops::Range;

use anyhow::{ensure, Result};
use tch::Tensor;

use super::Group;

/// The texts of a round of `len` (at most world size × `batch_size`) that rank `rank` scores:
/// its batch of `batch_size`, possibly empty in the last round.
pub fn round_share(len: usize, batch_size: usize, rank: usize) -> Range<usize> {
    let start = (rank * batch_size).min(len);
    start..(start + batch_size).min(len)
}

/// Scores one round of `len` texts across the ranks of `group`: `score` gives this rank's
/// share ([`round_share`]; called only when not empty) as `columns` float32 numbers per text,
/// flattened; returns every text's numbers, in order, on every rank ([len × columns]).
pub fn score_round(
    group: &Group,
    len: usize,
    batch_size: usize,
    columns: usize,
    score: impl FnOnce(Range<usize>) -> Result<Vec<f32>>,
) -> Result<Vec<f32>> {
    let mine = round_share(len, batch_size, group.rank());
    let mut padded = vec![0f32; batch_size * columns];
    if !mine.is_empty() {
        let rows = score(mine.clone())?;
        ensure!(rows.len() == mine.len() * columns, "{} numbers for {} texts", rows.len(), mine.len());
        padded[..rows.len()].copy_from_slice(&rows);
    }
    let mut all = Vec::with_capacity(len * columns);
    for (rank, theirs) in group.gather(&Tensor::from_slice(&padded))?.iter().enumerate() {
        let rows = round_share(len, batch_size, rank).len() * columns;
        all.extend_from_slice(&Vec::<f32>::try_from(theirs)?[..rows]);
    }
    Ok(all)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_round_is_cut_into_consecutive_batches_one_per_rank() {
        let shares: Vec<Range<usize>> = (0..3).map(|r| round_share(10, 4, r)).collect();
        assert_eq!(shares, [0..4, 4..8, 8..10]);
        assert!(round_share(3, 4, 1).is_empty(), "the last round may leave a rank nothing");
    }
}

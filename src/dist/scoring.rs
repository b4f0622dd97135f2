//! Scoring a corpus past one machine: `predict --file` and `eval` under torchrun.
//!
//! The texts are taken in rounds of world size × batch size: rank r scores the r-th batch of
//! every round, and the rows come back to every rank in the texts' order. Every text is scored
//! in the same batch as one process scoring the file in batches of that size would put it, so
//! its scores are the same bits (a text's float32 results depend on what it is batched with).

use std::{ops::Range, path::Path};

use anyhow::{ensure, Context, Result};
use tch::{Device, Tensor};

use super::Group;
use crate::{
    checkpoint::Checkpoint,
    data::{dataset, Encoded},
    infer::{self, metrics::Metrics},
};

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

/// [`infer::evaluate`] as one rank of `group`: each rank scores its batches of `data` in
/// batches of `batch_size`, every rank gets every prediction, and the metrics are those one
/// process computes.
pub fn evaluate(
    group: &Group,
    ckpt: &Checkpoint,
    data: &Encoded,
    batch_size: usize,
    device: Device,
) -> Result<Metrics> {
    let round = group.world_size() * batch_size;
    let mut predicted = Vec::with_capacity(data.len());
    for start in (0..data.len()).step_by(round) {
        let len = round.min(data.len() - start);
        let classes = score_round(group, len, batch_size, 1, |share| {
            let ids: Vec<Vec<i64>> = share.map(|i| data.ids(start + i).to_vec()).collect();
            let (logits, _) = infer::scores_of_ids(&ckpt.model, &ids, device)?;
            let classes = ckpt.labels.len();
            Ok(logits.chunks(classes).map(|row| infer::metrics::argmax(row) as f32).collect())
        })?;
        predicted.extend(classes.into_iter().map(|c| c as i64));
    }
    Ok(infer::metrics_of(&ckpt.labels, &data.labels, &predicted))
}

/// `predict --file` as one rank of `group`: every rank reads the lines of `path`; rounds of
/// world size × `batch_size` lines are classified across the ranks, and on rank 0 `print`
/// receives each round's texts and their probabilities ([texts × classes] flattened), in order.
pub fn predict_file(
    group: &Group,
    ckpt: &Checkpoint,
    path: &Path,
    batch_size: usize,
    device: Device,
    mut print: impl FnMut(&[String], &[f32]) -> Result<()>,
) -> Result<()> {
    let round = group.world_size() * batch_size;
    let file = std::fs::File::open(path).with_context(|| format!("cannot read {}", path.display()))?;
    let mut lines = dataset::lines(path.display().to_string(), std::io::BufReader::new(file));
    loop {
        let texts: Vec<String> = lines.by_ref().take(round).map(|l| Ok(l?.1)).collect::<Result<_>>()?;
        if texts.is_empty() {
            return Ok(());
        }
        let classes = ckpt.labels.len();
        let probabilities = score_round(group, texts.len(), batch_size, classes, |share| {
            infer::probabilities(ckpt, &texts[share], device)
        })?;
        if group.rank() == 0 {
            print(&texts, &probabilities)?;
        }
        if texts.len() < round {
            return Ok(());
        }
    }
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

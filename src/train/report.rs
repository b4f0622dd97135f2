//! The JSON files a training run writes besides its checkpoint: `train --report`, what the run
//! did, and `--export-encoded`, the encoded data and settings `scripts/text_reference.py`
//! trains on.

use serde::Serialize;

use super::{fit::EpochReport, optim::AdamImpl, run::EncodedData, TrainConfig};
use crate::{data::Encoded, infer::metrics::Metrics, nn::TextClassifierConfig};

/// `train`'s `--report`.
#[derive(Debug, Serialize)]
pub(super) struct TrainReport<'a> {
    pub(super) config: &'a TrainConfig,
    pub(super) labels: &'a [String],
    pub(super) vocab_size: usize,
    pub(super) train_texts: usize,
    pub(super) dev_texts: usize,
    pub(super) test_texts: usize,
    pub(super) epochs: &'a [EpochReport],
    pub(super) best_epoch: Option<usize>,
    pub(super) test: Option<Metrics>,
    pub(super) seconds: f64,
}

/// `--export-encoded`: what scripts/text_reference.py trains on.
#[derive(Debug, Serialize)]
pub(super) struct ExportedData<'a> {
    model: TextClassifierConfig,
    train: ExportedSplit,
    dev: Option<ExportedSplit>,
    test: Option<ExportedSplit>,
    batch_size: usize,
    /// `--bucket`: length-bucketed batches (src/data/batcher.rs).
    bucket: bool,
    /// `--class-weights`: the loss's class weights, if any.
    class_weights: Option<Vec<f32>>,
    epochs: usize,
    lr: f64,
    /// `--adam`: which Adam update.
    adam: AdamImpl,
    seed: i64,
    labels: &'a [String],
}

impl<'a> ExportedData<'a> {
    /// The export of `encoded`, with the model, the batching and the class weights the run
    /// trains with.
    pub(super) fn new(
        encoded: &'a EncodedData,
        config: &TrainConfig,
        model: TextClassifierConfig,
        class_weights: Option<Vec<f32>>,
    ) -> Self {
        Self {
            model,
            train: (&encoded.train).into(),
            dev: encoded.dev.as_ref().map(Into::into),
            test: encoded.test.as_ref().map(Into::into),
            batch_size: config.batch_size,
            bucket: config.bucket,
            class_weights,
            epochs: config.epochs,
            lr: config.lr,
            adam: config.adam,
            seed: config.seed,
            labels: encoded.labels.names(),
        }
    }
}

#[derive(Debug, Serialize)]
struct ExportedSplit {
    ids: Vec<Vec<i64>>,
    labels: Vec<i64>,
}

impl From<&Encoded> for ExportedSplit {
    fn from(e: &Encoded) -> Self {
        Self { ids: (0..e.len()).map(|i| e.ids(i).to_vec()).collect(), labels: e.labels.clone() }
    }
}

//! Inference: what `predict`, `eval`, `explain`, the lab and the coming server run on a trained
//! [`TextClassifier`]: logits and class probabilities of texts, and metrics on labelled data.
//! Everything here runs under `no_grad`, in evaluation mode (no dropout), in batches whose
//! padding never changes a text's answer (the recurrent layer runs on packed sequences).

pub mod metrics;

use anyhow::Result;
use tch::{Device, Kind, Tensor};

use crate::runtime::checks;
use crate::{
    checkpoint::Checkpoint,
    data::{encode_text, Encoded, LabelSet, Tokenizer, Truncate, Vocab},
    nn::TextClassifier,
};
use metrics::{Confusion, Metrics};

/// Logits [n, num_classes] of every text in `data`, in order, computed in batches of
/// `batch_size` under `no_grad` in evaluation mode; returned on the CPU.
pub fn logits(model: &TextClassifier, data: &Encoded, batch_size: usize, device: Device) -> Result<Tensor> {
    checks::batch_size(batch_size)?;
    let order = data.order(false)?;
    tch::no_grad(|| {
        let parts = order
            .chunks(batch_size)
            .map(|indices| {
                let batch = data.batch(indices)?.to_device(device)?;
                Ok(model.forward(&batch.tokens, &batch.lengths, false)?.f_to_device(Device::Cpu)?)
            })
            .collect::<Result<Vec<_>>>()?;
        Ok(Tensor::f_cat(&parts, 0)?)
    })
}

/// Class probabilities of `texts` under the checkpoint `ckpt` (tokenized, truncated and run
/// as the checkpoint says, in one batch), flattened [texts × classes], on the CPU.
pub fn probabilities(ckpt: &Checkpoint, texts: &[String], device: Device) -> Result<Vec<f32>> {
    let encoder = TextEncoder::of(ckpt);
    let ids: Vec<Vec<i64>> = texts.iter().map(|t| encoder.encode(t)).collect();
    probabilities_of_ids(&ckpt.model, &ids, device)
}

/// Class probabilities of texts already encoded ([`TextEncoder::encode`]), run in one batch:
/// `ids` (each non-empty) give [texts × classes] flattened, on the CPU. What [`probabilities`]
/// runs, and what the server runs on the batches it forms.
pub fn probabilities_of_ids(model: &TextClassifier, ids: &[Vec<i64>], device: Device) -> Result<Vec<f32>> {
    Ok(scores_of_ids(model, ids, device)?.1)
}

/// [`probabilities_of_ids`] with the logits it computes them from: (logits, probabilities), each
/// [texts × classes] flattened, on the CPU.
pub fn scores_of_ids(
    model: &TextClassifier,
    ids: &[Vec<i64>],
    device: Device,
) -> Result<(Vec<f32>, Vec<f32>)> {
    let data = Encoded::from_ids(ids, vec![0; ids.len()])?;
    let logits = logits(model, &data, ids.len().max(1), device)?;
    let probabilities = logits.f_softmax(1, Kind::Float)?;
    let flat = |t: &Tensor| -> Result<Vec<f32>> { Ok(Vec::<f32>::try_from(&t.f_flatten(0, -1)?)?) };
    Ok((flat(&logits)?, flat(&probabilities)?))
}

/// Text → token ids as a checkpoint reads it: its tokenizer, vocabulary and truncation
/// (`--max-len`, `--truncate`). Cheap to clone and shareable between threads.
#[derive(Debug, Clone)]
pub struct TextEncoder {
    /// The checkpoint's tokenizer.
    pub tokenizer: Tokenizer,
    /// Its vocabulary.
    pub vocab: Vocab,
    /// Which tokens of a long text are kept.
    pub truncate: Truncate,
}

impl TextEncoder {
    /// The encoder of `ckpt`.
    pub fn of(ckpt: &Checkpoint) -> Self {
        Self { tokenizer: ckpt.tokenizer, vocab: ckpt.vocab.clone(), truncate: ckpt.config.truncate() }
    }

    /// `text`'s token ids, truncated (at least one: an empty text is `[<unk>]`):
    /// [`encode_text`] with this checkpoint's pieces.
    pub fn encode(&self, text: &str) -> Vec<i64> {
        encode_text(text, &self.tokenizer, &self.vocab, self.truncate)
    }
}

/// Accuracy, per-class metrics and confusion matrix of `model` on `data`.
pub fn evaluate(
    model: &TextClassifier,
    data: &Encoded,
    labels: &LabelSet,
    batch_size: usize,
    device: Device,
) -> Result<Metrics> {
    let predictions = Vec::<i64>::try_from(&logits(model, data, batch_size, device)?.f_argmax(1, false)?)?;
    Ok(metrics_of(labels, &data.labels, &predictions))
}

/// The metrics of the predicted classes `predicted` against the true ones `truth` (class
/// indices of `labels`, pairwise).
pub fn metrics_of(labels: &LabelSet, truth: &[i64], predicted: &[i64]) -> Metrics {
    let mut confusion = Confusion::new(labels.names());
    for (&truth, &predicted) in truth.iter().zip(predicted) {
        confusion.add(truth as usize, predicted as usize);
    }
    confusion.metrics()
}

//! The article's `LSTMModel`: `nn.LSTM` (batch-first) followed by `nn.Linear` on the last time
//! step.
//!
//! ```python
//! class LSTMModel(nn.Module):
//!     def __init__(self, input_size, hidden_size, num_layers, output_size):
//!         self.lstm = nn.LSTM(input_size, hidden_size, num_layers, batch_first=True)
//!         self.fc = nn.Linear(hidden_size, output_size)
//!     def forward(self, x):
//!         h0 = torch.zeros(self.num_layers, x.size(0), self.hidden_size)
//!         c0 = torch.zeros(self.num_layers, x.size(0), self.hidden_size)
//!         out, (_,_) = self.lstm(x, (h0, c0))
//!         return self.fc(out[:, -1, :])
//! ```
//!
//! [`SequenceClassifier`] wraps the LSTM ([`crate::nn::Recurrent`]) and an `nn::Linear` the
//! same way, initialised draw for draw as PyTorch does ([`crate::layers`]), with variables named
//! like the `state_dict` (`lstm.weight_ih_l0`, ..., `fc.weight`, `fc.bias`). h0/c0 are created on
//! the input's device and kind (the article's CPU-only zeros are a bug on a GPU).
//!
//! The article's foils are one field away: with [`SequenceClassifierConfig::cell`] set to [`Cell::Gru`] or
//! [`Cell::Rnn`], an `nn.GRU` or a tanh `nn.RNN` (variables `gru.*` or `rnn.*`) takes the LSTM's
//! place, and everything else (packing, pooling, dropout, directions, layers) stays the same.
//!
//! The forward passes return `Result` rather than implementing `nn::Module`: their inputs come
//! from users, and a wrong shape must be an error, not a panic from a C++ exception.

use anyhow::{bail, ensure, Result};
use serde::{Deserialize, Serialize};
use tch::{nn, Tensor};

use super::{init, Recurrent, RecurrentConfig};
use crate::runtime::checks;

mod by_direction;

/// How a text's recurrent outputs become the one vector the linear layer classifies.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Pooling {
    /// The final hidden state (`h_n` of the last layer; bidirectional: both directions').
    #[default]
    Last,
    /// The element-wise maximum of the last layer's outputs over the text's real steps.
    Max,
    /// The mean of the last layer's outputs over the text's real steps.
    Mean,
}

/// Which of libtorch's kernels runs an LSTM in inference on the CPU.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LstmKernel {
    /// libtorch's step-by-step loop on packed sequences, as PyTorch runs `nn.LSTM` on
    /// `pack_padded_sequence`: PyTorch's values, bit for bit.
    #[default]
    Packed,
    /// oneDNN's fused LSTM, each direction on its own right-padded batch
    /// ([`SequenceClassifier::pooled_by_direction`]): the LSTM 2–3x faster on batches of mixed
    /// lengths, the same values up to rounding. GRU and RNN cells, CUDA and training always run packed.
    Onednn,
}

impl std::fmt::Display for LstmKernel {
    /// `packed` or `onednn`, as the flag names them.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::Packed => "packed",
            Self::Onednn => "onednn",
        })
    }
}

/// Hyperparameters of [`SequenceClassifier`]: its recurrent layer and its number of classes.
/// The defaults are the article's (one LSTM layer, 1 feature, 64 hidden units, 2 classes).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct SequenceClassifierConfig {
    /// The recurrent layer: its cell (the article's LSTM, or a GRU or tanh RNN in its place),
    /// `input_size`, `hidden_size`, `num_layers`, directions and inter-layer dropout.
    #[serde(flatten)]
    pub recurrent: RecurrentConfig,
    /// Number of classes (`output_size`).
    pub output_size: i64,
}

impl Default for SequenceClassifierConfig {
    fn default() -> Self {
        Self { recurrent: RecurrentConfig::default(), output_size: 2 }
    }
}

impl SequenceClassifierConfig {
    /// Checks every size is at least 1 and the dropout a probability.
    pub fn validate(&self) -> Result<()> {
        checks::at_least_one("output size", self.output_size)?;
        self.recurrent.validate()?;
        // fc.weight is [output_size, hidden × directions].
        ensure!(
            self.output_size.checked_mul(self.features()).is_some(),
            "output size {} too large",
            self.output_size
        );
        Ok(())
    }

    /// How many tensors [`Self::parameter_shapes`] lists (the recurrent layer's, then the
    /// linear layer's 2), computed without listing them; `None` past `usize`.
    pub fn num_parameter_tensors(&self) -> Option<usize> {
        self.recurrent.num_parameter_tensors()?.checked_add(2)
    }

    /// What the linear layer reads per sequence: hidden size × directions.
    pub fn features(&self) -> i64 {
        self.recurrent.hidden_size * self.recurrent.num_directions()
    }

    /// The `state_dict` names and shapes of the model's parameters, in PyTorch's
    /// `named_parameters()` order, relative to the model's root: the recurrent layer's
    /// ([`RecurrentConfig::parameter_shapes`]) under its cell's module name
    /// (`lstm.weight_ih_l0`, `gru.…`, `rnn.…`), then `fc.weight`, `fc.bias`.
    pub fn parameter_shapes(&self) -> Vec<(String, Vec<i64>)> {
        let module = self.recurrent.cell.module_name();
        let mut shapes: Vec<(String, Vec<i64>)> = self
            .recurrent
            .parameter_shapes()
            .into_iter()
            .map(|(name, shape)| (format!("{module}.{name}"), shape))
            .collect();
        shapes.push(("fc.weight".into(), vec![self.output_size, self.features()]));
        shapes.push(("fc.bias".into(), vec![self.output_size]));
        shapes
    }
}

/// The article's LSTM classifier: an LSTM (or, by [`SequenceClassifierConfig::cell`], a GRU or RNN) over the
/// sequence, a linear layer on its last output.
#[derive(Debug)]
pub struct SequenceClassifier {
    rnn: Recurrent,
    fc: nn::Linear,
    config: SequenceClassifierConfig,
}

impl SequenceClassifier {
    /// Builds the model under `path` (variables `lstm.*`, or `gru.*` / `rnn.*`, and `fc.*`),
    /// drawing its parameters from libtorch's default generator in PyTorch's order: the
    /// recurrent layer's, then `fc.weight`, `fc.bias`.
    pub fn new(path: &nn::Path, config: SequenceClassifierConfig) -> Result<Self> {
        config.validate()?;
        let rnn = Recurrent::new(&(path / config.recurrent.cell.module_name()), config.recurrent)?;
        let fc = init::linear(&(path / "fc"), config.features(), config.output_size);
        Ok(Self { rnn, fc, config })
    }

    /// The model's hyperparameters.
    pub fn config(&self) -> &SequenceClassifierConfig {
        &self.config
    }

    /// PyTorch's `nn.LSTM.flatten_parameters()` (or the GRU's or RNN's): see
    /// [`Recurrent::flatten_parameters`]. Call it after moving the `VarStore` to a CUDA device
    /// (`vs.set_device`), before creating the optimiser; a no-op (`Ok(false)`) on the CPU.
    pub fn flatten_parameters(&self) -> Result<bool> {
        self.rnn.flatten_parameters()
    }

    /// The article's forward pass: `xs` [batch, seq_len, input_size] (float, on the model's
    /// device) gives logits [batch, output_size], from the LSTM output at the last time step
    /// (for a bidirectional LSTM, both directions' outputs there, as PyTorch's `out[:, -1, :]`).
    /// The LSTM runs in training mode, as in the article, which never calls `model.eval()`.
    pub fn forward(&self, xs: &Tensor) -> Result<Tensor> {
        self.check_input(xs, 3)?;
        let out = self.rnn.forward(xs, true)?.output;
        Ok(out.f_select(1, -1)?.f_linear(&self.fc.ws, self.fc.bs.as_ref())?)
    }

    /// Forward over a padded batch of variable-length sequences, as PyTorch's `nn.LSTM` runs on
    /// `pack_padded_sequence(xs, lengths, batch_first=True, enforce_sorted=False)`.
    ///
    /// `xs` [batch, max_len, input_size], `lengths` [batch] (int64, on the CPU, each in
    /// 1..=max_len) give logits [batch, output_size] from each sequence's final hidden state
    /// (`h_n` of the last layer; bidirectional: the forward state at the last real step joined
    /// with the backward state at the first). Padding never reaches the recurrent layer, so a sequence's
    /// logits do not depend on the rest of its batch. `train` turns inter-layer dropout on.
    pub fn forward_packed(&self, xs: &Tensor, lengths: &Tensor, train: bool) -> Result<Tensor> {
        self.classify(&self.pooled_packed(xs, lengths, train, Pooling::Last)?)
    }

    /// The recurrent layer's parameters in libtorch's flat order (per layer, per direction:
    /// `weight_ih`, `weight_hh`, `bias_ih`, `bias_hh`), as [`crate::nn::equations::unroll`] takes them.
    pub fn rnn_parameters(&self) -> &[Tensor] {
        self.rnn.parameters()
    }

    /// The linear layer: `features` [batch, hidden × directions] give logits [batch, output_size].
    pub fn classify(&self, features: &Tensor) -> Result<Tensor> {
        Ok(features.f_linear(&self.fc.ws, self.fc.bs.as_ref())?)
    }

    /// What [`SequenceClassifier::forward_packed`] gives its linear layer, with a choice of what that
    /// is: the final hidden state ([`Pooling::Last`]), or the maximum or mean of the last
    /// layer's outputs over each sequence's real steps, as PyTorch computes them from
    /// `pad_packed_sequence(out, batch_first=True, padding_value=-inf or 0)`:
    /// `out.max(1).values`, or `out.sum(1) / lengths[:, None]`. Inputs as there; features
    /// [batch, hidden × directions]. The padding never enters a maximum or a mean.
    pub fn pooled_packed(
        &self,
        xs: &Tensor,
        lengths: &Tensor,
        train: bool,
        pooling: Pooling,
    ) -> Result<Tensor> {
        self.check_input(xs, 3)?;
        let (batch, max_len) = (xs.size()[0], xs.size()[1]);
        check_lengths(lengths, batch, max_len)?;
        let (data, batch_sizes, sorted_indices) = pack(xs, lengths)?;
        let out = self.rnn.forward_packed(&data, &batch_sizes, batch, train)?;
        // Undo the sort: index_select(batch dim, invert_permutation(sorted_indices)).
        let unsorted = sorted_indices.map(|i| i.f_argsort(0, false)).transpose()?;
        let unsort = |t: Tensor, dim: i64| match &unsorted {
            Some(indices) => t.f_index_select(dim, indices),
            None => Ok(t),
        };
        match pooling {
            Pooling::Last => {
                let h_n = unsort(out.h_n, 1)?;
                if self.config.recurrent.bidirectional {
                    Ok(Tensor::f_cat(&[h_n.f_get(-2)?, h_n.f_get(-1)?], 1)?)
                } else {
                    Ok(h_n.f_get(-1)?)
                }
            }
            Pooling::Max | Pooling::Mean => {
                let padding = if pooling == Pooling::Max { f64::NEG_INFINITY } else { 0.0 };
                let steps = batch_sizes.size()[0];
                let (padded, _) =
                    Tensor::f_internal_pad_packed_sequence(&out.output, &batch_sizes, true, padding, steps)?;
                let padded = unsort(padded, 0)?;
                if pooling == Pooling::Max {
                    Ok(max_over_steps(&padded)?)
                } else {
                    let lengths = lengths.f_to_kind(padded.kind())?.f_to_device(padded.device())?;
                    Ok(padded
                        .f_sum_dim_intlist(1, false, None::<tch::Kind>)?
                        .f_div(&lengths.f_unsqueeze(1)?)?)
                }
            }
        }
    }

    fn check_input(&self, xs: &Tensor, dims: usize) -> Result<()> {
        let size = xs.size();
        ensure!(
            size.len() == dims && size[dims - 1] == self.config.recurrent.input_size,
            "expected input [batch, seq_len, {}], got {size:?}",
            self.config.recurrent.input_size
        );
        let weight = &self.fc.ws;
        ensure!(
            xs.kind() == weight.kind() && xs.device() == weight.device(),
            "input is {:?} on {:?}, the model is {:?} on {:?}",
            xs.kind(),
            xs.device(),
            weight.kind(),
            weight.device()
        );
        ensure!(size[1] >= 1, "sequences must have at least one time step");
        Ok(())
    }
}

/// `padded.max(1).values`: the maximum of [batch, steps, features] over the steps. Where a
/// gradient will flow, as `max(1)` computes it (its backward gives each maximum's gradient to one
/// step, as PyTorch's does); otherwise (inference) with `amax`, the same values from a
/// vectorized reduction, 10–18x faster than `max`'s search for the indices (1.3 ms against
/// 0.07 ms for [64, 60, 256] on one thread).
fn max_over_steps(padded: &Tensor) -> Result<Tensor> {
    Ok(if padded.requires_grad() { padded.f_max_dim(1, false)?.0 } else { padded.f_amax([1], false)? })
}

/// Checks `lengths` is int64 [batch] with every length in 1..=max_len; gives them back.
fn check_lengths(lengths: &Tensor, batch: i64, max_len: i64) -> Result<Vec<i64>> {
    ensure!(
        lengths.size() == [batch] && lengths.kind() == tch::Kind::Int64,
        "lengths must be int64 [{batch}], got {:?} {:?}",
        lengths.kind(),
        lengths.size()
    );
    let values = Vec::<i64>::try_from(lengths)?;
    if let Some(bad) = values.iter().find(|&&l| !(1..=max_len).contains(&l)) {
        bail!("lengths must lie in 1..={max_len}, got {bad}");
    }
    Ok(values)
}

/// `pack_padded_sequence(xs, lengths, batch_first=True, enforce_sorted=False)`: sorts the batch
/// by length, longest first, and packs it; returns the packed data [Σ lengths, input], the
/// batch sizes [steps] and the sort's indices (on `xs`' device; `None` for a single sequence,
/// whose sort and un-sort are identities, pure indexing, and are skipped).
fn pack(xs: &Tensor, lengths: &Tensor) -> Result<(Tensor, Tensor, Option<Tensor>)> {
    let (sorted, sorted_lengths, sorted_indices) = if xs.size()[0] == 1 {
        (xs.shallow_clone(), lengths.shallow_clone(), None)
    } else {
        let (sorted_lengths, sorted_indices) = lengths.f_sort(0, true)?;
        let sorted_indices = sorted_indices.f_to_device(xs.device())?;
        (xs.f_index_select(0, &sorted_indices)?, sorted_lengths, Some(sorted_indices))
    };
    let (data, batch_sizes) = Tensor::f_internal_pack_padded_sequence(&sorted, &sorted_lengths, true)?;
    Ok((data, batch_sizes, sorted_indices))
}

/// `nn.CrossEntropyLoss()(logits, targets)`: libtorch's `cross_entropy_loss` with mean reduction,
/// ignore index -100 and no label smoothing. `logits` [batch, classes], `targets` [batch] int64
/// give a scalar.
pub fn cross_entropy(logits: &Tensor, targets: &Tensor) -> Result<Tensor> {
    weighted_cross_entropy(logits, targets, None)
}

/// `nn.CrossEntropyLoss(weight=weights)(logits, targets)`: with `weights` [classes] (float, on
/// the logits' device), each text's loss is scaled by its class's weight and the mean is taken
/// over the weights (`Σ wᵢ·lossᵢ / Σ wᵢ`); `None` is [`cross_entropy`].
pub fn weighted_cross_entropy(logits: &Tensor, targets: &Tensor, weights: Option<&Tensor>) -> Result<Tensor> {
    Ok(logits.f_cross_entropy_loss(targets, weights, tch::Reduction::Mean, -100, 0.0)?)
}

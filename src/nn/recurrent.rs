//! The recurrent layer under the classifiers: PyTorch's `nn.LSTM`, `nn.GRU` or `nn.RNN` (tanh),
//! batch-first, initialised draw for draw as PyTorch does, run by libtorch's fused kernels on
//! padded or packed sequences.
//!
//! The three cells share everything but their equations (see [`super::equations`]) and the number of
//! gate blocks stacked in each weight: per layer and direction, `weight_ih_l{k}[_reverse]`
//! [blocks × hidden, input], `weight_hh_l{k}` [blocks × hidden, hidden], `bias_ih_l{k}` and
//! `bias_hh_l{k}` [blocks × hidden], with 4 blocks for the LSTM (input, forget, cell, output),
//! 3 for the GRU (reset, update, new) and 1 for the RNN. Every one is drawn uniform on
//! ±1/√hidden, in that order (PyTorch's `RNNBase.reset_parameters`). The LSTM also carries a
//! cell state; the other two only a hidden state. An LSTM's forget-gate bias may then be set
//! (`forget_bias`: [`super::init::set_forget_bias`]), which draws nothing.

use anyhow::{ensure, Context, Result};
use serde::{Deserialize, Serialize};
use tch::{nn, Tensor};

use super::{init, Cell};
use crate::runtime::checks;

/// The sizes of a [`Recurrent`] layer.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct RecurrentConfig {
    /// The cell (an LSTM where a saved config names none).
    #[serde(default)]
    pub cell: Cell,
    /// Features per time step.
    pub input_size: i64,
    /// Width of the hidden state (per direction).
    pub hidden_size: i64,
    /// Stacked layers.
    pub num_layers: i64,
    /// A second layer reads each sequence backwards.
    pub bidirectional: bool,
    /// Dropout on the outputs of every layer but the last, in training only.
    pub dropout: f64,
    /// The LSTM's forget-gate bias at initialisation (every layer and direction), set after
    /// PyTorch's draws; `None`: PyTorch's draws (where a saved config names none).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub forget_bias: Option<f64>,
}

impl Default for RecurrentConfig {
    /// The article's layer: a one-layer, unidirectional LSTM, 1 feature in, 64 hidden units.
    fn default() -> Self {
        Self {
            cell: Cell::Lstm,
            input_size: 1,
            hidden_size: 64,
            num_layers: 1,
            bidirectional: false,
            dropout: 0.0,
            forget_bias: None,
        }
    }
}

impl RecurrentConfig {
    /// 2 for a bidirectional layer, else 1.
    pub fn num_directions(&self) -> i64 {
        if self.bidirectional {
            2
        } else {
            1
        }
    }

    /// Checks every size is at least 1, the dropout a probability, and that the weights'
    /// shapes fit in an `i64` (a hostile checkpoint config must not overflow them).
    pub fn validate(&self) -> Result<()> {
        for (name, value) in [
            ("input size", self.input_size),
            ("hidden size", self.hidden_size),
            ("number of layers", self.num_layers),
        ] {
            checks::at_least_one(name, value)?;
        }
        checks::dropout("dropout", self.dropout)?;
        if let Some(bias) = self.forget_bias {
            ensure!(
                self.cell == Cell::Lstm,
                "--forget-bias applies to the LSTM only: {} has no forget gate",
                self.cell.pytorch_class()
            );
            checks::float32("--forget-bias", bias)?;
        }
        // The shapes hold blocks × hidden_size (the gates' rows) and hidden_size × directions
        // (a layer's output, the next layer's input).
        ensure!(
            self.hidden_size.checked_mul(self.cell.blocks()).is_some()
                && self.hidden_size.checked_mul(self.num_directions()).is_some(),
            "hidden size {} too large",
            self.hidden_size
        );
        Ok(())
    }

    /// The names of the layer's parameters in libtorch's flat-weight order
    /// (`_flat_weights_names`): per layer, per direction, `weight_ih`, `weight_hh`, `bias_ih`,
    /// `bias_hh` (`weight_ih_l0`, ..., `bias_hh_l1_reverse`).
    pub fn parameter_names(&self) -> Vec<String> {
        let suffixes: &[&str] = if self.bidirectional { &["", "_reverse"] } else { &[""] };
        let mut names = Vec::new();
        for layer in 0..self.num_layers {
            for suffix in suffixes {
                for kind in ["weight_ih", "weight_hh", "bias_ih", "bias_hh"] {
                    names.push(format!("{kind}_l{layer}{suffix}"));
                }
            }
        }
        names
    }

    /// The layer's parameters, names and shapes, in [`Self::parameter_names`]' order: with
    /// `blocks` = [`Cell::blocks`] and `h` the hidden size, `weight_ih_l{k}` [blocks × h, input]
    /// (input: `input_size` for layer 0, h × directions above it), `weight_hh_l{k}`
    /// [blocks × h, h], `bias_ih_l{k}` and `bias_hh_l{k}` [blocks × h]. The one place this
    /// rule is written: the layer creates its variables from it and a checkpoint is checked
    /// against it.
    pub fn parameter_shapes(&self) -> Vec<(String, Vec<i64>)> {
        let (h, blocks) = (self.hidden_size, self.cell.blocks());
        let above = h * self.num_directions();
        let per_layer = 4 * self.num_directions() as usize;
        self.parameter_names()
            .into_iter()
            .enumerate()
            .map(|(i, name)| {
                let layer_input = if i < per_layer { self.input_size } else { above };
                let shape = match i % 4 {
                    0 => vec![blocks * h, layer_input], // weight_ih
                    1 => vec![blocks * h, h],           // weight_hh
                    _ => vec![blocks * h],              // bias_ih, bias_hh
                };
                (name, shape)
            })
            .collect()
    }

    /// How many tensors [`Self::parameter_shapes`] lists (4 per layer and direction), computed
    /// without listing them (a checkpoint's config may claim billions of layers); `None` past
    /// `usize`.
    pub fn num_parameter_tensors(&self) -> Option<usize> {
        usize::try_from(self.num_layers).ok()?.checked_mul(4 * self.num_directions() as usize)
    }
}

/// `nn.LSTM` / `nn.GRU` / `nn.RNN` (batch-first) with PyTorch's initialisation.
#[derive(Debug)]
pub struct Recurrent {
    /// The parameters in libtorch's flat order (per layer, per direction: `weight_ih`,
    /// `weight_hh`, `bias_ih`, `bias_hh`).
    flat_weights: Vec<Tensor>,
    config: RecurrentConfig,
}

/// What a recurrent layer returns: the last layer's outputs and the final hidden states.
#[derive(Debug)]
pub struct RecurrentOutput {
    /// Batch-first [batch, seq_len, directions × hidden] from [`Recurrent::forward`]; packed
    /// data [Σ lengths, directions × hidden] from [`Recurrent::forward_packed`].
    pub output: Tensor,
    /// Final hidden states [layers × directions, batch, hidden] (in packed order for
    /// [`Recurrent::forward_packed`]).
    pub h_n: Tensor,
}

impl Recurrent {
    /// Creates the variables under `path` (`weight_ih_l0`, ...), drawing them from libtorch's
    /// default generator in PyTorch's order, then sets an LSTM's forget-gate bias if the config
    /// asks ([`super::init::set_forget_bias`], no draw); on a CUDA `path`, flattens them as
    /// PyTorch's constructor does ([`Recurrent::flatten_parameters`]).
    pub fn new(path: &nn::Path, config: RecurrentConfig) -> Result<Self> {
        config.validate()?;
        let bound = 1.0 / (config.hidden_size as f64).sqrt();
        let uniform = nn::Init::Uniform { lo: -bound, up: bound };
        let flat_weights = config
            .parameter_shapes()
            .iter()
            .map(|(name, shape)| {
                path.f_var(name, shape, uniform).with_context(|| format!("cannot create {name}"))
            })
            .collect::<Result<Vec<_>>>()?;
        if let Some(bias) = config.forget_bias {
            // Per layer and direction: weight_ih, weight_hh, bias_ih, bias_hh.
            for chunk in flat_weights.chunks(4) {
                init::set_forget_bias(&chunk[2], &chunk[3], config.hidden_size, bias)?;
            }
        }
        let layer = Self { flat_weights, config };
        layer.flatten_parameters()?;
        Ok(layer)
    }

    /// The layer's sizes and cell.
    pub fn config(&self) -> &RecurrentConfig {
        &self.config
    }

    /// The parameters in libtorch's flat order (per layer, per direction: `weight_ih`,
    /// `weight_hh`, `bias_ih`, `bias_hh`), as [`super::equations::unroll`] takes them.
    pub fn parameters(&self) -> &[Tensor] {
        &self.flat_weights
    }

    /// PyTorch's `RNNBase.flatten_parameters()`: on a CUDA device with cuDNN, packs the
    /// weights into one contiguous cuDNN buffer (`torch._cudnn_rnn_flatten_weight`) and makes
    /// every parameter a view into it, so cuDNN uses them in place instead of repacking (and
    /// warning "RNN module weights are not part of single contiguous chunk of memory") at
    /// every call. Returns whether it flattened.
    ///
    /// Call it after moving the `VarStore` to a CUDA device (`vs.set_device`), before creating
    /// the optimiser, as PyTorch's `model.to(device)` does. The op changes the parameters'
    /// storage in place (`set_`), so the `VarStore`'s variables, the flat weight list and any
    /// other handle to them see the views: names, shapes and values are unchanged, and
    /// optimiser updates and checkpoint saves go through the buffer. Like PyTorch, it is a
    /// no-op elsewhere: on the CPU, without cuDNN (or with it disabled), for parameters of mixed
    /// kinds or devices, or for parameters that alias each other.
    pub fn flatten_parameters(&self) -> Result<bool> {
        let weights = &self.flat_weights;
        let Some(first) = weights.first() else { return Ok(false) };
        let (kind, device) = (first.kind(), first.device());
        let cudnn_kind = matches!(kind, tch::Kind::Float | tch::Kind::Half | tch::Kind::Double);
        if !device.is_cuda()
            || !cudnn_kind
            || !tch::Cuda::cudnn_is_available()
            || !tch::Cuda::user_enabled_cudnn()
            || weights.iter().any(|w| w.kind() != kind || w.device() != device)
        {
            return Ok(false);
        }
        let mut pointers: Vec<usize> = weights.iter().map(|w| w.data_ptr() as usize).collect();
        pointers.sort_unstable();
        pointers.dedup();
        if pointers.len() != weights.len() {
            return Ok(false);
        }
        let c = &self.config;
        // (weights, weight_stride0: 4 per layer and direction with biases, input_size, mode,
        // hidden_size, proj_size, num_layers, batch_first, bidirectional). The buffer it
        // returns stays alive through the parameters' storage, as in PyTorch.
        let _buffer = tch::no_grad(|| {
            Tensor::f_internal_cudnn_rnn_flatten_weight(
                weights,
                4,
                c.input_size,
                c.cell.cudnn_mode(),
                c.hidden_size,
                0,
                c.num_layers,
                true,
                c.bidirectional,
            )
        })
        .with_context(|| {
            format!("cannot flatten the {} weights into a cuDNN buffer", c.cell.pytorch_class())
        })?;
        Ok(true)
    }

    /// The zero initial state [layers × directions, batch, hidden] on `like`'s device and kind
    /// (the LSTM takes it as both h0 and c0: libtorch only reads them).
    fn zero_state(&self, batch: i64, like: &Tensor) -> Result<Tensor> {
        let c = &self.config;
        let shape = [c.num_layers * c.num_directions(), batch, c.hidden_size];
        Ok(Tensor::f_zeros(shape, (like.kind(), like.device()))?)
    }

    /// The layer on padded sequences `xs` [batch, seq_len, input] (batch-first) from zero
    /// states, as `nn.LSTM(xs)` etc.: `train` turns inter-layer dropout on.
    pub fn forward(&self, xs: &Tensor, train: bool) -> Result<RecurrentOutput> {
        let c = &self.config;
        let zeros = self.zero_state(xs.size()[0], xs)?;
        let w = &self.flat_weights;
        let (layers, p, bi) = (c.num_layers, c.dropout, c.bidirectional);
        let (output, h_n) = match c.cell {
            Cell::Lstm => {
                let (output, h_n, _) = xs.f_lstm(
                    &[&zeros, &zeros],
                    &w.iter().collect::<Vec<_>>(),
                    true,
                    layers,
                    p,
                    train,
                    bi,
                    true,
                )?;
                (output, h_n)
            }
            Cell::Gru => xs.f_gru(&zeros, w, true, layers, p, train, bi, true)?,
            Cell::Rnn => xs.f_rnn_tanh(&zeros, w, true, layers, p, train, bi, true)?,
        };
        Ok(RecurrentOutput { output, h_n })
    }

    /// The layer on a packed batch (`data` [Σ lengths, input] and `batch_sizes` [steps] from
    /// `torch._pack_padded_sequence`, `batch` sequences) from zero states, as PyTorch's module
    /// runs on a `PackedSequence` (`torch._VF.lstm` / `gru` / `rnn_tanh` on the data).
    pub fn forward_packed(
        &self,
        data: &Tensor,
        batch_sizes: &Tensor,
        batch: i64,
        train: bool,
    ) -> Result<RecurrentOutput> {
        let c = &self.config;
        let zeros = self.zero_state(batch, data)?;
        let w = &self.flat_weights;
        let (layers, p, bi) = (c.num_layers, c.dropout, c.bidirectional);
        let (output, h_n) = match c.cell {
            Cell::Lstm => {
                let weights = w.iter().collect::<Vec<_>>();
                let (output, h_n, _) = Tensor::f_lstm_data(
                    data,
                    batch_sizes,
                    &[&zeros, &zeros],
                    &weights,
                    true,
                    layers,
                    p,
                    train,
                    bi,
                )?;
                (output, h_n)
            }
            Cell::Gru => Tensor::f_gru_data(data, batch_sizes, &zeros, w, true, layers, p, train, bi)?,
            Cell::Rnn => Tensor::f_rnn_tanh_data(data, batch_sizes, &zeros, w, true, layers, p, train, bi)?,
        };
        Ok(RecurrentOutput { output, h_n })
    }
}

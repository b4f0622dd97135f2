//! The sentiment classifier: `nn.Embedding` → dropout → the article's LSTM classifier (or a GRU
//! or tanh RNN in the LSTM's place: `--cell`), run on packed sequences, its linear layer reading
//! (through dropout) the final hidden state or the max or mean of the outputs.
//!
//! ```python
//! class TextRNN(nn.Module):                       # scripts/text_reference.py
//!     def __init__(self, vocab_size, embedding_dim, hidden_size, num_layers, num_classes,
//!                  bidirectional, dropout, embedding_dropout, pooling, output_dropout, cell,
//!                  forget_bias=None):
//!         self.embedding = nn.Embedding(vocab_size, embedding_dim, padding_idx=0)
//!         self.embedding_dropout = nn.Dropout(embedding_dropout)
//!         # self.lstm = nn.LSTM(...), self.gru = nn.GRU(...) or self.rnn = nn.RNN(...):
//!         setattr(self, cell, CELLS[cell](embedding_dim, hidden_size, num_layers, batch_first=True,
//!                                         bidirectional=bidirectional, dropout=dropout))
//!         if forget_bias is not None:             # bias_ih[h:2h] = B, bias_hh[h:2h] = 0
//!             set_forget_bias(self.lstm, forget_bias)
//!         self.output_dropout = nn.Dropout(output_dropout)
//!         self.fc = nn.Linear(hidden_size * (2 if bidirectional else 1), num_classes)
//!     def forward(self, tokens, lengths):
//!         x = self.embedding_dropout(self.embedding(tokens))
//!         packed = pack_padded_sequence(x, lengths, batch_first=True, enforce_sorted=False)
//!         out, hidden = getattr(self, self.cell)(packed)
//!         h_n = hidden[0] if self.cell == "lstm" else hidden     # the LSTM adds c_n
//!         if self.pooling == "last":
//!             h = torch.cat([h_n[-2], h_n[-1]], 1) if self.bidirectional else h_n[-1]
//!         elif self.pooling == "max":
//!             h = pad_packed_sequence(out, batch_first=True, padding_value=-inf)[0].max(1).values
//!         else:
//!             padded = pad_packed_sequence(out, batch_first=True)[0]
//!             h = padded.sum(1) / lengths.to(padded)[:, None]
//!         return self.fc(self.output_dropout(h))
//! ```
//!
//! Variables are `embedding.weight`, `lstm.*` (`gru.*`, `rnn.*`: the cell's name), `fc.*`, the
//! `state_dict` names. An LSTM model keeps the names it always had, so LSTM checkpoints of every
//! format load unchanged.

use anyhow::{ensure, Result};
use serde::{Deserialize, Serialize};
use tch::{nn, Tensor};

use super::{init, Cell, LstmKernel, Pooling, RecurrentConfig, SequenceClassifier, SequenceClassifierConfig};
use crate::data::vocab::PAD_ID;
use crate::runtime::checks;

/// Hyperparameters of [`TextClassifier`], saved in a checkpoint's `config.json` (as one flat
/// object: the architecture's fields sit beside the two sizes).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct TextClassifierConfig {
    /// Vocabulary size (rows of the embedding), `<pad>` and `<unk>` included.
    pub vocab_size: i64,
    /// Number of classes.
    pub num_classes: i64,
    /// Everything else: widths, cell, layers, directions, dropouts, pooling, forget-gate bias.
    #[serde(flatten)]
    pub architecture: TextArchitecture,
}

/// A [`TextClassifier`]'s architecture: every hyperparameter but the two sizes its data decides
/// (vocabulary and classes), each written once. Each field is also `lstm-tch train`'s flag of the
/// same name, with its default beside it (the defaults were chosen on real reviews:
/// docs/real-data.md); [`TextArchitecture::default`] is those defaults. A field that a
/// checkpoint of an older format lacks reads as that format's behaviour (`#[serde(default)]`).
#[derive(Debug, Clone, Copy, PartialEq, clap::Args, Serialize, Deserialize)]
pub struct TextArchitecture {
    /// Embedding width.
    #[arg(long, default_value_t = 128)]
    pub embedding_dim: i64,
    /// The recurrent cell: lstm (nn.LSTM, the article's), gru (nn.GRU) or rnn (nn.RNN, tanh)
    /// [`lstm` in format-1 and format-2 checkpoints].
    #[arg(long, value_enum, default_value_t)]
    #[serde(default)]
    pub cell: Cell,
    /// Hidden size (per direction).
    #[arg(long, default_value_t = 128)]
    pub hidden_size: i64,
    /// Stacked recurrent layers.
    #[arg(long, default_value_t = 1)]
    pub num_layers: i64,
    /// Read each text in both directions (`--bidirectional false`: forwards only).
    #[arg(long, num_args = 0..=1, default_value_t = true, default_missing_value = "true",
          action = clap::ArgAction::Set, value_name = "BOOL")]
    pub bidirectional: bool,
    /// Dropout between recurrent layers (needs --num-layers ≥ 2 to have an effect).
    #[arg(long, default_value_t = 0.0)]
    pub dropout: f64,
    /// Dropout on the embedded tokens, in training [0 in format-1 checkpoints].
    #[arg(long, default_value_t = 0.3)]
    #[serde(default)]
    pub embedding_dropout: f64,
    /// What the classifier reads: the final hidden state (last), or the max or mean of the
    /// recurrent layer's outputs over the text [`last` in format-1 checkpoints].
    #[arg(long, value_enum, default_value_t = Pooling::Max)]
    #[serde(default)]
    pub pooling: Pooling,
    /// Dropout on what the classifier reads (the pooled recurrent output), in training [0 in
    /// format-1 checkpoints].
    #[arg(long, default_value_t = 0.0)]
    #[serde(default)]
    pub output_dropout: f64,
    /// The LSTM's forget-gate bias at initialisation: after PyTorch's draws, the forget gate's
    /// quarter of every bias_ih is set to B and of every bias_hh to 0, so the gate starts near
    /// σ(B) (Keras: B = 1); LSTM only [default: PyTorch's draws, around 0; so in checkpoints
    /// without the field].
    #[arg(long, value_name = "B", allow_negative_numbers = true)]
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub forget_bias: Option<f64>,
}

impl Default for TextArchitecture {
    /// `lstm-tch train`'s defaults.
    fn default() -> Self {
        crate::runtime::flags::flag_defaults()
    }
}

impl TextClassifierConfig {
    /// The recurrent classifier on top of the embedding.
    pub fn classifier(&self) -> SequenceClassifierConfig {
        let a = &self.architecture;
        SequenceClassifierConfig {
            recurrent: RecurrentConfig {
                cell: a.cell,
                input_size: a.embedding_dim,
                hidden_size: a.hidden_size,
                num_layers: a.num_layers,
                bidirectional: a.bidirectional,
                dropout: a.dropout,
                forget_bias: a.forget_bias,
            },
            output_size: self.num_classes,
        }
    }

    /// Checks the sizes.
    pub fn validate(&self) -> Result<()> {
        ensure!(self.vocab_size >= 2, "the vocabulary needs at least <pad> and <unk>");
        checks::at_least_one("embedding dim", self.architecture.embedding_dim)?;
        ensure!(self.num_classes >= 2, "a classifier needs at least two classes, got {}", self.num_classes);
        let a = &self.architecture;
        for (name, p) in [("embedding", a.embedding_dropout), ("output", a.output_dropout)] {
            checks::dropout(&format!("{name} dropout"), p)?;
        }
        self.classifier().validate()
    }

    /// How many tensors [`Self::parameter_shapes`] lists, computed without listing them (a
    /// checkpoint's config may claim billions of layers); `None` past `usize`.
    pub fn num_parameter_tensors(&self) -> Option<usize> {
        self.classifier().num_parameter_tensors()?.checked_add(1)
    }

    /// The `state_dict` names and shapes, in PyTorch's `named_parameters()` order.
    pub fn parameter_shapes(&self) -> Vec<(String, Vec<i64>)> {
        let embedding =
            ("embedding.weight".to_owned(), vec![self.vocab_size, self.architecture.embedding_dim]);
        std::iter::once(embedding).chain(self.classifier().parameter_shapes()).collect()
    }
}

/// Embedding + LSTM (GRU, RNN) + linear classifier over variable-length token sequences.
#[derive(Debug)]
pub struct TextClassifier {
    embedding: Tensor,
    classifier: SequenceClassifier,
    config: TextClassifierConfig,
    lstm_kernel: LstmKernel,
}

impl TextClassifier {
    /// Builds the model under `path`, drawing its parameters in PyTorch's order: the embedding
    /// (N(0, 1), padding row zeroed), the recurrent layer, then the linear layer.
    pub fn new(path: &nn::Path, config: TextClassifierConfig) -> Result<Self> {
        config.validate()?;
        let embedding = init::embedding_weight(
            &(path / "embedding"),
            config.vocab_size,
            config.architecture.embedding_dim,
            PAD_ID,
        )?;
        let classifier = SequenceClassifier::new(path, config.classifier())?;
        Ok(Self { embedding, classifier, config, lstm_kernel: LstmKernel::Packed })
    }

    /// The model's hyperparameters.
    pub fn config(&self) -> &TextClassifierConfig {
        &self.config
    }

    /// The kernel inference runs on: the one set ([`Self::set_lstm_kernel`]; packed, PyTorch's
    /// bits, unless set) where oneDNN has a path for this model (an LSTM, float32, on the CPU),
    /// else [`LstmKernel::Packed`].
    pub fn kernel_in_effect(&self) -> LstmKernel {
        let (device, kind) = (self.embedding.device(), self.embedding.kind());
        match self.lstm_kernel {
            LstmKernel::Onednn if self.classifier.has_onednn_path(device, kind) => LstmKernel::Onednn,
            _ => LstmKernel::Packed,
        }
    }

    /// Runs the LSTM in inference on the CPU with `kernel` from now on (training, other cells
    /// and CUDA are unaffected: see [`LstmKernel`]).
    pub fn set_lstm_kernel(&mut self, kernel: LstmKernel) {
        self.lstm_kernel = kernel;
    }

    /// `flatten_parameters()` for the recurrent layer: see [`SequenceClassifier::flatten_parameters`].
    /// Call after `vs.set_device(cuda)`; a no-op (`Ok(false)`) on the CPU.
    pub fn flatten_parameters(&self) -> Result<bool> {
        self.classifier.flatten_parameters()
    }

    /// The embedded tokens [batch, length, embedding_dim] of `tokens` [batch, length] (int64),
    /// as the model reads them in evaluation mode (no dropout).
    pub fn embed(&self, tokens: &Tensor) -> Result<Tensor> {
        Ok(Tensor::f_embedding(&self.embedding, tokens, PAD_ID, false, false)?)
    }

    /// The recurrent and linear layers on top of the embedding.
    pub fn classifier(&self) -> &SequenceClassifier {
        &self.classifier
    }

    /// Logits [batch, num_classes] for `tokens` [batch, longest] (int64, on the model's device,
    /// padded with 0) of real `lengths` [batch] (int64, CPU). `train` enables dropout (and
    /// always runs packed); in evaluation the LSTM runs on [`Self::lstm_kernel`]. A text's logits
    /// do not depend on the rest of its batch (beyond rounding, with [`LstmKernel::Onednn`]):
    /// padding never enters the recurrent layer.
    pub fn forward(&self, tokens: &Tensor, lengths: &Tensor, train: bool) -> Result<Tensor> {
        ensure!(tokens.dim() == 2, "expected tokens [batch, length], got {:?}", tokens.size());
        let embedded = Tensor::f_embedding(&self.embedding, tokens, PAD_ID, false, false)?
            .f_dropout(self.config.architecture.embedding_dropout, train)?;
        let pooling = self.config.architecture.pooling;
        let features = if !train && self.lstm_kernel == LstmKernel::Onednn {
            self.classifier.pooled_by_direction(&embedded, lengths, pooling)?
        } else {
            self.classifier.pooled_packed(&embedded, lengths, train, pooling)?
        };
        self.classifier.classify(&features.f_dropout(self.config.architecture.output_dropout, train)?)
    }
}

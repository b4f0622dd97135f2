//! The model: PyTorch's recurrent layers and the classifiers built on them, initialised draw for
//! draw as PyTorch initialises them, with variables named like the `state_dict`.
//!
//! - [`Cell`]: which recurrent cell reads the sequence (`nn.LSTM`, `nn.GRU`, `nn.RNN`);
//! - [`Recurrent`]: the recurrent layer on padded or packed sequences (libtorch's fused kernels),
//!   and [`RecurrentConfig`], where the parameters' names and shapes are written once;
//! - [`SequenceClassifier`]: the article's `LSTMModel` over any cell: the recurrent layer, then
//!   a linear layer on its last output (or final state, max or mean);
//! - [`TextClassifier`]: the sentiment classifier: embedding → [`SequenceClassifier`];
//! - [`equations`]: the three cells from their equations, gate by gate, in plain tensor ops;
//! - [`init`]: `nn.Linear` and `nn.Embedding` initialised as PyTorch does, and the LSTM's
//!   forget-gate bias (`--forget-bias`);
//! - [`cross_entropy`] and [`weighted_cross_entropy`]: `nn.CrossEntropyLoss`.

mod cell;
pub mod equations;
pub mod init;
mod recurrent;
mod sequence;
mod text;

pub use cell::Cell;
pub use recurrent::{Recurrent, RecurrentConfig, RecurrentOutput};
pub use sequence::{
    cross_entropy, weighted_cross_entropy, LstmKernel, Pooling, SequenceClassifier, SequenceClassifierConfig,
};
pub use text::{TextArchitecture, TextClassifier, TextClassifierConfig};

//! Which recurrent cell reads the sequence: PyTorch's `nn.LSTM`, `nn.GRU` or `nn.RNN` (tanh).
//! The layer that runs it is [`super::Recurrent`]; its equations, gate by gate, are
//! [`super::equations`].

use serde::{Deserialize, Serialize};

/// Which recurrent cell reads the sequence.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Cell {
    /// `nn.LSTM`: input, forget and output gates and a cell state (the article's model).
    #[default]
    Lstm,
    /// `nn.GRU`: reset and update gates, no separate cell state; three weight blocks to the
    /// LSTM's four.
    Gru,
    /// `nn.RNN(nonlinearity="tanh")`: h' = tanh(W_ih x + b_ih + W_hh h + b_hh), no gates.
    Rnn,
}

impl Cell {
    /// Gate blocks stacked in each weight and bias: 4 (LSTM), 3 (GRU) or 1 (RNN).
    pub fn blocks(self) -> i64 {
        match self {
            Cell::Lstm => 4,
            Cell::Gru => 3,
            Cell::Rnn => 1,
        }
    }

    /// The module's attribute name in the model, the prefix of its `state_dict` keys:
    /// `lstm`, `gru` or `rnn` (a PyTorch model writes `self.lstm = nn.LSTM(...)`,
    /// `self.gru = nn.GRU(...)`, `self.rnn = nn.RNN(...)`).
    pub fn module_name(self) -> &'static str {
        match self {
            Cell::Lstm => "lstm",
            Cell::Gru => "gru",
            Cell::Rnn => "rnn",
        }
    }

    /// The PyTorch class: `nn.LSTM`, `nn.GRU` or `nn.RNN`.
    pub fn pytorch_class(self) -> &'static str {
        match self {
            Cell::Lstm => "nn.LSTM",
            Cell::Gru => "nn.GRU",
            Cell::Rnn => "nn.RNN",
        }
    }

    /// cuDNN's mode number (PyTorch's `rnn.cpp`: RNN_RELU 0, RNN_TANH 1, LSTM 2, GRU 3).
    pub(crate) fn cudnn_mode(self) -> i64 {
        match self {
            Cell::Lstm => 2,
            Cell::Gru => 3,
            Cell::Rnn => 1,
        }
    }
}

impl std::fmt::Display for Cell {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.module_name())
    }
}

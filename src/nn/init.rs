//! Layers initialised exactly as PyTorch initialises them, draw for draw.
//!
//! tch's own defaults differ from PyTorch's (../shared/docs/parity.md, "The random draws"):
//! `nn::RNNConfig::default()` uses Kaiming-ReLU weights and zero biases, and `nn::linear` draws
//! the bias before the weight. These constructors reproduce `nn.Linear.reset_parameters` and
//! `nn.Embedding.reset_parameters` (and [`super::Recurrent`] `RNNBase.reset_parameters`),
//! in PyTorch's order, on libtorch's default generator, so the same seed gives the same
//! parameters bit for bit. [`set_forget_bias`] is the one departure a user may ask for
//! (`--forget-bias`): it overwrites values after the draws, so it draws nothing and every later
//! draw is unchanged.

use anyhow::{ensure, Result};
use tch::{nn, Tensor};

/// `nn.Linear(in_features, out_features)` under `path`, with PyTorch's initialisation:
/// `weight` [out, in] from `kaiming_uniform_(a=√5)`, then `bias` [out] uniform on ±1/√in.
pub fn linear(path: &nn::Path, in_features: i64, out_features: i64) -> nn::Linear {
    // init.kaiming_uniform_(weight, a=math.sqrt(5)), with the same f64 operations.
    let a = 5f64.sqrt();
    let gain = (2.0 / (1.0 + a.powf(2.0))).sqrt();
    let std = gain / (in_features as f64).sqrt();
    let weight_bound = 3f64.sqrt() * std;
    let ws = path.var(
        "weight",
        &[out_features, in_features],
        nn::Init::Uniform { lo: -weight_bound, up: weight_bound },
    );
    let bias_bound = if in_features > 0 { 1.0 / (in_features as f64).sqrt() } else { 0.0 };
    let bs = path.var("bias", &[out_features], nn::Init::Uniform { lo: -bias_bound, up: bias_bound });
    nn::Linear { ws, bs: Some(bs) }
}

/// `nn.Embedding(num_embeddings, embedding_dim, padding_idx)` under `path`: `weight`
/// [num_embeddings, embedding_dim] drawn from N(0, 1), then the padding row set to zero.
pub fn embedding_weight(
    path: &nn::Path,
    num_embeddings: i64,
    embedding_dim: i64,
    padding_idx: i64,
) -> Result<Tensor> {
    ensure!(
        (0..num_embeddings).contains(&padding_idx),
        "padding index {padding_idx} is outside the vocabulary of {num_embeddings}"
    );
    let weight =
        path.var("weight", &[num_embeddings, embedding_dim], nn::Init::Randn { mean: 0.0, stdev: 1.0 });
    let _ = tch::no_grad(|| weight.get(padding_idx).f_fill_(0.0))?;
    Ok(weight)
}

/// The LSTM's forget gate at initialisation, as `--forget-bias B` asks: after PyTorch's draws,
/// the forget gate's quarter (rows `hidden..2 × hidden`: PyTorch stacks the gates input, forget,
/// cell, output) of `bias_ih` is set to `value` and of `bias_hh` to 0, so the gate's bias, their
/// sum, is exactly `value` (Keras's one bias with `unit_forget_bias=True`: 1). Only the sum
/// matters to training: the two biases always receive the same gradient. A PyTorch program does
/// the same with `bias_ih[h:2*h].fill_(value)` and `bias_hh[h:2*h].zero_()` under `no_grad`.
pub fn set_forget_bias(bias_ih: &Tensor, bias_hh: &Tensor, hidden: i64, value: f64) -> Result<()> {
    tch::no_grad(|| -> Result<()> {
        let _ = bias_ih.f_narrow(0, hidden, hidden)?.f_fill_(value)?;
        let _ = bias_hh.f_narrow(0, hidden, hidden)?.f_zero_()?;
        Ok(())
    })
}

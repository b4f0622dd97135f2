//! The LSTM written out from the article's equations, with plain tensor operations: what
//! libtorch's fused `lstm` kernel computes, step by step, so a reader can see (and inspect) the
//! gates at work; and the same for the article's foils, the GRU and the plain (tanh) RNN, with
//! PyTorch's equations for `nn.GRU` and `nn.RNN`.
//!
//! The LSTM, in PyTorch's gate order and weights (`nn.LSTM`'s `weight_ih_l{k}` rows are the
//! input, forget, cell and output gates' blocks, in that order):
//!
//! ```text
//! i  = σ(W_ii x + b_ii + W_hi h + b_hi)        input gate: how much of the candidate enters
//! f  = σ(W_if x + b_if + W_hf h + b_hf)        forget gate: how much of the old cell is kept
//! g  = tanh(W_ig x + b_ig + W_hg h + b_hg)     the candidate cell state
//! o  = σ(W_io x + b_io + W_ho h + b_ho)        output gate: how much of the cell is shown
//! c' = f ⊙ c + i ⊙ g
//! h' = o ⊙ tanh(c')
//! ```
//!
//! The GRU (`nn.GRU`: rows reset, update, new; no cell state, three blocks to the LSTM's four):
//!
//! ```text
//! r  = σ(W_ir x + b_ir + W_hr h + b_hr)        reset gate: how much of h the candidate sees
//! z  = σ(W_iz x + b_iz + W_hz h + b_hz)        update gate: how much of the old h is kept
//! n  = tanh(W_in x + b_in + r ⊙ (W_hn h + b_hn))   the candidate hidden state
//! h' = (1 − z) ⊙ n + z ⊙ h
//! ```
//!
//! The RNN (`nn.RNN(nonlinearity="tanh")`: one block, no gates):
//!
//! ```text
//! h' = tanh(W_ih x + b_ih + W_hh h + b_hh)
//! ```
//!
//! [`lstm_step`], [`gru_step`] and [`rnn_step`] are one time step of one layer and direction;
//! [`unroll`] runs a whole (multi-layer, optionally bidirectional, batch-first) network of any
//! of the three cells over a sequence from zero states, returning what `nn.LSTM` (`nn.GRU`,
//! `nn.RNN`) returns plus every step's gates and states. `tests/suite/cell.rs` holds them against the
//! fused kernels on the same weights, outputs and gradients, over a matrix of configurations.

use anyhow::{ensure, Context, Result};
use tch::Tensor;

pub use crate::nn::Cell;

/// One layer-direction's parameters, as `nn.LSTM` (`nn.GRU`, `nn.RNN`) names them:
/// `weight_ih` [blocks × H, input], `weight_hh` [blocks × H, H], `bias_ih` and `bias_hh`
/// [blocks × H], with 4 blocks (LSTM), 3 (GRU) or 1 (RNN).
#[derive(Debug)]
pub struct CellWeights<'a> {
    /// `weight_ih_l{k}[_reverse]`.
    pub weight_ih: &'a Tensor,
    /// `weight_hh_l{k}[_reverse]`.
    pub weight_hh: &'a Tensor,
    /// `bias_ih_l{k}[_reverse]`.
    pub bias_ih: &'a Tensor,
    /// `bias_hh_l{k}[_reverse]`.
    pub bias_hh: &'a Tensor,
}

impl CellWeights<'_> {
    /// `x W_ih^T + b_ih` and `h W_hh^T + b_hh`, each cut into `blocks` blocks [batch, hidden].
    fn blocks(&self, x: &Tensor, h: &Tensor, blocks: i64) -> Result<(Vec<Tensor>, Vec<Tensor>)> {
        let gi = x.f_matmul(&self.weight_ih.f_tr()?)? + self.bias_ih;
        let gh = h.f_matmul(&self.weight_hh.f_tr()?)? + self.bias_hh;
        let (gi, gh) = (gi.f_chunk(blocks, 1)?, gh.f_chunk(blocks, 1)?);
        ensure!(
            gi.len() == blocks as usize && gh.len() == blocks as usize,
            "the weights' rows must be {blocks} × hidden"
        );
        Ok((gi, gh))
    }
}

/// The LSTM's four gates at one step, each [batch, hidden].
#[derive(Debug)]
pub struct LstmGates {
    /// Input gate i, in (0, 1).
    pub input: Tensor,
    /// Forget gate f, in (0, 1).
    pub forget: Tensor,
    /// Candidate cell state g, in (-1, 1).
    pub cell: Tensor,
    /// Output gate o, in (0, 1).
    pub output: Tensor,
}

/// The GRU's gates at one step, each [batch, hidden].
#[derive(Debug)]
pub struct GruGates {
    /// Reset gate r, in (0, 1).
    pub reset: Tensor,
    /// Update gate z, in (0, 1): the share of the old hidden state kept.
    pub update: Tensor,
    /// Candidate hidden state n (PyTorch's "new gate"), in (-1, 1).
    pub new: Tensor,
}

/// One step's gates, whichever the cell.
#[derive(Debug)]
pub enum Gates {
    /// The LSTM's.
    Lstm(LstmGates),
    /// The GRU's.
    Gru(GruGates),
    /// The RNN has none.
    Rnn,
}

/// The names of a cell's gates, the ones in (0, 1), in the order [`Gates::named`] gives them:
/// `input`, `forget`, `output` (LSTM); `reset`, `update` (GRU); none (RNN).
pub fn gate_names(cell: Cell) -> &'static [&'static str] {
    match cell {
        Cell::Lstm => &["input", "forget", "output"],
        Cell::Gru => &["reset", "update"],
        Cell::Rnn => &[],
    }
}

impl Gates {
    /// The gates in (0, 1), named as [`gate_names`] names them, each [batch, hidden] (the
    /// candidates, LSTM `cell` and GRU `new`, are left out: they are not gates but values).
    pub fn named(&self) -> Vec<(&'static str, &Tensor)> {
        match self {
            Gates::Lstm(g) => vec![("input", &g.input), ("forget", &g.forget), ("output", &g.output)],
            Gates::Gru(g) => vec![("reset", &g.reset), ("update", &g.update)],
            Gates::Rnn => vec![],
        }
    }
}

/// One LSTM step: `x` [batch, input], the previous `h` and `c` [batch, hidden] give the new `h'`
/// and `c'` [batch, hidden] and the gates, by the equations of the module documentation.
pub fn lstm_step(x: &Tensor, h: &Tensor, c: &Tensor, w: &CellWeights) -> Result<(Tensor, Tensor, LstmGates)> {
    let pre = x.f_matmul(&w.weight_ih.f_tr()?)? + w.bias_ih + h.f_matmul(&w.weight_hh.f_tr()?)? + w.bias_hh;
    let pre = pre.f_chunk(4, 1)?;
    ensure!(pre.len() == 4, "the weights' rows must be 4 × hidden");
    let gates = LstmGates {
        input: pre[0].f_sigmoid()?,
        forget: pre[1].f_sigmoid()?,
        cell: pre[2].f_tanh()?,
        output: pre[3].f_sigmoid()?,
    };
    let c_next = &gates.forget * c + &gates.input * &gates.cell;
    let h_next = &gates.output * c_next.f_tanh()?;
    Ok((h_next, c_next, gates))
}

/// One GRU step: `x` [batch, input] and the previous `h` [batch, hidden] give the new `h'`
/// [batch, hidden] and the gates, by the equations of the module documentation.
pub fn gru_step(x: &Tensor, h: &Tensor, w: &CellWeights) -> Result<(Tensor, GruGates)> {
    let (gi, gh) = w.blocks(x, h, 3)?;
    let reset = (&gi[0] + &gh[0]).f_sigmoid()?;
    let update = (&gi[1] + &gh[1]).f_sigmoid()?;
    let new = (&gi[2] + &reset * &gh[2]).f_tanh()?;
    let h_next = (1.0 - &update) * &new + &update * h;
    Ok((h_next, GruGates { reset, update, new }))
}

/// One tanh-RNN step: `x` [batch, input] and the previous `h` [batch, hidden] give the new `h'`
/// [batch, hidden].
pub fn rnn_step(x: &Tensor, h: &Tensor, w: &CellWeights) -> Result<Tensor> {
    let (gi, gh) = w.blocks(x, h, 1)?;
    Ok((&gi[0] + &gh[0]).f_tanh()?)
}

/// One position of one layer and direction in [`Unrolled`].
#[derive(Debug)]
pub struct Step {
    /// The gates computed there.
    pub gates: Gates,
    /// The hidden state after it [batch, hidden].
    pub h: Tensor,
    /// The LSTM's cell state after it [batch, hidden]; `None` for the GRU and RNN.
    pub c: Option<Tensor>,
}

/// What [`unroll`] returns: `nn.LSTM`'s `(output, (h_n, c_n))` (`nn.GRU`'s and `nn.RNN`'s
/// `(output, h_n)`) and every step's gates and states.
#[derive(Debug)]
pub struct Unrolled {
    /// The last layer's hidden states [batch, seq_len, directions × hidden] (the reverse
    /// direction's at each position of the input, as the PyTorch modules give them).
    pub output: Tensor,
    /// Final hidden states [layers × directions, batch, hidden].
    pub h_n: Tensor,
    /// The LSTM's final cell states [layers × directions, batch, hidden]; `None` otherwise.
    pub c_n: Option<Tensor>,
    /// `steps[layer * directions + direction][t]`: the gates and states at input position t
    /// (in input order, whatever the direction).
    pub steps: Vec<Vec<Step>>,
}

/// The `cell` network over `xs` [batch, seq_len, input] (batch-first) from zero states, layer by
/// layer and direction by direction. `params` are the parameters in libtorch's flat order (per
/// layer, per direction: `weight_ih`, `weight_hh`, `bias_ih`, `bias_hh`; see
/// [`crate::nn::RecurrentConfig::parameter_names`]). No dropout: this is the evaluation-mode
/// network.
pub fn unroll(
    xs: &Tensor,
    params: &[Tensor],
    cell: Cell,
    num_layers: i64,
    bidirectional: bool,
) -> Result<Unrolled> {
    let directions = if bidirectional { 2 } else { 1 };
    let hidden = check_unroll_inputs(xs, params, cell, num_layers * directions)?;
    let zeros = Tensor::f_zeros([xs.size()[0], hidden], (xs.kind(), xs.device()))?;
    let (mut layer_input, mut h_n, mut c_n, mut all_steps) = (xs.shallow_clone(), vec![], vec![], vec![]);
    for layer in 0..num_layers {
        let mut outputs = Vec::new();
        for direction in 0..directions {
            let base = 4 * (layer * directions + direction) as usize;
            let w = CellWeights {
                weight_ih: &params[base],
                weight_hh: &params[base + 1],
                bias_ih: &params[base + 2],
                bias_hh: &params[base + 3],
            };
            let (steps, h, c) = run_direction(&layer_input, &w, cell, &zeros, direction == 1)?;
            let hs: Vec<&Tensor> = steps.iter().map(|s| &s.h).collect();
            outputs.push(Tensor::f_stack(&hs, 1)?);
            all_steps.push(steps);
            h_n.push(h);
            c_n.push(c);
        }
        layer_input = Tensor::f_cat(&outputs, 2)?;
    }
    Ok(Unrolled {
        output: layer_input,
        h_n: Tensor::f_stack(&h_n, 0)?,
        c_n: if cell == Cell::Lstm { Some(Tensor::f_stack(&c_n, 0)?) } else { None },
        steps: all_steps,
    })
}

/// Checks [`unroll`]'s inputs: `4 × layers_and_directions` parameters, `xs` [batch, seq_len ≥ 1,
/// features], and `weight_hh` [blocks × hidden, hidden]; returns the hidden size.
fn check_unroll_inputs(
    xs: &Tensor,
    params: &[Tensor],
    cell: Cell,
    layers_and_directions: i64,
) -> Result<i64> {
    ensure!(
        params.len() == 4 * layers_and_directions as usize,
        "expected {} {} parameters, got {}",
        4 * layers_and_directions,
        cell.pytorch_class(),
        params.len()
    );
    let size = xs.size();
    ensure!(size.len() == 3 && size[1] >= 1, "expected input [batch, seq_len ≥ 1, features], got {size:?}");
    let hidden = params[1].size()[1];
    ensure!(
        params[1].size() == [cell.blocks() * hidden, hidden],
        "{} weight_hh must be [{} × hidden, hidden], got {:?}",
        cell.pytorch_class(),
        cell.blocks(),
        params[1].size()
    );
    Ok(hidden)
}

/// One layer in one direction over `layer_input` [batch, seq_len, features] from the zero
/// states `zeros` [batch, hidden]: every position's [`Step`] in input order, then the final `h`
/// and `c` (for the GRU and RNN, `c` stays the zeros). `reverse` reads the positions backwards.
fn run_direction(
    layer_input: &Tensor,
    w: &CellWeights,
    cell: Cell,
    zeros: &Tensor,
    reverse: bool,
) -> Result<(Vec<Step>, Tensor, Tensor)> {
    let seq_len = layer_input.size()[1];
    let positions: Vec<i64> = if reverse { (0..seq_len).rev().collect() } else { (0..seq_len).collect() };
    let (mut h, mut c) = (zeros.shallow_clone(), zeros.shallow_clone());
    let mut steps: Vec<Option<Step>> = (0..seq_len).map(|_| None).collect();
    for &t in &positions {
        let x = layer_input.f_select(1, t)?;
        let step = match cell {
            Cell::Lstm => {
                let (h_next, c_next, g) = lstm_step(&x, &h, &c, w)?;
                c = c_next;
                Step { gates: Gates::Lstm(g), h: h_next, c: Some(c.shallow_clone()) }
            }
            Cell::Gru => {
                let (h_next, g) = gru_step(&x, &h, w)?;
                Step { gates: Gates::Gru(g), h: h_next, c: None }
            }
            Cell::Rnn => Step { gates: Gates::Rnn, h: rnn_step(&x, &h, w)?, c: None },
        };
        h = step.h.shallow_clone();
        steps[t as usize] = Some(step);
    }
    let steps = steps.into_iter().collect::<Option<_>>().context("a position did not run")?;
    Ok((steps, h, c))
}

//! The LSTM written out from the article's equations, with plain tensor operations: what
//! libtorch's fused `lstm` kernel computes, step by step, so a reader can see (and inspect) the
//! gates at work. PyTorch's gate order and weights (`nn.LSTM`'s `weight_ih_l{k}` rows are the
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
//! [`step`] is one time step of one layer and direction; [`unroll`] runs a whole (multi-layer,
//! optionally bidirectional, batch-first) LSTM over a sequence from zero states, returning what
//! `nn.LSTM` returns plus every step's gates. `tests/cell.rs` holds both against the fused
//! kernel on the same weights, outputs and gradients, over a matrix of configurations.

use anyhow::{ensure, Context, Result};
use tch::Tensor;

/// One layer-direction's parameters, as `nn.LSTM` names them: `weight_ih` [4H, input],
/// `weight_hh` [4H, H], `bias_ih` [4H], `bias_hh` [4H].
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

/// The four gates' activations at one step, each [batch, hidden].
#[derive(Debug)]
pub struct Gates {
    /// Input gate i, in (0, 1).
    pub input: Tensor,
    /// Forget gate f, in (0, 1).
    pub forget: Tensor,
    /// Candidate cell state g, in (-1, 1).
    pub cell: Tensor,
    /// Output gate o, in (0, 1).
    pub output: Tensor,
}

/// One step: `x` [batch, input], the previous `h` and `c` [batch, hidden] give the new `h'` and
/// `c'` [batch, hidden] and the gates, by the equations of the module documentation.
pub fn step(x: &Tensor, h: &Tensor, c: &Tensor, w: &CellWeights) -> Result<(Tensor, Tensor, Gates)> {
    let pre = x.f_matmul(&w.weight_ih.f_tr()?)? + w.bias_ih + h.f_matmul(&w.weight_hh.f_tr()?)? + w.bias_hh;
    let blocks = pre.f_chunk(4, 1)?;
    ensure!(blocks.len() == 4, "the weights' rows must be 4 × hidden");
    let gates = Gates {
        input: blocks[0].f_sigmoid()?,
        forget: blocks[1].f_sigmoid()?,
        cell: blocks[2].f_tanh()?,
        output: blocks[3].f_sigmoid()?,
    };
    let c_next = &gates.forget * c + &gates.input * &gates.cell;
    let h_next = &gates.output * c_next.f_tanh()?;
    Ok((h_next, c_next, gates))
}

/// What [`unroll`] returns: `nn.LSTM`'s `(output, (h_n, c_n))` and every step's gates.
#[derive(Debug)]
pub struct Unrolled {
    /// The last layer's hidden states [batch, seq_len, directions × hidden] (the reverse
    /// direction's at each position of the input, as `nn.LSTM` gives them).
    pub output: Tensor,
    /// Final hidden states [layers × directions, batch, hidden].
    pub h_n: Tensor,
    /// Final cell states [layers × directions, batch, hidden].
    pub c_n: Tensor,
    /// `gates[layer * directions + direction][t]`: the gates at input position t.
    pub gates: Vec<Vec<Gates>>,
    /// `cells[layer * directions + direction][t]`: the cell state [batch, hidden] after
    /// position t.
    pub cells: Vec<Vec<Tensor>>,
}

/// The LSTM over `xs` [batch, seq_len, input] (batch-first) from zero states, layer by layer and
/// direction by direction. `params` are the parameters in libtorch's flat order (per layer, per
/// direction: `weight_ih`, `weight_hh`, `bias_ih`, `bias_hh`; see
/// [`crate::layers::lstm_parameter_names`]). No dropout: this is the evaluation-mode network.
pub fn unroll(xs: &Tensor, params: &[Tensor], num_layers: i64, bidirectional: bool) -> Result<Unrolled> {
    let directions = if bidirectional { 2 } else { 1 };
    ensure!(
        params.len() == 4 * (num_layers * directions) as usize,
        "expected {} LSTM parameters, got {}",
        4 * num_layers * directions,
        params.len()
    );
    let size = xs.size();
    ensure!(size.len() == 3 && size[1] >= 1, "expected input [batch, seq_len ≥ 1, features], got {size:?}");
    let (batch, seq_len) = (size[0], size[1]);
    let hidden = params[1].size()[1];
    let zeros = Tensor::f_zeros([batch, hidden], (xs.kind(), xs.device()))?;
    let (mut layer_input, mut h_n, mut c_n, mut all_gates, mut all_cells) =
        (xs.shallow_clone(), Vec::new(), Vec::new(), Vec::new(), Vec::new());
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
            let positions: Vec<i64> =
                if direction == 0 { (0..seq_len).collect() } else { (0..seq_len).rev().collect() };
            let (mut h, mut c) = (zeros.shallow_clone(), zeros.shallow_clone());
            let mut hs: Vec<Option<Tensor>> = (0..seq_len).map(|_| None).collect();
            let (mut gates, mut cells) = (Vec::new(), Vec::new());
            for &t in &positions {
                let (h_next, c_next, g) = step(&layer_input.f_select(1, t)?, &h, &c, &w)?;
                hs[t as usize] = Some(h_next.shallow_clone());
                gates.push((t, g));
                cells.push((t, c_next.shallow_clone()));
                (h, c) = (h_next, c_next);
            }
            // In input order, whatever the direction.
            gates.sort_by_key(|(t, _)| *t);
            cells.sort_by_key(|(t, _)| *t);
            all_gates.push(gates.into_iter().map(|(_, g)| g).collect());
            all_cells.push(cells.into_iter().map(|(_, c)| c).collect());
            let hs: Vec<Tensor> = hs.into_iter().collect::<Option<_>>().context("a position did not run")?;
            outputs.push(Tensor::f_stack(&hs, 1)?);
            h_n.push(h);
            c_n.push(c);
        }
        layer_input = Tensor::f_cat(&outputs, 2)?;
    }
    Ok(Unrolled {
        output: layer_input,
        h_n: Tensor::f_stack(&h_n, 0)?,
        c_n: Tensor::f_stack(&c_n, 0)?,
        gates: all_gates,
        cells: all_cells,
    })
}

//! The LSTM, GRU and tanh RNN from their equations (`src/nn/equations.rs`, plain tensor ops) against
//! libtorch's fused kernels (what `nn.LSTM`, `nn.GRU` and `nn.RNN` run; oneDNN for the LSTM on the
//! CPU) on the same weights: outputs, final states and the gradients of a loss with respect to
//! the input and every parameter, over cells × layers × directions × sizes × lengths.
//!
//! Tolerance: 2e-6 absolute on the outputs and states, 1e-5 relative to the largest gradient,
//! the same for the three cells. Each pair computes the same function in float32 with different
//! summation orders (the fused kernels add the input and hidden products in their own GEMMs and
//! blocking, and the GRU kernel writes h' = n + z ⊙ (h − n) where the equations write
//! (1 − z) ⊙ n + z ⊙ h), so they agree to a few ulp per step, not bit for bit; the states are
//! of order 1 (h in (-1, 1)). Measured here (each test prints it), at most, over 54
//! configurations each: LSTM 1.8e-7 on the values and 6.5e-7 relative on the gradients; GRU
//! 1.5e-7 and 5.3e-7; RNN 2.7e-7 and 6.0e-7.

use lstm_tch::nn::{
    equations::{self, Gates},
    Cell, RecurrentConfig, SequenceClassifier, SequenceClassifierConfig,
};
use tch::{nn, Device, Kind, Tensor};

fn max_abs(a: &Tensor, b: &Tensor) -> f64 {
    (a - b).abs().max().double_value(&[])
}

/// The fused kernel on batch-first `xs` from zero states: (output, h_n, c_n for the LSTM).
fn fused(
    cell: Cell,
    xs: &Tensor,
    params: &[Tensor],
    num_layers: i64,
    bidirectional: bool,
) -> (Tensor, Tensor, Option<Tensor>) {
    let (batch, hidden) = (xs.size()[0], params[1].size()[1]);
    let dirs = if bidirectional { 2 } else { 1 };
    let zeros = Tensor::zeros([num_layers * dirs, batch, hidden], (Kind::Float, Device::Cpu));
    let args = (true, num_layers, 0.0, false, bidirectional, true);
    match cell {
        Cell::Lstm => {
            let weights: Vec<&Tensor> = params.iter().collect();
            let (out, h_n, c_n) =
                xs.lstm(&[&zeros, &zeros], &weights, args.0, args.1, args.2, args.3, args.4, args.5);
            (out, h_n, Some(c_n))
        }
        Cell::Gru => {
            let (out, h_n) = xs.gru(&zeros, params, args.0, args.1, args.2, args.3, args.4, args.5);
            (out, h_n, None)
        }
        Cell::Rnn => {
            let (out, h_n) = xs.rnn_tanh(&zeros, params, args.0, args.1, args.2, args.3, args.4, args.5);
            (out, h_n, None)
        }
    }
}

/// Checks every gate lies in its range: the σ gates in [0, 1], the candidates in [-1, 1].
fn check_ranges(gates: &Gates, name: &str) {
    let ranges: Vec<(&Tensor, f64, f64)> = match gates {
        Gates::Lstm(g) => {
            vec![(&g.input, 0.0, 1.0), (&g.forget, 0.0, 1.0), (&g.output, 0.0, 1.0), (&g.cell, -1.0, 1.0)]
        }
        Gates::Gru(g) => vec![(&g.reset, 0.0, 1.0), (&g.update, 0.0, 1.0), (&g.new, -1.0, 1.0)],
        Gates::Rnn => vec![],
    };
    for (t, lo, hi) in ranges {
        assert!(t.min().double_value(&[]) >= lo && t.max().double_value(&[]) <= hi, "{name}");
    }
}

/// The equations against the fused kernel for `cell_kind`, over 54 configurations.
fn check(cell_kind: Cell) {
    let mut worst = (0f64, 0f64);
    let mut configurations = 0;
    for num_layers in [1, 2, 3] {
        for bidirectional in [false, true] {
            for (input_size, hidden_size) in [(1, 64), (5, 7), (16, 32)] {
                for (batch, seq_len) in [(1, 1), (2, 5), (4, 17)] {
                    let name = format!(
                        "{cell_kind}: layers {num_layers}, bidirectional {bidirectional}, input \
                             {input_size}, hidden {hidden_size}, batch {batch}, seq {seq_len}"
                    );
                    tch::manual_seed(7);
                    let vs = nn::VarStore::new(Device::Cpu);
                    let recurrent = RecurrentConfig {
                        cell: cell_kind,
                        input_size,
                        hidden_size,
                        num_layers,
                        bidirectional,
                        ..RecurrentConfig::default()
                    };
                    let config = SequenceClassifierConfig { recurrent, output_size: 2 };
                    let model = SequenceClassifier::new(&vs.root(), config).unwrap();
                    let params = model.rnn_parameters();
                    let xs = Tensor::randn([batch, seq_len, input_size], (Kind::Float, Device::Cpu))
                        .set_requires_grad(true);
                    let (out, h_n, c_n) = fused(cell_kind, &xs, params, num_layers, bidirectional);
                    let mine = equations::unroll(&xs, params, cell_kind, num_layers, bidirectional).unwrap();
                    assert_eq!(c_n.is_some(), mine.c_n.is_some(), "{name}: a cell state only for the LSTM");
                    let mut values = max_abs(&out, &mine.output).max(max_abs(&h_n, &mine.h_n));
                    if let (Some(a), Some(b)) = (&c_n, &mine.c_n) {
                        values = values.max(max_abs(a, b));
                    }
                    assert!(values <= 2e-6, "{name}: values differ by {values}");

                    // Gradients of one scalar of everything the network returns.
                    let probe = |t: &Tensor| Tensor::randn(t.size(), (Kind::Float, Device::Cpu));
                    let (po, ph) = (probe(&out), probe(&h_n));
                    let pc = c_n.as_ref().map(probe);
                    let loss = |o: &Tensor, h: &Tensor, c: Option<&Tensor>| {
                        let mut l = (o * &po).sum(Kind::Float) + (h * &ph).sum(Kind::Float);
                        if let (Some(c), Some(pc)) = (c, &pc) {
                            l += (c * pc).sum(Kind::Float);
                        }
                        l
                    };
                    let inputs: Vec<&Tensor> = std::iter::once(&xs).chain(params.iter()).collect();
                    let theirs =
                        Tensor::run_backward(&[loss(&out, &h_n, c_n.as_ref())], &inputs, false, false);
                    let ours = Tensor::run_backward(
                        &[loss(&mine.output, &mine.h_n, mine.c_n.as_ref())],
                        &inputs,
                        false,
                        false,
                    );
                    for (k, (a, b)) in theirs.iter().zip(&ours).enumerate() {
                        let scale = a.abs().max().double_value(&[]).max(1.0);
                        let relative = max_abs(a, b) / scale;
                        assert!(relative <= 1e-5, "{name}: gradient {k} differs by {relative} (relative)");
                        worst.1 = worst.1.max(relative);
                    }
                    worst.0 = worst.0.max(values);
                    configurations += 1;

                    // Every step of every layer and direction, in input order, with its
                    // gates in range and named as the cell names them.
                    assert_eq!(mine.steps.len(), (num_layers * if bidirectional { 2 } else { 1 }) as usize);
                    for steps in &mine.steps {
                        assert_eq!(steps.len(), seq_len as usize);
                        for step in steps {
                            check_ranges(&step.gates, &name);
                            let names: Vec<&str> = step.gates.named().iter().map(|(n, _)| *n).collect();
                            assert_eq!(names, equations::gate_names(cell_kind), "{name}");
                            assert_eq!(step.c.is_some(), cell_kind == Cell::Lstm, "{name}");
                        }
                    }
                    // The last layer's outputs are its steps' hidden states.
                    let last = &mine.steps[mine.steps.len() - 1];
                    let position = if bidirectional { 0 } else { seq_len - 1 };
                    let from_steps = &last[position as usize].h;
                    let dirs = if bidirectional { 2 } else { 1 };
                    let column = (dirs - 1) * hidden_size;
                    let from_output = mine.output.select(1, position).narrow(1, column, hidden_size);
                    assert!(from_steps.equal(&from_output), "{name}");
                }
            }
        }
    }
    eprintln!(
        "{cell_kind}: largest difference over {configurations} configurations: values {:.2e}, \
             gradients {:.2e} (relative)",
        worst.0, worst.1
    );
}

#[test]
fn the_lstm_equations_compute_what_the_fused_kernel_computes() {
    check(Cell::Lstm);
}

#[test]
fn the_gru_equations_compute_what_the_fused_kernel_computes() {
    check(Cell::Gru);
}

#[test]
fn the_rnn_equation_computes_what_the_fused_kernel_computes() {
    check(Cell::Rnn);
}

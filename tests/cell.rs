//! The LSTM from the article's equations (`src/cell.rs`, plain tensor ops) against libtorch's
//! fused `lstm` kernel (what `nn.LSTM` runs; oneDNN on the CPU) on the same weights: outputs,
//! final states and the gradients of a loss with respect to the input and every parameter, over
//! layers × directions × sizes × lengths.
//!
//! Tolerance: 2e-6 absolute on the outputs and states, 1e-5 relative to the largest gradient.
//! The two compute the same function in float32 with different summation orders (the fused
//! kernel adds the input and hidden products in one GEMM, in its own blocking), so they agree to
//! a few ulp per step, not bit for bit; hidden and cell values are of order 1 (h in (-1, 1)).
//! Measured here (the test prints it): at most 1.8e-7 on the values and 6.5e-7 relative on the
//! gradients, over the 54 configurations.

use lstm_tch::{
    cell,
    model::{LstmClassifier, LstmConfig},
};
use tch::{nn, Device, Kind, Tensor};

fn max_abs(a: &Tensor, b: &Tensor) -> f64 {
    (a - b).abs().max().double_value(&[])
}

#[test]
fn the_equations_compute_what_the_fused_kernel_computes() {
    let mut worst = (0f64, 0f64);
    for num_layers in [1, 2, 3] {
        for bidirectional in [false, true] {
            for (input_size, hidden_size) in [(1, 64), (5, 7), (16, 32)] {
                for (batch, seq_len) in [(1, 1), (2, 5), (4, 17)] {
                    let name = format!(
                        "layers {num_layers}, bidirectional {bidirectional}, input {input_size}, hidden \
                         {hidden_size}, batch {batch}, seq {seq_len}"
                    );
                    tch::manual_seed(7);
                    let vs = nn::VarStore::new(Device::Cpu);
                    let config = LstmConfig {
                        input_size,
                        hidden_size,
                        num_layers,
                        bidirectional,
                        ..LstmConfig::default()
                    };
                    let model = LstmClassifier::new(&vs.root(), config).unwrap();
                    let params = model.lstm_parameters();
                    let xs = Tensor::randn([batch, seq_len, input_size], (Kind::Float, Device::Cpu))
                        .set_requires_grad(true);
                    let dirs = if bidirectional { 2 } else { 1 };
                    let zeros =
                        Tensor::zeros([num_layers * dirs, batch, hidden_size], (Kind::Float, Device::Cpu));
                    let (out, h_n, c_n) = Tensor::lstm(
                        &xs,
                        &[&zeros, &zeros],
                        &params.iter().collect::<Vec<_>>(),
                        true,
                        num_layers,
                        0.0,
                        false,
                        bidirectional,
                        true,
                    );
                    let mine = cell::unroll(&xs, params, num_layers, bidirectional).unwrap();
                    let values = max_abs(&out, &mine.output)
                        .max(max_abs(&h_n, &mine.h_n))
                        .max(max_abs(&c_n, &mine.c_n));
                    assert!(values <= 2e-6, "{name}: values differ by {values}");

                    // Gradients of one scalar of everything the LSTM returns.
                    let probe = |t: &Tensor| Tensor::randn(t.size(), (Kind::Float, Device::Cpu));
                    let (po, ph, pc) = (probe(&out), probe(&h_n), probe(&c_n));
                    let loss = |o: &Tensor, h: &Tensor, c: &Tensor| {
                        (o * &po).sum(Kind::Float) + (h * &ph).sum(Kind::Float) + (c * &pc).sum(Kind::Float)
                    };
                    let inputs: Vec<&Tensor> = std::iter::once(&xs).chain(params.iter()).collect();
                    let fused = Tensor::run_backward(&[loss(&out, &h_n, &c_n)], &inputs, false, false);
                    let ours = Tensor::run_backward(
                        &[loss(&mine.output, &mine.h_n, &mine.c_n)],
                        &inputs,
                        false,
                        false,
                    );
                    for (k, (a, b)) in fused.iter().zip(&ours).enumerate() {
                        let scale = a.abs().max().double_value(&[]).max(1.0);
                        let relative = max_abs(a, b) / scale;
                        assert!(relative <= 1e-5, "{name}: gradient {k} differs by {relative} (relative)");
                        worst.1 = worst.1.max(relative);
                    }
                    worst.0 = worst.0.max(values);
                    // The gates are what they claim to be.
                    for (gates, cells) in mine.gates.iter().zip(&mine.cells) {
                        assert_eq!(gates.len(), seq_len as usize);
                        assert_eq!(cells.len(), seq_len as usize);
                        for g in gates {
                            for (t, lo, hi) in [
                                (&g.input, 0.0, 1.0),
                                (&g.forget, 0.0, 1.0),
                                (&g.output, 0.0, 1.0),
                                (&g.cell, -1.0, 1.0),
                            ] {
                                assert!(
                                    t.min().double_value(&[]) >= lo && t.max().double_value(&[]) <= hi,
                                    "{name}"
                                );
                            }
                        }
                    }
                }
            }
        }
    }
    eprintln!("largest difference: values {:.2e}, gradients {:.2e} (relative)", worst.0, worst.1);
}

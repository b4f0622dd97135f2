//! `--lstm-kernel onednn`: the LSTM run by oneDNN one direction at a time on right-padded groups
//! of texts, against the packed sequences PyTorch runs (`--lstm-kernel packed`, the default).

use lstm_tch::{
    data::Encoded,
    infer,
    nn::{Cell, LstmKernel, Pooling, TextClassifier},
};
use tch::{Device, Tensor};

use crate::text_pipeline::{model, CELLS};

/// The bound on |Δ logit| between the kernels, and between a text alone and in a batch: oneDNN
/// sums the matrix products in another order than libtorch's loop (measured on these models:
/// at most 6e-8); padding that reached a text would move its logits by orders of magnitude more.
const TOLERANCE: f64 = 1e-6;

/// 40 texts of 1 to 90 tokens, in no order of length, one much longer than the rest: the
/// kernel splits such a batch into groups of similar length.
fn texts() -> Vec<Vec<i64>> {
    let mut state = 12345u64;
    let mut next = move |n: u64| {
        state = state.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
        (state >> 33) % n
    };
    let mut texts: Vec<Vec<i64>> =
        (0..40).map(|_| (0..1 + next(30)).map(|_| 2 + next(48) as i64).collect()).collect();
    texts[17] = (0..90).map(|i| 2 + i % 48).collect();
    texts
}

fn logits(model: &TextClassifier, texts: &[Vec<i64>]) -> Tensor {
    let data = Encoded::from_ids(texts, vec![0; texts.len()]).unwrap();
    infer::logits(model, &data, texts.len(), Device::Cpu).unwrap()
}

fn max_diff(a: &Tensor, b: &Tensor) -> f64 {
    (a - b).abs().max().double_value(&[])
}

#[test]
fn onednn_gives_the_packed_logits_up_to_rounding_for_every_lstm() {
    // Directions × depth × pooling; every text also alone, where it runs as a group of one.
    let texts = texts();
    for (bidirectional, layers) in [(false, 1), (true, 1), (false, 2), (true, 2)] {
        for pooling in [Pooling::Last, Pooling::Max, Pooling::Mean] {
            let (_vs, mut model) = model(Cell::Lstm, bidirectional, layers, pooling);
            let what = format!("bidirectional={bidirectional} layers={layers} {pooling:?}");
            let packed = logits(&model, &texts);
            model.set_lstm_kernel(LstmKernel::Onednn);
            let onednn = logits(&model, &texts);
            assert_eq!(onednn.size(), packed.size());
            let diff = max_diff(&onednn, &packed);
            assert!(diff <= TOLERANCE, "{what}: onednn against packed |Δ| {diff:e}");
            for (i, text) in texts.iter().enumerate().step_by(7) {
                let alone = logits(&model, std::slice::from_ref(text));
                let diff = max_diff(&alone, &onednn.get(i as i64).unsqueeze(0));
                assert!(diff <= TOLERANCE, "{what}: text {i} alone against batched |Δ| {diff:e}");
            }
            // Control: the same batch with the padding counted as tokens moves the logits far
            // beyond the bound, so the bound says something.
            let data = Encoded::from_ids(&texts, vec![0; texts.len()]).unwrap();
            let batch = data.batch(&(0..texts.len()).collect::<Vec<_>>()).unwrap();
            let longest = *Vec::<i64>::try_from(&batch.lengths).unwrap().iter().max().unwrap();
            let as_long = Tensor::from_slice(&vec![longest; texts.len()]);
            let leaked = tch::no_grad(|| model.forward(&batch.tokens, &as_long, false)).unwrap();
            let diff = max_diff(&leaked, &onednn);
            assert!(diff > 100.0 * TOLERANCE, "{what}: padding barely moved the logits ({diff:e})");
        }
    }
}

#[test]
fn where_onednn_does_not_apply_the_kernels_give_the_same_bits() {
    // GRU and RNN cells run packed whatever the setting; so does an LSTM where a gradient flows.
    let texts = texts();
    let data = Encoded::from_ids(&texts, vec![0; texts.len()]).unwrap();
    let batch = data.batch(&(0..texts.len()).collect::<Vec<_>>()).unwrap();
    for cell in CELLS {
        let (_vs, mut model) = model(cell, true, 2, Pooling::Max);
        let packed = logits(&model, &texts);
        let with_gradients = model.forward(&batch.tokens, &batch.lengths, false).unwrap();
        assert_eq!(model.kernel_in_effect(), LstmKernel::Packed, "{cell}: packed unless set");
        model.set_lstm_kernel(LstmKernel::Onednn);
        let in_effect = if cell == Cell::Lstm { LstmKernel::Onednn } else { LstmKernel::Packed };
        assert_eq!(model.kernel_in_effect(), in_effect, "{cell}");
        assert!(
            model.forward(&batch.tokens, &batch.lengths, false).unwrap().equal(&with_gradients),
            "{cell}"
        );
        if cell != Cell::Lstm {
            assert!(logits(&model, &texts).equal(&packed), "{cell}");
        }
    }
}

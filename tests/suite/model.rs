//! `SequenceClassifier` against PyTorch over a matrix of configurations, each cell (`nn.LSTM`,
//! `nn.GRU`, `nn.RNN`) included, and LSTMs whose forget-gate bias is set by hand after the
//! draws: the same `state_dict` names, in the same order, with the same shapes and (same seed)
//! the same initial values, bit for bit; and the output shapes of both forward passes.

use std::collections::BTreeMap;

use lstm_tch::nn::{Cell, RecurrentConfig, SequenceClassifier, SequenceClassifierConfig};
use tch::{nn, Device, Kind, Tensor};

const SEED: i64 = 7;

/// For each config, the model PyTorch builds after `torch.manual_seed(SEED)`, its recurrent
/// module under the cell's name (`model.lstm`, `model.gru`, `model.rnn`):
/// `{"names": [...], "shapes": [...], "values": {name: [float32 bits]}}`.
const PYTORCH_MODELS: &str = r#"
import json, sys, numpy as np, torch, torch.nn as nn
out = []
for c in json.loads(sys.argv[1]):
    torch.manual_seed(int(sys.argv[2]))
    dirs = 2 if c["bidirectional"] else 1
    model = nn.Module()
    cell = {"lstm": nn.LSTM, "gru": nn.GRU, "rnn": nn.RNN}[c["cell"]]
    setattr(model, c["cell"], cell(c["input_size"], c["hidden_size"], c["num_layers"], batch_first=True,
                                   bidirectional=c["bidirectional"]))
    if c.get("forget_bias") is not None:  # rows h:2h (the forget gate): bias_ih = B, bias_hh = 0
        h = c["hidden_size"]
        with torch.no_grad():
            for name, p in model.lstm.named_parameters():
                if name.startswith("bias_ih"):
                    p[h : 2 * h].fill_(c["forget_bias"])
                elif name.startswith("bias_hh"):
                    p[h : 2 * h].zero_()
    model.fc = nn.Linear(c["hidden_size"] * dirs, c["output_size"])
    sd = model.state_dict()
    out.append({"names": list(sd), "shapes": [list(t.shape) for t in sd.values()],
                "values": {k: t.flatten().numpy().view(np.uint32).tolist() for k, t in sd.items()}})
print(json.dumps(out))
"#;

fn matrix() -> Vec<SequenceClassifierConfig> {
    let mut configs = vec![];
    for cell in [Cell::Lstm, Cell::Gru, Cell::Rnn] {
        for input_size in [1, 4] {
            for hidden_size in [1, 17, 64] {
                for num_layers in [1, 3] {
                    for output_size in [1, 2, 5] {
                        for bidirectional in [false, true] {
                            let recurrent = RecurrentConfig {
                                cell,
                                input_size,
                                hidden_size,
                                num_layers,
                                bidirectional,
                                dropout: 0.0,
                                forget_bias: None,
                            };
                            configs.push(SequenceClassifierConfig { recurrent, output_size });
                        }
                    }
                }
            }
        }
    }
    configs
}

/// LSTMs with a forget-gate bias: one and two layers, one and two directions, 1 and −0.5.
fn forget_bias_configs() -> Vec<SequenceClassifierConfig> {
    [(1, false, 1.0), (2, true, 1.0), (1, true, -0.5), (3, false, 2.0)]
        .into_iter()
        .map(|(num_layers, bidirectional, bias)| {
            let recurrent = RecurrentConfig {
                input_size: 4,
                hidden_size: 17,
                num_layers,
                bidirectional,
                forget_bias: Some(bias),
                ..RecurrentConfig::default()
            };
            SequenceClassifierConfig { recurrent, output_size: 2 }
        })
        .collect()
}

#[test]
fn parameters_match_pytorch_names_shapes_and_values() {
    let configs = [matrix(), forget_bias_configs()].concat();
    let output = crate::common::run(
        crate::common::python(),
        &["-c", PYTORCH_MODELS, &serde_json::to_string(&configs).unwrap(), &SEED.to_string()],
    );
    let (stdout, stderr) = crate::common::text(&output);
    assert!(output.status.success(), "{stderr}");
    let expected: Vec<serde_json::Value> = serde_json::from_str(&stdout).unwrap();
    assert_eq!(expected.len(), configs.len());
    let _generator = crate::common::generator();

    for (config, pytorch) in configs.iter().zip(&expected) {
        tch::manual_seed(SEED);
        let vs = nn::VarStore::new(Device::Cpu);
        SequenceClassifier::new(&vs.root(), *config).unwrap();

        // Names in named_parameters() order, and their shapes.
        let names: Vec<String> = serde_json::from_value(pytorch["names"].clone()).unwrap();
        let shapes: Vec<Vec<i64>> = serde_json::from_value(pytorch["shapes"].clone()).unwrap();
        let ours: Vec<(String, Vec<i64>)> = config.parameter_shapes();
        assert_eq!(ours, names.iter().cloned().zip(shapes).collect::<Vec<_>>(), "{config:?}");

        // The variables really created, and their initial values: exact.
        let variables = vs.variables();
        assert_eq!(variables.len(), names.len(), "{config:?}");
        let values: BTreeMap<String, Vec<u32>> = serde_json::from_value(pytorch["values"].clone()).unwrap();
        for (name, shape) in &ours {
            let t = &variables[name];
            assert_eq!(&t.size(), shape, "{name} in {config:?}");
            let bits: Vec<u32> =
                Vec::<f32>::try_from(&t.flatten(0, -1)).unwrap().iter().map(|v| v.to_bits()).collect();
            assert_eq!(bits, values[name], "{name} in {config:?}: initial values differ from PyTorch's");
        }
    }
}

#[test]
fn forward_gives_one_row_of_logits_per_sequence() {
    let _generator = crate::common::generator();
    for config in matrix().into_iter().step_by(5) {
        let vs = nn::VarStore::new(Device::Cpu);
        let model = SequenceClassifier::new(&vs.root(), config).unwrap();
        for (batch, seq_len) in [(1, 1), (3, 7)] {
            let xs = Tensor::randn([batch, seq_len, config.recurrent.input_size], (Kind::Float, Device::Cpu));
            let logits = model.forward(&xs).unwrap();
            assert_eq!(logits.size(), [batch, config.output_size], "{config:?}");
            let lengths = Tensor::from_slice(&(0..batch).map(|i| seq_len - i % seq_len).collect::<Vec<_>>());
            let logits = model.forward_packed(&xs, &lengths, false).unwrap();
            assert_eq!(logits.size(), [batch, config.output_size], "{config:?}");
        }
    }
}

#[test]
fn wrong_inputs_are_errors_not_panics() {
    let _generator = crate::common::generator();
    for cell in [Cell::Lstm, Cell::Gru, Cell::Rnn] {
        let recurrent = RecurrentConfig { cell, input_size: 3, ..RecurrentConfig::default() };
        let config = SequenceClassifierConfig { recurrent, output_size: 2 };
        let vs = nn::VarStore::new(Device::Cpu);
        let model = SequenceClassifier::new(&vs.root(), config).unwrap();
        let opts = (Kind::Float, Device::Cpu);
        assert!(model.forward(&Tensor::zeros([2, 5, 4], opts)).is_err(), "{cell}: wrong feature size");
        assert!(model.forward(&Tensor::zeros([2, 5], opts)).is_err(), "{cell}: missing dimension");
        assert!(model.forward(&Tensor::zeros([2, 0, 3], opts)).is_err(), "{cell}: empty sequence");
        let double = Tensor::zeros([2, 5, 3], (Kind::Double, Device::Cpu));
        assert!(model.forward(&double).is_err(), "{cell}: wrong kind");
        let xs = Tensor::zeros([2, 5, 3], opts);
        for lengths in [vec![5, 0], vec![6, 1], vec![5]] {
            let lengths = Tensor::from_slice(&lengths);
            assert!(model.forward_packed(&xs, &lengths, false).is_err(), "{cell}: {lengths:?}");
        }
        assert!(SequenceClassifier::new(
            &vs.root(),
            SequenceClassifierConfig { recurrent: RecurrentConfig { hidden_size: 0, ..recurrent }, ..config }
        )
        .is_err());
        assert!(SequenceClassifier::new(
            &vs.root(),
            SequenceClassifierConfig { recurrent: RecurrentConfig { dropout: 1.0, ..recurrent }, ..config }
        )
        .is_err());
        // A forget-gate bias: the LSTM's only, and a finite number.
        for (bias, lstm_takes_it) in [(1.0, true), (f64::NAN, false), (f64::INFINITY, false)] {
            let recurrent = RecurrentConfig { forget_bias: Some(bias), ..recurrent };
            let fresh = nn::VarStore::new(Device::Cpu);
            let built =
                SequenceClassifier::new(&fresh.root(), SequenceClassifierConfig { recurrent, ..config });
            assert_eq!(built.is_ok(), cell == Cell::Lstm && lstm_takes_it, "{cell}, forget bias {bias}");
        }
    }
}

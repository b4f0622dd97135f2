//! Regression tests for hostile inputs, the crashes that fuzzing (fuzz/, docs/fuzzing.md) or its
//! review found: each is a checkpoint or dataset that once panicked or allocated without bound,
//! and must now give an error naming the file.

use std::path::{Path, PathBuf};

use lstm_tch::checkpoint;
use tch::Device;

/// A copy of the format-1 fixture checkpoint in a fresh directory, its `config.json` edited by
/// replacing each `from` with its `to`.
fn fixture_with(name: &str, edits: &[(&str, &str)]) -> PathBuf {
    let fixture = crate::common::root().join("tests/fixtures/format1");
    let dir = crate::common::tempdir(name);
    for file in [checkpoint::CONFIG_FILE, checkpoint::WEIGHTS_FILE] {
        std::fs::copy(fixture.join(file), dir.join(file)).unwrap();
    }
    let mut config = std::fs::read_to_string(dir.join(checkpoint::CONFIG_FILE)).unwrap();
    for (from, to) in edits {
        assert!(config.contains(from), "{from} not in the fixture's config.json");
        config = config.replacen(from, to, 1);
    }
    std::fs::write(dir.join(checkpoint::CONFIG_FILE), config).unwrap();
    dir
}

/// The error `checkpoint::load` gives for `dir`, as one line.
fn load_error(dir: &Path) -> String {
    let error = checkpoint::load(dir, Device::Cpu).expect_err("a hostile checkpoint must not load");
    format!("{error:#}")
}

#[test]
fn a_hidden_size_whose_gate_rows_overflow_is_an_error() {
    // 4 * hidden_size overflowed i64 while listing the weights' shapes (a panic in debug builds).
    let dir =
        fixture_with("hidden-overflow", &[("\"hidden_size\": 8", "\"hidden_size\": 4611686018427387904")]);
    let error = load_error(&dir);
    assert!(error.contains("config.json") && error.contains("too large"), "{error}");
}

#[test]
fn a_huge_layer_count_is_refused_before_listing_its_weights() {
    // The config's num_layers sized a list of 4 names per layer before the weights were
    // compared: 10^12 layers exhausted memory. The tensor count is now compared first (this
    // test uses 10^5 layers, which the old code listed and then reported as a missing tensor).
    let dir = fixture_with("many-layers", &[("\"num_layers\": 1", "\"num_layers\": 100000")]);
    let error = load_error(&dir);
    assert!(
        error.contains("model.safetensors does not match config.json")
            && error.contains("7 tensors, the config implies 400003"),
        "{error}"
    );
}

#[test]
fn the_tensor_count_matches_the_listed_shapes() {
    use lstm_tch::nn::{Cell, Pooling, TextArchitecture, TextClassifierConfig};
    let shapes = [(1, false), (1, true), (3, false), (4, true)];
    for ((num_layers, bidirectional), cell) in
        shapes.into_iter().flat_map(|s| [Cell::Lstm, Cell::Gru, Cell::Rnn].map(|c| (s, c)))
    {
        let config = TextClassifierConfig {
            vocab_size: 10,
            num_classes: 2,
            architecture: TextArchitecture {
                embedding_dim: 3,
                cell,
                hidden_size: 5,
                num_layers,
                bidirectional,
                dropout: 0.0,
                embedding_dropout: 0.0,
                pooling: Pooling::Last,
                output_dropout: 0.0,
                forget_bias: None,
            },
        };
        assert_eq!(config.num_parameter_tensors(), Some(config.parameter_shapes().len()));
    }
}

/// A `model.safetensors` of `header` (JSON) and `data`.
fn safetensors(header: &str, data: &[u8]) -> Vec<u8> {
    let mut bytes = (header.len() as u64).to_le_bytes().to_vec();
    bytes.extend_from_slice(header.as_bytes());
    bytes.extend_from_slice(data);
    bytes
}

#[test]
fn a_safetensors_header_whose_offsets_overflow_is_an_error() {
    // safetensors 0.3 adds the header's last data offset to the header length unchecked.
    let dir = fixture_with("offsets-overflow", &[]);
    let header =
        r#"{"x":{"dtype":"U8","shape":[18446744073709551615],"data_offsets":[0,18446744073709551615]}}"#;
    std::fs::write(dir.join(checkpoint::WEIGHTS_FILE), safetensors(header, &[])).unwrap();
    let error = load_error(&dir);
    assert!(error.contains("model.safetensors is corrupted") && error.contains("past the end"), "{error}");
}

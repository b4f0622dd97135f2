//! Checkpoints: a directory with `model.safetensors` (the `state_dict`, loadable by PyTorch's
//! `safetensors.torch.load_file` + `load_state_dict`) and `config.json` (format version, model
//! hyperparameters, tokenizer settings, `--max-len`, vocabulary and labels).
//!
//! Saving writes a complete new directory beside the target, then swaps it in with renames, so
//! an interrupted save leaves the previous checkpoint whole. Loading checks everything: the
//! format version, the config's consistency, and that the weights' names and shapes are exactly
//! the ones the config implies.

use std::{collections::BTreeMap, fs, io::Read, path::Path};

use anyhow::{bail, ensure, Context, Result};
use serde::{Deserialize, Serialize};
use tch::{nn, Device, Kind, Tensor};

mod save;

pub(crate) use save::cpu_variables;
pub use save::{check_target, save, save_with, write_synced, Weights};

use crate::{
    data::{LabelSet, Tokenizer, TokenizerConfig, Truncate, Truncation, Vocab},
    nn::{Cell, TextClassifier, TextClassifierConfig},
};

/// The checkpoint format this version writes. Version 3 added the model's `cell` (`lstm`, `gru`
/// or `rnn`; the weights are named after it: `lstm.*`, `gru.*`, `rnn.*`); version 2 added the
/// tokenizer's `mode`, the model's `embedding_dropout`, `pooling` and `output_dropout`, and
/// `truncate`. Versions 1 (no such fields: the format-1 word scanner, no embedding dropout, the
/// last hidden state, the head of each text) and 2 (an LSTM) are still read, and predict as
/// before. Every checkpoint is written as version 3, an LSTM's too, so a reader that predates
/// `cell` refuses all of them by their version rather than misreading one.
pub const FORMAT_VERSION: u32 = 3;
/// The oldest checkpoint format this version reads.
pub const OLDEST_FORMAT_VERSION: u32 = 1;
/// The default checkpoint directory.
pub const DEFAULT_CHECKPOINT: &str = "runs/sentiment";
/// The weights file in a checkpoint directory.
pub const WEIGHTS_FILE: &str = "model.safetensors";
/// The configuration file in a checkpoint directory.
pub const CONFIG_FILE: &str = "config.json";
/// The folder of a resumable run's training state inside its checkpoint (`crate::train::state`).
pub const TRAINING_STATE_DIR: &str = "training";
const FORMAT_NAME: &str = "lstm-tch text classifier";

/// Everything but the weights: `config.json`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CheckpointConfig {
    /// Always "lstm-tch text classifier".
    pub format: String,
    /// [`FORMAT_VERSION`] when written.
    pub format_version: u32,
    /// The model's hyperparameters.
    pub model: TextClassifierConfig,
    /// The tokenizer's settings.
    pub tokenizer: TokenizerConfig,
    /// Tokens kept per text.
    pub max_len: usize,
    /// Which tokens of a longer text are kept (format 1: the head).
    #[serde(default)]
    pub truncate: Truncation,
    /// The class names, in class order.
    pub labels: Vec<String>,
    /// The vocabulary, in id order.
    pub vocab: Vec<String>,
}

impl CheckpointConfig {
    /// Which tokens of each text the model reads.
    pub fn truncate(&self) -> Truncate {
        Truncate { max_len: self.max_len, keep: self.truncate }
    }

    /// The configuration of a model trained with this tokenizer, vocabulary and label set.
    pub fn new(
        model: TextClassifierConfig,
        tokenizer: TokenizerConfig,
        truncate: Truncate,
        vocab: &Vocab,
        labels: &LabelSet,
    ) -> Self {
        Self {
            format: FORMAT_NAME.to_owned(),
            format_version: FORMAT_VERSION,
            model,
            tokenizer,
            max_len: truncate.max_len,
            truncate: truncate.keep,
            labels: labels.names().to_vec(),
            vocab: vocab.tokens().to_vec(),
        }
    }
}

/// A loaded checkpoint, ready for inference.
#[derive(Debug)]
pub struct Checkpoint {
    /// Its configuration.
    pub config: CheckpointConfig,
    /// The variables (on the requested device).
    pub vs: nn::VarStore,
    /// The model, in the `VarStore`.
    pub model: TextClassifier,
    /// The tokenizer it was trained with.
    pub tokenizer: Tokenizer,
    /// Its vocabulary.
    pub vocab: Vocab,
    /// Its classes.
    pub labels: LabelSet,
}

/// Reads and checks `dir/config.json`.
pub fn load_config(dir: &Path) -> Result<CheckpointConfig> {
    ensure!(dir.exists(), "checkpoint {} not found (train one with `lstm-tch train`)", dir.display());
    ensure!(
        dir.is_dir(),
        "checkpoint {} is a file: a checkpoint is the directory `train --out` writes",
        dir.display()
    );
    let path = dir.join(CONFIG_FILE);
    let text = fs::read_to_string(&path).with_context(|| format!("cannot read {}", path.display()))?;
    parse_config(&text, &path)
}

/// Parses and checks the text of a `config.json`, as [`load_config`] does the file; `path` only
/// names it in errors.
pub fn parse_config(text: &str, path: &Path) -> Result<CheckpointConfig> {
    let value: serde_json::Value =
        serde_json::from_str(text).with_context(|| format!("{} is corrupted: not JSON", path.display()))?;
    let version = value.get("format_version").and_then(serde_json::Value::as_u64);
    ensure!(
        value.get("format").and_then(|f| f.as_str()) == Some(FORMAT_NAME),
        "{} is not an lstm-tch checkpoint config",
        path.display()
    );
    ensure!(
        version.is_some_and(|v| (OLDEST_FORMAT_VERSION as u64..=FORMAT_VERSION as u64).contains(&v)),
        "{}: checkpoint format version {}, this lstm-tch reads versions {OLDEST_FORMAT_VERSION} to \
         {FORMAT_VERSION}",
        path.display(),
        version.map_or("missing".to_owned(), |v| v.to_string())
    );
    let version = version.unwrap_or_default();
    // Fields an older format may leave out (they default to that format's behaviour), by the
    // version that made them required.
    let required = [
        (2, "tokenizer", "mode"),
        (2, "model", "embedding_dropout"),
        (2, "model", "pooling"),
        (3, "model", "cell"),
    ];
    for (since, section, field) in required {
        ensure!(
            version < since || value.get(section).and_then(|s| s.get(field)).is_some(),
            "{} is corrupted: {section}.{field} missing",
            path.display()
        );
    }
    let config: CheckpointConfig =
        serde_json::from_value(value).with_context(|| format!("{} is corrupted", path.display()))?;
    ensure!(
        version >= 3 || config.model.architecture.cell == Cell::Lstm,
        "{} is corrupted: a format-{version} checkpoint holds an LSTM, not a {}",
        path.display(),
        config.model.architecture.cell.pytorch_class()
    );
    config.model.validate().with_context(|| format!("{}", path.display()))?;
    ensure!(
        config.model.vocab_size == config.vocab.len() as i64,
        "{}: vocab_size {} but {} vocabulary entries",
        path.display(),
        config.model.vocab_size,
        config.vocab.len()
    );
    ensure!(
        config.model.num_classes == config.labels.len() as i64,
        "{}: num_classes {} but {} labels",
        path.display(),
        config.model.num_classes,
        config.labels.len()
    );
    ensure!(config.max_len >= 1, "{}: max_len must be at least 1", path.display());
    Ok(config)
}

/// Checks that no tensor of the safetensors file `path` claims data past the file's end. tch's
/// reader (the `safetensors` crate 0.3) adds the last offset to the header's length unchecked,
/// which overflows, and panics in debug builds, on a hostile header. Everything else wrong with
/// the file is left to that reader to report.
fn check_offsets(path: &Path) -> Result<()> {
    let mut file = fs::File::open(path)?;
    let len = file.metadata()?.len();
    let mut header_len = [0; 8];
    if file.read_exact(&mut header_len).is_err() {
        return Ok(()); // too short: the reader says so
    }
    let header_len = u64::from_le_bytes(header_len);
    let Some(data_len) = len.checked_sub(8).and_then(|l| l.checked_sub(header_len)) else {
        return Ok(()); // the header runs past the end: the reader says so
    };
    let mut header = vec![0; header_len as usize]; // no more than the file holds
    file.read_exact(&mut header)?;
    let Ok(header) = serde_json::from_slice::<BTreeMap<String, serde_json::Value>>(&header) else {
        return Ok(());
    };
    for (name, info) in &header {
        let offsets = info.get("data_offsets").and_then(serde_json::Value::as_array);
        for offset in offsets.into_iter().flatten().filter_map(serde_json::Value::as_u64) {
            ensure!(
                offset <= data_len,
                "tensor {name}'s data offset {offset} lies past the end of the data ({data_len} bytes)"
            );
        }
    }
    Ok(())
}

/// Loads the checkpoint `dir` onto `device`.
pub fn load(dir: &Path, device: Device) -> Result<Checkpoint> {
    let config = load_config(dir)?;
    let config_path = dir.join(CONFIG_FILE);
    let vocab =
        Vocab::from_tokens(config.vocab.clone()).with_context(|| format!("{}", config_path.display()))?;
    let labels =
        LabelSet::from_names(config.labels.clone()).with_context(|| format!("{}", config_path.display()))?;

    let weights_path = dir.join(WEIGHTS_FILE);
    ensure!(weights_path.is_file(), "checkpoint {}: {WEIGHTS_FILE} missing", dir.display());
    check_offsets(&weights_path).with_context(|| format!("{} is corrupted", weights_path.display()))?;
    let weights: BTreeMap<String, Tensor> = Tensor::read_safetensors(&weights_path)
        .with_context(|| format!("{} is corrupted", weights_path.display()))?
        .into_iter()
        .collect();
    let mismatch = |what: String| format!("{} does not match {CONFIG_FILE}: {what}", weights_path.display());
    // Counted before the shapes are listed: a config may claim billions of layers.
    let implied = config.model.num_parameter_tensors();
    ensure!(
        implied == Some(weights.len()),
        mismatch(format!(
            "{} tensors, the config implies {}",
            weights.len(),
            implied.map_or("more than fit in memory".to_owned(), |n| n.to_string())
        ))
    );
    let expected = config.model.parameter_shapes();
    for (name, shape) in &expected {
        let Some(t) = weights.get(name) else { bail!(mismatch(format!("{name} missing"))) };
        ensure!(
            t.size() == *shape,
            mismatch(format!("{name} is {:?}, the config implies {shape:?}", t.size()))
        );
        ensure!(t.kind() == Kind::Float, mismatch(format!("{name} is {:?}, expected float32", t.kind())));
    }
    if let Some(extra) = weights.keys().find(|k| !expected.iter().any(|(n, _)| n == *k)) {
        bail!(mismatch(format!("unexpected tensor {extra}")));
    }

    let mut vs = nn::VarStore::new(Device::Cpu);
    let model = TextClassifier::new(&vs.root(), config.model)?;
    tch::no_grad(|| -> Result<()> {
        for (name, mut var) in vs.variables() {
            var.f_copy_(&weights[&name])?;
        }
        Ok(())
    })?;
    vs.set_device(device);
    model.flatten_parameters()?; // one cuDNN weight buffer on CUDA; a no-op on the CPU
    let tokenizer = Tokenizer::new(config.tokenizer);
    Ok(Checkpoint { config, vs, model, tokenizer, vocab, labels })
}

//! The text pipeline: tokenizer → vocabulary → datasets → encoded, padded batches.

pub mod batcher;
pub mod dataset;
mod labels;
pub mod tokenizer;
pub mod vocab;

pub use batcher::{encode_text, Batch, Encoded, Truncate, Truncation};
pub use dataset::{Columns, Example, Format};
pub use labels::LabelSet;
pub use tokenizer::{Tokenizer, TokenizerConfig, TokenizerMode};
pub use vocab::Vocab;

use std::path::{Path, PathBuf};

use anyhow::{ensure, Result};
use serde::{Deserialize, Serialize};

/// Where the sample dataset lives: `data/sample` under the working directory, else in the
/// source tree this binary was built from.
pub fn sample_dir() -> PathBuf {
    let local = PathBuf::from("data/sample");
    if local.is_dir() {
        local
    } else {
        Path::new(env!("CARGO_MANIFEST_DIR")).join("data/sample")
    }
}

/// How to read a dataset file.
#[derive(Debug, Clone, PartialEq, Eq, Default, clap::Args, Serialize, Deserialize)]
pub struct DataArgs {
    /// File format; by default from the extension (.tsv .csv .jsonl), a directory being IMDB.
    #[arg(long, value_enum)]
    pub format: Option<Format>,
    /// Column (or JSON field) holding the text [default: the first of text, sentence, review,
    /// text_a, content, comment].
    #[arg(long)]
    pub text_column: Option<String>,
    /// Column (or JSON field) holding the label [default: label, sentiment or polarity].
    #[arg(long)]
    pub label_column: Option<String>,
}

impl DataArgs {
    /// Reads the dataset file (or IMDB directory) `path`.
    pub fn load(&self, path: &Path) -> Result<Vec<Example>> {
        if let (Some(text), Some(label)) = (&self.text_column, &self.label_column) {
            ensure!(text != label, "--text-column and --label-column both name {text:?}");
        }
        let columns = Columns { text: self.text_column.clone(), label: self.label_column.clone() };
        dataset::load(path, self.format, &columns)
    }
}

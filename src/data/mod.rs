//! The text pipeline: tokenizer → vocabulary → datasets → encoded, padded batches.

pub mod batcher;
pub mod dataset;
pub mod tokenizer;
pub mod vocab;

pub use batcher::{Batch, Encoded, Truncate, Truncation};
pub use dataset::{Columns, Example, Format, LabelSet};
pub use tokenizer::{Tokenizer, TokenizerConfig, TokenizerMode};
pub use vocab::Vocab;

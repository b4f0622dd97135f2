//! The lab: the model opened up and measured, beside the product.
//!
//! - [`explain`]: the gates and the running prediction of a checkpoint, token by token;
//! - [`claims`]: the article's claims (vanishing gradients, memory over distance, speed), measured;
//! - [`bench`]: the benchmark workloads `scripts/bench.py` times against PyTorch;
//! - [`plot`]: PNG figures (heat maps, line charts).

pub mod bench;
pub mod claims;
pub mod explain;
pub mod plot;

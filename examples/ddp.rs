//! Data-parallel training on the library, as a PyTorch user writes it with
//! `DistributedDataParallel`: every rank of a `torchrun` job builds the model, wraps its
//! parameters in [`Ddp`] (rank 0's values everywhere, gradients averaged across the ranks), and
//! takes a few SGD steps on its own batches. `scripts/ddp_steps.py` is the same program in
//! PyTorch; tests/suite/dist.rs runs both, and one rank of each in one job, and finds the same
//! bits.
//!
//! ```text
//! $ torchrun --standalone --nproc-per-node 2 --no-python target/debug/examples/ddp OUT_DIR
//! rank 0 step 0 loss 0x3f8c2b1a ...
//! ```
//! Each rank prints its loss per step (as float32 bits), writes those lines to
//! `OUT_DIR/rank{R}.txt` and its final parameters, concatenated in module order, to
//! `OUT_DIR/rank{R}.bin`.

use std::{path::PathBuf, process::ExitCode, time::Duration};

use anyhow::{Context, Result};
use lstm_tch::{
    dist::{model_parameters, Ddp, Group, Launch},
    nn::{cross_entropy, Cell, Pooling, TextArchitecture, TextClassifier, TextClassifierConfig},
};
use tch::{nn, Device, Kind, Tensor};

/// The model both sides build: a small bidirectional LSTM with max pooling (the defaults' shape).
fn config() -> TextClassifierConfig {
    let architecture = TextArchitecture {
        embedding_dim: 8,
        cell: Cell::Lstm,
        hidden_size: 16,
        num_layers: 1,
        bidirectional: true,
        dropout: 0.0,
        embedding_dropout: 0.0,
        pooling: Pooling::Max,
        output_dropout: 0.0,
        forget_bias: None,
    };
    TextClassifierConfig { vocab_size: 50, num_classes: 3, architecture }
}

/// Rank `rank`'s batch for `step`: 4 texts of 6 tokens (the last ones shorter) and their labels.
fn batch(rank: usize, step: usize) -> (Tensor, Tensor, Tensor) {
    tch::manual_seed((1000 + 17 * step + rank) as i64);
    let tokens = Tensor::randint_low(2, 50, [4, 6], (Kind::Int64, Device::Cpu));
    let labels = Tensor::randint(3, [4], (Kind::Int64, Device::Cpu));
    (tokens, Tensor::from_slice(&[6i64, 5, 4, 6]), labels)
}

fn main() -> ExitCode {
    lstm_tch::run_main(|| {
        let out = PathBuf::from(std::env::args().nth(1).context("usage: ddp OUT_DIR (under torchrun)")?);
        let launch = Launch::from_env()?.context("RANK and WORLD_SIZE are not set: run under torchrun")?;
        tch::set_num_threads(1);
        let group = Group::join(&launch, Duration::from_secs(60))?;
        // Every rank draws other initial values: DDP must replace them with rank 0's.
        tch::manual_seed(launch.rank as i64);
        let vs = nn::VarStore::new(Device::Cpu);
        let model = TextClassifier::new(&vs.root(), config())?;
        let params = model_parameters(&vs, &config())?;
        let ddp = Ddp::new(&group, &params, None)?;
        let mut losses = String::new();
        for step in 0..3 {
            let (tokens, lengths, labels) = batch(launch.rank, step);
            ddp.before_forward()?;
            let logits = model.forward(&tokens, &lengths, true)?;
            ddp.after_forward()?;
            let loss = cross_entropy(&logits, &labels)?;
            loss.f_backward()?;
            let value = f32::try_from(&loss)?;
            let line = format!("rank {} step {step} loss {:#010x}\n", launch.rank, value.to_bits());
            print!("{line}");
            losses += &line;
            tch::no_grad(|| -> Result<()> {
                for p in &params {
                    let mut p = p.shallow_clone();
                    let mut grad = p.grad();
                    let _ = p.f_sub_(&grad.f_mul_scalar(0.1)?)?;
                    let _ = grad.f_zero_()?;
                }
                Ok(())
            })?;
        }
        let bytes: Vec<u8> = params
            .iter()
            .map(|p| Ok(Vec::<f32>::try_from(&p.f_flatten(0, -1)?)?))
            .collect::<Result<Vec<_>>>()?
            .concat()
            .iter()
            .flat_map(|v| v.to_le_bytes())
            .collect();
        for (name, contents) in [("bin", bytes), ("txt", losses.into_bytes())] {
            let path = out.join(format!("rank{}.{name}", launch.rank));
            std::fs::write(&path, contents).with_context(|| format!("cannot write {}", path.display()))?;
        }
        group.barrier()?; // every rank done before any leaves (then `group` is dropped: shut down)
        Ok(())
    })
}

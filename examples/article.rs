//! The article's PyTorch script, "LSTM for text sentiment classification", in Rust on tch.
//!
//! It reads top to bottom like the Python (docs/article.md): seed, random inputs, labels,
//! hyperparameters, model, 200 epochs of Adam on cross-entropy, then the predicted classes,
//! printed exactly as PyTorch prints them. With the same seed it is bit-identical to
//! `scripts/reference.py` (`scripts/compare.py` proves it).
//!
//! ```text
//! $ cargo run --example article
//! tensor([0, 1])
//! $ cargo run --example article -- --seed 42 --hidden-size 17 --report run.json
//! ```

use std::process::ExitCode;

use anyhow::Result;
use clap::Parser;
use lstm_tch::{
    article::{ArticleConfig, ArticleReport, LstmModel},
    nn::cross_entropy,
    runtime::device,
    runtime::report::{format_int_tensor, state_dict_values, tensor_values_f32, tensor_values_i64, JsonFile},
    train::optim::Adam,
};
use tch::{nn, Device, Tensor};

/// The article's LSTM classifier, trained on random sequences (docs/article.md).
#[derive(Parser)]
#[command(about, long_about = None)]
struct Cli {
    #[command(flatten)]
    config: ArticleConfig,
}

fn main() -> ExitCode {
    lstm_tch::run_main(|| run(Cli::parse().config))
}

fn run(config: ArticleConfig) -> Result<()> {
    config.validate()?;
    let device = config.device.resolve()?;
    device::set_threads(config.threads)?;
    let report_file = config.report.as_deref().map(JsonFile::create).transpose()?;

    tch::manual_seed(config.seed);

    // prepare data
    let inputs = config.inputs()?.f_to_device(device)?; // inputs = new_inputs = torch.randn(2,5,1)
    let new_inputs = inputs.shallow_clone();
    let labels = Tensor::from_slice(&config.labels()).f_to_device(device)?; // torch.tensor([0,1])

    // hyperparameters
    let model_config = config.model_config();
    let num_epochs = config.epochs;

    // model, built (and so initialised) on the CPU like PyTorch's, then moved: `model.to(device)`,
    // which on CUDA also packs the LSTM's weights into one cuDNN buffer (flatten_parameters)
    let mut vs = nn::VarStore::new(Device::Cpu);
    let model = LstmModel::new(&vs.root(), model_config)?;
    let initial_parameters = state_dict_values(&vs)?;
    vs.set_device(device);
    model.flatten_parameters()?;
    let mut optimizer = Adam::new(config.adam, &vs, config.adam_config())?;

    // train
    let mut losses = Vec::with_capacity(num_epochs);
    for _epoch in 0..num_epochs {
        let outputs = model.forward(&inputs)?;
        let loss = cross_entropy(&outputs, &labels)?;
        optimizer.backward_step(&loss)?; // zero_grad(); loss.backward(); step()
        losses.push(loss.f_double_value(&[])? as f32);
    }

    // predict with the trained model
    let outputs = model.forward(&new_inputs)?;
    let predicted = outputs.f_argmax(1, false)?;
    let predictions = tensor_values_i64(&predicted)?;
    println!("{}", format_int_tensor(&predictions, predicted.device()));

    if let Some(file) = report_file {
        file.write(&ArticleReport {
            inputs: tensor_values_f32(&inputs)?,
            labels: config.labels(),
            initial_parameters,
            final_parameters: state_dict_values(&vs)?,
            losses,
            logits: tensor_values_f32(&outputs)?,
            predictions,
            config,
        })?;
    }
    Ok(())
}

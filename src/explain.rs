//! `lstm-tch explain`: what the gates do, token by token, on a trained checkpoint.
//!
//! For each token of a text, in reading order and for each direction of the last LSTM layer (the
//! one the classifier reads): the mean input, forget and output gate activations over the hidden
//! units, the norm of the cell state after the token, and the class probabilities the model
//! gives the text cut off after that token, so a reader sees how "not" or "但是" moves the
//! prediction. The gates come from [`crate::cell::unroll`] (the equations, in plain tensor ops)
//! on the checkpoint's weights; the text's logits are computed both ways, and a difference
//! beyond the tolerance `tests/cell.rs` holds the two to is reported.

use anyhow::{ensure, Result};
use serde::Serialize;
use tch::{Device, Kind, Tensor};

use crate::{
    cell,
    checkpoint::Checkpoint,
    data::Encoded,
    metrics::{argmax, pad},
    model::Pooling,
    training,
};

/// Largest difference allowed between the equations' logits and the fused kernel's before
/// [`Explanation::agrees`] is false (the equations and the kernel differ by ~1e-7 per value).
pub const TOLERANCE: f64 = 1e-4;

/// One token's row.
#[derive(Debug, Clone, Serialize)]
pub struct TokenTrace {
    /// The token (as tokenized; `<unk>` tokens keep their text).
    pub token: String,
    /// Whether the vocabulary knows it.
    pub known: bool,
    /// Per direction of the last layer (forward, then backward): mean input gate.
    pub input_gate: Vec<f32>,
    /// Per direction: mean forget gate.
    pub forget_gate: Vec<f32>,
    /// Per direction: mean output gate.
    pub output_gate: Vec<f32>,
    /// Per direction: L2 norm of the cell state after this token.
    pub cell_norm: Vec<f32>,
    /// Class probabilities of the text cut off after this token.
    pub probabilities: Vec<f32>,
}

/// The explanation of one text.
#[derive(Debug, Clone, Serialize)]
pub struct Explanation {
    /// The text.
    pub text: String,
    /// The class names, in class order.
    pub labels: Vec<String>,
    /// The predicted class of the whole text.
    pub label: String,
    /// Its class probabilities.
    pub probabilities: Vec<f32>,
    /// "forward", and "backward" for a bidirectional model.
    pub directions: Vec<String>,
    /// One row per token the model reads (after `--max-len` truncation).
    pub tokens: Vec<TokenTrace>,
    /// Largest difference between the logits from the equations and from the fused kernel.
    pub max_logit_difference: f64,
    /// Whether that difference is within [`TOLERANCE`].
    pub agrees: bool,
}

/// Explains `text` with the checkpoint `ckpt` (on the CPU).
pub fn explain(ckpt: &Checkpoint, text: &str) -> Result<Explanation> {
    let on_cpu = ckpt.vs.device() == Device::Cpu;
    ensure!(on_cpu, "explain runs on the CPU; load the checkpoint there");
    let tokens = ckpt.tokenizer.tokenize(text);
    let ids = ckpt.vocab.encode(&tokens);
    // The positions truncation keeps, applied to token indices.
    let positions: Vec<i64> = (0..ids.len() as i64).collect();
    let kept: Vec<usize> = ckpt.config.truncate().apply(&positions).iter().map(|&i| i as usize).collect();
    let ids: Vec<i64> = kept.iter().map(|&i| ids[i]).collect();
    let shown: Vec<(String, bool)> = kept
        .iter()
        .map(|&i| match tokens.get(i) {
            Some(t) => (t.clone(), ckpt.vocab.id(t) != crate::data::vocab::UNK_ID),
            None => ("<empty>".to_owned(), false),
        })
        .collect();

    let model = &ckpt.model;
    let config = model.config();
    let (layers, dirs) = (config.num_layers, if config.bidirectional { 2 } else { 1 });
    let n = ids.len();
    tch::no_grad(|| -> Result<Explanation> {
        let xs = model.embed(&Tensor::from_slice(&ids).f_view([1, n as i64])?)?;
        let unrolled = cell::unroll(&xs, model.classifier().lstm_parameters(), layers, config.bidirectional)?;
        // The logits of the whole text from the equations, pooled as the model pools.
        let features = match config.pooling {
            Pooling::Last if config.bidirectional => {
                Tensor::f_cat(&[unrolled.h_n.f_get(-2)?, unrolled.h_n.f_get(-1)?], 1)?
            }
            Pooling::Last => unrolled.h_n.f_get(-1)?,
            Pooling::Max => unrolled.output.f_max_dim(1, false)?.0,
            Pooling::Mean => unrolled.output.f_mean_dim(1, false, Kind::Float)?,
        };
        let from_equations = model.classifier().classify(&features)?;
        // The model itself on every prefix: the probabilities if the text ended there.
        let prefixes: Vec<Vec<i64>> = (1..=n).map(|k| ids[..k].to_vec()).collect();
        let data = Encoded::from_ids(&prefixes, vec![0; n])?;
        let logits = training::logits(model, &data, n, Device::Cpu)?;
        let probs = Vec::<f32>::try_from(&logits.f_softmax(1, Kind::Float)?.f_flatten(0, -1)?)?;
        let classes = ckpt.labels.len();
        let whole = &probs[(n - 1) * classes..];
        let difference =
            (from_equations - logits.f_get(n as i64 - 1)?).f_abs()?.f_max()?.f_double_value(&[])?;

        let last_layer = ((layers - 1) * dirs) as usize..(layers * dirs) as usize;
        let mean = |t: &Tensor| t.f_mean(Kind::Float)?.f_double_value(&[]).map(|v| v as f32);
        let norm = |t: &Tensor| t.f_norm()?.f_double_value(&[]).map(|v| v as f32);
        let mut rows = Vec::with_capacity(n);
        for (t, (token, known)) in shown.into_iter().enumerate() {
            let (mut input_gate, mut forget_gate, mut output_gate, mut cell_norm) =
                (vec![], vec![], vec![], vec![]);
            for d in last_layer.clone() {
                let g = &unrolled.gates[d][t];
                input_gate.push(mean(&g.input)?);
                forget_gate.push(mean(&g.forget)?);
                output_gate.push(mean(&g.output)?);
                cell_norm.push(norm(&unrolled.cells[d][t])?);
            }
            let probabilities = probs[t * classes..(t + 1) * classes].to_vec();
            rows.push(TokenTrace {
                token,
                known,
                input_gate,
                forget_gate,
                output_gate,
                cell_norm,
                probabilities,
            });
        }
        Ok(Explanation {
            text: text.to_owned(),
            labels: ckpt.labels.names().to_vec(),
            label: ckpt.labels.names()[argmax(whole)].clone(),
            probabilities: whole.to_vec(),
            directions: ["forward", "backward"][..dirs as usize].iter().map(|s| s.to_string()).collect(),
            tokens: rows,
            max_logit_difference: difference,
            agrees: difference <= TOLERANCE,
        })
    })
}

/// A bar of eighths for a value in [0, 1].
fn bar(value: f32) -> char {
    const BLOCKS: [char; 9] = [' ', '▁', '▂', '▃', '▄', '▅', '▆', '▇', '█'];
    BLOCKS[(value.clamp(0.0, 1.0) * 8.0).round() as usize]
}

impl Explanation {
    /// The terminal table: a row per token, each value with a small bar.
    pub fn table(&self) -> String {
        use std::fmt::Write;
        use unicode_width::UnicodeWidthStr;
        let mut out = String::new();
        let probs: Vec<String> =
            self.labels.iter().zip(&self.probabilities).map(|(l, p)| format!("{l}={p:.4}")).collect();
        let _ = writeln!(out, "{}\n→ {}  ({})", self.text, self.label, probs.join(" "));
        let width = self.tokens.iter().map(|t| t.token.width()).max().unwrap_or(5).clamp(5, 16);
        for (d, direction) in self.directions.iter().enumerate() {
            let _ = writeln!(
                out,
                "\n{direction}:\n{}  input   forget  output  |cell|   P({}) if the text ended here",
                pad("token", width),
                self.labels.last().map_or("", String::as_str)
            );
            for t in &self.tokens {
                let p = t.probabilities.last().copied().unwrap_or(0.0);
                let _ = writeln!(
                    out,
                    "{}  {:.2} {}  {:.2} {}  {:.2} {}  {:6.2}   {:.4} {}{}",
                    pad(&t.token, width),
                    t.input_gate[d],
                    bar(t.input_gate[d]),
                    t.forget_gate[d],
                    bar(t.forget_gate[d]),
                    t.output_gate[d],
                    bar(t.output_gate[d]),
                    t.cell_norm[d],
                    p,
                    bar(p),
                    if t.known { "" } else { "  (not in the vocabulary)" }
                );
            }
        }
        if !self.agrees {
            let _ = writeln!(
                out,
                "\nwarning: the equations' logits differ from the fused kernel's by {:.2e} (tolerance {TOLERANCE:.0e})",
                self.max_logit_difference
            );
        }
        out
    }
}

impl Explanation {
    /// The heat map of [`crate::plot::heat_maps`] (`explain --plot`): the tokens, and per
    /// direction the mean input, forget and output gates and the cell norm (coloured per row from
    /// its minimum to its maximum), then the running probability of each class; titled with the
    /// text (cut to 60 characters) and the predicted label.
    pub fn heat_map(&self) -> crate::plot::HeatMap {
        use crate::plot::{Row, Scale};
        let mut rows = vec![];
        for (d, direction) in self.directions.iter().enumerate() {
            let series = |f: fn(&TokenTrace) -> &Vec<f32>| self.tokens.iter().map(|t| f(t)[d]).collect();
            let row = |name: &str, values, scale| Row {
                group: direction.clone(),
                name: format!("{direction} {name}"),
                values,
                scale,
            };
            rows.push(row("input", series(|t| &t.input_gate), Scale::Unit));
            rows.push(row("forget", series(|t| &t.forget_gate), Scale::Unit));
            rows.push(row("output", series(|t| &t.output_gate), Scale::Unit));
            rows.push(row("|cell| *", series(|t| &t.cell_norm), Scale::PerRow));
        }
        for (c, class) in self.labels.iter().enumerate() {
            let values = self.tokens.iter().map(|t| t.probabilities[c]).collect();
            rows.push(Row {
                group: "prediction".to_owned(),
                name: format!("P({class})"),
                values,
                scale: Scale::Unit,
            });
        }
        let text: String = self.text.chars().take(60).collect();
        let cut = if self.text.chars().count() > 60 { "…" } else { "" };
        let p = self.labels.iter().position(|l| *l == self.label).map_or(0.0, |i| self.probabilities[i]);
        crate::plot::HeatMap {
            title: format!("\"{text}{cut}\" → {} ({p:.2})", self.label),
            tokens: self
                .tokens
                .iter()
                .map(|t| crate::plot::Token { text: t.token.clone(), muted: !t.known })
                .collect(),
            rows,
            note: "gates: mean over the hidden units; * |cell| coloured from its row's min to max; \
                   P(class): the text cut after the token; grey tokens: not in the vocabulary"
                .to_owned(),
        }
    }
}

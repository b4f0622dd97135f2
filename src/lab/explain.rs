//! `lstm-tch explain`: what the gates do, token by token, on a trained checkpoint.
//!
//! For each token of a text, in reading order and for each direction of the last recurrent layer
//! (the one the classifier reads): each gate's mean activation over the hidden units, the norm
//! of the state the cell carries after the token, and the class probabilities the model gives
//! the text cut off after that token, so a reader sees how "not" or "但是" moves the prediction.
//! Each cell reports its own gates and state ([`crate::nn::equations::gate_names`]):
//!
//! | cell | gates                  | norm     |
//! |------|------------------------|----------|
//! | lstm | input, forget, output  | `cell`   |
//! | gru  | reset, update          | `hidden` |
//! | rnn  | (none)                 | `hidden` |
//!
//! The gates come from [`crate::nn::equations::unroll`] (the equations, in plain tensor ops) on the
//! checkpoint's weights; the text's logits are computed both ways, and a difference beyond the
//! tolerance `tests/suite/cell.rs` holds the two to is reported. [`Explanation::rows`] gives the
//! per-token series by name, for a table or a plot.

use anyhow::{ensure, Context, Result};
use serde::{ser::SerializeMap, Serialize, Serializer};
use tch::{Device, Kind, Tensor};

use crate::{
    checkpoint::Checkpoint,
    data::Encoded,
    infer::{
        self,
        metrics::{argmax, pad},
    },
    nn::{
        equations::{self, Unrolled},
        Cell, Pooling, TextArchitecture, TextClassifier,
    },
};

/// Largest difference allowed between the equations' logits and the fused kernel's before
/// [`Explanation::agrees`] is false (the equations and the kernel differ by ~1e-7 per value).
pub const TOLERANCE: f64 = 1e-4;

/// Values by name, in a fixed order, each with one value per direction of the last layer
/// (forward, then backward); in JSON an object, `{"input": [0.51, 0.48], "forget": ...}`.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Named(pub Vec<(String, Vec<f32>)>);

impl Named {
    /// The values of `name`, per direction.
    pub fn get(&self, name: &str) -> Option<&[f32]> {
        self.0.iter().find(|(n, _)| n == name).map(|(_, v)| v.as_slice())
    }
}

impl Serialize for Named {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut map = serializer.serialize_map(Some(self.0.len()))?;
        for (name, values) in &self.0 {
            map.serialize_entry(name, values)?;
        }
        map.end()
    }
}

/// One token's row.
#[derive(Debug, Clone, Serialize)]
pub struct TokenTrace {
    /// The token (as tokenized; `<unk>` tokens keep their text).
    pub token: String,
    /// Whether the vocabulary knows it.
    pub known: bool,
    /// Each gate's mean activation over the hidden units, per direction, in the cell's order
    /// ([`Explanation::gate_names`]): LSTM `input`, `forget`, `output`; GRU `reset`, `update`; RNN
    /// none.
    pub gates: Named,
    /// The L2 norm of the state the cell carries after this token, per direction: LSTM `cell`;
    /// GRU and RNN `hidden` ([`Explanation::norm_names`]).
    pub norms: Named,
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
    /// The checkpoint's recurrent cell.
    pub cell: Cell,
    /// "forward", and "backward" for a bidirectional model.
    pub directions: Vec<String>,
    /// The names of the gates each token reports ([`equations::gate_names`]).
    pub gate_names: Vec<String>,
    /// The names of the states whose norms each token reports: `cell` (LSTM) or `hidden`.
    pub norm_names: Vec<String>,
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
    let (ids, shown) = kept_tokens(ckpt, text);
    let model = &ckpt.model;
    let config = &model.config().architecture;
    let dirs = if config.bidirectional { 2 } else { 1 };
    let n = ids.len();
    tch::no_grad(|| -> Result<Explanation> {
        let xs = model.embed(&Tensor::from_slice(&ids).f_view([1, n as i64])?)?;
        let params = model.classifier().rnn_parameters();
        let unrolled = equations::unroll(&xs, params, config.cell, config.num_layers, config.bidirectional)?;
        let from_equations = equations_logits(model, &unrolled)?;
        let (probs, whole_logits, whole) = running_probabilities(model, &ids)?;
        let classes = ckpt.labels.len();
        let difference = (from_equations - whole_logits).f_abs()?.f_max()?.f_double_value(&[])?;
        let rows = traces(config, &unrolled, shown, &probs, classes)?;
        Ok(Explanation {
            text: text.to_owned(),
            labels: ckpt.labels.names().to_vec(),
            label: ckpt.labels.names()[argmax(&whole)].clone(),
            probabilities: whole,
            cell: config.cell,
            directions: ["forward", "backward"][..dirs as usize].iter().map(|s| s.to_string()).collect(),
            gate_names: equations::gate_names(config.cell).iter().map(|g| g.to_string()).collect(),
            norm_names: vec![norm_name(config.cell).to_owned()],
            tokens: rows,
            max_logit_difference: difference,
            agrees: difference <= TOLERANCE,
        })
    })
}

/// The ids of `text`'s tokens that truncation keeps, with each one's text and whether the
/// vocabulary knows it.
fn kept_tokens(ckpt: &Checkpoint, text: &str) -> (Vec<i64>, Vec<(String, bool)>) {
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
    (ids, shown)
}

/// The logits of the whole text from the equations, pooled as the model pools.
fn equations_logits(model: &TextClassifier, unrolled: &Unrolled) -> Result<Tensor> {
    let config = &model.config().architecture;
    let features = match config.pooling {
        Pooling::Last if config.bidirectional => {
            Tensor::f_cat(&[unrolled.h_n.f_get(-2)?, unrolled.h_n.f_get(-1)?], 1)?
        }
        Pooling::Last => unrolled.h_n.f_get(-1)?,
        Pooling::Max => unrolled.output.f_max_dim(1, false)?.0,
        Pooling::Mean => unrolled.output.f_mean_dim(1, false, Kind::Float)?,
    };
    model.classifier().classify(&features)
}

/// The model's class probabilities of every prefix of `ids`, shortest first, one row of classes
/// after another; then the whole text's logits and probabilities (the last row).
fn running_probabilities(model: &TextClassifier, ids: &[i64]) -> Result<(Vec<f32>, Tensor, Vec<f32>)> {
    // The model itself on every prefix: the probabilities if the text ended there. The whole
    // text runs alone, as `predict` runs one text, so that its answer is predict's to the bit
    // (a batch of another size may round the matrix products differently); the shorter
    // prefixes run as one batch.
    let softmax = |logits: &Tensor| -> Result<Vec<f32>> {
        Ok(Vec::<f32>::try_from(&logits.f_softmax(1, Kind::Float)?.f_flatten(0, -1)?)?)
    };
    let run = |texts: &[Vec<i64>]| {
        infer::logits(model, &Encoded::from_ids(texts, vec![0; texts.len()])?, texts.len(), Device::Cpu)
    };
    let prefixes: Vec<Vec<i64>> = (1..ids.len()).map(|k| ids[..k].to_vec()).collect();
    let mut probs = if prefixes.is_empty() { vec![] } else { softmax(&run(&prefixes)?)? };
    let whole_logits = run(&[ids.to_vec()])?;
    let whole = softmax(&whole_logits)?;
    probs.extend_from_slice(&whole);
    Ok((probs, whole_logits, whole))
}

/// The state whose norm each token reports: `cell` for the LSTM, `hidden` otherwise.
fn norm_name(cell: Cell) -> &'static str {
    if cell == Cell::Lstm {
        "cell"
    } else {
        "hidden"
    }
}

/// One row per token of `shown`: the gates' means and the state's norm in each direction of the
/// last layer of `unrolled`, and the probabilities (`classes` of them per token, in `probs`) of
/// the text cut off after it.
fn traces(
    config: &TextArchitecture,
    unrolled: &Unrolled,
    shown: Vec<(String, bool)>,
    probs: &[f32],
    classes: usize,
) -> Result<Vec<TokenTrace>> {
    let (layers, dirs) = (config.num_layers, if config.bidirectional { 2 } else { 1 });
    let last_layer = ((layers - 1) * dirs) as usize..(layers * dirs) as usize;
    let mean = |t: &Tensor| t.f_mean(Kind::Float)?.f_double_value(&[]).map(|v| v as f32);
    let norm = |t: &Tensor| t.f_norm()?.f_double_value(&[]).map(|v| v as f32);
    let gate_names = equations::gate_names(config.cell);
    let mut rows = Vec::with_capacity(shown.len());
    for (t, (token, known)) in shown.into_iter().enumerate() {
        let mut gates: Vec<(String, Vec<f32>)> = gate_names.iter().map(|g| (g.to_string(), vec![])).collect();
        let mut state_norm = vec![];
        for d in last_layer.clone() {
            let step = &unrolled.steps[d][t];
            for ((_, values), (_, gate)) in gates.iter_mut().zip(step.gates.named()) {
                values.push(mean(gate)?);
            }
            let state = if config.cell == Cell::Lstm {
                step.c.as_ref().context("an LSTM step without a cell state")?
            } else {
                &step.h
            };
            state_norm.push(norm(state)?);
        }
        let probabilities = probs[t * classes..(t + 1) * classes].to_vec();
        rows.push(TokenTrace {
            token,
            known,
            gates: Named(gates),
            norms: Named(vec![(norm_name(config.cell).to_owned(), state_norm)]),
            probabilities,
        });
    }
    Ok(rows)
}

/// A bar of eighths for a value in [0, 1].
fn bar(value: f32) -> char {
    const BLOCKS: [char; 9] = [' ', '▁', '▂', '▃', '▄', '▅', '▆', '▇', '█'];
    BLOCKS[(value.clamp(0.0, 1.0) * 8.0).round() as usize]
}

impl Explanation {
    /// The per-token series of direction `direction` (0: forward, 1: backward), by name, one
    /// value per token: each gate's mean (`input`, `forget`, `output`; `reset`, `update`), each
    /// state's norm (`|cell|` or `|hidden|`), then `P(LABEL)`, the probability of the last
    /// class if the text ended at that token (the same in every direction). The table prints
    /// these; a plot can draw them whatever the cell. Empty for a direction the model lacks.
    pub fn rows(&self, direction: usize) -> Vec<(String, Vec<f32>)> {
        if direction >= self.directions.len() {
            return vec![];
        }
        let series = |pick: &dyn Fn(&TokenTrace) -> f32| self.tokens.iter().map(pick).collect::<Vec<f32>>();
        let mut rows = vec![];
        for (i, name) in self.gate_names.iter().enumerate() {
            rows.push((name.clone(), series(&|t| t.gates.0[i].1[direction])));
        }
        for (i, name) in self.norm_names.iter().enumerate() {
            rows.push((format!("|{name}|"), series(&|t| t.norms.0[i].1[direction])));
        }
        let last = self.labels.last().map_or("", String::as_str);
        rows.push((format!("P({last})"), series(&|t| t.probabilities.last().copied().unwrap_or(0.0))));
        rows
    }

    /// The terminal table: per direction, a row per token, each gate's mean with a small bar,
    /// the state's norm and the probability of the last class if the text ended there.
    pub fn table(&self) -> String {
        use std::fmt::Write;
        use unicode_width::UnicodeWidthStr;
        let mut out = String::new();
        let probs: Vec<String> =
            self.labels.iter().zip(&self.probabilities).map(|(l, p)| format!("{l}={p:.4}")).collect();
        let _ = writeln!(out, "{}\n→ {}  ({})", self.text, self.label, probs.join(" "));
        let width = self.tokens.iter().map(|t| t.token.width()).max().unwrap_or(5).clamp(5, 16);
        let (gates, norms) = (self.gate_names.len(), self.norm_names.len());
        for (d, direction) in self.directions.iter().enumerate() {
            let rows = self.rows(d);
            let _ = write!(out, "\n{direction}:\n{}  ", pad("token", width));
            for (name, _) in &rows[..gates] {
                let _ = write!(out, "{name:<8}");
            }
            for (name, _) in &rows[gates..gates + norms] {
                let _ = write!(out, "{name:<9}");
            }
            let _ = writeln!(out, "{} if the text ended here", rows[gates + norms].0);
            for (k, t) in self.tokens.iter().enumerate() {
                let _ = write!(out, "{}  ", pad(&t.token, width));
                for (_, values) in &rows[..gates] {
                    let _ = write!(out, "{:.2} {}  ", values[k], bar(values[k]));
                }
                for (_, values) in &rows[gates..gates + norms] {
                    let _ = write!(out, "{:6.2}   ", values[k]);
                }
                let p = rows[gates + norms].1[k];
                let note = if t.known { "" } else { "  (not in the vocabulary)" };
                let _ = writeln!(out, "{p:.4} {}{note}", bar(p));
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
    /// The heat map of [`crate::lab::plot::heat_maps`] (`explain --plot`): the tokens, and per
    /// direction the cell's mean gates (LSTM: input, forget, output; GRU: reset, update) and its
    /// state's norm (coloured per row from its minimum to its maximum), then the running
    /// probability of each class; titled with the
    /// text (cut to 60 characters) and the predicted label.
    pub fn heat_map(&self) -> crate::lab::plot::HeatMap {
        use crate::lab::plot::{Row, Scale};
        let mut rows = vec![];
        for (d, direction) in self.directions.iter().enumerate() {
            let (gates, norms) = (self.gate_names.len(), self.norm_names.len());
            // `rows` lists the gates, then the norms, then the last class's probability
            // (drawn below, with every class).
            for (i, (name, values)) in self.rows(d).into_iter().take(gates + norms).enumerate() {
                let (name, scale) =
                    if i < gates { (name, Scale::Unit) } else { (format!("{name} *"), Scale::PerRow) };
                rows.push(Row {
                    group: direction.clone(),
                    name: format!("{direction} {name}"),
                    values,
                    scale,
                });
            }
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
        crate::lab::plot::HeatMap {
            title: format!("\"{text}{cut}\" → {} ({p:.2})", self.label),
            tokens: self
                .tokens
                .iter()
                .map(|t| crate::lab::plot::Token { text: t.token.clone(), muted: !t.known })
                .collect(),
            rows,
            note: "gates: mean over the hidden units; * |cell| coloured from its row's min to max; \
                   P(class): the text cut after the token; grey tokens: not in the vocabulary"
                .to_owned(),
        }
    }
}

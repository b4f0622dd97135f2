//! `POST /predict` and `POST /explain`: text-embeddings-inference's request shape, so its
//! clients work unchanged (docs/serving.md).

use std::{sync::Arc, time::Instant};

use axum::{extract::State, response::Response};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::{
    answer::Scores,
    api::{timed_json, ApiError, ApiJson, AppState, ErrorBody},
};

/// `POST /predict`'s body: one text or a list (text-embeddings-inference's shape). Other
/// fields (`truncate`, `parameters`: what some clients send) are accepted and ignored: texts
/// longer than the checkpoint's `--max-len` are always truncated, as `predict` truncates them.
#[derive(Debug, Deserialize, ToSchema)]
pub struct PredictRequest {
    /// The text or texts.
    pub inputs: Inputs,
    /// Return the logits instead of the probabilities as each label's `score`.
    #[serde(default)]
    pub raw_scores: bool,
}

/// `POST /explain`'s body: one text or a list.
#[derive(Debug, Deserialize, ToSchema)]
pub struct ExplainRequest {
    /// The text or texts.
    pub inputs: Inputs,
}

/// One text, or a list of them.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(untagged)]
pub enum Inputs {
    /// `"inputs": "text"`: the answer is one result.
    One(String),
    /// `"inputs": ["t1", "t2"]`: the answer is a list of results, one per text.
    Many(Vec<String>),
}

impl Inputs {
    /// The texts, and whether one text (not a list) was given.
    fn texts(self) -> (Vec<String>, bool) {
        match self {
            Inputs::One(text) => (vec![text], true),
            Inputs::Many(texts) => (texts, false),
        }
    }
}

/// A label and its score (probability, or logit with `raw_scores`).
#[derive(Debug, Serialize, Deserialize, PartialEq, ToSchema)]
pub struct LabelScore {
    /// The class name.
    pub label: String,
    /// Its probability (or logit).
    pub score: f32,
}

/// Each text's labels sorted by score: one list for one text, a list of lists for a list. The
/// `x-queue-time` and `x-inference-time` headers give the milliseconds spent in each.
#[utoipa::path(
    post, path = "/predict", tag = "model", request_body = PredictRequest,
    responses(
        (status = 200, body = Vec<LabelScore>, description = "one text's labels, highest score first (a list of such lists for a list)"),
        (status = 400, body = ErrorBody), (status = 413, body = ErrorBody), (status = 422, body = ErrorBody),
        (status = 429, body = ErrorBody), (status = 503, body = ErrorBody),
    )
)]
pub async fn predict(
    State(state): State<Arc<AppState>>,
    ApiJson(request): ApiJson<PredictRequest>,
) -> Result<Response, ApiError> {
    let started = Instant::now();
    let (texts, one) = request.inputs.texts();
    let served = state.served();
    let _permit = state.admit(&served, texts.len())?;
    let ids = texts.iter().map(|t| served.encoder.encode(t)).collect();
    let answer = served.engine.scores(ids, started + state.config.timeout()).await?;
    let ranked = rank(&answer.output, &served.labels, request.raw_scores);
    let (queued, ran) = (answer.queue_time, answer.inference_time);
    Ok(if one { timed_json(&ranked[0], queued, ran) } else { timed_json(&ranked, queued, ran) })
}

/// Each text's gates token by token, as `lstm-tch explain --json` prints them: one object for
/// one text, a list for a list. Runs on the model's thread, between batches; CPU models only.
#[utoipa::path(
    post, path = "/explain", tag = "model", request_body = ExplainRequest,
    responses(
        (status = 200, body = Object, description = "what `lstm-tch explain --json` prints for the text (a list of those for a list)"),
        (status = 400, body = ErrorBody), (status = 413, body = ErrorBody), (status = 422, body = ErrorBody),
        (status = 429, body = ErrorBody), (status = 501, body = ErrorBody), (status = 503, body = ErrorBody),
    )
)]
pub async fn explain(
    State(state): State<Arc<AppState>>,
    ApiJson(request): ApiJson<ExplainRequest>,
) -> Result<Response, ApiError> {
    let started = Instant::now();
    let (texts, one) = request.inputs.texts();
    let served = state.served();
    let _permit = state.admit(&served, texts.len())?;
    let answer = served.engine.explain(texts, started + state.config.timeout()).await?;
    let (queued, ran) = (answer.queue_time, answer.inference_time);
    Ok(if one { timed_json(&answer.output[0], queued, ran) } else { timed_json(&answer.output, queued, ran) })
}

/// Each text's labels with their scores, highest first (ties in class order).
pub fn rank(scores: &Scores, labels: &[String], raw_scores: bool) -> Vec<Vec<LabelScore>> {
    let values = if raw_scores { &scores.logits } else { &scores.probabilities };
    values
        .chunks(labels.len())
        .map(|row| {
            let mut ranked: Vec<LabelScore> = labels
                .iter()
                .zip(row)
                .map(|(label, &score)| LabelScore { label: label.clone(), score })
                .collect();
            ranked.sort_by(|a, b| b.score.total_cmp(&a.score));
            ranked
        })
        .collect()
}

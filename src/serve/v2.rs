//! The Open Inference Protocol (v2, as KServe and Triton speak it): server and model metadata,
//! model readiness, and `POST /v2/models/{name}/infer` with one BYTES input of texts. Its
//! health routes (`/v2/health/live`, `/v2/health/ready`) are the server's own.

use std::{sync::Arc, time::Instant};

use axum::{extract::State, http::StatusCode, response::Response, Json};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use utoipa::ToSchema;

use super::{
    answer::Scores,
    api::{self, timed_json, ApiError, ApiJson, ApiPath, AppState, ErrorBody},
};

/// The outputs a model gives, in this order unless the request names some.
const OUTPUTS: [&str; 3] = ["label", "probabilities", "logits"];

/// `POST /v2/models/{name}/infer`'s body.
#[derive(Debug, Deserialize, ToSchema)]
pub struct InferRequest {
    /// An id echoed in the response.
    pub id: Option<String>,
    /// Exactly one tensor: the texts, datatype `BYTES`.
    pub inputs: Vec<InferInput>,
    /// The outputs wanted (default: all of `label`, `probabilities`, `logits`).
    #[serde(default)]
    pub outputs: Vec<RequestedOutput>,
}

/// An input tensor.
#[derive(Debug, Deserialize, ToSchema)]
pub struct InferInput {
    /// Its name (any).
    pub name: String,
    /// Its shape: `[texts]` (or any shape with as many elements).
    pub shape: Vec<i64>,
    /// `BYTES`: texts.
    pub datatype: String,
    /// The texts, flat or nested row-major.
    #[schema(value_type = Vec<String>)]
    pub data: Value,
}

/// An output the client asks for.
#[derive(Debug, Deserialize, ToSchema)]
pub struct RequestedOutput {
    /// `label`, `probabilities` or `logits`.
    pub name: String,
}

/// `POST /v2/models/{name}/infer`'s answer.
#[derive(Debug, Serialize, ToSchema)]
pub struct InferResponse {
    /// The model's name.
    pub model_name: String,
    /// The request's id, if it gave one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    /// The output tensors.
    pub outputs: Vec<OutputTensor>,
}

/// An output tensor: `label` (BYTES, `[texts]`), `probabilities` and `logits` (FP32, `[texts,
/// classes]`, row-major).
#[derive(Debug, Serialize, ToSchema)]
pub struct OutputTensor {
    /// Its name.
    pub name: String,
    /// `BYTES` or `FP32`.
    pub datatype: &'static str,
    /// Its shape.
    pub shape: Vec<usize>,
    /// Its values, flat.
    pub data: TensorData,
}

/// An output tensor's values (f32 values keep their shortest decimal form, as `/predict` gives
/// them).
#[derive(Debug, Serialize, ToSchema)]
#[serde(untagged)]
pub enum TensorData {
    /// `BYTES`: texts.
    Bytes(Vec<String>),
    /// `FP32`: numbers.
    Fp32(Vec<f32>),
}

/// Server metadata.
#[utoipa::path(get, path = "/v2", tag = "open inference protocol", responses((status = 200, description = "name, version, extensions")))]
pub async fn server_metadata() -> Json<Value> {
    Json(json!({ "name": "lstm-tch", "version": env!("CARGO_PKG_VERSION"), "extensions": [] }))
}

/// The model's metadata: its input and outputs.
#[utoipa::path(
    get, path = "/v2/models/{name}", tag = "open inference protocol",
    params(("name" = String, Path, description = "the model's name (`--model-name`)")),
    responses((status = 200, description = "name, platform, inputs, outputs"), (status = 404, body = ErrorBody))
)]
pub async fn model_metadata(
    State(state): State<Arc<AppState>>,
    ApiPath(name): ApiPath<String>,
) -> Result<Json<Value>, ApiError> {
    known(&state, &name)?;
    let classes = state.served().labels.len();
    Ok(Json(json!({
        "name": name,
        "versions": [],
        "platform": "lstm-tch",
        "inputs": [{ "name": "text", "datatype": "BYTES", "shape": [-1] }],
        "outputs": [
            { "name": "label", "datatype": "BYTES", "shape": [-1] },
            { "name": "probabilities", "datatype": "FP32", "shape": [-1, classes] },
            { "name": "logits", "datatype": "FP32", "shape": [-1, classes] },
        ],
    })))
}

/// The model's readiness: the server's.
#[utoipa::path(
    get, path = "/v2/models/{name}/ready", tag = "open inference protocol",
    params(("name" = String, Path, description = "the model's name")),
    responses((status = 200, description = "ready"), (status = 404, body = ErrorBody), (status = 503, body = ErrorBody))
)]
pub async fn model_ready(
    State(state): State<Arc<AppState>>,
    ApiPath(name): ApiPath<String>,
) -> Result<Json<Value>, ApiError> {
    known(&state, &name)?;
    api::ready(State(state)).await
}

/// Classifies the texts of the one BYTES input, batched with every other request.
#[utoipa::path(
    post, path = "/v2/models/{name}/infer", tag = "open inference protocol", request_body = InferRequest,
    params(("name" = String, Path, description = "the model's name")),
    responses(
        (status = 200, body = InferResponse), (status = 400, body = ErrorBody), (status = 404, body = ErrorBody),
        (status = 413, body = ErrorBody), (status = 422, body = ErrorBody), (status = 429, body = ErrorBody),
        (status = 503, body = ErrorBody),
    )
)]
pub async fn infer(
    State(state): State<Arc<AppState>>,
    ApiPath(name): ApiPath<String>,
    body: Result<ApiJson<InferRequest>, ApiError>,
) -> Result<Response, ApiError> {
    let started = Instant::now();
    known(&state, &name)?; // an unknown model is a 404 whatever the body
    let ApiJson(request) = body?;
    let wanted = wanted_outputs(&request.outputs)?;
    let texts = input_texts(&request.inputs)?;
    let served = state.served();
    let _permit = state.admit(&served, texts.len())?;
    let ids = texts.iter().map(|t| served.encoder.encode(t)).collect();
    let answer = served.engine.scores(ids, started + state.config.timeout()).await?;
    let outputs =
        wanted.into_iter().map(|w| output(w, &answer.output, &served.labels, texts.len())).collect();
    let response = InferResponse { model_name: name, id: request.id, outputs };
    Ok(timed_json(&response, answer.queue_time, answer.inference_time))
}

/// 404 unless `name` is the served model's name.
fn known(state: &AppState, name: &str) -> Result<(), ApiError> {
    if name == state.config.model_name {
        return Ok(());
    }
    let message = format!("no model named {name:?}; this server serves {:?}", state.config.model_name);
    Err(ApiError::new(StatusCode::NOT_FOUND, "not_found", message))
}

/// The outputs to give, checked against [`OUTPUTS`] (all of them when none is named).
fn wanted_outputs(requested: &[RequestedOutput]) -> Result<Vec<&'static str>, ApiError> {
    if requested.is_empty() {
        return Ok(OUTPUTS.to_vec());
    }
    let invalid = |message: String| ApiError::new(StatusCode::BAD_REQUEST, "validation", message);
    let mut wanted = Vec::with_capacity(requested.len());
    for r in requested {
        let Some(output) = OUTPUTS.iter().copied().find(|&o| o == r.name) else {
            return Err(invalid(format!(
                "no output named {:?}; the outputs are {}",
                r.name,
                OUTPUTS.join(", ")
            )));
        };
        if wanted.contains(&output) {
            return Err(invalid(format!("output {output:?} is asked for twice")));
        }
        wanted.push(output);
    }
    Ok(wanted)
}

/// The texts of the one BYTES input (its data flattened row-major), checked against its shape.
fn input_texts(inputs: &[InferInput]) -> Result<Vec<String>, ApiError> {
    let invalid = |message: String| ApiError::new(StatusCode::BAD_REQUEST, "validation", message);
    let [input] = inputs else {
        return Err(invalid(format!("expected exactly one input (the texts), got {}", inputs.len())));
    };
    if input.datatype != "BYTES" {
        return Err(invalid(format!(
            "input {:?}: datatype must be BYTES, got {}",
            input.name, input.datatype
        )));
    }
    texts_of(&input.data, &input.shape).map_err(|e| invalid(format!("input {:?}: {e}", input.name)))
}

/// The texts of `data` for `shape`, row-major: `data` is a flat array of the shape's elements,
/// arrays nested as the shape is (each level as long as its dimension), or a lone string for a
/// shape of one element.
fn texts_of(data: &Value, shape: &[i64]) -> Result<Vec<String>, String> {
    let elements = shape.iter().try_fold(1i64, |n, &d| if d < 0 { None } else { n.checked_mul(d) });
    let Some(elements) = elements else { return Err(format!("shape {shape:?} is not a tensor's shape")) };
    let mut texts = vec![];
    match data {
        Value::Array(items) if items.iter().all(Value::is_string) => {
            if items.len() as i64 != elements {
                return Err(format!("shape {shape:?} does not hold {} texts", items.len()));
            }
            texts.extend(items.iter().filter_map(|item| item.as_str().map(str::to_owned)));
        }
        Value::String(text) if elements == 1 => texts.push(text.clone()),
        _ => nested(data, shape, &mut texts)?,
    }
    Ok(texts)
}

/// Appends the strings of `data`, arrays nested exactly as `shape` says, to `texts`.
fn nested(data: &Value, shape: &[i64], texts: &mut Vec<String>) -> Result<(), String> {
    match (data, shape) {
        (Value::String(text), []) => texts.push(text.clone()),
        (Value::Array(items), [length, inner @ ..]) if items.len() as i64 == *length => {
            items.iter().try_for_each(|item| nested(item, inner, texts))?;
        }
        (Value::String(_) | Value::Array(_), _) => {
            return Err(format!("data is neither flat nor nested as shape {shape:?}"));
        }
        _ => return Err("data must be strings (or arrays of strings nested as the shape)".to_owned()),
    }
    Ok(())
}

/// The output tensor `name` of `texts` texts scored `scores`.
fn output(name: &'static str, scores: &Scores, labels: &[String], texts: usize) -> OutputTensor {
    let classes = labels.len();
    let (datatype, shape, data) = match name {
        "label" => {
            let best = scores
                .probabilities
                .chunks(classes)
                .map(|row| labels[crate::infer::metrics::argmax(row)].clone());
            ("BYTES", vec![texts], TensorData::Bytes(best.collect()))
        }
        "logits" => ("FP32", vec![texts, classes], TensorData::Fp32(scores.logits.clone())),
        _ => ("FP32", vec![texts, classes], TensorData::Fp32(scores.probabilities.clone())),
    };
    OutputTensor { name: name.to_owned(), datatype, shape, data }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn data_is_flat_nested_as_the_shape_or_a_lone_string() {
        let texts = |data: Value, shape: &[i64]| texts_of(&data, shape);
        let abcd = ["a", "b", "c", "d"].map(String::from).to_vec();
        assert_eq!(texts(json!(["a", "b", "c", "d"]), &[4]), Ok(abcd.clone()));
        assert_eq!(texts(json!(["a", "b", "c", "d"]), &[2, 2]), Ok(abcd.clone()), "flat, row-major");
        assert_eq!(texts(json!([["a", "b"], ["c", "d"]]), &[2, 2]), Ok(abcd.clone()));
        assert_eq!(texts(json!([[["a"], ["b"]], [["c"], ["d"]]]), &[2, 2, 1]), Ok(abcd));
        assert_eq!(texts(json!("a"), &[1]), Ok(vec!["a".to_owned()]));
        assert_eq!(texts(json!("a"), &[]), Ok(vec!["a".to_owned()]), "a scalar");
        assert_eq!(texts(json!([]), &[0]), Ok(vec![]));
    }

    #[test]
    fn data_that_the_shape_does_not_describe_is_refused() {
        let refused = |data: Value, shape: &[i64]| texts_of(&data, shape).unwrap_err();
        assert!(refused(json!([["a", "b"], "c"]), &[3]).contains("neither flat nor nested"));
        assert!(refused(json!([["a", "b"], ["c"]]), &[2, 2]).contains("neither flat nor nested"));
        assert!(refused(json!([["a", "b"], ["c", "d"]]), &[4]).contains("neither flat nor nested"));
        assert!(refused(json!(["a", "b", "c"]), &[2]).contains("does not hold 3 texts"));
        assert!(refused(json!("a"), &[2]).contains("neither flat nor nested"));
        assert!(refused(json!(["a"]), &[-1]).contains("not a tensor's shape"));
        assert!(refused(json!(["a"]), &[i64::MAX, 2]).contains("not a tensor's shape"));
        assert!(refused(json!([1]), &[1]).contains("must be strings"));
        assert!(refused(json!([["a", null]]), &[1, 2]).contains("must be strings"));
    }
}

//! What the engine answers a request with: its [`Scores`] (or explanations) in an [`Answer`]
//! with the time it queued and ran, or an [`EngineError`] saying why there is none.

use std::time::Duration;

/// The class scores of a request's texts.
#[derive(Debug, Clone, PartialEq)]
pub struct Scores {
    /// Logits [texts × classes], flattened.
    pub logits: Vec<f32>,
    /// Class probabilities [texts × classes], flattened: the softmax `predict` computes.
    pub probabilities: Vec<f32>,
}

/// What the model computed for one request, and how long it took.
#[derive(Debug, Clone, PartialEq)]
pub struct Answer<T> {
    /// The result: [`Scores`], or one [`Explanation`] per text.
    pub output: T,
    /// Time the request waited in the queue.
    pub queue_time: Duration,
    /// Time its batch took in the model.
    pub inference_time: Duration,
}

/// Why a request got no answer.
#[derive(Debug, Clone, PartialEq)]
pub enum EngineError {
    /// Its deadline passed while it was queued.
    TimedOut,
    /// The engine has stopped (the server is shutting down).
    Stopped,
    /// The model cannot do this on its device.
    Unsupported(String),
    /// The model failed on its batch.
    Model(String),
}

impl std::fmt::Display for EngineError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            EngineError::TimedOut => f.write_str("the request timed out in the queue"),
            EngineError::Stopped => f.write_str("the server is shutting down"),
            EngineError::Unsupported(e) => f.write_str(e),
            EngineError::Model(e) => write!(f, "inference failed: {e}"),
        }
    }
}

//! The batching engine: one thread owns the model; requests queue for it, and whenever it is
//! free it takes what is queued, up to the batch limits, as one batch.
//!
//! A batch forms as soon as the model is free (no fixed delay, as text-embeddings-inference
//! does), so at low load a request runs alone and batching adds no latency; `max_batch_delay`
//! may hold a batch open briefly for more. Requests are taken in arrival order; one that would
//! overflow the batch (texts or padded tokens) opens the next one, so none is split or starved.
//! A request whose client has gone (its reply channel closed) or whose deadline has passed is
//! dropped before it reaches the model.

use std::{
    sync::{
        atomic::{AtomicUsize, Ordering},
        mpsc, Arc,
    },
    thread,
    time::{Duration, Instant},
};

use anyhow::{Context, Result};
use tch::Device;
use tokio::sync::oneshot;

use super::metrics::Metrics;
use crate::{infer, nn::TextClassifier};

/// How the engine forms batches.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct BatchLimits {
    /// Most texts in one batch.
    pub max_texts: usize,
    /// Most padded tokens (texts × the longest) in one batch.
    pub max_tokens: usize,
    /// How long a batch may wait for more requests once the model is free.
    pub max_delay: Duration,
}

/// What the model computed for one request.
#[derive(Debug, Clone, PartialEq)]
pub struct Answer {
    /// Logits [texts × classes], flattened.
    pub logits: Vec<f32>,
    /// Class probabilities [texts × classes], flattened: the softmax `predict` computes.
    pub probabilities: Vec<f32>,
    /// Time the request waited in the queue.
    pub queue_time: Duration,
    /// Time its batch took in the model.
    pub inference_time: Duration,
    /// Texts in its batch (its own and others').
    pub batch_texts: usize,
}

/// Why a request got no answer.
#[derive(Debug, Clone, PartialEq)]
pub enum EngineError {
    /// Its deadline passed while it was queued.
    TimedOut,
    /// The engine has stopped (the server is shutting down).
    Stopped,
    /// The model failed on its batch.
    Model(String),
}

impl std::fmt::Display for EngineError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            EngineError::TimedOut => f.write_str("the request timed out in the queue"),
            EngineError::Stopped => f.write_str("the server is shutting down"),
            EngineError::Model(e) => write!(f, "inference failed: {e}"),
        }
    }
}

/// One queued request: its texts as token ids, when it must be answered by, where to answer.
struct Job {
    ids: Vec<Vec<i64>>,
    enqueued: Instant,
    deadline: Instant,
    reply: oneshot::Sender<Result<Answer, EngineError>>,
}

impl Job {
    /// The longest text's length in tokens.
    fn longest(&self) -> usize {
        self.ids.iter().map(Vec::len).max().unwrap_or(1)
    }
}

/// The handle requests are submitted through; cloning it shares the one engine.
#[derive(Clone)]
pub struct Engine {
    queue: mpsc::Sender<Job>,
    depth: Arc<AtomicUsize>,
}

impl Engine {
    /// Starts the engine's thread, which owns `model` (on `device`) from now on; it stops when
    /// every handle is dropped and the queue is empty. `metrics` records every batch.
    pub fn start(
        model: TextClassifier,
        device: Device,
        limits: BatchLimits,
        metrics: Arc<Metrics>,
    ) -> Result<(Self, thread::JoinHandle<()>)> {
        let (queue, jobs) = mpsc::channel();
        let depth = Arc::new(AtomicUsize::new(0));
        let worker = Worker { model, device, limits, metrics, depth: depth.clone(), jobs, carried: None };
        let thread = thread::Builder::new()
            .name("lstm-tch-model".into())
            .spawn(move || worker.run())
            .context("cannot start the model thread")?;
        Ok((Self { queue, depth }, thread))
    }

    /// Queues `ids` (one entry per text, each non-empty) and waits for their answer; a request
    /// still queued at `deadline` is dropped with [`EngineError::TimedOut`].
    pub async fn submit(&self, ids: Vec<Vec<i64>>, deadline: Instant) -> Result<Answer, EngineError> {
        let (reply, answer) = oneshot::channel();
        self.depth.fetch_add(1, Ordering::SeqCst);
        let job = Job { ids, enqueued: Instant::now(), deadline, reply };
        if self.queue.send(job).is_err() {
            self.depth.fetch_sub(1, Ordering::SeqCst);
            return Err(EngineError::Stopped);
        }
        answer.await.unwrap_or(Err(EngineError::Stopped))
    }

    /// Requests queued and not yet taken into a batch.
    pub fn queue_depth(&self) -> usize {
        self.depth.load(Ordering::SeqCst)
    }
}

/// The model thread's state.
struct Worker {
    model: TextClassifier,
    device: Device,
    limits: BatchLimits,
    metrics: Arc<Metrics>,
    depth: Arc<AtomicUsize>,
    jobs: mpsc::Receiver<Job>,
    /// A job taken from the queue that did not fit the last batch: the next one starts with it.
    carried: Option<Job>,
}

impl Worker {
    /// Forms and runs batches until every handle is gone and the queue is empty.
    fn run(mut self) {
        while let Some(batch) = self.next_batch() {
            let live: Vec<Job> = batch.into_iter().filter_map(|job| self.admit(job)).collect();
            if !live.is_empty() {
                self.answer(live);
            }
        }
    }

    /// Takes a job: the carried one, else from the queue, waiting for one (`until` None) or until
    /// `until`; `None` when none came (or the queue is closed and empty).
    fn take(&mut self, until: Option<Instant>) -> Option<Job> {
        if let Some(job) = self.carried.take() {
            return Some(job);
        }
        let job = match until {
            None => self.jobs.recv().ok()?,
            Some(t) => self.jobs.recv_timeout(t.saturating_duration_since(Instant::now())).ok()?,
        };
        self.depth.fetch_sub(1, Ordering::SeqCst);
        Some(job)
    }

    /// The next batch: the first queued job (waiting for one), then more while they fit the
    /// limits, for at most `max_delay`; `None` once the queue is closed and empty.
    fn next_batch(&mut self) -> Option<Vec<Job>> {
        let first = self.take(None)?;
        let (mut texts, mut longest) = (first.ids.len(), first.longest());
        let mut batch = vec![first];
        let until = Instant::now() + self.limits.max_delay;
        while let Some(job) = self.take(Some(until)) {
            let (t, l) = (texts + job.ids.len(), longest.max(job.longest()));
            if t > self.limits.max_texts || t * l > self.limits.max_tokens {
                self.carried = Some(job);
                break;
            }
            (texts, longest) = (t, l);
            batch.push(job);
        }
        Some(batch)
    }

    /// `job` if it is still wanted: not past its deadline (answered with a time-out), its
    /// client still waiting.
    fn admit(&self, job: Job) -> Option<Job> {
        if job.reply.is_closed() {
            self.metrics.dropped.get_or_create(&vec![("reason", "disconnected")]).inc();
            return None;
        }
        if Instant::now() >= job.deadline {
            self.metrics.dropped.get_or_create(&vec![("reason", "timeout")]).inc();
            let _ = job.reply.send(Err(EngineError::TimedOut));
            return None;
        }
        Some(job)
    }

    /// Runs `jobs` as one batch and sends each its rows.
    fn answer(&self, jobs: Vec<Job>) {
        let ids: Vec<Vec<i64>> = jobs.iter().flat_map(|j| j.ids.iter().cloned()).collect();
        let started = Instant::now();
        let result = infer::scores_of_ids(&self.model, &ids, self.device);
        let inference_time = started.elapsed();
        self.metrics.batch_texts.observe(ids.len() as f64);
        self.metrics.inference_seconds.observe(inference_time.as_secs_f64());
        let mut row = 0;
        for job in jobs {
            let n = job.ids.len();
            let queue_time = started.saturating_duration_since(job.enqueued);
            self.metrics.queue_seconds.observe(queue_time.as_secs_f64());
            let reply = match &result {
                Ok((logits, probabilities)) => {
                    let classes = logits.len() / ids.len();
                    let rows = row * classes..(row + n) * classes;
                    Ok(Answer {
                        logits: logits[rows.clone()].to_vec(),
                        probabilities: probabilities[rows].to_vec(),
                        queue_time,
                        inference_time,
                        batch_texts: ids.len(),
                    })
                }
                Err(e) => Err(EngineError::Model(format!("{e:#}"))),
            };
            row += n;
            let _ = job.reply.send(reply); // a client that left no longer listens
        }
    }
}

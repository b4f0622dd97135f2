//! The batching engine: model threads, each owning a copy of the model (`--workers`, one by
//! default), take requests from one queue; whenever one is free it takes what is queued, up to
//! the batch limits, as one batch.
//!
//! A batch forms as soon as a model thread is free (no fixed delay, as text-embeddings-inference
//! does), so at low load a request runs alone and batching adds no latency; `max_delay` may
//! hold a batch open briefly for more. Each batch starts with the oldest queued request, so
//! none is starved, and fills up with the requests nearest it in length among the oldest two
//! batches' worth (ties: the oldest first), so that texts of similar length run together and
//! the padded-token budget holds more of them, while no request is overtaken by more than about
//! a batch; a request is never split ([`super::batch`]). An explanation (`POST /explain`) runs
//! alone, between batches. A model is never run from two threads at once: each thread has its
//! own copy (like TorchServe's workers or Triton's instances). A request whose client has gone
//! (its reply channel closed) or whose deadline has passed is dropped before it reaches a model.
//!
//! Between requests that come seconds apart or less, an idle model thread runs a one-text
//! forward pass now and then ([`KeepWarm`]): on a shared or virtual machine the first forward
//! after some idle milliseconds runs several times slower than the next (measured: 0.83 ms
//! against 0.23 ms), and at a low request rate every request would be that first one.

use std::{
    sync::{
        atomic::{AtomicU64, AtomicUsize, Ordering},
        mpsc, Arc, Mutex,
    },
    thread,
    time::{Duration, Instant},
};

use anyhow::{Context, Result};
use tch::Device;
use tokio::sync::oneshot;

use super::{
    admission::QueueTimeLimit,
    answer::{Answer, EngineError, Scores},
    batch::{BatchLimits, ExplainJob, Job, Next, Queue, ScoresJob, Tokens, Work},
    metrics::{Metrics, Reason},
};
use crate::{
    checkpoint::Checkpoint,
    infer,
    lab::explain::{self, Explanation},
};

/// How an idle model thread keeps its model warm: while the last batch was taken less than
/// `window` ago, the thread waiting for work runs one forward pass of `sample` after each `every`
/// without any (its result discarded), so that a request arriving at a low rate finds the
/// model's code and data as a busy server would; after `window` without work, the threads
/// wait without running anything.
#[derive(Debug, Clone, PartialEq)]
pub struct KeepWarm {
    /// How long a model thread waits for work before a warming pass.
    pub every: Duration,
    /// How long after the last batch the model is kept warm.
    pub window: Duration,
    /// The token ids the warming pass scores (one entry per text).
    pub sample: Vec<Vec<i64>>,
}

/// The handle requests are submitted through; cloning it shares the one engine.
#[derive(Clone)]
pub struct Engine {
    queue: mpsc::Sender<Work>,
    status: Arc<QueueStatus>,
}

/// What the model threads tell the handlers about their queue.
#[derive(Default)]
struct QueueStatus {
    /// Model threads taking work from the queue.
    workers: usize,
    /// Requests queued, not yet taken into a batch.
    depth: AtomicUsize,
    /// Their tokens (an explanation counts none).
    tokens: AtomicUsize,
    /// The tokens of the batches running now (0 when the model is idle).
    running_tokens: AtomicUsize,
    /// Nanoseconds per token of the model in large batches (at least half `max_texts`), a
    /// moving average; 0 until one has run.
    nanos_per_token: AtomicU64,
    /// When a model thread last took a batch or an explanation, in nanoseconds since the engine
    /// started (0: never).
    last_work: AtomicU64,
    /// `--max-queue-time` and the threshold the backlog is held to now (`None`: no limit).
    queue_limit: Option<QueueTimeLimit>,
}

impl Engine {
    /// Starts one model thread per checkpoint of `replicas` (copies of one model, each on
    /// `device`), which own them from now on and take turns forming batches from one queue;
    /// they stop when every handle is dropped and the queue is empty. `metrics` records every
    /// batch; `keep_warm` (if any) says how idle threads keep the model warm; `queue_limit` (if
    /// any) is `--max-queue-time` ([`Self::admits`]).
    pub fn start(
        replicas: Vec<Checkpoint>,
        device: Device,
        limits: BatchLimits,
        keep_warm: Option<KeepWarm>,
        queue_limit: Option<Duration>,
        metrics: Arc<Metrics>,
    ) -> Result<(Self, Vec<thread::JoinHandle<()>>)> {
        let (sender, jobs) = mpsc::channel();
        let status = Arc::new(QueueStatus {
            workers: replicas.len().max(1),
            queue_limit: queue_limit.map(QueueTimeLimit::new),
            ..QueueStatus::default()
        });
        if let Some(limit) = &status.queue_limit {
            metrics.queue_time_threshold.set(limit.threshold().as_secs_f64());
        }
        let queue = Arc::new(Mutex::new(Queue::new(jobs, limits)));
        let (mut threads, started) = (vec![], Instant::now());
        for (i, ckpt) in replicas.into_iter().enumerate() {
            let worker = Worker {
                ckpt,
                device,
                limits,
                keep_warm: keep_warm.clone(),
                started,
                metrics: metrics.clone(),
                status: status.clone(),
                queue: queue.clone(),
            };
            let thread = thread::Builder::new()
                .name(format!("lstm-tch-model-{i}"))
                .spawn(move || {
                    yield_to_http_threads();
                    worker.run()
                })
                .context("cannot start a model thread")?;
            threads.push(thread);
        }
        Ok((Self { queue: sender, status }, threads))
    }

    /// Queues `ids` (one entry per text, each non-empty) to be scored and waits for their
    /// answer; a request still queued at `deadline` is dropped with [`EngineError::TimedOut`].
    pub async fn scores(&self, ids: Vec<Vec<i64>>, deadline: Instant) -> Result<Answer<Scores>, EngineError> {
        self.submit(ids, deadline, Work::Scores).await
    }

    /// Queues `texts` to be explained ([`explain::explain`]) and waits for their answer.
    pub async fn explain(
        &self,
        texts: Vec<String>,
        deadline: Instant,
    ) -> Result<Answer<Vec<Explanation>>, EngineError> {
        self.submit(texts, deadline, Work::Explain).await
    }

    /// Queues `input` as `kind` of work and waits for its answer.
    async fn submit<I, O>(
        &self,
        input: I,
        deadline: Instant,
        kind: fn(Job<I, O>) -> Work,
    ) -> Result<Answer<O>, EngineError> {
        let (reply, answer) = oneshot::channel();
        let work = kind(Job { input, enqueued: Instant::now(), deadline, reply });
        let tokens = work.tokens();
        self.status.depth.fetch_add(1, Ordering::SeqCst);
        self.status.tokens.fetch_add(tokens, Ordering::SeqCst);
        if self.queue.send(work).is_err() {
            self.status.depth.fetch_sub(1, Ordering::SeqCst);
            self.status.tokens.fetch_sub(tokens, Ordering::SeqCst);
            return Err(EngineError::Stopped);
        }
        answer.await.unwrap_or(Err(EngineError::Stopped))
    }

    /// Requests queued and not yet taken into a batch (or, for an explanation, run).
    pub fn queue_depth(&self) -> usize {
        self.status.depth.load(Ordering::SeqCst)
    }

    /// How far behind the model is: the time its threads need for the tokens queued and half
    /// those of the batches running (what is left of them on average), at the pace of its recent
    /// large batches (under load every batch is large), shared among the threads; zero before
    /// one has run. About how long a request coming now would wait for a model thread.
    pub fn backlog(&self) -> Duration {
        let queued = self.status.tokens.load(Ordering::SeqCst);
        // A batch running is half done, on average, when a request comes.
        let tokens = queued.saturating_add(self.status.running_tokens.load(Ordering::SeqCst) / 2) as u64;
        let nanos = tokens.saturating_mul(self.status.nanos_per_token.load(Ordering::SeqCst));
        Duration::from_nanos(nanos / self.status.workers as u64)
    }

    /// Whether a new request may be queued with the model `backlog` behind: within the threshold
    /// of `--max-queue-time`, corrected by the waits measured ([`super::admission`]). `Err`: the
    /// threshold now.
    pub fn admits(&self, backlog: Duration) -> Result<(), Duration> {
        match self.status.queue_limit.as_ref().map(QueueTimeLimit::threshold) {
            Some(threshold) if backlog > threshold => Err(threshold),
            _ => Ok(()),
        }
    }
}

/// Lowers the calling thread's priority (nice +10, Linux): when the CPU is short, the HTTP
/// threads, which admit, refuse and answer requests, run before the model thread, so that a
/// refusal under overload stays immediate rather than waiting behind a batch. On a machine
/// with a core to spare it changes nothing. Where the call fails, the thread keeps its priority.
fn yield_to_http_threads() {
    #[cfg(target_os = "linux")]
    // SAFETY: setpriority on this thread's own id; it reads and writes no memory of ours.
    unsafe {
        if libc::setpriority(libc::PRIO_PROCESS, libc::gettid() as libc::id_t, 10) != 0 {
            tracing::debug!("the model thread keeps its priority: {}", std::io::Error::last_os_error());
        }
    }
}

/// A model thread's state.
struct Worker {
    ckpt: Checkpoint,
    device: Device,
    limits: BatchLimits,
    keep_warm: Option<KeepWarm>,
    /// When the engine started (the origin of [`QueueStatus::last_work`]).
    started: Instant,
    metrics: Arc<Metrics>,
    status: Arc<QueueStatus>,
    queue: Arc<Mutex<Queue>>,
}

impl Worker {
    /// Takes work from the queue and runs it until every handle is gone and the queue is empty.
    fn run(self) {
        loop {
            match self.next() {
                None => return,
                Some(Next::Batch(batch)) => {
                    if let (Some(limit), Some(oldest)) = (&self.status.queue_limit, batch.first()) {
                        limit.observe(oldest.enqueued.elapsed());
                        self.metrics.queue_time_threshold.set(limit.threshold().as_secs_f64());
                    }
                    let live: Vec<ScoresJob> = batch.into_iter().filter_map(|job| self.admit(job)).collect();
                    if !live.is_empty() {
                        self.score(live);
                    }
                }
                Some(Next::Explain(job)) => {
                    if let Some(job) = self.admit(job) {
                        self.explain(job);
                    }
                }
                Some(Next::Idle) => {}
            }
        }
    }

    /// The next work to run, waiting for some; the thread waiting (the one holding the queue)
    /// keeps the model warm meanwhile, so the thread that takes the next request is a warm one.
    /// Work taken is recorded before the queue is let go, so the next thread to wait on it
    /// knows to keep warm.
    fn next(&self) -> Option<Next> {
        let mut queue = self.queue.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        loop {
            match queue.next(self.idle_wait()) {
                Some(Next::Idle) => self.warm(),
                next => {
                    self.took_work();
                    return next;
                }
            }
        }
    }

    /// How long to wait for work before a warming pass: [`KeepWarm::every`] while the last work
    /// was taken within [`KeepWarm::window`]; `None` (wait as long as it takes) otherwise.
    fn idle_wait(&self) -> Option<Duration> {
        let keep = self.keep_warm.as_ref()?;
        let last = Duration::from_nanos(self.status.last_work.load(Ordering::SeqCst));
        (last > Duration::ZERO && self.started.elapsed().saturating_sub(last) < keep.window)
            .then_some(keep.every)
    }

    /// Records that work was taken now ([`Self::idle_wait`]).
    fn took_work(&self) {
        let now = self.started.elapsed().as_nanos().min(u64::MAX as u128) as u64;
        self.status.last_work.store(now.max(1), Ordering::SeqCst);
    }

    /// One forward pass of the warming sample, its result discarded ([`KeepWarm`]).
    fn warm(&self) {
        if let Some(keep) = &self.keep_warm {
            let _ = infer::scores_of_ids(&self.ckpt.model, &keep.sample, self.device);
            self.metrics.keep_warm_passes.inc();
        }
    }

    /// `job`, leaving the queue, if it is still wanted: not past its deadline (answered with a
    /// time-out), its client still waiting.
    fn admit<I, O>(&self, job: Job<I, O>) -> Option<Job<I, O>>
    where
        Job<I, O>: Tokens,
    {
        self.status.depth.fetch_sub(1, Ordering::SeqCst);
        self.status.tokens.fetch_sub(job.tokens(), Ordering::SeqCst);
        if job.reply.is_closed() {
            self.metrics.dropped.get_or_create(&Reason { reason: "disconnected" }).inc();
            return None;
        }
        if Instant::now() >= job.deadline {
            self.metrics.dropped.get_or_create(&Reason { reason: "timeout" }).inc();
            let _ = job.reply.send(Err(EngineError::TimedOut));
            return None;
        }
        Some(job)
    }

    /// Runs `jobs` as one batch and sends each its rows.
    fn score(&self, jobs: Vec<ScoresJob>) {
        let ids: Vec<Vec<i64>> = jobs.iter().flat_map(|j| j.input.iter().cloned()).collect();
        let tokens = ids.iter().map(Vec::len).sum();
        self.status.running_tokens.fetch_add(tokens, Ordering::SeqCst);
        let started = Instant::now();
        let result = infer::scores_of_ids(&self.ckpt.model, &ids, self.device);
        let inference_time = started.elapsed();
        self.status.running_tokens.fetch_sub(tokens, Ordering::SeqCst);
        self.pace(ids.len(), tokens, inference_time);
        self.metrics.batch_texts.observe(ids.len() as f64);
        self.metrics.inference_seconds.observe(inference_time.as_secs_f64());
        let mut row = 0;
        for job in jobs {
            let n = job.input.len();
            let queue_time = self.waited(&job, started);
            let reply = match &result {
                Ok((logits, probabilities)) => {
                    let classes = logits.len() / ids.len();
                    let rows = row * classes..(row + n) * classes;
                    let output = Scores {
                        logits: logits[rows.clone()].to_vec(),
                        probabilities: probabilities[rows].to_vec(),
                    };
                    Ok(Answer { output, queue_time, inference_time })
                }
                Err(e) => Err(EngineError::Model(format!("{e:#}"))),
            };
            row += n;
            let _ = job.reply.send(reply); // a client that left no longer listens
        }
    }

    /// Explains `job`'s texts, one after another (on the CPU only: the equations are unrolled
    /// there).
    fn explain(&self, job: ExplainJob) {
        let started = Instant::now();
        let queue_time = self.waited(&job, started);
        let result = if self.device != Device::Cpu {
            let why = format!("explain runs on the CPU; this server runs its model on {:?}", self.device);
            Err(EngineError::Unsupported(why))
        } else {
            let explained: Result<Vec<Explanation>> =
                job.input.iter().map(|text| explain::explain(&self.ckpt, text)).collect();
            explained.map_err(|e| EngineError::Model(format!("{e:#}")))
        };
        let inference_time = started.elapsed();
        self.metrics.inference_seconds.observe(inference_time.as_secs_f64());
        let _ = job.reply.send(result.map(|output| Answer { output, queue_time, inference_time }));
    }

    /// Updates the model's pace ([`Engine::backlog`]) with a batch of `texts` texts and `tokens`
    /// tokens that took `took`, if it is a large one.
    fn pace(&self, texts: usize, tokens: usize, took: Duration) {
        if texts * 2 < self.limits.max_texts.max(2) || tokens == 0 {
            return;
        }
        let now = took.as_nanos() as f64 / tokens as f64;
        let before = self.status.nanos_per_token.load(Ordering::SeqCst) as f64;
        let average = if before == 0.0 { now } else { 0.8 * before + 0.2 * now };
        self.status.nanos_per_token.store(average.round().max(1.0) as u64, Ordering::SeqCst);
    }

    /// How long `job` waited until `started`, recorded in the metrics.
    fn waited<I, O>(&self, job: &Job<I, O>, started: Instant) -> Duration {
        let queue_time = started.saturating_duration_since(job.enqueued);
        self.metrics.queue_seconds.observe(queue_time.as_secs_f64());
        queue_time
    }
}

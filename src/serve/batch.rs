//! How batches are formed: the queued requests ([`Work`]), the [`Queue`] the model threads take
//! them from, and [`choose`], which picks the queued requests that join the batch the oldest one
//! opens (the nearest in length first, within [`BatchLimits`]). `choose` is a pure function of
//! sizes, tested here.

use std::{
    collections::VecDeque,
    sync::mpsc::{self, RecvTimeoutError},
    time::{Duration, Instant},
};

use tokio::sync::oneshot;

use super::answer::{Answer, EngineError, Scores};
use crate::lab::explain::Explanation;

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

/// A scoring request's size: its texts and its longest text's tokens.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Shape {
    /// Texts in the request.
    pub texts: usize,
    /// Tokens in its longest text.
    pub longest: usize,
}

/// Which of the `queued` requests (`None`: not a scoring request) join the batch `first` opens:
/// the nearest to it in length first (ties: the oldest, the lowest index), each that keeps the
/// batch within `limits`' texts and padded tokens (one too large is passed over for a smaller
/// one behind it). Indices into `queued`, nearest first.
pub fn choose(first: Shape, queued: &[Option<Shape>], limits: &BatchLimits) -> Vec<usize> {
    let mut nearest: Vec<(usize, usize)> = (queued.iter().enumerate())
        .filter_map(|(i, shape)| shape.map(|s| (s.longest.abs_diff(first.longest), i)))
        .collect();
    nearest.sort_unstable();
    let (mut texts, mut longest) = (first.texts, first.longest);
    let mut taken = vec![];
    for (_, i) in nearest {
        let Some(shape) = queued[i] else { continue };
        let (t, l) = (texts + shape.texts, longest.max(shape.longest));
        if t <= limits.max_texts && t * l <= limits.max_tokens {
            (texts, longest) = (t, l);
            taken.push(i);
        }
    }
    taken
}

/// One queued request: its input, when it must be answered by, where to answer.
pub(super) struct Job<I, O> {
    /// What to run.
    pub input: I,
    /// When it was queued.
    pub enqueued: Instant,
    /// When its answer is no longer wanted.
    pub deadline: Instant,
    /// Where to answer.
    pub reply: oneshot::Sender<Result<Answer<O>, EngineError>>,
}

/// Texts as token ids (one entry per text, each non-empty), to score in a batch.
pub(super) type ScoresJob = Job<Vec<Vec<i64>>, Scores>;

/// Texts to explain, one after another.
pub(super) type ExplainJob = Job<Vec<String>, Vec<Explanation>>;

/// What is queued for the model.
pub(super) enum Work {
    /// Texts to score, batched with others.
    Scores(ScoresJob),
    /// Texts to explain, alone.
    Explain(ExplainJob),
}

impl Work {
    /// Its tokens, as counted in the queue's backlog.
    pub fn tokens(&self) -> usize {
        match self {
            Work::Scores(job) => job.tokens(),
            Work::Explain(job) => job.tokens(),
        }
    }

    /// Its number of texts.
    fn texts(&self) -> usize {
        match self {
            Work::Scores(job) => job.input.len(),
            Work::Explain(job) => job.input.len(),
        }
    }
}

/// What a job counts in the queue's backlog.
pub(super) trait Tokens {
    /// Its tokens.
    fn tokens(&self) -> usize;
}

impl Tokens for ScoresJob {
    fn tokens(&self) -> usize {
        self.input.iter().map(Vec::len).sum()
    }
}

impl Tokens for ExplainJob {
    /// None: explanations are rare, and their cost is not the model's batched pace.
    fn tokens(&self) -> usize {
        0
    }
}

impl ScoresJob {
    /// The longest text's length in tokens.
    fn longest(&self) -> usize {
        self.input.iter().map(Vec::len).max().unwrap_or(1)
    }
}

/// The queue the model threads take their work from: the channel requests arrive on, and what
/// was taken from it but not run yet, in arrival order. The threads share it behind a lock and
/// take turns forming their next batch from it.
pub(super) struct Queue {
    jobs: mpsc::Receiver<Work>,
    pending: VecDeque<Work>,
    limits: BatchLimits,
}

/// What a model thread runs next.
pub(super) enum Next {
    /// A batch of scoring requests (the oldest first).
    Batch(Vec<ScoresJob>),
    /// An explanation, alone.
    Explain(ExplainJob),
    /// Nothing arrived within the idle wait asked for.
    Idle,
}

impl Queue {
    /// The queue of the requests sent on `jobs`, batched within `limits`.
    pub fn new(jobs: mpsc::Receiver<Work>, limits: BatchLimits) -> Self {
        Self { jobs, pending: VecDeque::new(), limits }
    }

    /// The next work to run, waiting for some: the batch the oldest request opens, or an
    /// explanation; [`Next::Idle`] when `idle` is given and nothing arrives within it; `None`
    /// once the queue is closed and empty.
    pub fn next(&mut self, idle: Option<Duration>) -> Option<Next> {
        let oldest = match (self.pending.pop_front(), idle) {
            (Some(work), _) => work,
            (None, None) => self.jobs.recv().ok()?,
            (None, Some(wait)) => match self.jobs.recv_timeout(wait) {
                Ok(work) => work,
                Err(RecvTimeoutError::Timeout) => return Some(Next::Idle),
                Err(RecvTimeoutError::Disconnected) => return None,
            },
        };
        Some(match oldest {
            Work::Scores(first) => Next::Batch(self.fill(first)),
            Work::Explain(job) => Next::Explain(job),
        })
    }

    /// Moves what the channel holds into `pending`: what is there now, then what arrives until
    /// `until`, stopping early once there are texts enough for a full batch.
    fn gather(&mut self, until: Instant, mut texts: usize) {
        loop {
            while let Ok(work) = self.jobs.try_recv() {
                texts += work.texts();
                self.pending.push_back(work);
            }
            let left = until.saturating_duration_since(Instant::now());
            if texts >= self.limits.max_texts || left.is_zero() {
                return;
            }
            match self.jobs.recv_timeout(left) {
                Ok(work) => {
                    texts += work.texts();
                    self.pending.push_back(work);
                }
                Err(_) => return,
            }
        }
    }

    /// The batch `first` (the oldest request) opens: of the oldest queued requests (two batches'
    /// worth), the scoring ones nearest it in length (ties: the oldest) while they fit the
    /// limits, waiting up to `max_delay` for more.
    fn fill(&mut self, first: ScoresJob) -> Vec<ScoresJob> {
        self.gather(Instant::now() + self.limits.max_delay, first.input.len());
        // The oldest requests only, up to two batches' worth of texts: grouping by length must
        // not let newer requests overtake an older one by more than a batch or so.
        let mut window = 0;
        let queued: Vec<Option<Shape>> = (self.pending.iter())
            .take_while(|work| {
                window += work.texts();
                window <= 2 * self.limits.max_texts
            })
            .map(|work| match work {
                Work::Scores(job) => Some(Shape { texts: job.input.len(), longest: job.longest() }),
                Work::Explain(_) => None,
            })
            .collect();
        let first_shape = Shape { texts: first.input.len(), longest: first.longest() };
        let mut taken = choose(first_shape, &queued, &self.limits);
        taken.sort_unstable();
        let mut batch = vec![first];
        for i in taken.into_iter().rev() {
            if let Some(Work::Scores(job)) = self.pending.remove(i) {
                batch.push(job);
            }
        }
        batch
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limits(max_texts: usize, max_tokens: usize) -> BatchLimits {
        BatchLimits { max_texts, max_tokens, max_delay: Duration::ZERO }
    }

    fn shape(texts: usize, longest: usize) -> Option<Shape> {
        Some(Shape { texts, longest })
    }

    #[test]
    fn the_nearest_lengths_join_first_and_explanations_never() {
        let first = Shape { texts: 1, longest: 10 };
        let queued = [shape(1, 50), None, shape(1, 11), shape(1, 9), shape(1, 10), shape(1, 30)];
        // Room for three more texts: lengths 10, then 9 and 11 (the older, index 2, first).
        assert_eq!(choose(first, &queued, &limits(4, 1000)), [4, 2, 3]);
        // Everything fits: every scoring request joins, nearest first.
        assert_eq!(choose(first, &queued, &limits(64, 10_000)), [4, 2, 3, 5, 0]);
    }

    #[test]
    fn a_request_too_large_is_passed_over_for_a_smaller_one_behind_it() {
        let first = Shape { texts: 2, longest: 10 };
        let queued = [shape(3, 10), shape(1, 10)];
        assert_eq!(choose(first, &queued, &limits(4, 1000)), [1]);
        // The padded-token budget: a long text would make 3 × 100 > 200 tokens.
        let queued = [shape(1, 100), shape(1, 12)];
        assert_eq!(choose(first, &queued, &limits(64, 200)), [1]);
    }

    #[test]
    fn every_choice_keeps_the_limits() {
        for max_texts in [1, 3, 8] {
            for max_tokens in [10, 64, 500] {
                let queued: Vec<Option<Shape>> =
                    (0..40).map(|i| shape(1 + i % 3, 1 + (i * 7) % 23)).collect();
                let first = Shape { texts: 1, longest: 5 };
                let taken = choose(first, &queued, &limits(max_texts, max_tokens));
                let shapes = taken.iter().map(|&i| queued[i].unwrap());
                let texts = 1 + shapes.clone().map(|s| s.texts).sum::<usize>();
                let longest = shapes.map(|s| s.longest).max().unwrap_or(0).max(5);
                assert!(texts <= max_texts.max(1), "{texts} texts");
                assert!(taken.is_empty() || texts * longest <= max_tokens, "{texts} × {longest}");
            }
        }
    }

    fn scores_job(tokens: usize) -> Work {
        let (reply, _answer) = oneshot::channel();
        let now = Instant::now();
        Work::Scores(Job { input: vec![vec![1; tokens]], enqueued: now, deadline: now, reply })
    }

    #[test]
    fn an_idle_wait_ends_in_idle_and_work_queued_is_still_taken_after_it() {
        let (sender, jobs) = mpsc::channel();
        let mut queue = Queue::new(jobs, limits(8, 1000));
        let started = Instant::now();
        assert!(matches!(queue.next(Some(Duration::from_millis(20))), Some(Next::Idle)));
        assert!(started.elapsed() >= Duration::from_millis(20));
        sender.send(scores_job(3)).unwrap();
        sender.send(scores_job(4)).unwrap();
        match queue.next(Some(Duration::from_millis(20))) {
            Some(Next::Batch(batch)) => assert_eq!(batch.len(), 2),
            _ => panic!("the two queued requests should form one batch"),
        }
        drop(sender);
        // Closed and empty: the end, with or without an idle wait.
        assert!(queue.next(Some(Duration::from_millis(20))).is_none());
        assert!(queue.next(None).is_none());
    }
}

//! How a batch is chosen from the queue: [`BatchLimits`], and [`choose`], which picks the queued
//! requests that join the batch the oldest one opens (the nearest in length first, within the
//! limits). Pure functions of sizes, tested here; the engine applies them to its queue.

use std::time::Duration;

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
}

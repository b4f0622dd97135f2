//! Classification metrics from a confusion matrix: accuracy, per-class precision, recall and
//! F1, macro-F1. A class never predicted has precision 0; never present, recall 0 (the
//! convention of scikit-learn's `zero_division=0`).

use std::fmt::Write;

use serde::{Deserialize, Serialize};
use unicode_width::{UnicodeWidthChar, UnicodeWidthStr};

/// A confusion matrix: `counts[true][predicted]`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Confusion {
    labels: Vec<String>,
    counts: Vec<Vec<u64>>,
}

/// Precision, recall, F1 and support of one class.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ClassMetrics {
    /// The class name.
    pub label: String,
    /// Of the texts predicted as this class, the fraction that are.
    pub precision: f64,
    /// Of the texts of this class, the fraction predicted as it.
    pub recall: f64,
    /// Harmonic mean of precision and recall.
    pub f1: f64,
    /// Number of texts of this class.
    pub support: u64,
}

/// Every metric of an evaluation, as `eval --json` prints it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Metrics {
    /// Fraction of texts classified correctly.
    pub accuracy: f64,
    /// Unweighted mean of the per-class F1 scores.
    pub macro_f1: f64,
    /// Per-class metrics, in class order.
    pub classes: Vec<ClassMetrics>,
    /// `confusion[true][predicted]`, in class order.
    pub confusion: Vec<Vec<u64>>,
    /// Number of texts.
    pub total: u64,
}

impl Confusion {
    /// An empty matrix over `labels`.
    pub fn new(labels: &[String]) -> Self {
        Self { labels: labels.to_vec(), counts: vec![vec![0; labels.len()]; labels.len()] }
    }

    /// Counts one (true, predicted) pair of class indices.
    pub fn add(&mut self, truth: usize, predicted: usize) {
        self.counts[truth][predicted] += 1;
    }

    /// The metrics of everything counted.
    pub fn metrics(&self) -> Metrics {
        let n = self.labels.len();
        let total: u64 = self.counts.iter().flatten().sum();
        let correct: u64 = (0..n).map(|i| self.counts[i][i]).sum();
        let ratio = |a: u64, b: u64| if b == 0 { 0.0 } else { a as f64 / b as f64 };
        let classes: Vec<ClassMetrics> = (0..n)
            .map(|c| {
                let tp = self.counts[c][c];
                let predicted: u64 = (0..n).map(|t| self.counts[t][c]).sum();
                let support: u64 = self.counts[c].iter().sum();
                let (precision, recall) = (ratio(tp, predicted), ratio(tp, support));
                let f1 = if precision + recall == 0.0 {
                    0.0
                } else {
                    2.0 * precision * recall / (precision + recall)
                };
                ClassMetrics { label: self.labels[c].clone(), precision, recall, f1, support }
            })
            .collect();
        Metrics {
            accuracy: ratio(correct, total),
            macro_f1: classes.iter().map(|c| c.f1).sum::<f64>() / n.max(1) as f64,
            classes,
            confusion: self.counts.clone(),
            total,
        }
    }
}

impl Metrics {
    /// A human-readable report: the per-class table, accuracy and macro-F1, then the confusion
    /// matrix (rows: true class, columns: predicted).
    pub fn table(&self) -> String {
        let width = self.classes.iter().map(|c| c.label.width()).max().unwrap_or(0).max(9);
        let mut out = String::new();
        let _ = writeln!(out, "{}  precision  recall  f1      support", pad("class", width));
        for c in &self.classes {
            let _ = writeln!(
                out,
                "{}  {:<9.4}  {:<6.4}  {:<6.4}  {}",
                pad(&c.label, width),
                c.precision,
                c.recall,
                c.f1,
                c.support
            );
        }
        let _ = writeln!(out, "\naccuracy  {:.4}  ({} texts)", self.accuracy, self.total);
        let _ = writeln!(out, "macro-F1  {:.4}", self.macro_f1);
        let cell = self
            .confusion
            .iter()
            .flatten()
            .map(|n| n.to_string().len())
            .max()
            .unwrap_or(1)
            .max(width.min(12));
        let _ = write!(out, "\nconfusion (rows: true, columns: predicted)\n{}", pad("", width));
        for c in &self.classes {
            let label = truncate(&c.label, cell);
            let _ = write!(out, "  {}{label}", " ".repeat(cell - label.width()));
        }
        for (c, row) in self.classes.iter().zip(&self.confusion) {
            let _ = write!(out, "\n{}", pad(&c.label, width));
            for n in row {
                let _ = write!(out, "  {n:>cell$}");
            }
        }
        out.push('\n');
        out
    }
}

/// The index of the largest of `scores` (the first of equals; 0 for none): the predicted class.
pub fn argmax(scores: &[f32]) -> usize {
    scores.iter().enumerate().fold(0, |best, (i, &p)| if p > scores[best] { i } else { best })
}

/// `s` followed by spaces to `width` terminal columns (CJK characters take two).
pub(crate) fn pad(s: &str, width: usize) -> String {
    format!("{s}{}", " ".repeat(width.saturating_sub(s.width())))
}

/// The longest prefix of `s` that fits in `width` terminal columns.
fn truncate(s: &str, width: usize) -> String {
    let mut used = 0;
    s.chars()
        .take_while(|c| {
            used += c.width().unwrap_or(0);
            used <= width
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn computes_the_textbook_values() {
        // truth/predicted pairs: 3 pos→pos, 1 pos→neg, 2 neg→neg, 2 neg→pos
        let labels = vec!["neg".to_owned(), "pos".to_owned()];
        let mut m = Confusion::new(&labels);
        for (t, p) in [(1, 1), (1, 1), (1, 1), (1, 0), (0, 0), (0, 0), (0, 1), (0, 1)] {
            m.add(t, p);
        }
        let metrics = m.metrics();
        assert_eq!(metrics.accuracy, 5.0 / 8.0);
        assert_eq!(metrics.confusion, [[2, 2], [1, 3]]);
        let (neg, pos) = (&metrics.classes[0], &metrics.classes[1]);
        assert_eq!((neg.precision, neg.recall, neg.support), (2.0 / 3.0, 0.5, 4));
        assert_eq!((pos.precision, pos.recall, pos.support), (0.6, 0.75, 4));
        let f1 = |p: f64, r: f64| 2.0 * p * r / (p + r);
        assert_eq!(metrics.macro_f1, (f1(2.0 / 3.0, 0.5) + f1(0.6, 0.75)) / 2.0);
        assert!(metrics.table().contains("accuracy  0.6250  (8 texts)"));
    }

    #[test]
    fn the_table_aligns_wide_class_names_by_terminal_columns() {
        let labels = vec!["正面".to_owned(), "negative".to_owned()];
        let mut m = Confusion::new(&labels);
        m.add(0, 0);
        m.add(1, 0);
        let table = m.metrics().table();
        // Every row of numbers starts in the same terminal column, whatever the label's script.
        let start = |prefix: &str| {
            let line = table.lines().find(|l| l.starts_with(prefix)).unwrap();
            let label_end = line.find("  ").unwrap();
            line[..label_end].width() + line[label_end..].len() - line[label_end..].trim_start().len()
        };
        assert_eq!(start("正面"), start("negative"));
        assert_eq!(start("正面"), start("class"));
    }

    #[test]
    fn a_class_never_predicted_scores_zero_not_nan() {
        let labels = vec!["a".to_owned(), "b".to_owned(), "c".to_owned()];
        let mut m = Confusion::new(&labels);
        m.add(0, 0);
        m.add(1, 0);
        let metrics = m.metrics();
        assert_eq!(metrics.classes[1].precision, 0.0);
        assert_eq!(metrics.classes[2].recall, 0.0);
        assert!(metrics.macro_f1.is_finite());
    }
}

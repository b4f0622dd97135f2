//! The classes of a labelled dataset, in a fixed order: class index ↔ label name.

use anyhow::{ensure, Context, Result};
use serde::{Deserialize, Serialize};

use super::Example;

/// The classes, in a fixed order: numerically if every label is an integer, else by text.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LabelSet {
    names: Vec<String>,
}

impl LabelSet {
    /// The label set of the training examples; at least two classes are required.
    pub fn from_examples(examples: &[Example]) -> Result<Self> {
        let mut names: Vec<String> = examples.iter().map(|e| e.label.clone()).collect();
        names.sort_unstable();
        names.dedup();
        if names.iter().all(|n| n.parse::<i64>().is_ok()) {
            names.sort_by_key(|n| n.parse::<i64>().unwrap_or_default());
        }
        ensure!(
            names.len() >= 2,
            "the training data has a single class ({}): a classifier needs at least two",
            names.first().map_or("none", String::as_str)
        );
        Ok(Self { names })
    }

    /// A saved label set.
    pub fn from_names(names: Vec<String>) -> Result<Self> {
        ensure!(names.len() >= 2, "a label set needs at least two classes");
        let mut sorted = names.clone();
        sorted.sort_unstable();
        sorted.dedup();
        ensure!(sorted.len() == names.len(), "the label set lists a class twice");
        Ok(Self { names })
    }

    /// The class names; class `i` is `names()[i]`.
    pub fn names(&self) -> &[String] {
        &self.names
    }

    /// Number of classes.
    pub fn len(&self) -> usize {
        self.names.len()
    }

    /// Never true (at least two classes).
    pub fn is_empty(&self) -> bool {
        self.names.is_empty()
    }

    /// The class index of each example; a label outside the set is an error naming its origin.
    pub fn indices(&self, examples: &[Example], what: &str) -> Result<Vec<i64>> {
        examples
            .iter()
            .map(|e| {
                self.names.iter().position(|n| *n == e.label).map(|i| i as i64).with_context(|| {
                    format!(
                        "{}: label '{}' in the {what} data is not one of the trained classes [{}]",
                        e.origin,
                        e.label,
                        self.names.join(", ")
                    )
                })
            })
            .collect()
    }
}

//! Argument checks, each rule written once with its message: the library functions that take a
//! count, a dropout or a rate from a user call these, so `--batch-size 0` reads the same
//! wherever it is given and never reaches code that would divide by it or panic on it.

use std::fmt::Display;

use anyhow::{ensure, Result};

/// `value` (what `name` says: a flag such as `--max-len`, or a size) is at least 1.
pub fn at_least_one<T: PartialOrd + From<u8> + Display>(name: &str, value: T) -> Result<()> {
    ensure!(value >= T::from(1), "{name} must be at least 1, got {value}");
    Ok(())
}

/// Texts per batch (`--batch-size`): at least 1.
pub fn batch_size(value: usize) -> Result<()> {
    at_least_one("--batch-size", value)
}

/// A dropout probability (`name`): in [0, 1).
pub fn dropout(name: &str, p: f64) -> Result<()> {
    ensure!((0.0..1.0).contains(&p), "{name} must be in [0, 1), got {p}");
    Ok(())
}

/// A rate or bound (`name`: a learning rate, a gradient-norm bound) that must be finite and
/// positive.
pub fn positive(name: &str, value: f64) -> Result<()> {
    ensure!(value.is_finite() && value > 0.0, "{name} must be finite and positive, got {value}");
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_rule_names_the_argument_and_the_value() {
        assert!(at_least_one("--max-len", 1usize).is_ok());
        assert_eq!(
            at_least_one("hidden size", -3i64).unwrap_err().to_string(),
            "hidden size must be at least 1, got -3"
        );
        assert_eq!(batch_size(0).unwrap_err().to_string(), "--batch-size must be at least 1, got 0");
        assert!(dropout("dropout", 0.0).is_ok() && dropout("dropout", 0.5).is_ok());
        for p in [1.0, -0.1, f64::NAN] {
            assert!(dropout("dropout", p).is_err(), "{p}");
        }
        assert!(positive("learning rate", 1e-3).is_ok());
        for v in [0.0, -1.0, f64::INFINITY, f64::NAN] {
            assert!(positive("learning rate", v).is_err(), "{v}");
        }
    }
}

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

/// The most libtorch threads `--threads` may ask for: past a machine's cores they only add
/// overhead, and tens of thousands exhaust the process (each thread's stack, OpenMP's pool).
pub const MAX_THREADS: usize = 1024;

/// libtorch's intra-op threads (`--threads`): 1 to [`MAX_THREADS`].
pub fn threads(n: usize) -> Result<()> {
    at_least_one("--threads", n)?;
    ensure!(n <= MAX_THREADS, "--threads must be at most {MAX_THREADS}, got {n}");
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

/// A rate or bound (`name`: a learning rate, a gradient-norm bound) that must be positive and a
/// float32 (the tensors it scales are).
pub fn positive(name: &str, value: f64) -> Result<()> {
    ensure!(
        value > 0.0 && value <= f32::MAX as f64,
        "{name} must be positive and at most float32's largest ({:e}), got {value}",
        f32::MAX
    );
    Ok(())
}

/// A value (`name`) written into float32 tensors: finite and within float32's range.
pub fn float32(name: &str, value: f64) -> Result<()> {
    ensure!(
        value.abs() <= f32::MAX as f64,
        "{name} must be a finite float32 (within ±{:e}), got {value}",
        f32::MAX
    );
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
        assert!(threads(1).is_ok() && threads(MAX_THREADS).is_ok());
        assert_eq!(threads(0).unwrap_err().to_string(), "--threads must be at least 1, got 0");
        assert_eq!(threads(100_000).unwrap_err().to_string(), "--threads must be at most 1024, got 100000");
        assert!(dropout("dropout", 0.0).is_ok() && dropout("dropout", 0.5).is_ok());
        for p in [1.0, -0.1, f64::NAN] {
            assert!(dropout("dropout", p).is_err(), "{p}");
        }
        assert!(positive("learning rate", 1e-3).is_ok() && positive("bound", f32::MAX as f64).is_ok());
        for v in [0.0, -1.0, f64::INFINITY, f64::NAN, 1e39] {
            assert!(positive("learning rate", v).is_err(), "{v}");
        }
        let refused = positive("--lr", 1e40).unwrap_err().to_string();
        assert_eq!(
            refused,
            format!("--lr must be positive and at most float32's largest (3.4028235e38), got {}", 1e40)
        );
        for v in [0.0, -2.5, f32::MAX as f64, f32::MIN as f64] {
            assert!(float32("--forget-bias", v).is_ok(), "{v}");
        }
        for v in [1e39, -1e39, f64::INFINITY, f64::NEG_INFINITY, f64::NAN] {
            assert!(float32("--forget-bias", v).is_err(), "{v}");
        }
    }
}

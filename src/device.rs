//! Choosing where tensors live and how many threads libtorch uses.
//!
//! Devices are named as in PyTorch (`cpu`, `cuda`, `cuda:N`, `mps`) plus `auto`, which takes
//! the first of CUDA, MPS and CPU that is available. A device that this libtorch cannot use is
//! an error at start-up, not a C++ exception in the middle of a run.

use std::{fmt, str::FromStr};

use anyhow::{bail, Result};
use serde::{Deserialize, Serialize};
use tch::Device;

/// A device as the user names it on the command line: `cpu`, `cuda`, `cuda:N`, `mps` or `auto`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(into = "String", try_from = "String")]
pub enum DeviceSpec {
    /// The CPU (the default: it is where bit-for-bit parity with PyTorch is promised).
    #[default]
    Cpu,
    /// A CUDA device; `cuda` is `cuda:0`.
    Cuda(usize),
    /// Apple's Metal Performance Shaders.
    Mps,
    /// CUDA if available, else MPS, else the CPU.
    Auto,
}

impl DeviceSpec {
    /// Resolves the name to a tch [`Device`], checking that libtorch can use it.
    pub fn resolve(self) -> Result<Device> {
        match self {
            DeviceSpec::Cpu => Ok(Device::Cpu),
            DeviceSpec::Cuda(index) => {
                let count = cuda_device_count();
                if count == 0 {
                    bail!("device cuda:{index} is not available: this libtorch sees no CUDA device");
                }
                if index >= count {
                    bail!("device cuda:{index} is not available: this machine has {count} CUDA device(s)");
                }
                Ok(Device::Cuda(index))
            }
            DeviceSpec::Mps => {
                if !tch::utils::has_mps() {
                    bail!("device mps is not available: this libtorch has no MPS support on this machine");
                }
                Ok(Device::Mps)
            }
            DeviceSpec::Auto => Ok(if cuda_device_count() > 0 {
                Device::Cuda(0)
            } else if tch::utils::has_mps() {
                Device::Mps
            } else {
                Device::Cpu
            }),
        }
    }
}

fn cuda_device_count() -> usize {
    if tch::Cuda::is_available() {
        usize::try_from(tch::Cuda::device_count()).unwrap_or(0)
    } else {
        0
    }
}

impl FromStr for DeviceSpec {
    type Err = anyhow::Error;

    fn from_str(s: &str) -> Result<Self> {
        match s {
            "cpu" => Ok(DeviceSpec::Cpu),
            "cuda" => Ok(DeviceSpec::Cuda(0)),
            "mps" => Ok(DeviceSpec::Mps),
            "auto" => Ok(DeviceSpec::Auto),
            _ => match s.strip_prefix("cuda:").map(str::parse::<usize>) {
                Some(Ok(index)) => Ok(DeviceSpec::Cuda(index)),
                _ => bail!("unknown device '{s}': expected cpu, cuda, cuda:N, mps or auto"),
            },
        }
    }
}

impl fmt::Display for DeviceSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DeviceSpec::Cpu => f.write_str("cpu"),
            DeviceSpec::Cuda(index) => write!(f, "cuda:{index}"),
            DeviceSpec::Mps => f.write_str("mps"),
            DeviceSpec::Auto => f.write_str("auto"),
        }
    }
}

impl From<DeviceSpec> for String {
    fn from(spec: DeviceSpec) -> String {
        spec.to_string()
    }
}

impl TryFrom<String> for DeviceSpec {
    type Error = anyhow::Error;

    fn try_from(s: String) -> Result<Self> {
        s.parse()
    }
}

/// Pins libtorch's intra-op thread count (`torch.set_num_threads`); `None` keeps its default.
///
/// Zero threads is an error. Pin the same count on the Python side when comparing timings.
pub fn set_threads(threads: Option<usize>) -> Result<()> {
    match threads {
        None => Ok(()),
        Some(0) => bail!("--threads must be at least 1"),
        Some(n) => {
            let n = i32::try_from(n).map_err(|_| anyhow::anyhow!("--threads {n} is too large"))?;
            tch::set_num_threads(n);
            Ok(())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_prints_pytorch_device_names() {
        for (text, spec) in [
            ("cpu", DeviceSpec::Cpu),
            ("cuda:0", DeviceSpec::Cuda(0)),
            ("cuda:3", DeviceSpec::Cuda(3)),
            ("mps", DeviceSpec::Mps),
            ("auto", DeviceSpec::Auto),
        ] {
            assert_eq!(text.parse::<DeviceSpec>().unwrap(), spec);
            assert_eq!(spec.to_string(), text);
        }
        assert_eq!("cuda".parse::<DeviceSpec>().unwrap(), DeviceSpec::Cuda(0));
    }

    #[test]
    fn rejects_unknown_names() {
        for bad in ["gpu", "cuda:", "cuda:-1", "cuda:x", "CPU", ""] {
            let err = bad.parse::<DeviceSpec>().unwrap_err().to_string();
            assert!(err.contains("unknown device"), "{bad}: {err}");
        }
    }

    #[test]
    fn cpu_and_auto_always_resolve() {
        assert_eq!(DeviceSpec::Cpu.resolve().unwrap(), Device::Cpu);
        DeviceSpec::Auto.resolve().unwrap();
    }

    #[test]
    fn zero_threads_is_an_error() {
        assert!(set_threads(Some(0)).is_err());
        assert!(set_threads(None).is_ok());
    }
}

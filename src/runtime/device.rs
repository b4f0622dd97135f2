//! Choosing where tensors live and how many threads libtorch uses.
//!
//! Devices are named as in PyTorch (`cpu`, `cuda`, `cuda:N`, `mps`) plus `auto`, which takes
//! the first of CUDA, MPS and CPU that is available. A device that this libtorch cannot use is
//! an error at start-up, not a C++ exception in the middle of a run.
//!
//! CUDA support is loaded at start-up, where it can work. Binaries link libtorch's CPU
//! libraries only; before `main`, src/runtime/native/cuda.cpp loads libtorch_cuda (and with it the CUDA
//! runtime) from the directory of the libtorch this process runs on, if the machine has an
//! NVIDIA driver. With a driver everything is as if libtorch_cuda were linked (tch's
//! `Cuda::is_available` too); without one a process saves the ~0.16 s and ~390 MiB that CUDA's
//! libraries cost and could never use. `LSTM_TCH_CUDA=off` skips the load on a GPU machine,
//! `=on` forces it without a driver. [`cuda_support`] says what happened.

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
                let support = cuda_support();
                if !support.is_loaded() {
                    bail!("device cuda:{index} is not available: {support}");
                }
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

/// The number of CUDA devices libtorch can use: 0 without CUDA support or without a device.
pub fn cuda_device_count() -> usize {
    if tch::Cuda::is_available() {
        usize::try_from(tch::Cuda::device_count()).unwrap_or(0)
    } else {
        0
    }
}

/// What became of libtorch's CUDA backend at start-up (see the module documentation).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CudaSupport {
    /// libtorch_cuda is loaded, from this path, with ATen's real CUDA hooks.
    Loaded(String),
    /// `LSTM_TCH_CUDA=off` (or `0`).
    Disabled,
    /// The machine has no NVIDIA driver (`libcuda.so.1`), so CUDA could not run.
    NoDriver(String),
    /// This libtorch is a CPU-only build: it has no libtorch_cuda (this path).
    NotBuilt(String),
    /// Loading failed (or `LSTM_TCH_CUDA` has a bad value): why.
    Failed(String),
    /// A build without the native start-up loader (not Linux or macOS): CUDA is whatever
    /// torch-sys linked.
    Linked,
}

impl CudaSupport {
    /// Whether CUDA devices can be used, as far as loading goes (a device must still exist).
    pub fn is_loaded(&self) -> bool {
        matches!(self, CudaSupport::Loaded(_) | CudaSupport::Linked)
    }
}

impl fmt::Display for CudaSupport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CudaSupport::Loaded(path) => write!(f, "CUDA support loaded from {path}"),
            CudaSupport::Disabled => f.write_str("CUDA support is off (LSTM_TCH_CUDA=off)"),
            CudaSupport::NoDriver(why) => write!(f, "CUDA support not loaded: {why}"),
            CudaSupport::NotBuilt(path) => {
                write!(f, "this libtorch has no CUDA support ({path} does not exist)")
            }
            CudaSupport::Failed(why) => write!(f, "CUDA support could not be loaded: {why}"),
            CudaSupport::Linked => f.write_str("CUDA support as linked"),
        }
    }
}

/// What became of libtorch's CUDA backend at start-up.
pub fn cuda_support() -> CudaSupport {
    native::cuda_support()
}

/// The directory of the libtorch this process runs on, where known.
pub fn libtorch_dir() -> Option<String> {
    native::libtorch_dir()
}

/// The CUDA runtime version (e.g. 12080 for 12.8) that the loaded libtorch_cuda was built
/// with, or `None` when CUDA support is not loaded. Needs no GPU.
pub fn cuda_runtime_version() -> Option<i64> {
    native::cuda_runtime_version()
}

#[cfg(lstm_tch_native)]
mod native {
    use std::ffi::{c_char, c_int, CStr};

    use super::CudaSupport;

    extern "C" {
        fn lstm_tch_cuda_state(detail: *mut *const c_char) -> c_int;
        fn lstm_tch_cuda_runtime_version() -> i64;
        fn lstm_tch_libtorch_dir() -> *const c_char;
    }

    /// SAFETY: `ptr` is NULL or a NUL-terminated string that lives as long as the process.
    unsafe fn static_string(ptr: *const c_char) -> Option<String> {
        (!ptr.is_null()).then(|| CStr::from_ptr(ptr).to_string_lossy().into_owned())
    }

    pub(super) fn cuda_support() -> CudaSupport {
        let mut detail: *const c_char = std::ptr::null();
        // SAFETY: writes a pointer to a NUL-terminated string that lives as long as the
        // process (or NULL); never throws.
        let state = unsafe { lstm_tch_cuda_state(&mut detail) };
        // SAFETY: see above.
        let detail = unsafe { static_string(detail) }.unwrap_or_default();
        // The values of src/runtime/native/cuda.cpp's LSTM_TCH_CUDA_* enum.
        match state {
            1 => CudaSupport::Loaded(detail),
            2 => CudaSupport::Disabled,
            3 => CudaSupport::NoDriver(detail),
            4 => CudaSupport::NotBuilt(detail),
            5 => CudaSupport::Failed(detail),
            _ => CudaSupport::Failed("the start-up loader did not run (was the crate linked whole?)".into()),
        }
    }

    pub(super) fn cuda_runtime_version() -> Option<i64> {
        // SAFETY: no arguments; catches every exception.
        let version = unsafe { lstm_tch_cuda_runtime_version() };
        (version >= 0).then_some(version)
    }

    pub(super) fn libtorch_dir() -> Option<String> {
        // SAFETY: no arguments; the string is set once, before main, and never freed.
        unsafe { static_string(lstm_tch_libtorch_dir()) }
    }
}

/// Without the native loader, CUDA is whatever torch-sys linked.
#[cfg(not(lstm_tch_native))]
mod native {
    use super::CudaSupport;

    pub(super) fn cuda_support() -> CudaSupport {
        CudaSupport::Linked
    }

    pub(super) fn cuda_runtime_version() -> Option<i64> {
        None
    }

    pub(super) fn libtorch_dir() -> Option<String> {
        None
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
/// Zero threads, or more than [`crate::runtime::checks::MAX_THREADS`], is an error. Pin the same
/// count on the Python side when comparing timings.
pub fn set_threads(threads: Option<usize>) -> Result<()> {
    if let Some(n) = threads {
        crate::runtime::checks::threads(n)?;
        tch::set_num_threads(n as i32); // at most MAX_THREADS
    }
    Ok(())
}

/// Where to run.
#[derive(Debug, Clone, PartialEq, Eq, Default, clap::Args, Serialize, Deserialize)]
pub struct RuntimeArgs {
    /// Device: cpu, cuda, cuda:N, mps or auto.
    #[arg(long, default_value = "cpu")]
    pub device: DeviceSpec,
    /// libtorch intra-op threads (1 to 1024); libtorch's default when absent.
    #[arg(long)]
    pub threads: Option<usize>,
}

impl RuntimeArgs {
    /// Pins the thread count and resolves the device.
    pub fn init(&self) -> Result<Device> {
        set_threads(self.threads)?;
        self.device.resolve()
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

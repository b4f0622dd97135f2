//! `lstm-tch info`: the libtorch this process runs on, its threads and CUDA support.

use std::io::Write;

use anyhow::Result;

use crate::runtime::device;

/// `lstm-tch info`: which libtorch this process runs on, its threads, and what became of CUDA
/// support (see [`device`](crate::device)); the first thing to look at when a device is not
/// found.
pub fn info() -> Result<()> {
    let mut out = std::io::stdout().lock();
    writeln!(out, "lstm-tch        {}", env!("CARGO_PKG_VERSION"))?;
    writeln!(out, "libtorch        {}", device::libtorch_dir().unwrap_or_else(|| "as linked".into()))?;
    writeln!(out, "threads         {} (intra-op)", tch::get_num_threads())?;
    writeln!(out, "CUDA            {}", device::cuda_support())?;
    if let Some(version) = device::cuda_runtime_version() {
        writeln!(out, "CUDA runtime    {}.{}", version / 1000, version % 1000 / 10)?;
    }
    writeln!(out, "CUDA devices    {}", device::cuda_device_count())?;
    writeln!(out, "MPS             {}", if tch::utils::has_mps() { "available" } else { "not available" })?;
    Ok(())
}

//! Machine-readable run reports and Python-style printing.
//!
//! Reports are JSON. Float32 values are written in their shortest round-trip form (serde_json
//! formats an `f32` with ryu), so they parse back to the identical float32: a report compared
//! against PyTorch's compares bit patterns, not rounded decimals. A non-finite value is `null`.

use std::{
    collections::BTreeMap,
    fs::File,
    io::{BufWriter, Write},
    path::{Path, PathBuf},
};

use anyhow::{Context, Result};
use serde::Serialize;
use tch::{nn, Device, Kind, Tensor};

/// Every element of `t` (any shape, kind or device) as float32, flattened row-major.
pub fn tensor_values_f32(t: &Tensor) -> Result<Vec<f32>> {
    let flat = t.f_detach()?.f_to_device(Device::Cpu)?.f_to_kind(Kind::Float)?.f_flatten(0, -1)?;
    Ok(Vec::<f32>::try_from(&flat)?)
}

/// Every element of an integer tensor `t` as i64, flattened row-major.
pub fn tensor_values_i64(t: &Tensor) -> Result<Vec<i64>> {
    let flat = t.f_to_device(Device::Cpu)?.f_to_kind(Kind::Int64)?.f_flatten(0, -1)?;
    Ok(Vec::<i64>::try_from(&flat)?)
}

/// The `VarStore`'s variables as a `state_dict`: name → flattened float32 values.
pub fn state_dict_values(vs: &nn::VarStore) -> Result<BTreeMap<String, Vec<f32>>> {
    vs.variables().iter().map(|(name, t)| Ok((name.clone(), tensor_values_f32(t)?))).collect()
}

/// A JSON file opened for writing up front, so an unwritable path fails before any work is done.
#[derive(Debug)]
pub struct JsonFile {
    path: PathBuf,
    file: File,
}

impl JsonFile {
    /// Creates (or truncates) the file at `path`.
    pub fn create(path: &Path) -> Result<Self> {
        let file = File::create(path).with_context(|| format!("cannot write report {}", path.display()))?;
        Ok(Self { path: path.to_owned(), file })
    }

    /// Writes `value` as one JSON object followed by a newline.
    pub fn write<T: Serialize>(self, value: &T) -> Result<()> {
        let mut out = BufWriter::new(self.file);
        serde_json::to_writer(&mut out, value)
            .map_err(anyhow::Error::from)
            .and_then(|()| Ok(out.write_all(b"\n")?))
            .and_then(|()| Ok(out.flush()?))
            .with_context(|| format!("cannot write report {}", self.path.display()))
    }
}

/// PyTorch's print options: line width, summarising threshold and edge items.
const LINE_WIDTH: usize = 80;
const THRESHOLD: usize = 1000;
const EDGE_ITEMS: usize = 3;

/// Formats a 1-D int64 tensor's values exactly as `print(tensor)` does in PyTorch: elements
/// right-aligned to a common width, wrapped at 80 columns, summarised with `...` past 1000
/// elements, and `device='cuda:0'` when not on the CPU. E.g. `tensor([0, 1])`.
pub fn format_int_tensor(values: &[i64], device: Device) -> String {
    const PREFIX: &str = "tensor(";
    let indent = PREFIX.len();
    let summarize = values.len() > THRESHOLD;
    let shown: Vec<i64> = if summarize {
        values[..EDGE_ITEMS].iter().chain(&values[values.len() - EDGE_ITEMS..]).copied().collect()
    } else {
        values.to_vec()
    };
    let width = shown.iter().map(|v| v.to_string().len()).max().unwrap_or(0);
    let fmt = |v: &i64| format!("{v:>width$}");
    let data: Vec<String> = if summarize {
        let (head, tail) = shown.split_at(EDGE_ITEMS);
        head.iter().map(fmt).chain([" ...".to_owned()]).chain(tail.iter().map(fmt)).collect()
    } else {
        shown.iter().map(fmt).collect()
    };
    let per_line = ((LINE_WIDTH - indent) / (width + 2)).max(1);
    let lines: Vec<String> = data.chunks(per_line).map(|chunk| chunk.join(", ")).collect();
    let body = format!("{PREFIX}[{}]", lines.join(&format!(",\n{}", " ".repeat(indent + 1))));

    let suffix = match device {
        Device::Cpu => None,
        Device::Cuda(index) => Some(format!("device='cuda:{index}'")),
        Device::Mps => Some("device='mps:0'".to_owned()),
        Device::Vulkan => Some("device='vulkan'".to_owned()),
    };
    match suffix {
        None => format!("{body})"),
        Some(suffix) => {
            let last_line_len = body.len() - body.rfind('\n').unwrap_or(0) + 1;
            if last_line_len + suffix.len() + 2 > LINE_WIDTH {
                format!("{body},\n{}{suffix})", " ".repeat(indent))
            } else {
                format!("{body}, {suffix})")
            }
        }
    }
}

/// Writes `text` and a newline to standard output; a closed pipe is an error that
/// [`is_broken_pipe`] recognises (and `run_main` ends quietly on), never a panic as `println!`
/// would give.
pub fn print_line(text: impl std::fmt::Display) -> Result<()> {
    print(&format!("{text}\n"))
}

/// Writes `text` as it is to standard output ([`print_line`] without the newline).
pub fn print(text: &str) -> Result<()> {
    use std::io::Write;
    std::io::stdout().lock().write_all(text.as_bytes())?;
    Ok(())
}

/// Whether `err` comes from writing to a pipe whose reader has gone.
pub fn is_broken_pipe(err: &anyhow::Error) -> bool {
    err.chain().any(|cause| {
        cause.downcast_ref::<std::io::Error>().is_some_and(|e| e.kind() == std::io::ErrorKind::BrokenPipe)
    })
}

/// `err` and its causes on one line (`outer: cause`), as `run_main` prints it: without the C++
/// stack that libtorch appends to its errors (`Exception raised from ...`, `frame #0: ...`),
/// and with any other line break turned into a space.
pub fn error_line(err: &anyhow::Error) -> String {
    let text = format!("{err:#}");
    let cut = ["\nException raised from", "\nframe #"].iter().filter_map(|stack| text.find(stack)).min();
    let message = &text[..cut.unwrap_or(text.len())];
    message.split('\n').map(str::trim_end).filter(|line| !line.is_empty()).collect::<Vec<_>>().join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_error_is_one_line_without_libtorchs_stack() {
        let torch = anyhow::anyhow!(
            "Internal torch error: [enforce fail at alloc_cpu.cpp:127] data. \
             DefaultCPUAllocator: not enough memory\n\
             frame #0: c10::ThrowEnforceNotMet(char const*, int) + 0x5c (0x7f in libc10.so)\n\
             frame #1: <unknown function> + 0x1b2 (0x7f in libc10.so)\n"
        );
        assert_eq!(
            error_line(&torch.context("cannot create weight_hh_l0")),
            "cannot create weight_hh_l0: Internal torch error: [enforce fail at alloc_cpu.cpp:127] data. \
             DefaultCPUAllocator: not enough memory"
        );
        let raised = anyhow::anyhow!(
            "shape '[2]' is invalid\nException raised from view at aten.cpp:12 (most recent call first):\n\
             frame #0: x"
        );
        assert_eq!(error_line(&raised), "shape '[2]' is invalid");
        assert_eq!(error_line(&anyhow::anyhow!("two\nlines")), "two lines");
        assert_eq!(error_line(&anyhow::anyhow!("plain")), "plain");
    }

    // Expected strings are PyTorch 2.13's `str(torch.tensor(values))`.
    #[test]
    fn prints_like_pytorch() {
        assert_eq!(format_int_tensor(&[0, 1], Device::Cpu), "tensor([0, 1])");
        assert_eq!(format_int_tensor(&[3, 10, 0], Device::Cpu), "tensor([ 3, 10,  0])");
        assert_eq!(format_int_tensor(&[-1, 2], Device::Cpu), "tensor([-1,  2])");
        assert_eq!(format_int_tensor(&[0, 1], Device::Cuda(0)), "tensor([0, 1], device='cuda:0')");
        let wrapped: Vec<i64> = (0..30).map(|i| i % 2).collect();
        assert_eq!(
            format_int_tensor(&wrapped, Device::Cpu),
            "tensor([0, 1, 0, 1, 0, 1, 0, 1, 0, 1, 0, 1, 0, 1, 0, 1, 0, 1, 0, 1, 0, 1, 0, 1,\n        0, 1, 0, 1, 0, 1])"
        );
        let long: Vec<i64> = (0..1001).collect();
        assert_eq!(
            format_int_tensor(&long, Device::Cpu),
            "tensor([   0,    1,    2,  ...,  998,  999, 1000])"
        );
    }

    #[test]
    fn float32_values_round_trip_through_json() {
        let values = [0.1f32, 1.0 / 3.0, f32::MIN_POSITIVE, 1e-45, 3.4028235e38, -0.0];
        let json = serde_json::to_string(&values).unwrap();
        let back: Vec<f32> = serde_json::from_str(&json).unwrap();
        for (a, b) in values.iter().zip(&back) {
            assert_eq!(a.to_bits(), b.to_bits(), "{json}");
        }
        assert_eq!(serde_json::to_string(&0.1f32).unwrap(), "0.1");
    }
}

//! libtorch_cuda is not linked: it is loaded before `main` where an NVIDIA driver is installed
//! (src/runtime/native/cuda.cpp). In process: this test binary got whatever this machine calls for, and
//! on a GPU the loaded backend runs the model. Through `lstm-tch info` and the CLI: the
//! `LSTM_TCH_CUDA` switch, including a forced load on a machine without a driver, which shows
//! that the backend loads and registers its hooks where no GPU can confirm it.

use std::process::Command;

use lstm_tch::{
    nn::{RecurrentConfig, SequenceClassifier, SequenceClassifierConfig},
    runtime::device::{self, CudaSupport, DeviceSpec},
};
use tch::{nn, Device, Kind, Tensor};

/// Whether this process has `lib` mapped.
fn mapped(lib: &str) -> bool {
    std::fs::read_to_string("/proc/self/maps").expect("/proc/self/maps").contains(lib)
}

/// Whether the libtorch these binaries run on is a CUDA build.
fn libtorch_has_cuda() -> bool {
    let dir = device::libtorch_dir().expect("the libtorch directory is known");
    std::path::Path::new(&dir).join("libtorch_cuda.so").exists()
}

/// Runs `lstm-tch args...` with `LSTM_TCH_CUDA` set to `mode` (unset for `None`); its exit
/// success, stdout and stderr.
fn lstm_tch(mode: Option<&str>, args: &[&str]) -> (bool, String, String) {
    let mut command = Command::new(crate::common::lstm_tch());
    command.args(args).current_dir(crate::common::root());
    match mode {
        Some(mode) => command.env("LSTM_TCH_CUDA", mode),
        None => command.env_remove("LSTM_TCH_CUDA"),
    };
    let out = command.output().expect("run lstm-tch");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into(),
        String::from_utf8_lossy(&out.stderr).into(),
    )
}

/// The value of `field` in `lstm-tch info`'s output.
fn info_field<'a>(info: &'a str, field: &str) -> &'a str {
    info.lines()
        .find_map(|line| line.strip_prefix(field).map(str::trim))
        .unwrap_or_else(|| panic!("no {field} in:\n{info}"))
}

#[test]
fn this_process_loaded_what_the_machine_calls_for() {
    if !cfg!(target_os = "linux") {
        return; // /proc/self/maps and libtorch_cuda.so are Linux's
    }
    assert!(mapped("libtorch_cpu.so"), "libtorch_cpu is linked");
    let support = device::cuda_support();
    // The driver is looked for only in `auto` mode; a NoDriver outcome is that search's result.
    let driver_found_or_not_needed = !matches!(support, CudaSupport::NoDriver(_));
    match std::env::var("LSTM_TCH_CUDA").as_deref() {
        Ok("off" | "0") => assert_eq!(support, CudaSupport::Disabled),
        Ok("on" | "1" | "auto" | "") | Err(_) if driver_found_or_not_needed && libtorch_has_cuda() => {
            assert!(
                matches!(support, CudaSupport::Loaded(ref path) if path.ends_with("/libtorch_cuda.so")),
                "{support}"
            );
        }
        _ => assert!(!support.is_loaded(), "{support}"),
    }
    assert_eq!(mapped("libtorch_cuda.so"), support.is_loaded(), "{support}");
    assert_eq!(device::cuda_runtime_version().is_some(), support.is_loaded(), "{support}");

    let count = device::cuda_device_count();
    assert_eq!(DeviceSpec::Auto.resolve().unwrap(), if count > 0 { Device::Cuda(0) } else { Device::Cpu });
    let beyond = DeviceSpec::Cuda(count).resolve().unwrap_err().to_string();
    assert!(beyond.starts_with(&format!("device cuda:{count} is not available: ")), "{beyond}");
    if !support.is_loaded() {
        assert!(beyond.ends_with(&support.to_string()), "{beyond}");
    }

    if count > 0 {
        // The loaded backend runs: the same model on the GPU agrees with the CPU.
        let recurrent =
            RecurrentConfig { input_size: 3, hidden_size: 8, num_layers: 2, ..RecurrentConfig::default() };
        let config = SequenceClassifierConfig { recurrent, output_size: 2 };
        let cpu_vs = nn::VarStore::new(Device::Cpu);
        let cpu_model = SequenceClassifier::new(&cpu_vs.root(), config).unwrap();
        let mut gpu_vs = nn::VarStore::new(Device::Cuda(0));
        let gpu_model = SequenceClassifier::new(&gpu_vs.root(), config).unwrap();
        gpu_vs.copy(&cpu_vs).unwrap();
        let inputs = Tensor::randn([4, 6, 3], (Kind::Float, Device::Cpu));
        let cpu_logits = cpu_model.forward(&inputs).unwrap();
        let gpu_logits = gpu_model.forward(&inputs.to(Device::Cuda(0))).unwrap();
        assert_eq!(gpu_logits.device(), Device::Cuda(0));
        let diff = (gpu_logits.to(Device::Cpu) - &cpu_logits).abs().max().double_value(&[]);
        // Not a parity check (CPU and CUDA run different kernels): cuDNN's RNNs use TF32 on
        // Ampere and later by default (PyTorch's `torch.backends.cudnn.allow_tf32 = True`, a
        // 10-bit mantissa in the products). Measured on an H100 with PyTorch itself, a 2-layer
        // nn.LSTM(3, 8) on CPU and CUDA: outputs 3.3e-5 apart with TF32, 2.7e-6 without. This
        // test's old bound of 1e-5 held or failed with the random inputs; 1e-3 is TF32's
        // relative precision, with the logits of order 1.
        assert!(diff < 1e-3, "CPU and CUDA logits differ by {diff}");
    }
}

#[test]
fn lstm_tch_cuda_switches_the_start_up_load() {
    if !cfg!(target_os = "linux") {
        return;
    }
    let (ok, off, _) = lstm_tch(Some("off"), &["info"]);
    assert!(ok);
    assert_eq!(info_field(&off, "CUDA "), "CUDA support is off (LSTM_TCH_CUDA=off)");
    assert_eq!(info_field(&off, "CUDA devices"), "0");
    let (ok, _, err) = lstm_tch(Some("off"), &["predict", "--device", "cuda", "good"]);
    assert!(!ok);
    assert_eq!(err.trim(), "error: device cuda:0 is not available: CUDA support is off (LSTM_TCH_CUDA=off)");

    let (ok, _, err) = lstm_tch(Some("sometimes"), &["predict", "--device", "cuda:1", "good"]);
    assert!(!ok);
    assert_eq!(
        err.trim(),
        "error: device cuda:1 is not available: CUDA support could not be loaded: \
         LSTM_TCH_CUDA must be auto, on or off, not 'sometimes'"
    );

    // Forced: the backend loads (real hooks: a CUDA runtime version) with or without a driver.
    let (ok, on, _) = lstm_tch(Some("on"), &["info"]);
    assert!(ok);
    if libtorch_has_cuda() {
        let cuda = info_field(&on, "CUDA ");
        assert!(cuda.starts_with("CUDA support loaded from ") && cuda.ends_with("/libtorch_cuda.so"), "{on}");
        let runtime = info_field(&on, "CUDA runtime");
        assert!(runtime.split('.').all(|part| part.parse::<u32>().is_ok()), "{on}");
    } else {
        assert!(info_field(&on, "CUDA ").starts_with("this libtorch has no CUDA support"), "{on}");
    }

    // Unset is `auto`: loaded exactly when the machine has a driver, as this process was.
    let (ok, auto, _) = lstm_tch(None, &["info"]);
    assert!(ok);
    let (_, explicit, _) = lstm_tch(Some("auto"), &["info"]);
    assert_eq!(info_field(&auto, "CUDA "), info_field(&explicit, "CUDA "));
    if std::env::var_os("LSTM_TCH_CUDA").is_none() {
        assert_eq!(info_field(&auto, "CUDA "), device::cuda_support().to_string());
        assert_eq!(info_field(&auto, "CUDA devices"), device::cuda_device_count().to_string());
    }
    assert_eq!(info_field(&auto, "libtorch"), device::libtorch_dir().unwrap());
}

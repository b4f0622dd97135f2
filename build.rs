//! Builds `src/runtime/native/` (torch.optim.Adam's update as one call into ATen; the start-up loader
//! of libtorch_cuda; the generator and libtorch-Adam state a resumed run restores), and sets
//! the link options that make every binary of this package (the CLI, the examples, the test
//! binaries) find libtorch without `LD_LIBRARY_PATH`. Where Gloo's headers are found, it also builds
//! src/runtime/native/dist.cpp (torch.distributed's process group and DDP's Reducer, from the
//! linked libtorch). libtorch_cuda is deliberately not linked:
//! src/runtime/native/cuda.cpp loads it before `main` where an NVIDIA driver is installed. See
//! docs/libtorch.md.

use std::{
    env,
    path::{Path, PathBuf},
};

fn main() {
    // torch-sys (`links = "tch"`) publishes the directory of the libtorch it linked.
    println!("cargo:rerun-if-env-changed=DEP_TCH_LIBTORCH_LIB");
    // Set when src/runtime/native/ is built; src/train/optim/ falls back to tch ops without it, and
    // src/runtime/device.rs then leaves CUDA to however torch-sys linked libtorch.
    println!("cargo::rustc-check-cfg=cfg(lstm_tch_native)");
    // Set when src/runtime/native/dist.cpp is built: src/dist/ then joins torch.distributed jobs.
    println!("cargo::rustc-check-cfg=cfg(lstm_tch_dist)");
    let Ok(lib_dir) = env::var("DEP_TCH_LIBTORCH_LIB") else {
        return; // Windows or a doc-only build: torch-sys publishes nothing, nothing to add.
    };
    let os = env::var("CARGO_CFG_TARGET_OS").unwrap_or_default();
    if os != "linux" && os != "macos" {
        return;
    }
    // libtorch's headers sit beside its lib directory (`torch/include` in the wheel,
    // `libtorch/include` in a standalone libtorch), unless LIBTORCH_INCLUDE names the directory
    // holding `include/`, as it does for torch-sys.
    println!("cargo:rerun-if-env-changed=LIBTORCH_INCLUDE");
    println!("cargo:rerun-if-env-changed=LIBTORCH_CXX11_ABI");
    println!("cargo:rerun-if-changed=src/runtime/native");
    let include = match env::var("LIBTORCH_INCLUDE") {
        Ok(dir) => PathBuf::from(dir).join("include"),
        Err(_) => Path::new(&lib_dir).parent().unwrap_or(Path::new(".")).join("include"),
    };
    let cxx11_abi = env::var("LIBTORCH_CXX11_ABI").unwrap_or_else(|_| "1".to_owned());
    cc::Build::new()
        .cpp(true)
        .pic(true)
        .std("c++17")
        .warnings(false)
        .include(&include)
        .include(include.join("torch/csrc/api/include"))
        .define("_GLIBCXX_USE_CXX11_ABI", cxx11_abi.as_str())
        .file("src/runtime/native/adam.cpp")
        .file("src/runtime/native/cuda.cpp")
        .file("src/runtime/native/state.cpp")
        // Whole: cuda.cpp's start-up constructor is referenced by nothing, yet must be in
        // every binary that uses this crate.
        .link_lib_modifier("+whole-archive")
        .compile("lstm_tch_native");
    println!("cargo:rustc-cfg=lstm_tch_native");
    build_dist(&include, &cxx11_abi);

    // RUNPATH: binaries load the very libtorch they were linked against.
    println!("cargo:rustc-link-arg=-Wl,-rpath,{lib_dir}");
    if os == "linux" {
        // Keep the CPU libtorch libraries (and the C++ runtime they need) whatever the binary
        // calls: one that calls no tch function would otherwise fail to link, and libtorch
        // must be initialised the same way in every binary. libtorch_cuda is left out on
        // purpose, and so is libtorch.so, an empty shim whose only job is to pull in
        // libtorch_cpu and libtorch_cuda (torch-sys names both; --as-needed drops them, since
        // nothing references them): src/runtime/native/cuda.cpp dlopens libtorch_cuda on demand.
        println!("cargo:rustc-link-lib=dl");
        println!("cargo:rustc-link-arg=-Wl,--no-as-needed");
        for lib in ["torch_cpu", "c10"] {
            if Path::new(&lib_dir).join(format!("lib{lib}.so")).exists() {
                println!("cargo:rustc-link-arg=-l{lib}");
            }
        }
        println!("cargo:rustc-link-arg=-lstdc++");
        println!("cargo:rustc-link-arg=-Wl,--as-needed");
    }
}

/// Builds src/runtime/native/dist.cpp where Gloo's headers are found: libtorch's
/// ProcessGroupGloo.hpp includes them and the PyTorch wheel ships none (Debian's libgloo-dev,
/// which scripts/setup.sh installs, has them in /usr/include; GLOO_INCLUDE names another
/// directory holding `gloo/`). Without them the crate builds, and training under torchrun says
/// what to install.
fn build_dist(torch_include: &Path, cxx11_abi: &str) {
    println!("cargo:rerun-if-env-changed=GLOO_INCLUDE");
    let gloo = env::var("GLOO_INCLUDE").map_or_else(|_| PathBuf::from("/usr/include"), PathBuf::from);
    if !gloo.join("gloo/config.h").exists() {
        println!(
            "cargo:warning=no Gloo headers in {} (Debian: apt-get install libgloo-dev): \
             built without distributed training",
            gloo.display()
        );
        return;
    }
    cc::Build::new()
        .cpp(true)
        .pic(true)
        .std("c++17")
        .warnings(false)
        .include(torch_include)
        .include(torch_include.join("torch/csrc/api/include"))
        .include(&gloo)
        .define("_GLIBCXX_USE_CXX11_ABI", cxx11_abi)
        .define("USE_C10D_GLOO", None)
        .file("src/runtime/native/dist.cpp")
        .compile("lstm_tch_dist");
    println!("cargo:rustc-cfg=lstm_tch_dist");
}

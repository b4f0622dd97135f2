//! Builds `src/native/adam.cpp` (torch.optim.Adam's update as one call into ATen), and sets
//! the link options that make every binary of this package (the CLI, the examples, the test
//! binaries) find libtorch without `LD_LIBRARY_PATH` and keep libtorch_cuda, so CUDA is seen
//! where there is one. See README, "libtorch options".

use std::{
    env,
    path::{Path, PathBuf},
};

fn main() {
    // torch-sys (`links = "tch"`) publishes the directory of the libtorch it linked.
    println!("cargo:rerun-if-env-changed=DEP_TCH_LIBTORCH_LIB");
    // Set when src/native/adam.cpp is built; src/optim.rs falls back to tch ops without it.
    println!("cargo::rustc-check-cfg=cfg(lstm_tch_native)");
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
    println!("cargo:rerun-if-changed=src/native/adam.cpp");
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
        .file("src/native/adam.cpp")
        .compile("lstm_tch_native");
    println!("cargo:rustc-cfg=lstm_tch_native");

    // RUNPATH: binaries load the very libtorch they were linked against.
    println!("cargo:rustc-link-arg=-Wl,-rpath,{lib_dir}");
    if os == "linux" {
        // With --as-needed (the toolchain default) nothing references libtorch_cuda directly,
        // so the linker would drop it and CUDA would never be initialised: keep the libtorch
        // libraries (and the C++ runtime they need) whatever the binary calls.
        println!("cargo:rustc-link-arg=-Wl,--no-as-needed");
        for lib in ["torch_cuda", "torch_cpu", "torch", "c10"] {
            if Path::new(&lib_dir).join(format!("lib{lib}.so")).exists() {
                println!("cargo:rustc-link-arg=-l{lib}");
            }
        }
        println!("cargo:rustc-link-arg=-lstdc++");
        println!("cargo:rustc-link-arg=-Wl,--as-needed");
    }
}

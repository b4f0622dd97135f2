//! Link settings that make every binary of this package (the CLI, the examples, the test
//! binaries) find libtorch without `LD_LIBRARY_PATH`, and keep libtorch_cuda so CUDA is seen
//! where there is one. See README, "libtorch options".

use std::{env, path::Path};

fn main() {
    // torch-sys (`links = "tch"`) publishes the directory of the libtorch it linked.
    println!("cargo:rerun-if-env-changed=DEP_TCH_LIBTORCH_LIB");
    let Ok(lib_dir) = env::var("DEP_TCH_LIBTORCH_LIB") else {
        return; // Windows or a doc-only build: torch-sys publishes nothing, nothing to add.
    };
    let os = env::var("CARGO_CFG_TARGET_OS").unwrap_or_default();
    if os != "linux" && os != "macos" {
        return;
    }
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

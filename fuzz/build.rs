//! Lets the fuzz targets find libtorch without `LD_LIBRARY_PATH`, as the main crate's build.rs
//! does for its own binaries: an rpath to the directory torch-sys (`links = "tch"`) linked.

fn main() {
    println!("cargo:rerun-if-env-changed=DEP_TCH_LIBTORCH_LIB");
    if let Ok(lib_dir) = std::env::var("DEP_TCH_LIBTORCH_LIB") {
        println!("cargo:rustc-link-arg=-Wl,-rpath,{lib_dir}");
    }
}

//! A checkpoint's `model.safetensors` on arbitrary bytes, beside the format-1 fixture's
//! `config.json`, through [`checkpoint::load`] (tch's safetensors reader, then the name, shape
//! and dtype checks). The reader is path-based, so each input is written to a scratch file (in
//! RAM where /dev/shm exists). An error is fine; a panic, hang, abort or huge allocation is not.
#![no_main]

use std::{path::PathBuf, sync::OnceLock};

use libfuzzer_sys::fuzz_target;
use lstm_tch::checkpoint;

const CONFIG: &[u8] = include_bytes!("../../tests/fixtures/format1/config.json");

/// A scratch checkpoint directory holding the fixture's config.
fn dir() -> &'static PathBuf {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        tch::set_num_threads(1);
        let base =
            if std::path::Path::new("/dev/shm").is_dir() { "/dev/shm".into() } else { std::env::temp_dir() };
        let dir = base.join(format!("lstm-tch-fuzz-weights-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join(checkpoint::CONFIG_FILE), CONFIG).unwrap();
        dir
    })
}

fuzz_target!(|data: &[u8]| {
    let dir = dir();
    std::fs::write(dir.join(checkpoint::WEIGHTS_FILE), data).unwrap();
    if let Ok(ckpt) = checkpoint::load(dir, tch::Device::Cpu) {
        // Only the fixture's own shapes get through.
        assert_eq!(ckpt.vs.variables().len(), ckpt.config.model.parameter_shapes().len());
    }
});

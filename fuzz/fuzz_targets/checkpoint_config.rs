//! A checkpoint's `config.json` on arbitrary bytes: [`checkpoint::parse_config`], then, for a
//! config it accepts, [`checkpoint::load`] of a directory holding it beside the format-1 fixture's
//! weights (so the config-versus-weights checks run on hostile sizes). An error is fine; a
//! panic, hang, abort or huge allocation is not.
#![no_main]

use std::{path::PathBuf, sync::OnceLock};

use libfuzzer_sys::fuzz_target;
use lstm_tch::checkpoint;

const WEIGHTS: &[u8] = include_bytes!("../../tests/fixtures/format1/model.safetensors");

/// A scratch checkpoint directory (in RAM where /dev/shm exists) holding the fixture's weights.
fn dir() -> &'static PathBuf {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        tch::set_num_threads(1);
        let base =
            if std::path::Path::new("/dev/shm").is_dir() { "/dev/shm".into() } else { std::env::temp_dir() };
        let dir = base.join(format!("lstm-tch-fuzz-config-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join(checkpoint::WEIGHTS_FILE), WEIGHTS).unwrap();
        dir
    })
}

fuzz_target!(|data: &[u8]| {
    let dir = dir();
    let Ok(text) = std::str::from_utf8(data) else { return };
    let path = dir.join(checkpoint::CONFIG_FILE);
    if checkpoint::parse_config(text, &path).is_err() {
        return;
    }
    std::fs::write(&path, data).unwrap();
    let _ = checkpoint::load(dir, tch::Device::Cpu);
});

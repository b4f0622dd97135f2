//! A checkpoint's `config.json` on arbitrary bytes: [`checkpoint::parse_config`], then, for a
//! config it accepts, [`checkpoint::load`] of a directory holding it beside the format-1 fixture's
//! weights (so the config-versus-weights checks run on hostile sizes). An error is fine; a
//! panic, hang, abort or huge allocation is not.
#![no_main]

#[path = "scratch.rs"]
mod scratch;

use libfuzzer_sys::fuzz_target;
use lstm_tch::checkpoint;

const WEIGHTS: &[u8] = include_bytes!("../../tests/fixtures/format1/model.safetensors");

fuzz_target!(|data: &[u8]| {
    let dir = scratch::checkpoint_dir("config", checkpoint::WEIGHTS_FILE, WEIGHTS);
    let Ok(text) = std::str::from_utf8(data) else { return };
    let path = dir.join(checkpoint::CONFIG_FILE);
    if checkpoint::parse_config(text, &path).is_err() {
        return;
    }
    std::fs::write(&path, data).unwrap();
    let _ = checkpoint::load(dir, tch::Device::Cpu);
});

//! A checkpoint's `model.safetensors` on arbitrary bytes, beside the format-1 fixture's
//! `config.json`, through [`checkpoint::load`] (tch's safetensors reader, then the name, shape
//! and dtype checks). The reader is path-based, so each input is written to a scratch file (in
//! RAM where /dev/shm exists). An error is fine; a panic, hang, abort or huge allocation is not.
#![no_main]

#[path = "scratch.rs"]
mod scratch;

use libfuzzer_sys::fuzz_target;
use lstm_tch::checkpoint;

const CONFIG: &[u8] = include_bytes!("../../tests/fixtures/format1/config.json");

fuzz_target!(|data: &[u8]| {
    let dir = scratch::checkpoint_dir("weights", checkpoint::CONFIG_FILE, CONFIG);
    std::fs::write(dir.join(checkpoint::WEIGHTS_FILE), data).unwrap();
    if let Ok(ckpt) = checkpoint::load(dir, tch::Device::Cpu) {
        // Only the fixture's own shapes get through.
        assert_eq!(ckpt.vs.variables().len(), ckpt.config.model.parameter_shapes().len());
    }
});

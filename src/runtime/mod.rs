//! The runtime under every layer: devices and threads, libtorch's generator state, the C++ in
//! `native/` and its FFI, the allocator's settings, and JSON reports whose float32 values
//! round-trip exactly.

pub mod allocator;
pub mod checks;
pub mod device;
pub mod fault;
pub(crate) mod ffi;
pub mod flags;
pub mod report;
pub mod rng;

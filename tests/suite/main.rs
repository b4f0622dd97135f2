//! The integration tests, as one test binary: libtorch is linked once, not once per file. One
//! module per subject; `cargo test --test suite MODULE` runs one of them.
//!
//! The fault-injection modules need the binaries built with the cargo feature
//! `fault-injection` (`scripts/test.sh` enables it); without it they are left out.
//!
//! Tests in this binary run on parallel threads of one process, so those that seed libtorch's
//! default generator and draw from it hold [`common::generator`] while they do.

mod common;

mod article_cli;
mod bench_smoke;
mod cell;
#[cfg(all(unix, feature = "fault-injection"))]
mod checkpoint_faults;
mod claims;
mod cuda_loading;
mod cuda_training;
#[cfg(unix)]
mod dist;
#[cfg(all(target_os = "linux", feature = "fault-injection"))]
mod failing_writes;
mod hostile_inputs;
mod lstm_kernel;
mod model;
mod parity;
mod pipes;
mod plot;
mod properties;
#[cfg(all(unix, feature = "fault-injection"))]
mod resume;
#[cfg(unix)]
mod serve;
#[cfg(unix)]
mod serve_page;
mod text_cli;
mod text_parity;
mod text_pipeline;

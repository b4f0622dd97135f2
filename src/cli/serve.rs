//! `lstm-tch serve`: a checkpoint behind HTTP (src/serve).

use anyhow::Result;

use crate::serve::{self, ServeConfig};

/// Runs `lstm-tch serve` until SIGTERM or Ctrl-C.
pub fn serve(config: &ServeConfig) -> Result<()> {
    serve::serve(config)
}

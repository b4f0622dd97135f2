//! libtorch's C++ `torch::optim::Adam`, driven through torch-sys's C API (`ato_*`, the calls
//! tch's `nn::Adam` makes) so that this crate holds the optimizer's handle: its per-parameter
//! state (step count and moments) can then be read and restored through src/runtime/native/state.cpp,
//! which a resumed training run needs. The update itself is libtorch's, unchanged.

use anyhow::{bail, Result};
use tch::Tensor;
use torch_sys::C_optimizer;

use super::{AdamConfig, AdamState};

/// A `torch::optim::Adam` over a list of parameters (weight decay 0, no AMSGrad).
pub(super) struct LibtorchAdam {
    handle: *mut C_optimizer,
    params: usize,
}

/// Turns torch-sys's last error (set by its `PROTECT` blocks) into an `Err`.
fn check() -> Result<()> {
    // SAFETY: torch-sys returns NULL or a malloc'ed string it hands over to the caller.
    match crate::runtime::ffi::take_c_error(unsafe { torch_sys::get_and_reset_last_err() }) {
        None => Ok(()),
        Some(message) => bail!("libtorch Adam: {message}"),
    }
}

impl LibtorchAdam {
    /// `torch::optim::Adam(params, AdamOptions(lr).betas(...).eps(...))`, the parameters in
    /// order (the order tch's `nn::Optimizer` adds a `VarStore`'s trainable variables).
    pub(super) fn new(config: AdamConfig, params: &[Tensor]) -> Result<Self> {
        // SAFETY: plain scalars in; a new optimizer (or NULL and an error) out.
        let handle =
            unsafe { torch_sys::ato_adam(config.lr, config.beta1, config.beta2, 0.0, config.eps, false) };
        check()?;
        let adam = Self { handle, params: params.len() };
        for p in params {
            // SAFETY: a live optimizer and a live tensor handle; libtorch keeps its own
            // reference to the tensor.
            unsafe { torch_sys::ato_add_parameters(adam.handle, p.as_ptr() as *mut _, 0) };
            check()?;
        }
        Ok(adam)
    }

    /// One update from the parameters' `.grad`.
    pub(super) fn step(&mut self) -> Result<()> {
        // SAFETY: a live optimizer.
        unsafe { torch_sys::ato_step(self.handle) };
        check()
    }

    /// The optimizer's state, copied: per parameter its step count and moments (`None` for a
    /// parameter that never had a gradient).
    pub(super) fn state(&self) -> Result<AdamState> {
        #[cfg(lstm_tch_native)]
        return native_state::get(self.handle, self.params);
        #[cfg(not(lstm_tch_native))]
        bail!("reading libtorch Adam's state needs src/runtime/native (not built on this platform)")
    }

    /// Replaces the optimizer's state with a copy of `state` (as [`LibtorchAdam::state`] gave it).
    pub(super) fn load_state(&mut self, state: &AdamState) -> Result<()> {
        #[cfg(lstm_tch_native)]
        return native_state::set(self.handle, self.params, state);
        #[cfg(not(lstm_tch_native))]
        {
            let _ = state;
            bail!("restoring libtorch Adam's state needs src/runtime/native (not built on this platform)")
        }
    }
}

impl Drop for LibtorchAdam {
    fn drop(&mut self) {
        // SAFETY: the handle is live and freed once.
        unsafe { torch_sys::ato_free(self.handle) };
    }
}

#[cfg(lstm_tch_native)]
mod native_state {
    use std::{ffi::c_void, ptr};

    use anyhow::{ensure, Result};
    use tch::Tensor;
    use torch_sys::{C_optimizer, C_tensor};

    use super::super::{native::error, AdamState};

    extern "C" {
        fn lstm_tch_adam_get_state(
            optimizer: *mut c_void,
            n: usize,
            steps: *mut i64,
            exp_avgs: *mut *mut C_tensor,
            exp_avg_sqs: *mut *mut C_tensor,
        ) -> *mut std::ffi::c_char;
        fn lstm_tch_adam_set_state(
            optimizer: *mut c_void,
            n: usize,
            steps: *const i64,
            exp_avgs: *const *const C_tensor,
            exp_avg_sqs: *const *const C_tensor,
        ) -> *mut std::ffi::c_char;
    }

    pub(super) fn get(handle: *mut C_optimizer, n: usize) -> Result<AdamState> {
        let mut steps = vec![0i64; n];
        let mut exp_avgs = vec![ptr::null_mut(); n];
        let mut exp_avg_sqs = vec![ptr::null_mut(); n];
        // SAFETY: torch-sys's C_optimizer is a torch::optim::Optimizer*; the arrays hold n
        // entries each, filled with new tensors (or NULL) that are owned below.
        error(unsafe {
            lstm_tch_adam_get_state(
                handle.cast(),
                n,
                steps.as_mut_ptr(),
                exp_avgs.as_mut_ptr(),
                exp_avg_sqs.as_mut_ptr(),
            )
        })?;
        // SAFETY: each non-NULL pointer is a new at::Tensor handed over to us.
        let own = |p: *mut C_tensor| (!p.is_null()).then(|| unsafe { Tensor::from_ptr(p) });
        Ok(AdamState {
            steps: steps.iter().map(|&s| s as u64).collect(),
            exp_avg: exp_avgs.into_iter().map(own).collect(),
            exp_avg_sq: exp_avg_sqs.into_iter().map(own).collect(),
        })
    }

    pub(super) fn set(handle: *mut C_optimizer, n: usize, state: &AdamState) -> Result<()> {
        ensure!(state.len() == n, "the saved Adam state has {} parameters, the model {n}", state.len());
        let steps: Vec<i64> = state.steps.iter().map(|&s| s as i64).collect();
        let mut exp_avgs = Vec::with_capacity(n);
        let mut exp_avg_sqs = Vec::with_capacity(n);
        for (i, moments) in state.exp_avg.iter().zip(&state.exp_avg_sq).enumerate() {
            match moments {
                (Some(m), Some(v)) => {
                    exp_avgs.push(m.as_ptr());
                    exp_avg_sqs.push(v.as_ptr());
                }
                _ => {
                    ensure!(steps[i] == 0, "parameter {i} has a step count but no moments");
                    exp_avgs.push(ptr::null());
                    exp_avg_sqs.push(ptr::null());
                }
            }
        }
        // SAFETY: as in `get`; the tensors are borrowed for the call (libtorch copies them).
        error(unsafe {
            lstm_tch_adam_set_state(handle.cast(), n, steps.as_ptr(), exp_avgs.as_ptr(), exp_avg_sqs.as_ptr())
        })
    }
}

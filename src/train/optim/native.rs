//! The update as one call into src/runtime/native/adam.cpp, which issues PyTorch's ATen calls with
//! their `value` scalars.

use std::ffi::c_char;

use anyhow::{bail, ensure, Result};
use tch::Tensor;
use torch_sys::C_tensor;

/// The signature shared by `lstm_tch_adam_step` (single-tensor) and
/// `lstm_tch_adam_foreach_step` (multi-tensor).
type StepFn = unsafe extern "C" fn(
    params: *const *mut C_tensor,
    grads: *const *const C_tensor,
    exp_avgs: *const *mut C_tensor,
    exp_avg_sqs: *const *mut C_tensor,
    step_sizes: *const f64,
    bias_correction2_sqrts: *const f64,
    n: usize,
    beta1: f64,
    beta2: f64,
    eps: f64,
) -> *mut c_char;

extern "C" {
    fn lstm_tch_adam_step(
        params: *const *mut C_tensor,
        grads: *const *const C_tensor,
        exp_avgs: *const *mut C_tensor,
        exp_avg_sqs: *const *mut C_tensor,
        step_sizes: *const f64,
        bias_correction2_sqrts: *const f64,
        n: usize,
        beta1: f64,
        beta2: f64,
        eps: f64,
    ) -> *mut c_char;
    fn lstm_tch_adam_foreach_step(
        params: *const *mut C_tensor,
        grads: *const *const C_tensor,
        exp_avgs: *const *mut C_tensor,
        exp_avg_sqs: *const *mut C_tensor,
        step_sizes: *const f64,
        bias_correction2_sqrts: *const f64,
        n: usize,
        beta1: f64,
        beta2: f64,
        eps: f64,
    ) -> *mut c_char;
    fn lstm_tch_clear_grads(tensors: *const *mut C_tensor, n: usize) -> *mut c_char;
}

/// `p.grad = None` for every parameter (`optimizer.zero_grad()`'s default, `set_to_none=True`):
/// the next `backward` stores a fresh gradient rather than adding it to zeros.
pub(super) fn clear_grads(params: &[Tensor]) -> Result<()> {
    let handles: Vec<*mut C_tensor> = params.iter().map(|t| t.as_ptr() as *mut C_tensor).collect();
    // SAFETY: live tensor handles borrowed for the call.
    if let Some(message) =
        crate::runtime::ffi::take_c_error(unsafe { lstm_tch_clear_grads(handles.as_ptr(), handles.len()) })
    {
        bail!("cannot clear the gradients: {message}");
    }
    Ok(())
}

/// One step of the single-tensor (`foreach` false) or the multi-tensor update.
#[allow(clippy::too_many_arguments)]
pub(super) fn adam_step(
    foreach: bool,
    params: &mut [Tensor],
    grads: &[Tensor],
    exp_avgs: &mut [Tensor],
    exp_avg_sqs: &mut [Tensor],
    step_sizes: &[f64],
    bias_correction2_sqrts: &[f64],
    (beta1, beta2, eps): (f64, f64, f64),
) -> Result<()> {
    let n = params.len();
    ensure!(
        [grads.len(), exp_avgs.len(), exp_avg_sqs.len(), step_sizes.len(), bias_correction2_sqrts.len()]
            .iter()
            .all(|&len| len == n),
        "Adam state does not match the parameters"
    );
    let params: Vec<*mut C_tensor> = params.iter_mut().map(Tensor::as_mut_ptr).collect();
    let grads: Vec<*const C_tensor> = grads.iter().map(Tensor::as_ptr).collect();
    let exp_avgs: Vec<*mut C_tensor> = exp_avgs.iter_mut().map(Tensor::as_mut_ptr).collect();
    let exp_avg_sqs: Vec<*mut C_tensor> = exp_avg_sqs.iter_mut().map(Tensor::as_mut_ptr).collect();
    // SAFETY: every pointer is a live tch tensor handle (an at::Tensor*) borrowed for the
    // call, the arrays all hold n entries, and the C++ side catches every exception.
    let step: StepFn = if foreach { lstm_tch_adam_foreach_step } else { lstm_tch_adam_step };
    let err = unsafe {
        step(
            params.as_ptr(),
            grads.as_ptr(),
            exp_avgs.as_ptr(),
            exp_avg_sqs.as_ptr(),
            step_sizes.as_ptr(),
            bias_correction2_sqrts.as_ptr(),
            n,
            beta1,
            beta2,
            eps,
        )
    };
    error(err).map_err(|e| e.context("Adam step failed"))
}

/// `Ok`, or the error message src/runtime/native returned (a malloc'ed string, freed here).
pub(super) fn error(err: *mut c_char) -> Result<()> {
    match crate::runtime::ffi::take_c_error(err) {
        None => Ok(()),
        Some(message) => bail!("{message}"),
    }
}

//! Adam, two ways, both running on libtorch's tensor kernels.
//!
//! - [`AdamImpl::Pytorch`] reproduces `torch.optim.Adam`'s update as PyTorch runs it by default
//!   on each device: the single-tensor path on the CPU, the multi-tensor (`foreach`) path on CUDA
//!   ([`AdamConfig::foreach`], PyTorch's `foreach` argument, can force either). The CPU default,
//!   `_single_tensor_adam`, op for op, so a run is bit-identical to the Python script:
//!   ```python
//!   m.lerp_(g, 1 - b1)
//!   v.mul_(b2).addcmul_(g, g, value=1 - b2)
//!   bc1 = 1 - b1 ** t;  bc2 = 1 - b2 ** t
//!   denom = (v.sqrt() / bc2 ** 0.5).add_(eps)
//!   p.addcdiv_(m, denom, value=-(lr / bc1))
//!   ```
//!   The bias corrections are f64 `powf` (C `pow`, like Python's `**`). The tensor ops run in
//!   `src/runtime/native/adam.cpp`, one call per step issuing exactly these ATen calls with their
//!   `value` scalars. Where that file is not built (Windows), the same update runs op by op
//!   through tch, whose `addcmul_`/`addcdiv_` take no `value`: libtorch's CPU kernels compute
//!   `self + (value·t1)·t2` and `self + (value·t1)/t2`, so scaling `t1` first gives the same bits
//!   (a unit test holds the two paths to identical bits).
//!   Its `backward_step` takes the gradients from the autograd engine (`torch.autograd.grad`)
//!   rather than zeroing and accumulating `.grad`: the values PyTorch stores into `.grad = None`.
//!
//!   On CUDA, PyTorch's default is `_multi_tensor_adam` (`foreach=True`): the same arithmetic
//!   as ATen's `_foreach_*` kernels, whose CUDA versions round differently from the per-tensor
//!   ones (a tensor divided by a scalar, for one, is a true division there and a multiplication
//!   by the reciprocal in the per-tensor kernel). `src/runtime/native/adam.cpp` issues its calls, with
//!   `weight_decay=0, amsgrad=False, maximize=False, capturable=False`, identical in PyTorch
//!   2.11 and 2.13:
//!   ```python
//!   torch._foreach_lerp_(exp_avgs, grads, 1 - b1)
//!   torch._foreach_mul_(exp_avg_sqs, b2)
//!   torch._foreach_addcmul_(exp_avg_sqs, grads, grads, 1 - b2)
//!   bc1 = [1 - b1 ** t for t in steps];  bc2 = [1 - b2 ** t for t in steps]
//!   step_size = [(lr / bc) * -1 for bc in bc1]
//!   denom = torch._foreach_sqrt(exp_avg_sqs)
//!   torch._foreach_div_(denom, [bc ** 0.5 for bc in bc2])
//!   torch._foreach_add_(denom, eps)
//!   torch._foreach_addcdiv_(params, exp_avgs, denom, step_size)
//!   ```
//!   The step counts are float32 tensors there, read back with `.item()`: the same integers.
//!   Gradients that do not follow their parameter's strides are first copied to them, as
//!   PyTorch's `AccumulateGrad` does when it stores `.grad` (the `_foreach_*` kernels take their
//!   fast path only for matching layouts). On the CPU PyTorch's `_foreach_*` kernels are loops
//!   of the per-tensor ops, so forcing `foreach` there gives the single-tensor bits (and
//!   `torch.optim.Adam(foreach=True)`'s: tests/suite/parity.rs). Where src/runtime/native is not built, the
//!   `foreach` update runs the per-tensor ops from Rust: identical on the CPU only.
//! - [`AdamImpl::Libtorch`] is libtorch's C++ `torch::optim::Adam`, created and stepped through
//!   torch-sys's C API as tch's `nn::Adam` does (src/train/optim/libtorch.rs holds its handle, so that
//!   its state can be saved and restored). Its
//!   first moment is `m.mul_(b1).add_(g, 1 - b1)` instead of `lerp_`: a few ulp apart from step 2
//!   on, so losses drift from Python's at the 1e-7 level while predictions agree.

use anyhow::{ensure, Result};
use clap::ValueEnum;
use serde::{Deserialize, Serialize};
use tch::{nn, Tensor};

/// Which Adam implementation updates the parameters.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, ValueEnum, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum AdamImpl {
    /// `torch.optim.Adam`'s update reproduced op for op: bit-identical to the Python script.
    #[default]
    Pytorch,
    /// libtorch's C++ `torch::optim::Adam` (what tch's `nn::Adam` runs): ulp-level differences.
    Libtorch,
}

/// Adam's hyperparameters; the defaults are `torch.optim.Adam`'s, with the article's lr.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct AdamConfig {
    /// Learning rate.
    pub lr: f64,
    /// Decay of the first-moment average.
    pub beta1: f64,
    /// Decay of the second-moment average.
    pub beta2: f64,
    /// Added to the denominator for numerical stability.
    pub eps: f64,
    /// `torch.optim.Adam`'s `foreach` argument, for [`AdamImpl::Pytorch`]: `None` (PyTorch's
    /// default) takes the multi-tensor path when every parameter is on CUDA and the
    /// single-tensor path otherwise; `Some(true)` / `Some(false)` force one. Ignored by
    /// [`AdamImpl::Libtorch`].
    pub foreach: Option<bool>,
}

impl Default for AdamConfig {
    fn default() -> Self {
        Self { lr: 1e-3, beta1: 0.9, beta2: 0.999, eps: 1e-8, foreach: None }
    }
}

/// `torch.optim.Adam`'s `foreach` argument as a command-line choice.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, ValueEnum, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Foreach {
    /// PyTorch's default (`foreach=None`): multi-tensor on CUDA, single-tensor on the CPU.
    #[default]
    Auto,
    /// `foreach=True`: the multi-tensor (`_foreach_*`) update on every device.
    On,
    /// `foreach=False`: the single-tensor update on every device.
    Off,
}

impl From<Foreach> for Option<bool> {
    fn from(foreach: Foreach) -> Self {
        match foreach {
            Foreach::Auto => None,
            Foreach::On => Some(true),
            Foreach::Off => Some(false),
        }
    }
}

impl AdamConfig {
    /// An Adam configuration with PyTorch's defaults and the given learning rate.
    pub fn with_lr(lr: f64) -> Self {
        Self { lr, ..Self::default() }
    }

    /// Checks the learning rate is finite and positive, the betas in [0, 1) and eps ≥ 0.
    pub fn validate(&self) -> Result<()> {
        checks::positive("learning rate", self.lr)?;
        for (name, beta) in [("beta1", self.beta1), ("beta2", self.beta2)] {
            ensure!((0.0..1.0).contains(&beta), "{name} must be in [0, 1), got {beta}");
        }
        ensure!(
            self.eps.is_finite() && self.eps >= 0.0,
            "eps must be finite and non-negative, got {}",
            self.eps
        );
        Ok(())
    }
}

/// Adam over every trainable variable of a `VarStore`.
pub struct Adam {
    inner: Inner,
    params: Vec<Tensor>,
}

enum Inner {
    Pytorch(PytorchAdam),
    Libtorch(LibtorchAdam),
}

/// Adam's state, what a resumed run needs to continue with the same bits: per parameter (in
/// `VarStore::trainable_variables` order) its step count and its first and second moments, the
/// latter two `None` where an implementation has none yet (libtorch's, before a parameter's
/// first gradient). Tensors are on the CPU when read with [`Adam::state`].
#[derive(Debug)]
pub struct AdamState {
    /// Updates each parameter has had.
    pub steps: Vec<u64>,
    /// First moments (`exp_avg`), shaped like their parameters.
    pub exp_avg: Vec<Option<Tensor>>,
    /// Second moments (`exp_avg_sq`), shaped like their parameters.
    pub exp_avg_sq: Vec<Option<Tensor>>,
}

impl AdamState {
    /// Number of parameters.
    pub fn len(&self) -> usize {
        self.steps.len()
    }

    /// Whether there are no parameters.
    pub fn is_empty(&self) -> bool {
        self.steps.is_empty()
    }
}

impl std::fmt::Debug for Adam {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let kind = match self.inner {
            Inner::Pytorch(_) => AdamImpl::Pytorch,
            Inner::Libtorch(_) => AdamImpl::Libtorch,
        };
        f.debug_struct("Adam").field("impl", &kind).field("params", &self.params.len()).finish()
    }
}

impl Adam {
    /// Adam with `config` over `vs`'s trainable variables (created before this call).
    pub fn new(kind: AdamImpl, vs: &nn::VarStore, config: AdamConfig) -> Result<Self> {
        config.validate()?;
        let params = vs.trainable_variables();
        let inner = match kind {
            AdamImpl::Pytorch => Inner::Pytorch(PytorchAdam::new(config, &params)?),
            AdamImpl::Libtorch => Inner::Libtorch(LibtorchAdam::new(config, &params)?),
        };
        Ok(Self { inner, params })
    }

    /// A copy of the optimizer's state, on the CPU.
    pub fn state(&self) -> Result<AdamState> {
        let state = match &self.inner {
            Inner::Libtorch(adam) => adam.state()?,
            Inner::Pytorch(adam) => adam.state()?,
        };
        Ok(state)
    }

    /// Restores a state [`Adam::state`] gave (from an optimizer of the same implementation
    /// over the same parameters); the moments are copied to the parameters' devices.
    pub fn load_state(&mut self, state: &AdamState) -> Result<()> {
        let n = self.params.len();
        ensure!(
            state.len() == n && state.exp_avg.len() == n && state.exp_avg_sq.len() == n,
            "the saved Adam state has {} parameters, the model {n}",
            state.len()
        );
        for (i, p) in self.params.iter().enumerate() {
            for moment in [&state.exp_avg[i], &state.exp_avg_sq[i]].into_iter().flatten() {
                ensure!(
                    moment.size() == p.size(),
                    "the saved Adam state of parameter {i} is {:?}, the parameter {:?}",
                    moment.size(),
                    p.size()
                );
            }
        }
        match &mut self.inner {
            Inner::Libtorch(adam) => adam.load_state(state),
            Inner::Pytorch(adam) => adam.load_state(state),
        }
    }

    /// Zeroes every parameter's gradient (`optimizer.zero_grad()`), for use with
    /// `loss.backward()` and [`Adam::step`].
    pub fn zero_grad(&mut self) {
        for p in &mut self.params {
            p.zero_grad();
        }
    }

    /// `optimizer.zero_grad(); loss.backward(); optimizer.step()`.
    pub fn backward_step(&mut self, loss: &Tensor) -> Result<()> {
        self.backward_step_clip(loss, None).map(|_| ())
    }

    /// `optimizer.zero_grad(); loss.backward()`, then, with `max_norm`, gradient clipping as
    /// `torch.nn.utils.clip_grad_norm_` does it, then `optimizer.step()`. Returns the gradients'
    /// joint L2 norm before clipping when clipping.
    ///
    /// With [`AdamImpl::Pytorch`] the gradients come straight from the autograd engine
    /// (`torch.autograd.grad`) instead of being accumulated into zeroed `.grad` tensors: the
    /// values PyTorch's `backward()` stores into `.grad = None`, without the zeroing and the
    /// accumulation (the `.grad` fields are left untouched).
    pub fn backward_step_clip(&mut self, loss: &Tensor, max_norm: Option<f64>) -> Result<Option<f64>> {
        match &mut self.inner {
            Inner::Pytorch(state) => {
                let mut grads = Tensor::f_run_backward(&[loss], &self.params, false, false)?;
                let norm = max_norm.map(|max| clip_grad_norm(&mut grads, max)).transpose()?;
                tch::no_grad(|| state.step(&mut self.params, &grads))?;
                Ok(norm)
            }
            Inner::Libtorch(_) => {
                self.zero_grad();
                loss.f_backward()?;
                let norm = max_norm.map(|max| self.clip_grad_norm(max)).transpose()?;
                self.step()?;
                Ok(norm)
            }
        }
    }

    /// [`Adam::backward_step_clip`] with the gradients passing through the parameters' `.grad`,
    /// as a PyTorch loop takes them: `optimizer.zero_grad()` (the pytorch path sets them to
    /// none, `torch.optim`'s default; the libtorch path zeroes them), `loss.backward()`,
    /// clipping, `optimizer.step()`. What `DistributedDataParallel` needs: its hooks average the
    /// gradients as `backward` accumulates them.
    pub fn backward_step_clip_accumulated(
        &mut self,
        loss: &Tensor,
        max_norm: Option<f64>,
    ) -> Result<Option<f64>> {
        match &self.inner {
            Inner::Pytorch(_) => {
                #[cfg(lstm_tch_native)]
                native::clear_grads(&self.params)?;
                #[cfg(not(lstm_tch_native))]
                self.zero_grad(); // the same values; a -0.0 gradient may read +0.0
                loss.f_backward()?;
                let norm = max_norm.map(|max| self.clip_grad_norm(max)).transpose()?;
                self.step()?;
                Ok(norm)
            }
            Inner::Libtorch(_) => self.backward_step_clip(loss, max_norm),
        }
    }

    /// Scales the `.grad` of every parameter so that their joint L2 norm is at most `max_norm`,
    /// as `torch.nn.utils.clip_grad_norm_` does; returns the norm before clipping.
    pub fn clip_grad_norm(&mut self, max_norm: f64) -> Result<f64> {
        let mut grads: Vec<Tensor> = self.params.iter().map(Tensor::grad).collect();
        clip_grad_norm(&mut grads, max_norm)
    }

    /// One Adam update of every parameter from its `.grad`.
    pub fn step(&mut self) -> Result<()> {
        match &mut self.inner {
            Inner::Libtorch(opt) => opt.step(),
            Inner::Pytorch(state) => {
                let grads: Vec<Tensor> = self.params.iter().map(Tensor::grad).collect();
                tch::no_grad(|| state.step(&mut self.params, &grads))
            }
        }
    }
}

mod libtorch;
#[cfg(lstm_tch_native)]
mod native;
mod pytorch;

use crate::runtime::checks;
use libtorch::LibtorchAdam;
use pytorch::{clip_grad_norm, PytorchAdam};

#[cfg(test)]
mod tests {
    use super::*;
    use tch::{Device, Kind};

    /// Deterministic, varied values (no random generator: tests run in parallel threads and
    /// libtorch's default generator is global).
    pub(super) fn values(shape: &[i64], seed: f64) -> Tensor {
        let n: i64 = shape.iter().product();
        (Tensor::arange(n, (Kind::Float, Device::Cpu)) * 0.7 + seed).sin().reshape(shape) * 1.3
    }

    #[test]
    fn foreach_maps_to_pytorchs_argument() {
        assert_eq!(Option::<bool>::from(Foreach::Auto), None);
        assert_eq!(Option::<bool>::from(Foreach::On), Some(true));
        assert_eq!(Option::<bool>::from(Foreach::Off), Some(false));
        assert_eq!(AdamConfig::default().foreach, None, "PyTorch's default");
    }

    /// Adam steps `steps` of `adam` on a quadratic loss over `params` (changing with the step).
    fn steps(adam: &mut Adam, params: &[Tensor], steps: std::ops::Range<usize>) {
        for step in steps {
            let loss = params
                .iter()
                .enumerate()
                .map(|(i, p)| (p * values(&p.size(), (step + i) as f64) + p * p).sum(Kind::Float))
                .fold(Tensor::zeros([], (Kind::Float, Device::Cpu)), |a, b| a + b);
            adam.backward_step(&loss).unwrap();
        }
    }

    fn quadratic_vars() -> nn::VarStore {
        let vs = nn::VarStore::new(Device::Cpu);
        for (i, shape) in [&[16, 8][..], &[8]].iter().enumerate() {
            let _ = vs.root().var_copy(&format!("p{i}"), &values(shape, i as f64));
        }
        vs
    }

    #[test]
    fn a_restored_state_continues_with_the_same_bits() {
        if !cfg!(lstm_tch_native) {
            return; // libtorch Adam's state is read through src/runtime/native
        }
        for kind in [AdamImpl::Pytorch, AdamImpl::Libtorch] {
            let config = AdamConfig::with_lr(0.05);
            // Straight through: 7 steps.
            let straight = quadratic_vars();
            let mut adam = Adam::new(kind, &straight, config).unwrap();
            steps(&mut adam, &straight.trainable_variables(), 0..7);
            // 4 steps, the state saved; a new optimizer over a copy of the weights, the state
            // restored, 3 more steps.
            let first = quadratic_vars();
            let mut adam = Adam::new(kind, &first, config).unwrap();
            steps(&mut adam, &first.trainable_variables(), 0..4);
            let state = adam.state().unwrap();
            assert_eq!(state.steps, [4, 4], "{kind:?}");
            let mut second = quadratic_vars();
            second.copy(&first).unwrap();
            let mut restored = Adam::new(kind, &second, config).unwrap();
            restored.load_state(&state).unwrap();
            steps(&mut restored, &second.trainable_variables(), 4..7);
            for (a, b) in straight.trainable_variables().iter().zip(second.trainable_variables()) {
                assert!(a.equal(&b), "{kind:?}: the resumed optimizer diverged");
            }
            // Without the state, the same 3 steps end elsewhere.
            let mut fresh = quadratic_vars();
            fresh.copy(&first).unwrap();
            let mut adam = Adam::new(kind, &fresh, config).unwrap();
            steps(&mut adam, &fresh.trainable_variables(), 4..7);
            assert!(!straight.trainable_variables()[0].equal(&fresh.trainable_variables()[0]), "{kind:?}");
        }
    }

    #[test]
    fn rejects_bad_hyperparameters() {
        for bad in [0.0, -1.0, f64::NAN, f64::INFINITY] {
            assert!(AdamConfig::with_lr(bad).validate().is_err(), "lr {bad}");
        }
        assert!(AdamConfig { beta1: 1.0, ..AdamConfig::default() }.validate().is_err());
        assert!(AdamConfig { eps: -1.0, ..AdamConfig::default() }.validate().is_err());
    }
}

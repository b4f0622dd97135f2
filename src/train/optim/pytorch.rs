//! `torch.optim.Adam` op for op ([`AdamImpl::Pytorch`](super::AdamImpl::Pytorch)): its state, its
//! update (the single-tensor and the `foreach` path, in src/runtime/native/adam.cpp or op by op
//! from Rust; the arithmetic is in [`super`]'s documentation) and `clip_grad_norm_`.

use anyhow::{bail, Result};
use tch::Tensor;

#[cfg(lstm_tch_native)]
use super::native;
use super::{AdamConfig, AdamState};

/// State of the op-for-op `torch.optim.Adam`: per-parameter moments and the step count.
pub(super) struct PytorchAdam {
    config: AdamConfig,
    exp_avg: Vec<Tensor>,
    exp_avg_sq: Vec<Tensor>,
    /// Per-parameter step counts: a parameter without a gradient is skipped, as in PyTorch.
    steps: Vec<u64>,
    /// Run the update in src/runtime/native/adam.cpp (one call per step) rather than op by op from Rust.
    native: bool,
}

impl PytorchAdam {
    /// Zero moments and step counts for `params`, as `torch.optim.Adam` starts.
    pub(super) fn new(config: AdamConfig, params: &[Tensor]) -> Result<Self> {
        let zeros = |p: &Tensor| p.f_zeros_like();
        Ok(Self {
            config,
            exp_avg: params.iter().map(zeros).collect::<Result<_, _>>()?,
            exp_avg_sq: params.iter().map(zeros).collect::<Result<_, _>>()?,
            steps: vec![0; params.len()],
            native: cfg!(lstm_tch_native),
        })
    }

    /// A copy of the state, on the CPU.
    pub(super) fn state(&self) -> Result<AdamState> {
        let copy = |t: &Tensor| t.f_detach_copy().and_then(|t| t.f_to_device(tch::Device::Cpu)).map(Some);
        Ok(AdamState {
            steps: self.steps.clone(),
            exp_avg: self.exp_avg.iter().map(copy).collect::<Result<_, _>>()?,
            exp_avg_sq: self.exp_avg_sq.iter().map(copy).collect::<Result<_, _>>()?,
        })
    }

    /// Restores `state`, whose sizes [`Adam::load_state`](super::Adam::load_state) checked;
    /// the moments are copied to the parameters' devices.
    pub(super) fn load_state(&mut self, state: &AdamState) -> Result<()> {
        tch::no_grad(|| {
            for i in 0..self.exp_avg.len() {
                let (Some(m), Some(v)) = (&state.exp_avg[i], &state.exp_avg_sq[i]) else {
                    bail!("the saved Adam state has no moments for parameter {i}");
                };
                self.exp_avg[i].f_copy_(m)?;
                self.exp_avg_sq[i].f_copy_(v)?;
            }
            self.steps.clone_from(&state.steps);
            Ok(())
        })
    }

    /// One `torch.optim.Adam` step with `weight_decay=0, amsgrad=False, maximize=False`:
    /// `_single_tensor_adam` (the CPU default) or `_multi_tensor_adam` (the CUDA default), as
    /// [`AdamConfig::foreach`] and the parameters' devices decide. `grads[i]` is the gradient of
    /// `params[i]`; an undefined one skips that parameter (and its step count), as PyTorch
    /// skips a `None` grad.
    pub(super) fn step(&mut self, params: &mut [Tensor], grads: &[Tensor]) -> Result<()> {
        let AdamConfig { lr, beta1, beta2, eps, foreach } = self.config;
        // PyTorch's `_default_to_fused_or_foreach`, over the parameters that have a gradient.
        let foreach = foreach.unwrap_or_else(|| {
            params.iter().zip(grads).filter(|(_, g)| g.defined()).all(|(p, _)| p.device().is_cuda())
        });
        // The per-parameter scalars, as Python computes them: f64, `**` being C's pow.
        let mut step_sizes = Vec::with_capacity(params.len());
        let mut bias_correction2_sqrts = Vec::with_capacity(params.len());
        for (grad, step) in grads.iter().zip(&mut self.steps) {
            if grad.defined() {
                *step += 1;
            }
            let t = *step as f64;
            let bias_correction1 = 1.0 - beta1.powf(t);
            let bias_correction2 = 1.0 - beta2.powf(t);
            step_sizes.push(lr / bias_correction1);
            bias_correction2_sqrts.push(bias_correction2.powf(0.5));
        }
        if self.native {
            #[cfg(lstm_tch_native)]
            return native::adam_step(
                foreach,
                params,
                grads,
                &mut self.exp_avg,
                &mut self.exp_avg_sq,
                &step_sizes,
                &bias_correction2_sqrts,
                (beta1, beta2, eps),
            );
        }
        // Op by op from Rust: the single-tensor update, which is also what PyTorch's CPU
        // `_foreach_*` kernels compute (see the module documentation).
        let _ = foreach;
        let state = self.exp_avg.iter_mut().zip(&mut self.exp_avg_sq);
        let scalars = step_sizes.iter().zip(&bias_correction2_sqrts);
        for (((param, grad), (m, v)), (step_size, bc2_sqrt)) in
            params.iter_mut().zip(grads).zip(state).zip(scalars)
        {
            if !grad.defined() {
                continue;
            }
            let _ = m.f_lerp_(grad, 1.0 - beta1)?;
            let _ = v.f_mul_scalar_(beta2)?.f_addcmul_(&grad.f_mul_scalar(1.0 - beta2)?, grad)?;
            // (v.sqrt() / bc2_sqrt).add_(eps), dividing in place: the same kernel, one buffer.
            let mut denom = v.f_sqrt()?;
            let _ = denom.f_div_scalar_(*bc2_sqrt)?.f_add_scalar_(eps)?;
            let _ = param.f_addcdiv_(&m.f_mul_scalar(-step_size)?, &denom)?;
        }
        Ok(())
    }
}

/// Scales `grads` (undefined ones skipped) so that their joint L2 norm is at most `max_norm`:
/// `clip_coef = max_norm / (total_norm + 1e-6)`, clamped to 1, multiplied in.
pub(super) fn clip_grad_norm(grads: &mut [Tensor], max_norm: f64) -> Result<f64> {
    tch::no_grad(|| {
        let defined: Vec<&mut Tensor> = grads.iter_mut().filter(|g| g.defined()).collect();
        if defined.is_empty() {
            return Ok(0.0);
        }
        let norms = defined.iter().map(|g| g.f_norm()).collect::<Result<Vec<_>, _>>()?;
        let total = Tensor::f_stack(&norms, 0)?.f_norm()?.f_double_value(&[])?;
        let coef = (max_norm / (total + 1e-6)).min(1.0);
        for g in defined {
            let _ = g.f_mul_scalar_(coef)?;
        }
        Ok(total)
    })
}

#[cfg(test)]
mod tests {
    use super::super::{tests::values, Adam, AdamConfig, AdamImpl, Inner};
    use tch::{nn, Device, Tensor};

    /// A parameter set and its Adam, fed the same gradients whatever the implementation.
    fn run(native: bool, steps: usize) -> Vec<Vec<u32>> {
        run_with(native, None, steps)
    }

    /// [`run`] with `torch.optim.Adam`'s `foreach` argument.
    fn run_with(native: bool, foreach: Option<bool>, steps: usize) -> Vec<Vec<u32>> {
        let vs = nn::VarStore::new(Device::Cpu);
        let shapes: [&[i64]; 4] = [&[256, 64], &[256], &[2, 64], &[2]];
        for (i, shape) in shapes.iter().enumerate() {
            let _ = vs.root().var_copy(&format!("p{i}"), &values(shape, i as f64));
        }
        let config = AdamConfig { foreach, ..AdamConfig::with_lr(0.01) };
        let mut adam = Adam::new(AdamImpl::Pytorch, &vs, config).unwrap();
        let Inner::Pytorch(state) = &mut adam.inner else { unreachable!() };
        state.native = native;
        for step in 0..steps {
            let grads: Vec<Tensor> = adam
                .params
                .iter()
                .enumerate()
                // The third parameter gets no gradient every other step.
                .map(|(i, p)| {
                    if i == 2 && step % 2 == 1 {
                        Tensor::new()
                    } else {
                        values(&p.size(), 10.0 * step as f64 + i as f64)
                    }
                })
                .collect();
            let Inner::Pytorch(state) = &mut adam.inner else { unreachable!() };
            tch::no_grad(|| state.step(&mut adam.params, &grads)).unwrap();
        }
        let mut names: Vec<_> = vs.variables().into_iter().collect();
        names.sort_by(|a, b| a.0.cmp(&b.0));
        names
            .iter()
            .map(|(_, t)| {
                Vec::<f32>::try_from(&t.flatten(0, -1)).unwrap().iter().map(|x| x.to_bits()).collect()
            })
            .collect()
    }

    fn differing(a: &[Vec<u32>], b: &[Vec<u32>]) -> usize {
        a.iter().zip(b).map(|(x, y)| x.iter().zip(y).filter(|(u, v)| u != v).count()).sum()
    }

    #[test]
    fn native_and_op_by_op_updates_are_bit_identical() {
        if !cfg!(lstm_tch_native) {
            eprintln!("src/runtime/native/adam.cpp is not built on this platform: nothing to compare");
            return;
        }
        let (native, ops) = (run(true, 25), run(false, 25));
        assert_eq!(differing(&native, &ops), 0, "values differ between the two implementations");
        assert!(differing(&native, &run(false, 24)) > 0, "the last update changed nothing");
    }

    #[test]
    fn foreach_on_the_cpu_gives_the_single_tensor_bits() {
        // PyTorch's CPU `_foreach_*` kernels are loops of the per-tensor ops (tests/suite/parity.rs
        // holds the foreach update to `torch.optim.Adam(foreach=True)` itself).
        let single = run_with(true, Some(false), 25);
        assert_eq!(differing(&run_with(true, Some(true), 25), &single), 0, "native foreach");
        assert_eq!(differing(&run_with(true, None, 25), &single), 0, "the CPU default is single-tensor");
        assert_eq!(differing(&run_with(false, Some(true), 25), &single), 0, "op by op");
    }
}

//! libtorch's default random generators, whose state a resumed training run saves and restores
//! (`torch.get_rng_state()` / `torch.set_rng_state()`, and `torch.cuda`'s on a GPU): the CPU
//! generator draws the data order (`torch.randperm`) and the initialisation, a CUDA device's
//! generator its dropout masks.

use anyhow::{bail, Result};
use tch::{Device, Tensor};

/// The state of `device`'s default generator: a uint8 tensor on the CPU (the Mersenne Twister's
/// on the CPU, the Philox seed and offset on CUDA).
pub fn generator_state(device: Device) -> Result<Tensor> {
    #[cfg(lstm_tch_native)]
    return native::get(device);
    #[cfg(not(lstm_tch_native))]
    bail!(
        "reading the state of the {device:?} generator needs src/runtime/native (not built on this platform)"
    )
}

/// Restores `device`'s default generator to a state [`generator_state`] returned.
pub fn set_generator_state(device: Device, state: &Tensor) -> Result<()> {
    #[cfg(lstm_tch_native)]
    return native::set(device, state);
    #[cfg(not(lstm_tch_native))]
    {
        let _ = state;
        bail!("restoring the state of the {device:?} generator needs src/runtime/native (not built on this platform)")
    }
}

/// `[torch.randperm(n, generator=g) for n in ns]` with `g` one fresh CPU `torch.Generator`
/// seeded with `seed`, drawn in order (int64 tensors, [n] each); the default generator is left
/// alone.
pub fn randperms_seeded(ns: &[i64], seed: u64) -> Result<Vec<Tensor>> {
    #[cfg(lstm_tch_native)]
    return native::randperms_seeded(ns, seed);
    #[cfg(not(lstm_tch_native))]
    {
        let _ = (ns, seed);
        bail!("a permutation from a seeded generator needs src/runtime/native (not built on this platform)")
    }
}

/// The C++ side's device encoding: (0, 0) for the CPU, (1, index) for CUDA.
#[cfg_attr(not(lstm_tch_native), allow(dead_code))]
fn device_code(device: Device) -> Result<(i32, i32)> {
    match device {
        Device::Cpu => Ok((0, 0)),
        Device::Cuda(index) => Ok((1, index as i32)),
        other => bail!("the generator state of {other:?} cannot be saved"),
    }
}

#[cfg(lstm_tch_native)]
mod native {
    use std::{
        ffi::{c_char, c_int},
        ptr,
    };

    use anyhow::{bail, Result};
    use tch::{Device, Tensor};
    use torch_sys::C_tensor;

    use crate::runtime::ffi::take_c_error;

    extern "C" {
        fn lstm_tch_generator_state(
            device_type: c_int,
            device_index: c_int,
            out: *mut *mut C_tensor,
        ) -> *mut c_char;
        fn lstm_tch_set_generator_state(
            device_type: c_int,
            device_index: c_int,
            state: *const C_tensor,
        ) -> *mut c_char;
        fn lstm_tch_randperms_seeded(
            ns: *const i64,
            count: usize,
            seed: i64,
            out: *mut *mut C_tensor,
        ) -> *mut c_char;
    }

    pub(super) fn randperms_seeded(ns: &[i64], seed: u64) -> Result<Vec<Tensor>> {
        let mut out = vec![ptr::null_mut(); ns.len()];
        // SAFETY: `out` has a slot per length; on success each receives a new at::Tensor, owned
        // below. The seed's bits pass unchanged (torch.Generator.manual_seed takes a uint64).
        let err = unsafe { lstm_tch_randperms_seeded(ns.as_ptr(), ns.len(), seed as i64, out.as_mut_ptr()) };
        if let Some(message) = take_c_error(err) {
            bail!("cannot draw permutations of {ns:?}: {message}");
        }
        // SAFETY: new at::Tensors handed over to us.
        Ok(out.into_iter().map(|t| unsafe { Tensor::from_ptr(t) }).collect())
    }

    pub(super) fn get(device: Device) -> Result<Tensor> {
        let (kind, index) = super::device_code(device)?;
        let mut out = ptr::null_mut();
        // SAFETY: `out` receives a new at::Tensor, owned below.
        if let Some(message) = take_c_error(unsafe { lstm_tch_generator_state(kind, index, &mut out) }) {
            bail!("cannot read the {device:?} generator's state: {message}");
        }
        // SAFETY: a new at::Tensor handed over to us.
        Ok(unsafe { Tensor::from_ptr(out) })
    }

    pub(super) fn set(device: Device, state: &Tensor) -> Result<()> {
        let (kind, index) = super::device_code(device)?;
        // SAFETY: a live tensor handle borrowed for the call.
        if let Some(message) =
            take_c_error(unsafe { lstm_tch_set_generator_state(kind, index, state.as_ptr()) })
        {
            bail!("cannot restore the {device:?} generator's state: {message}");
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use tch::Kind;

    use super::*;

    #[test]
    fn a_restored_cpu_generator_draws_the_same_numbers_again() {
        if !cfg!(lstm_tch_native) {
            return;
        }
        // Other tests in this binary may draw concurrently from the global generator: retry a
        // few times until a draw pair was not interleaved with theirs.
        let draws_equal = (0..20).any(|_| {
            let state = generator_state(Device::Cpu).unwrap();
            let first = Tensor::randperm(1000, (Kind::Int64, Device::Cpu));
            set_generator_state(Device::Cpu, &state).unwrap();
            let again = Tensor::randperm(1000, (Kind::Int64, Device::Cpu));
            first.equal(&again)
        });
        assert!(draws_equal, "restoring the state did not repeat the draw");
        let state = generator_state(Device::Cpu).unwrap();
        assert_eq!(state.kind(), Kind::Uint8);
        assert!(set_generator_state(Device::Cpu, &Tensor::zeros([3], (Kind::Uint8, Device::Cpu))).is_err());
    }
}

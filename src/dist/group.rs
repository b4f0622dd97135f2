//! The job's default process group and DDP's gradient averaging, as handles on the C++ objects
//! of src/runtime/native/dist.cpp (c10d's ProcessGroup with a Gloo backend, and its Reducer).

use std::time::Duration;

use anyhow::{bail, Context, Result};
use tch::{nn, Device, Kind, Tensor};

use super::Launch;
use crate::nn::TextClassifierConfig;

/// The trainable tensors of a [`crate::nn::TextClassifier`] built with `config` in `vs`, in
/// PyTorch's `module.parameters()` order (`embedding.weight`, the recurrent layer's, `fc.weight`,
/// `fc.bias`): the order DDP lays its buckets out in, so that [`Ddp::new`] gets it too.
pub fn model_parameters(vs: &nn::VarStore, config: &TextClassifierConfig) -> Result<Vec<Tensor>> {
    let variables = vs.variables();
    config
        .parameter_shapes()
        .into_iter()
        .map(|(name, _)| {
            variables.get(&name).map(Tensor::shallow_clone).with_context(|| format!("no parameter {name}"))
        })
        .collect()
}

/// This process's membership of the job: `torch.distributed`'s default process group, built as
/// `init_process_group("gloo", init_method="env://")` builds it, so that Python ranks can join
/// the same job. Collectives block until every rank has called them; each is bounded by the
/// timeout given at [`Group::join`] (a rank that died is noticed at once: its connection
/// closes). Dropping it leaves the group.
pub struct Group {
    raw: native::RawGroup,
    rank: usize,
    world_size: usize,
}

impl Group {
    /// Joins the job `launch` describes: connects to (or, as rank 0 without torchrun's agent,
    /// hosts) its store at MASTER_ADDR:MASTER_PORT and meets the other ranks. Fails with the
    /// store's or Gloo's reason when a rank is not there within `timeout`.
    pub fn join(launch: &Launch, timeout: Duration) -> Result<Self> {
        let raw = native::RawGroup::join(launch, timeout)?;
        Ok(Self { raw, rank: launch.rank, world_size: launch.world_size })
    }

    /// This process's rank.
    pub fn rank(&self) -> usize {
        self.rank
    }

    /// The number of ranks.
    pub fn world_size(&self) -> usize {
        self.world_size
    }

    /// Sums `tensor` (a CPU tensor, any shape) over the ranks, in place (`dist.all_reduce`).
    pub fn all_reduce_sum(&self, tensor: &Tensor) -> Result<()> {
        self.raw.all_reduce_sum(tensor)
    }

    /// Overwrites every rank's `tensors` with rank `root`'s (`_broadcast_coalesced`, in 250 MiB
    /// buffers). Shapes and kinds must agree across the ranks.
    pub fn broadcast(&self, tensors: &[Tensor], root: usize) -> Result<()> {
        self.raw.broadcast(tensors, root)
    }

    /// Waits until every rank has reached this call (`dist.barrier`).
    pub fn barrier(&self) -> Result<()> {
        self.raw.barrier()
    }

    /// Every rank's `tensor` (an integer or float32 tensor of the same shape and kind on every
    /// rank, on the CPU), indexed by rank, exactly: one all-reduce of a zero-padded stack (of
    /// float32 bits as integers).
    pub fn gather(&self, tensor: &Tensor) -> Result<Vec<Tensor>> {
        if tensor.kind() == Kind::Float {
            let bits = self.gather(&tensor.f_contiguous()?.f_view_dtype(Kind::Int)?)?;
            return bits.iter().map(|t| Ok(t.f_view_dtype(Kind::Float)?)).collect();
        }
        let kind = tensor.kind();
        if !matches!(kind, Kind::Uint8 | Kind::Int8 | Kind::Int16 | Kind::Int | Kind::Int64) {
            bail!("only integer and float32 tensors are gathered exactly, not {kind:?}");
        }
        let stack =
            Tensor::f_zeros([self.world_size as i64, tensor.numel() as i64], (Kind::Int64, Device::Cpu))?;
        stack.f_get(self.rank as i64)?.f_copy_(&tensor.f_flatten(0, -1)?.f_to_kind(Kind::Int64)?)?;
        self.all_reduce_sum(&stack)?;
        (0..self.world_size as i64)
            .map(|r| Ok(stack.f_get(r)?.f_to_kind(kind)?.f_reshape(tensor.size())?))
            .collect()
    }

    /// Ends with an error on every rank unless every rank passed the same `fingerprint` (of its
    /// configuration and data); the error names the ranks that differ from rank 0 and `what`.
    pub fn check_same(&self, fingerprint: &[u8], what: &str) -> Result<()> {
        let bytes: Vec<i64> = fingerprint.iter().map(|&b| i64::from(b)).collect();
        let theirs = Tensor::from_slice(&bytes);
        self.broadcast(&[theirs.shallow_clone()], 0)?;
        let differs = Vec::<i64>::try_from(&theirs)? != bytes;
        let mut flags = vec![0i64; self.world_size];
        flags[self.rank] = i64::from(differs);
        let flags_tensor = Tensor::from_slice(&flags);
        self.all_reduce_sum(&flags_tensor)?;
        let ranks: Vec<String> = Vec::<i64>::try_from(&flags_tensor)?
            .iter()
            .enumerate()
            .filter(|(_, &f)| f != 0)
            .map(|(r, _)| r.to_string())
            .collect();
        if !ranks.is_empty() {
            bail!(
                "rank {} started with other {what} than rank 0: start every rank with the same",
                ranks.join(", ")
            );
        }
        Ok(())
    }
}

/// `DistributedDataParallel`'s gradient averaging for one model's parameters: c10d's Reducer,
/// which hooks each parameter's gradient accumulation, and as gradients become ready copies
/// them, divided by the world size, into buckets that it sums across the ranks; after
/// `backward`, every rank's `.grad` holds the same average, with DDP's bits (its bucket layout,
/// rebuilt in gradient order after the first step, included).
///
/// Around each training forward: [`Ddp::before_forward`], the forward, [`Ddp::after_forward`],
/// then the loss's `backward`. Forwards under `no_grad` (evaluation) need neither.
pub struct Ddp {
    raw: native::RawDdp,
}

impl Ddp {
    /// Wraps `params` (the model's trainable variables, in its declaration order, as
    /// `module.parameters()` lists them) as `DistributedDataParallel(module)` does: checks that
    /// every rank has the same shapes, overwrites them with rank 0's values, and lays out the
    /// buckets (25 MiB, the first 1 MiB; `bucket_cap_bytes` sets both, as `bucket_cap_mb` does).
    pub fn new(group: &Group, params: &[Tensor], bucket_cap_bytes: Option<i64>) -> Result<Self> {
        Ok(Self { raw: native::RawDdp::new(&group.raw, params, bucket_cap_bytes.unwrap_or(0))? })
    }

    /// Before a training forward (DDP's `_pre_forward`): after the first step, rebuilds the
    /// buckets in the order the gradients arrived (rank 0's order, broadcast).
    pub fn before_forward(&self) -> Result<()> {
        self.raw.before_forward()
    }

    /// After a training forward (DDP's `_post_forward`): the next `backward` averages.
    pub fn after_forward(&self) -> Result<()> {
        self.raw.after_forward()
    }
}

#[cfg(lstm_tch_dist)]
mod native {
    use std::{
        ffi::{c_char, c_int, c_void, CString},
        ptr,
        time::Duration,
    };

    use anyhow::{bail, Context, Result};
    use tch::Tensor;
    use torch_sys::C_tensor;

    use crate::{dist::Launch, runtime::ffi::take_c_error};

    extern "C" {
        fn lstm_tch_dist_join(
            addr: *const c_char,
            port: c_int,
            rank: c_int,
            world_size: c_int,
            agent_store: c_int,
            restart_count: c_int,
            timeout_ms: i64,
            out: *mut *mut c_void,
        ) -> *mut c_char;
        fn lstm_tch_dist_free(group: *mut c_void);
        fn lstm_tch_dist_all_reduce_sum(group: *mut c_void, tensor: *mut C_tensor) -> *mut c_char;
        fn lstm_tch_dist_broadcast(
            group: *mut c_void,
            tensors: *mut *mut C_tensor,
            count: c_int,
            root: c_int,
        ) -> *mut c_char;
        fn lstm_tch_dist_barrier(group: *mut c_void) -> *mut c_char;
        fn lstm_tch_ddp_new(
            group: *mut c_void,
            params: *mut *mut C_tensor,
            count: c_int,
            bucket_cap_bytes: i64,
            out: *mut *mut c_void,
        ) -> *mut c_char;
        fn lstm_tch_ddp_free(ddp: *mut c_void);
        fn lstm_tch_ddp_before_forward(ddp: *mut c_void) -> *mut c_char;
        fn lstm_tch_ddp_after_forward(ddp: *mut c_void) -> *mut c_char;
    }

    /// `Err` with `what` and the C++ side's message, if it gave one.
    fn check(err: *mut c_char, what: impl FnOnce() -> String) -> Result<()> {
        match take_c_error(err) {
            Some(message) => bail!("{}: {message}", what()),
            None => Ok(()),
        }
    }

    fn handles(tensors: &[Tensor]) -> Vec<*mut C_tensor> {
        tensors.iter().map(|t| t.as_ptr() as *mut C_tensor).collect()
    }

    pub(super) struct RawGroup(*mut c_void);

    impl RawGroup {
        pub fn join(launch: &Launch, timeout: Duration) -> Result<Self> {
            let addr = CString::new(launch.master_addr.as_str()).context("MASTER_ADDR holds a NUL byte")?;
            let timeout_ms = i64::try_from(timeout.as_millis()).unwrap_or(i64::MAX);
            let mut out = ptr::null_mut();
            // SAFETY: plain values and an out-pointer that receives a new group on success.
            let err = unsafe {
                lstm_tch_dist_join(
                    addr.as_ptr(),
                    c_int::from(launch.master_port),
                    launch.rank as c_int,
                    launch.world_size as c_int,
                    c_int::from(launch.agent_store),
                    c_int::try_from(launch.restart_count).unwrap_or(c_int::MAX),
                    timeout_ms,
                    &mut out,
                )
            };
            check(err, || {
                format!(
                    "rank {} of {} cannot join the job at {}:{}",
                    launch.rank, launch.world_size, launch.master_addr, launch.master_port
                )
            })?;
            Ok(Self(out))
        }

        pub fn all_reduce_sum(&self, tensor: &Tensor) -> Result<()> {
            // SAFETY: a live group and a tensor handle borrowed for the call.
            let err = unsafe { lstm_tch_dist_all_reduce_sum(self.0, tensor.as_ptr() as *mut C_tensor) };
            check(err, || "all-reduce failed".to_owned())
        }

        pub fn broadcast(&self, tensors: &[Tensor], root: usize) -> Result<()> {
            let mut raw = handles(tensors);
            // SAFETY: a live group and tensor handles borrowed for the call.
            let err = unsafe {
                lstm_tch_dist_broadcast(self.0, raw.as_mut_ptr(), raw.len() as c_int, root as c_int)
            };
            check(err, || format!("broadcast from rank {root} failed"))
        }

        pub fn barrier(&self) -> Result<()> {
            // SAFETY: a live group.
            check(unsafe { lstm_tch_dist_barrier(self.0) }, || "barrier failed".to_owned())
        }
    }

    impl Drop for RawGroup {
        fn drop(&mut self) {
            // SAFETY: created by lstm_tch_dist_join, freed once.
            unsafe { lstm_tch_dist_free(self.0) }
        }
    }

    pub(super) struct RawDdp(*mut c_void);

    impl RawDdp {
        pub fn new(group: &RawGroup, params: &[Tensor], bucket_cap_bytes: i64) -> Result<Self> {
            let mut raw = handles(params);
            let mut out = ptr::null_mut();
            // SAFETY: a live group, tensor handles the Reducer copies (sharing their storage),
            // and an out-pointer that receives a new Reducer on success.
            let err = unsafe {
                lstm_tch_ddp_new(group.0, raw.as_mut_ptr(), raw.len() as c_int, bucket_cap_bytes, &mut out)
            };
            check(err, || "cannot set up data-parallel training".to_owned())?;
            Ok(Self(out))
        }

        pub fn before_forward(&self) -> Result<()> {
            // SAFETY: a live Reducer.
            check(unsafe { lstm_tch_ddp_before_forward(self.0) }, || "data-parallel step failed".to_owned())
        }

        pub fn after_forward(&self) -> Result<()> {
            // SAFETY: a live Reducer.
            check(unsafe { lstm_tch_ddp_after_forward(self.0) }, || "data-parallel step failed".to_owned())
        }
    }

    impl Drop for RawDdp {
        fn drop(&mut self) {
            // SAFETY: created by lstm_tch_ddp_new, freed once.
            unsafe { lstm_tch_ddp_free(self.0) }
        }
    }
}

/// Without src/runtime/native/dist.cpp (no Gloo headers at build time): every call says so.
#[cfg(not(lstm_tch_dist))]
mod native {
    use std::time::Duration;

    use anyhow::{bail, Result};
    use tch::Tensor;

    use crate::dist::Launch;

    const MISSING: &str = "this lstm-tch was built without distributed training: install Gloo's headers \
                           (Debian: apt-get install libgloo-dev, or scripts/setup.sh) and rebuild";

    pub(super) struct RawGroup;

    impl RawGroup {
        pub fn join(_: &Launch, _: Duration) -> Result<Self> {
            bail!(MISSING)
        }
        pub fn all_reduce_sum(&self, _: &Tensor) -> Result<()> {
            bail!(MISSING)
        }
        pub fn broadcast(&self, _: &[Tensor], _: usize) -> Result<()> {
            bail!(MISSING)
        }
        pub fn barrier(&self) -> Result<()> {
            bail!(MISSING)
        }
    }

    pub(super) struct RawDdp;

    impl RawDdp {
        pub fn new(_: &RawGroup, _: &[Tensor], _: i64) -> Result<Self> {
            bail!(MISSING)
        }
        pub fn before_forward(&self) -> Result<()> {
            bail!(MISSING)
        }
        pub fn after_forward(&self) -> Result<()> {
            bail!(MISSING)
        }
    }
}

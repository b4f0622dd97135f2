//! One rank of a data-parallel training run: its group, DDP over the model's parameters, and
//! what the ranks must agree on between two steps.

use anyhow::Result;
use tch::Tensor;

use super::{shard_batches, Ddp, Group};
use crate::data::Encoded;

/// This process's part in a data-parallel run (`DistributedDataParallel` with a
/// `DistributedSampler`): it trains on its shard of every epoch, its gradients averaged with the
/// other ranks' after each backward, so every rank holds the same weights after every step.
pub struct Replica {
    group: Group,
    ddp: Ddp,
    seed: u64,
}

impl Replica {
    /// Wraps the model's `params` (in `module.parameters()` order: [`super::model_parameters`])
    /// for training in `group`: checks every rank has the same shapes and gives them rank 0's
    /// values ([`Ddp::new`]). `seed` seeds the sampler, as `DistributedSampler(seed=...)`.
    pub fn new(group: Group, params: &[Tensor], seed: u64) -> Result<Self> {
        let ddp = Ddp::new(&group, params, None)?;
        Ok(Self { group, ddp, seed })
    }

    /// This process's rank.
    pub fn rank(&self) -> usize {
        self.group.rank()
    }

    /// The number of ranks.
    pub fn world_size(&self) -> usize {
        self.group.world_size()
    }

    /// The batches this rank trains on in `epoch` (from 0): [`shard_batches`].
    pub fn epoch_batches(
        &self,
        data: &Encoded,
        batch_size: usize,
        bucket: bool,
        epoch: usize,
    ) -> Result<Vec<Vec<usize>>> {
        shard_batches(data, batch_size, bucket, self.world_size(), self.rank(), self.seed, epoch)
    }

    /// How many batches every rank takes per epoch of `len` texts.
    pub fn num_batches(&self, len: usize, batch_size: usize) -> usize {
        len.div_ceil(self.world_size()).div_ceil(batch_size.max(1))
    }

    /// Before a training forward ([`Ddp::before_forward`]).
    pub fn before_forward(&self) -> Result<()> {
        self.ddp.before_forward()
    }

    /// After a training forward ([`Ddp::after_forward`]): the next backward averages.
    pub fn after_forward(&self) -> Result<()> {
        self.ddp.after_forward()
    }

    /// After a step: every rank's loss (indexed by rank) and whether any rank asks to stop, so
    /// that all stop after the same step. One all-reduce of world size + 1 numbers.
    pub fn agree(&self, loss: f32, stop: bool) -> Result<(Vec<f32>, bool)> {
        let world_size = self.world_size();
        let mut slots = vec![0f64; world_size + 1];
        slots[self.rank()] = f64::from(loss);
        slots[world_size] = f64::from(u8::from(stop));
        let sum = Tensor::from_slice(&slots);
        self.group.all_reduce_sum(&sum)?;
        let summed = Vec::<f64>::try_from(&sum)?;
        // Every other slot held zero: each sum is the one rank's value, exactly.
        let losses = summed[..world_size].iter().map(|&l| l as f32).collect();
        Ok((losses, summed[world_size] > 0.0))
    }

    /// Every rank's `tensor`, indexed by rank ([`Group::gather`]).
    pub fn gather(&self, tensor: &Tensor) -> Result<Vec<Tensor>> {
        self.group.gather(tensor)
    }
}

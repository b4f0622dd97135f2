//! Which texts a rank trains on each epoch: `torch.utils.data.DistributedSampler`'s indices.

use anyhow::{ensure, Result};

/// The indices of `len` items that rank `rank` of `world_size` takes in `epoch`, as
/// `DistributedSampler(dataset, world_size, rank, shuffle=True, seed=seed, drop_last=False)`
/// gives them after `set_epoch(epoch)`: `torch.randperm(len)` from a generator seeded with
/// seed + epoch, padded to a multiple of the world size with its first indices (repeated as
/// often as needed), then every `world_size`-th from `rank`. Every rank gets ⌈len / world_size⌉.
pub fn shard(len: usize, world_size: usize, rank: usize, seed: u64, epoch: usize) -> Result<Vec<usize>> {
    ensure!(world_size >= 1 && rank < world_size, "rank {rank} is out of range for world size {world_size}");
    ensure!(len >= 1, "nothing to shard: the dataset is empty");
    let order = permutation(len, seed.wrapping_add(epoch as u64))?;
    let total = len.div_ceil(world_size) * world_size;
    Ok((rank..total).step_by(world_size).map(|i| order[i % len]).collect())
}

/// `torch.randperm(len, generator=g)` with `g` a fresh CPU generator seeded with `seed`.
fn permutation(len: usize, seed: u64) -> Result<Vec<usize>> {
    let order = crate::runtime::rng::randperm_seeded(len as i64, seed)?;
    Ok(Vec::<i64>::try_from(&order)?.into_iter().map(|i| i as usize).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_rank_gets_its_stride_of_one_padded_permutation() {
        if !cfg!(lstm_tch_native) {
            return;
        }
        let order = permutation(10, 7).unwrap();
        let mut sorted = order.clone();
        sorted.sort_unstable();
        assert_eq!(sorted, (0..10).collect::<Vec<_>>());
        // 10 items over 4 ranks: 12 places, the last two repeat the first two.
        let padded: Vec<usize> = order.iter().chain(&order[..2]).copied().collect();
        for rank in 0..4 {
            let expected: Vec<usize> = padded.iter().skip(rank).step_by(4).copied().collect();
            assert_eq!(shard(10, 4, rank, 5, 2).unwrap(), expected, "rank {rank}");
        }
        // More ranks than items: the permutation repeats.
        assert_eq!(shard(2, 5, 4, 0, 0).unwrap().len(), 1);
        assert!(shard(10, 2, 2, 0, 0).is_err());
        assert_ne!(shard(10, 1, 0, 0, 0).unwrap(), shard(10, 1, 0, 0, 1).unwrap(), "epochs reshuffle");
    }
}

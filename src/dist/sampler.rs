//! Which texts a rank trains on each epoch: `torch.utils.data.DistributedSampler`'s indices, and
//! the batches made of them.

use anyhow::{ensure, Result};

use crate::{data::Encoded, runtime::checks};

/// The indices of `len` items that rank `rank` of `world_size` takes in `epoch`, as
/// `DistributedSampler(dataset, world_size, rank, shuffle=True, seed=seed, drop_last=False)`
/// gives them after `set_epoch(epoch)`: `torch.randperm(len)` from a generator seeded with
/// seed + epoch, padded to a multiple of the world size with its first indices (repeated as
/// often as needed), then every `world_size`-th from `rank`. Every rank gets ⌈len / world_size⌉.
pub fn shard(len: usize, world_size: usize, rank: usize, seed: u64, epoch: usize) -> Result<Vec<usize>> {
    Ok(draw(len, world_size, rank, seed, epoch, None)?.0)
}

/// The batches rank `rank` of `world_size` trains on in `epoch` (counted from 0): its
/// [`shard`] of `data`, in batches of `batch_size`. Without `bucket`, the shard cut in order
/// (what a `DataLoader(batch_size, sampler=DistributedSampler(...))` yields); with it, the
/// shard bucketed as a single process buckets its epoch ([`Encoded::bucketed_batches`]), the
/// batches ordered by `torch.randperm(batches)` drawn next from the sampler's generator. Every
/// rank gets ⌈⌈len / world_size⌉ / batch_size⌉ batches, so the ranks step together.
pub fn shard_batches(
    data: &Encoded,
    batch_size: usize,
    bucket: bool,
    world_size: usize,
    rank: usize,
    seed: u64,
    epoch: usize,
) -> Result<Vec<Vec<usize>>> {
    checks::batch_size(batch_size)?;
    let num_batches = data.len().div_ceil(world_size.max(1)).div_ceil(batch_size);
    let (mine, batch_order) = draw(data.len(), world_size, rank, seed, epoch, bucket.then_some(num_batches))?;
    match batch_order {
        Some(batch_order) => data.bucketed_batches(&mine, batch_size, &batch_order),
        None => Ok(mine.chunks(batch_size).map(<[usize]>::to_vec).collect()),
    }
}

/// Rank `rank`'s stride of the epoch's padded permutation of `len`, and, with `then`, a
/// permutation of `then` drawn next from the same generator.
fn draw(
    len: usize,
    world_size: usize,
    rank: usize,
    seed: u64,
    epoch: usize,
    then: Option<usize>,
) -> Result<(Vec<usize>, Option<Vec<i64>>)> {
    ensure!(world_size >= 1 && rank < world_size, "rank {rank} is out of range for world size {world_size}");
    ensure!(len >= 1, "nothing to shard: the dataset is empty");
    let ns: Vec<i64> = std::iter::once(len).chain(then).map(|n| n as i64).collect();
    let mut perms = crate::runtime::rng::randperms_seeded(&ns, seed.wrapping_add(epoch as u64))?.into_iter();
    let order: Vec<i64> = perms.next().map(|p| Vec::<i64>::try_from(&p)).transpose()?.unwrap_or_default();
    let then = perms.next().map(|p| Vec::<i64>::try_from(&p)).transpose()?;
    let total = len.div_ceil(world_size) * world_size;
    let mine = (rank..total).step_by(world_size).map(|i| order[i % len] as usize).collect();
    Ok((mine, then))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_rank_gets_its_stride_of_one_padded_permutation() {
        if !cfg!(lstm_tch_native) {
            return;
        }
        let order = shard(10, 1, 0, 7, 0).unwrap();
        let mut sorted = order.clone();
        sorted.sort_unstable();
        assert_eq!(sorted, (0..10).collect::<Vec<_>>());
        // 10 items over 4 ranks: 12 places, the last two repeat the first two.
        let order = shard(10, 1, 0, 5, 2).unwrap();
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

    #[test]
    fn bucketed_shards_cover_the_shard_in_batches_of_similar_length() {
        if !cfg!(lstm_tch_native) {
            return;
        }
        let ids: Vec<Vec<i64>> = (0..23).map(|i| vec![2; 1 + (i * 7) % 11]).collect();
        let data = Encoded::from_ids(&ids, vec![0; ids.len()]).unwrap();
        for bucket in [false, true] {
            for rank in 0..3 {
                let batches = shard_batches(&data, 4, bucket, 3, rank, 9, 1).unwrap();
                assert_eq!(batches.len(), 2, "⌈⌈23 / 3⌉ / 4⌉");
                let mut texts: Vec<usize> = batches.concat();
                let mut expected = shard(23, 3, rank, 9, 1).unwrap();
                if !bucket {
                    assert_eq!(texts, expected, "plain batches keep the sampler's order");
                }
                texts.sort_unstable();
                expected.sort_unstable();
                assert_eq!(texts, expected, "rank {rank}, bucket {bucket}");
            }
        }
    }
}

//! Training past one machine: this process as a rank of a `torch.distributed` job, on the c10d
//! engine inside the linked libtorch (src/runtime/native/dist.cpp), with no collective of our
//! own.
//!
//! - [`Launch`]: the rank, world size and rendezvous that `torchrun` (or the user) puts in the
//!   environment, read as `init_process_group(init_method="env://")` reads them;
//! - [`Group`]: the default process group, built as Python builds it (a TCPStore, the same store
//!   key prefixes, Gloo), so Rust and Python ranks can share one job;
//! - [`Ddp`]: `DistributedDataParallel`'s gradient averaging, c10d's own `Reducer` driven as
//!   Python's DDP drives it, so the averaged gradients have DDP's bits;
//! - [`shard`], [`shard_batches`]: the indices `DistributedSampler` gives a rank each epoch,
//!   and its batches;
//! - [`Replica`]: one rank of a data-parallel training run, as `lstm-tch train` runs it under
//!   `torchrun`;
//! - [`scoring`]: `predict --file` and `eval` split across the ranks, with one process's bits.

mod group;
mod launch;
mod replica;
mod sampler;
pub mod scoring;

pub use group::{model_parameters, Ddp, Group};
pub use launch::Launch;
pub use replica::Replica;
pub use sampler::{shard, shard_batches};

//! The training state a checkpoint directory holds beside its model: `training/state.json`
//! (the run's configuration, where it stands, its reports, the data's hashes) and
//! `training/state.safetensors` (the current weights, Adam's moments, the generators' states).
//! Written inside every save of the directory, so model and state always belong together.

use std::{
    collections::BTreeMap,
    fs,
    path::{Path, PathBuf},
};

use anyhow::{bail, ensure, Context, Result};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use tch::{nn, Device, Tensor};

use super::TrainConfig;
use crate::{
    checkpoint::{cpu_variables, write_synced, TRAINING_STATE_DIR},
    data::Example,
    infer::metrics::Metrics,
    runtime::device::DeviceSpec,
    train::optim::AdamState,
    train::{Position, Resume},
};

/// The training state's description of the run, in the checkpoint's `TRAINING_STATE_DIR`.
pub const STATE_FILE: &str = "state.json";
/// Its tensors: `model.NAME` (the current weights), `adam.exp_avg.I` / `adam.exp_avg_sq.I`,
/// `rng.epoch` and `rng.DEVICE` (generator states; in a data-parallel run, rank R's are
/// `rng.rankR.DEVICE` for R ≥ 1).
pub const TENSORS_FILE: &str = "state.safetensors";
const FORMAT_NAME: &str = "lstm-tch training state";
const FORMAT_VERSION: u32 = 1;

/// The SHA-256 of one split's examples (texts and labels, in order): a resumed run refuses
/// data that changed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DataHash {
    /// "train", "dev" or "test".
    pub split: String,
    /// Examples in the split.
    pub examples: usize,
    /// Hex digest.
    pub sha256: String,
}

impl DataHash {
    /// The hash of `examples`, the split `split`.
    pub fn new(split: &str, examples: &[Example]) -> Self {
        let mut hasher = Sha256::new();
        for example in examples {
            for field in [&example.text, &example.label] {
                hasher.update((field.len() as u64).to_le_bytes());
                hasher.update(field.as_bytes());
            }
        }
        let sha256 = hasher.finalize().iter().map(|b| format!("{b:02x}")).collect();
        Self { split: split.to_owned(), examples: examples.len(), sha256 }
    }
}

/// `training/state.json`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct TrainingState {
    /// Always "lstm-tch training state".
    pub format: String,
    /// 1.
    pub format_version: u32,
    /// The run's configuration, as given (paths relative to `workdir`).
    pub config: TrainConfig,
    /// The working directory the run was started in.
    pub workdir: PathBuf,
    /// The hashes of the data the run trains and evaluates on.
    pub data: Vec<DataHash>,
    /// Where the run stands.
    pub position: Position,
    /// Adam's per-parameter step counts.
    pub adam_steps: Vec<u64>,
    /// Whether the directory's `model.safetensors` is this run's best epoch (rather than the
    /// weights of a run that has not finished an epoch yet).
    pub best_saved: bool,
    /// Whether the run ended (then there are no tensors to resume from).
    pub finished: bool,
    /// The test metrics of the best epoch, once finished.
    pub test: Option<Metrics>,
    /// The devices whose generator states are saved (`cpu`, `cuda:0`).
    pub generators: Vec<DeviceSpec>,
    /// The number of ranks of the run (1: one process); a resumed run needs as many.
    #[serde(default = "one")]
    pub world_size: usize,
}

fn one() -> usize {
    1
}

impl TrainingState {
    /// The state of a run at `position`.
    pub fn new(
        config: &TrainConfig,
        workdir: &Path,
        data: &[DataHash],
        position: &Position,
        adam_steps: Vec<u64>,
        best_saved: bool,
    ) -> Self {
        Self {
            format: FORMAT_NAME.to_owned(),
            format_version: FORMAT_VERSION,
            config: config.clone(),
            workdir: workdir.to_owned(),
            data: data.to_vec(),
            position: position.clone(),
            adam_steps,
            best_saved,
            finished: false,
            test: None,
            generators: Vec::new(),
            world_size: 1,
        }
    }
}

/// What a save writes into `training/`: the state, and the tensors a resumed run needs (none
/// once the run has finished).
pub struct StateFiles<'a> {
    /// `state.json`.
    pub state: TrainingState,
    /// `state.safetensors`.
    pub tensors: Option<StateTensors<'a>>,
}

/// The tensors of a training state.
pub struct StateTensors<'a> {
    /// The model's current weights.
    pub vs: &'a nn::VarStore,
    /// Adam's state.
    pub adam: AdamState,
    /// The generator state the current epoch's batch order was drawn from (mid-epoch).
    pub epoch_rng: Option<&'a Tensor>,
    /// The default generators' states now, on every rank (indexed by rank; one in a
    /// single-process run), each for the same devices.
    pub generators: Vec<Vec<(Device, Tensor)>>,
}

impl StateFiles<'_> {
    /// Writes `training/` into the checkpoint directory being built at `dir`, durably.
    pub fn write(mut self, dir: &Path) -> Result<()> {
        let state_dir = dir.join(TRAINING_STATE_DIR);
        fs::create_dir_all(&state_dir)?;
        if let Some(StateTensors { vs, adam, epoch_rng, generators }) = self.tensors {
            let mut named: Vec<(String, Tensor)> =
                cpu_variables(vs)?.into_iter().map(|(name, t)| (format!("model.{name}"), t)).collect();
            for (i, (m, v)) in adam.exp_avg.into_iter().zip(adam.exp_avg_sq).enumerate() {
                named.extend(m.map(|m| (format!("adam.exp_avg.{i}"), m)));
                named.extend(v.map(|v| (format!("adam.exp_avg_sq.{i}"), v)));
            }
            if let Some(epoch_rng) = epoch_rng {
                named.push(("rng.epoch".to_owned(), epoch_rng.shallow_clone()));
            }
            self.state.world_size = generators.len().max(1);
            for (rank, states) in generators.into_iter().enumerate() {
                for (device, state) in states {
                    // Only the CPU's and CUDA devices' generators are saved (crate::rng).
                    let spec = if let Device::Cuda(index) = device {
                        DeviceSpec::Cuda(index)
                    } else {
                        DeviceSpec::Cpu
                    };
                    named.push((generator_name(rank, &spec), state));
                    if rank == 0 {
                        self.state.generators.push(spec);
                    }
                }
            }
            let path = state_dir.join(TENSORS_FILE);
            Tensor::write_safetensors(&named, &path)?;
            fs::File::open(&path)?.sync_all()?;
        }
        write_synced(
            &state_dir.join(STATE_FILE),
            (serde_json::to_string_pretty(&self.state)? + "\n").as_bytes(),
        )?;
        fs::File::open(&state_dir)?.sync_all()?;
        Ok(())
    }
}

/// Reads `DIR/training/state.json`.
pub fn load_state(dir: &Path) -> Result<TrainingState> {
    let path = dir.join(TRAINING_STATE_DIR).join(STATE_FILE);
    ensure!(
        path.is_file(),
        "{} holds no training state to resume (it is written by `lstm-tch train --out {}`)",
        dir.display(),
        dir.display()
    );
    let text = fs::read_to_string(&path).with_context(|| format!("cannot read {}", path.display()))?;
    let state: TrainingState =
        serde_json::from_str(&text).with_context(|| format!("{} is corrupted", path.display()))?;
    ensure!(
        state.format == FORMAT_NAME && state.format_version == FORMAT_VERSION,
        "{}: not a training state this lstm-tch reads (format {:?} version {})",
        path.display(),
        state.format,
        state.format_version
    );
    Ok(state)
}

/// The name of rank `rank`'s generator state for `device` in `state.safetensors`.
fn generator_name(rank: usize, device: &DeviceSpec) -> String {
    match rank {
        0 => format!("rng.{device}"),
        _ => format!("rng.rank{rank}.{device}"),
    }
}

/// Reads the tensors of `DIR/training/` into the current weights of `vs` and a [`Resume`] for
/// rank `rank` (0 in a single-process run).
pub fn load_resume(dir: &Path, state: &TrainingState, vs: &nn::VarStore, rank: usize) -> Result<Resume> {
    let path = dir.join(TRAINING_STATE_DIR).join(TENSORS_FILE);
    let mut tensors: BTreeMap<String, Tensor> = Tensor::read_safetensors(&path)
        .with_context(|| format!("cannot read {}", path.display()))?
        .into_iter()
        .collect();
    let corrupted = |what: String| format!("{} is corrupted: {what}", path.display());
    tch::no_grad(|| -> Result<()> {
        for (name, mut var) in vs.variables() {
            let saved = tensors
                .remove(&format!("model.{name}"))
                .with_context(|| corrupted(format!("{name} missing")))?;
            ensure!(saved.size() == var.size(), corrupted(format!("{name} has the wrong shape")));
            var.f_copy_(&saved)?;
        }
        Ok(())
    })?;
    let n = state.adam_steps.len();
    let mut take = |name: String| tensors.remove(&name);
    let exp_avg: Vec<Option<Tensor>> = (0..n).map(|i| take(format!("adam.exp_avg.{i}"))).collect();
    let exp_avg_sq: Vec<Option<Tensor>> = (0..n).map(|i| take(format!("adam.exp_avg_sq.{i}"))).collect();
    let epoch_rng = take("rng.epoch".to_owned());
    let mut generators = Vec::new();
    for r in 0..state.world_size {
        for spec in &state.generators {
            let name = generator_name(r, spec);
            let saved = take(name.clone()).with_context(|| corrupted(format!("{name} missing")))?;
            if r == rank {
                generators.push((spec.resolve()?, saved));
            }
        }
    }
    if let Some(extra) = tensors.keys().next() {
        bail!(corrupted(format!("unexpected tensor {extra}")));
    }
    Ok(Resume {
        position: state.position.clone(),
        adam: AdamState { steps: state.adam_steps.clone(), exp_avg, exp_avg_sq },
        epoch_rng,
        generators,
    })
}

//! The atomic save: at every instant a checkpoint path holds one complete checkpoint, the
//! previous one or the new one ([`save`]). The crash and full-disk tests inject their faults
//! between its steps ([`crate::runtime::fault`]).

use std::{
    collections::BTreeMap,
    fs,
    path::{Path, PathBuf},
};

use anyhow::{bail, ensure, Context, Result};
use tch::{nn, Device, Tensor};

use super::{CheckpointConfig, CONFIG_FILE, FORMAT_NAME, TRAINING_STATE_DIR, WEIGHTS_FILE};
use crate::runtime::fault;

/// Where a save takes the model's weights from.
#[derive(Debug, Clone, Copy)]
pub enum Weights<'a> {
    /// These variables (a [`TextClassifier`]'s).
    Vars(&'a nn::VarStore),
    /// The `model.safetensors` of the checkpoint being replaced, unchanged (hard-linked into
    /// the new directory, or copied where links are not supported).
    Kept,
}

/// Saves `vs` (a [`TextClassifier`]'s variables) and `config` as the checkpoint `dir`. At every
/// instant `dir` holds one complete checkpoint, the previous one or this one: the new directory
/// is written beside it (`.NAME.tmp-PID`), its files and itself `fsync`ed, then swapped with the
/// old one in a single atomic step (Linux's `renameat2(RENAME_EXCHANGE)`), the parent directory
/// `fsync`ed, and the old one, now at the scratch path, removed. Scratch directories that a
/// killed run left beside `dir` are removed first. Where the file system cannot exchange (or
/// off Linux), the old directory is renamed away and the new one in: two renames, with an
/// instant in between where `dir` is missing. A save that fails (a full disk, a read-only
/// directory) removes its scratch directory and leaves `dir` as it was.
pub fn save(dir: &Path, config: &CheckpointConfig, vs: &nn::VarStore) -> Result<()> {
    save_with(dir, config, Weights::Vars(vs), |_| Ok(()))
}

/// [`save`], with the weights from `weights`, and `extra` writing more into the new directory
/// (given its path) before it is synced and swapped in: a resumable run's training state. The
/// files `extra` writes must be durable when it returns ([`write_synced`]).
pub fn save_with(
    dir: &Path,
    config: &CheckpointConfig,
    weights: Weights<'_>,
    extra: impl FnOnce(&Path) -> Result<()>,
) -> Result<()> {
    let context = || format!("cannot save checkpoint {}", dir.display());
    if dir.exists() {
        ensure_replaceable(dir)?;
    }
    remove_leftovers(dir).with_context(context)?;
    let tmp = sibling(dir, "tmp")?;
    let saved = swap_in(dir, &tmp, config, weights, extra);
    if saved.is_err() && tmp.exists() {
        let _ = fs::remove_dir_all(&tmp); // best effort: the error below is what matters
    }
    saved.with_context(context)
}

/// Checks, before any work, that a checkpoint can be saved at `dir`: `dir` is absent, an empty
/// directory or a checkpoint ([`save`] replaces nothing else), and its parent directory (created
/// if missing, as the save would) takes a new directory.
pub fn check_target(dir: &Path) -> Result<()> {
    if dir.exists() {
        ensure_replaceable(dir)?;
    }
    let context = || format!("cannot save checkpoint {}", dir.display());
    let probe = sibling(dir, "probe").with_context(context)?;
    fs::create_dir_all(&probe).with_context(context)?;
    fs::remove_dir(&probe).with_context(context)
}

/// Checks that `dir`, which exists, may be replaced by a save: an empty directory, or one that
/// holds only a checkpoint's files with a `config.json` of this format. Anything else (some
/// project's folder with a `config.json` of its own, a file) is refused, never deleted.
fn ensure_replaceable(dir: &Path) -> Result<()> {
    let refuse = |why: &str| -> Result<()> {
        bail!("{} exists and is not a checkpoint ({why}); choose another output directory", dir.display())
    };
    if !dir.is_dir() {
        return refuse("not a directory");
    }
    let context = || format!("cannot read {}", dir.display());
    let mut entries = vec![];
    for entry in fs::read_dir(dir).with_context(context)? {
        entries.push(entry.with_context(context)?.file_name().to_string_lossy().into_owned());
    }
    if entries.is_empty() {
        return Ok(());
    }
    if let Some(other) =
        entries.iter().find(|e| ![CONFIG_FILE, WEIGHTS_FILE, TRAINING_STATE_DIR].contains(&e.as_str()))
    {
        return refuse(&format!("it holds {other}"));
    }
    let config = fs::read_to_string(dir.join(CONFIG_FILE)).unwrap_or_default();
    let format = serde_json::from_str::<serde_json::Value>(&config)
        .ok()
        .and_then(|v| v["format"].as_str().map(str::to_owned));
    if format.as_deref() != Some(FORMAT_NAME) {
        return refuse(&format!("its {CONFIG_FILE} is not an lstm-tch checkpoint's"));
    }
    Ok(())
}

/// Writes the new checkpoint at `tmp` and puts it at `dir` ([`save`]'s steps).
fn swap_in(
    dir: &Path,
    tmp: &Path,
    config: &CheckpointConfig,
    weights: Weights<'_>,
    extra: impl FnOnce(&Path) -> Result<()>,
) -> Result<()> {
    write_dir(tmp, dir, config, weights, extra)?;
    fault::save_step("written")?;
    if dir.exists() {
        if !exchange(tmp, dir)? {
            let old = sibling(dir, "old")?;
            fs::rename(dir, &old)?;
            if let Err(err) = fs::rename(tmp, dir) {
                fs::rename(&old, dir)?; // put the previous checkpoint back
                return Err(err.into());
            }
            fs::rename(&old, tmp)?;
        }
        fault::save_step("swapped")?;
        sync_dir(parent(dir))?;
        fs::remove_dir_all(tmp)?; // the previous checkpoint
    } else {
        fs::rename(tmp, dir)?;
        sync_dir(parent(dir))?;
    }
    fault::save_step("saved")?;
    Ok(())
}

/// Writes `bytes` to `path` and makes them durable (`fsync`).
pub fn write_synced(path: &Path, bytes: &[u8]) -> Result<()> {
    let mut file = fs::File::create(path)?;
    std::io::Write::write_all(&mut file, bytes)?;
    file.sync_all()?;
    Ok(())
}

/// `dir`'s parent directory (`.` for a bare name).
fn parent(dir: &Path) -> &Path {
    dir.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new("."))
}

/// `parent/.name.what-PID`: a scratch path on the same file system as `dir`.
fn sibling(dir: &Path, what: &str) -> Result<PathBuf> {
    let name = dir.file_name().with_context(|| format!("{} is not a directory name", dir.display()))?;
    Ok(parent(dir).join(format!(".{}.{what}-{}", name.to_string_lossy(), std::process::id())))
}

/// Removes the scratch directories (`.NAME.tmp-PID`, `.NAME.old-PID`) a killed save left.
fn remove_leftovers(dir: &Path) -> Result<()> {
    let Some(name) = dir.file_name().map(|n| n.to_string_lossy().into_owned()) else { return Ok(()) };
    let Ok(entries) = fs::read_dir(parent(dir)) else { return Ok(()) };
    let prefix = format!(".{name}.");
    for entry in entries.flatten() {
        let file_name = entry.file_name().to_string_lossy().into_owned();
        let Some(rest) = file_name.strip_prefix(&prefix) else { continue };
        let scratch = ["tmp-", "old-"].iter().any(|p| {
            rest.strip_prefix(p).is_some_and(|pid| !pid.is_empty() && pid.bytes().all(|b| b.is_ascii_digit()))
        });
        if scratch {
            fs::remove_dir_all(entry.path())?;
        }
    }
    Ok(())
}

/// Swaps the directories `a` and `b` atomically; `Ok(false)` where this system or file system
/// cannot.
#[cfg(target_os = "linux")]
fn exchange(a: &Path, b: &Path) -> Result<bool> {
    use std::{ffi::CString, os::unix::ffi::OsStrExt};
    let (a, b) = (CString::new(a.as_os_str().as_bytes())?, CString::new(b.as_os_str().as_bytes())?);
    // SAFETY: two valid NUL-terminated paths, relative to the working directory.
    let done = unsafe {
        libc::renameat2(libc::AT_FDCWD, a.as_ptr(), libc::AT_FDCWD, b.as_ptr(), libc::RENAME_EXCHANGE)
    };
    if done == 0 {
        return Ok(true);
    }
    let error = std::io::Error::last_os_error();
    match error.raw_os_error() {
        Some(libc::EINVAL | libc::ENOSYS | libc::ENOTSUP) => Ok(false),
        _ => Err(error.into()),
    }
}

#[cfg(not(target_os = "linux"))]
fn exchange(_: &Path, _: &Path) -> Result<bool> {
    Ok(false)
}

/// Makes a directory's entries (a rename into or inside it) durable.
fn sync_dir(dir: &Path) -> Result<()> {
    fs::File::open(dir)?.sync_all()?;
    Ok(())
}

/// Writes the checkpoint directory `tmp` (the one replacing `dir`) and makes it durable.
fn write_dir(
    tmp: &Path,
    dir: &Path,
    config: &CheckpointConfig,
    weights: Weights<'_>,
    extra: impl FnOnce(&Path) -> Result<()>,
) -> Result<()> {
    fs::create_dir_all(tmp)?;
    match weights {
        Weights::Vars(vs) => write_weights(vs, &tmp.join(WEIGHTS_FILE))?,
        Weights::Kept => {
            let (from, to) = (dir.join(WEIGHTS_FILE), tmp.join(WEIGHTS_FILE));
            ensure!(from.is_file(), "{} missing: no weights to keep", from.display());
            if fs::hard_link(&from, &to).is_err() {
                fs::copy(&from, &to)?;
            }
        }
    }
    fault::save_step("weights")?;
    fs::write(tmp.join(CONFIG_FILE), serde_json::to_string_pretty(config)? + "\n")?;
    for file in [WEIGHTS_FILE, CONFIG_FILE] {
        fs::File::open(tmp.join(file))?.sync_all()?;
    }
    extra(tmp)?;
    sync_dir(tmp)?;
    Ok(())
}

/// `vs`'s variables by name, in name order, as contiguous CPU tensors.
pub(crate) fn cpu_variables(vs: &nn::VarStore) -> Result<Vec<(String, Tensor)>> {
    let variables: BTreeMap<String, Tensor> = vs.variables().into_iter().collect();
    variables.into_iter().map(|(name, t)| Ok((name, t.f_to_device(Device::Cpu)?.f_contiguous()?))).collect()
}

/// Writes `vs`'s variables as safetensors, by name (what `load_state_dict` matches on).
fn write_weights(vs: &nn::VarStore, path: &Path) -> Result<()> {
    Tensor::write_safetensors(&cpu_variables(vs)?, path)?;
    Ok(())
}

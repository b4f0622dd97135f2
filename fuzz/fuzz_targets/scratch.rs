//! The checkpoint targets' scratch directory (not a target itself: included with `#[path]`).

use std::{
    path::{Path, PathBuf},
    sync::OnceLock,
};

/// This process's scratch checkpoint directory `lstm-tch-fuzz-NAME-PID` (in RAM where /dev/shm
/// exists), created once with `file` holding `bytes` (the format-1 fixture's other half).
pub fn checkpoint_dir(name: &str, file: &str, bytes: &[u8]) -> &'static PathBuf {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        tch::set_num_threads(1);
        let base = if Path::new("/dev/shm").is_dir() { "/dev/shm".into() } else { std::env::temp_dir() };
        let dir = base.join(format!("lstm-tch-fuzz-{name}-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join(file), bytes).unwrap();
        dir
    })
}

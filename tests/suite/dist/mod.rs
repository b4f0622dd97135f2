//! Training past one machine, on PyTorch's own distributed engine: the rank's place read from
//! torchrun's variables, `DistributedSampler`'s shards, and DDP's averaged gradients, from Rust
//! ranks, Python ranks and one of each in one `torchrun` job, compared bit for bit; then
//! `lstm-tch train` under torchrun against PyTorch DDP ([`train`]), and its failures and
//! restarts ([`faults`]).

#[cfg(feature = "fault-injection")]
mod faults;
mod scoring;
mod train;

use std::{
    path::{Path, PathBuf},
    process::Command,
};

use lstm_tch::dist::shard;

use crate::common::{example, python, root, tempdir, text};

/// `torchrun` from the project's Python environment.
fn torchrun() -> PathBuf {
    python().with_file_name("torchrun")
}

/// `torchrun --standalone --nproc-per-node N`, in the repository, each rank at one thread.
fn torchrun_command(nproc: usize) -> Command {
    let mut command = Command::new(torchrun());
    command
        .args(["--standalone", "--nproc-per-node", &nproc.to_string()])
        .current_dir(root())
        .env("OMP_NUM_THREADS", "1");
    command
}

#[test]
fn shards_are_distributed_samplers() {
    let cases = [(10usize, 4usize, 5u64, 2usize), (7, 2, 0, 0), (3, 5, 42, 1), (1000, 3, 9, 7)];
    let script = "import json, sys, torch\n\
                  from torch.utils.data.distributed import DistributedSampler\n\
                  out = []\n\
                  for n, w, seed, epoch in json.loads(sys.argv[1]):\n\
                  \x20   ranks = []\n\
                  \x20   for r in range(w):\n\
                  \x20       s = DistributedSampler(range(n), num_replicas=w, rank=r, shuffle=True, seed=seed)\n\
                  \x20       s.set_epoch(epoch)\n\
                  \x20       ranks.append(list(s))\n\
                  \x20   out.append(ranks)\n\
                  print(json.dumps(out))";
    let cases_json = serde_json::to_string(&cases).unwrap();
    let output = Command::new(python()).args(["-c", script, &cases_json]).output().unwrap();
    assert!(output.status.success(), "{}", text(&output).1);
    let expected: Vec<Vec<Vec<usize>>> = serde_json::from_slice(&output.stdout).unwrap();
    for ((n, w, seed, epoch), ranks) in cases.into_iter().zip(expected) {
        for (rank, indices) in ranks.into_iter().enumerate() {
            assert_eq!(shard(n, w, rank, seed, epoch).unwrap(), indices, "{n} items, rank {rank} of {w}");
        }
    }
}

/// Runs a two-rank `torchrun` job of `program args`, each rank writing into `out`; returns the
/// loss lines both ranks wrote (`rank{R}.txt`: stdout interleaves the ranks' lines).
fn torchrun_job(program: &Path, args: &[&str], out: &Path) -> Vec<String> {
    std::fs::create_dir_all(out).unwrap();
    let output = Command::new(torchrun())
        .args(["--standalone", "--nproc-per-node", "2", "--no-python"])
        .arg(program)
        .args(args)
        .arg(out)
        .current_dir(root())
        .env("OMP_NUM_THREADS", "1")
        .output()
        .unwrap();
    let (stdout, stderr) = text(&output);
    assert!(output.status.success(), "{} {args:?}: {stderr}", program.display());
    let mut lines: Vec<String> =
        stdout.lines().filter(|l| l.starts_with("rank ")).map(str::to_owned).collect();
    lines.sort();
    lines
}

#[test]
fn ddp_steps_match_pytorch_ddp_bit_for_bit_with_rust_and_mixed_ranks() {
    let dir = tempdir("dist-ddp");
    let rust = example("ddp");
    let script = root().join("scripts/ddp_steps.py");
    let script = script.to_str().unwrap();
    let python = python();
    // One rank of each: Python as local rank 0, Rust as rank 1.
    let mixed = dir.join("mixed.sh");
    std::fs::write(
        &mixed,
        format!(
            "#!/bin/sh\nif [ \"$LOCAL_RANK\" = 0 ]; then exec '{}' '{script}' \"$1\"; else exec '{}' \"$1\"; fi\n",
            python.display(),
            rust.display()
        ),
    )
    .unwrap();
    std::fs::set_permissions(&mixed, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();

    // Two Rust ranks, and a Python rank 0 (PyTorch's DDP computing its loss and parameters) with
    // a Rust rank 1; `train`'s parity tests (train.rs) run Python-only jobs.
    let jobs = [
        ("rust", torchrun_job(&rust, &[], &dir.join("rust"))),
        ("mixed", torchrun_job(&mixed, &[], &dir.join("mixed"))),
    ];
    // Every rank's loss at every step (each rank has its own batches) and every rank's final
    // parameters (the same on both ranks: gradients averaged) are the same bits in both, and
    // the same as the Python rank's.
    let (_, rust_losses) = &jobs[0];
    assert_eq!(rust_losses.len(), 6, "{rust_losses:?}");
    let params =
        |job: &str, rank: usize| std::fs::read(dir.join(job).join(format!("rank{rank}.bin"))).unwrap();
    let reference = params("mixed", 0);
    assert!(!reference.is_empty());
    for (job, losses) in &jobs {
        assert_eq!(losses, rust_losses, "{job}: losses");
        for rank in 0..2 {
            assert!(
                params(job, rank) == reference,
                "{job} rank {rank}: final parameters differ from PyTorch DDP's"
            );
        }
    }
    std::fs::remove_dir_all(dir).unwrap();
}

#[test]
fn a_rank_that_cannot_reach_the_store_fails_within_its_timeout() {
    use std::time::{Duration, Instant};

    use lstm_tch::dist::{Group, Launch};

    // A port nobody listens on: bound, then released.
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let launch = Launch {
        rank: 1,
        world_size: 2,
        local_rank: 1,
        master_addr: "127.0.0.1".into(),
        master_port: port,
        agent_store: true,
        restart_count: 0,
    };
    let started = Instant::now();
    let error = Group::join(&launch, Duration::from_secs(2)).err().expect("joined a job that does not exist");
    let elapsed = started.elapsed();
    let message = format!("{error:#}");
    assert!(
        message.starts_with(&format!("rank 1 of 2 cannot join the job at 127.0.0.1:{port}: ")),
        "{message}"
    );
    assert!(!message.contains('\n'), "one line: {message}");
    assert!(elapsed < store_gives_up_within(Duration::from_secs(2)), "took {elapsed:?}");
}

/// How long c10d's TCPStore may take to give up on a store that is not there, with `timeout`:
/// its connect retries until the timeout, then the store sleeps one back-off and connects once
/// more (TCPStore.cpp's validate loop). The back-off is the connect loop's exponential one
/// (c10d's `ExponentialBackoffWithJitter`: ×1.5 from 500 ms, ±50 % jitter), so after a
/// timeout's worth of retries it is at most about 1.5 × the timeout: 3.5 × the timeout in all
/// (3.8-5.7 s measured at 2 s on an idle 2-core machine), and 2 s more for a machine busy with
/// the rest of the suite (7.6 s seen there once).
pub(super) fn store_gives_up_within(timeout: std::time::Duration) -> std::time::Duration {
    timeout * 7 / 2 + std::time::Duration::from_secs(2)
}

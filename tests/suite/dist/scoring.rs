//! `predict --file` and `eval` under torchrun: each rank scores its batches, rank 0 prints, and
//! the output is the bytes one process prints (every line, in order, every probability).

use super::torchrun_command;
use crate::common::{lstm_tch, root, run, tempdir, text};

#[test]
fn predict_and_eval_under_torchrun_print_what_one_process_prints() {
    let dir = tempdir("dist-scoring");
    let ckpt = dir.join("ckpt");
    let ckpt_arg = ckpt.to_str().unwrap();
    let trained = run(
        lstm_tch(),
        &["train", "--train", "data/sample-zh/train.tsv", "--epochs", "1", "--embedding-dim", "8"]
            .into_iter()
            .chain(["--hidden-size", "8", "--threads", "1", "--quiet", "--out", ckpt_arg])
            .collect::<Vec<_>>(),
    );
    assert!(trained.status.success(), "{}", text(&trained).1);
    // 203 texts: rounds of 3 ranks × 16 leave the last rank a partial batch, then nothing.
    let texts = dir.join("texts.txt");
    let sample = std::fs::read_to_string(root().join("data/sample-zh/test.tsv")).unwrap();
    let lines: Vec<&str> = sample.lines().take(203).map(|l| l.split('\t').next().unwrap()).collect();
    std::fs::write(&texts, lines.join("\n") + "\n").unwrap();
    let predict = ["predict", "--checkpoint", ckpt_arg, "--file", texts.to_str().unwrap(), "--json"];
    let predict = [&predict[..], &["--batch-size", "16", "--threads", "1"]].concat();
    let eval = ["eval", "data/sample-zh/test.tsv", "--checkpoint", ckpt_arg, "--json", "--batch-size", "32"];
    let eval = [&eval[..], &["--threads", "1"]].concat();
    for (what, args, ranks) in [("predict", &predict, 3), ("eval", &eval, 2)] {
        let alone = run(lstm_tch(), args);
        assert!(alone.status.success(), "{what}: {}", text(&alone).1);
        let job = torchrun_command(ranks).arg("--no-python").arg(lstm_tch()).args(args).output().unwrap();
        assert!(job.status.success(), "{what} under torchrun: {}", text(&job).1);
        assert!(!alone.stdout.is_empty());
        assert!(job.stdout == alone.stdout, "{what} on {ranks} ranks printed other lines than one process");
    }
    std::fs::remove_dir_all(dir).unwrap();
}

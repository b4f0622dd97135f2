//! `lstm-tch train | eval | predict` as a user runs them: the defaults reach the accuracy
//! target, predictions stream, and every bad input ends in a one-line message naming the file
//! (and line), a non-zero exit and no panic.

use std::{
    io::Write,
    path::{Path, PathBuf},
    process::{Command, Stdio},
    sync::OnceLock,
};

use crate::common::{assert_clean_failure, lstm_tch, png_size, run, tempdir, text};

/// One small checkpoint trained on the sample data, shared by the tests.
fn checkpoint() -> &'static Path {
    static CKPT: OnceLock<PathBuf> = OnceLock::new();
    CKPT.get_or_init(|| {
        let dir = tempdir("cli-ckpt").join("ckpt");
        let out = run(
            lstm_tch(),
            &[
                "train",
                "--epochs",
                "1",
                "--hidden-size",
                "16",
                "--threads",
                "1",
                "-q",
                "--out",
                dir.to_str().unwrap(),
            ],
        );
        assert!(out.status.success(), "{}", text(&out).1);
        dir
    })
}

fn write(dir: &Path, name: &str, contents: &[u8]) -> String {
    let path = dir.join(name);
    std::fs::write(&path, contents).unwrap();
    path.to_str().unwrap().to_owned()
}

#[test]
fn defaults_reach_85_percent_on_the_sample_test_split() {
    let dir = tempdir("cli-defaults");
    let (ckpt, report) = (dir.join("ckpt"), dir.join("report.json"));
    let out = run(
        lstm_tch(),
        &["train", "--threads", "1", "--out", ckpt.to_str().unwrap(), "--report", report.to_str().unwrap()],
    );
    let (_, stderr) = text(&out);
    assert!(out.status.success(), "{stderr}");
    let report: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&report).unwrap()).unwrap();
    let accuracy = report["test"]["accuracy"].as_f64().unwrap();
    assert!(accuracy >= 0.85, "test accuracy {accuracy} < 0.85\n{stderr}");
    assert_eq!(report["epochs"].as_array().unwrap().len(), 8, "the default number of epochs");
    assert!(stderr.contains("epoch 1/"), "{stderr}");

    // eval on the same split agrees with train's test evaluation.
    let out = run(lstm_tch(), &["eval", "--checkpoint", ckpt.to_str().unwrap(), "--json"]);
    let metrics: serde_json::Value = serde_json::from_str(&text(&out).0).unwrap();
    assert_eq!(metrics["accuracy"].as_f64().unwrap(), accuracy);
    std::fs::remove_dir_all(dir).unwrap();
}

#[test]
fn defaults_learn_chinese_negation_and_contrast() {
    // The Chinese sample with the defaults: the unicode tokenizer reads each character.
    let dir = tempdir("cli-defaults-zh");
    let (ckpt, report) = (dir.join("ckpt"), dir.join("report.json"));
    let zh = crate::common::root().join("data/sample-zh");
    let split = |name: &str| zh.join(name).to_str().unwrap().to_owned();
    let (train, dev, test) = (split("train.tsv"), split("dev.tsv"), split("test.tsv"));
    let out = run(
        lstm_tch(),
        &[
            "train",
            "--train",
            &train,
            "--dev",
            &dev,
            "--test",
            &test,
            "--threads",
            "1",
            "-q",
            "--out",
            ckpt.to_str().unwrap(),
            "--report",
            report.to_str().unwrap(),
        ],
    );
    let (_, stderr) = text(&out);
    assert!(out.status.success(), "{stderr}");
    let report: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&report).unwrap()).unwrap();
    let accuracy = report["test"]["accuracy"].as_f64().unwrap();
    assert!(accuracy >= 0.85, "test accuracy {accuracy} < 0.85\n{stderr}");
    assert_eq!(report["labels"], serde_json::json!(["正面", "负面"]));

    // Negation, contrast both ways, and an expectation not met.
    let sentences =
        ["一点也不好吃", "虽然送餐有点慢，但是味道非常好！", "味道非常好，但是送餐太慢了", "没有想象中好"];
    let mut args = vec!["predict", "--json", "--threads", "1", "--checkpoint", ckpt.to_str().unwrap()];
    args.extend(sentences);
    let out = run(lstm_tch(), &args);
    let (stdout, stderr) = text(&out);
    assert!(out.status.success(), "{stderr}");
    let labels: Vec<String> = stdout
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap()["label"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(labels, ["负面", "正面", "负面", "负面"], "{stdout}");
    std::fs::remove_dir_all(dir).unwrap();
}

#[test]
fn explain_traces_every_token_and_agrees_with_predict() {
    let ckpt = checkpoint().to_str().unwrap();
    let sentence = "It was slow at first, but the ending was wonderful!";
    let out = run(lstm_tch(), &["explain", "--json", "--threads", "1", "--checkpoint", ckpt, sentence, ""]);
    let (stdout, stderr) = text(&out);
    assert!(out.status.success(), "{stderr}");
    let lines: Vec<serde_json::Value> = stdout.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    assert_eq!(lines.len(), 2);
    let e = &lines[0];
    assert_eq!(e["agrees"], true, "the equations and the fused kernel disagree: {e}");
    let tokens = e["tokens"].as_array().unwrap();
    assert_eq!(tokens.len(), 12, "one row per token");
    assert_eq!(tokens[7]["token"], "the");
    // The last row's probabilities are the whole text's, and those are predict's.
    assert_eq!(tokens.last().unwrap()["probabilities"], e["probabilities"]);
    let out = run(lstm_tch(), &["predict", "--json", "--threads", "1", "--checkpoint", ckpt, sentence]);
    let predicted: serde_json::Value = serde_json::from_str(&text(&out).0).unwrap();
    assert_eq!(predicted["label"], e["label"]);
    let labels = e["labels"].as_array().unwrap();
    for (i, label) in labels.iter().enumerate() {
        assert_eq!(predicted["probabilities"][label.as_str().unwrap()], e["probabilities"][i]);
    }
    assert_eq!(e["cell"], "lstm");
    assert_eq!(e["gate_names"], serde_json::json!(["input", "forget", "output"]));
    assert_eq!(e["norm_names"], serde_json::json!(["cell"]));
    let directions = e["directions"].as_array().unwrap().len();
    for t in tokens {
        for gate in ["input", "forget", "output"] {
            let values = t["gates"][gate].as_array().unwrap();
            assert_eq!(values.len(), directions, "{t}");
            for v in values {
                let v = v.as_f64().unwrap();
                assert!((0.0..=1.0).contains(&v), "{gate} {v}");
            }
        }
        assert_eq!(t["gates"].as_object().unwrap().len(), 3, "{t}");
        assert_eq!(t["norms"]["cell"].as_array().unwrap().len(), directions, "{t}");
    }
    // The empty text is read as one <unk>, as predict reads it.
    assert_eq!(lines[1]["tokens"].as_array().unwrap().len(), 1);
    // The table: one row per token and direction, with the header.
    let out = run(lstm_tch(), &["explain", "--threads", "1", "--checkpoint", ckpt, "Not bad at all."]);
    let (table, stderr) = text(&out);
    assert!(out.status.success(), "{stderr}");
    assert!(table.contains("forward:") && table.contains("input   forget  output  |cell|"), "{table}");
    assert!(table.lines().any(|l| l.starts_with("bad ")), "{table}");
}

#[test]
fn explain_shows_each_cells_own_gates() {
    // GRU: reset and update gates and the hidden state's norm; RNN: the norm alone. The
    // equations agree with the fused kernel and the last row is predict's answer.
    let dir = tempdir("cli-explain-cells");
    for (cell, gates, header) in [
        (
            "gru",
            vec!["reset", "update"],
            "token  reset   update  |hidden| P(positive) if the text ended here",
        ),
        ("rnn", vec![], "token  |hidden| P(positive) if the text ended here"),
    ] {
        let ckpt = dir.join(cell);
        let ckpt = ckpt.to_str().unwrap();
        let train = [
            "train",
            "--cell",
            cell,
            "--epochs",
            "1",
            "--hidden-size",
            "8",
            "--embedding-dim",
            "16",
            "--num-layers",
            "2",
            "--threads",
            "1",
            "-q",
            "--out",
            ckpt,
        ];
        let out = run(lstm_tch(), &train);
        assert!(out.status.success(), "{}", text(&out).1);
        let sentence = "Not bad at all.";
        let out = run(lstm_tch(), &["explain", "--json", "--threads", "1", "--checkpoint", ckpt, sentence]);
        let (stdout, stderr) = text(&out);
        assert!(out.status.success(), "{stderr}");
        let e: serde_json::Value = serde_json::from_str(&stdout).unwrap();
        assert_eq!(e["cell"], cell);
        assert_eq!(e["agrees"], true, "{cell}: the equations and the fused kernel disagree: {e}");
        assert_eq!(e["gate_names"], serde_json::json!(gates));
        assert_eq!(e["norm_names"], serde_json::json!(["hidden"]));
        let tokens = e["tokens"].as_array().unwrap();
        assert_eq!(tokens.len(), 5, "{cell}");
        for t in tokens {
            let named: Vec<&String> = t["gates"].as_object().unwrap().keys().collect();
            assert_eq!(named, gates.iter().collect::<Vec<_>>(), "{cell}: {t}");
            for gate in &gates {
                for v in t["gates"][gate].as_array().unwrap() {
                    assert!((0.0..=1.0).contains(&v.as_f64().unwrap()), "{cell} {gate}: {v}");
                }
            }
            let norms = t["norms"]["hidden"].as_array().unwrap();
            assert_eq!(norms.len(), 2, "{cell}: both directions (the default is bidirectional)");
            assert!(norms.iter().all(|v| v.as_f64().unwrap() > 0.0), "{cell}: {t}");
        }
        let out = run(lstm_tch(), &["predict", "--json", "--threads", "1", "--checkpoint", ckpt, sentence]);
        let predicted: serde_json::Value = serde_json::from_str(&text(&out).0).unwrap();
        assert_eq!(predicted["label"], e["label"], "{cell}");
        assert_eq!(predicted["probabilities"]["positive"], e["probabilities"][1], "{cell}");

        let out = run(lstm_tch(), &["explain", "--threads", "1", "--checkpoint", ckpt, sentence]);
        let (table, stderr) = text(&out);
        assert!(out.status.success(), "{stderr}");
        assert!(table.contains("forward:") && table.contains("backward:"), "{table}");
        assert_eq!(
            table.lines().filter(|l| *l == header).count(),
            2,
            "{cell}: one header per direction\n{table}"
        );
        assert_eq!(table.lines().filter(|l| l.starts_with("bad ")).count(), 2, "{table}");
    }
    std::fs::remove_dir_all(dir).unwrap();
}

#[test]
fn eval_prints_a_table() {
    let out = run(lstm_tch(), &["eval", "--checkpoint", checkpoint().to_str().unwrap()]);
    let (stdout, stderr) = text(&out);
    assert!(out.status.success(), "{stderr}");
    for needle in ["precision", "recall", "negative", "positive", "accuracy", "macro-F1", "confusion"] {
        assert!(stdout.contains(needle), "{needle} missing:\n{stdout}");
    }
}

#[test]
fn predict_reads_arguments_files_and_streams_stdin() {
    let ckpt = checkpoint().to_str().unwrap();
    let out = run(lstm_tch(), &["predict", "--checkpoint", ckpt, "a waste of time", ""]);
    let (stdout, stderr) = text(&out);
    assert!(out.status.success(), "{stderr}");
    let lines: Vec<&str> = stdout.lines().collect();
    assert_eq!(lines.len(), 2, "{stdout}");
    assert!(lines[0].ends_with("\ta waste of time") && lines[0].contains("negative="), "{stdout}");
    assert!(lines[1].ends_with('\t'), "the empty sentence gets a result: {stdout}");

    let dir = tempdir("cli-predict");
    // A byte-order mark (Notepad's UTF-8) is not part of the first text.
    let file = write(&dir, "in.txt", b"\xEF\xBB\xBFgreat fun\n\nboring\r\n");
    let out = run(lstm_tch(), &["predict", "--checkpoint", ckpt, "--json", "--file", &file]);
    let (stdout, stderr) = text(&out);
    assert!(out.status.success(), "{stderr}");
    let rows: Vec<serde_json::Value> = stdout.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    assert_eq!(rows.len(), 3);
    assert_eq!((&rows[0]["text"], &rows[2]["text"]), (&"great fun".into(), &"boring".into()));
    for row in &rows {
        let p = &row["probabilities"];
        let sum = p["negative"].as_f64().unwrap() + p["positive"].as_f64().unwrap();
        assert!((sum - 1.0).abs() < 1e-6, "{row}");
        assert!(row["label"] == "negative" || row["label"] == "positive");
    }

    // Standard input is streamed: the first answer arrives before the input ends.
    let mut child = Command::new(lstm_tch())
        .args(["predict", "--checkpoint", ckpt, "--batch-size", "1"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    stdin.write_all(b"not bad at all\n").unwrap();
    stdin.flush().unwrap();
    let mut stdout = std::io::BufReader::new(child.stdout.take().unwrap());
    let mut first = String::new();
    std::io::BufRead::read_line(&mut stdout, &mut first).unwrap();
    assert!(first.ends_with("\tnot bad at all\n"), "{first}");
    stdin.write_all(b"\n").unwrap();
    drop(stdin);
    let mut rest = String::new();
    std::io::Read::read_to_string(&mut stdout, &mut rest).unwrap();
    assert!(child.wait().unwrap().success());
    assert_eq!(rest.lines().count(), 1, "the empty line gets a result: {rest}");
    std::fs::remove_dir_all(dir).unwrap();
}

#[test]
fn bad_data_fails_cleanly_naming_the_file_and_line() {
    let dir = tempdir("cli-bad-data");
    let d = |name: &str, contents: &[u8]| write(&dir, name, contents);
    let good_dev = d("dev.tsv", b"sentence\tlabel\nok\tpos\nbad\tneg\n");
    let cases: Vec<(Vec<String>, String)> = vec![
        (
            vec!["--train".into(), "/nonexistent/train.tsv".into()],
            "cannot read /nonexistent/train.tsv".into(),
        ),
        (
            vec!["--train".into(), dir.to_str().unwrap().into(), "--format".into(), "tsv".into()],
            "is a directory".into(),
        ),
        (
            vec!["--train".into(), d("bad.tsv", b"sentence\tlabel\ngood\tpos\nbad \xff\tneg\n")],
            "bad.tsv:3: not UTF-8".into(),
        ),
        (
            // "好吃" in GBK, as Chinese Excel saves a CSV.
            vec!["--train".into(), d("gbk.csv", b"text,label\nfine,1\n\xBA\xC3\xB3\xD4,0\n")],
            "gbk.csv:3: not UTF-8 (invalid byte at offset 0); convert the file first, e.g. for GBK: \
             iconv -f GBK -t UTF-8"
                .into(),
        ),
        (
            vec!["--train".into(), d("cols.tsv", b"words\tstars\nfine\t1\n")],
            "cols.tsv:1: no text column text or sentence or review or text_a or content or comment in the \
             header; its columns are [words, stars]"
                .into(),
        ),
        (
            vec!["--train".into(), d("cols2.tsv", b"text\tstars\nfine\t1\n")],
            "cols2.tsv:1: no label column label or sentiment or polarity".into(),
        ),
        (
            vec![
                "--train".into(),
                d("c.tsv", b"text\tlabel\nfine\t1\n"),
                "--text-column".into(),
                "body".into(),
            ],
            "no text column body".into(),
        ),
        (vec!["--train".into(), d("empty.tsv", b"sentence\tlabel\n\n\n")], "empty.tsv: no examples".into()),
        (vec!["--train".into(), d("nothing.tsv", b"")], "nothing.tsv: empty file".into()),
        (
            vec!["--train".into(), d("fields.tsv", b"sentence\tlabel\nfine\t1\textra\n")],
            "fields.tsv:2: 3 fields, the header has 2".into(),
        ),
        (
            vec![
                "--train".into(),
                d("one.tsv", b"sentence\tlabel\nfine\tpos\ngood\tpos\n"),
                "--dev".into(),
                good_dev.clone(),
            ],
            "single class (pos)".into(),
        ),
        (
            vec![
                "--train".into(),
                d("two.tsv", b"sentence\tlabel\nfine\tpos\nbad\tneg\n"),
                "--dev".into(),
                d("dev3.tsv", b"sentence\tlabel\nok\tpos\nmeh\tneutral\n"),
            ],
            "dev3.tsv:3: label 'neutral' in the dev data is not one of the trained classes [neg, pos]".into(),
        ),
        (
            vec![
                "--train".into(),
                d("tiny.tsv", b"sentence\tlabel\nfine\tpos\nbad\tneg\n"),
                "--holdout".into(),
                "0.45".into(),
            ],
            "too few examples".into(),
        ),
        (
            // The seeded holdout takes the one example of label 0.
            vec![
                "--train".into(),
                d("rare.tsv", b"sentence\tlabel\nA fine film.\t1\nit is not\t0\nLast one\t1\n"),
                "--holdout".into(),
                "0.3".into(),
            ],
            "rare.tsv: every example of label '0' went to the held-out data (--holdout 0.3)".into(),
        ),
        (
            vec![
                "--train".into(),
                d("bad.jsonl", b"{\"text\": \"a\", \"label\": 1}\n{\"text\": 5, \"label\": 0}\n"),
            ],
            "bad.jsonl:2: the text is not a string".into(),
        ),
        (
            vec!["--train".into(), d("broken.jsonl", b"{\"text\": \"a\"\n")],
            "broken.jsonl:1: invalid JSON".into(),
        ),
        (
            vec!["--train".into(), d("open.csv", b"text,label\n\"never closed,1\n")],
            "open.csv:2: 1 fields, the header has 2 (a quoted field runs over several lines".into(),
        ),
        (vec!["--train".into(), d("data.xml", b"<x/>")], "cannot tell the format".into()),
        (
            // Given dev data, nothing is held out: a --holdout would be ignored.
            vec![
                "--train".into(),
                good_dev.clone(),
                "--dev".into(),
                good_dev.clone(),
                "--holdout".into(),
                "0.2".into(),
            ],
            "the argument '--dev <DEV>' cannot be used with '--holdout <HOLDOUT>'".into(),
        ),
        (vec!["--lr".into(), "0".into()], "learning rate must be positive and at most float32".into()),
        (vec!["--batch-size".into(), "0".into()], "--batch-size must be at least 1".into()),
        (vec!["--max-len".into(), "0".into()], "--max-len must be at least 1".into()),
        (vec!["--hidden-size".into(), "0".into()], "hidden size must be at least 1".into()),
        (vec!["--dropout".into(), "1.5".into()], "dropout must be in [0, 1)".into()),
        (
            vec!["--cell".into(), "gru".into(), "--forget-bias".into(), "1".into()],
            "--forget-bias applies to the LSTM only: nn.GRU has no forget gate".into(),
        ),
        (
            vec!["--cell".into(), "rnn".into(), "--forget-bias=-1".into()],
            "--forget-bias applies to the LSTM only: nn.RNN has no forget gate".into(),
        ),
        (
            vec!["--forget-bias".into(), "inf".into()],
            "--forget-bias must be a finite float32 (within ±3.4028235e38), got inf".into(),
        ),
        (vec!["--clip-grad-norm=-1".into()], "--clip-grad-norm must be positive and at most float32".into()),
        (vec!["--forget-bias".into(), "1e39".into()], "--forget-bias must be a finite float32".into()),
        (vec!["--lr".into(), "1e40".into()], "learning rate must be positive and at most float32".into()),
        (vec!["--min-freq".into(), "0".into()], "--min-freq must be at least 1".into()),
        (vec!["--threads".into(), "0".into()], "--threads must be at least 1".into()),
        (vec!["--device".into(), "tpu".into()], "unknown device 'tpu'".into()),
        (
            vec!["--report".into(), "/nonexistent/r.json".into()],
            "cannot write report /nonexistent/r.json".into(),
        ),
        (
            vec!["--report".into(), dir.join("out").join("r.json").to_str().unwrap().into()],
            "r.json is inside --out".into(),
        ),
        (vec!["--threads".into(), "100000".into()], "--threads must be at most 1024, got 100000".into()),
        (
            vec![
                "--train".into(),
                good_dev.clone(),
                "--text-column".into(),
                "label".into(),
                "--label-column".into(),
                "label".into(),
            ],
            "--text-column and --label-column both name \"label\"".into(),
        ),
    ];
    for (args, needle) in cases {
        let mut all = vec!["train", "-q", "--epochs", "1", "--out"];
        let out_dir = dir.join("out");
        all.push(out_dir.to_str().unwrap());
        all.extend(args.iter().map(String::as_str));
        assert_clean_failure(&run(lstm_tch(), &all), &needle, &args.join(" "));
    }
    std::fs::remove_dir_all(dir).unwrap();
}

#[test]
fn format_1_checkpoints_predict_exactly_as_before() {
    // tests/fixtures/format1: a checkpoint written by lstm-tch 0.1 (format 1, its word scanner)
    // and what `predict --json` prints for sentences.txt, in the mode whose bits are the same on
    // every x86 CPU (the fixture's README says how it was made).
    let fixture = crate::common::root().join("tests/fixtures/format1");
    let out = crate::common::run_reproducible(
        lstm_tch(),
        &[
            "predict",
            "--json",
            "--threads",
            "1",
            "--checkpoint",
            fixture.to_str().unwrap(),
            "--file",
            fixture.join("sentences.txt").to_str().unwrap(),
        ],
    );
    let (stdout, stderr) = text(&out);
    assert!(out.status.success(), "{stderr}");
    let expected = std::fs::read_to_string(fixture.join("expected.jsonl")).unwrap();
    assert_eq!(stdout, expected, "format-1 predictions changed (same float32 text = same bits)");
}

#[test]
fn train_replaces_only_checkpoints_and_checks_out_before_training() {
    // A project folder with a config.json of its own is not a checkpoint: `--out` naming it is
    // refused before any training, and nothing in it is touched.
    let dir = tempdir("cli-out-guard");
    let project = dir.join("project");
    std::fs::create_dir_all(project.join("src")).unwrap();
    std::fs::write(project.join("config.json"), r#"{"name": "app"}"#).unwrap();
    std::fs::write(project.join("notes.txt"), "precious").unwrap();
    let alone = dir.join("alone");
    std::fs::create_dir_all(&alone).unwrap();
    std::fs::write(alone.join("config.json"), r#"{"name": "app"}"#).unwrap();
    let file = PathBuf::from(write(&dir, "file.tsv", b"not a directory"));
    let cases = [
        (&project, "exists and is not a checkpoint (it holds "),
        (&alone, "exists and is not a checkpoint (its config.json is not an lstm-tch checkpoint's)"),
        (&file, "exists and is not a checkpoint (not a directory)"),
    ];
    for (out, needle) in cases {
        let output =
            run(lstm_tch(), &["train", "--epochs", "1", "--threads", "1", "--out", out.to_str().unwrap()]);
        assert_clean_failure(&output, needle, &out.display().to_string());
        assert!(!text(&output).1.contains("epoch"), "refused before training: {}", text(&output).1);
    }
    assert_eq!(std::fs::read_to_string(project.join("notes.txt")).unwrap(), "precious");
    assert!(project.join("src").is_dir() && alone.join("config.json").is_file());
    assert_eq!(std::fs::read(&file).unwrap(), b"not a directory");
    // A path no directory can be made at.
    let under_file = file.join("ckpt");
    let output = run(lstm_tch(), &["train", "--epochs", "1", "--out", under_file.to_str().unwrap()]);
    assert_clean_failure(&output, "cannot save checkpoint", "--out under a file");
    assert!(!text(&output).1.contains("epoch"), "refused before training: {}", text(&output).1);
    // A checkpoint is replaced by the next run into it.
    let ckpt = dir.join("ckpt");
    for _ in 0..2 {
        let output = run(
            lstm_tch(),
            &["train", "-q", "--epochs", "1", "--threads", "1", "--out", ckpt.to_str().unwrap()],
        );
        assert!(output.status.success(), "{}", text(&output).1);
    }
    std::fs::remove_dir_all(dir).unwrap();
}

#[test]
fn bad_checkpoints_and_eval_data_fail_cleanly() {
    let dir = tempdir("cli-bad-ckpt");
    let good = checkpoint();
    let copy = |name: &str| {
        let to = dir.join(name);
        std::fs::create_dir_all(&to).unwrap();
        for f in ["config.json", "model.safetensors"] {
            std::fs::copy(good.join(f), to.join(f)).unwrap();
        }
        to
    };
    let edit_config = |ckpt: &Path, from: &str, to: &str| {
        let path = ckpt.join("config.json");
        let text = std::fs::read_to_string(&path).unwrap();
        assert!(text.contains(from), "{from} not in config.json");
        std::fs::write(&path, text.replacen(from, to, 1)).unwrap();
    };

    let garbled = copy("garbled-config");
    std::fs::write(garbled.join("config.json"), "{ not json").unwrap();
    let truncated = copy("truncated-weights");
    let weights = std::fs::read(truncated.join("model.safetensors")).unwrap();
    std::fs::write(truncated.join("model.safetensors"), &weights[..weights.len() / 2]).unwrap();
    let version = copy("version");
    edit_config(&version, "\"format_version\": 3", "\"format_version\": 4");
    let no_mode = copy("no-mode");
    edit_config(&no_mode, "\"mode\": ", "\"former_mode\": ");
    let mismatch = copy("mismatch");
    edit_config(&mismatch, "\"hidden_size\": 16", "\"hidden_size\": 32");
    let no_weights = copy("no-weights");
    std::fs::remove_file(no_weights.join("model.safetensors")).unwrap();
    let unknown_label = write(&dir, "eval.tsv", b"sentence\tlabel\ngreat\tpositive\nhm\tmixed\n");
    let missing = dir.join("missing");

    let s = |p: &Path| p.to_str().unwrap().to_owned();
    let cases: Vec<(Vec<String>, String)> = vec![
        (
            vec!["eval".into(), "--checkpoint".into(), s(&missing)],
            format!("checkpoint {} not found", missing.display()),
        ),
        (vec!["predict".into(), "--checkpoint".into(), s(&missing), "hi".into()], "not found".into()),
        (
            vec!["predict".into(), "--checkpoint".into(), unknown_label.clone(), "hi".into()],
            "eval.tsv is a file: a checkpoint is the directory `train --out` writes".into(),
        ),
        (
            vec!["eval".into(), s(&missing.join("data")), "--checkpoint".into(), s(checkpoint())],
            "cannot read ".into(),
        ),
        (
            vec!["eval".into(), "--checkpoint".into(), s(&garbled)],
            "config.json is corrupted: not JSON".into(),
        ),
        (vec!["eval".into(), "--checkpoint".into(), s(&truncated)], "model.safetensors is corrupted".into()),
        (
            vec!["predict".into(), "--checkpoint".into(), s(&version), "hi".into()],
            "checkpoint format version 4, this lstm-tch reads versions 1 to 3".into(),
        ),
        (
            vec!["predict".into(), "--checkpoint".into(), s(&no_mode), "hi".into()],
            "config.json is corrupted: tokenizer.mode missing".into(),
        ),
        (
            vec!["eval".into(), "--checkpoint".into(), s(&mismatch)],
            "model.safetensors does not match config.json".into(),
        ),
        (vec!["eval".into(), "--checkpoint".into(), s(&no_weights)], "model.safetensors missing".into()),
        (
            vec!["eval".into(), "--checkpoint".into(), s(good), unknown_label],
            "eval.tsv:3: label 'mixed' in the evaluation data is not one of the trained classes".into(),
        ),
        (
            vec!["eval".into(), "--checkpoint".into(), s(good), "/nonexistent.tsv".into()],
            "cannot read /nonexistent.tsv".into(),
        ),
        (
            vec![
                "predict".into(),
                "--checkpoint".into(),
                s(good),
                "--file".into(),
                "/nonexistent.txt".into(),
            ],
            "cannot read /nonexistent.txt".into(),
        ),
        (
            vec![
                "predict".into(),
                "--checkpoint".into(),
                s(good),
                "--file".into(),
                write(&dir, "bin.txt", b"ok\n\xfe\n"),
            ],
            "bin.txt:2: not UTF-8".into(),
        ),
        (
            vec![
                "predict".into(),
                "--checkpoint".into(),
                s(good),
                "--batch-size".into(),
                "0".into(),
                "x".into(),
            ],
            "--batch-size must be at least 1".into(),
        ),
    ];
    for (args, needle) in cases {
        let all: Vec<&str> = args.iter().map(String::as_str).collect();
        assert_clean_failure(&run(lstm_tch(), &all), &needle, &args.join(" "));
    }
    std::fs::remove_dir_all(dir).unwrap();
}

#[test]
fn explain_plots_english_and_chinese_texts_as_stacked_panels() {
    let ckpt = checkpoint().to_str().unwrap();
    let dir = tempdir("cli-plot");
    let (both, one) = (dir.join("both.png"), dir.join("one.png"));
    let explain = |plot: &Path, texts: &[&str]| {
        let mut args =
            vec!["explain", "--threads", "1", "--checkpoint", ckpt, "--plot", plot.to_str().unwrap()];
        args.extend(texts);
        run(lstm_tch(), &args)
    };
    let out = explain(&both, &["not good at all", "虽然环境不错，但是菜太难吃了"]);
    let (stdout, stderr) = text(&out);
    assert!(out.status.success(), "{stderr}");
    assert!(stdout.contains("forward:"), "the table is still printed: {stdout}");
    assert!(stderr.contains(&format!("wrote {}", both.display())), "{stderr}");
    // A machine without a CJK font says so in one line (and draws the tokens as positions).
    for line in stderr.lines().filter(|l| l.starts_with("warning:")) {
        assert!(line.contains("--font PATH"), "{line}");
    }
    let out = explain(&one, &["not good at all"]);
    assert!(out.status.success(), "{}", text(&out).1);
    let ((width, height), (one_width, one_height)) = (png_size(&both), png_size(&one));
    assert!(height > one_height && width >= one_width, "{width}×{height} vs {one_width}×{one_height}");

    // Errors name the path, before or after the work.
    let missing = dir.join("no/such/dir/plot.png");
    assert_clean_failure(&explain(&missing, &["good"]), missing.to_str().unwrap(), "unwritable --plot");
    assert_clean_failure(
        &explain(&dir.join("plot.jpg"), &["good"]),
        "plot.jpg: the plot is a PNG image",
        "--plot .jpg",
    );
    let out = run(
        lstm_tch(),
        &[
            "explain",
            "--checkpoint",
            ckpt,
            "--plot",
            one.to_str().unwrap(),
            "--font",
            "/nonexistent/font.ttf",
            "good",
        ],
    );
    assert_clean_failure(&out, "cannot read the font /nonexistent/font.ttf", "missing --font");
    assert!(!dir.join("plot.jpg").exists());
    std::fs::remove_dir_all(dir).unwrap();
}

#[test]
fn every_subcommand_has_help() {
    for sub in ["train", "eval", "predict"] {
        let out = run(lstm_tch(), &[sub, "--help"]);
        assert!(out.status.success());
        assert!(text(&out).0.contains("Usage: lstm-tch"), "{sub}");
    }
}

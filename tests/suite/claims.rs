//! `lstm-tch claims`: the machinery of the three experiments at tiny sizes — the memory task's
//! sequences, the per-step input gradients, the step timer — and the subcommand writing its PNG
//! figures and JSON, or failing cleanly on bad input.

use crate::common::{assert_clean_failure, lstm_tch, png_size, run, tempdir, text};
use lstm_tch::{
    lab::claims::{
        gradients::{input_gradient_norms, probe_batch},
        memory::{MemoryTask, FIRST_NOISE, MARKERS},
        speed::step_times,
        ModelSize, CELLS,
    },
    nn::Cell,
};
use tch::{Kind, Tensor};

#[test]
fn memory_sequences_are_a_marker_naming_the_label_then_noise() {
    let _generator = crate::common::generator(); // seeds and compares draws
    let task = MemoryTask { noise_tokens: 5 };
    assert_eq!(task.vocab_size(), FIRST_NOISE + 5);
    tch::manual_seed(3);
    let data = task.generate(7, 200).unwrap();
    assert_eq!(data.len(), 200);
    let mut seen_noise = [false; 5];
    for i in 0..data.len() {
        let ids = data.ids(i);
        assert_eq!(ids.len(), 7);
        let label = data.labels[i];
        assert!(label == 0 || label == 1, "label {label}");
        assert_eq!(ids[0], MARKERS[label as usize], "sequence {i}: {ids:?}");
        for &id in &ids[1..] {
            assert!((FIRST_NOISE..task.vocab_size()).contains(&id), "sequence {i}: {ids:?}");
            seen_noise[(id - FIRST_NOISE) as usize] = true;
        }
    }
    assert!(seen_noise.iter().all(|&s| s), "every noise token is drawn");
    let ones = data.labels.iter().filter(|&&l| l == 1).count();
    assert!((60..=140).contains(&ones), "labels are drawn evenly: {ones} of 200 are 1");
    // The same seed draws the same sequences; a length of 1 is the marker alone.
    tch::manual_seed(3);
    let again = task.generate(7, 200).unwrap();
    assert!((0..200).all(|i| again.ids(i) == data.ids(i)) && again.labels == data.labels);
    let markers = task.generate(1, 10).unwrap();
    assert!((0..10).all(|i| markers.ids(i) == [MARKERS[markers.labels[i] as usize]]));
    assert!(task.generate(0, 3).is_err());
    assert!(MemoryTask { noise_tokens: 0 }.generate(4, 3).is_err());
}

#[test]
fn input_gradients_are_one_norm_per_time_step() {
    let _generator = crate::common::generator(); // seeds and compares draws
    let size = ModelSize { embedding_dim: 4, hidden_size: 6 };
    let task = MemoryTask { noise_tokens: 3 };
    for cell in CELLS {
        tch::manual_seed(0);
        let data = task.generate(9, 5).unwrap();
        let (vs, model) = size.build(cell, task.vocab_size()).unwrap();
        let (tokens, labels) = probe_batch(&data, 5).unwrap();
        assert_eq!(tokens.size(), [5, 9]);
        let norms = input_gradient_norms(&model, &tokens, &labels).unwrap();
        assert_eq!(norms.len(), 9, "{cell}");
        assert!(norms.iter().all(|&n| n.is_finite() && n > 0.0), "{cell}: {norms:?}");
        // One sequence alone has its own gradient: the batch's norms are the mean of each one's.
        let singles: Vec<Vec<f64>> = (0..5)
            .map(|i| input_gradient_norms(&model, &tokens.narrow(0, i, 1), &labels.narrow(0, i, 1)).unwrap())
            .collect();
        for t in 0..9 {
            let mean = singles.iter().map(|s| s[t]).sum::<f64>() / 5.0;
            assert!((mean - norms[t]).abs() <= 1e-6 * norms[t], "{cell} step {t}: {mean} vs {}", norms[t]);
        }
        // The parameters get no gradient from the measurement.
        assert!(vs.trainable_variables().iter().all(|v| !v.grad().defined()), "{cell}");
        // Without recurrent weights, the plain RNN's final state sees only the last input: every
        // earlier step's gradient is exactly zero. The gated cells still carry their state
        // forward through the gates (the LSTM's f ⊙ c, the GRU's z ⊙ h): no step is cut off.
        tch::no_grad(|| {
            for (name, mut var) in vs.variables() {
                if name.contains("weight_hh") {
                    let _ = var.zero_();
                }
            }
        });
        let norms = input_gradient_norms(&model, &tokens, &labels).unwrap();
        assert!(norms[8] > 0.0, "{cell}: {norms:?}");
        if cell == Cell::Rnn {
            assert!(norms[..8].iter().all(|&n| n == 0.0), "{cell}: {norms:?}");
        } else {
            assert!(norms[..8].iter().all(|&n| n > 0.0), "{cell}: {norms:?}");
        }
    }
    let (_, model) = size.build(Cell::Lstm, task.vocab_size()).unwrap();
    let flat = Tensor::zeros([4], (Kind::Int64, tch::Device::Cpu));
    assert!(input_gradient_norms(&model, &flat, &flat).is_err());
}

#[test]
fn step_times_are_one_per_repeat() {
    let size = ModelSize { embedding_dim: 4, hidden_size: 4 };
    for cell in CELLS {
        let times = step_times(cell, &size, 3, 5, 1, 4, 0).unwrap();
        assert_eq!(times.len(), 4);
        assert!(times.iter().all(|&t| t > 0.0 && t.is_finite()), "{cell}: {times:?}");
    }
    assert!(step_times(Cell::Rnn, &size, 0, 5, 0, 1, 0).is_err());
}

/// The top-level JSON fields of `path`.
fn json(path: &std::path::Path) -> serde_json::Value {
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

#[test]
fn the_cli_writes_each_experiments_figures_and_json() {
    let dir = tempdir("claims-cli");
    let out = dir.join("out");
    let out_arg = out.to_str().unwrap();
    let common = ["--out", out_arg, "--threads", "1", "--seeds", "0,1", "--test", "8"];
    let tiny = ["--embedding-dim", "4", "--hidden-size", "4", "--batch-size", "8"];

    let mut args = vec!["claims", "memory", "--lengths", "2,4", "--budgets", "2,3", "--cells", "gru,lstm"];
    args.extend(common.iter().chain(&tiny));
    let output = run(lstm_tch(), &args);
    assert!(output.status.success(), "{}", text(&output).1);
    assert_eq!(png_size(&out.join("memory.png")), (900, 560));
    let report = json(&out.join("memory.json"));
    assert_eq!(report["experiment"], "memory");
    assert_eq!(report["machine"]["threads"], 1);
    // One pass over fresh sequences: the last budget's batches.
    assert_eq!(report["config"]["training"]["train"], 3 * 8);
    // The GRU, the LSTM and the LSTM with a forget-gate bias of 1, in that order.
    let inits: Vec<(String, Option<f64>)> = report["reach"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| (r["init"]["cell"].as_str().unwrap().to_owned(), r["init"]["forget_bias"].as_f64()))
        .collect();
    let names = [("gru".to_owned(), None), ("lstm".to_owned(), None), ("lstm".to_owned(), Some(1.0))];
    assert_eq!(inits, names);
    for (cell, bias) in &names {
        let runs: Vec<&serde_json::Value> = report["runs"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|r| r["init"]["cell"] == cell.as_str() && r["init"]["forget_bias"].as_f64() == *bias)
            .collect();
        assert!(!runs.is_empty(), "{cell} {bias:?}: no run");
        // Every seed runs at a length; the search stops after the first length fewer than half
        // the seeds (here: none of the two) solved.
        assert_eq!(runs.len() % 2, 0, "{cell} {bias:?}: both seeds at every length");
        let lengths: Vec<u64> = runs.iter().map(|r| r["length"].as_u64().unwrap()).collect();
        let unsolved = |l: u64| runs.iter().filter(|r| r["length"] == l).all(|r| r["solved_at"].is_null());
        let stop = lengths.iter().position(|&l| unsolved(l));
        assert!(
            stop.is_none_or(|i| i + 2 == runs.len()),
            "{cell} {bias:?}: runs past a length no seed solved"
        );
        for r in &runs {
            let checks = r["checks"].as_array().unwrap();
            let steps: Vec<u64> = checks.iter().map(|c| c["steps"].as_u64().unwrap()).collect();
            let accuracy: Vec<f64> = checks.iter().map(|c| c["accuracy"].as_f64().unwrap()).collect();
            assert!(accuracy.iter().all(|a| (0.0..=1.0).contains(a)), "{r}");
            match r["solved_at"].as_u64() {
                // Stopped at the first budget where it reached 0.95.
                Some(at) => {
                    assert_eq!(steps.last(), Some(&at), "{r}");
                    assert!(
                        accuracy.last().unwrap() >= &0.95
                            && accuracy[..accuracy.len() - 1].iter().all(|a| *a < 0.95)
                    );
                }
                None => {
                    assert_eq!(steps, [2, 3], "{r}");
                    assert!(accuracy.iter().all(|a| *a < 0.95), "{r}");
                }
            }
        }
    }

    let mut args = vec![
        "claims",
        "gradients",
        "--length",
        "6",
        "--train-length",
        "3",
        "--probe",
        "4",
        "--distances",
        "1,5,9",
        "--cells",
        "rnn,lstm",
        "--train",
        "24",
        "--epochs",
        "1",
    ];
    args.extend(common.iter().chain(&tiny));
    let output = run(lstm_tch(), &args);
    assert!(output.status.success(), "{}", text(&output).1);
    png_size(&out.join("gradients.png"));
    let report = json(&out.join("gradients.json"));
    let cells = report["cells"].as_array().unwrap();
    assert_eq!(cells.iter().map(|c| c["cell"].as_str().unwrap()).collect::<Vec<_>>(), ["rnn", "lstm"]);
    for c in cells {
        assert_eq!(c["init"].as_array().unwrap().len(), 6);
        assert_eq!(c["trained"].as_array().unwrap().len(), 6);
        assert_eq!(c["per_seed"].as_array().unwrap().len(), 2);
        // Distance 9 lies past T = 6: only 1 and 5 get a ratio.
        let ratios = c["init_ratios"].as_array().unwrap();
        assert_eq!(ratios.iter().map(|r| r[0].as_u64().unwrap()).collect::<Vec<_>>(), [1, 5]);
    }

    let args = [
        "claims",
        "speed",
        "--out",
        out_arg,
        "--lengths",
        "2,4",
        "--batch-sizes",
        "1,2",
        "--length",
        "3",
        "--batch-size",
        "2",
        "--embedding-dim",
        "4",
        "--hidden-size",
        "4",
        "--warmup",
        "0",
        "--repeats",
        "2",
    ];
    let output = run(lstm_tch(), &args);
    assert!(output.status.success(), "{}", text(&output).1);
    let (stdout, _) = text(&output);
    for name in ["speed.png", "speed-batch.png", "speed.json"] {
        assert!(stdout.contains(name), "{stdout}");
    }
    png_size(&out.join("speed.png"));
    png_size(&out.join("speed-batch.png"));
    let report = json(&out.join("speed.json"));
    assert_eq!(report["by_length"].as_array().unwrap().len(), 3 * 2);
    assert_eq!(report["by_batch"].as_array().unwrap().len(), 3 * 2);
    // LSTM against RNN and GRU at every point of both sweeps.
    assert_eq!(report["ratios"].as_array().unwrap().len(), 2 * (2 + 2));
    assert_eq!(report["growth"][0]["length_ratio"], 2.0);
    std::fs::remove_dir_all(dir).unwrap();
}

#[test]
fn bad_claims_arguments_fail_cleanly_before_any_work() {
    let dir = tempdir("claims-errors");
    let out = dir.join("never");
    let out_arg = out.to_str().unwrap();
    let cases: [(&[&str], &str); 7] = [
        (
            &["claims", "memory", "--lengths", "10,1", "--out", out_arg],
            "--lengths values must be at least 2, got 1",
        ),
        (
            &["claims", "gradients", "--train-length", "1", "--out", out_arg],
            "--train-length must be at least 2, got 1",
        ),
        (&["claims", "speed", "--repeats", "0", "--out", out_arg], "--repeats must be at least 1"),
        (&["claims", "memory", "--threads", "0", "--out", out_arg], "--threads must be at least 1"),
        (&["claims", "memory", "--budgets", "600,300", "--out", out_arg], "--budgets must increase"),
        (
            &["claims", "memory", "--lstm-forget-bias", "inf", "--out", out_arg],
            "lstm, forget bias inf: --forget-bias must be a finite float32 (within ±3.4028235e38), got inf",
        ),
        (
            &["claims", "memory", "--lstm-forget-bias", "1e39", "--out", out_arg],
            "--forget-bias must be a finite float32 (within ±3.4028235e38), got 1000000000000000000000000000000000000000",
        ),
    ];
    for (args, needle) in cases {
        assert_clean_failure(&run(lstm_tch(), args), needle, &args.join(" "));
    }
    assert!(!out.exists(), "no output directory for a refused run");
    // An output "directory" that is a file.
    let file = dir.join("file");
    std::fs::write(&file, "").unwrap();
    let args = [
        "claims",
        "memory",
        "--lengths",
        "2",
        "--seeds",
        "0",
        "--budgets",
        "1",
        "--test",
        "4",
        "--out",
        file.to_str().unwrap(),
    ];
    assert_clean_failure(&run(lstm_tch(), &args), "cannot create the output directory", "--out FILE");
    std::fs::remove_dir_all(dir).unwrap();
}

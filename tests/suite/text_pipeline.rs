//! The text pipeline without Python: each loader on its fixture, padding invariance of the
//! classifier (each cell, uni- and bidirectional), checkpoint save → load round trips over
//! cell × directions × layers × pooling, and which checkpoint formats say which cell.

use std::path::{Path, PathBuf};

use lstm_tch::{
    checkpoint::{self, CheckpointConfig},
    data::{dataset, Columns, Encoded, Format, LabelSet, TokenizerConfig, Truncate, Vocab},
    infer,
    nn::{Cell, Pooling, TextArchitecture, TextClassifier, TextClassifierConfig},
};
use tch::{nn, Device, Tensor};

fn fixture(name: &str) -> PathBuf {
    crate::common::root().join("tests/fixtures").join(name)
}

fn texts_and_labels(path: &Path, format: Option<Format>, columns: &Columns) -> Vec<(String, String)> {
    dataset::load(path, format, columns).unwrap().into_iter().map(|e| (e.text, e.label)).collect()
}

fn pairs(items: &[(&str, &str)]) -> Vec<(String, String)> {
    items.iter().map(|(t, l)| (t.to_string(), l.to_string())).collect()
}

#[test]
fn loads_sst2_tsv_as_is() {
    // Blank lines are skipped; quotes are text (GLUE's TSVs are unquoted).
    let got = texts_and_labels(&fixture("sst2.tsv"), None, &Columns::default());
    assert_eq!(got, pairs(&[("A fine film.", "1"), ("\"Quoted\" text stays as is", "0"), ("Last one", "1")]));
}

#[test]
fn loads_quoted_csv_with_chosen_columns() {
    let columns = Columns { text: Some("review".into()), label: Some("sentiment".into()) };
    let got = texts_and_labels(&fixture("reviews.csv"), None, &columns);
    assert_eq!(
        got,
        pairs(&[("Good, really good", "pos"), ("He said \"meh\"\nand left", "neg"), ("plain text", "pos")])
    );
    // The defaults find `review` and `sentiment` too.
    assert_eq!(texts_and_labels(&fixture("reviews.csv"), Some(Format::Csv), &Columns::default()), got);
}

/// `contents` written to a fresh file `name` in a temporary directory.
fn temp_file(name: &str, contents: &[u8]) -> PathBuf {
    let path = crate::common::tempdir(&format!("pipeline-{}", name.replace('.', "-"))).join(name);
    std::fs::write(&path, contents).unwrap();
    path
}

#[test]
fn reads_excel_csv_with_a_bom_and_crlf() {
    // What Excel's "CSV UTF-8" writes: a byte-order mark, CRLF line ends, quotes where needed.
    let path =
        temp_file("excel.csv", "\u{feff}text,label\r\n\"好吃, 很快\",1\r\n不好吃,0\r\n\r\n".as_bytes());
    let got = texts_and_labels(&path, None, &Columns::default());
    assert_eq!(got, pairs(&[("好吃, 很快", "1"), ("不好吃", "0")]));
    let path = temp_file("crlf.tsv", b"sentence\tlabel\r\nfine\t1\r\nbad\t0\r\n");
    assert_eq!(texts_and_labels(&path, None, &Columns::default()), pairs(&[("fine", "1"), ("bad", "0")]));
    let path = temp_file("bom.jsonl", "\u{feff}{\"text\": \"好\", \"label\": 1}\r\n".as_bytes());
    assert_eq!(texts_and_labels(&path, None, &Columns::default()), pairs(&[("好", "1")]));
}

/// A reader that gives one byte per `read`, as a pipe may.
struct Trickle<'a>(&'a [u8]);

impl std::io::Read for Trickle<'_> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let Some((&first, rest)) = self.0.split_first() else { return Ok(0) };
        if buf.is_empty() {
            return Ok(0);
        }
        buf[0] = first;
        self.0 = rest;
        Ok(1)
    }
}

#[test]
fn reads_from_any_reader_as_from_a_file() {
    // dataset::read is what load runs on the file; the byte-order mark is found even when the
    // reader hands over one byte at a time.
    let bytes = "\u{feff}text,label\r\n\"好吃, 很快\",1\r\n不好吃,0\r\n".as_bytes();
    let path = temp_file("trickle.csv", bytes);
    let from_file = dataset::load(&path, None, &Columns::default()).unwrap();
    let from_reader = dataset::read(Trickle(bytes), &path, Format::Csv, &Columns::default()).unwrap();
    assert_eq!(from_reader, from_file);
    assert_eq!(from_file.len(), 2);
}

#[test]
fn finds_the_common_column_names_in_every_format() {
    // PaddleNLP/CLUE (text_a), SST-2 dev/test (content), review sites (comment, polarity).
    for (text, label) in [("text_a", "label"), ("content", "polarity"), ("comment", "sentiment")] {
        let tsv = temp_file("cols.tsv", format!("qid\t{label}\t{text}\n7\t1\t不错\n").as_bytes());
        let csv = temp_file("cols.csv", format!("{text},{label}\n不错,1\n").as_bytes());
        let jsonl = temp_file("cols.jsonl", format!("{{\"{text}\": \"不错\", \"{label}\": 1}}\n").as_bytes());
        for path in [tsv, csv, jsonl] {
            assert_eq!(texts_and_labels(&path, None, &Columns::default()), pairs(&[("不错", "1")]), "{text}");
        }
    }
}

#[test]
fn loads_json_lines_with_integer_or_string_labels() {
    let got = texts_and_labels(&fixture("reviews.jsonl"), None, &Columns::default());
    assert_eq!(got, pairs(&[("great", "1"), ("awful", "0"), ("fine", "1")]));
    let labels = LabelSet::from_examples(
        &dataset::load(&fixture("reviews.jsonl"), None, &Columns::default()).unwrap(),
    );
    assert_eq!(labels.unwrap().names(), ["0", "1"]);
}

#[test]
fn loads_an_imdb_folder() {
    let got = texts_and_labels(&fixture("imdb"), None, &Columns::default());
    assert_eq!(
        got,
        pairs(&[("Dull.  Skip.", "neg"), ("Loved it. Would watch again.", "pos"), ("A classic.", "pos")])
    );
}

#[cfg(unix)]
#[test]
fn a_fifo_in_an_imdb_folder_is_an_error_not_a_wait() {
    let dir = crate::common::tempdir("imdb-fifo");
    for label in ["neg", "pos"] {
        std::fs::create_dir_all(dir.join(label)).unwrap();
        std::fs::write(dir.join(label).join("1.txt"), "fine").unwrap();
    }
    let fifo = dir.join("pos").join("2.txt");
    assert!(std::process::Command::new("mkfifo").arg(&fifo).status().unwrap().success());
    let err = dataset::load(&dir, None, &Columns::default()).unwrap_err().to_string();
    assert_eq!(err, format!("{}: not a regular file", fifo.display()));
    std::fs::remove_dir_all(dir).unwrap();
}

#[test]
fn integer_labels_sort_numerically() {
    let examples: Vec<_> = ["10", "2", "1"]
        .iter()
        .map(|l| dataset::Example {
            text: "x".into(),
            label: l.to_string(),
            origin: dataset::Origin::Line("f".into(), 1),
        })
        .collect();
    assert_eq!(LabelSet::from_examples(&examples).unwrap().names(), ["1", "2", "10"]);
}

#[test]
fn seeded_split_is_a_deterministic_partition() {
    let examples =
        dataset::load(&crate::common::root().join("data/sample/dev.tsv"), None, &Columns::default()).unwrap();
    let [a1, b1, c1] = dataset::split(examples.clone(), 0.1, 0.2, 5).unwrap();
    let [a2, _, _] = dataset::split(examples.clone(), 0.1, 0.2, 5).unwrap();
    assert_eq!((a1.len(), b1.len(), c1.len()), (280, 40, 80));
    assert_eq!(a1, a2);
    let mut all: Vec<String> = a1.iter().chain(&b1).chain(&c1).map(|e| e.text.clone()).collect();
    let mut original: Vec<String> = examples.iter().map(|e| e.text.clone()).collect();
    all.sort();
    original.sort();
    assert_eq!(all, original);
}

/// Every cell.
pub(crate) const CELLS: [Cell; 3] = [Cell::Lstm, Cell::Gru, Cell::Rnn];

/// A small classifier (50 tokens, 8-wide embedding, 12 hidden units, 3 classes, no dropout) of
/// `cell`, directions, depth and pooling, with PyTorch's initial draws.
pub(crate) fn model(
    cell: Cell,
    bidirectional: bool,
    num_layers: i64,
    pooling: Pooling,
) -> (nn::VarStore, TextClassifier) {
    let config = TextClassifierConfig {
        vocab_size: 50,
        num_classes: 3,
        architecture: TextArchitecture {
            embedding_dim: 8,
            cell,
            hidden_size: 12,
            num_layers,
            bidirectional,
            dropout: 0.0,
            embedding_dropout: 0.0,
            pooling,
            output_dropout: 0.0,
            forget_bias: None,
        },
    };
    let vs = nn::VarStore::new(Device::Cpu);
    let model = TextClassifier::new(&vs.root(), config).unwrap();
    (vs, model)
}

fn sentences() -> Vec<Vec<i64>> {
    vec![vec![5, 9, 2], vec![7, 3, 3, 8, 11, 4, 20, 6], vec![14], vec![30, 31, 32, 33, 34, 35]]
}

/// Largest |a - b| of two tensors.
fn max_diff(a: &Tensor, b: &Tensor) -> f64 {
    (a - b).abs().max().double_value(&[])
}

#[test]
fn logits_do_not_depend_on_the_batch() {
    // A sentence alone vs. batched with longer (and shorter) ones, each cell, uni- and
    // bidirectional.
    // Tolerance 1e-6: different batch sizes give GEMMs of different shapes, which round
    // differently (measured: ≤ 3e-8, about an ulp of these logits); padding that reached the
    // LSTM would move them by orders of magnitude more, as the control below shows.
    const TOLERANCE: f64 = 1e-6;
    let configs = [(false, 1), (true, 1), (false, 2), (true, 3)];
    for (cell, (bidirectional, layers)) in CELLS.iter().flat_map(|c| configs.iter().map(move |b| (*c, *b))) {
        let (_vs, model) = model(cell, bidirectional, layers, Pooling::Last);
        let all = sentences();
        let data = Encoded::from_ids(&all, vec![0; all.len()]).unwrap();
        let batched = infer::logits(&model, &data, all.len(), Device::Cpu).unwrap();
        for (i, sentence) in all.iter().enumerate() {
            let alone = Encoded::from_ids(std::slice::from_ref(sentence), vec![0]).unwrap();
            let alone = infer::logits(&model, &alone, 1, Device::Cpu).unwrap();
            let row = batched.get(i as i64).unsqueeze(0);
            let diff = max_diff(&alone, &row);
            assert!(
                diff <= TOLERANCE,
                "{cell} bidirectional={bidirectional} layers={layers} sentence {i}: |Δ| {diff:e}"
            );
        }

        // Control: the same padded batch with the padding counted as tokens.
        let batch = data.batch(&[0, 1, 2, 3]).unwrap();
        let padded_lengths = Tensor::from_slice(&[8i64; 4]);
        let leaked = model.forward(&batch.tokens, &padded_lengths, false).unwrap();
        let diff = max_diff(&leaked.get(2), &batched.get(2));
        assert!(
            diff > 100.0 * TOLERANCE,
            "{cell}: padding barely moved the logits ({diff:e}): the check above is vacuous"
        );
    }
}

fn vocab_and_labels() -> (Vocab, LabelSet) {
    let vocab_tokens: Vec<String> =
        ["<pad>", "<unk>"].iter().map(|s| s.to_string()).chain((2..50).map(|i| format!("w{i}"))).collect();
    let vocab = Vocab::from_tokens(vocab_tokens).unwrap();
    let labels = LabelSet::from_names(vec!["a".into(), "b".into(), "c".into()]).unwrap();
    (vocab, labels)
}

/// Saves `model` (its variables `vs`) as the checkpoint `path`.
fn save(path: &Path, vs: &nn::VarStore, model: &TextClassifier) -> CheckpointConfig {
    let (vocab, labels) = vocab_and_labels();
    let config = CheckpointConfig::new(
        *model.config(),
        TokenizerConfig::default(),
        Truncate::head(100),
        &vocab,
        &labels,
    );
    checkpoint::save(path, &config, vs).unwrap();
    config
}

#[test]
fn max_pooling_gives_the_same_logits_with_and_without_gradients() {
    // With gradients the maximum over the steps is `max(1)` (its backward is PyTorch's); in
    // inference it is `amax`, a faster reduction: the same logits, bit for bit, for every cell,
    // direction and depth.
    let data = Encoded::from_ids(&sentences(), vec![0; 4]).unwrap();
    let batch = data.batch(&[0, 1, 2, 3]).unwrap();
    for cell in CELLS {
        for (bidirectional, layers) in [(false, 1), (true, 2)] {
            let (_vs, model) = model(cell, bidirectional, layers, Pooling::Max);
            let with_gradients = model.forward(&batch.tokens, &batch.lengths, false).unwrap();
            assert!(with_gradients.requires_grad());
            let inference = tch::no_grad(|| model.forward(&batch.tokens, &batch.lengths, false)).unwrap();
            assert!(!inference.requires_grad());
            assert!(with_gradients.equal(&inference), "{cell} {bidirectional} {layers}");
        }
    }
}

#[test]
fn save_then_load_gives_identical_logits() {
    // Every cell × directions × layers × pooling: the weights are saved under the cell's names
    // (`lstm.*`, `gru.*`, `rnn.*`), the config says which cell, and the loaded model gives the
    // same logits, bit for bit, of the right shape.
    let dir = crate::common::tempdir("roundtrip");
    let data = Encoded::from_ids(&sentences(), vec![0; 4]).unwrap();
    for cell in CELLS {
        for (bidirectional, layers) in [(false, 1), (true, 2)] {
            for pooling in [Pooling::Last, Pooling::Max, Pooling::Mean] {
                let name = format!("{cell} bidirectional={bidirectional} layers={layers} {pooling:?}");
                let (vs, model) = model(cell, bidirectional, layers, pooling);
                let path = dir.join(format!("ckpt-{cell}-{bidirectional}-{layers}-{pooling:?}"));
                let config = save(&path, &vs, &model);
                if (cell, bidirectional, pooling) == (Cell::Lstm, false, Pooling::Last) {
                    // Saving again replaces the checkpoint in place.
                    save(&path, &vs, &model);
                }
                let weights = Tensor::read_safetensors(path.join(checkpoint::WEIGHTS_FILE)).unwrap();
                let prefix = format!("{cell}.");
                let recurrent = weights.iter().filter(|(n, _)| n.starts_with(&prefix)).count();
                assert_eq!(recurrent, 4 * layers as usize * (1 + bidirectional as usize), "{name}");
                assert_eq!(weights.len(), recurrent + 3, "{name}: embedding.weight, fc.weight, fc.bias");

                let loaded = checkpoint::load(&path, Device::Cpu).unwrap();
                assert_eq!(loaded.config, config, "{name}");
                assert_eq!(loaded.config.model.architecture.cell, cell, "{name}");
                let before = infer::logits(&model, &data, 4, Device::Cpu).unwrap();
                let after = infer::logits(&loaded.model, &data, 4, Device::Cpu).unwrap();
                assert_eq!(before.size(), [4, 3], "{name}");
                assert!(before.equal(&after), "{name}: {before} vs {after}");
            }
        }
    }
    let names: Vec<String> =
        std::fs::read_dir(&dir).unwrap().map(|e| e.unwrap().file_name().into_string().unwrap()).collect();
    assert!(names.iter().all(|n| !n.starts_with('.')), "scratch directories left behind: {names:?}");
    std::fs::remove_dir_all(dir).unwrap();
}

#[test]
fn checkpoint_formats_say_which_cell() {
    // Format 3 names the cell; formats 1 and 2 (no `cell`) hold an LSTM. An LSTM checkpoint
    // rewritten as format 2 loads and predicts exactly as the format-3 one; a format-2 config
    // cannot claim another cell; format 3 must name its cell; and a config whose cell disagrees
    // with the weights' names is refused, never read as another cell.
    let dir = crate::common::tempdir("formats");
    let data = Encoded::from_ids(&sentences(), vec![0; 4]).unwrap();
    let edit = |path: &Path, edit: &dyn Fn(&mut serde_json::Value)| {
        let file = path.join(checkpoint::CONFIG_FILE);
        let mut config: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(&file).unwrap()).unwrap();
        edit(&mut config);
        std::fs::write(&file, serde_json::to_string_pretty(&config).unwrap()).unwrap();
    };
    let load_error = |path: &Path| checkpoint::load(path, Device::Cpu).unwrap_err().to_string();

    let (vs, lstm) = model(Cell::Lstm, true, 1, Pooling::Last);
    let path = dir.join("lstm");
    save(&path, &vs, &lstm);
    let config: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(path.join(checkpoint::CONFIG_FILE)).unwrap()).unwrap();
    assert_eq!(config["format_version"], 3);
    assert_eq!(config["model"]["cell"], "lstm");
    let expected = infer::logits(&lstm, &data, 4, Device::Cpu).unwrap();
    edit(&path, &|c| {
        c["format_version"] = 2.into();
        c["model"].as_object_mut().unwrap().remove("cell");
    });
    let loaded = checkpoint::load(&path, Device::Cpu).unwrap();
    assert_eq!(loaded.config.model.architecture.cell, Cell::Lstm);
    assert!(infer::logits(&loaded.model, &data, 4, Device::Cpu).unwrap().equal(&expected));

    edit(&path, &|c| c["model"]["cell"] = "gru".into());
    assert!(
        load_error(&path).contains("a format-2 checkpoint holds an LSTM, not a nn.GRU"),
        "{}",
        load_error(&path)
    );

    let (vs, gru) = model(Cell::Gru, false, 2, Pooling::Max);
    let path = dir.join("gru");
    save(&path, &vs, &gru);
    checkpoint::load(&path, Device::Cpu).unwrap();
    edit(&path, &|c| {
        c["model"].as_object_mut().unwrap().remove("cell");
    });
    assert!(
        load_error(&path).contains("config.json is corrupted: model.cell missing"),
        "{}",
        load_error(&path)
    );
    for (cell, version) in [("lstm", 3), ("rnn", 3), ("lstm", 2)] {
        edit(&path, &|c| {
            c["format_version"] = version.into();
            c["model"]["cell"] = cell.into();
        });
        let error = load_error(&path);
        assert!(
            error.contains("does not match config.json")
                && error.contains(&format!("{cell}.weight_ih_l0 missing")),
            "{error}"
        );
    }
    std::fs::remove_dir_all(dir).unwrap();
}

#[test]
fn the_forget_bias_draws_nothing_and_is_recorded() {
    // The same seed with and without `--forget-bias 1`: every parameter the same bits but the
    // forget gate's quarter (rows h..2h) of each bias, 1 in bias_ih and 0 in bias_hh; the
    // checkpoint's config.json says so (and says nothing without it), loads back the same, and a
    // config that gives a GRU a forget bias is refused.
    let _generator = crate::common::generator();
    let dir = crate::common::tempdir("forget-bias");
    let plain_config = *model(Cell::Lstm, true, 2, Pooling::Last).1.config();
    let build = |forget_bias| {
        let architecture = TextArchitecture { forget_bias, ..plain_config.architecture };
        tch::manual_seed(11);
        let vs = nn::VarStore::new(Device::Cpu);
        let model =
            TextClassifier::new(&vs.root(), TextClassifierConfig { architecture, ..plain_config }).unwrap();
        (vs, model)
    };
    let ((plain_vs, plain), (vs, biased)) = (build(None), build(Some(1.0)));
    let h = 12;
    for (name, value) in vs.variables() {
        let before = &plain_vs.variables()[&name];
        if name.contains(".bias_") {
            let forget = value.narrow(0, h, h);
            let expected = if name.contains("bias_ih") { 1.0 } else { 0.0 };
            assert!(forget.equal(&forget.full_like(expected)), "{name}: {forget}");
            let others = [value.narrow(0, 0, h), value.narrow(0, 2 * h, 2 * h)];
            let plain_others = [before.narrow(0, 0, h), before.narrow(0, 2 * h, 2 * h)];
            assert!(others.iter().zip(&plain_others).all(|(a, b)| a.equal(b)), "{name}");
        } else {
            assert!(value.equal(before), "{name} differs: the forget bias drew something");
        }
    }
    let read = |path: &Path| -> serde_json::Value {
        serde_json::from_str(&std::fs::read_to_string(path.join(checkpoint::CONFIG_FILE)).unwrap()).unwrap()
    };
    let (plain_path, path) = (dir.join("plain"), dir.join("biased"));
    save(&plain_path, &plain_vs, &plain);
    assert!(read(&plain_path)["model"].get("forget_bias").is_none());
    let config = save(&path, &vs, &biased);
    assert_eq!(read(&path)["model"]["forget_bias"], 1.0);
    assert_eq!(checkpoint::load(&path, Device::Cpu).unwrap().config, config);

    let (gru_vs, gru) = model(Cell::Gru, false, 1, Pooling::Last);
    let gru_path = dir.join("gru");
    save(&gru_path, &gru_vs, &gru);
    let mut edited = read(&gru_path);
    edited["model"]["forget_bias"] = 1.0.into();
    std::fs::write(gru_path.join(checkpoint::CONFIG_FILE), edited.to_string()).unwrap();
    let error = format!("{:#}", checkpoint::load(&gru_path, Device::Cpu).unwrap_err());
    assert!(error.contains("--forget-bias applies to the LSTM only: nn.GRU has no forget gate"), "{error}");
    std::fs::remove_dir_all(dir).unwrap();
}

#[test]
fn refuses_to_replace_a_directory_that_is_not_a_checkpoint() {
    let dir = crate::common::tempdir("not-a-checkpoint");
    std::fs::write(dir.join("precious.txt"), "keep me").unwrap();
    let (vs, model) = model(Cell::Lstm, false, 1, Pooling::Last);
    let vocab = Vocab::from_tokens(
        (0..50).map(|i| ["<pad>", "<unk>"].get(i).map_or(format!("w{i}"), |s| s.to_string())).collect(),
    )
    .unwrap();
    let labels = LabelSet::from_names(vec!["a".into(), "b".into(), "c".into()]).unwrap();
    let config = CheckpointConfig::new(
        *model.config(),
        TokenizerConfig::default(),
        Truncate::head(100),
        &vocab,
        &labels,
    );
    let err = checkpoint::save(&dir, &config, &vs).unwrap_err().to_string();
    assert!(err.contains("is not a checkpoint"), "{err}");
    assert_eq!(std::fs::read_to_string(dir.join("precious.txt")).unwrap(), "keep me");
    std::fs::remove_dir_all(dir).unwrap();
}

#[test]
fn dropout_only_acts_in_training() {
    for cell in CELLS {
        let config = TextClassifierConfig {
            vocab_size: 50,
            num_classes: 3,
            architecture: TextArchitecture {
                embedding_dim: 8,
                cell,
                hidden_size: 12,
                num_layers: 2,
                bidirectional: false,
                dropout: 0.5,
                embedding_dropout: 0.0,
                pooling: Pooling::Last,
                output_dropout: 0.0,
                forget_bias: None,
            },
        };
        let vs = nn::VarStore::new(Device::Cpu);
        let model = TextClassifier::new(&vs.root(), config).unwrap();
        let tokens = Tensor::from_slice(&[5i64, 9, 2, 7]).view([1, 4]);
        let lengths = Tensor::from_slice(&[4i64]);
        let eval_a = model.forward(&tokens, &lengths, false).unwrap();
        let eval_b = model.forward(&tokens, &lengths, false).unwrap();
        assert!(eval_a.equal(&eval_b));
        let differs = (0..10).any(|_| !model.forward(&tokens, &lengths, true).unwrap().equal(&eval_a));
        assert!(differs, "{cell}: dropout 0.5 between layers never changed a training-mode output");
    }
}

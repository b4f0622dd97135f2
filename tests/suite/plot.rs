//! src/lab/plot: the heat map rows `explain --plot` builds from an explanation, and figures drawn
//! with the built-in bitmap font (the no-font case) and with whatever font this machine has,
//! decoded back from the PNG files; the errors a caller can cause.

use std::path::Path;

use crate::common::{png_size, tempdir};
use lstm_tch::{
    lab::explain::{Explanation, Named, TokenTrace},
    lab::plot::{self, HeatMap, Row, Scale, Series, Token, Typeface},
    nn::Cell,
};

/// A bidirectional two-class explanation of three tokens, values chosen per field.
fn explanation(text: &str, tokens: &[&str]) -> Explanation {
    let trace = |i: usize, token: &str| TokenTrace {
        token: token.to_owned(),
        known: i != 1,
        gates: Named(vec![
            ("input".to_owned(), vec![0.1 + i as f32, 0.2 + i as f32]),
            ("forget".to_owned(), vec![0.3 + i as f32, 0.4 + i as f32]),
            ("output".to_owned(), vec![0.5 + i as f32, 0.6 + i as f32]),
        ]),
        norms: Named(vec![("cell".to_owned(), vec![10.0 + i as f32, 20.0 + i as f32])]),
        probabilities: vec![0.25 * i as f32, 1.0 - 0.25 * i as f32],
    };
    Explanation {
        text: text.to_owned(),
        labels: vec!["正面".to_owned(), "负面".to_owned()],
        label: "负面".to_owned(),
        probabilities: vec![0.25, 0.75],
        cell: Cell::Lstm,
        directions: vec!["forward".to_owned(), "backward".to_owned()],
        gate_names: ["input", "forget", "output"].map(String::from).to_vec(),
        norm_names: vec!["cell".to_owned()],
        tokens: tokens.iter().enumerate().map(|(i, t)| trace(i, t)).collect(),
        max_logit_difference: 0.0,
        agrees: true,
    }
}

#[test]
fn explanation_rows_are_each_gate_per_direction_then_each_class() {
    let e = explanation("一点也不好吃", &["一", "点", "也"]);
    let map = e.heat_map();
    let names: Vec<&str> = map.rows.iter().map(|r| r.name.as_str()).collect();
    assert_eq!(
        names,
        [
            "forward input",
            "forward forget",
            "forward output",
            "forward |cell| *",
            "backward input",
            "backward forget",
            "backward output",
            "backward |cell| *",
            "P(正面)",
            "P(负面)"
        ]
    );
    let groups: Vec<&str> = map.rows.iter().map(|r| r.group.as_str()).collect();
    assert_eq!(groups, [["forward"; 4].as_slice(), &["backward"; 4], &["prediction"; 2]].concat());
    // Row values are the fields, per token, for the row's direction or class.
    assert_eq!(map.rows[0].values, [0.1, 1.1, 2.1]);
    assert_eq!(map.rows[5].values, [0.4, 1.4, 2.4]);
    assert_eq!(map.rows[7].values, [20.0, 21.0, 22.0]);
    assert_eq!(map.rows[9].values, [1.0, 0.75, 0.5]);
    let scales: Vec<Scale> = map.rows.iter().map(|r| r.scale).collect();
    let gates = [Scale::Unit, Scale::Unit, Scale::Unit, Scale::PerRow];
    assert_eq!(scales, [gates.as_slice(), &gates, &[Scale::Unit; 2]].concat());
    let tokens: Vec<(&str, bool)> = map.tokens.iter().map(|t| (t.text.as_str(), t.muted)).collect();
    assert_eq!(tokens, [("一", false), ("点", true), ("也", false)], "unknown tokens are muted");
    assert_eq!(map.title, "\"一点也不好吃\" → 负面 (0.75)");
    assert!(map.note.contains("min to max"), "the note says how |cell| is coloured: {}", map.note);

    // A long text's title keeps its first 60 characters; one direction gives four gate rows.
    let long = "a".repeat(61);
    let mut e = explanation(&long, &["a"]);
    e.directions.truncate(1);
    let map = e.heat_map();
    assert_eq!(map.title, format!("\"{}…\" → 负面 (0.75)", "a".repeat(60)));
    assert_eq!(map.rows.len(), 4 + 2);
}

fn sample_map(tokens: &[&str]) -> HeatMap {
    let n = tokens.len();
    HeatMap {
        title: "sample".to_owned(),
        tokens: tokens.iter().map(|t| Token { text: t.to_string(), muted: false }).collect(),
        rows: vec![
            Row {
                group: "a".into(),
                name: "unit".into(),
                values: (0..n).map(|i| i as f32 / n as f32).collect(),
                scale: Scale::Unit,
            },
            Row { group: "b".into(), name: "norm".into(), values: vec![f32::NAN; n], scale: Scale::PerRow },
        ],
        note: "a note".to_owned(),
    }
}

#[test]
fn with_no_font_file_the_heat_map_is_drawn_and_cjk_tokens_become_positions() {
    let dir = tempdir("plot-builtin");
    let path = dir.join("builtin.png");
    let maps = [sample_map(&["not", "good"]), sample_map(&["虽然", "不错", "!"])];
    let unshown = plot::heat_maps(&path, &maps, &Typeface::Builtin).unwrap();
    assert_eq!(unshown, ["虽然", "不错"]);
    let (width, height) = png_size(&path);
    // Two panels stacked: higher than one.
    plot::heat_maps(&dir.join("one.png"), &maps[..1], &Typeface::Builtin).unwrap();
    let (one_width, one_height) = png_size(&dir.join("one.png"));
    assert!(height > one_height && width >= one_width, "{width}×{height} vs {one_width}×{one_height}");
    // A text too long for one image keeps the tokens that fit (the note says how many).
    let many: Vec<String> = (0..2000).map(|i| format!("w{i}")).collect();
    let many: Vec<&str> = many.iter().map(String::as_str).collect();
    plot::heat_maps(&dir.join("long.png"), &[sample_map(&many)], &Typeface::Builtin).unwrap();
    let (width, _) = png_size(&dir.join("long.png"));
    assert!(width <= plot::MAX_SIDE && width > plot::MAX_SIDE - 200, "{width}");
    std::fs::remove_dir_all(dir).unwrap();
}

#[test]
fn figures_are_drawn_with_this_machines_font() {
    // Whatever `find` picks here (a system font, or the built-in one on a machine with none).
    let face = Typeface::find(None).unwrap();
    let dir = tempdir("plot-found");
    let unshown = plot::heat_maps(&dir.join("map.png"), &[sample_map(&["the", "end"])], &face).unwrap();
    assert!(unshown.is_empty(), "{} cannot show ASCII: {unshown:?}", face.describe());
    png_size(&dir.join("map.png"));
    let series = [
        Series::new("train loss", (1..=8).map(|e| (e as f64, 1.0 / e as f64)).collect()),
        Series::new("dev loss", vec![(1.0, 0.9), (2.0, f64::NAN), (3.0, 0.4), (8.0, 0.2)]),
    ];
    for log_y in [false, true] {
        let path = dir.join(format!("lines-{log_y}.png"));
        plot::lines(&path, "loss", "epoch", "loss", &series, log_y, &face).unwrap();
        assert_eq!(png_size(&path), (900, 560));
    }
    std::fs::remove_dir_all(dir).unwrap();
}

#[test]
fn line_charts_take_a_note_and_error_bars() {
    let face = Typeface::Builtin;
    let dir = tempdir("plot-bars");
    let bars = Series {
        name: "accuracy".into(),
        points: vec![(10.0, 0.9), (20.0, 0.7)],
        spread: vec![(10.0, 0.85, 0.95), (20.0, f64::NAN, 0.8), (20.0, 0.6, 0.8)],
    };
    // The note is the title's second line, in grey (the built-in font draws exact colours)
    // in rows that hold no grey without it.
    let grey_under_title = |title: &str| {
        let path = dir.join("bars.png");
        plot::lines(&path, title, "length", "accuracy", std::slice::from_ref(&bars), true, &face).unwrap();
        assert_eq!(png_size(&path), (900, 560));
        let mut reader = png::Decoder::new(std::io::BufReader::new(std::fs::File::open(&path).unwrap()))
            .read_info()
            .unwrap();
        let mut rgb = vec![0; reader.output_buffer_size().unwrap()];
        reader.next_frame(&mut rgb).unwrap();
        rgb[40 * 900 * 3..56 * 900 * 3].chunks(3).filter(|p| *p == [130, 130, 130]).count()
    };
    assert!(grey_under_title("accuracy\nmachine, seeds 0-2") > 50);
    assert_eq!(grey_under_title("accuracy"), 0);
    let path = dir.join("bars.png");
    // An error bar reaching 0 cannot go on a log scale, even when the points can.
    let low = Series { spread: vec![(10.0, 0.0, 0.95)], ..bars };
    let e = format!("{:#}", plot::lines(&path, "t", "x", "y", &[low], true, &face).unwrap_err());
    assert!(e.contains("series accuracy: y = 0 at x = 10"), "{e}");
    std::fs::remove_dir_all(dir).unwrap();
}

#[test]
fn bad_figures_and_paths_are_errors_naming_the_problem() {
    let face = Typeface::Builtin;
    let dir = tempdir("plot-errors");
    let err = |r: anyhow::Result<Vec<String>>| format!("{:#}", r.unwrap_err());
    let map = sample_map(&["a", "b"]);
    let missing = dir.join("no/such/dir/plot.png");
    let e = err(plot::heat_maps(&missing, std::slice::from_ref(&map), &face));
    assert!(e.contains(&missing.display().to_string()), "{e}");
    let e = err(plot::heat_maps(&dir.join("plot.jpg"), std::slice::from_ref(&map), &face));
    assert!(e.contains("plot.jpg") && e.contains(".png"), "{e}");
    let mut short = map.clone();
    short.rows[0].values.pop();
    assert!(err(plot::heat_maps(&dir.join("p.png"), &[short], &face))
        .contains("row unit has 1 values for 2 tokens"));
    assert!(err(plot::heat_maps(&dir.join("p.png"), &[], &face)).contains("nothing to plot"));

    let negative = [Series::new("margin", vec![(1.0, 0.5), (2.0, -0.1)])];
    let e = err(plot::lines(&dir.join("l.png"), "t", "x", "y", &negative, true, &face));
    assert!(e.contains("series margin") && e.contains("log scale"), "{e}");
    let empty = [Series::new("none", vec![(f64::NAN, 1.0)])];
    assert!(
        err(plot::lines(&dir.join("l.png"), "t", "x", "y", &empty, false, &face)).contains("nothing to plot")
    );
    assert!(!Path::new(&dir.join("l.png")).exists(), "no file for a failed figure");
    std::fs::remove_dir_all(dir).unwrap();
}

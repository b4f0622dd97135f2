//! The benchmark is not part of the test suite, but it must not rot: every workload, on both
//! sides, once, at tiny sizes (`scripts/bench.py --quick`), through the debug binaries: the CPU
//! suite and the device suite (`--device cuda`'s workloads, run here on the CPU).

use crate::common::{assert_clean_failure, example, lstm_tch, python, root, run, tempdir, text};
use serde_json::Value;
use std::time::Instant;

/// Runs `scripts/bench.py --quick --threads 1 [extra]` in a fresh directory and checks that each
/// of `workloads` has a positive, finite time on both sides and a ratio, and is in the printed
/// table; returns the report.
fn quick_bench(name: &str, extra: &[&str], workloads: &[&str]) -> Value {
    let dir = tempdir(name);
    let json = dir.join("bench.json");
    let script = root().join("scripts/bench.py");
    let (rust, article) = (lstm_tch(), example("article"));
    let mut args = vec![script.to_str().unwrap(), "--quick", "--threads", "1"];
    args.extend_from_slice(extra);
    args.extend([
        "--rust-bin",
        rust.to_str().unwrap(),
        "--article-bin",
        article.to_str().unwrap(),
        "--json",
        json.to_str().unwrap(),
    ]);
    let output = run(python(), &args);
    let (stdout, stderr) = text(&output);
    assert!(output.status.success(), "{stdout}{stderr}");
    let report: Value = serde_json::from_str(&std::fs::read_to_string(&json).unwrap()).unwrap();
    let results = report["results"].as_array().unwrap();
    for workload in workloads {
        let row = results
            .iter()
            .find(|r| r["workload"] == *workload)
            .unwrap_or_else(|| panic!("{workload} missing"));
        for side in ["rust", "pytorch", "ratio"] {
            let v = row[side].as_f64().unwrap();
            assert!(v.is_finite() && v > 0.0, "{workload}: {side} = {v}");
        }
        assert!(stdout.contains(workload), "{workload} not in the table:\n{stdout}");
    }
    std::fs::remove_dir_all(dir).unwrap();
    report
}

#[test]
fn every_workload_runs_on_both_sides() {
    let report = quick_bench(
        "bench-smoke",
        &[],
        &[
            "article step, pytorch Adam",
            "article step, libtorch Adam",
            "medium step",
            "text training, 1 epoch",
            "predict, in process p50",
            "predict, whole process",
            "peak memory, predict",
            "predict, whole process, CUDA loaded",
            "peak memory, predict, CUDA loaded",
            "peak memory, article run",
        ],
    );
    let results = report["results"].as_array().unwrap();
    // Where there is no NVIDIA driver, lstm-tch does not load libtorch_cuda unless forced, and
    // that is most of its footprint.
    if matches!(
        lstm_tch::runtime::device::cuda_support(),
        lstm_tch::runtime::device::CudaSupport::NoDriver(_)
    ) {
        let rust_peak = |workload: &str| {
            results.iter().find(|r| r["workload"] == workload).unwrap()["rust"].as_f64().unwrap()
        };
        let (plain, loaded) =
            (rust_peak("peak memory, predict"), rust_peak("peak memory, predict, CUDA loaded"));
        assert!(loaded > plain + 200.0, "peak memory without CUDA {plain} MiB, with {loaded} MiB");
    }
}

#[test]
fn the_device_suite_runs_on_both_sides() {
    // `scripts/bench.py --device cuda`'s workloads, rehearsed on the CPU at tiny sizes (the text
    // rows on a 300-sentence SST-2-style file).
    let report = quick_bench(
        "bench-smoke-device",
        &["--suite", "device", "--device", "cpu"],
        &[
            "article step",
            "medium step",
            "text training, 1 epoch, SST-2 size",
            "text training, 1 epoch, SST-2 size, --bucket",
            "--bucket (Rust) vs default batches (PyTorch)",
            "predict, in process p50",
        ],
    );
    assert_eq!(report["suite"], "device");
    let results = report["results"].as_array().unwrap();
    assert!(!results.iter().any(|r| r["workload"] == "predict, whole process"), "CPU-suite rows");
}

#[test]
fn paced_predictions_sleep_between_repetitions_untimed() {
    // `bench predict --pause-ms` (serve_bench.sh's forward at 10 req/s): the process sleeps
    // before each repetition, and no sleep is in the times it prints.
    let ckpt = root().join("tests/fixtures/format1");
    let bench = |pause: &str| {
        let args =
            ["bench", "predict", "--checkpoint", ckpt.to_str().unwrap(), "--warmup", "1", "--reps", "4"];
        let started = Instant::now();
        let output = run(lstm_tch(), &[&args[..], &["--pause-ms", pause]].concat());
        let (stdout, stderr) = text(&output);
        assert!(output.status.success(), "{stderr}");
        let report: Value = serde_json::from_str(&stdout).unwrap();
        let times: Vec<f64> =
            report["times_ms"].as_array().unwrap().iter().map(|t| t.as_f64().unwrap()).collect();
        (started.elapsed().as_secs_f64() * 1e3, times)
    };
    let (paced_wall_ms, paced) = bench("150");
    assert_eq!(paced.len(), 4);
    assert!(paced_wall_ms >= 4.0 * 150.0, "4 pauses of 150 ms took {paced_wall_ms:.0} ms in all");
    assert!(paced.iter().all(|&t| t > 0.0 && t < 150.0), "a pause was timed: {paced:?}");
    let output =
        run(lstm_tch(), &["bench", "predict", "--checkpoint", ckpt.to_str().unwrap(), "--pause-ms=-5"]);
    assert_clean_failure(&output, "--pause-ms must be between 0 and 60000, got -5", "a negative pause");
    let output = run(lstm_tch(), &["bench", "medium", "--shrink", "1000"]);
    assert_clean_failure(&output, "--shrink must be at most 32, got 1000", "a shrink past the sizes");
}

/// One loopback segment as tcpdump writes it (Ethernet, IPv4, a 32-byte TCP header), `ns` into
/// the capture.
fn pcap_segment(ns: u64, source: u16, destination: u16, payload: &[u8]) -> Vec<u8> {
    let mut frame = vec![0u8; 14];
    frame[12..14].copy_from_slice(&0x0800u16.to_be_bytes());
    let mut ip = vec![0u8; 20];
    ip[0] = 0x45;
    ip[2..4].copy_from_slice(&((20 + 32 + payload.len()) as u16).to_be_bytes());
    ip[9] = 6;
    let mut tcp = vec![0u8; 32];
    tcp[0..2].copy_from_slice(&source.to_be_bytes());
    tcp[2..4].copy_from_slice(&destination.to_be_bytes());
    tcp[12] = 8 << 4;
    frame.extend(ip.into_iter().chain(tcp).chain(payload.iter().copied()));
    let mut record = Vec::new();
    for field in
        [(ns / 1_000_000_000) as u32, (ns % 1_000_000_000) as u32, frame.len() as u32, frame.len() as u32]
    {
        record.extend(field.to_le_bytes());
    }
    record.extend(frame);
    record
}

#[test]
fn wire_latency_times_requests_from_the_captures_timestamps() {
    // scripts/wire_latency.py (serve_bench.sh's latencies on the wire): a request runs from its
    // first segment to the first segment of its answer, per connection; continuations, empty
    // segments and other ports do not open or close one.
    const MS: u64 = 1_000_000;
    let (server, a, b, c) = (8080, 40_000, 40_001, 40_002);
    let mut pcap = Vec::new();
    for field in [0xA1B2_3C4Du32, 0x0004_0002, 0, 0, 262_144, 1] {
        pcap.extend(field.to_le_bytes());
    }
    for (ns, source, destination, payload) in [
        (0, a, server, &b"POST /predict HTTP/1.1\r\n"[..]),
        (MS, a, server, b"{\"inputs\": \"ok\"}"),
        (2 * MS, b, server, b"POST /predict HTTP/1.1\r\n"),
        (2 * MS + MS / 2, server, b, b"HTTP/1.1 429 Too Many"),
        (3 * MS, server, a, b"HTTP/1.1 429 Too Many"),
        (3 * MS + 1, server, a, b"{\"error\": \"busy\"}"),
        (4 * MS, 5555, 6666, b"HTTP/1.1 200 OK"),
        (10 * MS, a, server, b"POST /predict HTTP/1.1\r\n"),
        (25 * MS, server, a, b"HTTP/1.1 200 OK\r\n"),
        (30 * MS, b, server, b"POST /predict HTTP/1.1\r\n"),
        (40 * MS, c, server, b""),
    ] {
        pcap.extend(pcap_segment(ns, source, destination, payload));
    }
    let dir = tempdir("wire-latency");
    let capture = dir.join("capture.pcap");
    std::fs::write(&capture, pcap).unwrap();
    let script = root().join("scripts/wire_latency.py");
    let output = run(python(), &[script.to_str().unwrap(), capture.to_str().unwrap(), "8080"]);
    let (stdout, stderr) = text(&output);
    assert!(output.status.success(), "{stderr}");
    let report: Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(report["unanswered_at_end"], 1, "{report}");
    let refused = &report["by_status"]["429"];
    assert_eq!(refused["count"], 2, "{report}");
    // 0.5 ms (b) and 3 ms (a, from its first segment): the p50 of two is the lower (nearest rank)
    let (p50, max) = (refused["p50_ms"].as_f64(), refused["max_ms"].as_f64());
    assert_eq!((p50, max), (Some(0.5), Some(3.0)), "{report}");
    assert_eq!(refused["over_slow_ms"], 0);
    let answered = &report["by_status"]["200"];
    assert_eq!((answered["count"].as_u64(), answered["max_ms"].as_f64()), (Some(1), Some(15.0)), "{report}");
    assert_eq!(answered["over_slow_ms"], 1);
    // 3 requests began in the 50 ms up to the slow one's start (itself included): 60 a second
    assert_eq!(answered["arrivals_per_s_before_over"].as_f64().unwrap(), 60.0);
}

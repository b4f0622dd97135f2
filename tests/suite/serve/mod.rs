//! `lstm-tch serve` through real HTTP on 127.0.0.1, one subject per module:
//!
//! - `routes`: answers equal `predict`'s and `explain --json`'s, `/info`, health, metrics, the
//!   OpenAPI document;
//! - `v2`: the Open Inference Protocol routes;
//! - `limits`: every bad request a status and a one-line JSON error with the server still
//!   serving, the API key, back-pressure (429 at once), time-outs, slow and vanishing clients;
//! - `lifecycle`: SIGTERM answering every accepted request, reload (HTTP and SIGHUP, good and
//!   bad checkpoints, under load), start-up errors as one line.
//!
//! Each test starts its own server on a free port (`--port 0`) and talks to it over a plain
//! `TcpStream` (HTTP/1.1, `Connection: close`), so slow and broken clients can be played too.
//! This module holds that harness.

mod lifecycle;
mod limits;
mod routes;
mod v2;

use std::{
    io::{BufRead, BufReader, Read, Write},
    net::TcpStream,
    path::PathBuf,
    process::{Child, Command, Stdio},
    sync::OnceLock,
    time::Duration,
};

use serde_json::Value;

use crate::common::{lstm_tch, run, tempdir, text};

/// A small checkpoint trained once for all the tests here (the English sample, 1 epoch).
pub(super) fn checkpoint() -> &'static PathBuf {
    static CKPT: OnceLock<PathBuf> = OnceLock::new();
    CKPT.get_or_init(|| train("serve-ckpt", &[]))
}

/// Another checkpoint, to reload to: a GRU on the same sample.
pub(super) fn gru_checkpoint() -> &'static PathBuf {
    static CKPT: OnceLock<PathBuf> = OnceLock::new();
    CKPT.get_or_init(|| train("serve-gru", &["--cell", "gru"]))
}

/// A small model trained on the English sample for 1 epoch with `extra` flags, in a new
/// temporary directory named after `name`.
fn train(name: &str, extra: &[&str]) -> PathBuf {
    {
        let out = tempdir(name).join("ckpt");
        let args = [
            "train",
            "-q",
            "--epochs",
            "1",
            "--embedding-dim",
            "16",
            "--hidden-size",
            "16",
            "--threads",
            "1",
        ];
        let output = run(lstm_tch(), &[&args[..], extra, &["--out", out.to_str().unwrap()]].concat());
        assert!(output.status.success(), "{}", text(&output).1);
        out
    }
}

/// A running `lstm-tch serve`, killed when dropped.
pub(super) struct Server {
    pub(super) child: Child,
    pub(super) addr: String,
    /// The line the server logged when it started listening.
    pub(super) announced: String,
    /// What the server has written to stderr since it listened, line by line.
    log: std::sync::Arc<std::sync::Mutex<Vec<String>>>,
}

/// An HTTP response: status, headers (lower-case names), body.
pub(super) struct Reply {
    pub(super) status: u16,
    pub(super) headers: Vec<(String, String)>,
    pub(super) body: String,
}

impl Reply {
    pub(super) fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(n, _)| n == name).map(|(_, v)| v.as_str())
    }

    pub(super) fn json(&self) -> Value {
        serde_json::from_str(&self.body).unwrap_or_else(|e| panic!("not JSON ({e}): {}", self.body))
    }

    /// Asserts an error reply: `status`, a one-line JSON body `{"error", "error_type": kind}`.
    pub(super) fn assert_error(&self, status: u16, kind: &str, what: &str) {
        assert_eq!(self.status, status, "{what}: {}", self.body);
        assert!(!self.body.trim_end().contains('\n'), "{what}: the error is one line: {}", self.body);
        let body = self.json();
        assert_eq!(body["error_type"], kind, "{what}: {body}");
        assert!(body["error"].as_str().is_some_and(|e| !e.is_empty()), "{what}: {body}");
    }
}

impl Server {
    /// Starts `lstm-tch serve` on the test checkpoint with `extra` flags and waits until it
    /// listens.
    pub(super) fn start(extra: &[&str]) -> Server {
        Self::spawn(Command::new(lstm_tch()), extra)
    }

    /// [`Server::start`] with the process allowed only the CPUs `cpus` (`taskset -c`).
    pub(super) fn start_on_cpus(cpus: &str, extra: &[&str]) -> Server {
        let mut taskset = Command::new("taskset");
        taskset.args(["-c", cpus]).arg(lstm_tch());
        Self::spawn(taskset, extra)
    }

    /// Runs `command` (`lstm-tch`, or what runs it) with `serve` on the test checkpoint and
    /// `extra` flags, and waits until it listens.
    fn spawn(mut command: Command, extra: &[&str]) -> Server {
        let ckpt = checkpoint().to_str().unwrap().to_owned();
        let mut child = command
            .args(["serve", "--checkpoint", &ckpt, "--port", "0", "--threads", "1"])
            .args(extra)
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let mut stderr = BufReader::new(child.stderr.take().unwrap());
        let mut line = String::new();
        let addr = loop {
            line.clear();
            if stderr.read_line(&mut line).unwrap() == 0 {
                panic!("lstm-tch serve exited before listening: {:?}", child.wait());
            }
            if let Some(rest) = line.split("listening on http://").nth(1) {
                break rest.split_whitespace().next().unwrap().to_owned();
            }
        };
        let announced = line.trim_end().to_owned();
        let log = std::sync::Arc::new(std::sync::Mutex::new(vec![]));
        let lines = log.clone();
        std::thread::spawn(move || {
            for line in stderr.lines().map_while(Result::ok) {
                lines.lock().unwrap().push(line);
            }
        });
        Server { child, addr, announced, log }
    }

    /// The lines the server has logged since it listened.
    pub(super) fn log(&self) -> Vec<String> {
        self.log.lock().unwrap().clone()
    }

    /// Sends one request (`body` as is, with a JSON content type unless `headers` say
    /// otherwise) and reads the whole reply.
    pub(super) fn send(&self, method: &str, path: &str, headers: &[(&str, &str)], body: &[u8]) -> Reply {
        let length = body.len().to_string();
        self.send_raw(method, path, &[headers, &[("Content-Length", &length)]].concat(), body)
    }

    /// [`Server::send`] with no `Content-Length` of its own: `headers` frame `body` (a length,
    /// or chunked).
    pub(super) fn send_raw(&self, method: &str, path: &str, headers: &[(&str, &str)], body: &[u8]) -> Reply {
        let mut stream = TcpStream::connect(&self.addr).unwrap();
        stream.set_read_timeout(Some(Duration::from_secs(60))).unwrap();
        let mut head = format!("{method} {path} HTTP/1.1\r\nHost: {}\r\nConnection: close\r\n", self.addr);
        if !headers.iter().any(|(n, _)| n.eq_ignore_ascii_case("content-type")) {
            head.push_str("Content-Type: application/json\r\n");
        }
        for (name, value) in headers {
            head.push_str(&format!("{name}: {value}\r\n"));
        }
        head.push_str("\r\n");
        stream.write_all(head.as_bytes()).unwrap();
        stream.write_all(body).unwrap();
        let mut raw = Vec::new();
        stream.read_to_end(&mut raw).unwrap();
        parse(&raw)
    }

    pub(super) fn post(&self, path: &str, body: &Value) -> Reply {
        self.send("POST", path, &[], body.to_string().as_bytes())
    }

    pub(super) fn get(&self, path: &str) -> Reply {
        self.send("GET", path, &[], b"")
    }

    /// Sends SIGTERM and waits for the exit status.
    pub(super) fn terminate(mut self) -> std::process::ExitStatus {
        let pid = self.child.id().to_string();
        assert!(Command::new("kill").args(["-TERM", &pid]).status().unwrap().success());
        let status = self.child.wait().unwrap();
        std::mem::forget(self);
        status
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// An HTTP/1.1 response with a `Content-Length` body.
pub(super) fn parse(raw: &[u8]) -> Reply {
    let text = String::from_utf8_lossy(raw);
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or_else(|| panic!("no header end: {text}"));
    let mut lines = head.lines();
    let status = lines.next().unwrap().split_whitespace().nth(1).unwrap().parse().unwrap();
    let headers = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(n, v)| (n.trim().to_ascii_lowercase(), v.trim().to_owned()))
        .collect();
    Reply { status, headers, body: body.to_owned() }
}

/// `lstm-tch predict --json` on `texts` (one call, one batch) with the LSTM kernel the server
/// runs by default (`--lstm-kernel onednn`): each text's probabilities.
pub(super) fn predicted(texts: &[&str]) -> Vec<Value> {
    predicted_by(checkpoint(), texts)
}

/// [`predicted`] with the checkpoint `ckpt`.
pub(super) fn predicted_by(ckpt: &std::path::Path, texts: &[&str]) -> Vec<Value> {
    predicted_with(ckpt, "onednn", texts)
}

/// [`predicted`] with the checkpoint `ckpt` and `--lstm-kernel kernel`.
pub(super) fn predicted_with(ckpt: &std::path::Path, kernel: &str, texts: &[&str]) -> Vec<Value> {
    let ckpt = ckpt.to_str().unwrap().to_owned();
    let flags = ["predict", "--json", "--threads", "1", "--lstm-kernel", kernel, "--checkpoint", &ckpt];
    let args = [&flags[..], texts].concat();
    let output = run(lstm_tch(), &args);
    assert!(output.status.success(), "{}", text(&output).1);
    text(&output)
        .0
        .lines()
        .map(|l| serde_json::from_str::<Value>(l).unwrap()["probabilities"].clone())
        .collect()
}

/// The `{label: score}` map of one ranked answer, checking it is sorted by score.
pub(super) fn scores(ranked: &Value) -> serde_json::Map<String, Value> {
    let list = ranked.as_array().unwrap();
    let values: Vec<f64> = list.iter().map(|e| e["score"].as_f64().unwrap()).collect();
    assert!(values.windows(2).all(|w| w[0] >= w[1]), "sorted by score: {ranked}");
    list.iter().map(|e| (e["label"].as_str().unwrap().to_owned(), e["score"].clone())).collect()
}

pub(super) const TEXTS: [&str; 3] = [
    "Not bad at all.",
    "The acting was great, but it was far too long.",
    "It was slow at first, but the ending was wonderful!",
];

impl Server {
    /// Waits for a server already sent SIGTERM to exit.
    pub(super) fn terminate_wait(mut self) -> std::process::ExitStatus {
        let status = self.child.wait().unwrap();
        std::mem::forget(self);
        status
    }
}

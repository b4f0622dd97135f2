//! The server's life: SIGTERM answers every accepted request and exits 0; reload (HTTP and
//! SIGHUP) swaps the model without an error, and a bad checkpoint leaves the old one serving;
//! start-up errors are one line and exit 1.

use std::{process::Command, time::Duration};

use serde_json::json;

use super::{checkpoint, gru_checkpoint, predicted_by, scores, Server};
use crate::common::{lstm_tch, run, tempdir, text};

#[test]
fn sigterm_answers_every_accepted_request_then_exits_0() {
    let server = Server::start(&["--max-batch-delay", "3000"]);
    let replies: Vec<u16> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..6)
            .map(|i| {
                let server = &server;
                s.spawn(move || server.post("/predict", &json!({"inputs": format!("request {i}")})).status)
            })
            .collect();
        std::thread::sleep(Duration::from_millis(1000)); // all six are queued in the 3 s window
        let pid = server.child.id().to_string();
        assert!(Command::new("kill").args(["-TERM", &pid]).status().unwrap().success());
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    assert_eq!(replies, [200; 6], "every accepted request is answered");
    let status = server.terminate_wait();
    assert_eq!(status.code(), Some(0), "a clean exit");
}

#[test]
fn start_up_errors_are_one_line_and_exit_1() {
    let busy = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = busy.local_addr().unwrap().port().to_string();
    let ckpt = checkpoint().to_str().unwrap().to_owned();
    let missing = tempdir("serve-missing").join("nothing");
    for (args, needle) in [
        (vec!["serve", "--checkpoint", &ckpt, "--port", &port], "cannot listen on 127.0.0.1:"),
        (vec!["serve", "--checkpoint", missing.to_str().unwrap(), "--port", "0"], "nothing"),
        (
            vec!["serve", "--checkpoint", &ckpt, "--max-batch-size", "0"],
            "--max-batch-size must be at least 1",
        ),
        (vec!["serve", "--checkpoint", &ckpt, "--workers", "0"], "--workers must be at least 1"),
        (
            vec!["serve", "--checkpoint", &ckpt, "--max-client-batch-size", "100"],
            "must not exceed --max-batch-size",
        ),
        (
            vec!["serve", "--checkpoint", &ckpt, "--cors-allow-origin", ""],
            "--cors-allow-origin \"\" is neither an origin (scheme://host[:port]) nor *",
        ),
        (vec!["serve", "--checkpoint", &ckpt, "--threads", "100000"], "--threads must be at most 1024"),
    ] {
        let output = run(lstm_tch(), &args);
        assert_eq!(output.status.code(), Some(1), "{args:?}");
        crate::common::assert_clean_failure(&output, needle, &format!("{args:?}"));
        assert_eq!(text(&output).1.lines().count(), 1, "one line: {}", text(&output).1);
    }
}

/// The CPUs this test may run on (its affinity mask), in order.
fn allowed_cpus() -> Vec<usize> {
    // SAFETY: a zeroed cpu_set_t is an empty set; sched_getaffinity writes at most its size.
    let mut set: libc::cpu_set_t = unsafe { std::mem::zeroed() };
    let size = std::mem::size_of::<libc::cpu_set_t>();
    assert_eq!(unsafe { libc::sched_getaffinity(0, size, &mut set) }, 0, "sched_getaffinity");
    (0..libc::CPU_SETSIZE as usize).filter(|&cpu| unsafe { libc::CPU_ISSET(cpu, &set) }).collect()
}

#[test]
fn the_threads_fit_the_cpus_the_server_may_run_on() {
    let cpus = allowed_cpus();
    // On one CPU, one HTTP thread: two would time-slice and leave requests unread meanwhile.
    let one = Server::start_on_cpus(&cpus[0].to_string(), &[]);
    for field in ["http_threads=1", "model_threads=1"] {
        assert!(one.announced.contains(field), "{field} on one CPU: {}", one.announced);
    }
    assert_eq!(one.get("/health").status, 200);
    drop(one);
    if cpus.len() >= 2 {
        // With --threads 1, a model thread per CPU; the HTTP threads are at most two.
        let two = Server::start_on_cpus(&format!("{},{}", cpus[0], cpus[1]), &[]);
        for field in ["http_threads=2", "model_threads=2"] {
            assert!(two.announced.contains(field), "{field} on two CPUs: {}", two.announced);
        }
    }
}

#[test]
fn sigterm_on_an_idle_server_exits_0() {
    let server = Server::start(&[]);
    assert_eq!(server.get("/ready").status, 200);
    assert_eq!(server.terminate().code(), Some(0));
}

/// The `/metrics` line of reloads with `result`, e.g. `lstm_tch_model_reloads_total{result="ok"} 2`.
fn reloads(result: &str, count: usize) -> String {
    format!("lstm_tch_model_reloads_total{{result=\"{result}\"}} {count}")
}

/// Waits (up to 10 s) for `line` in `/metrics`.
fn wait_for_metric(server: &Server, line: &str) {
    let mut metrics = String::new();
    for _ in 0..100 {
        metrics = server.get("/metrics").body;
        if metrics.contains(line) {
            return;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    panic!("{line} not in:\n{metrics}");
}

#[test]
fn reload_swaps_the_model_and_a_bad_checkpoint_leaves_the_old_one_serving() {
    let server = Server::start(&[]);
    let text = "It was slow at first, but the ending was wonderful!";
    // Bad checkpoints: a missing directory, a corrupt weights file; bad bodies.
    let missing = tempdir("serve-reload-missing").join("none");
    let reply = server.post("/admin/reload", &json!({"checkpoint": missing}));
    reply.assert_error(422, "reload", "a missing checkpoint");
    assert!(reply.json()["error"].as_str().unwrap().contains("the old model keeps serving"));
    let corrupt = tempdir("serve-reload-corrupt");
    for file in ["config.json", "model.safetensors"] {
        std::fs::copy(checkpoint().join(file), corrupt.join(file)).unwrap();
    }
    std::fs::write(corrupt.join("model.safetensors"), b"not weights").unwrap();
    server.post("/admin/reload", &json!({"checkpoint": corrupt})).assert_error(
        422,
        "reload",
        "corrupt weights",
    );
    let bodies: [(&[u8], u16); 3] = [(b"{", 400), (br#"{"checkpoint": 5}"#, 422), (br#"{"dir": "x"}"#, 422)];
    for (body, status) in bodies {
        server.send("POST", "/admin/reload", &[], body).assert_error(
            status,
            "validation",
            "a bad reload body",
        );
    }
    assert_eq!(server.get("/info").json()["cell"], "lstm", "the old model serves");
    let reply = server.post("/predict", &json!({"inputs": text}));
    assert_eq!(json!(scores(&reply.json())), predicted_by(checkpoint(), &[text])[0]);

    // A good one: the GRU answers from now on, as `predict` with it does.
    let reply = server.post("/admin/reload", &json!({"checkpoint": gru_checkpoint()}));
    assert_eq!(reply.status, 200, "{}", reply.body);
    assert_eq!(reply.json()["cell"], "gru");
    assert_eq!(server.get("/info").json()["model_id"], gru_checkpoint().to_str().unwrap());
    let reply = server.post("/predict", &json!({"inputs": text}));
    assert_eq!(json!(scores(&reply.json())), predicted_by(gru_checkpoint(), &[text])[0]);

    // SIGHUP reloads the directory served now.
    let pid = server.child.id().to_string();
    assert!(Command::new("kill").args(["-HUP", &pid]).status().unwrap().success());
    wait_for_metric(&server, &reloads("ok", 2));
    assert_eq!(server.get("/info").json()["cell"], "gru");
    wait_for_metric(&server, &reloads("error", 2));
    assert_eq!(server.get("/ready").status, 200, "ready throughout");
}

#[test]
fn reload_under_load_answers_every_request() {
    let server = Server::start(&[]);
    let stop = std::sync::atomic::AtomicBool::new(false);
    let statuses: Vec<u16> = std::thread::scope(|s| {
        let clients: Vec<_> = (0..4)
            .map(|i| {
                let (server, stop) = (&server, &stop);
                s.spawn(move || {
                    let mut statuses = vec![];
                    while !stop.load(std::sync::atomic::Ordering::SeqCst) {
                        let body = json!({"inputs": format!("review {i}: {} was fine", statuses.len())});
                        statuses.push(server.post("/predict", &body).status);
                    }
                    statuses
                })
            })
            .collect();
        for dir in [gru_checkpoint(), checkpoint(), gru_checkpoint(), checkpoint()] {
            let reply = server.post("/admin/reload", &json!({"checkpoint": dir}));
            assert_eq!(reply.status, 200, "{}", reply.body);
        }
        stop.store(true, std::sync::atomic::Ordering::SeqCst);
        clients.into_iter().flat_map(|c| c.join().unwrap()).collect()
    });
    assert!(statuses.len() >= 4, "the clients ran: {}", statuses.len());
    assert!(statuses.iter().all(|&s| s == 200), "every request answered 200: {statuses:?}");
}

/// What became of one request in [`sigterm_under_keep_alive_load_loses_no_request`].
#[derive(Debug, Clone, Copy, PartialEq)]
enum Fate {
    /// A whole answer (and whether it said `Connection: close`).
    Answered(u16, bool),
    /// No connection: the server had stopped listening (a clean refusal).
    Refused,
    /// Written on a connection that closed without an answer: lost.
    Lost,
}

/// Sends `body` to /predict on `stream` (kept alive) and reads one whole answer.
fn exchange(stream: &mut std::net::TcpStream, addr: &str, body: &str) -> Fate {
    use std::io::{BufRead, BufReader, Read, Write};
    let head = format!("POST /predict HTTP/1.1\r\nHost: {addr}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n", body.len());
    if stream.write_all(format!("{head}{body}").as_bytes()).is_err() {
        return Fate::Lost;
    }
    let mut reader = BufReader::new(stream);
    let (mut line, mut status, mut length, mut close) = (String::new(), 0, 0, false);
    loop {
        line.clear();
        match reader.read_line(&mut line) {
            Ok(0) | Err(_) => return Fate::Lost,
            Ok(_) if line == "\r\n" => break,
            Ok(_) => {}
        }
        let lower = line.to_ascii_lowercase();
        if lower.starts_with("http/1.1 ") {
            status = lower[9..12].parse().unwrap_or(0);
        } else if let Some(v) = lower.strip_prefix("content-length:") {
            length = v.trim().parse().unwrap_or(0);
        } else if lower.starts_with("connection:") && lower.contains("close") {
            close = true;
        }
    }
    let mut rest = vec![0; length];
    match reader.read_exact(&mut rest) {
        Ok(()) => Fate::Answered(status, close),
        Err(_) => Fate::Lost,
    }
}

#[test]
fn sigterm_under_keep_alive_load_loses_no_request() {
    // Four clients on keep-alive connections send requests back to back (reconnecting when an
    // answer says `Connection: close`) while the server gets SIGTERM: every request written is
    // answered, and once the server stops listening a connection is refused, never reset.
    let server = Server::start(&[]);
    let addr = server.addr.clone();
    let fates: Vec<Fate> = std::thread::scope(|s| {
        let clients: Vec<_> = (0..4)
            .map(|i| {
                let addr = addr.clone();
                s.spawn(move || {
                    let mut fates = vec![];
                    let mut stream = None;
                    let started = std::time::Instant::now();
                    while started.elapsed() < Duration::from_secs(20) {
                        let Some(conn) = stream.as_mut() else {
                            match std::net::TcpStream::connect(&addr) {
                                Ok(conn) => stream = Some(conn),
                                Err(_) => {
                                    fates.push(Fate::Refused);
                                    break;
                                }
                            }
                            continue;
                        };
                        let fate = exchange(
                            conn,
                            &addr,
                            &json!({"inputs": format!("client {i} says hi")}).to_string(),
                        );
                        fates.push(fate);
                        match fate {
                            Fate::Answered(_, false) => {}
                            Fate::Answered(_, true) => stream = None,
                            _ => break,
                        }
                    }
                    fates
                })
            })
            .collect();
        std::thread::sleep(Duration::from_millis(1500));
        let pid = server.child.id().to_string();
        assert!(Command::new("kill").args(["-TERM", &pid]).status().unwrap().success());
        clients.into_iter().flat_map(|c| c.join().unwrap()).collect()
    });
    let answered = fates.iter().filter(|f| matches!(f, Fate::Answered(200, _))).count();
    assert!(answered >= 4, "the clients ran: {fates:?}");
    assert!(
        !fates.contains(&Fate::Lost),
        "a request was lost: {:?}",
        fates.iter().filter(|f| **f != Fate::Answered(200, false)).collect::<Vec<_>>()
    );
    assert!(fates.iter().all(|f| matches!(f, Fate::Answered(200, _) | Fate::Refused)), "{fates:?}");
    assert!(fates.contains(&Fate::Answered(200, true)), "draining answers say Connection: close");
    assert!(fates.contains(&Fate::Refused), "then the port is closed");
    assert_eq!(server.terminate_wait().code(), Some(0));
}

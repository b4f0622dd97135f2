//! Limits and bad clients: every bad request gets its status and a one-line JSON error and the
//! server serves on; the API key; back-pressure; time-outs; slow and vanishing clients.

use std::{
    io::{Read, Write},
    net::TcpStream,
    time::{Duration, Instant},
};

use serde_json::json;

use super::Server;

/// A bad request: what it is, its body, its extra headers, the status and `error_type` due.
type BadRequest = (&'static str, Vec<u8>, &'static [(&'static str, &'static str)], u16, &'static str);

#[test]
fn bad_requests_get_their_status_and_a_json_error_and_the_server_serves_on() {
    let server = Server::start(&["--payload-limit", "4000"]);
    let cases: Vec<BadRequest> = vec![
        ("malformed JSON", b"{\"inputs\": ".to_vec(), &[], 400, "validation"),
        ("invalid UTF-8", b"{\"inputs\": \"\xff\xfe\"}".to_vec(), &[], 400, "validation"),
        ("a number for inputs", br#"{"inputs": 5}"#.to_vec(), &[], 422, "validation"),
        ("no inputs", br#"{"text": "hi"}"#.to_vec(), &[], 422, "validation"),
        ("an empty list", br#"{"inputs": []}"#.to_vec(), &[], 400, "validation"),
        ("33 texts", json!({"inputs": vec!["a"; 33]}).to_string().into_bytes(), &[], 413, "validation"),
        (
            "a body over --payload-limit",
            json!({"inputs": "x".repeat(5000)}).to_string().into_bytes(),
            &[],
            413,
            "payload_too_large",
        ),
        (
            "no JSON content type",
            br#"{"inputs": "hi"}"#.to_vec(),
            &[("Content-Type", "text/plain")],
            415,
            "validation",
        ),
    ];
    for (what, body, headers, status, kind) in cases {
        server.send("POST", "/predict", headers, &body).assert_error(status, kind, what);
    }
    server.get("/nowhere").assert_error(404, "not_found", "an unknown route");
    let get = server.get("/predict");
    get.assert_error(405, "method_not_allowed", "GET on a POST route");
    assert_eq!(get.header("allow"), Some("POST"));
    // A body over the limit sent chunked (no length to refuse it by up front), to a route that
    // reads it as bytes.
    let chunked = [("Transfer-Encoding", "chunked")];
    let body = json!({"checkpoint": "x".repeat(5000)}).to_string();
    let chunks = format!("{:x}\r\n{body}\r\n0\r\n\r\n", body.len());
    let reload = server.send_raw("POST", "/admin/reload", &chunked, chunks.as_bytes());
    reload.assert_error(413, "payload_too_large", "a chunked reload body over --payload-limit");
    let metrics = server.get("/metrics").body;
    assert!(metrics.contains("status=\"422\""), "errors are counted:\n{metrics}");
    assert!(metrics.contains("route=\"/predict\",status=\"405\""), "{metrics}");
    let ok = server.post("/predict", &json!({"inputs": ["still", "serving"]}));
    assert_eq!(ok.status, 200, "{}", ok.body);
}

#[test]
fn the_api_key_guards_everything_but_the_health_checks() {
    let server = Server::start(&["--api-key", "s3cret"]);
    let body = json!({"inputs": "hi"}).to_string();
    server.send("POST", "/predict", &[], body.as_bytes()).assert_error(401, "unauthorized", "no key");
    let wrong = [("Authorization", "Bearer nope")];
    server.send("POST", "/predict", &wrong, body.as_bytes()).assert_error(401, "unauthorized", "a wrong key");
    server.send("GET", "/info", &[], b"").assert_error(401, "unauthorized", "info without the key");
    let right = [("Authorization", "Bearer s3cret")];
    assert_eq!(server.send("POST", "/predict", &right, body.as_bytes()).status, 200);
    assert_eq!(server.get("/health").status, 200);
    assert_eq!(server.get("/ready").status, 200);
    let reload = server.send("POST", "/admin/reload", &[], b"");
    reload.assert_error(401, "unauthorized", "reload without the key");
    assert_eq!(server.send("POST", "/admin/reload", &right, b"").status, 200, "reload with the key");
}

#[test]
fn past_max_concurrent_requests_a_request_is_refused_at_once() {
    // The first request holds the only permit for the whole 3 s batch window; the second is
    // refused at once: well within the window (the suite's load allows no tighter bound; the
    // serving benchmark measures the refusal's latency).
    let server = Server::start(&["--max-concurrent-requests", "1", "--max-batch-delay", "3000"]);
    std::thread::scope(|s| {
        let first = s.spawn(|| server.post("/predict", &json!({"inputs": "the first"})));
        std::thread::sleep(Duration::from_millis(700)); // the first now holds the permit
        let started = Instant::now();
        let refused = server.post("/predict", &json!({"inputs": "the second"}));
        let took = started.elapsed();
        refused.assert_error(429, "overloaded", "the second request");
        assert_eq!(refused.header("retry-after"), Some("1"));
        assert!(took < Duration::from_millis(1000), "refused in {took:?}");
        assert_eq!(first.join().unwrap().status, 200);
    });
    assert_eq!(server.post("/predict", &json!({"inputs": "after"})).status, 200, "serves normally after");
}

#[test]
fn a_request_past_its_time_out_is_answered_408_and_dropped_before_the_model() {
    // The batch window (2 s) outlasts the request time-out (0.3 s): the request is answered 408
    // at the time-out; when its batch forms, its client is gone and it is dropped.
    let server = Server::start(&["--request-timeout", "0.3", "--max-batch-delay", "2000"]);
    let started = Instant::now();
    server.post("/predict", &json!({"inputs": "too slow"})).assert_error(408, "timeout", "a queued request");
    assert!(started.elapsed() < Duration::from_millis(1500), "answered at the time-out, not the window");
    let dropped = "lstm_tch_requests_dropped_total{reason=\"disconnected\"} 1";
    let mut metrics = String::new();
    for _ in 0..100 {
        metrics = server.get("/metrics").body;
        if metrics.contains(dropped) {
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(metrics.contains(dropped), "{metrics}");
    let warm_ups = server.get("/info").json()["workers"].as_u64().unwrap(); // one per model thread
    let batches = format!("lstm_tch_batch_size_count {warm_ups}\n");
    assert!(metrics.contains(&batches), "only the warm-up ran:\n{metrics}");
}

/// Reads what the server sends on `stream` until it closes it (or `limit` passes), and how
/// long that took.
fn read_until_closed(stream: &mut TcpStream, limit: Duration) -> (Vec<u8>, Duration) {
    let started = Instant::now();
    stream.set_read_timeout(Some(limit)).unwrap();
    let mut received = vec![];
    let _ = stream.read_to_end(&mut received); // a reset is a close too
    (received, started.elapsed())
}

#[test]
fn a_client_trickling_its_headers_is_cut_off_and_counted() {
    let server = Server::start(&["--header-timeout", "0.5"]);
    let mut slow = TcpStream::connect(&server.addr).unwrap();
    slow.write_all(b"POST /predict HTTP/1.1\r\nHost: slowloris\r\n").unwrap();
    // Meanwhile the server serves others.
    assert_eq!(server.post("/predict", &json!({"inputs": "meanwhile"})).status, 200);
    let (_, took) = read_until_closed(&mut slow, Duration::from_secs(20));
    assert!(took < Duration::from_secs(10), "the connection was closed after {took:?}");
    let metrics = server.get("/metrics").body;
    let counted = "lstm_tch_connection_errors_total{reason=\"header_timeout\"} 1";
    assert!(metrics.contains(counted), "{metrics}");
    assert_eq!(server.post("/predict", &json!({"inputs": "after"})).status, 200, "serves on");
}

#[test]
fn a_body_that_trickles_in_is_answered_408() {
    let server = Server::start(&["--request-timeout", "0.5"]);
    let body = json!({"inputs": "a body that never ends"}).to_string();
    let mut slow = TcpStream::connect(&server.addr).unwrap();
    let head = format!(
        "POST /predict HTTP/1.1\r\nHost: x\r\nConnection: close\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n",
        body.len()
    );
    slow.write_all(head.as_bytes()).unwrap();
    slow.write_all(&body.as_bytes()[..5]).unwrap();
    let (received, took) = read_until_closed(&mut slow, Duration::from_secs(20));
    super::parse(&received).assert_error(408, "timeout", "a trickling body");
    assert!(took < Duration::from_secs(10), "answered after {took:?}");
    assert_eq!(server.post("/predict", &json!({"inputs": "after"})).status, 200, "serves on");
}

#[test]
fn huge_batches_huge_texts_and_vanishing_clients_leave_the_server_serving() {
    let server = Server::start(&["--max-batch-delay", "300"]);
    let many = json!({"inputs": vec!["a review"; 10_000]});
    server.post("/predict", &many).assert_error(413, "validation", "10,000 texts");
    let over = json!({"inputs": "x".repeat(2_100_000)});
    server.post("/predict", &over).assert_error(413, "payload_too_large", "a body over 2 MB");
    // A 1 MB text is truncated as `predict` truncates it: its answer is predict's.
    let long = "good and bad and ".repeat(60_000);
    let file = crate::common::tempdir("serve-long").join("long.txt");
    std::fs::write(&file, &long).unwrap();
    let ckpt = super::checkpoint().to_str().unwrap().to_owned();
    let args =
        ["predict", "--json", "--threads", "1", "--checkpoint", &ckpt, "--file", file.to_str().unwrap()];
    let output = crate::common::run(crate::common::lstm_tch(), &args);
    let line: serde_json::Value = serde_json::from_str(crate::common::text(&output).0.trim()).unwrap();
    let reply = server.post("/predict", &json!({"inputs": long}));
    assert_eq!(reply.status, 200, "{}", reply.body);
    assert_eq!(serde_json::Value::Object(super::scores(&reply.json())), line["probabilities"]);
    // A client that sends half its body and leaves, and one that leaves while its request is
    // queued (in the 300 ms batch window): neither is answered, the second is dropped before
    // the model, and the server serves on.
    let mut half = TcpStream::connect(&server.addr).unwrap();
    half.write_all(b"POST /predict HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{\"in").unwrap();
    drop(half);
    let mut gone = TcpStream::connect(&server.addr).unwrap();
    let body = json!({"inputs": "I will not wait"}).to_string();
    let head = format!(
        "POST /predict HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n",
        body.len()
    );
    gone.write_all(format!("{head}{body}").as_bytes()).unwrap();
    std::thread::sleep(Duration::from_millis(100));
    drop(gone);
    let dropped = "lstm_tch_requests_dropped_total{reason=\"disconnected\"} 1";
    let mut metrics = String::new();
    for _ in 0..50 {
        metrics = server.get("/metrics").body;
        if metrics.contains(dropped) {
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(metrics.contains(dropped), "{metrics}");
    // The request whose client left is counted with nginx's 499 ("client closed request").
    assert!(metrics.contains("lstm_tch_requests_total{route=\"/predict\",status=\"499\"} 1"), "{metrics}");
    assert_eq!(server.post("/predict", &json!({"inputs": "after"})).status, 200, "serves on");
}

#[test]
fn past_max_queue_time_new_requests_are_refused_at_once() {
    // Twelve clients send batches of 32 long texts (one batch each, --max-batch-size 32): the
    // queue outgrows a 1 ms backlog, and requests coming then are refused at once (429, counted
    // as `queue_time`) while the accepted ones are answered; once the queue drains, requests
    // are accepted again.
    let server = Server::start(&["--max-queue-time", "1", "--max-batch-size", "32"]);
    let long = "a long review that goes on and on ".repeat(40);
    let body = json!({"inputs": vec![long.as_str(); 32]});
    let replies: Vec<super::Reply> = std::thread::scope(|s| {
        let clients: Vec<_> = (0..12)
            .map(|_| s.spawn(|| (0..4).map(|_| server.post("/predict", &body)).collect::<Vec<_>>()))
            .collect();
        clients.into_iter().flat_map(|c| c.join().unwrap()).collect()
    });
    let refused: Vec<&super::Reply> = replies.iter().filter(|r| r.status == 429).collect();
    assert!(!refused.is_empty(), "a backlog over 1 ms refuses new requests");
    for reply in &refused {
        reply.assert_error(429, "overloaded", "a request behind the backlog");
        assert!(reply.json()["error"].as_str().unwrap().contains("--max-queue-time"), "{}", reply.body);
    }
    assert!(replies.iter().all(|r| r.status == 200 || r.status == 429), "only answers and refusals");
    assert!(replies.iter().any(|r| r.status == 200), "accepted requests are answered");
    let metrics = server.get("/metrics").body;
    assert!(metrics.contains("lstm_tch_requests_refused_total{reason=\"queue_time\"}"), "{metrics}");
    assert_eq!(server.post("/predict", &json!({"inputs": "after"})).status, 200, "accepted again");
}

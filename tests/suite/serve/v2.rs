//! The Open Inference Protocol (v2) routes: metadata, readiness, and `infer` with a BYTES input
//! answering what `/predict` and `predict` answer.

use serde_json::{json, Value};

use super::{predicted, Server, TEXTS};

#[test]
fn infer_answers_predicts_probabilities_and_the_metadata_names_the_model() {
    let server = Server::start(&["--model-name", "sentiment"]);
    assert_eq!(server.get("/v2").json()["name"], "lstm-tch");
    let meta = server.get("/v2/models/sentiment").json();
    assert_eq!(meta["inputs"][0]["datatype"], "BYTES", "{meta}");
    assert_eq!(meta["outputs"][1]["shape"], json!([-1, 2]), "{meta}");
    assert_eq!(server.get("/v2/models/sentiment/ready").status, 200);
    server.get("/v2/models/other/ready").assert_error(404, "not_found", "another model's readiness");

    let request =
        json!({"id": "r-1", "inputs": [{"name": "text", "shape": [3], "datatype": "BYTES", "data": TEXTS}]});
    let reply = server.post("/v2/models/sentiment/infer", &request);
    assert_eq!(reply.status, 200, "{}", reply.body);
    assert!(reply.header("x-queue-time").is_some());
    let body = reply.json();
    assert_eq!((&body["model_name"], &body["id"]), (&json!("sentiment"), &json!("r-1")));
    let outputs = body["outputs"].as_array().unwrap();
    let names: Vec<&str> = outputs.iter().map(|o| o["name"].as_str().unwrap()).collect();
    assert_eq!(names, ["label", "probabilities", "logits"]);
    assert_eq!((&outputs[0]["shape"], &outputs[1]["shape"]), (&json!([3]), &json!([3, 2])));
    // The same batch of three as `predict` runs: the same probabilities, to the bit.
    let expected: Vec<Value> = predicted(&TEXTS)
        .iter()
        .flat_map(|p| ["negative", "positive"].map(|label| p[label].clone()))
        .collect();
    assert_eq!(outputs[1]["data"], Value::Array(expected));
    for (i, row) in outputs[1]["data"].as_array().unwrap().chunks(2).enumerate() {
        let top = if row[0].as_f64() >= row[1].as_f64() { "negative" } else { "positive" };
        assert_eq!(outputs[0]["data"][i], top, "the label is the most probable class");
    }

    // Nested data of shape [1, 2], and only the output asked for.
    let nested = json!({"inputs": [{"name": "t", "shape": [1, 2], "datatype": "BYTES", "data": [["good", "bad"]]}],
                        "outputs": [{"name": "label"}]});
    let reply = server.post("/v2/models/sentiment/infer", &nested);
    assert_eq!(reply.status, 200, "{}", reply.body);
    let outputs = reply.json()["outputs"].as_array().unwrap().clone();
    assert_eq!(outputs.len(), 1);
    assert_eq!(outputs[0]["shape"], json!([2]));
}

#[test]
fn bad_infer_requests_get_their_status_and_a_json_error() {
    let server = Server::start(&[]);
    let input = |shape: Value, datatype: &str, data: Value| json!({"name": "text", "shape": shape, "datatype": datatype, "data": data});
    let cases = [
        ("FP32 input", json!({"inputs": [input(json!([1]), "FP32", json!([1.0]))]}), 400),
        (
            "two inputs",
            json!({"inputs": [input(json!([1]), "BYTES", json!(["a"])), input(json!([1]), "BYTES", json!(["b"]))]}),
            400,
        ),
        ("no input", json!({"inputs": []}), 400),
        (
            "a shape that does not hold the data",
            json!({"inputs": [input(json!([2]), "BYTES", json!(["a", "b", "c"]))]}),
            400,
        ),
        ("a negative shape", json!({"inputs": [input(json!([-1]), "BYTES", json!(["a"]))]}), 400),
        ("numbers for texts", json!({"inputs": [input(json!([1]), "BYTES", json!([7]))]}), 400),
        (
            "an unknown output",
            json!({"inputs": [input(json!([1]), "BYTES", json!(["a"]))], "outputs": [{"name": "x"}]}),
            400,
        ),
        (
            "ragged data that flattens to the shape",
            json!({"inputs": [input(json!([3]), "BYTES", json!([["a", "b"], "c"]))]}),
            400,
        ),
        (
            "an output asked for twice",
            json!({"inputs": [input(json!([1]), "BYTES", json!(["a"]))], "outputs": [{"name": "label"}, {"name": "label"}]}),
            400,
        ),
        ("no inputs field", json!({"id": "x"}), 422),
        ("33 texts", json!({"inputs": [input(json!([33]), "BYTES", json!(vec!["a"; 33]))]}), 413),
    ];
    for (what, body, status) in cases {
        server.post("/v2/models/lstm-tch/infer", &body).assert_error(status, "validation", what);
    }
    let good = json!({"inputs": [input(json!([1]), "BYTES", json!(["a"]))]});
    server.post("/v2/models/other/infer", &good).assert_error(404, "not_found", "an unknown model");
    let malformed = server.send("POST", "/v2/models/other/infer", &[], b"{\"inputs\": ");
    malformed.assert_error(404, "not_found", "an unknown model, whatever the body");
    // A model name that is not UTF-8 once percent-decoded: the router's rejection, as JSON.
    server.get("/v2/models/%FF").assert_error(400, "validation", "a name that is not UTF-8");
    server.post("/v2/models/%FF/infer", &good).assert_error(400, "validation", "a name that is not UTF-8");
    assert_eq!(server.post("/v2/models/lstm-tch/infer", &good).status, 200, "serves on");
}

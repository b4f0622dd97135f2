//! The page at `/` of `lstm-tch serve` in a real browser: headless Chromium, driven over
//! WebDriver (Debian's `chromedriver`, through fantoccini), opens the page, types reviews into
//! it as a user does (key events), presses the button (and Ctrl+Enter), and reads what the page
//! shows. Each review's label and probabilities must be what `POST /predict` answers for it,
//! and its heat map what `POST /explain` answers: a column per token, a row per gate and
//! direction named as `gate_names`, then the running probability of the label, every value the
//! API's and shown to its precision. The 中文 switch changes the page's strings; with
//! `--api-key` the page shows the API's 401 on one line, asks for the key, and sends it.
//!
//! Chromium and chromedriver come from Debian's `chromium` and `chromium-driver` packages, which
//! `scripts/setup.sh` installs; `CHROME` and `CHROMEDRIVER` name other binaries. Without them
//! the test fails and says so: it never skips. chromedriver runs in a process group of its own,
//! with the Chromium it starts, and the whole group is killed when the test ends, pass or fail.

use std::{
    io::{BufRead, BufReader},
    os::unix::process::CommandExt,
    path::PathBuf,
    process::{Child, Command, Stdio},
    time::Duration,
};

use fantoccini::{key::Key, Client, ClientBuilder, Locator};
use serde_json::{json, Value};

use crate::{
    common::tempdir,
    serve::{scores, Server, TEXTS},
};

/// How long Chromium may take to start, and then the page's part (a few seconds in all here).
const DEADLINE: Duration = Duration::from_secs(60);

/// The API key of the guarded server.
const KEY: &str = "page-s3cret";

/// Reads what the page shows, from its DOM: the strings the test checks, and every result's
/// label, probabilities and heat map (each value both as its `data-value` and as shown).
const READ: &str = r#"
const text = (node) => (node ? node.textContent.trim() : null);
const cells = (tr) => [...tr.querySelectorAll("td")]
  .map((td) => ({ value: td.dataset.value, shown: text(td), title: td.title }));
return {
  lang: document.documentElement.lang,
  classify: text(document.getElementById("classify")),
  info: text(document.getElementById("model-info")),
  error: text(document.getElementById("error")),
  key_form: !document.getElementById("key-form").hidden,
  results: [...document.querySelectorAll(".result")].map((r) => ({
    label: r.dataset.label,
    text: text(r.querySelector("h3")),
    probs: [...r.querySelectorAll(".prob")]
      .map((p) => ({ class: p.dataset.class, value: p.dataset.value, shown: text(p.querySelector(".pct")) })),
    tokens: [...r.querySelectorAll(".heatmap thead th[data-token]")].map((th) => th.dataset.token),
    rows: [...r.querySelectorAll(".heatmap tbody tr")].map((tr) => ({
      gate: tr.dataset.gate || null, direction: tr.dataset.direction || null,
      row: tr.dataset.row || null, class: tr.dataset.class || null,
      name: text(tr.querySelector("th")), cells: cells(tr),
    })),
  })),
};"#;

/// chromedriver on a free port, in a process group of its own: the Chromium it starts joins
/// that group, and dropping this kills the whole group and removes Chromium's profile folder.
struct Driver {
    child: Child,
    url: String,
    chrome: PathBuf,
    profile: PathBuf,
}

impl Driver {
    /// Starts chromedriver and waits until it listens.
    fn start() -> Driver {
        let chrome = binary("CHROME", &["chromium", "chromium-browser", "google-chrome"]);
        let chromedriver = binary("CHROMEDRIVER", &["chromedriver"]);
        let mut child = Command::new(&chromedriver)
            .arg("--port=0")
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .process_group(0)
            .spawn()
            .unwrap_or_else(|e| panic!("cannot run {}: {e}", chromedriver.display()));
        let mut stdout = BufReader::new(child.stdout.take().unwrap());
        let mut line = String::new();
        let port = loop {
            line.clear();
            if stdout.read_line(&mut line).unwrap_or(0) == 0 {
                panic!("chromedriver exited before listening: {:?}", child.wait());
            }
            // "Starting ChromeDriver ... on port 0" comes first: the port is in this line.
            if let Some(rest) = line.split("successfully on port ").nth(1) {
                break rest.trim().trim_end_matches('.').to_owned();
            }
        };
        std::thread::spawn(move || std::io::copy(&mut stdout, &mut std::io::sink()));
        let profile = tempdir("page-chromium");
        Driver { child, url: format!("http://127.0.0.1:{port}"), chrome, profile }
    }

    /// A new browser session: headless Chromium, no sandbox (the suite may run as root), a fresh
    /// profile, English as the browser's language.
    async fn session(&self) -> Client {
        let options = json!({
            "binary": self.chrome,
            "args": ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                "--no-first-run", "--lang=en-US", "--accept-lang=en-US", "--window-size=1200,900",
                format!("--user-data-dir={}", self.profile.display())],
        });
        let capabilities = json!({"browserName": "chrome", "goog:chromeOptions": options});
        let Value::Object(capabilities) = capabilities else { unreachable!() };
        let connector = hyper_util::client::legacy::connect::HttpConnector::new();
        ClientBuilder::new(connector)
            .capabilities(capabilities)
            .connect(&self.url)
            .await
            .unwrap_or_else(|e| panic!("chromedriver could not start {}: {e}", self.chrome.display()))
    }
}

impl Drop for Driver {
    fn drop(&mut self) {
        // SAFETY: kill(2) on the process group this test created (chromedriver leads it).
        unsafe { libc::kill(-(self.child.id() as libc::pid_t), libc::SIGKILL) };
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.profile);
    }
}

/// The binary named by the environment variable `var`, else the first of `names` on `PATH`;
/// fails with one line saying how to get it.
fn binary(var: &str, names: &[&str]) -> PathBuf {
    if let Some(path) = std::env::var_os(var).filter(|v| !v.is_empty()) {
        let path = PathBuf::from(path);
        assert!(
            path.is_file(),
            "{var}={} is not a file: run scripts/setup.sh, or set {var} to a binary",
            path.display()
        );
        return path;
    }
    let path = std::env::var_os("PATH").unwrap_or_default();
    let mut found = names.iter().flat_map(|name| std::env::split_paths(&path).map(move |dir| dir.join(name)));
    found.find(|p| p.is_file()).unwrap_or_else(|| {
        panic!("{} not found: run scripts/setup.sh (it installs Debian's chromium and chromium-driver), or set {var}", names[0])
    })
}

/// Waits until the page's JavaScript `condition` is true.
async fn until(client: &Client, condition: &str) {
    let script = format!("return Boolean({condition});");
    while client.execute(&script, vec![]).await.unwrap() != Value::Bool(true) {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// What the page showed at each step: in English after the click, in Chinese after Ctrl+Enter,
/// and on the guarded server before and after the key.
struct Seen {
    english: Value,
    chinese: Value,
    locked: Value,
    unlocked: Value,
}

/// Plays the user on the open server's page (`open`) and on the guarded one's (`guarded`).
async fn browse(client: &Client, open: &str, guarded: &str) -> Seen {
    client.goto(open).await.unwrap();
    until(client, r#"document.getElementById("model-info").textContent.includes("lstm")"#).await;
    let reviews = client.find(Locator::Id("reviews")).await.unwrap();
    reviews.send_keys(&format!("{}\n{}", TEXTS[0], TEXTS[1])).await.unwrap();
    client.find(Locator::Id("classify")).await.unwrap().click().await.unwrap();
    until(client, r#"document.getElementById("results").dataset.state === "done""#).await;
    let english = client.execute(READ, vec![]).await.unwrap();

    client.find(Locator::Id("lang-zh")).await.unwrap().click().await.unwrap();
    reviews.send_keys(&format!("\n{}{}", TEXTS[2], Key::Control + &Key::Enter)).await.unwrap();
    until(client, r#"document.querySelectorAll(".result").length === 3"#).await;
    let chinese = client.execute(READ, vec![]).await.unwrap();

    client.goto(guarded).await.unwrap();
    until(client, r#"!document.getElementById("key-form").hidden"#).await;
    let locked = client.execute(READ, vec![]).await.unwrap();
    client.find(Locator::Id("reviews")).await.unwrap().send_keys(TEXTS[0]).await.unwrap();
    client.find(Locator::Id("api-key")).await.unwrap().send_keys(KEY).await.unwrap();
    client.find(Locator::Id("use-key")).await.unwrap().click().await.unwrap();
    until(client, r#"document.getElementById("results").dataset.state === "done""#).await;
    let unlocked = client.execute(READ, vec![]).await.unwrap();
    Seen { english, chinese, locked, unlocked }
}

/// `value` (a JSON string holding a number, or a number) as a number.
fn number(value: &Value) -> f64 {
    match value {
        Value::String(s) => s.parse().unwrap_or_else(|e| panic!("not a number ({e}): {s}")),
        other => other.as_f64().unwrap_or_else(|| panic!("not a number: {other}")),
    }
}

/// Asserts `shown` (the page's text for a value) is `value` rounded as the page rounds it:
/// `decimals` places, as a percentage when `percent`.
fn assert_rounded(shown: &Value, value: f64, decimals: i32, percent: bool, what: &str) {
    let shown = shown.as_str().unwrap();
    let (scale, text) = if percent { (100.0, shown.trim_end_matches('%').trim()) } else { (1.0, shown) };
    let parsed: f64 = text.parse().unwrap_or_else(|e| panic!("{what}: {shown:?} ({e})"));
    let half = 0.5 * 10f64.powi(-decimals) + 1e-9;
    assert!((parsed - value * scale).abs() <= half, "{what}: shows {shown} for {value}");
}

/// Asserts the results `seen` on `server`'s page are `/predict`'s and `/explain`'s for
/// `texts` (asked with `headers`, in one request each, as the page asks).
fn assert_results(seen: &Value, server: &Server, headers: &[(&str, &str)], texts: &[&str]) {
    let body = json!({ "inputs": texts }).to_string();
    let predicted = server.send("POST", "/predict", headers, body.as_bytes()).json();
    let explained = server.send("POST", "/explain", headers, body.as_bytes()).json();
    let results = seen["results"].as_array().unwrap();
    assert_eq!(results.len(), texts.len(), "a result per review: {seen}");
    for (i, result) in results.iter().enumerate() {
        let ranked = &predicted[i];
        assert_eq!(result["text"], texts[i], "the review, in order");
        assert_eq!(result["label"], ranked[0]["label"], "{}: the label is /predict's", texts[i]);
        let shown: Vec<(Value, f64)> = result["probs"]
            .as_array()
            .unwrap()
            .iter()
            .map(|p| (p["class"].clone(), number(&p["value"])))
            .collect();
        scores(ranked); // sorted by score
        let want: Vec<(Value, f64)> =
            ranked.as_array().unwrap().iter().map(|e| (e["label"].clone(), number(&e["score"]))).collect();
        assert_eq!(shown, want, "{}: the probabilities are /predict's, to the bit, in its order", texts[i]);
        for p in result["probs"].as_array().unwrap() {
            assert_rounded(&p["shown"], number(&p["value"]), 1, true, texts[i]);
        }
        assert_heatmap(result, &explained[i]);
    }
}

/// Asserts one result's heat map is `explained` (one `/explain` answer): a column per token, a
/// row per gate (in `gate_names`' order) and direction, then the running probability of the
/// label; each value `/explain`'s, in [0, 1], shown to two places, exact in its title.
fn assert_heatmap(result: &Value, explained: &Value) {
    let tokens = explained["tokens"].as_array().unwrap();
    let names: Vec<&Value> = tokens.iter().map(|t| &t["token"]).collect();
    assert_eq!(result["tokens"].as_array().unwrap().iter().collect::<Vec<_>>(), names, "a column per token");
    let labels = explained["labels"].as_array().unwrap();
    let k = labels.iter().position(|l| *l == result["label"]).unwrap();
    let mut expected = vec![];
    for gate in explained["gate_names"].as_array().unwrap() {
        for (d, direction) in explained["directions"].as_array().unwrap().iter().enumerate() {
            let values: Vec<f64> =
                tokens.iter().map(|t| number(&t["gates"][gate.as_str().unwrap()][d])).collect();
            expected
                .push((json!({"gate": gate, "direction": direction, "row": null, "class": null}), values));
        }
    }
    let running: Vec<f64> = tokens.iter().map(|t| number(&t["probabilities"][k])).collect();
    let last = json!({"gate": null, "direction": null, "row": "probability", "class": result["label"]});
    expected.push((last, running));
    let rows = result["rows"].as_array().unwrap();
    assert_eq!(rows.len(), expected.len(), "a row per gate and direction, and the probability's: {result}");
    for (row, (keys, values)) in rows.iter().zip(&expected) {
        for key in ["gate", "direction", "row", "class"] {
            assert_eq!(row[key], keys[key], "row {}: {key}", row["name"]);
        }
        let cells = row["cells"].as_array().unwrap();
        assert_eq!(cells.len(), values.len(), "row {}: a cell per token", row["name"]);
        for (cell, &want) in cells.iter().zip(values) {
            let value = number(&cell["value"]);
            assert_eq!(value, want, "row {}: /explain's value", row["name"]);
            assert!((0.0..=1.0).contains(&value), "row {}: {value} in [0, 1]", row["name"]);
            assert_rounded(&cell["shown"], value, 2, false, row["name"].as_str().unwrap());
            let title = cell["title"].as_str().unwrap();
            assert!(
                title.ends_with(cell["value"].as_str().unwrap()),
                "the exact value in the title: {title}"
            );
        }
    }
}

#[test]
fn the_page_shows_what_the_api_answers_for_typed_reviews_in_english_and_chinese() {
    let open = Server::start(&[]);
    let guarded = Server::start(&["--api-key", KEY]);
    let driver = Driver::start();
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    let pages = (format!("http://{}/", open.addr), format!("http://{}/", guarded.addr));
    let seen = runtime.block_on(async {
        let client = tokio::time::timeout(DEADLINE, driver.session()).await.expect("Chromium did not start");
        let seen = tokio::time::timeout(DEADLINE, browse(&client, &pages.0, &pages.1)).await;
        let last = match &seen {
            Ok(_) => Value::Null,
            Err(_) => client.execute(READ, vec![]).await.unwrap_or_default(),
        };
        let _ = tokio::time::timeout(Duration::from_secs(5), client.close()).await;
        seen.unwrap_or_else(|_| panic!("the page took longer than {DEADLINE:?}; it showed {last}"))
    });
    drop(driver);

    let english = &seen.english;
    assert_eq!((&english["lang"], &english["classify"]), (&json!("en"), &json!("Classify")), "{english}");
    assert!(
        english["info"].as_str().unwrap().contains("lstm cell · labels: negative, positive"),
        "{english}"
    );
    assert_eq!(english["error"], "", "no error: {english}");
    assert_results(english, &open, &[], &TEXTS[..2]);

    let chinese = &seen.chinese;
    assert_eq!((&chinese["lang"], &chinese["classify"]), (&json!("zh-CN"), &json!("分类")), "{chinese}");
    assert!(chinese["info"].as_str().unwrap().contains("lstm 单元 · 类别：negative、positive"), "{chinese}");
    assert_eq!(chinese["results"][0]["rows"][0]["name"], "输入门（正向）", "the heat map in Chinese too");
    assert_results(chinese, &open, &[], &TEXTS);

    let locked = &seen.locked;
    assert!(locked["key_form"].as_bool().unwrap(), "a 401 asks for the key: {locked}");
    let error = locked["error"].as_str().unwrap();
    assert!(error.starts_with("Error: 401 unauthorized: ") && !error.contains('\n'), "one line: {error}");
    let unlocked = &seen.unlocked;
    assert_eq!(unlocked["error"], "", "the key works: {unlocked}");
    let bearer = format!("Bearer {KEY}");
    assert_results(unlocked, &guarded, &[("Authorization", &bearer)], &TEXTS[..1]);
}
